"""Sellers and their base currency in analytics, on the real stack (docs/analytics.md "Sellers and
their base currency", issue 22): a seller published on `setup.changed` (as intake's setup API
publishes it) and exchange rates on `fx.rates` reach analytics' copy; orders placed through the
pipeline in two currencies, and one in a currency with no rate, come out of the report API in the
seller's base currency, with the rate's date and the unconverted amount in its own currency."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta
from typing import Any

from shared.contracts import SetupChanged
from tests.conftest import ref
from tools import storefront as sfm
from tools.storefront import Storefront

from .helpers import eventually, http_get, new_product


def setup_changed(seller_id: str, data: dict[str, Any] | None) -> dict[str, Any]:
    """What intake's setup API publishes for one seller (shared/setup.py `record`)."""
    return SetupChanged(owner="intake", kind="sellers", key=seller_id, data=data,
                        changed_by="test").model_dump(mode="json")


async def sellers_report(store: str) -> list[dict[str, Any]]:
    r = await http_get("analytics", f"/reports/sellers?store={store}")
    assert r.status_code == 200, r.text
    rows: list[dict[str, Any]] = r.json()["rows"]
    return rows


async def test_a_sellers_orders_in_two_currencies_are_reported_in_its_base_currency(
        storefront: Storefront) -> None:
    sf = storefront
    store, seller_id = ref("chf-shop"), ref("seller")
    sku = await new_product(sf, stock={"WH-LA": 10}, price="30.00")
    # Given rates (as of a minute ago: newer than any earlier run's), a SEK -> CHF pair and
    # rates to USD so that intake reviews the orders as usual, and no rate at all for ISK
    as_of = (datetime.now(UTC) - timedelta(minutes=1)).replace(microsecond=0)
    await sf.publish("fx.rates", "SEK", sfm.fx_rates("SEK", {"CHF": "0.085", "USD": "0.095"},
                                                     as_of=as_of.isoformat()))
    await sf.publish("fx.rates", "CHF", sfm.fx_rates("CHF", {"USD": "1.13"},
                                                     as_of=as_of.isoformat()))
    # And a seller with base currency CHF owning the store, as intake publishes it
    entry = {"name": "Zurich Goods", "base_currency": "CHF", "stores": [store]}
    await sf.publish("setup.changed", f"sellers:{seller_id}", setup_changed(seller_id, entry))

    async def copied() -> list[dict[str, Any]]:
        return [r for r in await sellers_report(store) if r["seller"] == seller_id]
    (row,) = await eventually(copied, what="analytics' copy of the seller")
    assert (row["name"], row["base_currency"], row["stores"], row["orders"]) == (
        "Zurich Goods", "CHF", [store], 0)

    # When orders are placed through the pipeline: 30.00 CHF, 200.00 SEK and 4000 ISK
    keys = []
    for currency, price in (("CHF", "30.00"), ("SEK", "200.00"), ("ISK", "4000")):
        ext = ref("o")
        await sf.publish("orders.placed", f"{store}:{ext}",
                         sfm.order(store, ext, [(sku, 1, price)], currency=currency,
                                   shipping_fee="0"))
        keys.append(f"{store}:{ext}")
    await sf.wait_for(keys[0], "reserved", timeout=60)
    await sf.wait_for(keys[1], "reserved", timeout=60)
    await sf.wait_for(keys[2], "on_hold", timeout=60)  # intake: no rate from ISK to USD

    # Then the report API gives the seller's figures in CHF: 30.00 + 200.00 x 0.085 = 47.00,
    # two orders, 23.50 on average, at the rates of `as_of`; the ISK order is not dropped
    async def counted() -> dict[str, Any] | None:
        rows = [r for r in await sellers_report(store) if r["seller"] == seller_id]
        return rows[0] if rows and rows[0]["orders"] == 2 and rows[0]["unconverted"] else None
    row = await eventually(counted, timeout=60, what="the seller's orders in the report")
    assert (row["revenue"], row["average_order_value"], row["refunds_amount"]) == (
        "47.00", "23.50", "0.00")
    assert datetime.fromisoformat(row["converted_at_rate_as_of"]) == as_of
    assert row["unconverted"] == [{"currency": "ISK", "orders": 1, "revenue": "4000",
                                   "refunds": 0, "refunds_amount": "0"}]
    by_currency = {c["currency"]: c for c in row["by_currency"]}
    assert (by_currency["SEK"]["revenue"], by_currency["SEK"]["rate"],
            by_currency["SEK"]["revenue_converted"]) == ("200.00", "0.085", "17.00")
    assert by_currency["ISK"]["rate"] is None

    # And the page of every report has it, with the seller's rows in the KPI summary, and the
    # per-currency figures as before
    r = await http_get("analytics", f"/reports?store={store}")
    body = r.json()["reports"]
    assert [s["seller"] for s in body["sellers"]] == [seller_id]
    kpi = {m["metric"]: m["value"] for m in body["summary"]}
    assert kpi[f"seller.{seller_id}.revenue"] == "47.00 CHF"
    assert kpi[f"seller.{seller_id}.average_order_value"] == "23.50 CHF"
    assert kpi[f"seller.{seller_id}.unconverted"] == "4000 ISK"
    assert kpi["orders"] == 3 and kpi["refunds_amount"] == "0.00"
    assert r.json()["csv"]["sellers"] == "/reports/sellers.csv"
    text = (await http_get("analytics", f"/reports/sellers.csv?store={store}")).text
    (line,) = list(csv.DictReader(io.StringIO(text)))
    assert (line["seller"], line["revenue"], line["base_currency"]) == (seller_id, "47.00", "CHF")
    assert "t-sellers" in (await http_get("analytics", "/")).text

    # When the seller is deleted, the store's orders belong to no seller again
    await sf.publish("setup.changed", f"sellers:{seller_id}", setup_changed(seller_id, None))

    async def gone() -> bool:
        return not [r for r in await sellers_report(store) if r["seller"] == seller_id]
    await eventually(gone, what="the seller deleted from analytics' copy")
    after = (await http_get("analytics", f"/reports?store={store}")).json()["reports"]
    assert after["sellers"] == [] and after["summary"][:len(after["summary"])] == [
        m for m in after["summary"] if not m["metric"].startswith("seller.")]
