"""SQL for intake's schema."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import asyncpg

from shared.contracts import CoverageChanged, OrderPlaced, ProductUpserted
from shared.db import Conn, Read, Row
from shared.money import in_units
from shared.uow import UnitOfWork

from . import domain
from .domain import CENT, BlockedEntry, Policy, PriorOrder, Product, Promotion


def stored_order(payload: str | bytes) -> OrderPlaced:
    """An order as intake stored it (`orders.payload`). Orders received before `placed_at` had
    to carry an offset (docs/contract.md) may have been stored without one: it is read as UTC,
    as it was then, so holds, re-reviews and dry runs over old orders keep working."""
    data = json.loads(payload)
    placed = data.get("placed_at")
    if isinstance(placed, str):
        try:
            parsed = datetime.fromisoformat(placed)
        except ValueError:
            parsed = None
        if parsed is not None and parsed.tzinfo is None:
            data["placed_at"] = parsed.replace(tzinfo=UTC).isoformat()
            return OrderPlaced.model_validate_json(json.dumps(data))
    return OrderPlaced.model_validate_json(payload)


async def find_order(conn: Conn, store: str, ext: str) -> asyncpg.Record | None:
    return await conn.fetchrow(
        "SELECT * FROM orders WHERE store = $1 AND external_order_id = $2 FOR UPDATE", store, ext
    )


def find_orders_read(keys: list[tuple[str, str]]) -> Read[dict[tuple[str, str], Row]]:
    """The orders intake holds among `keys` ((store, external_order_id)), locked in key order
    (two runs lock the same orders in the same order: no deadlock)."""
    if not keys:
        return Read.known({})
    return Read(
        "SELECT o.* FROM orders o JOIN unnest($1::text[], $2::text[]) AS k(store, ext)"
        " ON o.store = k.store AND o.external_order_id = k.ext"
        " ORDER BY o.store, o.external_order_id FOR UPDATE OF o",
        ([k[0] for k in keys], [k[1] for k in keys]),
        lambda rows: {(r["store"], r["external_order_id"]): r for r in rows})


async def get_order(conn: Conn, order_id: uuid.UUID) -> asyncpg.Record | None:
    return await conn.fetchrow("SELECT * FROM orders WHERE order_id = $1 FOR UPDATE", order_id)


async def insert_order(conn: Conn, order_id: uuid.UUID, order: OrderPlaced | None,
                       store: str, ext: str, status: str, reasons: list[tuple[str, str]]) -> bool:
    """Insert once per (store, external_order_id); False when the order already exists."""
    row = await conn.fetchval(
        "INSERT INTO orders (order_id, store, external_order_id, customer_id, status, reasons,"
        " payload, grand_total, currency, payment_status, address_key, items_key)"
        " VALUES ($1, $2, $3, $4, $5, $6::jsonb, $7::jsonb, $8, $9, $10, $11, $12)"
        " ON CONFLICT (store, external_order_id) DO NOTHING RETURNING 1",
        order_id, store, ext, order.customer.id if order else None, status,
        _reasons(reasons), order.model_dump_json() if order else None,
        order.totals.grand_total if order else None, order.currency if order else None,
        order.payment.status if order else None,
        domain.address_key(order) if order else None, domain.items_key(order) if order else None,
    )
    return row is not None


async def set_status(conn: Conn, order_id: uuid.UUID, status: str,
                     reasons: list[tuple[str, str]]) -> None:
    await conn.execute(
        "UPDATE orders SET status = $2, reasons = $3::jsonb, updated_at = now()"
        " WHERE order_id = $1", order_id, status, _reasons(reasons))


async def mark_shipped(conn: Conn, order_ids: list[uuid.UUID]) -> None:
    """The orders have shipped (some parcel of theirs): one statement for a run's shipments,
    rows locked in id order."""
    await conn.execute("UPDATE orders SET shipped = true, updated_at = now()"
                       " WHERE order_id = ANY($1::uuid[])", sorted(set(order_ids)))


def order_row(order_id: uuid.UUID, order: OrderPlaced | None, store: str, ext: str, status: str,
              reasons: list[tuple[str, str]]) -> tuple[Any, ...]:
    """One row for `insert_orders`, in its column order."""
    return (order_id, store, ext, order.customer.id if order else None, status,
            _reasons(reasons), order.model_dump_json() if order else None,
            order.totals.grand_total if order else None, order.currency if order else None,
            order.payment.status if order else None,
            domain.address_key(order) if order else None,
            domain.items_key(order) if order else None)


async def insert_orders(conn: Conn, rows: list[tuple[Any, ...]]) -> set[uuid.UUID]:
    """Insert many orders (rows from `order_row`) in one statement, once per (store,
    external_order_id); returns the ids inserted (an order already there is left as it is)."""
    if not rows:
        return set()
    cols = list(zip(*rows, strict=True))
    inserted = await conn.fetch(
        "INSERT INTO orders (order_id, store, external_order_id, customer_id, status, reasons,"
        " payload, grand_total, currency, payment_status, address_key, items_key)"
        " SELECT o.order_id, o.store, o.ext, o.customer_id, o.status, o.reasons::jsonb,"
        " o.payload::jsonb, o.grand_total, o.currency, o.payment_status, o.address_key,"
        " o.items_key FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[],"
        " $6::text[], $7::text[], $8::numeric[], $9::text[], $10::text[], $11::text[],"
        " $12::text[]) WITH ORDINALITY AS o(order_id, store, ext, customer_id, status, reasons,"
        " payload, grand_total, currency, payment_status, address_key, items_key, n)"
        " ORDER BY o.n ON CONFLICT (store, external_order_id) DO NOTHING RETURNING order_id",
        *(list(c) for c in cols))
    return {r["order_id"] for r in inserted}


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


def products_read(skus: list[str]) -> Read[dict[str, Product]]:
    def shape(rows: list[Row]) -> dict[str, Product]:
        return {r["sku"]: Product(r["sku"], r["active"], r["category"], r["price"],
                                  tuple(r["attributes"])) for r in rows}
    return Read("SELECT * FROM products WHERE sku = ANY($1::text[])", (skus,), shape)


async def get_product(conn: Conn | asyncpg.Pool, sku: str) -> asyncpg.Record | None:
    return await conn.fetchrow("SELECT * FROM products WHERE sku = $1", sku)


async def set_coverage(uow: UnitOfWork, c: CoverageChanged) -> None:
    uow.forget(COVERAGE)
    await uow.conn.execute(
        "INSERT INTO coverage (id, countries, refused_attributes, occurred_at)"
        " VALUES (1, $1, $2::jsonb, $3) ON CONFLICT (id) DO UPDATE SET"
        " countries = EXCLUDED.countries, refused_attributes = EXCLUDED.refused_attributes,"
        " occurred_at = EXCLUDED.occurred_at WHERE coverage.occurred_at <= EXCLUDED.occurred_at",
        c.countries, json.dumps(c.refused_attributes), c.occurred_at,
    )


COVERAGE = "intake.coverage"  # memo key of logistics' coverage (uow.memo)
POLICIES = "intake.policy"    # memo key of the store policies


@dataclass(frozen=True)
class Coverage:
    """What intake knows of logistics' coverage: the countries served (None: not heard yet) and,
    per country, the attributes of goods no carrier takes there."""

    served: set[str] | None
    refused_attributes: dict[str, list[str]]


async def load_coverage(conn: Conn | asyncpg.Pool) -> Coverage:
    row = await conn.fetchrow("SELECT countries, refused_attributes FROM coverage WHERE id = 1")
    return Coverage(set(row["countries"]) if row is not None else None,
                    json.loads(row["refused_attributes"])
                    if row and row["refused_attributes"] else {})


async def coverage(uow: UnitOfWork) -> Coverage:
    """Logistics' coverage (reference data, cached across runs until `coverage` changes)."""
    return await uow.reference(COVERAGE, lambda: load_coverage(uow.conn), tables=("coverage",))


