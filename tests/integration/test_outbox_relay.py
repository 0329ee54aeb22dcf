"""The outbox relay's round (shared/outbox.py, docs/messaging.md "The outbox relay"): one
statement per round, which marks sent what the previous round published and claims the next rows;
rows are published in id order, each once; a relay left idle marks its last round at once.
Against the real stack's Postgres (a scratch schema with the shared migrations) and Kafka (a topic
of the test's own)."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from shared import outbox
from shared.db import connect, migrate
from shared.settings import get_settings
from tests.integration.helpers import eventually

BOOTSTRAP = get_settings().kafka_bootstrap_servers


@pytest.fixture
async def schema(stack: None, tmp_path: Path) -> AsyncIterator[tuple[str, asyncpg.Pool]]:
    name = f"relay_{uuid.uuid4().hex[:8]}"
    admin = get_settings().database_url
    conn = await asyncpg.connect(admin)
    await conn.execute(f"CREATE SCHEMA {name}")
    (tmp_path / "migrations").mkdir()
    pool = await connect(admin, name, min_size=1, max_size=2)
    try:
        await migrate(pool, name, tmp_path)
        yield name, pool
    finally:
        await pool.close()
        await conn.execute(f"DROP SCHEMA {name} CASCADE")
        await conn.close()


@pytest.fixture
async def topic(stack: None) -> AsyncIterator[str]:
    name = f"test.relay.{uuid.uuid4().hex[:8]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=BOOTSTRAP)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name, 1, 1)])
        yield name
        await admin.delete_topics([name])
    finally:
        await admin.close()


async def read_topic(topic: str, expected: int) -> list[bytes]:
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=BOOTSTRAP, auto_offset_reset="earliest",
                                enable_auto_commit=False)
    await consumer.start()
    try:
        values: list[bytes] = []
        for _ in range(20):
            batch = await consumer.getmany(timeout_ms=500)
            values += [m.value for records in batch.values() for m in records if m.value]
            if len(values) >= expected:
                # one more poll: anything published twice would show here
                batch = await consumer.getmany(timeout_ms=1000)
                values += [m.value for records in batch.values() for m in records if m.value]
                break
        return values
    finally:
        await consumer.stop()


async def unsent(pool: asyncpg.Pool) -> int:
    return int(await pool.fetchval("SELECT count(*) FROM outbox WHERE sent_at IS NULL"))


async def test_a_round_is_marked_sent_by_the_next_rounds_claim(
        schema: tuple[str, asyncpg.Pool], topic: str) -> None:
    name, pool = schema
    producer = outbox.ProducerHolder(BOOTSTRAP, "relay-test")
    relay = outbox.OutboxRelay(pool, get_settings().database_url, name, producer)
    try:
        await pool.executemany("INSERT INTO outbox (topic, key, value) VALUES ($1, 'k', $2)",
                               [(topic, f"first-{i}".encode()) for i in range(3)])
        async with pool.acquire() as conn:
            assert await relay.publish_pending(conn) == 3
            # Published and acknowledged, not yet marked: the next claim does that.
            assert await unsent(pool) == 3
            await pool.execute("INSERT INTO outbox (topic, key, value) VALUES ($1, 'k', $2)",
                               topic, b"second")
            assert await relay.publish_pending(conn) == 1  # the first three are not claimed again
            assert await unsent(pool) == 1
            assert await relay.publish_pending(conn) == 0
            assert await unsent(pool) == 0
        assert await read_topic(topic, 4) == [b"first-0", b"first-1", b"first-2", b"second"]
    finally:
        await producer.reset()


@contextlib.asynccontextmanager
async def leading(schema: tuple[str, asyncpg.Pool], **options: float
                  ) -> AsyncIterator[outbox.OutboxRelay]:
    """A relay of the scratch schema, started and leading; stopped afterwards."""
    name, pool = schema
    producer = outbox.ProducerHolder(BOOTSTRAP, "relay-test")
    relay = outbox.OutboxRelay(pool, get_settings().database_url, name, producer, **options)
    relay.start()
    try:
        await eventually(lambda: _leads(relay), timeout=10, what="the relay leading")
        yield relay
    finally:
        await relay.stop()
        await producer.reset()


async def test_a_relay_left_idle_marks_its_last_round_at_once(
        schema: tuple[str, asyncpg.Pool], topic: str) -> None:
    _, pool = schema
    # A poll longer than the test: the rows are marked after `mark_after_seconds`, not by a
    # round the poll would start.
    async with leading(schema, poll_seconds=600):
        await pool.executemany("INSERT INTO outbox (topic, key, value) VALUES ($1, $2, $3)",
                               [(topic, f"k{i}", f"v{i}".encode()) for i in range(5)])
        await eventually(lambda: _drained(pool), timeout=5, what="every row marked sent")
        assert sorted(await read_topic(topic, 5)) == [f"v{i}".encode() for i in range(5)]


async def test_a_relay_stopped_before_its_next_round_marks_what_it_published(
        schema: tuple[str, asyncpg.Pool], topic: str) -> None:
    _, pool = schema
    # A poll and a mark longer than the test: only the insert's notification wakes the relay,
    # once, and nothing but stopping marks what it published.
    async with leading(schema, poll_seconds=600, mark_after_seconds=600) as relay:
        await asyncio.sleep(1)  # its first round done, listening
        await pool.execute("INSERT INTO outbox (topic, key, value) VALUES ($1, 'k', 'last')",
                           topic)
        assert await read_topic(topic, 1) == [b"last"]
        assert await unsent(pool) == 1  # acknowledged; the next round would mark it
        await relay.stop()
        assert await unsent(pool) == 0


async def _leads(relay: outbox.OutboxRelay) -> bool:
    return relay.is_leader


async def _drained(pool: asyncpg.Pool) -> bool:
    return await unsent(pool) == 0
