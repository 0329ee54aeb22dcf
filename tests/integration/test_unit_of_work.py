"""The unit of work of a consumer run (shared/uow.py, docs/messaging.md "The unit of work"):
handlers take the run's events of their topic, in order across topics; before-commit hooks do the
run's work once, in its transaction, before the outbox rows go in; a failing run is redone message
by message, each a run of one with its own hooks; emitted ids derive from their cause, so a re-run
emits the same ids; after-commit hooks run only once a transaction committed. Against Postgres
alone (a scratch schema), no Kafka: the consumer's `process_batch` is called with records as the
poll loop would hand them over."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path

import asyncpg
import pytest

from shared import outbox, topics
from shared.contracts import FeedbackGiven, OrderCancelRequested, OrderStatusChanged
from shared.db import connect, migrate
from shared.messaging import Consumer, Handlers, RawMessage
from shared.settings import get_settings
from shared.uow import UnitOfWork

TOPIC = topics.CUSTOMER_FEEDBACK


@pytest.fixture
async def pool(stack: None, tmp_path: Path) -> AsyncIterator[asyncpg.Pool]:
    schema = f"runhooks_{uuid.uuid4().hex[:8]}"
    admin = get_settings().database_url
    conn = await asyncpg.connect(admin)
    await conn.execute(f"CREATE SCHEMA {schema}")
    (tmp_path / "migrations").mkdir()
    (tmp_path / "migrations" / "0001_hooks.sql").write_text(
        "CREATE TABLE handled (event_id uuid PRIMARY KEY, rating int NOT NULL);"
        " CREATE TABLE runs (run int GENERATED ALWAYS AS IDENTITY, events uuid[] NOT NULL,"
        " handled_seen int NOT NULL);")
    p = await connect(admin, schema, min_size=1, max_size=2)
    try:
        await migrate(p, schema, tmp_path)
        yield p
    finally:
        await p.close()
        await conn.execute(f"DROP SCHEMA {schema} CASCADE")
        await conn.close()


def consumer_with(handlers: Handlers, pool: asyncpg.Pool) -> Consumer:
    settings = get_settings()
    return Consumer("hooks-test", settings.kafka_bootstrap_servers, pool,
                    outbox.ProducerHolder(settings.kafka_bootstrap_servers, "hooks-test"),
                    handlers, max_attempts=3)


def record(event: FeedbackGiven, offset: int) -> RawMessage:
    return RawMessage(TOPIC.name, 0, offset, event.key.encode(), event.model_dump_json().encode())


def feedback(n: int) -> FeedbackGiven:
    return FeedbackGiven(store="hooks", external_order_id=f"o{n}", rating=1 + n % 5)


def handlers_with_hook(calls: list[list[uuid.UUID]], fail_first: bool = False) -> Handlers:
    """Each event: its row, and its id collected on the run. The hook, once per run: a `runs`
    row with the ids collected and how many `handled` rows it sees (the run's own, uncommitted:
    the same transaction), and one event published (the outbox is flushed after the hooks)."""
    handlers = Handlers()

    @handlers.on(TOPIC)
    async def on_feedback(uow: UnitOfWork, events: list[FeedbackGiven]) -> None:
        await uow.conn.executemany("INSERT INTO handled VALUES ($1, $2)",
                                   [(e.event_id, e.rating) for e in events])

        async def hook(ids: list[uuid.UUID]) -> None:
            calls.append(list(ids))
            if fail_first and len(calls) == 1:
                raise RuntimeError("the first run's hook fails")
            seen = await uow.conn.fetchval(
                "SELECT count(*) FROM handled WHERE event_id = ANY($1)", ids)
            await uow.conn.execute("INSERT INTO runs (events, handled_seen) VALUES ($1, $2)",
                                   ids, seen)
            await uow.publish(topics.ORDERS_STATUS, "hooks:run", OrderStatusChanged(
                order_id="o", store="hooks", external_order_id="run", status="accepted"))

        uow.collect("test.ids", list, hook).extend(e.event_id for e in events)

    return handlers


async def test_a_run_calls_its_hook_once_before_commit_with_what_its_handlers_collected(
        pool: asyncpg.Pool) -> None:
    """Given a run of 4 events, one of them delivered twice, when the consumer handles it, then
    the hook ran once, saw the run's 4 rows in its transaction, and its event is in the outbox
    with the others' commit; a second delivery of the whole run calls no hook (all duplicates)."""
    calls: list[list[uuid.UUID]] = []
    consumer = consumer_with(handlers_with_hook(calls), pool)
    events = [feedback(n) for n in range(4)]
    batch = [record(e, i) for i, e in enumerate([*events, events[1]])]
    await consumer.process_batch(batch)
    assert calls == [[e.event_id for e in events]]
    runs = await pool.fetch("SELECT events, handled_seen FROM runs")
    assert [(list(r["events"]), r["handled_seen"]) for r in runs] == [
        ([e.event_id for e in events], 4)]
    assert await pool.fetchval("SELECT count(*) FROM outbox WHERE key = 'hooks:run'") == 1

    await consumer.process_batch(batch)  # redelivered: every event a duplicate
    assert len(calls) == 1
    assert await pool.fetchval("SELECT count(*) FROM runs") == 1


