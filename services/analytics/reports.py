"""The reports, by SQL over the rollups (rollups.py): the same tables `domain.reports` recomputes
from the facts, which the tests keep as the oracle.

SQL does the aggregation (sums by day range and slice, percentiles' histograms, RFM segments and
cohorts with window functions); Python only shapes the few result rows the way the oracle does
(rates rounded to 4 places, money to 2), so both give the same text.

Reports are by whole days, each store's own (its time zone, store_timezone: an order counts on
the day it started on in its store's zone; UTC when the store has none): the rollups are daily.
The API rounds `from` and `to` to days.
Latency percentiles come from histograms, so they are within one bucket (about 5 %) of the exact
value.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

import asyncpg

from shared.db import Conn
from shared.money import load_rates

from . import domain, rollups, sellers
from .domain import _round, rate


@dataclass(frozen=True)
class Scope:
    """A filter as SQL: a day range and, when a filter names stores, countries, warehouses or
    carriers, the slices that match."""

    first_day: date | None
    end_day: date | None          # exclusive
    slices: list[int] | None

    def where(self, day: str = "day", first: int = 1) -> tuple[str, list[Any]]:
        """A WHERE clause with only the conditions in force (a generic plan for `$1 IS NULL OR`
        would not use the day index), and its arguments numbered from `first`."""
        parts: list[str] = []
        args: list[Any] = []
        for cond, value in ((f"{day} >= ${{}}", self.first_day),
                            (f"{day} < ${{}}", self.end_day),
                            ("slice_id = ANY(${}::bigint[])", self.slices)):
            if value is not None:
                parts.append(cond.format(first + len(args)))
                args.append(value)
        return (" WHERE " + " AND ".join(parts)) if parts else "", args


def day_floor(t: datetime) -> date:
    return t.astimezone(UTC).date()


def day_ceil(t: datetime) -> date:
    d = day_floor(t)
    return d if datetime.combine(d, time.min, UTC) == t.astimezone(UTC) else d + timedelta(days=1)


async def scope(conn: Conn, f: domain.Filters) -> Scope:
    slices = None
    if f.stores or f.countries or f.warehouses or f.carriers:
        rows = await conn.fetch(
            "SELECT slice_id FROM slices WHERE ($1::text[] IS NULL OR store = ANY($1))"
            " AND ($2::text[] IS NULL OR country = ANY($2))"
            " AND ($3::text[] IS NULL OR warehouses && $3)"
            " AND ($4::text[] IS NULL OR carriers && $4)",
            sorted(f.stores) or None, sorted(f.countries) or None, sorted(f.warehouses) or None,
            sorted(f.carriers) or None)
        slices = [r["slice_id"] for r in rows]
    return Scope(day_floor(f.start) if f.start else None,
                 day_ceil(f.end) if f.end else None, slices)


# --- the queries, one per rollup ------------------------------------------------------------

SUMS = ", ".join(f"coalesce(sum({c}), 0) AS {c}" for c in rollups.DAILY_COLUMNS)


# Tables with a copy summed over the slices (migration 0009), for a scope without slices.
UNSLICED = ("r_sku", "r_latency")


def _table(s: Scope, name: str) -> str:
    """`name`, or its unsliced copy when the scope takes every slice."""
    return f"{name}_all" if s.slices is None and name in UNSLICED else name


async def _grouped(conn: Conn, s: Scope, table: str, group: str, value: str,
                   extra: str = "") -> list[Any]:
    where, args = s.where()
    if extra:
        where = (where + " AND " if where else " WHERE ") + extra
    return list(await conn.fetch(
        f"SELECT {group}, {value} FROM {_table(s, table)}{where} GROUP BY {group}", *args))


def _pairs_table(rows: list[Any], key: str, value: str) -> list[dict[str, Any]]:
    ordered = sorted(((r[0], int(r[1])) for r in rows if r[1]), key=lambda kv: (-kv[1], kv[0]))
    return [{key: k, value: n} for k, n in ordered]


async def totals(conn: Conn, s: Scope) -> dict[str, Any]:
    where, args = s.where()
    row = await conn.fetchrow(f"SELECT {SUMS} FROM r_daily{where}", *args)
    return dict(row) if row else dict.fromkeys(rollups.DAILY_COLUMNS, 0)


async def orders_by_day(conn: Conn, s: Scope) -> list[dict[str, Any]]:
    where, args = s.where()
    rows = await conn.fetch(f"SELECT day, sum(orders) AS orders, sum(sold) AS sold FROM r_daily"
                            f"{where} GROUP BY day HAVING sum(orders) > 0 ORDER BY day", *args)
    return [{"day": r["day"].isoformat(), "orders": r["orders"], "sold": r["sold"]} for r in rows]


async def histogram(conn: Conn, s: Scope, metric: str) -> dict[int, int]:
    rows = await _grouped(conn, s, "r_latency", "bucket", "sum(n)", f"metric = '{metric}'")
    return {r[0]: int(r[1]) for r in rows if r[1]}


async def open_holds(conn: Conn, s: Scope) -> list[datetime]:
    where, args = s.where("start_day")
    where = (where + " AND " if where else " WHERE ") + "hold_open_since IS NOT NULL"
    return [r[0] for r in await conn.fetch(
        f"SELECT hold_open_since FROM order_state{where}", *args)]


async def carriers(conn: Conn, s: Scope) -> list[dict[str, Any]]:
    cols = ("parcels", "delivered", "on_time", "exceptions", "cost_total", "cost_samples",
            "promise_reported")
    where, args = s.where()
    rows = await conn.fetch(
        f"SELECT carrier, service, {', '.join(f'sum({c}) AS {c}' for c in cols)} FROM r_carrier"
        f"{where} GROUP BY carrier, service HAVING sum(parcels) > 0"
        " ORDER BY sum(parcels) DESC, carrier, service", *args)
    out = []
    for r in rows:
        samples, total = int(r["cost_samples"]), Decimal(r["cost_total"])
        out.append({"carrier": r["carrier"], "service": r["service"], "parcels": r["parcels"],
                    "delivered": r["delivered"], "on_time": r["on_time"],
                    "exceptions": r["exceptions"], "promise_reported": r["promise_reported"],
                    "on_time_delivery_rate": rate(r["on_time"], r["delivered"]),
                    "cost_per_parcel": f"{(total / samples):.2f}" if samples else None,
                    "cost_samples": samples})
    return out


async def refunds(conn: Conn, s: Scope) -> list[dict[str, Any]]:
    where, args = s.where()
    rows = await conn.fetch(
        f"SELECT currency, reason, sum(refunds) AS n, sum(amount) AS amount FROM r_refund{where}"
        " GROUP BY currency, reason HAVING sum(refunds) > 0 ORDER BY currency, reason", *args)
    return [{"currency": r["currency"], "reason": r["reason"], "refunds": r["n"],
             "amount": f"{Decimal(r['amount']):.2f}"} for r in rows]


async def skus(conn: Conn, s: Scope, now: datetime) -> list[Any]:
    """Per SKU: the range's sums, and units over the last 7 and 30 days (domain.last_days)."""
    where, args = s.where(first=3)
    d7, d30 = (day_floor(domain.last_days(now, n)[0]) for n in (7, 30))
    today = day_floor(now)
    return list(await conn.fetch(
        "SELECT sku, sum(units) AS units, sum(revenue) AS revenue, sum(orders) AS orders,"
        " sum(shipped_units) AS shipped_units, sum(returned) AS returned,"
        f" coalesce(sum(units) FILTER (WHERE day >= $1 AND day <= ${len(args) + 3}), 0) AS u7,"
        f" coalesce(sum(units) FILTER (WHERE day >= $2 AND day <= ${len(args) + 3}), 0) AS u30"
        f" FROM {_table(s, 'r_sku')}{where} GROUP BY sku", d7, d30, *args, today))


