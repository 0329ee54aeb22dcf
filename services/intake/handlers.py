"""Intake's subscribers: parse -> domain -> store -> emit."""

from __future__ import annotations

import logging
import uuid
from typing import Any

from shared import fx, topics
from shared.contracts import (
    CancelRequested,
    CoverageChanged,
    OrderCancelled,
    OrderCancelRefused,
    OrderCancelRequested,
    OrderPlaced,
    OrderShipped,
    ProductUpserted,
    order_id_for,
    utcnow,
)
from shared.messaging import Ctx, Handlers, RawMessage, emit_cancelled, emit_status
from shared.uow import UnitOfWork

from . import domain, metrics, review, store

log = logging.getLogger(__name__)
handlers = Handlers()
fx.subscribe(handlers)  # exchange rates for money thresholds (shared/fx.py)


async def reject_malformed(uow: UnitOfWork, raw: RawMessage, code: str, message: str) -> bool:
    """An `orders.placed` value that breaks the contract (`malformed`) or is over the size limit
    (`too_large`) but names its order: the order is `rejected` with that code."""
    conn = uow.conn
    ident = domain.identify(raw.json())
    if ident is None:
        return False
    shop, ext = ident
    reasons = [(code, message)]
    order_id = order_id_for(shop, ext)
    if await store.insert_order(conn, order_id, None, shop, ext, "rejected", reasons):
        metrics.DECISIONS.labels("rejected", code).inc()
        await emit_status(conn, order_id=str(order_id), store=shop, external_order_id=ext,
                          status="rejected", reasons=reasons)
        log.info("order %s:%s rejected as %s: %s", shop, ext, code, message[:300])
    return True


@handlers.legacy(topics.ORDERS_PLACED, on_invalid=reject_malformed)
async def order_placed(ctx: Ctx, order: OrderPlaced) -> None:
    row = await store.find_order(ctx.conn, order.store, order.external_order_id)
    if row is not None:
        await _received_again(ctx, order, row)
        return
    order_id = order_id_for(order.store, order.external_order_id)
    ids: dict[str, Any] = {"order_id": str(order_id), "store": order.store,
           "external_order_id": order.external_order_id}
    early = await store.take_early_cancel(ctx.conn, order.store, order.external_order_id)
    if early is not None:  # the customer cancelled before the order reached us
        reasons = [("cancelled_by_customer", early or "cancelled before the order arrived")]
        await store.insert_order(ctx.conn, order_id, order, order.store, order.external_order_id,
                                 "cancelled", reasons)
        due = domain.refund_due(order.totals.grand_total, order.payment.status)
        await emit_cancelled(ctx.conn, **ids, reasons=reasons, refund_due=due,
                             currency=order.currency, correlation_id=ctx.correlation_id,
                             causation_id=str(ctx.event.event_id))
        return
    result, policy = await review.evaluate(ctx.conn, order, order_id, utcnow())
    await store.insert_order(ctx.conn, order_id, order, order.store, order.external_order_id,
                             result.status, result.reasons)
    await review.apply(ctx.conn, order_id, order, None, [], result, policy, trigger="placed",
                       correlation_id=ctx.correlation_id, causation_id=str(order.event_id))


async def _received_again(ctx: Ctx, order: OrderPlaced, row: Any) -> None:
    """A storefront re-sends an order when it changes (payment now paid, address corrected): a
    held order is updated and reviewed again; it never becomes a second order. Retries of the
    same content, and changes to an order already decided, change nothing."""
    same = row["payload"] is not None and _content(store.stored_order(
        row["payload"])) == _content(order)
    if row["status"] != "on_hold" or same:
        log.info("order %s received again (event %s) while %s; nothing to do", order.key,
                 order.event_id, row["status"])
        return
    status = await review.rereview(ctx.conn, row["order_id"], trigger="order_resent",
                                   order=order, causation_id=str(order.event_id))
    log.info("held order %s re-sent (event %s): reviewed again, now %s", row["order_id"],
             order.event_id, status)


def _content(order: OrderPlaced) -> dict[str, Any]:
    return order.model_dump(mode="json", exclude={"event_id", "occurred_at"})


accept = review.accept  # kept for callers of the earlier API


