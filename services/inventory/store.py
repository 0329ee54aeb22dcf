"""SQL for inventory's schema. Reservations are conditional updates guarded by CHECKs."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

import asyncpg

from shared.contracts import OrderSnapshot, ProductUpserted, StockAdjusted
from shared.db import Conn, Read, Row, xact_lock

from . import domain
from .domain import Balance, ExpectedReceipt, Line, Plan, Product, correction


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
    """`{warehouse: {sku: on_hand - reserved}}` for every active warehouse (a plan, not a
    promise): an inactive warehouse is never allocated from."""
    rows = await conn.fetch(
        "SELECT w.code AS warehouse, s.sku, coalesce(s.on_hand - s.reserved, 0) AS available"
        " FROM warehouses w LEFT JOIN stock s ON s.warehouse = w.code AND s.sku = ANY($1::text[])"
        " WHERE w.active", skus)
    out: dict[str, dict[str, int]] = {}
    for r in rows:
        out.setdefault(r["warehouse"], {})
        if r["sku"] is not None:
            out[r["warehouse"]][r["sku"]] = r["available"]
    return out


async def priorities(conn: Conn) -> dict[str, list[str]]:
    """Warehouse order per destination (handlers read it once per run: `uow.memo`)."""
    rows = await conn.fetch(
        "SELECT destination, warehouse FROM warehouse_priority ORDER BY destination, rank")
    out: dict[str, list[str]] = {}
    for r in rows:
        out.setdefault(r["destination"], []).append(r["warehouse"])
    return out


async def warehouses(conn: Conn) -> list[str]:
    """Every active warehouse's code, those allocation may use (handlers read it once per run:
    `uow.memo`)."""
    return [r["code"] for r in await conn.fetch(
        "SELECT code FROM warehouses WHERE active ORDER BY code")]


# --- a run of accepted orders: one statement per step, whatever the run's size ----------------
def known_orders_read(order_ids: list[uuid.UUID]) -> Read[dict[uuid.UUID, str]]:
    """The status of those of `order_ids` inventory already has, locked (in id order)."""
    return Read("SELECT order_id, status FROM orders WHERE order_id = ANY($1::uuid[])"
                " ORDER BY order_id FOR UPDATE", (order_ids,),
                lambda rows: {r["order_id"]: r["status"] for r in rows})


async def known_orders(conn: Conn, order_ids: list[uuid.UUID]) -> dict[uuid.UUID, str]:
    return await known_orders_read(order_ids).fetch(conn)


def lock_stock_read(skus: list[str], all_warehouses: list[str]
                    ) -> Read[dict[str, dict[str, int]]]:
    """Lock the stock rows of `skus` in SKU order (every instance takes them in the same order,
    so two runs reserving the same hot SKUs wait for each other instead of deadlocking) and
    return `{warehouse: {sku: on_hand - reserved}}` for every warehouse, as `available` does.
    Held until commit: what is decided against it is still true when it is written."""
    def shape(rows: list[Row]) -> dict[str, dict[str, int]]:
        out: dict[str, dict[str, int]] = {w: {} for w in all_warehouses}
        for r in rows:
            if r["warehouse"] in out:  # as `available`: only the active warehouses known
                out[r["warehouse"]][r["sku"]] = r["available"]
        return out
    return Read("SELECT sku, warehouse, on_hand - reserved AS available FROM stock"
                " WHERE sku = ANY($1::text[]) ORDER BY sku, warehouse FOR UPDATE", (skus,), shape)


@dataclass(frozen=True)
class Reservation:
    """One line of a plan to reserve: `quantity` of `sku` in `warehouse` for `order_id`."""

    order_id: uuid.UUID
    warehouse: str
    sku: str
    quantity: int
    event_id: uuid.UUID
    kind: str = "reserve"


def _summed(rows: list[Reservation]) -> tuple[list[str], list[str], list[int]]:
    """The rows' quantities summed per stock row, in (sku, warehouse) order: columns for unnest."""
    total: dict[tuple[str, str], int] = {}
    for r in rows:
        total[(r.sku, r.warehouse)] = total.get((r.sku, r.warehouse), 0) + r.quantity
    keys = sorted(total)
    return [k[0] for k in keys], [k[1] for k in keys], [total[k] for k in keys]


