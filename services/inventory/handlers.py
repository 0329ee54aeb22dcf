"""Inventory's subscribers: reserve accepted orders (one warehouse, else split, else backorder,
or with the store's "ship what is there" policy, the available part now and the rest as a
linked continuation order), refill backorders on restock (oldest first), the customer's
backorder decisions, re-allocate short picks, refurbished and scrapped returns, release on
cancellation, commit on dispatch.

Every handler takes a run of events in one unit of work (docs/messaging.md). The hot path,
`order_accepted`, handles its run with a constant number of statements (see its docstring);
the others go event by event (`uow.each`), each event the cause of what it emits."""

from __future__ import annotations

import json
import logging
import uuid
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from prometheus_client import Counter

from shared import topics
from shared.contracts import (
    BackorderDecision,
    OrderAccepted,
    OrderCancelled,
    OrderCancelRequested,
    OrderLine,
    OrderShipped,
    OrderSnapshot,
    ProductUpserted,
    ReturnGraded,
    ReturnRestocked,
    ShortPicked,
    StockAdjusted,
    StockReserved,
    Totals,
    money_text,
)
from shared.db import read_all
from shared.locks import RunLocks, exclusive
from shared.messaging import (
    Handlers,
    PoisonMessage,
    confirm_cancellation,
    forwarded,
)
from shared.money import refund_due
from shared.parking import handle_parked_cancels, order_or_park, take_parked_cancels_read
from shared.uow import UnitOfWork

from . import domain, store
from .domain import Decision, ExpectedReceipt, Line, Plan

log = logging.getLogger(__name__)
# Every run takes what its handlers declare (`locks=`) before the first one runs, under the
# backorders lock (shared/locks.py, docs/inventory.md "Locking"): the handlers whose rows follow
# from their events (reservations, shipments, cancellation requests, products, graded returns)
# declare their orders, stock SKUs (every warehouse's row) and products; those that find rows
# while running (refills after a restock, a release or a decision; short picks) run alone.
handlers = Handlers(run_lock=store.BACKORDERS_LOCK)

BACKORDERS = Counter("shopkeeper_inventory_backorders_total",
                     "Backorders opened and how they ended", ["outcome"])


# A continuation order's id is derived from the original's, so a redelivery makes the same one.
CONTINUATION_NS = uuid.UUID("5d3f6c1e-8a4b-4f0e-9c61-2b7e0d9a4c11")
REALLOCATIONS = Counter("shopkeeper_inventory_short_picks_total",
                        "Short picks by how inventory answered", ["outcome"])


def _lines_of(snap: OrderSnapshot) -> list[Line]:
    return [Line(ln.sku, ln.quantity) for ln in snap.lines]


def _parse_allocations(raw: str) -> dict[str, list[Line]]:
    return {a["warehouse"]: [Line(ln["sku"], ln["quantity"]) for ln in a["lines"]]
            for a in json.loads(raw)}


# --- reference data, read once per unit of work -----------------------------------------------
async def _policies(uow: UnitOfWork, stores: list[str]) -> dict[str, store.Policy]:
    names = tuple(sorted(set(stores)))
    return await uow.reference(("inventory.policies", names),
                               lambda: store.policies(uow.conn, list(names)),
                               tables=("store_policies",))


async def _policy(uow: UnitOfWork, store_name: str) -> store.Policy:
    return (await _policies(uow, [store_name]))[store_name]


async def _priorities(uow: UnitOfWork) -> dict[str, list[str]]:
    return await uow.reference("inventory.priorities", lambda: store.priorities(uow.conn),
                               tables=("warehouse_priority",))


async def _warehouses(uow: UnitOfWork) -> list[str]:
    return await uow.reference("inventory.warehouses", lambda: store.warehouses(uow.conn),
                               tables=("warehouses",))


# --- emitting ---------------------------------------------------------------------------------
async def _status(uow: UnitOfWork, snap: OrderSnapshot, status: str, *,
                  reasons: list[tuple[str, str]] | None = None,
                  details: dict[str, Any] | None = None, correlation_id: str | None = None,
                  causation_id: str | None = None) -> None:
    """`uow.status` for the order `snap`. With `correlation_id` (the order's own, kept on its
    row), the change joins the order's trace when what caused it is not one of the order's
    events (a restock, the original order's cancellation, an operator, a timer); the event's
    id still derives from the current cause."""
    await uow.status(order_id=snap.order_id, store=snap.store,
                     external_order_id=snap.external_order_id, status=status, reasons=reasons,
                     details=details, correlation_id=correlation_id, causation_id=causation_id)


async def cancelled_status(uow: UnitOfWork, snap: OrderSnapshot, reasons: list[tuple[str, str]],
                           due: Decimal, *, correlation_id: str | None = None,
                           causation_id: str | None = None) -> None:
    """`uow.cancelled` for the order `snap` (the storefront hears `cancelled` with the refund
    due, the payment system the refund request), on the order's trace as in `_status`."""
    await uow.cancelled(order_id=snap.order_id, store=snap.store,
                        external_order_id=snap.external_order_id, reasons=reasons,
                        refund_due=due, currency=snap.currency, correlation_id=correlation_id,
                        causation_id=causation_id)


def _allocations(plan: Plan) -> list[dict[str, Any]]:
    return [{"warehouse": wh, "lines": [{"sku": ln.sku, "quantity": ln.quantity} for ln in lines]}
            for wh, lines in sorted(plan.allocations.items())]


async def _announce_reserved(uow: UnitOfWork, snap: OrderSnapshot, plan: Plan,
                             correlation_id: str | None = None,
                             extra: dict[str, Any] | None = None) -> None:
    """The customer hears `reserved`, fulfillment gets `inventory.stock_reserved`."""
    allocations = _allocations(plan)
    await _status(uow, snap, "reserved", details={"allocations": allocations, **(extra or {})},
                  correlation_id=correlation_id)
    await uow.publish(topics.INVENTORY_STOCK_RESERVED, snap.key, StockReserved(
        order_id=snap.order_id, order_key=snap.key, order=snap, allocations=allocations,
        correlation_id=correlation_id))


