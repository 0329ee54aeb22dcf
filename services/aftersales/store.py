"""SQL for aftersales' schema."""

from __future__ import annotations

import json
import uuid
from decimal import Decimal
from typing import Any

import asyncpg

from shared.contracts import OrderSnapshot
from shared.db import Conn

from .domain import OrderedLine, Policy


async def upsert_order(conn: Conn, snap: OrderSnapshot,
                       correlation_id: str | None) -> None:
    await conn.execute(
        "INSERT INTO orders (order_id, order_key, snapshot, correlation_id) VALUES"
        " ($1, $2, $3::jsonb, $4) ON CONFLICT (order_id) DO NOTHING",
        uuid.UUID(snap.order_id), snap.key, snap.model_dump_json(), correlation_id)


# --- the hot path: every order's acceptance, shipment and delivery, a run in one statement ----
# Each takes the whole run's rows (at most one per order: the handler keeps the one that wins)
# and locks the orders' rows in order_id order, so two runs never wait on each other in a circle.

async def insert_orders(conn: Conn, rows: list[tuple[uuid.UUID, str, str, str | None]]
                        ) -> None:
    """Accepted orders `(order_id, order_key, snapshot JSON, correlation_id)`: the first
    version of an order stays (a re-sent acceptance changes nothing)."""
    await conn.execute(
        "INSERT INTO orders (order_id, order_key, snapshot, correlation_id)"
        " SELECT u.order_id, u.order_key, u.snapshot::jsonb, u.correlation_id"
        " FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[])"
        " AS u(order_id, order_key, snapshot, correlation_id)"
        " ORDER BY u.order_id ON CONFLICT (order_id) DO NOTHING",
        *(list(col) for col in zip(*rows, strict=True)))


async def _set_locked(conn: Conn, column: str, array_type: str, value: str,
                      rows: list[tuple[uuid.UUID, Any]]) -> None:
    """`column` := `value` (SQL over `u.v`) for each order `(order_id, v)`, one row per order,
    the orders locked in id order first (two runs never lock them in opposite orders)."""
    await conn.execute(
        f"WITH u AS (SELECT * FROM unnest($1::uuid[], $2::{array_type}[]) AS u(order_id, v)),"
        " locked AS (SELECT o.order_id FROM orders o JOIN u USING (order_id)"
        "  ORDER BY o.order_id FOR UPDATE OF o)"
        f" UPDATE orders o SET {column} = {value}"
        " FROM u JOIN locked USING (order_id) WHERE o.order_id = u.order_id",
        *(list(col) for col in zip(*rows, strict=True)))


async def set_parcels(conn: Conn, rows: list[tuple[uuid.UUID, str]]) -> None:
    """The parcels `(order_id, parcels JSON)` each order left in (the last shipment wins)."""
    await _set_locked(conn, "parcels", "text", "u.v::jsonb", rows)


async def set_delivered(conn: Conn, rows: list[tuple[uuid.UUID, Any]]) -> None:
    """When each order `(order_id, delivered_at)` was delivered (the return window starts)."""
    await _set_locked(conn, "delivered_at", "timestamptz", "u.v", rows)


async def upsert_products(conn: Conn,
                          rows: list[tuple[str, bool, Any, Decimal | None, bool]]) -> None:
    """Catalogue updates `(sku, returnable, occurred_at, price, active)`, one per SKU: the
    newest `occurred_at` wins over what is stored."""
    await conn.execute(
        "INSERT INTO products (sku, returnable, occurred_at, price, active)"
        " SELECT * FROM unnest($1::text[], $2::boolean[], $3::timestamptz[], $4::numeric[],"
        " $5::boolean[]) AS u(sku, returnable, occurred_at, price, active) ORDER BY u.sku"
        " ON CONFLICT (sku) DO UPDATE SET returnable = EXCLUDED.returnable,"
        " occurred_at = EXCLUDED.occurred_at, price = EXCLUDED.price, active = EXCLUDED.active"
        " WHERE products.occurred_at <= EXCLUDED.occurred_at",
        *(list(col) for col in zip(*rows, strict=True)))