async def sku_reasons(conn: Conn, s: Scope) -> dict[str, dict[str, int]]:
    where, args = s.where()
    out: dict[str, dict[str, int]] = defaultdict(dict)
    for r in await conn.fetch(f"SELECT sku, reason, sum(units) AS n FROM r_sku_reason{where}"
                              " GROUP BY sku, reason HAVING sum(units) > 0", *args):
        out[r["sku"]][r["reason"]] = int(r["n"])
    return out


async def top_pairs(conn: Conn, s: Scope, top: int = 20) -> list[Any]:
    where, args = s.where(first=2)
    return list(await conn.fetch(
        f"SELECT sku_a, sku_b, sum(orders) AS n FROM r_pair{where} GROUP BY sku_a, sku_b"
        " HAVING sum(orders) > 0 ORDER BY n DESC, sku_a, sku_b LIMIT $1", top, *args))


# RFM segments in SQL: domain.rfm_segment as a CASE over a customer's frequency and last order,
# giving the segment's index in _SEGMENTS (grouping by a small number is cheaper than by a name).
# "recency <= n days" is `last >= now - n days`: a comparison instead of an epoch per row.
_SEGMENTS = ("champions", "loyal", "new", "at_risk", "needs_attention", "lost")


def _segment(frequency: str, last: str, first: int) -> str:
    """The CASE, over the SQL expressions `frequency` and `last`; its arguments ${first} to
    ${first + 2} are `_recency_limits(now)`. A constant frequency ("1") folds it at planning."""
    d30, d60, d90 = (f"${first + i}" for i in range(3))
    return (f"CASE WHEN {frequency} >= 3 AND {last} >= {d30} THEN 0"
            f" WHEN {frequency} >= 2 AND {last} >= {d60} THEN 1"
            f" WHEN {frequency} = 1 AND {last} >= {d30} THEN 2"
            f" WHEN {frequency} >= 2 THEN 3 WHEN {last} >= {d90} THEN 4 ELSE 5 END")