def promotions_read(codes: list[str]) -> Read[dict[str, Promotion]]:
    if not codes:
        return Read.known({})
    return Read("SELECT * FROM promotions WHERE code = ANY($1::text[])",
                ([c.upper() for c in codes],),
                lambda rows: {r["code"]: _promotion(r) for r in rows})


async def promotions(conn: Conn, codes: list[str]) -> dict[str, Promotion]:
    return await promotions_read(codes).fetch(conn)


def _promotion(r: asyncpg.Record | Row) -> Promotion:
    return Promotion(r["code"], r["kind"], promotion_value(r["kind"], r["value"], r["currency"]),
                     in_units(r["min_spend"], r["currency"]), r["starts_at"],
                     r["ends_at"], r["active"], frozenset(r["scope_skus"]),
                     frozenset(r["scope_categories"]), r["stackable"], r["per_customer_limit"],
                     r["currency"])


def promotion_value(kind: str, value: Decimal, currency: str) -> Decimal:
    """A promotion's value as kept and shown: a percent with two decimals ("10.00"), a fixed
    amount in its currency's minor unit ("5.00" USD, "500" JPY, "1.125" KWD)."""
    return value.quantize(CENT, ROUND_HALF_UP) if kind == "percent" else in_units(value, currency)


async def promotion_rows(conn: Conn | asyncpg.Pool) -> list[Promotion]:
    """Every promotion, by code."""
    return [_promotion(r) for r in await conn.fetch("SELECT * FROM promotions ORDER BY code")]


