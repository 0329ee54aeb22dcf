"""Analytics' subscribers: the read model. Each event is kept once (inbox and `facts` by
event_id); the orders with first-time facts are folded once per consumer run (in `occurred_at`
order, never arrival order, so late events count as if they had come on time) and the change of
their contributions goes into the rollups, in the run's transaction (store.fold_orders,
rollups.py)."""

from __future__ import annotations

import logging
from typing import Any

from shared import topics
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
from shared.messaging import Ctx, Handlers, RawMessage
from shared.uow import UnitOfWork

from . import store
from .jobs import analytics_settings

log = logging.getLogger(__name__)
handlers = Handlers()


def _sla_hours() -> float:
    return analytics_settings().ship_sla_hours


Pending = dict[str, list[store.StoredFact]]


async def _fold(ctx: Ctx, key: str | None, fact: store.StoredFact) -> None:
    """A first-time fact goes to its order's pending facts on the run (nothing for a repeated
    fact, or a carrier scan of a parcel not shipped yet: the shipment folds it in). Before the
    run commits, each order touched is folded once with all of its new facts and the run's
    rollup changes are written at once (store.fold_orders, in the run's transaction)."""
    if key is None:
        return
    conn = ctx.conn

    async def fold(pending: Pending) -> None:
        await store.fold_orders(conn, pending, _sla_hours())

    pending: Pending = ctx.run.collect("analytics.fold", dict, fold)
    pending.setdefault(key, []).append(fact)


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
            "grand_total": f"{grand_total:.2f}", "currency": currency,
            "shipping_option": shipping_option}


@handlers.legacy(topics.ORDERS_PLACED, on_invalid=skip_invalid)
async def order_placed(ctx: Ctx, e: OrderPlaced) -> None:
    body = _placed_body(
        store_name=e.store, ext=e.external_order_id, customer_id=e.customer.id,
        country=e.shipping_address.country, placed_at=e.placed_at, lines=e.lines,
        grand_total=e.totals.grand_total, currency=e.currency, shipping_option=e.shipping_option)
    await _fold(ctx, await store.record_order_fact(
        ctx.conn, e.event_id, e.occurred_at, body, key=e.key, customer_id=e.customer.id,
        country=e.shipping_address.country, placed_at=e.placed_at),
        store.stored("placed", e.event_id, e.occurred_at, body))


@handlers.legacy(topics.INTAKE_ORDER_ACCEPTED)
async def order_accepted(ctx: Ctx, e: OrderAccepted) -> None:
    """The accepted snapshot is the order as reviewed; it also names our order id."""
    s: OrderSnapshot = e.order
    body = _placed_body(
        store_name=s.store, ext=s.external_order_id, customer_id=s.customer_id,
        country=s.shipping_address.country, placed_at=s.placed_at, lines=s.lines,
        grand_total=s.totals.grand_total, currency=s.currency, shipping_option=s.shipping_option)
    await _fold(ctx, await store.record_order_fact(
        ctx.conn, e.event_id, e.occurred_at, body, key=e.order_key, order_id=e.order_id,
        customer_id=s.customer_id, country=s.shipping_address.country, placed_at=s.placed_at),
        store.stored("placed", e.event_id, e.occurred_at, body))


@handlers.legacy(topics.ORDERS_STATUS)
async def status_changed(ctx: Ctx, e: OrderStatusChanged) -> None:
    await _fold(ctx, await store.record_status(ctx.conn, e),
                store.stored("status", e.event_id, e.occurred_at, store.status_body(e)))


@handlers.legacy(topics.LOGISTICS_ORDER_SHIPPED)
async def order_shipped(ctx: Ctx, e: OrderShipped) -> None:
    body = {"parcels": [p.model_dump(mode="json") for p in e.parcels]}
    fresh = await store.record_fact(ctx.conn, e.event_id, "shipped", e.occurred_at, body,
                                    order_key=e.order_key)
    for p in e.parcels:
        await store.index_parcel(ctx.conn, p.tracking_number, e.order_key, p.parcel_id, p.carrier,
                                  p.warehouse)
    await _fold(ctx, fresh, store.stored("shipped", e.event_id, e.occurred_at, body))


@handlers.legacy(topics.CARRIER_TRACKING, on_invalid=skip_invalid)
async def tracking_updated(ctx: Ctx, e: TrackingUpdated) -> None:
    body = {"carrier": e.carrier, "status": e.status}
    await _fold(ctx, await store.record_fact(ctx.conn, e.event_id, "tracked", e.occurred_at, body,
                                             tracking_number=e.tracking_number),
                store.stored("tracked", e.event_id, e.occurred_at, body, e.tracking_number))


@handlers.legacy(topics.AFTERSALES_REQUESTS, on_invalid=skip_invalid)
async def request_received(ctx: Ctx, e: AftersalesRequested) -> None:
    body = {"request_id": e.request_id, "kind": e.kind, "reason": e.reason,
            "lines": [ln.model_dump(mode="json") for ln in e.lines]}
    await _fold(ctx, await store.record_fact(ctx.conn, e.event_id, "requested", e.occurred_at,
                                             body, order_key=e.key),
                store.stored("requested", e.event_id, e.occurred_at, body))


@handlers.legacy(topics.PAYMENTS_REFUNDS)
async def refund_issued(ctx: Ctx, e: RefundIssued) -> None:
    await store.record_refund(ctx.conn, e)
    key = f"{e.store}:{e.external_order_id}"
    body = {"request_id": e.request_id, "amount": f"{e.amount:.2f}", "currency": e.currency,
            "reason": e.reason}
    await _fold(ctx, await store.record_fact(ctx.conn, e.event_id, "refunded", e.occurred_at,
                                             body, order_key=key),
                store.stored("refunded", e.event_id, e.occurred_at, body))


@handlers.legacy(topics.CUSTOMER_FEEDBACK, on_invalid=skip_invalid)
async def feedback_given(ctx: Ctx, e: FeedbackGiven) -> None:
    await store.record_feedback(ctx.conn, e)
    body = {"rating": e.rating}
    await _fold(ctx, await store.record_fact(ctx.conn, e.event_id, "rated", e.occurred_at,
                                             body, order_key=e.key),
                store.stored("rated", e.event_id, e.occurred_at, body))
