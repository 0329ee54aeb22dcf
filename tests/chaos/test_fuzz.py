"""Scenario 10, second half: thousands of generated bad values on every consumed topic, under
load. Not JSON, not an object, oversized, deeply nested, huge numbers, and (most of them) real
events with one field given a wrong type or removed, built from a valid event of the topic's
pydantic model. Each must go to `{topic}.dlq` (or, for an `orders.placed` that names its order,
reject the order as `malformed`); no service may crash or restart, and the orders of the load,
sent around and after the fuzz, must all settle.

Seeded (SHOPKEEPER_FUZZ_SEED), so a failure can be replayed; SHOPKEEPER_FUZZ_CASES cases per
topic (default 120: about 3,600 in all)."""

from __future__ import annotations

import asyncio
import copy
import importlib
import json
import os
import random
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer
from pydantic import ValidationError

import stack.__main__ as local_stack
from shared.settings import SERVICES
from shared.topics import ALL, ORDERS_PLACED, Topic
from tests.conftest import BOOTSTRAP
from tests.integration.helpers import eventually, tail_all
from tools import storefront as sf
from tools.storefront import Storefront, topic_partitions

from .conftest import assert_clean, hard_cases, run_load

pytestmark = [pytest.mark.timeout(1800)]  # the marker chaos comes from conftest

SEED = int(os.environ.get("SHOPKEEPER_FUZZ_SEED", "10"))
CASES = int(os.environ.get("SHOPKEEPER_FUZZ_CASES", "120"))

# Stand-ins replaced in the serialised bytes: Python's json cannot write these itself.
HUGE = "\u0000huge\u0000"
DEEP = "\u0000deep\u0000"
RAW = {json.dumps(HUGE): "9" * 5000, json.dumps(DEEP): "[" * 3000 + "]" * 3000}
WRONG: list[Any] = [None, True, -1, 0, 1.5, -1e308, "", "x" * 5000, [], {}, [1, "a", None],
                    {"a": {"b": [{}]}}, "2026-13-45T99:99:99Z", "not-a-uuid", "NaN", "-0.001",
                    "12.345", "ZZ", HUGE, DEEP]


def subscriptions() -> list[tuple[str, Any]]:
    return [(s, sub) for s in SERVICES for sub in
            importlib.import_module(f"services.{s}.handlers").handlers.subscriptions.values()]


def consumed_topics() -> tuple[list[Topic], set[str]]:
    """Topics some service consumes, and those where some consumer dead-letters bad values
    (the rest have every consumer handle them itself: on_invalid)."""
    subs = [sub for _, sub in subscriptions()]
    consumed = [t for t in ALL if any(sub.topic is t for sub in subs)]
    dlq = {t.name for t in consumed if any(sub.topic is t and sub.on_invalid is None
                                           for sub in subs)}
    return consumed, dlq


async def samples(topic: str) -> list[dict[str, Any]]:
    """The last value of each partition of `topic` (real events, to mutate)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=BOOTSTRAP, enable_auto_commit=False,
                                group_id=None)
    await consumer.start()
    try:
        parts = await topic_partitions(consumer, topic)
        consumer.assign(parts)
        ends = await consumer.end_offsets(parts)
        starts = await consumer.beginning_offsets(parts)
        live = [tp for tp in parts if ends[tp] > starts[tp]]
        for tp in live:
            consumer.seek(tp, ends[tp] - 1)
        out: list[dict[str, Any]] = []
        for _ in range(10):
            if not live:
                break
            batch = await consumer.getmany(*live, timeout_ms=1000)
            for tp, records in batch.items():
                for r in records:
                    try:
                        value = json.loads(r.value)
                    except (ValueError, TypeError, RecursionError):
                        continue
                    if isinstance(value, dict):
                        out.append(value)
                live = [p for p in live if p != tp]
        return out
    finally:
        await consumer.stop()


def public_template(topic: str) -> dict[str, Any] | None:
    """A valid value of an inbound contract topic, as an outside system would send it."""
    ext = f"fz-{uuid.uuid4().hex[:12]}"
    sku = f"FZ-{uuid.uuid4().hex[:6]}"
    return {
        "catalog.products": lambda: sf.product(sku),
        "stock.adjustments": lambda: sf.stock(sku, "WH-LA", 5),
        "orders.placed": lambda: sf.order("fuzz-1", ext, [(sku, 1, "10.00")]),
        "orders.cancel_requested": lambda: sf.order_event("fuzz-1", ext, reason="r"),
        "orders.backorder_decisions": lambda: sf.order_event(
            "fuzz-1", ext, decision="wait", substitutions={}),
        "aftersales.requests": lambda: sf.order_event(
            "fuzz-1", ext, request_id="R-1", kind="return",
            lines=[{"sku": sku, "quantity": 1}], reason="changed_mind", comment=None,
            exchange_for=None),
        "returns.received": lambda: sf.order_event(
            "fuzz-1", ext, request_id="R-1",
            lines=[{"sku": sku, "quantity": 1, "condition": "resellable"}]),
        "customer.feedback": lambda: sf.order_event("fuzz-1", ext, rating=5, comment="ok"),
        "carrier.tracking": lambda: sf.tracking("DHL", f"TN{uuid.uuid4().hex[:10]}",
                                                "in_transit"),
    }.get(topic, lambda: None)()


def paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix] if prefix else []
    if isinstance(value, dict):
        for k, v in value.items():
            out += paths(v, (*prefix, k))
    elif isinstance(value, list):
        for i, v in enumerate(value[:3]):
            out += paths(v, (*prefix, i))
    return out


def mutate(rng: random.Random, template: dict[str, Any]) -> dict[str, Any]:
    value = copy.deepcopy(template)
    path = rng.choice(paths(value))
    parent: Any = value
    for step in path[:-1]:
        parent = parent[step]
    if isinstance(parent, dict) and rng.random() < 0.2:
        del parent[path[-1]]
    else:
        parent[path[-1]] = copy.deepcopy(rng.choice(WRONG))
    return value


def encode(value: Any) -> bytes:
    text = json.dumps(value)
    for stand_in, raw in RAW.items():
        text = text.replace(stand_in, raw)
    return text.encode()


def structural(rng: random.Random, i: int, marker: str) -> bytes:
    """Values that break the contract as a whole."""
    kind = i % 6
    if kind == 0:
        return bytes(rng.randrange(256) for _ in range(rng.randrange(1, 64))) + marker.encode()
    if kind == 1:
        return encode(rng.choice([[marker], marker, 42, None, True, [[{}]], HUGE]))
    if kind == 2:
        return encode({"marker": marker, "blob": "x" * rng.choice([1000, 100_000, 500_000])})
    if kind == 3:
        depth = rng.choice([300, 1000, 5000])
        return ("{\"a\":" * depth + json.dumps(marker) + "}" * depth).encode()
    if kind == 4:
        return encode({"marker": marker, "event_id": str(uuid.uuid4()), "quantity": HUGE,
                       "weight_g": HUGE})
    return encode({"marker": marker, "event_id": rng.random(), "occurred_at": [], "sku": None})


def invalid(topic: Topic, raw: bytes) -> bool:
    try:
        topic.model.model_validate_json(raw)
    except (ValidationError, ValueError):
        return True
    return False


async def cases_for(rng: random.Random, topic: Topic, count: int, tag: str
                    ) -> list[tuple[str, bytes]]:
    """(key, value) pairs, each value invalid for the topic's model; keys unique."""
    templates = [t for t in await samples(topic.name) if not invalid(topic, encode(t))]
    out: list[tuple[str, bytes]] = []
    n = 0
    while len(out) < count:
        n += 1
        key = f"{tag}-{topic.name}-{n}"
        if n % 4 == 0 or (not templates and topic.name != ORDERS_PLACED.name
                          and public_template(topic.name) is None):
            raw = structural(rng, n, key)
        else:
            template = public_template(topic.name) or rng.choice(templates)
            if topic is ORDERS_PLACED:  # the order key, so a malformed rejection can be found
                key = f"{template['store']}:{template['external_order_id']}"
            raw = encode(mutate(rng, template))
        if invalid(topic, raw):
            out.append((key, raw))
    return out


