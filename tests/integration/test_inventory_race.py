"""Several inventory instances racing for the same stock (docs/design.md "Known traps"): three
processes in the consumer group `inventory`, 1,000 single-unit orders for 50 units. Nothing may be
oversold, nothing lost, and no handler may fail (no DLQ, no handler errors)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from shared.settings import service_port
from tests.conftest import ROOT, ref
from tools import storefront as sfm
from tools.storefront import Storefront

from .helpers import STORE, eventually, http_get, new_product, stock_of

ORDERS = 1000
UNITS = 50
RESTOCK = 100


def _extra_ports() -> list[int]:
    base = service_port("inventory")
    return [base + 10, base + 11]


@pytest.fixture
def extra_inventories(stack: None) -> Iterator[list[int]]:
    """Two more inventory processes beside the stack's one, killed at the end."""
    ports = _extra_ports()
    logs = Path(os.environ.get("SHOPKEEPER_LOCAL_DIR", ROOT / ".local")) / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    procs: list[subprocess.Popen[bytes]] = []
    try:
        for port in ports:
            log = open(logs / f"inventory-race-{port}.log", "ab")  # noqa: SIM115 - the child's
            procs.append(subprocess.Popen(
                [sys.executable, "-m", "services.inventory"], cwd=ROOT, stdout=log,
                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
                env={**os.environ, "SHOPKEEPER_INVENTORY_PORT": str(port)}))
            log.close()
        deadline = time.monotonic() + 120
        for port, proc in zip(ports, procs, strict=True):
            while True:
                assert proc.poll() is None, f"inventory on {port} exited; see its log"
                with contextlib.suppress(httpx.HTTPError):
                    if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200:
                        break
                assert time.monotonic() < deadline, f"inventory on {port} not ready"
                time.sleep(0.5)
        yield ports
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)


def _metric(text: str, name: str, **labels: str) -> float:
    """Sum of a metric's samples whose labels include `labels`."""
    total = 0.0
    for line in text.splitlines():
        m = re.match(rf"^{name}\{{(.*)\}} (\S+)$", line)
        if not m:
            continue
        have = dict(re.findall(r'(\w+)="([^"]*)"', m.group(1)))
        if all(have.get(k) == v for k, v in labels.items()):
            total += float(m.group(2))
    return total


async def _metrics(port: int) -> str:
    async with httpx.AsyncClient(timeout=10) as client:
        return (await client.get(f"http://127.0.0.1:{port}/metrics")).text


@pytest.mark.timeout(1200)
async def test_three_instances_racing_1000_orders_for_50_units_never_oversell(
        storefront: Storefront, extra_inventories: list[int]) -> None:
    sf = storefront
    ports = [service_port("inventory"), *extra_inventories]
    sku = await new_product(sf, stock={"WH-LA": UNITS})
    before = {p: await _metrics(p) for p in ports}
    await asyncio.sleep(5)  # let the group settle after the two new members joined

    keys = [f"{STORE}:{ref('race')}" for _ in range(ORDERS)]
    started = time.monotonic()
    await asyncio.gather(*(
        sf.publish("orders.placed", key, sfm.order(STORE, key.split(":", 1)[1],
                                                   [(sku, 1, "12.50")]))
        for key in keys))

    def outcome(key: str) -> str | None:
        seen = sf.seen(key)
        return next((s for s in seen if s in ("reserved", "backordered", "rejected", "on_hold")),
                    None)

    async def all_decided() -> bool:
        return all(outcome(k) for k in keys)
    await eventually(all_decided, timeout=900, what="every racing order reserved or backordered")
    elapsed = time.monotonic() - started

    outcomes = [outcome(k) for k in keys]
    reserved = outcomes.count("reserved")
    backordered = outcomes.count("backordered")
    balance = (await stock_of(sku))["WH-LA"]
    ledger = (await http_get("inventory", f"/ledger/{sku}?limit=5000")).json()
    after = {p: await _metrics(p) for p in ports}

    def delta(port: int, name: str, **labels: str) -> float:
        return _metric(after[port], name, **labels) - _metric(before[port], name, **labels)

    handled = {p: delta(p, "shopkeeper_events_consumed_total", topic="intake.order_accepted",
                        outcome="ok") for p in ports}
    dlq = sum(delta(p, "shopkeeper_dlq_total") for p in ports)
    errors = sum(delta(p, "shopkeeper_handler_retries_total", kind="error") for p in ports)
    transient = sum(delta(p, "shopkeeper_handler_retries_total", kind="transient") for p in ports)
    print(f"\nrace: {ORDERS} orders for {UNITS} units over {len(ports)} instances in"
          f" {elapsed:.1f}s ({ORDERS / elapsed:.0f} orders/s): reserved={reserved}"
          f" backordered={backordered} handled_per_instance={list(handled.values())}"
          f" dlq={dlq:.0f} handler_errors={errors:.0f} transient_retries={transient:.0f}")

    assert reserved == UNITS
    assert backordered == ORDERS - UNITS
    assert all(not ({"reserved", "backordered"} <= set(sf.seen(k))) for k in keys)
    assert all(sf.seen(k).count(outcome(k) or "") == 1 for k in keys)  # decided once each
    assert balance["on_hand"] - balance["reserved"] == 0
    assert sum(r["reserved_delta"] for r in ledger["rows"] if r["kind"] == "reserve") == UNITS
    assert dlq == 0 and errors == 0
    assert all(n > 0 for n in handled.values()), handled  # all three took part
    assert sum(handled.values()) >= ORDERS

    # Then a restock of 100 reserves exactly the 100 oldest of the 950 waiting, once each.
    queue = (await http_get("inventory", f"/backorders?sku={sku}&limit=5000")).json()
    assert len(queue) == ORDERS - UNITS
    oldest = {q["order_key"] for q in queue[:RESTOCK]}
    started = time.monotonic()
    await sf.publish("stock.adjustments", sku, sfm.stock(sku, "WH-LA", RESTOCK))

    async def refilled() -> bool:
        return sum(1 for k in keys if "reserved" in sf.seen(k)) >= UNITS + RESTOCK
    await eventually(refilled, timeout=300, what=f"{RESTOCK} backorders reserved on restock")
    print(f"restock: {RESTOCK} oldest of {len(queue)} backorders reserved in"
          f" {time.monotonic() - started:.1f}s")
    await asyncio.sleep(2)  # time for a wrong extra reservation to show up
    now_reserved = {k for k in keys if "reserved" in sf.seen(k) and "backordered" in sf.seen(k)}
    assert now_reserved == oldest
    assert len((await http_get("inventory", f"/backorders?sku={sku}&limit=5000")).json()) == (
        ORDERS - UNITS - RESTOCK)
    assert (await http_get("inventory", f"/reconcile?sku={sku}")).json()["balanced"] is True

    # Leave a quiet stack: the reserved orders shipped, every service caught up.
    for key in keys:
        if "reserved" in sf.seen(key):
            await sf.wait_for(key, "shipped", timeout=300)

    async def drained() -> bool:
        for service in ("intake", "inventory", "fulfillment", "logistics", "analytics"):
            checks = (await http_get(service, "/readyz")).json()["checks"]
            if checks["consumer_lag"]:
                return False
        return True
    await eventually(drained, timeout=300, what="every service's consumer lag back to zero")
