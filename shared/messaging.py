"""The consumer side of docs/design.md "Every handler, the same way".

One aiokafka consumer per instance in the service's group, over all the topics it consumes,
with manual commits and a poll loop of our own (docs/messaging.md says why not FastStream's
subscriber: its ack policies commit too early (ACK_FIRST), commit after a failure (ACK,
REJECT_ON_ERROR) or re-read a poison message forever (NACK_ON_ERROR), and its batch poll had to be
patched). A run of records is handled in order and committed by exact offsets after its
transaction:

1. parse with pydantic; invalid -> the subscription's `on_invalid` (e.g. reject the order as
   `malformed`) in a transaction, or the raw value to `{topic}.dlq` with the contract's headers
   (docs/contract.md);
2. one transaction: inbox insert (a duplicate ends here), the handler's state changes, its outbox
   rows;
3. commit the offset.

Transient faults (Postgres or Kafka away) retry with backoff forever without committing; any other
error is retried `max_attempts` times and then the message goes to the DLQ and is committed.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import json
import logging
import re
import time
import traceback
import uuid
from collections import deque
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Generic, TypeVar

import asyncpg
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.errors import CommitFailedError, IllegalStateError, KafkaError
from pydantic import ValidationError

from . import metrics, outbox
from .contracts import (
    Event,
    OrderCancelled,
    OrderCancelRequested,
)
from .db import Conn, is_transient_db_error, prune_inbox
from .locks import EXCLUSIVE, LockDeclaration, RunLocks, take
from .logging import log_context
from .retry import Backoff
from .topics import Topic, dlq_name
from .uow import UnitOfWork

log = logging.getLogger(__name__)

# How long a poll waits for the first record; it returns at once when one is there.
POLL_MS = 500
# Records older than this when fetched: the consumer is behind, and which partitions still hold
# records is asked of the broker rather than taken from the last fetches (`Consumer._behind`).
FRESH_ENDS_AFTER_MS = 200
# A fetch's high-water mark is dated when aiokafka read the response, which can be this much
# after the broker wrote it (the event loop busy with a run): `Consumer._unheard`.
HEARD_SLACK_MS = 10
# The broker's long poll for a fetch with no data yet (aiokafka's default is 500 ms).
FETCH_MAX_WAIT_MS = 100
# A consumer with records still to read whose newest handled record is older than this is
# re-reading the past (after a rewind, a restart after downtime): `Consumer.catching_up`.
CATCH_UP_SECONDS = 10.0
# How long records wait for a partition that is known to hold earlier ones but does not deliver
# them (its broker away): then they go on without it (`StreamTime`).
MAX_IDLE_SECONDS = 3.0
# What a question to the broker about offsets (`Consumer._behind`, `_unheard`) may end in: no
# answer in time, the broker away, the partition revoked meanwhile. The fetched marks stand then.
UNANSWERED = (TimeoutError, KafkaError, IllegalStateError, AssertionError)

E = TypeVar("E", bound=Event)



def is_transient(exc: BaseException) -> bool:
    """An infrastructure fault that passes: retried with backoff for as long as it lasts, the
    offset not committed, never counted toward the DLQ. Postgres by SQLSTATE (shared.db); Kafka
    unless the broker refused the record itself."""
    if is_transient_db_error(exc):
        return True
    return isinstance(exc, KafkaError) and not outbox.refused_for_good(exc)


def clamp_future(event: E, now: datetime, max_skew: timedelta) -> E:
    """Last-writer-wins compares producers' `occurred_at`: one dated far ahead would win over
    every later real update. Ahead of `now` by more than `max_skew`, it is clamped to `now`, the
    time received (the same event, otherwise unchanged)."""
    if event.occurred_at <= now + max_skew:
        return event
    return event.model_copy(update={"occurred_at": now})





RunHandler = Callable[[UnitOfWork, list[Any]], Awaitable[None]]
"""`(uow, events)`: the consecutive events of one topic in a run, duplicates removed, in order."""
InvalidHandler = Callable[[UnitOfWork, "RawMessage", str, str], Awaitable[bool]]
"""`(uow, raw, code, message)` for a value that cannot be handled (`malformed`: it breaks the
contract, `too_large`: over the topic's size limit); True when it took care of it (e.g. rejected
the order the value names), False to send the value to the DLQ. Events it publishes are caused
by the record's coordinates (`topic/partition/offset`)."""


@dataclass(frozen=True)
class RawMessage:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...] = ()

    @classmethod
    def of(cls, record: ConsumerRecord[Any, Any]) -> RawMessage:
        return cls(record.topic, record.partition, record.offset, record.key, record.value,
                   tuple(record.headers or ()))

    def json(self) -> dict[str, Any] | None:
        """The value as a JSON object, or None when it is not one."""
        try:
            value = json.loads(self.value or b"")
        except (ValueError, UnicodeDecodeError, RecursionError):
            return None
        return value if isinstance(value, dict) else None


@dataclass
class Subscription(Generic[E]):
    topic: Topic
    handler: RunHandler
    on_invalid: InvalidHandler | None = None
    # What the handler will lock (shared/locks.py), for a service with a run lock; None: all.
    locks: LockDeclaration | None = None
    # Which events the handler acts on, from the event alone; None: every event. The others are
    # counted ("skipped") and committed with the run, without a transaction of their own.
    wanted: Callable[[Any], bool] | None = None


