"""After-sales subscribers: decide requests by policy, receive returns, restock resellable goods,
refund, and keep feedback."""

from __future__ import annotations

import json
import logging
import uuid
from typing import Any

from shared import topics
from shared.contracts import (
    AftersalesRequested,
    FeedbackGiven,
    OrderAccepted,
    OrderDelivered,
    OrderShipped,
    OrderSnapshot,
    ProductUpserted,
    RefundIssued,
    ReturnReceived,
    ReturnRestocked,
    SkuQuantity,
    utcnow,
)
from shared.messaging import Ctx, Handlers

from . import domain, store

log = logging.getLogger(__name__)
handlers = Handlers()


@handlers.on(topics.INTAKE_ORDER_ACCEPTED)
async def order_accepted(ctx: Ctx, event: OrderAccepted) -> None:
    await store.upsert_order(ctx.conn, event.order, ctx.correlation_id)


@handlers.on(topics.LOGISTICS_ORDER_SHIPPED)
async def order_shipped(ctx: Ctx, event: OrderShipped) -> None:
    await store.set_parcels(ctx.conn, uuid.UUID(event.order_id),
                            [p.model_dump() for p in event.parcels])


@handlers.on(topics.LOGISTICS_ORDER_DELIVERED)
async def order_delivered(ctx: Ctx, event: OrderDelivered) -> None:
    await store.set_delivered(ctx.conn, uuid.UUID(event.order_id), event.delivered_at)


@handlers.on(topics.CATALOG_PRODUCTS)
async def product_upserted(ctx: Ctx, event: ProductUpserted) -> None:
    await store.upsert_product(ctx.conn, event.sku, event.returnable, event.occurred_at)


@handlers.on(topics.AFTERSALES_REQUESTS)
async def request_received(ctx: Ctx, event: AftersalesRequested) -> None:
    if await store.get_request(ctx.conn, event.key, event.request_id):
        log.info("request %s of %s received again; nothing to do", event.request_id, event.key)
        return
    lines = {ln.sku: 0 for ln in event.lines}
    for ln in event.lines:
        lines[ln.sku] += ln.quantity
    order = await store.order_by_key(ctx.conn, event.key)
    if order is None:
        decision = domain.Decision("review", "unknown_order",
                                   "aftersales has no accepted order with this key")
    else:
        snap = OrderSnapshot.model_validate_json(order["snapshot"])
        decision = domain.decide(
            event.kind, event.reason, lines, store.ordered_lines(snap),
            await store.already_requested(ctx.conn, event.key),
            await store.non_returnable(ctx.conn, list(lines)), order["delivered_at"], utcnow(),
            await store.policy(ctx.conn, event.store))
    await store.insert_request(
        ctx.conn, event.key, event.request_id, order["order_id"] if order else None, event.kind,
        event.reason, [ln.model_dump() for ln in event.lines], decision.outcome,
        {"code": decision.code, "message": decision.message})
    if decision.outcome == "review" or order is None:
        log.info("request %s of %s waits for an operator: %s", event.request_id, event.key,
                 decision.message)
        return
    ids = _ids(order)
    status = "return_authorized" if decision.outcome == "authorized" else "return_rejected"
    await ctx.status(**ids, status=status, reasons=[(decision.code, decision.message)],
                     details={"request_id": event.request_id})
    if decision.outcome == "authorized" and event.kind == "refund":
        await _refund(ctx, order, event.request_id, lines, event.reason)


@handlers.on(topics.RETURNS_RECEIVED)
async def return_received(ctx: Ctx, event: ReturnReceived) -> None:
    request = await store.get_request(ctx.conn, event.key, event.request_id)
    if request is None or request["status"] != "authorized":
        # Raised, not dropped: retried, then kept in the DLQ for an operator to replay.
        raise LookupError(f"return {event.request_id} of {event.key} received but the request is"
                          f" {request['status'] if request else 'unknown'}; authorize it, then"
                          " replay returns.received from its DLQ")
    order = await store.order_by_key(ctx.conn, event.key)
    assert order is not None
    await store.set_request_status(ctx.conn, event.key, event.request_id, "received")
    await ctx.status(**_ids(order), status="return_received",
                     details={"request_id": event.request_id})
    resellable = [ln for ln in event.lines if ln.condition == "resellable"]
    if resellable:
        await ctx.publish(topics.AFTERSALES_RETURN_RESTOCKED, event.key, ReturnRestocked(
            order_id=str(order["order_id"]), order_key=event.key, request_id=event.request_id,
            warehouse=_warehouse_of(order, resellable[0].sku),
            lines=[SkuQuantity(sku=ln.sku, quantity=ln.quantity) for ln in resellable]))
    damaged = [ln for ln in event.lines if ln.condition == "damaged"]
    if damaged and request["reason"] not in domain.SELLER_FAULT:
        await store.set_request_status(ctx.conn, event.key, event.request_id, "inspection",
                                       "goods came back damaged; an operator decides the refund")
        return
    lines: dict[str, int] = {}
    for ln in event.lines:
        lines[ln.sku] = lines.get(ln.sku, 0) + ln.quantity
    await _refund(ctx, order, event.request_id, lines, request["reason"])


async def _refund(ctx: Ctx, order: Any, request_id: str, lines: dict[str, int],
                  reason: str) -> None:
    snap = OrderSnapshot.model_validate_json(order["snapshot"])
    paid_back, shipping_done = await store.refunded_so_far(ctx.conn, order["order_id"])
    t = snap.totals
    amount = domain.refund_amount(lines, store.ordered_lines(snap), t.subtotal, t.discount,
                                  t.shipping_fee, t.grand_total, reason, paid_back, shipping_done)
    with_shipping = reason in domain.SELLER_FAULT and not shipping_done
    await store.insert_refund(ctx.conn, order["order_id"], request_id, amount, snap.currency,
                              with_shipping)
    await store.set_request_status(ctx.conn, snap.key, request_id, "refunded", f"{amount}")
    await ctx.publish(topics.PAYMENTS_REFUNDS, snap.key, RefundIssued(
        order_id=snap.order_id, store=snap.store, external_order_id=snap.external_order_id,
        request_id=request_id, amount=amount, currency=snap.currency, reason=reason))
    await ctx.status(**_ids(order), status="refunded",
                     details={"request_id": request_id, "amount": f"{amount:.2f}",
                              "currency": snap.currency})


def _ids(order: Any) -> dict[str, Any]:
    store_name, _, ext = order["order_key"].partition(":")
    return {"order_id": str(order["order_id"]), "store": store_name, "external_order_id": ext}


def _warehouse_of(order: Any, sku: str) -> str:
    """Returned goods go back to the warehouse that shipped them."""
    parcels = json.loads(order["parcels"])
    for p in parcels:
        if any(ln["sku"] == sku for ln in p["lines"]):
            return str(p["warehouse"])
    return str(parcels[0]["warehouse"]) if parcels else "WH-LA"


@handlers.on(topics.CUSTOMER_FEEDBACK)
async def feedback(ctx: Ctx, event: FeedbackGiven) -> None:
    await store.insert_feedback(ctx.conn, event.event_id, event.key, event.rating, event.comment,
                                event.occurred_at)
