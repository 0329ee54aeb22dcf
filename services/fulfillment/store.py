"""SQL for fulfillment's schema."""

from __future__ import annotations

import json
import uuid
from typing import Any

import asyncpg

from shared.contracts import OrderSnapshot, ProductUpserted
from shared.db import Conn

from .domain import DEFAULT_DIMS, DEFAULT_WEIGHT_G, Box, Item


async def upsert_product(conn: Conn, p: ProductUpserted) -> None:
    await conn.execute(
        "INSERT INTO products (sku, weight_g, dims, attributes, occurred_at)"
        " VALUES ($1, $2, $3, $4, $5) ON CONFLICT (sku) DO UPDATE SET weight_g = EXCLUDED.weight_g,"
        " dims = EXCLUDED.dims, attributes = EXCLUDED.attributes, occurred_at = EXCLUDED.occurred_at"
        " WHERE products.occurred_at <= EXCLUDED.occurred_at",
        p.sku, p.weight_g, [p.dims_mm.l, p.dims_mm.w, p.dims_mm.h], list(p.attributes),
        p.occurred_at)


async def items(conn: Conn, lines: list[tuple[str, int]]) -> list[Item]:
    """One Item per unit, with the catalogue's weight and size (defaults when unknown)."""
    rows = await conn.fetch("SELECT * FROM products WHERE sku = ANY($1::text[])",
                            [sku for sku, _ in lines])
    known = {r["sku"]: r for r in rows}
    out = []
    for sku, qty in lines:
        r = known.get(sku)
        item = (Item(sku, r["weight_g"], tuple(r["dims"]), tuple(r["attributes"]))
                if r else Item(sku, DEFAULT_WEIGHT_G, DEFAULT_DIMS))
        out.extend([item] * qty)
    return out


async def boxes(conn: Conn) -> list[Box]:
    rows = await conn.fetch("SELECT * FROM boxes")
    return [Box(r["code"], (r["inner_l"], r["inner_w"], r["inner_h"]), r["tare_g"],
                r["max_weight_g"]) for r in rows]


async def get_order(conn: Conn, order_id: uuid.UUID) -> asyncpg.Record | None:
    return await conn.fetchrow("SELECT * FROM orders WHERE order_id = $1 FOR UPDATE", order_id)


async def insert_order(conn: Conn, order_id: uuid.UUID, key: str, status: str,
                       snap: OrderSnapshot | None, allocations: list[dict[str, Any]],
                       correlation_id: str | None) -> None:
    await conn.execute(
        "INSERT INTO orders (order_id, order_key, status, snapshot, allocations, correlation_id)"
        " VALUES ($1, $2, $3, $4::jsonb, $5::jsonb, $6)", order_id, key, status,
        snap.model_dump_json() if snap else None, json.dumps(allocations), correlation_id)


async def set_status(conn: Conn, order_id: uuid.UUID, status: str) -> None:
    await conn.execute("UPDATE orders SET status = $2, updated_at = now() WHERE order_id = $1",
                       order_id, status)


async def insert_parcel(conn: Conn, parcel_id: str, order_id: uuid.UUID,
                        warehouse: str, box: str, weight_g: int,
                        lines: list[dict[str, Any]]) -> None:
    await conn.execute(
        "INSERT INTO parcels (parcel_id, order_id, warehouse, box, weight_g, lines)"
        " VALUES ($1, $2, $3, $4, $5, $6::jsonb)", parcel_id, order_id, warehouse, box, weight_g,
        json.dumps(lines))