async def _ledger_many(conn: Conn, rows: list[Reservation], on_hand: int, reserved: int) -> None:
    """One ledger row per reservation line, in the order given: `on_hand` and `reserved` are
    the signs (-1, 0, 1) of its quantity in each delta."""
    await conn.execute(
        "INSERT INTO ledger (sku, warehouse, kind, on_hand_delta, reserved_delta, order_id,"
        " event_id) SELECT x.sku, x.warehouse, x.kind, $7 * x.q, $8 * x.q, x.order_id, x.event_id"
        " FROM unnest($1::text[], $2::text[], $3::text[], $4::int[], $5::uuid[], $6::uuid[])"
        " WITH ORDINALITY AS x(sku, warehouse, kind, q, order_id, event_id, n) ORDER BY x.n",
        [r.sku for r in rows], [r.warehouse for r in rows], [r.kind for r in rows],
        [r.quantity for r in rows], [r.order_id for r in rows], [r.event_id for r in rows],
        on_hand, reserved)


async def reserve_all(conn: Conn, reservations: list[Reservation]) -> None:
    """Reserve every line of the run's plans: one UPDATE of the balances (the quantities summed
    per row) and one INSERT of the ledger rows, in the order given. The plans were decided
    against rows the caller locked (`lock_stock_read`), so they fit; the CHECKs still guard (a run
    that would oversell fails whole and is handled again message by message)."""
    if not reservations:
        return
    skus, warehouses, quantities = _summed(reservations)
    updated = await conn.fetchval(
        "WITH u AS (UPDATE stock s SET reserved = s.reserved + x.q"
        " FROM unnest($1::text[], $2::text[], $3::int[]) AS x(sku, warehouse, q)"
        " WHERE s.sku = x.sku AND s.warehouse = x.warehouse RETURNING 1) SELECT count(*) FROM u",
        skus, warehouses, quantities)
    if updated != len(skus):
        raise StockGone(f"{len(skus) - updated} of the run's stock rows are gone")
    await _ledger_many(conn, reservations, 0, 1)


@dataclass
class NewOrder:
    """An order row as the run writes it (`insert_orders`)."""

    order_id: uuid.UUID
    order_key: str
    status: str
    snapshot: OrderSnapshot
    correlation_id: str | None
    at: datetime
    allocations: list[dict[str, Any]] = field(default_factory=list)
    short: list[Line] = field(default_factory=list)
    substitutes: dict[str, list[str]] = field(default_factory=dict)
    restock_eta: datetime | None = None
    continues: uuid.UUID | None = None
    trace: list[str] = field(default_factory=list)


async def insert_orders(conn: Conn, orders: list[NewOrder]) -> None:
    """The run's new orders in one statement, in the order given (see `insert_order` for `at`)."""
    if not orders:
        return
    await conn.execute(
        "INSERT INTO orders (order_id, order_key, status, snapshot, correlation_id, allocations,"
        " short_lines, substitutes, restock_eta, store, continues, trace, created_at)"
        " SELECT x.order_id, x.order_key, x.status, x.snapshot::jsonb, x.correlation_id,"
        " x.allocations::jsonb, x.short_lines::jsonb, x.substitutes::jsonb, x.restock_eta,"
        " split_part(x.order_key, ':', 1), x.continues, x.trace::jsonb, x.at"
        " FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[],"
        " $7::text[], $8::text[], $9::timestamptz[], $10::uuid[], $11::text[],"
        " $12::timestamptz[]) WITH ORDINALITY AS x(order_id, order_key, status, snapshot,"
        " correlation_id, allocations, short_lines, substitutes, restock_eta, continues, trace,"
        " at, n) ORDER BY x.n",
        [o.order_id for o in orders], [o.order_key for o in orders],
        [o.status for o in orders], [o.snapshot.model_dump_json() for o in orders],
        [o.correlation_id for o in orders], [json.dumps(o.allocations) for o in orders],
        [_lines(o.short) for o in orders], [json.dumps(o.substitutes) for o in orders],
        [o.restock_eta for o in orders], [o.continues for o in orders],
        [json.dumps(o.trace) for o in orders], [o.at for o in orders])


async def substitute_candidates_of(conn: Conn, categories: list[str]
                                   ) -> dict[str, tuple[list[Product], dict[str, int]]]:
    """`substitute_candidates` for several categories in one query."""
    rows = await conn.fetch(
        "SELECT * FROM (SELECT p.*, coalesce((SELECT max(s.on_hand - s.reserved) FROM stock s"
        " JOIN warehouses w ON w.code = s.warehouse AND w.active WHERE s.sku = p.sku), 0) AS best,"
        " row_number() OVER (PARTITION BY p.category) AS n FROM products p"
        " WHERE p.category = ANY($1::text[]) AND p.active) c WHERE n <= 200", categories)
    out: dict[str, tuple[list[Product], dict[str, int]]] = {c: ([], {}) for c in categories}
    for r in rows:
        found, best = out[r["category"]]
        found.append(_product(r))
        best[r["sku"]] = r["best"]
    return out


