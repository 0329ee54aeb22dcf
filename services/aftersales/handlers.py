"""After-sales subscribers: decide requests by policy, carry out the authorized ones (refund,
return label, replacement order), receive and grade returns, refund, reship lost parcels, and keep
feedback. Operators' decisions (api.py) carry requests out through the same functions, in a unit
of work of their own.

Every handler takes a run of events (`uow`, the run's events of its topic). The orders' path
(acceptance, shipment, delivery, catalogue) writes a whole run with one statement; requests,
returns, lost or returned parcels and feedback are handled event by event (`uow.each`), each the
cause of what it publishes."""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from shared import fx, topics
from shared.contracts import (
    AftersalesRequested,
    FeedbackGiven,
    OrderAccepted,
    OrderCancelRefused,
    OrderDelivered,
    OrderLine,
    OrderShipped,
    OrderSnapshot,
    ParcelLost,
    ParcelReturned,
    ProductUpserted,
    RefundIssued,
    ReturnGraded,
    ReturnLabelIssued,
    ReturnLabelRequested,
    ReturnReceived,
    ReturnRestocked,
    SkuQuantity,
    Totals,
    money_text,
    utcnow,
)
from shared.messaging import Handlers
from shared.uow import UnitOfWork

from . import domain, metrics, store

log = logging.getLogger(__name__)
handlers = Handlers()
fx.subscribe(handlers)  # exchange rates for money thresholds (shared/fx.py)
ZERO = Decimal("0.00")
# Replacement order ids are derived from (original order, request): a replay makes the same one.
REPLACEMENT_NS = uuid.UUID("6a1f2c1e-4f0b-4c55-9a43-2a9f3d0c7b11")


# --- what aftersales learns of orders and products (every order: one statement per run) -------

@handlers.on(topics.INTAKE_ORDER_ACCEPTED)
async def order_accepted(uow: UnitOfWork, events: list[OrderAccepted]) -> None:
    """The accepted orders, with the trace (correlation id) an operator's later decision on
    them joins. The first acceptance of an order stays."""
    rows: dict[str, tuple[uuid.UUID, str, str, str | None]] = {}
    for e in events:
        rows.setdefault(e.order.order_id, (
            uuid.UUID(e.order.order_id), e.order.key, e.order.model_dump_json(),
            e.correlation_id or str(e.event_id)))
    await store.insert_orders(uow.conn, list(rows.values()))


@handlers.on(topics.LOGISTICS_ORDER_SHIPPED)
async def order_shipped(uow: UnitOfWork, events: list[OrderShipped]) -> None:
    """Which warehouse shipped which goods (returns go back there); an order's last shipment
    in the run wins, as it would one event at a time."""
    parcels = {e.order_id: json.dumps([p.model_dump() for p in e.parcels])
               for e in events}
    await store.set_parcels(uow.conn, [(uuid.UUID(k), v) for k, v in parcels.items()])


@handlers.on(topics.LOGISTICS_ORDER_DELIVERED)
async def order_delivered(uow: UnitOfWork, events: list[OrderDelivered]) -> None:
    """Delivered orders: their return windows start (the last delivery of an order wins)."""
    delivered = {e.order_id: e.delivered_at for e in events}
    await store.set_delivered(uow.conn, [(uuid.UUID(k), v) for k, v in delivered.items()])


@handlers.on(topics.CATALOG_PRODUCTS)
async def product_upserted(uow: UnitOfWork, events: list[ProductUpserted]) -> None:
    """Returnable or not, and prices (exchange targets): per SKU the newest `occurred_at` wins
    (on a tie the later event, as it would one at a time)."""
    newest: dict[str, ProductUpserted] = {}
    for e in events:
        if e.sku not in newest or newest[e.sku].occurred_at <= e.occurred_at:
            newest[e.sku] = e
    await store.upsert_products(uow.conn, [(e.sku, e.returnable, e.occurred_at, e.price,
                                            e.active) for e in newest.values()])


# --- requests ---------------------------------------------------------------------------------

@handlers.on(topics.AFTERSALES_REQUESTS)
async def request_received(uow: UnitOfWork, events: list[AftersalesRequested]) -> None:
    for event in uow.each(events):
        await _request(uow, event)


