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


async def order_by_key(conn: Conn, key: str) -> asyncpg.Record | None:
    return await conn.fetchrow("SELECT * FROM orders WHERE order_key = $1 FOR UPDATE", key)


async def set_parcels(conn: Conn, order_id: uuid.UUID,
                      parcels: list[dict[str, Any]]) -> None:
    await conn.execute("UPDATE orders SET parcels = $2::jsonb WHERE order_id = $1", order_id,
                       json.dumps(parcels))


async def set_delivered(conn: Conn, order_id: uuid.UUID, at: Any) -> None:
    await conn.execute("UPDATE orders SET delivered_at = $2 WHERE order_id = $1", order_id, at)


def ordered_lines(snap: OrderSnapshot) -> list[OrderedLine]:
    return [OrderedLine(ln.sku, ln.quantity, ln.unit_price) for ln in snap.lines]


async def upsert_product(conn: Conn, sku: str, returnable: bool, at: Any) -> None:
    await conn.execute(
        "INSERT INTO products (sku, returnable, occurred_at) VALUES ($1, $2, $3)"
        " ON CONFLICT (sku) DO UPDATE SET returnable = EXCLUDED.returnable,"
        " occurred_at = EXCLUDED.occurred_at WHERE products.occurred_at <= EXCLUDED.occurred_at",
        sku, returnable, at)


async def non_returnable(conn: Conn, skus: list[str]) -> set[str]:
    rows = await conn.fetch("SELECT sku FROM products WHERE sku = ANY($1::text[]) AND NOT"
                            " returnable", skus)
    return {r["sku"] for r in rows}


async def policy(conn: Conn, store: str) -> Policy:
    row = await conn.fetchrow(
        "SELECT * FROM policies WHERE store IN ($1, '*') ORDER BY store = '*' LIMIT 1", store)
    if row is None:
        return Policy()
    return Policy(row["return_window_days"], row["refund_without_return_below"])


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
                         lines: list[dict[str, Any]], status: str, decision: dict[str, str]
                         ) -> bool:
    inserted = await conn.fetchval(
        "INSERT INTO requests (order_key, request_id, order_id, kind, reason, lines, status,"
        " decision) VALUES ($1, $2, $3, $4, $5, $6::jsonb, $7, $8::jsonb)"
        " ON CONFLICT DO NOTHING RETURNING 1",
        key, request_id, order_id, kind, reason, json.dumps(lines), status, json.dumps(decision))
    if inserted:
        await history(conn, key, request_id, status, decision.get("message"))
    return bool(inserted)


async def set_request_status(conn: Conn, key: str, request_id: str, status: str,
                             note: str | None = None) -> None:
    await conn.execute("UPDATE requests SET status = $3, updated_at = now() WHERE order_key = $1"
                       " AND request_id = $2", key, request_id, status)
    await history(conn, key, request_id, status, note)


async def history(conn: Conn, key: str, request_id: str, status: str,
                  note: str | None) -> None:
    await conn.execute("INSERT INTO request_history (order_key, request_id, status, note)"
                       " VALUES ($1, $2, $3, $4)", key, request_id, status, note)


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
                          comment: str | None, at: Any) -> None:
    await conn.execute("INSERT INTO feedback VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
                       event_id, key, rating, comment, at)