@dataclass
class Handlers:
    """A service's subscriptions, declared in its handlers.py with `@handlers.on(topic)`:

        @handlers.on(topics.ORDERS_PLACED)
        async def order_placed(uow: UnitOfWork, events: list[OrderPlaced]) -> None: ...

    A handler gets the consecutive events of its topic in a run (a run of one when a message is
    handled alone: the same code path), duplicates already removed by the inbox.

    With `run_lock` (the name of the service's serial lock), every run first takes what its
    subscriptions declare with `locks=` (shared/locks.py: one lock order per run, so two
    instances' runs never deadlock); a subscription that declares nothing runs alone."""

    subscriptions: dict[str, Subscription[Any]] = field(default_factory=dict)
    run_lock: str | None = None
    # True for a service whose handlers leave the same state whatever the order in which events
    # of different topics and partitions come (a read model: analytics). Its consumer hands over
    # everything fetched at once, without waiting for partitions that are behind (StreamTime),
    # and gives each handler all of its topic's events in the run (one segment per topic).
    commutative: bool = False

    def on(self, topic: Topic, *, on_invalid: InvalidHandler | None = None,
           locks: LockDeclaration | None = None, wanted: Callable[[Any], bool] | None = None
           ) -> Callable[[RunHandler], RunHandler]:
        """`wanted(event)`: whether the handler acts on the event, decided from the event alone
        (its status, say), never from state: the events it does not want are not handed to it,
        not written to the inbox (an event with no effect has nothing to deduplicate), and a
        run of only such events opens no transaction (docs/messaging.md "Events a handler
        does not want")."""
        def register(fn: RunHandler) -> RunHandler:
            self.subscriptions[topic.name] = Subscription(topic, fn, on_invalid, locks, wanted)
            return fn
        return register

    def wanted(self, run: list[tuple[RawMessage, Event]]
               ) -> tuple[list[tuple[RawMessage, Event]], dict[str, int]]:
        """The run less the events their subscription does not want, and how many of those per
        topic."""
        kept: list[tuple[RawMessage, Event]] = []
        skipped: dict[str, int] = {}
        for raw, event in run:
            want = self.subscriptions[raw.topic].wanted
            if want is None or want(event):
                kept.append((raw, event))
            else:
                skipped[raw.topic] = skipped.get(raw.topic, 0) + 1
        return kept, skipped

    def locks_of(self, segments: list[tuple[str, list[Any]]]) -> RunLocks:
        """What a run of these segments (topic, events) will lock, all segments together."""
        locks = RunLocks()
        for topic, events in segments:
            declare = self.subscriptions[topic].locks
            locks |= declare(events) if declare is not None else EXCLUSIVE
        return locks

    async def lock_run(self, conn: Conn, segments: list[tuple[str, list[Any]]]) -> None:
        """Before a run's handlers: take what its segments will lock, in the one order (nothing
        for a service without `run_lock`)."""
        if self.run_lock is not None and segments:
            await take(conn, self.run_lock, self.locks_of(segments))

    async def lock_alone(self, conn: Conn) -> None:
        """Before a transaction that has no events to declare from (a refused value's
        `on_invalid`): it runs alone among the service's runs (nothing without `run_lock`)."""
        if self.run_lock is not None:
            await take(conn, self.run_lock, EXCLUSIVE)


class PoisonMessage(Exception):
    """Raised by a handler for input that parses but can never be handled: straight to DLQ."""


