"""The walking skeleton end to end, as a storefront sees it: publish on the public topics, read
`orders.status` back. Real Kafka, real Postgres, every service a real process."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from tests.conftest import ref
from tools import storefront as sfm
from tools.storefront import Storefront

from .helpers import STORE, eventually, http_get, new_product, place, stock_of, tail, value_of


async def test_valid_order_goes_accepted_reserved_packed_shipped_delivered(storefront: Storefront
                                                                           ) -> None:
    sf = storefront
    sku = await new_product(sf, stock={"WH-LA": 10})
    key, _ = await place(sf, [(sku, 2, "12.50")], country="US")

    shipped = await sf.wait_for(key, "shipped")
    parcel = shipped["details"]["parcels"][0]
    assert parcel["tracking_number"] and parcel["carrier"] == "USPS"
    await sf.publish("carrier.tracking", parcel["tracking_number"],
                     sfm.tracking(parcel["carrier"], parcel["tracking_number"], "in_transit"))
    await sf.publish("carrier.tracking", parcel["tracking_number"],
                     sfm.tracking(parcel["carrier"], parcel["tracking_number"], "delivered"))
    await sf.wait_for(key, "delivered")

    assert sf.seen(key) == ["accepted", "reserved", "packed", "shipped", "delivered"]
    reserved = next(e for e in sf.statuses[key] if e["status"] == "reserved")
    assert reserved["details"]["allocations"] == [
        {"warehouse": "WH-LA", "lines": [{"sku": sku, "quantity": 2}]}]
    assert (await stock_of(sku))["WH-LA"]["on_hand"] == 8  # committed on dispatch

    store, ext = key.split(":")
    async def timeline() -> dict | None:
        r = await http_get("analytics", f"/orders/{store}/{ext}")
        return r.json() if r.status_code == 200 and r.json()["status"] == "delivered" else None
    body = await eventually(timeline, what="analytics timeline")
    assert [t["status"] for t in body["timeline"]] == sf.seen(key)
    assert body["order_id"] == shipped["order_id"]
    assert (await http_get("analytics", f"/orders/{store}/does-not-exist")).status_code == 404


async def test_order_ships_from_the_destinations_region(storefront: Storefront) -> None:
    sku = await new_product(storefront, stock={"WH-LA": 5, "WH-FRA": 5})
    key, _ = await place(storefront, [(sku, 1, "12.50")], country="DE")
    reserved = await storefront.wait_for(key, "reserved")
    assert reserved["details"]["allocations"][0]["warehouse"] == "WH-FRA"


@pytest.mark.parametrize(("change", "code"), [
    ({"lines.0.quantity": 0}, "invalid_quantity"),
    ({"lines.0.quantity": 1000}, "invalid_quantity"),
    ({"lines.0.sku": "NO-SUCH-SKU"}, "unknown_sku"),
    ({"shipping_address.country": "ZZ"}, "unsupported_country"),
    ({"shipping_address.country": "Brazil"}, "unsupported_country"),
    ({"shipping_address.postal_code": None}, "incomplete_address"),
    ({"shipping_address.postal_code": "ABCDE"}, "incomplete_address"),
    ({"payment.status": "failed"}, "payment_failed"),
    ({"promo_codes": ["NOPE"]}, "invalid_promo"),
    ({"lines.0.quantity": "two"}, "malformed"),
    ({"totals.grand_total": 29.99}, "malformed"),
    ({"customer": None}, "malformed"),
    ({"shipping_option": "teleport"}, "malformed"),
])
async def test_invalid_orders_are_rejected_with_the_contract_reason_code(
        storefront: Storefront, change: dict, code: str) -> None:
    sku = await new_product(storefront, stock={"WH-LA": 5})
    ext = ref("bad")
    payload = sfm.order(STORE, ext, [(sku, 1, "12.50")])
    for path, value in change.items():
        target = payload
        *parents, leaf = path.split(".")
        for p in parents:
            target = target[int(p)] if p.isdigit() else target[p]
        target[int(leaf) if leaf.isdigit() else leaf] = value
    await storefront.publish("orders.placed", f"{STORE}:{ext}", payload)
    rejected = await storefront.wait_for(f"{STORE}:{ext}", "rejected")
    codes = [r["code"] for r in rejected["reasons"]]
    assert code in codes
    assert all(r["message"] for r in rejected["reasons"])


async def test_amounts_that_do_not_add_up_are_held_for_review(storefront: Storefront) -> None:
    sku = await new_product(storefront, stock={"WH-LA": 5})
    ext = ref("mismatch")
    payload = sfm.order(STORE, ext, [(sku, 2, "12.50")])
    payload["totals"]["grand_total"] = "19.99"
    await storefront.publish("orders.placed", f"{STORE}:{ext}", payload)
    held = await storefront.wait_for(f"{STORE}:{ext}", "on_hold")
    assert [r["code"] for r in held["reasons"]] == ["amount_mismatch"]


async def test_garbage_goes_to_the_dlq_with_headers_and_the_next_order_still_flows(
        storefront: Storefront) -> None:
    marker = ref("garbage").encode()
    await storefront.publish("orders.placed", "no-such:order", b"\x00not json " + marker)
    await storefront.publish("orders.placed", None, b'{"store": 5, "junk": "' + marker + b'"}')

    record = await tail("orders.placed.dlq", lambda r: marker in (r.value or b""))
    headers = dict(record.headers)
    assert headers["x-original-topic"] == b"orders.placed"
    assert headers["x-error-type"] and headers["x-error"]
    assert headers["x-original-partition"].isdigit()
    assert headers["x-original-offset"].isdigit()

    sku = await new_product(storefront, stock={"WH-LA": 5})
    key, _ = await place(storefront, [(sku, 1, "12.50")])
    await storefront.wait_for(key, "shipped")


async def test_resends_and_storefront_retries_make_one_order(storefront: Storefront) -> None:
    sku = await new_product(storefront, stock={"WH-LA": 10})
    key, payload = await place(storefront, [(sku, 1, "12.50")])
    await storefront.publish("orders.placed", key, payload)                     # exact re-send
    retry = {**payload, "event_id": str(uuid.uuid4())}                         # new event_id
    await storefront.publish("orders.placed", key, retry)
    await storefront.wait_for(key, "shipped")
    await asyncio.sleep(3)  # time for any duplicate to show up
    assert sf_count(storefront, key, "accepted") == 1
    assert sf_count(storefront, key, "shipped") == 1
    assert (await stock_of(sku))["WH-LA"]["on_hand"] == 9


def sf_count(sf: Storefront, key: str, status: str) -> int:
    return sum(1 for s in sf.seen(key) if s == status)


async def test_out_of_stock_backorders_and_restock_reserves_oldest_first(storefront: Storefront
                                                                         ) -> None:
    sf = storefront
    sku = await new_product(sf, stock={})
    first, _ = await place(sf, [(sku, 2, "12.50")])
    back = await sf.wait_for(first, "backordered")
    second, _ = await place(sf, [(sku, 2, "12.50")])
    await sf.wait_for(second, "backordered")
    assert back["details"]["short_lines"] == [{"sku": sku, "quantity": 2}]

    await sf.publish("stock.adjustments", sku, sfm.stock(sku, "WH-LA", 2))
    await sf.wait_for(first, "shipped")
    await asyncio.sleep(2)
    assert "reserved" not in sf.seen(second)

    await sf.publish("stock.adjustments", sku, sfm.stock(sku, "WH-LA", 3))
    await sf.wait_for(second, "shipped")
    # inventory commits the stock on `logistics.order_shipped`, which may trail the status
    settled = {"warehouse": "WH-LA", "on_hand": 1, "reserved": 0, "available": 1, "refurbished": 0}

    async def committed() -> bool:
        return bool((await stock_of(sku))["WH-LA"] == settled)
    await eventually(committed, what=f"{sku} committed on dispatch")


async def test_cancel_of_a_backordered_order_releases_its_claim(storefront: Storefront) -> None:
    sf = storefront
    sku = await new_product(sf, stock={})
    key, _ = await place(sf, [(sku, 1, "12.50")])
    await sf.wait_for(key, "backordered")
    store, ext = key.split(":")
    await sf.publish("orders.cancel_requested", key,
                     sfm.order_event(store, ext, reason="changed my mind"))
    cancelled = await sf.wait_for(key, "cancelled")
    assert cancelled["details"] == {"refund_due": "17.49"}
    assert cancelled["reasons"][0]["code"] == "cancelled_by_customer"

    later, _ = await place(sf, [(sku, 1, "12.50")])
    await sf.wait_for(later, "backordered")
    await sf.publish("stock.adjustments", sku, sfm.stock(sku, "WH-LA", 1))
    await sf.wait_for(later, "shipped")  # the cancelled order does not take the unit
    assert "reserved" not in sf.seen(key)


async def test_cancel_of_a_reserved_order_releases_stock(storefront: Storefront) -> None:
    sf = storefront
    # 40 kg: no carrier service takes it, so it stays packed and unshipped until cancelled.
    sku = await new_product(sf, stock={"WH-LA": 3}, weight_g=40_000, dims=(500, 400, 300))
    key, _ = await place(sf, [(sku, 1, "12.50")])
    exception = await sf.wait_for(key, "delivery_exception")
    assert exception["reasons"][0]["code"] == "no_eligible_service"
    assert (await stock_of(sku))["WH-LA"]["reserved"] == 1
    store, ext = key.split(":")
    await sf.publish("orders.cancel_requested", key, sfm.order_event(store, ext,
                                                                     reason=None))
    cancelled = await sf.wait_for(key, "cancelled")
    # And the money taken goes back: a refund request for the payment system, once
    assert cancelled["details"]["refund_due"] == "17.49"
    refund = value_of(await tail("payments.refunds", lambda r: value_of(r)["order_id"] ==
                                 cancelled["order_id"]))
    assert (refund["request_id"], refund["amount"], refund["reason"]) == (
        "cancellation", "17.49", "cancelled_by_customer")

    async def released() -> bool:
        return (await stock_of(sku))["WH-LA"]["reserved"] == 0
    await eventually(released, what="reservation released")
    assert "shipped" not in sf.seen(key)


async def test_return_of_resellable_goods_is_authorized_received_restocked_and_refunded(
        storefront: Storefront) -> None:
    sf = storefront
    sku = await new_product(sf, stock={"WH-LA": 4}, price="20.00")
    key, _ = await place(sf, [(sku, 2, "20.00")], shipping_fee="5.00")
    shipped = await sf.wait_for(key, "shipped")
    number = shipped["details"]["parcels"][0]["tracking_number"]
    await sf.publish("carrier.tracking", number, sfm.tracking("USPS", number, "delivered"))
    await sf.wait_for(key, "delivered")
    store, ext = key.split(":")
    rid = ref("rma")
    await sf.publish("aftersales.requests", key, sfm.order_event(
        store, ext, request_id=rid, kind="return", lines=[{"sku": sku, "quantity": 1}],
        reason="changed_mind", comment=None, exchange_for=None))
    authorized = await sf.wait_for(key, "return_authorized")
    assert authorized["details"] == {"request_id": rid}
    await sf.publish("returns.received", key, sfm.order_event(store, ext, request_id=rid,
        lines=[{"sku": sku, "quantity": 1, "condition": "resellable"}]))
    await sf.wait_for(key, "return_received")
    refunded = await sf.wait_for(key, "refunded")
    # 20.00 less the store's 5.00 return shipping: the customer changed their mind.
    assert refunded["details"] == {"request_id": rid, "amount": "15.00", "currency": "USD"}

    async def refund_event() -> list:
        return sf.refunds.get(key, [])
    refunds = await eventually(refund_event, what="payments.refunds event")
    assert Decimal(refunds[0]["amount"]) == Decimal("15.00") and refunds[0]["request_id"] == rid

    async def restocked() -> bool:
        return (await stock_of(sku))["WH-LA"]["on_hand"] == 3
    await eventually(restocked, what="returned unit back on hand")


async def test_tracking_events_out_of_order_keep_the_newest_state(storefront: Storefront) -> None:
    sf = storefront
    sku = await new_product(sf, stock={"WH-LA": 2})
    key, _ = await place(sf, [(sku, 1, "12.50")])
    shipped = await sf.wait_for(key, "shipped")
    number = shipped["details"]["parcels"][0]["tracking_number"]
    # Scans dated after shipping and before now (a time ahead of the clock would be clamped to
    # the time received: docs/contract.md), delivered first though it happened last.
    now = datetime.now(UTC)
    await sf.publish("carrier.tracking", number, sfm.tracking(
        "USPS", number, "delivered", (now - timedelta(seconds=1)).isoformat()))
    await sf.publish("carrier.tracking", number, sfm.tracking(
        "USPS", number, "exception", (now - timedelta(seconds=2)).isoformat()))
    await sf.wait_for(key, "delivered")
    await asyncio.sleep(2)
    assert "delivery_exception" not in sf.seen(key)
    rows = (await http_get("logistics", f"/shipments/{key.replace(':', '/')}", auth=True)).json()
    assert rows[0]["status"] == "delivered"


async def test_a_service_commits_its_offsets_once_its_runs_are_handled(
        storefront: Storefront) -> None:
    """Offset commits are coalesced (docs/messaging.md "Offset commits"), never withheld: once
    intake has handled an order and has nothing more to read, its group's committed offsets on
    `orders.placed` reach the ends the order's partition had."""
    from aiokafka import AIOKafkaConsumer

    from tests.conftest import BOOTSTRAP
    sf = storefront
    sku = await new_product(sf, stock={"WH-LA": 1})
    key, _ = await place(sf, [(sku, 1, "12.50")])
    await sf.wait_for(key, "accepted")
    # in the group, without joining it (no subscribe): reading its commits rebalances nothing
    reader = AIOKafkaConsumer(bootstrap_servers=BOOTSTRAP, group_id="intake",
                              enable_auto_commit=False)
    await reader.start()
    try:
        parts = await sfm.topic_partitions(reader, "orders.placed")
        ends = await reader.end_offsets(parts)

        async def committed() -> bool:
            done = [await reader.committed(tp) or 0 for tp in parts]
            return all(d >= ends[tp] for d, tp in zip(done, parts, strict=True))
        await eventually(committed, timeout=15, what="intake's offsets committed")
    finally:
        await reader.stop()
