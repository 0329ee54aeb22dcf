"""The report queries' plans on a seeded history (tools/seed_history.py, in a scratch schema of
the stack's Postgres so the live read model is untouched): no report reads the facts at all,
and none scans a whole rollup or per-order table: a month of a two-year history is read through
the day (or start time) index."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg

from services.analytics import domain, reports, store
from shared.db import migrate
from shared.settings import get_settings
from tools.seed_history import seed

from . import test_analytics_rollups

SCHEMA = "analytics_explain"
ORDERS = 20_000
SMALL = {"slices", "t_status", "t_reason", "t_refund", "t_rating", "rollup_meta",
         "sellers", "seller_stores", "fx_rates"}  # setup: tens of rows


class Recorder:
    """Stands in for a connection or pool: runs each query and keeps it for EXPLAIN."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn
        self.queries: list[tuple[str, tuple[Any, ...]]] = []

    async def fetch(self, sql: str, *args: Any) -> list[Any]:
        self.queries.append((sql, args))
        return list(await self.conn.fetch(sql, *args))

    async def fetchrow(self, sql: str, *args: Any) -> Any:
        self.queries.append((sql, args))
        return await self.conn.fetchrow(sql, *args)

    async def fetchval(self, sql: str, *args: Any) -> Any:
        self.queries.append((sql, args))
        return await self.conn.fetchval(sql, *args)

    async def execute(self, sql: str, *args: Any) -> str:  # settings (SET LOCAL): no plan
        return str(await self.conn.execute(sql, *args))

    def is_in_transaction(self) -> bool:
        return self.conn.is_in_transaction()

    def transaction(self, **kw: Any) -> Any:
        return self.conn.transaction(**kw)


def scans(plan: dict[str, Any]) -> list[tuple[str, str]]:
    out = []
    if "Relation Name" in plan:
        out.append((plan["Node Type"], plan["Relation Name"]))
    for child in plan.get("Plans", []):
        out += scans(child)
    return out


async def _seeded(admin: str) -> None:
    """The schema at the current migrations (a schema left by an earlier run gets the new ones),
    with the seeded history once."""
    conn = await asyncpg.connect(admin)
    try:
        await conn.execute(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}")
    finally:
        await conn.close()
    pool = await asyncpg.create_pool(admin, min_size=1, max_size=1,
                                     server_settings={"search_path": SCHEMA})
    assert pool is not None
    try:
        applied = await migrate(pool, SCHEMA, Path(store.__file__).parent)
        if await pool.fetchval("SELECT count(*) FROM order_state") >= ORDERS:
            if applied:  # a migration filled a new rollup: plan on its statistics, as
                # autovacuum would soon after an upgrade
                for t in await pool.fetch("SELECT tablename FROM pg_tables WHERE schemaname"
                                          " = $1", SCHEMA):
                    await pool.execute(f'ANALYZE {SCHEMA}."{t["tablename"]}"')
            return
    finally:
        await pool.close()
    await seed(admin, ORDERS, days=730, seed=11, schema=SCHEMA)


