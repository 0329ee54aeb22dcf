"""What one order adds to the rollups, and how a change of an order becomes rollup updates.

Pure: no SQL. An order's *contribution* is a function of its folded view (domain.fold, the same
fold the oracle uses): for each rollup table, the rows (keys) the order counts in and what it
adds there. When an event arrives, the store re-folds the order, computes the new contribution
and adds `new - old` to the tables, in the event's transaction. Because the contribution depends
only on the set of the order's facts (never on their arrival order), a late or re-delivered event
gives the same rollups as one on time, and the sum of all contributions is what the oracle
recomputes from the facts.

What is not a sum of per-order parts stays out: a hold that is still open ages with the clock, so
the order keeps `hold_open_since` (order_state) and reports read those few rows; percentiles come
from histograms (`bucket`, about 5 % wide).
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import orjson

from . import domain

Key = tuple[Any, ...]
Values = tuple[Any, ...]
Contribution = dict[str, dict[Key, Values]]
Slice = tuple[str, str, tuple[str, ...], tuple[str, ...]]


@dataclass(frozen=True)
class Table:
    name: str
    keys: tuple[tuple[str, str], ...]      # (column, SQL type); "slice": a slice_id()
    values: tuple[tuple[str, str], ...]    # additive columns

    @property
    def sliced(self) -> bool:
        return any(t == "slice" for _, t in self.keys)


_DAY_SLICE = (("day", "date"), ("slice_id", "slice"))
_INT, _NUM = "int", "numeric"
TABLES: dict[str, Table] = {t.name: t for t in (
    Table("r_daily", _DAY_SLICE, tuple((c, _NUM if c == "cost_total" else _INT) for c in (
        "orders", "sold", "reviewed", "accepted", "rejected", "held", "stock_decided",
        "backordered", "backordered_now", "shipped", "shipped_on_time", "parcels",
        "parcels_delivered", "parcels_on_time", "cost_total", "cost_samples", "return_requests",
        "ratings", "rating_sum", "baskets"))),
    Table("r_status", (*_DAY_SLICE, ("status", "text")), (("orders", _INT),)),
    Table("r_reason", (*_DAY_SLICE, ("status", "text"), ("reason", "text")), (("orders", _INT),)),
    Table("r_latency", (*_DAY_SLICE, ("metric", "text"), ("bucket", "int")), (("n", _INT),)),
    Table("r_carrier", (*_DAY_SLICE, ("carrier", "text"), ("service", "text")),
          (("parcels", _INT), ("delivered", _INT), ("on_time", _INT), ("exceptions", _INT),
           ("cost_total", _NUM), ("cost_samples", _INT), ("promise_reported", _INT))),
    Table("r_refund", (*_DAY_SLICE, ("currency", "text"), ("reason", "text")),
          (("refunds", _INT), ("amount", _NUM))),
    # Sold orders and their grand totals per currency: sellers' revenue (reports.sellers).
    Table("r_revenue", (*_DAY_SLICE, ("currency", "text")), (("orders", _INT), ("amount", _NUM))),
    Table("r_rating", (*_DAY_SLICE, ("rating", "int")), (("orders", _INT),)),
    Table("r_return_reason", (*_DAY_SLICE, ("reason", "text")), (("requests", _INT),)),
    Table("r_sku", (*_DAY_SLICE, ("sku", "text")),
          (("units", _INT), ("revenue", _NUM), ("orders", _INT), ("shipped_units", _INT),
           ("returned", _INT))),
    Table("r_sku_reason", (*_DAY_SLICE, ("sku", "text"), ("reason", "text")), (("units", _INT),)),
    Table("r_pair", (*_DAY_SLICE, ("sku_a", "text"), ("sku_b", "text")), (("orders", _INT),)),
    Table("r_customer", (("day", "date"), ("started_at", "timestamptz"), ("slice_id", "slice"),
                         ("customer_id", "text"), ("currency", "text")),
          (("orders", _INT), ("monetary", _NUM))),
    Table("t_status", (("store", "text"), ("status", "text")), (("orders", _INT),)),
    Table("t_reason", (("status", "text"), ("reason", "text")), (("orders", _INT),)),
    Table("t_refund", (("currency", "text"),), (("amount", _NUM),)),
    Table("t_rating", (("rating", "int"),), (("orders", _INT),)),
)}
DAILY_COLUMNS = tuple(c for c, _ in TABLES["r_daily"].values)
EXCEPTION_STATUSES = ("exception", "lost", "returned_to_sender", "failed_attempt")
REASON_STATUSES = ("rejected", "on_hold")


# --- latency buckets ------------------------------------------------------------------------

_BASE_H = 1 / 60       # bucket 1 starts at one minute; bucket 0 is anything under a minute
_RATIO = 1.05


def bucket(hours: float) -> int:
    """Buckets grow by 5 % from one minute; a negative time (a clock ahead: shipped "before" it
    was placed) gets the mirror bucket, so the order of buckets is the order of values."""
    if hours < 0:
        return -bucket(-hours)
    if hours < _BASE_H:
        return 0
    return 1 + math.floor(math.log(hours / _BASE_H) / math.log(_RATIO) + 1e-9)


def bucket_value(b: int) -> float:
    """The value a percentile in bucket `b` is reported as: the bucket's geometric middle."""
    if b < 0:
        return -bucket_value(-b)
    if b == 0:
        return 0.0
    return _BASE_H * _RATIO ** (b - 1 + 0.5)


