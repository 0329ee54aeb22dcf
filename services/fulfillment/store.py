"""SQL for fulfillment's schema."""

from __future__ import annotations

import json
import uuid
from typing import Any

import asyncpg

from shared.contracts import OrderSnapshot, ProductUpserted
from shared.db import Conn, xact_lock
from shared.uow import UnitOfWork

from .domain import DEFAULT_DIMS, DEFAULT_WEIGHT_G, Bin, Box, Item, NewPick, Reserved
from .domain import seed_bin as seed_bin_for

# Reference data read once per unit of work (`uow.memo`); its writers forget it.
PRODUCTS = "fulfillment.products"
BOXES = "fulfillment.boxes"


async def upsert_product(conn: Conn, p: ProductUpserted) -> None:
    """Newest product data wins. The caller forgets the `PRODUCTS` memo."""
    await conn.execute(
        "INSERT INTO products (sku, weight_g, dims, attributes, occurred_at)"
        " VALUES ($1, $2, $3, $4, $5) ON CONFLICT (sku) DO UPDATE SET weight_g = EXCLUDED.weight_g,"
        " dims = EXCLUDED.dims, attributes = EXCLUDED.attributes, occurred_at = EXCLUDED.occurred_at"
        " WHERE products.occurred_at <= EXCLUDED.occurred_at",
        p.sku, p.weight_g, [p.dims_mm.l, p.dims_mm.w, p.dims_mm.h], list(p.attributes),
        p.occurred_at)


async def items(uow: UnitOfWork, lines: list[tuple[str, int]]) -> list[Item]:
    """One Item per unit, with the catalogue's weight and size (defaults when unknown); the
    products are reference data, each SKU's cached across runs until `products` changes."""
    async def load(skus: list[str]) -> dict[str, asyncpg.Record]:
        return {r["sku"]: r for r in await uow.conn.fetch(
            "SELECT * FROM products WHERE sku = ANY($1::text[])", skus)}
    known = await uow.reference_rows(PRODUCTS, (sku for sku, _ in lines), load,
                                     tables=("products",))
    out = []
    for sku, qty in lines:
        r = known.get(sku)
        item = (Item(sku, r["weight_g"], tuple(r["dims"]), tuple(r["attributes"]))
                if r else Item(sku, DEFAULT_WEIGHT_G, DEFAULT_DIMS))
        out.extend([item] * qty)
    return out


async def boxes(uow: UnitOfWork) -> list[Box]:
    """The box catalogue, inactive boxes included (parcels packed in them still need their
    sizes; `domain.choose_boxes` skips them), cached across runs until `boxes` changes."""
    rows = await uow.reference(BOXES, lambda: uow.conn.fetch("SELECT * FROM boxes ORDER BY code"),
                               tables=("boxes",))
    return [Box(r["code"], (r["inner_l"], r["inner_w"], r["inner_h"]), r["tare_g"],
                r["max_weight_g"], r["active"]) for r in rows]


async def get_order(conn: Conn, order_id: uuid.UUID) -> asyncpg.Record | None:
    return await conn.fetchrow("SELECT * FROM orders WHERE order_id = $1 FOR UPDATE", order_id)


# --- a run of reservations (handlers.stock_reserved): one statement each ----------------------

async def order_statuses(conn: Conn, order_ids: list[uuid.UUID]) -> dict[str, str]:
    """The orders of a run that fulfillment knows, locked in order_id order (two instances
    never lock them in opposite orders): order_id -> status."""
    rows = await conn.fetch("SELECT order_id, status FROM orders WHERE order_id = ANY($1::uuid[])"
                            " ORDER BY order_id FOR UPDATE", order_ids)
    return {str(r["order_id"]): r["status"] for r in rows}


async def pick_statuses(conn: Conn, order_ids: list[uuid.UUID]) -> dict[str, dict[str, str]]:
    """The picks of these orders, locked: order_id -> warehouse -> status."""
    rows = await conn.fetch("SELECT order_id, warehouse, status FROM picks"
                            " WHERE order_id = ANY($1::uuid[]) ORDER BY order_id, warehouse"
                            " FOR UPDATE", order_ids)
    out: dict[str, dict[str, str]] = {}
    for r in rows:
        out.setdefault(str(r["order_id"]), {})[r["warehouse"]] = r["status"]
    return out


