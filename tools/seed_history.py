"""`shopkeeper seed-history`: a realistic order history written straight into analytics' schema
with COPY, for benchmarks and demos (not through Kafka and the services: a million orders would
take the pipeline days on this machine).

The history: orders over the last `days` days with a growth trend, weekly and yearly seasonality
(the November-December peak), a daily curve; repeat customers (a share of orders come from
earlier buyers of the same store); a catalogue with a long tail; holds, rejections, backorders,
cancellations, parcels per warehouse and carrier with costs and promises, deliveries late or on
time, returns with reasons and refunds, ratings. The newest orders are still on their way.

Each order's facts are folded with analytics' own fold and contribution (store.fold_stored,
rollups.contribution), so the rollups written are exactly what the live handlers would have made
of the same events; orders, timelines, the order and parcel indexes and order_state are written
too, so timelines, search and later events for these orders work as for live ones (order_state
without the folded facts and contribution: a later event reads them from `facts`).
"""

from __future__ import annotations

import json
import math
import random
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import asyncpg

from services.analytics import rollups, store
from services.analytics.jobs import analytics_settings

STORES = {  # store: (countries with weights, currency)
    "shop-us-1": ({"US": 70, "CA": 12, "MX": 8, "BR": 10}, "USD"),
    "shop-eu-1": ({"DE": 30, "FR": 20, "GB": 18, "ES": 10, "IT": 10, "NL": 7, "PL": 5}, "EUR"),
    "shop-asia-1": ({"JP": 30, "KR": 20, "SG": 15, "AU": 20, "MY": 15}, "USD"),
}
STORE_WEIGHTS = {"shop-us-1": 50, "shop-eu-1": 35, "shop-asia-1": 15}
WAREHOUSE_OF = {"US": "WH-LA", "CA": "WH-LA", "MX": "WH-LA", "BR": "WH-LA", "AU": "WH-SZ",
                "JP": "WH-SZ", "KR": "WH-SZ", "SG": "WH-SZ", "MY": "WH-SZ"}
CARRIERS = {  # warehouse: [(carrier, service, cost, promised days, mean transit days)]
    "WH-LA": [("UPS", "ground", "8.40", 5, 3.5), ("USPS", "priority", "6.90", 4, 3.8),
              ("DHL", "express", "24.00", 3, 2.2)],
    "WH-FRA": [("DHL", "paket", "5.90", 3, 2.1), ("DPD", "classic", "5.20", 4, 2.9),
               ("UPS", "standard", "9.80", 4, 2.6)],
    "WH-SZ": [("YunExpress", "standard", "4.10", 12, 9.5), ("SF", "express", "11.50", 5, 4.0)],
}
RETURN_REASONS = {"changed_mind": 35, "damaged": 15, "defective": 15, "wrong_item": 8,
                  "not_as_described": 17, "other": 10}
OPTIONS = {"standard": 70, "economy": 18, "express": 12}


def _pick(rng: random.Random, weights: dict[str, int]) -> str:
    return rng.choices(list(weights), weights=list(weights.values()))[0]


@dataclass
class Catalogue:
    skus: list[str]
    prices: list[Decimal]
    weights: list[float]

    @property
    def price_of(self) -> dict[str, Decimal]:
        return dict(zip(self.skus, self.prices, strict=True))

    @classmethod
    def make(cls, rng: random.Random, n: int = 400) -> Catalogue:
        skus = [f"SKU-{i:04d}" for i in range(n)]
        prices = [Decimal(rng.choice([5, 8, 12, 15, 20, 25, 35, 49, 79, 120])) - Decimal("0.01")
                  for _ in skus]
        return cls(skus, prices, [1 / (i + 1) ** 0.9 for i in range(n)])  # a long tail


