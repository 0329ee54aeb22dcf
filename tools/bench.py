"""`make bench`: Shopkeeper end to end against this machine's own limits, measured in one run.

1. raw Kafka: produce-and-consume messages per second with the services' client settings
   (acks=all, idempotence) on a scratch topic;
2. raw Postgres: transactions per second of the write pattern one consumed event costs
   (inbox insert, a state row, an outbox row, in one transaction), from concurrent connections;
3. Shopkeeper's sustained throughput: orders published at rising rates until the shipped count
   stops keeping up (automatic warehouse), in orders per second placed -> shipped;
4. latency at half that rate: p50, p95, p99 of placed -> accepted, -> reserved, -> shipped;
5. CPU seconds per 1,000 orders and peak memory per service, and the CPU of Postgres and Kafka
   (from /proc), and SQL statements per order (pg_stat_statements), over the throughput steps;
   latency at a fixed 45 orders/s, three runs (`--latency-runs`);
6. scaling: the throughput step repeated with a second instance of every service
   (`--scaling`).

Results go to a JSON file and a markdown table (docs/BENCHMARKS.md). Nothing here asserts a
timing: the smoke test only checks that the run completes and reports every figure.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import statistics
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from confluent_kafka import (
    TIMESTAMP_NOT_AVAILABLE,
    Consumer,
    KafkaError,
    Message,
    Producer,
    TopicPartition,
)

import stack.__main__ as local_stack
from shared import topics
from shared.settings import SERVICES, get_settings, service_port

from . import storefront as sf
from .simulator import behind

ROOT = Path(__file__).resolve().parent.parent
RUN = Path(os.environ.get("SHOPKEEPER_LOCAL_DIR", ROOT / ".local")) / "run"
EVENTS_PER_ORDER = 11  # consumed events (= transactions) one shipped order costs, all services


@dataclass
class Result:
    machine: dict[str, Any] = field(default_factory=dict)
    kafka_msgs_per_s: float = 0.0
    postgres_tx_per_s: float = 0.0
    postgres_orders_per_s_limit: float = 0.0
    postgres_events_per_s_in_runs: float = 0.0
    postgres_orders_per_s_limit_in_runs: float = 0.0
    steps: list[dict[str, Any]] = field(default_factory=list)
    sustained_orders_per_s: float = 0.0
    latency_ms: dict[str, dict[str, float]] = field(default_factory=dict)
    latency_rate: float = 0.0
    cpu_s_per_1000_orders: dict[str, float] = field(default_factory=dict)
    peak_rss_mb: dict[str, float] = field(default_factory=dict)
    scaling: dict[str, float] = field(default_factory=dict)
    infra_cpu_s_per_1000_orders: dict[str, float] = field(default_factory=dict)
    statements_per_order: dict[str, float] = field(default_factory=dict)
    # Postgres's write-ahead log over the throughput steps (pg_stat_wal): KB and whole-page
    # images per order (docs/OPERATIONS.md, Postgres: the write-ahead log).
    wal_per_order: dict[str, float] = field(default_factory=dict)
    fixed_rate_latency: list[dict[str, Any]] = field(default_factory=list)


def machine() -> dict[str, Any]:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        mem_kb = int(Path("/proc/meminfo").read_text().split()[1])
    except OSError:
        mem_kb = 0
    return {"cpus": os.cpu_count(), "cpu": cpu, "memory_gib": round(mem_kb / 2**20, 1),
            "python": platform.python_version(), "kernel": platform.release()}


# --- the machine's limits ---------------------------------------------------------------------
async def kafka_limit(bootstrap: str, messages: int) -> float:
    topic = f"bench.raw.{uuid.uuid4().hex[:8]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    await admin.create_topics([NewTopic(topic, 6, 1)])
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True,
                                linger_ms=2, max_batch_size=256 * 1024)
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=f"bench-{topic}",
                                enable_auto_commit=False, auto_offset_reset="earliest")
    await producer.start()
    await consumer.start()
    value = json.dumps(sf.order("bench", "raw", [("SKU", 1, "1.00")])).encode()  # ~ an order
    try:
        t0 = time.perf_counter()

        async def produce() -> None:
            for i in range(0, messages, 500):
                futures = [await producer.send(topic, value, key=str(j).encode())
                           for j in range(i, min(i + 500, messages))]
                await asyncio.gather(*futures)

        async def consume() -> None:
            seen = 0
            while seen < messages:
                batch = await consumer.getmany(timeout_ms=1000, max_records=2000)
                seen += sum(len(v) for v in batch.values())
                if batch:
                    await consumer.commit()
        await asyncio.gather(produce(), consume())
        return messages / (time.perf_counter() - t0)
    finally:
        await consumer.stop()
        await producer.stop()
        await admin.delete_topics([topic])
        await admin.close()


async def postgres_limit(admin_url: str, seconds: float, connections: int = 8,
                         run: int = 1) -> float:
    """Events/s of a handled event's writes: inbox, state, outbox, commit. With `run` > 1 the
    events go `run` to a transaction, each table written with one unnest statement, the way a
    consumer's run writes them (so with run=1 it is transactions/s)."""
    schema = f"bench_{uuid.uuid4().hex[:8]}"
    conn = await asyncpg.connect(admin_url)
    await conn.execute(f"CREATE SCHEMA {schema}; SET search_path = {schema};"
                       "CREATE TABLE inbox (event_id uuid PRIMARY KEY, topic text, at timestamptz"
                       " DEFAULT now());"
                       "CREATE TABLE state (id uuid PRIMARY KEY, body jsonb, at timestamptz"
                       " DEFAULT now());"
                       "CREATE TABLE outbox (id bigserial PRIMARY KEY, topic text, key text,"
                       " value bytea, sent_at timestamptz)")
    await conn.close()
    value = json.dumps(sf.order("bench", "raw", [("SKU", 1, "1.00")]))
    done = 0
    stop = time.perf_counter() + seconds

    async def worker() -> None:
        nonlocal done
        c = await asyncpg.connect(admin_url, server_settings={"search_path": schema})
        try:
            while time.perf_counter() < stop:
                async with c.transaction():
                    if run == 1:
                        await c.execute("INSERT INTO inbox (event_id, topic) VALUES ($1, 't')",
                                        uuid.uuid4())
                        await c.execute("INSERT INTO state (id, body) VALUES ($1, $2::jsonb)",
                                        uuid.uuid4(), value)
                        await c.execute("INSERT INTO outbox (topic, key, value)"
                                        " VALUES ('t', 'k', $1)", value.encode())
                    else:
                        ids = [uuid.uuid4() for _ in range(run)]
                        await c.execute("INSERT INTO inbox (event_id, topic)"
                                        " SELECT unnest($1::uuid[]), 't'", ids)
                        await c.execute("INSERT INTO state (id, body) SELECT i, b::jsonb FROM"
                                        " unnest($1::uuid[], $2::text[]) AS u(i, b)",
                                        [uuid.uuid4() for _ in ids], [value] * run)
                        await c.execute("INSERT INTO outbox (topic, key, value) SELECT 't', 'k',"
                                        " unnest($1::bytea[])", [value.encode()] * run)
                done += run
        finally:
            await c.close()
    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(connections)))
    rate = done / (time.perf_counter() - t0)
    conn = await asyncpg.connect(admin_url)
    await conn.execute(f"DROP SCHEMA {schema} CASCADE")
    await conn.close()
    return rate