async def insert_reserved(conn: Conn, orders: list[tuple[Reserved, str, str | None]]) -> None:
    """New orders (order, snapshot JSON, correlation id), `awaiting_pick`."""
    await conn.execute(
        "INSERT INTO orders (order_id, order_key, status, snapshot, allocations, correlation_id)"
        " SELECT id, key, 'awaiting_pick', snap::jsonb, alloc::jsonb, corr"
        " FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[])"
        " AS v(id, key, snap, alloc, corr)",
        [uuid.UUID(o.order_id) for o, _, _ in orders], [o.order_key for o, _, _ in orders],
        [snap for _, snap, _ in orders],
        [json.dumps(list(o.allocations)) for o, _, _ in orders], [c for _, _, c in orders])


async def reallocate(conn: Conn, orders: list[Reserved]) -> None:
    """Short-picked orders re-allocated by inventory: their new allocation, `awaiting_pick`.
    (An order re-allocated twice in a run: the last allocation stands, as one by one.)"""
    last = {o.order_id: o for o in orders}
    await conn.execute(
        "UPDATE orders o SET allocations = v.alloc::jsonb, status = 'awaiting_pick',"
        " updated_at = now() FROM unnest($1::uuid[], $2::text[]) AS v(id, alloc)"
        " WHERE o.order_id = v.id",
        [uuid.UUID(i) for i in last], [json.dumps(list(o.allocations)) for o in last.values()])


async def drop_picks(conn: Conn, picks: list[tuple[str, str]]) -> None:
    """Picks (order, warehouse) with nothing left to pick: `cancelled`."""
    await conn.execute(
        "UPDATE picks p SET status = 'cancelled' FROM unnest($1::uuid[], $2::text[])"
        " AS v(id, wh) WHERE p.order_id = v.id AND p.warehouse = v.wh",
        [uuid.UUID(o) for o, _ in picks], [w for _, w in picks])


async def insert_picks(conn: Conn, picks: list[NewPick]) -> None:
    """Picks waiting for their warehouse's next wave, in arrival order (`seq`: waves take the
    oldest first). A pick again (after a short pick) starts over."""
    last = {(p.order_id, p.warehouse): p for p in picks}  # one row per key in one INSERT
    rows = list(last.values())
    await conn.execute(
        "INSERT INTO picks (order_id, warehouse, lines, express, merge_key, status)"
        " SELECT id, wh, lines::jsonb, express, mkey, 'waiting'"
        " FROM unnest($1::uuid[], $2::text[], $3::text[], $4::boolean[], $5::text[])"
        " WITH ORDINALITY AS v(id, wh, lines, express, mkey, n) ORDER BY n"
        " ON CONFLICT (order_id, warehouse) DO UPDATE SET lines = EXCLUDED.lines,"
        " status = 'waiting', wave_id = NULL, group_id = NULL, scanned = '{}',"
        " expected_g = NULL, measured_g = NULL",
        [uuid.UUID(p.order_id) for p in rows], [p.warehouse for p in rows],
        [json.dumps(p.lines) for p in rows], [p.express for p in rows],
        [p.merge_key for p in rows])


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


# --- waves and picks --------------------------------------------------------------------------

async def seed_bin(conn: Conn, sku: str) -> None:
    b = seed_bin_for(sku)
    await conn.execute(
        "INSERT INTO bin_locations (sku, zone, aisle, rack, level) VALUES ($1, $2, $3, $4, $5)"
        " ON CONFLICT (sku) DO NOTHING", sku, b.zone, b.aisle, b.rack, b.level)


async def bins(conn: Conn, skus: list[str]) -> dict[str, Bin]:
    rows = await conn.fetch("SELECT * FROM bin_locations WHERE sku = ANY($1::text[])", skus)
    return {r["sku"]: Bin(r["zone"], r["aisle"], r["rack"], r["level"]) for r in rows}


async def gtins(conn: Conn, skus: list[str]) -> dict[str, str]:
    rows = await conn.fetch("SELECT sku, gtin FROM products WHERE sku = ANY($1::text[])"
                            " AND gtin IS NOT NULL", skus)
    return {r["gtin"]: r["sku"] for r in rows}


