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
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaError

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
        self.http = httpx.AsyncClient(timeout=timeout,
                                      headers={"Authorization": f"Bearer {token}"})
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
            r = await self.http.request(method, self.url(service, path), json=body,
                                        params=params, headers=headers)
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


# --- dead letters -----------------------------------------------------------------------------
REPLAY_GROUP = "shopkeeper-dlq-replay"  # the CLI's: a message replayed by either is not again


async def dead_letters(topic: str, *, limit: int = 200, offsets: set[tuple[int, int]] | None = None,
                       group: str | None = None) -> tuple[AIOKafkaConsumer, list[Any]]:
    """Records of `topic`.dlq from the start (group None) or from `group`'s committed position.
    The caller stops the returned consumer."""
    consumer = AIOKafkaConsumer(bootstrap_servers=get_settings().kafka_bootstrap_servers,
                                group_id=group, enable_auto_commit=False,
                                auto_offset_reset="earliest")
    try:
        await asyncio.wait_for(consumer.start(), 15)
        parts = await _partitions(consumer, f"{topic}.dlq")
        consumer.assign(parts)
        if group is None:
            await consumer.seek_to_beginning(*parts)
        ends = await consumer.end_offsets(parts)
        records: list[Any] = []
        while len(records) < limit:
            positions = {tp: await consumer.position(tp) for tp in parts}
            if all(positions[tp] >= ends[tp] for tp in parts):
                break
            batch = await consumer.getmany(timeout_ms=1000, max_records=limit - len(records))
            for recs in batch.values():
                records.extend(r for r in recs
                               if offsets is None or (r.partition, r.offset) in offsets)
        return consumer, records
    except (KafkaError, OSError, TimeoutError) as exc:
        await consumer.stop()
        raise UpstreamError("kafka", 503, f"cannot read {topic}.dlq ({type(exc).__name__})"
                            ) from None
    except BaseException:
        await consumer.stop()
        raise


async def _partitions(consumer: AIOKafkaConsumer, topic: str) -> list[TopicPartition]:
    """Every partition of a topic, waiting for metadata (a fresh consumer knows none yet)."""
    for _ in range(50):
        parts = consumer.partitions_for_topic(topic)
        if parts:
            return [TopicPartition(topic, p) for p in sorted(parts)]
        await consumer._client.force_metadata_update()
        await asyncio.sleep(0.1)
    raise UpstreamError("kafka", 404, f"no topic {topic}")


async def replayed_positions(topic: str) -> dict[int, int]:
    """Per DLQ partition, the replay group's committed offset: records below it were replayed."""
    consumer = AIOKafkaConsumer(bootstrap_servers=get_settings().kafka_bootstrap_servers,
                                group_id=REPLAY_GROUP, enable_auto_commit=False)
    try:
        await asyncio.wait_for(consumer.start(), 15)
        out: dict[int, int] = {}
        for tp in await _partitions(consumer, f"{topic}.dlq"):
            out[tp.partition] = await consumer.committed(tp) or 0
        return out
    except (KafkaError, OSError, TimeoutError) as exc:
        raise UpstreamError("kafka", 503, f"cannot read replay positions ({type(exc).__name__})"
                            ) from None
    finally:
        await consumer.stop()
