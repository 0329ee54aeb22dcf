"""QC short picks re-allocated by inventory, on the real stack with the warehouse in manual mode
(staff report the short pick over fulfillment's HTTP). The module restarts fulfillment with
SHOPKEEPER_WAREHOUSE_MODE=manual and waves of one order, and restores automatic mode at the end.

The orders go to Germany from WH-FRA first; no other test's order uses WH-FRA or WH-SZ while
this module runs."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

from tests.conftest import ref
from tools import storefront as sfm
from tools.storefront import Storefront

from .helpers import admin_client, eventually, http_get, new_product, restarted_with, stock_of
from .test_inventory_flows import admin, order_in, trace_of

MANUAL_ENV = {"SHOPKEEPER_WAREHOUSE_MODE": "manual", "SHOPKEEPER_FULFILLMENT_WAVE_SIZE": "1",
              "SHOPKEEPER_FULFILLMENT_WAVE_SECONDS": "3600"}


@pytest.fixture(scope="module")
def manual_warehouse(stack: None) -> Iterator[None]:
    with restarted_with("fulfillment", MANUAL_ENV):
        yield


@pytest.fixture
async def staff(manual_warehouse: None) -> AsyncIterator[httpx.AsyncClient]:
    async with admin_client("fulfillment") as client:
        yield client


async def _picking(order_id: str, warehouse: str) -> dict[str, Any]:
    """The order's pick in `warehouse`, once released in a wave and being picked."""
    async def pick() -> dict[str, Any] | None:
        r = await http_get("fulfillment", f"/orders/{order_id}")
        if r.status_code != 200:
            return None
        return next((p for p in r.json()["picks"] if p["warehouse"] == warehouse
                     and p["wave_id"] and p["status"] == "picking"), None)
    found: dict[str, Any] = await eventually(pick, timeout=60,
                                             what=f"{order_id} picking in {warehouse}")
    return found


async def _pick_and_pack(staff: httpx.AsyncClient, order_id: str, warehouse: str, sku: str,
                         weight_g: int) -> None:
    scan = await staff.post(f"/orders/{order_id}/scan", json={"code": sku,
                                                              "warehouse": warehouse})
    assert scan.status_code == 200 and scan.json()["verified"], scan.text
    weigh = await staff.post(f"/orders/{order_id}/weigh", json={"weight_g": weight_g,
                                                                "warehouse": warehouse})
    assert weigh.status_code == 200 and weigh.json()["ok"], weigh.text
    pack = await staff.post(f"/orders/{order_id}/pack", json={"warehouse": warehouse})
    assert pack.status_code == 200, pack.text


async def _ledger(sku: str, warehouse: str) -> list[tuple[str, int, int]]:
    rows = (await http_get("inventory", f"/ledger/{sku}?warehouse={warehouse}")).json()["rows"]
    return [(r["kind"], r["on_hand_delta"], r["reserved_delta"]) for r in rows]


async def test_a_short_pick_is_written_off_and_reserved_in_another_warehouse_which_ships_it(
        storefront: Storefront, staff: httpx.AsyncClient) -> None:
    sf = storefront
    # Given one unit in Frankfurt (the German customer's region) and three in Shenzhen
    sku = await new_product(sf, stock={"WH-FRA": 1, "WH-SZ": 3}, weight_g=350)
    key, _ = await order_in(sf, ref("short"), [(sku, 1, "12.50")], country="DE")
    reserved = await sf.wait_for(key, "reserved")
    order_id = reserved["order_id"]
    assert reserved["details"]["allocations"][0]["warehouse"] == "WH-FRA"
    await _picking(order_id, "WH-FRA")

    # When the picker finds the Frankfurt bin empty
    r = await staff.post(f"/orders/{order_id}/short", json={"sku": sku, "missing": 1})
    assert r.status_code == 200, r.text

    # Then inventory writes the unit off in Frankfurt and reserves it in Shenzhen
    async def moved() -> bool:
        s = await stock_of(sku)
        return (s["WH-FRA"]["on_hand"], s["WH-FRA"]["reserved"], s["WH-SZ"]["reserved"]) == (
            0, 0, 1)
    await eventually(moved, what="unit written off in WH-FRA and reserved in WH-SZ")
    assert await _ledger(sku, "WH-FRA") == [("receipt", 1, 0), ("reserve", 0, 1),
                                            ("shortage", -1, -1)]
    # And fulfillment picks it in Shenzhen, where staff pack it, and it ships from there
    await _picking(order_id, "WH-SZ")
    await _pick_and_pack(staff, order_id, "WH-SZ", sku, 350 + 120)
    packed = await sf.wait_for(key, "packed", timeout=60)
    assert [p["warehouse"] for p in packed["details"]["parcels"]] == ["WH-SZ"]
    await sf.wait_for(key, "shipped", timeout=60)

    async def committed() -> bool:
        return (await stock_of(sku))["WH-SZ"] == {"warehouse": "WH-SZ", "on_hand": 2,
                                                  "reserved": 0, "available": 2,
                                                  "refurbished": 0}
    await eventually(committed, what="Shenzhen's unit committed on dispatch")
    # The customer saw one reservation (the change of warehouse is inventory's business)
    assert sf.seen(key).count("reserved") == 1 and "backordered" not in sf.seen(key)
    assert (await http_get("inventory", f"/reconcile?sku={sku}")).json()["balanced"] is True
    trace = (await trace_of(order_id))["trace"]
    assert any(t.startswith("short pick: 1 x") for t in trace)


