"""SQL for intake's schema."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import asyncpg

from shared.contracts import CoverageChanged, OrderPlaced, ProductUpserted
from shared.db import Conn, forget, memoized

from . import domain
from .domain import BlockedEntry, Policy, PriorOrder, Product, Promotion


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
    forget("intake.coverage")
    await conn.execute(
        "INSERT INTO coverage (id, countries, refused_attributes, occurred_at)"
        " VALUES (1, $1, $2::jsonb, $3) ON CONFLICT (id) DO UPDATE SET"
        " countries = EXCLUDED.countries, refused_attributes = EXCLUDED.refused_attributes,"
        " occurred_at = EXCLUDED.occurred_at WHERE coverage.occurred_at <= EXCLUDED.occurred_at",
        c.countries, json.dumps(c.refused_attributes), c.occurred_at,
    )


async def _coverage(conn: Conn) -> asyncpg.Record | None:
    """Logistics' coverage, read once per run of events (shared.db.memoized)."""
    return await memoized("intake.coverage", lambda: conn.fetchrow(
        "SELECT countries, refused_attributes FROM coverage WHERE id = 1"))


async def served_countries(conn: Conn) -> set[str] | None:
    row = await _coverage(conn)
    return set(row["countries"]) if row is not None else None


async def promotions(conn: Conn, codes: list[str]) -> dict[str, Promotion]:
    if not codes:
        return {}
    rows = await conn.fetch("SELECT * FROM promotions WHERE code = ANY($1::text[])",
                            [c.upper() for c in codes])
    return {r["code"]: _promotion(r) for r in rows}


def _promotion(r: asyncpg.Record) -> Promotion:
    return Promotion(r["code"], r["kind"], r["value"], r["min_spend"], r["starts_at"],
                     r["ends_at"], r["active"], frozenset(r["scope_skus"]),
                     frozenset(r["scope_categories"]), r["stackable"], r["per_customer_limit"])


async def all_promotions(conn: Conn | asyncpg.Pool) -> list[dict[str, Any]]:
    rows = await conn.fetch("SELECT * FROM promotions ORDER BY code")
    return [promotion_dict(_promotion(r)) for r in rows]


def promotion_dict(p: Promotion) -> dict[str, Any]:
    return {"code": p.code, "kind": p.kind, "value": str(p.value), "min_spend": str(p.min_spend),
            "starts_at": p.starts_at.isoformat() if p.starts_at else None,
            "ends_at": p.ends_at.isoformat() if p.ends_at else None, "active": p.active,
            "scope_skus": sorted(p.scope_skus), "scope_categories": sorted(p.scope_categories),
            "stackable": p.stackable, "per_customer_limit": p.per_customer_limit}


async def upsert_promotion(conn: Conn, p: Promotion) -> None:
    await conn.execute(
        "INSERT INTO promotions (code, kind, value, min_spend, starts_at, ends_at, active,"
        " scope_skus, scope_categories, stackable, per_customer_limit)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) ON CONFLICT (code) DO UPDATE SET"
        " kind = EXCLUDED.kind, value = EXCLUDED.value, min_spend = EXCLUDED.min_spend,"
        " starts_at = EXCLUDED.starts_at, ends_at = EXCLUDED.ends_at, active = EXCLUDED.active,"
        " scope_skus = EXCLUDED.scope_skus, scope_categories = EXCLUDED.scope_categories,"
        " stackable = EXCLUDED.stackable, per_customer_limit = EXCLUDED.per_customer_limit",
        p.code, p.kind, p.value, p.min_spend, p.starts_at, p.ends_at, p.active,
        sorted(p.scope_skus), sorted(p.scope_categories), p.stackable, p.per_customer_limit)


async def promo_uses(conn: Conn, customer_id: str, codes: list[str],
                     exclude: uuid.UUID | None) -> dict[str, int]:
    if not codes:
        return {}
    rows = await conn.fetch(
        "SELECT code, count(*) AS n FROM promo_uses WHERE code = ANY($1::text[])"
        " AND customer_id = $2 AND order_id IS DISTINCT FROM $3 GROUP BY code",
        [c.upper() for c in codes], customer_id, exclude)
    return {r["code"]: r["n"] for r in rows}


async def record_promo_uses(conn: Conn, codes: list[str], customer_id: str,
                            order_id: uuid.UUID) -> None:
    await conn.executemany(
        "INSERT INTO promo_uses (code, customer_id, order_id) VALUES ($1, $2, $3)"
        " ON CONFLICT DO NOTHING", [(c.upper(), customer_id, order_id) for c in set(codes)])