def _backorder_details(short: list[Line], offers: dict[str, list[str]],
                       eta: datetime | None) -> dict[str, Any]:
    return {"short_lines": [{"sku": s.sku, "quantity": s.quantity} for s in short],
            "substitutes": offers,
            "restock_eta": eta.isoformat().replace("+00:00", "Z") if eta else None}


# --- what each handler locks (shared/locks.py) ------------------------------------------------
def _accepted_locks(events: list[OrderAccepted]) -> RunLocks:
    """An accepted order's row and its first continuation's (both may be inserted), the stock
    rows of its SKUs."""
    return RunLocks.of(
        orders=[i for e in events for i in (e.order_id, _continuation_id(e.order_id, 1))],
        stock=[ln.sku for e in events for ln in e.order.lines])


def _shipped_locks(events: list[OrderShipped]) -> RunLocks:
    return RunLocks.of(orders=[e.order_id for e in events],
                       stock=[ln.sku for e in events for p in e.parcels for ln in p.lines])


def _cancel_requested_locks(events: list[OrderCancelRequested]) -> RunLocks:
    return RunLocks.of(orders=[e.order_id for e in events])


def _product_locks(events: list[ProductUpserted]) -> RunLocks:
    return RunLocks.of(products=[e.sku for e in events])


def _graded_locks(events: list[ReturnGraded]) -> RunLocks:
    return RunLocks.of(stock=[ln.sku for e in events for ln in e.lines])


# --- the hot path: a run of accepted orders ---------------------------------------------------
@dataclass
class _Waiting:
    """A backorder the run opens (a whole order, or the continuation of one shipping what is
    there): its place in the queue, what is short, and what its customer is offered."""

    order_id: uuid.UUID
    at: datetime
    short: list[Line]
    seen: dict[str, dict[str, int]]
    price_band: Decimal
    offers: dict[str, list[str]]
    eta: datetime | None = None