class Refused(Exception):
    """A value the consumer cannot take: `code` is `malformed` or `too_large`; `cause` the
    parser's error, if any (its type goes in the DLQ's x-error-type)."""

    def __init__(self, code: str, message: str, cause: BaseException | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.cause = cause

    @property
    def kind(self) -> str:
        return type(self.cause).__name__ if self.cause is not None else self.code


# JSON escapes of text Postgres cannot store: NUL, and UTF-16 surrogates (a lone one has no
# UTF-8 form; a valid pair decodes to one character and is kept as it is).
_UNSTORABLE_ESCAPE = re.compile(rb"\\u(?:0000|[dD][89a-fA-F][0-9a-fA-F]{2})")
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def storable(value: bytes) -> bytes:
    """The JSON value with every string made storable in Postgres: NUL removed, a lone surrogate
    replaced by U+FFFD. Values without such escapes (nearly all) are returned untouched."""
    if not _UNSTORABLE_ESCAPE.search(value):
        return value
    try:
        data = json.loads(value)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return value
    return json.dumps(_clean(data), ensure_ascii=False).encode("utf-8")


def _clean(value: Any) -> Any:
    if isinstance(value, str):
        return _LONE_SURROGATE.sub("\ufffd", value.replace("\x00", ""))
    if isinstance(value, list):
        return [_clean(v) for v in value]
    if isinstance(value, dict):
        return {_clean(k): _clean(v) for k, v in value.items()}
    return value


class StreamTime:
    """Records of every partition a consumer holds, handed over in timestamp order (the
    producer's send time), as Kafka Streams picks the next record by stream time.

    Why: a service's decisions can depend on the order of events across topics (a restock and
    an order for the same SKU; a shipment and the acceptance that caused it). Read live, records
    come about in the order they were sent; re-read after a rewind (docs/OPERATIONS.md, restore)
    a fetch returns whole runs of one partition, then of another. Handing over in timestamp
    order, and holding back records while a partition that has earlier ones unfetched (it is
    `behind`) has none buffered, makes a re-read take the decisions the first reading took, and
    so emit the same events with the same derived ids. Ties go by topic, partition, offset.

    Within a partition records stay in offset order (only heads are compared), so committing
    the highest offset handed over per partition is exact. A partition that has been behind
    with nothing buffered for `max_idle` seconds (its broker away) stops holding the others."""

    def __init__(self, max_idle: float = MAX_IDLE_SECONDS) -> None:
        self.max_idle = max_idle
        self.buffers: dict[TopicPartition, deque[ConsumerRecord[Any, Any]]] = {}
        self._waiting_since: dict[TopicPartition, float] = {}
        self._given_up: set[TopicPartition] = set()

    def add(self, batches: dict[TopicPartition, list[ConsumerRecord[Any, Any]]]) -> None:
        for tp, records in batches.items():
            buf = self.buffers.setdefault(tp, deque())
            for record in records:
                if buf and record.offset <= buf[-1].offset:
                    buf.clear()  # the partition was reset (a rebalance): its records anew
                buf.append(record)

    def retain(self, assigned: set[TopicPartition]) -> None:
        """Drop what is buffered for partitions no longer assigned (their new owner reads them
        again from the last commit)."""
        for tp in [tp for tp in self.buffers if tp not in assigned]:
            del self.buffers[tp]
        for tp in [tp for tp in self._waiting_since if tp not in assigned]:
            del self._waiting_since[tp]
        self._given_up &= assigned

    def first_offset(self, tp: TopicPartition) -> int | None:
        buf = self.buffers.get(tp)
        return buf[0].offset if buf else None

    def buffered(self) -> int:
        return sum(len(b) for b in self.buffers.values())

    def starved(self, behind: set[TopicPartition], now: float) -> set[TopicPartition]:
        """The partitions records must wait for: behind, nothing buffered, and not yet waited
        for `max_idle` seconds (after that they are given up on until they deliver again)."""
        empty = {tp for tp in behind if not self.buffers.get(tp)}
        for tp in [tp for tp in self._waiting_since if tp not in empty]:
            del self._waiting_since[tp]
            self._given_up.discard(tp)
        out = set()
        for tp in empty:
            since = self._waiting_since.setdefault(tp, now)
            if now - since < self.max_idle:
                out.add(tp)
            elif tp not in self._given_up:
                self._given_up.add(tp)
                log.info("%s[%d] has earlier records but delivered none for %.0f s; the other"
                         " partitions go on without it", tp.topic, tp.partition, now - since)
        return out

    def take(self, behind: set[TopicPartition], limit: int, now: float | None = None
             ) -> list[ConsumerRecord[Any, Any]]:
        """Up to `limit` records in timestamp order; none while a partition of `behind` (it has
        records not fetched yet) is starved. Stops where a partition that is behind runs out of
        buffered records: its next one may be earlier than the rest."""
        now = time.monotonic() if now is None else now
        if self.starved(behind, now):
            return []
        heads = [(_order(buf[0]), tp) for tp, buf in self.buffers.items() if buf]
        heapq.heapify(heads)
        out: list[ConsumerRecord[Any, Any]] = []
        while heads and len(out) < limit:
            _, tp = heapq.heappop(heads)
            buf = self.buffers[tp]
            out.append(buf.popleft())
            if buf:
                heapq.heappush(heads, (_order(buf[0]), tp))
            elif tp in behind and tp not in self._given_up:
                break
        return out


def _order(record: ConsumerRecord[Any, Any]) -> tuple[int, str, int, int]:
    return (record.timestamp, record.topic, record.partition, record.offset)


class Consumer:
    """One aiokafka consumer per instance, in the service's group, over every topic the service
    consumes; its poll loop is ours (docs/messaging.md "Why our own poll loop"): getmany returns
    as soon as a record is there, a run of up to `batch_size` records is handled in one
    transaction (`process_batch`) and committed by exact offsets afterwards."""

    def __init__(self, service: str, bootstrap: str, pool: asyncpg.Pool,
                 producer: outbox.ProducerHolder, handlers: Handlers, *, max_attempts: int = 5,
                 stall_seconds: float = 60.0, batch_size: int = 100,
                 fetch_wait_ms: int = 0, max_clock_skew_seconds: float = 300.0,
                 commit_interval_ms: int = 0) -> None:
        self.service = service
        self.pool = pool
        self.producer = producer
        self.handlers = handlers
        self.max_attempts = max_attempts
        self.batch_size = max(1, batch_size)
        self.stall_seconds = stall_seconds
        self.bootstrap = bootstrap.split(",")
        # Manual commits only (auto-commit would commit before our transaction); earliest, so
        # a new group reads what was published before it first started.
        self.options: dict[str, Any] = {
            "group_id": service, "client_id": f"shopkeeper-{service}",
            "enable_auto_commit": False, "auto_offset_reset": "earliest",
            "session_timeout_ms": 15000, "heartbeat_interval_ms": 3000,
            "max_poll_records": self.batch_size,
            # aiokafka keeps one fetch in flight per broker, and a partition left out of it (it
            # had records buffered then) waits for it to come back: a long poll of 500 ms (the
            # default) would hold the records `StreamTime` keeps waiting for that partition.
            "fetch_max_wait_ms": FETCH_MAX_WAIT_MS,
        }
        if fetch_wait_ms > 0:  # see Service.fetch_wait_ms
            self.options.update(fetch_min_bytes=1024 * 1024, fetch_max_wait_ms=fetch_wait_ms)
        self.consumer: AIOKafkaConsumer | None = None
        self._ends: AIOKafkaConsumer | None = None
        self._asked_ends: dict[TopicPartition, int] = {}  # the last ends asked (`_behind`)
        self._asked_at = 0  # when they were asked (ms, wall clock)
        # When a partition was last found to hold nothing unfetched older than then, by asking
        # the broker (`_unheard`, or the ends `_behind` asked) (ms, wall clock).
        self._heard: dict[TopicPartition, int] = {}
        self.last_progress = time.monotonic()
        self.lag: dict[str, int] = {}
        # The first offset per partition of the records being handled, until their run is over.
        self._in_flight: dict[TopicPartition, int] = {}
        # Offsets of handled runs not yet committed to Kafka, and when they last were: commits
        # are coalesced (`_commit_pending`, docs/messaging.md "Offset commits").
        self.commit_interval = commit_interval_ms / 1000
        self._pending: dict[TopicPartition, int] = {}
        self._last_commit = time.monotonic()
        self.stream = StreamTime()
        # The newest timestamp (ms) handed over, and whether records were left to read at the
        # last poll: `catching_up`.
        self.stream_time_ms = 0
        self._more_to_read = True
        self._lag_task: asyncio.Task[None] | None = None
        self._loop_task: asyncio.Task[None] | None = None
        self.started = False
        # The infrastructure fault being waited out (`_fault`), for /readyz.
        self.fault: str | None = None
        self.max_skew = timedelta(seconds=max_clock_skew_seconds)

    # -- lifecycle ---------------------------------------------------------------------------
    async def start(self) -> None:
        consumer = AIOKafkaConsumer(*self.handlers.subscriptions,
                                    bootstrap_servers=self.bootstrap, **self.options)
        try:
            await consumer.start()
        except BaseException:
            with contextlib.suppress(Exception):
                await consumer.stop()
            raise
        self.consumer = consumer
        self._ends = await self._ends_client()
        self.started = True
        self.last_progress = time.monotonic()
        self._loop_task = asyncio.create_task(self._run(), name=f"consume-{self.service}")
        self._lag_task = asyncio.create_task(self._watch_lag(), name=f"lag-{self.service}")

    async def stop(self) -> None:
        for task in (self._lag_task, self._loop_task):
            if task:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        # The runs handled since the last commit (their transactions committed): a restart or
        # the partitions' next owner then starts after them instead of re-reading them.
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._commit_pending(force=True), 5)
        for client in (self.consumer, self._ends):
            if client is not None:
                with contextlib.suppress(Exception):
                    await client.stop()
        self.consumer = None
        self._ends = None
        self.started = False

    async def _ends_client(self) -> AIOKafkaConsumer | None:
        """A client of its own (no group) to ask partitions' ends with (`_behind`): on the
        consumer's connection the request would queue behind its fetch, which the broker holds
        for up to the fetch long poll, and add that to every hop. None if it cannot start (the
        last high-water marks fetched are used then)."""
        client = AIOKafkaConsumer(bootstrap_servers=self.bootstrap, group_id=None,
                                  enable_auto_commit=False,
                                  client_id=f"shopkeeper-{self.service}-ends")
        try:
            await client.start()
        except Exception as exc:
            log.warning("could not start the client that reads partition ends (%s: %s); records"
                        " are ordered by the high-water marks fetched", type(exc).__name__, exc)
            with contextlib.suppress(Exception):
                await client.stop()
            return None
        return client

    async def _run(self) -> None:
        """Poll, handle, commit, for as long as the instance runs. Records go through
        `StreamTime`, so they are handed over in timestamp order across partitions (a re-read
        after a rewind takes the decisions the first reading took). Handling never raises
        (faults are retried inside, bad input is rejected or dead-lettered); a failing poll (the
        broker away) is retried here, and a stalled one is what /readyz's progress check is
        for."""
        assert self.consumer is not None
        stream = self.stream
        wanted: set[TopicPartition] = set()
        backoff = Backoff(0.5, 10.0)  # full jitter (shared/retry.py)
        while True:
            # Fetch only from the partitions the buffered records wait for; otherwise from all,
            # without waiting while records are buffered.
            wait = POLL_MS if wanted or not stream.buffered() else 0
            try:
                batches = await self.consumer.getmany(*wanted, timeout_ms=wait,
                                                      max_records=self.batch_size)
                backoff.reset()
            except asyncio.CancelledError:
                raise
            except KafkaError as exc:
                delay = backoff.next()
                log.warning("poll of %s failed (%s: %s); retrying in %.1fs", self.service,
                            type(exc).__name__, exc, delay)
                await asyncio.sleep(delay)
                continue
            assigned = set(self.consumer.assignment())
            stream.retain(assigned)
            stream.add({tp: rs for tp, rs in batches.items() if tp in assigned})
            if not stream.buffered():
                # Nothing to hand over, so nothing to order (for `catching_up`: anything left?)
                # Idle: what was handled is committed now rather than at the next interval.
                await self._commit_pending(force=True)
                wanted = set()
                self._more_to_read = bool(await self._behind(assigned, fresh=False))
                continue
            # The ends are asked of the broker only when the records wait already (the oldest
            # sent more than FRESH_ENDS_AFTER_MS ago): a round trip per run is nothing then, and
            # that is when partitions are left out of fetches; live, the fetched marks are new.
            oldest = min(buf[0].timestamp for buf in stream.buffers.values() if buf)
            now = time.monotonic()
            if self.handlers.commutative:
                # No order to keep across partitions: everything fetched goes, nothing waits
                # for a partition that is behind (the fetched marks suffice for catching_up).
                behind = await self._behind(assigned, fresh=False)
                records = stream.take(set(), self.batch_size, now)
                wanted = set()
            else:
                fresh = time.time() * 1000 - oldest > FRESH_ENDS_AFTER_MS
                behind = await self._behind(assigned, fresh=fresh)
                behind |= await self._unheard(assigned, behind)
                records = stream.take(behind, self.batch_size, now)
                wanted = stream.starved(behind, now)
            self._more_to_read = bool(behind) or stream.buffered() > 0
            if not records:
                continue
            self.stream_time_ms = max(self.stream_time_ms, max(r.timestamp for r in records))
            batch = [RawMessage.of(r) for r in records]
            self._hand_over(batch)
            if self.batch_size > 1:
                await self.process_batch(batch)
            else:
                for raw in batch:
                    await self.process(raw)
            await self._commit_many(batch)
            self.last_progress = time.monotonic()

    @property
    def catching_up(self) -> bool:
        """Re-reading the past: records are left to read and the newest one handled is more
        than CATCH_UP_SECONDS old (after a rewind or downtime), or the consumer has not polled
        yet. Work a timer does on the service's state (fulfillment's warehouse pass) waits
        meanwhile: the state is not the present one, and acting on it would take decisions the
        first reading of these records did not (docs/OPERATIONS.md, restore)."""
        if not self.started:
            return True
        old = time.time() * 1000 - self.stream_time_ms > CATCH_UP_SECONDS * 1000
        return self._more_to_read and old

    async def _behind(self, assigned: set[TopicPartition], fresh: bool
                      ) -> set[TopicPartition]:
        """The partitions with records this consumer has not fetched yet: its fetch position
        short of the partition's end. With `fresh` (records are buffered, so the answer decides
        what goes first) the ends are asked of the broker (again once they are reached): the
        high-water mark a fetch
        brought is stale for a partition left out of the fetches since (aiokafka fetches only
        partitions with nothing buffered), and an order placed before its cancellation was seen
        after it. They are asked on a connection of their own (`_ends_client`). Otherwise, or
        when the broker does not answer within a second, the last high-water mark heard of; a
        partition never fetched counts as behind."""
        consumer = self.consumer
        out: set[TopicPartition] = set()
        if consumer is None:
            return out
        if not fresh:
            self._asked_ends = {}
        elif assigned and self._ends is not None and not await self._short_of(self._asked_ends):
            # Asked again only once every partition has been fetched up to the ends asked
            # before: asked on every poll, the ends moved on with every record appended since
            # (a busy shop appends every few ms on some partition), so the records waiting
            # were always held back for one more and stayed behind for good (placed ->
            # reserved took 0.6-1 s instead of 0.15 s in one run of three at 45 orders/s).
            # Those records are all older than the ends first asked; what came after is merged
            # as it is fetched, as live.
            self._asked_ends = {}
            asked_at = int(time.time() * 1000)
            with contextlib.suppress(*UNANSWERED):
                self._asked_ends = dict(await asyncio.wait_for(
                    self._ends.end_offsets(list(assigned)), 1.0))
                self._asked_at = asked_at
        ends = self._asked_ends
        for tp in assigned:
            try:
                if consumer.highwater(tp) is None:
                    out.add(tp)  # never fetched since assigned: its records are still to come
                    continue
                high = ends.get(tp, consumer.highwater(tp))
                # fetched from, so its position is valid: this returns at once
                if await consumer.position(tp) < high:
                    out.add(tp)
                elif tp in ends:  # fetched up to what the broker said: `_unheard` need not ask
                    self._heard[tp] = max(self._heard.get(tp, 0), self._asked_at)
            except (AssertionError, IllegalStateError):
                continue  # revoked meanwhile: not ours to wait for
        return out

    async def _unheard(self, assigned: set[TopicPartition], behind: set[TopicPartition]
                       ) -> set[TopicPartition]:
        """The partitions with nothing buffered that hold unfetched records older than the
        newest record waiting, among those whose last word is older than it.

        `_behind` goes by the last high-water marks fetched while the records waiting are
        young, and the mark of a partition left out of the fetches since (it had records
        buffered when they were sent) predates them. Live, inventory handled an order's
        cancellation before its acceptance, sent 20 ms earlier on another topic, and the
        re-read after a restore took them in timestamp order and decided otherwise
        (RELIABILITY.md). So a partition whose last word (its last fetch, less
        HEARD_SLACK_MS, or our last question) is older than the newest record waiting is asked
        of the broker: its end, and, when it holds records not fetched yet, the first offset at
        or after that record's time (its end when it has none). Records appended after the
        question are newer than those waiting and are not waited for. Without an answer within
        a second, the fetched marks stand."""
        consumer, client = self.consumer, self._ends
        if consumer is None or client is None:
            return set()
        buffers = self.stream.buffers
        newest = max((buf[-1].timestamp for buf in buffers.values() if buf), default=None)
        if newest is None:
            return set()
        stale: list[TopicPartition] = []
        for tp in assigned - behind:
            if buffers.get(tp):
                continue
            with contextlib.suppress(AssertionError, IllegalStateError):
                polled = consumer.last_poll_timestamp(tp)
                if polled is None:
                    continue  # never fetched: `_behind` counts it
                if max(polled - HEARD_SLACK_MS, self._heard.get(tp, 0)) < newest:
                    stale.append(tp)
        if not stale:
            return set()
        asked_at = int(time.time() * 1000)
        # Its end first: mostly a stale partition is fetched up to it (nothing unfetched at
        # all), and one request answers. Only where records are unfetched is the first offset
        # at or after the newest record waiting asked too (a second ListOffsets request: two
        # on every ask were half of the broker's requests at 45 orders/s, BENCHMARKS.md).
        try:
            ends = await asyncio.wait_for(client.end_offsets(stale), 1.0)
        except UNANSWERED:
            return set()
        unfetched: dict[TopicPartition, int] = {}  # the partitions' fetch positions
        for tp in stale:
            with contextlib.suppress(AssertionError, IllegalStateError):
                position = await consumer.position(tp)
                if position < ends.get(tp, 0):
                    unfetched[tp] = position
                else:
                    self._heard[tp] = asked_at
        if not unfetched:
            return set()
        try:
            firsts = await asyncio.wait_for(
                client.offsets_for_times(dict.fromkeys(unfetched, newest)), 1.0)
        except UNANSWERED:
            return set()
        out: set[TopicPartition] = set()
        for tp, position in unfetched.items():
            first = firsts.get(tp)
            older_until = first.offset if first is not None else ends.get(tp, 0)
            if position < older_until:
                out.add(tp)
            else:
                self._heard[tp] = asked_at
        return out

    async def _short_of(self, ends: dict[TopicPartition, int]) -> bool:
        """Some partition still assigned is not fetched up to `ends` yet."""
        consumer = self.consumer
        assert consumer is not None
        assigned = consumer.assignment()
        for tp, end in ends.items():
            if tp not in assigned:
                continue
            with contextlib.suppress(AssertionError, IllegalStateError):
                if await consumer.position(tp) < end:
                    return True
        return False

    @property
    def total_lag(self) -> int:
        return sum(self.lag.values())

    @property
    def stalled(self) -> bool:
        """Lag but no progress for a while: aiokafka consumers can stall silently (#1154)."""
        return self.total_lag > 0 and time.monotonic() - self.last_progress > self.stall_seconds

    async def _watch_lag(self) -> None:
        while True:
            await asyncio.sleep(5)
            consumer = self.consumer
            if consumer is None:
                continue
            try:
                assignment = list(consumer.assignment())
                ends = await asyncio.wait_for(consumer.end_offsets(assignment), 10)
                lag: dict[str, int] = {}
                for tp in assignment:
                    # Lag is what is not yet handled: records handed to a run count until their
                    # offsets are committed (the fetch position moves as soon as a poll hands
                    # them over, so a run stuck on a lock would show no lag and never stall).
                    done = self._in_flight.get(tp)
                    if done is None:
                        done = self.stream.first_offset(tp)  # fetched, held back
                    if done is None:
                        done = await asyncio.wait_for(consumer.position(tp), 10)
                    lag[tp.topic] = lag.get(tp.topic, 0) + max(0, ends.get(tp, 0) - done)
                if sum(lag.values()) == 0:
                    self.last_progress = time.monotonic()
                self.lag = lag
                for topic in self.handlers.subscriptions:
                    metrics.CONSUMER_LAG.labels(topic).set(lag.get(topic, 0))
                metrics.CONSUMER_STALLED.set(1 if self.stalled else 0)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.debug("could not measure consumer lag: %s", exc)

    def _hand_over(self, batch: list[RawMessage]) -> None:
        for raw in batch:
            self._in_flight.setdefault(TopicPartition(raw.topic, raw.partition), raw.offset)

    async def process_batch(self, batch: list[RawMessage]) -> None:
        """Handle messages in their order: runs of valid events share one transaction; a value
        that cannot be taken is handled on its own between runs. Never raises except on cancel."""
        run: list[tuple[RawMessage, Event]] = []
        for raw in batch:
            try:
                event = self.decode(raw)
            except Refused:
                await self._flush(run)
                run = []
                await self.process(raw)  # the refused path: on_invalid or DLQ
            else:
                run.append((raw, event))
        await self._flush(run)

    def decode(self, raw: RawMessage) -> Event:
        """The event in `raw`, parsed with its topic's model; raises `Refused`. Text Postgres
        cannot store is cleaned first (`storable`), and an `occurred_at` too far ahead of this
        clock is clamped to the time received (`checked_time`)."""
        topic = self.handlers.subscriptions[raw.topic].topic
        if raw.value is None:
            raise Refused("malformed", "the message has no value (a tombstone)")
        if len(raw.value) > topic.max_bytes:
            raise Refused("too_large", f"the value is {len(raw.value)} bytes; {topic.name} takes"
                          f" at most {topic.max_bytes} bytes")
        try:
            event = topic.model.model_validate_json(storable(raw.value))
        except ValidationError as exc:
            raise Refused("malformed", _describe(exc), exc) from exc
        except ValueError as exc:
            raise Refused("malformed", str(exc), exc) from exc
        assert isinstance(event, Event)
        return self.checked_time(raw.topic, event)

    def checked_time(self, topic: str, event: Event) -> Event:
        """`clamp_future` with this clock, logged and counted when it clamps."""
        checked = clamp_future(event, datetime.now(UTC), self.max_skew)
        if checked is event:
            return event
        log.warning("event %s on %s is dated %s, more than %s ahead of this clock; taken as"
                    " occurring now. Check the producer's clock", event.event_id, topic,
                    event.occurred_at.isoformat(), self.max_skew)
        metrics.CLOCK_SKEW_CLAMPED.labels(topic).inc()
        return checked

    def _fault(self, exc: BaseException | None) -> None:
        """Record (or clear, with None) the infrastructure fault the consumer is waiting out:
        /readyz fails and shopkeeper_consumer_blocked is 1 meanwhile (alert ConsumerBlocked)."""
        if exc is None:
            if self.fault is not None:
                log.info("infrastructure fault cleared; consuming again")
            self.fault = None
            metrics.CONSUMER_BLOCKED.set(0)
        else:
            self.fault = f"{type(exc).__name__}: {exc}"[:500]
            metrics.CONSUMER_BLOCKED.set(1)

    async def _flush(self, run: list[tuple[RawMessage, Event]]) -> None:
        """One transaction for the run. Transient faults retry it whole; any other error rolls
        it back and the run is handled again message by message (retries, then DLQ), so one bad
        message never takes the others down and each key keeps its order."""
        if not run:
            return
        backoff = Backoff(0.1, 10.0)
        while True:
            try:
                outcomes = await self._transact(run)
                break
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if not is_transient(exc):
                    log.warning("a batch of %d failed (%s: %s); handling it message by message",
                                len(run), type(exc).__name__, exc)
                    for raw, _ in run:
                        await self.process(raw)
                    return
                metrics.HANDLER_RETRIES.labels(run[0][0].topic, "transient").inc()
                if len(run) > 1 and isinstance(exc, (asyncpg.DeadlockDetectedError,
                                                     asyncpg.SerializationError)):
                    # Two instances' runs locking the same rows in different orders: a long
                    # run would meet the other again on retry. One transaction per message.
                    log.info("a batch of %d from %s met a concurrent one (%s); handling it"
                             " message by message", len(run), run[0][0].topic,
                             type(exc).__name__)
                    for raw, _ in run:
                        await self.process(raw)
                    return
                self._fault(exc)
                delay = backoff.next()
                log.warning("infrastructure fault handling a batch of %d from %s: %s; retrying"
                            " in %.1fs without committing (nothing goes to the DLQ for this)",
                            len(run), run[0][0].topic, exc, delay)
                if isinstance(exc, KafkaError):
                    await self.producer.reset()
                await asyncio.sleep(delay)
        self._fault(None)
        for topic, outcome, count, seconds in outcomes:
            metrics.HANDLER_SECONDS.labels(topic).observe(seconds)
            metrics.EVENTS_CONSUMED.labels(topic, outcome).inc(count)

    async def _transact(self, run: list[tuple[RawMessage, Event]]
                        ) -> list[tuple[str, str, int, float]]:
        """The run in one unit of work: its inbox rows in one statement first (an id seen
        before, or twice in the run, is a duplicate: only its first occurrence is handled), then
        what the handlers of its fresh events declared they will lock, all at once
        (`Handlers.lock_run`: one lock order per run, so two instances never deadlock), then
        each segment of consecutive events of one topic to that topic's handler, then the
        before-commit hooks and the outbox rows in one statement, commit, after-commit hooks.
        Returns `(topic, outcome, count, seconds)` per segment and outcome."""
        outcomes: list[tuple[str, str, int, float]] = []
        run, skipped = self.handlers.wanted(run)
        outcomes += [(topic, "skipped", n, 0.0) for topic, n in skipped.items()]
        if not run:
            return outcomes
        async with self.pool.acquire() as conn:
            uow = UnitOfWork(conn, self.service, hook_cause=str(run[0][1].event_id))
            async with conn.transaction():
                fresh = await uow.first_times([(e.event_id, r.topic) for r, e in run])
                todo: list[tuple[str, list[tuple[RawMessage, Event]], list[Event]]] = []
                for topic, segment in _segments(run, by_topic=self.handlers.commutative):
                    events: list[Event] = []
                    for _, event in segment:
                        if event.event_id in fresh:
                            fresh.discard(event.event_id)  # the same id twice: once
                            events.append(event)
                    if len(events) < len(segment):
                        outcomes.append((topic, "duplicate", len(segment) - len(events),
                                         0.0))
                    if events:
                        todo.append((topic, segment, events))
                # Everything the run will lock, in the one order, before its first handler.
                await self.handlers.lock_run(conn, [(topic, evs) for topic, _, evs in todo])
                for topic, segment, events in todo:
                    started = time.perf_counter()
                    await self._call(uow, segment, events)
                    outcomes.append((topic, "ok", len(events),
                                     time.perf_counter() - started))
                await uow.finish()
            uow.committed()
        return outcomes

    async def _call(self, uow: UnitOfWork, segment: list[tuple[RawMessage, Event]],
                    events: list[Event]) -> None:
        topic = segment[0][0].topic
        with log_context(topic=topic):
            await self.handlers.subscriptions[topic].handler(uow, events)

    async def _commit_many(self, batch: list[RawMessage]) -> None:
        consumer = self.consumer
        if consumer is None or not batch:
            return
        offsets: dict[TopicPartition, int] = {}
        for raw in batch:
            tp = TopicPartition(raw.topic, raw.partition)
            offsets[tp] = max(offsets.get(tp, 0), raw.offset + 1)
        for tp, offset in offsets.items():  # handled: no longer lag, to be committed
            self._in_flight.pop(tp, None)
            self._pending[tp] = max(self._pending.get(tp, 0), offset)
        await self._commit_pending()

    async def _commit_pending(self, *, force: bool = False) -> None:
        """Commit the offsets of the runs handled since the last commit, when the interval has
        passed (`SHOPKEEPER_COMMIT_INTERVAL_MS`), or now with `force` (idle, stopping). An
        offset commit is a request the broker writes to `__consumer_offsets` and replicates;
        after every run it was one per run of each consumer, most of Kafka's CPU per order at
        small runs. Deferring it is safe: those runs' transactions are committed, so a crash
        or a rebalance before the commit only makes their records be read again, and the
        inbox drops them (as it does after a refused commit). Partitions no longer assigned
        are left to their new owner."""
        if not self._pending or self.consumer is None:
            return
        if not force and time.monotonic() - self._last_commit < self.commit_interval:
            return
        assigned = self.consumer.assignment()
        offsets = {tp: o for tp, o in self._pending.items() if tp in assigned}
        self._pending = {}
        self._last_commit = time.monotonic()
        if offsets:
            await self._try_commit(offsets, f"{len(offsets)} partitions")

    async def process(self, raw: RawMessage) -> str:
        """Handle one message to an outcome; never raises except on cancellation."""
        sub = self.handlers.subscriptions[raw.topic]
        attempts = 0
        backoff = Backoff(0.1, 10.0)
        while True:
            started = time.perf_counter()
            delay = 0.0
            try:
                outcome = await self._handle_once(sub, raw)
                self._fault(None)
                metrics.HANDLER_SECONDS.labels(raw.topic).observe(time.perf_counter() - started)
                metrics.EVENTS_CONSUMED.labels(raw.topic, outcome).inc()
                return outcome
            except asyncio.CancelledError:
                raise
            except PoisonMessage as exc:
                await self._dead_letter(raw, exc)
                return "dlq"
            except Exception as exc:
                delay = backoff.next()
                if is_transient(exc):
                    self._fault(exc)
                    metrics.HANDLER_RETRIES.labels(raw.topic, "transient").inc()
                    log.warning("infrastructure fault handling %s[%d]@%d: %s; retrying in %.1fs"
                                " without committing (nothing goes to the DLQ for this)",
                                raw.topic, raw.partition, raw.offset, exc, delay)
                    if isinstance(exc, KafkaError):
                        await self.producer.reset()
                else:
                    attempts += 1
                    metrics.HANDLER_RETRIES.labels(raw.topic, "error").inc()
                    if attempts >= self.max_attempts:
                        log.error("handler of %s failed %d times at partition %d offset %d; sent"
                                  " to %s. Fix the cause, then replay it with `shopkeeper dlq"
                                  " replay %s`", raw.topic, attempts, raw.partition, raw.offset,
                                  dlq_name(raw.topic), raw.topic, exc_info=exc)
                        await self._dead_letter(raw, exc)
                        return "dlq"
                    log.warning("handler of %s failed (attempt %d of %d): %s; again in %.1fs",
                                raw.topic, attempts, self.max_attempts, exc, delay,
                                exc_info=exc)
            await asyncio.sleep(delay)

    async def _handle_once(self, sub: Subscription[Any], raw: RawMessage) -> str:
        try:
            event = self.decode(raw)
        except Refused as refused:
            if sub.on_invalid is not None:
                # A refused value has no event id of its own to derive ids from: its
                # coordinates in the log stand in (the same record, the same ids).
                where = f"{raw.topic}/{raw.partition}/{raw.offset}"
                async with self.pool.acquire() as conn:
                    uow = UnitOfWork(conn, self.service, cause=where)
                    async with conn.transaction():
                        await self.handlers.lock_alone(conn)
                        taken = await sub.on_invalid(uow, raw, refused.code, refused.message)
                        await uow.finish()
                    uow.committed()
                if taken:
                    return "rejected"
            await self._dead_letter(raw, refused)
            return "dlq"
        outcomes = await self._transact([(raw, event)])
        return outcomes[0][1] if outcomes else "ok"

    async def _dead_letter(self, raw: RawMessage, exc: BaseException) -> None:
        """Send the raw value to `{topic}.dlq` with the contract's headers. A dead letter always
        fits: when value and headers would exceed the broker's limit, it carries a prefix of the
        value with `x-truncated: true` and `x-original-size`. Retries while Kafka is away (the
        message is committed only after the DLQ has it); a refusal of the record itself is
        never retried as it is."""
        if isinstance(exc, Refused):
            error, kind = f"{exc.code}: {exc.message}", exc.kind
        elif isinstance(exc, ValidationError):
            error, kind = _describe(exc), type(exc).__name__
        else:
            error, kind = str(exc), type(exc).__name__
        headers = [
            ("x-error", error[:4000].encode()),
            ("x-error-type", kind.encode()),
            ("x-original-topic", raw.topic.encode()),
            ("x-original-partition", str(raw.partition).encode()),
            ("x-original-offset", str(raw.offset).encode()),
            ("x-service", self.service.encode()),
        ]
        # Keep the message's own headers (e.g. x-replayed-from), replacing only ours.
        ours = {name for name, _ in headers} | {"x-traceback", "x-truncated", "x-original-size"}
        headers = [h for h in raw.headers if h[0] not in ours] + headers
        if not isinstance(exc, (ValidationError, ValueError, PoisonMessage, Refused)):
            headers.append(("x-traceback", "".join(traceback.format_exception(exc))[-4000:]
                            .encode()))
        key = raw.key.decode(errors="replace") if raw.key else None
        value, headers = fit_dead_letter(key, raw.value or b"", headers)
        if value is not raw.value and raw.value is not None:
            metrics.DLQ_TRUNCATED.labels(raw.topic).inc()
        backoff = Backoff(0.2, 10.0)
        while True:
            try:
                await self.producer.send(dlq_name(raw.topic), key, value, headers)
                break
            except KafkaError as kexc:
                if outbox.refused_for_good(kexc):
                    # The broker's limit is lower than ours: keep halving the prefix.
                    value, headers = fit_dead_letter(key, value, headers, len(value) // 2)
                    log.warning("%s refused a dead letter (%s); sending a %d-byte prefix",
                                dlq_name(raw.topic), kexc, len(value))
                    continue
                delay = backoff.next()
                log.warning("could not write to %s (%s); retrying in %.1fs", dlq_name(raw.topic),
                            kexc, delay)
                await self.producer.reset()
                await asyncio.sleep(delay)
        metrics.DLQ_TOTAL.labels(raw.topic).inc()
        log.warning("sent %s[%d]@%d to %s: %s", raw.topic, raw.partition, raw.offset,
                    dlq_name(raw.topic), error[:500])

    async def _try_commit(self, offsets: dict[TopicPartition, int], what: str) -> None:
        consumer = self.consumer
        if consumer is None:
            return
        for attempt in range(5):
            try:
                await consumer.commit(offsets)
                return
            except (CommitFailedError, IllegalStateError) as exc:
                # The partition moved to another instance during a rebalance: it will re-read
                # from the last commit and the inbox makes that harmless.
                log.info("offset commit of %s refused (%s); the new owner will re-read", what, exc)
                return
            except KafkaError as exc:
                log.warning("offset commit failed (%s), attempt %d", exc, attempt + 1)
                await asyncio.sleep(0.5 * (attempt + 1))


async def longest_retention_ms(bootstrap: str, topics: list[str]) -> int | None:
    """The longest `retention.ms` of `topics` (-1: kept forever), or None if Kafka cannot say."""
    from aiokafka.admin import AIOKafkaAdminClient
    from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap.split(","), request_timeout_ms=10000)
    await admin.start()
    try:
        responses = await admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, t, {"retention.ms": None}) for t in topics])
    finally:
        await admin.close()
    values = [int(entry[1]) for response in responses for resource in response.resources
              for entry in resource[4] if entry[0] == "retention.ms"]
    if len(values) < len(topics):
        return None
    return -1 if -1 in values else max(values)


