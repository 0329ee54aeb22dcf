"""`make run`: a busy cross-border shop in a few minutes.

Loads a demo catalogue and stock, publishes a few hundred orders from several storefronts (about
3 % invalid, some re-sent, some cancelled, some for scarce SKUs that backorder and are restocked),
plays the carriers (tracking to the door, the odd exception) and a few returns, shows progress as
`orders.status` comes back, and ends with a table of how many orders reached each status.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import time
import urllib.request
import uuid
from collections import Counter
from decimal import Decimal
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from shared.settings import get_settings, service_port

from . import storefront as sf

console = Console()

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
    ("PUZZLE-1000", "Puzzle 1000 pcs", "toys", "21.00", 900, (350, 250, 60), ()),
    ("LEGO-LIKE", "Building bricks set", "toys", "39.00", 1200, (380, 260, 90), ()),
    ("SCARF-WOOL", "Wool scarf", "apparel", "29.00", 200, (300, 200, 40), ()),
]
SCARCE = {"WATCH-SMART": 6, "LEGO-LIKE": 8}          # sell out during the run, restocked later
STORES = [("shop-us-1", ["US"] * 6 + ["CA", "MX", "BR"]),
          ("amazon-de-1", ["DE"] * 4 + ["FR", "ES", "IT", "NL", "PL", "GB"]),
          ("shopee-sg-1", ["SG", "MY", "TH", "PH", "ID", "VN", "AU", "JP", "KR"])]
WAREHOUSES = ("WH-LA", "WH-SZ", "WH-FRA")
FINAL = {"delivered", "rejected", "cancelled", "on_hold", "refunded", "delivery_exception",
         "backordered", "return_rejected"}


def ready(service: str) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{service_port(service)}/readyz",
                                    timeout=2) as r:
            return r.status == 200
    except OSError:
        return False


def known(service: str, path: str) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{service_port(service)}{path}",
                                    timeout=2) as r:
            return r.status == 200 and b'"on_hand"' in r.read() if service == "inventory" \
                else r.status == 200
    except OSError:
        return False


class Demo:
    def __init__(self, orders: int, rate: float, seed: int) -> None:
        self.orders = orders
        self.rate = rate
        self.rng = random.Random(seed)
        self.batch = time.strftime("%m%d%H%M%S")
        self.keys: list[str] = []
        self.tracked: set[str] = set()
        self.returned: set[str] = set()
        self.tasks: set[asyncio.Task[None]] = set()

    def make_order(self, i: int) -> tuple[str, dict[str, Any]]:
        rng = self.rng
        store, countries = rng.choice(STORES)
        country = rng.choice(countries)
        ext = f"{self.batch}-{i:05d}"  # same seed, same traffic; new ids, so a rerun is new orders
        picks = rng.sample(CATALOGUE, k=rng.choice([1, 1, 1, 2, 2, 3]))
        lines = [(p[0], rng.choice([1, 1, 1, 2, 3]), p[3]) for p in picks]
        option = rng.choices(["economy", "standard", "express"], [3, 6, 1])[0]
        customer = f"c-{rng.randint(1, self.orders // 2)}"
        payload = sf.order(store, ext, lines, country=country, shipping_option=option,
                           customer_id=customer)
        if rng.random() < 0.08:  # a promotion, with the discount the store computed
            subtotal = Decimal(payload["totals"]["subtotal"])
            discount = (subtotal / 10).quantize(Decimal("0.01"))
            payload = sf.order(store, ext, lines, country=country, shipping_option=option,
                               customer_id=customer, promo_codes=["WELCOME10"],
                               discount=f"{discount:.2f}")
        roll = rng.random()
        if roll < 0.03:  # about 3 % invalid, as real storefront bugs produce
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
                payload["totals"]["grand_total"] = 12.5
        return f"{store}:{ext}", payload

    async def run(self) -> int:
        settings = get_settings()
        if not all(ready(s) for s in ("intake", "inventory", "logistics", "analytics")):
            console.print("[red]The stack is not up: run `make up` first.[/red]")
            return 1
        async with sf.Storefront(settings.kafka_bootstrap_servers) as shop:
            await self.load_catalogue(shop)
            progress = Progress(TextColumn("{task.description}"), BarColumn(),
                                MofNCompleteColumn(), TimeElapsedColumn(), console=console)
            with progress:
                placed = progress.add_task("orders placed", total=self.orders)
                settled = progress.add_task("orders settled", total=self.orders)
                carrier = asyncio.create_task(self.play_carriers_and_customers(shop))
                for i in range(self.orders):
                    key, payload = self.make_order(i)
                    self.keys.append(key)
                    await shop.publish("orders.placed", key, payload)
                    if self.rng.random() < 0.03:  # the storefront retries: same order again
                        retry = {**payload, "event_id": str(uuid.uuid4())}
                        await shop.publish("orders.placed", key, retry)
                    if self.rng.random() < 0.02:
                        await shop.publish("orders.cancel_requested", key, sf.order_event(
                            *key.split(":"), reason="customer changed their mind"))
                    progress.update(placed, completed=i + 1)
                    progress.update(settled, completed=self.settled(shop))
                    if i == self.orders // 2:
                        for sku, qty in SCARCE.items():  # the restock arrives mid-run
                            await shop.publish("stock.adjustments", sku,
                                               sf.stock(sku, "WH-SZ", qty * 3))
                    await asyncio.sleep(1 / self.rate)
                deadline = time.monotonic() + 120
                last, stable_since = -1, time.monotonic()
                while time.monotonic() < deadline:
                    done = self.settled(shop)
                    progress.update(settled, completed=done)
                    if done != last:
                        last, stable_since = done, time.monotonic()
                    if done >= self.orders or time.monotonic() - stable_since > 20:
                        break
                    await asyncio.sleep(0.5)
                carrier.cancel()
            self.report(shop)
        return 0

    def settled(self, shop: sf.Storefront) -> int:
        return sum(1 for k in self.keys if self.latest(shop, k) in FINAL)

    @staticmethod
    def latest(shop: sf.Storefront, key: str) -> str | None:
        seen = shop.seen(key)
        return seen[-1] if seen else None

    async def load_catalogue(self, shop: sf.Storefront) -> None:
        console.print(f"Loading {len(CATALOGUE)} products and stock in {len(WAREHOUSES)}"
                      " warehouses…")
        for sku, name, category, price, weight, dims, attrs in CATALOGUE:
            await shop.publish("catalog.products", sku, sf.product(
                sku, price, category=category, weight_g=weight, dims=dims, attributes=attrs,
                name=name))
            for wh in WAREHOUSES:
                qty = SCARCE.get(sku, 0) // 3 if sku in SCARCE else self.rng.randint(150, 400)
                await shop.publish("stock.adjustments", sku, sf.stock(sku, wh, qty))
        deadline = time.monotonic() + 60
        last = CATALOGUE[-1][0]
        while time.monotonic() < deadline:
            if known("intake", f"/catalog/{last}") and known("inventory", f"/stock/{last}"):
                return
            await asyncio.sleep(0.3)

    async def play_carriers_and_customers(self, shop: sf.Storefront) -> None:
        """Carriers scan parcels (a compressed week: in transit, then delivered, some
        exceptions); a few customers return goods and leave feedback."""
        while True:
            for key in list(self.keys):
                events = shop.statuses.get(key, [])
                shipped = next((e for e in events if e["status"] == "shipped"), None)
                if shipped and key not in self.tracked:
                    self.tracked.add(key)
                    lost = self.rng.random() < 0.02
                    for p in shipped["details"]["parcels"]:
                        n = p["tracking_number"]
                        await shop.publish("carrier.tracking", n,
                                           sf.tracking(p["carrier"], n, "in_transit"))
                        await shop.publish("carrier.tracking", n, sf.tracking(
                            p["carrier"], n, "exception" if lost else "delivered"))
                delivered = any(e["status"] == "delivered" for e in events)
                if delivered and key not in self.returned:
                    self.returned.add(key)
                    store, ext = key.split(":")
                    if self.rng.random() < 0.3:
                        await shop.publish("customer.feedback", key, sf.order_event(
                            store, ext, rating=self.rng.choice([5, 5, 5, 4, 4, 3, 1]),
                            comment=None))
                    if self.rng.random() < 0.06:
                        lines = shipped["details"]["parcels"] if shipped else []
                        line = await self.first_line(shop, key)
                        if line and lines:
                            rid = f"RMA-{ext}"
                            await shop.publish("aftersales.requests", key, sf.order_event(
                                store, ext, request_id=rid, kind="return",
                                lines=[{"sku": line, "quantity": 1}],
                                reason=self.rng.choice(["changed_mind", "defective", "damaged"]),
                                comment=None, exchange_for=None))
                            task = asyncio.create_task(self.receive_return(shop, key, rid, line))
                            self.tasks.add(task)
                            task.add_done_callback(self.tasks.discard)
            await asyncio.sleep(0.5)

    async def first_line(self, shop: sf.Storefront, key: str) -> str | None:
        reserved = next((e for e in shop.statuses.get(key, []) if e["status"] == "reserved"),
                        None)
        if not reserved:
            return None
        return str(reserved["details"]["allocations"][0]["lines"][0]["sku"])

    async def receive_return(self, shop: sf.Storefront, key: str, rid: str, sku: str) -> None:
        try:
            await shop.wait_for(key, "return_authorized", timeout=30)
        except AssertionError:
            return
        store, ext = key.split(":")
        await shop.publish("returns.received", key, sf.order_event(
            store, ext, request_id=rid, lines=[{"sku": sku, "quantity": 1,
                                                "condition": "resellable"}]))

    def report(self, shop: sf.Storefront) -> None:
        final = Counter(self.latest(shop, k) or "no status yet" for k in self.keys)
        # min_width: a narrow table (only short status names) would wrap its title.
        title = f"{len(self.keys)} demo orders by status"
        table = Table(title=title, min_width=len(title) + 4)
        table.add_column("status")
        table.add_column("orders", justify="right")
        for status, n in final.most_common():
            table.add_row(status, str(n))
        console.print(table)
        reasons = Counter(r["code"] for k in self.keys for e in shop.statuses.get(k, [])
                          if e["status"] == "rejected" for r in e["reasons"])
        if reasons:
            console.print("Rejected, by reason: " + ", ".join(f"{c} {n}"
                                                              for c, n in reasons.most_common()))
        console.print(f"Timeline of one order: http://127.0.0.1:{service_port('analytics')}"
                      f"/orders/{self.keys[0].replace(':', '/')}")
        console.print(f"Summary: http://127.0.0.1:{service_port('analytics')}/summary ·"
                      " Prometheus: http://127.0.0.1:9090 · stop with `make down`")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m tools.demo")
    parser.add_argument("--orders", type=int, default=300)
    parser.add_argument("--rate", type=float, default=50.0, help="orders per second")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    if args.orders < 1 or args.rate <= 0:
        console.print("[red]--orders must be >= 1 and --rate > 0[/red]")
        sys.exit(2)
    sys.exit(asyncio.run(Demo(args.orders, args.rate, args.seed).run()))


if __name__ == "__main__":
    main()
