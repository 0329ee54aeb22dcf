"""Analytics on the real stack: the read model fed by the services' events (late and duplicated
ones included), the reports and their CSV, search with the admin token, the feedback events, the
gauges, and the dashboard in a real headless browser (Debian's chromium) with a screenshot."""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from shared.settings import service_port
from tests.conftest import ROOT, ref
from tools import storefront as sfm
from tools.storefront import Storefront

from .helpers import eventually, http_get, new_product, tail, value_of

ARTIFACTS = ROOT / "artifacts"


async def _order(sf: Storefront, store: str, customer: str, lines: list[tuple[str, int, str]],
                 option: str = "standard") -> tuple[str, str]:
    ext = ref("o")
    await sf.publish("orders.placed", f"{store}:{ext}",
                     sfm.order(store, ext, lines, customer_id=customer, country="US",
                               shipping_option=option))
    return f"{store}:{ext}", ext


async def _deliver(sf: Storefront, key: str) -> dict[str, Any]:
    """Ship, then play the carrier with a late scan: `delivered` first, then an `in_transit`
    that happened before it, and the delivery re-sent with the same event id."""
    shipped = await sf.wait_for(key, "shipped", timeout=90)
    for p in shipped["details"]["parcels"]:
        n, carrier = p["tracking_number"], p["carrier"]
        before = (datetime.now(UTC) - timedelta(hours=3)).isoformat()
        delivered = sfm.tracking(carrier, n, "delivered")
        await sf.publish("carrier.tracking", n, delivered)
        await sf.publish("carrier.tracking", n, sfm.tracking(carrier, n, "in_transit", before))
        await sf.publish("carrier.tracking", n, delivered)
    await sf.wait_for(key, "delivered", timeout=60)
    return shipped


async def _reports(store: str) -> dict[str, Any]:
    r = await http_get("analytics", f"/reports?store={store}")
    assert r.status_code == 200, r.text
    return dict(r.json()["reports"])


def _summary(reports: dict[str, Any]) -> dict[str, Any]:
    return {row["metric"]: row["value"] for row in reports["summary"]}


async def test_reports_count_each_event_once_whatever_its_lateness(storefront: Storefront
                                                                   ) -> None:
    sf = storefront
    store = ref("an")
    customer = ref("c")
    mug = await new_product(sf, stock={"WH-LA": 20})
    tee = await new_product(sf, stock={"WH-LA": 20})
    key1, ext1 = await _order(sf, store, customer, [(mug, 2, "10.00")])
    # express: fulfillment must not merge the buyer's two orders into one parcel here
    key2, ext2 = await _order(sf, store, customer, [(mug, 1, "10.00"), (tee, 3, "5.00")],
                              option="express")
    shipped = await _deliver(sf, key1)
    await _deliver(sf, key2)
    rating = sfm.order_event(store, ext1, rating=4, comment=None)
    await sf.publish("customer.feedback", key1, rating)
    await sf.publish("customer.feedback", key1, rating)  # re-sent: same event id
    await sf.publish("customer.feedback", key2, sfm.order_event(store, ext2, rating=2,
                                                                 comment=None))

    async def settled() -> dict[str, Any] | None:
        reports = await _reports(store)
        s = _summary(reports)
        return reports if s["ratings"] == 2 and s["parcels_delivered"] == 2 else None
    reports = await eventually(settled, timeout=180, what="analytics caught up")
    s = _summary(reports)
    assert s["orders"] == 2 and s["sold"] == 2 and s["acceptance_rate"] == 1.0
    assert s["shipped"] == 2 and s["on_time_ship_rate"] == 1.0
    assert s["on_time_delivery_rate"] == 1.0 and s["average_rating"] == 3.0
    assert s["customers"] == 1 and s["repeat_customer_rate"] == 1.0
    assert reports["orders_by_status"] == [{"status": "delivered", "orders": 2}]
    units = {r["sku"]: r["units"] for r in reports["best_sellers"]}
    assert units == {mug: 3, tee: 3}
    assert reports["pairs"][0]["orders"] == 1
    assert {reports["pairs"][0]["sku_a"], reports["pairs"][0]["sku_b"]} == {mug, tee}
    assert reports["rfm_segments"] == [{"segment": "loyal", "customers": 1}]

    # Every report exports as CSV, by suffix or by ?format=csv.
    csv_text = (await http_get("analytics", f"/reports/best_sellers.csv?store={store}")).text
    assert csv_text.splitlines()[0].startswith("sku,units,revenue")
    assert len(csv_text.splitlines()) == 3
    same = (await http_get("analytics", f"/reports/best_sellers?format=csv&store={store}")).text
    assert same == csv_text
    assert (await http_get("analytics", "/reports/nope.csv")).status_code == 404
    assert (await http_get("analytics", "/reports/rfm_customers.csv")).status_code == 401

    # Search: personal data, so the admin token.
    assert (await http_get("analytics", f"/orders?customer={customer}")).status_code == 401
    by_customer = (await http_get("analytics", f"/orders?customer={customer}", auth=True)).json()
    assert sorted(o["external_order_id"] for o in by_customer["orders"]) == sorted([ext1, ext2])
    number = shipped["details"]["parcels"][0]["tracking_number"]
    by_tracking = (await http_get("analytics", f"/orders?tracking={number}", auth=True)).json()
    assert [o["external_order_id"] for o in by_tracking["orders"]] == [ext1]
    assert by_tracking["orders"][0]["status"] == "delivered"
    by_id = (await http_get("analytics", f"/orders?order_id={shipped['order_id']}",
                            auth=True)).json()
    assert [o["external_order_id"] for o in by_id["orders"]] == [ext1]


