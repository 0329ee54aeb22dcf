"""Inventory's subscribers: reserve accepted orders, backorder what is short, refill backorders
on restock (oldest first), release on cancellation, commit on dispatch."""

from __future__ import annotations

import json
import logging
import uuid
from typing import Any

from shared import topics
from shared.contracts import (
    OrderAccepted,
    OrderCancelled,
    OrderCancelRequested,
    OrderShipped,
    OrderSnapshot,
    ProductUpserted,
    ReturnRestocked,
    StockAdjusted,
    StockReserved,
)
from shared.db import Conn
from shared.messaging import Ctx, Handlers, PoisonMessage, confirm_cancelled, emit_status, forwarded
from shared.outbox import enqueue

from . import domain, store
from .domain import Line, Plan

log = logging.getLogger(__name__)
handlers = Handlers()


async def allocate(conn: Conn, order_id: uuid.UUID, snap: OrderSnapshot,
                   event_id: uuid.UUID) -> Plan | None:
    """Try the plans best first; each attempt in a savepoint, so a lost race just moves on."""
    lines = [Line(ln.sku, ln.quantity) for ln in snap.lines]
    available = await store.available(conn, sorted({ln.sku for ln in lines}))
    plans = domain.single_warehouse_plans(lines, snap.shipping_address.country, available,
                                          await store.priorities(conn))
    for plan in plans:
        try:
            async with conn.transaction():
                await store.reserve(conn, order_id, plan, event_id)
            return plan
        except store.StockGone as gone:
            log.info("order %s: %s was taken meanwhile; trying the next warehouse", order_id, gone)
    return None


def _allocations(plan: Plan) -> list[dict[str, Any]]:
    return [{"warehouse": wh, "lines": [{"sku": ln.sku, "quantity": ln.quantity} for ln in lines]}
            for wh, lines in plan.allocations.items()]


async def _announce_reserved(conn: Conn, snap: OrderSnapshot, plan: Plan,
                             correlation_id: str | None, causation_id: str) -> None:
    allocations = _allocations(plan)
    await emit_status(conn, order_id=snap.order_id, store=snap.store,
                      external_order_id=snap.external_order_id, status="reserved",
                      details={"allocations": allocations}, correlation_id=correlation_id,
                      causation_id=causation_id)
    await enqueue(conn, topics.INVENTORY_STOCK_RESERVED, snap.key, StockReserved(
        order_id=snap.order_id, order_key=snap.key, order=snap,
        allocations=allocations,
        correlation_id=correlation_id, causation_id=causation_id))


@handlers.on(topics.INTAKE_ORDER_ACCEPTED)
async def order_accepted(ctx: Ctx, event: OrderAccepted) -> None:
    order_id = uuid.UUID(event.order_id)
    existing = await store.get_order(ctx.conn, order_id)
    if existing is not None:
        log.info("order %s already known to inventory as %s", event.order_key, existing["status"])
        return
    snap = event.order
    plan = await allocate(ctx.conn, order_id, snap, event.event_id)
    if plan is not None:
        await store.insert_order(ctx.conn, snap, order_id, event.order_key, "reserved",
                                 ctx.correlation_id, _allocations(plan))
        await _announce_reserved(ctx.conn, snap, plan, ctx.correlation_id, str(event.event_id))
        return
    lines = [Line(ln.sku, ln.quantity) for ln in snap.lines]
    short = domain.short_lines(lines, await store.available(ctx.conn, [ln.sku for ln in lines]))
    await store.insert_order(ctx.conn, snap, order_id, event.order_key, "backordered",
                             ctx.correlation_id, short=short)
    await ctx.status(order_id=snap.order_id, store=snap.store,
                     external_order_id=snap.external_order_id, status="backordered",
                     reasons=[("out_of_stock", "not enough stock in any one warehouse")],
                     details={"short_lines": [{"sku": s.sku, "quantity": s.quantity}
                                              for s in short],
                              "substitutes": {}, "restock_eta": None})


# aftersales: replacement orders (exchange, reship) are reserved like any accepted order.
handlers.on(topics.AFTERSALES_REPLACEMENT_ORDERED)(order_accepted)


