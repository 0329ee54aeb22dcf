"""Inventory's subscribers: reserve accepted orders (one warehouse, else split, else backorder,
or with the store's "ship what is there" policy, the available part now and the rest as a
linked continuation order), refill backorders on restock (oldest first), the customer's
backorder decisions, re-allocate short picks, refurbished and scrapped returns, release on
cancellation, commit on dispatch."""

from __future__ import annotations

import json
import logging
import uuid
from datetime import datetime
from decimal import Decimal
from typing import Any

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
from shared.db import Conn
from shared.messaging import (
    Ctx,
    Handlers,
    PoisonMessage,
    confirm_cancelled,
    emit_status,
    forwarded,
    request_charge,
    request_refund,
)
from shared.metrics import TransactionalCounter
from shared.money import refund_due
from shared.outbox import enqueue

from . import domain, store
from .domain import Line, Plan

log = logging.getLogger(__name__)
handlers = Handlers()

BACKORDERS = TransactionalCounter("shopkeeper_inventory_backorders_total",
                     "Backorders opened and how they ended", ["outcome"])


# A continuation order's id is derived from the original's, so a redelivery makes the same one.
CONTINUATION_NS = uuid.UUID("5d3f6c1e-8a4b-4f0e-9c61-2b7e0d9a4c11")
REALLOCATIONS = TransactionalCounter("shopkeeper_inventory_short_picks_total",
                        "Short picks by how inventory answered", ["outcome"])


def _lines_of(snap: OrderSnapshot) -> list[Line]:
    return [Line(ln.sku, ln.quantity) for ln in snap.lines]


def _parse_allocations(raw: str) -> dict[str, list[Line]]:
    return {a["warehouse"]: [Line(ln["sku"], ln["quantity"]) for ln in a["lines"]]
            for a in json.loads(raw)}


