"""Fault injection under load (`make chaos`). Each scenario publishes orders as storefronts
would, breaks something on purpose while they flow, then proves nothing was lost, doubled or
oversold: every order reached a final state, no step was announced twice, and the cross-service
invariants of `shopkeeper verify` hold. Figures go to artifacts/chaos.md."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from aiokafka.errors import KafkaError

from shared.settings import SERVICES, get_settings
from tests.conftest import ROOT
from tests.integration.helpers import eventually, http_get
from tools import storefront as sf
from tools.verify import CHECKS, verify

SETTLED = {"shipped", "delivered", "cancelled", "rejected", "backordered", "on_hold",
           "delivery_exception", "refunded"}
ORDERS = int(os.environ.get("SHOPKEEPER_CHAOS_ORDERS", "2000"))
RATE = float(os.environ.get("SHOPKEEPER_CHAOS_RATE", "100"))
SMOKE_ORDERS = int(os.environ.get("SHOPKEEPER_CHAOS_SMOKE_ORDERS", "100"))
FIGURES = ROOT / "artifacts" / "chaos.md"


@dataclass
class Outcome:
    scenario: str
    orders: int  # sent
    accepted: int
    settled: int
    shipped: int
    cancelled: int
    lost: int
    doubled: int
    oversold: int
    failed_checks: list[str]
    seconds: float
    # From the end of the fault until every service is ready and every order sent before then
    # has settled; None when there was no fault or that never happened.
    recover: float | None = None

    def row(self) -> str:
        recover = "-" if self.recover is None else f"{self.recover:.0f}"
        return (f"| {self.scenario} | {self.orders} | {self.accepted} | {self.shipped} |"
                f" {self.cancelled} | {self.lost} | {self.doubled} | {self.oversold} |"
                f" {'; '.join(self.failed_checks) or 'none'} | {recover} | {self.seconds:.0f} |")


HEADER = ("| scenario | orders sent | accepted | shipped | cancelled | lost | doubled | oversold |"
          " failed checks | seconds to recover | seconds in all |\n"
          "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: | ---: |\n")


async def publish_retrying(shop: sf.Storefront, topic: str, key: str | None,
                           value: dict[str, Any] | bytes) -> None:
    """A storefront keeps trying while Kafka is away (a broker restart)."""
    for attempt in range(120):
        try:
            await shop.publish(topic, key, value)
            return
        except KafkaError:
            await asyncio.sleep(min(0.5 * (attempt + 1), 3))
    raise AssertionError(f"could not publish to {topic} for two minutes")


async def catalogue(shop: sf.Storefront, count: int = 20) -> list[str]:
    skus = [f"CHAOS-{uuid.uuid4().hex[:6]}-{i}" for i in range(count)]
    for sku in skus:
        await publish_retrying(shop, "catalog.products", sku, sf.product(sku, "10.00"))
        for wh in ("WH-LA", "WH-SZ", "WH-FRA"):
            await publish_retrying(shop, "stock.adjustments", sku, sf.stock(sku, wh, 100_000))

    async def known() -> bool:
        a = await http_get("intake", f"/catalog/{skus[-1]}")
        b = await http_get("inventory", f"/stock/{skus[-1]}")
        return a.status_code == 200 and len(b.json()["warehouses"]) == 3
    await eventually(known, timeout=120, what="chaos catalogue known")
    return skus


async def run_load(shop: sf.Storefront, scenario: str,
                   fault: Callable[[], Awaitable[None]] | None = None, *,
                   orders: int = ORDERS, rate: float = RATE, seed: int = 1,
                   record_it: bool = True) -> Outcome:
    """Orders at `rate` (5 % cancelled soon after, a few returns afterwards); `fault` runs once
    a third of them are out. Then waits for every order to settle and checks everything."""
    rng = random.Random(seed)
    skus = await catalogue(shop)
    countries = ["US", "CA", "DE", "FR", "GB", "SG", "JP", "BR", "AU", "PL"]
    keys: list[str] = []
    started = time.monotonic()
    fault_task: asyncio.Task[None] | None = None
    recovered: list[float] = []

    async def faulted(fault: Callable[[], Awaitable[None]]) -> None:
        await fault()
        recovered.append(await time_to_recover(shop, list(keys)))
    for i in range(orders):
        ext = f"chaos-{uuid.uuid4().hex[:10]}"
        key = f"chaos-1:{ext}"
        lines = [(rng.choice(skus), rng.randint(1, 3), "10.00")
                 for _ in range(rng.choice([1, 1, 2]))]
        payload = sf.order("chaos-1", ext, lines, country=rng.choice(countries))
        await publish_retrying(shop, "orders.placed", key, payload)
        keys.append(key)
        if rng.random() < 0.05:
            await publish_retrying(shop, "orders.cancel_requested", key, sf.order_event(
                "chaos-1", ext, reason="chaos: changed mind"))
        if fault and i == orders // 3:
            fault_task = asyncio.create_task(faulted(fault))
        await asyncio.sleep(max(0.0, started + (i + 1) / rate - time.monotonic()))
    if fault_task:
        await fault_task

    async def all_settled() -> bool:
        return all(set(shop.seen(k)) & SETTLED for k in keys)
    with contextlib.suppress(AssertionError):  # unsettled orders are counted as lost below
        await eventually(all_settled, timeout=600, what="every order settled")
    await returns(shop, keys[:40])
    outcome = await tally(shop, scenario, keys, started,
                          recovered[0] if recovered and recovered[0] >= 0 else None)
    if record_it:
        record(outcome)
    return outcome


async def tally(shop: sf.Storefront, scenario: str, keys: list[str], started: float,
                recover: float | None) -> Outcome:
    """The figures of a scenario, after `shopkeeper verify`'s checks (which wait for work in
    flight to settle)."""
    results = await verify(get_settings().database_url, settle_seconds=120)
    seen = {k: shop.seen(k) for k in keys}
    doubled = sum(1 for k in keys for step in ("accepted", "reserved", "packed", "shipped")
                  if len({e["event_id"] for e in shop.statuses.get(k, [])
                          if e["status"] == step}) > 1)
    return Outcome(
        scenario, len(keys), sum(1 for s in seen.values() if "accepted" in s),
        sum(1 for s in seen.values() if set(s) & SETTLED),
        sum(1 for s in seen.values() if "shipped" in s),
        sum(1 for s in seen.values() if "cancelled" in s),
        sum(1 for s in seen.values() if not set(s) & SETTLED), doubled, await oversold(),
        [f"{r.name}: {r.detail}" for r in results if not r.ok], time.monotonic() - started,
        recover)


async def time_to_recover(shop: sf.Storefront, keys: list[str], timeout: float = 900) -> float:
    """Seconds from now (the fault's end) until every service is ready and every order in
    `keys` (those sent before the fault ended) has settled; -1 if not within `timeout`."""
    from stack.__main__ import service_ready

    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if all(set(shop.seen(k)) & SETTLED for k in keys) and all(
                await asyncio.gather(*(asyncio.to_thread(service_ready, s) for s in SERVICES))):
            return time.monotonic() - t0
        await asyncio.sleep(0.5)
    return -1.0


async def oversold() -> int:
    """Stock rows with negative availability: the `nothing oversold` check of verify, counted."""
    sql = next(sql for name, sql, _ in CHECKS if name == "nothing oversold")
    conn = await asyncpg.connect(get_settings().database_url)
    try:
        return int(await conn.fetchval(f"SELECT count(*) FROM ({sql}) t"))
    finally:
        await conn.close()


async def returns(shop: sf.Storefront, keys: list[str]) -> None:
    """Deliver some shipped orders and return one unit of each: after-sales under the load."""
    for key in keys:
        shipped = next((e for e in shop.statuses.get(key, []) if e["status"] == "shipped"), None)
        if not shipped:
            continue
        for p in shipped["details"]["parcels"]:
            await publish_retrying(shop, "carrier.tracking", p["tracking_number"],
                                   sf.tracking(p["carrier"], p["tracking_number"], "delivered"))
    for key in keys:
        reserved = next((e for e in shop.statuses.get(key, []) if e["status"] == "reserved"), None)
        if not reserved or "shipped" not in shop.seen(key):
            continue
        store, ext = key.split(":")
        line = reserved["details"]["allocations"][0]["lines"][0]
        try:
            await shop.wait_for(key, "delivered", timeout=60)
        except AssertionError:
            continue
        rid = f"RMA-{ext}"
        await publish_retrying(shop, "aftersales.requests", key, sf.order_event(
            store, ext, request_id=rid, kind="return", lines=[{"sku": line["sku"], "quantity": 1}],
            reason="changed_mind", comment=None, exchange_for=None))
        try:
            await shop.wait_for(key, "return_authorized", timeout=60)
        except AssertionError:
            continue
        await publish_retrying(shop, "returns.received", key, sf.order_event(
            store, ext, request_id=rid,
            lines=[{"sku": line["sku"], "quantity": 1, "condition": "resellable"}]))


def record(o: Outcome) -> None:
    FIGURES.parent.mkdir(exist_ok=True)
    if not FIGURES.exists() or not FIGURES.read_text().startswith(HEADER):
        FIGURES.write_text(HEADER)
    with FIGURES.open("a") as f:
        f.write(o.row() + "\n")
    print(json.dumps(o.__dict__), flush=True)


def assert_clean(o: Outcome) -> None:
    assert o.lost == 0, o
    assert o.doubled == 0, o
    assert o.oversold == 0, o
    assert not o.failed_checks, o


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Everything here is `make chaos` (marker chaos, deselected by `make test`) except the
    short selection marked chaos_smoke, which `make test` runs with SMOKE_ORDERS orders."""
    here = Path(__file__).parent
    for item in items:  # by folder: a checkout may itself live in a folder named "chaos"
        if item.path.is_relative_to(here) and not item.get_closest_marker("chaos_smoke"):
            item.add_marker(pytest.mark.chaos)


@pytest.fixture(scope="session")
def figures() -> Path:
    return FIGURES