class History:
    """Orders one after another, with their facts in analytics' stored form."""

    def __init__(self, orders: int, days: int, seed: int, end: datetime) -> None:
        self.rng = random.Random(seed)
        self.seed = seed
        self.end = end
        self.start = end - timedelta(days=days)
        self.catalogue = Catalogue.make(self.rng)
        self.price_of = self.catalogue.price_of
        self.customers: dict[str, list[str]] = {s: [] for s in STORES}
        self.day_weights = self._days(days)
        self.orders = orders
        self.made = 0

    def _days(self, days: int) -> list[float]:
        out = []
        for d in range(days):
            day = self.start.date() + timedelta(days=d)
            trend = 0.6 + 0.8 * d / max(days - 1, 1)                       # the shop grows
            weekly = 1.15 if day.weekday() in (5, 6) else 1.0
            yearly = 1 + 0.35 * math.cos((day.timetuple().tm_yday - 340) / 365 * 2 * math.pi)
            peak = 2.5 if (day.month, day.day) >= (11, 24) and (day.month, day.day) <= (12, 2) \
                else 1.0                                                    # Black Friday week
            out.append(trend * weekly * yearly * peak)
        return out

    def placed_times(self) -> list[datetime]:
        days = self.rng.choices(range(len(self.day_weights)), weights=self.day_weights,
                                k=self.orders)
        days.sort()
        out = []
        for d in days:
            hour = min(23.99, max(0.0, self.rng.gauss(14, 4.5)))             # a daily curve
            at = datetime.combine(self.start.date() + timedelta(days=d),
                                  datetime.min.time(), UTC) + timedelta(hours=hour)
            out.append(min(at, self.end - timedelta(minutes=1)))
        return out

    def order(self, n: int, placed: datetime) -> tuple[str, str, list[store.StoredFact]]:
        """One order: its key, our order id, and its facts (stored form, see store.stored)."""
        rng = self.rng
        shop = _pick(rng, STORE_WEIGHTS)
        countries, currency = STORES[shop]
        known = self.customers[shop]
        if known and rng.random() < 0.38:  # a returning buyer of this store
            customer = rng.choice(known)
        else:
            customer = f"hc-{self.seed}-{len(known) + 1}-{shop[5:7]}"
            known.append(customer)
        country = _pick(rng, countries)
        ext = f"H{self.seed}-{n}"
        key, order_id = f"{shop}:{ext}", f"HSK-{self.seed}-{n}"
        cat = self.catalogue
        lines: dict[str, int] = {}
        for _ in range(min(1 + int(rng.expovariate(1.1)), 6)):
            i = rng.choices(range(len(cat.skus)), weights=cat.weights)[0]
            lines[cat.skus[i]] = lines.get(cat.skus[i], 0) + (1 if rng.random() < 0.8 else 2)
        price = {s: self.price_of[s] for s in lines}
        subtotal = sum((price[s] * q for s, q in lines.items()), Decimal("0"))
        option = _pick(rng, OPTIONS)
        total = subtotal + (Decimal("0") if subtotal > 50 else Decimal("4.99"))
        facts: list[store.StoredFact] = []

        def fact(kind: str, at: datetime, body: dict[str, Any], tn: str | None = None) -> None:
            if at <= self.end:  # bodies are JSON already: no round trip as store.stored does
                facts.append([kind, str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                              at.isoformat(), body, tn])

        def status(at: datetime, name: str, *reasons: str) -> None:
            fact("status", at, {"status": name, "reasons": [
                {"code": r, "message": r.replace("_", " ")} for r in reasons]})

        fact("placed", placed + timedelta(seconds=2), {
            "store": shop, "external_order_id": ext, "customer_id": customer,
            "country": country, "placed_at": placed.isoformat(),
            "lines": [{"sku": s, "quantity": q, "unit_price": f"{price[s]:.2f}"}
                      for s, q in lines.items()],
            "grand_total": f"{total:.2f}", "currency": currency, "shipping_option": option})
        t = placed + timedelta(seconds=rng.uniform(1, 20))
        r = rng.random()
        if r < 0.025:
            status(t, "rejected", rng.choice(["payment_failed", "unknown_sku", "invalid_promo"]))
            return key, order_id, facts
        if r < 0.065:
            status(t, "on_hold", rng.choice(["high_value", "suspected_duplicate",
                                            "amount_mismatch"]))
            t += timedelta(hours=rng.lognormvariate(1.0, 0.9))
            if rng.random() < 0.15:
                status(t, "rejected", "cancelled_by_customer")
                return key, order_id, facts
        status(t, "accepted")
        t += timedelta(seconds=rng.uniform(1, 30))
        if rng.random() < 0.05:
            status(t, "backordered")
            t += timedelta(days=rng.uniform(1, 9))
        if rng.random() < 0.02:
            status(t + timedelta(hours=rng.uniform(0.1, 5)), "cancelled")
            return key, order_id, facts
        status(t, "reserved")
        t += timedelta(hours=rng.lognormvariate(2.3, 0.6))
        warehouse = WAREHOUSE_OF.get(country, "WH-FRA")
        carrier, service, cost, promised, transit = rng.choice(CARRIERS[warehouse])
        parcel = f"HP-{self.seed}-{n}"
        status(t, "packed")
        t += timedelta(hours=rng.uniform(0.5, 6))
        number = f"HT{self.seed}X{n}"
        fact("shipped", t, {"parcels": [{
            "parcel_id": parcel, "warehouse": warehouse, "carrier": carrier, "service": service,
            "tracking_number": number,
            "lines": [{"sku": s, "quantity": q} for s, q in lines.items()],
            "cost": cost, "promised_days": promised}]})
        status(t, "shipped")
        fact("tracked", t + timedelta(hours=rng.uniform(2, 12)),
             {"carrier": carrier, "status": "in_transit"}, number)
        delivered = t + timedelta(days=max(0.5, rng.gauss(transit, transit * 0.35)))
        if rng.random() < 0.015:
            fact("tracked", delivered, {"carrier": carrier, "status": "lost"}, number)
            return key, order_id, facts
        fact("tracked", delivered, {"carrier": carrier, "status": "delivered"}, number)
        status(delivered, "delivered")
        if rng.random() < 0.07:
            asked = delivered + timedelta(days=rng.uniform(1, 20))
            sku = rng.choice(list(lines))
            reason = _pick(rng, RETURN_REASONS)
            fact("requested", asked, {"request_id": f"HR-{n}", "kind": "return",
                                      "reason": reason,
                                      "lines": [{"sku": sku, "quantity": lines[sku]}]})
            status(asked, "return_authorized")
            back = asked + timedelta(days=rng.uniform(3, 12))
            status(back, "return_received")
            amount = f"{price[sku] * lines[sku]:.2f}"
            fact("refunded", back, {"request_id": f"HR-{n}", "amount": amount,
                                    "currency": currency, "reason": reason})
            status(back, "refunded")
        if rng.random() < 0.3:
            fact("rated", delivered + timedelta(days=rng.uniform(0.5, 10)), {"rating": min(5, max(
                1, round(rng.gauss(4.2, 1.0))))})
        return key, order_id, facts