async def allocate(conn: Conn, order_id: uuid.UUID, snap: OrderSnapshot, event_id: uuid.UUID,
                   policy: store.Policy, substituted: frozenset[str] = frozenset()
                   ) -> tuple[Plan | None, list[str]]:
    """Try the plans best first, each in a savepoint, so a lost race just moves on. Returns the
    plan reserved (or None) and the trace that explains the choice."""
    lines = _lines_of(snap)
    available = await store.available(conn, sorted({ln.sku for ln in lines}))
    plans = domain.choose_plan(lines, snap.shipping_address.country, available,
                               await store.priorities(conn), policy.split_allowed,
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


def _allocations(plan: Plan) -> list[dict[str, Any]]:
    return [{"warehouse": wh, "lines": [{"sku": ln.sku, "quantity": ln.quantity} for ln in lines]}
            for wh, lines in sorted(plan.allocations.items())]


async def _announce_reserved(conn: Conn, snap: OrderSnapshot, plan: Plan,
                             correlation_id: str | None, causation_id: str,
                             extra: dict[str, Any] | None = None) -> None:
    allocations = _allocations(plan)
    await emit_status(conn, order_id=snap.order_id, store=snap.store,
                      external_order_id=snap.external_order_id, status="reserved",
                      details={"allocations": allocations, **(extra or {})},
                      correlation_id=correlation_id, causation_id=causation_id)
    await enqueue(conn, topics.INVENTORY_STOCK_RESERVED, snap.key, StockReserved(
        order_id=snap.order_id, order_key=snap.key, order=snap,
        allocations=allocations,
        correlation_id=correlation_id, causation_id=causation_id))


async def _backorder(conn: Conn, order_id: uuid.UUID, snap: OrderSnapshot, policy: store.Policy,
                     trace: list[str], correlation_id: str | None, causation_id: str,
                     reason: tuple[str, str]) -> None:
    """Record what is short, the substitutes on offer and the restock ETA; tell the customer."""
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
    await emit_status(conn, order_id=snap.order_id, store=snap.store,
                      external_order_id=snap.external_order_id, status="backordered",
                      reasons=[reason], details=_backorder_details(short, offers, eta),
                      correlation_id=correlation_id, causation_id=causation_id)


def _backorder_details(short: list[Line], offers: dict[str, list[str]],
                       eta: datetime | None) -> dict[str, Any]:
    return {"short_lines": [{"sku": s.sku, "quantity": s.quantity} for s in short],
            "substitutes": offers,
            "restock_eta": eta.isoformat().replace("+00:00", "Z") if eta else None}


async def refresh_eta(conn: Conn, sku: str) -> int:
    """A receipt was announced: waiting orders for the SKU may now have a restock ETA (or an
    earlier one); the customer hears `backordered` again with it. Oldest first, so each order's
    ETA counts what the older ones take. Caller holds `store.lock_refill`."""
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
        await emit_status(conn, order_id=snap.order_id, store=snap.store,
                          external_order_id=snap.external_order_id, status="backordered",
                          reasons=[("restock_expected", f"a receipt of {sku} is on the way")],
                          details=_backorder_details(short, offers, eta),
                          correlation_id=row["correlation_id"], causation_id=None)
        changed += 1
    return changed


@handlers.legacy(topics.INTAKE_ORDER_ACCEPTED)
async def order_accepted(ctx: Ctx, event: OrderAccepted) -> None:
    order_id = uuid.UUID(event.order_id)
    existing = await store.get_order(ctx.conn, order_id)
    if existing is not None:
        log.info("order %s already known to inventory as %s", event.order_key, existing["status"])
        return
    snap = event.order
    policy = await store.policy(ctx.conn, snap.store)
    plan, trace = await allocate(ctx.conn, order_id, snap, event.event_id, policy)
    if plan is not None:
        await store.insert_order(ctx.conn, snap, order_id, event.order_key, "reserved",
                                 ctx.correlation_id, _allocations(plan), trace=trace,
                                 at=event.occurred_at)
        await _announce_reserved(ctx.conn, snap, plan, ctx.correlation_id, str(event.event_id))
        return
    if (policy.partial == "ship_available" and snap.kind != "backorder"
            and await _ship_available(ctx, order_id, snap, policy, trace)):
        return
    await store.insert_order(ctx.conn, snap, order_id, event.order_key, "backordered",
                             ctx.correlation_id, at=event.occurred_at)
    BACKORDERS.labels("opened").inc()
    await _backorder(ctx.conn, order_id, snap, policy, trace, ctx.correlation_id,
                     str(event.event_id), ("out_of_stock", "not enough stock to fill the order"))


async def refill_backorders(conn: Conn, skus: list[str], causation_id: uuid.UUID) -> int:
    """Reserve waiting orders for `skus` that the stock now covers, oldest first. The caller
    took `store.lock_refill` before touching any stock row."""
    filled = 0
    for row in await store.backordered(conn, skus, reallocating=True):
        snap = OrderSnapshot.model_validate_json(row["snapshot"])
        policy = await store.policy(conn, snap.store)
        if row["status"] == "reallocating":
            filled += await _refill_short(conn, row, snap, policy, causation_id)
            continue
        plan, trace = await allocate(conn, row["order_id"], snap, causation_id, policy)
        if plan is None:
            continue
        await store.update_order(conn, row["order_id"], "reserved", _allocations(plan), [])
        await store.add_trace(conn, row["order_id"], ["restocked:", *trace])
        await _announce_reserved(conn, snap, plan, row["correlation_id"], str(causation_id))
        BACKORDERS.labels("restocked").inc()
        filled += 1
    if filled:
        log.info("restock of %s filled %d backordered orders", skus, filled)
    return filled


@handlers.legacy(topics.STOCK_ADJUSTMENTS)
async def stock_adjusted(ctx: Ctx, event: StockAdjusted) -> None:
    if not await store.warehouse_exists(ctx.conn, event.warehouse):
        raise PoisonMessage(f"unknown warehouse {event.warehouse!r} for {event.sku}; add it to"
                            " inventory.warehouses, then replay the DLQ")
    await store.lock_refill(ctx.conn)
    drift = await store.adjust(ctx.conn, event)
    if drift:
        log.warning("stock %s@%s: %s of %d leaves %d reserved units not on hand; count again",
                    event.sku, event.warehouse, event.kind, event.quantity, drift)
    if event.kind == "received":
        await store.close_expected(ctx.conn, event)
    if event.kind in ("received", "counted"):
        await refill_backorders(ctx.conn, [event.sku], event.event_id)


@handlers.legacy(topics.AFTERSALES_RETURN_RESTOCKED)
async def return_restocked(ctx: Ctx, event: ReturnRestocked) -> None:
    await store.lock_refill(ctx.conn)
    for ln in sorted(event.lines, key=lambda x: x.sku):
        await store.add_on_hand(ctx.conn, ln.sku, event.warehouse, ln.quantity, "return",
                                f"return {event.request_id}", event.event_id,
                                uuid.UUID(event.order_id))
    await refill_backorders(ctx.conn, sorted({ln.sku for ln in event.lines}), event.event_id)


@handlers.legacy(topics.INTAKE_ORDER_CANCEL_REQUESTED)
async def cancel_requested(ctx: Ctx, event: OrderCancelRequested) -> None:
    """Confirm while the order is still ours (unknown, backordered); once reserved it has moved
    on to fulfillment, so the request follows it there."""
    order_id = uuid.UUID(event.order_id)
    row = await store.get_order(ctx.conn, order_id)
    if row is None:  # the cancellation overtook the order: remember, so it is never reserved
        await store.insert_order(ctx.conn, None, order_id, event.order_key, "cancelled",
                                 ctx.correlation_id, at=event.occurred_at)
    elif row["status"] == "backordered":
        await store.update_order(ctx.conn, order_id, "cancelled")
        BACKORDERS.labels("cancelled").inc()
    elif row["status"] == "cancelled":
        return
    else:
        await ctx.publish(topics.INVENTORY_ORDER_CANCEL_FORWARDED, event.order_key,
                          forwarded(event))
        return
    await confirm_cancelled(ctx, topics.INVENTORY_ORDER_CANCELLED, event, "inventory")


@handlers.legacy(topics.ORDERS_BACKORDER_DECISIONS)
async def backorder_decision(ctx: Ctx, event: BackorderDecision) -> None:
    """The customer's answer to `backordered`: wait (stay in the queue), substitute (reserve
    the substitutes, record the price difference) or cancel (confirmed here, as for a
    cancellation of a backordered order: docs/cancellation.md)."""
    await store.lock_refill(ctx.conn)
    row = await store.order_by_key(ctx.conn, event.key)
    if row is not None and row["status"] == "reallocating" and event.decision != "substitute":
        await _short_decision(ctx, row, event.decision)
        return
    if row is None or row["status"] != "backordered" or row["snapshot"] is None:
        log.warning("backorder decision %s for %s, which inventory has as %s; ignored",
                    event.decision, event.key, row["status"] if row else "unknown")
        return
    snap = OrderSnapshot.model_validate_json(row["snapshot"])
    order_id = row["order_id"]
    if event.decision == "wait":
        await store.set_decision(ctx.conn, order_id, "wait")
        return
    if event.decision == "cancel":
        await store.set_decision(ctx.conn, order_id, "cancel")
        await store.update_order(ctx.conn, order_id, "cancelled")
        BACKORDERS.labels("declined").inc()
        await confirm_cancelled(ctx, topics.INVENTORY_ORDER_CANCELLED, OrderCancelRequested(
            order_id=snap.order_id, order_key=snap.key, reason="backorder declined by customer",
            refund_due=refund_due(snap.totals.grand_total, snap.payment_status),
            currency=snap.currency,
            correlation_id=row["correlation_id"]), "inventory")
        return
    await _substitute(ctx, row, snap, event.substitutions)


async def _substitute(ctx: Ctx, row: Any, snap: OrderSnapshot, wanted: dict[str, str]) -> None:
    order_id = row["order_id"]
    offered: dict[str, list[str]] = json.loads(row["substitutes"])
    policy = await store.policy(ctx.conn, snap.store)
    invalid = {s: sub for s, sub in wanted.items() if sub not in offered.get(s, [])}
    if not wanted or invalid:
        await store.add_trace(ctx.conn, order_id, [f"substitution refused: {invalid or 'none'}"])
        await _backorder(ctx.conn, order_id, snap, policy, [], row["correlation_id"],
                         str(ctx.event.event_id),
                         ("substitute_not_offered", f"not among the substitutes offered: {invalid}"
                          if invalid else "no substitution named"))
        return
    prices = await store.products(ctx.conn, sorted(wanted.values()))
    quantities: dict[str, int] = {}
    paid: dict[str, Decimal] = {}
    for ln in snap.lines:
        quantities[ln.sku] = quantities.get(ln.sku, 0) + ln.quantity
        paid.setdefault(ln.sku, ln.unit_price)
    new_lines = [ln.model_copy(update={"sku": wanted.get(ln.sku, ln.sku)}) for ln in snap.lines]
    substituted_snap = snap.model_copy(update={"lines": new_lines})
    plan, trace = await allocate(ctx.conn, order_id, substituted_snap, ctx.event.event_id, policy,
                                 frozenset(wanted.values()))
    if plan is None:
        await _backorder(ctx.conn, order_id, snap, policy, ["substitution:", *trace],
                         row["correlation_id"], str(ctx.event.event_id),
                         ("substitute_unavailable", "the substitute is no longer in stock"))
        return
    difference = domain.price_difference(
        paid, {s: p.price for s, p in prices.items()}, wanted, quantities)
    await store.set_decision(ctx.conn, order_id, "substitute", wanted, difference)
    await store.update_order(ctx.conn, order_id, "reserved", _allocations(plan), [])
    await ctx.conn.execute("UPDATE orders SET snapshot = $2::jsonb WHERE order_id = $1",
                           order_id, substituted_snap.model_dump_json())
    await store.add_trace(ctx.conn, order_id, ["substitution:", *trace])
    BACKORDERS.labels("substituted").inc()
    await _announce_reserved(ctx.conn, substituted_snap, plan, row["correlation_id"],
                             str(ctx.event.event_id),
                             {"substitutions": wanted, "price_difference": money_text(difference)})
    # The difference is settled with the payment system when money was taken (a pending
    # payment is charged the new total by the storefront itself).
    if refund_due(snap.totals.grand_total, snap.payment_status) > 0:
        ids = {"order_id": snap.order_id, "store": snap.store,
               "external_order_id": snap.external_order_id, "currency": snap.currency,
               "reason": "substitution_price_difference"}
        await request_refund(ctx.conn, **ids, request_id="substitution", amount=-difference)
        await request_charge(ctx.conn, **ids, charge_id="substitution", amount=difference)


async def release_cancelled(ctx: Ctx, event: OrderCancelled) -> None:
    """Fulfillment or logistics confirmed a cancellation: the reserved goods are free again."""
    await store.lock_refill(ctx.conn)
    order_id = uuid.UUID(event.order_id)
    row = await store.get_order(ctx.conn, order_id)
    if row is None or row["status"] not in ("reserved", "reallocating"):
        return
    allocations = json.loads(row["allocations"])
    await store.release(ctx.conn, order_id, allocations, event.event_id)
    await store.update_order(ctx.conn, order_id, "cancelled")
    await _cancel_continuations(ctx, order_id)
    skus = sorted({ln["sku"] for a in allocations for ln in a["lines"]})
    await refill_backorders(ctx.conn, skus, event.event_id)


async def _cancel_continuations(ctx: Ctx, order_id: uuid.UUID) -> None:
    """The original order's cancellation is confirmed (its refund covers every line), so the
    parts still to come are cancelled too, with nothing more due: a waiting one here, one
    already reserved wherever it is now (the hand-off of docs/cancellation.md)."""
    for row in await store.continuations(ctx.conn, order_id):
        if row["status"] not in ("backordered", "reserved", "reallocating"):
            continue
        snap = OrderSnapshot.model_validate_json(row["snapshot"])
        request = OrderCancelRequested(
            order_id=snap.order_id, order_key=snap.key, reason="the order it continues was"
            " cancelled", refund_due=Decimal("0.00"), currency=snap.currency,
            correlation_id=row["correlation_id"], causation_id=str(ctx.event.event_id))
        if row["status"] == "backordered":
            await store.update_order(ctx.conn, row["order_id"], "cancelled")
            BACKORDERS.labels("cancelled").inc()
            await emit_status(ctx.conn, order_id=snap.order_id, store=snap.store,
                              external_order_id=snap.external_order_id, status="cancelled",
                              reasons=[("original_cancelled", request.reason)],
                              details={"refund_due": "0.00"},
                              correlation_id=row["correlation_id"],
                              causation_id=str(ctx.event.event_id))
            await enqueue(ctx.conn, topics.INVENTORY_ORDER_CANCELLED, snap.key, OrderCancelled(
                order_id=snap.order_id, order_key=snap.key, reason=request.reason,
                refund_due=Decimal("0.00"), currency=snap.currency, confirmed_by="inventory",
                correlation_id=row["correlation_id"], causation_id=str(ctx.event.event_id)))
        else:
            await ctx.publish(topics.INVENTORY_ORDER_CANCEL_FORWARDED, snap.key, request)
        log.info("order %s cancelled: its continuation %s follows", order_id, snap.key)


for _topic in (topics.FULFILLMENT_ORDER_CANCELLED, topics.LOGISTICS_ORDER_CANCELLED):
    handlers.legacy(_topic)(release_cancelled)


@handlers.legacy(topics.LOGISTICS_ORDER_SHIPPED)
async def order_shipped(ctx: Ctx, event: OrderShipped) -> None:
    order_id = uuid.UUID(event.order_id)
    row = await store.get_order(ctx.conn, order_id)
    if row is None or row["status"] != "reserved":
        log.warning("order %s shipped but inventory has it as %s; nothing committed",
                    event.order_key, row["status"] if row else "unknown")
        return
    shipped = [(p.warehouse, ln.sku, ln.quantity) for p in event.parcels for ln in p.lines]
    await store.commit_shipped(ctx.conn, order_id, shipped, event.event_id)
    await store.update_order(ctx.conn, order_id, "committed")


@handlers.legacy(topics.CATALOG_PRODUCTS)
async def product_upserted(ctx: Ctx, event: ProductUpserted) -> None:
    await store.upsert_product(ctx.conn, event)


# --- "ship what is there, backorder the rest" -------------------------------------------------
def _priced(snap: OrderSnapshot, lines: list[Line]) -> list[OrderLine]:
    price = {ln.sku: ln.unit_price for ln in reversed(snap.lines)}
    return [OrderLine(sku=ln.sku, quantity=ln.quantity, unit_price=price[ln.sku])
            for ln in lines]


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
        "order_id": str(uuid.uuid5(CONTINUATION_NS, f"{snap.order_id}:B{n}")),
        "external_order_id": f"{snap.external_order_id}-B{n}", "lines": lines, "merge_with": [],
        "totals": Totals(subtotal=value, discount=zero, shipping_fee=zero, grand_total=value),
        "replaces_order_id": snap.order_id, "kind": "backorder"})


