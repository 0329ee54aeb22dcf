"""Intake's subscribers: parse -> domain -> store -> emit."""

from __future__ import annotations

import logging
import uuid
from typing import Any

from pydantic import ValidationError

from shared import topics
from shared.contracts import (
    CancelRequested,
    CoverageChanged,
    OrderAccepted,
    OrderCancelled,
    OrderCancelRefused,
    OrderCancelRequested,
    OrderPlaced,
    OrderShipped,
    OrderSnapshot,
    ProductUpserted,
    utcnow,
)
from shared.db import Conn
from shared.messaging import Ctx, Handlers, RawMessage, describe_validation_error, emit_status
from shared.outbox import enqueue

from . import domain, store

log = logging.getLogger(__name__)
handlers = Handlers()


async def reject_malformed(conn: Conn, raw: RawMessage, exc: ValidationError
                           ) -> bool:
    """A broken `orders.placed` that names its order: the order is `rejected` as `malformed`."""
    ident = domain.identify(raw.json())
    if ident is None:
        return False
    shop, ext = ident
    reasons = [("malformed", describe_validation_error(exc))]
    order_id = uuid.uuid4()
    if await store.insert_order(conn, order_id, None, shop, ext, "rejected", reasons):
        await emit_status(conn, order_id=str(order_id), store=shop, external_order_id=ext,
                          status="rejected", reasons=reasons)
        log.info("order %s:%s rejected as malformed: %s", shop, ext, reasons[0][1])
    return True


@handlers.on(topics.ORDERS_PLACED, on_invalid=reject_malformed)
async def order_placed(ctx: Ctx, order: OrderPlaced) -> None:
    if await store.find_order(ctx.conn, order.store, order.external_order_id):
        log.info("order %s received again (event %s); it exists already, nothing to do",
                 order.key, order.event_id)
        return
    order_id = uuid.uuid4()
    ids: dict[str, Any] = {"order_id": str(order_id), "store": order.store,
           "external_order_id": order.external_order_id}
    early = await store.take_early_cancel(ctx.conn, order.store, order.external_order_id)
    if early is not None:  # the customer cancelled before the order reached us
        reasons = [("cancelled_by_customer", early or "cancelled before the order arrived")]
        await store.insert_order(ctx.conn, order_id, order, order.store, order.external_order_id,
                                 "cancelled", reasons)
        due = domain.refund_due(order.totals.grand_total, order.payment.status)
        await ctx.status(**ids, status="cancelled", reasons=reasons,
                         details={"refund_due": f"{due:.2f}"})
        return
    skus = [ln.sku for ln in order.lines]
    decision = domain.review(
        order, await store.products_for(ctx.conn, skus), await store.served_countries(ctx.conn),
        await store.promotions(ctx.conn, order.promo_codes),
        await store.policy(ctx.conn, order.store), utcnow(),
    )
    await store.insert_order(ctx.conn, order_id, order, order.store, order.external_order_id,
                             decision.status, decision.reasons)
    await ctx.status(**ids, status=decision.status, reasons=decision.reasons)
    if decision.status == "accepted":
        await accept(ctx.conn, order_id, order, ctx.correlation_id, str(order.event_id))


async def accept(conn: Conn, order_id: uuid.UUID, order: OrderPlaced,
                 correlation_id: str | None, causation_id: str | None) -> None:
    snap = OrderSnapshot(**domain.snapshot(str(order_id), order, utcnow()))
    await enqueue(conn, topics.INTAKE_ORDER_ACCEPTED, order.key, OrderAccepted(
        order_id=str(order_id), order_key=order.key, order=snap,
        correlation_id=correlation_id, causation_id=causation_id))


@handlers.on(topics.ORDERS_CANCEL_REQUESTED)
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
        log.info("cancel of %s refused: the order has shipped; offer a return instead", key)
        return
    due = domain.refund_due(row["grand_total"], row["payment_status"])
    if row["status"] == "on_hold":
        reasons = [("cancelled_by_customer", reason)]
        await store.set_status(ctx.conn, row["order_id"], "cancelled", reasons)
        await ctx.status(order_id=str(row["order_id"]), store=row["store"],
                         external_order_id=row["external_order_id"], status="cancelled",
                         reasons=reasons, details={"refund_due": f"{due:.2f}"})
        return
    await store.set_status(ctx.conn, row["order_id"], "cancel_requested", [])
    await ctx.publish(topics.INTAKE_ORDER_CANCEL_REQUESTED, key, OrderCancelRequested(
        order_id=str(row["order_id"]), order_key=key, reason=reason, refund_due=due,
        currency=row["currency"]))


async def _cancelled(ctx: Ctx, event: OrderCancelled) -> None:
    await store.set_status(ctx.conn, uuid.UUID(event.order_id), "cancelled",
                           [("cancelled_by_customer", event.reason)])


for _topic in (topics.INVENTORY_ORDER_CANCELLED, topics.FULFILLMENT_ORDER_CANCELLED,
               topics.LOGISTICS_ORDER_CANCELLED):
    handlers.on(_topic)(_cancelled)


@handlers.on(topics.LOGISTICS_ORDER_CANCEL_REFUSED)
async def cancel_refused(ctx: Ctx, event: OrderCancelRefused) -> None:
    await store.set_status(ctx.conn, uuid.UUID(event.order_id), "accepted", [])
    await store.mark_shipped(ctx.conn, uuid.UUID(event.order_id))


@handlers.on(topics.CATALOG_PRODUCTS)
async def product_upserted(ctx: Ctx, event: ProductUpserted) -> None:
    await store.upsert_product(ctx.conn, event)


@handlers.on(topics.LOGISTICS_COVERAGE_CHANGED)
async def coverage_changed(ctx: Ctx, event: CoverageChanged) -> None:
    await store.set_coverage(ctx.conn, event)


@handlers.on(topics.LOGISTICS_ORDER_SHIPPED)
async def order_shipped(ctx: Ctx, event: OrderShipped) -> None:
    await store.mark_shipped(ctx.conn, uuid.UUID(event.order_id))
