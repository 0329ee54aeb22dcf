"""Analytics' subscribers: the read model. Each handler takes a run of its topic's events and
stores them with one statement per table (store.py, unnest arrays); each event is kept once
(inbox and `facts` by event_id). The first-time facts are queued for the fold in the run's
transaction (`fold_queue`, one statement per run); the fold job takes them every
SHOPKEEPER_ANALYTICS_FOLD_SECONDS and folds each order touched once per pass (in `occurred_at`
order, never arrival order, so late events count as if they had come on time), adding the change
of its contribution to the rollups (store.fold_queued, rollups.py)."""

from __future__ import annotations

import logging
import uuid
from typing import Any

from shared import fx, setup, topics
from shared.contracts import (
    AftersalesRequested,
    FeedbackGiven,
    OrderAccepted,
    OrderPlaced,
    OrderShipped,
    OrderSnapshot,
    OrderStatusChanged,
    RefundIssued,
    TrackingUpdated,
)
from shared.contracts.common import money_text
from shared.messaging import Handlers, RawMessage
from shared.uow import UnitOfWork

from . import sellers, store

log = logging.getLogger(__name__)
# Commutative: every table is keyed by event id or keeps the newest / earliest value, and the
# fold depends only on the set of an order's facts, so events of different topics and
# partitions may come in any order (shared.messaging.Handlers.commutative): the consumer hands
# over whole fetches and each handler gets all of its topic's events in the run.
handlers = Handlers(commutative=True)


def _fold(uow: UnitOfWork, fresh: dict[uuid.UUID, str],
          facts: list[tuple[uuid.UUID, store.StoredFact]]) -> None:
    """The run's first-time facts (`fresh`: their order's key by event id) are queued for the
    fold job, in run order and in one statement before the run commits (nothing for a repeated
    fact, or a carrier scan of a parcel not shipped yet: the shipment folds it in). The job
    (jobs.fold_forever) folds each order once per pass with all of its queued facts and writes
    the rollups' change (store.fold_queued)."""
    if not fresh:
        return
    conn = uow.conn

    async def queue(pending: list[tuple[str, store.StoredFact]]) -> None:
        await store.queue_folds(conn, pending)

    pending: list[tuple[str, store.StoredFact]] = uow.collect("analytics.fold", list, queue)
    for event_id, fact in facts:
        key = fresh.get(event_id)
        if key is not None:
            pending.append((key, fact))


async def _record(uow: UnitOfWork,
                  facts: list[tuple[store.FactRow, store.StoredFact]]) -> None:
    """The run's facts in one statement, the first-time ones folded before commit."""
    fresh = await store.record_facts(uow.conn, [row for row, _ in facts])
    _fold(uow, fresh, [(row[0], fact) for row, fact in facts])


async def skip_invalid(uow: UnitOfWork, raw: RawMessage, code: str, message: str) -> bool:
    """Inbound values that break the contract are the owning service's to reject or dead-letter
    (intake rejects a malformed order); analytics only reads, so it skips them, with a log."""
    log.info("analytics skips an invalid %s value at partition %d offset %d: %s", raw.topic,
             raw.partition, raw.offset, f"{code}: {message[:300]}")
    return True


def _placed_body(*, store_name: str, ext: str, customer_id: str, country: str, placed_at: Any,
                 lines: list[Any], grand_total: Any, currency: str, shipping_option: str
                 ) -> dict[str, Any]:
    return {"store": store_name, "external_order_id": ext, "customer_id": customer_id,
            "country": country, "placed_at": placed_at.isoformat(),
            "lines": [ln.model_dump(mode="json") for ln in lines],
            "grand_total": money_text(grand_total), "currency": currency,
            "shipping_option": shipping_option}


PlacedOrder = tuple[uuid.UUID, Any, dict[str, Any], store.IndexRow]


async def _orders(uow: UnitOfWork, orders: list[PlacedOrder]) -> None:
    """Placed or accepted orders `(event_id, occurred_at, body, index row)`: their facts and
    what they say of the order in the index, one statement each."""
    await store.index_orders(uow.conn, [index for _, _, _, index in orders])
    await _record(uow, [(store.fact_row(eid, "placed", at, body, order_key=index[0]),
                         store.stored("placed", eid, at, body))
                        for eid, at, body, index in orders])


@handlers.on(topics.ORDERS_PLACED, on_invalid=skip_invalid)
async def order_placed(uow: UnitOfWork, events: list[OrderPlaced]) -> None:
    orders: list[PlacedOrder] = [(e.event_id, e.occurred_at, _placed_body(
        store_name=e.store, ext=e.external_order_id, customer_id=e.customer.id,
        country=e.shipping_address.country, placed_at=e.placed_at, lines=e.lines,
        grand_total=e.totals.grand_total, currency=e.currency, shipping_option=e.shipping_option),
        (e.key, None, e.customer.id, e.shipping_address.country, e.placed_at, e.occurred_at))
        for e in events]
    await _orders(uow, orders)


