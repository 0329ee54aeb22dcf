"""Inventory end to end on the real stack: split shipments, backorder -> substitute,
backorder -> restock with an ETA, the customer's other decisions, backorder expiry, store
policies, reconciliation, reorder hints and the operators' HTTP."""

from __future__ import annotations

import asyncio
import json
import sys
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import asyncpg
import httpx

from shared.settings import get_settings
from tests.conftest import ROOT, ref
from tools import storefront as sfm
from tools.storefront import Storefront

from .helpers import eventually, http_get, new_product, stock_of, tail, url, value_of


async def admin(method: str, path: str, **kw: Any) -> httpx.Response:
    headers = {"Authorization": f"Bearer {get_settings().shopkeeper_admin_token}"}
    async with httpx.AsyncClient(timeout=30) as client:
        return await client.request(method, url("inventory", path), headers=headers, **kw)


async def order_in(sf: Storefront, store: str, lines: list[tuple[str, int, str]],
                   **kw: Any) -> tuple[str, dict[str, Any]]:
    ext = ref("o")
    payload = sfm.order(store, ext, lines, **kw)
    await sf.publish("orders.placed", f"{store}:{ext}", payload)
    return f"{store}:{ext}", payload


async def decide(sf: Storefront, key: str, decision: str, **subs: str) -> None:
    store, ext = key.split(":")
    await sf.publish("orders.backorder_decisions", key, sfm.order_event(
        store, ext, decision=decision, substitutions=subs))


async def trace_of(order_id: str) -> dict[str, Any]:
    r = await http_get("inventory", f"/orders/{order_id}/allocation")
    assert r.status_code == 200
    body: dict[str, Any] = r.json()
    return body


async def test_split_order_spans_two_warehouses_and_reaches_shipped(storefront: Storefront
                                                                    ) -> None:
    sf = storefront
    a = await new_product(sf, stock={"WH-LA": 1})
    b = await new_product(sf, stock={"WH-SZ": 1})
    key, _ = await order_in(sf, ref("split"), [(a, 1, "12.50"), (b, 1, "12.50")], country="US")

    reserved = await sf.wait_for(key, "reserved")
    assert reserved["details"]["allocations"] == [
        {"warehouse": "WH-LA", "lines": [{"sku": a, "quantity": 1}]},
        {"warehouse": "WH-SZ", "lines": [{"sku": b, "quantity": 1}]}]
    shipped = await sf.wait_for(key, "shipped", timeout=90)
    assert len(shipped["details"]["parcels"]) == 2
    trace = await trace_of(reserved["order_id"])
    assert any("no single warehouse can fill every line" in t for t in trace["trace"])
    assert any(t.startswith("split WH-LA+WH-SZ") for t in trace["trace"])

    async def committed() -> bool:
        return ((await stock_of(a))["WH-LA"]["on_hand"] == 0
                and (await stock_of(b))["WH-SZ"]["on_hand"] == 0)
    await eventually(committed, timeout=90, what="both warehouses committed on dispatch")


async def test_a_store_without_split_shipments_backorders_instead(storefront: Storefront) -> None:
    sf = storefront
    store = ref("nosplit")
    assert (await admin("PUT", f"/policies/{store}", json={"split_allowed": False})).json()[
        "split_allowed"] is False
    a = await new_product(sf, stock={"WH-LA": 1})
    b = await new_product(sf, stock={"WH-SZ": 1})
    key, _ = await order_in(sf, store, [(a, 1, "12.50"), (b, 1, "12.50")], country="US")
    back = await sf.wait_for(key, "backordered")
    assert back["details"]["short_lines"] and back["details"]["restock_eta"] is None
    trace = await trace_of(back["order_id"])
    assert any("does not allow split" in t for t in trace["trace"])
    assert (await stock_of(a))["WH-LA"]["reserved"] == 0


