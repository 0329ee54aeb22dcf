"""Inventory on the real stack: returns graded refurbish (their own stock state) or scrap
(written off), and a store's "ship what is there, backorder the rest" policy with its linked
continuation order, each followed through `orders.status` to `shipped`."""

from __future__ import annotations

from typing import Any

from tests.conftest import ref
from tools import storefront as sfm
from tools.storefront import Storefront

from .helpers import eventually, http_get, new_product, stock_of
from .test_aftersales import delivered_order, http_post, request
from .test_cli import shopkeeper
from .test_inventory_flows import admin, order_in, trace_of


async def _ledger(sku: str) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = (await http_get("inventory", f"/ledger/{sku}")).json()["rows"]
    return rows


async def test_a_return_graded_refurbish_enters_its_own_stock_not_sellable_as_new(
        storefront: Storefront) -> None:
    sf = storefront
    # Given a delivered order whose unit comes back damaged from a changed-mind return
    sku = await new_product(sf, stock={"WH-LA": 2}, price="30.00")
    key, _ = await delivered_order(sf, sku, "30.00")
    rid = await request(sf, key, "return", "changed_mind", {sku: 1})
    await sf.wait_for(key, "return_authorized")
    store, ext = key.split(":")
    await sf.publish("returns.received", key, sfm.order_event(
        store, ext, request_id=rid, lines=[{"sku": sku, "quantity": 1, "condition": "damaged"}]))
    await sf.wait_for(key, "return_received")

    async def inspected() -> bool:
        r = await http_get("aftersales", f"/requests/{store}/{ext}/{rid}", auth=True)
        return bool(r.json()["status"] == "inspection")
    await eventually(inspected, what="request in inspection")
    # When an operator grades it refurbish
    r = await http_post("aftersales", f"/requests/{store}/{ext}/{rid}/grade",
                        {"grade": "refurbish", "note": "works", "operator": "mei"})
    assert r.status_code == 200, r.text

    # Then WH-LA holds one refurbished unit, and on_hand/available (new goods) do not move
    async def refurbished() -> dict[str, int] | None:
        row = (await stock_of(sku))["WH-LA"]
        return row if row["refurbished"] == 1 else None
    row = await eventually(refurbished, what="refurbished unit in stock")
    assert row == {"warehouse": "WH-LA", "on_hand": 1, "reserved": 0, "available": 1,
                   "refurbished": 1}
    # And the ledger explains it, reconciliation agrees
    rows = await _ledger(sku)
    assert [(r["kind"], r["on_hand_delta"], r["refurbished_delta"]) for r in rows][-1] == (
        "return_refurbish", 0, 1)
    assert (await http_get("inventory", f"/reconcile?sku={sku}")).json()["balanced"] is True
    # And the operator sees it in the CLI
    code, out = await shopkeeper("stock", "show", sku)
    assert code == 0 and "refurbished" in out

    # And an order for 2 units cannot take the refurbished one: it is backordered
    key2, _ = await order_in(sf, ref("refurb"), [(sku, 2, "30.00")], country="US")
    back = await sf.wait_for(key2, "backordered")
    assert back["details"]["short_lines"] == [{"sku": sku, "quantity": 1}]


async def test_a_return_graded_scrap_is_written_off_in_the_ledger_and_never_restocked(
        storefront: Storefront) -> None:
    sf = storefront
    # Given a delivered 80.00 item the customer returns as damaged (seller's fault)
    sku = await new_product(sf, stock={"WH-LA": 3}, price="80.00")
    key, _ = await delivered_order(sf, sku, "80.00")
    rid = await request(sf, key, "return", "damaged", {sku: 1})
    await sf.wait_for(key, "return_authorized")
    store, ext = key.split(":")
    # When it comes back damaged: aftersales grades it scrap without an operator
    await sf.publish("returns.received", key, sfm.order_event(
        store, ext, request_id=rid, lines=[{"sku": sku, "quantity": 1, "condition": "damaged"}]))
    await sf.wait_for(key, "refunded")

    # Then the ledger records the write-off of one unit, with no balance moving
    async def scrapped() -> dict[str, Any] | None:
        return next((r for r in await _ledger(sku) if r["kind"] == "scrap"), None)
    row = await eventually(scrapped, what="scrap row in the ledger")
    assert (row["on_hand_delta"], row["reserved_delta"], row["refurbished_delta"],
            row["units"]) == (0, 0, 0, 1)
    assert rid in row["reference"] and row["order_id"] is not None
    assert (await stock_of(sku))["WH-LA"] == {"warehouse": "WH-LA", "on_hand": 2, "reserved": 0,
                                              "available": 2, "refurbished": 0}
    assert (await http_get("inventory", f"/reconcile?sku={sku}")).json()["balanced"] is True


