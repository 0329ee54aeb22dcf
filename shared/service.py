"""The runtime of one service instance: Postgres pool and migrations, outbox relay, Kafka
consumer, and the operators' HTTP (`/healthz`, `/readyz`, `/metrics` plus the service's own API)
on its CONTRACT.md port. Resources start in the app's lifespan, never at import time.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import uvicorn
from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from . import outbox
from .db import connect, migrate
from .logging import setup_logging
from .messaging import Consumer, Handlers
from .settings import (
    Settings,
    get_settings,
    service_database_url,
    service_fetch_wait_ms,
    service_port,
)

log = logging.getLogger(__name__)

Hook = Callable[["Runtime"], Awaitable[None]]


@dataclass
class Runtime:
    """What a running instance holds; the API reaches it as `request.app.state.runtime`."""

    name: str
    settings: Settings
    pool: asyncpg.Pool
    producer: outbox.ProducerHolder
    relay: outbox.OutboxRelay
    consumer: Consumer
    background: list[asyncio.Task[Any]] = field(default_factory=list)
    # A service's own /readyz details (e.g. channels' write-back state): each returns a dict
    # merged into `checks`; informational, they do not decide readiness.
    readiness: list[Callable[[Runtime], Awaitable[dict[str, Any]]]] = field(default_factory=list)

    def spawn(self, coro: Awaitable[Any], name: str) -> None:
        self.background.append(asyncio.ensure_future(coro))
        self.background[-1].set_name(name)


@dataclass
class Service:
    name: str
    handlers: Handlers
    service_dir: Path
    router: APIRouter | None = None
    on_start: list[Hook] = field(default_factory=list)
    # 0: the broker answers a fetch as soon as a record is there (services on the order's path).
    # More: it gathers up to ~1 MB for this long first, so a read model that nobody waits on
    # handles bigger runs per transaction and costs less per event. SHOPKEEPER_<NAME>_FETCH_WAIT_MS
    # overrides it.
    fetch_wait_ms: int = 0

    def app(self) -> FastAPI:
        settings = get_settings()

        @contextlib.asynccontextmanager
        async def lifespan(app: FastAPI) -> AsyncIterator[None]:
            setup_logging(self.name, settings.shopkeeper_log_level)
            dsn = service_database_url(self.name, settings)
            pool = await connect(dsn, self.name)
            await migrate(pool, self.name, self.service_dir)
            producer = outbox.ProducerHolder(settings.kafka_bootstrap_servers,
                                             f"shopkeeper-{self.name}")
            relay = outbox.OutboxRelay(pool, dsn, self.name, producer,
                                       settings.shopkeeper_outbox_poll_seconds)
            consumer = Consumer(self.name, settings.kafka_bootstrap_servers, pool, producer,
                                self.handlers,
                                max_attempts=settings.shopkeeper_handler_max_attempts,
                                stall_seconds=settings.shopkeeper_stall_seconds,
                                batch_size=settings.shopkeeper_batch_size,
                                fetch_wait_ms=service_fetch_wait_ms(self.name,
                                                                    self.fetch_wait_ms))
            runtime = Runtime(self.name, settings, pool, producer, relay, consumer)
            app.state.runtime = runtime
            relay.start()
            runtime.spawn(outbox.prune_forever(pool, settings.shopkeeper_outbox_retention_hours),
                          "outbox-prune")
            for hook in self.on_start:
                await hook(runtime)
            await _start_with_retry(consumer)
            _tune_gc()
            log.info("%s started on port %d", self.name, service_port(self.name))
            try:
                yield
            finally:
                for task in runtime.background:
                    task.cancel()
                await consumer.stop()
                await relay.stop()
                await producer.reset()
                await pool.close()
                log.info("%s stopped", self.name)

        app = FastAPI(title=f"Shopkeeper {self.name}", lifespan=lifespan)
        app.add_api_route("/healthz", _healthz, methods=["GET"])
        app.add_api_route("/readyz", _readyz, methods=["GET"])
        app.add_api_route("/metrics", _metrics, methods=["GET"])
        if self.router is not None:
            app.include_router(self.router)
        return app

    def run(self) -> None:
        settings = get_settings()
        uvicorn.run(self.app(), host=settings.shopkeeper_http_host, port=service_port(self.name),
                    log_config=None, access_log=False, lifespan="on")


def _tune_gc() -> None:
    """Startup's objects (modules, models, routes) live as long as the process: frozen, the
    cyclic collector no longer walks them on every full collection. Each event allocates many
    short-lived objects (pydantic models, asyncpg records); a gen-0 threshold of 10,000 instead
    of 700 collects them in fewer, larger passes."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(10_000, 10, 10)


async def _start_with_retry(consumer: Consumer) -> None:
    delay = 0.5
    for _ in range(60):
        try:
            await consumer.start()
            return
        except Exception as exc:  # Kafka not up yet
            log.warning("Kafka not reachable yet (%s); retrying in %.1fs", exc, delay)
            with contextlib.suppress(Exception):
                await consumer.stop()
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)
    await consumer.start()


async def _healthz() -> dict[str, str]:
    return {"status": "alive"}


async def _readyz(request: Request) -> JSONResponse:
    runtime: Runtime | None = getattr(request.app.state, "runtime", None)
    checks: dict[str, Any] = {}
    if runtime is None:
        return JSONResponse({"ready": False, "checks": {"started": False}}, status_code=503)
    try:
        async with asyncio.timeout(3):
            await runtime.pool.fetchval("SELECT 1")
        checks["postgres"] = True
    except Exception as exc:
        checks["postgres"] = f"unreachable: {exc}"
    consumer = runtime.consumer
    checks["kafka_consumer"] = consumer.started and consumer.subscriber.consumer is not None
    checks["consumer_lag"] = consumer.total_lag
    checks["consumer_progressing"] = not consumer.stalled
    checks["outbox_relay"] = runtime.relay.last_error or "ok"
    for details in runtime.readiness:
        try:
            async with asyncio.timeout(3):
                checks.update(await details(runtime))
        except Exception as exc:
            checks[getattr(details, "__name__", "details")] = f"unavailable: {exc}"
    ready = (checks["postgres"] is True and checks["kafka_consumer"]
             and checks["consumer_progressing"])
    return JSONResponse({"ready": ready, "checks": checks}, status_code=200 if ready else 503)


async def _metrics() -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
