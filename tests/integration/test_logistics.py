"""Logistics on the real stack: packed parcels to the door or to an exception, labels whose
barcodes scan, customs holds released by product data, the stalled-parcel watchdog, lost parcels
handed to aftersales, carrier scores, and rate shopping with its trace."""

from __future__ import annotations

import asyncio
import subprocess
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import zxingcpp
from PIL import Image

from shared.settings import get_settings
from tools import storefront as sfm
from tools.storefront import Storefront

from .helpers import eventually, http_get, new_product, place, tail, url, value_of

AUTH = {"Authorization": f"Bearer {get_settings().shopkeeper_admin_token}"}


async def http_post(service: str, path: str, body: Any = None, *, auth: bool = False
                    ) -> httpx.Response:
    async with httpx.AsyncClient(timeout=30) as client:
        return await client.post(url(service, path), json=body, headers=AUTH if auth else {})


async def shipments(key: str) -> list[dict[str, Any]]:
    return (await http_get("logistics", f"/shipments/{key.replace(':', '/')}", auth=True)).json()


def scan(pdf: bytes, tmp_path: Path) -> tuple[list[tuple[str, str]], tuple[int, int]]:
    """The label as a 203 dpi thermal printer would print it (poppler), scanned (zxing-cpp)."""
    (tmp_path / "label.pdf").write_bytes(pdf)
    subprocess.run(["pdftoppm", "-r", "203", "-png", "-singlefile", str(tmp_path / "label.pdf"),
                    str(tmp_path / "label")], check=True, capture_output=True)
    image = Image.open(tmp_path / "label.png")
    return [(b.text, b.format.name) for b in zxingcpp.read_barcodes(image)], image.size


def days_ago(days: float) -> str:
    return (datetime.now(UTC) - timedelta(days=days)).isoformat().replace("+00:00", "Z")


async def shipped_parcel(sf: Storefront, country: str = "US", **product: Any
                         ) -> tuple[str, dict[str, Any]]:
    sku = await new_product(sf, stock={"WH-LA": 5}, **product)
    key, _ = await place(sf, [(sku, 1, "12.50")], country=country)
    shipped = await sf.wait_for(key, "shipped")
    return key, shipped["details"]["parcels"][0]


async def test_packed_parcel_ships_with_a_label_whose_barcode_scans_and_is_delivered(
        storefront: Storefront, tmp_path: Path) -> None:
    sf = storefront
    # Given a packed US order
    key, parcel = await shipped_parcel(sf)
    number = parcel["tracking_number"]
    assert (parcel["carrier"], parcel["service"]) == ("USPS", "USPS-GA")

    # When an operator fetches its label (personal data: the token is needed)
    path = f"/labels/{parcel['parcel_id']}.pdf"
    assert (await http_get("logistics", path)).status_code == 401
    r = await http_get("logistics", path, auth=True)
    # Then it is a PDF that another reader opens, and its barcode decodes to the number
    assert r.status_code == 200 and r.headers["content-type"] == "application/pdf"
    barcodes, size = await asyncio.to_thread(scan, r.content, tmp_path)
    assert size == (812, 1218)  # 4 x 6 inches at 203 dpi
    assert barcodes == [(number, "Code128")]
    assert (await http_get("logistics", "/labels/P-nope-1.pdf", auth=True)).status_code == 404

    # When the carrier scans it in transit (twice: a duplicate) and delivered
    in_transit = sfm.tracking("USPS", number, "in_transit")
    await sf.publish("carrier.tracking", number, in_transit)
    await sf.publish("carrier.tracking", number, in_transit)
    await sf.publish("carrier.tracking", number, sfm.tracking("USPS", number, "delivered"))
    # Then the order is delivered once, on time, and the service's history counts it
    await sf.wait_for(key, "delivered")
    rows = await shipments(key)
    assert rows[0]["status"] == "delivered" and rows[0]["on_time"] is True
    assert rows[0]["zone"] == "D" and rows[0]["transit_max"] == 3
    scores = (await http_get("logistics", "/carrier-scores")).json()
    history = next(s for s in scores if (s["service"], s["zone"], s["source"])
                   == ("USPS-GA", "D", "history"))
    assert history["delivered"] >= 1 and history["on_time"] >= 1
    metrics = (await http_get("logistics", "/metrics")).text
    assert 'shopkeeper_logistics_parcels_shipped_total{carrier="USPS",service="USPS-GA"}' \
        in metrics
    assert 'shopkeeper_logistics_shipping_cost_total{carrier="USPS",currency="USD",' \
        'service="USPS-GA"}' in metrics
    assert sf.seen(key).count("delivered") == 1


