"""A realistic storefront simulator: what several stores on several marketplaces publish in a busy
month, compressed into minutes (`shopkeeper simulate`, `make run`).

Traffic is deterministic for a seed. The planned part (catalogue, stock, orders, re-sends,
near-duplicates, invalid orders, cancellations, restocks) is a list of `Action`s made by `plan()`
alone. The reactive part (carrier scans once a parcel ships, backorder decisions, returns,
exchanges, reships, feedback) depends on what Shopkeeper answers, so each order's choices come
from a generator seeded with the seed and the order's key: the same seed gives the same decisions
whatever order the answers arrive in. Only `run_id` (in every external id, so a second run makes
new orders) and wall-clock timestamps differ between runs.

Simulated time: the run covers `days` days ending now. Orders are placed across that period and
carrier scans carry the carrier's (simulated) time, so delivery times and return windows in the
analytics look like a real month.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import time
import urllib.request
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from shared.settings import get_settings, prometheus_port
from tools.endpoints import service_url

from . import storefront as sf

# sku, name, category, price, weight_g, dims, attributes
CATALOGUE: list[tuple[str, str, str, str, int, tuple[int, int, int], tuple[str, ...]]] = [
    ("MUG-01", "Ceramic mug", "kitchen", "12.50", 380, (120, 90, 100), ("fragile",)),
    ("MUG-02", "Travel mug", "kitchen", "18.00", 290, (200, 90, 90), ()),
    ("TEE-BLK-M", "T-shirt black M", "apparel", "15.00", 180, (250, 200, 20), ()),
    ("TEE-WHT-L", "T-shirt white L", "apparel", "15.00", 190, (250, 200, 20), ()),
    ("HOODIE-GRY", "Hoodie grey", "apparel", "39.90", 620, (350, 280, 60), ()),
    ("SOCKS-3P", "Socks, 3 pairs", "apparel", "9.90", 120, (200, 100, 30), ()),
    ("CABLE-USBC", "USB-C cable 1 m", "electronics", "7.90", 60, (120, 80, 20), ()),
    ("PBANK-10K", "Power bank 10000 mAh", "electronics", "29.90", 240, (140, 70, 20),
     ("battery",)),
    ("EARBUDS-1", "Wireless earbuds", "electronics", "49.00", 90, (100, 80, 40),
     ("battery", "high_value")),
    ("LAMP-DESK", "Desk lamp", "home", "34.00", 1100, (400, 200, 150), ("fragile",)),
    ("CANDLE-3", "Scented candles, 3", "home", "19.50", 700, (220, 150, 90), ()),
    ("PERFUME-50", "Eau de parfum 50 ml", "beauty", "59.00", 260, (120, 80, 60),
     ("liquid", "fragile")),
    ("SERUM-30", "Face serum 30 ml", "beauty", "24.00", 110, (100, 50, 50), ("liquid",)),
    ("PROTEIN-1K", "Protein powder 1 kg", "health", "32.00", 1100, (250, 160, 160), ("powder",)),
    ("YOGA-MAT", "Yoga mat", "sports", "27.00", 1400, (620, 150, 150), ()),
    ("BOTTLE-SS", "Steel bottle", "sports", "16.00", 320, (260, 80, 80), ()),
    ("MAGNET-SET", "Fridge magnets", "home", "8.50", 150, (150, 100, 30), ("magnetic",)),
    ("NOTEBOOK-A5", "Notebook A5", "stationery", "6.50", 250, (210, 150, 15), ()),
    ("PEN-SET", "Gel pens, 10", "stationery", "5.90", 120, (160, 80, 20), ()),
    ("BACKPACK-20", "Backpack 20 l", "bags", "45.00", 800, (450, 300, 150), ()),
    ("WATCH-SMART", "Smart watch", "electronics", "129.00", 150, (120, 100, 80),
     ("battery", "high_value")),
    ("WATCH-BAND", "Smart watch band", "electronics", "19.00", 40, (120, 40, 20), ()),
    ("PUZZLE-1000", "Puzzle 1000 pcs", "toys", "21.00", 900, (350, 250, 60), ()),
    ("LEGO-LIKE", "Building bricks set", "toys", "39.00", 1200, (380, 260, 90), ()),
    ("BRICKS-MINI", "Building bricks, small", "toys", "35.00", 700, (300, 200, 80), ()),
    ("SCARF-WOOL", "Wool scarf", "apparel", "29.00", 200, (300, 200, 40), ()),
]
# Scarce products: a few units per warehouse, so they sell out, backorder and get restocked.
SCARCE = {"WATCH-SMART": 2, "LEGO-LIKE": 3}
# Stores and where their buyers live (weights like real cross-border sales).
STORES: list[tuple[str, list[tuple[str, int]]]] = [
    ("shop-us-1", [("US", 60), ("CA", 12), ("MX", 8), ("BR", 8), ("AU", 6), ("GB", 6)]),
    ("amazon-de-1", [("DE", 40), ("FR", 15), ("ES", 10), ("IT", 10), ("NL", 8), ("PL", 7),
                     ("GB", 10)]),
    ("shopee-sg-1", [("SG", 20), ("MY", 18), ("TH", 15), ("PH", 15), ("ID", 12), ("VN", 10),
                     ("JP", 5), ("KR", 5)]),
    ("aliexpress-1", [("US", 25), ("BR", 20), ("ES", 15), ("FR", 10), ("PL", 10), ("KR", 10),
                      ("JP", 10)]),
]
STORE_WEIGHTS = [45, 25, 20, 10]
# The stores that sell in another currency than USD, and the rates the simulated finance system
# publishes on `fx.rates` (setup/demo.yaml: aliexpress-1 belongs to a seller in China whose
# base currency is CNY; the others to a seller in the US, whose Amazon.de store sells in EUR, so
# its revenue in USD is converted).
STORE_CURRENCY = {"aliexpress-1": "CNY", "amazon-de-1": "EUR"}
FX_USD = {"CNY": "7.1000", "EUR": "0.9200", "GBP": "0.7900", "JPY": "151.00"}
WAREHOUSES = ("WH-LA", "WH-SZ", "WH-FRA")
# on_hold is an expected end here: besides the review rules, protein powder to Australia is
# held as restricted_goods (logistics bars powder goods to AU: docs/review-rules.md).
FINAL = {"delivered", "rejected", "cancelled", "on_hold", "refunded", "delivery_exception",
         "backordered", "return_rejected", "return_authorized", "return_received"}
FEEDBACK = {5: ["Great, fast delivery", "非常好 物流很快"], 4: ["Good quality", "质量不错"],
            3: ["OK but late", "一般 发货慢"], 2: ["Arrived damaged", "包装破损"],
            1: ["Wrong item sent", "发错货了"]}


@dataclass(frozen=True)
class Action:
    """One thing a storefront, warehouse or PIM publishes, `at` seconds into the run."""

    at: float
    topic: str
    key: str | None
    value: dict[str, Any] | bytes
    kind: str


@dataclass
class Plan:
    actions: list[Action]
    orders: list[str]                     # keys of the distinct orders placed
    kinds: Counter[str] = field(default_factory=Counter)


def _uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def _iso(t: datetime) -> str:
    return t.astimezone(UTC).isoformat().replace("+00:00", "Z")


def plan(seed: int, orders: int, rate: float, days: int, run_id: str,
         now: datetime | None = None) -> Plan:
    """The planned traffic: deterministic for (seed, orders, rate, days, run_id, now)."""
    rng = random.Random(seed)
    # Event ids from their own generator, seeded with the run too: a rerun with the same seed is
    # the same traffic but new events (consumers would otherwise skip them as already handled).
    ids = random.Random(f"{seed}:{run_id}")
    now = now or datetime.now(UTC)
    start = now - timedelta(days=days)
    actions: list[Action] = []
    kinds: Counter[str] = Counter()

    def add(at: float, topic: str, key: str | None, value: dict[str, Any] | bytes, kind: str
            ) -> None:
        if isinstance(value, dict):
            value = {**value, "event_id": _uuid(ids), "occurred_at": _iso(now)}
        actions.append(Action(at, topic, key, value, kind))
        kinds[kind] += 1

    # the day's exchange rates first: intake converts its USD thresholds for CNY orders
    add(0, "fx.rates", "USD", sf.fx_rates("USD", FX_USD, _iso(now)), "fx")
    for sku, name, category, price, weight, dims, attrs in CATALOGUE:
        add(0, "catalog.products", sku, sf.product(sku, price, category=category, weight_g=weight,
                                                   dims=dims, attributes=attrs, name=name),
            "product")
        for wh in WAREHOUSES:
            qty = SCARCE[sku] if sku in SCARCE else rng.randint(150, 400)
            stock = sf.stock(sku, wh, qty)
            stock["reference"] = f"PO-{seed}-{sku}-{wh}"
            add(0, "stock.adjustments", sku, stock, "stock")

    keys: list[str] = []
    customers: dict[str, tuple[str, str]] = {}  # customer -> (store, country): buyers come back
    for i in range(orders):
        at = 1 + i / rate
        placed_at = start + timedelta(days=days * i / max(orders, 1))
        store, destinations = rng.choices(STORES, STORE_WEIGHTS)[0]
        if customers and rng.random() < 0.3:
            customer = rng.choice(sorted(customers))
            store, country = customers[customer]
        else:
            country = rng.choices([c for c, _ in destinations], [w for _, w in destinations])[0]
            customer = f"c-{run_id}-{len(customers) + 1}"
            customers[customer] = (store, country)
        ext = f"{run_id}-{i:05d}"
        key = f"{store}:{ext}"
        picks = rng.sample(CATALOGUE, k=rng.choices([1, 2, 3, 4], [55, 28, 12, 5])[0])
        lines = [(p[0], rng.choices([1, 2, 3], [75, 20, 5])[0], p[3]) for p in picks]
        option = rng.choices(["economy", "standard", "express"], [30, 55, 15])[0]
        payload = _order(rng, store, ext, lines, country, option, customer, placed_at)
        invalid = rng.random() < 0.03
        if invalid:
            _break(rng, payload)
        add(at, "orders.placed", key, payload, "invalid_order" if invalid else "order")
        keys.append(key)
        if rng.random() < 0.03:  # the storefront did not see our ack and sends again
            add(at + 0.5, "orders.placed", key, dict(payload), "resend")
        if rng.random() < 0.01:  # a double click: same buyer, same items, a new order id
            twin = dict(payload, external_order_id=f"{ext}-b")
            add(at + 0.2, "orders.placed", f"{store}:{ext}-b", twin, "near_duplicate")
            keys.append(f"{store}:{ext}-b")
        if rng.random() < 0.02:
            add(at + rng.uniform(0.1, 3), "orders.cancel_requested", key, sf.order_event(
                store, ext, reason="customer changed their mind"), "cancel")
        if i == orders // 2:  # the restock of scarce products arrives mid-run
            for sku in SCARCE:
                restock = sf.stock(sku, "WH-SZ", 40)
                restock["reference"] = f"PO-{seed}-restock-{sku}"
                add(at, "stock.adjustments", sku, restock, "restock")
    actions.sort(key=lambda a: a.at)
    return Plan(actions, keys, kinds)


def _order(rng: random.Random, store: str, ext: str, lines: list[tuple[str, int, str]],
           country: str, option: str, customer: str, placed_at: datetime) -> dict[str, Any]:
    fee = {"economy": "0.00", "standard": "4.99", "express": "14.99"}[option]
    currency = STORE_CURRENCY.get(store, "USD")
    if currency != "USD":  # the store prices in its own currency
        rate = Decimal(FX_USD[currency])
        lines = [(sku, q, f"{Decimal(p) * rate:.2f}") for sku, q, p in lines]
        fee = f"{Decimal(fee) * rate:.2f}"
    payload = sf.order(store, ext, lines, country=country, shipping_option=option,
                       customer_id=customer, shipping_fee=fee, currency=currency)
    if rng.random() < 0.08:  # a promotion, with the discount the store computed
        subtotal = Decimal(payload["totals"]["subtotal"])
        discount = (subtotal / 10).quantize(Decimal("0.01"))
        payload = sf.order(store, ext, lines, country=country, shipping_option=option,
                           customer_id=customer, shipping_fee=fee, promo_codes=["WELCOME10"],
                           discount=f"{discount:.2f}", currency=currency)
    payload["placed_at"] = _iso(placed_at)
    payload["payment"]["method"] = rng.choices(["card", "paypal", "cod", "bank_transfer"],
                                               [60, 25, 10, 5])[0]
    return payload


def _break(rng: random.Random, payload: dict[str, Any]) -> None:
    """About 3 % of orders come broken, as storefront bugs and bad data make them."""
    kind = rng.choice(["quantity", "sku", "country", "postal", "payment", "type"])
    if kind == "quantity":
        payload["lines"][0]["quantity"] = 0
    elif kind == "sku":
        payload["lines"][0]["sku"] = "DISCONTINUED-9"
    elif kind == "country":
        payload["shipping_address"]["country"] = "XX"
    elif kind == "postal":
        payload["shipping_address"]["postal_code"] = ""
    elif kind == "payment":
        payload["payment"]["status"] = "failed"
    else:
        payload["totals"]["grand_total"] = 12.5  # a float: breaks the contract


class Reactor:
    """The reactive side: carriers, customers and the returns desk answer what Shopkeeper says.
    Each order's choices come from its own seeded generator (deterministic per seed and key)."""

    def __init__(self, seed: int, days: int, now: datetime) -> None:
        self.seed = seed
        self.days = days
        self.now = now
        self.done: set[tuple[str, str]] = set()
        self.counts: Counter[str] = Counter()
        self._requests: dict[tuple[str, str], tuple[str, list[dict[str, Any]]]] = {}

    def rng(self, key: str, what: str) -> random.Random:
        return random.Random(f"{self.seed}:{key}:{what}")

    def respond(self, key: str, events: list[dict[str, Any]]) -> list[Action]:
        """New actions for one order given its statuses so far (each answered once)."""
        out: list[Action] = []
        by_status = {e["status"]: e for e in events}
        store, _, ext = key.partition(":")
        if "backordered" in by_status and self._once(key, "decision"):
            out += self._decide_backorder(key, store, ext, by_status["backordered"])
        if "shipped" in by_status and self._once(key, "carrier"):
            out += self._carrier(key, by_status["shipped"])
        if "delivered" in by_status and self._once(key, "customer"):
            out += self._customer(key, store, ext, by_status)
        if "return_authorized" in by_status and self._once(key, "receipt"):
            rid = by_status["return_authorized"]["details"].get("request_id", "")
            kind, lines = self._requests.get((key, rid), ("", []))
            if kind in ("return", "exchange") and lines:
                rng = self.rng(key, "grade")
                out.append(self._act("returns.received", key, sf.order_event(
                    store, ext, request_id=rid, lines=[
                        {**ln, "condition": "resellable" if rng.random() < 0.85 else "damaged"}
                        for ln in lines]), "return_received"))
        if "delivery_exception" in by_status and self._once(key, "reship"):
            reason = by_status["delivery_exception"]["details"].get("reason")
            if reason == "lost":
                out += self._request(key, store, ext, "reship", "not_received", by_status)
        return out

    def _once(self, key: str, what: str) -> bool:
        if (key, what) in self.done:
            return False
        self.done.add((key, what))
        return True

    def _act(self, topic: str, key: str | None, value: dict[str, Any], kind: str) -> Action:
        self.counts[kind] += 1
        return Action(0, topic, key, value, kind)

    def _decide_backorder(self, key: str, store: str, ext: str, ev: dict[str, Any]
                          ) -> list[Action]:
        rng = self.rng(key, "backorder")
        subs: dict[str, list[str]] = ev["details"].get("substitutes") or {}
        choice = rng.choices(["wait", "substitute", "cancel"], [60, 25, 15])[0]
        substitutions = {sku: options[0] for sku, options in sorted(subs.items()) if options}
        if choice == "substitute" and not substitutions:
            choice = "wait"
        return [self._act("orders.backorder_decisions", key, sf.order_event(
            store, ext, decision=choice,
            substitutions=substitutions if choice == "substitute" else {}), f"backorder_{choice}")]

    def _carrier(self, key: str, shipped: dict[str, Any]) -> list[Action]:
        """Scans over simulated days: in transit, out for delivery, delivered; some failed
        attempts, exceptions and lost parcels."""
        rng = self.rng(key, "carrier")
        out = []
        # returned_to_sender: refused at the door; aftersales restocks and refunds by itself.
        fate = rng.choices(["delivered", "failed_then_delivered", "exception", "lost",
                            "returned_to_sender"], [91, 4, 2, 2, 1])[0]
        shipped_at = self.now - timedelta(days=rng.uniform(1, max(2, self.days - 2)))
        for p in shipped["details"]["parcels"]:
            n, carrier = p["tracking_number"], p["carrier"]
            transit = rng.randint(2, 12)
            # Every scan in the past, strictly in order: move the shipment back if need be.
            latest = self.now - timedelta(minutes=1)
            if shipped_at + timedelta(days=transit) > latest:
                shipped_at = latest - timedelta(days=transit)
            scans = [("in_transit", 0.5)]
            if fate == "failed_then_delivered":
                scans += [("failed_attempt", transit - 1), ("delivered", transit)]
            elif fate in ("exception", "lost", "returned_to_sender"):
                scans += [(fate, transit)]
            else:
                scans += [("out_for_delivery", transit - 0.3), ("delivered", transit)]
            for status, day in scans:
                at = shipped_at + timedelta(days=day)
                out.append(self._act("carrier.tracking", n, sf.tracking(carrier, n, status,
                                                                        _iso(at)), f"scan_{status}"))
        return out

    def _customer(self, key: str, store: str, ext: str, by_status: dict[str, Any]
                  ) -> list[Action]:
        rng = self.rng(key, "customer")
        out = []
        if rng.random() < 0.35:
            rating = rng.choices([5, 4, 3, 2, 1], [55, 25, 10, 6, 4])[0]
            out.append(self._act("customer.feedback", key, sf.order_event(
                store, ext, rating=rating, comment=rng.choice(FEEDBACK[rating])), "feedback"))
        roll = rng.random()
        if roll < 0.06:
            out += self._request(key, store, ext, "return",
                                 rng.choice(["changed_mind", "defective", "damaged", "wrong_item"]),
                                 by_status)
        elif roll < 0.08:
            out += self._request(key, store, ext, "exchange", "not_as_described", by_status)
        elif roll < 0.09:
            out += self._request(key, store, ext, "refund", "damaged", by_status)
        return out

    def _request(self, key: str, store: str, ext: str, kind: str, reason: str,
                 by_status: dict[str, Any]) -> list[Action]:
        reserved = by_status.get("reserved")
        if not reserved:
            return []
        line = reserved["details"]["allocations"][0]["lines"][0]
        lines = [{"sku": line["sku"], "quantity": 1}]
        rid = f"RMA-{ext}-{kind}"
        self._requests[(key, rid)] = (kind, lines)
        exchange_for = {line["sku"]: line["sku"]} if kind == "exchange" else None
        return [self._act("aftersales.requests", key, sf.order_event(
            store, ext, request_id=rid, kind=kind, lines=lines, reason=reason, comment=None,
            exchange_for=exchange_for), f"request_{kind}")]


