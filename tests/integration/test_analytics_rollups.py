"""The rollups against the oracle, on the real analytics schema: random event histories (late,
out of order, duplicated) go through the store the way the handlers write them (each example in a
transaction, rolled back), then every report read from the rollups by SQL (reports.py) must equal
the report recomputed from the facts by the Python fold (domain.reports, the oracle); replaying
the whole history must leave the rollups as they were."""

from __future__ import annotations

import random
import uuid
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from types import SimpleNamespace
from typing import Any, cast

import asyncpg
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.analytics import domain, jobs, reports, rollups, store
from shared.contracts import OrderStatusChanged, Reason
from shared.service import Runtime
from shared.settings import service_database_url
from tests.scratch import scratch_schema

from .helpers import http_get

SLA_HOURS = 48.0
NOW = datetime.now(UTC).replace(microsecond=0)
STATUSES = ["accepted", "rejected", "on_hold", "reserved", "backordered", "packed", "shipped",
            "delivered", "cancelled", "return_authorized", "refunded", "delivery_exception"]
REASONS = {"rejected": ["unknown_sku", "payment_failed", "invalid_promo"],
           "on_hold": ["high_value", "amount_mismatch"]}
SKUS = ["SKU-A", "SKU-B", "SKU-C", "SKU-D"]
PERCENTILES = {"hold_age_p50_h", "hold_age_max_h", "placed_to_shipped_p50_h",
               "placed_to_shipped_p90_h"}

minutes = st.integers(min_value=0, max_value=40 * 24 * 60)   # from 40 days ago to now


@st.composite
def an_order(draw: Any) -> dict[str, Any]:
    lines = draw(st.lists(st.tuples(st.sampled_from(SKUS), st.integers(1, 3),
                                    st.sampled_from(["5.00", "12.50", "0.99"])),
                          min_size=1, max_size=3))
    return {
        "placed": draw(st.one_of(st.none(), minutes)),
        "placed_twice": draw(st.booleans()),
        "customer": draw(st.sampled_from(["c1", "c2", "c3"])),
        "country": draw(st.sampled_from(["US", "DE"])),
        "currency": draw(st.sampled_from(["USD", "EUR"])),
        "option": draw(st.sampled_from(["economy", "standard", "express"])),
        "lines": lines,
        "statuses": draw(st.lists(st.tuples(st.sampled_from(STATUSES), minutes,
                                            st.integers(0, 1)), max_size=6)),
        "parcels": draw(st.lists(st.tuples(
            st.sampled_from(["WH-LA", "WH-FRA"]), st.sampled_from(["UPS", "DHL"]),
            st.sampled_from(["std", "exp"]), st.one_of(st.none(), st.sampled_from(["4.10", "7"])),
            st.one_of(st.none(), st.integers(1, 9)),
            st.lists(st.tuples(st.sampled_from(["in_transit", "delivered", "exception"]),
                               minutes), max_size=3)), max_size=2)),
        "shipped_at": draw(minutes),
        "requests": draw(st.lists(st.tuples(
            st.sampled_from(["return", "refund", "exchange"]),
            st.sampled_from(["damaged", "changed_mind"]), minutes), max_size=2)),
        "refunds": draw(st.lists(st.tuples(st.sampled_from(["3.00", "10.50"]),
                                           st.sampled_from(["damaged", "late"]), minutes),
                                 max_size=2)),
        "ratings": draw(st.lists(st.tuples(st.integers(1, 5), minutes), max_size=2)),
    }


