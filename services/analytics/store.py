"""SQL for analytics' read model."""

from __future__ import annotations

import json
import logging
import uuid
from datetime import datetime
from decimal import Decimal
from typing import Any

import asyncpg
import orjson

from shared.contracts import FeedbackGiven, OrderStatusChanged, RefundIssued
from shared.db import Conn

from . import domain, rollups

log = logging.getLogger(__name__)


# --- a run's events, one statement per table -------------------------------------------------
# Each handler stores its run with these (handlers.py); each returns the first-time facts' order
# keys by event id, which the run folds once before commit (fold_orders). A fact stored before
# (the same event re-sent past the inbox's memory) is not returned, nor a carrier scan of a
# parcel not shipped yet: the shipment folds it in.

FactRow = tuple[uuid.UUID, str, "str | None", "str | None", datetime, str]
"""`(event_id, kind, order_key, tracking_number, occurred_at, body JSON)`."""


async def record_facts(conn: Conn, rows: list[FactRow]) -> dict[uuid.UUID, str]:
    """The run's facts in one statement; a carrier scan belongs to the order of its parcel."""
    if not rows:
        return {}
    fresh = await conn.fetch(
        "WITH f AS (INSERT INTO facts (event_id, kind, order_key, tracking_number, occurred_at,"
        " body) SELECT u.event_id, u.kind, u.order_key, u.tracking_number, u.occurred_at,"
        " u.body::jsonb FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[],"
        " $5::timestamptz[], $6::text[])"
        " AS u(event_id, kind, order_key, tracking_number, occurred_at, body)"
        " ON CONFLICT DO NOTHING RETURNING event_id, order_key, tracking_number)"
        " SELECT f.event_id, coalesce(f.order_key, p.order_key) AS key FROM f"
        " LEFT JOIN parcel_index p ON f.order_key IS NULL"
        " AND p.tracking_number = f.tracking_number",
        *(list(col) for col in zip(*rows, strict=True)))
    return {r["event_id"]: r["key"] for r in fresh if r["key"] is not None}


def fact_row(event_id: uuid.UUID, kind: str, at: datetime, body: dict[str, Any], *,
             order_key: str | None = None, tracking_number: str | None = None) -> FactRow:
    return (event_id, kind, order_key, tracking_number, at, json.dumps(body, default=str))


async def record_statuses(conn: Conn, events: list[OrderStatusChanged]) -> dict[uuid.UUID, str]:
    """A run of `orders.status` (most of analytics' traffic) in one statement: the timeline
    rows, each order's current status (the newest `occurred_at` wins; on a tie the later event,
    as one at a time), the facts, and the index (the first order id seen, the earliest time).
    A row is rewritten only when the run changes it: most statuses leave the index as it was,
    and an older status than the one shown leaves the order's row alone (a no-op update still
    writes a new row version, its WAL and, where the row moves, its index entries)."""
    if not events:
        return {}
    per_key: dict[str, list[Any]] = {}
    for e in events:
        key = f"{e.store}:{e.external_order_id}"
        row = per_key.get(key)
        if row is None:
            per_key[key] = [key, e.order_id, e.store, e.external_order_id, e.status,
                            e.occurred_at, e.occurred_at]
            continue
        if e.occurred_at >= row[5]:
            row[4], row[5] = e.status, e.occurred_at
        row[6] = min(row[6], e.occurred_at)
    orders = [tuple(r) for _, r in sorted(per_key.items())]
    fresh = await conn.fetch(
        "WITH e AS (SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::timestamptz[],"
        "  $5::text[], $6::text[]) AS e(event_id, order_key, status, occurred_at, reasons,"
        "  details)),"
        " k AS (SELECT * FROM unnest($7::text[], $8::text[], $9::text[], $10::text[],"
        "  $11::text[], $12::timestamptz[], $13::timestamptz[]) AS k(order_key, order_id, store,"
        "  external_order_id, status, status_at, first_seen)),"
        " t AS (INSERT INTO timeline (event_id, order_key, status, occurred_at, reasons, details)"
        "  SELECT event_id, order_key, status, occurred_at, reasons::jsonb, details::jsonb FROM e"
        "  ON CONFLICT DO NOTHING),"
        " o AS (INSERT INTO orders (order_key, order_id, store, external_order_id, status,"
        "  status_at, first_seen) SELECT * FROM k ORDER BY order_key"
        "  ON CONFLICT (order_key) DO UPDATE SET"
        "  status = CASE WHEN EXCLUDED.status_at >= orders.status_at THEN EXCLUDED.status"
        "  ELSE orders.status END,"
        "  status_at = greatest(orders.status_at, EXCLUDED.status_at),"
        "  first_seen = least(orders.first_seen, EXCLUDED.first_seen)"
        "  WHERE EXCLUDED.status_at >= orders.status_at"
        "  OR EXCLUDED.first_seen < orders.first_seen),"
        " f AS (INSERT INTO facts (event_id, kind, order_key, occurred_at, body)"
        "  SELECT event_id, 'status', order_key, occurred_at, jsonb_build_object('status',"
        "  status, 'reasons', reasons::jsonb) FROM e ON CONFLICT DO NOTHING"
        "  RETURNING event_id, order_key),"
        " x AS (INSERT INTO order_index AS x (order_key, store, external_order_id, order_id,"
        "  seen_at) SELECT order_key, store, external_order_id, order_id, first_seen FROM k"
        "  ORDER BY order_key ON CONFLICT (order_key) DO UPDATE SET"
        "  order_id = coalesce(x.order_id, EXCLUDED.order_id),"
        "  seen_at = least(x.seen_at, EXCLUDED.seen_at)"
        "  WHERE x.order_id IS NULL AND EXCLUDED.order_id IS NOT NULL"
        "  OR EXCLUDED.seen_at < x.seen_at)"
        " SELECT event_id, order_key FROM f",
        [e.event_id for e in events], [f"{e.store}:{e.external_order_id}" for e in events],
        [e.status for e in events], [e.occurred_at for e in events],
        [json.dumps([r.model_dump() for r in e.reasons]) for e in events],
        [json.dumps(e.details, default=str) for e in events],
        *(list(col) for col in zip(*orders, strict=True)))
    return {r["event_id"]: r["order_key"] for r in fresh}