@handlers.on(topics.INTAKE_ORDER_ACCEPTED)
async def order_accepted(uow: UnitOfWork, events: list[OrderAccepted]) -> None:
    """The accepted snapshot is the order as reviewed; it also names our order id."""
    orders: list[PlacedOrder] = []
    for e in events:
        s: OrderSnapshot = e.order
        body = _placed_body(
            store_name=s.store, ext=s.external_order_id, customer_id=s.customer_id,
            country=s.shipping_address.country, placed_at=s.placed_at, lines=s.lines,
            grand_total=s.totals.grand_total, currency=s.currency,
            shipping_option=s.shipping_option)
        orders.append((e.event_id, e.occurred_at, body, (
            e.order_key, e.order_id, s.customer_id, s.shipping_address.country, s.placed_at,
            e.occurred_at)))
    await _orders(uow, orders)


@handlers.on(topics.ORDERS_STATUS)
async def status_changed(uow: UnitOfWork, events: list[OrderStatusChanged]) -> None:
    """The hot path: the timeline, current status, facts and index of a whole run in one
    statement."""
    fresh = await store.record_statuses(uow.conn, events)
    _fold(uow, fresh, [(e.event_id, store.stored("status", e.event_id, e.occurred_at,
                                                 store.status_body(e))) for e in events])


@handlers.on(topics.LOGISTICS_ORDER_SHIPPED)
async def order_shipped(uow: UnitOfWork, events: list[OrderShipped]) -> None:
    """The shipments' facts, and which order each tracking number belongs to (for the carrier
    scans to come). The facts go first, as one event at a time: a scan stored before its
    shipment is found by the fold through the shipment's parcels."""
    facts = []
    for e in events:
        body = {"parcels": [p.model_dump(mode="json") for p in e.parcels]}
        facts.append((store.fact_row(e.event_id, "shipped", e.occurred_at, body,
                                     order_key=e.order_key),
                      store.stored("shipped", e.event_id, e.occurred_at, body)))
    await _record(uow, facts)
    await store.index_parcels(uow.conn, [
        (p.tracking_number, e.order_key, p.parcel_id, p.carrier, p.warehouse)
        for e in events for p in e.parcels])


@handlers.on(topics.CARRIER_TRACKING, on_invalid=skip_invalid)
async def tracking_updated(uow: UnitOfWork, events: list[TrackingUpdated]) -> None:
    """Carrier scans name only the tracking number: each belongs to its parcel's order."""
    facts = []
    for e in events:
        body = {"carrier": e.carrier, "status": e.status}
        facts.append((store.fact_row(e.event_id, "tracked", e.occurred_at, body,
                                     tracking_number=e.tracking_number),
                      store.stored("tracked", e.event_id, e.occurred_at, body,
                                   e.tracking_number)))
    await _record(uow, facts)


@handlers.on(topics.AFTERSALES_REQUESTS, on_invalid=skip_invalid)
async def request_received(uow: UnitOfWork, events: list[AftersalesRequested]) -> None:
    facts = []
    for e in events:
        body = {"request_id": e.request_id, "kind": e.kind, "reason": e.reason,
                "lines": [ln.model_dump(mode="json") for ln in e.lines]}
        facts.append((store.fact_row(e.event_id, "requested", e.occurred_at, body,
                                     order_key=e.key),
                      store.stored("requested", e.event_id, e.occurred_at, body)))
    await _record(uow, facts)


@handlers.on(topics.PAYMENTS_REFUNDS)
async def refund_issued(uow: UnitOfWork, events: list[RefundIssued]) -> None:
    await store.record_refunds(uow.conn, events)
    facts = []
    for e in events:
        body = {"request_id": e.request_id, "amount": money_text(e.amount),
                "currency": e.currency,
                "reason": e.reason}
        facts.append((store.fact_row(e.event_id, "refunded", e.occurred_at, body,
                                     order_key=f"{e.store}:{e.external_order_id}"),
                      store.stored("refunded", e.event_id, e.occurred_at, body)))
    await _record(uow, facts)


@handlers.on(topics.CUSTOMER_FEEDBACK, on_invalid=skip_invalid)
async def feedback_given(uow: UnitOfWork, events: list[FeedbackGiven]) -> None:
    await store.record_feedback(uow.conn, events)
    await _record(uow, [(store.fact_row(e.event_id, "rated", e.occurred_at,
                                        {"rating": e.rating}, order_key=e.key),
                         store.stored("rated", e.event_id, e.occurred_at, {"rating": e.rating}))
                        for e in events])


# Sellers and their base currency (issue 22, sellers.py): the copy of intake's `sellers` section,
# and the exchange rates their figures are converted with (the service's own `fx_rates`).
setup.follow(handlers, {"sellers": sellers.copy_sellers})
fx.subscribe(handlers)
