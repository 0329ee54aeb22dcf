"""SQL for logistics' schema."""

from __future__ import annotations

import json
import uuid
from typing import Any

import asyncpg

from shared.db import Conn

from .domain import CarrierService


async def services(conn: Conn | asyncpg.Pool) -> list[CarrierService]:
    rows = await conn.fetch(
        "SELECT s.*, c.on_time_score FROM services s JOIN carriers c ON c.code = s.carrier"
        " WHERE s.active ORDER BY s.code")
    return [CarrierService(
        code=r["code"], carrier=r["carrier"], origins=tuple(r["origins"]),
        destinations=tuple(r["destinations"]), refused=tuple(r["refused"]),
        max_weight_g=r["max_weight_g"], max_side_mm=r["max_side_mm"],
        transit_min=r["transit_min"], transit_max=r["transit_max"], first_500g=r["first_500g"],
        per_500g=r["per_500g"], fuel_pct=r["fuel_pct"],
        volumetric_divisor=r["volumetric_divisor"], tracking_format=r["tracking_format"],
        on_time_score=r["on_time_score"]) for r in rows]


async def next_tracking_sequence(conn: Conn) -> int:
    return int(await conn.fetchval("SELECT nextval('tracking_seq')"))


async def get_order(conn: Conn, order_id: uuid.UUID) -> asyncpg.Record | None:
    return await conn.fetchrow("SELECT * FROM orders WHERE order_id = $1 FOR UPDATE", order_id)


async def insert_order(conn: Conn, order_id: uuid.UUID, key: str, status: str,
                       parcel_count: int, correlation_id: str | None) -> None:
    store, _, ext = key.partition(":")
    await conn.execute(
        "INSERT INTO orders (order_id, order_key, store, external_order_id, status, parcel_count,"
        " correlation_id) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        order_id, key, store, ext, status, parcel_count, correlation_id)


async def set_order_status(conn: Conn, order_id: uuid.UUID, status: str) -> None:
    await conn.execute("UPDATE orders SET status = $2, updated_at = now() WHERE order_id = $1",
                       order_id, status)


async def insert_shipment(conn: Conn, **f: Any) -> None:
    await conn.execute(
        "INSERT INTO shipments (parcel_id, order_id, warehouse, country, carrier, service,"
        " tracking_number, status, weight_g, chargeable_g, cost, lines, trace, shipped_at)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12::jsonb, $13::jsonb,"
        " CASE WHEN $8 = 'shipped' THEN now() END)",
        f["parcel_id"], f["order_id"], f["warehouse"], f["country"], f["carrier"], f["service"],
        f["tracking_number"], f["status"], f["weight_g"], f["chargeable_g"], f["cost"],
        json.dumps(f["lines"]), json.dumps(f["trace"]))


async def shipment_by_tracking(conn: Conn, number: str) -> asyncpg.Record | None:
    return await conn.fetchrow(
        "SELECT * FROM shipments WHERE tracking_number = $1 FOR UPDATE", number)


async def record_tracking(conn: Conn, event_id: uuid.UUID, number: str, status: str,
                          occurred_at: Any, location: str | None, description: str | None) -> None:
    await conn.execute(
        "INSERT INTO tracking_events (event_id, tracking_number, status, occurred_at, location,"
        " description) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
        event_id, number, status, occurred_at, location, description)


async def update_shipment(conn: Conn, parcel_id: str, status: str,
                          occurred_at: Any) -> None:
    await conn.execute(
        "UPDATE shipments SET status = $2, last_event_at = $3, delivered_at = CASE WHEN"
        " $2 = 'delivered' THEN $3 ELSE delivered_at END WHERE parcel_id = $1",
        parcel_id, status, occurred_at)


async def undelivered_count(conn: Conn, order_id: uuid.UUID) -> int:
    return int(await conn.fetchval(
        "SELECT count(*) FROM shipments WHERE order_id = $1 AND status <> 'delivered'", order_id))


async def latest_delivery(conn: Conn, order_id: uuid.UUID) -> Any:
    return await conn.fetchval("SELECT max(delivered_at) FROM shipments WHERE order_id = $1",
                               order_id)


async def shipments_of(pool: asyncpg.Pool, order_key: str) -> list[dict[str, Any]]:
    rows = await pool.fetch(
        "SELECT s.* FROM shipments s JOIN orders o USING (order_id) WHERE o.order_key = $1"
        " ORDER BY s.parcel_id", order_key)
    return [{**dict(r), "order_id": str(r["order_id"]), "lines": json.loads(r["lines"]),
             "trace": json.loads(r["trace"]), "cost": str(r["cost"]) if r["cost"] else None}
            for r in rows]
