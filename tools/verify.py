"""Cross-service invariants, checked with the admin database login (it sees every schema; the
services never do). Used by `shopkeeper verify` and the fault tests.

A check that fails right after load may just be work in flight, so `verify` re-runs the checks
until they pass or `settle_seconds` have gone by, and reports the last result.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import asyncpg

from shared.settings import SERVICES


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str


CHECKS: list[tuple[str, str, str]] = [
    # (name, SQL returning offending rows (at most 5 shown), what an offending row means)
    ("stock ledger balanced",
     """SELECT coalesce(s.sku, l.sku) AS sku, coalesce(s.warehouse, l.warehouse) AS warehouse
        FROM inventory.stock s FULL JOIN (SELECT sku, warehouse, sum(on_hand_delta) AS on_hand,
             sum(reserved_delta) AS reserved, sum(refurbished_delta) AS refurbished
             FROM inventory.ledger GROUP BY 1, 2) l
        ON l.sku = s.sku AND l.warehouse = s.warehouse
        WHERE coalesce(s.on_hand, 0) <> coalesce(l.on_hand, 0)
           OR coalesce(s.reserved, 0) <> coalesce(l.reserved, 0)
           OR coalesce(s.refurbished, 0) <> coalesce(l.refurbished, 0)""",
     "balance differs from its ledger"),
    ("nothing oversold",
     "SELECT sku, warehouse FROM inventory.stock WHERE on_hand - reserved < 0 OR reserved < 0",
     "negative availability"),
    ("reservations match reserved orders",
     """SELECT s.sku, s.warehouse FROM inventory.stock s LEFT JOIN (
            SELECT a->>'warehouse' AS warehouse, l->>'sku' AS sku,
                   sum((l->>'quantity')::int) AS q
            FROM inventory.orders o, jsonb_array_elements(o.allocations) a,
                 jsonb_array_elements(a->'lines') l
            WHERE o.status IN ('reserved', 'reallocating') GROUP BY 1, 2) r
          ON r.sku = s.sku AND r.warehouse = s.warehouse
        WHERE s.reserved <> coalesce(r.q, 0)""",
     "reserved units not explained by reserved orders"),
    ("accepted orders reached inventory",
     """SELECT i.store || ':' || i.external_order_id FROM intake.orders i
        WHERE i.status = 'accepted' AND NOT EXISTS
          (SELECT 1 FROM inventory.orders v WHERE v.order_id = i.order_id)""",
     "accepted but unknown to inventory"),
    ("reserved orders reached fulfillment",
     """SELECT v.order_key FROM inventory.orders v WHERE v.status IN ('reserved', 'committed')
        AND NOT EXISTS (SELECT 1 FROM fulfillment.orders f WHERE f.order_id = v.order_id)""",
     "reserved but unknown to fulfillment"),
    ("packed orders reached logistics",
     """SELECT f.order_key FROM fulfillment.orders f WHERE f.status = 'packed'
        AND NOT EXISTS (SELECT 1 FROM logistics.orders l WHERE l.order_id = f.order_id)""",
     "packed but unknown to logistics"),
    ("shipped orders committed their stock",
     """SELECT l.order_key FROM logistics.orders l JOIN inventory.orders v USING (order_id)
        WHERE l.status IN ('shipped', 'delivered') AND v.status <> 'committed'""",
     "shipped but stock still reserved"),
    ("cancelled orders hold nothing",
     """SELECT i.store || ':' || i.external_order_id FROM intake.orders i
        JOIN inventory.orders v USING (order_id)
        WHERE i.status = 'cancelled' AND v.status IN ('reserved', 'reallocating')""",
     "cancelled but stock still reserved"),
    ("one status change per step",
     # An order backordered after its reservation (a short pick with nowhere else to take the
     # units from) is reserved once more after the restock: one `reserved` per `backordered`.
     """SELECT order_key || ' ' || status FROM analytics.timeline t
        WHERE status IN ('accepted', 'reserved', 'packed', 'shipped', 'delivered', 'cancelled')
        GROUP BY order_key, status HAVING count(*) > 1 + CASE WHEN status = 'reserved' THEN
          (SELECT count(*) FROM analytics.timeline b WHERE b.order_key = t.order_key
           AND b.status = 'backordered' AND b.occurred_at > min(t.occurred_at)) ELSE 0 END""",
     "the same step announced twice with different event ids"),
    ("no status after cancelled",
     """SELECT t.order_key FROM analytics.timeline t JOIN analytics.timeline c
          ON c.order_key = t.order_key AND c.status = 'cancelled'
        WHERE t.status IN ('reserved', 'packed', 'shipped') AND t.occurred_at > c.occurred_at""",
     "a step announced after the cancellation"),
]


async def run_checks(conn: asyncpg.Connection) -> list[Check]:
    results = []
    for service in SERVICES:
        # Quarantined rows (refused by Kafka for good) are not pending: they are reported on
        # their own (`shopkeeper outbox quarantined`, alert OutboxQuarantined).
        pending = await conn.fetchval(
            f'SELECT count(*) FROM "{service}".outbox WHERE sent_at IS NULL'
            " AND quarantined_at IS NULL")
        results.append(Check(f"{service} outbox drained", pending == 0,
                             f"{pending} unpublished" if pending else ""))
    for name, sql, meaning in CHECKS:
        rows = await conn.fetch(sql)
        detail = ""
        if rows:
            shown = ", ".join(" ".join(str(v) for v in r.values()) for r in rows[:5])
            detail = f"{len(rows)} {meaning}: {shown}"
        results.append(Check(name, not rows, detail))
    return results


async def verify(admin_url: str, settle_seconds: float = 30.0) -> list[Check]:
    try:
        conn = await asyncpg.connect(admin_url, timeout=10)
    except (OSError, asyncpg.PostgresError) as exc:
        from tools.cli import CliError

        raise CliError(f"cannot connect to Postgres with DATABASE_URL ({type(exc).__name__});"
                       " is the stack up?") from None
    try:
        deadline = time.monotonic() + settle_seconds
        while True:
            results = await run_checks(conn)
            if all(r.ok for r in results) or time.monotonic() > deadline:
                return results
            await asyncio.sleep(1)
    finally:
        await conn.close()