# --- Shopkeeper -------------------------------------------------------------------------------
class OrderProducer:
    """The benchmark's orders go out through librdkafka (confluent-kafka), as a storefront's
    would and as issue 18's first measurement did, not through aiokafka: everything shares two
    cores here, and aiokafka's pure-Python producer, one request per order, took a third of the
    load generator's CPU (0.6 ms per order at 300/s). The load generator is not the system
    measured; the less it takes, the less it stands in the pipeline's way. Same guarantees as
    the storefront's producer: acks=all, idempotent, no linger."""

    def __init__(self, bootstrap: str) -> None:
        self._producer = Producer({"bootstrap.servers": bootstrap, "acks": "all",
                                   "enable.idempotence": True, "linger.ms": 0})
        self.failed: list[str] = []

    def _delivered(self, err: KafkaError | None, msg: Message) -> None:
        if err is not None:
            self.failed.append(f"{msg.topic()} key {msg.key()!r}: {err}")

    def send(self, topic: str, value: bytes, key: bytes) -> None:
        while True:
            try:
                self._producer.produce(topic, value, key, on_delivery=self._delivered)
                break
            except BufferError:  # librdkafka's queue is full: let it drain
                self._producer.poll(0.05)
        self._producer.poll(0)

    async def flush(self, timeout: float = 60.0) -> None:
        """Every order sent is delivered, or this raises naming what was not."""
        left = await asyncio.to_thread(self._producer.flush, timeout)
        if left or self.failed:
            raise RuntimeError(f"the benchmark's storefront could not deliver {left} orders"
                               f" in {timeout:.0f} s and {len(self.failed)} were refused"
                               f" ({'; '.join(self.failed[:3])}); is Kafka up (`make up`)?")