@handlers.on(topics.INTAKE_ORDER_ACCEPTED, locks=_accepted_locks)
async def order_accepted(uow: UnitOfWork, events: list[OrderAccepted]) -> None:
    """Reserve a run of accepted orders, oldest first, exactly as if handled one by one, in a
    constant number of statements whatever the run's size:

    1. the orders inventory already knows, locked (a repeat is ignored);
    2. the stores' policies, the warehouses and their priorities (cached reference data);
    3. the stock rows of every SKU of the run, locked in SKU order (with 1, one statement: two
       instances reserving the same hot SKUs queue on the run lock instead of deadlocking);
    4. each order decided in the pure domain, in the order of the events, against what the
       orders before it left (`domain.decide_order`): reserved, partly reserved with a
       continuation order ("ship what is there"), or backordered;
    5. for the backorders, if any: the short SKUs' products, their categories' substitutes,
       the expected receipts and the queue ahead of each (four queries);
    6. the reservations (one UPDATE of the balances, one INSERT of ledger rows) and the orders
       (one INSERT), all with unnest;
    7. per order, inside `uow.each`, what its customer and fulfillment hear;
    8. the cancellations parked because they came before their orders (taken in 1's statement),
       handled as if they had come after: the same events and ids in either order.
    The rows are locked before the plans are made, so the best plan is the one reserved: no
    savepoint per plan, no race left to lose (the CHECKs of the stock table still guard)."""
    conn = uow.conn
    policies = await _policies(uow, [e.order.store for e in events])
    priorities = await _priorities(uow)
    skus = sorted({ln.sku for e in events for ln in e.order.lines})
    # 1 and 3 in one statement (shared.db.read_all); the run lock (shared/locks.py) holds every
    # key they lock, so the order they lock in within it does not matter.
    ids = sorted({uuid.UUID(e.order_id) for e in events})
    known, available, parked = await read_all(
        conn, store.known_orders_read(ids), store.lock_stock_read(skus, await _warehouses(uow)),
        take_parked_cancels_read(ids))

    # 4. Decide, in the order of the events.
    decisions: list[Decision | None] = []
    for e in events:
        order_id = uuid.UUID(e.order_id)
        if order_id in known:
            decisions.append(None)
            continue
        snap, policy = e.order, policies[e.order.store]
        decision = domain.decide_order(
            _lines_of(snap), snap.shipping_address.country, available, priorities,
            policy.split_allowed, policy.split_penalty,
            ship_available=policy.partial == "ship_available" and snap.kind != "backorder")
        decisions.append(decision)
        known[order_id] = "backordered" if decision.outcome == "backordered" else "reserved"

    # What the rows and the events say: the snapshots as they ship, the continuations.
    reservations: list[store.Reservation] = []
    rows: list[store.NewOrder] = []
    waiting: list[_Waiting] = []
    shipping: dict[int, OrderSnapshot] = {}
    rests: dict[int, OrderSnapshot] = {}
    for i, (e, d) in enumerate(zip(events, decisions, strict=True)):
        if d is None:
            continue
        order_id, snap = uuid.UUID(e.order_id), e.order
        correlation = str(e.correlation_id or e.event_id)
        band = policies[snap.store].substitute_price_band
        if d.plan is not None:
            for wh, lines in sorted(d.plan.allocations.items()):
                reservations += [store.Reservation(order_id, wh, ln.sku, ln.quantity, e.event_id)
                                 for ln in sorted(lines, key=lambda x: x.sku)]
        if d.outcome == "reserved":
            assert d.plan is not None
            rows.append(store.NewOrder(order_id, e.order_key, "reserved", snap, correlation,
                                       e.occurred_at, _allocations(d.plan), trace=d.trace))
        elif d.outcome == "partial":
            assert d.plan is not None
            # A new order has no continuation yet: this is its first.
            rest = rests[i] = continuation_of(snap, d.short, 1)
            now_lines = [ln for lines_ in d.plan.allocations.values() for ln in lines_]
            ships = shipping[i] = snap.model_copy(
                update={"lines": _priced(snap, domain.merge_lines(now_lines))})
            rows.append(store.NewOrder(
                order_id, snap.key, "reserved", ships, correlation, e.occurred_at,
                _allocations(d.plan), trace=[*d.trace, f"not all in stock; ship what is there,"
                                             f" the rest is {rest.key}"]))
            cont = _Waiting(uuid.UUID(rest.order_id), e.occurred_at, d.backorder, d.seen, band,
                            {})
            waiting.append(cont)
            rows.append(store.NewOrder(cont.order_id, rest.key, "backordered", rest, correlation,
                                       e.occurred_at, short=d.backorder,
                                       continues=order_id, trace=[f"continues {snap.key}"]))
        else:
            waiting.append(_Waiting(order_id, e.occurred_at, d.backorder, d.seen, band, {}))
            rows.append(store.NewOrder(order_id, e.order_key, "backordered", snap, correlation,
                                       e.occurred_at, short=d.backorder, trace=d.trace))

    # 5. What the backorders' customers are offered, and when the goods are expected.
    if waiting:
        await _offers_and_etas(uow, waiting, set(skus))
        facts = {w.order_id: w for w in waiting}
        for row in rows:
            fact = facts.get(row.order_id)
            if fact is not None:
                row.substitutes, row.restock_eta = fact.offers, fact.eta

    # 6. Write.
    await store.reserve_all(conn, reservations)
    await store.insert_orders(conn, rows)

    # 7. Tell, per order, in the order of the events.
    by_id = {w.order_id: w for w in waiting}
    for i, e in enumerate(uow.each(events)):
        d = decisions[i]
        if d is None:
            log.info("order %s already known to inventory as %s; ignored", e.order_key,
                     known[uuid.UUID(e.order_id)])
            continue
        snap = e.order
        if d.outcome == "reserved":
            assert d.plan is not None
            await _announce_reserved(uow, snap, d.plan)
        elif d.outcome == "partial":
            assert d.plan is not None
            rest, ships = rests[i], shipping[i]
            cont = by_id[uuid.UUID(rest.order_id)]
            link = {"order_id": rest.order_id, "external_order_id": rest.external_order_id}
            short_json = [{"sku": ln.sku, "quantity": ln.quantity} for ln in d.short]
            await _status(uow, snap, "backordered", reasons=[(
                "partially_backordered", f"not all in stock: what is in stock ships now; the"
                f" rest follows as {rest.key}")], details={
                "short_lines": short_json, "substitutes": {}, "restock_eta": None,
                "continuation": link})
            await _announce_reserved(uow, ships, d.plan, extra={
                "backordered_lines": short_json, "continuation": link})
            await _status(uow, rest, "accepted",
                          details={"continues": snap.order_id, "kind": "backorder"})
            uow.count(BACKORDERS, "opened")
            uow.count(BACKORDERS, "partial")
            await _status(uow, rest, "backordered", reasons=[
                ("out_of_stock", f"the part of {snap.key} not in stock")],
                details=_backorder_details(cont.short, cont.offers, cont.eta))
            log.info("order %s: ships what is there; %s waits for the rest", snap.key, rest.key)
        else:
            w = by_id[uuid.UUID(e.order_id)]
            uow.count(BACKORDERS, "opened")
            await _status(uow, snap, "backordered",
                          reasons=[("out_of_stock", "not enough stock to fill the order")],
                          details=_backorder_details(w.short, w.offers, w.eta))
            log.info("order %s backordered: short %s", e.order_key,
                     [(s.sku, s.quantity) for s in w.short])

    # 8. Cancellations that came before their orders, as if they had come after (step 1's
    # lock holds the rows; `_cancel` reads them as the run left them).
    await handle_parked_cancels(uow, (uuid.UUID(e.order_id) for e in events), parked, _cancel)


async def _offers_and_etas(uow: UnitOfWork, waiting: list[_Waiting], locked: set[str]) -> None:
    """The substitutes on offer and the restock ETA of each backorder the run opens, in four
    queries for the whole run, each as the backorder would have seen them opened alone: the
    stock its predecessors in the run left (`seen`, for the SKUs the run locked), and the queue
    ahead of it including the run's earlier backorders (restock serves the oldest first)."""
    conn = uow.conn
    short_skus = sorted({ln.sku for w in waiting for ln in w.short})
    known = await store.products(conn, short_skus)
    categories = sorted({p.category for p in known.values()})
    candidates = await store.substitute_candidates_of(conn, categories) if categories else {}
    expected: list[ExpectedReceipt] = await store.expected_receipts(conn, short_skus)
    ahead = await store.waiting_ahead_of(conn, short_skus, [(w.at, w.order_id) for w in waiting])
    for k, w in enumerate(waiting):
        for ln in w.short:
            original = known.get(ln.sku)
            if original is None:
                continue
            found, best = candidates[original.category]
            in_stock = {sku: (max((s[sku] for s in w.seen.values() if sku in s), default=0)
                              if sku in locked else q) for sku, q in best.items()}
            offers = domain.substitutes(original, found, in_stock, ln.quantity, w.price_band)
            if offers:
                w.offers[ln.sku] = offers
        queue = dict(ahead[k])
        for before in waiting[:k]:  # the run's earlier backorders, where they are older
            if (before.at, before.order_id) < (w.at, w.order_id):
                for ln in before.short:
                    queue[ln.sku] = queue.get(ln.sku, 0) + ln.quantity
        w.eta = domain.restock_eta(w.short, expected, queue)


# aftersales: replacement orders (exchange, reship) are reserved like any accepted order.
handlers.on(topics.AFTERSALES_REPLACEMENT_ORDERED, locks=_accepted_locks)(order_accepted)


