"""A consumer run's before-commit hooks (shared/messaging.py `Run`, docs/messaging.md): handlers
collect on the run, the hook does the run's work once, in the run's transaction, before the
outbox rows go in; a failing run is redone message by message, each a run of one with its own
hook. Against Postgres alone (a scratch schema), no Kafka: the consumer's `process_batch` is
called with records as the poll loop would hand them over."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from shared import outbox, topics
from shared.contracts import FeedbackGiven, OrderStatusChanged
from shared.db import connect, migrate
from shared.messaging import Consumer, Ctx, Handlers, RawMessage
from shared.settings import get_settings

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
    async def on_feedback(ctx: Ctx, e: FeedbackGiven) -> None:
        await ctx.conn.execute("INSERT INTO handled VALUES ($1, $2)", e.event_id, e.rating)
        conn = ctx.conn

        async def hook(ids: list[uuid.UUID]) -> None:
            calls.append(list(ids))
            if fail_first and len(calls) == 1:
                raise RuntimeError("the first run's hook fails")
            seen = await conn.fetchval("SELECT count(*) FROM handled WHERE event_id = ANY($1)",
                                       ids)
            await conn.execute("INSERT INTO runs (events, handled_seen) VALUES ($1, $2)", ids,
                               seen)
            await outbox.enqueue(conn, topics.ORDERS_STATUS, "hooks:run", OrderStatusChanged(
                order_id="o", store="hooks", external_order_id="run", status="accepted"))

        ctx.run.collect("test.ids", list, hook).append(e.event_id)

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