async def test_ship_available_ships_what_is_there_and_the_rest_follows_as_a_linked_order(
        storefront: Storefront) -> None:
    sf = storefront
    # Given a store that ships what is there, and 1 of 3 units of A in stock, 1 of 1 of B
    store = ref("partial")
    put = await admin("PUT", f"/policies/{store}", json={"partial": "ship_available"})
    assert put.json()["partial"] == "ship_available"
    a = await new_product(sf, stock={"WH-LA": 1})
    b = await new_product(sf, stock={"WH-LA": 1})
    key, _ = await order_in(sf, store, [(a, 3, "12.50"), (b, 1, "5.00")], country="US")
    ext = key.split(":", 1)[1]
    rest_key = f"{store}:{ext}-B1"

    # When the order is accepted: the customer hears the short part, then the reservation
    back = await sf.wait_for(key, "backordered")
    assert back["reasons"][0]["code"] == "partially_backordered"
    assert back["details"]["short_lines"] == [{"sku": a, "quantity": 2}]
    assert back["details"]["continuation"]["external_order_id"] == f"{ext}-B1"
    reserved = await sf.wait_for(key, "reserved")
    assert reserved["details"]["allocations"] == [{"warehouse": "WH-LA", "lines": sorted(
        [{"sku": a, "quantity": 1}, {"sku": b, "quantity": 1}], key=lambda ln: ln["sku"])}]
    assert reserved["details"]["backordered_lines"] == [{"sku": a, "quantity": 2}]
    # And the available part ships under the original order
    shipped = await sf.wait_for(key, "shipped", timeout=90)
    assert shipped["details"]["parcels"]
    # And the rest is an order of its own, linked to the original, waiting
    accepted = await sf.wait_for(rest_key, "accepted")
    assert accepted["details"] == {"continues": reserved["order_id"], "kind": "backorder"}
    waiting = await sf.wait_for(rest_key, "backordered")
    assert waiting["details"]["short_lines"] == [{"sku": a, "quantity": 2}]
    queue = (await http_get("inventory", f"/backorders?sku={a}")).json()
    assert [q["order_key"] for q in queue] == [rest_key]

    # When A is restocked, the continuation is reserved and ships on its own
    await sf.publish("stock.adjustments", a, sfm.stock(a, "WH-SZ", 5))
    again = await sf.wait_for(rest_key, "reserved")
    assert again["details"]["allocations"] == [
        {"warehouse": "WH-SZ", "lines": [{"sku": a, "quantity": 2}]}]
    await sf.wait_for(rest_key, "shipped", timeout=90)

    # Then every unit is committed once, and the books balance
    async def committed() -> bool:
        sa = await stock_of(a)
        return (sa["WH-LA"]["on_hand"], sa["WH-SZ"]["on_hand"], sa["WH-SZ"]["reserved"]) == (
            0, 3, 0)
    await eventually(committed, timeout=90, what="both parts committed on dispatch")
    for sku in (a, b):
        assert (await http_get("inventory", f"/reconcile?sku={sku}")).json()["balanced"] is True
    trace = await trace_of(reserved["order_id"])
    assert any(rest_key in t for t in trace["trace"])


async def test_a_hold_store_still_backorders_the_whole_order(storefront: Storefront) -> None:
    sf = storefront
    a = await new_product(sf, stock={"WH-LA": 1})
    key, _ = await order_in(sf, ref("hold"), [(a, 3, "12.50")], country="US")
    back = await sf.wait_for(key, "backordered")
    assert back["reasons"][0]["code"] == "out_of_stock"
    assert (await stock_of(a))["WH-LA"]["reserved"] == 0


async def test_cancelling_the_original_order_cancels_its_waiting_continuation(
        storefront: Storefront) -> None:
    sf = storefront
    # Given a ship-what-is-there order whose available part is stuck packed (no carrier takes
    # 40 kg) and whose rest waits as a continuation
    store = ref("partial")
    await admin("PUT", f"/policies/{store}", json={"partial": "ship_available"})
    a = await new_product(sf, stock={"WH-LA": 1}, weight_g=40_000, dims=(500, 400, 300))
    key, _ = await order_in(sf, store, [(a, 2, "12.50")], country="US", shipping_fee="4.99")
    rest_key = f"{key}-B1"
    await sf.wait_for(key, "delivery_exception", timeout=90)
    await sf.wait_for(rest_key, "backordered")
    # When the customer cancels the order
    st, ext = key.split(":")
    await sf.publish("orders.cancel_requested", key, sfm.order_event(st, ext, reason=None))
    # Then the original is cancelled with the whole refund, the continuation with nothing more
    assert (await sf.wait_for(key, "cancelled", timeout=60))["details"] == {
        "refund_due": "29.99"}
    cancelled = await sf.wait_for(rest_key, "cancelled", timeout=60)
    assert cancelled["details"] == {"refund_due": "0.00"}
    assert cancelled["reasons"][0]["code"] == "original_cancelled"
    assert (await http_get("inventory", f"/backorders?sku={a}")).json() == []

    # And a restock reserves nothing for either
    async def released() -> bool:
        return (await stock_of(a))["WH-LA"]["reserved"] == 0
    await eventually(released, what="the original's unit released")
    await sf.publish("stock.adjustments", a, sfm.stock(a, "WH-LA", 5))

    async def received() -> bool:
        return (await stock_of(a))["WH-LA"]["on_hand"] == 6
    await eventually(received, what="restock")
    assert "reserved" not in sf.seen(rest_key)