async def test_missing_hs_code_holds_a_cross_border_parcel_until_the_product_data_arrives(
        storefront: Storefront) -> None:
    sf = storefront
    # Given a product without an HS code, stocked in Los Angeles only
    sku = await new_product(sf, stock={"WH-LA": 3})
    product = sfm.product(sku)
    product["hs_code"] = None
    await sf.publish("catalog.products", sku, product)
    # When a German customer orders it (US -> DE crosses a border)
    key, _ = await place(sf, [(sku, 2, "12.50")], country="DE")
    # Then the packed order is held for customs, naming the SKU, and is not shipped
    held = await sf.wait_for(key, "on_hold")
    assert held["reasons"][0]["code"] == "customs_incomplete"
    assert f"{sku}: no valid HS code" in held["reasons"][0]["message"]
    rows = await shipments(key)
    assert rows[0]["status"] == "held" and rows[0]["tracking_number"]
    assert rows[0]["customs"]["missing"] == [f"{sku}: no valid HS code"]
    assert "shipped" not in sf.seen(key)

    # When the catalogue sends the HS code
    await sf.publish("catalog.products", sku, sfm.product(sku))
    # Then the parcel passes the dock check and ships with a complete CN22
    shipped = await sf.wait_for(key, "shipped")
    assert sf.seen(key)[-3:] == ["packed", "on_hold", "shipped"]
    rows = await shipments(key)
    assert rows[0]["status"] == "shipped" and rows[0]["hold_reasons"] == []
    customs = rows[0]["customs"]
    assert customs["form"] == "CN22" and customs["missing"] == []
    assert customs["total_value"] == "25.00"
    assert customs["lines"] == [{"sku": sku, "description": product["name"],
                                 "hs_code": "691200", "origin_country": "CN", "quantity": 2,
                                 "value": "25.00", "net_weight_g": 700}]
    assert shipped["details"]["parcels"][0]["tracking_number"] == rows[0]["tracking_number"]


async def test_failed_attempt_then_lost_are_exceptions_and_lost_asks_aftersales_to_reship(
        storefront: Storefront) -> None:
    sf = storefront
    key, parcel = await shipped_parcel(sf)
    number = parcel["tracking_number"]
    # When the carrier fails a delivery, then reports the parcel lost
    await sf.publish("carrier.tracking", number,
                     sfm.tracking("USPS", number, "failed_attempt", days_ago(0.02)))
    failed = await sf.wait_for(key, "delivery_exception")
    await sf.publish("carrier.tracking", number, sfm.tracking("USPS", number, "lost"))

    # Then each is a delivery_exception with its reason
    assert failed["details"] == {"tracking_number": number, "reason": "failed_attempt"}

    async def lost_status() -> dict[str, Any] | None:
        return next((e for e in sf.statuses[key] if e["status"] == "delivery_exception"
                     and e["details"]["reason"] == "lost"), None)
    await eventually(lost_status, what="delivery_exception lost")
    # And aftersales is asked to reship the parcel's lines
    record = await tail("logistics.parcel_lost",
                        lambda r: value_of(r)["parcel_id"] == parcel["parcel_id"])
    lost = value_of(record)
    assert record.key.decode() == key
    assert (lost["tracking_number"], lost["carrier"]) == (number, "USPS")
    assert lost["lines"][0]["quantity"] == 1 and lost["order_id"] == failed["order_id"]
    metrics = (await http_get("logistics", "/metrics")).text
    assert 'shopkeeper_logistics_exceptions_total{carrier="USPS",reason="lost"}' in metrics