async def waiting_ahead_of(conn: Conn, skus: list[str],
                           places: list[tuple[datetime, uuid.UUID]]) -> list[dict[str, int]]:
    """`waiting_ahead` for several places in the queue at once (an order's `created_at` and id,
    the order need not be written yet): per place, the short units of the backorders before it."""
    rows = await conn.fetch(
        "SELECT p.n, l->>'sku' AS sku, sum((l->>'quantity')::int) AS q"
        " FROM unnest($2::timestamptz[], $3::uuid[]) WITH ORDINALITY AS p(at, order_id, n)"
        " JOIN orders o ON o.status = 'backordered' AND (o.created_at, o.order_id) <"
        " (p.at, p.order_id), jsonb_array_elements(o.short_lines) l"
        " WHERE l->>'sku' = ANY($1::text[]) GROUP BY 1, 2",
        skus, [p[0] for p in places], [p[1] for p in places])
    out: list[dict[str, int]] = [{} for _ in places]
    for r in rows:
        out[r["n"] - 1][r["sku"]] = int(r["q"])
    return out


async def reserve(conn: Conn, order_id: uuid.UUID, plan: Plan,
                  event_id: uuid.UUID, substituted: frozenset[str] = frozenset()) -> None:
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
            kind = "substitution" if ln.sku in substituted else "reserve"
            await _ledger(conn, ln.sku, warehouse, kind, 0, ln.quantity, order_id, event_id)


async def release(conn: Conn, order_id: uuid.UUID, allocations: list[dict[str, Any]],
                  event_id: uuid.UUID) -> None:
    for alloc in sorted(allocations, key=lambda a: a["warehouse"]):
        for ln in sorted(alloc["lines"], key=lambda x: x["sku"]):
            await conn.execute(
                "UPDATE stock SET reserved = reserved - $3 WHERE sku = $1 AND warehouse = $2",
                ln["sku"], alloc["warehouse"], ln["quantity"])
            await _ledger(conn, ln["sku"], alloc["warehouse"], "release", 0, -ln["quantity"],
                          order_id, event_id)


async def commit_all(conn: Conn, shipped: list[Reservation]) -> None:
    """Goods left the building, for a run of shipped orders: on_hand and reserved both go down.
    The rows are locked first in SKU order, as reserving locks them (two instances, or a run of
    reservations and a run of shipments, never lock in opposite orders); then one UPDATE of the
    balances (quantities summed per row) and one INSERT of the ledger rows, in the order given."""
    if not shipped:
        return
    skus, warehouses, quantities = _summed(shipped)
    await conn.execute(
        "SELECT 1 FROM stock s JOIN unnest($1::text[], $2::text[]) AS x(sku, warehouse)"
        " USING (sku, warehouse) ORDER BY s.sku, s.warehouse FOR UPDATE OF s", skus, warehouses)
    await conn.execute(
        "UPDATE stock s SET on_hand = s.on_hand - x.q, reserved = s.reserved - x.q"
        " FROM unnest($1::text[], $2::text[], $3::int[]) AS x(sku, warehouse, q)"
        " WHERE s.sku = x.sku AND s.warehouse = x.warehouse", skus, warehouses, quantities)
    await _ledger_many(conn, shipped, -1, -1)


async def set_orders_status(conn: Conn, order_ids: list[uuid.UUID], status: str) -> None:
    await conn.execute("UPDATE orders SET status = $2, updated_at = now()"
                       " WHERE order_id = ANY($1::uuid[])", order_ids, status)


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
    bal = Balance(row["on_hand"], row["reserved"])
    # The same rules as the ledger model the property tests exercise (domain.count/damage).
    move, drift = domain.count(bal, ev.quantity) if ev.kind == "counted" else domain.damage(
        bal, ev.quantity)
    kind, delta = move.kind, move.on_hand_delta
    await conn.execute("UPDATE stock SET on_hand = on_hand + $3 WHERE sku = $1 AND warehouse = $2",
                       ev.sku, ev.warehouse, delta)
    await _ledger(conn, ev.sku, ev.warehouse, kind, delta, 0, None, ev.event_id, ev.reference)
    return drift