def _recency_limits(now: datetime) -> list[datetime]:
    return [now - timedelta(days=d) for d in (30, 60, 90)]


def _customers_cte(s: Scope) -> tuple[str, list[Any]]:
    """Per customer: frequency, last order and recency in days ($1: now); the scope's
    arguments from $5 ($2-$4 are left for `_segment`)."""
    where, args = s.where("day", first=5)
    return (f"WITH c AS (SELECT customer_id, sum(orders) AS frequency,"
            " max(started_at) FILTER (WHERE orders > 0) AS last"
            f" FROM r_customer{where} GROUP BY customer_id HAVING sum(orders) > 0),"
            " r AS (SELECT customer_id, frequency, last,"
            " date_part('epoch', $1::timestamptz - last) / 86400 AS recency FROM c)"), args


# A customer's months as bits: bit i for the range's i-th month with data, 63 months to a bigint,
# so one pass grouped by customer gives RFM and cohorts. The months with data come from r_daily
# (every day r_customer has, r_daily has too, in the same snapshot): a range over two years of
# history needs one bigint, and a lone order dated in 2099 by a wrong clock adds one bit, not 870.
MONTH_BITS = 63


async def customers(conn: Conn, s: Scope, now: datetime) -> dict[str, Any]:
    """Customers, repeat customers, RFM segments and cohorts in one pass over the range's
    r_customer, grouped by customer (then by segment and set of months: a few rows). Both
    statements read one snapshot, so the months cover every row."""
    if conn.is_in_transaction():
        return await _customers(conn, s, now)
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        # The planner expects a group per customer (100,000 in 30 days of a million orders),
        # too many to hash in the default 4 MB: it sorted them, spilling to disk (+50 %). The
        # groups are a few thousand (the customers alone in the range share theirs).
        await conn.execute("SET LOCAL work_mem = '32MB'")
        return await _customers(conn, s, now)


def _alone(s: Scope, first: int) -> str:
    """SQL true for a row that is its customer's only order in the range: one order, and its
    neighbours in the customer's chain (migration 0010) outside the range. The chain links
    every slice's rows, so with a slice filter no row is taken alone (all are grouped). `first`:
    the number of the scope's first argument, as in Scope.where."""
    if s.slices is not None:
        return "false"
    end = first + (s.first_day is not None)
    before = ("prev_day IS NULL" if s.first_day is None
              else f"(prev_day IS NULL OR prev_day < ${first})")
    after = ("next_day IS NULL" if s.end_day is None
             else f"(next_day IS NULL OR next_day >= ${end})")
    return f"(orders = 1 AND {before} AND {after})"