async def _request(uow: UnitOfWork, event: AftersalesRequested) -> None:
    """A customer's request, decided by the store's policy: authorized ones are carried out,
    rejected ones answered, the rest wait in the review queue."""
    conn = uow.conn
    if await store.get_request(conn, event.key, event.request_id):
        log.info("request %s of %s received again; nothing to do", event.request_id, event.key)
        return
    lines = _quantities(event.lines)
    order = await store.order_by_key(conn, event.key)
    if order is None:
        decision = domain.Decision("review", "unknown_order",
                                   "aftersales has no accepted order with this key")
    else:
        snap = OrderSnapshot.model_validate_json(order["snapshot"])
        targets = list((event.exchange_for or {}).values())
        policy, own = await _policy(uow, event.store, snap.currency)
        decision = domain.fx_missing(own.currency, snap.currency) if policy is None else \
            domain.decide(
                event.kind, event.reason, lines, store.ordered_lines(snap),
                await store.already_requested(conn, event.key),
                await store.non_returnable(conn, list(lines)), order["delivered_at"],
                utcnow(), policy, event.exchange_for, await store.prices(conn, targets))
    await store.insert_request(
        conn, event.key, event.request_id, order["order_id"] if order else None, event.kind,
        event.reason, [ln.model_dump() for ln in event.lines], decision.outcome,
        {"code": decision.code, "message": decision.message}, store_name=event.store,
        exchange_for=event.exchange_for, comment=event.comment)
    uow.count(metrics.REQUESTS, event.kind, event.reason, decision.outcome)
    if decision.outcome == "review" or order is None:
        log.info("request %s of %s waits for an operator: %s", event.request_id, event.key,
                 decision.message)
        return
    await announce_decision(uow, order, event.request_id, decision.outcome == "authorized",
                            decision.code, decision.message)
    if decision.outcome == "authorized":
        request = await store.get_request(conn, event.key, event.request_id)
        await carry_out(uow, order, request)


async def announce_decision(uow: UnitOfWork, order: Any, request_id: str, authorized: bool,
                            code: str, message: str) -> None:
    status = "return_authorized" if authorized else "return_rejected"
    await uow.status(**_ids(order), status=status, reasons=[(code, message)],
                     details={"request_id": request_id})


async def carry_out(uow: UnitOfWork, order: Any, request: Any) -> None:
    """An authorized request: refund without return, a return label, a replacement order."""
    kind, request_id = request["kind"], request["request_id"]
    lines = _quantities(json.loads(request["lines"]))
    if kind == "refund":
        await refund(uow, order, request, lines)
    if kind in ("return", "exchange"):
        await _request_label(uow, order, request_id, lines)
    if kind in ("exchange", "reship"):
        exchange_for = json.loads(request["exchange_for"] or "null") or {}
        await order_replacement(uow, order, request_id, kind, lines, exchange_for)


async def _request_label(uow: UnitOfWork, order: Any, request_id: str,
                         lines: dict[str, int]) -> None:
    snap = OrderSnapshot.model_validate_json(order["snapshot"])
    await uow.publish(topics.AFTERSALES_RETURN_LABEL_REQUESTED, snap.key, ReturnLabelRequested(
        order_id=snap.order_id, order_key=snap.key, request_id=request_id,
        from_address=snap.shipping_address, warehouse=_warehouse_of(order, next(iter(lines))),
        lines=[SkuQuantity(sku=s, quantity=q) for s, q in lines.items()],
        correlation_id=order["correlation_id"]))


@handlers.on(topics.LOGISTICS_RETURN_LABEL_ISSUED)
async def return_label_issued(uow: UnitOfWork, events: list[ReturnLabelIssued]) -> None:
    for event in uow.each(events):
        await store.set_return_label(uow.conn, event.order_key, event.request_id, {
            "carrier": event.carrier, "service": event.service,
            "tracking_number": event.tracking_number, "warehouse": event.warehouse})