async def _ledger(conn: Conn, sku: str, warehouse: str, kind: str, on_hand: int,
                  reserved: int, order_id: uuid.UUID | None, event_id: uuid.UUID | None,
                  reference: str | None = None, refurbished: int = 0,
                  units: int | None = None) -> None:
    await conn.execute(
        "INSERT INTO ledger (sku, warehouse, kind, on_hand_delta, reserved_delta, order_id,"
        " reference, event_id, refurbished_delta, units)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        sku, warehouse, kind, on_hand, reserved, order_id, reference, event_id, refurbished,
        units)


async def _locked_balance(conn: Conn, sku: str, warehouse: str) -> Balance:
    await conn.execute("INSERT INTO stock (sku, warehouse) VALUES ($1, $2) ON CONFLICT DO NOTHING",
                       sku, warehouse)
    row = await conn.fetchrow("SELECT on_hand, reserved, refurbished FROM stock WHERE sku = $1"
                              " AND warehouse = $2 FOR UPDATE", sku, warehouse)
    assert row is not None
    return Balance(row["on_hand"], row["reserved"], row["refurbished"])


async def move(conn: Conn, sku: str, warehouse: str, m: domain.Movement,
               order_id: uuid.UUID | None, event_id: uuid.UUID | None,
               reference: str | None = None) -> None:
    """Apply a movement the domain computed to the balance and the ledger, in one go. The
    CHECKs stand behind the domain's own checks."""
    await conn.execute(
        "UPDATE stock SET on_hand = on_hand + $3, reserved = reserved + $4,"
        " refurbished = refurbished + $5 WHERE sku = $1 AND warehouse = $2",
        sku, warehouse, m.on_hand_delta, m.reserved_delta, m.refurbished_delta)
    await _ledger(conn, sku, warehouse, m.kind, m.on_hand_delta, m.reserved_delta, order_id,
                  event_id, reference, m.refurbished_delta, m.units)


async def return_graded(conn: Conn, sku: str, warehouse: str, grade: str, qty: int,
                        order_id: uuid.UUID, event_id: uuid.UUID, reference: str) -> None:
    """`refurbish`: into the refurbished stock state; `scrap`: a write-off row, no balance."""
    bal = await _locked_balance(conn, sku, warehouse)
    m = domain.refurbish(bal, qty) if grade == "refurbish" else domain.scrap(bal, qty)
    await move(conn, sku, warehouse, m, order_id, event_id, reference)


async def write_off_short(conn: Conn, sku: str, warehouse: str, qty: int,
                          order_id: uuid.UUID, event_id: uuid.UUID, reference: str) -> None:
    """Units a picker did not find, out of an order's reservation and out of on_hand."""
    bal = await _locked_balance(conn, sku, warehouse)
    await move(conn, sku, warehouse, domain.shortage(bal, qty), order_id, event_id, reference)


# --- orders -----------------------------------------------------------------------------------
async def get_order(conn: Conn, order_id: uuid.UUID) -> asyncpg.Record | None:
    return await conn.fetchrow("SELECT * FROM orders WHERE order_id = $1 FOR UPDATE", order_id)


async def insert_order(conn: Conn, snap: OrderSnapshot | None, order_id: uuid.UUID,
                       order_key: str, status: str, correlation_id: str | None,
                       allocations: list[dict[str, Any]] | None = None,
                       short: list[Line] | None = None,
                       continues: uuid.UUID | None = None,
                       trace: list[str] | None = None, *, at: datetime) -> None:
    """The order as inventory first sees it (with its allocation trace, in the same round trip
    as a later `add_trace` would have taken). `at` is its place in the backorder queue (oldest
    first): the `occurred_at` of the event that brought it, not this transaction's clock, so
    the queue comes out the same when the events are handled again (after a restore, several
    orders in one transaction would all get the same `now()` and be ordered by id)."""
    await conn.execute(
        "INSERT INTO orders (order_id, order_key, status, snapshot, correlation_id, allocations,"
        " short_lines, store, continues, trace, created_at)"
        " VALUES ($1, $2, $3, $4::jsonb, $5, $6::jsonb, $7::jsonb, $8, $9, $10::jsonb, $11)",
        order_id, order_key, status, snap.model_dump_json() if snap else None, correlation_id,
        json.dumps(allocations or []), _lines(short or []), order_key.split(":", 1)[0],
        continues, json.dumps(trace or []), at)


async def set_snapshot(conn: Conn, order_id: uuid.UUID, snap: OrderSnapshot) -> None:
    await conn.execute("UPDATE orders SET snapshot = $2::jsonb WHERE order_id = $1",
                       order_id, snap.model_dump_json())


async def continuation_count(conn: Conn, order_id: uuid.UUID) -> int:
    return int(await conn.fetchval("SELECT count(*) FROM orders WHERE continues = $1",
                                   order_id))