class Bench:
    def __init__(self, shop: TimedStorefront, skus: list[str]) -> None:
        self.shop = shop
        self.skus = skus
        self.sent_at: dict[str, float] = {}
        self.n = 0
        self.orders = OrderProducer(shop.bootstrap)

    async def publish_at(self, rate: float, seconds: float) -> list[str]:
        keys = []
        total = max(1, int(rate * seconds))
        t0 = time.perf_counter()
        for i in range(total):
            due = t0 + i / rate
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            self.n += 1
            ext = f"b{uuid.uuid4().hex[:12]}"
            key = f"bench-1:{ext}"
            sku = self.skus[self.n % len(self.skus)]
            payload = sf.order("bench-1", ext, [(sku, 1, "10.00")], country="US")
            # A shop's buyers live at different addresses; one shared address would make every
            # order a merge candidate of the last 200 (intake's duplicate and merge checks).
            # Unique across runs too: numbered per run, every run of the day (the merge window
            # is 24 h) met the earlier runs' orders at the same addresses, and intake read up
            # to 200 of them per order, more with every run.
            payload["shipping_address"]["line1"] = f"{ext} Bench Rd"
            self.sent_at[key] = time.time()  # the clock of the records' timestamps
            self.orders.send("orders.placed", json.dumps(payload).encode(), key.encode())
            keys.append(key)
        await self.orders.flush()
        return keys

    async def until_shipped(self, keys: list[str], timeout: float = 120) -> None:
        deadline = time.perf_counter() + timeout
        while self.shipped(keys) < len(keys) and time.perf_counter() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.2)  # polling the watcher's dict is simpler than a condition

    def shipped(self, keys: list[str]) -> int:
        return sum(1 for k in keys if "shipped" in self.shop.seen(k))

    async def step(self, rate: float, seconds: float) -> dict[str, Any]:
        """Publish at `rate` for `seconds`; then how far behind is the pipeline?"""
        t0 = time.perf_counter()
        keys = await self.publish_at(rate, seconds)
        published_in = time.perf_counter() - t0
        behind_at_end = len(keys) - self.shipped(keys)
        await self.until_shipped(keys)
        drained_in = time.perf_counter() - t0
        return {"rate": rate, "orders": len(keys), "published_s": round(published_in, 2),
                "shipped": self.shipped(keys), "behind_when_publishing_ended": behind_at_end,
                "all_shipped_after_s": round(drained_in, 2),
                "throughput": round(self.shipped(keys) / drained_in, 1)}

    def latencies(self, keys: list[str], *, as_watched: bool = False
                  ) -> dict[str, dict[str, float]]:
        """From each order's send to the publication of its status (the status record's
        timestamp, set by the service's producer): the pipeline's latency. `as_watched`: to the
        status's arrival at our watcher instead, which adds the watcher's own fetching and its
        hand-over to the event loop (TimedStorefront: up to 100 ms), not the shop's."""
        seen = self.shop.arrived if as_watched else self.shop.published
        out = {}
        for status in ("accepted", "reserved", "shipped"):
            samples = sorted(1000 * (seen[(k, status)] - self.sent_at[k])
                             for k in keys if (k, status) in seen)
            if samples:
                out[status] = {"p50": round(pct(samples, 50), 1), "p95": round(pct(samples, 95), 1),
                               "p99": round(pct(samples, 99), 1), "n": len(samples)}
        return out


def pct(sorted_samples: list[float], p: float) -> float:
    if len(sorted_samples) == 1:
        return sorted_samples[0]
    return statistics.quantiles(sorted_samples, n=100, method="inclusive")[int(p) - 1]


class TimedStorefront(sf.Storefront):
    """Records when each order's status was published and when it arrived (wall clock, as
    the records' timestamps are), for latencies.

    It watches `orders.status` and `payments.refunds` through librdkafka (confluent-kafka), in
    a thread of its own, as the orders go out (OrderProducer), not through the storefront's
    aiokafka consumer: the load generator shares the two cores with what it measures, and at
    300 orders/s aiokafka's fetching and decoding, a fetch request encoded in Python every
    few milliseconds and a condition notified per record, were a third of the load
    generator's busy time (its CPU per order 0.5 -> 0.4 ms, docs/BENCHMARKS.md "Tenth round").
    Same view as the storefront's: every partition from the end of the log at start, no
    consumer group joined, a value that is not a JSON object with a status left out."""

    POLL = 1000  # records handed over per call at most

    def __init__(self, bootstrap: str) -> None:
        super().__init__(bootstrap)
        self.arrived: dict[tuple[str, str], float] = {}
        self.published: dict[tuple[str, str], float] = {}
        # librdkafka wants a group id; with partitions assigned, not subscribed, none is joined.
        self._watcher = Consumer({"bootstrap.servers": bootstrap, "group.id": "shopkeeper-bench",
                                  "enable.auto.commit": False, "enable.partition.eof": False})
        self._watching = threading.Event()
        self._thread: threading.Thread | None = None
        self._notifying: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        await self.producer.start()
        await asyncio.to_thread(self._assign_at_end)
        self._watching.set()
        loop = asyncio.get_running_loop()
        self._thread = threading.Thread(target=self._poll, args=(loop,), daemon=True,
                                        name="bench-watcher")
        self._thread.start()

    def _assign_at_end(self) -> None:
        """Every partition at its end now (the high watermark, not the logical end, which is
        resolved later): nothing published after start is missed."""
        parts = []
        for topic in (topics.ORDERS_STATUS.name, topics.PAYMENTS_REFUNDS.name):
            for _ in range(50):
                found = self._watcher.list_topics(topic, timeout=10).topics.get(topic)
                if found is not None and found.error is None and found.partitions:
                    break
                time.sleep(0.2)
            else:
                raise RuntimeError(f"topic {topic} not found on {self.bootstrap};"
                                   " run `make up` first")
            for p in found.partitions:
                _, high = self._watcher.get_watermark_offsets(TopicPartition(topic, p),
                                                              timeout=10)
                parts.append(TopicPartition(topic, p, high))
        self._watcher.assign(parts)

    def _poll(self, loop: asyncio.AbstractEventLoop) -> None:
        while self._watching.is_set():
            records = self._watcher.consume(self.POLL, 0.1)
            if records:
                loop.call_soon_threadsafe(self._take, records)

    def _take(self, records: list[Message]) -> None:
        now = time.time()
        for r in records:
            if r.error() is not None:
                continue
            try:
                value = orjson.loads(r.value() or b"")
            except orjson.JSONDecodeError:  # not ours: poison from a fault test
                continue
            topic = r.topic()
            if not isinstance(value, dict):
                continue
            key = (r.key() or b"").decode(errors="replace")
            if topic == topics.ORDERS_STATUS.name:
                status = value.get("status")
                if not isinstance(status, str):
                    continue
                self.statuses[key].append(value)
                self.arrived.setdefault((key, status), now)
                kind, ms = r.timestamp()
                if kind != TIMESTAMP_NOT_AVAILABLE:
                    self.published.setdefault((key, status), ms / 1000)
            else:
                self.refunds[key].append(value)
        task = asyncio.ensure_future(self._notify_all())  # one wake-up per batch, not per record
        self._notifying.add(task)
        task.add_done_callback(self._notifying.discard)

    async def _notify_all(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    async def stop(self) -> None:
        self._watching.clear()
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join)
        await asyncio.to_thread(self._watcher.close)
        with contextlib.suppress(Exception):  # the storefront's own consumer, never started
            await self.consumer.stop()
        await self.producer.stop()