async def prune_inbox_forever(pool: asyncpg.Pool, bootstrap: str, topics: list[str],
                              retention_days: float, every_seconds: float = 3600.0) -> None:
    """Delete inbox rows older than `retention_days`, hourly, but only while that provably
    exceeds how long Kafka keeps the topics they came from: a record can be delivered again
    only while it is in its topic, so every redelivery still finds its row. When a topic keeps
    records longer (or forever, or Kafka cannot say), nothing is pruned and a warning says which
    setting to change. A producer re-sending an old event with its old id after the inbox
    forgot it is caught by the services' own keys (an order is one row per store and external
    id), not by the inbox."""
    while True:
        await asyncio.sleep(every_seconds)
        try:
            longest = await longest_retention_ms(bootstrap, topics)
            keep_ms = retention_days * 86_400_000
            if longest is None or longest < 0 or longest >= keep_ms:
                log.warning("inbox not pruned: its retention (%.0f days) must exceed the longest"
                            " topic retention (%s ms) of %s; raise"
                            " SHOPKEEPER_INBOX_RETENTION_DAYS or lower the topics' retention.ms",
                            retention_days, longest, ", ".join(topics))
                continue
            async with pool.acquire() as conn:
                n = await prune_inbox(conn, retention_days)
            if n:
                log.info("forgot %d inbox rows older than %.0f days", n, retention_days)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # Kafka or Postgres away: the next hour tries again
            log.warning("could not prune the inbox (%s: %s); retrying in an hour",
                        type(exc).__name__, exc)