_POLICY_COLUMNS = ("high_value_threshold", "high_value_currency", "high_value_action",
                   "duplicate_window_minutes", "merge_window_minutes", "hold_pending_payment",
                   "invalid_promo_action", "restricted_goods_action", "hold_sla_minutes",
                   "price_tolerance_percent")


def _policy(row: asyncpg.Record) -> Policy:
    return Policy(**{c: row[c] for c in _POLICY_COLUMNS})


async def policy(conn: Conn, store: str) -> Policy:
    row = await memoized(("intake.policy", store), lambda: conn.fetchrow(
        "SELECT * FROM store_policies WHERE store IN ($1, '*') ORDER BY store = '*' LIMIT 1",
        store))
    return _policy(row) if row else Policy()


async def policies(conn: Conn | asyncpg.Pool) -> dict[str, Policy]:
    """Every store's policy; '*' is the default for stores without their own."""
    rows = await conn.fetch("SELECT * FROM store_policies")
    found = {r["store"]: _policy(r) for r in rows}
    found.setdefault("*", Policy())
    return found


async def put_policy(conn: Conn, store: str, p: Policy, actor: str) -> None:
    cols = ", ".join(_POLICY_COLUMNS)
    params = ", ".join(f"${i + 2}" for i in range(len(_POLICY_COLUMNS)))
    updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in _POLICY_COLUMNS)
    n = len(_POLICY_COLUMNS) + 2
    forget("intake.policy")
    await conn.execute(
        f"INSERT INTO store_policies (store, {cols}, updated_by) VALUES ($1, {params}, ${n})"
        f" ON CONFLICT (store) DO UPDATE SET {updates}, updated_by = EXCLUDED.updated_by,"
        " updated_at = now()", store, *[getattr(p, c) for c in _POLICY_COLUMNS], actor)


async def refused_attributes(conn: Conn) -> dict[str, list[str]]:
    row = await _coverage(conn)
    return json.loads(row["refused_attributes"]) if row and row["refused_attributes"] else {}


async def blocked(conn: Conn, identities: dict[str, str]) -> tuple[BlockedEntry, ...]:
    """The block-list entries matching any of an order's identities (domain.identities)."""
    rows = await conn.fetch(
        "SELECT b.kind, b.value, b.action FROM blocked_customers b"
        " JOIN unnest($1::text[], $2::text[]) AS i(kind, value) USING (kind, value)",
        list(identities), list(identities.values()))
    return tuple(BlockedEntry(r["kind"], r["value"], r["action"]) for r in rows)


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


async def prior_orders(conn: Conn | asyncpg.Pool, order: OrderPlaced, before: datetime,
                       window_minutes: int) -> tuple[PriorOrder, ...]:
    """Orders of the same store received in the window before `before`, from the same customer
    or to the same address: what duplicate and merge checks compare with."""
    if window_minutes <= 0:
        return ()
    rows = await conn.fetch(
        "SELECT order_id, external_order_id, customer_id, address_key, items_key, received_at,"
        " status, shipped FROM orders WHERE store = $1 AND external_order_id <> $2"
        " AND received_at BETWEEN $3 AND $4 AND (customer_id = $5 OR address_key = $6)"
        " ORDER BY received_at DESC LIMIT 200",
        order.store, order.external_order_id, before - timedelta(minutes=window_minutes), before,
        order.customer.id, domain.address_key(order))
    return tuple(PriorOrder(str(r["order_id"]), r["external_order_id"], r["customer_id"],
                            r["address_key"], r["items_key"], r["received_at"], r["status"],
                            r["shipped"]) for r in rows)


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
async def list_prices(conn: Conn, store: str, currency: str, skus: list[str],
                      at: datetime) -> dict[str, Decimal]:
    """The list price of each SKU for `store` in `currency`, valid at `at`; the store's own list
    wins over the default ('*')."""
    rows = await conn.fetch(
        "SELECT DISTINCT ON (sku) sku, price FROM price_lists WHERE store IN ($1, '*')"
        " AND currency = $2 AND sku = ANY($3::text[]) AND valid_from <= $4"
        " AND (valid_to IS NULL OR valid_to > $4)"
        " ORDER BY sku, store = '*', valid_from DESC", store, currency, skus, at)
    return {r["sku"]: r["price"] for r in rows}


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