async def _split_off(conn: Conn, snap: OrderSnapshot, plan: Plan, short: list[Line],
                     policy: store.Policy, correlation_id: str | None, causation_id: str,
                     why: str, at: datetime) -> OrderSnapshot:
    """The original order keeps `plan` (what is there) and the customer hears `backordered`
    (the short lines, naming the continuation), then `reserved`; the short lines become a
    continuation order, backordered like any other (restock, decisions, expiry), which later
    goes through fulfillment and logistics on its own. Returns the original as it now ships."""
    order_id = uuid.UUID(snap.order_id)
    n = await store.continuation_count(conn, order_id) + 1
    rest = continuation_of(snap, short, n)
    now_lines = [ln for lines_ in plan.allocations.values() for ln in lines_]
    shipping = snap.model_copy(update={"lines": _priced(snap, domain.merge_lines(now_lines))})
    link = {"order_id": rest.order_id, "external_order_id": rest.external_order_id}
    short_json = [{"sku": ln.sku, "quantity": ln.quantity} for ln in short]
    await store.set_snapshot(conn, order_id, shipping)
    await store.add_trace(conn, order_id, [f"{why}; ship what is there, the rest is {rest.key}"])
    await emit_status(conn, order_id=snap.order_id, store=snap.store,
                      external_order_id=snap.external_order_id, status="backordered",
                      reasons=[("partially_backordered",
                                f"{why}: what is in stock ships now; the rest follows as"
                                f" {rest.key}")],
                      details={"short_lines": short_json, "substitutes": {},
                               "restock_eta": None, "continuation": link},
                      correlation_id=correlation_id, causation_id=causation_id)
    await _announce_reserved(conn, shipping, plan, correlation_id, causation_id,
                             {"backordered_lines": short_json, "continuation": link})
    cont_id = uuid.UUID(rest.order_id)
    await store.insert_order(conn, rest, cont_id, rest.key, "backordered", correlation_id,
                             continues=order_id, at=at)
    await emit_status(conn, order_id=rest.order_id, store=rest.store,
                      external_order_id=rest.external_order_id, status="accepted",
                      details={"continues": snap.order_id, "kind": "backorder"},
                      correlation_id=correlation_id, causation_id=causation_id)
    BACKORDERS.labels("opened").inc()
    BACKORDERS.labels("partial").inc()
    await _backorder(conn, cont_id, rest, policy, [f"continues {snap.key}"], correlation_id,
                     causation_id, ("out_of_stock", f"the part of {snap.key} not in stock"))
    log.info("order %s: ships what is there; %s waits for the rest", snap.key, rest.key)
    return shipping


