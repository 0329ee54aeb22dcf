"""SQL for fulfillment's schema."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Sequence
from typing import Any

import asyncpg

from shared.contracts import OrderSnapshot, ProductUpserted
from shared.db import Conn, Read, Row
from shared.uow import UnitOfWork

from .domain import DEFAULT_DIMS, DEFAULT_WEIGHT_G, Bin, Box, Item, NewPick, Reserved, units
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


async def products(uow: UnitOfWork, skus: Iterable[str]) -> dict[str, Item]:
    """Each SKU's weight, size and attributes for packing (defaults when the catalogue has not
    named it); the products are reference data, each SKU's cached across runs until `products`
    changes: one statement for all the SKUs not cached (none when they all are)."""
    async def load(missing: list[str]) -> dict[str, asyncpg.Record]:
        return {r["sku"]: r for r in await uow.conn.fetch(
            "SELECT * FROM products WHERE sku = ANY($1::text[])", missing)}
    wanted = set(skus)
    known = await uow.reference_rows(PRODUCTS, wanted, load, tables=("products",))
    out = {}
    for sku in wanted:
        r = known.get(sku)
        out[sku] = (Item(sku, r["weight_g"], tuple(r["dims"]), tuple(r["attributes"]))
                    if r else Item(sku, DEFAULT_WEIGHT_G, DEFAULT_DIMS))
    return out


async def items(uow: UnitOfWork, lines: list[tuple[str, int]]) -> list[Item]:
    """One Item per unit (`products`)."""
    known = await products(uow, (sku for sku, _ in lines))
    return units(lines, known)


async def boxes(uow: UnitOfWork) -> list[Box]:
    """The box catalogue, inactive boxes included (parcels packed in them still need their
    sizes; `domain.choose_boxes` skips them), cached across runs until `boxes` changes."""
    rows = await uow.reference(BOXES, lambda: uow.conn.fetch("SELECT * FROM boxes ORDER BY code"),
                               tables=("boxes",))
    return [Box(r["code"], (r["inner_l"], r["inner_w"], r["inner_h"]), r["tare_g"],
                r["max_weight_g"], r["active"]) for r in rows]


async def get_order(conn: Conn, order_id: uuid.UUID, *, lock: bool = True
                    ) -> asyncpg.Record | None:
    return await conn.fetchrow("SELECT * FROM orders WHERE order_id = $1"
                               + (" FOR UPDATE" if lock else ""), order_id)


# --- a run of reservations (handlers.stock_reserved): one statement each ----------------------

def order_statuses_read(order_ids: list[uuid.UUID]) -> Read[dict[str, str]]:
    """The orders of a run that fulfillment knows, locked in order_id order (two instances
    never lock them in opposite orders): order_id -> status."""
    return Read("SELECT order_id, status FROM orders WHERE order_id = ANY($1::uuid[])"
                " ORDER BY order_id FOR UPDATE", (order_ids,),
                lambda rows: {str(r["order_id"]): r["status"] for r in rows})


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


# What the wave pass looks at first, without a transaction (`warehouse.floor_now`): the
# picks waiting per warehouse, and the released waves with the seconds until they are due.
WAITING = ("SELECT warehouse, count(*) AS waiting,"
           " extract(epoch FROM now() - min(created_at))::float8 AS oldest_s"
           " FROM picks WHERE status = 'waiting' GROUP BY warehouse ORDER BY warehouse")
RELEASED = ("SELECT wave_id, extract(epoch FROM pick_due_at - now())::float8 AS due_in"
            " FROM waves WHERE status = 'released' ORDER BY created_at")


def waiting_read() -> Read[list[Row]]:
    return Read(WAITING, (), list)


def released_read() -> Read[list[Row]]:
    return Read(RELEASED, (), list)


async def waiting_summary(conn: Conn) -> list[Row]:
    return await waiting_read().fetch(conn)


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
    """A wave's picks (order, group) start: one statement for the picks (locked already, by
    `waiting_picks`), one for their orders."""
    await conn.execute(
        "UPDATE picks p SET wave_id = $2, group_id = v.g, status = 'picking'"
        " FROM unnest($3::uuid[], $4::text[]) AS v(id, g)"
        " WHERE p.order_id = v.id AND p.warehouse = $1",
        warehouse, wave_id, [o for o, _ in groups], [g for _, g in groups])
    await conn.execute("UPDATE orders SET status = 'picking', updated_at = now()"
                       " WHERE order_id = ANY($1::uuid[]) AND status = 'awaiting_pick'",
                       [order_id for order_id, _ in groups])


async def get_wave(conn: Conn, wave_id: str) -> asyncpg.Record | None:
    return await conn.fetchrow("SELECT * FROM waves WHERE wave_id = $1", wave_id)


async def wave_picks(conn: Conn, wave_id: str) -> list[asyncpg.Record]:
    """A wave's picks, to show (a plain read: the floor's steps lock through `lock_orders`)."""
    return await conn.fetch(
        "SELECT p.*, o.order_key, o.snapshot FROM picks p JOIN orders o USING (order_id)"
        " WHERE p.wave_id = $1 ORDER BY p.seq", wave_id)


async def close_wave_if_done(conn: Conn, wave_id: str) -> None:
    await conn.execute(
        "UPDATE waves SET status = 'done' WHERE wave_id = $1 AND status = 'released'"
        " AND NOT EXISTS (SELECT 1 FROM picks WHERE wave_id = $1"
        " AND status IN ('picking', 'verified', 'weighed', 'on_hold'))", wave_id)


async def order_picks(conn: Conn, order_id: uuid.UUID) -> list[asyncpg.Record]:
    """An order's picks, a plain read (a warehouse step finds its pick with it, then locks
    through `lock_orders` and `lock_picks`: orders first, as every step does)."""
    return await conn.fetch("SELECT * FROM picks WHERE order_id = $1 ORDER BY warehouse",
                            order_id)


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


# --- the floor (warehouse.Floor): read under lock, decide in memory, write once per table -----

FLOOR_ORDERS = "SELECT order_id, order_key, status, snapshot, correlation_id FROM orders"


async def lock_orders(conn: Conn, order_ids: Sequence[uuid.UUID]) -> list[asyncpg.Record]:
    """Orders, locked in order_id order (as `order_statuses`: every transaction that locks
    several orders locks them in that order, and before their picks, so none waits in a
    cycle)."""
    return await conn.fetch(f"{FLOOR_ORDERS} WHERE order_id = ANY($1::uuid[])"
                            " ORDER BY order_id FOR UPDATE", list(order_ids))


async def lock_wave_orders(conn: Conn, wave_id: str, group_id: str | None = None
                           ) -> list[asyncpg.Record]:
    """The orders with a pick in the wave (in its merge group `group_id`, if given), locked in
    order_id order. A pick joins a wave only when the wave is released, so the set is fixed."""
    return await conn.fetch(
        f"{FLOOR_ORDERS} WHERE order_id IN (SELECT order_id FROM picks WHERE wave_id = $1"
        " AND ($2::text IS NULL OR group_id = $2)) ORDER BY order_id FOR UPDATE",
        wave_id, group_id)


async def lock_picks(conn: Conn, order_ids: Sequence[uuid.UUID]) -> list[asyncpg.Record]:
    """Every pick of these orders, in every warehouse, locked in arrival (seq) order, as a
    release locks the waiting picks it waves; the caller holds the orders' locks, which is what
    keeps two steps on one order apart (every writer of a pick in a wave takes its order's lock
    first)."""
    return await conn.fetch(
        "SELECT order_id, warehouse, seq, lines, wave_id, group_id, status, scanned, expected_g,"
        " measured_g FROM picks WHERE order_id = ANY($1::uuid[]) ORDER BY seq FOR UPDATE",
        list(order_ids))


async def lock_parcel_numbers(conn: Conn, leads: Sequence[uuid.UUID]) -> None:
    """Each lead order's parcel lock (`parcel:<order>`), held until commit, taken in one
    statement in sorted order. Parcel ids are `P-{lead}-{n}`, n counting on from the lead's
    parcels: two packs of one lead at once (an order split across warehouses, packed by two
    waves or by a wave and a person) would count the same parcels, so each counts
    (`parcels_led`, a later statement and so a later snapshot) only once it holds the lock."""
    await conn.execute(
        "SELECT pg_advisory_xact_lock(hashtext(k)) FROM (SELECT k FROM unnest($1::text[]) AS k"
        " ORDER BY k) AS sorted", sorted({f"parcel:{lead}" for lead in leads}))


async def parcels_led(conn: Conn, leads: Sequence[uuid.UUID]) -> dict[uuid.UUID, int]:
    """How many parcels each lead order has (by the indexed order_id: a `LIKE` on the id
    scanned the whole table). Call it holding `lock_parcel_numbers`."""
    rows = await conn.fetch("SELECT order_id, count(*) AS n FROM parcels"
                            " WHERE order_id = ANY($1::uuid[]) GROUP BY order_id", list(leads))
    return {r["order_id"]: int(r["n"]) for r in rows}


async def parcel_links(conn: Conn, order_ids: Sequence[uuid.UUID]) -> list[asyncpg.Record]:
    """The parcels these orders are in already (a split order's other warehouses), each with
    the order it is linked to (`linked`) and that order's own lines in it."""
    return await conn.fetch(
        "SELECT po.order_id AS linked, po.lines AS own_lines, p.parcel_id, p.warehouse, p.box,"
        " p.weight_g, p.lines FROM parcel_orders po JOIN parcels p USING (parcel_id)"
        " WHERE po.order_id = ANY($1::uuid[])", list(order_ids))


async def save_picks(conn: Conn, picks: Sequence[tuple[uuid.UUID, str, str, dict[str, int],
                                                      int | None, int | None]]) -> None:
    """Picks (order, warehouse, status, scanned, expected_g, measured_g) as a step left them."""
    await conn.execute(
        "UPDATE picks p SET status = v.status, scanned = v.scanned::jsonb, expected_g = v.e,"
        " measured_g = v.m FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[],"
        " $5::int[], $6::int[]) AS v(id, wh, status, scanned, e, m)"
        " WHERE p.order_id = v.id AND p.warehouse = v.wh",
        [p[0] for p in picks], [p[1] for p in picks], [p[2] for p in picks],
        [json.dumps(p[3]) for p in picks], [p[4] for p in picks], [p[5] for p in picks])


async def set_statuses(conn: Conn, orders: Sequence[tuple[uuid.UUID, str]]) -> None:
    await conn.execute(
        "UPDATE orders o SET status = v.status, updated_at = now()"
        " FROM unnest($1::uuid[], $2::text[]) AS v(id, status) WHERE o.order_id = v.id",
        [o for o, _ in orders], [s for _, s in orders])


async def insert_parcels(conn: Conn, parcels: Sequence[tuple[str, uuid.UUID, str, str, int,
                                                            list[dict[str, Any]], str | None]]
                         ) -> None:
    """Parcels (id, lead order, warehouse, box, weight, lines, wave)."""
    await conn.execute(
        "INSERT INTO parcels (parcel_id, order_id, warehouse, box, weight_g, lines, wave_id)"
        " SELECT id, lead, wh, box, w, lines::jsonb, wave FROM unnest($1::text[], $2::uuid[],"
        " $3::text[], $4::text[], $5::int[], $6::text[], $7::text[])"
        " AS v(id, lead, wh, box, w, lines, wave)",
        [p[0] for p in parcels], [p[1] for p in parcels], [p[2] for p in parcels],
        [p[3] for p in parcels], [p[4] for p in parcels], [json.dumps(p[5]) for p in parcels],
        [p[6] for p in parcels])


async def link_parcels(conn: Conn, links: Sequence[tuple[str, uuid.UUID, list[dict[str, Any]]]]
                       ) -> None:
    """Each parcel's orders (parcel, order, that order's own lines in it, maybe none)."""
    await conn.execute(
        "INSERT INTO parcel_orders (parcel_id, order_id, lines)"
        " SELECT id, o, lines::jsonb FROM unnest($1::text[], $2::uuid[], $3::text[])"
        " AS v(id, o, lines)",
        [p for p, _, _ in links], [o for _, o, _ in links],
        [json.dumps(lines) for _, _, lines in links])