# --- writing ----------------------------------------------------------------------------------

def _rollup_rows(c: rollups.Contribution, table: str) -> list[tuple[Any, ...]]:
    t = rollups.TABLES[table]
    def sql(ty: str, x: Any) -> Any:
        if ty == "date":
            return date.fromisoformat(x)
        return datetime.fromisoformat(x) if ty == "timestamptz" else x
    return [tuple(sql(ty, k[j]) for j, (_, ty) in enumerate(t.keys)) + tuple(v)
            for k, v in c.get(table, {}).items()]


class Writer:
    def __init__(self, conn: asyncpg.Connection, sla_hours: float,
                 zones: dict[str, str] | None = None) -> None:
        self.conn = conn
        self.sla = sla_hours
        self.zones = zones or {}  # store -> time zone (store_timezone); others UTC
        self.reset()

    def reset(self) -> None:
        self.facts: list[tuple[Any, ...]] = []
        self.timeline: list[tuple[Any, ...]] = []
        self.orders: list[tuple[Any, ...]] = []
        self.index: list[tuple[Any, ...]] = []
        self.parcels: list[tuple[Any, ...]] = []
        self.states: list[tuple[Any, ...]] = []
        self.slices: dict[int, tuple[Any, ...]] = {}
        self.total: rollups.Contribution = {}

    def add(self, key: str, order_id: str, facts: list[store.StoredFact]) -> None:
        shop, _, ext = key.partition(":")
        for kind, eid, at_s, body, number in facts:
            at = datetime.fromisoformat(at_s)
            self.facts.append((uuid.UUID(eid), kind, None if kind == "tracked" else key, number,
                               at, json.dumps(body, separators=(",", ":"))))
            if kind == "status":
                self.timeline.append((uuid.UUID(eid), key, body["status"], at,
                                      json.dumps(body["reasons"]), "{}"))
            if kind == "shipped":
                for p in body["parcels"]:
                    self.parcels.append((p["tracking_number"], key, p["parcel_id"], p["carrier"],
                                         p["warehouse"]))
        view = store.fold_stored(key, facts)
        tz = self.zones.get(shop, "UTC")
        c = rollups.contribution(view, self.sla, tz)
        rollups.add_up(self.total, c)
        started = view.started_at
        assert started is not None and view.placed_at is not None
        sl = rollups.slice_of(view)
        sid = rollups.slice_id(sl)
        self.slices[sid] = (sid, sl[0], sl[1], list(sl[2]), list(sl[3]))
        hold = rollups.hold_of(view)
        last = view.statuses[-1] if view.statuses else None
        if last is not None:
            self.orders.append((key, order_id, shop, ext, last.status, last.at,
                                view.statuses[0].at))
        self.index.append((key, shop, ext, order_id, view.customer_id, view.country,
                           view.placed_at, min(datetime.fromisoformat(f[2]) for f in facts)))
        self.states.append((key, None, None, rollups.local_day(started, tz), sid,
                            hold[0] if hold is not None and hold[1] is None else None,
                            None if tz == "UTC" else tz))

    async def flush(self) -> None:
        conn = self.conn
        async with conn.transaction():
            await conn.copy_records_to_table("facts", records=self.facts, columns=[
                "event_id", "kind", "order_key", "tracking_number", "occurred_at", "body"])
            await conn.copy_records_to_table("timeline", records=self.timeline, columns=[
                "event_id", "order_key", "status", "occurred_at", "reasons", "details"])
            await conn.copy_records_to_table("orders", records=self.orders, columns=[
                "order_key", "order_id", "store", "external_order_id", "status", "status_at",
                "first_seen"])
            await conn.copy_records_to_table("order_index", records=self.index, columns=[
                "order_key", "store", "external_order_id", "order_id", "customer_id", "country",
                "placed_at", "seen_at"])
            await conn.copy_records_to_table("parcel_index", records=self.parcels, columns=[
                "tracking_number", "order_key", "parcel_id", "carrier", "warehouse"])
            await conn.copy_records_to_table("order_state", records=self.states, columns=[
                "order_key", "facts", "contrib", "start_day", "slice_id", "hold_open_since",
                "tz"])
            # Rows in key order, so two histories written at once lock them in the same order.
            await conn.executemany("INSERT INTO slices VALUES ($1, $2, $3, $4, $5)"
                                   " ON CONFLICT DO NOTHING", sorted(self.slices.values()))
            for name, t in rollups.TABLES.items():
                rows = _rollup_rows(self.total, name)
                if not rows:
                    continue
                cols = [c for c, _ in t.keys] + [c for c, _ in t.values]
                await conn.execute(f"CREATE TEMP TABLE IF NOT EXISTS seed_{name}"
                                   f" (LIKE {name}) ON COMMIT DELETE ROWS")
                await conn.copy_records_to_table(f"seed_{name}", records=rows, columns=cols)
                keys = ", ".join(c for c, _ in t.keys)
                sets = ", ".join(f"{c} = {name}.{c} + EXCLUDED.{c}" for c, _ in t.values)
                await conn.execute(f"INSERT INTO {name} ({', '.join(cols)}) SELECT"
                                   f" {', '.join(cols)} FROM seed_{name} ORDER BY {keys}"
                                   f" ON CONFLICT ({keys}) DO UPDATE SET {sets}")
        self.reset()