async def continuations(conn: Conn, order_id: uuid.UUID) -> list[asyncpg.Record]:
    """The order's continuation orders ("ship what is there"), locked."""
    return await conn.fetch("SELECT * FROM orders WHERE continues = $1 ORDER BY created_at"
                            " FOR UPDATE", order_id)


async def set_short_warehouse(conn: Conn, order_id: uuid.UUID, warehouse: str) -> None:
    await conn.execute("UPDATE orders SET short_warehouse = $2 WHERE order_id = $1",
                       order_id, warehouse)


async def update_order(conn: Conn, order_id: uuid.UUID, status: str,
                       allocations: list[dict[str, Any]] | None = None,
                       short: list[Line] | None = None) -> None:
    await conn.execute(
        "UPDATE orders SET status = $2, allocations = coalesce($3::jsonb, allocations),"
        " short_lines = coalesce($4::jsonb, short_lines), updated_at = now() WHERE order_id = $1",
        order_id, status, json.dumps(allocations) if allocations is not None else None,
        _lines(short) if short is not None else None)


async def backordered(conn: Conn, skus: list[str] | None = None,
                      limit: int = 500, reallocating: bool = False) -> list[asyncpg.Record]:
    """Waiting orders (those needing one of `skus`, when given), oldest first, locked for this
    transaction; with `reallocating`, short-picked orders waiting for their missing units too.
    Callers hold `lock_refill`, so two instances never refill at once."""
    # The status test is a constant, not a parameter, so the planner can use the partial index
    # that matches it (orders_backordered, orders_waiting); a parameter hid it from a generic plan.
    statuses = "('backordered', 'reallocating')" if reallocating else "('backordered')"
    return await conn.fetch(
        f"SELECT * FROM orders WHERE status IN {statuses}"
        " AND ($1::text[] IS NULL OR EXISTS"
        " (SELECT 1 FROM jsonb_array_elements(snapshot->'lines') l WHERE l->>'sku' = ANY($1)))"
        " ORDER BY created_at, order_id LIMIT $2 FOR UPDATE", skus, limit)


# The serial lock of inventory's runs (shared/locks.py): a run whose handlers declare what they
# lock takes it shared, one that finds rows while running (a refill) exclusively, as does every
# other transaction that locks several orders or stock rows (`lock_refill`).
BACKORDERS_LOCK = "inventory:backorders"


async def lock_refill(conn: Conn) -> None:
    """Serialises everything that locks several backordered orders and stock rows (refill,
    expiry, decisions): taken first, it makes their lock order the same, so no deadlock, and
    keeps oldest-first true across instances. It is the run lock taken exclusively, so it also
    waits for the runs in flight (and the next ones wait for it): a consumer run that calls it
    must declare `locks=exclusive` (it already holds it then; from a run holding it shared, this
    would be an upgrade, which can deadlock). Released at commit."""
    await xact_lock(conn, BACKORDERS_LOCK)


async def order_by_key(conn: Conn, order_key: str) -> asyncpg.Record | None:
    return await conn.fetchrow("SELECT * FROM orders WHERE order_key = $1 ORDER BY created_at"
                               " DESC LIMIT 1 FOR UPDATE", order_key)


async def set_backorder(conn: Conn, order_id: uuid.UUID, short: list[Line],
                        substitutes: dict[str, list[str]], eta: datetime | None,
                        trace: list[str]) -> None:
    await conn.execute(
        "UPDATE orders SET short_lines = $2::jsonb, substitutes = $3::jsonb, restock_eta = $4,"
        " trace = trace || $5::jsonb, updated_at = now() WHERE order_id = $1",
        order_id, _lines(short), json.dumps(substitutes), eta, json.dumps(trace))


async def add_trace(conn: Conn, order_id: uuid.UUID, trace: list[str]) -> None:
    await conn.execute("UPDATE orders SET trace = trace || $2::jsonb WHERE order_id = $1",
                       order_id, json.dumps(trace))


async def set_decision(conn: Conn, order_id: uuid.UUID, decision: str,
                       substitutions: dict[str, str] | None = None,
                       difference: Decimal | None = None) -> None:
    await conn.execute(
        "UPDATE orders SET decision = $2, substitutions = coalesce($3::jsonb, substitutions),"
        " price_difference = coalesce($4, price_difference), updated_at = now()"
        " WHERE order_id = $1", order_id, decision,
        json.dumps(substitutions) if substitutions is not None else None, difference)