async def all_promotions(conn: Conn | asyncpg.Pool) -> list[dict[str, Any]]:
    return [promotion_dict(p) for p in await promotion_rows(conn)]


def promotion_dict(p: Promotion) -> dict[str, Any]:
    return {"code": p.code, "kind": p.kind, "value": str(p.value), "min_spend": str(p.min_spend),
            "starts_at": p.starts_at.isoformat() if p.starts_at else None,
            "ends_at": p.ends_at.isoformat() if p.ends_at else None, "active": p.active,
            "scope_skus": sorted(p.scope_skus), "scope_categories": sorted(p.scope_categories),
            "stackable": p.stackable, "per_customer_limit": p.per_customer_limit,
            "currency": p.currency}


async def upsert_promotion(conn: Conn, p: Promotion) -> None:
    await conn.execute(
        "INSERT INTO promotions (code, kind, value, min_spend, starts_at, ends_at, active,"
        " scope_skus, scope_categories, stackable, per_customer_limit, currency)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"
        " ON CONFLICT (code) DO UPDATE SET"
        " kind = EXCLUDED.kind, value = EXCLUDED.value, min_spend = EXCLUDED.min_spend,"
        " starts_at = EXCLUDED.starts_at, ends_at = EXCLUDED.ends_at, active = EXCLUDED.active,"
        " scope_skus = EXCLUDED.scope_skus, scope_categories = EXCLUDED.scope_categories,"
        " stackable = EXCLUDED.stackable, per_customer_limit = EXCLUDED.per_customer_limit,"
        " currency = EXCLUDED.currency",
        p.code, p.kind, p.value, p.min_spend, p.starts_at, p.ends_at, p.active,
        sorted(p.scope_skus), sorted(p.scope_categories), p.stackable, p.per_customer_limit,
        p.currency)


POLICY_COLUMNS = ("high_value_threshold", "high_value_currency", "high_value_action",
                   "duplicate_window_minutes", "merge_window_minutes", "hold_pending_payment",
                   "invalid_promo_action", "restricted_goods_action", "hold_sla_minutes",
                   "price_tolerance_percent")


def _policy(row: asyncpg.Record) -> Policy:
    return Policy(**{c: row[c] for c in POLICY_COLUMNS})


async def policy(uow: UnitOfWork, store: str) -> Policy:
    """The store's policy (its own, else the default '*'); the policies are reference data,
    cached across runs until `store_policies` changes."""
    found = await uow.reference(POLICIES, lambda: policies(uow.conn), tables=("store_policies",))
    return found.get(store, found["*"])


async def policies(conn: Conn | asyncpg.Pool) -> dict[str, Policy]:
    """Every store's policy; '*' is the default for stores without their own."""
    rows = await conn.fetch("SELECT * FROM store_policies")
    found = {r["store"]: _policy(r) for r in rows}
    found.setdefault("*", Policy())
    return found


async def put_policy(uow: UnitOfWork, store: str, p: Policy) -> None:
    """Create or replace a store's policy (the setup kind `review_policies`, kinds.py; who
    changed it is in `setup_audit`)."""
    cols = ", ".join(POLICY_COLUMNS)
    params = ", ".join(f"${i + 2}" for i in range(len(POLICY_COLUMNS)))
    updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in POLICY_COLUMNS)
    uow.forget(POLICIES)
    await uow.conn.execute(
        f"INSERT INTO store_policies (store, {cols}) VALUES ($1, {params})"
        f" ON CONFLICT (store) DO UPDATE SET {updates}, updated_at = now()",
        store, *[getattr(p, c) for c in POLICY_COLUMNS])


