"""Logistics' subscribers: choose a carrier service for each packed parcel and ship it, follow
carrier tracking to the door, and tell intake which countries and goods can be shipped."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import asyncpg
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared import fx, topics
from shared.contracts import (
    CarrierScored,
    CoverageChanged,
    OrderCancelRefused,
    OrderCancelRequested,
    OrderDelivered,
    OrderPacked,
    OrderShipped,
    OrderSnapshot,
    ParcelLost,
    ParcelReturned,
    ProductUpserted,
    ReturnLabelIssued,
    ReturnLabelRequested,
    ShippedParcel,
    TrackingUpdated,
)
from shared.db import Conn, try_xact_lock
from shared.messaging import Ctx, Handlers, PoisonMessage, confirm_cancelled, emit_status
from shared.outbox import enqueue
from shared.service import Runtime
from shared.settings import get_settings

from . import domain, metrics, store

log = logging.getLogger(__name__)
handlers = Handlers()
fx.subscribe(handlers)  # exchange rates for money thresholds (shared/fx.py)

EXCEPTIONS = {"failed_attempt", "exception", "lost", "returned_to_sender"}


@handlers.legacy(topics.FULFILLMENT_ORDER_PACKED)
async def order_packed(ctx: Ctx, event: OrderPacked) -> None:
    """Choose a service for each parcel (with its trace), give it a tracking number and a label,
    draw up customs papers when it crosses a border, then the final check at the dock: all
    parcels pass -> `shipped`; any is held -> the order waits for an operator (or for the
    missing product data) with the reasons."""
    order_id = uuid.UUID(event.order_id)
    existing = await store.get_order(ctx.conn, order_id)
    if existing is not None:
        if existing["status"] == "cancelled":
            log.warning("order %s was cancelled; its %d packed parcels are not shipped. Unpack"
                        " and return the goods to stock", event.order_key, len(event.parcels))
        return
    # fulfillment: a merged parcel (one buyer's orders packed together) comes once per order,
    # with the same parcel_ids. The first order's shipments carry it; a later order ships with
    # their carrier and tracking number once they are handed over (its own lines, so inventory
    # commits per order). Known gap: if those shipments are still held, it waits unannounced.
    shared = await store.shipments_by_parcels(ctx.conn, [p.parcel_id for p in event.parcels])
    if shared and len(shared) == len(event.parcels):
        snap = event.order
        await store.insert_order(ctx.conn, order_id, event.order_key, "waiting",
                                 len(event.parcels), ctx.correlation_id, snap.model_dump_json())
        await store.link_parcels(ctx.conn, order_id,
                                 {p.parcel_id: [ln.model_dump() for ln in p.lines]
                                  for p in event.parcels})
        if any(r["status"] == "held" for r in shared.values()):
            log.warning("order %s shares held parcels %s; it ships with them", event.order_key,
                        ", ".join(sorted(shared)))
            return
        await store.set_order_status(ctx.conn, order_id, "shipped")
        merged = [ShippedParcel(parcel_id=p.parcel_id, warehouse=p.warehouse,
                                carrier=shared[p.parcel_id]["carrier"],
                                service=shared[p.parcel_id]["service"],
                                tracking_number=shared[p.parcel_id]["tracking_number"],
                                lines=p.lines) for p in event.parcels]
        await ctx.status(order_id=snap.order_id, store=snap.store,
                         external_order_id=snap.external_order_id, status="shipped",
                         details=shipped_details(merged))
        await ctx.publish(topics.LOGISTICS_ORDER_SHIPPED, event.order_key, OrderShipped(
            order_id=snap.order_id, order_key=event.order_key, parcels=merged,
            correlation_id=ctx.correlation_id, causation_id=str(event.event_id)))
        return
    snap = event.order
    catalogue = await store.services(ctx.conn)
    choices = []
    for p in event.parcels:
        spec = domain.ParcelSpec(p.warehouse, snap.shipping_address.country, p.weight_g,
                                 (p.dims_mm["l"], p.dims_mm["w"], p.dims_mm["h"]),
                                 tuple(p.attributes), snap.shipping_address.postal_code)
        choices.append((p, domain.choose(catalogue, spec, snap.shipping_option)))
    await store.insert_order(ctx.conn, order_id, event.order_key, "waiting", len(event.parcels),
                             ctx.correlation_id, snap.model_dump_json())
    for p, c in choices:
        number = None
        if c.service is not None:
            number = await store.free_tracking_number(ctx.conn, c.service.tracking_format,
                                                      p.parcel_id)
        await store.insert_shipment(
            ctx.conn, parcel_id=p.parcel_id, order_id=order_id, warehouse=p.warehouse,
            country=snap.shipping_address.country,
            carrier=c.service.carrier if c.service else None,
            service=c.service.code if c.service else None, tracking_number=number,
            weight_g=p.weight_g, chargeable_g=c.chargeable_g, cost=c.cost,
            lines=[ln.model_dump() for ln in p.lines], trace=c.trace,
            zone=c.rate.zone if c.rate else None,
            transit_max=c.rate.transit_max if c.rate else None,
            declared_value=p.declared_value, customs=None,
            hold_reasons=[] if c.service else [{"code": "no_eligible_service",
                                                "message": c.reason or ""}])
    waiting = [(p, c) for p, c in choices if c.service is None]
    if waiting:
        why = "; ".join(f"{p.parcel_id}: {c.reason}" for p, c in waiting)
        log.warning("order %s waits for an operator: %s", event.order_key, why)
        metrics.PARCELS_HELD.labels("no_eligible_service").inc(len(waiting))
        await ctx.status(order_id=snap.order_id, store=snap.store,
                         external_order_id=snap.external_order_id, status="delivery_exception",
                         reasons=[("no_eligible_service", why)],
                         details={"tracking_number": None, "reason": "no_eligible_service"})
        return
    row = await store.get_order(ctx.conn, order_id)
    assert row is not None
    await check_and_dispatch(ctx.conn, row, snap, str(event.event_id))


async def check_and_dispatch(conn: Conn, order: asyncpg.Record, snap: OrderSnapshot,
                             causation_id: str | None) -> bool:
    """The final check of every parcel of a waiting order (weight at the dock against the label,
    address, customs); all pass -> hand them over and announce `shipped`. Held parcels keep
    their reasons; `on_hold` is announced when the reasons change (a re-check that fails the
    same way says nothing new). With SHOPKEEPER_WAREHOUSE_MODE=manual a parcel also waits for
    its dock scan (POST /parcels/{id}/dock-scan). True when shipped."""
    rows = await store.shipments_of_order(conn, order["order_id"])
    if any(r["service"] is None for r in rows):
        return False
    before = {(r["parcel_id"], h["code"]) for r in rows for h in json.loads(r["hold_reasons"])}
    manual = get_settings().shopkeeper_warehouse_mode == "manual"
    unscanned = [r["parcel_id"] for r in rows if manual and r["measured_weight_g"] is None]
    houses = await store.warehouses(conn)
    products = await store.products(conn, {ln["sku"] for r in rows
                                           for ln in json.loads(r["lines"])})
    prices = {ln.sku: ln.unit_price for ln in reversed(snap.lines)}
    address = snap.shipping_address.model_dump()
    held: list[tuple[str, str, str]] = []
    for r in rows:
        origin = houses[r["warehouse"]]["country"] if r["warehouse"] in houses else "??"
        customs = None
        if domain.needs_customs(origin, r["country"]):
            customs = domain.declaration(
                [(ln["sku"], ln["quantity"]) for ln in json.loads(r["lines"])], products,
                prices, snap.currency, await fx.rates(conn),
                domain.ioss_for(r["country"], snap.ioss_number))
        # Automatic warehouse: the dock scale reads what packing weighed. Manual: only a real
        # dock scan counts, and until there is one the weight is not judged (nor stored).
        label_g = r["label_weight_g"] or r["weight_g"]
        reading = r["measured_weight_g"] if manual else (r["measured_weight_g"] or r["weight_g"])
        problems = domain.dispatch_problems(label_g, reading if reading is not None else label_g,
                                            address, customs)
        await store.set_checked(conn, r["parcel_id"], customs.as_dict() if customs else None,
                                [{"code": c, "message": m} for c, m in problems], reading)
        held += [(r["parcel_id"], c, m) for c, m in problems]
    ids: dict[str, Any] = {"order_id": snap.order_id, "store": snap.store,
                           "external_order_id": snap.external_order_id}
    if held:
        log.warning("order %s held at the dock: %s", order["order_key"],
                    ", ".join(f"{pid} {code}" for pid, code, _ in held))
        if {(pid, code) for pid, code, _ in held} != before:
            for _, code, _ in held:
                metrics.PARCELS_HELD.labels(code).inc()
            await emit_status(conn, **ids, status="on_hold",
                              reasons=[(code, f"{pid}: {msg}") for pid, code, msg in held],
                              details={"parcels": sorted({pid for pid, _, _ in held})},
                              correlation_id=order["correlation_id"], causation_id=causation_id)
        return False
    if unscanned:
        log.info("order %s waits for the dock scan of %s", order["order_key"],
                 ", ".join(unscanned))
        return False
    await store.mark_shipped(conn, order["order_id"])
    await store.set_order_status(conn, order["order_id"], "shipped")
    shipped = [ShippedParcel(parcel_id=r["parcel_id"], warehouse=r["warehouse"],
                             carrier=r["carrier"], service=r["service"],
                             tracking_number=r["tracking_number"],
                             lines=json.loads(r["lines"])) for r in rows]
    for r in rows:
        metrics.PARCELS_SHIPPED.labels(r["carrier"], r["service"]).inc()
        metrics.SHIPPING_COST.labels(r["carrier"], r["service"], r["cost_currency"]).inc(
            float(r["cost"] or 0))
    await emit_status(conn, **ids, status="shipped", details=shipped_details(shipped),
                      correlation_id=order["correlation_id"], causation_id=causation_id)
    await enqueue(conn, topics.LOGISTICS_ORDER_SHIPPED, order["order_key"], OrderShipped(
        order_id=snap.order_id, order_key=order["order_key"], parcels=shipped,
        correlation_id=order["correlation_id"], causation_id=causation_id))
    return True


def shipped_details(parcels: list[ShippedParcel]) -> dict[str, Any]:
    """`shipped` on orders.status: every parcel with its carrier, tracking number and (v1.1) the
    order's lines in it, so a channel can tell its platform which items went in which parcel."""
    return {"parcels": [{"parcel_id": s.parcel_id, "carrier": s.carrier, "service": s.service,
                         "tracking_number": s.tracking_number,
                         "lines": [{"sku": ln.sku, "quantity": ln.quantity} for ln in s.lines]}
                        for s in parcels]}