# --- policies, products, receipts -------------------------------------------------------------
@dataclass(frozen=True)
class Policy:
    split_allowed: bool
    split_penalty: float
    partial: str
    backorder_limit_s: int
    substitute_price_band: Decimal


def _policy(row: asyncpg.Record) -> Policy:
    return Policy(row["split_allowed"], float(row["split_penalty"]), row["partial"],
                  row["backorder_limit_s"], row["substitute_price_band"])


async def policy(conn: Conn, store: str) -> Policy:
    """A store's policy (or the '*' default)."""
    return (await policies(conn, [store]))[store]


async def policies(conn: Conn, stores: list[str]) -> dict[str, Policy]:
    """Each store's policy (or the '*' default), in one query."""
    rows = await conn.fetch("SELECT * FROM store_policies WHERE store = ANY($1::text[])"
                            " OR store = '*'", stores)
    by_store = {r["store"]: _policy(r) for r in rows}
    assert "*" in by_store, "the '*' policy row is created by migration 0002"
    return {s: by_store.get(s, by_store["*"]) for s in stores}


def _product(r: asyncpg.Record) -> Product:
    return Product(r["sku"], r["category"], r["price"], frozenset(r["attributes"]), r["active"])


async def products(conn: Conn, skus: list[str]) -> dict[str, Product]:
    rows = await conn.fetch("SELECT * FROM products WHERE sku = ANY($1::text[])", skus)
    return {r["sku"]: _product(r) for r in rows}


async def substitute_candidates(conn: Conn, category: str
                                ) -> tuple[list[Product], dict[str, int]]:
    """Active products of a category with their best availability in one active warehouse."""
    rows = await conn.fetch(
        "SELECT p.*, coalesce((SELECT max(s.on_hand - s.reserved) FROM stock s"
        " JOIN warehouses w ON w.code = s.warehouse AND w.active WHERE s.sku = p.sku), 0)"
        " AS best FROM products p WHERE p.category = $1 AND p.active LIMIT 200", category)
    return [_product(r) for r in rows], {r["sku"]: r["best"] for r in rows}


async def expected_receipts(conn: Conn, skus: list[str]) -> list[ExpectedReceipt]:
    rows = await conn.fetch("SELECT sku, quantity, eta FROM expected_receipts WHERE received_at"
                            " IS NULL AND sku = ANY($1::text[]) ORDER BY eta", skus)
    return [ExpectedReceipt(r["sku"], r["quantity"], r["eta"]) for r in rows]


async def waiting_ahead(conn: Conn, skus: list[str], order_id: uuid.UUID | None
                        ) -> dict[str, int]:
    """Short units of backorders older than `order_id` (all, when None): restock serves them
    first."""
    rows = await conn.fetch(
        "SELECT l->>'sku' AS sku, sum((l->>'quantity')::int) AS q FROM orders o,"
        " jsonb_array_elements(o.short_lines) l WHERE o.status = 'backordered'"
        " AND l->>'sku' = ANY($1::text[]) AND ($2::uuid IS NULL OR (o.created_at, o.order_id) <"
        " (SELECT created_at, order_id FROM orders WHERE order_id = $2)) GROUP BY 1",
        skus, order_id)
    return {r["sku"]: int(r["q"]) for r in rows}


async def expect_receipt(conn: Conn, sku: str, warehouse: str, quantity: int, eta: datetime,
                         reference: str | None) -> int:
    return int(await conn.fetchval(
        "INSERT INTO expected_receipts (sku, warehouse, quantity, eta, reference)"
        " VALUES ($1, $2, $3, $4, $5) RETURNING id", sku, warehouse, quantity, eta, reference))


async def close_expected(conn: Conn, ev: StockAdjusted) -> None:
    """A receipt arrived: the expected receipt it fulfils (same reference, else the earliest
    for the SKU and warehouse) is no longer expected."""
    await conn.execute(
        "UPDATE expected_receipts SET received_at = now() WHERE id = (SELECT id FROM"
        " expected_receipts WHERE received_at IS NULL AND sku = $1 AND warehouse = $2"
        " ORDER BY (reference IS NOT DISTINCT FROM $3) DESC, eta LIMIT 1)",
        ev.sku, ev.warehouse, ev.reference)


def _lines(lines: list[Line]) -> str:
    return json.dumps([{"sku": ln.sku, "quantity": ln.quantity} for ln in lines])


# --- operators --------------------------------------------------------------------------------
async def stock_of(pool: asyncpg.Pool, sku: str) -> list[dict[str, Any]]:
    rows = await pool.fetch("SELECT warehouse, on_hand, reserved, on_hand - reserved AS available,"
                            " refurbished FROM stock WHERE sku = $1 ORDER BY warehouse", sku)
    return [dict(r) for r in rows]