async def block(conn: Conn, kind: str, value: str, action: str, note: str | None,
                actor: str) -> None:
    await conn.execute(
        "INSERT INTO blocked_customers (kind, value, action, note, created_by)"
        " VALUES ($1, $2, $3, $4, $5) ON CONFLICT (kind, value) DO UPDATE SET"
        " action = EXCLUDED.action, note = EXCLUDED.note, created_by = EXCLUDED.created_by,"
        " created_at = now()", kind, value, action, note, actor)


async def unblock(conn: Conn, kind: str, value: str) -> bool:
    done = await conn.execute("DELETE FROM blocked_customers WHERE kind = $1 AND value = $2",
                              kind, value)
    return bool(done.endswith(" 1"))


async def blocked_list(conn: Conn | asyncpg.Pool) -> list[dict[str, Any]]:
    rows = await conn.fetch("SELECT * FROM blocked_customers ORDER BY created_at")
    return [{**dict(r), "created_at": r["created_at"].isoformat()} for r in rows]


async def update_payload(conn: Conn, order_id: uuid.UUID, order: OrderPlaced) -> None:
    """A re-sent order replaces what intake holds of it (same order id, same order)."""
    await conn.execute(
        "UPDATE orders SET payload = $2::jsonb, customer_id = $3, grand_total = $4,"
        " currency = $5, payment_status = $6, address_key = $7, items_key = $8,"
        " updated_at = now() WHERE order_id = $1",
        order_id, order.model_dump_json(), order.customer.id, order.totals.grand_total,
        order.currency, order.payment.status, domain.address_key(order), domain.items_key(order))


# --- holds, decisions, audit ------------------------------------------------------------------

async def open_hold(conn: Conn, order_id: uuid.UUID, store: str,
                    reasons: list[tuple[str, str]], sla_seconds: int) -> None:
    """Open the order's hold, or update the reasons of the one already open (its created time,
    owner and SLA clock stay: the order has been waiting since then)."""
    await conn.execute(
        "INSERT INTO holds (order_id, store, codes, reasons, sla_seconds)"
        " VALUES ($1, $2, $3, $4::jsonb, $5)"
        " ON CONFLICT (order_id) WHERE closed_at IS NULL DO UPDATE SET"
        " codes = EXCLUDED.codes, reasons = EXCLUDED.reasons",
        order_id, store, sorted({c for c, _ in reasons}), _reasons(reasons), sla_seconds)


async def close_hold(conn: Conn, order_id: uuid.UUID, resolution: str, by: str
                     ) -> asyncpg.Record | None:
    return await conn.fetchrow(
        "UPDATE holds SET closed_at = now(), resolution = $2, closed_by = $3"
        " WHERE order_id = $1 AND closed_at IS NULL"
        " RETURNING codes, extract(epoch FROM now() - created_at)::float8 AS age_seconds",
        order_id, resolution, by)


async def claim_hold(conn: Conn, order_id: uuid.UUID, owner: str) -> bool:
    done = await conn.execute(
        "UPDATE holds SET owner = $2 WHERE order_id = $1 AND closed_at IS NULL", order_id, owner)
    return bool(done.endswith(" 1"))


async def open_hold_order_ids(conn: Conn, codes: list[str] | None = None,
                              store: str | None = None, limit: int = 500) -> list[uuid.UUID]:
    rows = await conn.fetch(
        "SELECT order_id FROM holds WHERE closed_at IS NULL"
        " AND ($1::text[] IS NULL OR codes && $1) AND ($2::text IS NULL OR store = $2)"
        " ORDER BY order_id LIMIT $3", codes, store, limit)
    return [r["order_id"] for r in rows]


async def hold_stats(pool: asyncpg.Pool) -> tuple[int, float]:
    row = await pool.fetchrow(
        "SELECT count(*) AS n, coalesce(extract(epoch FROM now() - min(created_at)), 0)::float8 AS oldest"
        " FROM holds WHERE closed_at IS NULL")
    assert row is not None
    return int(row["n"]), float(row["oldest"])


async def mark_sla_breaches(pool: asyncpg.Pool) -> list[asyncpg.Record]:
    """Holds that just outlived their SLA, each returned once (any instance may ask)."""
    return await pool.fetch(
        "UPDATE holds SET sla_breached_at = now() WHERE closed_at IS NULL"
        " AND sla_breached_at IS NULL AND created_at + sla_seconds * interval '1 second' < now()"
        " RETURNING order_id, store, codes, sla_seconds,"
        " extract(epoch FROM now() - created_at)::float8 AS age_seconds")