# --- one order at a time: refills, substitutions, re-allocations ------------------------------
async def allocate(uow: UnitOfWork, order_id: uuid.UUID, snap: OrderSnapshot,
                   event_id: uuid.UUID, policy: store.Policy,
                   substituted: frozenset[str] = frozenset()) -> tuple[Plan | None, list[str]]:
    """Try the plans best first, each in a savepoint, so a lost race just moves on (these
    paths read the stock without locking it first: a run of accepted orders may take it
    meanwhile). Returns the plan reserved (or None) and the trace that explains the choice."""
    conn = uow.conn
    lines = _lines_of(snap)
    available = await store.available(conn, sorted({ln.sku for ln in lines}))
    plans = domain.choose_plan(lines, snap.shipping_address.country, available,
                               await _priorities(uow), policy.split_allowed,
                               policy.split_penalty)
    trace: list[str] = []
    for plan in plans:
        try:
            async with conn.transaction():
                await store.reserve(conn, order_id, plan, event_id, substituted)
            return plan, trace + plan.trace + [f"reserved {sorted(plan.allocations)}"]
        except store.StockGone as gone:
            trace += [*plan.trace, f"lost the race for {gone}; next plan"]
            log.info("order %s: %s was taken meanwhile; trying the next plan", order_id, gone)
    if not plans:
        trace.append("no single warehouse can fill every line"
                     + ("; no split can either" if policy.split_allowed
                        else "; the store does not allow split shipments"))
    return None, [*trace, "backorder"]


async def _backorder(uow: UnitOfWork, order_id: uuid.UUID, snap: OrderSnapshot,
                     policy: store.Policy, trace: list[str], reason: tuple[str, str],
                     correlation_id: str | None = None) -> None:
    """Record what is short, the substitutes on offer and the restock ETA; tell the customer."""
    conn = uow.conn
    lines = _lines_of(snap)
    short = domain.short_lines(lines, await store.available(conn, [ln.sku for ln in lines]))
    known = await store.products(conn, [ln.sku for ln in short])
    offers: dict[str, list[str]] = {}
    for ln in short:
        original = known.get(ln.sku)
        if original is None:
            continue
        candidates, in_stock = await store.substitute_candidates(conn, original.category)
        found = domain.substitutes(original, candidates, in_stock, ln.quantity,
                                   policy.substitute_price_band)
        if found:
            offers[ln.sku] = found
    skus = [s.sku for s in short]
    eta = domain.restock_eta(short, await store.expected_receipts(conn, skus),
                             await store.waiting_ahead(conn, skus, order_id))
    await store.set_backorder(conn, order_id, short, offers, eta, trace)
    await _status(uow, snap, "backordered", reasons=[reason],
                  details=_backorder_details(short, offers, eta), correlation_id=correlation_id)


async def refresh_eta(uow: UnitOfWork, sku: str) -> int:
    """A receipt was announced: waiting orders for the SKU may now have a restock ETA (or an
    earlier one); the customer hears `backordered` again with it. Oldest first, so each order's
    ETA counts what the older ones take. Caller holds `store.lock_refill`."""
    conn = uow.conn
    expected = await store.expected_receipts(conn, [sku])
    changed = 0
    for row in await store.backordered(conn, [sku], limit=5000):
        short = [Line(x["sku"], x["quantity"]) for x in json.loads(row["short_lines"])]
        skus = [s.sku for s in short]
        more = await store.expected_receipts(conn, [s for s in skus if s != sku])
        eta = domain.restock_eta(short, expected + more,
                                 await store.waiting_ahead(conn, skus, row["order_id"]))
        if eta == row["restock_eta"] or row["snapshot"] is None:
            continue
        snap = OrderSnapshot.model_validate_json(row["snapshot"])
        offers = json.loads(row["substitutes"])
        await store.set_backorder(conn, row["order_id"], short, offers, eta,
                                  [f"restock expected for {sku}: eta {eta}"])
        await _status(uow, snap, "backordered",
                      reasons=[("restock_expected", f"a receipt of {sku} is on the way")],
                      details=_backorder_details(short, offers, eta),
                      correlation_id=row["correlation_id"])
        changed += 1
    return changed


async def refill_backorders(uow: UnitOfWork, skus: list[str], event_id: uuid.UUID) -> int:
    """Reserve waiting orders for `skus` that the stock now covers, oldest first; `event_id`
    (the restock, return or release that freed the stock) is the current cause. The caller
    took `store.lock_refill` before touching any stock row."""
    conn = uow.conn
    filled = 0
    for row in await store.backordered(conn, skus, reallocating=True):
        snap = OrderSnapshot.model_validate_json(row["snapshot"])
        policy = await _policy(uow, snap.store)
        if row["status"] == "reallocating":
            filled += await _refill_short(uow, row, snap, policy, event_id)
            continue
        plan, trace = await allocate(uow, row["order_id"], snap, event_id, policy)
        if plan is None:
            continue
        await store.update_order(conn, row["order_id"], "reserved", _allocations(plan), [])
        await store.add_trace(conn, row["order_id"], ["restocked:", *trace])
        await _announce_reserved(uow, snap, plan, row["correlation_id"])
        uow.count(BACKORDERS, "restocked")
        filled += 1
    if filled:
        log.info("restock of %s filled %d backordered orders", skus, filled)
    return filled


@handlers.on(topics.STOCK_ADJUSTMENTS, locks=exclusive)
async def stock_adjusted(uow: UnitOfWork, events: list[StockAdjusted]) -> None:
    conn = uow.conn
    for event in uow.each(events):
        if not await store.warehouse_exists(conn, event.warehouse):
            raise PoisonMessage(f"unknown warehouse {event.warehouse!r} for {event.sku}; add it"
                                " to inventory.warehouses, then replay the DLQ")
        await store.lock_refill(conn)
        drift = await store.adjust(conn, event)
        if drift:
            log.warning("stock %s@%s: %s of %d leaves %d reserved units not on hand; count"
                        " again", event.sku, event.warehouse, event.kind, event.quantity, drift)
        if event.kind == "received":
            await store.close_expected(conn, event)
        if event.kind in ("received", "counted"):
            await refill_backorders(uow, [event.sku], event.event_id)


