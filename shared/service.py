"""The runtime of one service instance: Postgres pool and migrations, outbox relay, Kafka
consumer, and the operators' HTTP (`/healthz`, `/readyz`, `/metrics` plus the service's own API)
on its docs/contract.md port. Resources start in the app's lifespan, never at import time.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import importlib.metadata
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import uvicorn
from fastapi import APIRouter, Depends, FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from tenacity import AsyncRetrying, stop_after_attempt
from tenacity.wait import wait_base

from . import outbox
from .db import connect, migrate
from .http import GuardedH11, HttpGuard, require_admin
from .logging import setup_logging
from .messaging import Consumer, Handlers, prune_inbox_forever
from .money import load_rates, rates_json
from .responses import Alive, FxRate, QuarantinedRows, Ready, Released
from .retry import jittered, log_before_retry
from .settings import (
    Settings,
    check_credentials,
    get_settings,
    service_batch_size,
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
    # More: it gathers up to ~1 MB for this long first, so a service nobody waits on event by
    # event (a read model; after-sales and channels, off the order's way to the door) handles
    # bigger runs per transaction and costs less per event. SHOPKEEPER_<NAME>_FETCH_WAIT_MS
    # overrides it.
    fetch_wait_ms: int = 0
    # The most records per run (one transaction) for this service, when not SHOPKEEPER_BATCH_SIZE:
    # a read model takes bigger runs. SHOPKEEPER_<NAME>_BATCH_SIZE overrides it.
    batch_size: int | None = None
    # Write paths that do not take the admin token (they authenticate otherwise, or are
    # harmless): the HTTP guard lets them through to the route (shared/http.py).
    open_writes: tuple[str, ...] = ()
    # The HTTP guard's body limit for this service, when not SHOPKEEPER_HTTP_MAX_BODY_BYTES.
    max_body_bytes: int | None = None
    # The HTTP guard's per-client rate for the open writes, when not the one of every write.
    open_writes_per_second: float | None = None

    def app(self) -> FastAPI:
        settings = get_settings()

        @contextlib.asynccontextmanager
        async def lifespan(app: FastAPI) -> AsyncIterator[None]:
            setup_logging(self.name, settings.shopkeeper_log_level)
            check_credentials(self.name, settings)
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
                                batch_size=service_batch_size(
                                    self.name, self.batch_size or settings.shopkeeper_batch_size),
                                fetch_wait_ms=service_fetch_wait_ms(self.name,
                                                                    self.fetch_wait_ms),
                                max_clock_skew_seconds=settings.shopkeeper_max_clock_skew_seconds,
                                commit_interval_ms=settings.shopkeeper_commit_interval_ms)
            runtime = Runtime(self.name, settings, pool, producer, relay, consumer)
            app.state.runtime = runtime
            relay.start()
            runtime.spawn(outbox.prune_forever(pool, settings.shopkeeper_outbox_retention_hours),
                          "outbox-prune")
            runtime.spawn(prune_inbox_forever(pool, settings.kafka_bootstrap_servers,
                                              list(self.handlers.subscriptions),
                                              settings.shopkeeper_inbox_retention_days),
                          "inbox-prune")
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

        # No OpenTelemetry here (metrics are Prometheus'): FastAPI's native telemetry would
        # otherwise look its providers up in the environment on every request (measured: about
        # 5% of a channels webhook's CPU).
        app = FastAPI(title=f"Shopkeeper {self.name}", lifespan=lifespan,
                      version=_version(),
                      telemetry={"tracing": False, "metrics": False, "logs": False},
                      description=f"The operators' HTTP of {self.name} (docs/{self.name}.md)."
                      " Writes and personal data need `Authorization: Bearer"
                      " <SHOPKEEPER_ADMIN_TOKEN>`: press Authorize.")
        app.add_api_route("/healthz", _healthz, methods=["GET"], response_model=Alive,
                          summary="Liveness: the process answers")
        app.add_api_route("/readyz", _readyz, methods=["GET"], response_model=Ready,
                          summary="Readiness: Postgres, the consumer and the relay",
                          responses={503: {"model": Ready, "description": "not ready"}})
        app.add_api_route("/metrics", _metrics, methods=["GET"], response_class=PlainTextResponse,
                          summary="Prometheus metrics (text exposition format)",
                          responses={200: {"content": {CONTENT_TYPE_LATEST: {}}}})
        app.include_router(outbox_router())
        app.include_router(_fx_router())
        if self.router is not None:
            app.include_router(self.router)
        app.add_middleware(HttpGuard, open_writes=self.open_writes,
                           max_body_bytes=self.max_body_bytes,
                           open_writes_per_second=self.open_writes_per_second)
        return app

    def run(self) -> None:
        settings = get_settings()
        uvicorn.run(self.app(), host=settings.shopkeeper_http_host, port=service_port(self.name),
                    log_config=None, access_log=False, lifespan="on", http=GuardedH11,
                    loop=settings.shopkeeper_event_loop, timeout_keep_alive=5)


def _version() -> str:
    try:
        return importlib.metadata.version("shopkeeper")
    except importlib.metadata.PackageNotFoundError:  # run from a checkout without installing
        return "0+unknown"


def _tune_gc() -> None:
    """Startup's objects (modules, models, routes) live as long as the process: frozen, the
    cyclic collector no longer walks them on every full collection. Each event allocates many
    short-lived objects (pydantic models, asyncpg records); a gen-0 threshold of 10,000 instead
    of 700 collects them in fewer, larger passes."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(10_000, 10, 10)