async def test_backorder_offers_substitutes_and_the_customer_takes_one(storefront: Storefront
                                                                      ) -> None:
    sf = storefront
    category = ref("cat")
    original = await new_product(sf, stock={}, price="20.00", category=category)
    close = await new_product(sf, stock={"WH-LA": 3}, price="22.00", category=category)
    await new_product(sf, stock={"WH-LA": 3}, price="30.00", category=category)      # too dear
    await new_product(sf, stock={"WH-LA": 3}, price="20.00", category=category,
                      attributes=["battery"])                                       # hazard
    await new_product(sf, stock={}, price="20.00", category=category)               # none left
    key, _ = await order_in(sf, ref("sub"), [(original, 2, "20.00")], country="US")

    back = await sf.wait_for(key, "backordered")
    assert back["details"] == {"short_lines": [{"sku": original, "quantity": 2}],
                               "substitutes": {original: [close]}, "restock_eta": None}
    queue = (await http_get("inventory", f"/backorders?sku={original}")).json()
    assert [q["order_key"] for q in queue] == [key]

    await decide(sf, key, "substitute", **{original: close})
    reserved = await sf.wait_for(key, "reserved")
    assert reserved["details"]["allocations"] == [
        {"warehouse": "WH-LA", "lines": [{"sku": close, "quantity": 2}]}]
    assert reserved["details"]["substitutions"] == {original: close}
    assert reserved["details"]["price_difference"] == "4.00"
    # And the payment system is asked for the 4.00 the dearer substitute costs on top
    charge = value_of(await tail("payments.charges", lambda r: value_of(r)["order_id"] ==
                                 reserved["order_id"]))
    assert (charge["charge_id"], charge["amount"], charge["currency"], charge["reason"]) == (
        "substitution", "4.00", "USD", "substitution_price_difference")
    await sf.wait_for(key, "shipped", timeout=90)
    ledger = (await http_get("inventory", f"/ledger/{close}")).json()["rows"]
    assert [r["kind"] for r in ledger] == ["receipt", "substitution", "commit"]
    trace = await trace_of(reserved["order_id"])
    assert trace["price_difference"] == "4.00" and trace["decision"] == "substitute"


async def test_a_substitute_not_offered_is_refused_and_the_order_keeps_waiting(
        storefront: Storefront) -> None:
    sf = storefront
    original = await new_product(sf, stock={}, category=ref("cat"))
    other = await new_product(sf, stock={"WH-LA": 5}, category=ref("cat"))
    key, _ = await order_in(sf, ref("sub"), [(original, 1, "12.50")])
    await sf.wait_for(key, "backordered")
    await decide(sf, key, "substitute", **{original: other})

    async def refused() -> bool:
        return [s for s in sf.statuses[key] if s["status"] == "backordered"
                and s["reasons"][0]["code"] == "substitute_not_offered"] != []
    await eventually(refused, timeout=60, what="substitution refused")
    assert "reserved" not in sf.seen(key)
    assert (await stock_of(other))["WH-LA"]["reserved"] == 0


async def test_backorder_gets_a_restock_eta_and_is_reserved_when_the_receipt_arrives(
        storefront: Storefront) -> None:
    sf = storefront
    sku = await new_product(sf, stock={})
    eta = (datetime.now(UTC) + timedelta(days=5)).replace(microsecond=0)
    posted = await admin("POST", "/receipts/expected", json={
        "sku": sku, "warehouse": "WH-LA", "quantity": 4, "eta": eta.isoformat(),
        "reference": "PO-TEST-1"})
    assert posted.status_code == 201
    key, _ = await order_in(sf, ref("eta"), [(sku, 3, "12.50")])
    back = await sf.wait_for(key, "backordered")
    assert back["details"]["restock_eta"] == eta.isoformat().replace("+00:00", "Z")
    await decide(sf, key, "wait")

    receipt = sfm.stock(sku, "WH-LA", 4)
    receipt["reference"] = "PO-TEST-1"
    await sf.publish("stock.adjustments", sku, receipt)
    reserved = await sf.wait_for(key, "reserved")
    assert reserved["details"]["allocations"] == [
        {"warehouse": "WH-LA", "lines": [{"sku": sku, "quantity": 3}]}]
    await sf.wait_for(key, "shipped", timeout=90)
    # the expected receipt is closed: a new backorder has no ETA
    later, _ = await order_in(sf, ref("eta"), [(sku, 2, "12.50")])
    assert (await sf.wait_for(later, "backordered"))["details"]["restock_eta"] is None