@handlers.legacy(topics.CATALOG_PRODUCTS)
async def product_upserted(ctx: Ctx, event: ProductUpserted) -> None:
    """Keep what customs declarations need; new data may complete a held parcel's papers, so
    orders waiting on this SKU are checked again."""
    product = domain.Product(event.sku, event.name, event.hs_code, event.origin_country,
                             event.weight_g)
    if not await store.upsert_product(ctx.conn, product, event.occurred_at):
        return
    for order_id in await store.orders_held_for(ctx.conn, event.sku):
        order = await store.get_order(ctx.conn, order_id)
        if order is None or order["status"] != "waiting" or order["snapshot"] is None:
            continue
        snap = OrderSnapshot.model_validate_json(order["snapshot"])
        if await check_and_dispatch(ctx.conn, order, snap, str(event.event_id)):
            log.info("order %s released: product %s completed its papers", order["order_key"],
                     event.sku)


@handlers.legacy(topics.ANALYTICS_CARRIER_SCORES)
async def carrier_score(ctx: Ctx, event: CarrierScored) -> None:
    """Analytics scores a service per destination country; selection works per zone, so the
    score goes to every zone of that service that covers the country."""
    for zone in await store.zones_of(ctx.conn, event.service, event.country):
        await store.set_analytics_score(ctx.conn, event.service, zone,
                                        Decimal(str(event.on_time_rate)), event.samples)