async def _ship_available(ctx: Ctx, order_id: uuid.UUID, snap: OrderSnapshot,
                          policy: store.Policy, trace: list[str]) -> bool:
    """Reserve what is there under the original order and open a continuation order for the
    rest. False (the whole order is backordered as usual) when nothing is there, or when the
    stock went to another order meanwhile."""
    lines = _lines_of(snap)
    available = await store.available(ctx.conn, sorted({ln.sku for ln in lines}))
    plan, short = domain.partial_plan(lines, snap.shipping_address.country, available,
                                      await store.priorities(ctx.conn), policy.split_allowed)
    if not plan.allocations or not short:
        return False
    try:
        async with ctx.conn.transaction():
            await store.reserve(ctx.conn, order_id, plan, ctx.event.event_id)
    except store.StockGone as gone:
        trace.append(f"ship what is there: lost the race for {gone}; the whole order waits")
        return False
    await store.insert_order(ctx.conn, snap, order_id, snap.key, "reserved",
                             ctx.correlation_id, _allocations(plan), at=ctx.event.occurred_at)
    await store.add_trace(ctx.conn, order_id, [*trace, *plan.trace])
    await _split_off(ctx.conn, snap, plan, short, policy, ctx.correlation_id,
                     str(ctx.event.event_id), "not all in stock", ctx.event.occurred_at)
    return True


