"""SQL for inventory's schema. Reservations are conditional updates guarded by CHECKs."""

from __future__ import annotations

import json
import uuid
from typing import Any

import asyncpg

from shared.contracts import OrderSnapshot, ProductUpserted, StockAdjusted
from shared.db import Conn

from .domain import Line, Plan, counted_on_hand


class StockGone(Exception):
    """A conditional reservation found less than planned (another order took it first)."""


async def upsert_product(conn: Conn, p: ProductUpserted) -> None:
    await conn.execute(
        "INSERT INTO products (sku, category, price, attributes, active, occurred_at)"
        " VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (sku) DO UPDATE SET"
        " category = EXCLUDED.category, price = EXCLUDED.price, attributes = EXCLUDED.attributes,"
        " active = EXCLUDED.active, occurred_at = EXCLUDED.occurred_at"
        " WHERE products.occurred_at <= EXCLUDED.occurred_at",
        p.sku, p.category, p.price, list(p.attributes), p.active, p.occurred_at)


async def warehouse_exists(conn: Conn, code: str) -> bool:
    return bool(await conn.fetchval("SELECT 1 FROM warehouses WHERE code = $1", code))


async def available(conn: Conn, skus: list[str]) -> dict[str, dict[str, int]]:
    """`{warehouse: {sku: on_hand - reserved}}` for every warehouse (a plan, not a promise)."""
    rows = await conn.fetch(
        "SELECT w.code AS warehouse, s.sku, coalesce(s.on_hand - s.reserved, 0) AS available"
        " FROM warehouses w LEFT JOIN stock s ON s.warehouse = w.code AND s.sku = ANY($1::text[])",
        skus)
    out: dict[str, dict[str, int]] = {}
    for r in rows:
        out.setdefault(r["warehouse"], {})
        if r["sku"] is not None:
            out[r["warehouse"]][r["sku"]] = r["available"]
    return out


async def priorities(conn: Conn) -> dict[str, list[str]]:
    rows = await conn.fetch("SELECT destination, warehouse FROM warehouse_priority"
                            " ORDER BY destination, rank")
    out: dict[str, list[str]] = {}
    for r in rows:
        out.setdefault(r["destination"], []).append(r["warehouse"])
    return out


async def reserve(conn: Conn, order_id: uuid.UUID, plan: Plan,
                  event_id: uuid.UUID) -> None:
    """Reserve every line of a plan or raise StockGone; call inside a savepoint.

    `WHERE on_hand - reserved >= q` makes the check and the update one atomic step, so any
    number of instances racing for the last unit cannot oversell; lines go in SKU order.
    """
    for warehouse, lines in sorted(plan.allocations.items()):
        for ln in sorted(lines, key=lambda x: x.sku):
            ok = await conn.fetchval(
                "UPDATE stock SET reserved = reserved + $3 WHERE sku = $1 AND warehouse = $2"
                " AND on_hand - reserved >= $3 RETURNING 1", ln.sku, warehouse, ln.quantity)
            if not ok:
                raise StockGone(f"{ln.sku}@{warehouse}")
            await _ledger(conn, ln.sku, warehouse, "reserve", 0, ln.quantity, order_id, event_id)


async def release(conn: Conn, order_id: uuid.UUID, allocations: list[dict[str, Any]],
                  event_id: uuid.UUID) -> None:
    for alloc in sorted(allocations, key=lambda a: a["warehouse"]):
        for ln in sorted(alloc["lines"], key=lambda x: x["sku"]):
            await conn.execute(
                "UPDATE stock SET reserved = reserved - $3 WHERE sku = $1 AND warehouse = $2",
                ln["sku"], alloc["warehouse"], ln["quantity"])
            await _ledger(conn, ln["sku"], alloc["warehouse"], "release", 0, -ln["quantity"],
                          order_id, event_id)


async def commit_shipped(conn: Conn, order_id: uuid.UUID,
                         shipped: list[tuple[str, str, int]], event_id: uuid.UUID) -> None:
    """Goods left the building: on_hand and reserved both go down."""
    for warehouse, sku, qty in sorted(shipped):
        await conn.execute(
            "UPDATE stock SET on_hand = on_hand - $3, reserved = reserved - $3"
            " WHERE sku = $1 AND warehouse = $2", sku, warehouse, qty)
        await _ledger(conn, sku, warehouse, "commit", -qty, -qty, order_id, event_id)


async def add_on_hand(conn: Conn, sku: str, warehouse: str, qty: int, kind: str,
                      reference: str | None, event_id: uuid.UUID,
                      order_id: uuid.UUID | None = None) -> None:
    await conn.execute(
        "INSERT INTO stock (sku, warehouse, on_hand) VALUES ($1, $2, $3)"
        " ON CONFLICT (sku, warehouse) DO UPDATE SET on_hand = stock.on_hand + EXCLUDED.on_hand",
        sku, warehouse, qty)
    await _ledger(conn, sku, warehouse, kind, qty, 0, order_id, event_id, reference)


