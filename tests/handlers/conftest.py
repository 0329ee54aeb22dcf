"""Handler tests without Kafka (issue 18, docs/messaging.md "The unit of work"): a handler is
called with a run of events in a `UnitOfWork` against Postgres alone, in a scratch schema made
from the service's own migrations (seed data included), and what it published is read back from
the schema's outbox. Postgres is the local stack's (`stack` fixture); no broker is touched."""

from __future__ import annotations

import importlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg
import pytest

from shared.contracts import Event
from shared.uow import UnitOfWork
from tests.scratch import scratch_schema


@dataclass
class Published:
    topic: str
    key: str | None
    value: dict[str, Any]


@dataclass
class ServiceDb:
    """A service's scratch schema: `run(handler, events)` handles a run like the consumer does
    (inbox first, duplicates dropped, one unit of work), `published()` reads the outbox."""

    service: str
    pool: asyncpg.Pool

    async def run(self, handler: Callable[[UnitOfWork, list[Any]], Awaitable[None]],
                  events: Sequence[Event], topic: str = "test") -> list[Published]:
        """Handle `events` as one run; returns what this run published, in order. Events the
        service's subscription to `topic` does not want are left out, as the consumer does."""
        sub = importlib.import_module(f"services.{self.service}.handlers").handlers \
            .subscriptions.get(topic)
        if sub is not None and sub.wanted is not None:
            events = [e for e in events if sub.wanted(e)]
            if not events:
                return []
        before = await self.pool.fetchval("SELECT coalesce(max(id), 0) FROM outbox")
        async with self.pool.acquire() as conn, UnitOfWork.transaction(
                conn, self.service, hook_cause=str(events[0].event_id)) as uow:
            fresh = await uow.first_times([(e.event_id, topic) for e in events])
            todo = []
            for e in events:
                if e.event_id in fresh:
                    fresh.discard(e.event_id)
                    todo.append(e)
            if todo:
                await handler(uow, todo)
        return await self.published(after=before)

    async def published(self, topic: str | None = None, after: int = 0) -> list[Published]:
        rows = await self.pool.fetch(
            "SELECT topic, key, value FROM outbox WHERE id > $1 AND ($2::text IS NULL OR"
            " topic = $2) ORDER BY id", after, topic)
        return [Published(r["topic"], r["key"], json.loads(r["value"])) for r in rows]


@pytest.fixture
def service_db(stack: None) -> Callable[[str], Any]:
    """`async with service_db("inventory") as db:` a fresh schema with the service's
    migrations; dropped afterwards."""
    import contextlib

    @contextlib.asynccontextmanager
    async def make(service: str) -> AsyncIterator[ServiceDb]:
        async with scratch_schema(service) as pool:
            yield ServiceDb(service, pool)

    return make