# --- short picks ------------------------------------------------------------------------------
@handlers.legacy(topics.FULFILLMENT_SHORT_PICKED)
async def short_picked(ctx: Ctx, event: ShortPicked) -> None:
    """The bin held fewer units than the order was given. Those units are written off (they are
    not there, so on_hand must not say they are); the rest of the allocation stays; the missing
    units are reserved where the source selection finds them (never in a warehouse that holds
    another part of the order), and fulfillment hears a new `inventory.stock_reserved` with the
    whole allocation. Nowhere to take them from: the order waits (`reallocating`, the customer
    hears `backordered` with the short lines) with the rest still reserved, until a restock."""
    await store.lock_refill(ctx.conn)
    order_id = uuid.UUID(event.order_id)
    row = await store.get_order(ctx.conn, order_id)
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
    await store.write_off_short(ctx.conn, event.sku, event.warehouse, missing, order_id,
                                event.event_id, f"short pick of {event.order_key}")
    kept = domain.take_out(allocation, event.warehouse, event.sku, missing)
    snap = OrderSnapshot.model_validate_json(row["snapshot"])
    policy = await store.policy(ctx.conn, snap.store)
    head = [f"short pick: {missing} x {event.sku} not in {event.warehouse}; written off"]
    plan, trace = await _reallocate(ctx.conn, order_id, snap, kept, [Line(event.sku, missing)],
                                    event.warehouse, policy, event.event_id, restocked=False)
    if plan is not None:
        await _reallocated(ctx.conn, row, snap, kept, plan, [*head, *trace], str(event.event_id))
        REALLOCATIONS.labels("reallocated").inc()
        return
    short = [Line(event.sku, missing)]
    if policy.partial == "ship_available" and kept:
        # The store ships what is there: the rest of the order goes on, the missing units
        # become a continuation order.
        await store.update_order(ctx.conn, order_id, "reserved", _allocations(Plan(kept)), [])
        await store.add_trace(ctx.conn, order_id, [*head, *trace])
        await _split_off(ctx.conn, snap, Plan(kept), short, policy, row["correlation_id"],
                         str(event.event_id), f"{missing} x {event.sku} missing in the"
                         f" warehouse", event.occurred_at)
        REALLOCATIONS.labels("continued").inc()
        return
    await store.update_order(ctx.conn, order_id, "reallocating", _allocations(Plan(kept)), short)
    await store.set_short_warehouse(ctx.conn, order_id, event.warehouse)
    await store.add_trace(ctx.conn, order_id, [*head, *trace])
    skus = [event.sku]
    eta = domain.restock_eta(short, await store.expected_receipts(ctx.conn, skus),
                             await store.waiting_ahead(ctx.conn, skus, order_id))
    await store.set_backorder(ctx.conn, order_id, short, {}, eta, [])
    await emit_status(ctx.conn, order_id=snap.order_id, store=snap.store,
                      external_order_id=snap.external_order_id, status="backordered",
                      reasons=[("short_picked", f"{missing} x {event.sku} missing in the"
                                " warehouse; the order waits for a restock")],
                      details=_backorder_details(short, {}, eta),
                      correlation_id=row["correlation_id"], causation_id=str(event.event_id))
    REALLOCATIONS.labels("backordered").inc()
    BACKORDERS.labels("opened").inc()


