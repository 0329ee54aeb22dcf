"""Running review against intake's data: load what the rules need, apply a decision (order
status, hold, decision record, `orders.status`, `intake.order_accepted`), re-review open holds
when their cause may have cleared, and dry-run a candidate rule set.

The rules themselves are pure, in domain.py; this module is the I/O around them, shared by the
subscribers (handlers.py), the operators' HTTP (api.py) and the `shopkeeper` CLI (`dry_run`).
"""

from __future__ import annotations

import json
import logging
import uuid
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from shared import fx, topics
from shared.contracts import (
    OrderAccepted,
    OrderPlaced,
    OrderSnapshot,
    utcnow,
)
from shared.db import read_all
from shared.uow import UnitOfWork

from . import domain, metrics, store
from .domain import Policy, Product, Promotion, Review

log = logging.getLogger(__name__)

# How a hold closes when a re-review decides the order.
_RESOLUTION = {"accepted": "released", "rejected": "rejected_on_review"}


# --- what review reads ------------------------------------------------------------------------

@dataclass(frozen=True)
class Candidate:
    """An order to review: its id (None for one not stored yet), when intake received it (the
    duplicate and merge windows end there) and the policy to review it with."""

    order: OrderPlaced
    order_id: uuid.UUID | None
    received_at: datetime
    policy: Policy


@dataclass(frozen=True)
class Inputs:
    """Everything review reads for a list of orders, read in a constant number of statements
    whatever the list's length (`gather`): the catalogue and promotions of all their SKUs and
    codes, logistics' coverage, and a `domain.Context` per order."""

    products: dict[str, Product]
    coverage: store.Coverage
    promotions: dict[str, Promotion]
    contexts: list[domain.Context]

    def review(self, i: int, candidate: Candidate, now: datetime,
               context: domain.Context | None = None) -> Review:
        """The decision on candidate `i` (with `context` instead of the one read, e.g. with the
        run's earlier orders added: `domain.RunSoFar`)."""
        return domain.review(candidate.order, self.products, self.coverage.served,
                             self.promotions, candidate.policy, now,
                             context or self.contexts[i])


async def gather(uow: UnitOfWork, candidates: list[Candidate]) -> Inputs:
    """Read what the rules need for `candidates`: coverage, rates and policies from the unit of
    work's memo (read once per run), then the catalogue, promotions, promo uses, the block
    list, prior orders and list prices in one statement (`shared.db.read_all`)."""
    conn = uow.conn
    orders = [c.order for c in candidates]
    coverage = await store.coverage(uow)
    rates = await fx.rates(uow)
    products, promotions, uses, blocked, prior, prices = await read_all(
        conn,
        store.products_read(sorted({ln.sku for o in orders for ln in o.lines})),
        store.promotions_read(sorted({p for o in orders for p in o.promo_codes})),
        store.promo_uses_read([(i, c.order.customer.id, list(c.order.promo_codes), c.order_id)
                               for i, c in enumerate(candidates)]),
        store.blocked_read([domain.identities(o) for o in orders]),
        store.prior_orders_read([
            (i, c.order, c.received_at, max(c.policy.duplicate_window_minutes,
                                            c.policy.merge_window_minutes))
            for i, c in enumerate(candidates)]),
        store.list_prices_read(orders))
    contexts = [domain.Context(
        refused_attributes=coverage.refused_attributes, blocked=blocked[i],
        prior=prior.get(i, ()), promo_uses=uses.get(i, {}), received_at=c.received_at,
        fx=rates, list_prices=prices[i]) for i, c in enumerate(candidates)]
    return Inputs(products, coverage, promotions, contexts)


async def evaluate(uow: UnitOfWork, order: OrderPlaced, order_id: uuid.UUID | None,
                   received_at: datetime, policy: Policy | None = None,
                   now: datetime | None = None) -> tuple[Review, Policy]:
    """Review one order with everything intake knows now (or with `policy` instead of the
    store's own, for dry runs)."""
    pol = policy or await store.policy(uow, order.store)
    candidate = Candidate(order, order_id, received_at, pol)
    inputs = await gather(uow, [candidate])
    return inputs.review(0, candidate, now or utcnow()), pol


# --- applying a decision ----------------------------------------------------------------------

async def status(uow: UnitOfWork, *, order_id: str, store: str, external_order_id: str,
                 status: str, reasons: list[tuple[str, str]],
                 correlation_id: str | None) -> None:
    """An `orders.status` change correlated with `correlation_id` (the event intake holds the
    order from) rather than with what caused it (a re-review's trigger, an operator)."""
    await uow.status(order_id=order_id, store=store, external_order_id=external_order_id,
                     status=status, reasons=reasons, correlation_id=correlation_id)