async def all_stock(pool: asyncpg.Pool, warehouse: str | None, limit: int
                    ) -> list[dict[str, Any]]:
    rows = await pool.fetch(
        "SELECT sku, warehouse, on_hand, reserved, on_hand - reserved AS available, refurbished"
        " FROM stock WHERE $1::text IS NULL OR warehouse = $1 ORDER BY sku, warehouse LIMIT $2",
        warehouse, limit)
    return [dict(r) for r in rows]


async def ledger_of(pool: asyncpg.Pool, sku: str, warehouse: str | None, limit: int
                    ) -> list[dict[str, Any]]:
    rows = await pool.fetch(
        "SELECT id, warehouse, kind, on_hand_delta, reserved_delta, refurbished_delta, units,"
        " order_id, reference, event_id, created_at FROM ledger WHERE sku = $1"
        " AND ($2::text IS NULL OR warehouse = $2)"
        " ORDER BY id LIMIT $3", sku, warehouse, limit)
    return [{**dict(r), "order_id": str(r["order_id"]) if r["order_id"] else None,
             "event_id": str(r["event_id"]) if r["event_id"] else None,
             "created_at": r["created_at"].isoformat()} for r in rows]


async def reconcile(conn: Conn, *, repair: bool = False,
                    sku: str | None = None) -> list[dict[str, Any]]:
    """Balances that differ from what the ledger adds up to (there should be none). With
    `repair`, each difference gets a `correction` ledger row (never an edit of old rows), taken
    under the stock row's lock so a concurrent movement cannot slip in between."""
    rows = await conn.fetch(
        "SELECT coalesce(s.sku, l.sku) AS sku, coalesce(s.warehouse, l.warehouse) AS warehouse,"
        " coalesce(s.on_hand, 0) AS on_hand, coalesce(s.reserved, 0) AS reserved,"
        " coalesce(s.refurbished, 0) AS refurbished,"
        " coalesce(l.on_hand, 0) AS ledger_on_hand, coalesce(l.reserved, 0) AS ledger_reserved,"
        " coalesce(l.refurbished, 0) AS ledger_refurbished"
        " FROM (SELECT * FROM stock WHERE $1::text IS NULL OR sku = $1) s"
        " FULL JOIN (SELECT sku, warehouse, sum(on_hand_delta) AS on_hand,"
        " sum(reserved_delta) AS reserved, sum(refurbished_delta) AS refurbished FROM ledger"
        " WHERE $1::text IS NULL OR sku = $1"
        " GROUP BY sku, warehouse) l ON l.sku = s.sku AND l.warehouse = s.warehouse"
        " WHERE coalesce(s.on_hand, 0) <> coalesce(l.on_hand, 0)"
        " OR coalesce(s.reserved, 0) <> coalesce(l.reserved, 0)"
        " OR coalesce(s.refurbished, 0) <> coalesce(l.refurbished, 0)"
        " ORDER BY 1, 2", sku)
    drift = [{**dict(r), "on_hand_drift": r["on_hand"] - r["ledger_on_hand"],
              "reserved_drift": r["reserved"] - r["ledger_reserved"],
              "refurbished_drift": r["refurbished"] - r["ledger_refurbished"]} for r in rows]
    if not repair:
        return drift
    repaired = []
    for d in drift:
        async with conn.transaction():
            bal = await conn.fetchrow("SELECT on_hand, reserved, refurbished FROM stock"
                                      " WHERE sku = $1 AND warehouse = $2 FOR UPDATE",
                                      d["sku"], d["warehouse"])
            sums = await conn.fetchrow(
                "SELECT coalesce(sum(on_hand_delta), 0) AS on_hand, coalesce(sum(reserved_delta),"
                " 0) AS reserved, coalesce(sum(refurbished_delta), 0) AS refurbished"
                " FROM ledger WHERE sku = $1 AND warehouse = $2",
                d["sku"], d["warehouse"])
            assert sums is not None
            fix = correction(Balance(bal["on_hand"], bal["reserved"], bal["refurbished"])
                             if bal else Balance(),
                             int(sums["on_hand"]), int(sums["reserved"]), int(sums["refurbished"]))
            if fix is None:
                continue  # a concurrent repair got there first
            await _ledger(conn, d["sku"], d["warehouse"], fix.kind, fix.on_hand_delta,
                          fix.reserved_delta, None, None, "reconciliation",
                          fix.refurbished_delta)
            repaired.append({**d, "repaired": True})
    return repaired


