"""Analytics' background work: business gauges for Prometheus, and the feedback loops (carrier
scores to logistics, reorder hints to inventory) published as events.

Every instance refreshes its own gauges (each reads the same read model, so alert on `max`); the
feedback is computed and published by one instance at a time, under an advisory lock, and only
what changed since the last publication goes out.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import json
import logging
import re
from collections.abc import Awaitable, Callable
from datetime import date, timedelta

from prometheus_client import Gauge
from pydantic import Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared import topics
from shared.contracts import CarrierScored, ReorderHinted, utcnow
from shared.db import try_xact_lock
from shared.service import Runtime
from shared.uow import UnitOfWork

from . import reports, store

log = logging.getLogger(__name__)


class AnalyticsSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SHOPKEEPER_ANALYTICS_", extra="ignore")

    # On-time ship rate: shipped within this many hours of being placed.
    ship_sla_hours: float = 48.0
    # `shopkeeper_orders_stuck`: not final and unchanged for longer than this.
    stuck_after_hours: float = 24.0
    gauges_seconds: float = 15.0
    feedback_seconds: float = 60.0
    feedback_window_days: int = 30
    # Facts (the events as received, partitioned by month) older than this many months are
    # dropped, a month at a time; 0 keeps them forever. Rollups, timelines and orders stay.
    facts_retention_months: int = 24
    partitions_seconds: float = 3600.0
    # The fold job (fold_forever): how often it folds the facts queued by the consumer into the
    # rollups, and how many facts at most per transaction. Reports lag the events by about this
    # much; an order's stages that arrive within one pass are folded once, if the pass takes
    # them in one batch: a pass at 300 orders/s holds about 10,000 facts, and an order whose
    # facts straddle two batches is folded in both (2.7 folds per order with batches of 5,000,
    # 1.2 with 20,000: docs/BENCHMARKS.md, ninth round).
    fold_seconds: float = Field(default=5.0, gt=0, le=300)
    fold_batch: int = Field(default=store.FOLD_BATCH, ge=1, le=100_000)


@functools.cache
def analytics_settings() -> AnalyticsSettings:
    """SHOPKEEPER_ANALYTICS_*, read once (pydantic-settings); a bad value stops the service
    naming the variable."""
    try:
        return AnalyticsSettings()
    except ValidationError as exc:
        raise ValueError("; ".join(
            f"SHOPKEEPER_ANALYTICS_{'_'.join(map(str, e['loc'])).upper()} is invalid: {e['msg']}"
            for e in exc.errors())) from None


ORDERS_BY_STATUS = Gauge("shopkeeper_orders_by_status", "Orders by current status (read model)",
                         ["status"])
BACKORDERS_OPEN = Gauge("shopkeeper_backorders_open", "Orders waiting for stock now")
REFUNDS_TOTAL = Gauge("shopkeeper_refunds_amount", "Refunds issued, total amount", ["currency"])
AVERAGE_RATING = Gauge("shopkeeper_average_rating", "Average customer rating (1-5)")
FOLD_BACKLOG = Gauge("shopkeeper_analytics_fold_backlog",
                     "Facts stored but not yet folded into the rollups (the reports lag by these)")
FOLD_LAG = Gauge("shopkeeper_analytics_fold_lag_seconds",
                 "Age of the oldest fact waiting for the fold job (0 when none waits)")
ORDERS_STUCK = Gauge("shopkeeper_orders_stuck",
                     "Orders not in a final state whose last status change is older than"
                     " SHOPKEEPER_ANALYTICS_STUCK_AFTER_HOURS")


async def refresh_gauges(runtime: Runtime, settings: AnalyticsSettings) -> None:
    g = await store.gauges(runtime.pool, settings.stuck_after_hours * 3600)
    for status in (*g["by_status"], *(s for s in _seen_statuses if s not in g["by_status"])):
        ORDERS_BY_STATUS.labels(status).set(g["by_status"].get(status, 0))
        _seen_statuses.add(status)
    BACKORDERS_OPEN.set(g["by_status"].get("backordered", 0))
    for currency, total in g["refunds"].items():
        REFUNDS_TOTAL.labels(currency).set(float(total))
    if g["rating"] is not None:
        AVERAGE_RATING.set(round(g["rating"], 3))
    ORDERS_STUCK.set(g["stuck"])
    waiting, age = await store.fold_backlog(runtime.pool)
    FOLD_BACKLOG.set(waiting)
    FOLD_LAG.set(round(age, 3))


_seen_statuses: set[str] = set()


async def publish_feedback(runtime: Runtime, settings: AnalyticsSettings) -> int:
    """Carrier scores and reorder hints over the recent window; returns how many were published.
    Skipped (0) while another instance holds the lock."""
    now = utcnow()
    sent = 0
    # One unit of work per pass; no cause: what goes out is decided by the digests recorded in
    # the same transaction (a pass repeated after a rollback publishes what changed, once).
    async with UnitOfWork.begin(runtime.pool, "analytics") as uow:
        conn = uow.conn
        if not await try_xact_lock(conn, "analytics:feedback"):
            return 0
        window = settings.feedback_window_days
        since = (now - timedelta(days=window)).date()
        # One statement per kind of feedback, whatever the number of carriers or SKUs: the
        # digests of all of them go in at once and come back only where they changed.
        scores = {f"{s['carrier']}/{s['service']}/{s['country']}": s
                  for s in await reports.carrier_scores(conn, since)}
        for key in sorted(await store.changed(conn, topics.ANALYTICS_CARRIER_SCORES.name,
                                              {k: _digest(s) for k, s in scores.items()})):
            s = scores[key]
            await uow.publish(topics.ANALYTICS_CARRIER_SCORES, s["carrier"],
                              CarrierScored(**s, window_days=window))
            sent += 1
        hints = {h["sku"]: h for h in await reports.reorder_hints(conn, now)}
        for sku in sorted(await store.changed(conn, topics.ANALYTICS_REORDER_HINTS.name,
                                              {k: _digest(h) for k, h in hints.items()})):
            await uow.publish(topics.ANALYTICS_REORDER_HINTS, sku, ReorderHinted(**hints[sku]))
            sent += 1
    if sent:
        log.info("published %d carrier scores and reorder hints", sent)
    return sent


def _digest(d: dict[str, object]) -> str:
    return hashlib.sha256(json.dumps(d, sort_keys=True, default=str).encode()).hexdigest()


async def _every(seconds: float, what: str, fn: Callable[[], Awaitable[object]]) -> None:
    while True:
        try:
            await fn()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a fault here must not stop the loop; it logs and retries
            log.warning("%s failed: %s", what, exc, exc_info=exc)
        await asyncio.sleep(seconds)


async def fold_pending(runtime: Runtime, settings: AnalyticsSettings) -> int:
    """Fold what the consumer queued, a batch per transaction, until the queue is empty; returns
    how many facts were folded. Every instance runs it: batches are disjoint (store.fold_queued)."""
    done = 0
    while True:
        async with UnitOfWork.begin(runtime.pool, "analytics") as uow:
            taken = await store.fold_queued(uow.conn, settings.ship_sla_hours,
                                            settings.fold_batch)
        done += taken
        if taken < settings.fold_batch:
            return done


async def fold_forever(runtime: Runtime, settings: AnalyticsSettings) -> None:
    """The fold job: every `fold_seconds`, fold the queued facts into the rollups. A failure
    (Postgres away) rolls back the batch, which stays queued, and is retried at the next pass;
    the backlog is the gauge shopkeeper_analytics_fold_backlog."""
    await _every(settings.fold_seconds, "rollup fold", lambda: fold_pending(runtime, settings))


async def backfill(runtime: Runtime, settings: AnalyticsSettings, batch: int = 500) -> int:
    """Fold the orders whose facts came before the rollups existed (migration 0003 says whether
    there are any), a batch per transaction, under a lock so one instance does it. Live events
    meanwhile fold their own order the same way (store.fold_orders), so nothing is counted twice."""
    done = 0
    while True:
        async with runtime.pool.acquire() as conn, conn.transaction():
            if await conn.fetchval("SELECT value FROM rollup_meta WHERE name = 'backfilled'"
                                   ) == "true" or not await try_xact_lock(conn, "analytics:backfill"):
                return done
            keys = [r[0] for r in await conn.fetch(
                "SELECT DISTINCT f.order_key FROM facts f WHERE f.order_key IS NOT NULL AND NOT"
                " EXISTS (SELECT 1 FROM order_state s WHERE s.order_key = f.order_key) LIMIT $1",
                batch)]
            await store.fold_orders(conn, {key: [] for key in keys}, settings.ship_sla_hours)
            done += len(keys)
            if not keys:
                await conn.execute("UPDATE rollup_meta SET value = 'true'"
                                   " WHERE name = 'backfilled'")
                log.info("rollups backfilled: %d orders folded from their facts", done)
                return done


_refold_wanted: asyncio.Event | None = None


def _refold_event() -> asyncio.Event:
    global _refold_wanted
    if _refold_wanted is None:
        _refold_wanted = asyncio.Event()
    return _refold_wanted


def wake_refold(runtime: Runtime) -> None:
    """A store's time zone changed (api.py): move its orders to the new zone's days now."""
    _refold_event().set()


async def refold_timezones(runtime: Runtime, settings: AnalyticsSettings, batch: int = 500
                           ) -> int:
    """Re-fold the orders of stores whose time zone changed (store_timezone.refold_after not
    NULL), `batch` orders a transaction in key order, the cursor kept in that row, so a restart
    goes on where it stopped; one instance at a time. Each order's contribution moves from the
    old zone's days to the new one's (store.fold_orders with refold). Live events of the same
    orders lock the same order_state rows, so nothing is counted twice. Returns orders moved."""
    moved = 0
    while True:
        async with runtime.pool.acquire() as conn, conn.transaction():
            if not await try_xact_lock(conn, "analytics:refold"):
                return moved
            row = await conn.fetchrow(
                "SELECT store, tz, refold_after FROM store_timezone WHERE refold_after IS NOT"
                " NULL ORDER BY changed_at, store LIMIT 1 FOR UPDATE")
            if row is None:
                return moved
            keys = [r[0] for r in await conn.fetch(
                "SELECT order_key FROM order_state WHERE order_key > $1 AND order_key LIKE $2"
                " ORDER BY order_key LIMIT $3", row["refold_after"],
                re.sub(r"([%_\\])", r"\\\1", row["store"]) + ":%", batch)]
            if keys:
                moved += await store.fold_orders(conn, {k: [] for k in keys},
                                                 settings.ship_sla_hours, refold=True)
            await conn.execute("UPDATE store_timezone SET refold_after = $2 WHERE store = $1",
                               row["store"], keys[-1] if keys else None)
            if not keys:
                log.info("store %s: every order now counts in %s days", row["store"], row["tz"])


async def _refold_forever(runtime: Runtime, settings: AnalyticsSettings) -> None:
    """Refold when woken by a change, and every minute (a change made through another
    instance, or one interrupted by a restart)."""
    wanted = _refold_event()
    while True:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(wanted.wait(), 60)
        wanted.clear()
        try:
            await refold_timezones(runtime, settings)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # Postgres away: the next wake or minute tries again
            log.warning("time zone refold failed (%s: %s); retrying within a minute",
                        type(exc).__name__, exc)


def month_start(d: date, months_back: int = 0) -> date:
    index = d.year * 12 + d.month - 1 - months_back
    return date(index // 12, index % 12 + 1, 1)


async def maintain_partitions(runtime: Runtime, settings: AnalyticsSettings) -> list[str]:
    """The month partitions of `facts` from this month to two ahead, and retention: partitions
    wholly older than SHOPKEEPER_ANALYTICS_FACTS_RETENTION_MONTHS dropped. Returns those dropped."""
    today = utcnow().date()
    dropped: list[str] = []
    async with runtime.pool.acquire() as conn, conn.transaction():
        if not await try_xact_lock(conn, "analytics:partitions"):
            return dropped
        for ahead in range(3):
            await conn.execute("SELECT facts_month($1)", month_start(today, -ahead))
        if settings.facts_retention_months <= 0:
            return dropped
        keep_from = month_start(today, settings.facts_retention_months)
        for (name,) in await conn.fetch(
                "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
                " WHERE i.inhparent = 'facts'::regclass AND c.relname ~ '^facts_[0-9]{4}_[0-9]{2}$'"
                " ORDER BY 1"):
            year, month = int(name[6:10]), int(name[11:13])
            if date(year, month, 1) < keep_from:
                await conn.execute(f'DROP TABLE "{name}"')
                dropped.append(name)
        await conn.execute(
            "INSERT INTO rollup_meta VALUES ('facts_kept_from', $1) ON CONFLICT (name)"
            " DO UPDATE SET value = EXCLUDED.value", keep_from.isoformat())
    if dropped:
        log.info("facts retention (%d months): dropped partitions %s; rollups and timelines"
                 " keep those orders", settings.facts_retention_months, ", ".join(dropped))
    return dropped


async def fold_readiness(runtime: Runtime) -> dict[str, object]:
    """/readyz details: facts not folded into the rollups yet, and the oldest one's age (the
    reports lag by that much; informational, it does not take the instance out of service)."""
    waiting, age = await store.fold_backlog(runtime.pool)
    return {"fold_backlog": waiting, "fold_lag_seconds": round(age, 1)}


async def start_jobs(runtime: Runtime) -> None:
    settings = analytics_settings()
    runtime.readiness.append(fold_readiness)
    runtime.spawn(_every(settings.partitions_seconds, "facts partitions",
                         lambda: maintain_partitions(runtime, settings)), "analytics-partitions")
    runtime.spawn(fold_forever(runtime, settings), "analytics-fold")
    runtime.spawn(_every(3600, "rollup backfill", lambda: backfill(runtime, settings)),
                  "analytics-backfill")
    runtime.spawn(_refold_forever(runtime, settings), "analytics-refold")
    runtime.spawn(_every(settings.gauges_seconds, "gauge refresh",
                         lambda: refresh_gauges(runtime, settings)), "analytics-gauges")
    runtime.spawn(_every(settings.feedback_seconds, "feedback loop",
                         lambda: publish_feedback(runtime, settings)), "analytics-feedback")