async def _customers(conn: Conn, s: Scope, now: datetime) -> dict[str, Any]:
    where, args = s.where()
    months = [r[0] for r in await conn.fetch(
        f"SELECT DISTINCT date_trunc('month', day)::date FROM r_daily{where} ORDER BY 1", *args)]
    if not months:
        return {"customers": 0, "repeat_customers": 0, "repeat_customer_rate": rate(0, 0),
                "segments": [], "cohorts": []}
    words = (len(months) + MONTH_BITS - 1) // MONTH_BITS
    ws = ", ".join(f"w{w}" for w in range(words))
    grouped = ", ".join(f"bit_or(1::bigint << (b - {w * MONTH_BITS})) FILTER (WHERE b /"
                        f" {MONTH_BITS} = {w}) AS w{w}" for w in range(words))
    where, args = s.where("day", first=5)
    where = (where + " AND" if where else " WHERE") + " orders > 0"
    # One pass, one grouping: a customer alone in the range (one order, `_alone`) is counted in
    # a group of its segment and month, the others in a group of their own (who: the customer).
    rows = await conn.fetch(
        "WITH g AS (SELECT CASE WHEN alone THEN NULL ELSE customer_id END AS who,"
        f" CASE WHEN alone THEN {_segment('1', 'started_at', 2)} END AS alone_segment,"
        " CASE WHEN alone THEN b END AS alone_month, count(*) AS customers,"
        f" sum(orders) AS frequency, max(started_at) AS last, {grouped}"
        f" FROM (SELECT customer_id, orders, started_at, {_alone(s, 5)} AS alone,"
        # OFFSET 0 keeps x a subquery: `alone` computed once a row, not once per use (-11 %)
        f" width_bucket(day, $1::date[]) - 1 AS b FROM r_customer{where} OFFSET 0) x"
        " GROUP BY 1, 2, 3)"
        f" SELECT coalesce(alone_segment, {_segment('frequency', 'last', 2)}) AS segment,"
        f" who IS NOT NULL AND frequency >= 2 AS repeat, {ws},"
        " sum(CASE WHEN who IS NULL THEN customers ELSE 1 END) AS n"
        f" FROM g GROUP BY 1, 2, {ws}",
        months, *_recency_limits(now), *args)
    segments: dict[str, int] = defaultdict(int)
    table: dict[str, dict[int, int]] = defaultdict(lambda: defaultdict(int))
    for r in rows:
        n = int(r["n"])
        segments[_SEGMENTS[r["segment"]]] += n
        mine = [months[w * MONTH_BITS + i] for w in range(words) for i in range(MONTH_BITS)
                if (r[f"w{w}"] or 0) >> i & 1]
        cohort = mine[0]
        for m in mine:
            table[cohort.strftime("%Y-%m")][(m.year - cohort.year) * 12 + m.month - cohort.month
                                            ] += n
    n = sum(segments.values())
    repeat = sum(int(r["n"]) for r in rows if r["repeat"])
    return {"customers": n, "repeat_customers": repeat, "repeat_customer_rate": rate(repeat, n),
            "segments": _pairs_table(list(segments.items()), "segment", "customers"),
            "cohorts": _cohort_rows(table)}


async def customer_counts(conn: Conn, s: Scope) -> dict[str, Any]:
    """Customers and repeat customers of the range, the summary's only customer figures: the
    same grouping by customer as `customers`, without segments and months. Without a slice
    filter, a customer not alone in the range (`_alone`) has two orders or more in it."""
    where, args = s.where("day")
    where = (where + " AND" if where else " WHERE") + " orders > 0"
    if s.slices is None:
        row = await conn.fetchrow(
            f"SELECT count(*) FILTER (WHERE {_alone(s, 1)}) AS alone, count(DISTINCT customer_id)"
            f" FILTER (WHERE NOT {_alone(s, 1)}) AS repeat FROM r_customer{where}", *args)
        assert row is not None
        repeat = int(row["repeat"])
        n = int(row["alone"]) + repeat
        return {"customers": n, "repeat_customers": repeat,
                "repeat_customer_rate": rate(repeat, n)}
    row = await conn.fetchrow(
        "SELECT count(*) AS n, count(*) FILTER (WHERE frequency >= 2) AS repeat FROM"
        f" (SELECT sum(orders) AS frequency FROM r_customer{where} GROUP BY customer_id) c",
        *args)
    n, repeat = (int(row["n"]), int(row["repeat"])) if row is not None else (0, 0)
    return {"customers": n, "repeat_customers": repeat, "repeat_customer_rate": rate(repeat, n)}


