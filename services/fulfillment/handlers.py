"""Fulfillment's subscribers: take reserved orders, pick, check and pack them into parcels.

A reserved order waits for its warehouse's next wave (warehouse.py releases waves in the
background). In automatic mode (the local stack's default) picking, scanning and weighing are
simulated; in manual mode warehouse staff do them over HTTP (api.py).
"""

from __future__ import annotations

import logging
import uuid

from shared import topics
from shared.contracts import (
    OrderCancelRequested,
    ProductUpserted,
    StockReserved,
)
from shared.messaging import Ctx, Handlers, confirm_cancelled, forwarded

from . import store, warehouse

log = logging.getLogger(__name__)
handlers = Handlers()


@handlers.legacy(topics.INVENTORY_STOCK_RESERVED)
async def stock_reserved(ctx: Ctx, event: StockReserved) -> None:
    """The order joins the next wave of each warehouse it was allocated to. A second reservation
    of an order found short (inventory's answer to `fulfillment.short_picked`) re-picks the
    parts that were short and any warehouse new to the allocation."""
    order_id = uuid.UUID(event.order_id)
    allocations = [a.model_dump() for a in event.allocations]
    existing = await store.get_order(ctx.conn, order_id)
    if existing is None:
        await store.insert_order(ctx.conn, order_id, event.order_key, "awaiting_pick",
                                 event.order, allocations, ctx.correlation_id)
        await warehouse.enqueue_picks(ctx.conn, order_id, event.order, allocations)
    elif existing["status"] == "short_picked":
        picks = {p["warehouse"]: p["status"] for p in await store.order_picks(ctx.conn, order_id)}
        again = {a["warehouse"] for a in allocations
                 if picks.get(a["warehouse"], "short") == "short"}
        # A warehouse whose whole part was short and moved elsewhere has nothing left to pick:
        # its pick drops out, or the order would wait for it forever.
        for wh in sorted(w for w, st in picks.items()
                         if st == "short" and w not in {a["warehouse"] for a in allocations}):
            await store.set_pick(ctx.conn, order_id, wh, status="cancelled")
        await store.set_allocations(ctx.conn, order_id, allocations)
        await warehouse.enqueue_picks(ctx.conn, order_id, event.order, allocations, again)
        await store.set_status(ctx.conn, order_id, "awaiting_pick")
        log.info("order %s re-allocated after a short pick: re-picking in %s", event.order_key,
                 ", ".join(sorted(again)) or "no warehouse")
    else:
        log.info("order %s already in fulfillment as %s", event.order_key, existing["status"])


@handlers.legacy(topics.INVENTORY_ORDER_CANCEL_FORWARDED)
async def cancel_forwarded(ctx: Ctx, event: OrderCancelRequested) -> None:
    """Before packing, the work stops here (the picked goods go back to their bins); after, the
    parcels are logistics' and so is the cancellation."""
    order_id = uuid.UUID(event.order_id)
    row = await store.get_order(ctx.conn, order_id)
    if row is None:  # overtook the reservation: never start work on it
        await store.insert_order(ctx.conn, order_id, event.order_key, "cancelled", None, [],
                                 ctx.correlation_id)
    elif row["status"] in ("awaiting_pick", "picking", "short_picked", "on_hold"):
        await store.set_status(ctx.conn, order_id, "cancelled")
        for wave_id in await store.cancel_picks(ctx.conn, order_id):
            await store.close_wave_if_done(ctx.conn, wave_id)
        log.info("order %s cancelled before packing; picking stopped, goods back to their bins",
                 event.order_key)
    elif row["status"] == "cancelled":
        return
    else:
        await ctx.publish(topics.FULFILLMENT_ORDER_CANCEL_FORWARDED, event.order_key,
                          forwarded(event))
        return
    await confirm_cancelled(ctx, topics.FULFILLMENT_ORDER_CANCELLED, event, "fulfillment")


@handlers.legacy(topics.CATALOG_PRODUCTS)
async def product_upserted(ctx: Ctx, event: ProductUpserted) -> None:
    await store.upsert_product(ctx.conn, event)
    await store.seed_bin(ctx.conn, event.sku)