async def test_generated_bad_values_on_every_topic_give_reject_or_dlq_and_never_a_crash(
        storefront: Storefront) -> None:
    rng = random.Random(SEED)
    tag = f"fuzz{uuid.uuid4().hex[:6]}"
    consumed, dlq_expected = consumed_topics()
    pids = {s: local_stack.pid_of(s) for s in SERVICES}
    sent: dict[str, list[tuple[str, bytes]]] = {}
    checks: list[Callable[[], Awaitable[None]]] = []

    async def fault() -> None:
        checks.append(await hard_cases(storefront, tag))
        for topic in consumed:
            sent[topic.name] = await cases_for(rng, topic, CASES, tag)
        futures = []
        for topic_name, cases in sent.items():
            for key, raw in cases:
                futures.append(await storefront.producer.send(topic_name, raw, key=key.encode()))
        await asyncio.gather(*futures)
        print(f"fuzz: {sum(len(c) for c in sent.values())} bad values on {len(sent)} topics",
              flush=True)
    outcome = await run_load(storefront, "fuzz: bad values on every consumed topic", fault)
    assert_clean(outcome)
    await checks[0]()

    async def unaccounted() -> dict[str, list[str]]:
        missing: dict[str, list[str]] = {}
        for topic_name, cases in sent.items():
            if topic_name not in dlq_expected:
                continue
            dead = {r.key.decode() for r in await tail_all(
                f"{topic_name}.dlq", lambda r: bool(r.key) and r.key.startswith(tag.encode()))}
            for key, _ in cases:
                if key in dead:
                    continue
                if topic_name == ORDERS_PLACED.name and any(
                        e["status"] == "rejected" and e["reasons"][0]["code"] == "malformed"
                        for e in storefront.statuses.get(key, [])):
                    continue
                missing.setdefault(topic_name, []).append(key)
        return missing

    async def all_accounted() -> bool:
        return not await unaccounted()
    try:
        await eventually(all_accounted, timeout=600, what="every bad value dead-lettered or"
                         " rejected")
    except AssertionError:
        missing = await unaccounted()
        raise AssertionError({t: (len(k), k[:5]) for t, k in missing.items()}) from None
    # orders.placed: the DLQ and malformed rejections together, each case once at least
    assert ORDERS_PLACED.name in sent
    assert {s: local_stack.pid_of(s) for s in SERVICES} == pids, "a service restarted"
    assert all(await asyncio.gather(*(asyncio.to_thread(local_stack.service_ready, s)
                                      for s in SERVICES)))


@pytest.mark.chaos_smoke
def test_the_generator_makes_only_invalid_values_of_every_kind() -> None:
    """The generator itself (no stack): every case is invalid for its model, and mutated
    real events are among them, not only garbage."""
    rng = random.Random(SEED)
    topic = ORDERS_PLACED
    template = public_template(topic.name)
    assert template is not None and not invalid(topic, encode(template))
    mutated = [encode(mutate(rng, template)) for _ in range(300)]
    assert sum(invalid(topic, m) for m in mutated) > 150
    assert all(invalid(topic, structural(rng, i, "m")) for i in range(60))