async def test_customer_cancels_a_backorder_and_gets_a_full_refund(storefront: Storefront
                                                                   ) -> None:
    sf = storefront
    sku = await new_product(sf, stock={})
    key, _ = await order_in(sf, ref("dec"), [(sku, 2, "12.50")], shipping_fee="4.99")
    await sf.wait_for(key, "backordered")
    await decide(sf, key, "cancel")
    cancelled = await sf.wait_for(key, "cancelled")
    assert cancelled["details"] == {"refund_due": "29.99"}
    record = await tail("inventory.order_cancelled", lambda r: r.key == key.encode())
    assert Decimal(value_of(record)["refund_due"]) == Decimal("29.99")
    await sf.publish("stock.adjustments", sku, sfm.stock(sku, "WH-LA", 5))

    async def received() -> bool:  # no WH-LA row at all until the adjustment is handled
        return (await stock_of(sku)).get("WH-LA", {}).get("on_hand") == 5
    await eventually(received, timeout=60, what="restock")
    await asyncio.sleep(1)
    assert "reserved" not in sf.seen(key)
    assert (await stock_of(sku))["WH-LA"]["reserved"] == 0


async def test_a_backorder_older_than_the_stores_limit_is_cancelled_with_refund_due(
        storefront: Storefront) -> None:
    sf = storefront
    store = ref("limit")
    await admin("PUT", f"/policies/{store}", json={"backorder_limit_s": 2})
    sku = await new_product(sf, stock={})
    key, _ = await order_in(sf, store, [(sku, 1, "12.50")], shipping_fee="4.99")
    await sf.wait_for(key, "backordered")
    cancelled = await sf.wait_for(key, "cancelled", timeout=60)
    assert cancelled["reasons"][0]["code"] == "backorder_expired"
    assert cancelled["details"] == {"refund_due": "17.49"}


async def test_reconciliation_reports_drift_and_repairs_it_with_a_ledger_row(
        storefront: Storefront) -> None:
    sf = storefront
    sku = await new_product(sf, stock={"WH-FRA": 10})
    conn = await asyncpg.connect(get_settings().database_url)
    try:  # an edit behind the ledger's back, as a manual fix or a bug would make
        await conn.execute("UPDATE inventory.stock SET on_hand = on_hand - 3 WHERE sku = $1",
                           sku)
    finally:
        await conn.close()
    report = (await http_get("inventory", f"/reconcile?sku={sku}")).json()
    assert report["balanced"] is False
    assert report["drift"][0]["on_hand_drift"] == -3
    async with httpx.AsyncClient() as client:  # writes need the token
        assert (await client.post(url("inventory", "/reconcile"))).status_code == 401

    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "services.inventory.reconcile", "--repair", "--sku", sku, cwd=ROOT,
        stdout=asyncio.subprocess.PIPE)
    out, _ = await proc.communicate()
    assert proc.returncode == 0, out
    assert json.loads(out)["balanced"] is True
    assert (await http_get("inventory", f"/reconcile?sku={sku}")).json()["balanced"] is True
    rows = (await http_get("inventory", f"/ledger/{sku}")).json()["rows"]
    assert [(r["kind"], r["on_hand_delta"]) for r in rows] == [("receipt", 10), ("correction", -3)]


async def test_waiting_orders_raise_a_low_stock_event_and_a_reorder_hint(storefront: Storefront
                                                                         ) -> None:
    sf = storefront
    sku = await new_product(sf, stock={"WH-LA": 1})
    key, _ = await order_in(sf, ref("low"), [(sku, 3, "12.50")])
    await sf.wait_for(key, "backordered")
    record = await tail("inventory.stock_low", lambda r: r.key == sku.encode(), timeout=120)
    event = value_of(record)
    assert event["low"] is True and event["backordered_units"] == 2  # short: 3 wanted, 1 there
    hints = (await http_get("inventory", f"/reorder-hints?sku={sku}")).json()
    assert hints[0]["low"] is True and hints[0]["available"] == 1
    stock = (await http_get("inventory", "/stock?warehouse=WH-LA&limit=10000")).json()
    assert {"sku": sku, "warehouse": "WH-LA", "on_hand": 1, "reserved": 0,
            "available": 1, "refurbished": 0} in stock