@handlers.on(topics.AFTERSALES_RETURN_RESTOCKED, locks=exclusive)
async def return_restocked(uow: UnitOfWork, events: list[ReturnRestocked]) -> None:
    conn = uow.conn
    for event in uow.each(events):
        await store.lock_refill(conn)
        for ln in sorted(event.lines, key=lambda x: x.sku):
            await store.add_on_hand(conn, ln.sku, event.warehouse, ln.quantity, "return",
                                    f"return {event.request_id}", event.event_id,
                                    uuid.UUID(event.order_id))
        await refill_backorders(uow, sorted({ln.sku for ln in event.lines}), event.event_id)


@handlers.on(topics.INTAKE_ORDER_CANCEL_REQUESTED, locks=_cancel_requested_locks)
async def cancel_requested(uow: UnitOfWork, events: list[OrderCancelRequested]) -> None:
    """Confirm while the order is still ours (backordered); once reserved it has moved on to
    fulfillment, so the request follows it there. A cancellation that overtook the order's
    acceptance is parked and handled in the acceptance's run, right after it."""
    for event in uow.each(events):
        await _cancel(uow, event)


async def _cancel(uow: UnitOfWork, event: OrderCancelRequested) -> None:
    """One cancellation, with `event` the unit of work's cause."""
    conn = uow.conn
    order_id = uuid.UUID(event.order_id)
    row = await order_or_park(uow, event, store.get_order)
    if row is None:
        return
    if row["status"] == "backordered":
        await store.update_order(conn, order_id, "cancelled")
        uow.count(BACKORDERS, "cancelled")
    elif row["status"] == "cancelled":
        return
    else:
        await uow.publish(topics.INVENTORY_ORDER_CANCEL_FORWARDED, event.order_key,
                          forwarded(event))
        return
    await confirm_cancellation(uow, topics.INVENTORY_ORDER_CANCELLED, event, "inventory")


@handlers.on(topics.ORDERS_BACKORDER_DECISIONS, locks=exclusive)
async def backorder_decision(uow: UnitOfWork, events: list[BackorderDecision]) -> None:
    """The customer's answer to `backordered`: wait (stay in the queue), substitute (reserve
    the substitutes, record the price difference) or cancel (confirmed here, as for a
    cancellation of a backordered order: docs/cancellation.md)."""
    conn = uow.conn
    for event in uow.each(events):
        await store.lock_refill(conn)
        row = await store.order_by_key(conn, event.key)
        if row is not None and row["status"] == "reallocating" and event.decision != "substitute":
            await _short_decision(uow, row, event)
            continue
        if row is None or row["status"] != "backordered" or row["snapshot"] is None:
            log.warning("backorder decision %s for %s, which inventory has as %s; ignored",
                        event.decision, event.key, row["status"] if row else "unknown")
            continue
        snap = OrderSnapshot.model_validate_json(row["snapshot"])
        order_id = row["order_id"]
        if event.decision == "wait":
            await store.set_decision(conn, order_id, "wait")
            continue
        if event.decision == "cancel":
            await store.set_decision(conn, order_id, "cancel")
            await store.update_order(conn, order_id, "cancelled")
            uow.count(BACKORDERS, "declined")
            # The request stands for the decision (its id and trace), so what the confirmation
            # emits is caused by the decision and derives its ids from it.
            await confirm_cancellation(uow, topics.INVENTORY_ORDER_CANCELLED, OrderCancelRequested(
                event_id=event.event_id, order_id=snap.order_id, order_key=snap.key,
                reason="backorder declined by customer",
                refund_due=refund_due(snap.totals.grand_total, snap.payment_status),
                currency=snap.currency, correlation_id=uow.correlation_id), "inventory")
            continue
        await _substitute(uow, row, snap, event)


async def _substitute(uow: UnitOfWork, row: Any, snap: OrderSnapshot,
                      event: BackorderDecision) -> None:
    conn = uow.conn
    wanted = event.substitutions
    order_id = row["order_id"]
    offered: dict[str, list[str]] = json.loads(row["substitutes"])
    policy = await _policy(uow, snap.store)
    invalid = {s: sub for s, sub in wanted.items() if sub not in offered.get(s, [])}
    if not wanted or invalid:
        await store.add_trace(conn, order_id, [f"substitution refused: {invalid or 'none'}"])
        await _backorder(uow, order_id, snap, policy, [],
                         ("substitute_not_offered", f"not among the substitutes offered: {invalid}"
                          if invalid else "no substitution named"), row["correlation_id"])
        return
    prices = await store.products(conn, sorted(wanted.values()))
    quantities: dict[str, int] = {}
    paid: dict[str, Decimal] = {}
    for ln in snap.lines:
        quantities[ln.sku] = quantities.get(ln.sku, 0) + ln.quantity
        paid.setdefault(ln.sku, ln.unit_price)
    new_lines = [ln.model_copy(update={"sku": wanted.get(ln.sku, ln.sku)}) for ln in snap.lines]
    substituted_snap = snap.model_copy(update={"lines": new_lines})
    plan, trace = await allocate(uow, order_id, substituted_snap, event.event_id, policy,
                                 frozenset(wanted.values()))
    if plan is None:
        await _backorder(uow, order_id, snap, policy, ["substitution:", *trace],
                         ("substitute_unavailable", "the substitute is no longer in stock"),
                         row["correlation_id"])
        return
    difference = domain.price_difference(
        paid, {s: p.price for s, p in prices.items()}, wanted, quantities)
    await store.set_decision(conn, order_id, "substitute", wanted, difference)
    await store.update_order(conn, order_id, "reserved", _allocations(plan), [])
    await store.set_snapshot(conn, order_id, substituted_snap)
    await store.add_trace(conn, order_id, ["substitution:", *trace])
    uow.count(BACKORDERS, "substituted")
    await _announce_reserved(uow, substituted_snap, plan, row["correlation_id"],
                             {"substitutions": wanted, "price_difference": money_text(difference)})
    # The difference is settled with the payment system when money was taken (a pending
    # payment is charged the new total by the storefront itself).
    if refund_due(snap.totals.grand_total, snap.payment_status) > 0:
        ids = {"order_id": snap.order_id, "store": snap.store,
               "external_order_id": snap.external_order_id, "currency": snap.currency,
               "reason": "substitution_price_difference"}
        await uow.refund(**ids, request_id="substitution", amount=-difference)
        await uow.charge(**ids, charge_id="substitution", amount=difference)


