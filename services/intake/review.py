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
from datetime import datetime
from typing import Any

import asyncpg

from shared import fx, topics
from shared.contracts import OrderAccepted, OrderPlaced, OrderSnapshot, utcnow
from shared.db import Conn
from shared.messaging import emit_status
from shared.outbox import enqueue

from . import domain, metrics, store
from .domain import Policy, Review

log = logging.getLogger(__name__)

# How a hold closes when a re-review decides the order.
_RESOLUTION = {"accepted": "released", "rejected": "rejected_on_review"}


async def evaluate(conn: Conn, order: OrderPlaced, order_id: uuid.UUID | None,
                   received_at: datetime, policy: Policy | None = None,
                   now: datetime | None = None) -> tuple[Review, Policy]:
    """Review `order` with everything intake knows now (or with `policy` instead of the
    store's own, for dry runs)."""
    pol = policy or await store.policy(conn, order.store)
    window = max(pol.duplicate_window_minutes, pol.merge_window_minutes)
    ctx = domain.Context(
        refused_attributes=await store.refused_attributes(conn),
        blocked=await store.blocked(conn, domain.identities(order)),
        prior=await store.prior_orders(conn, order, received_at, window),
        promo_uses=await store.promo_uses(conn, order.customer.id, order.promo_codes, order_id),
        received_at=received_at,
        fx=await fx.rates(conn),
        list_prices=await store.list_prices(conn, order.store, order.currency,
                                            [ln.sku for ln in order.lines], order.placed_at),
    )
    result = domain.review(
        order, await store.products_for(conn, [ln.sku for ln in order.lines]),
        await store.served_countries(conn), await store.promotions(conn, order.promo_codes),
        pol, now or utcnow(), ctx)
    return result, pol


async def apply(conn: Conn, order_id: uuid.UUID, order: OrderPlaced, prev_status: str | None,
                prev_reasons: list[tuple[str, str]], result: Review, policy: Policy, *,
                trigger: str, by: str = "intake", correlation_id: str | None = None,
                causation_id: str | None = None) -> bool:
    """Make `result` the order's decision. `prev_status` None means the order row was just
    inserted with this decision. Returns False (and records nothing) when nothing changed."""
    if prev_status is not None and (prev_status, prev_reasons) == (result.status, result.reasons):
        return False
    await store.insert_decision(conn, order_id, trigger, result.status, result.reasons,
                                [h.as_dict() for h in result.fired], policy.as_dict())
    _count(result, prev_reasons)
    if prev_status is not None:
        await store.set_status(conn, order_id, result.status, result.reasons)
    ids: dict[str, Any] = {"order_id": str(order_id), "store": order.store,
                           "external_order_id": order.external_order_id,
                           "correlation_id": correlation_id, "causation_id": causation_id}
    reasons = result.reasons
    if result.status == "on_hold":
        await store.open_hold(conn, order_id, order.store, result.reasons,
                              policy.hold_sla_minutes * 60)
        log.info("order %s on hold (%s): %s", order_id, trigger,
                 ", ".join(c for c, _ in result.reasons))
    elif prev_status == "on_hold":
        closed = await store.close_hold(conn, order_id, _RESOLUTION[result.status], by)
        if closed is not None:
            metrics.HOLD_AGE.labels(_RESOLUTION[result.status]).observe(closed["age_seconds"])
        if result.status == "accepted":
            cleared = ", ".join(sorted({c for c, _ in prev_reasons}))
            reasons = [("hold_released", f"the cause of the hold ({cleared}) cleared on"
                                         f" {trigger.replace('_', ' ')}")]
        log.info("order %s hold closed on %s: %s", order_id, trigger, result.status)
    await emit_status(conn, status=result.status, reasons=reasons, **ids)
    if result.status == "accepted":
        await accept(conn, order_id, order, correlation_id, causation_id, result.merge_with)
    return True