async def test_an_announced_receipt_gives_waiting_orders_an_eta_oldest_first(
        storefront: Storefront) -> None:
    sf = storefront
    sku = await new_product(sf, stock={})
    first, _ = await order_in(sf, ref("eta"), [(sku, 2, "12.50")])
    assert (await sf.wait_for(first, "backordered"))["details"]["restock_eta"] is None
    second, _ = await order_in(sf, ref("eta"), [(sku, 2, "12.50")])
    await sf.wait_for(second, "backordered")

    eta = (datetime.now(UTC) + timedelta(days=3)).replace(microsecond=0)
    posted = await admin("POST", "/receipts/expected", json={
        "sku": sku, "warehouse": "WH-FRA", "quantity": 3, "eta": eta.isoformat()})
    assert posted.json()["backorders_updated"] == 1  # 3 units cover the first order only

    async def updated() -> dict[str, Any] | None:
        return next((s for s in sf.statuses[first] if s["reasons"]
                     and s["reasons"][0]["code"] == "restock_expected"), None)
    status = await eventually(updated, what="backordered again with an ETA")
    assert status["status"] == "backordered"
    assert status["details"]["restock_eta"] == eta.isoformat().replace("+00:00", "Z")
    assert status["details"]["short_lines"] == [{"sku": sku, "quantity": 2}]
    queue = (await http_get("inventory", f"/backorders?sku={sku}")).json()
    assert [(q["order_key"], q["restock_eta"] is not None) for q in queue] == [
        (first, True), (second, False)]


async def test_counts_are_absolute_damage_is_written_off_and_promised_goods_stay(
        storefront: Storefront) -> None:
    sf = storefront
    # 40 kg: no carrier takes it, so the order's unit stays reserved (packed, not shipped).
    sku = await new_product(sf, stock={"WH-LA": 10}, weight_g=40_000, dims=(500, 400, 300))
    key, _ = await order_in(sf, ref("cnt"), [(sku, 1, "12.50")])
    await sf.wait_for(key, "delivery_exception")
    for kind, qty in (("counted", 7), ("damaged", 2), ("counted", 0)):
        await sf.publish("stock.adjustments", sku, sfm.stock(sku, "WH-LA", qty, kind))

    async def settled() -> list[tuple[str, int]] | None:
        rows = (await http_get("inventory", f"/ledger/{sku}")).json()["rows"]
        got = [(r["kind"], r["on_hand_delta"]) for r in rows]
        return got if len(got) == 5 else None
    ledger = await eventually(settled, what="three adjustments in the ledger")
    # counted 7 (-3), damaged 2 (-2), counted 0 clamped at the 1 unit promised to the order (-4)
    assert ledger == [("receipt", 10), ("reserve", 0), ("count", -3), ("damage", -2),
                      ("count", -4)]
    assert (await stock_of(sku))["WH-LA"] == {"warehouse": "WH-LA", "on_hand": 1, "reserved": 1,
                                              "available": 0, "refurbished": 0}
    assert (await http_get("inventory", f"/reconcile?sku={sku}")).json()["balanced"] is True


async def test_cancelling_a_split_order_releases_every_warehouse(storefront: Storefront) -> None:
    sf = storefront
    heavy = {"weight_g": 40_000, "dims": (500, 400, 300)}  # stays packed: no carrier takes it
    a = await new_product(sf, stock={"WH-LA": 1}, **heavy)
    b = await new_product(sf, stock={"WH-SZ": 1}, **heavy)
    key, _ = await order_in(sf, ref("splitc"), [(a, 1, "12.50"), (b, 1, "12.50")])
    reserved = await sf.wait_for(key, "reserved")
    assert len(reserved["details"]["allocations"]) == 2
    await sf.wait_for(key, "delivery_exception")
    store, ext = key.split(":")
    await sf.publish("orders.cancel_requested", key, sfm.order_event(store, ext, reason=None))
    await sf.wait_for(key, "cancelled")

    async def released() -> bool:
        return ((await stock_of(a))["WH-LA"]["reserved"] == 0
                and (await stock_of(b))["WH-SZ"]["reserved"] == 0)
    await eventually(released, timeout=60, what="both reservations released")
    rows = (await http_get("inventory", f"/ledger/{b}")).json()["rows"]
    assert [r["kind"] for r in rows] == ["receipt", "reserve", "release"]