async def test_without_split_shipments_a_short_pick_waits_backordered_until_a_restock(
        storefront: Storefront, staff: httpx.AsyncClient) -> None:
    sf = storefront
    # Given a store that does not split shipments, one unit in Frankfurt and five in Shenzhen
    store = ref("nosplit")
    await admin("PUT", f"/policies/{store}", json={"split_allowed": False})
    sku = await new_product(sf, stock={"WH-FRA": 1, "WH-SZ": 5}, weight_g=350)
    key, _ = await order_in(sf, store, [(sku, 1, "12.50")], country="DE")
    order_id = (await sf.wait_for(key, "reserved"))["order_id"]
    await _picking(order_id, "WH-FRA")

    # When the Frankfurt bin is found empty
    r = await staff.post(f"/orders/{order_id}/short", json={"sku": sku, "missing": 1})
    assert r.status_code == 200, r.text

    # Then the customer hears backordered with the missing unit; Shenzhen's stock is not taken
    back = await sf.wait_for(key, "backordered")
    assert back["reasons"][0]["code"] == "short_picked"
    assert back["details"]["short_lines"] == [{"sku": sku, "quantity": 1}]
    assert (await stock_of(sku))["WH-SZ"]["reserved"] == 0
    assert (await stock_of(sku))["WH-FRA"]["on_hand"] == 0
    queue = (await http_get("inventory", f"/backorders?sku={sku}")).json()
    assert queue == []  # not a new order waiting: it is held in fulfillment, reallocating
    alloc = (await trace_of(order_id))
    assert alloc["status"] == "reallocating"
    assert (await http_get("fulfillment", f"/orders/{order_id}")).json()["status"] == (
        "short_picked")

    # When Frankfurt receives stock, the order is reserved again there and ships
    await sf.publish("stock.adjustments", sku, sfm.stock(sku, "WH-FRA", 2))
    again = [s for s in await _statuses_after(sf, key, "backordered", "reserved")]
    assert again[0]["details"]["allocations"] == [
        {"warehouse": "WH-FRA", "lines": [{"sku": sku, "quantity": 1}]}]
    await _picking(order_id, "WH-FRA")
    await _pick_and_pack(staff, order_id, "WH-FRA", sku, 350 + 120)
    await sf.wait_for(key, "shipped", timeout=60)
    assert sf.seen(key)[-4:] == ["backordered", "reserved", "packed", "shipped"]

    async def committed() -> bool:
        s = await stock_of(sku)
        return (s["WH-FRA"]["on_hand"], s["WH-FRA"]["reserved"]) == (1, 0)
    await eventually(committed, what="Frankfurt's unit committed on dispatch")
    assert (await http_get("inventory", f"/reconcile?sku={sku}")).json()["balanced"] is True