async def release_cancelled(uow: UnitOfWork, events: list[OrderCancelled]) -> None:
    """Fulfillment or logistics confirmed a cancellation: the reserved goods are free again."""
    conn = uow.conn
    for event in uow.each(events):
        await store.lock_refill(conn)
        order_id = uuid.UUID(event.order_id)
        row = await store.get_order(conn, order_id)
        if row is None or row["status"] not in ("reserved", "reallocating"):
            continue
        allocations = json.loads(row["allocations"])
        await store.release(conn, order_id, allocations, event.event_id)
        await store.update_order(conn, order_id, "cancelled")
        await _cancel_continuations(uow, order_id)
        skus = sorted({ln["sku"] for a in allocations for ln in a["lines"]})
        await refill_backorders(uow, skus, event.event_id)


async def _cancel_continuations(uow: UnitOfWork, order_id: uuid.UUID) -> None:
    """The original order's cancellation is confirmed (its refund covers every line), so the
    parts still to come are cancelled too, with nothing more due: a waiting one here, one
    already reserved wherever it is now (the hand-off of docs/cancellation.md)."""
    for row in await store.continuations(uow.conn, order_id):
        if row["status"] not in ("backordered", "reserved", "reallocating"):
            continue
        snap = OrderSnapshot.model_validate_json(row["snapshot"])
        request = OrderCancelRequested(
            order_id=snap.order_id, order_key=snap.key, reason="the order it continues was"
            " cancelled", refund_due=Decimal("0.00"), currency=snap.currency,
            correlation_id=row["correlation_id"])
        if row["status"] == "backordered":
            await store.update_order(uow.conn, row["order_id"], "cancelled")
            uow.count(BACKORDERS, "cancelled")
            await _status(uow, snap, "cancelled",
                          reasons=[("original_cancelled", request.reason)],
                          details={"refund_due": "0.00"}, correlation_id=row["correlation_id"])
            await uow.publish(topics.INVENTORY_ORDER_CANCELLED, snap.key, OrderCancelled(
                order_id=snap.order_id, order_key=snap.key, reason=request.reason,
                refund_due=Decimal("0.00"), currency=snap.currency, confirmed_by="inventory",
                correlation_id=row["correlation_id"]))
        else:
            await uow.publish(topics.INVENTORY_ORDER_CANCEL_FORWARDED, snap.key, request)
        log.info("order %s cancelled: its continuation %s follows", order_id, snap.key)


for _topic in (topics.FULFILLMENT_ORDER_CANCELLED, topics.LOGISTICS_ORDER_CANCELLED):
    handlers.on(_topic, locks=exclusive)(release_cancelled)


@handlers.on(topics.LOGISTICS_ORDER_SHIPPED, locks=_shipped_locks)
async def order_shipped(uow: UnitOfWork, events: list[OrderShipped]) -> None:
    """A run of shipped orders commits its stock in four statements whatever its size: the
    orders locked in id order, the stock rows in SKU order (as reserving locks them: no deadlock
    between a run of reservations and a run of shipments, or two instances), one UPDATE of the
    balances and one INSERT of the ledger (`store.commit_all`), one UPDATE of the orders."""
    conn = uow.conn
    status = await store.known_orders(conn, sorted({uuid.UUID(e.order_id) for e in events}))
    shipped: list[store.Reservation] = []
    committed: list[uuid.UUID] = []
    for event in uow.each(events):
        order_id = uuid.UUID(event.order_id)
        if status.get(order_id) != "reserved":
            log.warning("order %s shipped but inventory has it as %s; nothing committed",
                        event.order_key, status.get(order_id, "unknown"))
            continue
        status[order_id] = "committed"  # shipped twice in the run: committed once
        committed.append(order_id)
        shipped += [store.Reservation(order_id, p.warehouse, ln.sku, ln.quantity,
                                      event.event_id, "commit")
                    for p in event.parcels for ln in p.lines]
    await store.commit_all(conn, shipped)
    if committed:
        await store.set_orders_status(conn, committed, "committed")


@handlers.on(topics.CATALOG_PRODUCTS, locks=_product_locks)
async def product_upserted(uow: UnitOfWork, events: list[ProductUpserted]) -> None:
    for event in uow.each(events):
        await store.upsert_product(uow.conn, event)


# --- "ship what is there, backorder the rest" -------------------------------------------------
def _priced(snap: OrderSnapshot, lines: list[Line]) -> list[OrderLine]:
    price = {ln.sku: ln.unit_price for ln in reversed(snap.lines)}
    return [OrderLine(sku=ln.sku, quantity=ln.quantity, unit_price=price[ln.sku])
            for ln in lines]


def _continuation_id(order_id: str, n: int) -> str:
    return str(uuid.uuid5(CONTINUATION_NS, f"{order_id}:B{n}"))


