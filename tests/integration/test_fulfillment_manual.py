"""Fulfillment in manual mode over HTTP, on the real stack: warehouse staff scan, weigh, pack and
put parcels on QC hold. The module restarts fulfillment with SHOPKEEPER_WAREHOUSE_MODE=manual and
waves of exactly two orders (no timer), and restores automatic mode at the end.

The orders ship from WH-FRA (stock only there) to Germany, so no other test's order, all of which
use WH-LA, can join these waves."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

from services.fulfillment.domain import Bin, route_key
from tests.conftest import ref
from tools import storefront as sfm
from tools.storefront import Storefront, order_event

from .helpers import (
    STORE,
    admin_client,
    eventually,
    http_get,
    new_product,
    place,
    restarted_with,
    stock_of,
    tail,
    url,
    value_of,
)

MANUAL_ENV = {"SHOPKEEPER_WAREHOUSE_MODE": "manual", "SHOPKEEPER_FULFILLMENT_WAVE_SIZE": "2",
              "SHOPKEEPER_FULFILLMENT_WAVE_SECONDS": "3600"}


@pytest.fixture(scope="module")
def manual_warehouse(stack: None) -> Iterator[None]:
    with restarted_with("fulfillment", MANUAL_ENV):
        yield


@pytest.fixture
async def staff(manual_warehouse: None) -> AsyncIterator[httpx.AsyncClient]:
    async with admin_client("fulfillment") as client:
        yield client


async def _reserved(sf: Storefront, key: str) -> str:
    return str((await sf.wait_for(key, "reserved", timeout=60))["order_id"])


async def _in_wave(order_id: str) -> dict[str, Any]:
    async def pick() -> dict[str, Any] | None:
        r = await http_get("fulfillment", f"/orders/{order_id}")
        if r.status_code != 200:
            return None
        picks = r.json()["picks"]
        return picks[0] if picks and picks[0]["wave_id"] else None
    result: dict[str, Any] = await eventually(pick, timeout=60, what=f"{order_id} in a wave")
    return result


async def _scan(staff: httpx.AsyncClient, order_id: str, code: str) -> dict[str, Any]:
    r = await staff.post(f"/orders/{order_id}/scan", json={"code": code})
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


async def test_staff_pick_scan_weigh_and_pack_a_wave_by_hand(
        storefront: Storefront, staff: httpx.AsyncClient) -> None:
    sf = storefront
    # Given two products stocked only in Frankfurt, and two orders from different buyers
    mug = await new_product(sf, stock={"WH-FRA": 10}, weight_g=350)
    lamp = await new_product(sf, stock={"WH-FRA": 10}, weight_g=900, dims=(200, 150, 120))
    # (the first with the customer's words for the bench: a note, a gift message, gift wrap)
    key1, _ = await place(sf, [(mug, 2, "12.50"), (lamp, 1, "30.00")], country="DE",
                          customer_id=ref("c"), note="No invoice in the box, please",
                          gift_message="Alles Gute, Oma! <3", gift_wrap=True)
    key2, _ = await place(sf, [(mug, 1, "12.50")], country="DE", customer_id=ref("c"))
    o1, o2 = await _reserved(sf, key1), await _reserved(sf, key2)

    # When the wave of two is released
    p1, p2 = await _in_wave(o1), await _in_wave(o2)
    assert p1["wave_id"] == p2["wave_id"] and p1["group_id"] != p2["group_id"]
    wave = (await http_get("fulfillment", f"/waves/{p1['wave_id']}")).json()
    # Then its pick list has one line per SKU with the total, split to the orders, in route order
    lines = {ln["sku"]: ln for ln in wave["pick_list"]}
    assert lines[mug]["quantity"] == 3 and lines[lamp]["quantity"] == 1
    assert sorted((o["order_key"], o["quantity"]) for o in lines[mug]["orders"]) == sorted(
        [(key1, 2), (key2, 1)])
    bins = [Bin(b[0], int(b[1]), int(b[2]), int(b[3]))
            for b in (ln["bin"].split("-") for ln in wave["pick_list"])]
    assert bins == sorted(bins, key=route_key)
    # And it prints, flagging the order to gift wrap and whose words are on its slip (the words
    # themselves are personal data: the pick list is public, the slip is not)
    page = await http_get("fulfillment", f"/waves/{p1['wave_id']}/picklist.html")
    assert page.status_code == 200 and mug in page.text and key1 in page.text
    flags = {o["order_key"]: (o["gift_wrap"], o["has_note"]) for o in wave["orders"]}
    assert flags == {key1: (True, True), key2: (False, False)}
    assert (f"<li>{key1}: gift wrap, the customer's words are on the packing slip</li>"
            in page.text) and key2 not in page.text.split("Handle with care")[1]
    assert "No invoice" not in page.text and "Oma" not in page.text

    # When staff scan the lamp for the order that has none: refused as the wrong item
    wrong = await _scan(staff, o2, lamp)
    assert (wrong["accepted"], wrong["reason"]) == (False, "wrong_item")
    # And the mug once: accepted, the order verified; once more: refused as an over-scan
    ok = await _scan(staff, o2, mug)
    assert ok["accepted"] and ok["verified"] and ok["remaining"] == {}
    over = await _scan(staff, o2, mug)
    assert (over["accepted"], over["reason"]) == (False, "over_scan")

    # When order 1 is weighed before every unit is scanned: refused, out of turn
    assert (await staff.post(f"/orders/{o1}/weigh", json={"weight_g": 1000})).status_code == 409

    # When order 2's parcel weighs far off what it should
    bad = (await staff.post(f"/orders/{o2}/weigh", json={"weight_g": 100})).json()
    # Then the weigh check fails: the order is on QC hold with reason qc_weight, and no label
    assert bad["ok"] is False and bad["expected_g"] == 350 + 120  # mug + BOX-S tare
    held = await sf.wait_for(key2, "on_hold", timeout=30)
    assert held["reasons"][0]["code"] == "qc_weight"
    assert (await staff.post(f"/orders/{o2}/pack")).status_code == 409
    # When it is weighed again inside the tolerance, it packs and ships
    good = (await staff.post(f"/orders/{o2}/weigh",
                             json={"weight_g": bad["expected_g"] + 15})).json()
    assert good["ok"] is True
    packed2 = await staff.post(f"/orders/{o2}/pack")
    assert packed2.status_code == 200, packed2.text
    await sf.wait_for(key2, "shipped", timeout=60)

    # When order 1 is scanned (one by GTIN-less SKU each unit), weighed and packed
    for code in (mug, lamp, mug):
        assert (await _scan(staff, o1, code))["accepted"]
    w1 = (await staff.post(f"/orders/{o1}/weigh", json={"weight_g": 0})).json()
    assert w1["ok"] is False
    assert (await staff.post(f"/orders/{o1}/weigh",
                             json={"weight_g": w1["expected_g"]})).json()["ok"] is True
    parcels = (await staff.post(f"/orders/{o1}/pack")).json()["parcels"]
    # Then it is packed and shipped, and its packing slip lists it (for staff only)
    packed = await sf.wait_for(key1, "packed", timeout=30)
    assert [p["parcel_id"] for p in packed["details"]["parcels"]] == parcels
    await sf.wait_for(key1, "shipped", timeout=60)
    slip = await staff.get(f"/parcels/{parcels[0]}/slip.html")
    assert slip.status_code == 200 and key1 in slip.text and lamp in slip.text
    # And the slip carries the customer's words to the bench, escaped
    assert "Gift wrap this order." in slip.text
    assert "<strong>Note from the customer:</strong> No invoice in the box, please" in slip.text
    assert "<blockquote>Alles Gute, Oma! &lt;3</blockquote>" in slip.text
    async with httpx.AsyncClient() as anon:
        assert (await anon.get(url("fulfillment", f"/parcels/{parcels[0]}/slip.html"))
                ).status_code == 401
    # And the wave is done
    assert (await http_get("fulfillment", f"/waves/{p1['wave_id']}")).json()["status"] == "done"


async def test_a_buyers_two_orders_in_one_wave_are_packed_as_one_parcel_and_both_ship(
        storefront: Storefront, staff: httpx.AsyncClient) -> None:
    sf = storefront
    # Given two orders of one buyer to one address, same shipping option, from one warehouse
    sku = await new_product(sf, stock={"WH-FRA": 5}, weight_g=300)
    buyer = ref("buyer")
    key1, _ = await place(sf, [(sku, 1, "12.50")], country="DE", customer_id=buyer)
    key2, _ = await place(sf, [(sku, 2, "12.50")], country="DE", customer_id=buyer)
    o1, o2 = await _reserved(sf, key1), await _reserved(sf, key2)
    # When their wave is released
    p1, p2 = await _in_wave(o1), await _in_wave(o2)
    # Then they are to be packed together
    assert p1["wave_id"] == p2["wave_id"] and p1["group_id"] == p2["group_id"]
    page = await http_get("fulfillment", f"/waves/{p1['wave_id']}/picklist.html")
    assert "Pack together" in page.text
    # When each order's units are scanned, and the parcel weighed (once) and packed (once)
    for order_id, units in ((o1, 1), (o2, 2)):
        for _ in range(units):
            assert (await _scan(staff, order_id, sku))["accepted"]
    weighed = (await staff.post(f"/orders/{o2}/weigh", json={"weight_g": 3 * 300 + 120})).json()
    assert weighed["ok"] is True and sorted(weighed["orders"]) == sorted([o1, o2])
    parcels = (await staff.post(f"/orders/{o1}/pack")).json()["parcels"]
    assert len(parcels) == 1
    # Then both orders are packed in that one parcel, each with its own lines
    for key in (key1, key2):
        packed = await sf.wait_for(key, "packed", timeout=30)
        assert [p["parcel_id"] for p in packed["details"]["parcels"]] == parcels
    order2 = (await http_get("fulfillment", f"/orders/{o2}")).json()
    assert order2["parcels"][0]["lines"] == [{"sku": sku, "quantity": 2}]
    # And both ship, under one tracking number
    s1 = await sf.wait_for(key1, "shipped", timeout=60)
    s2 = await sf.wait_for(key2, "shipped", timeout=60)
    t1 = [p["tracking_number"] for p in s1["details"]["parcels"]]
    t2 = [p["tracking_number"] for p in s2["details"]["parcels"]]
    assert t1 == t2 and len(t1) == 1
    # And inventory committed each order's own units, no more
    async def committed() -> bool:
        return (await stock_of(sku))["WH-FRA"]["on_hand"] == 2
    await eventually(committed, what="3 units committed")
    assert (await stock_of(sku))["WH-FRA"]["reserved"] == 0
    # And one delivery scan of the shared parcel delivers both orders
    carrier = s1["details"]["parcels"][0]["carrier"]
    await sf.publish("carrier.tracking", t1[0], sfm.tracking(carrier, t1[0], "delivered"))
    await sf.wait_for(key1, "delivered", timeout=60)
    await sf.wait_for(key2, "delivered", timeout=60)


async def test_a_cancelled_order_leaves_its_wave_and_its_goods_go_back(
        storefront: Storefront, staff: httpx.AsyncClient) -> None:
    sf = storefront
    # Given two orders in a wave, being picked
    sku = await new_product(sf, stock={"WH-FRA": 4})
    key1, _ = await place(sf, [(sku, 1, "12.50")], country="DE", customer_id=ref("c"))
    key2, _ = await place(sf, [(sku, 1, "12.50")], country="DE", customer_id=ref("c"))
    o1, o2 = await _reserved(sf, key1), await _reserved(sf, key2)
    p1 = await _in_wave(o1)
    await _in_wave(o2)
    # When the customer cancels order 1 before it is packed
    ext1 = key1.split(":", 1)[1]
    await sf.publish("orders.cancel_requested", key1,
                     order_event(STORE, ext1, reason="changed my mind"))
    await sf.wait_for(key1, "cancelled", timeout=60)
    # Then its pick is stopped: there is nothing left to scan for it
    assert (await staff.post(f"/orders/{o1}/scan", json={"code": sku})).status_code == 404
    # And the goods are back in stock
    async def released() -> bool:
        return (await stock_of(sku))["WH-FRA"]["reserved"] == 1
    await eventually(released, what="order 1's unit released")
    # And the other order still goes through
    assert (await _scan(staff, o2, sku))["verified"]
    w = (await staff.post(f"/orders/{o2}/weigh", json={"weight_g": 350 + 120})).json()
    assert w["ok"], w
    assert (await staff.post(f"/orders/{o2}/pack")).status_code == 200
    await sf.wait_for(key2, "shipped", timeout=60)
    assert (await http_get("fulfillment", f"/waves/{p1['wave_id']}")).json()["status"] == "done"


async def test_a_short_pick_asks_inventory_to_reallocate_and_the_order_waits(
        storefront: Storefront, staff: httpx.AsyncClient) -> None:
    sf = storefront
    # Given two orders of one buyer in one wave, to be packed together
    sku = await new_product(sf, stock={"WH-FRA": 6})
    buyer = ref("buyer")
    key1, _ = await place(sf, [(sku, 2, "12.50")], country="DE", customer_id=buyer)
    key2, _ = await place(sf, [(sku, 1, "12.50")], country="DE", customer_id=buyer)
    o1, o2 = await _reserved(sf, key1), await _reserved(sf, key2)
    p1, p2 = await _in_wave(o1), await _in_wave(o2)
    assert p1["group_id"] == p2["group_id"]
    # When the picker finds the bin one unit short for order 1
    r = await staff.post(f"/orders/{o1}/short", json={"sku": sku, "missing": 1})
    assert r.status_code == 200, r.text
    # Then inventory is asked to re-allocate it
    record = await tail("fulfillment.short_picked", lambda rec: rec.key == key1.encode())
    assert {k: value_of(record)[k] for k in ("order_id", "sku", "warehouse", "missing")} == {
        "order_id": o1, "sku": sku, "warehouse": "WH-FRA", "missing": 1}
    # And order 1 waits, while order 2 is packed on its own and ships
    assert (await http_get("fulfillment", f"/orders/{o1}")).json()["status"] == "short_picked"
    assert (await _scan(staff, o2, sku))["verified"]
    w = (await staff.post(f"/orders/{o2}/weigh", json={"weight_g": 350 + 120})).json()
    assert w["ok"] and w["orders"] == [o2]
    assert (await staff.post(f"/orders/{o2}/pack")).status_code == 200
    await sf.wait_for(key2, "shipped", timeout=60)
    # And a waiting short-picked order can still be cancelled
    await sf.publish("orders.cancel_requested", key1,
                     order_event(STORE, key1.split(":", 1)[1], reason=None))
    await sf.wait_for(key1, "cancelled", timeout=60)


async def test_a_qc_fail_while_picking_holds_the_order_until_scanned_and_weighed(
        storefront: Storefront, staff: httpx.AsyncClient) -> None:
    sf = storefront
    # Given two orders in a wave, order 1 not yet scanned
    sku = await new_product(sf, stock={"WH-FRA": 4}, weight_g=350)
    key1, _ = await place(sf, [(sku, 1, "12.50")], country="DE", customer_id=ref("c"))
    key2, _ = await place(sf, [(sku, 1, "12.50")], country="DE", customer_id=ref("c"))
    o1, o2 = await _reserved(sf, key1), await _reserved(sf, key2)
    await _in_wave(o1)
    await _in_wave(o2)
    # When staff fail order 1's QC (a damaged unit)
    r = await staff.post(f"/orders/{o1}/qc-fail", json={"code": "qc_damaged",
                                                         "message": "dented"})
    assert r.status_code == 200, r.text
    # Then it is on hold with that reason
    held = await sf.wait_for(key1, "on_hold", timeout=30)
    assert held["reasons"][0]["code"] == "qc_damaged"
    # And it cannot be weighed before its units are scanned
    assert (await staff.post(f"/orders/{o1}/weigh", json={"weight_g": 470})).status_code == 409
    # When a good unit is scanned and the parcel weighed right, it packs and ships
    assert (await _scan(staff, o1, sku))["accepted"]
    assert (await staff.post(f"/orders/{o1}/weigh", json={"weight_g": 470})).json()["ok"]
    assert (await staff.post(f"/orders/{o1}/pack")).status_code == 200
    await sf.wait_for(key1, "shipped", timeout=60)
    # And order 2 goes its own way
    assert (await _scan(staff, o2, sku))["verified"]
    assert (await staff.post(f"/orders/{o2}/weigh", json={"weight_g": 470})).json()["ok"]
    assert (await staff.post(f"/orders/{o2}/pack")).status_code == 200
    await sf.wait_for(key2, "shipped", timeout=60)