def percentile(counts: dict[int, int], p: float) -> float | None:
    """Nearest rank over a histogram: the bucket holding rank ceil(p/100 * n)."""
    n = sum(counts.values())
    if n <= 0:
        return None
    rank = max(1, math.ceil(p / 100 * n))
    seen = 0
    for b in sorted(counts):
        seen += counts[b]
        if seen >= rank:
            return bucket_value(b)
    return bucket_value(max(counts))


# --- an order's contribution ----------------------------------------------------------------

def utc_day(at: datetime) -> date:
    return at.astimezone(UTC).date()


@functools.cache
def zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def local_day(at: datetime, tz: str = "UTC") -> date:
    """The day `at` falls on in the store's time zone (an IANA name): rollups' day buckets."""
    return at.astimezone(UTC if tz == "UTC" else zone(tz)).date()


def slice_of(v: domain.OrderView) -> Slice:
    return (v.store, v.country or "", tuple(sorted(v.warehouses)), tuple(sorted(v.carriers)))


@functools.lru_cache(maxsize=4096)
def slice_id(s: Slice) -> int:
    """A stable 63-bit id of a slice, the same in every process (rollup rows carry it)."""
    raw = json.dumps([s[0], s[1], list(s[2]), list(s[3])], separators=(",", ":")).encode()
    return int.from_bytes(hashlib.blake2b(raw, digest_size=8).digest(), "big") >> 1


def hold_of(v: domain.OrderView) -> tuple[datetime, datetime | None] | None:
    """The order's first hold: when it began and when the next other status came (None: open)."""
    for i, s in enumerate(v.statuses):
        if s.status == "on_hold":
            nxt = next((t for t in v.statuses[i + 1:] if t.status != "on_hold"), None)
            return s.at, nxt.at if nxt else None
    return None


def _hours(a: datetime, b: datetime) -> float:
    return (b - a).total_seconds() / 3600