async def order_replacement(uow: UnitOfWork, order: Any, request_id: str, kind: str,
                            lines: dict[str, int], exchange_for: dict[str, str],
                            source: str = "customer") -> None:
    """A new order linked to the original, zero-priced, paid: it skips intake's review and goes
    to inventory, fulfillment and logistics like any accepted order."""
    conn = uow.conn
    original = OrderSnapshot.model_validate_json(order["snapshot"])
    n = await store.replacement_count(conn, original.order_id) + 1
    now = utcnow()
    snap = OrderSnapshot(
        order_id=str(uuid.uuid5(REPLACEMENT_NS, f"{original.order_id}:{request_id}")),
        store=original.store,
        external_order_id=f"{original.external_order_id}-{'X' if kind == 'exchange' else 'R'}{n}",
        customer_id=original.customer_id, placed_at=now, accepted_at=now,
        shipping_address=original.shipping_address,
        lines=[OrderLine(sku=exchange_for.get(sku, sku), quantity=q, unit_price=ZERO)
               for sku, q in lines.items()],
        currency=original.currency, shipping_option=original.shipping_option,
        totals=Totals(subtotal=ZERO, discount=ZERO, shipping_fee=ZERO, grand_total=ZERO),
        payment_method=original.payment_method, payment_status="paid",
        replaces_order_id=original.order_id, kind=kind)
    await store.insert_replacement(conn, snap, request_id, kind)
    await store.upsert_order(conn, snap, order["correlation_id"])
    await store.set_request_status(conn, original.key, request_id, "replaced",
                                   f"replacement order {snap.key}")
    await uow.status(order_id=snap.order_id, store=snap.store,
                     external_order_id=snap.external_order_id, status="accepted",
                     details={"replaces": original.order_id, "request_id": request_id})
    await uow.publish(topics.AFTERSALES_REPLACEMENT_ORDERED, snap.key, OrderAccepted(
        order_id=snap.order_id, order_key=snap.key, order=snap,
        correlation_id=order["correlation_id"]))
    uow.count(metrics.REPLACEMENTS, kind, source)
    log.info("order %s: %s request %s replaced by order %s", original.key, kind, request_id,
             snap.key)


@handlers.on(topics.LOGISTICS_PARCEL_LOST)
async def parcel_lost(uow: UnitOfWork, events: list[ParcelLost]) -> None:
    for event in uow.each(events):
        await _parcel_lost(uow, event)


async def _parcel_lost(uow: UnitOfWork, event: ParcelLost) -> None:
    """The carrier lost a parcel: reship its lines without waiting for the customer to ask."""
    conn = uow.conn
    request_id = f"lost-{event.parcel_id}"
    if await store.get_request(conn, event.order_key, request_id):
        return
    order = await store.order_by_key(conn, event.order_key)
    if order is None:
        raise LookupError(f"parcel {event.parcel_id} of {event.order_key} lost, but aftersales"
                          " does not know the order; replay logistics.parcel_lost from its DLQ")
    snap = OrderSnapshot.model_validate_json(order["snapshot"])
    lines = _quantities(event.lines)
    value = domain.line_value(lines, store.ordered_lines(snap))
    policy, own = await _policy(uow, snap.store, snap.currency)
    decision = domain.fx_missing(own.currency, snap.currency) if policy is None else \
        domain.decide_reship("not_received", value, policy, carrier_confirmed=True)
    claimed = domain.check_lines(lines, store.ordered_lines(snap),
                                 await store.already_requested(conn, event.order_key))
    if claimed:
        # The customer already asked for these lines (a reship, a refund): shipping them a
        # second time is for a person to decide.
        decision = domain.Decision("review", "already_requested",
                                   f"lost parcel, but {claimed.message}")
    await store.insert_request(
        conn, event.order_key, request_id, order["order_id"], "reship", "not_received",
        [ln.model_dump() for ln in event.lines], decision.outcome,
        {"code": decision.code, "message": decision.message}, store_name=snap.store,
        comment=f"{event.carrier} reported {event.tracking_number} lost", source="carrier")
    uow.count(metrics.REQUESTS, "reship", "not_received", decision.outcome)
    if decision.outcome != "authorized":
        log.info("order %s: lost parcel %s waits for an operator: %s", event.order_key,
                 event.parcel_id, decision.message)
        return
    await announce_decision(uow, order, request_id, True, decision.code, decision.message)
    await order_replacement(uow, order, request_id, "reship", lines, {}, source="carrier")