async def insert_decision(conn: Conn, order_id: uuid.UUID, trigger: str, status: str,
                          reasons: list[tuple[str, str]], rules: list[dict[str, Any]],
                          policy: dict[str, Any]) -> None:
    await conn.execute(
        "INSERT INTO decisions (order_id, trigger, status, reasons, rules, policy)"
        " VALUES ($1, $2, $3, $4::jsonb, $5::jsonb, $6::jsonb)",
        order_id, trigger, status, _reasons(reasons), json.dumps(rules), json.dumps(policy))


async def decisions(conn: Conn | asyncpg.Pool, order_id: uuid.UUID) -> list[dict[str, Any]]:
    rows = await conn.fetch("SELECT * FROM decisions WHERE order_id = $1 ORDER BY decision_id",
                            order_id)
    return [{"decided_at": r["decided_at"].isoformat(), "trigger": r["trigger"],
             "status": r["status"], "reasons": json.loads(r["reasons"]),
             "rules": json.loads(r["rules"]), "policy": json.loads(r["policy"])} for r in rows]


async def audit(conn: Conn, order_id: uuid.UUID | None, actor: str, action: str,
                note: str | None, details: dict[str, Any] | None = None) -> None:
    await conn.execute(
        "INSERT INTO audit (order_id, actor, action, note, details) VALUES ($1, $2, $3, $4,"
        " $5::jsonb)", order_id, actor, action, note, json.dumps(details or {}))


async def audit_of(conn: Conn | asyncpg.Pool, order_id: uuid.UUID) -> list[dict[str, Any]]:
    rows = await conn.fetch("SELECT * FROM audit WHERE order_id = $1 ORDER BY audit_id", order_id)
    return [{"at": r["at"].isoformat(), "actor": r["actor"], "action": r["action"],
             "note": r["note"], "details": json.loads(r["details"])} for r in rows]


async def recent_orders(pool: asyncpg.Pool, limit: int) -> list[asyncpg.Record]:
    return await pool.fetch(
        "SELECT order_id, store, external_order_id, status, payload, received_at FROM orders"
        " WHERE payload IS NOT NULL ORDER BY received_at DESC LIMIT $1", limit)


async def remember_early_cancel(conn: Conn, store: str, ext: str, reason: str | None,
                                event: str) -> None:
    """Park a cancellation whose order has not arrived (`event`: the cancellation as JSON); the
    first one kept wins (a re-sent cancellation changes nothing)."""
    await conn.execute(
        "INSERT INTO early_cancellations (store, external_order_id, reason, event)"
        " VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING", store, ext, reason, event)


async def holds(pool: asyncpg.Pool, *, reason: str | None = None, store: str | None = None,
                min_age_seconds: float | None = None, limit: int = 100) -> list[dict[str, Any]]:
    """Open holds, oldest first, filtered by reason code, store and minimum age."""
    rows = await pool.fetch(
        "SELECT h.order_id, o.store, o.external_order_id, o.customer_id, h.reasons, h.codes,"
        " h.owner, h.created_at, h.sla_seconds, h.sla_breached_at, o.grand_total, o.currency,"
        " o.received_at, extract(epoch FROM now() - h.created_at)::float8 AS age_seconds"
        " FROM holds h JOIN orders o USING (order_id) WHERE h.closed_at IS NULL"
        " AND ($1::text IS NULL OR $1 = ANY(h.codes)) AND ($2::text IS NULL OR o.store = $2)"
        " AND ($3::float8 IS NULL OR h.created_at <= now() - $3 * interval '1 second')"
        " ORDER BY h.created_at LIMIT $4", reason, store, min_age_seconds, limit)
    return [{"order_id": str(r["order_id"]), "store": r["store"],
             "external_order_id": r["external_order_id"], "customer_id": r["customer_id"],
             "reasons": json.loads(r["reasons"]), "codes": list(r["codes"]), "owner": r["owner"],
             "created_at": r["created_at"].isoformat(), "received_at": r["received_at"].isoformat(),
             "age_seconds": round(float(r["age_seconds"]), 1), "sla_seconds": r["sla_seconds"],
             "sla_breached": r["sla_breached_at"] is not None,
             "grand_total": str(r["grand_total"]) if r["grand_total"] is not None else None,
             "currency": r["currency"]} for r in rows]