async def seed(dsn: str, orders: int, *, days: int = 730, seed: int = 1, schema: str = "analytics",
               chunk: int = 20_000, progress: Callable[[int, float], None] | None = None
               ) -> dict[str, Any]:
    """Write `orders` orders of history; returns counts and the time taken."""
    started = time.perf_counter()
    end = datetime.now(UTC) - timedelta(minutes=5)
    history = History(orders, days, seed, end)
    conn = await asyncpg.connect(dsn, server_settings={"search_path": schema})
    try:
        if not await conn.fetchval("SELECT to_regclass('order_state') IS NOT NULL"):
            raise RuntimeError(f"schema {schema!r} has no analytics rollups: start analytics"
                               " once (make up) so its migrations run")
        if await conn.fetchval("SELECT 1 FROM order_index WHERE external_order_id = $1",
                               f"H{seed}-0"):
            raise RuntimeError(f"a history with seed {seed} is already there: use another"
                               " --seed (or `make clean` for an empty database)")
        month = date(history.start.year, history.start.month, 1)
        while month <= end.date():
            await conn.execute("SELECT facts_month($1)", month)
            month = date(month.year + month.month // 12, month.month % 12 + 1, 1)
        zones = {r["store"]: r["tz"] for r in await conn.fetch(
            "SELECT store, tz FROM store_timezone")}
        writer = Writer(conn, analytics_settings().ship_sla_hours, zones)
        facts = 0
        for n, placed in enumerate(history.placed_times()):
            key, order_id, order_facts = history.order(n, placed)
            facts += len(order_facts)
            writer.add(key, order_id, order_facts)
            if (n + 1) % chunk == 0:
                await writer.flush()
                if progress:
                    progress(n + 1, time.perf_counter() - started)
        await writer.flush()
        await conn.execute("ANALYZE")
    finally:
        await conn.close()
    return {"orders": orders, "facts": facts, "days": days,
            "seconds": round(time.perf_counter() - started, 1)}