# --- parcels back to sender, cancellations after shipping --------------------------------------
CANCEL_REQUEST_ID = "cancel-after-shipping"


@handlers.on(topics.INTAKE_ORDER_CANCEL_REFUSED)
async def cancelled_after_shipping(uow: UnitOfWork, events: list[OrderCancelRefused]) -> None:
    for event in uow.each(events):
        await _cancelled_after_shipping(uow, event)


async def _cancelled_after_shipping(uow: UnitOfWork, event: OrderCancelRefused) -> None:
    """A cancellation that came after the parcels left becomes a `changed_mind` return of what
    is left of the order (request `cancel-after-shipping`), decided by the store's policy like
    any return: authorized -> a return label; the customer may also refuse the parcel at the
    door, and the parcel coming back to sender settles this request (`parcel_returned`)."""
    conn = uow.conn
    if await store.get_request(conn, event.order_key, CANCEL_REQUEST_ID):
        log.info("order %s cancelled after shipping again; its return is already open",
                 event.order_key)
        return
    order = await store.order_by_key(conn, event.order_key)
    if order is None:
        raise LookupError(f"{event.order_key} cancelled after shipping, but aftersales does not"
                          " know the order; replay intake.order_cancel_refused from its DLQ")
    snap = OrderSnapshot.model_validate_json(order["snapshot"])
    ordered = store.ordered_lines(snap)
    lines = domain.remaining_lines(ordered, await store.already_requested(conn,
                                                                          event.order_key))
    if not lines:
        log.info("order %s cancelled after shipping, but every line is already in a request;"
                 " nothing to open", event.order_key)
        return
    policy, own = await _policy(uow, snap.store, snap.currency)
    decision = domain.fx_missing(own.currency, snap.currency) if policy is None else \
        domain.decide_cancelled_after_shipping(
            lines, ordered, await store.non_returnable(conn, list(lines)),
            order["delivered_at"], utcnow(), policy)
    await store.insert_request(
        conn, event.order_key, CANCEL_REQUEST_ID, order["order_id"], "return",
        "changed_mind", [{"sku": s, "quantity": q} for s, q in lines.items()], decision.outcome,
        {"code": decision.code, "message": decision.message}, store_name=snap.store,
        comment="the customer cancelled after shipping"
                + (f": {event.customer_reason}" if event.customer_reason else ""),
        source="cancellation")
    uow.count(metrics.REQUESTS, "return", "changed_mind", decision.outcome)
    if decision.outcome == "review":
        log.info("order %s: return after a late cancellation waits for an operator: %s",
                 event.order_key, decision.message)
        return
    await announce_decision(uow, order, CANCEL_REQUEST_ID, decision.outcome == "authorized",
                            decision.code, decision.message)
    if decision.outcome == "authorized":
        await carry_out(uow, order, await store.get_request(conn, event.order_key,
                                                            CANCEL_REQUEST_ID))


@handlers.on(topics.LOGISTICS_PARCEL_RETURNED)
async def parcel_returned(uow: UnitOfWork, events: list[ParcelReturned]) -> None:
    for event in uow.each(events):
        await _parcel_returned(uow, event)