async def rfm_customers(conn: Conn, s: Scope, now: datetime) -> list[dict[str, Any]]:
    """Per customer (personal data: the API asks for the admin token)."""
    cte, args = _customers_cte(s)
    where, margs = s.where("day")
    rows = await conn.fetch(
        f"{cte} SELECT customer_id, frequency, recency, {_segment('frequency', 'last', 2)}"
        " AS segment FROM r ORDER BY customer_id", now, *_recency_limits(now), *args)
    money: dict[str, list[str]] = defaultdict(list)
    for m in await conn.fetch(
            f"SELECT customer_id, currency, sum(monetary) AS amount FROM r_customer{where}"
            " GROUP BY customer_id, currency HAVING sum(orders) > 0 ORDER BY 1, 2", *margs):
        money[m["customer_id"]].append(f"{Decimal(m['amount']):.2f} {m['currency']}")
    return [{"customer_id": r["customer_id"], "recency_days": round(float(r["recency"]), 1),
             "frequency": int(r["frequency"]), "monetary": ", ".join(money[r["customer_id"]]),
             "segment": _SEGMENTS[r["segment"]]} for r in rows]


def _cohort_rows(table: dict[str, dict[int, int]]) -> list[dict[str, Any]]:
    out = []
    for cohort, counts in sorted(table.items()):
        row: dict[str, Any] = {"cohort": cohort, "customers": counts.get(0, 0)}
        for k in range(max(counts) + 1):
            row[f"m{k}"] = counts.get(k, 0)
        out.append(row)
    return out


# --- sellers: figures in each seller's base currency (sellers.py) -----------------------------

async def seller_sums(conn: Conn, s: Scope, stores: frozenset[str] = frozenset()
                      ) -> tuple[list[sellers.Seller], dict[tuple[str, str], sellers.Sums]]:
    """The sellers (those owning one of `stores` when the filter names stores) and their sums per
    currency over the range: revenue (r_revenue) and refunds (r_refund) of their stores' orders,
    summed in SQL (a few rows per seller whatever the number of orders)."""
    who = await conn.fetch(
        "SELECT s.seller_id, s.name, s.base_currency,"
        " coalesce(array_agg(ss.store ORDER BY ss.store) FILTER (WHERE ss.store IS NOT NULL),"
        " '{}') AS stores FROM sellers s LEFT JOIN seller_stores ss USING (seller_id)"
        " GROUP BY 1, 2, 3 HAVING $1::text[] IS NULL OR array_agg(ss.store) && $1::text[]"
        " ORDER BY 1", sorted(stores) or None)
    found = [sellers.Seller(r["seller_id"], r["name"], r["base_currency"], list(r["stores"]))
             for r in who]
    sums: dict[tuple[str, str], sellers.Sums] = {}
    if not found:
        return found, sums
    where, args = s.where()
    for table, values in (("r_revenue", "sum(r.orders), sum(r.amount)"),
                          ("r_refund", "sum(r.refunds), sum(r.amount)")):
        rows = await conn.fetch(
            f"SELECT ss.seller_id, r.currency, {values} FROM {table} r"
            " JOIN slices USING (slice_id) JOIN seller_stores ss ON ss.store = slices.store"
            f"{where} GROUP BY 1, 2", *args)
        for r in rows:
            x = sums.setdefault((r[0], r[1]), sellers.Sums())
            if table == "r_revenue":
                x.orders, x.revenue = int(r[2]), Decimal(r[3])
            else:
                x.refunds, x.refunds_amount = int(r[2]), Decimal(r[3])
    return found, sums


async def seller_figures(conn: Conn, s: Scope, f: domain.Filters) -> list[dict[str, Any]]:
    """The `sellers` report: per seller, in its base currency and per currency."""
    found, sums = await seller_sums(conn, s, f.stores)
    if not found:
        return []
    return sellers.figures(found, sums, await load_rates(conn))


# --- the feedback loops (jobs.publish_feedback) ----------------------------------------------

