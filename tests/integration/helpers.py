"""What integration tests do as a storefront, warehouse or carrier would, and as an operator
would over HTTP."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaConsumer

import stack.__main__ as local_stack
from shared.settings import get_settings, service_port
from tests.conftest import BOOTSTRAP, ref
from tools import storefront as sfm
from tools.storefront import Storefront

STORE = "shop-test-1"


def url(service: str, path: str) -> str:
    return f"http://127.0.0.1:{service_port(service)}{path}"


async def http_get(service: str, path: str, *, auth: bool = False) -> httpx.Response:
    headers = {"Authorization": f"Bearer {get_settings().shopkeeper_admin_token}"} if auth else {}
    async with httpx.AsyncClient(timeout=10) as client:
        return await client.get(url(service, path), headers=headers)


async def eventually(fn: Any, timeout: float = 30.0, what: str = "condition") -> Any:
    deadline = asyncio.get_running_loop().time() + timeout
    last: Any = None
    while asyncio.get_running_loop().time() < deadline:
        last = await fn()
        if last:
            return last
        await asyncio.sleep(0.2)
    raise AssertionError(f"{what} not reached in {timeout}s (last: {last!r})")


async def new_product(sf: Storefront, *, stock: dict[str, int] | None = None, price: str = "12.50",
                      **kw: Any) -> str:
    """A fresh SKU known to intake and, with stock, to inventory, before any order uses it."""
    sku = ref("SKU").upper()
    await sf.publish("catalog.products", sku, sfm.product(sku, price, **kw))
    for warehouse, qty in (stock or {}).items():
        await sf.publish("stock.adjustments", sku, sfm.stock(sku, warehouse, qty))

    async def known() -> bool:
        if (await http_get("intake", f"/catalog/{sku}")).status_code != 200:
            return False
        rows = (await http_get("inventory", f"/stock/{sku}")).json()["warehouses"]
        return sum(r["on_hand"] for r in rows) == sum((stock or {}).values())
    await eventually(known, what=f"product {sku} known to intake and inventory")
    return sku


async def stock_of(sku: str) -> dict[str, dict[str, int]]:
    rows = (await http_get("inventory", f"/stock/{sku}")).json()["warehouses"]
    return {r["warehouse"]: r for r in rows}


async def place(sf: Storefront, lines: list[tuple[str, int, str]], **kw: Any
                ) -> tuple[str, dict[str, Any]]:
    ext = ref("o")
    payload = sfm.order(STORE, ext, lines, **kw)
    await sf.publish("orders.placed", f"{STORE}:{ext}", payload)
    return f"{STORE}:{ext}", payload


async def tail(topic: str, predicate: Any, timeout: float = 30.0) -> Any:
    """The first record on `topic` (read from the start of every partition) matching predicate."""
    consumer = AIOKafkaConsumer(bootstrap_servers=BOOTSTRAP, enable_auto_commit=False,
                                group_id=None, auto_offset_reset="earliest")
    await consumer.start()
    try:
        parts = await sfm.topic_partitions(consumer, topic)
        consumer.assign(parts)
        await consumer.seek_to_beginning(*parts)
        deadline = asyncio.get_running_loop().time() + timeout
        while asyncio.get_running_loop().time() < deadline:
            batch = await consumer.getmany(timeout_ms=500)
            for records in batch.values():
                for r in records:
                    if matches(predicate, r):
                        return r
        raise AssertionError(f"no matching record on {topic} within {timeout}s")
    finally:
        await consumer.stop()


def matches(predicate: Any, record: Any) -> bool:
    """A value the predicate cannot read (poison and fuzz from the chaos tests: not JSON, not
    an object, fields missing) is not the record a test is looking for."""
    try:
        return bool(predicate(record))
    except (ValueError, KeyError, TypeError, IndexError, AttributeError, RecursionError):
        return False


async def tail_all(topic: str, predicate: Any) -> list[Any]:
    """Every record on `topic` so far matching predicate."""
    consumer = AIOKafkaConsumer(bootstrap_servers=BOOTSTRAP, enable_auto_commit=False,
                                group_id=None, auto_offset_reset="earliest")
    await consumer.start()
    try:
        parts = await sfm.topic_partitions(consumer, topic)
        consumer.assign(parts)
        await consumer.seek_to_beginning(*parts)
        ends = await consumer.end_offsets(parts)
        found = []
        while [tp for tp in parts if await consumer.position(tp) < ends[tp]]:
            batch = await consumer.getmany(timeout_ms=500)
            found += [r for records in batch.values() for r in records if matches(predicate, r)]
        return found
    finally:
        await consumer.stop()


def value_of(record: Any) -> dict[str, Any]:
    return json.loads(record.value)


@contextlib.contextmanager
def restarted_with(service: str, env: dict[str, str]) -> Iterator[None]:
    """Run `service` with `env` set (a module's warehouse mode, error rates...), then restart
    it with the environment it had."""
    mp = pytest.MonkeyPatch()
    for k, v in env.items():
        mp.setenv(k, v)
    local_stack.stop_pid(service, timeout=30)
    local_stack.start_services([service])
    try:
        yield
    finally:
        mp.undo()
        local_stack.stop_pid(service, timeout=30)
        local_stack.start_services([service])


@contextlib.asynccontextmanager
async def admin_client(service: str) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client on `service` carrying the operators' token."""
    token = get_settings().shopkeeper_admin_token
    async with httpx.AsyncClient(base_url=url(service, ""), timeout=10,
                                 headers={"Authorization": f"Bearer {token}"}) as client:
        yield client