class Writer:
    """Writes facts the way handlers.py does: the fact (and indexes) per event, and the orders
    touched folded once per run (store.fold_orders, the run's before-commit hook). With `rng`,
    runs end at random (1 to many events, as the consumer's runs); without, every event is a
    run of one."""

    def __init__(self, conn: Any, rng: random.Random | None = None) -> None:
        self.conn = conn
        self.rng = rng
        self.pending: dict[str, list[store.StoredFact]] = {}

    async def apply(self, item: tuple[str, Any]) -> None:
        await self.record(item)
        if self.rng is None or self.rng.random() < 0.3:
            await self.end_run()

    async def end_run(self) -> None:
        pending, self.pending = self.pending, {}
        await store.fold_orders(self.conn, pending, SLA_HOURS)

    async def record(self, item: tuple[str, Any]) -> None:
        kind, x = item
        c = self.conn
        if kind == "placed":
            key, eid, at, body = x
            rec = await store.record_order_fact(
                c, eid, at, body, key=key, customer_id=body["customer_id"],
                country=body["country"], placed_at=datetime.fromisoformat(body["placed_at"]))
            fact = store.stored("placed", eid, at, body)
        elif kind == "status":
            e: OrderStatusChanged = x
            rec = await store.record_status(c, e)
            fact = store.stored("status", e.event_id, e.occurred_at, store.status_body(e))
        elif kind == "tracked":
            eid, at, number, body = x
            rec = await store.record_fact(c, eid, "tracked", at, body, tracking_number=number)
            fact = store.stored("tracked", eid, at, body, number)
        else:
            key, eid, at, body = x
            rec = await store.record_fact(c, eid, kind, at, body, order_key=key)
            if kind == "shipped":
                for p in body["parcels"]:
                    await store.index_parcel(c, p["tracking_number"], key, p["parcel_id"],
                                             p["carrier"], p["warehouse"])
            fact = store.stored(kind, eid, at, body)
        if rec is not None:
            self.pending.setdefault(rec, []).append(fact)


def events_of(shop: str, start: datetime, orders: list[dict[str, Any]]) -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []

    def at(m: int) -> datetime:
        return start + timedelta(minutes=m)

    for i, o in enumerate(orders):
        ext = f"o{i}"
        key = f"{shop}:{ext}"
        if o["placed"] is not None:
            body = {"store": shop, "external_order_id": ext, "customer_id": o["customer"],
                    "country": o["country"], "placed_at": at(o["placed"]).isoformat(),
                    "lines": [{"sku": s, "quantity": q, "unit_price": p} for s, q, p in o["lines"]],
                    "grand_total": f"{sum(Decimal(p) * q for _, q, p in o['lines']):.2f}",
                    "currency": o["currency"], "shipping_option": o["option"]}
            out.append(("placed", (key, uuid.uuid4(), at(o["placed"]), body)))
            if o["placed_twice"]:  # the accepted snapshot, later
                out.append(("placed", (key, uuid.uuid4(), at(o["placed"] + 5), body)))
        for name, m, with_reason in o["statuses"]:
            reasons = [Reason(code=REASONS[name][m % len(REASONS[name])], message="why")
                       ] if with_reason and name in REASONS else []
            out.append(("status", OrderStatusChanged(
                event_id=uuid.uuid4(), occurred_at=at(m), order_id=f"id-{i}", store=shop,
                external_order_id=ext, status=name, reasons=reasons)))
        if o["parcels"]:
            parcels = []
            for j, (wh, carrier, service, cost, promised, scans) in enumerate(o["parcels"]):
                number = f"T-{shop}-{i}-{j}"
                parcels.append({"parcel_id": f"P-{i}-{j}", "warehouse": wh, "carrier": carrier,
                                "service": service, "tracking_number": number,
                                "lines": [{"sku": o["lines"][0][0], "quantity": 1}],
                                "cost": cost, "promised_days": promised})
                for what, m in scans:
                    out.append(("tracked", (uuid.uuid4(), at(m), number,
                                            {"carrier": carrier, "status": what})))
            out.append(("shipped", (key, uuid.uuid4(), at(o["shipped_at"]),
                                    {"parcels": parcels})))
        for n, (kind, reason, m) in enumerate(o["requests"]):
            out.append(("requested", (key, uuid.uuid4(), at(m), {
                "request_id": f"R{n}", "kind": kind, "reason": reason,
                "lines": [{"sku": s, "quantity": 1} for s, _, _ in o["lines"][:2]]})))
        for n, (amount, reason, m) in enumerate(o["refunds"]):
            out.append(("refunded", (key, uuid.uuid4(), at(m), {
                "request_id": f"R{n}", "amount": amount, "currency": o["currency"],
                "reason": reason})))
        for rating, m in o["ratings"]:
            out.append(("rated", (key, uuid.uuid4(), at(m), {"rating": rating})))
    return out


