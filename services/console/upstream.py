"""How the console acts: the services' operators' HTTP APIs (with SHOPKEEPER_ADMIN_TOKEN; the
console enforces its own roles before it calls), and, for what the platform takes only as an
event from outside (a cancellation, a stock adjustment, a returned parcel, a backorder answer,
a DLQ replay), Kafka, as the CLI and a storefront do.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import httpx
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord
from aiokafka.errors import KafkaError

from shared import dlq
from shared.settings import get_settings, service_url

log = logging.getLogger(__name__)


class UpstreamError(Exception):
    """A service refused or could not be reached: shown to the operator with the service's
    reason, never a traceback."""

    def __init__(self, service: str, status: int, detail: str) -> None:
        super().__init__(f"{service} answered {status}: {detail}")
        self.service, self.status, self.detail = service, status, detail


class Upstream:
    def __init__(self, timeout: float) -> None:
        token = get_settings().shopkeeper_admin_token
        # Idle connections are dropped before the services' uvicorn closes them (it keeps one
        # 5 s): a request on a connection the server is closing fails with RemoteProtocolError.
        self.http = httpx.AsyncClient(timeout=timeout,
                                      headers={"Authorization": f"Bearer {token}"},
                                      limits=httpx.Limits(keepalive_expiry=2.0))
        self._producer: AIOKafkaProducer | None = None
        self._lock = asyncio.Lock()

    async def close(self) -> None:
        await self.http.aclose()
        if self._producer is not None:
            await self._producer.stop()

    @staticmethod
    def url(service: str, path: str) -> str:
        """SHOPKEEPER_<SERVICE>_URL (docker-compose: http://inventory:8002), else the local
        stack's port on 127.0.0.1."""
        return f"{service_url(service)}{path}"

    async def call(self, service: str, method: str, path: str, *, body: Any = None,
                   params: dict[str, Any] | None = None, operator: str | None = None,
                   ok: tuple[int, ...] = (200, 201)) -> Any:
        headers = {"X-Operator": operator} if operator else {}
        try:
            try:
                r = await self.http.request(method, self.url(service, path), json=body,
                                            params=params, headers=headers)
            except httpx.RemoteProtocolError:
                if method != "GET":
                    raise
                # A kept-alive connection closed under us: a read is asked again, once.
                r = await self.http.request(method, self.url(service, path), params=params,
                                            headers=headers)
        except httpx.HTTPError as exc:
            log.warning("console could not reach %s %s (%s)", service, path, type(exc).__name__)
            raise UpstreamError(service, 503, f"unreachable ({type(exc).__name__})") from None
        if r.status_code not in ok:
            raise UpstreamError(service, r.status_code, _detail(r))
        return r.json() if r.content else None

    async def get(self, service: str, path: str, **params: Any) -> Any:
        clean = {k: v for k, v in params.items() if v not in (None, "")}
        return await self.call(service, "GET", path, params=clean)

    async def get_or_none(self, service: str, path: str) -> Any:
        try:
            return await self.call(service, "GET", path)
        except UpstreamError as exc:
            if exc.status == 404:
                return None
            raise

    async def raw(self, service: str, path: str) -> httpx.Response:
        try:
            return await self.http.get(self.url(service, path))
        except httpx.HTTPError as exc:
            raise UpstreamError(service, 503, f"unreachable ({type(exc).__name__})") from None

    # --- Kafka --------------------------------------------------------------------------------
    async def producer(self) -> AIOKafkaProducer:
        async with self._lock:
            if self._producer is None:
                producer = AIOKafkaProducer(
                    bootstrap_servers=get_settings().kafka_bootstrap_servers, acks="all",
                    enable_idempotence=True, request_timeout_ms=10000)
                try:
                    await asyncio.wait_for(producer.start(), 15)
                except (KafkaError, OSError, TimeoutError) as exc:
                    await producer.stop()
                    raise UpstreamError("kafka", 503, f"unreachable ({type(exc).__name__})"
                                        ) from None
                self._producer = producer
            return self._producer

    async def publish(self, topic: str, key: str | None, value: dict[str, Any] | bytes,
                      headers: list[tuple[str, bytes]] | None = None) -> None:
        raw = value if isinstance(value, bytes) else json.dumps(value).encode()
        producer = await self.producer()
        try:
            await producer.send_and_wait(topic, raw, key=key.encode() if key else None,
                                         headers=headers)
        except KafkaError as exc:
            raise UpstreamError("kafka", 503, f"publish to {topic} failed ({exc})") from None


def _detail(r: httpx.Response) -> str:
    if r.headers.get("content-type", "").startswith("application/json"):
        body = r.json()
        if isinstance(body, dict) and "detail" in body:
            return json.dumps(body["detail"], ensure_ascii=False) if not isinstance(
                body["detail"], str) else body["detail"]
    return r.text[:300]


# --- dead letters (shared.dlq, the CLI's reader too) --------------------------------------------
async def dead_letters(topic: str, *, limit: int = 200, offsets: set[tuple[int, int]] | None = None
                       ) -> tuple[AIOKafkaConsumer, list[ConsumerRecord[bytes, bytes]]]:
    """Records of `topic`.dlq from the start. The caller stops the returned consumer."""
    try:
        return await dlq.read(get_settings().kafka_bootstrap_servers, topic, limit=limit,
                              offsets=offsets)
    except dlq.DlqUnavailable as exc:
        raise UpstreamError("kafka", 503, str(exc)) from None


async def replayed_positions(topic: str) -> dict[int, int]:
    """Per DLQ partition, the replay group's committed offset: records below it were replayed."""
    try:
        return await dlq.replayed_positions(get_settings().kafka_bootstrap_servers, topic)
    except dlq.DlqUnavailable as exc:
        raise UpstreamError("kafka", 503, str(exc)) from None