# --- price lists (docs/intake.md "Currencies and price lists") --------------------------------
async def put_prices(conn: Conn, store: str, currency: str, entries: list[dict[str, Any]],
                     actor: str) -> int:
    await conn.execute(
        "INSERT INTO price_lists (store, currency, sku, price, valid_from, valid_to, updated_by)"
        " SELECT $1, $2, e.sku, e.price, e.valid_from, e.valid_to, $7 FROM unnest($3::text[],"
        " $4::numeric[], $5::timestamptz[], $6::timestamptz[]) AS e(sku, price, valid_from,"
        " valid_to) ON CONFLICT (store, currency, sku, valid_from) DO UPDATE SET"
        " price = EXCLUDED.price, valid_to = EXCLUDED.valid_to, updated_by = EXCLUDED.updated_by,"
        " updated_at = now()",
        store, currency, [e["sku"] for e in entries], [e["price"] for e in entries],
        [e["valid_from"] for e in entries], [e["valid_to"] for e in entries], actor)
    return len(entries)


async def price_list(conn: Conn | asyncpg.Pool, store: str, currency: str | None,
                     sku: str | None) -> list[asyncpg.Record]:
    return list(await conn.fetch(
        "SELECT store, currency, sku, price, valid_from, valid_to, updated_by, updated_at"
        " FROM price_lists WHERE store = $1 AND ($2::text IS NULL OR currency = $2)"
        " AND ($3::text IS NULL OR sku = $3) ORDER BY currency, sku, valid_from LIMIT 5000",
        store, currency, sku))


async def find_by_customer(pool: asyncpg.Pool, *, email: str | None, phone: str | None,
                           name: str | None, limit: int) -> list[dict[str, Any]]:
    """Orders whose customer has this e-mail or phone (normalised as `domain.identities` does;
    migrations/0004_customer_search.sql indexes the same expressions) or whose name starts with
    `name` (any case), newest first."""
    rows = await pool.fetch(
        "SELECT order_id, store, external_order_id, customer_id, status, received_at,"
        " grand_total, currency FROM orders"
        " WHERE ($1::text IS NULL OR (payload->'customer'->>'email' IS NOT NULL"
        "        AND lower(btrim(payload->'customer'->>'email')) = $1))"
        " AND ($2::text IS NULL OR (payload->'customer'->>'phone' IS NOT NULL"
        "      AND '+' || regexp_replace(payload->'customer'->>'phone', '\\D', '', 'g') = $2))"
        " AND ($3::text IS NULL OR (payload->'customer'->>'name' IS NOT NULL"
        "      AND lower(payload->'customer'->>'name') LIKE $3 || '%'))"
        " ORDER BY received_at DESC LIMIT $4", email, phone, name, limit)
    return [{**dict(r), "order_id": str(r["order_id"]),
             "received_at": r["received_at"].isoformat(),
             "grand_total": str(r["grand_total"]) if r["grand_total"] is not None else None}
            for r in rows]


# --- what review reads and writes for a run of orders, a constant number of statements --------
# Each reader takes the orders of a run (or one, or a dry run's hundred) and answers per order by
# its index in the list; `review.gather` puts the answers together.

def promo_uses_read(wanted: list[tuple[int, str, list[str], uuid.UUID | None]]
                    ) -> Read[dict[int, dict[str, int]]]:
    """For each `(i, customer_id, codes, order_id)`: how often the customer used each code on
    orders other than `order_id`."""
    wanted = [w for w in wanted if w[2]]
    if not wanted:
        return Read.known({})
    codes = {w[0]: {c.upper() for c in w[2]} for w in wanted}

    def shape(rows: list[Row]) -> dict[int, dict[str, int]]:
        found: dict[int, dict[str, int]] = {}
        for r in rows:
            if r["code"] in codes[r["i"]]:
                found.setdefault(r["i"], {})[r["code"]] = r["n"]
        return found
    return Read(
        "SELECT c.i, u.code, count(*) AS n FROM unnest($1::int[], $2::text[], $3::uuid[])"
        " AS c(i, customer_id, exclude) JOIN promo_uses u ON u.customer_id = c.customer_id"
        " AND u.order_id IS DISTINCT FROM c.exclude WHERE u.code = ANY($4::text[])"
        " GROUP BY c.i, u.code",
        ([w[0] for w in wanted], [w[1] for w in wanted], [w[3] for w in wanted],
         sorted({c.upper() for w in wanted for c in w[2]})), shape)