async def test_no_report_query_reads_the_facts_or_scans_a_whole_table(stack: None) -> None:
    admin = get_settings().database_url
    await _seeded(admin)
    conn = await asyncpg.connect(admin, server_settings={"search_path": SCHEMA})
    try:
        # Two sellers (one in EUR owning the EU store), so the sellers' figures are read too
        await conn.execute(
            "INSERT INTO sellers (seller_id, name, base_currency, stores) VALUES"
            " ('s-us', 'US', 'USD', '{shop-us-1,shop-asia-1}'), ('s-eu', 'EU', 'EUR',"
            " '{shop-eu-1}') ON CONFLICT DO NOTHING;"
            " INSERT INTO seller_stores VALUES ('shop-us-1', 's-us', now()),"
            " ('shop-asia-1', 's-us', now()), ('shop-eu-1', 's-eu', now())"
            " ON CONFLICT DO NOTHING;"
            " INSERT INTO fx_rates (base, quote, rate, as_of) VALUES ('EUR', 'USD', 1.1, now())"
            " ON CONFLICT DO NOTHING")
        rec = Recorder(conn)
        now = datetime.now(UTC)
        month = datetime.combine((now - timedelta(days=30)).date(), datetime.min.time(), UTC)
        for f in (domain.Filters(month), domain.Filters(month, stores=frozenset({"shop-eu-1"})),
                  domain.Filters(month, countries=frozenset({"US"}),
                                 carriers=frozenset({"UPS"}))):
            got = await reports.reports(rec, f, now, 48.0, personal=True, with_sellers=True)
            assert int(got["summary"][0]["value"]) > 0  # the month has orders
            assert sum(s["orders"] for s in got["sellers"]) == int(got["summary"][1]["value"])
        await store.status_counts(rec)  # type: ignore[arg-type]
        await store.reason_counts(rec, "rejected")  # type: ignore[arg-type]
        await store.gauges(rec, 3600)  # type: ignore[arg-type]
        await reports.carrier_scores(rec, month.date())
        await reports.reorder_hints(rec, now)
        assert len(rec.queries) > 40
        for sql, args in rec.queries:
            plan = json.loads(await conn.fetchval(f"EXPLAIN (FORMAT JSON) {sql}", *args))
            found = scans(plan[0]["Plan"])
            assert not [r for _, r in found if r.startswith("facts")], (sql, found)
            whole = [(n, r) for n, r in found if n == "Seq Scan" and r not in SMALL]
            assert not whole, (sql, whole)
    finally:
        await conn.close()


async def test_the_generated_history_reports_as_the_oracle_and_takes_live_events(
        stack: None) -> None:
    """The generator's rollups equal the recompute from its facts; a later event for a
    generated order (whose contribution is not stored) changes them as the fold says."""
    admin = get_settings().database_url
    await _seeded(admin)
    conn = await asyncpg.connect(admin, server_settings={"search_path": SCHEMA})
    tx = conn.transaction()
    await tx.start()
    try:
        key, day = await conn.fetchrow(
            "SELECT s.order_key, s.start_day FROM order_state s JOIN orders o USING (order_key)"
            " WHERE o.status = 'delivered' AND s.contrib IS NULL ORDER BY s.start_day DESC"
            " LIMIT 1")
        now = datetime.now(UTC)
        start = datetime.combine(day - timedelta(days=3), datetime.min.time(), UTC)
        f = domain.Filters(start, start + timedelta(days=7),
                           stores=frozenset({key.partition(":")[0]}))

        async def both() -> tuple[dict[str, Any], dict[str, Any]]:
            want = domain.reports(await store.load_views(conn, f), f, now, 48.0)
            return await reports.reports(conn, f, now, 48.0, personal=True), want
        got, want = await both()
        test_analytics_rollups.assert_same(got, want)
        ratings = {r["rating"]: r["orders"] for r in got["ratings"]}
        before = (await store.views_of(conn, [key]))[0].rating

        eid = uuid.uuid4()
        assert await store.record_fact(conn, eid, "rated", now, {"rating": 1}, order_key=key)
        await store.fold_in(conn, key, [store.stored("rated", eid, now, {"rating": 1})], 48.0)
        got, want = await both()
        test_analytics_rollups.assert_same(got, want)
        after = {r["rating"]: r["orders"] for r in got["ratings"]}
        assert after["1"] == ratings["1"] + (0 if before and before.rating == 1 else 1)
        if before is not None and before.rating != 1:  # the latest rating counts, once
            assert after[str(before.rating)] == ratings[str(before.rating)] - 1
        assert await conn.fetchval("SELECT contrib IS NOT NULL FROM order_state"
                                   " WHERE order_key = $1", key)
    finally:
        await tx.rollback()
        await conn.close()
