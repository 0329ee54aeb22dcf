"""A delivery into the channel's inbox: recorded (deduplicated on the platform's delivery id)
and turned into `orders.placed` / `orders.cancel_requested` outbox rows, in one transaction.
Webhooks answer 200 only after it commits; the outbox relay publishes when Kafka is there."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from shared import outbox, topics
from shared.contracts import CancelRequested, OrderPlaced, order_key, utcnow
from shared.db import TRANSIENT_DB_ERRORS, Conn

from . import metrics, store
from .platforms.base import ChannelConfig, Inbound, Unmappable

log = logging.getLogger(__name__)
# Event ids derive from (store, delivery id): the same delivery always makes the same event.
DELIVERY_NS = uuid.UUID("2f0c9a4e-8d57-4c1b-b6a2-51e3f0d9c7a4")
MAPPING_ERRORS = (Unmappable, ValidationError, ValueError, TypeError, KeyError, AttributeError)


def map_delivery(cfg: ChannelConfig, delivery_id: str,
                 mapper: Callable[[], Inbound]) -> tuple[Inbound, Any]:
    """Run the platform's mapping and validate the result against the contract. A delivery that
    cannot become an order is `unmappable` with the reason (it is still recorded and answered
    200: the platform re-sending it would not help)."""
    try:
        inbound = mapper()
        event: Any = None
        if inbound.outcome == "placed":
            value = dict(inbound.value or {})
            value["event_id"] = str(uuid.uuid5(DELIVERY_NS, f"{cfg.store}/{delivery_id}"))
            value["occurred_at"] = value.get("occurred_at") or utcnow().isoformat()
            event = OrderPlaced.model_validate(value)
        elif inbound.outcome == "cancel_requested":
            event = CancelRequested.model_validate({
                **(inbound.value or {}),
                "event_id": str(uuid.uuid5(DELIVERY_NS, f"{cfg.store}/{delivery_id}"))})
        return inbound, event
    except MAPPING_ERRORS as exc:
        reason = str(exc).replace("\n", " ")[:500]
        if isinstance(exc, ValidationError):
            reason = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}"
                               for e in exc.errors()[:5])[:500]
        return Inbound("unmappable", reason=f"{type(exc).__name__}: {reason}"), None


@dataclass(frozen=True)
class Delivery:
    """One delivery as the route (or the poller) read it, ready to be committed."""

    cfg: ChannelConfig
    delivery_id: str
    topic: str
    inbound: Inbound
    event: Any
    body: bytes | None


async def accept(conn: Conn, cfg: ChannelConfig, delivery_id: str, topic: str,
                 inbound: Inbound, event: Any, body: bytes | None) -> bool:
    """In the caller's transaction. False: this delivery was seen before (nothing done)."""
    return (await accept_many(conn, [Delivery(cfg, delivery_id, topic, inbound, event,
                                              body)]))[0]


async def accept_many(conn: Conn, batch: list[Delivery]) -> list[bool]:
    """Several deliveries in the caller's transaction, in three round trips whatever their
    number: the inbox rows (one statement), their events (one outbox statement), the orders
    kept for write-back. One result per delivery: False when it was seen before (also when
    the same delivery comes twice in the batch: the first one counts)."""
    inserted = await store.record_deliveries(conn, [
        (d.cfg.store, d.delivery_id, d.cfg.platform, d.topic, d.inbound.external_order_id,
         d.inbound.outcome, d.inbound.reason,
         d.body if d.inbound.outcome == "unmappable" else None) for d in batch])
    results: list[bool] = []
    remember: list[tuple[str, str, str, str | None, dict[str, Any], bool]] = []
    with outbox.buffered(conn):
        for d in batch:
            cfg, inbound, ext = d.cfg, d.inbound, d.inbound.external_order_id
            first = (cfg.store, d.delivery_id) in inserted
            inserted.discard((cfg.store, d.delivery_id))
            results.append(first)
            if not first:
                metrics.DELIVERIES.labels(cfg.platform, "duplicate").inc()
                continue
            metrics.DELIVERIES.labels(cfg.platform, inbound.outcome).inc()
            if inbound.outcome == "placed":
                assert isinstance(d.event, OrderPlaced)
                await outbox.enqueue(conn, topics.ORDERS_PLACED, d.event.key, d.event)
            elif inbound.outcome == "cancel_requested":
                assert isinstance(d.event, CancelRequested)
                await outbox.enqueue(conn, topics.ORDERS_CANCEL_REQUESTED, d.event.key, d.event)
            elif inbound.outcome == "unmappable":
                log.warning("%s delivery %s for store %s cannot become an order: %s; kept in"
                            " deliveries (GET /channels/%s) - fix the mapping (e.g. sku_map)"
                            " and have the platform re-send it", cfg.platform, d.delivery_id,
                            cfg.store, inbound.reason, cfg.store)
            if ext and inbound.outcome in ("placed", "cancel_requested"):
                remember.append((order_key(cfg.store, ext), cfg.store, ext, inbound.order_name,
                                 inbound.platform_data, inbound.outcome == "cancel_requested"))
        await outbox.flush_buffer()
    await store.remember_orders(conn, remember)
    return results