START_ATTEMPTS = 60


async def _start_with_retry(consumer: Consumer, wait: wait_base | None = None) -> None:
    """Start the consumer, waiting for Kafka with jittered backoff (shared/retry.py): 60 tries,
    about two and a half minutes, then the last error stops the start."""
    async for attempt in AsyncRetrying(
            stop=stop_after_attempt(START_ATTEMPTS), wait=wait or jittered(0.5, 5.0),
            reraise=True, before_sleep=log_before_retry(log, "Kafka not reachable yet")):
        with attempt:
            try:
                await consumer.start()
            except Exception:  # Kafka not up yet: leave nothing half-started behind
                with contextlib.suppress(Exception):
                    await consumer.stop()
                raise


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
    checks["kafka_consumer"] = consumer.started and consumer.consumer is not None
    checks["consumer_lag"] = consumer.total_lag
    checks["consumer_progressing"] = not consumer.stalled
    checks["outbox_relay"] = runtime.relay.last_error or "ok"
    # Rows the broker refused for good: reported, not a reason to take the instance out of
    # service (the rest flows; an operator looks at them: `shopkeeper outbox quarantined`).
    checks["outbox_quarantined"] = runtime.relay.quarantined
    checks["infrastructure_fault"] = consumer.fault or "none"
    for details in runtime.readiness:
        try:
            async with asyncio.timeout(3):
                checks.update(await details(runtime))
        except Exception as exc:
            checks[getattr(details, "__name__", "details")] = f"unavailable: {exc}"
    ready = (checks["postgres"] is True and checks["kafka_consumer"]
             and checks["consumer_progressing"] and consumer.fault is None)
    return JSONResponse({"ready": ready, "checks": checks}, status_code=200 if ready else 503)


def _runtime_outbox(request: Request) -> tuple[str, asyncpg.Pool]:
    runtime: Runtime = request.app.state.runtime
    return runtime.name, runtime.pool


def outbox_router(owner: Callable[[Request], tuple[str, asyncpg.Pool]] = _runtime_outbox
                  ) -> APIRouter:
    """Quarantined outbox rows (shared/outbox.py `quarantine`), for operators: every service's,
    and the web console's (whose `owner` is its name and pool, having no Runtime)."""
    router = APIRouter(prefix="/outbox", dependencies=[Depends(require_admin)])

    @router.get("/quarantined", response_model=QuarantinedRows)
    async def list_quarantined(request: Request, limit: int = 100) -> dict[str, Any]:
        name, pool = owner(request)
        async with pool.acquire() as conn:
            rows = await outbox.quarantined(conn, min(max(limit, 1), 1000))
        return {"service": name, "rows": [
            {**r, "created_at": r["created_at"].isoformat(),
             "quarantined_at": r["quarantined_at"].isoformat()} for r in rows]}

    @router.post("/quarantined/{row_id}/release", response_model=Released)
    async def release(request: Request, row_id: int) -> dict[str, Any]:
        name, pool = owner(request)
        async with pool.acquire() as conn:
            if not await outbox.release(conn, row_id):
                raise HTTPException(404, f"no quarantined outbox row {row_id} in {name}")
        log.info("outbox row %d of %s released from quarantine by an operator", row_id, name)
        return {"released": row_id}

    return router


def _fx_router() -> APIRouter:
    """The exchange rates this service knows (shared/fx.py), newest per pair."""
    router = APIRouter(prefix="/fx", dependencies=[Depends(require_admin)])

    @router.get("/rates", response_model=list[FxRate])
    async def known_rates(request: Request) -> list[dict[str, str]]:
        runtime: Runtime = request.app.state.runtime
        async with runtime.pool.acquire() as conn:
            return rates_json(await load_rates(conn))

    return router


async def _metrics() -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