def service_pids() -> dict[str, list[int]]:
    out: dict[str, list[int]] = {}
    for f in RUN.glob("*.pid"):
        name = f.stem
        service = name.split("-")[0]
        if service in SERVICES:
            try:
                out.setdefault(service, []).append(int(f.read_text()))
            except ValueError:
                continue
    return out


def cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError):
        return 0.0


def cpu_seconds_with_children(pid: int) -> float:
    """A process's CPU, its reaped children's (cutime, cstime) and its live children's: Postgres'
    backends are children of the postmaster."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        own = sum(int(f) for f in fields[11:15]) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError):
        return 0.0
    children = 0.0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            rest = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if rest[1] == str(pid):
            children += (int(rest[11]) + int(rest[12])) / os.sysconf("SC_CLK_TCK")
    return own + children


def total_cpu(pids: dict[str, list[int]]) -> float:
    """CPU seconds so far of every service process in `pids`, Postgres and Kafka."""
    return (sum(cpu_seconds(p) for ps in pids.values() for p in ps)
            + sum(infra_cpu().values()))


def cpu_by_process(pids: dict[str, list[int]]) -> dict[str, float]:
    """CPU seconds so far of each service in `pids` (its instances together), Postgres and
    Kafka: take it before and after a load, the difference is the load's."""
    out = {service: sum(cpu_seconds(p) for p in ps) for service, ps in pids.items()}
    out.update(infra_cpu())
    return out


def infra_cpu() -> dict[str, float]:
    """CPU seconds so far of the local stack's Postgres (postmaster and backends) and Kafka."""
    out = {"postgres": 0.0, "kafka": 0.0}
    with contextlib.suppress(OSError, ValueError, IndexError):
        out["postgres"] = cpu_seconds_with_children(
            int((local_stack.PG_DATA / "postmaster.pid").read_text().split()[0]))
    for f in RUN.glob("kafka*.pid"):
        try:
            out["kafka"] += cpu_seconds_with_children(int(f.read_text()))
        except (OSError, ValueError):
            continue
    return out


STATEMENTS = (
    "SELECT coalesce(sum(calls), 0)::bigint AS all_calls, coalesce(sum(calls) FILTER (WHERE query"
    " !~* '^\\s*(BEGIN|COMMIT|ROLLBACK|SAVEPOINT|RELEASE|START)'), 0)::bigint AS data_calls"
    " FROM pg_stat_statements WHERE dbid = (SELECT oid FROM pg_database"
    " WHERE datname = current_database())")


async def statements(admin_url: str, reset: bool = False) -> tuple[int, int] | None:
    """Statements executed so far in the shop's database (every transaction-control statement,
    and the others), from pg_stat_statements; None when the extension is not loaded."""
    try:
        conn = await asyncpg.connect(admin_url)
    except (OSError, asyncpg.PostgresError):
        return None
    try:
        await conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        if reset:
            await conn.execute("SELECT pg_stat_statements_reset()")
            await conn.execute("SELECT pg_stat_reset_shared('wal')")
            return 0, 0
        row = await conn.fetchrow(STATEMENTS)
        return (int(row["all_calls"]), int(row["data_calls"])) if row else (0, 0)
    except asyncpg.PostgresError as exc:
        print(f"[bench] no statement counts: {exc} (pg_stat_statements not preloaded?)")
        return None
    finally:
        await conn.close()


