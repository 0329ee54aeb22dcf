"""Fulfillment's subscribers: take reserved orders, pick, check and pack them into parcels.

A reserved order waits for its warehouse's next wave (warehouse.py releases waves in the
background). In automatic mode (the local stack's default) picking, scanning and weighing are
simulated; in manual mode warehouse staff do them over HTTP (api.py).

Each handler takes a run of its topic's events in one unit of work (docs/messaging.md).
`inventory.stock_reserved` is the hot path: a constant number of statements per run.
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
from shared.db import read_all
from shared.messaging import (
    Handlers,
    confirm_cancellation,
    forwarded,
)
from shared.parking import (
    handle_parked_cancels,
    order_or_park,
    orders_sweep,
    start_parked_sweep,
    take_parked_cancels_read,
)
from shared.uow import UnitOfWork

from . import domain, store, warehouse

log = logging.getLogger(__name__)
handlers = Handlers()


@handlers.on(topics.INVENTORY_STOCK_RESERVED)
async def stock_reserved(uow: UnitOfWork, events: list[StockReserved]) -> None:
    """Each order joins the next wave of each warehouse it was allocated to. A second
    reservation of an order found short (inventory's answer to `fulfillment.short_picked`)
    re-picks the parts that were short and any warehouse new to the allocation
    (`domain.plan_reserved`).

    Statements per run, whatever its size: the orders' state (1, locked in order_id order,
    with the cancellations parked for them taken), the picks of those found short (at most 1),
    then at most one each to insert the new orders, re-allocate the short ones, drop the picks
    left with nothing, and insert the picks. A cancellation that came before its order is
    handled last, as if it had come after (`shared.messaging.park_cancel`)."""
    ids = sorted({uuid.UUID(e.order_id) for e in events})
    status, parked = await read_all(uow.conn, store.order_statuses_read(ids),
                                    take_parked_cancels_read(ids))
    short = sorted(uuid.UUID(i) for i, s in status.items() if s == "short_picked")
    picks = await store.pick_statuses(uow.conn, short) if short else {}
    reserved = [domain.Reserved(
        e.order_id, e.order_key, [a.model_dump() for a in e.allocations], e.order.customer_id,
        e.order.shipping_address.model_dump(), e.order.shipping_option) for e in events]
    plan = domain.plan_reserved(reserved, status, picks)

    event_of = {id(r): e for r, e in zip(reserved, events, strict=True)}
    if plan.new:
        await store.insert_reserved(uow.conn, [
            (o, event_of[id(o)].order.model_dump_json(),
             str(event_of[id(o)].correlation_id or event_of[id(o)].event_id))
            for o in plan.new])
    if plan.reallocated:
        await store.reallocate(uow.conn, plan.reallocated)
    if plan.dropped:
        await store.drop_picks(uow.conn, plan.dropped)
    if plan.picks:
        await store.insert_picks(uow.conn, plan.picks)
        uow.after_commit(warehouse.PICKS_WAITING.set)

    for event, (outcome, detail) in zip(uow.each(events), plan.outcomes, strict=True):
        if outcome == "reallocated":
            log.info("order %s re-allocated after a short pick: re-picking in %s",
                     event.order_key, detail)
        elif outcome == "ignored":
            log.info("order %s already in fulfillment as %s", event.order_key, detail)
    if plan.new:
        log.info("%d reserved orders wait for their waves", len(plan.new))
    await handle_parked_cancels(uow, (uuid.UUID(e.order_id) for e in events), parked, _cancel)


@handlers.on(topics.INVENTORY_ORDER_CANCEL_FORWARDED)
async def cancel_forwarded(uow: UnitOfWork, events: list[OrderCancelRequested]) -> None:
    """Before packing, the work stops here (the picked goods go back to their bins); after, the
    parcels are logistics' and so is the cancellation. Rare: one event at a time. One that
    overtook the reservation is parked and handled in the reservation's run, right after it."""
    for event in uow.each(events):
        await _cancel(uow, event)


async def _cancel(uow: UnitOfWork, event: OrderCancelRequested) -> None:
    """One cancellation, with `event` the unit of work's cause."""
    order_id = uuid.UUID(event.order_id)
    row = await order_or_park(uow, event, store.get_order)
    if row is None:
        return
    if row["status"] in ("awaiting_pick", "picking", "short_picked", "on_hold"):
        await store.set_status(uow.conn, order_id, "cancelled")
        for wave_id in await store.cancel_picks(uow.conn, order_id):
            await store.close_wave_if_done(uow.conn, wave_id)
        log.info("order %s cancelled before packing; picking stopped, goods back to their"
                 " bins", event.order_key)
    elif row["status"] == "cancelled":
        return
    else:
        await uow.publish(topics.FULFILLMENT_ORDER_CANCEL_FORWARDED, event.order_key,
                          forwarded(event))
        return
    await confirm_cancellation(uow, topics.FULFILLMENT_ORDER_CANCELLED, event, "fulfillment")


@handlers.on(topics.CATALOG_PRODUCTS)
async def product_upserted(uow: UnitOfWork, events: list[ProductUpserted]) -> None:
    """Weights, sizes and attributes for packing; a new SKU gets its seed bin."""
    for event in uow.each(events):
        await store.upsert_product(uow.conn, event)
        await store.seed_bin(uow.conn, event.sku)
    uow.forget(store.PRODUCTS)


# A cancellation parked while another instance was inserting its order (shared/parking.py).
start_sweep = start_parked_sweep(orders_sweep(_cancel))