async def test_a_short_picked_order_waiting_for_stock_can_be_cancelled_and_releases_the_rest(
        storefront: Storefront, staff: httpx.AsyncClient) -> None:
    sf = storefront
    # Given an order of 3 with 3 units in Frankfurt only, short-picked by 1
    sku = await new_product(sf, stock={"WH-FRA": 3}, weight_g=350)
    key, _ = await order_in(sf, ref("shortc"), [(sku, 3, "12.50")], country="DE",
                            shipping_fee="4.99")
    order_id = (await sf.wait_for(key, "reserved"))["order_id"]
    await _picking(order_id, "WH-FRA")
    assert (await staff.post(f"/orders/{order_id}/short",
                             json={"sku": sku, "missing": 1})).status_code == 200
    await sf.wait_for(key, "backordered")
    assert (await stock_of(sku))["WH-FRA"] == {"warehouse": "WH-FRA", "on_hand": 2,
                                               "reserved": 2, "available": 0, "refurbished": 0}
    # When the customer declines to wait
    store, ext = key.split(":")
    await sf.publish("orders.backorder_decisions", key, sfm.order_event(
        store, ext, decision="cancel", substitutions={}))
    # Then fulfillment confirms the cancellation and the two units held are released
    cancelled = await sf.wait_for(key, "cancelled", timeout=60)
    assert cancelled["details"] == {"refund_due": "42.49"}

    async def released() -> bool:
        return (await stock_of(sku))["WH-FRA"]["reserved"] == 0
    await eventually(released, what="the rest of the reservation released")
    assert await _ledger(sku, "WH-FRA") == [("receipt", 3, 0), ("reserve", 0, 3),
                                            ("shortage", -1, -1), ("release", 0, -2)]


async def _statuses_after(sf: Storefront, key: str, after: str, status: str
                          ) -> list[dict[str, Any]]:
    """The `status` events that came after the first `after` event."""
    async def found() -> list[dict[str, Any]] | None:
        seen = sf.statuses.get(key, [])
        names = [s["status"] for s in seen]
        if after not in names:
            return None
        later = [s for s in seen[names.index(after):] if s["status"] == status]
        return later or None
    result: list[dict[str, Any]] = await eventually(found, timeout=60,
                                                    what=f"{status} after {after}")
    return result


async def test_a_store_that_ships_what_is_there_ships_the_rest_of_a_short_picked_order(
        storefront: Storefront, staff: httpx.AsyncClient) -> None:
    sf = storefront
    # Given a store that ships what is there, and an order of two SKUs from Frankfurt
    store = ref("partial")
    await admin("PUT", f"/policies/{store}", json={"partial": "ship_available"})
    a = await new_product(sf, stock={"WH-FRA": 1}, weight_g=350)
    b = await new_product(sf, stock={"WH-FRA": 1}, weight_g=350)
    key, _ = await order_in(sf, store, [(a, 1, "12.50"), (b, 1, "7.00")], country="DE")
    order_id = (await sf.wait_for(key, "reserved"))["order_id"]
    await _picking(order_id, "WH-FRA")

    # When B's bin is found empty (and no other warehouse has B)
    assert (await staff.post(f"/orders/{order_id}/short",
                             json={"sku": b, "missing": 1})).status_code == 200

    # Then the customer hears B is backordered as a continuation order, and A is reserved
    rest_key = f"{key}-B1"
    back = await sf.wait_for(key, "backordered")
    assert back["reasons"][0]["code"] == "partially_backordered"
    assert back["details"]["continuation"]["external_order_id"] == rest_key.split(":", 1)[1]
    again = await _statuses_after(sf, key, "backordered", "reserved")
    assert again[0]["details"]["allocations"] == [
        {"warehouse": "WH-FRA", "lines": [{"sku": a, "quantity": 1}]}]
    # And A is picked again alone, packed and shipped under the original order
    await _picking(order_id, "WH-FRA")
    await _pick_and_pack(staff, order_id, "WH-FRA", a, 350 + 120)
    await sf.wait_for(key, "shipped", timeout=60)
    # And the continuation waits for B; a restock reserves it and it ships on its own
    waiting = await sf.wait_for(rest_key, "backordered")
    assert waiting["details"]["short_lines"] == [{"sku": b, "quantity": 1}]
    await sf.publish("stock.adjustments", b, sfm.stock(b, "WH-FRA", 2))
    rest_id = (await sf.wait_for(rest_key, "reserved"))["order_id"]
    await _picking(rest_id, "WH-FRA")
    await _pick_and_pack(staff, rest_id, "WH-FRA", b, 350 + 120)
    await sf.wait_for(rest_key, "shipped", timeout=60)
    assert await _ledger(b, "WH-FRA") == [
        ("receipt", 1, 0), ("reserve", 0, 1), ("shortage", -1, -1), ("receipt", 2, 0),
        ("reserve", 0, 1), ("commit", -1, -1)]
    for sku in (a, b):
        assert (await http_get("inventory", f"/reconcile?sku={sku}")).json()["balanced"] is True