async def test_watchdog_flags_a_parcel_silent_longer_than_its_service_allows_once(
        storefront: Storefront) -> None:
    sf = storefront
    # Given a USPS Ground Advantage parcel (stalled after 5 silent days) last scanned 8 days ago
    key, parcel = await shipped_parcel(sf)
    number = parcel["tracking_number"]
    await sf.publish("carrier.tracking", number,
                     sfm.tracking("USPS", number, "in_transit", days_ago(8)))

    async def scanned() -> bool:
        return (await shipments(key))[0]["status"] == "in_transit"
    await eventually(scanned, what="in_transit recorded")

    # When the watchdog runs
    assert (await http_post("logistics", "/watchdog/run")).status_code == 401
    first = (await http_post("logistics", "/watchdog/run", auth=True)).json()
    # Then the parcel is stalled: a delivery_exception with reason stalled
    assert parcel["parcel_id"] in first["flagged"]
    stalled = await sf.wait_for(key, "delivery_exception")
    assert stalled["details"] == {"tracking_number": number, "reason": "stalled"}
    assert stalled["reasons"][0]["code"] == "stalled"
    assert "no carrier scan for 8 days (limit 5 for USPS-GA)" in stalled["reasons"][0]["message"]
    # And a second pass over the same silence flags it no more
    second = (await http_post("logistics", "/watchdog/run", auth=True)).json()
    assert parcel["parcel_id"] not in second["flagged"]

    # When the carrier scans it again and it goes quiet again, it is flagged again
    await sf.publish("carrier.tracking", number,
                     sfm.tracking("USPS", number, "out_for_delivery", days_ago(6)))

    async def rescanned() -> bool:
        return (await shipments(key))[0]["status"] == "out_for_delivery"
    await eventually(rescanned, what="out_for_delivery recorded")
    third = (await http_post("logistics", "/watchdog/run", auth=True)).json()
    assert parcel["parcel_id"] in third["flagged"]


async def test_quotes_answer_with_zones_surcharges_and_why_each_service_lost() -> None:
    # Given a 1.2 kg battery parcel from Frankfurt to the Scottish Highlands, express
    body = {"warehouse": "WH-FRA", "country": "GB", "weight_g": 1_200,
            "dims_mm": [300, 200, 100], "attributes": ["battery"], "postal_code": "IV2 3AB",
            "shipping_option": "express"}
    # When it is rate-shopped
    r = await http_post("logistics", "/quotes", body)
    assert r.status_code == 200
    quote = r.json()
    trace = {e["service"]: e for e in quote["trace"]}
    # Then every service is in the trace, the chosen one names the rule
    assert quote["service"] == "UPS-WWX"
    assert trace["UPS-WWX"]["chosen"] == "fastest for express"
    assert trace["UPS-WWX"]["zone"] == "2" and trace["UPS-WWX"]["transit_days"] == [1, 3]
    # And the couriers carry the remote-area surcharge, fuel on top of the zone's card
    assert trace["UPS-WWX"]["surcharges"]["remote_area"] == "32.00"
    assert trace["DHL-EXP"]["surcharges"]["remote_area"] == "32.00"
    assert trace["DHL-EXP"]["why"] == "lost on speed to UPS-WWX"
    assert trace["DHL-PAKET"]["surcharges"]["remote_area"] == "0.00"
    # And the post that refuses batteries says so; services elsewhere say where they serve
    assert trace["DP-WPI"] == {"service": "DP-WPI", "eligible": False,
                               "why": "refuses battery goods"}
    assert trace["USPS-GA"]["why"] == "does not collect from WH-FRA"
    assert quote["cost"] == trace["UPS-WWX"]["cost"]

    # And a destination nobody serves answers with a reason and no service
    nowhere = (await http_post("logistics", "/quotes", {**body, "country": "AQ"})).json()
    assert nowhere["service"] is None
    assert nowhere["reason"] == "no carrier service accepts this parcel"