async def record_promo_uses(conn: Conn, uses: list[tuple[str, str, uuid.UUID]]) -> None:
    """Count promo codes as used: `(code, customer_id, order_id)`, one statement."""
    if not uses:
        return
    await conn.execute(
        "INSERT INTO promo_uses (code, customer_id, order_id)"
        " SELECT * FROM unnest($1::text[], $2::text[], $3::uuid[]) ON CONFLICT DO NOTHING",
        [u[0].upper() for u in uses], [u[1] for u in uses], [u[2] for u in uses])


def blocked_read(identities: list[dict[str, str]]) -> Read[list[tuple[BlockedEntry, ...]]]:
    """Per order, the block-list entries matching any of its identities (domain.identities)."""
    pairs = sorted({(k, v) for ids in identities for k, v in ids.items()})
    if not pairs:
        return Read.known([() for _ in identities])

    def shape(rows: list[Row]) -> list[tuple[BlockedEntry, ...]]:
        entries = [BlockedEntry(r["kind"], r["value"], r["action"]) for r in rows]
        return [tuple(e for e in entries if ids.get(e.kind) == e.value) for ids in identities]
    return Read(
        "SELECT b.kind, b.value, b.action FROM blocked_customers b"
        " JOIN unnest($1::text[], $2::text[]) AS i(kind, value) USING (kind, value)",
        ([p[0] for p in pairs], [p[1] for p in pairs]), shape)


def prior_orders_read(wanted: list[tuple[int, OrderPlaced, datetime, int]]
                      ) -> Read[dict[int, tuple[PriorOrder, ...]]]:
    """For each `(i, order, before, window_minutes)`: orders of the same store received in the
    window before `before`, from the same customer or to the same address (at most 200, newest
    first): what duplicate and merge checks compare with."""
    wanted = [w for w in wanted if w[3] > 0]
    if not wanted:
        return Read.known({})

    def shape(rows: list[Row]) -> dict[int, tuple[PriorOrder, ...]]:
        found: dict[int, list[PriorOrder]] = {}
        for r in rows:
            found.setdefault(r["i"], []).append(PriorOrder(
                str(r["order_id"]), r["external_order_id"], r["customer_id"], r["address_key"],
                r["items_key"], r["received_at"], r["status"], r["shipped"]))
        return {i: tuple(p) for i, p in found.items()}
    return Read(
        "SELECT c.i, o.* FROM unnest($1::int[], $2::text[], $3::text[], $4::timestamptz[],"
        " $5::timestamptz[], $6::text[], $7::text[]) AS c(i, store, ext, since, until,"
        " customer_id, address_key) CROSS JOIN LATERAL (SELECT * FROM ("
        # Each side is a backward scan of its index that stops at 200 rows (an address many
        # orders share costs no more than one that few do); their union's newest 200 are the
        # newest 200 of "same customer or same address". UNION drops a row both sides found.
        "  (SELECT order_id, external_order_id, customer_id, address_key, items_key,"
        "   received_at, status, shipped FROM orders WHERE store = c.store"
        "   AND customer_id = c.customer_id AND received_at BETWEEN c.since AND c.until"
        "   AND external_order_id <> c.ext ORDER BY received_at DESC LIMIT 200)"
        "  UNION"
        "  (SELECT order_id, external_order_id, customer_id, address_key, items_key,"
        "   received_at, status, shipped FROM orders WHERE store = c.store"
        "   AND address_key = c.address_key AND received_at BETWEEN c.since AND c.until"
        "   AND external_order_id <> c.ext ORDER BY received_at DESC LIMIT 200)"
        " ) AS u ORDER BY received_at DESC LIMIT 200) AS o ORDER BY c.i, o.received_at DESC",
        ([w[0] for w in wanted], [w[1].store for w in wanted],
         [w[1].external_order_id for w in wanted],
         [w[2] - timedelta(minutes=w[3]) for w in wanted], [w[2] for w in wanted],
         [w[1].customer.id for w in wanted], [domain.address_key(w[1]) for w in wanted]),
        shape)