async def test_an_invalid_inbound_value_is_skipped_by_analytics_not_dead_lettered(
        storefront: Storefront) -> None:
    def skipped(text: str) -> float:
        m = re.search(r'shopkeeper_events_consumed_total\{outcome="rejected",topic="orders.placed"\}'
                      r" ([0-9.e+]+)", text)
        return float(m.group(1)) if m else 0.0
    before = skipped((await http_get("analytics", "/metrics")).text)
    store, ext = ref("an"), ref("o")
    payload = sfm.order(store, ext, [("MUG-01", 1, "10.00")])
    payload["totals"]["grand_total"] = 12.5  # a number, not a decimal string
    await storefront.publish("orders.placed", f"{store}:{ext}", payload)
    await storefront.wait_for(f"{store}:{ext}", "rejected")  # intake rejects it as malformed

    async def counted() -> bool:
        return skipped((await http_get("analytics", "/metrics")).text) >= before + 1
    await eventually(counted, what="analytics skipped the malformed order")

    async def timeline() -> bool:  # from orders.status, which analytics reads on its own pace
        r = await http_get("analytics", f"/orders/{store}/{ext}")
        return r.status_code == 200 and r.json()["status"] == "rejected"
    await eventually(timeline, what="analytics' timeline of the rejected order")


async def test_feedback_events_and_business_gauges(storefront: Storefront) -> None:
    sf = storefront
    store = ref("an")
    sku = await new_product(sf, stock={"WH-LA": 10})
    key, _ = await _order(sf, store, ref("c"), [(sku, 4, "10.00")])
    started = datetime.now(UTC)
    shipped = await _deliver(sf, key)
    hint = value_of(await tail("analytics.reorder_hints",
                               lambda r: r.key and r.key.decode() == sku, timeout=180))
    assert hint["units_7d"] == 4 and hint["units_30d"] == 4
    assert hint["velocity_7d"] == round(4 / 7, 3) and hint["event_type"] == "analytics.reorder_hinted"
    carrier = shipped["details"]["parcels"][0]["carrier"]

    def fresh_score(r: Any) -> bool:  # published since this order, for its carrier and country
        v = value_of(r)
        return bool(v["carrier"] == carrier and v["country"] == "US"
                    and datetime.fromisoformat(v["occurred_at"]) >= started)
    score = value_of(await tail("analytics.carrier_scores", fresh_score, timeout=180))
    # Other tests deliver late on purpose (tracking dated years ahead), so the rate is only
    # bounded here; its arithmetic is unit-tested on known sequences.
    assert 0.0 <= score["on_time_rate"] <= 1.0 and score["samples"] >= 1
    assert score["window_days"] == 30 and score["event_type"] == "analytics.carrier_scored"
    metrics = (await http_get("analytics", "/metrics")).text
    for name in ("shopkeeper_orders_stuck", "shopkeeper_backorders_open",
                 "shopkeeper_average_rating", 'shopkeeper_orders_by_status{status="delivered"}'):
        assert re.search(rf"^{re.escape(name)} [0-9.e+]+$", metrics, re.M), name


def _chromium(*args: str) -> str:
    exe = shutil.which("chromium")
    assert exe, "chromium is missing: scripts/install-system-deps.sh installs it"
    with tempfile.TemporaryDirectory() as profile:
        done = subprocess.run(
            [exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             "--no-first-run", "--hide-scrollbars", f"--user-data-dir={profile}",
             "--virtual-time-budget=15000", "--window-size=1400,2600", *args],
            capture_output=True, text=True, timeout=180, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


async def test_the_dashboard_renders_charts_with_data_in_a_real_browser(storefront: Storefront
                                                                       ) -> None:
    sf = storefront
    store = ref("an")
    sku = await new_product(sf, stock={"WH-LA": 10})
    key, _ = await _order(sf, store, ref("c"), [(sku, 2, "10.00")])
    await _deliver(sf, key)

    async def in_reports() -> bool:
        return _summary(await _reports(store))["parcels_delivered"] == 1
    await eventually(in_reports, timeout=60, what="the order in the reports")

    page = f"http://127.0.0.1:{service_port('analytics')}/?store={store}"
    async with httpx.AsyncClient(timeout=10) as client:
        assert (await client.get(page)).status_code == 200
        js = await client.get(f"http://127.0.0.1:{service_port('analytics')}"
                              "/static/chart.umd.min.js")
        assert js.status_code == 200 and "Chart.js v4" in js.text[:200]
    dom = _chromium("--dump-dom", page)
    marker = re.search(r'id="render-status"[^>]*data-rendered="true"[^>]*data-charts="(\d+)"'
                       r'[^>]*data-points="(\d+)"[^>]*>rendered charts=\d+ points=\d+ orders=(\d+)',
                       dom)
    assert marker, dom[-3000:]
    charts, points, orders = (int(g) for g in marker.groups())
    assert charts == 9 and points >= 5 and orders == 1
    assert dom.count("<canvas") == 9
    assert sku in dom  # the best-sellers table has the order's line

    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "dashboard.png"
    shot.unlink(missing_ok=True)
    _chromium(f"--screenshot={shot}", page)
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000
