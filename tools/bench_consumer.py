"""FastStream's subscriber or our own poll loop? Measured, not argued (docs/messaging.md "Why our
own poll loop").

Both consume the same topics on the same broker in this one process, with the same work per
record (none: the handler only notes when each record arrived), committing offsets after each
batch as our guarantees require (manual commit after handling):

- **faststream**: a FastStream `KafkaBroker` batch subscriber as its documentation writes it
  (`batch=True`, `max_records=100`, `AckPolicy.MANUAL`, `await msg.ack()` after the batch, its
  dependency injection and JSON decoding on);
- **ours**: `shared.messaging.Consumer`'s poll loop itself (stream-time ordering, partition ends,
  exact offset commits), with only its `process_batch` replaced by the same no-op handler, so
  Postgres is out of the measurement for both.

Figures: throughput draining 20,000 records already written; latency from send to handler at
20 records/s (p50, p99); CPU of this process per idle second (a subscribed consumer with
nothing to read). Run on a stack with Kafka up (`python -m stack up --infra-only`):

    .venv/bin/python -m tools.bench_consumer
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from shared import outbox, topics
from shared.contracts import FeedbackGiven
from shared.messaging import Consumer, Handlers, RawMessage
from shared.settings import get_settings

PARTITIONS = 6


class Sink:
    """What both consumers do with a record: note when it arrived, and its send time."""

    def __init__(self) -> None:
        self.arrived: dict[str, float] = {}
        self.delays: list[float] = []

    def take(self, value: bytes | None) -> None:
        body = json.loads(value or b"{}")
        now = time.time()
        self.arrived[body["n"]] = now
        self.delays.append(1000 * (now - body["sent"]))


async def make_topic(bootstrap: str) -> str:
    name = f"bench.consumer.{uuid.uuid4().hex[:8]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name, PARTITIONS, 1)])
    finally:
        await admin.close()
    return name


async def produce(bootstrap: str, topic: str, count: int, rate: float | None = None) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all",
                                enable_idempotence=True, linger_ms=0 if rate else 5)
    await producer.start()
    try:
        t0 = time.perf_counter()
        pad = "x" * 500  # about the size of an order event
        for i in range(count):
            if rate:
                delay = t0 + i / rate - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
            value = json.dumps({"n": f"{i}", "sent": time.time(), "pad": pad}).encode()
            fut = await producer.send(topic, value, key=f"k{i % 97}".encode())
            if rate:
                await fut
        await producer.flush()
    finally:
        await producer.stop()


# --- the two consumers ------------------------------------------------------------------------
Starter = Callable[[str, str, Sink], Awaitable[Callable[[], Awaitable[None]]]]


async def start_faststream(bootstrap: str, topic: str, sink: Sink
                           ) -> Callable[[], Awaitable[None]]:
    from faststream import AckPolicy
    from faststream.kafka import KafkaBroker, KafkaMessage

    broker = KafkaBroker(bootstrap, logger=None)

    @broker.subscriber(topic, group_id=f"fs-{uuid.uuid4().hex[:6]}", batch=True,
                       max_records=100, auto_offset_reset="earliest",
                       ack_policy=AckPolicy.MANUAL)
    async def handle(body: list[Any], msg: KafkaMessage) -> None:
        for record in msg.raw_message:
            sink.take(record.value)
        await msg.ack()

    await broker.start()
    return broker.stop


class _NoDbConsumer(Consumer):
    """Our poll loop as it runs in every service, the transaction replaced by the sink."""

    sink: Sink

    async def process_batch(self, batch: list[RawMessage]) -> None:
        for raw in batch:
            self.sink.take(raw.value)


async def start_ours(bootstrap: str, topic: str, sink: Sink) -> Callable[[], Awaitable[None]]:
    handlers = Handlers()
    bench_topic = topics.Topic(topic, "n", FeedbackGiven, "bench", False)

    @handlers.on(bench_topic)
    async def never_called(uow: Any, events: list[Any]) -> None:  # process_batch replaced
        raise AssertionError("not used")

    consumer = _NoDbConsumer(f"ours-{uuid.uuid4().hex[:6]}", bootstrap, None,  # type: ignore[arg-type]
                             outbox.ProducerHolder(bootstrap, "bench-consumer"), handlers)
    consumer.sink = sink
    await consumer.start()
    return consumer.stop


# --- measurements -----------------------------------------------------------------------------
async def drain(bootstrap: str, start: Starter, count: int) -> float:
    topic = await make_topic(bootstrap)
    await produce(bootstrap, topic, count)
    sink = Sink()
    t0 = time.perf_counter()
    stop = await start(bootstrap, topic, sink)
    try:
        while len(sink.arrived) < count:  # noqa: ASYNC110 - a counter polled, not an event
            await asyncio.sleep(0.05)
    finally:
        await stop()
    return count / (time.perf_counter() - t0)


async def latency_and_idle(bootstrap: str, start: Starter, count: int, rate: float,
                           idle_seconds: float) -> dict[str, float]:
    topic = await make_topic(bootstrap)
    sink = Sink()
    stop = await start(bootstrap, topic, sink)
    try:
        await asyncio.sleep(3)  # joined and assigned
        cpu0, wall0 = time.process_time(), time.perf_counter()
        await asyncio.sleep(idle_seconds)
        idle = (time.process_time() - cpu0) / (time.perf_counter() - wall0)
        await produce(bootstrap, topic, count, rate)
        deadline = time.perf_counter() + 30
        while len(sink.arrived) < count and time.perf_counter() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
    finally:
        await stop()
    d = sorted(sink.delays)
    q = statistics.quantiles(d, n=100, method="inclusive")
    return {"p50_ms": round(q[49], 1), "p99_ms": round(q[98], 1),
            "idle_cpu_percent": round(100 * idle, 2), "n": len(d)}


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    bootstrap = get_settings().kafka_bootstrap_servers
    out: dict[str, Any] = {}
    for name, start in (("faststream", start_faststream), ("ours", start_ours)):
        rate = await drain(bootstrap, start, args.records)
        lat = await latency_and_idle(bootstrap, start, args.latency_records, args.rate,
                                     args.idle_seconds)
        out[name] = {"drain_records_per_s": round(rate), **lat}
        print(f"[bench-consumer] {name}: {out[name]}", flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m tools.bench_consumer")
    parser.add_argument("--records", type=int, default=20_000)
    parser.add_argument("--latency-records", type=int, default=300)
    parser.add_argument("--rate", type=float, default=20)
    parser.add_argument("--idle-seconds", type=float, default=10)
    args = parser.parse_args()
    result = asyncio.run(main_async(args))
    print("| consumer | drain (records/s) | latency p50 (ms) | p99 (ms) | idle CPU (% of a core) |")
    print("| --- | --- | --- | --- | --- |")
    for name, r in result.items():
        print(f"| {name} | {r['drain_records_per_s']:,} | {r['p50_ms']} | {r['p99_ms']} |"
              f" {r['idle_cpu_percent']} |")


if __name__ == "__main__":
    main()
