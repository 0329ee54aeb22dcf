"""Fault injection under load (`make chaos`). Each scenario publishes orders as storefronts
would, against scarce stock restocked while they flow, breaks something on purpose, then proves
nothing was lost, doubled or oversold: every order reached a final state, no step was announced
twice, no SKU sold more units than were received (counted from what the storefront saw, not from
inventory's tables), backorders were filled once stock came, and the cross-service invariants of
`shopkeeper verify` hold. Figures go to artifacts/chaos.md."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.errors import KafkaError, MessageSizeTooLargeError
from pydantic import ValidationError

from shared.contracts.public import OrderStatusChanged
from shared.settings import SERVICES, get_settings
from shared.topics import all_topic_names
from tests.conftest import ROOT
from tests.integration.helpers import eventually, http_get
from tools import storefront as sf
from tools.storefront import topic_partitions
from tools.verify import CHECKS, verify

SETTLED = {"shipped", "delivered", "cancelled", "rejected", "backordered", "on_hold",
           "delivery_exception", "refunded"}
ORDERS = int(os.environ.get("SHOPKEEPER_CHAOS_ORDERS", "2000"))
RATE = float(os.environ.get("SHOPKEEPER_CHAOS_RATE", "100"))
SMOKE_ORDERS = int(os.environ.get("SHOPKEEPER_CHAOS_SMOKE_ORDERS", "100"))
FIGURES = ROOT / "artifacts" / "chaos.md"
WAREHOUSES = ("WH-LA", "WH-SZ", "WH-FRA")


def start_units(orders: int) -> int:
    """Scarce stock: at 2,000 orders each of the 20 SKUs starts with 30 units (10 per
    warehouse) against orders of 1-3 units each (about 5,300 units asked for), so much of the
    load is backordered until the restocks of the run arrive; smaller runs start with less (2
    per warehouse at 300 orders or fewer) so that they run short too."""
    return max(2, min(10, orders // 200))
# Steps after which an order holds its last reservation, and those that give it back.
RELEASES = {"backordered", "cancelled", "rejected"}


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
    # Records written to any `*.dlq` topic while the scenario ran (by anyone: the suite runs
    # one scenario at a time); None where not counted.
    dead_letters: int | None = None
    # Orders still backordered once the load settled; each must be reserved (or cancelled)
    # after the final restock, else it is named in failed checks.
    backordered: int = 0

    def row(self) -> str:
        recover = "-" if self.recover is None else f"{self.recover:.0f}"
        dead = "-" if self.dead_letters is None else str(self.dead_letters)
        return (f"| {self.scenario} | {self.orders} | {self.accepted} | {self.shipped} |"
                f" {self.cancelled} | {self.backordered} | {self.lost} | {self.doubled} |"
                f" {self.oversold} | {dead} | {'; '.join(self.failed_checks) or 'none'} |"
                f" {recover} | {self.seconds:.0f} |")


HEADER = ("| scenario | orders sent | accepted | shipped | cancelled | backordered, then refilled"
          " | lost | doubled | oversold | dead letters | failed checks | seconds to recover |"
          " seconds in all |\n"
          "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: |"
          " ---: |\n")


@dataclass
class Ledger:
    """What the storefront's side knows about supply: units received per SKU as published on
    `stock.adjustments` (kind `received`), plus units it sent back as resellable returns."""

    skus: list[str] = field(default_factory=list)
    received: Counter[str] = field(default_factory=Counter)

    async def receive(self, shop: sf.Storefront, sku: str, warehouse: str, units: int) -> None:
        await publish_retrying(shop, "stock.adjustments", sku, sf.stock(sku, warehouse, units))
        self.received[sku] += units


def holding(statuses: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The allocations an order holds as its `orders.status` stream tells: those of its last
    `reserved`, unless a step that gives stock back (backordered, cancelled, rejected) came
    after it. Packed, shipped, delivered and the after-sales steps keep what was reserved."""
    held: list[dict[str, Any]] = []
    for e in statuses:
        try:  # the fuzz scenario puts bad values on orders.status too: not a status change
            status = OrderStatusChanged.model_validate(e)
            if status.status == "reserved":
                held = [{"lines": [{"sku": str(ln["sku"]), "quantity": int(ln["quantity"])}
                                   for ln in a["lines"]]}
                        for a in status.details["allocations"]]
        except (ValidationError, KeyError, TypeError, ValueError):
            continue
        if status.status in RELEASES:
            held = []
    return held