async def test_analytics_carrier_scores_feed_selection(storefront: Storefront) -> None:
    sf = storefront
    # Given analytics' score for DHL Express to Brazil (zone 5 from Frankfurt), many parcels
    rate = f"0.{uuid.uuid4().int % 400 + 100:03d}"
    await sf.publish("analytics.carrier_scores", "DHL", {
        "event_id": str(uuid.uuid4()), "occurred_at": sfm.now_iso(),
        "event_type": "analytics.carrier_scored", "carrier": "DHL", "service": "DHL-EXP",
        "country": "BR", "on_time_rate": float(rate), "samples": 1_000_000, "window_days": 30})

    # When a parcel to Brazil is quoted
    async def scored() -> dict[str, Any] | None:
        quote = (await http_post("logistics", "/quotes", {
            "warehouse": "WH-FRA", "country": "BR", "weight_g": 800,
            "dims_mm": [200, 150, 100], "shipping_option": "express"})).json()
        entry = next(e for e in quote["trace"] if e["service"] == "DHL-EXP")
        return entry if entry["on_time_score"] == rate else None
    # Then DHL Express carries analytics' score for that zone
    entry = await eventually(scored, what="analytics score used in the quote")
    assert entry["zone"] == "5"


async def test_dock_scan_outside_the_weight_tolerance_keeps_the_parcel_held(
        storefront: Storefront) -> None:
    sf = storefront
    # Given a cross-border parcel held at the dock for its missing HS code
    sku = await new_product(sf, stock={"WH-LA": 2})
    product = sfm.product(sku)
    product["hs_code"] = None
    await sf.publish("catalog.products", sku, product)
    key, _ = await place(sf, [(sku, 1, "12.50")], country="GB")
    await sf.wait_for(key, "on_hold")
    parcel = (await shipments(key))[0]
    label_g = parcel["label_weight_g"]

    # When the dock scale reads 300 g more than the label says
    r = await http_post("logistics", f"/parcels/{parcel['parcel_id']}/dock-scan",
                        {"measured_weight_g": label_g + 300}, auth=True)
    # Then the parcel stays held, for its weight as well as its papers, and the operator hears it
    assert r.status_code == 200
    body = r.json()
    assert body["status"] == "held" and body["order_shipped"] is False
    assert [h["code"] for h in body["hold_reasons"]] == ["weight_mismatch", "customs_incomplete"]

    async def weight_hold() -> dict[str, Any] | None:
        return next((e for e in sf.statuses[key] if e["status"] == "on_hold" and
                     "weight_mismatch" in [x["code"] for x in e["reasons"]]), None)
    await eventually(weight_hold, what="on_hold with weight_mismatch")
    queue = (await http_get("logistics", "/parcels/held")).json()
    mine = next(p for p in queue if p["parcel_id"] == parcel["parcel_id"])
    assert mine["order_key"] == key
    assert [h["code"] for h in mine["hold_reasons"]] == ["weight_mismatch", "customs_incomplete"]

    # When the papers are completed, the weight still stops it
    await sf.publish("catalog.products", sku, sfm.product(sku))

    async def only_weight_left() -> bool:
        return [h["code"] for h in (await shipments(key))[0]["hold_reasons"]] == [
            "weight_mismatch"]
    await eventually(only_weight_left, what="customs complete, weight still wrong")
    assert "shipped" not in sf.seen(key)

    # When it is re-weighed within tolerance (max(50 g, 5 %)), it ships
    r = await http_post("logistics", f"/parcels/{parcel['parcel_id']}/dock-scan",
                        {"measured_weight_g": label_g + 40}, auth=True)
    assert r.json()["order_shipped"] is True
    await sf.wait_for(key, "shipped")
    row = (await shipments(key))[0]
    assert (row["status"], row["measured_weight_g"]) == ("shipped", label_g + 40)
    queue = (await http_get("logistics", "/parcels/held")).json()
    assert parcel["parcel_id"] not in [p["parcel_id"] for p in queue]
    # And once handed over, the dock has no more say
    again = await http_post("logistics", f"/parcels/{parcel['parcel_id']}/dock-scan",
                            {"measured_weight_g": label_g}, auth=True)
    assert again.status_code == 409
    assert (await http_post("logistics", "/parcels/P-nope-1/dock-scan",
                            {"measured_weight_g": 100}, auth=True)).status_code == 404


