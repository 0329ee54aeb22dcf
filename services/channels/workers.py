"""Background work of a channels instance: the write-back worker (the channel's outbox of calls
to platforms) and the marketplace poller. Both are safe with N instances: a write-back job is
claimed with FOR UPDATE SKIP LOCKED, a store's poll runs under its advisory lock."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from shared.db import TRANSIENT_DB_ERRORS
from shared.logging import log_context
from shared.service import Runtime
from shared.uow import UnitOfWork

from . import crypto, inbox, metrics, store
from .config import channels_settings
from .platforms import MODULES, amazon
from .platforms.base import ChannelConfig, Failed, Job, Retry, Skipped, Submitted
from .ratelimit import TokenBucket, backoff

log = logging.getLogger(__name__)
_settings = channels_settings()
MAX_ATTEMPTS = _settings.writeback_max_attempts
IDLE_SECONDS = _settings.writeback_poll_seconds
IDLE_MAX_SECONDS = max(IDLE_SECONDS, _settings.writeback_idle_seconds)
# Set when a transaction that queued write-backs has committed (handlers.on_status, the retry
# endpoint): this instance's idle worker looks at once.
WRITEBACKS_QUEUED = asyncio.Event()
# How long the poller reuses the list of Amazon channels before reading it again.
CHANNELS_REREAD_SECONDS = 5.0
POLL_SECONDS = _settings.poll_seconds
BACKOFF_BASE = _settings.backoff_base
POLL_CONCURRENCY = _settings.poll_concurrency
FEED_POLL_SECONDS = _settings.feed_poll_seconds
FEED_MAX_SECONDS = _settings.feed_max_hours * 3600
# Every call out would otherwise be an INFO line with its URL.
logging.getLogger("httpx").setLevel(logging.WARNING)


class State:
    """What /readyz tells of this instance's workers."""

    def __init__(self) -> None:
        self.writeback_error: str | None = None
        self.counts: dict[str, Any] = {}
        self.polls: dict[str, dict[str, Any]] = {}


STATE = State()


async def start_workers(runtime: Runtime) -> None:
    if not crypto.key_is_configured():
        log.warning("SHOPKEEPER_CHANNELS_SECRET_KEY is not set: channel secrets are sealed with"
                    " a key derived from the admin token (fine for the local stack, not for"
                    " production: set a Fernet key and re-enter the channels)")
    client = httpx.AsyncClient(timeout=httpx.Timeout(10.0, connect=5.0))
    runtime.spawn(writeback_forever(runtime, client), "channels-writeback")
    runtime.spawn(poll_forever(runtime, client), "channels-poll")
    runtime.readiness.append(readiness)


async def readiness(runtime: Runtime) -> dict[str, Any]:
    """Details only: a platform refusing write-backs must not take webhooks offline."""
    return {"channels": {"writebacks": STATE.counts, "writeback_worker":
                         STATE.writeback_error or "ok", "polls": STATE.polls}}


# --- write-back -----------------------------------------------------------------------------------
async def writeback_forever(runtime: Runtime, client: httpx.AsyncClient) -> None:
    buckets: dict[str, TokenBucket] = {}
    last_count = 0.0
    while True:
        done = 0
        try:
            done = await writeback_round(runtime, client, buckets)
            if time.monotonic() - last_count > 2:
                async with runtime.pool.acquire() as conn:
                    STATE.counts = await store.writeback_counts(conn)
                metrics.WRITEBACKS_PENDING.set(STATE.counts["pending"])
                metrics.WRITEBACKS_FAILED.set(STATE.counts["failed"])
                metrics.WRITEBACKS_SUBMITTED.set(STATE.counts["submitted"])
                last_count = time.monotonic()
            STATE.writeback_error = None
        except asyncio.CancelledError:
            raise
        except TRANSIENT_DB_ERRORS as exc:
            STATE.writeback_error = f"Postgres: {exc}"
            log.warning("write-back worker cannot reach Postgres (%s); retrying", exc)
            await asyncio.sleep(2)
        except Exception as exc:
            STATE.writeback_error = f"{type(exc).__name__}: {exc}"
            log.exception("write-back worker round failed; retrying in 5 s")
            await asyncio.sleep(5)
        if not done:
            await asyncio.sleep(IDLE_SECONDS)
            await _idle(runtime)