async def carrier_scores(conn: Conn, since: date) -> list[dict[str, Any]]:
    """domain.carrier_scores over the orders started since `since`."""
    rows = await conn.fetch(
        "SELECT r.carrier, r.service, s.country, sum(r.on_time) AS n, sum(r.delivered) AS m"
        " FROM r_carrier r JOIN slices s USING (slice_id) WHERE r.day >= $1"
        " GROUP BY 1, 2, 3 HAVING sum(r.delivered) > 0 ORDER BY 1, 2, 3", since)
    return [{"carrier": r["carrier"], "service": r["service"], "country": r["country"],
             "on_time_rate": round(int(r["n"]) / int(r["m"]), 4), "samples": int(r["m"])}
            for r in rows]


async def reorder_hints(conn: Conn, now: datetime) -> list[dict[str, Any]]:
    """domain.reorder_hints: units sold per SKU over the last 7 and 30 days."""
    d7, d30 = (day_floor(domain.last_days(now, n)[0]) for n in (7, 30))
    rows = await conn.fetch(
        "SELECT sku, coalesce(sum(units) FILTER (WHERE day >= $1), 0) AS u7, sum(units) AS u30"
        " FROM r_sku_all WHERE day >= $2 AND day <= $3 GROUP BY sku HAVING sum(units) > 0"
        " ORDER BY sku", d7, d30, day_floor(now))
    return [{"sku": r["sku"], "velocity_7d": round(int(r["u7"]) / 7, 3),
             "velocity_30d": round(int(r["u30"]) / 30, 3), "units_7d": int(r["u7"]),
             "units_30d": int(r["u30"])} for r in rows]


# --- all of them, shaped as domain.reports --------------------------------------------------

class _On:
    """Where the queries of one request run: on a pool, each on its own connection, all at once
    (a report page's dozen queries wait for one another no more); on one connection (a test's
    transaction), one after another."""

    def __init__(self, db: Conn | asyncpg.Pool) -> None:
        self.pool = db if isinstance(db, asyncpg.Pool) else None
        self.conn = None if isinstance(db, asyncpg.Pool) else db

    async def __call__(self, fn: Callable[..., Awaitable[Any]], *args: Any) -> Any:
        if self.pool is not None:
            async with self.pool.acquire() as conn:
                return await fn(conn, *args)
        return await fn(self.conn, *args)

    async def all(self, calls: list[tuple[Any, ...]]) -> list[Any]:
        if self.pool is not None:
            return list(await asyncio.gather(*(self(*call) for call in calls)))
        return [await self(*call) for call in calls]


SKU_REPORTS = ("best_sellers", "returns_by_sku", "pairs")
# Reports beyond the oracle's (domain.REPORTS): the API asks for them with `with_sellers`.
SELLER_REPORTS = ("sellers",)


async def reports(db: Conn | asyncpg.Pool, f: domain.Filters, now: datetime, sla_hours: float,
                  personal: bool = False, only: str | None = None, with_sellers: bool = False
                  ) -> dict[str, list[dict[str, Any]]]:
    """Every report (`only`: just that one, reading only its rollups), as domain.reports. Each
    rollup is read once per request (the SKU reports share their rows). `with_sellers`: also the
    `sellers` report, and each seller's figures in the summary (sellers.summary_metrics)."""
    on = _On(db)
    s = await on(scope, f)
    if only == "sellers":
        return {"sellers": await on(seller_figures, s, f)}
    if with_sellers and only in (None, "summary"):
        if on.pool is not None:  # the seller sums on their own connection, with the others
            found, by_seller = await asyncio.gather(
                _reports(on, s, f, now, sla_hours, personal, only), on(seller_figures, s, f))
        else:
            found = await _reports(on, s, f, now, sla_hours, personal, only)
            by_seller = await on(seller_figures, s, f)
        found["summary"] = found["summary"] + sellers.summary_metrics(by_seller)
        if only is None:
            found["sellers"] = by_seller
        return found
    return await _reports(on, s, f, now, sla_hours, personal, only)