def continuation_of(snap: OrderSnapshot, short: list[Line], n: int = 1) -> OrderSnapshot:
    """The backordered remainder as an order of its own (fulfillment and logistics take one
    reservation per order): a new id derived from the original's and `n`, the original's
    external id with `-B{n}`, the short lines at the prices paid. Its totals are what those
    lines cost, with no shipping fee: the money was paid on the original, and it is what a
    cancellation of the remainder owes the customer."""
    lines = _priced(snap, short)
    value = sum((ln.unit_price * ln.quantity for ln in lines), Decimal("0")).quantize(
        Decimal("0.01"))
    zero = Decimal("0.00")
    return snap.model_copy(update={
        "order_id": _continuation_id(snap.order_id, n),
        "external_order_id": f"{snap.external_order_id}-B{n}", "lines": lines, "merge_with": [],
        "totals": Totals(subtotal=value, discount=zero, shipping_fee=zero, grand_total=value),
        "replaces_order_id": snap.order_id, "kind": "backorder"})


async def _split_off(uow: UnitOfWork, snap: OrderSnapshot, plan: Plan, short: list[Line],
                     policy: store.Policy, correlation_id: str | None, why: str,
                     at: datetime) -> OrderSnapshot:
    """The original order keeps `plan` (what is there) and the customer hears `backordered`
    (the short lines, naming the continuation), then `reserved`; the short lines become a
    continuation order, backordered like any other (restock, decisions, expiry), which later
    goes through fulfillment and logistics on its own. Returns the original as it now ships.
    (A short pick's path; a run of accepted orders does the same in `order_accepted`.)"""
    conn = uow.conn
    order_id = uuid.UUID(snap.order_id)
    n = await store.continuation_count(conn, order_id) + 1
    rest = continuation_of(snap, short, n)
    now_lines = [ln for lines_ in plan.allocations.values() for ln in lines_]
    shipping = snap.model_copy(update={"lines": _priced(snap, domain.merge_lines(now_lines))})
    link = {"order_id": rest.order_id, "external_order_id": rest.external_order_id}
    short_json = [{"sku": ln.sku, "quantity": ln.quantity} for ln in short]
    await store.set_snapshot(conn, order_id, shipping)
    await store.add_trace(conn, order_id, [f"{why}; ship what is there, the rest is {rest.key}"])
    await _status(uow, snap, "backordered",
                  reasons=[("partially_backordered",
                            f"{why}: what is in stock ships now; the rest follows as"
                            f" {rest.key}")],
                  details={"short_lines": short_json, "substitutes": {},
                           "restock_eta": None, "continuation": link},
                  correlation_id=correlation_id)
    await _announce_reserved(uow, shipping, plan, correlation_id,
                             {"backordered_lines": short_json, "continuation": link})
    cont_id = uuid.UUID(rest.order_id)
    await store.insert_order(conn, rest, cont_id, rest.key, "backordered", correlation_id,
                             continues=order_id, at=at)
    await _status(uow, rest, "accepted", details={"continues": snap.order_id, "kind": "backorder"},
                  correlation_id=correlation_id)
    uow.count(BACKORDERS, "opened")
    uow.count(BACKORDERS, "partial")
    await _backorder(uow, cont_id, rest, policy, [f"continues {snap.key}"],
                     ("out_of_stock", f"the part of {snap.key} not in stock"), correlation_id)
    log.info("order %s: ships what is there; %s waits for the rest", snap.key, rest.key)
    return shipping


# --- short picks ------------------------------------------------------------------------------
@handlers.on(topics.FULFILLMENT_SHORT_PICKED, locks=exclusive)
async def short_picked(uow: UnitOfWork, events: list[ShortPicked]) -> None:
    """The bin held fewer units than the order was given. Those units are written off (they are
    not there, so on_hand must not say they are); the rest of the allocation stays; the missing
    units are reserved where the source selection finds them (never in a warehouse that holds
    another part of the order), and fulfillment hears a new `inventory.stock_reserved` with the
    whole allocation. Nowhere to take them from: the order waits (`reallocating`, the customer
    hears `backordered` with the short lines) with the rest still reserved, until a restock."""
    for event in uow.each(events):
        await _short_picked(uow, event)


async def _short_picked(uow: UnitOfWork, event: ShortPicked) -> None:
    conn = uow.conn
    await store.lock_refill(conn)
    order_id = uuid.UUID(event.order_id)
    row = await store.get_order(conn, order_id)
    if row is None or row["status"] != "reserved" or row["snapshot"] is None:
        log.warning("order %s short-picked but inventory has it as %s; ignored",
                    event.order_key, row["status"] if row else "unknown")
        return
    allocation = _parse_allocations(row["allocations"])
    missing = min(event.missing, domain.held(allocation, event.warehouse, event.sku))
    if missing <= 0:
        log.warning("order %s short-picked %s in %s, which it does not hold there; ignored",
                    event.order_key, event.sku, event.warehouse)
        return
    await store.write_off_short(conn, event.sku, event.warehouse, missing, order_id,
                                event.event_id, f"short pick of {event.order_key}")
    kept = domain.take_out(allocation, event.warehouse, event.sku, missing)
    snap = OrderSnapshot.model_validate_json(row["snapshot"])
    policy = await _policy(uow, snap.store)
    head = [f"short pick: {missing} x {event.sku} not in {event.warehouse}; written off"]
    plan, trace = await _reallocate(uow, order_id, snap, kept, [Line(event.sku, missing)],
                                    event.warehouse, policy, event.event_id, restocked=False)
    if plan is not None:
        await _reallocated(uow, row, snap, kept, plan, [*head, *trace])
        uow.count(REALLOCATIONS, "reallocated")
        return
    short = [Line(event.sku, missing)]
    if policy.partial == "ship_available" and kept:
        # The store ships what is there: the rest of the order goes on, the missing units
        # become a continuation order.
        await store.update_order(conn, order_id, "reserved", _allocations(Plan(kept)), [])
        await store.add_trace(conn, order_id, [*head, *trace])
        await _split_off(uow, snap, Plan(kept), short, policy, row["correlation_id"],
                         f"{missing} x {event.sku} missing in the warehouse", event.occurred_at)
        uow.count(REALLOCATIONS, "continued")
        return
    await store.update_order(conn, order_id, "reallocating", _allocations(Plan(kept)), short)
    await store.set_short_warehouse(conn, order_id, event.warehouse)
    await store.add_trace(conn, order_id, [*head, *trace])
    skus = [event.sku]
    eta = domain.restock_eta(short, await store.expected_receipts(conn, skus),
                             await store.waiting_ahead(conn, skus, order_id))
    await store.set_backorder(conn, order_id, short, {}, eta, [])
    await _status(uow, snap, "backordered",
                  reasons=[("short_picked", f"{missing} x {event.sku} missing in the"
                            " warehouse; the order waits for a restock")],
                  details=_backorder_details(short, {}, eta),
                  correlation_id=row["correlation_id"])
    uow.count(REALLOCATIONS, "backordered")
    uow.count(BACKORDERS, "opened")