@handlers.legacy(topics.FULFILLMENT_ORDER_CANCEL_FORWARDED)
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
                                             reason=f"the order has {row['status']}",
                                             customer_reason=event.reason))
        return
    await confirm_cancelled(ctx, topics.LOGISTICS_ORDER_CANCELLED, event, "logistics")


@handlers.legacy(topics.CARRIER_TRACKING)
async def tracking_updated(ctx: Ctx, event: TrackingUpdated) -> None:
    shipment = await store.shipment_by_tracking(ctx.conn, event.tracking_number)
    if shipment is None:
        raise PoisonMessage(f"unknown tracking number {event.tracking_number} ({event.carrier})")
    await store.record_tracking(ctx.conn, event.event_id, event.tracking_number, event.status,
                                event.occurred_at, event.location, event.description)
    if shipment["shipped_at"] is None:
        log.warning("tracking %s: %s for a parcel not handed over yet; kept in history only",
                    event.tracking_number, event.status)
        return
    if not domain.supersedes(event.occurred_at, shipment["last_event_at"]):
        log.info("tracking %s: %s at %s is older than what we know; kept in history only",
                 event.tracking_number, event.status, event.occurred_at.isoformat())
        return
    first_time_as = shipment["status"] != event.status
    punctual = None
    if event.status == "delivered" and first_time_as:
        punctual = domain.on_time(shipment["shipped_at"], event.occurred_at,
                                  shipment["transit_max"] or 0)
        await store.record_delivery_score(ctx.conn, shipment["service"], shipment["zone"] or "-",
                                          punctual)
        metrics.PARCELS_DELIVERED.labels(shipment["carrier"], shipment["service"],
                                         str(punctual).lower()).inc()
    await store.update_shipment(ctx.conn, shipment["parcel_id"], event.status, event.occurred_at,
                                punctual)
    for order in await store.orders_of_parcel(ctx.conn, shipment["parcel_id"],
                                              shipment["order_id"]):
        await _track_order(ctx, order, shipment, event, first_time_as)