async def order_by_key(conn: Conn, key: str) -> asyncpg.Record | None:
    return await conn.fetchrow("SELECT * FROM orders WHERE order_key = $1 FOR UPDATE", key)


def ordered_lines(snap: OrderSnapshot) -> list[OrderedLine]:
    return [OrderedLine(ln.sku, ln.quantity, ln.unit_price) for ln in snap.lines]


async def prices(conn: Conn, skus: list[str]) -> dict[str, Decimal]:
    """Current catalogue prices of active products (exchange targets)."""
    rows = await conn.fetch("SELECT sku, price FROM products WHERE sku = ANY($1::text[]) AND"
                            " active AND price IS NOT NULL", skus)
    return {r["sku"]: r["price"] for r in rows}


async def non_returnable(conn: Conn, skus: list[str]) -> set[str]:
    rows = await conn.fetch("SELECT sku FROM products WHERE sku = ANY($1::text[]) AND NOT"
                            " returnable", skus)
    return {r["sku"] for r in rows}


async def policy(conn: Conn, store: str) -> Policy:
    row = await conn.fetchrow(
        "SELECT * FROM policies WHERE store IN ($1, '*') ORDER BY store = '*' LIMIT 1", store)
    if row is None:
        return Policy()
    return Policy(row["return_window_days"], row["refund_without_return_below"],
                  row["return_shipping_cost"], row["replacement_without_review_below"],
                  row["currency"])


async def already_requested(conn: Conn, key: str) -> dict[str, int]:
    """Quantities in earlier requests that were not rejected."""
    rows = await conn.fetch("SELECT lines FROM requests WHERE order_key = $1 AND status <>"
                            " 'rejected'", key)
    out: dict[str, int] = {}
    for r in rows:
        for ln in json.loads(r["lines"]):
            out[ln["sku"]] = out.get(ln["sku"], 0) + ln["quantity"]
    return out


async def get_request(conn: Conn, key: str, request_id: str
                      ) -> asyncpg.Record | None:
    return await conn.fetchrow("SELECT * FROM requests WHERE order_key = $1 AND request_id = $2"
                               " FOR UPDATE", key, request_id)


async def insert_request(conn: Conn, key: str, request_id: str,
                         order_id: uuid.UUID | None, kind: str, reason: str,
                         lines: list[dict[str, Any]], status: str, decision: dict[str, str], *,
                         store_name: str | None = None, exchange_for: dict[str, str] | None = None,
                         comment: str | None = None, source: str = "customer") -> bool:
    inserted = await conn.fetchval(
        "INSERT INTO requests (order_key, request_id, order_id, kind, reason, lines, status,"
        " decision, store, exchange_for, comment, source) VALUES ($1, $2, $3, $4, $5, $6::jsonb,"
        " $7, $8::jsonb, $9, $10::jsonb, $11, $12) ON CONFLICT DO NOTHING RETURNING 1",
        key, request_id, order_id, kind, reason, json.dumps(lines), status, json.dumps(decision),
        store_name, json.dumps(exchange_for) if exchange_for is not None else None, comment,
        source)
    if inserted:
        await history(conn, key, request_id, status, decision.get("message"))
    return bool(inserted)


async def set_request_status(conn: Conn, key: str, request_id: str, status: str,
                             note: str | None = None, actor: str = "policy") -> None:
    await conn.execute("UPDATE requests SET status = $3, updated_at = now() WHERE order_key = $1"
                       " AND request_id = $2", key, request_id, status)
    await history(conn, key, request_id, status, note, actor)


async def history(conn: Conn, key: str, request_id: str, status: str,
                  note: str | None, actor: str = "policy") -> None:
    await conn.execute("INSERT INTO request_history (order_key, request_id, status, note, actor)"
                       " VALUES ($1, $2, $3, $4, $5)", key, request_id, status, note, actor)


async def set_received(conn: Conn, key: str, request_id: str,
                       returned: list[dict[str, Any]]) -> None:
    await conn.execute("UPDATE requests SET returned_lines = $3::jsonb WHERE order_key = $1 AND"
                       " request_id = $2", key, request_id, json.dumps(returned))
    await set_request_status(conn, key, request_id, "received", "returned goods received",
                             "warehouse")