async def test_parcel_exceptions_list_delivery_exceptions_lost_and_stalled_parcels(
        storefront: Storefront) -> None:
    sf = storefront
    # Given three shipped parcels: one the carrier failed to deliver, one it lost, one silent
    # for 8 days (USPS Ground Advantage allows 5), and a fourth delivered
    (k_failed, p_failed), (k_lost, p_lost), (k_silent, p_silent), (_, p_ok) = [
        await shipped_parcel(sf) for _ in range(4)]
    for parcel, status, when in ((p_failed, "failed_attempt", days_ago(0.01)),
                                 (p_lost, "lost", days_ago(0.01)),
                                 (p_silent, "in_transit", days_ago(8)),
                                 (p_ok, "delivered", days_ago(0.01))):
        number = parcel["tracking_number"]
        await sf.publish("carrier.tracking", number,
                         sfm.tracking("USPS", number, status, when))
    await sf.wait_for(k_failed, "delivery_exception")
    await sf.wait_for(k_lost, "delivery_exception")

    async def silent_scanned() -> bool:
        return (await shipments(k_silent))[0]["status"] == "in_transit"
    await eventually(silent_scanned, what="in_transit recorded")
    await http_post("logistics", "/watchdog/run", auth=True)

    # When an operator asks for the parcels that need a person
    assert (await http_get("logistics", "/parcels/exceptions")).status_code == 401
    listed = (await http_get("logistics", "/parcels/exceptions", auth=True)).json()
    by_parcel = {p["parcel_id"]: p for p in listed}
    # Then each is there with its kind, the carrier's last word and the order it belongs to
    failed = by_parcel[p_failed["parcel_id"]]
    assert (failed["kind"], failed["status"], failed["order_key"]) == (
        "exception", "failed_attempt", k_failed)
    assert failed["description"] == "failed attempt"
    assert failed["tracking_number"] == p_failed["tracking_number"]
    assert (by_parcel[p_lost["parcel_id"]]["kind"], by_parcel[p_lost["parcel_id"]]["order_key"]
            ) == ("lost", k_lost)
    stalled = by_parcel[p_silent["parcel_id"]]
    assert (stalled["kind"], stalled["status"]) == ("stalled", "in_transit")
    assert stalled["stalled_for"] == stalled["last_event_at"]
    # And a delivered parcel is not
    assert p_ok["parcel_id"] not in by_parcel
    # And `kind` narrows the list
    only_lost = (await http_get("logistics", "/parcels/exceptions?kind=lost", auth=True)).json()
    assert {p["kind"] for p in only_lost} == {"lost"}
    assert p_lost["parcel_id"] in {p["parcel_id"] for p in only_lost}
    assert (await http_get("logistics", "/parcels/exceptions?kind=late",
                           auth=True)).status_code == 422

    # When the silent parcel is scanned again, it is no longer stalled
    number = p_silent["tracking_number"]
    await sf.publish("carrier.tracking", number,
                     sfm.tracking("USPS", number, "out_for_delivery", days_ago(0.01)))

    async def rescanned() -> bool:
        return (await shipments(k_silent))[0]["status"] == "out_for_delivery"
    await eventually(rescanned, what="out_for_delivery recorded")
    stalled_now = (await http_get("logistics", "/parcels/exceptions?kind=stalled",
                                  auth=True)).json()
    assert p_silent["parcel_id"] not in {p["parcel_id"] for p in stalled_now}