def ready(service: str) -> bool:
    try:
        with urllib.request.urlopen(f"{service_url(service)}/readyz",
                                    timeout=2) as r:
            return r.status == 200
    except OSError:
        return False


def _known(service: str, path: str) -> bool:
    try:
        with urllib.request.urlopen(f"{service_url(service)}{path}",
                                    timeout=2) as r:
            return r.status == 200
    except OSError:
        return False


def behind(checks: dict[str, Any]) -> int:
    """What a service's /readyz says is still to do: its consumer lag, plus, for analytics, the
    facts not yet folded into the rollups (the one rule for `make run` and the benchmarks).
    ValueError while the lag is not known yet."""
    lag = checks["consumer_lag"]
    if lag is None:  # before the consumer's first look at the log's end
        raise ValueError("consumer lag not known yet")
    return int(lag) + int(checks.get("fold_backlog") or 0)


def analytics_caught_up(timeout: float, steady: float = 6.0) -> bool:
    """The dashboard shows the run's data once analytics has read every event (no lag) and
    folded it into the rollups (no fold backlog), and has stayed so for `steady` seconds: the
    lag is measured every 5 s and a fetch gathers for up to a second, so one reading of 0 may
    predate the last events."""
    deadline = time.monotonic() + timeout
    since: float | None = None
    while time.monotonic() < deadline:
        caught_up = False
        with contextlib.suppress(OSError, ValueError, KeyError), urllib.request.urlopen(
                f"{service_url('analytics')}/readyz", timeout=2) as r:
            caught_up = behind(json.loads(r.read())["checks"]) == 0
        if not caught_up:
            since = None
        elif since is None:
            since = time.monotonic()
        elif time.monotonic() - since >= steady:
            return True
        time.sleep(1)
    return False