async def sales(conn: Conn, skus: list[str] | None = None) -> dict[str, tuple[int, int, int]]:
    """Per SKU: (available over all warehouses, units committed in 7 days, in 30 days). Sales
    are read by the hour (`sales_hourly`, migration 0006): a window's oldest hour counts whole,
    so a window is its days and up to an hour more. What a pass costs is the SKUs and their
    hours with sales, not every commit of the month."""
    rows = await conn.fetch(
        "SELECT s.sku, s.available, coalesce(h.sold_7d, 0) AS sold_7d,"
        " coalesce(h.sold_30d, 0) AS sold_30d"
        " FROM (SELECT sku, sum(on_hand - reserved) AS available FROM stock"
        "  WHERE $1::text[] IS NULL OR sku = ANY($1) GROUP BY sku) s"
        " LEFT JOIN (SELECT sku, sum(units) AS sold_30d, sum(units) FILTER (WHERE"
        "  hour >= date_trunc('hour', now() - interval '7 days', 'UTC')) AS sold_7d"
        "  FROM sales_hourly WHERE hour >= date_trunc('hour', now() - interval '30 days', 'UTC')"
        "  AND ($1::text[] IS NULL OR sku = ANY($1)) GROUP BY sku) h USING (sku)"
        " ORDER BY s.sku", skus)
    return {r["sku"]: (int(r["available"]), int(r["sold_7d"]), int(r["sold_30d"])) for r in rows}


async def low_states(conn: Conn) -> dict[str, bool]:
    """The low-stock state last recorded per SKU (`flip_low`)."""
    return {r["sku"]: r["low"] for r in await conn.fetch("SELECT sku, low FROM low_stock")}


async def lead_times(conn: Conn) -> dict[str, int]:
    return {r["sku"]: r["days"] for r in await conn.fetch("SELECT sku, days FROM lead_times")}


async def waiting_units(conn: Conn) -> dict[str, int]:
    rows = await conn.fetch(
        "SELECT l->>'sku' AS sku, sum((l->>'quantity')::int) AS q FROM orders,"
        " jsonb_array_elements(short_lines) l WHERE status = 'backordered' GROUP BY 1")
    return {r["sku"]: int(r["q"]) for r in rows}


async def flip_low(conn: Conn, states: dict[str, bool]) -> set[str]:
    """Record each SKU's low-stock state, in one statement; returns the SKUs whose state changed
    (an event is due for each)."""
    if not states:
        return set()
    skus = sorted(states)
    rows = await conn.fetch(
        "INSERT INTO low_stock (sku, low) SELECT * FROM unnest($1::text[], $2::boolean[])"
        " ON CONFLICT (sku) DO UPDATE SET low = EXCLUDED.low, changed_at = now()"
        " WHERE low_stock.low <> EXCLUDED.low RETURNING sku", skus, [states[k] for k in skus])
    return {r["sku"] for r in rows}


async def expired_backorders(conn: Conn, limit: int = 200, *, lock: bool = True
                             ) -> list[asyncpg.Record]:
    """Backordered orders older than their store's limit (its own policy, else '*'), oldest
    first, locked (`lock=False`: a look without locking, to know whether the expiry pass needs
    the backorders lock at all). Each store with a policy of its own is one range of
    `orders_backordered_by_store` ending at its limit; the other stores, one range of
    `orders_backordered` ending at the default's (migration 0007): what a look reads is what
    is due, not every order waiting for stock."""
    return await conn.fetch(
        "SELECT o.* FROM orders o WHERE o.order_id IN ("
        " SELECT d.order_id FROM store_policies p CROSS JOIN LATERAL (SELECT order_id FROM"
        "  orders WHERE status = 'backordered' AND store = p.store AND created_at < now()"
        "  - make_interval(secs => p.backorder_limit_s) ORDER BY created_at LIMIT $1) d"
        "  WHERE p.store <> '*'"
        " UNION ALL"
        " SELECT d.order_id FROM store_policies p CROSS JOIN LATERAL (SELECT order_id FROM"
        "  orders x WHERE status = 'backordered' AND created_at < now()"
        "  - make_interval(secs => p.backorder_limit_s) AND NOT EXISTS (SELECT 1 FROM"
        "  store_policies q WHERE q.store = x.store) ORDER BY created_at LIMIT $1) d"
        "  WHERE p.store = '*')"
        " ORDER BY o.created_at LIMIT $1" + (" FOR UPDATE OF o SKIP LOCKED" if lock else ""),
        limit)