async def _parcel_returned(uow: UnitOfWork, event: ParcelReturned) -> None:
    """Refused at the door or undeliverable: the parcel is back at the warehouse, unopened. It
    is a request of its own (`returned-{parcel_id}`, a `return` for reason `other`, source
    `carrier`): received, restocked as resellable, and refunded less shipping. An open return
    for the same goods (a cancellation after shipping) is settled by it, not refunded again;
    goods another request already refunded or replaced (a lost-parcel reship) are restocked
    with no second refund."""
    conn = uow.conn
    key, request_id = event.order_key, f"returned-{event.parcel_id}"
    if await store.get_request(conn, key, request_id):
        return
    order = await store.order_by_key(conn, key)
    if order is None:
        raise LookupError(f"parcel {event.parcel_id} of {key} returned to sender, but aftersales"
                          " does not know the order; replay logistics.parcel_returned from its"
                          " DLQ")
    snap = OrderSnapshot.model_validate_json(order["snapshot"])
    ordered = store.ordered_lines(snap)
    lines = _quantities(event.lines)
    settled = await _settle_open_returns(uow, key, request_id, lines)
    refundable = domain.unclaimed(lines, ordered, await store.already_requested(conn, key))
    why = f"{event.carrier} returned {event.tracking_number} to sender (refused delivery)"
    await store.insert_request(
        conn, key, request_id, order["order_id"], "return", "other",
        [ln.model_dump() for ln in event.lines], "authorized",
        {"code": "returned_to_sender", "message": why}, store_name=snap.store,
        comment="refused delivery / returned to sender"
                + (f"; settles {', '.join(settled)}" if settled else ""), source="carrier")
    uow.count(metrics.REQUESTS, "return", "other", "authorized")
    await store.set_received(conn, key, request_id, [
        {**ln.model_dump(), "condition": "resellable"} for ln in event.lines])
    await uow.status(**_ids(order), status="return_received", details={"request_id": request_id})
    await uow.publish(topics.AFTERSALES_RETURN_RESTOCKED, key, ReturnRestocked(
        order_id=snap.order_id, order_key=key, request_id=request_id, warehouse=event.warehouse,
        lines=list(event.lines), correlation_id=order["correlation_id"]))
    uow.count(metrics.GRADES, "resellable", amount=sum(lines.values()))
    await store.set_grade(conn, key, request_id, "resellable",
                          f"unopened parcel back at {event.warehouse}")
    request = await store.get_request(conn, key, request_id)
    paid_back, _ = await store.refunded_so_far(conn, order["order_id"])
    t = snap.totals
    amount = domain.returned_to_sender_refund(
        refundable, ordered, t.subtotal, t.discount,
        domain.amount_paid(t.grand_total, snap.payment_status), paid_back)
    if amount > 0:
        await issue_refund(uow, order, request, amount, False)
        return
    if not refundable:
        note = "the goods were already refunded or replaced by another request: restocked only"
    elif domain.amount_paid(t.grand_total, snap.payment_status) == 0:
        note = f"nothing was paid (payment {snap.payment_status}): restocked only"
    else:
        note = "earlier refunds already returned everything paid: restocked only"
    await store.set_request_status(conn, key, request_id, "closed", note)
    log.info("order %s: parcel %s back to sender, restocked, no refund: %s", key,
             event.parcel_id, note)


async def _settle_open_returns(uow: UnitOfWork, key: str, request_id: str,
                               lines: dict[str, int]) -> list[str]:
    """The returned parcel brings back goods an open return was waiting for: those lines leave
    that return (closed when nothing is left), so they are received and refunded once, under
    the returned parcel's request. Returns the requests it settled."""
    conn = uow.conn
    left = dict(lines)
    settled = []
    for r in await store.open_returns(conn, key):
        covers = _quantities(json.loads(r["lines"]))
        taken = {s: min(q, left.get(s, 0)) for s, q in covers.items() if left.get(s, 0) > 0}
        if not taken:
            continue
        for s, q in taken.items():
            left[s] -= q
        rest = [{"sku": s, "quantity": q - taken.get(s, 0)} for s, q in covers.items()
                if q > taken.get(s, 0)]
        await store.set_lines(conn, key, r["request_id"], rest)
        got = ", ".join(f"{q} {s}" for s, q in sorted(taken.items()))
        if rest:
            await store.history(conn, key, r["request_id"], "authorized",
                                f"{got} came back to sender ({request_id})", "logistics")
        else:
            await store.set_request_status(conn, key, r["request_id"], "closed",
                                           f"{got} came back to sender: settled by {request_id}",
                                           "logistics")
        settled.append(r["request_id"])
    return settled


# --- returns ----------------------------------------------------------------------------------

@handlers.on(topics.RETURNS_RECEIVED)
async def return_received(uow: UnitOfWork, events: list[ReturnReceived]) -> None:
    for event in uow.each(events):
        await _return_received(uow, event)