def _count(result: Review, prev_reasons: list[tuple[str, str]]) -> None:
    for code in sorted({c for c, _ in result.reasons}) or [""]:
        metrics.DECISIONS.labels(result.status, code).inc()
    before = {c for c, _ in prev_reasons}
    if any(c == "suspected_duplicate" for c, _ in result.reasons) \
            and "suspected_duplicate" not in before:
        metrics.DUPLICATE_HITS.labels("suspected_duplicate").inc()
    if result.merge_with and result.status == "accepted":
        metrics.DUPLICATE_HITS.labels("merge_candidate").inc()


async def accept(conn: Conn, order_id: uuid.UUID, order: OrderPlaced,
                 correlation_id: str | None, causation_id: str | None,
                 merge_with: list[str] | None = None) -> None:
    """Hand the accepted order down the chain, and count its promo codes as used."""
    snap = OrderSnapshot(**domain.snapshot(str(order_id), order, utcnow(), merge_with))
    await enqueue(conn, topics.INTAKE_ORDER_ACCEPTED, order.key, OrderAccepted(
        order_id=str(order_id), order_key=order.key, order=snap,
        correlation_id=correlation_id, causation_id=causation_id))
    if order.promo_codes:
        await store.record_promo_uses(conn, order.promo_codes, order.customer.id, order_id)


def stored_reasons(raw: str | None) -> list[tuple[str, str]]:
    return [(r["code"], r["message"]) for r in json.loads(raw or "[]")]


async def rereview(conn: Conn, order_id: uuid.UUID, *, trigger: str, by: str = "intake",
                   correlation_id: str | None = None, causation_id: str | None = None,
                   order: OrderPlaced | None = None) -> str | None:
    """Review a held order again (its cause may have cleared); `order` replaces what intake
    holds of it (a re-sent or corrected order). Returns the status after, None if not held."""
    row = await store.get_order(conn, order_id)
    if row is None or row["status"] != "on_hold" or row["payload"] is None:
        return None
    held = store.stored_order(row["payload"])
    if order is not None:
        await store.update_payload(conn, order_id, order)
    current = order or held
    result, pol = await evaluate(conn, current, order_id, row["received_at"])
    # Statuses stay correlated with the order (the event intake holds it from), whatever
    # triggered the re-review; the trigger is the causation.
    await apply(conn, order_id, current, "on_hold", stored_reasons(row["reasons"]), result, pol,
                trigger=trigger, by=by, correlation_id=correlation_id or str(held.event_id),
                causation_id=causation_id)
    return result.status


async def rereview_open_holds(conn: Conn, *, trigger: str, codes: list[str] | None = None,
                              store_name: str | None = None, correlation_id: str | None = None,
                              causation_id: str | None = None) -> int:
    """Something holds may depend on changed (coverage, a store's rules, the block list, a
    promotion, another order closed): review the open holds with one of `codes` (all when None),
    of one store or all, again. Returns how many were
    released or rejected. Orders are locked in id order, so two re-reviews cannot deadlock."""
    closed = 0
    for order_id in await store.open_hold_order_ids(conn, codes, store_name):
        status = await rereview(conn, order_id, trigger=trigger, correlation_id=correlation_id,
                                causation_id=causation_id)
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
    unknown setting or a bad value. This is what `shopkeeper rules dry-run` calls."""
    current = await store.policies(pool)
    proposed = dict(current)
    for shop, overrides in candidate.items():
        proposed[shop] = current.get(shop, current["*"]).with_overrides(overrides)
    changed: list[dict[str, Any]] = []
    transitions: Counter[str] = Counter()
    rows = await store.recent_orders(pool, limit)
    async with pool.acquire() as conn:
        for r in rows:
            order = store.stored_order(r["payload"])
            now_pol = current.get(order.store, current["*"])
            new_pol = proposed.get(order.store, proposed["*"])
            at = r["received_at"]
            before, _ = await evaluate(conn, order, r["order_id"], at, now_pol, now=at)
            after, _ = await evaluate(conn, order, r["order_id"], at, new_pol, now=at)
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