def list_prices_read(orders: list[OrderPlaced]) -> Read[list[dict[str, Decimal]]]:
    """Per order, the list price of each of its SKUs for its store in its currency, valid when
    it was placed; the store's own list wins over the default ('*')."""
    wanted = sorted({(i, ln.sku) for i, o in enumerate(orders) for ln in o.lines})
    if not wanted:
        return Read.known([{} for _ in orders])

    def shape(rows: list[Row]) -> list[dict[str, Decimal]]:
        found: list[dict[str, Decimal]] = [{} for _ in orders]
        for r in rows:
            found[r["i"]][r["sku"]] = r["price"]
        return found
    return Read(
        "SELECT c.i, c.sku, p.price FROM unnest($1::int[], $2::text[], $3::text[], $4::text[],"
        " $5::timestamptz[]) AS c(i, store, currency, sku, at) CROSS JOIN LATERAL"
        " (SELECT price FROM price_lists WHERE store IN (c.store, '*')"
        " AND currency = c.currency AND sku = c.sku AND valid_from <= c.at"
        " AND (valid_to IS NULL OR valid_to > c.at)"
        " ORDER BY store = '*', valid_from DESC LIMIT 1) AS p",
        ([i for i, _ in wanted], [orders[i].store for i, _ in wanted],
         [orders[i].currency for i, _ in wanted], [sku for _, sku in wanted],
         [orders[i].placed_at for i, _ in wanted]), shape)


EarlyCancel = tuple[str, str | None]  # (the reason given, '' for none; the event as JSON)


def take_early_cancels_read(keys: list[tuple[str, str]]
                            ) -> Read[dict[tuple[str, str], EarlyCancel]]:
    """The cancellations that arrived before these orders (store, external_order_id), taken
    (deleted), for the keys intake does not hold yet: the reason given ('' for none) and the
    parked event (None for a row kept before migration 0008) per key. In the statement of
    `find_orders_read` (`read_all`), it sees the orders as that does."""
    if not keys:
        return Read.known({})
    return Read(
        "DELETE FROM early_cancellations e USING unnest($1::text[], $2::text[]) AS k(store, ext)"
        " WHERE e.store = k.store AND e.external_order_id = k.ext AND NOT EXISTS (SELECT 1"
        " FROM orders o WHERE o.store = k.store AND o.external_order_id = k.ext)"
        " RETURNING e.store, e.external_order_id, coalesce(e.reason, '') AS reason, e.event",
        ([k[0] for k in keys], [k[1] for k in keys]),
        lambda rows: {(r["store"], r["external_order_id"]): (r["reason"], r["event"])
                      for r in rows})


async def insert_decisions(conn: Conn, rows: list[tuple[uuid.UUID, str, str,
                                                        list[tuple[str, str]],
                                                        list[dict[str, Any]],
                                                        dict[str, Any]]]) -> None:
    """Record decisions `(order_id, trigger, status, reasons, rules, policy)`, in this order,
    in one statement."""
    if not rows:
        return
    await conn.execute(
        "INSERT INTO decisions (order_id, trigger, status, reasons, rules, policy)"
        " SELECT d.order_id, d.trigger, d.status, d.reasons::jsonb, d.rules::jsonb,"
        " d.policy::jsonb FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[],"
        " $5::text[], $6::text[]) WITH ORDINALITY AS d(order_id, trigger, status, reasons,"
        " rules, policy, n) ORDER BY d.n",
        [r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows],
        [_reasons(r[3]) for r in rows], [json.dumps(r[4]) for r in rows],
        [json.dumps(r[5]) for r in rows])


async def open_holds(conn: Conn, holds: list[tuple[uuid.UUID, str, list[tuple[str, str]], int]]
                     ) -> None:
    """Open holds `(order_id, store, reasons, sla_seconds)` of orders that have none open, in
    one statement (the orders of a run: each once)."""
    if not holds:
        return
    await conn.execute(
        "INSERT INTO holds (order_id, store, codes, reasons, sla_seconds)"
        " SELECT h.order_id, h.store, ARRAY(SELECT jsonb_array_elements_text(h.codes::jsonb)),"
        " h.reasons::jsonb, h.sla FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[],"
        " $5::int[]) AS h(order_id, store, codes, reasons, sla)"
        " ON CONFLICT (order_id) WHERE closed_at IS NULL DO UPDATE SET"
        " codes = EXCLUDED.codes, reasons = EXCLUDED.reasons",
        [h[0] for h in holds], [h[1] for h in holds],
        [json.dumps(sorted({c for c, _ in h[2]})) for h in holds],
        [_reasons(h[2]) for h in holds], [h[3] for h in holds])
