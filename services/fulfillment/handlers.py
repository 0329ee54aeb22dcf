"""Fulfillment's subscribers: take reserved orders, pick, check and pack them into parcels.

In automatic mode (the local stack's default) picking, scanning and weighing are simulated and an
order is packed as soon as it is reserved; in manual mode it waits for warehouse staff (api.py).
"""

from __future__ import annotations

import json
import logging
import uuid
from collections import Counter
from decimal import Decimal
from typing import Any

import asyncpg

from shared import topics
from shared.contracts import (
    OrderCancelRequested,
    OrderPacked,
    OrderSnapshot,
    Parcel,
    ProductUpserted,
    StockReserved,
)
from shared.db import Conn
from shared.messaging import Ctx, Handlers, confirm_cancelled, emit_status, forwarded
from shared.outbox import enqueue
from shared.settings import get_settings

from . import domain, store

log = logging.getLogger(__name__)
handlers = Handlers()


@handlers.on(topics.INVENTORY_STOCK_RESERVED)
async def stock_reserved(ctx: Ctx, event: StockReserved) -> None:
    order_id = uuid.UUID(event.order_id)
    existing = await store.get_order(ctx.conn, order_id)
    if existing is not None:
        log.info("order %s already in fulfillment as %s", event.order_key, existing["status"])
        return
    allocations = [a.model_dump() for a in event.allocations]
    await store.insert_order(ctx.conn, order_id, event.order_key, "awaiting_pick", event.order,
                             allocations, ctx.correlation_id)
    if get_settings().shopkeeper_warehouse_mode == "automatic":
        row = await store.get_order(ctx.conn, order_id)
        assert row is not None
        await pack(ctx.conn, row, str(event.event_id))


async def pack(conn: Conn, row: asyncpg.Record, causation_id: str | None) -> list[Parcel]:
    """Box every allocation's items, record the parcels, announce `packed`."""
    snap = OrderSnapshot.model_validate_json(row["snapshot"])
    prices = {ln.sku: ln.unit_price for ln in reversed(snap.lines)}
    box_catalogue = await store.boxes(conn)
    parcels: list[Parcel] = []
    for alloc in json.loads(row["allocations"]):
        units = await store.items(conn, [(ln["sku"], ln["quantity"]) for ln in alloc["lines"]])
        for packed in domain.choose_boxes(units, box_catalogue):
            counts = Counter(i.sku for i in packed.items)
            lines = [{"sku": sku, "quantity": q} for sku, q in sorted(counts.items())]
            parcel_id = f"P-{row['order_id'].hex[:12]}-{len(parcels) + 1}"
            attributes = sorted({a for i in packed.items for a in i.attributes})
            value = sum((prices.get(sku, Decimal("0")) * q for sku, q in counts.items()),
                        Decimal("0"))
            parcel = Parcel(parcel_id=parcel_id, warehouse=alloc["warehouse"],
                            box=packed.box.code, weight_g=packed.weight_g,
                            dims_mm=domain.outer_dims(packed.box), lines=lines,
                            attributes=attributes, declared_value=value)
            await store.insert_parcel(conn, parcel_id, row["order_id"], alloc["warehouse"],
                                      packed.box.code, packed.weight_g, lines)
            parcels.append(parcel)
    await store.set_status(conn, row["order_id"], "packed")
    details: dict[str, Any] = {"parcels": [
        {"parcel_id": p.parcel_id, "warehouse": p.warehouse, "box": p.box, "weight_g": p.weight_g}
        for p in parcels]}
    await emit_status(conn, order_id=snap.order_id, store=snap.store,
                      external_order_id=snap.external_order_id, status="packed", details=details,
                      correlation_id=row["correlation_id"], causation_id=causation_id)
    await enqueue(conn, topics.FULFILLMENT_ORDER_PACKED, snap.key, OrderPacked(
        order_id=snap.order_id, order_key=snap.key, order=snap, parcels=parcels,
        correlation_id=row["correlation_id"], causation_id=causation_id))
    return parcels


@handlers.on(topics.INVENTORY_ORDER_CANCEL_FORWARDED)
async def cancel_forwarded(ctx: Ctx, event: OrderCancelRequested) -> None:
    """Before packing, the work stops here (the picked goods go back to their bins); after, the
    parcels are logistics' and so is the cancellation."""
    order_id = uuid.UUID(event.order_id)
    row = await store.get_order(ctx.conn, order_id)
    if row is None:  # overtook the reservation: never start work on it
        await store.insert_order(ctx.conn, order_id, event.order_key, "cancelled", None, [],
                                 ctx.correlation_id)
    elif row["status"] == "awaiting_pick":
        await store.set_status(ctx.conn, order_id, "cancelled")
        log.info("order %s cancelled before packing; picking stopped", event.order_key)
    elif row["status"] == "cancelled":
        return
    else:
        await ctx.publish(topics.FULFILLMENT_ORDER_CANCEL_FORWARDED, event.order_key,
                          forwarded(event))
        return
    await confirm_cancelled(ctx, topics.FULFILLMENT_ORDER_CANCELLED, event, "fulfillment")


@handlers.on(topics.CATALOG_PRODUCTS)
async def product_upserted(ctx: Ctx, event: ProductUpserted) -> None:
    await store.upsert_product(ctx.conn, event)