async def insert_pick(conn: Conn, order_id: uuid.UUID, warehouse: str,
                      lines: list[dict[str, Any]], express: bool, merge_key: str) -> None:
    await conn.execute(
        "INSERT INTO picks (order_id, warehouse, lines, express, merge_key, status)"
        " VALUES ($1, $2, $3::jsonb, $4, $5, 'waiting')"
        " ON CONFLICT (order_id, warehouse) DO UPDATE SET lines = EXCLUDED.lines,"
        " status = 'waiting', wave_id = NULL, group_id = NULL, scanned = '{}',"
        " expected_g = NULL, measured_g = NULL",
        order_id, warehouse, json.dumps(lines), express, merge_key)


async def waiting_summary(conn: Conn) -> list[asyncpg.Record]:
    return await conn.fetch(
        "SELECT warehouse, count(*) AS waiting,"
        " extract(epoch FROM now() - min(created_at))::float8 AS oldest_s"
        " FROM picks WHERE status = 'waiting' GROUP BY warehouse ORDER BY warehouse")


async def waiting_picks(conn: Conn, warehouse: str) -> list[asyncpg.Record]:
    return await conn.fetch(
        "SELECT order_id, seq, express, merge_key, lines FROM picks"
        " WHERE status = 'waiting' AND warehouse = $1 ORDER BY seq FOR UPDATE", warehouse)


async def insert_wave(conn: Conn, wave_id: str, warehouse: str, size: int,
                      pick_seconds: float) -> None:
    await conn.execute(
        "INSERT INTO waves (wave_id, warehouse, status, size, pick_due_at)"
        " VALUES ($1, $2, 'released', $3, now() + make_interval(secs => $4))",
        wave_id, warehouse, size, pick_seconds)


async def assign_picks(conn: Conn, warehouse: str, wave_id: str,
                       groups: list[tuple[uuid.UUID, str]]) -> None:
    """A wave's picks (order, group) start: one pipelined round trip for the picks, one
    statement for their orders."""
    await conn.executemany(
        "UPDATE picks SET wave_id = $3, group_id = $4, status = 'picking'"
        " WHERE order_id = $1 AND warehouse = $2",
        [(order_id, warehouse, wave_id, group_id) for order_id, group_id in groups])
    await conn.execute("UPDATE orders SET status = 'picking', updated_at = now()"
                       " WHERE order_id = ANY($1::uuid[]) AND status = 'awaiting_pick'",
                       [order_id for order_id, _ in groups])


async def set_picks_verified(conn: Conn, picks: list[tuple[uuid.UUID, str, dict[str, int]]]
                             ) -> None:
    """Picks (order, warehouse, scanned) whose every unit was scanned: one round trip."""
    await conn.executemany(
        "UPDATE picks SET scanned = $3::jsonb, status = 'verified'"
        " WHERE order_id = $1 AND warehouse = $2",
        [(order_id, warehouse, json.dumps(scanned)) for order_id, warehouse, scanned in picks])


async def due_waves(conn: Conn) -> list[str]:
    rows = await conn.fetch("SELECT wave_id FROM waves WHERE status = 'released'"
                            " AND pick_due_at <= now() ORDER BY created_at")
    return [r["wave_id"] for r in rows]


async def get_wave(conn: Conn, wave_id: str) -> asyncpg.Record | None:
    return await conn.fetchrow("SELECT * FROM waves WHERE wave_id = $1", wave_id)


async def wave_picks(conn: Conn, wave_id: str) -> list[asyncpg.Record]:
    return await conn.fetch(
        "SELECT p.*, o.order_key, o.snapshot FROM picks p JOIN orders o USING (order_id)"
        " WHERE p.wave_id = $1 ORDER BY p.seq FOR UPDATE OF p", wave_id)


async def close_wave_if_done(conn: Conn, wave_id: str) -> None:
    await conn.execute(
        "UPDATE waves SET status = 'done' WHERE wave_id = $1 AND status = 'released'"
        " AND NOT EXISTS (SELECT 1 FROM picks WHERE wave_id = $1"
        " AND status IN ('picking', 'verified', 'weighed', 'on_hold'))", wave_id)