async def test_a_failing_hook_rolls_the_run_back_and_each_message_is_a_run_of_one(
        pool: asyncpg.Pool) -> None:
    """Given a hook that fails on its first call, when a run of 3 events is handled, then
    nothing of that run stays, and the run is redone message by message: 3 runs of one, each
    with its hook called once and its own row."""
    calls: list[list[uuid.UUID]] = []
    consumer = consumer_with(handlers_with_hook(calls, fail_first=True), pool)
    events = [feedback(n) for n in range(3)]
    await consumer.process_batch([record(e, i) for i, e in enumerate(events)])
    ids = [e.event_id for e in events]
    assert calls == [ids, *([i] for i in ids)]
    runs = await pool.fetch("SELECT events, handled_seen FROM runs ORDER BY run")
    assert [(list(r["events"]), r["handled_seen"]) for r in runs] == [([i], 1) for i in ids]
    assert await pool.fetchval("SELECT count(*) FROM handled") == 3
    assert await pool.fetchval("SELECT count(*) FROM outbox WHERE key = 'hooks:run'") == 3


def cancel(n: int) -> OrderCancelRequested:
    return OrderCancelRequested(order_id=f"o{n}", order_key=f"hooks:o{n}", reason="changed mind",
                                refund_due=Decimal("1.50"), currency="EUR")


async def test_handlers_get_their_topic_s_consecutive_events_in_the_order_handed_over(
        pool: asyncpg.Pool) -> None:
    """Given a run mixing two topics (f0 f1 c0 f2), when it is handled, then the feedback handler
    is called with [f0, f1], the cancellation handler with [c0], then the feedback handler with
    [f2]: order across topics is kept; each call publishes a status per event, and handling the
    same records again after a reset of the inbox emits the same event ids (derived from the
    cause), with the cause's correlation and causation ids."""
    calls: list[tuple[str, list[uuid.UUID]]] = []
    handlers = Handlers()

    @handlers.on(TOPIC)
    async def on_feedback(uow: UnitOfWork, events: list[FeedbackGiven]) -> None:
        calls.append(("feedback", [e.event_id for e in events]))
        for e in uow.each(events):
            await uow.status(order_id=e.external_order_id, store="hooks",
                             external_order_id=e.external_order_id, status="delivered")

    @handlers.on(topics.INTAKE_ORDER_CANCEL_REQUESTED)
    async def on_cancel(uow: UnitOfWork, events: list[OrderCancelRequested]) -> None:
        calls.append(("cancel", [e.event_id for e in events]))
        for e in uow.each(events):
            await uow.publish(topics.INVENTORY_ORDER_CANCEL_FORWARDED, e.order_key,
                              OrderCancelRequested(order_id=e.order_id, order_key=e.order_key,
                                                   reason=e.reason, refund_due=e.refund_due,
                                                   currency=e.currency))

    consumer = consumer_with(handlers, pool)
    f = [feedback(n) for n in range(3)]
    c0 = cancel(0)
    batch = [record(f[0], 0), record(f[1], 1),
             RawMessage(topics.INTAKE_ORDER_CANCEL_REQUESTED.name, 0, 0, c0.order_key.encode(),
                        c0.model_dump_json().encode()),
             record(f[2], 2)]
    await consumer.process_batch(batch)
    assert calls == [("feedback", [f[0].event_id, f[1].event_id]), ("cancel", [c0.event_id]),
                     ("feedback", [f[2].event_id])]
    rows = await pool.fetch("SELECT topic, value FROM outbox ORDER BY id")
    assert [r["topic"] for r in rows] == ["orders.status", "orders.status",
                                          topics.INVENTORY_ORDER_CANCEL_FORWARDED.name,
                                          "orders.status"]
    forwarded = OrderCancelRequested.model_validate_json(rows[2]["value"])
    assert forwarded.causation_id == str(c0.event_id)
    assert forwarded.correlation_id == str(c0.event_id)
    assert forwarded.event_id != c0.event_id
    status = OrderStatusChanged.model_validate_json(rows[0]["value"])
    assert status.causation_id == str(f[0].event_id)
    first_ids = [json.loads(r["value"])["event_id"] for r in rows]

    await pool.execute("DELETE FROM inbox; DELETE FROM outbox")
    await consumer.process_batch(batch)
    again = [json.loads(r["value"])["event_id"]
             for r in await pool.fetch("SELECT value FROM outbox ORDER BY id")]
    assert again == first_ids


