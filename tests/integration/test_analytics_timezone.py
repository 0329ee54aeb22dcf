"""A store's day starts at midnight in its own time zone (issue 23, item 5): a Shenzhen seller's
order placed at 20:00 UTC counts on the next day, in the rollups and in every report, and
setting the zone through the API moves the store's existing orders to the new zone's days."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, time, timedelta
from typing import Any

import asyncpg
import httpx

from services.analytics import domain, reports
from shared.settings import get_settings, service_database_url

from .helpers import eventually, http_get, url
from .test_analytics_rollups import SLA_HOURS, Writer, events_of

NOW = datetime.now(UTC).replace(microsecond=0)
DAY = NOW.date() - timedelta(days=10)
# 20:30 UTC on DAY is 04:30 on DAY + 1 in Shenzhen (UTC+8, no summer time).
PLACED = datetime.combine(DAY, time(20, 30), UTC)


def order(customer: str = "c1") -> dict[str, Any]:
    return {"placed": 0, "placed_twice": False, "customer": customer, "country": "CN",
            "currency": "CNY", "option": "standard", "lines": [("SKU-A", 2, "5.00")],
            "statuses": [("accepted", 1, 0)], "parcels": [], "shipped_at": 0, "requests": [],
            "refunds": [], "ratings": []}


def one_day(d: Any, shop: str) -> domain.Filters:
    start = datetime.combine(d, time.min, UTC)
    return domain.Filters(start, start + timedelta(days=1), frozenset({shop}))


async def test_a_shenzhen_store_counts_an_evening_utc_order_on_its_next_local_day(
        stack: None) -> None:
    """Given a store in Asia/Shanghai, when an order is placed at 20:30 UTC, then orders by day,
    the summary, cohorts and RFM count it on the next day (the store's), and a report of the
    UTC day finds nothing; a store without a zone keeps UTC days."""
    shop, utc_shop = f"sz-{uuid.uuid4().hex[:8]}", f"utc-{uuid.uuid4().hex[:8]}"
    conn = await asyncpg.connect(service_database_url("analytics"),
                                 server_settings={"search_path": "analytics"})
    tx = conn.transaction()
    await tx.start()
    try:
        await conn.execute("INSERT INTO store_timezone (store, tz) VALUES ($1, 'Asia/Shanghai')",
                           shop)
        writer = Writer(conn)
        for item in events_of(shop, PLACED, [order()]) + events_of(utc_shop, PLACED, [order()]):
            await writer.apply(item)
        local = DAY + timedelta(days=1)
        got = await reports.reports(conn, one_day(local, shop), NOW, SLA_HOURS)
        assert got["orders_by_day"] == [{"day": local.isoformat(), "orders": 1, "sold": 1}]
        summary = {r["metric"]: r["value"] for r in got["summary"]}
        assert (summary["orders"], summary["customers"]) == (1, 1)
        assert got["cohorts"] == [{"cohort": f"{local:%Y-%m}", "customers": 1, "m0": 1}]
        assert [r["customers"] for r in got["rfm_segments"]] == [1]
        utc_day = await reports.reports(conn, one_day(DAY, shop), NOW, SLA_HOURS)
        assert utc_day["orders_by_day"] == []
        assert {r["metric"]: r["value"] for r in utc_day["summary"]}["customers"] == 0
        plain = await reports.reports(conn, one_day(DAY, utc_shop), NOW, SLA_HOURS)
        assert plain["orders_by_day"] == [{"day": DAY.isoformat(), "orders": 1, "sold": 1}]
        assert await conn.fetchval("SELECT start_day FROM order_state WHERE order_key = $1",
                                   f"{shop}:o0") == local
    finally:
        await tx.rollback()
        await conn.close()


async def test_setting_a_zone_moves_the_stores_orders_to_its_days(stack: None) -> None:
    """Given a store's orders counted in UTC days, when an operator sets the store's zone to
    Asia/Shanghai (PUT /stores/{store}/timezone), then the refold job moves them to that zone's
    days and the reports say so; setting it back moves them back, and the totals never change.
    A name that is not a time zone is refused with a reason code; without the token, 401."""
    shop = f"tz-{uuid.uuid4().hex[:8]}"
    pool = await asyncpg.create_pool(service_database_url("analytics"), min_size=1, max_size=2,
                                     server_settings={"search_path": "analytics"})
    assert pool is not None
    token = {"Authorization": f"Bearer {get_settings().shopkeeper_admin_token}"}
    start, end = DAY - timedelta(days=1), DAY + timedelta(days=2)
    query = f"/reports/orders_by_day?store={shop}&from={start}&to={end}"
    try:
        async with pool.acquire() as conn, conn.transaction():
            writer = Writer(conn)
            for item in events_of(shop, PLACED, [order("c1"), order("c2")]):
                await writer.apply(item)
        r = await http_get("analytics", query, auth=True)
        assert r.json()["rows"] == [{"day": DAY.isoformat(), "orders": 2, "sold": 2}]

        async def put(zone: str, auth: bool = True) -> httpx.Response:
            async with httpx.AsyncClient(timeout=10) as client:
                return await client.put(url("analytics", f"/stores/{shop}/timezone"),
                                        json={"timezone": zone}, headers=token if auth else {})

        assert (await put("Asia/Shanghai", auth=False)).status_code == 401
        bad = await put("Mars/Olympus_Mons")
        assert bad.status_code == 422 and bad.json()["detail"]["code"] == "unknown_timezone"
        for zone, day in (("Asia/Shanghai", DAY + timedelta(days=1)), ("UTC", DAY)):
            answer = await put(zone)
            assert answer.status_code == 200, answer.text
            assert answer.json()["timezone"] == zone

            async def moved(zone: str = zone) -> bool:
                listed = (await http_get("analytics", "/stores/timezones")).json()["stores"]
                mine = [s for s in listed if s["store"] == shop]
                return bool(mine) and mine[0]["timezone"] == zone and not mine[0]["refolding"]
            await eventually(moved, timeout=60, what=f"{shop}'s orders moved to {zone} days")
            rows = (await http_get("analytics", query, auth=True)).json()["rows"]
            assert rows == [{"day": day.isoformat(), "orders": 2, "sold": 2}], zone
    finally:
        async with pool.acquire() as conn:
            await conn.execute("DELETE FROM store_timezone WHERE store = $1", shop)
        await pool.close()