@handlers.legacy(topics.ORDERS_CANCEL_REQUESTED)
async def cancel_requested(ctx: Ctx, event: CancelRequested) -> None:
    """Held orders are cancelled here; accepted ones are handed down the chain, and the service
    holding the order confirms (or, once shipped, refuses)."""
    row = await store.find_order(ctx.conn, event.store, event.external_order_id)
    reason = event.reason or "cancelled by the customer"
    if row is None:
        await store.remember_early_cancel(ctx.conn, event.store, event.external_order_id, reason)
        return
    key = event.key
    if row["status"] in ("rejected", "cancelled", "cancel_requested"):
        log.info("cancel of %s ignored: the order is %s", key, row["status"])
        return
    if row["shipped"]:
        log.info("cancel of %s refused: the order has shipped; aftersales opens a return", key)
        await ctx.publish(topics.INTAKE_ORDER_CANCEL_REFUSED, key, OrderCancelRefused(
            order_id=str(row["order_id"]), order_key=key, reason="the order has shipped",
            customer_reason=reason))
        return
    due = domain.refund_due(row["grand_total"], row["payment_status"])
    if row["status"] == "on_hold":
        reasons = [("cancelled_by_customer", reason)]
        await store.set_status(ctx.conn, row["order_id"], "cancelled", reasons)
        closed = await store.close_hold(ctx.conn, row["order_id"], "cancelled", "customer")
        if closed is not None:
            metrics.HOLD_AGE.labels("cancelled").observe(closed["age_seconds"])
        await review.rereview_open_holds(ctx.conn, trigger="order_cancelled",
                                         codes=["suspected_duplicate"],
                                         causation_id=str(event.event_id))
        await emit_cancelled(ctx.conn, order_id=str(row["order_id"]), store=row["store"],
                             external_order_id=row["external_order_id"], reasons=reasons,
                             refund_due=due, currency=row["currency"],
                             correlation_id=ctx.correlation_id,
                             causation_id=str(event.event_id))
        return
    await store.set_status(ctx.conn, row["order_id"], "cancel_requested", [])
    await ctx.publish(topics.INTAKE_ORDER_CANCEL_REQUESTED, key, OrderCancelRequested(
        order_id=str(row["order_id"]), order_key=key, reason=reason, refund_due=due,
        currency=row["currency"]))


async def _cancelled(ctx: Ctx, event: OrderCancelled) -> None:
    await store.set_status(ctx.conn, uuid.UUID(event.order_id), "cancelled",
                           [("cancelled_by_customer", event.reason)])
    # A hold naming this order as the original of a suspected duplicate may clear now.
    await review.rereview_open_holds(ctx.conn, trigger="order_cancelled",
                                     codes=["suspected_duplicate"],
                                     causation_id=str(event.event_id))


for _topic in (topics.INVENTORY_ORDER_CANCELLED, topics.FULFILLMENT_ORDER_CANCELLED,
               topics.LOGISTICS_ORDER_CANCELLED):
    handlers.legacy(_topic)(_cancelled)


@handlers.legacy(topics.LOGISTICS_ORDER_CANCEL_REFUSED)
async def cancel_refused(ctx: Ctx, event: OrderCancelRefused) -> None:
    """The parcels were with the carrier before the cancellation reached them: the order stays
    shipped, and the cancellation goes to aftersales as a return (refused at the door, or sent
    back with a label), like one intake refuses itself (docs/cancellation.md)."""
    await store.set_status(ctx.conn, uuid.UUID(event.order_id), "accepted", [])
    await store.mark_shipped(ctx.conn, uuid.UUID(event.order_id))
    await ctx.publish(topics.INTAKE_ORDER_CANCEL_REFUSED, event.order_key, OrderCancelRefused(
        order_id=event.order_id, order_key=event.order_key, reason=event.reason,
        customer_reason=event.customer_reason))


@handlers.legacy(topics.CATALOG_PRODUCTS)
async def product_upserted(ctx: Ctx, event: ProductUpserted) -> None:
    await store.upsert_product(ctx.conn, event)


@handlers.legacy(topics.LOGISTICS_COVERAGE_CHANGED)
async def coverage_changed(ctx: Ctx, event: CoverageChanged) -> None:
    await store.set_coverage(ctx.conn, event)
    # Holds for restricted goods clear when a carrier starts taking them there.
    await review.rereview_open_holds(ctx.conn, trigger="coverage_changed",
                                     codes=["restricted_goods"],
                                     causation_id=str(event.event_id))


@handlers.legacy(topics.LOGISTICS_ORDER_SHIPPED)
async def order_shipped(ctx: Ctx, event: OrderShipped) -> None:
    await store.mark_shipped(ctx.conn, uuid.UUID(event.order_id))