async def _return_received(uow: UnitOfWork, event: ReturnReceived) -> None:
    conn = uow.conn
    request = await store.get_request(conn, event.key, event.request_id)
    expected = request is not None and request["kind"] in ("return", "exchange") and \
        request["status"] in ("authorized", "replaced")
    if request is None or not expected:
        # Raised, not dropped: retried, then kept in the DLQ for an operator to replay.
        raise LookupError(f"return {event.request_id} of {event.key} received but the request is"
                          f" {_describe(request)}; authorize it, then replay returns.received"
                          " from its DLQ")
    order = await store.order_by_key(conn, event.key)
    assert order is not None
    returned = [ln.model_dump() for ln in event.lines]
    await store.set_received(conn, event.key, event.request_id, returned)
    await uow.status(**_ids(order), status="return_received",
                     details={"request_id": event.request_id})
    grades = {domain.grade_of(ln.condition, request["reason"]) for ln in event.lines}
    if None in grades:
        await store.set_request_status(conn, event.key, event.request_id, "inspection",
                                       "goods came back damaged; an operator grades them")
        return
    graded = [(ln.sku, ln.quantity, domain.grade_of(ln.condition, request["reason"]))
              for ln in event.lines]
    await settle_return(uow, order, await store.get_request(conn, event.key,
                                                            event.request_id), graded)


async def settle_return(uow: UnitOfWork, order: Any, request: Any,
                        graded: Sequence[tuple[str, int, str | None]]) -> None:
    """Graded goods: resellable back on the shelf (inventory), refurbish and scrap kept apart;
    then the refund (a return) or nothing more (an exchange, already replaced)."""
    key, request_id = order["order_key"], request["request_id"]
    by_grade: dict[str, list[SkuQuantity]] = {}
    for sku, qty, grade in graded:
        assert grade is not None
        by_grade.setdefault(grade, []).append(SkuQuantity(sku=sku, quantity=qty))
        uow.count(metrics.GRADES, grade, amount=qty)
    warehouse = _warehouse_of(order, graded[0][0])
    for grade, lines in by_grade.items():
        if grade == "resellable":
            await uow.publish(topics.AFTERSALES_RETURN_RESTOCKED, key, ReturnRestocked(
                order_id=str(order["order_id"]), order_key=key, request_id=request_id,
                warehouse=warehouse, lines=lines, correlation_id=order["correlation_id"]))
        else:
            await store.add_returned_stock(uow.conn, key, request_id, warehouse, lines,
                                           "refurbish" if grade == "refurbish" else "written_off")
            await uow.publish(topics.AFTERSALES_RETURN_GRADED, key, ReturnGraded(
                order_id=str(order["order_id"]), order_key=key, request_id=request_id,
                warehouse=warehouse, grade=grade, lines=lines,
                correlation_id=order["correlation_id"]))
    grade_note = ", ".join(f"{q} {s} {g}" for s, q, g in graded)
    await store.set_grade(uow.conn, key, request_id,
                          graded[0][2] if len(by_grade) == 1 else None, grade_note)
    if request["kind"] == "return":
        await refund(uow, order, request, {s: q for s, q, _ in _summed(graded)})


async def refund(uow: UnitOfWork, order: Any, request: Any, lines: dict[str, int]) -> None:
    snap = OrderSnapshot.model_validate_json(order["snapshot"])
    reason, kind = request["reason"], request["kind"]
    paid_back, shipping_done = await store.refunded_so_far(uow.conn, order["order_id"])
    policy, own = await _policy(uow, snap.store, snap.currency)
    if policy is None:
        # Money owed goes out: without a rate the return shipping is not deducted, and said so.
        log.warning("order %s: no exchange rate from %s to %s to deduct the return shipping"
                    " cost; refunding without the deduction. Publish rates on fx.rates",
                    order["order_key"], own.currency, snap.currency)
    t = snap.totals
    deduction = domain.return_deduction(kind, reason, policy) if policy else Decimal("0")
    amount = domain.refund_amount(lines, store.ordered_lines(snap), t.subtotal, t.discount,
                                  t.shipping_fee, t.grand_total, reason, paid_back, shipping_done,
                                  deduction)
    with_shipping = reason in domain.SELLER_FAULT and not shipping_done
    await issue_refund(uow, order, request, amount, with_shipping)