async def record_status(conn: Conn, e: OrderStatusChanged) -> str | None:
    """One status change (`record_statuses` of one): the order's key when the fact is new."""
    return (await record_statuses(conn, [e])).get(e.event_id)


def status_body(e: OrderStatusChanged) -> dict[str, Any]:
    """The body record_status stores for the fact (built there in SQL)."""
    return {"status": e.status, "reasons": [r.model_dump() for r in e.reasons]}


async def record_refunds(conn: Conn, events: list[RefundIssued]) -> None:
    """A run's refunds, one statement (each event once)."""
    await conn.execute(
        "INSERT INTO refunds (event_id, order_key, request_id, amount, currency, occurred_at,"
        " reason) SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::numeric[],"
        " $5::text[], $6::timestamptz[], $7::text[]) ON CONFLICT DO NOTHING",
        [e.event_id for e in events], [f"{e.store}:{e.external_order_id}" for e in events],
        [e.request_id for e in events], [e.amount for e in events],
        [e.currency for e in events], [e.occurred_at for e in events],
        [e.reason for e in events])


async def record_feedback(conn: Conn, events: list[FeedbackGiven]) -> None:
    """A run's ratings, one statement (each event once)."""
    await conn.execute(
        "INSERT INTO feedback (event_id, order_key, rating, occurred_at) SELECT * FROM"
        " unnest($1::uuid[], $2::text[], $3::int[], $4::timestamptz[]) ON CONFLICT DO NOTHING",
        [e.event_id for e in events], [e.key for e in events], [e.rating for e in events],
        [e.occurred_at for e in events])


async def timeline(pool: asyncpg.Pool, key: str) -> dict[str, Any] | None:
    order = await pool.fetchrow("SELECT * FROM orders WHERE order_key = $1", key)
    if order is None:
        return None
    rows = await pool.fetch("SELECT status, occurred_at, reasons, details FROM timeline"
                            " WHERE order_key = $1 ORDER BY occurred_at, event_id", key)
    return {"order_id": order["order_id"], "store": order["store"],
            "external_order_id": order["external_order_id"], "status": order["status"],
            "timeline": [{"status": r["status"], "occurred_at": r["occurred_at"].isoformat(),
                          "reasons": json.loads(r["reasons"]), "details": json.loads(r["details"])}
                         for r in rows]}


