"""SQL for analytics' read model."""

from __future__ import annotations

import json
from typing import Any

import asyncpg

from shared.contracts import FeedbackGiven, OrderStatusChanged, RefundIssued
from shared.db import Conn


async def record_status(conn: Conn, e: OrderStatusChanged) -> None:
    key = f"{e.store}:{e.external_order_id}"
    await conn.execute(
        "INSERT INTO timeline (event_id, order_key, status, occurred_at, reasons, details)"
        " VALUES ($1, $2, $3, $4, $5::jsonb, $6::jsonb) ON CONFLICT DO NOTHING",
        e.event_id, key, e.status, e.occurred_at,
        json.dumps([r.model_dump() for r in e.reasons]), json.dumps(e.details, default=str))
    await conn.execute(
        "INSERT INTO orders (order_key, order_id, store, external_order_id, status, status_at,"
        " first_seen) VALUES ($1, $2, $3, $4, $5, $6, $6) ON CONFLICT (order_key) DO UPDATE SET"
        " status = CASE WHEN EXCLUDED.status_at >= orders.status_at THEN EXCLUDED.status"
        " ELSE orders.status END,"
        " status_at = greatest(orders.status_at, EXCLUDED.status_at),"
        " first_seen = least(orders.first_seen, EXCLUDED.first_seen)",
        key, e.order_id, e.store, e.external_order_id, e.status, e.occurred_at)


async def record_refund(conn: Conn, e: RefundIssued) -> None:
    await conn.execute("INSERT INTO refunds VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
                       e.event_id, f"{e.store}:{e.external_order_id}", e.request_id, e.amount,
                       e.currency, e.occurred_at)


async def record_feedback(conn: Conn, e: FeedbackGiven) -> None:
    await conn.execute("INSERT INTO feedback VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
                       e.event_id, e.key, e.rating, e.occurred_at)


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
        "SELECT status, count(*) AS n FROM orders WHERE $1::text[] IS NULL OR store = ANY($1)"
        " GROUP BY status ORDER BY status", stores)
    return {r["status"]: r["n"] for r in rows}


async def reason_counts(pool: asyncpg.Pool, status: str) -> dict[str, int]:
    rows = await pool.fetch(
        "SELECT r->>'code' AS code, count(DISTINCT t.order_key) AS n FROM timeline t,"
        " jsonb_array_elements(t.reasons) r WHERE t.status = $1 GROUP BY 1 ORDER BY 2 DESC", status)
    return {r["code"]: r["n"] for r in rows}