async def set_grade(conn: Conn, key: str, request_id: str, grade: str | None,
                    note: str) -> None:
    await conn.execute("UPDATE requests SET grade = $3 WHERE order_key = $1 AND request_id = $2",
                       key, request_id, grade)
    await history(conn, key, request_id, "graded", note)


async def set_return_label(conn: Conn, key: str, request_id: str, label: dict[str, str]) -> None:
    await conn.execute("UPDATE requests SET return_label = $3::jsonb WHERE order_key = $1 AND"
                       " request_id = $2", key, request_id, json.dumps(label))
    await history(conn, key, request_id, "label_issued",
                  f"{label['carrier']} {label['service']} {label['tracking_number']}", "logistics")


async def replacement_count(conn: Conn, order_id: str) -> int:
    return int(await conn.fetchval("SELECT count(*) FROM replacements WHERE replaces_order_id ="
                                   " $1", uuid.UUID(order_id)))


async def insert_replacement(conn: Conn, snap: OrderSnapshot, request_id: str, kind: str) -> None:
    assert snap.replaces_order_id is not None
    await conn.execute(
        "INSERT INTO replacements (order_id, order_key, replaces_order_id, request_id, kind)"
        " VALUES ($1, $2, $3, $4, $5)", uuid.UUID(snap.order_id), snap.key,
        uuid.UUID(snap.replaces_order_id), request_id, kind)


async def add_returned_stock(conn: Conn, key: str, request_id: str, warehouse: str,
                             lines: list[Any], state: str) -> None:
    await conn.executemany(
        "INSERT INTO returned_stock (order_key, request_id, sku, warehouse, quantity, state)"
        " VALUES ($1, $2, $3, $4, $5, $6)",
        [(key, request_id, ln.sku, warehouse, ln.quantity, state) for ln in lines])


async def refunded_so_far(conn: Conn, order_id: uuid.UUID) -> tuple[Decimal, bool]:
    row = await conn.fetchrow("SELECT coalesce(sum(amount), 0) AS total, coalesce(bool_or("
                              "includes_shipping), false) AS shipping FROM refunds"
                              " WHERE order_id = $1", order_id)
    assert row is not None
    return row["total"], row["shipping"]


async def insert_refund(conn: Conn, order_id: uuid.UUID, request_id: str,
                        amount: Decimal, currency: str, includes_shipping: bool) -> None:
    await conn.execute(
        "INSERT INTO refunds (order_id, request_id, amount, currency, includes_shipping)"
        " VALUES ($1, $2, $3, $4, $5)", order_id, request_id, amount, currency, includes_shipping)


async def insert_feedback(conn: Conn, event_id: uuid.UUID, key: str, rating: int,
                          comment: str | None, at: Any, tags: list[str]) -> bool:
    return bool(await conn.fetchval(
        "INSERT INTO feedback (event_id, order_key, rating, comment, occurred_at, tags)"
        " VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING RETURNING 1",
        event_id, key, rating, comment, at, tags))


async def open_follow_up(conn: Conn, event_id: uuid.UUID, key: str, rating: int,
                         tags: list[str]) -> None:
    await conn.execute("INSERT INTO follow_ups (event_id, order_key, rating, tags) VALUES"
                       " ($1, $2, $3, $4) ON CONFLICT DO NOTHING", event_id, key, rating, tags)


async def open_returns(conn: Conn, key: str) -> list[asyncpg.Record]:
    """Authorized returns whose goods have not come back yet, oldest first."""
    return list(await conn.fetch(
        "SELECT * FROM requests WHERE order_key = $1 AND kind = 'return' AND status ="
        " 'authorized' ORDER BY created_at, request_id FOR UPDATE", key))


async def set_lines(conn: Conn, key: str, request_id: str, lines: list[dict[str, Any]]) -> None:
    """What a request still covers (a returned parcel settled part of it)."""
    await conn.execute("UPDATE requests SET lines = $3::jsonb, updated_at = now() WHERE"
                       " order_key = $1 AND request_id = $2", key, request_id, json.dumps(lines))