class Committer:
    """Group commit for webhooks. Each delivery must be committed before its 200, and a commit
    waits for the WAL to reach the disk: one transaction per delivery made 50 concurrent
    webhooks queue for the pool's connections and the disk one by one (8.6 s p99). Instead,
    the routes hand their deliveries here and wait; `workers` tasks each take every delivery
    waiting (up to `max_batch`) and commit them in one transaction, then answer them all. A
    lone delivery is committed at once (no timer), so an idle service answers as fast as
    before. If a batch fails, each delivery is tried in its own transaction, so one bad
    delivery fails only itself; a database that is down fails them all (the platform retries)."""

    def __init__(self, pool: Any, *, max_batch: int = 200, workers: int = 1) -> None:
        self.pool = pool
        self.max_batch = max_batch
        self.queue: asyncio.Queue[tuple[Delivery, asyncio.Future[bool]]] = asyncio.Queue()
        self.tasks = [asyncio.create_task(self._work(), name=f"channels-commit-{n}")
                      for n in range(workers)]

    async def submit(self, delivery: Delivery) -> bool:
        for n, task in enumerate(self.tasks):  # a worker that died is replaced (never expected)
            if task.done():
                self.tasks[n] = asyncio.create_task(self._work(), name=f"channels-commit-{n}")
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self.queue.put_nowait((delivery, future))
        # shield: a client hanging up does not cancel the commit others share.
        return await asyncio.shield(future)

    async def _work(self) -> None:
        while True:
            batch = [await self.queue.get()]
            while len(batch) < self.max_batch and not self.queue.empty():
                batch.append(self.queue.get_nowait())
            metrics.COMMIT_BATCH.observe(len(batch))
            try:
                async with self.pool.acquire() as conn, conn.transaction():
                    results = await accept_many(conn, [d for d, _ in batch])
            except asyncio.CancelledError:
                for _, f in batch:
                    if not f.done():
                        f.cancel()
                raise
            except Exception as exc:
                if len(batch) == 1 or isinstance(exc, TRANSIENT_DB_ERRORS):
                    for _, f in batch:
                        if not f.done():
                            f.set_exception(exc)
                    continue
                log.warning("a batch of %d deliveries failed to commit (%s); committing them"
                            " one by one", len(batch), exc)
                for d, f in batch:
                    try:
                        async with self.pool.acquire() as conn, conn.transaction():
                            [first] = await accept_many(conn, [d])
                    except Exception as one:
                        if not f.done():
                            f.set_exception(one)
                    else:
                        if not f.done():
                            f.set_result(first)
                continue
            for (_, f), first in zip(batch, results, strict=True):
                if not f.done():
                    f.set_result(first)


_committers: dict[int, Committer] = {}


def committer(pool: Any) -> Committer:
    """This process's committer for the pool (made on first use, inside the running loop)."""
    c = _committers.get(id(pool))
    if c is None or c.pool is not pool:
        c = _committers[id(pool)] = Committer(pool)
    return c