async def order_picks(conn: Conn, order_id: uuid.UUID) -> list[asyncpg.Record]:
    return await conn.fetch("SELECT * FROM picks WHERE order_id = $1 ORDER BY warehouse"
                            " FOR UPDATE", order_id)


async def group_picks(conn: Conn, wave_id: str, group_id: str) -> list[asyncpg.Record]:
    """The orders packed together, less those that dropped out (short, cancelled)."""
    return await conn.fetch(
        "SELECT p.*, o.order_key, o.snapshot, o.correlation_id FROM picks p"
        " JOIN orders o USING (order_id) WHERE p.wave_id = $1 AND p.group_id = $2"
        " AND p.status NOT IN ('short', 'cancelled') ORDER BY p.seq FOR UPDATE OF p",
        wave_id, group_id)


async def set_pick(conn: Conn, order_id: uuid.UUID, warehouse: str, **fields: Any) -> None:
    cols = list(fields)
    sets = ", ".join(f"{c} = ${i + 3}{'::jsonb' if c == 'scanned' else ''}"
                     for i, c in enumerate(cols))
    values = [json.dumps(v) if c == "scanned" else v for c, v in fields.items()]
    await conn.execute(f"UPDATE picks SET {sets} WHERE order_id = $1 AND warehouse = $2",
                       order_id, warehouse, *values)


async def next_parcel_number(conn: Conn, lead: uuid.UUID) -> int:
    """Parcel ids are `P-{lead order}-{n}`: the lead order's parcels so far, plus one. Counted by
    the indexed order_id (a `LIKE` on the id scanned the whole table: milliseconds per pack after
    a few thousand parcels, and growing). Two packs of the lead order at once (an order split
    across warehouses, packed in two waves or by two operators) would count the same parcels: the
    first holds the order's parcel lock until it commits, and the second counts after it (a later
    statement, so a later snapshot)."""
    await xact_lock(conn, f"parcel:{lead}")
    n = await conn.fetchval("SELECT count(*) FROM parcels WHERE order_id = $1", lead)
    return int(n) + 1


async def link_parcel(conn: Conn, parcel_id: str, order_id: uuid.UUID,
                      lines: list[dict[str, Any]], wave_id: str | None) -> None:
    await conn.execute(
        "INSERT INTO parcel_orders (parcel_id, order_id, lines) VALUES ($1, $2, $3::jsonb)",
        parcel_id, order_id, json.dumps(lines))
    await conn.execute("UPDATE parcels SET wave_id = $2 WHERE parcel_id = $1", parcel_id, wave_id)


async def parcels_of_order(conn: Conn, order_id: uuid.UUID) -> list[asyncpg.Record]:
    return await conn.fetch(
        "SELECT p.*, po.lines AS own_lines FROM parcel_orders po JOIN parcels p USING (parcel_id)"
        " WHERE po.order_id = $1 ORDER BY p.parcel_id", order_id)


async def parcel_with_orders(conn: Conn | asyncpg.Pool, parcel_id: str
                             ) -> tuple[asyncpg.Record | None, list[asyncpg.Record]]:
    parcel = await conn.fetchrow("SELECT * FROM parcels WHERE parcel_id = $1", parcel_id)
    orders = await conn.fetch(
        "SELECT po.order_id, po.lines, o.order_key, o.snapshot FROM parcel_orders po"
        " JOIN orders o USING (order_id) WHERE po.parcel_id = $1 ORDER BY o.order_key", parcel_id)
    return parcel, orders


async def set_allocations(conn: Conn, order_id: uuid.UUID, allocations: list[dict[str, Any]]
                          ) -> None:
    await conn.execute("UPDATE orders SET allocations = $2::jsonb WHERE order_id = $1",
                       order_id, json.dumps(allocations))


async def cancel_picks(conn: Conn, order_id: uuid.UUID) -> list[str]:
    """Every pick not yet packed stops; the waves it was in, to close when nothing is left."""
    rows = await conn.fetch(
        "UPDATE picks SET status = 'cancelled' WHERE order_id = $1 AND status <> 'packed'"
        " RETURNING wave_id", order_id)
    return sorted({r["wave_id"] for r in rows if r["wave_id"]})