async def issue_refund(uow: UnitOfWork, order: Any, request: Any, amount: Decimal,
                       with_shipping: bool) -> None:
    """The money goes back: the refunds ledger, `payments.refunds`, `refunded`. Published as
    built here, not through `uow.refund`: a request whose refund comes to nothing (everything
    already paid back) is still recorded and announced with its amount, 0.00, as before."""
    snap = OrderSnapshot.model_validate_json(order["snapshot"])
    request_id, reason, kind = request["request_id"], request["reason"], request["kind"]
    await store.insert_refund(uow.conn, order["order_id"], request_id, amount, snap.currency,
                              with_shipping)
    await store.set_request_status(uow.conn, snap.key, request_id, "refunded", f"{amount}")
    await uow.publish(topics.PAYMENTS_REFUNDS, snap.key, RefundIssued(
        order_id=snap.order_id, store=snap.store, external_order_id=snap.external_order_id,
        request_id=request_id, amount=amount, currency=snap.currency, reason=reason))
    await uow.status(**_ids(order), status="refunded",
                     details={"request_id": request_id, "amount": money_text(amount),
                              "currency": snap.currency})
    uow.count(metrics.REFUNDS, kind, reason)
    uow.count(metrics.REFUND_AMOUNT, snap.currency, amount=float(amount))
    uow.observe(metrics.TIME_TO_REFUND,
                max(0.0, (utcnow() - request["created_at"]).total_seconds()))


async def _policy(uow: UnitOfWork, store_name: str, currency: str
                  ) -> tuple[domain.Policy | None, domain.Policy]:
    """The store's policy in the order's currency (None without a rate), and as configured;
    each store's cached across runs until `policies` changes."""
    own = await uow.reference(("aftersales.policy", store_name),
                              lambda: store.policy(uow.conn, store_name), tables=("policies",))
    return own.in_currency(currency, await fx.rates(uow)), own


# --- feedback ---------------------------------------------------------------------------------

@handlers.on(topics.CUSTOMER_FEEDBACK)
async def feedback(uow: UnitOfWork, events: list[FeedbackGiven]) -> None:
    for event in uow.each(events):
        tags = domain.tag_feedback(event.comment)
        if not await store.insert_feedback(uow.conn, event.event_id, event.key, event.rating,
                                           event.comment, event.occurred_at, tags):
            continue
        uow.count(metrics.FEEDBACK, str(event.rating))
        for tag in tags:
            uow.count(metrics.FEEDBACK_TAGS, tag)
        if domain.needs_follow_up(event.rating):
            await store.open_follow_up(uow.conn, event.event_id, event.key, event.rating, tags)
            uow.count(metrics.FOLLOW_UPS)
            log.info("order %s: rating %d opens a follow-up case (%s)", event.key,
                     event.rating, ", ".join(tags) or "no tags")


# --- helpers ----------------------------------------------------------------------------------

def _quantities(lines: Any) -> dict[str, int]:
    out: dict[str, int] = {}
    for ln in lines:
        sku, qty = (ln["sku"], ln["quantity"]) if isinstance(ln, dict) else (ln.sku, ln.quantity)
        out[sku] = out.get(sku, 0) + qty
    return out


def _summed(graded: Sequence[tuple[str, int, str | None]]) -> list[tuple[str, int, None]]:
    totals: dict[str, int] = {}
    for sku, qty, _ in graded:
        totals[sku] = totals.get(sku, 0) + qty
    return [(s, q, None) for s, q in totals.items()]


def _describe(request: Any) -> str:
    return f"a {request['kind']} request, {request['status']}" if request else "unknown"


def _ids(order: Any) -> dict[str, Any]:
    store_name, _, ext = order["order_key"].partition(":")
    return {"order_id": str(order["order_id"]), "store": store_name, "external_order_id": ext}


def _warehouse_of(order: Any, sku: str) -> str:
    """Returned goods go back to the warehouse that shipped them."""
    parcels = json.loads(order["parcels"])
    for p in parcels:
        if any(ln["sku"] == sku for ln in p["lines"]):
            return str(p["warehouse"])
    return str(parcels[0]["warehouse"]) if parcels else "WH-LA"