async def status_counts(pool: asyncpg.Pool, stores: list[str] | None = None) -> dict[str, int]:
    rows = await pool.fetch(
        "SELECT status, sum(orders) AS n FROM t_status WHERE $1::text[] IS NULL OR store = ANY($1)"
        " GROUP BY status HAVING sum(orders) > 0 ORDER BY status", stores)
    return {r["status"]: int(r["n"]) for r in rows}


async def reason_counts(pool: asyncpg.Pool, status: str) -> dict[str, int]:
    """Each order once per reason it got `status` for."""
    rows = await pool.fetch("SELECT reason, orders FROM t_reason WHERE status = $1"
                            " AND orders > 0 ORDER BY orders DESC, reason", status)
    return {r["reason"]: int(r["orders"]) for r in rows}


# --- facts: every event analytics learns from, once ------------------------------------------

async def record_fact(conn: Conn, event_id: uuid.UUID, kind: str, at: datetime,
                      body: dict[str, Any], *, order_key: str | None = None,
                      tracking_number: str | None = None) -> str | None:
    """One fact (`record_facts` of one): the order's key when the fact is new."""
    return (await record_facts(conn, [fact_row(event_id, kind, at, body, order_key=order_key,
                                               tracking_number=tracking_number)])).get(event_id)


IndexRow = tuple[str, "str | None", "str | None", "str | None", "datetime | None", datetime]
"""`(order_key, order_id, customer_id, country, placed_at, seen_at)` of a placed or accepted
order."""


async def index_orders(conn: Conn, rows: list[IndexRow]) -> None:
    """What the run's placed and accepted orders say of them, in the index: the first value
    seen of each field stays (a re-sent order keeps its first version, as intake does), and the
    earliest time seen. One statement, one row per order (merged here in run order); a row the
    run changes nothing in is not rewritten."""
    merged: dict[str, list[Any]] = {}
    for key, *fields, seen_at in rows:
        row = merged.get(key)
        if row is None:
            merged[key] = [*fields, seen_at]
            continue
        for i, value in enumerate(fields):
            if row[i] is None:
                row[i] = value
        row[-1] = min(row[-1], seen_at)
    keys = sorted(merged)
    await conn.execute(
        "INSERT INTO order_index AS o (order_key, store, external_order_id, order_id,"
        " customer_id, country, placed_at, seen_at)"
        " SELECT k, split_part(k, ':', 1), substr(k, length(split_part(k, ':', 1)) + 2),"
        " order_id, customer_id, country, placed_at, seen_at"
        " FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::timestamptz[],"
        " $6::timestamptz[]) AS u(k, order_id, customer_id, country, placed_at, seen_at)"
        " ORDER BY k ON CONFLICT (order_key) DO UPDATE SET"
        " order_id = coalesce(o.order_id, EXCLUDED.order_id),"
        " customer_id = coalesce(o.customer_id, EXCLUDED.customer_id),"
        " country = coalesce(o.country, EXCLUDED.country),"
        " placed_at = coalesce(o.placed_at, EXCLUDED.placed_at),"
        " seen_at = least(o.seen_at, EXCLUDED.seen_at)"
        " WHERE o.order_id IS NULL AND EXCLUDED.order_id IS NOT NULL"
        " OR o.customer_id IS NULL AND EXCLUDED.customer_id IS NOT NULL"
        " OR o.country IS NULL AND EXCLUDED.country IS NOT NULL"
        " OR o.placed_at IS NULL AND EXCLUDED.placed_at IS NOT NULL"
        " OR EXCLUDED.seen_at < o.seen_at",
        keys, *([merged[k][i] for k in keys] for i in range(5)))


async def record_order_fact(conn: Conn, event_id: uuid.UUID, at: datetime,
                            body: dict[str, Any], *, key: str, order_id: str | None = None,
                            customer_id: str | None = None, country: str | None = None,
                            placed_at: datetime | None = None) -> str | None:
    """One placed or accepted order: the fact and the index (`record_facts` and `index_orders`
    of one); the order's key when the fact is new."""
    fresh = await record_facts(conn, [fact_row(event_id, "placed", at, body, order_key=key)])
    await index_orders(conn, [(key, order_id, customer_id, country, placed_at, at)])
    return fresh.get(event_id)


ParcelRow = tuple[str, str, str, str, str]
"""`(tracking_number, order_key, parcel_id, carrier, warehouse)`."""