def contribution(v: domain.OrderView, sla_hours: float, tz: str = "UTC") -> Contribution:
    """The rows this order counts in, with what it adds there (see the module docstring). Its
    day is the day it started on in `tz`, its store's time zone."""
    started = v.started_at
    if started is None:
        return {}
    day, sl = local_day(started, tz).isoformat(), slice_id(slice_of(v))
    out: dict[str, dict[Key, list[Any]]] = {}

    def add(table: str, key: Key, *values: Any) -> None:
        row = out.setdefault(table, {}).get(key)
        if row is None:
            out[table][key] = list(values)
        else:
            for i, x in enumerate(values):
                row[i] += x

    daily: dict[str, Any] = dict.fromkeys(DAILY_COLUMNS, 0)
    daily["cost_total"] = Decimal("0")
    daily["orders"] = 1
    daily["sold"] = int(v.sold)
    accepted, rejected = v.ever("accepted"), v.ever("rejected")
    daily["reviewed"] = int(accepted or rejected)
    daily["accepted"] = int(accepted)
    daily["rejected"] = int(rejected and not accepted)
    hold = hold_of(v)
    if hold is not None:
        daily["held"] = 1
        if hold[1] is not None:
            add("r_latency", (day, sl, "hold", bucket(_hours(hold[0], hold[1]))), 1)
    backordered = v.ever("backordered")
    daily["stock_decided"] = int(v.ever("reserved") or backordered)
    daily["backordered"] = int(backordered)
    daily["backordered_now"] = int(v.status == "backordered")
    shipped = v.first("shipped")
    if shipped is not None:
        lead = _hours(started, shipped.at)
        daily["shipped"] = 1
        daily["shipped_on_time"] = int(lead <= sla_hours)
        add("r_latency", (day, sl, "ship", bucket(lead)), 1)
    for pv in v.parcels.values():
        p = pv.parcel
        on_time = pv.delivered_at is not None and (
            pv.delivered_at - pv.shipped_at <= timedelta(days=domain.promise_days(v, p)))
        cost = p.cost if p.cost is not None else Decimal("0")
        daily["parcels"] += 1
        daily["parcels_delivered"] += int(pv.delivered_at is not None)
        daily["parcels_on_time"] += int(on_time)
        daily["cost_total"] += cost
        daily["cost_samples"] += int(p.cost is not None)
        add("r_carrier", (day, sl, p.carrier, p.service), 1, int(pv.delivered_at is not None),
            int(on_time), int(pv.last_tracking in EXCEPTION_STATUSES), cost,
            int(p.cost is not None), int(p.promised_days is not None))
    returns = [r for r in v.requests.values() if r.kind in domain.RETURN_KINDS]
    daily["return_requests"] = len(returns)
    if v.rating is not None:
        daily["ratings"], daily["rating_sum"] = 1, v.rating.rating
        add("r_rating", (day, sl, v.rating.rating), 1)
        add("t_rating", (v.rating.rating,), 1)
    skus = sorted({ln.sku for ln in v.lines})
    daily["baskets"] = int(v.sold and len(skus) >= 2)
    out["r_daily"] = {(day, sl): [daily[c] for c in DAILY_COLUMNS]}

    add("r_status", (day, sl, v.status or "placed"), 1)
    if v.status is not None:
        add("t_status", (v.store, v.status), 1)
    for status in REASON_STATUSES:
        for code in sorted({r for s in v.statuses if s.status == status for r in s.reasons}):
            add("r_reason", (day, sl, status, code), 1)
            add("t_reason", (status, code), 1)
    for refund in v.refunds:
        add("r_refund", (day, sl, refund.currency, refund.reason), 1, refund.amount)
        add("t_refund", (refund.currency,), refund.amount)
    for req in returns:
        add("r_return_reason", (day, sl, req.reason), 1)
        for ln in req.lines:
            add("r_sku", (day, sl, ln.sku), 0, Decimal("0"), 0, 0, ln.quantity)
            add("r_sku_reason", (day, sl, ln.sku, req.reason), ln.quantity)
    counted = v.sold or v.ever("shipped")
    for ln in v.lines:
        units = ln.quantity if v.sold else 0
        add("r_sku", (day, sl, ln.sku), units, ln.unit_price * units, 0,
            ln.quantity if counted else 0, 0)
    if v.sold:
        for sku in skus:
            add("r_sku", (day, sl, sku), 0, Decimal("0"), 1, 0, 0)
        for i, a in enumerate(skus):
            for b in skus[i + 1:]:
                add("r_pair", (day, sl, a, b), 1)
        add("r_revenue", (day, sl, v.currency), 1, v.grand_total)
        if v.customer_id:
            add("r_customer", (day, started.astimezone(UTC).isoformat(), sl, v.customer_id,
                               v.currency), 1, v.grand_total)
    return {t: {k: tuple(vals) for k, vals in rows.items()} for t, rows in out.items()}