async def wal_written(admin_url: str) -> tuple[int, int] | None:
    """WAL bytes and whole-page images written since `statements(reset=True)` (pg_stat_wal)."""
    try:
        conn = await asyncpg.connect(admin_url)
    except (OSError, asyncpg.PostgresError):
        return None
    try:
        row = await conn.fetchrow("SELECT wal_bytes::bigint AS b, wal_fpi FROM pg_stat_wal")
        return (int(row["b"]), int(row["wal_fpi"])) if row else None
    finally:
        await conn.close()


def peak_rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return 0.0
    return 0.0


async def prepare_catalogue(shop: sf.Storefront, count: int, units: int) -> list[str]:
    skus = [f"BENCH-{uuid.uuid4().hex[:6]}-{i}" for i in range(count)]
    for sku in skus:
        await shop.publish("catalog.products", sku, sf.product(sku, "10.00"))
        await shop.publish("stock.adjustments", sku, sf.stock(sku, "WH-LA", units))
    async with httpx.AsyncClient(timeout=5) as client:
        for _ in range(300):
            a = await client.get(f"http://127.0.0.1:{service_port('intake')}/catalog/{skus[-1]}")
            b = await client.get(f"http://127.0.0.1:{service_port('inventory')}/stock/{skus[-1]}")
            if a.status_code == 200 and b.status_code == 200 and b.json()["warehouses"]:
                break
            await asyncio.sleep(0.2)
    return skus


async def run(args: argparse.Namespace) -> Result:
    settings = get_settings()
    result = Result(machine=machine())
    print(f"[bench] machine: {result.machine}", flush=True)
    if args.scaling_only:
        # Only the scaling step (two instances on the hot SKUs, and the deadlocks Postgres
        # detected), at the first of --rates, after the warm-up.
        async with TimedStorefront(settings.kafka_bootstrap_servers) as shop:
            bench = Bench(shop, await prepare_catalogue(shop, 20, 1_000_000))
            await bench.step(args.warmup_rate, args.warmup_seconds)
            await settle()
            result.scaling = await scaling(bench, args.rates[0], args.step_seconds)
        print(f"[bench] scaling: {result.scaling}", flush=True)
        return result
    result.kafka_msgs_per_s = round(await kafka_limit(settings.kafka_bootstrap_servers,
                                                      args.kafka_messages), 1)
    print(f"[bench] raw Kafka produce+consume: {result.kafka_msgs_per_s} msg/s", flush=True)
    # The way the services reach Postgres (the local stack's Unix socket), not the TCP default.
    result.postgres_tx_per_s = round(await postgres_limit(local_stack.services_database_url(),
                                                          args.pg_seconds), 1)
    result.postgres_orders_per_s_limit = round(result.postgres_tx_per_s / EVENTS_PER_ORDER, 1)
    print(f"[bench] raw Postgres: {result.postgres_tx_per_s} tx/s"
          f" (= {result.postgres_orders_per_s_limit} orders/s at {EVENTS_PER_ORDER} tx/order)",
          flush=True)
    result.postgres_events_per_s_in_runs = round(await postgres_limit(
        local_stack.services_database_url(), args.pg_seconds, connections=4, run=50), 1)
    result.postgres_orders_per_s_limit_in_runs = round(
        result.postgres_events_per_s_in_runs / EVENTS_PER_ORDER, 1)
    print(f"[bench] raw Postgres, runs of 50 events per transaction:"
          f" {result.postgres_events_per_s_in_runs} events/s"
          f" (= {result.postgres_orders_per_s_limit_in_runs} orders/s)", flush=True)

    async with TimedStorefront(settings.kafka_bootstrap_servers) as shop:
        skus = await prepare_catalogue(shop, 20, 1_000_000)
        bench = Bench(shop, skus)
        await bench.step(args.warmup_rate, args.warmup_seconds)  # warm-up, not reported
        pids = service_pids()
        cpu0 = {s: sum(cpu_seconds(p) for p in ps) for s, ps in pids.items()}
        infra0 = infra_cpu()
        counting = await statements(settings.database_url, reset=True) is not None
        orders0 = bench.n
        best = 0.0
        for rate in args.rates:
            before = total_cpu(pids)
            step = await bench.step(rate, args.step_seconds)
            step["cpu_ms_per_order"] = round(1000 * (total_cpu(pids) - before)
                                             / max(1, step["orders"]), 2)
            result.steps.append(step)
            print(f"[bench] {step}", flush=True)
            # Keeping up: everything shipped within a few seconds of the last order (the
            # pipeline's own latency), rather than a backlog that grew during the step.
            lag = step["all_shipped_after_s"] - step["published_s"]
            keeps_up = lag <= max(5.0, args.step_seconds / 2)
            if step["shipped"] == step["orders"] and keeps_up:
                best = max(best, step["throughput"])
            else:
                break
        result.sustained_orders_per_s = best
        done = max(1, bench.n - orders0)
        result.cpu_s_per_1000_orders = {
            s: round(1000 * (sum(cpu_seconds(p) for p in ps) - cpu0.get(s, 0)) / done, 2)
            for s, ps in pids.items()}
        result.peak_rss_mb = {s: round(max(peak_rss_mb(p) for p in ps), 1)
                              for s, ps in pids.items()}
        infra1 = infra_cpu()
        result.infra_cpu_s_per_1000_orders = {
            k: round(1000 * (infra1[k] - infra0[k]) / done, 2) for k in infra1}
        counted = await statements(settings.database_url) if counting else None
        if counted is not None:
            result.statements_per_order = {"all": round(counted[0] / done, 1),
                                           "without_transaction_control":
                                               round(counted[1] / done, 1)}
        wal = await wal_written(settings.database_url) if counting else None
        if wal is not None:
            result.wal_per_order = {"kb": round(wal[0] / 1024 / done, 1),
                                    "full_page_images": round(wal[1] / done, 2)}
        print(f"[bench] CPU s per 1,000 orders: services {result.cpu_s_per_1000_orders},"
              f" infrastructure {result.infra_cpu_s_per_1000_orders}; SQL statements per order"
              f" {result.statements_per_order or 'not counted'}; WAL per order"
              f" {result.wal_per_order or 'not counted'}", flush=True)
        half = max(5.0, best / 2)
        # Latency at steady state, not in the aftermath of the overload step: every consumer
        # caught up (analytics last) before the first order is timed.
        await settle()
        keys = await bench.publish_at(half, args.latency_seconds)
        await bench.until_shipped(keys)
        result.latency_rate = half
        result.latency_ms = bench.latencies(keys)
        print(f"[bench] latency at {half}/s: {result.latency_ms}", flush=True)
        for _ in range(args.latency_runs):
            await settle()
            keys = await bench.publish_at(args.latency_rate, args.latency_seconds)
            await bench.until_shipped(keys)
            result.fixed_rate_latency.append({"rate": args.latency_rate,
                                              **bench.latencies(keys)})
            print(f"[bench] latency at {args.latency_rate}/s: {result.fixed_rate_latency[-1]}",
                  flush=True)
        if args.scaling and result.steps:
            result.scaling = await scaling(bench, result.steps[-1]["rate"], args.step_seconds)
    return result


