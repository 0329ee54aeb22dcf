"""Logistics' subscribers: choose a carrier service for each packed parcel and ship it, follow
carrier tracking to the door, and tell intake which countries and goods can be shipped."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import asyncpg
from pydantic import Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared import fx, setup, topics
from shared.contracts import (
    CarrierScored,
    CoverageChanged,
    Event,
    OrderCancelRefused,
    OrderCancelRequested,
    OrderDelivered,
    OrderPacked,
    OrderShipped,
    OrderSnapshot,
    Parcel,
    ParcelLost,
    ParcelReturned,
    ProductUpserted,
    ReturnLabelIssued,
    ReturnLabelRequested,
    SetupChanged,
    ShippedParcel,
    TrackingUpdated,
)
from shared.contracts.setup import WarehouseEntry
from shared.db import read_all, try_xact_lock
from shared.messaging import (
    Handlers,
    PoisonMessage,
    confirm_cancellation,
)
from shared.parking import (
    handle_parked_cancels,
    order_or_park,
    orders_sweep,
    start_parked_sweep,
    take_parked_cancels_read,
)
from shared.service import Runtime
from shared.settings import get_settings
from shared.uow import UnitOfWork

from . import domain, metrics, store

log = logging.getLogger(__name__)
handlers = Handlers()
fx.subscribe(handlers)  # exchange rates for money thresholds (shared/fx.py)

EXCEPTIONS = {"failed_attempt", "exception", "lost", "returned_to_sender"}

# An order as `dispatch` needs it: a row of `orders`, or the same fields of one just inserted.
OrderRow = Mapping[str, Any] | asyncpg.Record
# A parcel as the dock check reads it: a row of `shipments`, or one about to be inserted.
ShipmentRow = Mapping[str, Any] | asyncpg.Record


@handlers.on(topics.FULFILLMENT_ORDER_PACKED)
async def order_packed(uow: UnitOfWork, events: list[OrderPacked]) -> None:
    """Choose a service for each parcel (with its trace), give it a tracking number and a label,
    draw up customs papers when it crosses a border, then the final check at the dock: all
    parcels pass -> `shipped`; any is held -> the order waits for an operator (or for the
    missing product data) with the reasons.

    The hot path: a constant number of statements per run (`_ship`), in parts of the run where
    no order and no parcel comes twice (a merged parcel's second order must see the shipment
    its first order made: almost always one part). A cancellation that came before its order
    is handled last, as if it had come after (`shared.messaging.park_cancel`)."""
    parked: dict[uuid.UUID, OrderCancelRequested] = {}
    for part in _apart(events):
        parked |= await _ship(uow, part)
    await handle_parked_cancels(uow, (uuid.UUID(e.order_id) for e in events), parked, _cancel)


def _apart(events: list[OrderPacked]) -> list[list[OrderPacked]]:
    """The run cut, keeping its order, where an order or a parcel comes again."""
    parts: list[list[OrderPacked]] = [[]]
    seen: set[str] = set()
    for e in events:
        names = {f"order:{e.order_id}", *(f"parcel:{p.parcel_id}" for p in e.parcels)}
        if seen & names:
            parts.append([])
            seen = set()
        parts[-1].append(e)
        seen |= names
    return [p for p in parts if p]


async def _ship(uow: UnitOfWork, events: list[OrderPacked]
                ) -> dict[uuid.UUID, OrderCancelRequested]:
    """A part of a run of packed orders, no order nor parcel twice in it; returns the
    cancellations parked for its orders. Statements: the orders (1, locked, with the parked
    cancellations taken), the shipments their parcels already have (1, locked), the catalogue
    (once per unit of work), tracking numbers (1), the dock check of the orders whose every
    parcel found a service, on the parcels in hand (`_check`: the warehouses and the products,
    once each), the orders and the shipments inserted as checked (1 each), the merged orders
    linked and shipped (2, when any)."""
    conn = uow.conn
    ids = sorted({uuid.UUID(e.order_id) for e in events})
    known, parked = await read_all(conn, store.orders_for_update_read(ids),
                                   take_parked_cancels_read(ids))
    fresh = []
    for event in uow.each(events):
        existing = known.get(uuid.UUID(event.order_id))
        if existing is None:
            fresh.append(event)
        elif existing["status"] == "cancelled":
            log.warning("order %s was cancelled; its %d packed parcels are not shipped. Unpack"
                        " and return the goods to stock", event.order_key, len(event.parcels))
    if not fresh:
        return parked
    # fulfillment: a merged parcel (one buyer's orders packed together) comes once per order,
    # with the same parcel_ids. The first order's shipments carry it; a later order ships with
    # their carrier and tracking number once they are handed over (its own lines, so inventory
    # commits per order). Known gap: if those shipments are still held, it waits unannounced.
    shared = await store.shipments_by_parcels(
        conn, sorted({p.parcel_id for e in fresh for p in e.parcels}))
    merged = [e for e in fresh
              if e.parcels and all(p.parcel_id in shared for p in e.parcels)]
    leaders = [e for e in fresh if e not in merged]

    catalogue = await store.services(uow) if leaders else []
    choices: list[tuple[OrderPacked, list[tuple[Parcel, domain.Choice]]]] = []
    for e in leaders:
        snap = e.order
        choices.append((e, [(p, domain.choose(catalogue, domain.ParcelSpec(
            p.warehouse, snap.shipping_address.country, p.weight_g,
            (p.dims_mm["l"], p.dims_mm["w"], p.dims_mm["h"]), tuple(p.attributes),
            snap.shipping_address.postal_code), snap.shipping_option)) for p in e.parcels]))
    chosen = [(p, c) for _, pcs in choices for p, c in pcs if c.service is not None]
    numbers = dict(zip(
        (p.parcel_id for p, _ in chosen),
        await store.free_tracking_numbers(conn, [(c.service.tracking_format, p.parcel_id)
                                                 for p, c in chosen if c.service]) if chosen
        else [], strict=True))

    shipments: list[dict[str, Any]] = [{
        "parcel_id": p.parcel_id, "order_id": uuid.UUID(e.order_id), "warehouse": p.warehouse,
        "country": e.order.shipping_address.country,
        "carrier": c.service.carrier if c.service else None,
        "service": c.service.code if c.service else None,
        "tracking_number": numbers.get(p.parcel_id), "weight_g": p.weight_g,
        "chargeable_g": c.chargeable_g, "cost": c.cost,
        "lines": [ln.model_dump() for ln in p.lines], "trace": c.trace,
        "zone": c.rate.zone if c.rate else None,
        "transit_max": c.rate.transit_max if c.rate else None,
        "declared_value": p.declared_value, "customs": None,
        "hold_reasons": [] if c.service else [{"code": "no_eligible_service",
                                               "message": c.reason or ""}],
        "status": "held", "measured_weight_g": None}
        for e, pcs in choices for p, c in pcs]
    # The dock check of the orders whose every parcel found a service runs on the parcels in
    # hand, before anything is written: each order and parcel is then inserted once, as the
    # check left it, instead of inserted, read back, checked and updated twice (`dispatch` does
    # that for orders already stored: a dock scan, new product data).
    complete = [e for e, pcs in choices if all(c.service is not None for _, c in pcs)]
    by_order: dict[uuid.UUID, list[dict[str, Any]]] = {}
    for row in sorted(shipments, key=lambda r: (r["order_id"], r["parcel_id"])):
        by_order.setdefault(row["order_id"], []).append(row)
    checking: list[tuple[OrderRow, OrderSnapshot, Event | None]] = [
        ({"order_id": uuid.UUID(e.order_id), "order_key": e.order_key,
          "correlation_id": str(e.correlation_id or e.event_id)}, e.order, e) for e in complete]
    rows_of: dict[uuid.UUID, list[ShipmentRow]] = {
        o["order_id"]: [_as_stored(r) for r in by_order[o["order_id"]]] for o, _, _ in checking}
    checked, verdicts = await _check(uow, checking, rows_of) if checking else ([], [])
    found = {pid: (customs, reasons, reading) for pid, customs, reasons, reading in checked}
    shipped_now = {o["order_id"] for (o, _, _), v in zip(checking, verdicts, strict=True)
                   if v[0] == "shipped"}
    for row in shipments:
        if row["parcel_id"] in found:
            row["customs"], row["hold_reasons"], row["measured_weight_g"] = found[row["parcel_id"]]
        if row["order_id"] in shipped_now:
            row["status"], row["hold_reasons"] = "shipped", []

    await store.insert_orders(conn, [
        (uuid.UUID(e.order_id), e.order_key,
         "shipped" if uuid.UUID(e.order_id) in shipped_now else "waiting", len(e.parcels),
         str(e.correlation_id or e.event_id), e.order.model_dump_json()) for e in fresh])
    if shipments:
        await store.insert_shipments(conn, shipments)

    if merged:
        await store.link_parcels_many(conn, [
            (p.parcel_id, uuid.UUID(e.order_id), [ln.model_dump() for ln in p.lines])
            for e in merged for p in e.parcels])
        ready = [e for e in merged
                 if not any(shared[p.parcel_id]["status"] == "held" for p in e.parcels)]
        if ready:
            await store.set_orders_status(conn, [uuid.UUID(e.order_id) for e in ready],
                                          "shipped")
        for event in uow.each(merged):
            if event not in ready:
                log.warning("order %s shares held parcels %s; it ships with them",
                            event.order_key, ", ".join(sorted(p.parcel_id
                                                              for p in event.parcels)))
                continue
            snap = event.order
            parcels = [ShippedParcel(parcel_id=p.parcel_id, warehouse=p.warehouse,
                                     carrier=shared[p.parcel_id]["carrier"],
                                     service=shared[p.parcel_id]["service"],
                                     tracking_number=shared[p.parcel_id]["tracking_number"],
                                     lines=p.lines) for p in event.parcels]
            await uow.status(order_id=snap.order_id, store=snap.store,
                             external_order_id=snap.external_order_id, status="shipped",
                             details=shipped_details(parcels))
            await uow.publish(topics.LOGISTICS_ORDER_SHIPPED, event.order_key, OrderShipped(
                order_id=snap.order_id, order_key=event.order_key, parcels=parcels))

    for event, pcs in choices:
        waiting = [(p, c) for p, c in pcs if c.service is None]
        if not waiting:
            continue
        with uow.caused_by(event):
            snap = event.order
            why = "; ".join(f"{p.parcel_id}: {c.reason}" for p, c in waiting)
            log.warning("order %s waits for an operator: %s", event.order_key, why)
            uow.count(metrics.PARCELS_HELD, "no_eligible_service", amount=len(waiting))
            await uow.status(order_id=snap.order_id, store=snap.store,
                             external_order_id=snap.external_order_id,
                             status="delivery_exception",
                             reasons=[("no_eligible_service", why)],
                             details={"tracking_number": None, "reason": "no_eligible_service"})
    if checking:
        await _announce(uow, checking, rows_of, verdicts)
    return parked


def _as_stored(row: dict[str, Any]) -> dict[str, Any]:
    """A shipment about to be inserted as `shipments_of_orders` would read it back."""
    return {**row, "lines": json.dumps(row["lines"]),
            "hold_reasons": json.dumps(row["hold_reasons"]),
            "label_weight_g": row["weight_g"], "cost_currency": "USD"}


async def check_and_dispatch(uow: UnitOfWork, order: OrderRow, snap: OrderSnapshot,
                             cause: Event | None = None) -> bool:
    """`dispatch` for one waiting order (a dock scan, new product data). True when shipped."""
    return (await dispatch(uow, [(order, snap, cause)]))[0]


async def dispatch(uow: UnitOfWork,
                   orders: list[tuple[OrderRow, OrderSnapshot, Event | None]]
                   ) -> list[bool]:
    """The final check of every parcel of waiting orders (order row, snapshot, the event that
    caused the check or None for an operator's), in a constant number of statements: weight
    at the dock against the label, address, customs; all pass -> hand them over and announce
    `shipped`. Held parcels keep their reasons; `on_hold` is announced when the reasons change
    (a re-check that fails the same way says nothing new). With SHOPKEEPER_WAREHOUSE_MODE=manual
    a parcel also waits for its dock scan (POST /parcels/{id}/dock-scan). True per order
    shipped."""
    conn = uow.conn
    of: dict[uuid.UUID, list[ShipmentRow]] = {}
    for r in await store.shipments_of_orders(conn, sorted({o["order_id"] for o, _, _ in orders})):
        of.setdefault(r["order_id"], []).append(r)
    checked, verdicts = await _check(uow, orders, of)
    if checked:
        await store.set_checked_many(conn, checked)
    shipped = [o["order_id"] for (o, _, _), (v, _, _, _) in zip(orders, verdicts, strict=True)
               if v == "shipped"]
    if shipped:
        await store.mark_shipped_many(conn, shipped)
        await store.set_orders_status(conn, shipped, "shipped")
    return await _announce(uow, orders, of, verdicts)


Checked = tuple[str, "dict[str, Any] | None", list[dict[str, str]], "int | None"]
"""A parcel after the dock check: (parcel, customs declaration, hold reasons, dock reading)."""
Verdict = tuple[str, list[tuple[str, str, str]], set[tuple[str, str]], list[str]]
"""An order after the dock check: (held | unscanned | shipped | unchosen, its parcels' holds
`(parcel, code, message)`, the holds before, the parcels waiting for their dock scan)."""


async def _check(uow: UnitOfWork, orders: list[tuple[OrderRow, OrderSnapshot, Event | None]],
                 of: Mapping[uuid.UUID, list[ShipmentRow]]
                 ) -> tuple[list[Checked], list[Verdict]]:
    """The dock check of each order's parcels (`of`: stored rows, or rows about to be), and
    nothing written: the catalogue and warehouses once for all (a constant number of
    statements)."""
    conn = uow.conn
    manual = get_settings().shopkeeper_warehouse_mode == "manual"
    houses = await store.warehouses(uow)
    products = await store.products(conn, sorted({ln["sku"] for rows in of.values()
                                                  for r in rows
                                                  for ln in json.loads(r["lines"])}))
    checked: list[Checked] = []
    verdicts: list[Verdict] = []
    for order, snap, _ in orders:
        rows = of.get(order["order_id"], [])
        if any(r["service"] is None for r in rows):
            verdicts.append(("unchosen", [], set(), []))
            continue
        before = {(r["parcel_id"], h["code"]) for r in rows
                  for h in json.loads(r["hold_reasons"])}
        unscanned = [r["parcel_id"] for r in rows if manual and r["measured_weight_g"] is None]
        prices = {ln.sku: ln.unit_price for ln in reversed(snap.lines)}
        address = snap.shipping_address.model_dump()
        held: list[tuple[str, str, str]] = []
        for r in rows:
            origin = houses[r["warehouse"]]["country"] if r["warehouse"] in houses else "??"
            customs = None
            if domain.needs_customs(origin, r["country"]):
                customs = domain.declaration(
                    [(ln["sku"], ln["quantity"]) for ln in json.loads(r["lines"])], products,
                    prices, snap.currency, await fx.rates(uow),
                    domain.ioss_for(r["country"], snap.ioss_number))
            # Automatic warehouse: the dock scale reads what packing weighed. Manual: only a
            # real dock scan counts, and until there is one the weight is not judged (nor
            # stored).
            label_g = r["label_weight_g"] or r["weight_g"]
            reading = (r["measured_weight_g"] if manual
                       else (r["measured_weight_g"] or r["weight_g"]))
            problems = domain.dispatch_problems(
                label_g, reading if reading is not None else label_g, address, customs)
            checked.append((r["parcel_id"], customs.as_dict() if customs else None,
                            [{"code": c, "message": m} for c, m in problems], reading))
            held += [(r["parcel_id"], c, m) for c, m in problems]
        verdicts.append(("held" if held else "unscanned" if unscanned else "shipped", held,
                         before, unscanned))
    return checked, verdicts


async def _announce(uow: UnitOfWork, orders: list[tuple[OrderRow, OrderSnapshot, Event | None]],
                    of: Mapping[uuid.UUID, list[ShipmentRow]], verdicts: list[Verdict]
                    ) -> list[bool]:
    """What the dock check decided, announced (statuses, `shipped` events, metrics), once its
    writes are done. True per order shipped."""
    for (order, snap, cause), (verdict, held, before, unscanned) in zip(orders, verdicts,
                                                                         strict=True):
        with uow.caused_by(cause) if cause is not None else contextlib.nullcontext():
            if verdict == "held":
                log.warning("order %s held at the dock: %s", order["order_key"],
                            ", ".join(f"{pid} {code}" for pid, code, _ in held))
                if {(pid, code) for pid, code, _ in held} != before:
                    for _, code, _ in held:
                        uow.count(metrics.PARCELS_HELD, code)
                    await order_status(
                        uow, snap, order["correlation_id"], "on_hold",
                        reasons=[(code, f"{pid}: {msg}") for pid, code, msg in held],
                        details={"parcels": sorted({pid for pid, _, _ in held})})
            elif verdict == "unscanned":
                log.info("order %s waits for the dock scan of %s", order["order_key"],
                         ", ".join(unscanned))
            elif verdict == "shipped":
                rows = of[order["order_id"]]
                parcels = [ShippedParcel(parcel_id=r["parcel_id"], warehouse=r["warehouse"],
                                         carrier=r["carrier"], service=r["service"],
                                         tracking_number=r["tracking_number"],
                                         lines=json.loads(r["lines"])) for r in rows]
                for r in rows:
                    uow.count(metrics.PARCELS_SHIPPED, r["carrier"], r["service"])
                    uow.count(metrics.SHIPPING_COST, r["carrier"], r["service"],
                              r["cost_currency"], amount=float(r["cost"] or 0))
                await order_status(uow, snap, order["correlation_id"], "shipped",
                                   details=shipped_details(parcels))
                await uow.publish(topics.LOGISTICS_ORDER_SHIPPED, order["order_key"],
                                  OrderShipped(order_id=snap.order_id,
                                               order_key=order["order_key"], parcels=parcels,
                                               correlation_id=order["correlation_id"]))
    return [v == "shipped" for v, _, _, _ in verdicts]


async def order_status(uow: UnitOfWork, snap: OrderSnapshot | OrderRow,
                       correlation_id: str | None, status: str, *,
                       reasons: list[tuple[str, str]] | None = None,
                       details: dict[str, Any] | None = None) -> None:
    """`uow.status` for one order, with that order's own correlation id: its cause may be
    another order's event (new product data releasing several orders), a watchdog pass or an
    operator."""
    if isinstance(snap, OrderSnapshot):
        order_id, store_name, ext = snap.order_id, snap.store, snap.external_order_id
    else:
        order_id, store_name, ext = (str(snap["order_id"]), snap["store"],
                                     snap["external_order_id"])
    await uow.status(order_id=order_id, store=store_name, external_order_id=ext, status=status,
                     reasons=reasons, details=details, correlation_id=correlation_id)


def shipped_details(parcels: list[ShippedParcel]) -> dict[str, Any]:
    """`shipped` on orders.status: every parcel with its carrier, tracking number and (v1.1) the
    order's lines in it, so a channel can tell its platform which items went in which parcel."""
    return {"parcels": [{"parcel_id": s.parcel_id, "carrier": s.carrier, "service": s.service,
                         "tracking_number": s.tracking_number,
                         "lines": [{"sku": ln.sku, "quantity": ln.quantity} for ln in s.lines]}
                        for s in parcels]}


@handlers.on(topics.CATALOG_PRODUCTS)
async def product_upserted(uow: UnitOfWork, events: list[ProductUpserted]) -> None:
    """Keep what customs declarations need; new data may complete a held parcel's papers, so
    orders waiting on this SKU are checked again. Rare: one event at a time."""
    for event in uow.each(events):
        product = domain.Product(event.sku, event.name, event.hs_code, event.origin_country,
                                 event.weight_g)
        if not await store.upsert_product(uow.conn, product, event.occurred_at):
            continue
        for order_id in await store.orders_held_for(uow.conn, event.sku):
            order = await store.get_order(uow.conn, order_id)
            if order is None or order["status"] != "waiting" or order["snapshot"] is None:
                continue
            snap = OrderSnapshot.model_validate_json(order["snapshot"])
            if await check_and_dispatch(uow, order, snap, event):
                log.info("order %s released: product %s completed its papers",
                         order["order_key"], event.sku)


@handlers.on(topics.ANALYTICS_CARRIER_SCORES)
async def carrier_score(uow: UnitOfWork, events: list[CarrierScored]) -> None:
    """Analytics scores a service per destination country; selection works per zone, so the
    score goes to every zone of that service that covers the country."""
    for event in uow.each(events):
        for zone in await store.zones_of(uow.conn, event.service, event.country):
            await store.set_analytics_score(uow.conn, event.service, zone,
                                            Decimal(str(event.on_time_rate)), event.samples)
    store.scores_changed(uow)


@handlers.on(topics.FULFILLMENT_ORDER_CANCEL_FORWARDED)
async def cancel_forwarded(uow: UnitOfWork, events: list[OrderCancelRequested]) -> None:
    """The last word on a cancellation: honoured until the parcels are handed to a carrier. One
    that overtook the packed parcels is parked and handled in their run, right after them."""
    for event in uow.each(events):
        await _cancel(uow, event)


async def _cancel(uow: UnitOfWork, event: OrderCancelRequested) -> None:
    """One cancellation, with `event` the unit of work's cause."""
    order_id = uuid.UUID(event.order_id)
    row = await order_or_park(uow, event, store.get_order)
    if row is None:
        return
    if row["status"] == "waiting":
        await store.set_order_status(uow.conn, order_id, "cancelled")
    elif row["status"] == "cancelled":
        return
    else:
        log.info("cancel of %s refused: already %s; offer a return instead",
                 event.order_key, row["status"])
        await uow.publish(topics.LOGISTICS_ORDER_CANCEL_REFUSED, event.order_key,
                          OrderCancelRefused(order_id=event.order_id,
                                             order_key=event.order_key,
                                             reason=f"the order has {row['status']}",
                                             customer_reason=event.reason))
        return
    await confirm_cancellation(uow, topics.LOGISTICS_ORDER_CANCELLED, event, "logistics")


# A cancellation parked while another instance was inserting its order (shared/parking.py).
start_sweep = start_parked_sweep(orders_sweep(_cancel))


@handlers.on(topics.CARRIER_TRACKING)
async def tracking_updated(uow: UnitOfWork, events: list[TrackingUpdated]) -> None:
    """Carrier scans, one at a time (each may deliver, or lose, the orders of a parcel)."""
    for event in uow.each(events):
        await _track(uow, event)


async def _track(uow: UnitOfWork, event: TrackingUpdated) -> None:
    shipment = await store.shipment_by_tracking(uow.conn, event.tracking_number)
    if shipment is None:
        raise PoisonMessage(f"unknown tracking number {event.tracking_number} ({event.carrier})")
    await store.record_tracking(uow.conn, event.event_id, event.tracking_number, event.status,
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
        await store.record_delivery_score(uow.conn, shipment["service"],
                                          shipment["zone"] or "-", punctual)
        store.scores_changed(uow)
        uow.count(metrics.PARCELS_DELIVERED, shipment["carrier"], shipment["service"],
                  str(punctual).lower())
    await store.update_shipment(uow.conn, shipment["parcel_id"], event.status,
                                event.occurred_at, punctual)
    for order in await store.orders_of_parcel(uow.conn, shipment["parcel_id"],
                                              shipment["order_id"]):
        await _track_order(uow, order, shipment, event, first_time_as)


async def _track_order(uow: UnitOfWork, order: Any, shipment: Any, event: TrackingUpdated,
                       first_time_as: bool) -> None:
    """What a scan of one of its parcels means for an order (a merged parcel has several)."""
    ids = {"order_id": str(order["order_id"]), "store": order["store"],
           "external_order_id": order["external_order_id"]}
    if event.status == "delivered":
        if order["status"] != "delivered" and \
                await store.undelivered_count(uow.conn, order["order_id"]) == 0:
            await store.set_order_status(uow.conn, order["order_id"], "delivered")
            await uow.status(**ids, status="delivered")
            await uow.publish(topics.LOGISTICS_ORDER_DELIVERED, order["order_key"], OrderDelivered(
                order_id=ids["order_id"], order_key=order["order_key"],
                delivered_at=event.occurred_at, correlation_id=order["correlation_id"]))
    elif event.status in EXCEPTIONS:
        uow.count(metrics.EXCEPTIONS, shipment["carrier"], event.status)
        await uow.status(**ids, status="delivery_exception",
                         reasons=[(event.status, event.description or event.status)],
                         details={"tracking_number": event.tracking_number,
                                  "reason": event.status})
        # A merged parcel: this order's own share of it (the owner's are the shipment's lines);
        # an order with nothing in it has nothing to reship or refund.
        lines = json.loads(order["own_lines"] or shipment["lines"])
        if event.status == "lost" and first_time_as and lines:
            log.warning("order %s: parcel %s lost by %s; asking aftersales for a reship",
                        order["order_key"], shipment["parcel_id"], shipment["carrier"])
            await uow.publish(topics.LOGISTICS_PARCEL_LOST, order["order_key"], ParcelLost(
                order_id=ids["order_id"], order_key=order["order_key"],
                parcel_id=shipment["parcel_id"], tracking_number=event.tracking_number,
                carrier=shipment["carrier"], lines=lines,
                correlation_id=order["correlation_id"]))
        if event.status == "returned_to_sender" and first_time_as and lines:
            # Once per parcel: a repeated scan is not a second parcel coming back.
            log.warning("order %s: parcel %s back at %s (returned to sender by %s); aftersales"
                        " restocks and refunds", order["order_key"], shipment["parcel_id"],
                        shipment["warehouse"], shipment["carrier"])
            await uow.publish(topics.LOGISTICS_PARCEL_RETURNED, order["order_key"],
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
    async with UnitOfWork.begin(pool, "logistics") as uow:
        conn = uow.conn
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
            # Once per silence: flagged again (a pass repeated) it has the same id.
            with uow.caused_by(f"stalled/{r['parcel_id']}/{r['last_scan'].isoformat()}"):
                await order_status(
                    uow, order, order["correlation_id"], "delivery_exception",
                    reasons=[("stalled", f"no carrier scan for {days} days (limit"
                                         f" {r['stall_days']} for {r['service']})")],
                    details={"tracking_number": r["tracking_number"], "reason": "stalled"})
            uow.count(metrics.EXCEPTIONS, r["carrier"], "stalled")
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
    # No cause: each start's coverage is a new event (a fresh intake must hear it).
    async with UnitOfWork.begin(runtime.pool, "logistics") as uow:
        countries = await publish_coverage_in(uow)
    log.info("published coverage: %d countries", len(countries))


async def publish_coverage_in(uow: UnitOfWork) -> list[str]:
    """Coverage as the catalogue stands in this unit of work (at start, and after an operator
    changes a destination restriction: the catalogue is read again, from this unit of work);
    returns the countries served."""
    store.catalogue_changed(uow)
    countries, refused = domain.coverage(await store.services(uow))
    digest = hashlib.sha256(json.dumps([countries, refused]).encode()).hexdigest()[:12]
    await uow.publish(topics.LOGISTICS_COVERAGE_CHANGED, "coverage", CoverageChanged(
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


@handlers.on(topics.AFTERSALES_RETURN_LABEL_REQUESTED)
async def return_label_requested(uow: UnitOfWork, events: list[ReturnLabelRequested]) -> None:
    """A return label per request, one at a time."""
    for event in uow.each(events):
        await _return_label(uow, event)


async def _return_label(uow: UnitOfWork, event: ReturnLabelRequested) -> None:
    country = await uow.conn.fetchval("SELECT country FROM warehouses WHERE code = $1",
                                      event.warehouse)
    if country is None:
        raise PoisonMessage(f"return {event.request_id}: unknown warehouse {event.warehouse!r}")
    domestic = event.from_address.country == country and event.warehouse in RETURN_SERVICES
    code = RETURN_SERVICES[event.warehouse] if domestic else RETURN_SERVICE_ABROAD
    service = await uow.conn.fetchrow("SELECT carrier, tracking_format FROM services WHERE"
                                      " code = $1", code)
    assert service is not None, f"returns service {code} missing from the catalogue"
    number = await store.free_tracking_number(uow.conn, service["tracking_format"],
                                              f"return:{event.request_id}")
    log.info("order %s: return %s labelled %s %s", event.order_key, event.request_id, code, number)
    await uow.publish(topics.LOGISTICS_RETURN_LABEL_ISSUED, event.order_key, ReturnLabelIssued(
        order_id=event.order_id, order_key=event.order_key, request_id=event.request_id,
        warehouse=event.warehouse, carrier=service["carrier"], service=code,
        tracking_number=number))


# --- the copy of inventory's warehouses (setup.changed) ----------------------------------------
async def warehouses_changed(uow: UnitOfWork, events: list[SetupChanged]) -> None:
    """Inventory created or replaced a warehouse: logistics' copy follows, in order (the newest
    wins). Warehouses are not deleted (history names them); a deletion, should one come, only
    deactivates the copy. An entry logistics cannot read is logged and skipped: inventory
    validated it, so it means the two disagree on the model (fix the code, then re-save it)."""
    for event in events:
        if event.data is None:
            await uow.conn.execute("UPDATE warehouses SET active = false WHERE code = $1",
                                   event.key)
            continue
        try:
            wh = WarehouseEntry.model_validate(event.data)  # inventory's model, extras ignored
        except ValidationError as exc:
            log.error("setup.changed warehouses/%s not copied: %s", event.key, exc)
            continue
        await store.upsert_warehouse(uow.conn, event.key, wh.name, wh.country, wh.address.line1,
                                     wh.address.city, wh.address.region, wh.address.postal_code,
                                     wh.timezone, wh.cutoff, wh.working_days, wh.active)
        log.info("warehouse %s copied from inventory (changed by %s)", event.key,
                 event.changed_by)
    uow.forget(store.WAREHOUSES)


setup.follow(handlers, {"warehouses": warehouses_changed})