def fit_dead_letter(key: str | None, value: bytes, headers: list[tuple[str, bytes]],
                    max_value: int | None = None) -> tuple[bytes, list[tuple[str, bytes]]]:
    """The value and headers of a dead letter that fits in one record: when they would exceed
    `outbox.MAX_RECORD_BYTES` (or the value `max_value`), the value is cut to a prefix and the
    headers say so (`x-truncated: true`, `x-original-size`). The message's own headers are
    dropped when they alone would crowd the record; the x-* headers always stay."""
    budget = outbox.MAX_RECORD_BYTES - 128  # room for the two headers added here

    def size(hs: list[tuple[str, bytes]]) -> int:
        return sum(len(k.encode()) + len(v) for k, v in hs) + len((key or "").encode())

    if size(headers) > budget // 2:
        headers = [(k, v[:4000]) for k, v in headers if k.startswith("x-")]
    room = budget - size(headers)
    if max_value is not None:
        room = min(room, max_value)
    if len(value) <= room:
        return value, headers
    original = dict(headers).get("x-original-size") or str(len(value)).encode()
    headers = [h for h in headers if h[0] not in ("x-truncated", "x-original-size")]
    headers += [("x-truncated", b"true"), ("x-original-size", original)]
    return value[:max(0, room)], headers