async def settle(timeout: float = 120.0) -> None:
    """Until every service's consumer reports no lag and analytics no fold backlog (`/readyz`),
    then a few seconds more."""
    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient(timeout=5) as http:
        while time.monotonic() < deadline:
            lags = []
            for s in SERVICES:
                try:
                    r = await http.get(f"http://127.0.0.1:{service_port(s)}/readyz")
                    lags.append(behind(r.json()["checks"]))
                except (httpx.HTTPError, KeyError, ValueError, TypeError):
                    lags.append(-1)
            if all(lag == 0 for lag in lags):
                break
            await asyncio.sleep(1)
    await asyncio.sleep(5)


async def deadlocks(admin_url: str) -> int:
    """Deadlocks Postgres detected so far in the shop's database (pg_stat_database)."""
    conn = await asyncpg.connect(admin_url)
    try:
        return int(await conn.fetchval(
            "SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()") or 0)
    finally:
        await conn.close()


async def scaling(bench: Bench, rate: float, seconds: float) -> dict[str, float]:
    """Throughput at one offered rate with one, then two instances of each service (the
    workload's 20 SKUs are hot: every order of a step reserves from them), and the deadlocks
    Postgres detected during each."""
    url = get_settings().database_url
    d0 = await deadlocks(url)
    one = (await bench.step(rate, seconds))["throughput"]
    d1 = await deadlocks(url)
    extra = await asyncio.to_thread(second_instances)
    await asyncio.sleep(15)  # join the groups, rebalance
    try:
        two = (await bench.step(rate, seconds))["throughput"]
    finally:
        await asyncio.to_thread(stop_all, extra)
    d2 = await deadlocks(url)
    return {"rate": rate, "one_instance": one, "two_instances": two,
            "deadlocks_one_instance": d1 - d0, "deadlocks_two_instances": d2 - d1}


def second_instances() -> list[subprocess.Popen[bytes]]:
    procs = []
    for s in SERVICES:
        env = {**os.environ, f"SHOPKEEPER_{s.upper()}_PORT": str(service_port(s) + 100)}
        with open(ROOT / ".local" / "logs" / f"{s}-bench2.log", "ab") as log:
            procs.append(subprocess.Popen([sys.executable, "-m", f"services.{s}"], env=env,
                                          stdout=log, stderr=subprocess.STDOUT, cwd=ROOT))
    return procs


def stop_all(procs: list[subprocess.Popen[bytes]]) -> None:
    for p in procs:
        p.terminate()
    for p in procs:
        p.wait(30)