async def announce(uow: UnitOfWork, order_id: uuid.UUID, order: OrderPlaced, result: Review, *,
                   prev_status: str | None = None, prev_reasons: list[tuple[str, str]] | None = None,
                   trigger: str = "placed", correlation_id: str | None = None) -> None:
    """What a decision emits, once its rows are written (`apply`, or the run's writes in
    handlers.py): its metrics, the `orders.status` change, and for an accepted order
    `intake.order_accepted`. A hold that closed says why it was released."""
    prev_reasons = prev_reasons or []
    _count(uow, result, prev_reasons)
    reasons = result.reasons
    if result.status == "on_hold":
        log.info("order %s on hold (%s): %s", order_id, trigger,
                 ", ".join(c for c, _ in result.reasons))
    elif prev_status == "on_hold" and result.status == "accepted":
        cleared = ", ".join(sorted({c for c, _ in prev_reasons}))
        reasons = [("hold_released", f"the cause of the hold ({cleared}) cleared on"
                                     f" {trigger.replace('_', ' ')}")]
    await status(uow, order_id=str(order_id), store=order.store,
                 external_order_id=order.external_order_id, status=result.status,
                 reasons=reasons, correlation_id=correlation_id)
    if result.status == "accepted":
        await publish_accepted(uow, order_id, order, correlation_id, result.merge_with)


async def apply(uow: UnitOfWork, order_id: uuid.UUID, order: OrderPlaced, prev_status: str,
                prev_reasons: list[tuple[str, str]], result: Review, policy: Policy, *,
                trigger: str, by: str = "intake", correlation_id: str | None = None) -> bool:
    """Make `result` the decision of an order intake holds (a re-review). Returns False (and
    records nothing) when nothing changed."""
    if (prev_status, prev_reasons) == (result.status, result.reasons):
        return False
    conn = uow.conn
    await store.insert_decisions(conn, [(order_id, trigger, result.status, result.reasons,
                                         [h.as_dict() for h in result.fired],
                                         policy.as_dict())])
    await store.set_status(conn, order_id, result.status, result.reasons)
    if result.status == "on_hold":
        await store.open_holds(conn, [(order_id, order.store, result.reasons,
                                       policy.hold_sla_minutes * 60)])
    elif prev_status == "on_hold":
        closed = await store.close_hold(conn, order_id, _RESOLUTION[result.status], by)
        if closed is not None:
            uow.observe(metrics.HOLD_AGE, closed["age_seconds"], _RESOLUTION[result.status])
        log.info("order %s hold closed on %s: %s", order_id, trigger, result.status)
    if result.status == "accepted" and order.promo_codes:
        await store.record_promo_uses(conn, promo_uses(order_id, order))
    await announce(uow, order_id, order, result, prev_status=prev_status,
                   prev_reasons=prev_reasons, trigger=trigger, correlation_id=correlation_id)
    return True


def _count(uow: UnitOfWork, result: Review, prev_reasons: list[tuple[str, str]]) -> None:
    for code in sorted({c for c, _ in result.reasons}) or [""]:
        uow.count(metrics.DECISIONS, result.status, code)
    before = {c for c, _ in prev_reasons}
    if any(c == "suspected_duplicate" for c, _ in result.reasons) \
            and "suspected_duplicate" not in before:
        uow.count(metrics.DUPLICATE_HITS, "suspected_duplicate")
    if result.merge_with and result.status == "accepted":
        uow.count(metrics.DUPLICATE_HITS, "merge_candidate")


def promo_uses(order_id: uuid.UUID, order: OrderPlaced) -> list[tuple[str, str, uuid.UUID]]:
    """The promo code uses an accepted order counts (`store.record_promo_uses`)."""
    return [(c, order.customer.id, order_id) for c in sorted({c.upper()
                                                              for c in order.promo_codes})]


async def publish_accepted(uow: UnitOfWork, order_id: uuid.UUID, order: OrderPlaced,
                           correlation_id: str | None,
                           merge_with: list[str] | None = None) -> None:
    """Hand the accepted order down the chain (`intake.order_accepted`); its promo codes are
    counted as used by the caller, with the order's other writes."""
    snap = OrderSnapshot(**domain.snapshot(str(order_id), order, utcnow(), merge_with))
    await uow.publish(topics.INTAKE_ORDER_ACCEPTED, order.key, OrderAccepted(
        order_id=str(order_id), order_key=order.key, order=snap, correlation_id=correlation_id))


async def accept(uow: UnitOfWork, order_id: uuid.UUID, order: OrderPlaced,
                 correlation_id: str | None, merge_with: list[str] | None = None) -> None:
    """Hand the accepted order down the chain, and count its promo codes as used."""
    await publish_accepted(uow, order_id, order, correlation_id, merge_with)
    if order.promo_codes:
        await store.record_promo_uses(uow.conn, promo_uses(order_id, order))


def stored_reasons(raw: str | None) -> list[tuple[str, str]]:
    return [(r["code"], r["message"]) for r in json.loads(raw or "[]")]