def _describe(exc: ValidationError) -> str:
    """A short operator-readable description naming each wrong field."""
    parts = []
    for err in exc.errors()[:5]:
        loc = ".".join(str(p) for p in err["loc"]) or "(value)"
        parts.append(f"{loc}: {err['msg']}")
    more = exc.error_count() - 5
    return "; ".join(parts) + (f" (and {more} more)" if more > 0 else "")


describe_validation_error = _describe


def _segments(run: list[tuple[RawMessage, Event]], *, by_topic: bool = False
              ) -> Iterator[tuple[str, list[tuple[RawMessage, Event]]]]:
    """The run cut where the topic changes: each handler gets its topic's consecutive events, so
    events of different topics are handled in the order they were handed over. `by_topic` (a
    commutative service, `Handlers.commutative`): one segment per topic, with all of its events
    in the order handed over, topics by name."""
    if by_topic:
        run = sorted(run, key=lambda item: item[0].topic)  # stable: each topic keeps its order
    segment: list[tuple[RawMessage, Event]] = []
    for item in run:
        if segment and item[0].topic != segment[0][0].topic:
            yield segment[0][0].topic, segment
            segment = []
        segment.append(item)
    if segment:
        yield segment[0][0].topic, segment


def parse_uuid(value: Any) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(value))
    except (ValueError, TypeError):
        return None


async def confirm_cancellation(uow: UnitOfWork, topic: Topic, request: OrderCancelRequested,
                               confirmed_by: str) -> None:
    """The end of a cancellation's hand-off (see `OrderCancelRequested`), caused by `request`:
    the storefront hears `cancelled` with the refund due (and the payment system the refund
    request), and the other services hear `{service}.order_cancelled`."""
    store, _, ext = request.order_key.partition(":")
    with uow.caused_by(request):
        await uow.cancelled(order_id=request.order_id, store=store, external_order_id=ext,
                            reasons=[("cancelled_by_customer", request.reason)],
                            refund_due=request.refund_due, currency=request.currency)
        await uow.publish(topic, request.order_key, OrderCancelled(
            order_id=request.order_id, order_key=request.order_key, reason=request.reason,
            refund_due=request.refund_due, currency=request.currency,
            confirmed_by=confirmed_by))


def forwarded(request: OrderCancelRequested) -> OrderCancelRequested:
    """The same cancellation handed on: a new event (its own id) caused by the one received."""
    return OrderCancelRequested(order_id=request.order_id, order_key=request.order_key,
                                reason=request.reason, refund_due=request.refund_due,
                                currency=request.currency, correlation_id=request.correlation_id)