def markdown(r: Result, baseline: dict[str, Any] | None = None) -> str:
    m = r.machine
    lines = [
        "# Benchmarks", "",
        f"Machine: {m['cpus']} CPUs ({m['cpu']}), {m['memory_gib']} GiB, Python {m['python']},"
        f" Linux {m['kernel']}. Everything (Kafka, Postgres, six services, the load generator)"
        " on this one machine. Rerun: `make bench` (results in `artifacts/bench.json`).", "",
        "## Limits of this machine, measured in the same run", "",
        "| limit | value |", "| --- | --- |",
        f"| raw Kafka produce + consume (acks=all, idempotent) | {r.kafka_msgs_per_s:,.0f} msg/s |",
        f"| raw Postgres (inbox + state + outbox per tx, 8 connections) |"
        f" {r.postgres_tx_per_s:,.0f} tx/s |",
        f"| Postgres as orders/s ({EVENTS_PER_ORDER} handled events per order) |"
        f" {r.postgres_orders_per_s_limit:,.0f} orders/s |",
        f"| raw Postgres, the same rows in runs of 50 events per transaction (one unnest per"
        f" table, 4 connections) | {r.postgres_events_per_s_in_runs:,.0f} events/s ="
        f" {r.postgres_orders_per_s_limit_in_runs:,.0f} orders/s |", "",
        "## Shopkeeper", "",
        "| rate offered (orders/s) | orders | behind when publishing ended | all shipped after"
        " (s) | placed->shipped (orders/s) | CPU ms per order (services, Postgres, Kafka) |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for s in r.steps:
        lines.append(f"| {s['rate']} | {s['orders']} | {s['behind_when_publishing_ended']} |"
                     f" {s['all_shipped_after_s']} | {s['throughput']} |"
                     f" {s.get('cpu_ms_per_order', '')} |")
    pg = r.postgres_orders_per_s_limit or 1
    pg_runs = r.postgres_orders_per_s_limit_in_runs or 1
    lines += ["", f"Sustained: **{r.sustained_orders_per_s} orders/s** placed -> shipped, "
              f"{100 * r.sustained_orders_per_s / pg:.0f} % of the Postgres limit one event per"
              f" transaction, {100 * r.sustained_orders_per_s / pg_runs:.0f} % of it in runs, and "
              f"{100 * r.sustained_orders_per_s * EVENTS_PER_ORDER / (r.kafka_msgs_per_s or 1):.1f}"
              " % of the Kafka limit (in messages).", "",
              f"Latency at {r.latency_rate:.0f} orders/s (ms from publishing `orders.placed` to the"
              " status's publication on `orders.status`, by its record's timestamp; before 7 Dec"
              " 2026, to its arrival at our watcher, some 9 ms later at the median):", "",
              "| status | p50 | p95 | p99 | n |", "| --- | --- | --- | --- | --- |"]
    for status, v in r.latency_ms.items():
        lines.append(f"| {status} | {v['p50']} | {v['p95']} | {v['p99']} | {v['n']} |")
    lines += ["", "| service | CPU s per 1,000 orders | peak RSS (MB) |", "| --- | --- | --- |"]
    for name in SERVICES:
        lines.append(f"| {name} | {r.cpu_s_per_1000_orders.get(name, '')} |"
                     f" {r.peak_rss_mb.get(name, '')} |")
    total = sum(r.cpu_s_per_1000_orders.values()) + sum(r.infra_cpu_s_per_1000_orders.values())
    lines += ["", f"| Postgres | {r.infra_cpu_s_per_1000_orders.get('postgres', '')} | |",
              f"| Kafka | {r.infra_cpu_s_per_1000_orders.get('kafka', '')} | |", "",
              f"CPU per order, all services + Postgres + Kafka: **{total:.1f} ms** (over the"
              " throughput steps, load generator excluded)."]
    if r.statements_per_order:
        lines += ["", "SQL statements per order (pg_stat_statements over the throughput steps):"
                  f" **{r.statements_per_order['all']}**, of which"
                  f" {r.statements_per_order['without_transaction_control']} are not BEGIN/COMMIT."]
    if r.wal_per_order:
        lines += ["", "Postgres's write-ahead log per order (pg_stat_wal over the throughput steps):"
                  f" {r.wal_per_order['kb']} KB, {r.wal_per_order['full_page_images']}"
                  " whole-page images."]
    if r.fixed_rate_latency:
        lines += ["", "Latency at a fixed rate, repeated (ms, placed -> status):", "",
                  "| run | rate | accepted p99 | reserved p50 | reserved p99 | shipped p99 |",
                  "| --- | --- | --- | --- | --- | --- |"]
        for i, run_ in enumerate(r.fixed_rate_latency, 1):
            def p(status: str, q: str, run_: dict[str, Any] = run_) -> Any:
                return run_.get(status, {}).get(q, "")
            lines.append(f"| {i} | {run_['rate']} | {p('accepted', 'p99')} |"
                         f" {p('reserved', 'p50')} | {p('reserved', 'p99')} |"
                         f" {p('shipped', 'p99')} |")
    if r.scaling:
        lines += ["", f"Scaling at {r.scaling['rate']} orders/s offered: one instance of each"
                  f" service {r.scaling['one_instance']} orders/s, two instances"
                  f" {r.scaling['two_instances']} orders/s; deadlocks detected by Postgres:"
                  f" {r.scaling.get('deadlocks_one_instance', 'n/a')} with one,"
                  f" {r.scaling.get('deadlocks_two_instances', 'n/a')} with two."]
    if baseline:
        lines += ["", *comparison(baseline, asdict(r))]
    return "\n".join(lines) + "\n"


def comparison(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    """Before and after, each also as a ratio of the limits measured in its own run (the
    machine is shared, so raw figures of two runs differ by more than the code)."""
    def ratio(x: float, limit: float) -> str:
        return f"{100 * x / limit:.1f} %" if limit else "n/a"

    def change(b: float, a: float) -> str:
        return f"{a / b:.2f}x" if b else "n/a"

    rows = [("sustained placed->shipped (orders/s)", before["sustained_orders_per_s"],
             after["sustained_orders_per_s"])]
    for status in ("accepted", "reserved", "shipped"):
        for p in ("p50", "p99"):
            b = before["latency_ms"].get(status, {}).get(p, 0.0)
            a = after["latency_ms"].get(status, {}).get(p, 0.0)
            rows.append((f"placed->{status} {p} (ms, at half load)", b, a))
    rows.append(("CPU s per 1,000 orders, all services", sum(before["cpu_s_per_1000_orders"]
                                                              .values()),
                 sum(after["cpu_s_per_1000_orders"].values())))
    out = [f"## Before and after the optimisation (before: {before.get('label', 'baseline')})",
           "", "| figure | before | after | after / before |", "| --- | --- | --- | --- |"]
    for name, b, a in rows:
        out.append(f"| {name} | {b:,.1f} | {a:,.1f} | {change(b, a)} |")
    def shares(r: dict[str, Any]) -> tuple[str, str]:
        x = r["sustained_orders_per_s"]
        return (ratio(x, r["postgres_orders_per_s_limit"]),
                ratio(x * EVENTS_PER_ORDER, r["kafka_msgs_per_s"]))
    (pg_b, kafka_b), (pg_a, kafka_a) = shares(before), shares(after)
    out += ["", "| sustained throughput as a share of the limits | before | after |",
            "| --- | --- | --- |",
            f"| of raw Postgres (orders/s at {EVENTS_PER_ORDER} tx per order) | {pg_b} | {pg_a} |",
            f"| of raw Kafka (messages, {EVENTS_PER_ORDER} per order) | {kafka_b} | {kafka_a} |"]
    return out


NOTES_MARK = "<!-- notes: kept by make bench -->"


def write_markdown(path: Path, text: str) -> None:
    """Replace the measured part of the file; hand-written notes after NOTES_MARK stay."""
    notes = ""
    if path.exists() and NOTES_MARK in (old := path.read_text()):
        notes = old[old.index(NOTES_MARK):]
    path.write_text(text + ("\n" + notes if notes else ""))


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m tools.bench")
    parser.add_argument("--rates", type=float, nargs="+",
                        default=[25, 50, 100, 150, 200, 400, 800])
    parser.add_argument("--step-seconds", type=float, default=10)
    parser.add_argument("--warmup-rate", type=float, default=20)
    parser.add_argument("--warmup-seconds", type=float, default=5)
    parser.add_argument("--latency-seconds", type=float, default=30)
    parser.add_argument("--latency-rate", type=float, default=45,
                        help="the fixed rate of the repeated latency runs (orders/s)")
    parser.add_argument("--latency-runs", type=int, default=3)
    parser.add_argument("--kafka-messages", type=int, default=50_000)
    parser.add_argument("--pg-seconds", type=float, default=10)
    parser.add_argument("--scaling", action="store_true")
    parser.add_argument("--scaling-only", action="store_true",
                        help="only the scaling step, at the first of --rates (e.g. --rates 100"
                        " --step-seconds 30 --json /tmp/scaling.json --markdown '')")
    parser.add_argument("--json", default=str(ROOT / "artifacts" / "bench.json"))
    parser.add_argument("--markdown", default=str(ROOT / "docs" / "BENCHMARKS.md"))
    parser.add_argument("--baseline", default=str(ROOT / "docs" / "bench-baseline.json"),
                        help="an earlier run's JSON to compare with ('' for none)")
    args = parser.parse_args()
    result = asyncio.run(run(args))
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(asdict(result), indent=2))
    baseline = (json.loads(Path(args.baseline).read_text())
                if args.baseline and Path(args.baseline).exists() else None)
    if args.markdown:
        write_markdown(Path(args.markdown), markdown(result, baseline))
    print(f"[bench] wrote {args.json}" + (f" and {args.markdown}" if args.markdown else ""))


if __name__ == "__main__":
    main()