# --- follow-up cases (docs/aftersales.md "Follow-up cases") ----------------------------------
FOLLOW_UP_COLUMNS = (
    "u.id, u.order_key, u.rating, u.tags, u.status, u.assignee, u.resolution, u.created_at,"
    " u.updated_at, u.closed_at, u.closed_by, f.comment,"
    " extract(epoch FROM coalesce(u.closed_at, now()) - u.created_at)::float8 AS age_seconds")


async def follow_ups(conn: Conn, status: str | None, assignee: str | None, tag: str | None,
                     limit: int) -> list[asyncpg.Record]:
    """Cases oldest first; `status` None for all, `assignee` "" for the unassigned."""
    return list(await conn.fetch(
        f"SELECT {FOLLOW_UP_COLUMNS} FROM follow_ups u JOIN feedback f USING (event_id)"
        " WHERE ($1::text IS NULL OR u.status = $1)"
        " AND ($2::text IS NULL OR u.assignee IS NOT DISTINCT FROM nullif($2, ''))"
        " AND ($3::text IS NULL OR $3 = ANY (u.tags))"
        " ORDER BY u.created_at, u.id LIMIT $4", status, assignee, tag, limit))


async def follow_up(conn: Conn, case_id: int, lock: bool = False) -> asyncpg.Record | None:
    return await conn.fetchrow(
        f"SELECT {FOLLOW_UP_COLUMNS} FROM follow_ups u JOIN feedback f USING (event_id)"
        f" WHERE u.id = $1{' FOR UPDATE OF u' if lock else ''}", case_id)


async def follow_up_notes(conn: Conn, case_id: int) -> list[asyncpg.Record]:
    return list(await conn.fetch("SELECT kind, author, body, at FROM follow_up_notes WHERE"
                                 " follow_up = $1 ORDER BY id", case_id))


async def update_follow_up(conn: Conn, case_id: int, kind: str, author: str, body: str, *,
                           status: str | None = None, assignee: str | None = None,
                           resolution: str | None = None) -> None:
    """One step of a case: its note, and the case's new fields (closing sets resolution and
    closed_at/by; reopening clears them)."""
    if kind == "assigned":
        await conn.execute("UPDATE follow_ups SET assignee = $2, updated_at = now() WHERE"
                           " id = $1", case_id, assignee)
    elif kind == "closed":
        await conn.execute("UPDATE follow_ups SET status = 'closed', resolution = $2,"
                           " closed_at = now(), closed_by = $3, updated_at = now() WHERE id = $1",
                           case_id, resolution, author)
    elif kind == "reopened":
        await conn.execute("UPDATE follow_ups SET status = 'open', resolution = NULL,"
                           " closed_at = NULL, closed_by = NULL, updated_at = now() WHERE"
                           " id = $1", case_id)
    else:
        await conn.execute("UPDATE follow_ups SET updated_at = now() WHERE id = $1", case_id)
    await conn.execute("INSERT INTO follow_up_notes (follow_up, kind, author, body) VALUES"
                       " ($1, $2, $3, $4)", case_id, kind, author, body)


async def follow_up_summary(conn: Conn) -> asyncpg.Record:
    """The KPIs of the cases: how many are open (and unassigned), how old the open ones are,
    how many closed in the last 7 days and how long those took."""
    row = await conn.fetchrow(
        "SELECT count(*) FILTER (WHERE status = 'open') AS open,"
        " count(*) FILTER (WHERE status = 'open' AND assignee IS NULL) AS unassigned,"
        " extract(epoch FROM now() - min(created_at) FILTER (WHERE status = 'open'))::float8"
        "   AS oldest_open_seconds,"
        " extract(epoch FROM percentile_cont(0.5) WITHIN GROUP (ORDER BY now() - created_at)"
        "   FILTER (WHERE status = 'open'))::float8 AS median_open_seconds,"
        " count(*) FILTER (WHERE closed_at > now() - interval '7 days') AS closed_last_7_days,"
        " extract(epoch FROM percentile_cont(0.5) WITHIN GROUP (ORDER BY closed_at - created_at)"
        "   FILTER (WHERE closed_at > now() - interval '7 days'))::float8"
        "   AS median_seconds_to_close_last_7_days"
        " FROM follow_ups")
    assert row is not None
    return row