async def _reallocate(conn: Conn, order_id: uuid.UUID, snap: OrderSnapshot,
                      kept: dict[str, list[Line]], missing: list[Line], short_warehouse: str,
                      policy: store.Policy, event_id: uuid.UUID, restocked: bool
                      ) -> tuple[Plan | None, list[str]]:
    """Reserve the missing units among the allowed warehouses, best plan first."""
    available = await store.available(conn, sorted({ln.sku for ln in missing}))
    candidates = domain.reallocation_candidates(sorted(available), kept, short_warehouse,
                                                policy.split_allowed, restocked)
    plans = domain.reallocation_plans(missing, snap.shipping_address.country, available,
                                      candidates, await store.priorities(conn),
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


async def _reallocated(conn: Conn, row: Any, snap: OrderSnapshot, kept: dict[str, list[Line]],
                       plan: Plan, trace: list[str], causation_id: str) -> None:
    """The whole allocation (what was kept + the re-reserved units) goes to fulfillment again."""
    whole = Plan(domain.combine(kept, plan.allocations), plan.trace)
    await store.update_order(conn, row["order_id"], "reserved", _allocations(whole), [])
    await store.add_trace(conn, row["order_id"], trace)
    await enqueue(conn, topics.INVENTORY_STOCK_RESERVED, snap.key, StockReserved(
        order_id=snap.order_id, order_key=snap.key, order=snap, allocations=_allocations(whole),
        correlation_id=row["correlation_id"], causation_id=causation_id))
    log.info("order %s re-allocated after a short pick: %s", snap.key, _allocations(whole))


async def _refill_short(conn: Conn, row: Any, snap: OrderSnapshot, policy: store.Policy,
                        causation_id: uuid.UUID) -> int:
    """A restock may cover a short-picked order's missing units (the short warehouse counts
    again now). The customer heard `backordered`, so hears `reserved` again."""
    kept = _parse_allocations(row["allocations"])
    missing = [Line(x["sku"], x["quantity"]) for x in json.loads(row["short_lines"])]
    plan, trace = await _reallocate(conn, row["order_id"], snap, kept, missing,
                                    row["short_warehouse"], policy, causation_id, restocked=True)
    if plan is None:
        return 0
    await _reallocated(conn, row, snap, kept, plan, ["restocked:", *trace], str(causation_id))
    whole = domain.combine(kept, plan.allocations)
    await emit_status(conn, order_id=snap.order_id, store=snap.store,
                      external_order_id=snap.external_order_id, status="reserved",
                      details={"allocations": _allocations(Plan(whole))},
                      correlation_id=row["correlation_id"], causation_id=str(causation_id))
    BACKORDERS.labels("restocked").inc()
    REALLOCATIONS.labels("restocked").inc()
    return 1


async def _short_decision(ctx: Ctx, row: Any, decision: str) -> None:
    """A short-picked order waits in fulfillment, so `cancel` goes there (as any cancellation
    of a reserved order; the reservation is released on its confirmation); `wait` is noted.
    Substitutes are not offered for a short pick (the rest of the order is picked already)."""
    await store.set_decision(ctx.conn, row["order_id"], decision)
    if decision != "cancel":
        return
    snap = OrderSnapshot.model_validate_json(row["snapshot"])
    await ctx.publish(topics.INVENTORY_ORDER_CANCEL_FORWARDED, snap.key, OrderCancelRequested(
        order_id=snap.order_id, order_key=snap.key, reason="backorder declined by customer",
        refund_due=snap.totals.grand_total, currency=snap.currency,
        correlation_id=row["correlation_id"], causation_id=str(ctx.event.event_id)))


# --- graded returns ---------------------------------------------------------------------------
@handlers.legacy(topics.AFTERSALES_RETURN_GRADED)
async def return_graded(ctx: Ctx, event: ReturnGraded) -> None:
    """`refurbish`: the units enter the refurbished stock state of the warehouse (not sellable
    as new, so no backorder is refilled); `scrap`: a write-off row, no balance moves (the goods
    never re-entered stock)."""
    if not await store.warehouse_exists(ctx.conn, event.warehouse):
        raise PoisonMessage(f"unknown warehouse {event.warehouse!r} for return"
                            f" {event.request_id}; add it to inventory.warehouses, then replay")
    for ln in sorted(event.lines, key=lambda x: x.sku):
        await store.return_graded(ctx.conn, ln.sku, event.warehouse, event.grade, ln.quantity,
                                  uuid.UUID(event.order_id), event.event_id,
                                  f"{event.grade} {event.request_id}")
    log.info("order %s: return %s graded %s in %s", event.order_key, event.request_id,
             event.grade, event.warehouse)


# aftersales: replacement orders (exchange, reship) are reserved like any accepted order.
handlers.legacy(topics.AFTERSALES_REPLACEMENT_ORDERED)(order_accepted)