async def _reallocate(uow: UnitOfWork, order_id: uuid.UUID, snap: OrderSnapshot,
                      kept: dict[str, list[Line]], missing: list[Line], short_warehouse: str,
                      policy: store.Policy, event_id: uuid.UUID, restocked: bool
                      ) -> tuple[Plan | None, list[str]]:
    """Reserve the missing units among the allowed warehouses, best plan first."""
    conn = uow.conn
    available = await store.available(conn, sorted({ln.sku for ln in missing}))
    candidates = domain.reallocation_candidates(sorted(available), kept, short_warehouse,
                                                policy.split_allowed, restocked)
    plans = domain.reallocation_plans(missing, snap.shipping_address.country, available,
                                      candidates, await _priorities(uow),
                                      policy.split_penalty)
    trace = [f"missing units may come from {candidates or 'nowhere'}"
             + ("" if policy.split_allowed else " (the store does not allow split shipments)")]
    for plan in plans:
        try:
            async with conn.transaction():
                await store.reserve(conn, order_id, plan, event_id)
            return plan, [*trace, *plan.trace, f"re-reserved in {sorted(plan.allocations)}"]
        except store.StockGone as gone:
            trace += [*plan.trace, f"lost the race for {gone}; next plan"]
    return None, [*trace, "nowhere to take them from: the order waits for a restock"]


async def _reallocated(uow: UnitOfWork, row: Any, snap: OrderSnapshot,
                       kept: dict[str, list[Line]], plan: Plan, trace: list[str]) -> None:
    """The whole allocation (what was kept + the re-reserved units) goes to fulfillment again."""
    whole = Plan(domain.combine(kept, plan.allocations), plan.trace)
    await store.update_order(uow.conn, row["order_id"], "reserved", _allocations(whole), [])
    await store.add_trace(uow.conn, row["order_id"], trace)
    await uow.publish(topics.INVENTORY_STOCK_RESERVED, snap.key, StockReserved(
        order_id=snap.order_id, order_key=snap.key, order=snap, allocations=_allocations(whole),
        correlation_id=row["correlation_id"]))
    log.info("order %s re-allocated after a short pick: %s", snap.key, _allocations(whole))


async def _refill_short(uow: UnitOfWork, row: Any, snap: OrderSnapshot, policy: store.Policy,
                        event_id: uuid.UUID) -> int:
    """A restock may cover a short-picked order's missing units (the short warehouse counts
    again now). The customer heard `backordered`, so hears `reserved` again."""
    kept = _parse_allocations(row["allocations"])
    missing = [Line(x["sku"], x["quantity"]) for x in json.loads(row["short_lines"])]
    plan, trace = await _reallocate(uow, row["order_id"], snap, kept, missing,
                                    row["short_warehouse"], policy, event_id, restocked=True)
    if plan is None:
        return 0
    await _reallocated(uow, row, snap, kept, plan, ["restocked:", *trace])
    whole = domain.combine(kept, plan.allocations)
    await _status(uow, snap, "reserved", details={"allocations": _allocations(Plan(whole))},
                  correlation_id=row["correlation_id"])
    uow.count(BACKORDERS, "restocked")
    uow.count(REALLOCATIONS, "restocked")
    return 1


async def _short_decision(uow: UnitOfWork, row: Any, event: BackorderDecision) -> None:
    """A short-picked order waits in fulfillment, so `cancel` goes there (as any cancellation
    of a reserved order; the reservation is released on its confirmation); `wait` is noted.
    Substitutes are not offered for a short pick (the rest of the order is picked already)."""
    await store.set_decision(uow.conn, row["order_id"], event.decision)
    if event.decision != "cancel":
        return
    snap = OrderSnapshot.model_validate_json(row["snapshot"])
    await uow.publish(topics.INVENTORY_ORDER_CANCEL_FORWARDED, snap.key, OrderCancelRequested(
        order_id=snap.order_id, order_key=snap.key, reason="backorder declined by customer",
        refund_due=snap.totals.grand_total, currency=snap.currency,
        correlation_id=row["correlation_id"]))


# --- graded returns ---------------------------------------------------------------------------
@handlers.on(topics.AFTERSALES_RETURN_GRADED, locks=_graded_locks)
async def return_graded(uow: UnitOfWork, events: list[ReturnGraded]) -> None:
    """`refurbish`: the units enter the refurbished stock state of the warehouse (not sellable
    as new, so no backorder is refilled); `scrap`: a write-off row, no balance moves (the goods
    never re-entered stock)."""
    conn = uow.conn
    for event in uow.each(events):
        if not await store.warehouse_exists(conn, event.warehouse):
            raise PoisonMessage(f"unknown warehouse {event.warehouse!r} for return"
                                f" {event.request_id}; add it to inventory.warehouses, then"
                                " replay")
        for ln in sorted(event.lines, key=lambda x: x.sku):
            await store.return_graded(conn, ln.sku, event.warehouse, event.grade, ln.quantity,
                                      uuid.UUID(event.order_id), event.event_id,
                                      f"{event.grade} {event.request_id}")
        log.info("order %s: return %s graded %s in %s", event.order_key, event.request_id,
                 event.grade, event.warehouse)