async def refill_backorders(ctx: Ctx) -> int:
    """Reserve waiting orders that the stock now covers, oldest first."""
    filled = 0
    for row in await store.backordered(ctx.conn):
        snap = OrderSnapshot.model_validate_json(row["snapshot"])
        plan = await allocate(ctx.conn, row["order_id"], snap, ctx.event.event_id)
        if plan is None:
            continue
        await store.update_order(ctx.conn, row["order_id"], "reserved", _allocations(plan), [])
        await _announce_reserved(ctx.conn, snap, plan, row["correlation_id"],
                                 str(ctx.event.event_id))
        filled += 1
    if filled:
        log.info("restock filled %d backordered orders", filled)
    return filled


@handlers.on(topics.STOCK_ADJUSTMENTS)
async def stock_adjusted(ctx: Ctx, event: StockAdjusted) -> None:
    if not await store.warehouse_exists(ctx.conn, event.warehouse):
        raise PoisonMessage(f"unknown warehouse {event.warehouse!r} for {event.sku}; add it to"
                            " inventory.warehouses, then replay the DLQ")
    drift = await store.adjust(ctx.conn, event)
    if drift:
        log.warning("stock %s@%s: %s of %d leaves %d reserved units not on hand; count again",
                    event.sku, event.warehouse, event.kind, event.quantity, drift)
    if event.kind == "received":
        await refill_backorders(ctx)


@handlers.on(topics.AFTERSALES_RETURN_RESTOCKED)
async def return_restocked(ctx: Ctx, event: ReturnRestocked) -> None:
    for ln in event.lines:
        await store.add_on_hand(ctx.conn, ln.sku, event.warehouse, ln.quantity, "return",
                                f"return {event.request_id}", event.event_id,
                                uuid.UUID(event.order_id))
    await refill_backorders(ctx)


@handlers.on(topics.INTAKE_ORDER_CANCEL_REQUESTED)
async def cancel_requested(ctx: Ctx, event: OrderCancelRequested) -> None:
    """Confirm while the order is still ours (unknown, backordered); once reserved it has moved
    on to fulfillment, so the request follows it there."""
    order_id = uuid.UUID(event.order_id)
    row = await store.get_order(ctx.conn, order_id)
    if row is None:  # the cancellation overtook the order: remember, so it is never reserved
        await store.insert_order(ctx.conn, None, order_id, event.order_key, "cancelled",
                                 ctx.correlation_id)
    elif row["status"] == "backordered":
        await store.update_order(ctx.conn, order_id, "cancelled")
    elif row["status"] == "cancelled":
        return
    else:
        await ctx.publish(topics.INVENTORY_ORDER_CANCEL_FORWARDED, event.order_key,
                          forwarded(event))
        return
    await confirm_cancelled(ctx, topics.INVENTORY_ORDER_CANCELLED, event, "inventory")


async def release_cancelled(ctx: Ctx, event: OrderCancelled) -> None:
    """Fulfillment or logistics confirmed a cancellation: the reserved goods are free again."""
    order_id = uuid.UUID(event.order_id)
    row = await store.get_order(ctx.conn, order_id)
    if row is None or row["status"] != "reserved":
        return
    await store.release(ctx.conn, order_id, json.loads(row["allocations"]), event.event_id)
    await store.update_order(ctx.conn, order_id, "cancelled")
    await refill_backorders(ctx)


for _topic in (topics.FULFILLMENT_ORDER_CANCELLED, topics.LOGISTICS_ORDER_CANCELLED):
    handlers.on(_topic)(release_cancelled)


@handlers.on(topics.LOGISTICS_ORDER_SHIPPED)
async def order_shipped(ctx: Ctx, event: OrderShipped) -> None:
    order_id = uuid.UUID(event.order_id)
    row = await store.get_order(ctx.conn, order_id)
    if row is None or row["status"] != "reserved":
        log.warning("order %s shipped but inventory has it as %s; nothing committed",
                    event.order_key, row["status"] if row else "unknown")
        return
    shipped = [(p.warehouse, ln.sku, ln.quantity) for p in event.parcels for ln in p.lines]
    await store.commit_shipped(ctx.conn, order_id, shipped, event.event_id)
    await store.update_order(ctx.conn, order_id, "committed")


@handlers.on(topics.CATALOG_PRODUCTS)
async def product_upserted(ctx: Ctx, event: ProductUpserted) -> None:
    await store.upsert_product(ctx.conn, event)