async def index_parcels(conn: Conn, rows: list[ParcelRow]) -> None:
    """Which order each tracking number belongs to (the first shipment naming it stays)."""
    if rows:
        await conn.execute(
            "INSERT INTO parcel_index (tracking_number, order_key, parcel_id, carrier,"
            " warehouse) SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[],"
            " $5::text[]) AS u(t, k, p, c, w) ORDER BY t ON CONFLICT DO NOTHING",
            *(list(col) for col in zip(*rows, strict=True)))


async def index_parcel(conn: Conn, tracking_number: str, key: str, parcel_id: str,
                       carrier: str, warehouse: str) -> None:
    await index_parcels(conn, [(tracking_number, key, parcel_id, carrier, warehouse)])


async def filter_options(pool: asyncpg.Pool) -> dict[str, list[str]]:
    """From the slices (every store, country, warehouse and carrier an order was counted in)."""
    async def distinct(sql: str) -> list[str]:
        return [r[0] for r in await pool.fetch(sql) if r[0]]
    return {
        "store": await distinct("SELECT DISTINCT store FROM slices ORDER BY 1"),
        "country": await distinct("SELECT DISTINCT country FROM slices ORDER BY 1"),
        "carrier": await distinct("SELECT DISTINCT unnest(carriers) FROM slices ORDER BY 1"),
        "warehouse": await distinct("SELECT DISTINCT unnest(warehouses) FROM slices ORDER BY 1"),
    }


async def load_views(pool: asyncpg.Pool | Conn, f: domain.Filters) -> list[domain.OrderView]:
    """The orders started in the range (and of the stores and countries asked), folded."""
    keys = [r["order_key"] for r in await pool.fetch(
        "SELECT order_key FROM order_index WHERE ($1::timestamptz IS NULL OR"
        " coalesce(placed_at, seen_at) >= $1) AND ($2::timestamptz IS NULL OR"
        " coalesce(placed_at, seen_at) < $2) AND ($3::text[] IS NULL OR store = ANY($3))"
        " AND ($4::text[] IS NULL OR country = ANY($4))",
        f.start, f.end, sorted(f.stores) or None, sorted(f.countries) or None)]
    return await views_of(pool, keys)


async def views_of(pool: asyncpg.Pool | Conn, keys: list[str]) -> list[domain.OrderView]:
    facts: dict[str, list[domain.Fact]] = {k: [] for k in keys}
    for r in await pool.fetch("SELECT * FROM facts WHERE order_key = ANY($1::text[])", keys):
        fact = to_fact(r["kind"], str(r["event_id"]), r["occurred_at"], json.loads(r["body"]))
        if fact is not None:
            facts[r["order_key"]].append(fact)
    tracking: dict[str, list[domain.Tracked]] = {}
    for r in await pool.fetch(
            "SELECT p.order_key, f.event_id, f.occurred_at, f.tracking_number, f.body->>'status'"
            " AS status FROM parcel_index p JOIN facts f ON f.tracking_number = p.tracking_number"
            " WHERE p.order_key = ANY($1::text[]) AND f.kind = 'tracked'", keys):
        tracking.setdefault(r["order_key"], []).append(domain.Tracked(
            str(r["event_id"]), r["occurred_at"], r["tracking_number"], r["status"]))
    return [domain.fold(k, fs, tracking.get(k, ())) for k, fs in facts.items()]


def _lines(raw: list[dict[str, Any]]) -> tuple[domain.Line, ...]:
    return tuple(domain.Line(ln["sku"], int(ln["quantity"]),
                             Decimal(str(ln.get("unit_price") or "0"))) for ln in raw)


def to_fact(kind: str, event_id: str, at: datetime, b: dict[str, Any]) -> domain.Fact | None:
    """A stored fact back as the domain's value (bodies are the events' JSON)."""
    if kind == "placed":
        return domain.Placed(
            event_id, at, b["store"], b["external_order_id"], b["customer_id"], b["country"],
            datetime.fromisoformat(b["placed_at"]), _lines(b["lines"]),
            Decimal(str(b["grand_total"])), b["currency"], b.get("shipping_option", "standard"))
    if kind == "status":
        return domain.Status(event_id, at, b["status"], tuple(r["code"] for r in b["reasons"]))
    if kind == "shipped":
        return domain.Shipped(event_id, at, tuple(domain.ParcelShipped(
            p["parcel_id"], p["warehouse"], p["carrier"], p["service"], p["tracking_number"],
            _lines(p["lines"]), Decimal(p["cost"]) if p.get("cost") is not None else None,
            p.get("promised_days")) for p in b["parcels"]))
    if kind == "requested":
        return domain.Requested(event_id, at, b["request_id"], b["kind"], b["reason"],
                                _lines(b["lines"]))
    if kind == "refunded":
        return domain.Refunded(event_id, at, b["request_id"], Decimal(b["amount"]), b["currency"],
                               b["reason"])
    if kind == "rated":
        return domain.Rated(event_id, at, int(b["rating"]))
    return None


