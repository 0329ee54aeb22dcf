"""Intake's subscribers: runs of events -> domain -> store -> emit (docs/messaging.md).

The hot path is `orders.placed`: a run of orders is reviewed with a constant number of
statements whatever its length (see `order_placed`). The other subscriptions are rarer and take
their events one by one (`uow.each`).
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, field
from typing import Any

from shared import fx, topics
from shared.contracts import (
    CancelRequested,
    CoverageChanged,
    FxRatesPublished,
    OrderCancelled,
    OrderCancelRefused,
    OrderCancelRequested,
    OrderPlaced,
    OrderShipped,
    ProductUpserted,
    order_id_for,
    utcnow,
)
from shared.db import Row, read_all
from shared.messaging import Handlers, RawMessage
from shared.parking import Sweep, start_parked_sweep
from shared.uow import UnitOfWork

from . import domain, metrics, review, store

log = logging.getLogger(__name__)
handlers = Handlers()


async def _rates_arrived(uow: UnitOfWork, event: FxRatesPublished) -> None:
    """New exchange rates: the orders held for want of one (`fx_rate_missing`: a threshold or a
    promotion in another currency) are reviewed again, and released if nothing else holds them."""
    await review.rereview_open_holds(uow, trigger="fx_rates", codes=["fx_rate_missing"])


fx.subscribe(handlers, then=_rates_arrived)  # exchange rates for money thresholds (shared/fx.py)


async def reject_malformed(uow: UnitOfWork, raw: RawMessage, code: str, message: str) -> bool:
    """An `orders.placed` value that breaks the contract (`malformed`) or is over the size limit
    (`too_large`) but names its order: the order is `rejected` with that code."""
    ident = domain.identify(raw.json())
    if ident is None:
        return False
    shop, ext = ident
    reasons = [(code, message)]
    order_id = order_id_for(shop, ext)
    if await store.insert_order(uow.conn, order_id, None, shop, ext, "rejected", reasons):
        uow.count(metrics.DECISIONS, "rejected", code)
        await uow.status(order_id=str(order_id), store=shop, external_order_id=ext,
                         status="rejected", reasons=reasons)
        log.info("order %s:%s rejected as %s: %s", shop, ext, code, message[:300])
    return True


# --- orders.placed: the hot path ----------------------------------------------------------------

@dataclass
class _Writes:
    """The rows a run of new orders writes, each kind in one statement (`flush`)."""

    orders: list[tuple[Any, ...]] = field(default_factory=list)
    decisions: list[tuple[uuid.UUID, str, str, list[tuple[str, str]], list[dict[str, Any]],
                          dict[str, Any]]] = field(default_factory=list)
    holds: list[tuple[uuid.UUID, str, list[tuple[str, str]], int]] = field(default_factory=list)
    promo_uses: list[tuple[str, str, uuid.UUID]] = field(default_factory=list)

    async def flush(self, conn: Any) -> None:
        await store.insert_orders(conn, self.orders)
        await store.insert_decisions(conn, self.decisions)
        await store.open_holds(conn, self.holds)
        await store.record_promo_uses(conn, self.promo_uses)
        self.orders, self.decisions, self.holds, self.promo_uses = [], [], [], []


@handlers.on(topics.ORDERS_PLACED, on_invalid=reject_malformed)
async def order_placed(uow: UnitOfWork, orders: list[OrderPlaced]) -> None:
    """Review a run of orders. Statements per run, whatever its length: the orders already held
    (1, locked in key order), early cancellations taken (1), policies, coverage and rates (the
    unit of work's memo: at most 3 per run), catalogue, promotions, promo uses, block list,
    prior orders and list prices (6, `review.gather`), then orders, decisions, holds and promo
    uses written (4), and the outbox rows (1, by the unit of work). Decisions are the domain's
    (`domain.review`), in the order of the run: a later order of the run sees the earlier ones
    (`domain.RunSoFar`) as if each had been handled alone. A re-sent order that changed while
    held is the exception: it is reviewed again on its own (`_received_again`)."""
    conn = uow.conn
    now = utcnow()
    keys = list(dict.fromkeys((o.store, o.external_order_id) for o in orders))
    found, early = await read_all(conn, store.find_orders_read(keys),
                                  store.take_early_cancels_read(keys))
    known: dict[tuple[str, str], Any] = dict(found)
    # A cancellation that came first was parked whole: the order is reviewed, then the
    # cancellation handled as if it had come second (same outcome and ids in either order). A
    # row parked before migration 0008 has no event: that order arrives cancelled.
    parked = {k: CancelRequested.model_validate_json(ev) for k, (_, ev) in early.items()
              if ev is not None}
    arrives_cancelled = {k: reason for k, (reason, ev) in early.items() if ev is None}
    # The first occurrence of each order not held yet is reviewed with what the run read.
    firsts: dict[tuple[str, str], OrderPlaced] = {}
    for o in orders:
        if (o.store, o.external_order_id) not in known:
            firsts.setdefault((o.store, o.external_order_id), o)
    candidates = [review.Candidate(o, order_id_for(*k), now, await store.policy(uow, o.store))
                  for k, o in firsts.items() if k not in arrives_cancelled]
    index = {(c.order.store, c.order.external_order_id): i for i, c in enumerate(candidates)}
    inputs = await review.gather(uow, candidates)
    so_far = domain.RunSoFar(received_at=now)
    writes = _Writes()
    decided: dict[tuple[str, str], tuple[OrderPlaced, str]] = {}  # this run's new orders
    for order in uow.each(orders):
        key = (order.store, order.external_order_id)
        if key in decided or key in known:
            if await _received_again(uow, order, known.get(key), decided.get(key), writes):
                # Rare: reviewed again on its own; a later re-send compares with the row now.
                # (Later orders of the run still see it as first decided, in `so_far`.)
                known[key] = await store.find_order(conn, *key)
                decided.pop(key, None)
            continue
        order_id = order_id_for(*key)
        ids: dict[str, Any] = {"order_id": str(order_id), "store": order.store,
                               "external_order_id": order.external_order_id}
        if key in arrives_cancelled:  # cancelled before it reached us (parked before 0008)
            reasons = [("cancelled_by_customer",
                        arrives_cancelled[key] or "cancelled before the order arrived")]
            writes.orders.append(store.order_row(order_id, order, *key, "cancelled", reasons))
            so_far.add(str(order_id), order, "cancelled")
            decided[key] = (order, "cancelled")
            log.info("order %s arrived cancelled: the customer cancelled it before", order.key)
            await uow.cancelled(**ids, reasons=reasons, currency=order.currency,
                                refund_due=domain.refund_due(order.totals.grand_total,
                                                             order.payment.status))
            continue
        i = index[key]
        candidate = candidates[i]
        result = inputs.review(i, candidate, now, so_far.context(order, inputs.contexts[i]))
        writes.orders.append(store.order_row(order_id, order, *key, result.status,
                                             result.reasons))
        writes.decisions.append((order_id, "placed", result.status, result.reasons,
                                 [h.as_dict() for h in result.fired],
                                 candidate.policy.as_dict()))
        if result.status == "on_hold":
            writes.holds.append((order_id, order.store, result.reasons,
                                 candidate.policy.hold_sla_minutes * 60))
        elif result.status == "accepted":
            writes.promo_uses += review.promo_uses(order_id, order)
        so_far.add(str(order_id), order, result.status)
        decided[key] = (order, result.status)
        await review.announce(uow, order_id, order, result)
    await writes.flush(conn)
    for event in uow.each([parked[k] for k in firsts if k in parked]):
        log.info("cancel of %s, which arrived before the order, handled now that the order"
                 " has been reviewed", event.key)
        await _cancel(uow, event)


async def _received_again(uow: UnitOfWork, order: OrderPlaced, row: Row | None,
                          new: tuple[OrderPlaced, str] | None, writes: _Writes) -> bool:
    """A storefront re-sends an order when it changes (payment now paid, address corrected): a
    held order is updated and reviewed again; it never becomes a second order. Retries of the
    same content, and changes to an order already decided, change nothing. `row` is the order
    as held before the run, `new` the order as this run decided it. True when it was reviewed
    again (the run's writes so far are flushed first: the re-review reads them)."""
    if new is not None:
        held, status = new
        same = _content(held) == _content(order)
    else:
        assert row is not None
        status = row["status"]
        same = row["payload"] is not None and _content(store.stored_order(
            row["payload"])) == _content(order)
    if status != "on_hold" or same:
        log.info("order %s received again (event %s) while %s; nothing to do", order.key,
                 order.event_id, status)
        return False
    await writes.flush(uow.conn)
    order_id = row["order_id"] if row is not None else order_id_for(order.store,
                                                                   order.external_order_id)
    after = await review.rereview(uow, order_id, trigger="order_resent", order=order)
    log.info("held order %s re-sent (event %s): reviewed again, now %s", order_id,
             order.event_id, after)
    return True


def _content(order: OrderPlaced) -> dict[str, Any]:
    return order.model_dump(mode="json", exclude={"event_id", "occurred_at"})


# --- cancellations and the rest: per event ------------------------------------------------------

@handlers.on(topics.ORDERS_CANCEL_REQUESTED)
async def cancel_requested(uow: UnitOfWork, events: list[CancelRequested]) -> None:
    """Held orders are cancelled here; accepted ones are handed down the chain, and the service
    holding the order confirms (or, once shipped, refuses). One event at a time. A cancellation
    whose order has not arrived is parked, and handled when the order's run has reviewed it."""
    for event in uow.each(events):
        await _cancel(uow, event)


async def _cancel(uow: UnitOfWork, event: CancelRequested) -> None:
    """One cancellation, with `event` the unit of work's cause."""
    conn = uow.conn
    row = await store.find_order(conn, event.store, event.external_order_id)
    reason = event.reason or "cancelled by the customer"
    key = event.key
    if row is None:
        await store.remember_early_cancel(conn, event.store, event.external_order_id, reason,
                                          event.model_dump_json())
        log.info("cancel of %s kept: the order has not arrived yet; it is handled when the"
                 " order has been reviewed", key)
        return
    if row["status"] in ("rejected", "cancelled", "cancel_requested"):
        log.info("cancel of %s ignored: the order is %s", key, row["status"])
        return
    if row["shipped"]:
        log.info("cancel of %s refused: the order has shipped; aftersales opens a return", key)
        await uow.publish(topics.INTAKE_ORDER_CANCEL_REFUSED, key, OrderCancelRefused(
            order_id=str(row["order_id"]), order_key=key, reason="the order has shipped",
            customer_reason=reason))
        return
    due = domain.refund_due(row["grand_total"], row["payment_status"])
    if row["status"] == "on_hold":
        reasons = [("cancelled_by_customer", reason)]
        await store.set_status(conn, row["order_id"], "cancelled", reasons)
        closed = await store.close_hold(conn, row["order_id"], "cancelled", "customer")
        if closed is not None:
            uow.observe(metrics.HOLD_AGE, closed["age_seconds"], "cancelled")
        await review.rereview_open_holds(uow, trigger="order_cancelled",
                                         codes=["suspected_duplicate"])
        await uow.cancelled(order_id=str(row["order_id"]), store=row["store"],
                            external_order_id=row["external_order_id"], reasons=reasons,
                            refund_due=due, currency=row["currency"])
        return
    await store.set_status(conn, row["order_id"], "cancel_requested", [])
    await uow.publish(topics.INTAKE_ORDER_CANCEL_REQUESTED, key, OrderCancelRequested(
        order_id=str(row["order_id"]), order_key=key, reason=reason, refund_due=due,
        currency=row["currency"]))


# A cancellation parked while another instance was inserting its order (shared/parking.py).
PARKED_SWEEP = Sweep(
    "DELETE FROM early_cancellations e USING orders o WHERE o.store = e.store"
    " AND o.external_order_id = e.external_order_id AND e.event IS NOT NULL RETURNING e.event",
    CancelRequested, _cancel)
start_sweep = start_parked_sweep(PARKED_SWEEP)


async def cancelled(uow: UnitOfWork, events: list[OrderCancelled]) -> None:
    """A service down the chain confirmed a cancellation."""
    for event in uow.each(events):
        await store.set_status(uow.conn, uuid.UUID(event.order_id), "cancelled",
                               [("cancelled_by_customer", event.reason)])
        # A hold naming this order as the original of a suspected duplicate may clear now.
        await review.rereview_open_holds(uow, trigger="order_cancelled",
                                         codes=["suspected_duplicate"])


for _topic in (topics.INVENTORY_ORDER_CANCELLED, topics.FULFILLMENT_ORDER_CANCELLED,
               topics.LOGISTICS_ORDER_CANCELLED):
    handlers.on(_topic)(cancelled)


@handlers.on(topics.LOGISTICS_ORDER_CANCEL_REFUSED)
async def cancel_refused(uow: UnitOfWork, events: list[OrderCancelRefused]) -> None:
    """The parcels were with the carrier before the cancellation reached them: the order stays
    shipped, and the cancellation goes to aftersales as a return (refused at the door, or sent
    back with a label), like one intake refuses itself (docs/cancellation.md)."""
    for event in uow.each(events):
        await store.set_status(uow.conn, uuid.UUID(event.order_id), "accepted", [])
        await store.mark_shipped(uow.conn, [uuid.UUID(event.order_id)])
        await uow.publish(topics.INTAKE_ORDER_CANCEL_REFUSED, event.order_key,
                          OrderCancelRefused(order_id=event.order_id, order_key=event.order_key,
                                             reason=event.reason,
                                             customer_reason=event.customer_reason))


@handlers.on(topics.CATALOG_PRODUCTS)
async def product_upserted(uow: UnitOfWork, events: list[ProductUpserted]) -> None:
    for event in uow.each(events):
        await store.upsert_product(uow.conn, event)


@handlers.on(topics.LOGISTICS_COVERAGE_CHANGED)
async def coverage_changed(uow: UnitOfWork, events: list[CoverageChanged]) -> None:
    for event in uow.each(events):
        await store.set_coverage(uow, event)
        # Holds for restricted goods clear when a carrier starts taking them there.
        await review.rereview_open_holds(uow, trigger="coverage_changed",
                                         codes=["restricted_goods"])


@handlers.on(topics.LOGISTICS_ORDER_SHIPPED)
async def order_shipped(uow: UnitOfWork, events: list[OrderShipped]) -> None:
    await store.mark_shipped(uow.conn, [uuid.UUID(e.order_id) for e in events])