async def snapshot(conn: Any, shop: str) -> dict[str, list[Any]]:
    """Every rollup row of the shop's slices, and its orders' states."""
    ids = [r[0] for r in await conn.fetch("SELECT slice_id FROM slices WHERE store = $1", shop)]
    out = {}
    for name, t in rollups.TABLES.items():
        if t.sliced:
            cols = ", ".join(c for c, _ in t.keys)
            out[name] = [tuple(r) for r in await conn.fetch(
                f"SELECT * FROM {name} WHERE slice_id = ANY($1::bigint[]) ORDER BY {cols}", ids)]
    out["order_state"] = [tuple(r) for r in await conn.fetch(
        "SELECT order_key, contrib, start_day, slice_id, hold_open_since, tz FROM order_state"
        " WHERE order_key LIKE $1 ORDER BY order_key", f"{shop}:%")]
    return out


UNSLICED = {"r_sku": (("day", "sku"), ("units", "revenue", "orders", "shipped_units", "returned")),
            "r_latency": (("day", "metric", "bucket"), ("n",))}


async def assert_unsliced_are_the_sums(conn: Any, first: date, last: date) -> None:
    """r_sku_all and r_latency_all (migration 0009's triggers) hold their sliced table's sums
    over the slices, row for row, on every day from `first` to `last` (one statement each: one
    snapshot, whatever the stack's analytics commits meanwhile)."""
    for name, (keys, values) in UNSLICED.items():
        k, sums = ", ".join(keys), ", ".join(f"sum({v}) AS {v}" for v in values)
        differ = " OR ".join(f"s.{v} IS DISTINCT FROM a.{v}" for v in values)
        wrong = await conn.fetch(
            f"SELECT {k}, {', '.join(f's.{v} AS sliced_{v}, a.{v}' for v in values)} FROM"
            f" (SELECT {k}, {sums} FROM {name} WHERE day BETWEEN $1 AND $2 GROUP BY {k}) s"
            f" FULL JOIN (SELECT * FROM {name}_all WHERE day BETWEEN $1 AND $2) a USING ({k})"
            f" WHERE {differ}", first, last)
        assert not wrong, (name, [dict(r) for r in wrong[:5]])


def assert_same(got: dict[str, Any], want: dict[str, Any]) -> None:
    assert got.keys() >= want.keys() - {"rfm_customers"}
    for name, rows in want.items():
        if name == "summary":
            g = {r["metric"]: r["value"] for r in got[name]}
            w = {r["metric"]: r["value"] for r in rows}
            assert list(g) == list(w)
            for k, v in w.items():
                if k in PERCENTILES and v is not None and g[k] is not None:
                    # histograms: within one bucket (5 %) and the rounding of the report
                    assert abs(g[k] - v) <= max(0.051 * abs(v), 1 / 60 + 0.01), (k, g[k], v)
                else:
                    assert g[k] == v, (k, g[k], v)
        else:
            assert got[name] == rows, name


@settings(max_examples=30, deadline=None, suppress_health_check=[
    HealthCheck.too_slow, HealthCheck.function_scoped_fixture, HealthCheck.data_too_large])
@given(orders=st.lists(an_order(), min_size=1, max_size=6), seed=st.integers(0, 2**32),
       country=st.sampled_from([None, "DE"]), warehouse=st.sampled_from([None, "WH-LA"]),
       carrier=st.sampled_from([None, "DHL"]), days_back=st.sampled_from([45, 20, 3]),
       end_days=st.sampled_from([None, 10]), month_bits=st.sampled_from([63, 1]))