def sold(shop: sf.Storefront, skus: list[str]) -> Counter[str]:
    """Units of `skus` held by reserved, packed, shipped or delivered orders, from what the
    storefront saw on `orders.status` (every order, continuation orders included)."""
    wanted = set(skus)
    out: Counter[str] = Counter()
    for key in list(shop.statuses):
        for alloc in holding(shop.timeline(key)):
            for line in alloc["lines"]:
                if line["sku"] in wanted:
                    out[line["sku"]] += int(line["quantity"])
    return out


def oversold(shop: sf.Storefront, ledger: Ledger) -> dict[str, tuple[int, int]]:
    """SKUs whose units in holding orders exceed the units received: {sku: (sold, received)}.
    Independent of inventory's own tables (verify's `nothing oversold` reads those)."""
    units = sold(shop, ledger.skus)
    return {s: (units[s], ledger.received[s]) for s in ledger.skus
            if units[s] > ledger.received[s]}


async def dead_letters() -> int:
    """Records on every `*.dlq` topic so far (their end offsets, summed)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=get_settings().kafka_bootstrap_servers,
                                enable_auto_commit=False, group_id=None)
    await consumer.start()
    try:
        parts = [tp for name in all_topic_names() if name.endswith(".dlq")
                 for tp in await topic_partitions(consumer, name)]
        return sum((await consumer.end_offsets(parts)).values())
    finally:
        await consumer.stop()


async def publish_retrying(shop: sf.Storefront, topic: str, key: str | None,
                           value: dict[str, Any] | bytes) -> None:
    """A storefront keeps trying while Kafka is away (a broker restart)."""
    for attempt in range(120):
        try:
            await shop.publish(topic, key, value)
            return
        except MessageSizeTooLargeError:
            raise  # refused for good, by the client or the broker: no retry makes it fit
        except KafkaError:
            await asyncio.sleep(min(0.5 * (attempt + 1), 3))
    raise AssertionError(f"could not publish to {topic} for two minutes")


async def catalogue(shop: sf.Storefront, ledger: Ledger, units: int = 10, count: int = 20
                    ) -> list[str]:
    skus = [f"CHAOS-{uuid.uuid4().hex[:6]}-{i}" for i in range(count)]
    ledger.skus += skus
    for sku in skus:
        await publish_retrying(shop, "catalog.products", sku, sf.product(sku, "10.00"))
        for wh in WAREHOUSES:
            await ledger.receive(shop, sku, wh, units)

    async def known() -> bool:
        a = await http_get("intake", f"/catalog/{skus[-1]}")
        b = await http_get("inventory", f"/stock/{skus[-1]}")
        return a.status_code == 200 and len(b.json()["warehouses"]) == 3
    await eventually(known, timeout=120, what="chaos catalogue known")
    return skus


async def run_load(shop: sf.Storefront, scenario: str,
                   fault: Callable[[], Awaitable[None]] | None = None, *,
                   orders: int = ORDERS, rate: float = RATE, seed: int = 1,
                   record_it: bool = True,
                   after: Callable[[list[str]], Awaitable[float]] | None = None) -> Outcome:
    """Orders at `rate` (5 % cancelled soon after, a few returns afterwards) against scarce
    stock, restocked ten times during the load; `fault` runs once a third of them are out.
    Then waits for every order to settle, runs `after` (its seconds are the recovery), restocks
    what the backordered orders wait for and checks everything."""
    rng = random.Random(seed)
    dead_before = await dead_letters()
    ledger = Ledger()
    skus = await catalogue(shop, ledger, start_units(orders))
    countries = ["US", "CA", "DE", "FR", "GB", "SG", "JP", "BR", "AU", "PL"]
    keys: list[str] = []
    lines_of: dict[str, list[tuple[str, int, str]]] = {}
    started = time.monotonic()
    fault_task: asyncio.Task[None] | None = None
    recovered: list[float] = []
    restock_every = max(1, orders // 10)
    restock_units = max(5, orders // 100)

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
        lines_of[key] = lines
        if rng.random() < 0.05:
            await publish_retrying(shop, "orders.cancel_requested", key, sf.order_event(
                "chaos-1", ext, reason="chaos: changed mind"))
        if i and i % restock_every == 0:  # a delivery from a supplier: five SKUs
            for sku in rng.sample(skus, 5):
                await ledger.receive(shop, sku, rng.choice(WAREHOUSES), restock_units)
        if fault and i == orders // 3:
            fault_task = asyncio.create_task(faulted(fault))
        await asyncio.sleep(max(0.0, started + (i + 1) / rate - time.monotonic()))
    if fault_task:
        await fault_task

    async def all_settled() -> bool:
        return all(set(shop.seen(k)) & SETTLED for k in keys)
    with contextlib.suppress(AssertionError):  # unsettled orders are counted as lost below
        await eventually(all_settled, timeout=600, what="every order settled")
    if after:
        recovered[:] = [await after(keys)]
    over = oversold(shop, ledger)
    await returns(shop, keys[:40], ledger)
    waiting, unfilled = await refill(shop, keys, lines_of, ledger)
    over |= oversold(shop, ledger)
    failed = [f"oversold {s}: {u} units held, {r} received" for s, (u, r) in sorted(over.items())]
    if unfilled:
        failed.append(f"{len(unfilled)} of {len(waiting)} backordered orders not reserved after"
                      f" the restock: {', '.join(unfilled[:5])}")
    outcome = await tally(shop, scenario, keys, started,
                          recovered[0] if recovered and recovered[0] >= 0 else None,
                          ledger=ledger, failed=failed)
    outcome.dead_letters = await dead_letters() - dead_before
    outcome.backordered = len(waiting)
    if record_it:
        record(outcome)
    return outcome


async def refill(shop: sf.Storefront, keys: list[str],
                 lines_of: dict[str, list[tuple[str, int, str]]],
                 ledger: Ledger) -> tuple[list[str], list[str]]:
    """Receive, per SKU, every unit the orders still backordered ordered (in one warehouse, so
    any of them fits), then wait until each of them is reserved again (shipping follows; verify's
    checks see it through) or was cancelled. Returns the backordered orders and those that
    were not refilled."""
    waiting = [k for k in keys if shop.timeline(k)
               and shop.timeline(k)[-1]["status"] == "backordered"]
    need: Counter[str] = Counter()
    for k in waiting:
        for sku, quantity, _ in lines_of[k]:
            need[sku] += quantity
    # The rest of an order shipping what is there waits in the same queue under a key of its own
    # (a continuation, `...-b1`), with what it lacks in its `backordered` status. Left out, a
    # receipt could fall short: on 7 Dec continuations took 10 of 189 units, and an older order
    # needing two SKUs, skipped while one was still missing, found none left of the other.
    # The storefront hears every status on the topic, the fuzz scenario's bad values too (a
    # `backordered` whose details are a number failed every later scenario here on 7 Dec): only
    # well-formed short lines of this run's SKUs count.
    ours = set(ledger.skus)
    for k in list(shop.statuses):
        last = shop.timeline(k)[-1] if k not in lines_of and shop.timeline(k) else None
        if last is None or last.get("status") != "backordered":
            continue
        details = last.get("details")
        short = details.get("short_lines") if isinstance(details, dict) else None
        for line in short if isinstance(short, list) else []:
            if (isinstance(line, dict) and line.get("sku") in ours
                    and isinstance(line.get("quantity"), int)):
                need[line["sku"]] += line["quantity"]
    async def receive(units_of: Counter[str]) -> None:
        for sku, units in sorted(units_of.items()):
            await ledger.receive(shop, sku, "WH-LA", units)

    def unfilled() -> list[str]:  # reserved again after its last backordered, or cancelled
        return [k for k in waiting if shop.timeline(k)[-1]["status"] == "backordered"
                or (not holding(shop.timeline(k)) and "cancelled" not in shop.seen(k))]

    async def refilled() -> bool:
        return not unfilled()
    await receive(need)
    # The count above is the storefront's view, which can be behind inventory's queue: an order
    # whose `backordered` had not reached the storefront yet (a broker just killed, 7 Dec) is
    # not in it, yet takes its units from the receipt, oldest first, and an older order lacking
    # two SKUs is passed over while one is missing, so the first SKU's units can go to younger
    # orders. So what the orders still waiting after a while lack is received once more, twice
    # at most; the ledger counts every receipt, so the oversell check stays exact.
    for final in (False, False, True):
        with contextlib.suppress(AssertionError):  # reported as a failed check
            await eventually(refilled, timeout=60, what="backordered orders reserved after"
                             " restock")
        if final or not unfilled():
            break
        lacking: Counter[str] = Counter()
        for k in waiting:
            if shop.timeline(k)[-1]["status"] == "backordered":
                for sku, quantity, _ in lines_of[k]:
                    lacking[sku] += quantity
        await receive(lacking)  # nothing when what is left is not waiting for units
    return waiting, unfilled()


async def tally(shop: sf.Storefront, scenario: str, keys: list[str], started: float,
                recover: float | None, *, ledger: Ledger | None = None,
                failed: list[str] | None = None) -> Outcome:
    """The figures of a scenario, after `shopkeeper verify`'s checks (which wait for work in
    flight to settle). Oversold: SKUs of `ledger` whose held units exceed those received."""
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
        sum(1 for s in seen.values() if not set(s) & SETTLED), doubled,
        len(oversold(shop, ledger)) if ledger else await negative_availability(),
        [f"{r.name}: {r.detail}" for r in results if not r.ok] + (failed or []),
        time.monotonic() - started, recover)


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


async def negative_availability() -> int:
    """Stock rows with negative availability: verify's `nothing oversold`, counted. Only for
    rows without orders of their own (the CHECK constraints already forbid it)."""
    sql = next(sql for name, sql, _ in CHECKS if name == "nothing oversold")
    conn = await asyncpg.connect(get_settings().database_url)
    try:
        return int(await conn.fetchval(f"SELECT count(*) FROM ({sql}) t"))
    finally:
        await conn.close()


async def returns(shop: sf.Storefront, keys: list[str], ledger: Ledger | None = None) -> None:
    """Deliver some shipped orders and return one unit of each: after-sales under the load.
    Each unit sent back as resellable counts as supply in `ledger` (it may be sold again).
    Waits for all of them at once (a minute per step at most): an order that never gets there
    is left out, not waited for one by one."""
    for key in keys:
        shipped = next((e for e in shop.statuses.get(key, []) if e["status"] == "shipped"), None)
        if not shipped:
            continue
        for p in shipped["details"]["parcels"]:
            await publish_retrying(shop, "carrier.tracking", p["tracking_number"],
                                   sf.tracking(p["carrier"], p["tracking_number"], "delivered"))

    async def reached(key: str, status: str) -> bool:
        with contextlib.suppress(AssertionError):
            await shop.wait_for(key, status, timeout=60)
            return True
        return False
    shipped_keys = [k for k in keys if "shipped" in shop.seen(k)
                    and any(e["status"] == "reserved" for e in shop.statuses.get(k, []))]
    delivered = [k for k, ok in zip(shipped_keys, await asyncio.gather(
        *(reached(k, "delivered") for k in shipped_keys)), strict=True) if ok]
    lines: dict[str, dict[str, Any]] = {}
    for key in delivered:
        store, ext = key.split(":")
        reserved = next(e for e in shop.statuses[key] if e["status"] == "reserved")
        lines[key] = reserved["details"]["allocations"][0]["lines"][0]
        await publish_retrying(shop, "aftersales.requests", key, sf.order_event(
            store, ext, request_id=f"RMA-{ext}", kind="return",
            lines=[{"sku": lines[key]["sku"], "quantity": 1}], reason="changed_mind",
            comment=None, exchange_for=None))

    async def authorized_here(key: str) -> bool:
        """After-sales' answer to this request (its id in the details): an order cancelled
        after shipping already has a return of its own authorized (`cancelled_after_shipping`),
        and this one is then rejected (`lines_not_in_order`): nothing to receive for it."""
        request_id = f"RMA-{key.split(':')[1]}"

        def answers() -> list[str]:
            return [e["status"] for e in shop.timeline(key)
                    if e["status"] in ("return_authorized", "return_rejected")
                    and isinstance(e.get("details"), dict)
                    and e["details"].get("request_id") == request_id]

        async def answered() -> bool:
            return bool(answers())
        with contextlib.suppress(AssertionError):
            await eventually(answered, timeout=60, what=f"{request_id} decided")
        return "return_authorized" in answers()
    authorized = [k for k, ok in zip(delivered, await asyncio.gather(
        *(authorized_here(k) for k in delivered)), strict=True) if ok]
    for key in authorized:
        store, ext = key.split(":")
        sku = lines[key]["sku"]
        await publish_retrying(shop, "returns.received", key, sf.order_event(
            store, ext, request_id=f"RMA-{ext}",
            lines=[{"sku": sku, "quantity": 1, "condition": "resellable"}]))
        if ledger is not None:
            ledger.received[sku] += 1


def record(o: Outcome) -> None:
    FIGURES.parent.mkdir(exist_ok=True)
    if not FIGURES.exists() or not FIGURES.read_text().startswith(HEADER):
        FIGURES.write_text(HEADER)
    with FIGURES.open("a") as f:
        f.write(o.row() + "\n")
    print(json.dumps(o.__dict__), flush=True)


def assert_clean(o: Outcome, *, no_dead_letters: bool = False) -> None:
    """Nothing lost, doubled or oversold, every check passed; with `no_dead_letters`, the fault
    put nothing in any DLQ (an infrastructure fault is waited out, never dead-lettered)."""
    assert o.lost == 0, o
    if no_dead_letters:
        assert o.dead_letters == 0, o
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
    # The restore runs last (stable sort: the rest keep their order): it replaces every
    # schema with a dump twice and rewinds every group, and the steps it re-sends stay on the
    # topics (with their first event ids, so a later re-read skips them).
    items.sort(key=lambda item: item.name.startswith("test_restore_from_a_backup"))


@pytest.fixture(scope="session")
def figures() -> Path:
    return FIGURES


async def hard_cases(shop: sf.Storefront, marker: str) -> Callable[[], Awaitable[None]]:
    """Send the inputs that once halted a service (issue 17), mid-stream; returns the check to
    run once the load has settled. Over the broker's limit on `orders.placed` (the broker
    refuses it: the storefront hears why, nothing enters), just under it and not JSON (a
    truncated dead letter that still names its source), a ~600 KB valid order with long
    non-ASCII promo text (`rejected`, `too_large`), NUL characters and a lone surrogate in names
    (cleaned: the order gets a status), an order dated 2099 (handled as any other), a product
    update dated 2099 (it must not win over a later real update)."""
    from aiokafka import AIOKafkaProducer

    from tests.integration.helpers import http_get, tail

    sku = f"HARD-{uuid.uuid4().hex[:6]}"
    await publish_retrying(shop, "catalog.products", sku, sf.product(sku, "10.00"))
    await publish_retrying(shop, "stock.adjustments", sku, sf.stock(sku, "WH-LA", 10))
    keys: dict[str, str] = {}
    big = AIOKafkaProducer(bootstrap_servers=shop.bootstrap, acks="all",
                           max_request_size=4 * 1024 * 1024)
    await big.start()
    try:
        with pytest.raises(MessageSizeTooLargeError):
            await big.send_and_wait("orders.placed", marker.encode() + b"x" * 1_500_000,
                                    key=f"{marker}-over".encode())
        near = marker.encode() + b"x" * (1_048_400 - len(marker))
        await big.send_and_wait("orders.placed", near, key=f"{marker}-near".encode())
        for case in ("large", "nul", "future"):
            ext = f"{marker}-{case}"
            keys[case] = f"chaos-1:{ext}"
            payload = sf.order("chaos-1", ext, [(sku, 1, "10.00")])
            if case == "large":  # ~600 KB as UTF-8 (json.dumps' \\u escapes would triple it)
                payload["promo_codes"] = ["優惠券" * 66_000]
            elif case == "nul":
                payload["customer"]["name"] = "Ana\u0000 Lima"
                payload["shipping_address"]["name"] = "Ana\u0000 Lima \ud800"
            else:
                payload["occurred_at"] = payload["placed_at"] = "2099-01-01T00:00:00Z"
            # the NUL and the lone surrogate as JSON escapes (\\u0000, \\ud800), as senders do
            raw = json.dumps(payload, ensure_ascii=case != "large").encode()
            await big.send_and_wait("orders.placed", raw, key=keys[case].encode())
    finally:
        await big.stop()
    future = sf.product(sku, "99.00")
    future["occurred_at"] = "2099-01-01T00:00:00Z"
    await publish_retrying(shop, "catalog.products", sku, future)

    async def check() -> None:
        rejected = await shop.wait_for(keys["large"], "rejected", timeout=120)
        assert rejected["reasons"][0]["code"] == "too_large", rejected
        for case in ("nul", "future"):
            await eventually(lambda k=keys[case]: asyncio.sleep(0, set(shop.seen(k)) & SETTLED),
                             timeout=120, what=f"the {case} order settled")
        letter = await tail("orders.placed.dlq",
                            lambda r: (r.value or b"").startswith(marker.encode()), timeout=120)
        assert dict(letter.headers)["x-truncated"] == b"true"

        async def price_is(expected: str) -> bool:
            body = (await http_get("intake", f"/catalog/{sku}")).json()
            return bool(body.get("price") == expected)
        await eventually(lambda: price_is("99.00"), timeout=60, what="the 2099 update taken")
        await asyncio.sleep(0.1)
        await publish_retrying(shop, "catalog.products", sku, sf.product(sku, "11.00"))
        await eventually(lambda: price_is("11.00"), timeout=60,
                         what="a real update winning over the one dated 2099")
    return check