async def rereview(uow: UnitOfWork, order_id: uuid.UUID, *, trigger: str, by: str = "intake",
                   correlation_id: str | None = None,
                   order: OrderPlaced | None = None) -> str | None:
    """Review a held order again (its cause may have cleared); `order` replaces what intake
    holds of it (a re-sent or corrected order). Returns the status after, None if not held.
    What it emits is caused by the unit of work's current cause (the trigger)."""
    row = await store.get_order(uow.conn, order_id)
    if row is None or row["status"] != "on_hold" or row["payload"] is None:
        return None
    held = store.stored_order(row["payload"])
    if order is not None:
        await store.update_payload(uow.conn, order_id, order)
    current = order or held
    result, pol = await evaluate(uow, current, order_id, row["received_at"])
    # Statuses stay correlated with the order (the event intake holds it from), whatever
    # triggered the re-review; the trigger is the causation.
    await apply(uow, order_id, current, "on_hold", stored_reasons(row["reasons"]), result, pol,
                trigger=trigger, by=by, correlation_id=correlation_id or str(held.event_id))
    return result.status


async def rereview_open_holds(uow: UnitOfWork, *, trigger: str, codes: list[str] | None = None,
                              store_name: str | None = None,
                              correlation_id: str | None = None) -> int:
    """Something holds may depend on changed (coverage, a store's rules, the block list, a
    promotion, another order closed): review the open holds with one of `codes` (all when None),
    of one store or all, again. Returns how many were
    released or rejected. Orders are locked in id order, so two re-reviews cannot deadlock.
    Not a hot path (a change of reference data, a closed order): one order at a time."""
    closed = 0
    for order_id in await store.open_hold_order_ids(uow.conn, codes, store_name):
        status = await rereview(uow, order_id, trigger=trigger, correlation_id=correlation_id)
        closed += status in ("accepted", "rejected")
    if closed:
        log.info("re-review on %s closed %d hold(s)", trigger, closed)
    return closed


async def dry_run(pool: asyncpg.Pool, candidate: dict[str, dict[str, Any]],
                  limit: int = 100) -> dict[str, Any]:
    """Evaluate a candidate rule set against the last `limit` stored orders, without changing
    anything, and report which decisions would change and why.

    `candidate` maps a store (or '*', the default) to policy settings overriding the current
    ones, e.g. `{"*": {"high_value_threshold": "500.00"}}`. Each order is reviewed twice, with
    the current and with the candidate rules, against what intake knows now and as of the time
    the order was received (promotion windows, duplicate windows). Raises ValueError for an
    unknown setting or a bad value. This is what `shopkeeper rules dry-run` calls. All the
    orders' inputs are read at once (a constant number of statements), in one read-only unit of
    work."""
    current = await store.policies(pool)
    proposed = dict(current)
    for shop, overrides in candidate.items():
        proposed[shop] = current.get(shop, current["*"]).with_overrides(overrides)
    changed: list[dict[str, Any]] = []
    transitions: Counter[str] = Counter()
    rows = await store.recent_orders(pool, limit)
    orders = [store.stored_order(r["payload"]) for r in rows]
    # Two candidates per order: reviewed with the current (2i) and the candidate rules (2i+1).
    candidates = [Candidate(o, r["order_id"], r["received_at"], pols.get(o.store, pols["*"]))
                  for r, o in zip(rows, orders, strict=True) for pols in (current, proposed)]
    async with UnitOfWork.begin(pool, "intake") as uow:
        inputs = await gather(uow, candidates)
    for i, r in enumerate(rows):
        at = r["received_at"]
        before = inputs.review(2 * i, candidates[2 * i], at)
        after = inputs.review(2 * i + 1, candidates[2 * i + 1], at)
        if (before.status, before.reasons) == (after.status, after.reasons):
            continue
        transitions[f"{before.status} -> {after.status}"] += 1
        old = {_hit_key(h) for h in before.fired}
        new = {_hit_key(h) for h in after.fired}
        changed.append({
            "order_id": str(r["order_id"]), "store": r["store"],
            "external_order_id": r["external_order_id"], "stored_status": r["status"],
            "current": {"status": before.status, "reasons": _pairs(before.reasons)},
            "candidate": {"status": after.status, "reasons": _pairs(after.reasons)},
            "why": {"fires_only_with_candidate": [h.as_dict() for h in after.fired
                                                  if _hit_key(h) not in old],
                    "fires_only_with_current": [h.as_dict() for h in before.fired
                                                if _hit_key(h) not in new]},
        })
    return {"evaluated": len(rows), "changed": len(changed), "transitions": dict(transitions),
            "candidate": {s: p.as_dict() for s, p in proposed.items() if s in candidate},
            "orders": changed}


def _hit_key(h: domain.RuleHit) -> tuple[str, str, str, str]:
    return (h.rule, h.code, h.effect, h.message)


def _pairs(reasons: list[tuple[str, str]]) -> list[dict[str, str]]:
    return [{"code": c, "message": m} for c, m in reasons]
