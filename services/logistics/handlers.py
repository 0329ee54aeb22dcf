"""Logistics' subscribers: choose a carrier service for each packed parcel and ship it, follow
carrier tracking to the door, and tell intake which countries and goods can be shipped."""

from __future__ import annotations

import hashlib
import json
import logging
import uuid

from shared import topics
from shared.contracts import (
    CoverageChanged,
    OrderCancelRefused,
    OrderCancelRequested,
    OrderDelivered,
    OrderPacked,
    OrderShipped,
    ShippedParcel,
    TrackingUpdated,
)
from shared.messaging import Ctx, Handlers, PoisonMessage, confirm_cancelled
from shared.outbox import enqueue
from shared.service import Runtime

from . import domain, store

log = logging.getLogger(__name__)
handlers = Handlers()

EXCEPTIONS = {"failed_attempt", "exception", "lost", "returned_to_sender"}


@handlers.on(topics.FULFILLMENT_ORDER_PACKED)
async def order_packed(ctx: Ctx, event: OrderPacked) -> None:
    order_id = uuid.UUID(event.order_id)
    existing = await store.get_order(ctx.conn, order_id)
    if existing is not None:
        if existing["status"] == "cancelled":
            log.warning("order %s was cancelled; its %d packed parcels are not shipped. Unpack"
                        " and return the goods to stock", event.order_key, len(event.parcels))
        return
    snap = event.order
    catalogue = await store.services(ctx.conn)
    choices = []
    for p in event.parcels:
        spec = domain.ParcelSpec(p.warehouse, snap.shipping_address.country, p.weight_g,
                                 (p.dims_mm["l"], p.dims_mm["w"], p.dims_mm["h"]),
                                 tuple(p.attributes))
        choices.append((p, domain.choose(catalogue, spec, snap.shipping_option)))
    waiting = [(p, c) for p, c in choices if c.service is None]
    await store.insert_order(ctx.conn, order_id, event.order_key,
                             "waiting" if waiting else "shipped", len(event.parcels),
                             ctx.correlation_id)
    shipped: list[ShippedParcel] = []
    for p, c in choices:
        number = None
        if c.service is not None:
            number = domain.tracking_number(c.service.tracking_format,
                                            await store.next_tracking_sequence(ctx.conn))
            shipped.append(ShippedParcel(parcel_id=p.parcel_id, warehouse=p.warehouse,
                                         carrier=c.service.carrier, service=c.service.code,
                                         tracking_number=number, lines=p.lines))
        await store.insert_shipment(
            ctx.conn, parcel_id=p.parcel_id, order_id=order_id, warehouse=p.warehouse,
            country=snap.shipping_address.country,
            carrier=c.service.carrier if c.service else None,
            service=c.service.code if c.service else None, tracking_number=number,
            status="shipped" if not waiting else "waiting", weight_g=p.weight_g,
            chargeable_g=c.chargeable_g, cost=c.cost,
            lines=[ln.model_dump() for ln in p.lines], trace=c.trace)
    if waiting:
        why = "; ".join(f"{p.parcel_id}: {c.reason}" for p, c in waiting)
        log.warning("order %s waits for an operator: %s", event.order_key, why)
        await ctx.status(order_id=snap.order_id, store=snap.store,
                         external_order_id=snap.external_order_id, status="delivery_exception",
                         reasons=[("no_eligible_service", why)],
                         details={"tracking_number": None, "reason": "no_eligible_service"})
        return
    await ctx.status(order_id=snap.order_id, store=snap.store,
                     external_order_id=snap.external_order_id, status="shipped",
                     details={"parcels": [{"parcel_id": s.parcel_id, "carrier": s.carrier,
                                           "service": s.service,
                                           "tracking_number": s.tracking_number}
                                          for s in shipped]})
    await ctx.publish(topics.LOGISTICS_ORDER_SHIPPED, event.order_key, OrderShipped(
        order_id=event.order_id, order_key=event.order_key, parcels=shipped))


@handlers.on(topics.FULFILLMENT_ORDER_CANCEL_FORWARDED)
async def cancel_forwarded(ctx: Ctx, event: OrderCancelRequested) -> None:
    """The last word on a cancellation: honoured until the parcels are handed to a carrier."""
    order_id = uuid.UUID(event.order_id)
    row = await store.get_order(ctx.conn, order_id)
    if row is None:  # overtook the packed parcels: they will not ship
        await store.insert_order(ctx.conn, order_id, event.order_key, "cancelled", 0,
                                 ctx.correlation_id)
    elif row["status"] == "waiting":
        await store.set_order_status(ctx.conn, order_id, "cancelled")
    elif row["status"] == "cancelled":
        return
    else:
        log.info("cancel of %s refused: already %s; offer a return instead", event.order_key,
                 row["status"])
        await ctx.publish(topics.LOGISTICS_ORDER_CANCEL_REFUSED, event.order_key,
                          OrderCancelRefused(order_id=event.order_id, order_key=event.order_key,
                                             reason=f"the order has {row['status']}"))
        return
    await confirm_cancelled(ctx, topics.LOGISTICS_ORDER_CANCELLED, event, "logistics")


@handlers.on(topics.CARRIER_TRACKING)
async def tracking_updated(ctx: Ctx, event: TrackingUpdated) -> None:
    shipment = await store.shipment_by_tracking(ctx.conn, event.tracking_number)
    if shipment is None:
        raise PoisonMessage(f"unknown tracking number {event.tracking_number} ({event.carrier})")
    await store.record_tracking(ctx.conn, event.event_id, event.tracking_number, event.status,
                                event.occurred_at, event.location, event.description)
    if shipment["last_event_at"] is not None and event.occurred_at <= shipment["last_event_at"]:
        log.info("tracking %s: %s at %s is older than what we know; kept in history only",
                 event.tracking_number, event.status, event.occurred_at.isoformat())
        return
    await store.update_shipment(ctx.conn, shipment["parcel_id"], event.status, event.occurred_at)
    order = await store.get_order(ctx.conn, shipment["order_id"])
    assert order is not None
    ids = {"order_id": str(order["order_id"]), "store": order["store"],
           "external_order_id": order["external_order_id"]}
    if event.status == "delivered":
        if order["status"] != "delivered" and \
                await store.undelivered_count(ctx.conn, order["order_id"]) == 0:
            await store.set_order_status(ctx.conn, order["order_id"], "delivered")
            await ctx.status(**ids, status="delivered")
            await ctx.publish(topics.LOGISTICS_ORDER_DELIVERED, order["order_key"], OrderDelivered(
                order_id=ids["order_id"], order_key=order["order_key"],
                delivered_at=event.occurred_at, correlation_id=order["correlation_id"]))
    elif event.status in EXCEPTIONS:
        await ctx.status(**ids, status="delivery_exception",
                         reasons=[(event.status, event.description or event.status)],
                         details={"tracking_number": event.tracking_number,
                                  "reason": event.status})


async def publish_coverage(runtime: Runtime) -> None:
    """At start: what we can ship, for intake. Published on every start (cheap, and a fresh
    intake can always learn it even after the topic's retention); consumers keep the newest."""
    async with runtime.pool.acquire() as conn, conn.transaction():
        countries, refused = domain.coverage(await store.services(conn))
        digest = hashlib.sha256(json.dumps([countries, refused]).encode()).hexdigest()[:12]
        await enqueue(conn, topics.LOGISTICS_COVERAGE_CHANGED, "coverage", CoverageChanged(
            countries=countries, refused_attributes=refused, correlation_id=digest))
    log.info("published coverage: %d countries", len(countries))