async def _idle(runtime: Runtime) -> None:
    """Nothing was due: sleep until the next job comes due, this instance queues one, or
    IDLE_MAX_SECONDS pass (one statement; an idle worker used to claim every half second)."""
    if WRITEBACKS_QUEUED.is_set():
        WRITEBACKS_QUEUED.clear()
        return
    try:
        async with runtime.pool.acquire() as conn:
            due_in = await store.next_writeback_in(conn)
    except TRANSIENT_DB_ERRORS:
        return  # the next round says what is wrong
    wait = IDLE_MAX_SECONDS if due_in is None else min(IDLE_MAX_SECONDS, due_in)
    if wait > 0:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(WRITEBACKS_QUEUED.wait(), wait)
    WRITEBACKS_QUEUED.clear()


async def writeback_round(runtime: Runtime, client: httpx.AsyncClient,
                          buckets: dict[str, TokenBucket], limit: int = 20) -> int:
    """Work up to `limit` due jobs, one transaction each (the job's row stays locked during
    its call, so another instance skips it). Returns how many were worked."""
    worked = 0
    for _ in range(limit):
        async with runtime.pool.acquire() as conn, conn.transaction():
            row = await store.claim_due(conn)
            if row is None:
                return worked
            cfg = await store.get_channel(conn, row["store"])
            await _work(conn, client, buckets, cfg, row)
        worked += 1
    return worked


async def _work(conn: Any, client: httpx.AsyncClient, buckets: dict[str, TokenBucket],
                cfg: ChannelConfig | None, row: Any) -> None:
    payload = json.loads(row["payload"])
    platform = cfg.platform if cfg else "unknown"
    attempts = row["attempts"] + 1
    with log_context(order_id=payload.get("order_id"), store=row["store"]):
        if cfg is None or cfg.platform not in ("shopify", "woocommerce", "amazon"):
            await store.finish_writeback(conn, row["id"], "skipped",
                                         "the store has no platform channel any more", attempts)
            metrics.WRITEBACKS.labels(platform, row["action"], "skipped").inc()
            return
        bucket = buckets.setdefault(cfg.store, MODULES[cfg.platform].bucket())
        if time.monotonic() < bucket.blocked_until:  # held by a 429: come back then
            await store.finish_writeback(conn, row["id"], row["state"], row["last_error"],
                                         row["attempts"], bucket.blocked_until - time.monotonic())
            return
        if not cfg.api_base_url or row["platform_order_id"] is None:
            why = ("api_base_url is not set" if not cfg.api_base_url
                   else "the order did not come through this channel")
            await store.finish_writeback(conn, row["id"], "skipped", why, attempts)
            metrics.WRITEBACKS.labels(platform, row["action"], "skipped").inc()
            return
        order_data = json.loads(row["order_data"] or "{}")
        order_data["cancelled_on_platform"] = row["cancelled_on_platform"]
        job = Job(id=row["id"], store=cfg.store, order_key=row["order_key"],
                  action=row["action"], platform_order_id=row["platform_order_id"],
                  details=payload.get("details") or {}, order_data=order_data, ref=row["ref"])
        if row["feed_id"]:  # accepted by the platform before: look at it, never send it again
            await _check_feed(conn, client, cfg, row, job)
            return
        try:
            sent = await MODULES[cfg.platform].write_back(client, bucket, cfg, job)
        except Retry as exc:
            state = "pending" if attempts < MAX_ATTEMPTS else "failed"
            delay = max(exc.after or 0.0, backoff(attempts, BACKOFF_BASE))
            await store.finish_writeback(conn, row["id"], state, str(exc)[:1000], attempts, delay)
            metrics.WRITEBACKS.labels(platform, row["action"],
                                      "retry" if state == "pending" else "failed").inc()
            log.warning("%s write-back of %s for %s failed (attempt %d of %d): %s; %s",
                        platform, row["action"], row["order_key"], attempts, MAX_ATTEMPTS, exc,
                        f"retrying in {delay:.0f}s" if state == "pending" else
                        "given up: fix the cause, then `shopkeeper channels retry "
                        f"{cfg.store}`")
            return
        except Failed as exc:
            await store.finish_writeback(conn, row["id"], "failed", str(exc)[:1000], attempts)
            metrics.WRITEBACKS.labels(platform, row["action"], "failed").inc()
            log.error("%s refused the write-back of %s for %s: %s; fix the channel (credentials,"
                      " sku_map) or the order on the platform, then `shopkeeper channels retry"
                      " %s`", platform, row["action"], row["order_key"], exc, cfg.store)
            return
        except Skipped as exc:
            await store.finish_writeback(conn, row["id"], "skipped", str(exc)[:1000], attempts)
            metrics.WRITEBACKS.labels(platform, row["action"], "skipped").inc()
            return
        if isinstance(sent, Submitted):
            # Kept in this transaction, with the job's lock still held; a crash before the
            # commit leaves the job pending without the feed id: sent again, the refund's
            # adjustment ids make Amazon refuse it as a duplicate (read as already applied).
            await store.feed_submitted(conn, row["id"], sent.feed_id, sent.feed_document_id,
                                       sent.feed_type, attempts, _feed_delay(cfg, 0))
            metrics.WRITEBACKS.labels(platform, row["action"], "submitted").inc()
            log.info("%s write-back of %s for %s submitted as feed %s (%s); its processing"
                     " report is read when Amazon has processed it", platform, row["action"],
                     row["order_key"], sent.feed_id, sent.feed_type)
            return
        await store.finish_writeback(conn, row["id"], "done", None, attempts)
        metrics.WRITEBACKS.labels(platform, row["action"], "done").inc()
        log.info("%s write-back of %s for %s done", platform, row["action"], row["order_key"])