async def _reports(on: _On, s: Scope, f: domain.Filters, now: datetime, sla_hours: float,
                   personal: bool, only: str | None) -> dict[str, list[dict[str, Any]]]:
    if only is not None and only != "summary":
        return dict(await on(one, s, f, now, only))
    # The summary alone needs only the customers' counts, not their segments and cohorts.
    who = (customer_counts, s) if only == "summary" else (customers, s, now)
    calls: list[tuple[Any, ...]] = [(totals, s), (histogram, s, "hold"), (open_holds, s),
                                    (histogram, s, "ship"), (refunds, s), who]
    others = [] if only == "summary" else [
        name for name in domain.REPORTS
        if name not in ("summary", "refunds", "rfm_segments", "cohorts", *SKU_REPORTS)]
    if personal and only is None:
        others.append("rfm_customers")
    calls += [(one, s, f, now, name) for name in others]
    if only is None:
        calls += [(skus, s, now), (sku_reasons, s), (top_pairs, s)]
    found = await on.all(calls)
    t, hold_hist, opened, ship_hist, refund_rows, cust = found[:6]
    open_ages = [(now - at).total_seconds() / 3600 for at in opened]
    merged = dict(hold_hist)
    for age in open_ages:
        b = rollups.bucket(age)
        merged[b] = merged.get(b, 0) + 1
    closed_max = rollups.bucket_value(max(hold_hist)) if hold_hist else None
    hold_max = max([a for a in (closed_max, *open_ages) if a is not None], default=None)
    orders = int(t["orders"])
    summary: dict[str, Any] = {"orders": orders, "sold": int(t["sold"])}
    summary |= {"reviewed": int(t["reviewed"]), "accepted": int(t["accepted"]),
                "rejected": int(t["rejected"]),
                "acceptance_rate": rate(int(t["accepted"]), int(t["reviewed"]))}
    summary |= {"held": int(t["held"]), "hold_rate": rate(int(t["held"]), orders),
                "held_now": len(open_ages),
                "hold_age_p50_h": _round(rollups.percentile(merged, 50)),
                "hold_age_max_h": _round(hold_max),
                "oldest_open_hold_h": _round(max(open_ages) if open_ages else None)}
    decided, back = int(t["stock_decided"]), int(t["backordered"])
    summary |= {"stock_decided": decided, "backordered": back,
                "backorder_rate": rate(back, decided), "fill_rate": rate(decided - back, decided),
                "backordered_now": int(t["backordered_now"])}
    shipped, on_time = int(t["shipped"]), int(t["shipped_on_time"])
    summary |= {"shipped": shipped,
                "placed_to_shipped_p50_h": _round(rollups.percentile(ship_hist, 50), 6),
                "placed_to_shipped_p90_h": _round(rollups.percentile(ship_hist, 90), 6),
                "ship_sla_h": sla_hours, "shipped_on_time": on_time,
                "on_time_ship_rate": rate(on_time, shipped)}
    samples = int(t["cost_samples"])
    summary |= {"parcels": int(t["parcels"]), "parcels_delivered": int(t["parcels_delivered"]),
                "on_time_delivery_rate": rate(int(t["parcels_on_time"]),
                                              int(t["parcels_delivered"])),
                "cost_per_parcel": f"{Decimal(t['cost_total']) / samples:.2f}" if samples
                else None, "cost_samples": samples}
    by_currency: dict[str, Decimal] = defaultdict(Decimal)
    for r in refund_rows:
        by_currency[r["currency"]] += Decimal(r["amount"])
    ratings_n = int(t["ratings"])
    summary |= {"return_requests": int(t["return_requests"]),
                "refunds": sum(r["refunds"] for r in refund_rows),
                "refunds_amount": ", ".join(f"{a:.2f} {c}" for c, a in sorted(
                    by_currency.items())) or "0.00",
                "ratings": ratings_n,
                "average_rating": round(int(t["rating_sum"]) / ratings_n, 2) if ratings_n
                else None}
    summary |= {k: cust[k] for k in ("customers", "repeat_customers", "repeat_customer_rate")}
    out = {"summary": [{"metric": k, "value": v} for k, v in summary.items()]}
    if only == "summary":
        return out
    out |= {"refunds": refund_rows, "rfm_segments": cust["segments"], "cohorts": cust["cohorts"]}
    for result in found[6:6 + len(others)]:
        out |= result
    sku_rows, reasons, pairs = found[6 + len(others):]
    for name in SKU_REPORTS:
        out |= _sku_shaped(s, f, now, name, t, sku_rows, reasons, pairs)
    return {name: out[name] for name in (*domain.REPORTS, *others) if name in out}