def delta(old: Contribution, new: Contribution) -> Contribution:
    """`new - old`, without the rows that do not change."""
    out: Contribution = {}
    for table in sorted(set(old) | set(new)):
        o, n = old.get(table, {}), new.get(table, {})
        rows: dict[Key, Values] = {}
        for key in set(o) | set(n):
            before, after = o.get(key), n.get(key)
            if before is None:
                assert after is not None
                d = after
            elif after is None:
                d = tuple(-x for x in before)
            else:
                d = tuple(a - b for a, b in zip(after, before, strict=True))
            if any(d):
                rows[key] = d
        if rows:
            out[table] = rows
    return out


def add_up(into: Contribution, more: Contribution) -> None:
    """Sum contributions (the history generator writes the total at once)."""
    for table, rows in more.items():
        acc = into.setdefault(table, {})
        for key, vals in rows.items():
            before = acc.get(key)
            acc[key] = vals if before is None else tuple(
                a + b for a, b in zip(before, vals, strict=True))


# --- stored as JSON in order_state.contrib, and sent to SQL as JSON -------------------------
# Keys are flat tuples of strings and integers (the slice is its id), so JSON keeps them as they
# are; money goes as strings, back to Decimal on reading.

def dumps(c: Contribution) -> str:
    return orjson.dumps({t: [[k, v] for k, v in rows.items()] for t, rows in c.items()},
                        default=str).decode()


def loads(text: str | None) -> Contribution:
    if not text:
        return {}
    out: Contribution = {}
    for t, rows in orjson.loads(text).items():
        numeric = [ty == _NUM for _, ty in TABLES[t].values]
        out[t] = {_key(t, k): tuple(Decimal(x) if n else x
                                    for x, n in zip(v, numeric, strict=True))
                  for k, v in rows}
    if "r_revenue" not in out and "r_customer" in out:
        out["r_revenue"] = revenue_of_customers(out["r_customer"])
    return out


def revenue_of_customers(rows: dict[Key, Values]) -> dict[Key, Values]:
    """The r_revenue rows of a contribution stored before r_revenue existed (migration 0007):
    a sold order with a customer id was in r_customer, once, with its grand total, which is what
    the migration summed into r_revenue; a sold order without one was in neither."""
    out: dict[Key, Values] = {}
    for (day, _started, sl, _customer, currency), (orders, monetary) in rows.items():
        before = out.get((day, sl, currency), (0, Decimal("0")))
        out[(day, sl, currency)] = (before[0] + orders, before[1] + monetary)
    return out


def _key(table: str, k: list[Any]) -> Key:
    """A stored key; r_customer's keys stored before it had a day (migration 0006) were UTC's."""
    if table == "r_customer" and len(k) == 4:
        return (utc_day(datetime.fromisoformat(k[0])).isoformat(), *k)
    return tuple(k)


def as_rows(c: Contribution) -> str:
    """A change as JSON objects per table, column names as keys (jsonb_to_recordset)."""
    out = {}
    for t, rows in c.items():
        cols = [c for c, _ in TABLES[t].keys] + [c for c, _ in TABLES[t].values]
        # In key order: two transactions upserting the same rows lock them in the same order.
        out[t] = [dict(zip(cols, (*k, *v), strict=True))
                  for k, v in sorted(rows.items(), key=lambda kv: kv[0])]
    return orjson.dumps(out, default=str).decode()