def _feed_delay(cfg: ChannelConfig, checks: int) -> float:
    """Seconds to the next look at a submitted feed: the channel's `feed_poll_seconds` (or the
    setting), growing with the looks already made, at most 10 minutes."""
    base = float(cfg.options.get("feed_poll_seconds") or FEED_POLL_SECONDS)
    return min(600.0, base * (1 + checks // 5))


async def _check_feed(conn: Any, client: httpx.AsyncClient, cfg: ChannelConfig, row: Any,
                      job: Job) -> None:
    """A submitted job: `getFeed` and, once processed, its report decide done or failed.
    Faults of the look itself keep the job submitted (a refusal of it fails the job for an
    operator); the feed is never submitted again from here."""
    feed_id, checks = str(row["feed_id"]), int(row["feed_checks"])
    platform, action, order = cfg.platform, row["action"], row["order_key"]
    retry_cmd = f"`shopkeeper channels retry {cfg.store}`"
    try:
        check = await amazon.check_feed(client, cfg, job, feed_id)
    except Retry as exc:
        delay = max(exc.after or 0.0, min(600.0, backoff(checks + 1, BACKOFF_BASE)))
        await store.feed_checked(conn, row["id"], None, f"getFeed: {exc}"[:1000], delay)
        log.warning("cannot look at feed %s of %s for %s now (%s); looking again in %.0fs",
                    feed_id, action, order, exc, delay)
        return
    except Failed as exc:
        await store.finish_writeback(conn, row["id"], "failed", f"feed {feed_id}: {exc}"[:1000],
                                     row["attempts"])
        metrics.WRITEBACKS.labels(platform, action, "failed").inc()
        log.error("Amazon refused to show feed %s of %s for %s: %s; fix the channel's"
                  " credentials, then %s (the feed is looked at again, not resent)", feed_id,
                  action, order, exc, retry_cmd)
        return
    if check.state == "submitted":
        since = row["submitted_at"] or datetime.now(UTC)
        age = (datetime.now(UTC) - since).total_seconds()
        if age > FEED_MAX_SECONDS:
            why = (f"feed {feed_id} still {check.status} after {age / 3600:.1f} h: Amazon has"
                   " not processed it")
            await store.finish_writeback(conn, row["id"], "failed", why, row["attempts"],
                                         feed_status=check.status)
            metrics.WRITEBACKS.labels(platform, action, "failed").inc()
            log.error("%s of %s: %s; check the feed in Seller Central, then %s to look again",
                      action, order, why, retry_cmd)
            return
        await store.feed_checked(conn, row["id"], check.status, None,
                                 _feed_delay(cfg, checks + 1))
        return
    feed_type = str(row["feed_type"] or "")
    if check.state == "done":
        outcome = "already_applied" if check.duplicate else "done"
        await store.finish_writeback(conn, row["id"], "done", None, row["attempts"],
                                     note=check.text, feed_status=check.status)
        metrics.WRITEBACKS.labels(platform, action, "done").inc()
        metrics.FEEDS.labels(platform, feed_type, outcome).inc()
        if check.duplicate:
            log.warning("Amazon order %s: feed %s (%s of %s) was refused as a duplicate: the"
                        " same refund had gone through before (a resend after a crash); the"
                        " write-back is done, nothing to do. %s", job.platform_order_id,
                        feed_id, action, order, check.text)
        else:
            log.info("Amazon order %s: feed %s (%s of %s) processed%s", job.platform_order_id,
                     feed_id, action, order, f"; {check.text}" if check.text else "")
        return
    outcome = {"FATAL": "fatal", "CANCELLED": "cancelled"}.get(check.status, "failed")
    await store.finish_writeback(conn, row["id"], "failed", check.text, row["attempts"],
                                 feed_status=check.status)
    metrics.WRITEBACKS.labels(platform, action, "failed").inc()
    metrics.FEEDS.labels(platform, feed_type, outcome).inc()
    log.error("Amazon did not apply the %s of order %s (%s) from feed %s: %s. Fix the cause"
              " (the order or amount on Amazon, the channel's sku/items), then %s to send it"
              " again, or settle it in Seller Central", action, job.platform_order_id, order,
              feed_id, check.text, retry_cmd)


# --- marketplace poller -------------------------------------------------------------------------
async def poll_forever(runtime: Runtime, client: httpx.AsyncClient) -> None:
    """Each store's poll is its own task: a store waiting on its rate limit (Amazon's getOrders
    refills one request a minute) never holds up another store."""
    next_run: dict[str, float] = {}
    failures: dict[str, int] = {}
    running: dict[str, asyncio.Task[int]] = {}
    # A store's poll holds a connection for its advisory lock: at most this many at once, so
    # that the pool always has room for webhooks, the consumer and /readyz.
    slots = asyncio.Semaphore(POLL_CONCURRENCY)
    channels: list[ChannelConfig] = []
    read_at = float("-inf")
    try:
        while True:
            try:
                if time.monotonic() - read_at >= CHANNELS_REREAD_SECONDS:
                    async with runtime.pool.acquire() as conn:
                        channels = await store.channels_of(conn, "amazon")
                    read_at = time.monotonic()
                for cfg in channels:
                    if cfg.options.get("paused"):
                        continue
                    task = running.get(cfg.store)
                    if task and not task.done():
                        continue
                    if task and task.done():
                        del running[cfg.store]
                        failed = bool(STATE.polls.get(cfg.store, {}).get("last_error"))
                        failures[cfg.store] = failures.get(cfg.store, 0) + 1 if failed else 0
                        every = float(cfg.options.get("poll_seconds") or POLL_SECONDS)
                        # A failing store (platform away, credentials revoked) backs off.
                        next_run[cfg.store] = time.monotonic() + max(
                            every, min(300.0, every * 2 ** failures[cfg.store]))
                    if time.monotonic() < next_run.get(cfg.store, 0):
                        continue
                    running[cfg.store] = asyncio.create_task(
                        _logged_poll(runtime, client, cfg, slots))
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("marketplace poller round failed; retrying in 5 s")
                await asyncio.sleep(5)
            await asyncio.sleep(0.5)
    finally:
        for task in running.values():
            task.cancel()


async def _logged_poll(runtime: Runtime, client: httpx.AsyncClient, cfg: ChannelConfig,
                       slots: asyncio.Semaphore) -> int:
    try:
        async with slots:
            return await poll_store(runtime, client, cfg)
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        STATE.polls.setdefault(cfg.store, {})["last_error"] = f"{type(exc).__name__}: {exc}"
        log.exception("Amazon poll of store %s failed; the cursor stays and the next poll reads"
                      " again from there", cfg.store)
        return 0


async def poll_store(runtime: Runtime, client: httpx.AsyncClient, cfg: ChannelConfig) -> int:
    """One listing of a store's orders since its cursor, under the store's advisory lock (one
    instance polls a store at a time). Each order is committed to the inbox as it is read; the
    cursor moves to the newest LastUpdateDate seen once the whole listing is through."""
    async with runtime.pool.acquire() as lock_conn:
        if not await lock_conn.fetchval("SELECT pg_try_advisory_lock(hashtext($1))",
                                        f"channels-poll:{cfg.store}"):
            return 0
        try:
            return await _poll(runtime, client, cfg)
        finally:
            await lock_conn.execute("SELECT pg_advisory_unlock(hashtext($1))",
                                    f"channels-poll:{cfg.store}")


async def _poll(runtime: Runtime, client: httpx.AsyncClient, cfg: ChannelConfig) -> int:
    api = amazon.session(client, cfg)
    lookback = float(cfg.options.get("initial_lookback_hours") or 24)
    async with runtime.pool.acquire() as conn:
        since = await store.cursor(conn, cfg.store,
                                   datetime.now(UTC) - timedelta(hours=lookback))
    newest, seen = since, 0
    state = STATE.polls.setdefault(cfg.store, {})
    state["last_run_at"] = datetime.now(UTC).isoformat()
    try:
        async for page in api.orders(since):
            for order in page:
                oid = str(order.get("AmazonOrderId") or "")
                updated = str(order.get("LastUpdateDate") or "")
                delivery = f"{oid}@{updated}"
                items: list[dict[str, Any]] = []
                if order.get("OrderStatus") not in ("Canceled", "Pending",
                                                    "PendingAvailability"):
                    items = await api.items(oid)
                inbound, event = inbox.map_delivery(
                    cfg, delivery, functools.partial(amazon.inbound, cfg, order, items))
                async with UnitOfWork.begin(runtime.pool, "channels") as uow:
                    await inbox.accept(uow, cfg, delivery, "getOrders", inbound, event,
                                       json.dumps({"order": order, "items": items}).encode())
                seen += 1
                if updated:
                    newest = max(newest, amazon.parse_time(updated))
    except (Retry, Failed) as exc:
        metrics.POLLS.labels("amazon", "error").inc()
        state.update(last_error=str(exc)[:300])
        log.warning("Amazon poll of store %s stopped: %s; the cursor stays at %s and the next"
                    " poll reads again from there", cfg.store, exc, since.isoformat())
        async with runtime.pool.acquire() as conn:
            await store.poll_done(conn, cfg.store, None, seen, str(exc)[:500])
        return seen
    metrics.POLLS.labels("amazon", "ok").inc()
    state.update(last_ok_at=datetime.now(UTC).isoformat(), last_error=None,
                 cursor=newest.isoformat(), token_refreshes=api.refreshes)
    async with runtime.pool.acquire() as conn:
        await store.poll_done(conn, cfg.store, newest, seen, None)
    return seen