async def test_after_commit_hooks_run_once_the_transaction_commits_and_never_on_rollback(
        pool: asyncpg.Pool) -> None:
    """Given a unit of work that registers an after-commit hook and fails, then the hook never
    ran and nothing it published stayed; given one that commits, the hook ran once, after its
    rows were visible to another connection."""
    seen: list[int] = []

    async def visible() -> int:
        return int(await pool.fetchval("SELECT count(*) FROM outbox WHERE key = 'uow:k'"))

    with pytest.raises(RuntimeError):
        async with UnitOfWork.begin(pool, "uow-test", cause="job:1") as uow:
            await uow.status(order_id="o", store="uow", external_order_id="k", status="packed")
            uow.after_commit(lambda: seen.append(-1))
            raise RuntimeError("the job fails")
    assert seen == []
    assert await visible() == 0

    committed: list[bool] = []
    async with UnitOfWork.begin(pool, "uow-test", cause="job:1") as uow:
        await uow.status(order_id="o", store="uow", external_order_id="k", status="packed")
        uow.after_commit(lambda: committed.append(True))
    assert committed == [True]
    assert await visible() == 1


async def test_events_a_handler_does_not_want_never_open_a_transaction(
        pool: asyncpg.Pool) -> None:
    """Given a subscription that wants only ratings of 5 (`wanted`, decided from the event
    alone), when a run of ratings 1-4 is handled, then the handler is not called, nothing is
    written (no inbox row: no transaction at all) and the events count as skipped; when a mixed
    run is handled, then the handler gets only the fives, in order, and only they are in the
    inbox."""
    calls: list[list[int]] = []
    handlers = Handlers()

    @handlers.on(TOPIC, wanted=lambda e: e.rating == 5)
    async def on_feedback(uow: UnitOfWork, events: list[FeedbackGiven]) -> None:
        calls.append([e.rating for e in events])

    consumer = consumer_with(handlers, pool)
    unwanted = [feedback(n) for n in range(4)]  # ratings 1, 2, 3, 4
    await consumer.process_batch([record(e, i) for i, e in enumerate(unwanted)])
    assert calls == []
    assert await pool.fetchval("SELECT count(*) FROM inbox") == 0
    mixed = [feedback(n) for n in range(4, 11)]  # ratings 5, 1, 2, 3, 4, 5, 1
    await consumer.process_batch([record(e, 10 + i) for i, e in enumerate(mixed)])
    assert calls == [[5, 5]]
    assert {r["event_id"] for r in await pool.fetch("SELECT event_id FROM inbox")} == {
        e.event_id for e in mixed if e.rating == 5}