async def test_every_report_from_the_rollups_equals_the_recompute_from_the_facts(
        stack: None, orders: list[dict[str, Any]], seed: int, country: str | None,
        warehouse: str | None, carrier: str | None, days_back: int, end_days: int | None,
        month_bits: int) -> None:
    """`month_bits` 1: each of a customer's months in a bigint of its own (ranges of many months)."""
    reports.MONTH_BITS, bits_before = month_bits, reports.MONTH_BITS
    shop = f"prop-{uuid.uuid4().hex[:10]}"
    start = NOW - timedelta(days=40)
    events = events_of(shop, start, orders)
    rng = random.Random(seed)
    arrival = events + rng.sample(events, k=len(events) // 3)  # some come twice
    rng.shuffle(arrival)
    conn = await asyncpg.connect(service_database_url("analytics"),
                                 server_settings={"search_path": "analytics"})
    tx = conn.transaction()
    await tx.start()
    try:
        writer = Writer(conn, rng)
        for item in arrival:
            await writer.apply(item)
        await writer.end_run()
        first = datetime.combine((NOW - timedelta(days=days_back)).date(), time.min, UTC)
        f = domain.Filters(first, first + timedelta(days=end_days) if end_days else None,
                           frozenset({shop}), frozenset({country} if country else ()),
                           frozenset({warehouse} if warehouse else ()),
                           frozenset({carrier} if carrier else ()))
        want = domain.reports(await store.load_views(conn, f), f, NOW, SLA_HOURS)
        got = await reports.reports(conn, f, NOW, SLA_HOURS, personal=True)
        assert_same(got, want)
        for name in (*domain.REPORTS, *domain.PERSONAL_REPORTS):  # one report alone, the same
            assert (await reports.reports(conn, f, NOW, SLA_HOURS, only=name)) == {
                name: got[name]}

        days = ((start - timedelta(days=2)).date(), (NOW + timedelta(days=2)).date())
        await assert_unsliced_are_the_sums(conn, *days)

        # Replay: every event again, in another order, changes nothing.
        before = await snapshot(conn, shop)
        again = list(events)
        rng.shuffle(again)
        for item in again:
            await writer.apply(item)
        await writer.end_run()
        assert await snapshot(conn, shop) == before
        await assert_unsliced_are_the_sums(conn, *days)
    finally:
        reports.MONTH_BITS = bits_before
        await tx.rollback()
        await conn.close()


@settings(max_examples=20, deadline=None, suppress_health_check=[
    HealthCheck.too_slow, HealthCheck.function_scoped_fixture, HealthCheck.data_too_large])
@given(orders=st.lists(an_order(), min_size=2, max_size=10), seed=st.integers(0, 2**32),
       days_back=st.sampled_from([45, 20, 3]), end_days=st.sampled_from([None, 10, 1]))
async def test_reports_of_every_slice_equal_the_recompute_in_a_schema_of_their_own(
        stack: None, orders: list[dict[str, Any]], seed: int, days_back: int,
        end_days: int | None) -> None:
    """Without a slice filter, the reports read the unsliced rollups and take the customers
    alone in the range from r_customer's chain (migrations 0009, 0010): in a schema holding
    only these orders, they equal the oracle's recompute over all of them, before and after a
    replay in another order."""
    async with scratch_schema("analytics", prefix="p") as pool:
        rng = random.Random(seed)
        for o in orders:  # mostly sold, over the whole 40 days: customers with orders on both
            o["placed"] = rng.randrange(40 * 24 * 60)  # sides of the range and inside it
            if rng.random() < 0.8:
                o["statuses"] = [x for x in o["statuses"] if x[0] not in ("rejected", "cancelled")]
        events = events_of("prop-all", NOW - timedelta(days=40), orders)
        first = datetime.combine((NOW - timedelta(days=days_back)).date(), time.min, UTC)
        f = domain.Filters(first, first + timedelta(days=end_days) if end_days else None)
        async with pool.acquire() as conn:
            writer = Writer(conn, rng)
            for arrival in (events + rng.sample(events, k=len(events) // 3), list(events)):
                rng.shuffle(arrival)
                for item in arrival:
                    await writer.apply(item)
                await writer.end_run()
                want = domain.reports(await store.load_views(conn, f), f, NOW, SLA_HOURS)
                got = await reports.reports(conn, f, NOW, SLA_HOURS, personal=True)
                assert_same(got, want)
                assert await reports.reports(conn, f, NOW, SLA_HOURS, only="summary") == {
                    "summary": got["summary"]}


async def test_a_late_placed_order_moves_its_contribution_to_its_day(stack: None) -> None:
    """Given statuses before the order itself (the order counts on its first status's day),
    when the order arrives saying it was placed days earlier, then it counts on that day only."""
    shop = f"late-{uuid.uuid4().hex[:10]}"
    placed_at = NOW - timedelta(days=5)
    orders = [{"placed": None, "placed_twice": False, "customer": "c1", "country": "US",
               "currency": "USD", "option": "standard", "lines": [("SKU-A", 2, "5.00")],
               "statuses": [("accepted", 5 * 24 * 60, 0)], "parcels": [], "shipped_at": 0,
               "requests": [], "refunds": [], "ratings": []}]
    status_only = events_of(shop, placed_at, orders)
    orders[0]["placed"] = 0
    placed = [e for e in events_of(shop, placed_at, orders) if e[0] == "placed"]
    conn = await asyncpg.connect(service_database_url("analytics"),
                                 server_settings={"search_path": "analytics"})
    tx = conn.transaction()
    await tx.start()
    try:
        writer = Writer(conn)
        f = domain.Filters(NOW - timedelta(days=30), None, frozenset({shop}))
        for item in status_only:
            await writer.apply(item)
        by_day = (await reports.reports(conn, f, NOW, SLA_HOURS))["orders_by_day"]
        assert by_day == [{"day": NOW.date().isoformat(), "orders": 1, "sold": 0}]
        for item in placed:
            await writer.apply(item)
        got = await reports.reports(conn, f, NOW, SLA_HOURS)
        assert got["orders_by_day"] == [{"day": placed_at.date().isoformat(), "orders": 1,
                                         "sold": 1}]
        assert [r["units"] for r in got["best_sellers"]] == [2]
    finally:
        await tx.rollback()
        await conn.close()


async def test_facts_go_to_month_partitions_and_old_months_are_dropped_by_retention(
        stack: None) -> None:
    """Given an order from 30 months ago and one from today, when retention (24 months) runs,
    then the old month's partition is gone with its facts, while that order's timeline and its
    place in the reports stay (rollups and timelines are not facts); today's facts are in this
    month's partition."""
    shop = f"ret-{uuid.uuid4().hex[:10]}"
    old_start = datetime.combine(jobs.month_start(NOW.date(), 30), time.min, UTC) + timedelta(
        days=3)
    order = {"placed": 0, "placed_twice": False, "customer": "c1", "country": "US",
             "currency": "USD", "option": "standard", "lines": [("SKU-A", 1, "5.00")],
             "statuses": [("accepted", 10, 0)], "parcels": [], "shipped_at": 0, "requests": [],
             "refunds": [], "ratings": []}
    old_events = events_of(shop, old_start, [order])
    new_events = events_of(shop + "-now", NOW - timedelta(minutes=30), [order])
    pool = await asyncpg.create_pool(service_database_url("analytics"), min_size=1, max_size=2,
                                     server_settings={"search_path": "analytics"})
    assert pool is not None
    try:
        async with pool.acquire() as conn, conn.transaction():
            writer = Writer(conn)
            for item in old_events + new_events:
                await writer.apply(item)
            await conn.execute("SELECT facts_month($1)", old_start.date())
        part = f"facts_{old_start:%Y_%m}"

        async def where_facts(key: str) -> set[str]:
            return {r[0] for r in await pool.fetch(
                "SELECT tableoid::regclass::text FROM facts WHERE order_key = $1", key)}
        assert await where_facts(f"{shop}:o0") == {part}
        assert await where_facts(f"{shop}-now:o0") == {f"facts_{NOW:%Y_%m}"}

        settings = jobs.AnalyticsSettings(facts_retention_months=24)
        dropped = await jobs.maintain_partitions(cast(Runtime, SimpleNamespace(pool=pool)),
                                                 settings)
        assert part in dropped
        assert await where_facts(f"{shop}:o0") == set()
        assert await where_facts(f"{shop}-now:o0") == {f"facts_{NOW:%Y_%m}"}
        async with pool.acquire() as conn:
            f = domain.Filters(old_start - timedelta(days=3), old_start + timedelta(days=1),
                               frozenset({shop}))
            got = await reports.reports(conn, f, NOW, SLA_HOURS)
            assert got["orders_by_day"] == [{"day": old_start.date().isoformat(), "orders": 1,
                                             "sold": 1}]
        timeline = await http_get("analytics", f"/orders/{shop}/o0")
        assert timeline.status_code == 200
        assert [t["status"] for t in timeline.json()["timeline"]] == ["accepted"]
    finally:
        await pool.close()