# --- search (personal data: the API asks for the admin token) ---------------------------------

async def search(pool: asyncpg.Pool, *, order_id: str | None = None, customer: str | None = None,
                 tracking: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
    rows = await pool.fetch(
        "SELECT o.*, coalesce(s.status, 'placed') AS status, s.status_at,"
        " (SELECT array_agg(p.tracking_number ORDER BY p.parcel_id) FROM parcel_index p"
        "  WHERE p.order_key = o.order_key) AS tracking_numbers"
        " FROM order_index o LEFT JOIN orders s ON s.order_key = o.order_key"
        " WHERE ($1::text IS NULL OR o.order_id = $1 OR s.order_id = $1)"
        " AND ($2::text IS NULL OR o.customer_id = $2)"
        " AND ($3::text IS NULL OR o.order_key IN"
        "      (SELECT order_key FROM parcel_index WHERE tracking_number = $3))"
        " ORDER BY coalesce(o.placed_at, o.seen_at) DESC LIMIT $4",
        order_id, customer, tracking, limit)
    return [{"order_id": r["order_id"], "store": r["store"],
             "external_order_id": r["external_order_id"], "customer_id": r["customer_id"],
             "country": r["country"], "status": r["status"],
             "placed_at": r["placed_at"].isoformat() if r["placed_at"] else None,
             "status_at": r["status_at"].isoformat() if r["status_at"] else None,
             "tracking_numbers": list(r["tracking_numbers"] or [])} for r in rows]


# --- gauges -----------------------------------------------------------------------------------

async def gauges(pool: asyncpg.Pool, stuck_after_s: float) -> dict[str, Any]:
    """From the all-time rollups; stuck orders by the partial index of open statuses
    (orders_open_by_age, whose list of final statuses is domain.FINAL_STATUSES)."""
    by_status = {r["status"]: int(r["n"]) for r in await pool.fetch(
        "SELECT status, sum(orders) AS n FROM t_status GROUP BY status HAVING sum(orders) > 0")}
    refunds = {r["currency"]: r["amount"] for r in await pool.fetch(
        "SELECT currency, amount FROM t_refund")}
    rating = await pool.fetchval(
        "SELECT sum(rating * orders)::float8 / nullif(sum(orders), 0) FROM t_rating")
    stuck = await pool.fetchval(
        "SELECT count(*) FROM orders WHERE status NOT IN ('delivered', 'rejected', 'cancelled',"
        " 'refunded', 'return_rejected') AND status_at < now() - make_interval(secs => $1)",
        stuck_after_s)
    return {"by_status": by_status, "refunds": refunds,
            "rating": float(rating) if rating is not None else None, "stuck": stuck}


# --- the feedback loop's memory ---------------------------------------------------------------

async def changed(conn: Conn, topic: str, digests: dict[str, str]) -> set[str]:
    """Record each key's `digest` as the last published on `topic`, in one statement; returns the
    keys whose digest is new (never published, or different from the last one)."""
    if not digests:
        return set()
    keys = sorted(digests)
    rows = await conn.fetch(
        "INSERT INTO feedback_published (topic, key, digest) SELECT $1, k, d"
        " FROM unnest($2::text[], $3::text[]) AS u(k, d)"
        " ON CONFLICT (topic, key) DO UPDATE SET digest = EXCLUDED.digest, published = now()"
        " WHERE feedback_published.digest <> EXCLUDED.digest RETURNING key",
        topic, keys, [digests[k] for k in keys])
    return {r["key"] for r in rows}


# --- the rollups: each order re-folded by the fold job, with the facts queued since --------------
# An order's facts are kept folded in order_state (a compact copy of its `facts` rows:
# [kind, event_id, occurred_at, body, tracking_number]); the rollups hold the sum of every
# order's last contribution (rollups.py).

StoredFact = list[Any]


def stored(kind: str, event_id: uuid.UUID | str, at: datetime, body: dict[str, Any],
           tracking_number: str | None = None) -> StoredFact:
    return [kind, str(event_id), at.isoformat(), orjson.loads(orjson.dumps(body, default=str)),
            tracking_number]


def fold_stored(key: str, facts: list[StoredFact]) -> domain.OrderView:
    """The order's view from its stored facts: the same fold as the oracle's (views_of)."""
    folded: list[domain.Fact] = []
    tracking: list[domain.Tracked] = []
    for kind, event_id, at, body, number in facts:
        when = datetime.fromisoformat(at)
        if kind == "tracked":
            tracking.append(domain.Tracked(event_id, when, number, body["status"]))
        else:
            fact = to_fact(kind, event_id, when, body)
            if fact is not None:
                folded.append(fact)
    return domain.fold(key, folded, tracking)



def _stored_row(r: asyncpg.Record) -> StoredFact:
    return [r["kind"], str(r["event_id"]), r["occurred_at"].isoformat(), orjson.loads(r["body"]),
            r["tracking_number"]]


async def _facts_of(conn: Conn, keys: list[str]) -> dict[str, list[StoredFact]]:
    """The orders' facts from `facts` (orders folded for the first time), with the carrier
    scans of their parcels; one statement for all."""
    out: dict[str, list[StoredFact]] = {k: [] for k in keys}
    # The parcels first, by their order index: joined to `facts` in one step, the planner
    # read all of parcel_index in parallel (117 ms at a million orders) to find 150 of them.
    for r in await conn.fetch(
            "WITH p AS MATERIALIZED (SELECT order_key, tracking_number FROM parcel_index"
            " WHERE order_key = ANY($1::text[]))"
            " SELECT order_key AS of, kind, event_id, occurred_at, body, tracking_number"
            " FROM facts WHERE order_key = ANY($1::text[]) UNION ALL"
            " SELECT p.order_key, f.kind, f.event_id, f.occurred_at, f.body, f.tracking_number"
            " FROM p JOIN facts f ON f.tracking_number = p.tracking_number"
            " AND f.kind = 'tracked'", keys):
        out[r["of"]].append(_stored_row(r))
    return out


async def _tracking_of(conn: Conn, numbers: list[str]) -> dict[str, list[StoredFact]]:
    out: dict[str, list[StoredFact]] = {}
    for r in await conn.fetch(
            "SELECT 'tracked' AS kind, event_id, occurred_at, body, tracking_number FROM facts"
            " WHERE tracking_number = ANY($1::text[]) AND kind = 'tracked'", numbers):
        out.setdefault(r["tracking_number"], []).append(_stored_row(r))
    return out


def _shipped_numbers(facts: list[StoredFact]) -> list[str]:
    return [p["tracking_number"] for f in facts if f[0] == "shipped" for p in f[3]["parcels"]]


async def fold_in(conn: Conn, key: str, new: list[StoredFact], sla_hours: float) -> None:
    """One order's first-time facts into the rollups (`fold_orders` of one)."""
    await fold_orders(conn, {key: new}, sla_hours)


async def fold_orders(conn: Conn, pending: dict[str, list[StoredFact]], sla_hours: float, *,
                      refold: bool = False) -> int:
    """Add first-time facts to their orders: re-fold each order once, and add the sum of the
    changes of their contributions to the rollups. A constant number of statements whatever the
    number of orders (the consumer calls this once per run, handlers.py): create the missing
    order_state rows, read and lock all of them in key order, read the facts of those folded for
    the first time and the carrier scans of new shipments, then one write.

    Idempotent: a fact already folded (same event id) changes nothing. `refold`: fold the orders
    again even without new facts (their store's time zone changed: the contribution moves to
    the new zone's days). Returns how many orders changed."""
    keys = sorted(pending)
    if not keys:
        return 0
    created = {r[0] for r in await conn.fetch(
        "INSERT INTO order_state (order_key) SELECT k FROM unnest($1::text[]) k ORDER BY k"
        " ON CONFLICT DO NOTHING RETURNING order_key", keys)}
    rows = await conn.fetch(
        "SELECT s.order_key, s.facts, s.contrib, s.start_day, s.tz AS folded_tz,"
        " coalesce(z.tz, 'UTC') AS tz, (SELECT value::date FROM rollup_meta"
        " WHERE name = 'facts_kept_from') AS kept_from"
        " FROM order_state s LEFT JOIN store_timezone z"
        " ON z.store = split_part(s.order_key, ':', 1)"
        " WHERE s.order_key = ANY($1::text[]) ORDER BY s.order_key FOR UPDATE OF s", keys)
    unread = [r["order_key"] for r in rows if r["facts"] is None]
    from_facts = await _facts_of(conn, unread) if unread else {}
    numbers = sorted({n for k in keys for n in _shipped_numbers(pending[k])})
    scans = await _tracking_of(conn, numbers) if numbers else {}

    total: rollups.Contribution = {}
    slices: dict[int, rollups.Slice] = {}
    writes: list[tuple[Any, ...]] = []
    for row in rows:
        key, new, tz = row["order_key"], pending[row["order_key"]], row["tz"]
        first = key in created
        folded_tz = row["folded_tz"] or "UTC"
        kept_from = row["kept_from"]
        if (not first and row["facts"] is None and row["start_day"] is not None
                and kept_from is not None and row["start_day"] < kept_from):
            # Its facts were dropped by retention: a fold of what is left would count the order
            # as less than it was. Its rollups stay as they were; the facts themselves are kept.
            log.info("order %s started %s, before the facts kept (%s): its new events are"
                     " stored but do not change the reports", key, row["start_day"], kept_from)
            continue
        facts: list[StoredFact] = (orjson.loads(row["facts"]) if row["facts"] is not None
                                   else from_facts.get(key, []))
        if first:
            old: rollups.Contribution = {}
        elif row["contrib"] is not None:
            old = rollups.loads(row["contrib"])
        else:  # not stored (a generated history): what its facts before these gave
            fresh = {f[1] for f in new}
            old = rollups.contribution(
                fold_stored(key, [f for f in facts if f[1] not in fresh]), sla_hours, folded_tz)
        by_id = {f[1]: f for f in facts}
        known = len(by_id)
        for f in new:
            by_id.setdefault(f[1], f)
        for number in _shipped_numbers(new):  # carrier scans that came before the shipment
            for f in scans.get(number, ()):
                by_id.setdefault(f[1], f)
        if (len(by_id) == known and not first and row["facts"] is not None
                and not (refold and folded_tz != tz)):
            continue
        all_facts = list(by_id.values())
        view = fold_stored(key, all_facts)
        contrib = rollups.contribution(view, sla_hours, tz)
        rollups.add_up(total, rollups.delta(old, contrib))
        started = view.started_at
        sid = None
        if started is not None:
            sl = rollups.slice_of(view)
            sid = rollups.slice_id(sl)
            slices[sid] = sl
        hold = rollups.hold_of(view)
        writes.append((key, orjson.dumps(all_facts).decode(), rollups.dumps(contrib),
                       rollups.local_day(started, tz) if started else None, sid,
                       hold[0] if hold is not None and hold[1] is None else None,
                       None if tz == "UTC" else tz))
    if not writes:
        return 0
    change: rollups.Contribution = {}
    for table, changed in total.items():  # orders' changes may cancel out (one leaves, one comes)
        if nonzero := {k: v for k, v in changed.items() if any(v)}:
            change[table] = nonzero
    await conn.execute(WRITE_SQL, *(list(col) for col in zip(*writes, strict=True)),
                       orjson.dumps([[sid, *sl[:2], list(sl[2]), list(sl[3])]
                                     for sid, sl in sorted(slices.items())]).decode(),
                       rollups.as_rows(change))
    return len(writes)


async def queue_folds(conn: Conn, pending: list[tuple[str, StoredFact]]) -> None:
    """A run's first-time facts `(order key, stored fact)` queued for the fold job, in one
    statement, in the run's transaction (handlers._fold)."""
    if pending:
        await conn.execute(
            "INSERT INTO fold_queue (order_key, fact) SELECT k, f::jsonb"
            " FROM unnest($1::text[], $2::text[]) WITH ORDINALITY AS u(k, f, n) ORDER BY n",
            [k for k, _ in pending], [orjson.dumps(f).decode() for _, f in pending])


# How many queued facts a fold takes per transaction by default (SHOPKEEPER_ANALYTICS_FOLD_BATCH,
# jobs.AnalyticsSettings, takes its default from here).
FOLD_BATCH = 20_000


async def fold_queued(conn: Conn, sla_hours: float, limit: int = FOLD_BATCH) -> int:
    """Fold up to `limit` queued facts (the oldest first) into their orders and the rollups, and
    delete them, in the caller's transaction: each order touched once, whatever the number of
    its facts taken (fold_orders). Rows another instance is folding are skipped (SKIP LOCKED), so
    two instances take disjoint batches; an order in both waits for the other's lock on its
    state row and folds on top of it. Returns how many facts were taken (`limit` means: more
    may be waiting)."""
    # `= ANY(ARRAY(...))`, not `IN (SELECT ...)`: the planner made the latter a hash semi-join
    # over a sequential scan of the whole queue, so a batch cost as much as the backlog was long
    # (99 ms for 5,000 of 300,000 queued, 708 ms on average in a benchmark); this is two index
    # scans of the batch alone (12.6 ms, whatever is queued behind it).
    rows = await conn.fetch(
        "DELETE FROM fold_queue WHERE seq = ANY(ARRAY(SELECT seq FROM fold_queue ORDER BY seq"
        " LIMIT $1 FOR UPDATE SKIP LOCKED)) RETURNING seq, order_key, fact", limit)
    pending: dict[str, list[StoredFact]] = {}
    for r in sorted(rows, key=lambda r: r["seq"]):
        pending.setdefault(r["order_key"], []).append(orjson.loads(r["fact"]))
    await fold_orders(conn, pending, sla_hours)
    return len(rows)


async def fold_backlog(conn: Conn | asyncpg.Pool) -> tuple[int, float]:
    """Facts waiting for the fold job, and the age in seconds of the oldest (0 when none)."""
    row = await conn.fetchrow(
        "SELECT count(*) AS n, coalesce(extract(epoch FROM now() - min(queued_at)), 0)::float8"
        " AS age FROM fold_queue")
    assert row is not None
    return int(row["n"]), float(row["age"])


_SQL_TYPE = {"date": "date", "timestamptz": "timestamptz", "slice": "bigint", "text": "text",
             "int": "int", "numeric": "numeric"}


def _rollup_cte(i: int, name: str) -> str:
    t = rollups.TABLES[name]
    cols = [c for c, _ in t.keys] + [c for c, _ in t.values]
    types = [ty for _, ty in t.keys] + [ty for _, ty in t.values]
    record = ", ".join(f"{c} {_SQL_TYPE[ty]}" for c, ty in zip(cols, types, strict=True))
    sets = ", ".join(f"{c} = {name}.{c} + EXCLUDED.{c}" for c, _ in t.values)
    return (f"w{i} AS (INSERT INTO {name} ({', '.join(cols)}) SELECT * FROM"
            f" jsonb_to_recordset($9::jsonb -> '{name}') AS x({record})"
            f" ON CONFLICT ({', '.join(c for c, _ in t.keys)}) DO UPDATE SET {sets})")


# One statement for a whole run's changes: the orders' new state as arrays ($1-$7, unnest), the
# slices as one JSON array ($8), the rollups' rows as one JSON document ($9: a table absent from
# it inserts nothing), so the text never varies and is prepared once per connection.
WRITE_SQL = (
    "WITH s AS (INSERT INTO slices SELECT (x->>0)::bigint, x->>1, x->>2,"
    " ARRAY(SELECT jsonb_array_elements_text(x->3)), ARRAY(SELECT jsonb_array_elements_text(x->4))"
    " FROM jsonb_array_elements($8::jsonb) x ON CONFLICT DO NOTHING), "
    + ", ".join(_rollup_cte(i, name) for i, name in enumerate(rollups.TABLES))
    + " UPDATE order_state o SET facts = u.facts::jsonb, contrib = u.contrib::jsonb,"
    " start_day = u.start_day, slice_id = u.slice_id, hold_open_since = u.hold, tz = u.tz"
    " FROM unnest($1::text[], $2::text[], $3::text[], $4::date[], $5::bigint[],"
    " $6::timestamptz[], $7::text[]) AS u(order_key, facts, contrib, start_day, slice_id, hold, tz)"
    " WHERE o.order_key = u.order_key")