async def one(conn: Conn, s: Scope, f: domain.Filters, now: datetime, name: str,
              t: dict[str, Any] | None = None) -> dict[str, list[dict[str, Any]]]:
    """One report other than the summary, from its own rollups."""
    if name == "orders_by_day":
        return {name: await orders_by_day(conn, s)}
    if name == "orders_by_status":
        return {name: _pairs_table(await _grouped(conn, s, "r_status", "status", "sum(orders)"),
                                   "status", "orders")}
    if name in ("rejection_reasons", "hold_reasons"):
        status = "rejected" if name == "rejection_reasons" else "on_hold"
        return {name: _pairs_table(await _grouped(
            conn, s, "r_reason", "reason", "sum(orders)", f"status = '{status}'"),
            "reason", "orders")}
    if name == "carriers":
        return {name: await carriers(conn, s)}
    if name == "returns_by_reason":
        return {name: _pairs_table(await _grouped(
            conn, s, "r_return_reason", "reason", "sum(requests)"), "reason", "requests")}
    if name == "refunds":
        return {name: await refunds(conn, s)}
    if name == "ratings":
        ratings = {r[0]: int(r[1]) for r in await _grouped(conn, s, "r_rating", "rating",
                                                          "sum(orders)")}
        return {name: [{"rating": str(k), "orders": ratings.get(k, 0)} for k in range(1, 6)]}
    if name == "rfm_segments":
        return {name: (await customers(conn, s, now))["segments"]}
    if name == "rfm_customers":
        return {name: await rfm_customers(conn, s, now)}
    if name == "cohorts":
        return {name: (await customers(conn, s, now))["cohorts"]}
    if name in ("best_sellers", "returns_by_sku", "pairs"):
        return await _sku_reports(conn, s, f, now, name, t)
    raise KeyError(name)


async def _sku_reports(conn: Conn, s: Scope, f: domain.Filters, now: datetime, name: str,
                       t: dict[str, Any] | None) -> dict[str, list[dict[str, Any]]]:
    sku_rows = await skus(conn, s, now)
    reasons = await sku_reasons(conn, s) if name == "returns_by_sku" else {}
    pairs = await top_pairs(conn, s) if name == "pairs" else []
    if name == "pairs" and t is None:
        t = await totals(conn, s)
    return _sku_shaped(s, f, now, name, t, sku_rows, reasons, pairs)


def _sku_shaped(s: Scope, f: domain.Filters, now: datetime, name: str,
                t: dict[str, Any] | None, sku_rows: list[Any], reasons: dict[str, dict[str, int]],
                pairs: list[Any]) -> dict[str, list[dict[str, Any]]]:
    if name == "best_sellers":
        start = f.start or (datetime.combine(s.first_day, time.min, UTC) if s.first_day
                            else now)
        end = min(f.end or now, now)
        days = max((end - start).total_seconds() / 86400, 1.0)
        sold = [r for r in sku_rows if r["units"]]
        return {name: [
            {"sku": r["sku"], "units": int(r["units"]), "revenue": f"{Decimal(r['revenue']):.2f}",
             "velocity_per_day": round(int(r["units"]) / days, 3) if days > 0 else None,
             "velocity_7d": round(int(r["u7"]) / 7, 3),
             "velocity_30d": round(int(r["u30"]) / 30, 3)}
            for r in sorted(sold, key=lambda r: (-int(r["units"]), r["sku"]))]}
    if name == "returns_by_sku":
        returned = [r for r in sku_rows if r["shipped_units"] or r["returned"]]
        return {name: [
            {"sku": r["sku"], "sold": int(r["shipped_units"]), "returned": int(r["returned"]),
             "return_rate": rate(int(r["returned"]), int(r["shipped_units"])),
             "reasons": ", ".join(f"{k} {n}" for k, n in sorted(
                 reasons.get(r["sku"], {}).items(), key=lambda kv: (-kv[1], kv[0])))}
            for r in sorted(returned, key=lambda r: (-int(r["returned"]), r["sku"]))]}
    orders_with = {r["sku"]: int(r["orders"]) for r in sku_rows}
    baskets = int((t or {}).get("baskets", 0))
    return {name: [{"sku_a": r["sku_a"], "sku_b": r["sku_b"], "orders": int(r["n"]),
                    "support": rate(int(r["n"]), baskets),
                    "confidence_b_given_a": rate(int(r["n"]), orders_with.get(r["sku_a"], 0))}
                   for r in pairs]}
