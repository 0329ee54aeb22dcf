"""Parcels that come back (refused at the door, returned to sender) and cancellations that come
after shipping, on the real stack through `orders.status` and `payments.refunds`: the goods go
back on the shelf, the customer gets the goods' price back less shipping, once."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from shared.contracts import Address, OrderLine, OrderPacked, OrderSnapshot, Parcel, Totals
from tools import storefront as sfm
from tools.storefront import Storefront

from .helpers import (
    STORE,
    eventually,
    http_get,
    new_product,
    place,
    stock_of,
    tail,
    tail_all,
    value_of,
)

CANCEL = "cancel-after-shipping"


def later(minutes: int) -> str:
    return (datetime.now(UTC) + timedelta(minutes=minutes)).isoformat().replace("+00:00", "Z")


async def refund_history(key: str) -> list[dict[str, Any]]:
    store, ext = key.split(":")
    r = await http_get("aftersales", f"/refunds?store_name={store}&external_order_id={ext}",
                       auth=True)
    assert r.status_code == 200, r.text
    rows: list[dict[str, Any]] = r.json()
    return rows


async def detail(key: str, rid: str) -> dict[str, Any]:
    store, ext = key.split(":")
    r = await http_get("aftersales", f"/requests/{store}/{ext}/{rid}", auth=True)
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def of_order(order_id: str) -> Any:
    return lambda r: value_of(r).get("order_id") == order_id


async def test_a_parcel_returned_to_sender_is_restocked_and_refunded_less_shipping_once(
        storefront: Storefront) -> None:
    sf = storefront
    # Given a shipped order of two 20.00 items with 6.00 shipping (46.00 paid)
    sku = await new_product(sf, stock={"WH-LA": 3}, price="20.00")
    key, _ = await place(sf, [(sku, 2, "20.00")], shipping_fee="6.00")
    shipped = await sf.wait_for(key, "shipped")
    parcel = shipped["details"]["parcels"][0]
    number, rid = parcel["tracking_number"], f"returned-{parcel['parcel_id']}"

    # When the customer refuses it and the carrier brings it back to the warehouse
    await sf.publish("carrier.tracking", number,
                     sfm.tracking(parcel["carrier"], number, "returned_to_sender"))

    # Then the storefront hears the exception, the receipt and a refund of 40.00 (no shipping)
    exception = await sf.wait_for(key, "delivery_exception")
    assert exception["details"] == {"tracking_number": number, "reason": "returned_to_sender"}
    received = await sf.wait_for(key, "return_received")
    assert received["details"] == {"request_id": rid}
    refunded = await sf.wait_for(key, "refunded")
    assert refunded["details"] == {"request_id": rid, "amount": "40.00", "currency": "USD"}
    payment = (await eventually(lambda: _now(sf.refunds.get(key)), what="payments.refunds"))[0]
    assert (payment["request_id"], payment["amount"], payment["reason"]) == (rid, "40.00", "other")
    # And both units are back on hand where they shipped from
    async def restocked() -> bool:
        return (await stock_of(sku))["WH-LA"]["on_hand"] == 3
    await eventually(restocked, what="returned units back on hand")
    body = await detail(key, rid)
    assert (body["kind"], body["reason"], body["source"], body["status"]) == (
        "return", "other", "carrier", "refunded")
    assert body["decision"]["code"] == "returned_to_sender"
    assert "returned to sender" in body["comment"]

    # When the carrier scans the same parcel returned to sender again (a later scan)
    await sf.publish("carrier.tracking", number,
                     sfm.tracking(parcel["carrier"], number, "returned_to_sender", later(5)))
    # Then logistics reports the exception again but announces the parcel back only once
    async def second_exception() -> bool:
        return sf.seen(key).count("delivery_exception") == 2
    await eventually(second_exception, what="the repeated scan handled")
    returned = await tail_all("logistics.parcel_returned", of_order(shipped["order_id"]))
    assert len(returned) == 1
    event = value_of(returned[0])
    assert (event["parcel_id"], event["warehouse"], event["lines"]) == (
        parcel["parcel_id"], "WH-LA", [{"sku": sku, "quantity": 2}])
    assert [(r["request_id"], r["amount"]) for r in await refund_history(key)] == [
        (rid, "40.00")]
    assert sf.seen(key).count("refunded") == 1


async def test_a_cancel_after_shipping_opens_a_return_settled_once_by_the_refused_parcel(
        storefront: Storefront) -> None:
    sf = storefront
    # Given a shipped order of one 30.00 item with 5.00 shipping
    sku = await new_product(sf, stock={"WH-LA": 2}, price="30.00")
    key, _ = await place(sf, [(sku, 1, "30.00")], shipping_fee="5.00")
    shipped = await sf.wait_for(key, "shipped")
    parcel = shipped["details"]["parcels"][0]
    store, ext = key.split(":")

    # When the customer cancels after it left the warehouse
    await sf.publish("orders.cancel_requested", key, sfm.order_event(
        store, ext, reason="found it cheaper"))
    # Then aftersales opens a return for the whole order, authorized with a return label
    authorized = await sf.wait_for(key, "return_authorized")
    assert authorized["details"] == {"request_id": CANCEL}
    assert authorized["reasons"][0]["code"] == "cancelled_after_shipping"
    assert "cancelled" not in sf.seen(key)

    async def labelled() -> dict[str, Any] | None:
        label: dict[str, Any] | None = (await detail(key, CANCEL))["return_label"]
        return label
    label = await eventually(labelled, what="return label from logistics")
    assert label["warehouse"] == "WH-LA"
    body = await detail(key, CANCEL)
    assert (body["kind"], body["reason"], body["source"]) == ("return", "changed_mind",
                                                              "cancellation")
    assert body["lines"] == [{"sku": sku, "quantity": 1}]
    assert body["comment"] == "the customer cancelled after shipping: found it cheaper"
    # And cancelling again (an impatient click) reaches aftersales but opens nothing new
    await sf.publish("orders.cancel_requested", key, sfm.order_event(
        store, ext, reason="found it cheaper"))

    async def handed_on_twice() -> bool:
        return len(await tail_all("intake.order_cancel_refused",
                                  of_order(shipped["order_id"]))) == 2
    await eventually(handed_on_twice, what="the second cancellation handed to aftersales")

    # When the customer refuses the parcel at the door and it comes back to sender
    number = parcel["tracking_number"]
    await sf.publish("carrier.tracking", number,
                     sfm.tracking(parcel["carrier"], number, "returned_to_sender"))
    # Then it is received and refunded under the returned parcel's request: 30.00, no shipping
    rid = f"returned-{parcel['parcel_id']}"
    refunded = await sf.wait_for(key, "refunded")
    assert refunded["details"] == {"request_id": rid, "amount": "30.00", "currency": "USD"}
    # And the cancellation's return is closed, settled by the parcel
    settled = await detail(key, CANCEL)
    assert settled["status"] == "closed" and settled["lines"] == []
    assert (await detail(key, rid))["comment"].endswith(f"settles {CANCEL}")

    # When the warehouse later books the same goods in against the cancellation's return
    await sf.publish("returns.received", key, sfm.order_event(
        store, ext, request_id=CANCEL, lines=[{"sku": sku, "quantity": 1,
                                               "condition": "resellable"}]))
    # Then it is refused (kept in the DLQ for an operator), and nothing is refunded twice
    await tail("returns.received.dlq", lambda r: CANCEL.encode() in r.value
               and ext.encode() in r.value, timeout=60)
    assert [(r["request_id"], r["amount"]) for r in await refund_history(key)] == [
        (rid, "30.00")]
    assert sf.seen(key).count("refunded") == 1
    assert sf.seen(key).count("return_authorized") == 1

    async def restocked() -> bool:
        return (await stock_of(sku))["WH-LA"]["on_hand"] == 2
    await eventually(restocked, what="the refused unit back on hand")


async def test_a_cancel_after_delivery_of_a_non_returnable_item_is_rejected_by_policy(
        storefront: Storefront) -> None:
    sf = storefront
    # Given a delivered order of a product that is not returnable
    sku = await new_product(sf, stock={"WH-LA": 1}, price="15.00", returnable=False)
    key, _ = await place(sf, [(sku, 1, "15.00")])
    parcel = (await sf.wait_for(key, "shipped"))["details"]["parcels"][0]
    await sf.publish("carrier.tracking", parcel["tracking_number"], sfm.tracking(
        parcel["carrier"], parcel["tracking_number"], "delivered"))
    await sf.wait_for(key, "delivered")
    # When the customer "cancels" it
    store, ext = key.split(":")
    await sf.publish("orders.cancel_requested", key, sfm.order_event(store, ext, reason=None))
    # Then the store's policy answers as for any return: rejected, not returnable
    rejected = await sf.wait_for(key, "return_rejected")
    assert rejected["details"] == {"request_id": CANCEL}
    assert rejected["reasons"][0]["code"] == "not_returnable"
    assert (await detail(key, CANCEL))["comment"].startswith("the customer cancelled after"
                                                             " shipping")


async def test_a_merged_parcel_returned_to_sender_names_each_orders_own_lines(
        storefront: Storefront) -> None:
    sf = storefront
    # Given one parcel packed for two orders of one buyer (as fulfillment merges them), each
    # order's `order_packed` naming the same parcel with its own lines. Published here rather
    # than merged by fulfillment, whose waves merge only orders that meet in one wave. (These
    # orders never passed intake, so aftersales keeps their parcel_returned in its DLQ; the
    # single-order tests above follow aftersales' side.)
    parcel_id = f"P-{uuid.uuid4().hex[:12]}-1"
    orders = [(str(uuid.uuid4()), f"o-{uuid.uuid4().hex[:10]}", f"SKU-M{n}-{uuid.uuid4().hex[:6]}")
              for n in (1, 2)]
    now = datetime.now(UTC)
    us = sfm.DEMO_ADDRESSES["US"]
    for order_id, ext, sku in orders:
        snap = OrderSnapshot(
            order_id=order_id, store=STORE, external_order_id=ext, customer_id="c-merged",
            placed_at=now, accepted_at=now,
            shipping_address=Address(name="Ana Lima", line2=None, country="US", **us),
            lines=[OrderLine(sku=sku, quantity=1, unit_price=Decimal("10.00"))],
            currency="USD", shipping_option="standard",
            totals=Totals(subtotal=Decimal("10.00"), discount=Decimal("0.00"),
                          shipping_fee=Decimal("0.00"), grand_total=Decimal("10.00")),
            payment_method="card", payment_status="paid")
        packed = OrderPacked(
            order_id=order_id, order_key=snap.key, order=snap, parcels=[Parcel(
                parcel_id=parcel_id, warehouse="WH-LA", box="S", weight_g=500,
                dims_mm={"l": 200, "w": 150, "h": 100},
                lines=[{"sku": sku, "quantity": 1}], declared_value=Decimal("10.00"))])
        await sf.publish("fulfillment.order_packed", snap.key, packed.model_dump(mode="json"))
        await sf.wait_for(snap.key, "shipped")
    shipped = await sf.wait_for(f"{STORE}:{orders[0][1]}", "shipped")
    parcel = shipped["details"]["parcels"][0]
    assert parcel["parcel_id"] == parcel_id
    assert (await sf.wait_for(f"{STORE}:{orders[1][1]}", "shipped"))["details"]["parcels"][0][
        "tracking_number"] == parcel["tracking_number"]

    # When the carrier returns the parcel to sender
    await sf.publish("carrier.tracking", parcel["tracking_number"], sfm.tracking(
        parcel["carrier"], parcel["tracking_number"], "returned_to_sender"))
    # Then each order hears of it with its own lines, for aftersales to restock and refund
    for order_id, ext, sku in orders:
        await sf.wait_for(f"{STORE}:{ext}", "delivery_exception")
        event = value_of(await tail("logistics.parcel_returned", of_order(order_id)))
        assert (event["parcel_id"], event["lines"]) == (parcel_id, [{"sku": sku, "quantity": 1}])


async def _now(value: Any) -> Any:
    return value
