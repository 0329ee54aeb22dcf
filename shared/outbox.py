"""Transactional outbox: events are rows written in the handler's transaction; one relay per
service publishes them with an idempotent producer and marks them sent.

Why not "publish rows with id > last published": ids are allocated at insert but rows become
visible at commit, so a transaction that commits late would be skipped. The relay publishes rows
not yet marked sent, oldest first. Marking sent can fail after a successful publish (a crash, the
database away): the rows are published again and consumers dedupe by event_id; a duplicate,
never a loss.

Order per key is id order (the order of insertion). "Unsent rows by id" alone does not give it:
a row whose transaction commits late is invisible while later rows of its key commit and are
published, and then it is published after them (found by the chaos scenario "late outbox row").
So a writer holds a shared transaction-level advisory lock on its key's bucket (a hash of the
key, 1024 buckets per schema) from before its row gets an id until it commits; the relay
publishes a bucket's rows only when it can take that lock exclusively, i.e. no writer of the
bucket is in flight, and reads them after taking it. A bucket with a writer in flight waits for
the next round (its commit wakes the relay). Buckets bound the locks a transaction holds, at the
price of sometimes holding back a key that merely shares a bucket with a busy one.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from typing import Any

import asyncpg
from aiokafka import AIOKafkaProducer
from aiokafka.errors import (
    CorruptRecordException,
    InvalidMessageError,
    InvalidTimestampError,
    KafkaError,
    MessageSizeTooLargeError,
    RecordListTooLargeError,
    RecordTooLargeError,
    UnsupportedForMessageFormatError,
)
from tenacity import AsyncRetrying, RetryCallState, retry_if_not_exception_type, stop_never

from . import metrics
from .db import TRANSIENT_DB_ERRORS, Conn
from .retry import jittered

log = logging.getLogger(__name__)


# The bucket of a row's key is `outbox_bucket(key)` (shared/migrations/0001_outbox_claim.sql, the
# one place of the rule). The two-int form of the advisory lock functions keeps these locks apart
# from the relay's leader lock.

# One row: the bucket's shared lock is taken before the row's id is allocated (the CTE runs
# first) and held until commit.
INSERT = (
    "WITH held AS (SELECT pg_advisory_xact_lock_shared(hashtext(current_schema()),"
    " outbox_bucket($2::text))) "
    "INSERT INTO outbox (topic, key, value, headers) SELECT $1, $2, $3, $4::jsonb FROM held"
)

# Many rows in one statement: every bucket's shared lock first (the aggregate reads them all
# before the join yields a row, and the sort takes every row before the first id is drawn),
# then ids in publish order (ORDER BY the ordinality); the statement-level NOTIFY fires once.
INSERT_MANY = (
    "WITH held AS MATERIALIZED (SELECT count(pg_advisory_xact_lock_shared("
    "hashtext(current_schema()), b)) AS locked FROM (SELECT DISTINCT outbox_bucket(k)"
    " AS b FROM unnest($2::text[]) AS keys(k)) buckets) "
    "INSERT INTO outbox (topic, key, value, headers) SELECT u.t, u.k, u.v, u.h::jsonb"
    " FROM held, unnest($1::text[], $2::text[], $3::bytea[], $4::text[])"
    " WITH ORDINALITY AS u(t, k, v, h, n) ORDER BY u.n"
)


# The broker's default limit (message.max.bytes) is 1 MiB for a whole batch; a record of up to this
# many bytes (key, value and headers) fits with room for the batch's own overhead.
MAX_RECORD_BYTES = 1_000_000

# Produce errors about the record itself: sending it again can never succeed. Anything else
# (broker away, leader moving, timeouts, authorisation while an operator fixes it) is retried.
REFUSED_FOR_GOOD: tuple[type[BaseException], ...] = (
    MessageSizeTooLargeError, RecordListTooLargeError, RecordTooLargeError, InvalidMessageError,
    CorruptRecordException, InvalidTimestampError, UnsupportedForMessageFormatError,
)


def refused_for_good(exc: BaseException) -> bool:
    return isinstance(exc, REFUSED_FOR_GOOD)


def record_size(key: str | bytes | None, value: bytes, headers: dict[str, str] | None) -> int:
    size = len(value) + len(key.encode() if isinstance(key, str) else key or b"")
    return size + sum(len(k.encode()) + len(str(v).encode()) for k, v in (headers or {}).items())


# A row the broker would refuse is written already quarantined (the handler's transaction still
# commits: the order's other effects stand, and the row is kept for an operator to see).
INSERT_QUARANTINED = (
    "INSERT INTO outbox (topic, key, value, headers, quarantined_at, error)"
    " VALUES ($1, $2, $3, $4::jsonb, now(), $5)"
)


def new_producer(bootstrap: str, client_id: str) -> AIOKafkaProducer:
    """acks=all and idempotence on: aiokafka's defaults (acks=1, no idempotence) can lose or
    double a write when a broker fails over. No linger: the relay hands a round's rows to the
    producer without yielding, so they batch anyway, and a linger only delayed every hop."""
    return AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        client_id=client_id,
        acks="all",
        enable_idempotence=True,
        linger_ms=0,
        request_timeout_ms=30000,
        max_batch_size=256 * 1024,
    )


class ProducerHolder:
    """One producer per process, recreated after errors: aiokafka's idempotent producer can get
    stuck on OutOfOrderSequenceNumber after a broker blip (aiokafka #1017)."""

    def __init__(self, bootstrap: str, client_id: str) -> None:
        self.bootstrap = bootstrap
        self.client_id = client_id
        self._producer: AIOKafkaProducer | None = None
        self._lock = asyncio.Lock()

    async def get(self) -> AIOKafkaProducer:
        async with self._lock:
            if self._producer is None:
                producer = new_producer(self.bootstrap, self.client_id)
                try:
                    await producer.start()
                except BaseException:
                    with contextlib.suppress(Exception):
                        await producer.stop()
                    raise
                self._producer = producer
            return self._producer

    async def reset(self) -> None:
        async with self._lock:
            producer, self._producer = self._producer, None
        if producer is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(producer.stop(), 10)

    @property
    def connected(self) -> bool:
        return self._producer is not None

    async def send(self, topic: str, key: str | None, value: bytes,
                   headers: list[tuple[str, bytes]] | None = None) -> None:
        producer = await self.get()
        await producer.send_and_wait(
            topic, value=value, key=key.encode() if key is not None else None, headers=headers
        )


class OutboxRelay:
    """Publishes one service's outbox. Every instance runs one; an advisory lock lets only one
    publish at a time, so the order of rows for a key is the order of publication."""

    BATCH = 500

    def __init__(self, pool: asyncpg.Pool, dsn: str, schema: str, producer: ProducerHolder,
                 poll_seconds: float = 1.0, mark_after_seconds: float = 0.05) -> None:
        self.pool = pool
        self.dsn = dsn
        self.schema = schema
        self.producer = producer
        self.poll_seconds = poll_seconds
        self.mark_after_seconds = mark_after_seconds
        self.is_leader = False
        self.last_error: str | None = None
        self.quarantined = 0  # rows refused for good, counted every 10 s by the active relay
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        # Rows published and acknowledged, marked sent by the next round's claim (one round trip
        # per round, shared/migrations/0007_outbox_claim_marks_sent.sql) when it comes within
        # `mark_after_seconds`, else on their own, and when leading ends.
        self._acked: list[int] = []

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"outbox-relay-{self.schema}")

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task

    async def _run(self) -> None:
        """Lead for as long as the instance runs: whatever interrupts leading (Postgres or Kafka
        away, the lock's connection dropped) is logged and leading starts again after a jittered
        wait (shared/retry.py), so relays of many instances do not come back in lockstep."""
        async for attempt in AsyncRetrying(
                retry=retry_if_not_exception_type(asyncio.CancelledError), stop=stop_never,
                wait=jittered(0.5, 10.0), before_sleep=self._interrupted):
            with attempt:
                await self._lead()

    async def _interrupted(self, state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome is not None else None
        wait = state.next_action.sleep if state.next_action is not None else 0.0
        self.is_leader = False
        self.last_error = f"{type(exc).__name__}: {exc}"
        log.warning("outbox relay of %s interrupted: %s; retrying in %.1fs",
                    self.schema, self.last_error, wait)
        if isinstance(exc, KafkaError):
            await self.producer.reset()

    async def _lead(self) -> None:
        # A dedicated connection: the advisory lock and LISTEN live as long as it does.
        conn = await asyncpg.connect(self.dsn, server_settings={"search_path": self.schema})
        try:
            while not await conn.fetchval(
                "SELECT pg_try_advisory_lock(hashtext($1))", f"outbox:{self.schema}"
            ):
                self.is_leader = False
                await asyncio.sleep(2.0)
            self.is_leader = True
            await conn.add_listener(f"outbox_{self.schema}", self._on_notify)
            log.info("outbox relay of %s is the active one", self.schema)
            counted = 0.0
            while True:
                if time.monotonic() - counted > 10:
                    self.quarantined = await count_quarantined(conn)
                    metrics.OUTBOX_QUARANTINED.set(self.quarantined)
                    counted = time.monotonic()
                # Cleared before reading, not after: a commit notified while a round reads and
                # publishes (a row it could not see yet, a bucket it skipped) wakes the next
                # round at once instead of waiting for the poll.
                self._wake.clear()
                sent = await self.publish_pending(conn)
                self.last_error = None
                if sent < self.BATCH:
                    # What was published is marked by the next round's claim when one comes
                    # soon (a busy shop: one statement a round), else now: an idle relay
                    # leaves nothing looking unpublished (`shopkeeper verify`'s "drained").
                    if self._acked and not await self._woken(self.mark_after_seconds):
                        await self._mark_acked(conn)
                    if not self._wake.is_set():
                        await self._woken(self.poll_seconds)
        finally:
            self.is_leader = False
            with contextlib.suppress(Exception):
                if self._acked:  # a stop or a fault between rounds: spare the next leader
                    await asyncio.wait_for(self._mark_acked(conn), 5)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(conn.close(), 5)

    async def _mark_acked(self, conn: Conn) -> None:
        await conn.execute("UPDATE outbox SET sent_at = now() WHERE id = ANY($1::bigint[])"
                           " AND sent_at IS NULL", self._acked)
        self._acked = []

    async def _woken(self, seconds: float) -> bool:
        """Wait for a notification, at most `seconds`; whether one came."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), seconds)
        return self._wake.is_set()

    def _on_notify(self, *_: Any) -> None:
        self._wake.set()

    async def publish_pending(self, conn: Conn) -> int:
        # One round trip: `outbox_claim` marks sent what the previous round published, locks
        # the buckets with no writer in flight and reads their oldest unsent rows in a later
        # snapshot (shared/migrations/0001_outbox_claim.sql, 0007); the locks end with this
        # statement's transaction, before anything is published.
        rows = await conn.fetch("SELECT * FROM outbox_claim($1, $2::bigint[])", self.BATCH,
                                self._acked)
        self._acked = []
        self._observe_backlog(rows)
        if not rows:
            return 0
        producer = await self.producer.get()
        futures: list[asyncio.Future[Any]] = []
        for r in rows:
            headers = [(k, str(v).encode()) for k, v in json.loads(r["headers"]).items()]
            key = r["key"].encode() if r["key"] is not None else None
            try:
                futures.append(await producer.send(r["topic"], value=bytes(r["value"]), key=key,
                                                   headers=headers or None))
            except REFUSED_FOR_GOOD as exc:  # refused by the client before it is sent
                futures.append(_failed(exc))
        # The idempotent producer keeps each partition's order; wait for every ack before
        # marking anything sent.
        results = await asyncio.gather(*futures, return_exceptions=True)
        retry = next((e for e in results if isinstance(e, BaseException)
                      and not refused_for_good(e)), None)
        if retry is not None:  # a fault that passes: the whole round again (consumers dedupe)
            raise retry
        sent = [r for r, res in zip(rows, results, strict=True)
                if not isinstance(res, BaseException)]
        refused = [(r, res) for r, res in zip(rows, results, strict=True)
                   if isinstance(res, BaseException)]
        for r in sent:
            metrics.EVENTS_PUBLISHED.labels(r["topic"]).inc()
        # Marked sent by the next round's claim: one statement per round, not two. Until then
        # they are unsent to anyone who asks (`mark_after_seconds` when the relay goes idle).
        self._acked = [r["id"] for r in sent]
        try:
            for r, problem in refused:
                await self.quarantine(conn, r, problem)
                self.quarantined += 1
        except TRANSIENT_DB_ERRORS:
            log.warning("published %d outbox rows of %s but could not quarantine %d refused for"
                        " good; they will be published again and deduplicated by consumers",
                        len(rows), self.schema, len(refused))
            raise
        return len(rows)

    async def quarantine(self, conn: Conn, row: asyncpg.Record, exc: BaseException) -> None:
        """Keep a row the broker refused for good aside, so that the rest flows. Later rows of
        the same key are published: holding the key back would stop that order for good, for
        an event that can never be published as it is; its consumers miss this one event, and
        the operator sees it (metric, alert, /readyz, `shopkeeper outbox quarantined`)."""
        error = f"{type(exc).__name__}: {exc}"[:1000]
        await conn.execute("UPDATE outbox SET quarantined_at = now(), error = $2 WHERE id = $1",
                           row["id"], error)
        log.error("outbox row %d of %s (topic %s, key %s, %d bytes) refused by Kafka for good"
                  " and quarantined: %s. The rest flows; inspect it with `shopkeeper outbox"
                  " quarantined`", row["id"], self.schema, row["topic"], row["key"],
                  len(row["value"]), error)

    def _observe_backlog(self, rows: list[asyncpg.Record]) -> None:
        metrics.OUTBOX_PENDING.set(len(rows))
        if rows:
            oldest = rows[0]["created_at"].timestamp()
            metrics.OUTBOX_OLDEST_SECONDS.set(max(0.0, time.time() - oldest))
        else:
            metrics.OUTBOX_OLDEST_SECONDS.set(0)


def _failed(exc: BaseException) -> asyncio.Future[Any]:
    future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
    future.set_exception(exc)
    return future


async def quarantined(conn: Conn, limit: int = 100) -> list[dict[str, Any]]:
    """The quarantined rows, newest first, without their values (which may be large)."""
    rows = await conn.fetch(
        "SELECT id, topic, key, length(value) AS size, created_at, quarantined_at, error"
        " FROM outbox WHERE quarantined_at IS NOT NULL ORDER BY id DESC LIMIT $1", limit)
    return [dict(r) for r in rows]


async def count_quarantined(conn: Conn) -> int:
    return int(await conn.fetchval(
        "SELECT count(*) FROM outbox WHERE quarantined_at IS NOT NULL"))


async def release(conn: Conn, row_id: int) -> bool:
    """Put a quarantined row back in line (e.g. after raising the broker's size limit)."""
    result = await conn.execute(
        "UPDATE outbox SET quarantined_at = NULL, error = NULL"
        " WHERE id = $1 AND quarantined_at IS NOT NULL", row_id)
    return result.endswith(" 1")


async def prune_sent(pool: asyncpg.Pool, older_than_hours: float = 24) -> int:
    """Delete published rows older than `older_than_hours` (kept a while for audit and replay)."""
    result = await pool.execute(
        "DELETE FROM outbox WHERE sent_at < now() - make_interval(secs => $1)",
        older_than_hours * 3600)
    return int(result.split()[-1])


async def prune_forever(pool: asyncpg.Pool, retention_hours: float,
                        every_seconds: float = 3600.0) -> None:
    """`prune_sent` every hour (a background task of every instance; deleting is idempotent)."""
    while True:
        await asyncio.sleep(every_seconds)
        try:
            n = await prune_sent(pool, retention_hours)
            if n:
                log.info("deleted %d outbox rows published more than %.0f h ago", n,
                         retention_hours)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # Postgres away: the next hour tries again
            log.warning("could not prune the outbox (%s: %s); retrying in an hour",
                        type(exc).__name__, exc)
