"""SQL for intake's schema."""

from __future__ import annotations

import json
import uuid
from typing import Any

import asyncpg

from shared.contracts import CoverageChanged, OrderPlaced, ProductUpserted
from shared.db import Conn

from .domain import Policy, Product, Promotion


async def find_order(conn: Conn, store: str, ext: str) -> asyncpg.Record | None:
    return await conn.fetchrow(
        "SELECT * FROM orders WHERE store = $1 AND external_order_id = $2 FOR UPDATE", store, ext
    )


async def get_order(conn: Conn, order_id: uuid.UUID) -> asyncpg.Record | None:
    return await conn.fetchrow("SELECT * FROM orders WHERE order_id = $1 FOR UPDATE", order_id)


async def insert_order(conn: Conn, order_id: uuid.UUID, order: OrderPlaced | None,
                       store: str, ext: str, status: str, reasons: list[tuple[str, str]]) -> bool:
    """Insert once per (store, external_order_id); False when the order already exists."""
    row = await conn.fetchval(
        "INSERT INTO orders (order_id, store, external_order_id, customer_id, status, reasons,"
        " payload, grand_total, currency, payment_status)"
        " VALUES ($1, $2, $3, $4, $5, $6::jsonb, $7::jsonb, $8, $9, $10)"
        " ON CONFLICT (store, external_order_id) DO NOTHING RETURNING 1",
        order_id, store, ext, order.customer.id if order else None, status,
        _reasons(reasons), order.model_dump_json() if order else None,
        order.totals.grand_total if order else None, order.currency if order else None,
        order.payment.status if order else None,
    )
    return row is not None


async def set_status(conn: Conn, order_id: uuid.UUID, status: str,
                     reasons: list[tuple[str, str]]) -> None:
    await conn.execute(
        "UPDATE orders SET status = $2, reasons = $3::jsonb, updated_at = now()"
        " WHERE order_id = $1", order_id, status, _reasons(reasons))


async def mark_shipped(conn: Conn, order_id: uuid.UUID) -> None:
    await conn.execute("UPDATE orders SET shipped = true, updated_at = now() WHERE order_id = $1",
                       order_id)


def _reasons(reasons: list[tuple[str, str]]) -> str:
    return json.dumps([{"code": c, "message": m} for c, m in reasons])


async def upsert_product(conn: Conn, p: ProductUpserted) -> None:
    await conn.execute(
        "INSERT INTO products (sku, active, category, price, attributes, occurred_at)"
        " VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (sku) DO UPDATE SET"
        " active = EXCLUDED.active, category = EXCLUDED.category, price = EXCLUDED.price,"
        " attributes = EXCLUDED.attributes, occurred_at = EXCLUDED.occurred_at"
        " WHERE products.occurred_at <= EXCLUDED.occurred_at",
        p.sku, p.active, p.category, p.price, list(p.attributes), p.occurred_at,
    )


async def products_for(conn: Conn, skus: list[str]) -> dict[str, Product]:
    rows = await conn.fetch("SELECT * FROM products WHERE sku = ANY($1::text[])", skus)
    return {r["sku"]: Product(r["sku"], r["active"], r["category"], r["price"],
                              tuple(r["attributes"])) for r in rows}


async def get_product(conn: Conn | asyncpg.Pool, sku: str) -> asyncpg.Record | None:
    return await conn.fetchrow("SELECT * FROM products WHERE sku = $1", sku)


async def set_coverage(conn: Conn, c: CoverageChanged) -> None:
    await conn.execute(
        "INSERT INTO coverage (id, countries, refused_attributes, occurred_at)"
        " VALUES (1, $1, $2::jsonb, $3) ON CONFLICT (id) DO UPDATE SET"
        " countries = EXCLUDED.countries, refused_attributes = EXCLUDED.refused_attributes,"
        " occurred_at = EXCLUDED.occurred_at WHERE coverage.occurred_at <= EXCLUDED.occurred_at",
        c.countries, json.dumps(c.refused_attributes), c.occurred_at,
    )


async def served_countries(conn: Conn) -> set[str] | None:
    row = await conn.fetchval("SELECT countries FROM coverage WHERE id = 1")
    return set(row) if row is not None else None


async def promotions(conn: Conn, codes: list[str]) -> dict[str, Promotion]:
    if not codes:
        return {}
    rows = await conn.fetch("SELECT * FROM promotions WHERE code = ANY($1::text[])",
                            [c.upper() for c in codes])
    return {r["code"]: Promotion(r["code"], r["kind"], r["value"], r["min_spend"],
                                 r["starts_at"], r["ends_at"], r["active"]) for r in rows}


async def policy(conn: Conn, store: str) -> Policy:
    row = await conn.fetchrow(
        "SELECT * FROM store_policies WHERE store IN ($1, '*') ORDER BY store = '*' LIMIT 1", store)
    return Policy(high_value_threshold=row["high_value_threshold"]) if row else Policy()


async def remember_early_cancel(conn: Conn, store: str, ext: str,
                                reason: str | None) -> None:
    await conn.execute(
        "INSERT INTO early_cancellations (store, external_order_id, reason) VALUES ($1, $2, $3)"
        " ON CONFLICT DO NOTHING", store, ext, reason)


async def take_early_cancel(conn: Conn, store: str, ext: str) -> str | None:
    row = await conn.fetchrow(
        "DELETE FROM early_cancellations WHERE store = $1 AND external_order_id = $2"
        " RETURNING coalesce(reason, '') AS reason", store, ext)
    return row["reason"] if row else None


async def holds(pool: asyncpg.Pool, limit: int = 100) -> list[dict[str, Any]]:
    rows = await pool.fetch(
        "SELECT order_id, store, external_order_id, customer_id, reasons, grand_total, currency,"
        " received_at FROM orders WHERE status = 'on_hold' ORDER BY received_at LIMIT $1", limit)
    return [{**dict(r), "order_id": str(r["order_id"]), "reasons": json.loads(r["reasons"]),
             "grand_total": str(r["grand_total"]) if r["grand_total"] is not None else None}
            for r in rows]