async def adjust(conn: Conn, ev: StockAdjusted) -> int:
    """Apply a `stock.adjustments` event; returns the drift an operator should look at."""
    if ev.kind == "received":
        await add_on_hand(conn, ev.sku, ev.warehouse, ev.quantity, "receipt", ev.reference,
                          ev.event_id)
        return 0
    await conn.execute("INSERT INTO stock (sku, warehouse) VALUES ($1, $2) ON CONFLICT DO NOTHING",
                       ev.sku, ev.warehouse)
    row = await conn.fetchrow("SELECT on_hand, reserved FROM stock WHERE sku = $1 AND"
                              " warehouse = $2 FOR UPDATE", ev.sku, ev.warehouse)
    assert row is not None
    if ev.kind == "counted":
        new_on_hand, drift = counted_on_hand(ev.quantity, row["reserved"])
        kind = "count"
    else:  # damaged: write off, but never below what is promised to orders
        new_on_hand = max(row["on_hand"] - ev.quantity, row["reserved"])
        drift = max(0, ev.quantity - (row["on_hand"] - row["reserved"]))
        kind = "damage"
    delta = new_on_hand - row["on_hand"]
    await conn.execute("UPDATE stock SET on_hand = $3 WHERE sku = $1 AND warehouse = $2",
                       ev.sku, ev.warehouse, new_on_hand)
    await _ledger(conn, ev.sku, ev.warehouse, kind, delta, 0, None, ev.event_id, ev.reference)
    return drift


async def _ledger(conn: Conn, sku: str, warehouse: str, kind: str, on_hand: int,
                  reserved: int, order_id: uuid.UUID | None, event_id: uuid.UUID | None,
                  reference: str | None = None) -> None:
    await conn.execute(
        "INSERT INTO ledger (sku, warehouse, kind, on_hand_delta, reserved_delta, order_id,"
        " reference, event_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        sku, warehouse, kind, on_hand, reserved, order_id, reference, event_id)


# --- orders -----------------------------------------------------------------------------------
async def get_order(conn: Conn, order_id: uuid.UUID) -> asyncpg.Record | None:
    return await conn.fetchrow("SELECT * FROM orders WHERE order_id = $1 FOR UPDATE", order_id)


async def insert_order(conn: Conn, snap: OrderSnapshot | None, order_id: uuid.UUID,
                       order_key: str, status: str, correlation_id: str | None,
                       allocations: list[dict[str, Any]] | None = None,
                       short: list[Line] | None = None) -> None:
    await conn.execute(
        "INSERT INTO orders (order_id, order_key, status, snapshot, correlation_id, allocations,"
        " short_lines) VALUES ($1, $2, $3, $4::jsonb, $5, $6::jsonb, $7::jsonb)",
        order_id, order_key, status, snap.model_dump_json() if snap else None, correlation_id,
        json.dumps(allocations or []), _lines(short or []))


async def update_order(conn: Conn, order_id: uuid.UUID, status: str,
                       allocations: list[dict[str, Any]] | None = None,
                       short: list[Line] | None = None) -> None:
    await conn.execute(
        "UPDATE orders SET status = $2, allocations = coalesce($3::jsonb, allocations),"
        " short_lines = coalesce($4::jsonb, short_lines), updated_at = now() WHERE order_id = $1",
        order_id, status, json.dumps(allocations) if allocations is not None else None,
        _lines(short) if short is not None else None)


async def backordered(conn: Conn, limit: int = 500) -> list[asyncpg.Record]:
    """Waiting orders, oldest first, locked for this transaction."""
    return await conn.fetch(
        "SELECT * FROM orders WHERE status = 'backordered' ORDER BY created_at, order_id"
        " LIMIT $1 FOR UPDATE", limit)


def _lines(lines: list[Line]) -> str:
    return json.dumps([{"sku": ln.sku, "quantity": ln.quantity} for ln in lines])


# --- operators --------------------------------------------------------------------------------
async def stock_of(pool: asyncpg.Pool, sku: str) -> list[dict[str, Any]]:
    rows = await pool.fetch("SELECT warehouse, on_hand, reserved, on_hand - reserved AS available"
                            " FROM stock WHERE sku = $1 ORDER BY warehouse", sku)
    return [dict(r) for r in rows]


async def reconcile(pool: asyncpg.Pool) -> list[dict[str, Any]]:
    """Balances that differ from what the ledger adds up to (should be none)."""
    rows = await pool.fetch(
        "SELECT coalesce(s.sku, l.sku) AS sku, coalesce(s.warehouse, l.warehouse) AS warehouse,"
        " s.on_hand, s.reserved, l.on_hand AS ledger_on_hand, l.reserved AS ledger_reserved"
        " FROM stock s FULL JOIN (SELECT sku, warehouse, sum(on_hand_delta) AS on_hand,"
        " sum(reserved_delta) AS reserved FROM ledger GROUP BY sku, warehouse) l"
        " ON l.sku = s.sku AND l.warehouse = s.warehouse"
        " WHERE coalesce(s.on_hand, 0) <> coalesce(l.on_hand, 0)"
        " OR coalesce(s.reserved, 0) <> coalesce(l.reserved, 0)")
    return [dict(r) for r in rows]