async def _track_order(ctx: Ctx, order: Any, shipment: Any, event: TrackingUpdated,
                       first_time_as: bool) -> None:
    """What a scan of one of its parcels means for an order (a merged parcel has several)."""
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
        metrics.EXCEPTIONS.labels(shipment["carrier"], event.status).inc()
        await ctx.status(**ids, status="delivery_exception",
                         reasons=[(event.status, event.description or event.status)],
                         details={"tracking_number": event.tracking_number,
                                  "reason": event.status})
        # A merged parcel: this order's own share of it (the owner's are the shipment's lines);
        # an order with nothing in it has nothing to reship or refund.
        lines = json.loads(order["own_lines"] or shipment["lines"])
        if event.status == "lost" and first_time_as and lines:
            log.warning("order %s: parcel %s lost by %s; asking aftersales for a reship",
                        order["order_key"], shipment["parcel_id"], shipment["carrier"])
            await ctx.publish(topics.LOGISTICS_PARCEL_LOST, order["order_key"], ParcelLost(
                order_id=ids["order_id"], order_key=order["order_key"],
                parcel_id=shipment["parcel_id"], tracking_number=event.tracking_number,
                carrier=shipment["carrier"], lines=lines,
                correlation_id=order["correlation_id"]))
        if event.status == "returned_to_sender" and first_time_as and lines:
            # Once per parcel: a repeated scan is not a second parcel coming back.
            log.warning("order %s: parcel %s back at %s (returned to sender by %s); aftersales"
                        " restocks and refunds", order["order_key"], shipment["parcel_id"],
                        shipment["warehouse"], shipment["carrier"])
            await ctx.publish(topics.LOGISTICS_PARCEL_RETURNED, order["order_key"],
                              ParcelReturned(
                order_id=ids["order_id"], order_key=order["order_key"],
                parcel_id=shipment["parcel_id"], tracking_number=event.tracking_number,
                carrier=shipment["carrier"], warehouse=shipment["warehouse"], lines=lines,
                correlation_id=order["correlation_id"]))


async def flag_stalled(pool: asyncpg.Pool, now: datetime) -> list[str]:
    """One watchdog pass: parcels with no scan for longer than their service's `stall_days`
    become `delivery_exception` / `stalled`, once per silence (a later scan and a new silence
    flag again). Under an advisory lock, so one instance runs it at a time; returns the parcels
    flagged. `now` is the caller's clock (tests and replays pass their own)."""
    async with pool.acquire() as conn, conn.transaction():
        if not await try_xact_lock(conn, "logistics:watchdog"):
            return []
        flagged = []
        for r in await store.stalled_candidates(conn, now):
            if not domain.is_stalled(r["status"], r["last_scan"], r["stall_days"], now):
                continue
            order = await conn.fetchrow("SELECT * FROM orders WHERE order_id = $1",
                                        r["order_id"])
            assert order is not None  # shipments reference orders
            days = (now - r["last_scan"]).days
            await store.mark_stalled(conn, r["parcel_id"], r["last_scan"])
            await emit_status(
                conn, order_id=str(order["order_id"]), store=order["store"],
                external_order_id=order["external_order_id"], status="delivery_exception",
                reasons=[("stalled", f"no carrier scan for {days} days (limit"
                                     f" {r['stall_days']} for {r['service']})")],
                details={"tracking_number": r["tracking_number"], "reason": "stalled"},
                correlation_id=order["correlation_id"])
            metrics.EXCEPTIONS.labels(r["carrier"], "stalled").inc()
            log.warning("order %s: parcel %s stalled, last scan %s", order["order_key"],
                        r["parcel_id"], r["last_scan"].isoformat())
            flagged.append(r["parcel_id"])
        return flagged


class WatchdogSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SHOPKEEPER_LOGISTICS_", extra="ignore",
                                      case_sensitive=False, env_ignore_empty=True)

    watchdog_seconds: float = Field(default=600.0, gt=0)


async def start_watchdog(runtime: Runtime) -> None:
    """Every SHOPKEEPER_LOGISTICS_WATCHDOG_SECONDS (default 600), a pass over parcels on the
    road."""
    interval = WatchdogSettings().watchdog_seconds

    async def loop() -> None:
        while True:
            await asyncio.sleep(interval)
            try:
                await flag_stalled(runtime.pool, datetime.now(UTC))
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the next pass tries again
                log.warning("stalled-parcel watchdog pass failed: %s", exc)

    runtime.spawn(loop(), "logistics-watchdog")


async def publish_coverage(runtime: Runtime) -> None:
    """At start: what we can ship, for intake. Published on every start (cheap, and a fresh
    intake can always learn it even after the topic's retention); consumers keep the newest."""
    async with runtime.pool.acquire() as conn, conn.transaction():
        countries = await enqueue_coverage(conn)
    log.info("published coverage: %d countries", len(countries))


async def enqueue_coverage(conn: Conn) -> list[str]:
    """Coverage as the catalogue stands in this transaction (at start, and after an operator
    changes a destination restriction); returns the countries served."""
    countries, refused = domain.coverage(await store.services(conn))
    digest = hashlib.sha256(json.dumps([countries, refused]).encode()).hexdigest()[:12]
    await enqueue(conn, topics.LOGISTICS_COVERAGE_CHANGED, "coverage", CoverageChanged(
        countries=countries, refused_attributes=refused, correlation_id=digest))
    return countries


# --- aftersales: return labels -----------------------------------------------------------------
# The designated returns service of each warehouse: its domestic service when the customer is in
# the warehouse's country, else DHL Express (the one service that collects everywhere we ship and
# delivers to every warehouse: an import-express return). Services are modelled by origin
# warehouse, so a return cannot go through `domain.choose`; the label's tracking number comes
# from the service's format like any outbound label. Known gap: the return shipment is not in
# `shipments`, so carrier.tracking for it is not followed here.
RETURN_SERVICES = {"WH-LA": "USPS-GA", "WH-FRA": "DHL-PAKET"}
RETURN_SERVICE_ABROAD = "DHL-EXP"


@handlers.legacy(topics.AFTERSALES_RETURN_LABEL_REQUESTED)
async def return_label_requested(ctx: Ctx, event: ReturnLabelRequested) -> None:
    country = await ctx.conn.fetchval("SELECT country FROM warehouses WHERE code = $1",
                                      event.warehouse)
    if country is None:
        raise PoisonMessage(f"return {event.request_id}: unknown warehouse {event.warehouse!r}")
    domestic = event.from_address.country == country and event.warehouse in RETURN_SERVICES
    code = RETURN_SERVICES[event.warehouse] if domestic else RETURN_SERVICE_ABROAD
    service = await ctx.conn.fetchrow("SELECT carrier, tracking_format FROM services WHERE"
                                      " code = $1", code)
    assert service is not None, f"returns service {code} missing from the catalogue"
    number = await store.free_tracking_number(ctx.conn, service["tracking_format"],
                                              f"return:{event.request_id}")
    log.info("order %s: return %s labelled %s %s", event.order_key, event.request_id, code, number)
    await ctx.publish(topics.LOGISTICS_RETURN_LABEL_ISSUED, event.order_key, ReturnLabelIssued(
        order_id=event.order_id, order_key=event.order_key, request_id=event.request_id,
        warehouse=event.warehouse, carrier=service["carrier"], service=code,
        tracking_number=number))