def seller_lines(days: int) -> list[str]:
    """Each seller's revenue in its base currency over the run's period (analytics' `sellers`
    report), with what was converted from which currency; nothing if no seller is set up."""
    start = (datetime.now(UTC) - timedelta(days=days + 1)).date().isoformat()
    try:
        with urllib.request.urlopen(f"{service_url('analytics')}/reports/sellers?from={start}",
                                    timeout=10) as r:
            rows = json.loads(r.read())["rows"]
    except (OSError, ValueError, KeyError):
        return []
    lines = []
    for row in rows:
        parts = [f"{c['revenue']} {c['currency']}" for c in row.get("by_currency", [])]
        lines.append(f"Seller {row['seller']}: revenue {row['revenue']} {row['base_currency']},"
                     f" average order {row['average_order_value']} {row['base_currency']}"
                     f" (from {' + '.join(parts) or 'nothing yet'})")
    return lines


class Simulation:
    def __init__(self, orders: int, rate: float, days: int, seed: int,
                 console: Console | None = None, run_id: str | None = None) -> None:
        self.console = console or Console()
        self.seed = seed
        self.now = datetime.now(UTC)
        self.run_id = run_id or time.strftime("%m%d%H%M%S")
        self.plan = plan(seed, orders, rate, days, self.run_id, self.now)
        self.plan_days = days
        self.reactor = Reactor(seed, days, self.now)
        self.result: dict[str, object] = {}  # the summary, once run

    async def run(self, settle_seconds: float = 20.0, timeout: float = 300.0) -> int:
        if not all(ready(s) for s in ("intake", "inventory", "logistics", "analytics")):
            self.console.print("[red]error:[/red] the stack is not up: run `make up` first")
            return 1
        async with sf.Storefront(get_settings().kafka_bootstrap_servers) as shop:
            progress = Progress(TextColumn("{task.description}"), BarColumn(),
                                MofNCompleteColumn(), TimeElapsedColumn())
            placed = progress.add_task("orders placed", total=len(self.plan.orders))
            settled = progress.add_task("orders settled", total=len(self.plan.orders))
            with Live(Group(progress, self._status_table(shop)), console=self.console,
                      refresh_per_second=4) as live:
                react = asyncio.create_task(self._react(shop))
                t0 = time.monotonic()
                catalogue_loaded = False
                for action in self.plan.actions:
                    if action.at > 0 and not catalogue_loaded:
                        await self._wait_for_catalogue()
                        catalogue_loaded = True
                        t0 = time.monotonic()
                    delay = action.at - (time.monotonic() - t0)
                    if delay > 0:
                        await asyncio.sleep(delay)
                    await shop.publish(action.topic, action.key, action.value)
                    if action.kind in ("order", "invalid_order", "near_duplicate"):
                        progress.advance(placed)
                    progress.update(settled, completed=self._settled(shop))
                    live.update(Group(progress, self._status_table(shop)))
                deadline = time.monotonic() + timeout
                last, stable_since = -1, time.monotonic()
                while time.monotonic() < deadline:
                    done = self._settled(shop)
                    progress.update(settled, completed=done)
                    live.update(Group(progress, self._status_table(shop)))
                    if done != last:
                        last, stable_since = done, time.monotonic()
                    if done >= len(self.plan.orders) or \
                            time.monotonic() - stable_since > settle_seconds:
                        break
                    await asyncio.sleep(0.5)
                react.cancel()
            self._summary(shop)
        return 0

    async def _wait_for_catalogue(self) -> None:
        last = CATALOGUE[-1][0]
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if _known("intake", f"/catalog/{last}") and _known("inventory", f"/stock/{last}"):
                return
            await asyncio.sleep(0.3)

    async def _react(self, shop: sf.Storefront) -> None:
        while True:
            for key in list(shop.statuses):
                for action in self.reactor.respond(key, shop.statuses[key]):
                    await shop.publish(action.topic, action.key, action.value)
            await asyncio.sleep(0.3)

    def latest(self, shop: sf.Storefront, key: str) -> str | None:
        seen = shop.seen(key)
        return seen[-1] if seen else None

    def _settled(self, shop: sf.Storefront) -> int:
        return sum(1 for k in self.plan.orders if self.latest(shop, k) in FINAL)

    def _status_table(self, shop: sf.Storefront) -> Table:
        counts = Counter(self.latest(shop, k) or "placed" for k in self.plan.orders)
        t = Table(title="orders by status", show_edge=False)
        t.add_column("status")
        t.add_column("orders", justify="right")
        for status, n in counts.most_common():
            t.add_row(status, str(n))
        return t

    def _summary(self, shop: sf.Storefront) -> None:
        self.console.print()  # off a non-terminal, Live leaves its last frame unterminated
        orders = self.plan.orders
        final = Counter(self.latest(shop, k) or "no status yet" for k in orders)
        table = Table(title=f"{len(orders)} orders by status")
        table.add_column("status")
        table.add_column("orders", justify="right")
        for status, n in final.most_common():
            table.add_row(status, str(n))
        self.console.print(table)
        reasons = Counter(r["code"] for k in orders for e in shop.statuses.get(k, [])
                          if e["status"] in ("rejected", "on_hold") for r in e["reasons"])
        if reasons:
            self.console.print("Rejections and holds by reason: " + ", ".join(
                f"{c} {n}" for c, n in reasons.most_common()))
        sent = self.plan.kinds + self.reactor.counts
        self.console.print("Published: " + ", ".join(f"{k} {v}" for k, v in sorted(sent.items())))
        analytics = service_url("analytics")
        with self.console.status("analytics catching up with the run's events…"):
            caught_up = analytics_caught_up(timeout=120)
        self.result = {"orders": len(orders), "by_status": dict(final),
                       "reasons": dict(reasons), "published": dict(sent),
                       "analytics_caught_up": caught_up, "dashboard": f"{analytics}/"}
        for line in seller_lines(self.plan_days):
            self.console.print(line, highlight=False)
        self.console.print(f"[bold]Dashboard: {analytics}/[/bold]"
                           + ("" if caught_up else " (still catching up: refresh in a minute)"))
        self.console.print(f"An order's timeline: {analytics}/orders/"
                           f"{orders[0].replace(':', '/')}")
        self.console.print(f"Prometheus: http://127.0.0.1:{prometheus_port()} · operate with"
                           " `shopkeeper --help` · stop with `make down`")
