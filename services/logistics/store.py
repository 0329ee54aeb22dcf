"""SQL for logistics' schema."""

from __future__ import annotations

import dataclasses
import json
import uuid
from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

import asyncpg

from shared.db import Conn, Read, Row
from shared.uow import UnitOfWork

from . import domain
from .domain import CarrierService, Product, Zone, smoothed_score

# Reference data (`uow.reference`, cached across runs until one of its tables changes): the
# carrier catalogue with its rate cards, zones, remote areas and destination restrictions, and
# the warehouses. The on-time scores are not: every delivery writes `carrier_scores`, so they
# are read once per unit of work (`uow.memo`) and put on the cached catalogue. Writers of the
# catalogue call `catalogue_changed(uow)`, writers of scores `scores_changed(uow)`.
CATALOGUE = "logistics.catalogue"
CATALOGUE_TABLES = ("services", "carriers", "service_zones", "zone_rates", "remote_areas",
                    "destination_restrictions")
SCORED = "logistics.scored_catalogue"
WAREHOUSES = "logistics.warehouses"

ZoneScores = dict[str, dict[str, tuple[str, int, int, Decimal | None]]]
"""service -> zone -> (source, delivered, on_time, rate) of the source with most deliveries."""


def catalogue_changed(uow: UnitOfWork) -> None:
    """This unit of work changed the catalogue (or wants it read again)."""
    uow.forget(CATALOGUE)
    uow.forget(SCORED)


def scores_changed(uow: UnitOfWork) -> None:
    """This unit of work wrote on-time scores."""
    uow.forget(SCORED)


async def services(uow: UnitOfWork) -> list[CarrierService]:
    """The active catalogue with zones, remote areas and on-time scores per zone. A score comes
    from whichever source has more deliveries behind it: our own history, or analytics'.
    The catalogue is cached across runs; the scores are read once per unit of work."""
    async def load() -> list[CarrierService]:
        catalogue = await uow.reference(CATALOGUE, lambda: load_catalogue(uow.conn),
                                        tables=CATALOGUE_TABLES)
        return with_scores(catalogue, await load_scores(uow.conn))
    return await uow.memo(SCORED, load)


async def load_services(conn: Conn | asyncpg.Pool) -> list[CarrierService]:
    """The catalogue with its scores, read now (not cached)."""
    return with_scores(await load_catalogue(conn), await load_scores(conn))


async def load_scores(conn: Conn | asyncpg.Pool) -> ZoneScores:
    best: ZoneScores = defaultdict(dict)
    for sc in await conn.fetch("SELECT * FROM carrier_scores WHERE delivered > 0"):
        current = best[sc["service"]].get(sc["zone"])
        if current is None or sc["delivered"] > current[1]:
            best[sc["service"]][sc["zone"]] = (sc["source"], sc["delivered"], sc["on_time"],
                                               sc["rate"])
    return best


def with_scores(catalogue: list[CarrierService], best: ZoneScores) -> list[CarrierService]:
    """The catalogue with each service's on-time score per zone (its carrier's prior smoothed
    by the deliveries, or analytics' rate)."""
    out = []
    for s in catalogue:
        scores = {zone: (rate if source == "analytics" and rate is not None
                         else smoothed_score(on_time, delivered, s.on_time_score))
                  for zone, (source, delivered, on_time, rate) in best.get(s.code, {}).items()}
        out.append(dataclasses.replace(s, zone_scores=scores) if scores else s)
    return out


async def load_catalogue(conn: Conn | asyncpg.Pool) -> list[CarrierService]:
    """The active services with their rate cards, zones, remote areas and the destinations'
    restrictions; no scores (`with_scores`)."""
    rows = await conn.fetch(
        "SELECT s.*, c.on_time_score FROM services s JOIN carriers c ON c.code = s.carrier"
        " WHERE s.active ORDER BY s.code")
    zones: dict[str, dict[tuple[str, str], Zone]] = defaultdict(dict)
    for z in await conn.fetch(
            "SELECT sz.service, sz.origin, sz.country, r.* FROM service_zones sz"
            " JOIN zone_rates r ON r.service = sz.service AND r.zone = sz.zone"):
        zones[z["service"]][(z["origin"], z["country"])] = Zone(
            z["zone"], z["first_500g"], z["per_500g"], z["transit_min"], z["transit_max"])
    remote: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    for a in await conn.fetch("SELECT * FROM remote_areas"):
        remote[a["carrier"]][a["country"]].append(a["prefix"])
    barred: dict[str, list[str]] = defaultdict(list)
    for d in await conn.fetch("SELECT country, attribute FROM destination_restrictions"
                              " ORDER BY country, attribute"):
        barred[d["country"]].append(d["attribute"])
    refused_to = {c: tuple(a) for c, a in barred.items()}
    out = []
    for r in rows:
        out.append(CarrierService(
            code=r["code"], carrier=r["carrier"], origins=tuple(r["origins"]),
            destinations=tuple(r["destinations"]), refused=tuple(r["refused"]),
            max_weight_g=r["max_weight_g"], max_side_mm=r["max_side_mm"],
            transit_min=r["transit_min"], transit_max=r["transit_max"],
            first_500g=r["first_500g"], per_500g=r["per_500g"], fuel_pct=r["fuel_pct"],
            volumetric_divisor=r["volumetric_divisor"], tracking_format=r["tracking_format"],
            on_time_score=r["on_time_score"], zones=zones[r["code"]],
            remote_surcharge=r["remote_surcharge"],
            remote_prefixes={c: tuple(p) for c, p in remote[r["carrier"]].items()},
            stall_days=r["stall_days"], refused_to=refused_to))
    return out


async def free_tracking_number(conn: Conn, fmt: str, seed: str) -> str:
    """The tracking number of `seed` (a parcel id, a return's request id) in the service's
    format: the first of its derived candidates (`domain.tracking_serial`) no shipment has.
    The same seed gives the same number whenever it is handled again (a redelivery, a re-read
    after a restore), as long as the candidates before it are taken by the same parcels."""
    for attempt in range(100):
        number = domain.tracking_number(fmt, domain.tracking_serial(seed, attempt))
        if not await conn.fetchval("SELECT 1 FROM shipments WHERE tracking_number = $1",
                                   number):
            return number
    raise RuntimeError(f"no free tracking number for {seed} in {fmt} after 100 candidates")


async def get_order(conn: Conn, order_id: uuid.UUID) -> asyncpg.Record | None:
    return await conn.fetchrow("SELECT * FROM orders WHERE order_id = $1 FOR UPDATE", order_id)


async def insert_order(conn: Conn, order_id: uuid.UUID, key: str, status: str,
                       parcel_count: int, correlation_id: str | None,
                       snapshot: str | None = None) -> None:
    store, _, ext = key.partition(":")
    await conn.execute(
        "INSERT INTO orders (order_id, order_key, store, external_order_id, status, parcel_count,"
        " correlation_id, snapshot) VALUES ($1, $2, $3, $4, $5, $6, $7, $8::jsonb)",
        order_id, key, store, ext, status, parcel_count, correlation_id, snapshot)


async def set_order_status(conn: Conn, order_id: uuid.UUID, status: str) -> None:
    await conn.execute("UPDATE orders SET status = $2, updated_at = now() WHERE order_id = $1",
                       order_id, status)






async def warehouses(uow: UnitOfWork) -> dict[str, asyncpg.Record]:
    rows = await uow.reference(WAREHOUSES, lambda: uow.conn.fetch("SELECT * FROM warehouses"),
                               tables=("warehouses",))
    return {r["code"]: r for r in rows}


async def upsert_warehouse(conn: Conn, code: str, name: str, country: str, line1: str,
                           city: str, region: str | None, postal_code: str, timezone: str,
                           cutoff: str, working_days: Sequence[str], active: bool) -> None:
    """logistics' copy of one of inventory's warehouses (handlers.warehouses_changed)."""
    await conn.execute(
        "INSERT INTO warehouses (code, name, country, line1, city, region, postal_code, timezone,"
        " cutoff, working_days, active) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
        " ON CONFLICT (code) DO UPDATE SET name = EXCLUDED.name, country = EXCLUDED.country,"
        " line1 = EXCLUDED.line1, city = EXCLUDED.city, region = EXCLUDED.region,"
        " postal_code = EXCLUDED.postal_code, timezone = EXCLUDED.timezone,"
        " cutoff = EXCLUDED.cutoff, working_days = EXCLUDED.working_days,"
        " active = EXCLUDED.active",
        code, name, country, line1, city, region, postal_code, timezone, cutoff, working_days,
        active)


async def warehouse(conn: Conn | asyncpg.Pool, code: str) -> asyncpg.Record | None:
    return await conn.fetchrow("SELECT * FROM warehouses WHERE code = $1", code)


async def upsert_product(conn: Conn, p: Product, occurred_at: datetime) -> bool:
    """Newest product data wins (a late re-send of an old version changes nothing)."""
    return await conn.fetchval(
        "INSERT INTO products (sku, name, hs_code, origin_country, weight_g, occurred_at)"
        " VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (sku) DO UPDATE SET name = EXCLUDED.name,"
        " hs_code = EXCLUDED.hs_code, origin_country = EXCLUDED.origin_country,"
        " weight_g = EXCLUDED.weight_g, occurred_at = EXCLUDED.occurred_at"
        " WHERE products.occurred_at <= EXCLUDED.occurred_at RETURNING true",
        p.sku, p.name, p.hs_code, p.origin_country, p.weight_g, occurred_at) is not None


async def products(conn: Conn, skus: Iterable[str]) -> dict[str, Product]:
    rows = await conn.fetch("SELECT * FROM products WHERE sku = ANY($1::text[])", list(skus))
    return {r["sku"]: Product(r["sku"], r["name"], r["hs_code"], r["origin_country"],
                              r["weight_g"]) for r in rows}


async def orders_held_for(conn: Conn, sku: str) -> list[uuid.UUID]:
    """Waiting orders with a held parcel containing this SKU: new product data may release them."""
    rows = await conn.fetch(
        "SELECT DISTINCT s.order_id FROM shipments s JOIN orders o USING (order_id)"
        " WHERE s.status = 'held' AND o.status = 'waiting' AND s.lines @> $1::jsonb"
        " ORDER BY s.order_id", json.dumps([{"sku": sku}]))
    return [r["order_id"] for r in rows]


async def get_shipment(conn: Conn | asyncpg.Pool, parcel_id: str) -> asyncpg.Record | None:
    return await conn.fetchrow(
        "SELECT s.*, o.order_key, o.snapshot, v.name AS service_name, w.country AS origin_country,"
        " w.name AS wh_name, w.line1 AS wh_line1, w.city AS wh_city, w.region AS wh_region,"
        " w.postal_code AS wh_postal_code"
        " FROM shipments s JOIN orders o USING (order_id) LEFT JOIN services v ON v.code = s.service"
        " LEFT JOIN warehouses w ON w.code = s.warehouse WHERE s.parcel_id = $1", parcel_id)


async def record_delivery_score(conn: Conn, service: str, zone: str, on_time: bool) -> None:
    """One delivery in the service's history (the caller forgets the `CATALOGUE` memo)."""
    await conn.execute(
        "INSERT INTO carrier_scores (service, zone, source, delivered, on_time)"
        " VALUES ($1, $2, 'history', 1, $3::int) ON CONFLICT (service, zone, source) DO UPDATE"
        " SET delivered = carrier_scores.delivered + 1,"
        " on_time = carrier_scores.on_time + EXCLUDED.on_time, updated_at = now()",
        service, zone, on_time)


async def zones_of(conn: Conn, service: str, country: str) -> list[str]:
    rows = await conn.fetch("SELECT DISTINCT zone FROM service_zones WHERE service = $1 AND"
                            " country = $2 ORDER BY zone", service, country)
    return [r["zone"] for r in rows]


async def set_analytics_score(conn: Conn, service: str, zone: str, rate: Decimal,
                              samples: int) -> None:
    """Analytics' on-time rate (the caller forgets the `CATALOGUE` memo)."""
    await conn.execute(
        "INSERT INTO carrier_scores (service, zone, source, delivered, on_time, rate)"
        " VALUES ($1, $2, 'analytics', $3::int, round($3::int * $4::numeric), $4::numeric)"
        " ON CONFLICT (service, zone, source)"
        " DO UPDATE SET delivered = EXCLUDED.delivered, on_time = EXCLUDED.on_time,"
        " rate = EXCLUDED.rate, updated_at = now()", service, zone, samples, rate)


async def scores(pool: asyncpg.Pool) -> list[dict[str, Any]]:
    rows = await pool.fetch("SELECT * FROM carrier_scores ORDER BY service, zone, source")
    return [{**dict(r), "rate": str(r["rate"]) if r["rate"] is not None else None,
             "updated_at": r["updated_at"].isoformat()} for r in rows]


async def stalled_candidates(conn: Conn, now: datetime) -> list[asyncpg.Record]:
    """Parcels on the road whose last scan (or hand-over) is older than their service allows,
    not yet flagged for this silence. SKIP LOCKED: a parcel being tracked right now is skipped."""
    return await conn.fetch(
        "SELECT s.parcel_id, s.tracking_number, s.status, s.order_id, s.service, s.carrier,"
        " coalesce(s.last_event_at, s.shipped_at) AS last_scan, v.stall_days"
        " FROM shipments s JOIN services v ON v.code = s.service"
        " WHERE s.shipped_at IS NOT NULL"
        " AND s.status NOT IN ('held', 'delivered', 'lost', 'returned_to_sender')"
        " AND coalesce(s.last_event_at, s.shipped_at) < $1::timestamptz - make_interval(days => v.stall_days)"
        " AND s.stalled_for IS DISTINCT FROM coalesce(s.last_event_at, s.shipped_at)"
        " ORDER BY s.parcel_id FOR UPDATE OF s SKIP LOCKED", now)


async def mark_stalled(conn: Conn, parcel_id: str, last_scan: datetime) -> None:
    await conn.execute("UPDATE shipments SET stalled_for = $2 WHERE parcel_id = $1",
                       parcel_id, last_scan)


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
                          occurred_at: Any, on_time: bool | None = None) -> None:
    await conn.execute(
        "UPDATE shipments SET status = $2, last_event_at = $3, delivered_at = CASE WHEN"
        " $2 = 'delivered' THEN $3 ELSE delivered_at END, on_time = coalesce($4, on_time)"
        " WHERE parcel_id = $1",
        parcel_id, status, occurred_at, on_time)


async def undelivered_count(conn: Conn, order_id: uuid.UUID) -> int:
    """Parcels of the order not delivered yet, merged parcels it shares included."""
    return int(await conn.fetchval(
        "SELECT count(*) FROM shipments WHERE status <> 'delivered' AND (order_id = $1 OR"
        " parcel_id IN (SELECT parcel_id FROM parcel_orders WHERE order_id = $1))", order_id))


async def link_parcels(conn: Conn, order_id: uuid.UUID,
                       parcels: dict[str, list[dict[str, Any]]]) -> None:
    """A merged parcel's other orders, each with its own lines in it."""
    await conn.executemany("INSERT INTO parcel_orders (parcel_id, order_id, lines) VALUES"
                           " ($1, $2, $3::jsonb) ON CONFLICT DO NOTHING",
                           [(p, order_id, json.dumps(lines)) for p, lines in parcels.items()])


async def orders_of_parcel(conn: Conn, parcel_id: str, owner: uuid.UUID) -> list[asyncpg.Record]:
    """The order a shipment belongs to, then any order merged into the same parcel; `own_lines`
    is a merged order's share of the parcel (NULL for the owner: the shipment's lines)."""
    return list(await conn.fetch(
        "SELECT o.*, po.lines AS own_lines FROM orders o LEFT JOIN parcel_orders po"
        " ON po.order_id = o.order_id AND po.parcel_id = $1"
        " WHERE o.order_id = $2 OR po.parcel_id IS NOT NULL"
        " ORDER BY o.order_id = $2 DESC, o.order_key FOR UPDATE OF o", parcel_id, owner))


async def restrictions(conn: Conn | asyncpg.Pool) -> list[dict[str, Any]]:
    rows = await conn.fetch("SELECT * FROM destination_restrictions ORDER BY country, attribute")
    return [{"country": r["country"], "attribute": r["attribute"], "note": r["note"],
             "updated_at": r["updated_at"].isoformat()} for r in rows]


async def set_restriction(conn: Conn, country: str, attribute: str, note: str) -> None:
    await conn.execute(
        "INSERT INTO destination_restrictions (country, attribute, note) VALUES ($1, $2, $3)"
        " ON CONFLICT (country, attribute) DO UPDATE SET note = EXCLUDED.note,"
        " updated_at = now()", country, attribute, note)


async def drop_restriction(conn: Conn, country: str, attribute: str) -> bool:
    return bool(await conn.fetchval(
        "DELETE FROM destination_restrictions WHERE country = $1 AND attribute = $2 RETURNING 1",
        country, attribute))


async def latest_delivery(conn: Conn, order_id: uuid.UUID) -> Any:
    return await conn.fetchval("SELECT max(delivered_at) FROM shipments WHERE order_id = $1",
                               order_id)


async def shipments_of(pool: asyncpg.Pool, order_key: str) -> list[dict[str, Any]]:
    rows = await pool.fetch(
        "SELECT s.* FROM shipments s JOIN orders o USING (order_id) WHERE o.order_key = $1"
        " ORDER BY s.parcel_id", order_key)
    return [{**dict(r), "order_id": str(r["order_id"]), "lines": json.loads(r["lines"]),
             "trace": json.loads(r["trace"]), "cost": str(r["cost"]) if r["cost"] else None,
             "declared_value": str(r["declared_value"]) if r["declared_value"] else None,
             "customs": json.loads(r["customs"]) if r["customs"] else None,
             "hold_reasons": json.loads(r["hold_reasons"])}
            for r in rows]


async def held_parcels(pool: asyncpg.Pool) -> list[dict[str, Any]]:
    """The operators' queue: parcels of waiting orders that the dock stopped, oldest first."""
    rows = await pool.fetch(
        "SELECT s.parcel_id, o.order_key, s.warehouse, s.country, s.service,"
        " s.tracking_number, s.hold_reasons, s.created_at FROM shipments s"
        " JOIN orders o USING (order_id) WHERE s.status = 'held' AND o.status = 'waiting'"
        " AND s.hold_reasons <> '[]'::jsonb ORDER BY s.created_at, s.parcel_id LIMIT 500")
    return [{**dict(r), "hold_reasons": json.loads(r["hold_reasons"]),
             "created_at": r["created_at"].isoformat()} for r in rows]


# A carrier's scan statuses that are delivery exceptions (handlers.EXCEPTIONS less `lost`, which
# is its own kind); a parcel is stalled while the watchdog's mark is for its current silence.
EXCEPTION_KINDS = {"exception": ("failed_attempt", "exception", "returned_to_sender"),
                   "lost": ("lost",)}


async def parcel_exceptions(pool: asyncpg.Pool, kinds: set[str], limit: int
                            ) -> list[dict[str, Any]]:
    """Parcels in a delivery exception, lost, or stalled (per `kinds`), the most recent first,
    with the carrier's last word on each (its last scan's description)."""
    statuses = [s for k in ("exception", "lost") if k in kinds for s in EXCEPTION_KINDS[k]]
    rows = await pool.fetch(
        "SELECT s.parcel_id, o.order_key, s.warehouse, s.country, s.carrier, s.service,"
        " s.tracking_number, s.status, s.shipped_at, s.last_event_at, s.stalled_for,"
        " CASE WHEN s.status = 'lost' THEN 'lost' WHEN s.status = ANY($3::text[])"
        " THEN 'exception' ELSE 'stalled' END AS kind, t.description, t.location"
        " FROM shipments s JOIN orders o USING (order_id)"
        " LEFT JOIN LATERAL (SELECT description, location FROM tracking_events e"
        "   WHERE e.tracking_number = s.tracking_number AND e.status = s.status"
        "   ORDER BY e.occurred_at DESC LIMIT 1) t ON true"
        " WHERE (s.status IN ('failed_attempt', 'exception', 'returned_to_sender', 'lost')"
        "        OR s.stalled_for IS NOT NULL)"
        " AND (s.status = ANY($1::text[]) OR ($2 AND s.stalled_for IS NOT NULL"
        "      AND s.stalled_for = coalesce(s.last_event_at, s.shipped_at)"
        "      AND s.status NOT IN ('delivered', 'lost', 'returned_to_sender')))"
        " ORDER BY coalesce(s.last_event_at, s.shipped_at) DESC, s.parcel_id LIMIT $4",
        statuses, "stalled" in kinds, list(EXCEPTION_KINDS["exception"]), limit)
    return [dict(r) for r in rows]


async def shipments_by_parcels(conn: Conn, parcel_ids: list[str]) -> dict[str, asyncpg.Record]:
    """fulfillment's merged parcels: shipments another order already holds, by parcel_id."""
    rows = await conn.fetch("SELECT * FROM shipments WHERE parcel_id = ANY($1::text[])"
                            " ORDER BY parcel_id FOR UPDATE", parcel_ids)
    return {r["parcel_id"]: r for r in rows}


# --- a run of packed orders (handlers.order_packed): one statement each ----------------------

def orders_for_update_read(order_ids: list[uuid.UUID]) -> Read[dict[uuid.UUID, Row]]:
    """The orders of a run logistics knows, locked in order_id order."""
    return Read("SELECT * FROM orders WHERE order_id = ANY($1::uuid[])"
                " ORDER BY order_id FOR UPDATE", (order_ids,),
                lambda rows: {r["order_id"]: r for r in rows})


PER_ROUND = 4  # candidates per seed asked in one statement


async def free_tracking_numbers(conn: Conn, wanted: list[tuple[str, str]]) -> list[str]:
    """`free_tracking_number` for many (format, seed) at once, in order, each also avoiding
    the numbers given to those before it: a round of `PER_ROUND` candidates per seed in one
    statement (one round unless a seed's first candidates are all taken)."""
    out: list[str | None] = [None] * len(wanted)
    given: set[str] = set()
    for first in range(0, 100, PER_ROUND):
        todo = [i for i, n in enumerate(out) if n is None]
        if not todo:
            break
        candidates = {i: [domain.tracking_number(wanted[i][0],
                                                 domain.tracking_serial(wanted[i][1], a))
                          for a in range(first, first + PER_ROUND)] for i in todo}
        taken = {r["tracking_number"] for r in await conn.fetch(
            "SELECT tracking_number FROM shipments WHERE tracking_number = ANY($1::text[])",
            [n for ns in candidates.values() for n in ns])}
        for i in todo:
            number = next((n for n in candidates[i] if n not in taken and n not in given), None)
            if number is not None:
                given.add(number)
                out[i] = number
    missing = [wanted[i] for i, n in enumerate(out) if n is None]
    if missing:
        raise RuntimeError(f"no free tracking number for {missing[0][1]} in {missing[0][0]}"
                           " after 100 candidates")
    return [n for n in out if n is not None]


async def insert_orders(conn: Conn, rows: list[tuple[uuid.UUID, str, str, int, str | None,
                                                     str | None]]) -> None:
    """Orders (order_id, key, status, parcel count, correlation id, snapshot JSON)."""
    await conn.execute(
        "INSERT INTO orders (order_id, order_key, store, external_order_id, status, parcel_count,"
        " correlation_id, snapshot) SELECT id, key, split_part(key, ':', 1),"
        " substr(key, length(split_part(key, ':', 1)) + 2), st, n, corr, snap::jsonb"
        " FROM unnest($1::uuid[], $2::text[], $3::text[], $4::int[], $5::text[], $6::text[])"
        " AS v(id, key, st, n, corr, snap)",
        *(list(col) for col in zip(*rows, strict=True)))


SHIPMENT_COLUMNS = ("parcel_id", "order_id", "warehouse", "country", "carrier", "service",
                    "tracking_number", "weight_g", "chargeable_g", "cost", "lines", "trace",
                    "zone", "transit_max", "declared_value", "customs", "hold_reasons", "status",
                    "measured_weight_g")


async def insert_shipments(conn: Conn, shipments: list[dict[str, Any]]) -> None:
    """Parcels with their choice and, when the dock check ran before the insert, its outcome
    (`status` held or shipped, shipped now; customs, holds and the dock reading), in one
    statement."""
    def col(name: str) -> list[Any]:
        if name in ("lines", "trace", "hold_reasons"):
            return [json.dumps(f[name]) for f in shipments]
        if name == "customs":
            return [json.dumps(f[name]) if f[name] else None for f in shipments]
        return [f[name] for f in shipments]
    await conn.execute(
        "INSERT INTO shipments (parcel_id, order_id, warehouse, country, carrier, service,"
        " tracking_number, status, weight_g, chargeable_g, cost, lines, trace, zone, transit_max,"
        " declared_value, customs, hold_reasons, label_weight_g, measured_weight_g, shipped_at)"
        " SELECT pid, oid, wh, country, carrier, service, tn, st, w, cw, cost, lines::jsonb,"
        " trace::jsonb, zone, tmax, dv, customs::jsonb, hold::jsonb, w, measured,"
        " CASE WHEN st = 'shipped' THEN now() END"
        " FROM unnest($1::text[], $2::uuid[], $3::text[], $4::text[], $5::text[], $6::text[],"
        " $7::text[], $8::int[], $9::int[], $10::numeric[], $11::text[], $12::text[], $13::text[],"
        " $14::int[], $15::numeric[], $16::text[], $17::text[], $18::text[], $19::int[])"
        " WITH ORDINALITY AS v(pid, oid, wh, country, carrier, service, tn, w, cw, cost, lines,"
        " trace, zone, tmax, dv, customs, hold, st, measured, n) ORDER BY n",
        *(col(c) for c in SHIPMENT_COLUMNS))


async def link_parcels_many(conn: Conn, rows: list[tuple[str, uuid.UUID, list[Any]]]) -> None:
    """Merged parcels' other orders (parcel, order, its own lines in it)."""
    await conn.execute(
        "INSERT INTO parcel_orders (parcel_id, order_id, lines) SELECT pid, oid, lines::jsonb"
        " FROM unnest($1::text[], $2::uuid[], $3::text[]) AS v(pid, oid, lines)"
        " ON CONFLICT DO NOTHING",
        [p for p, _, _ in rows], [o for _, o, _ in rows], [json.dumps(ln) for _, _, ln in rows])


async def set_orders_status(conn: Conn, order_ids: list[uuid.UUID], status: str) -> None:
    await conn.execute("UPDATE orders SET status = $2, updated_at = now()"
                       " WHERE order_id = ANY($1::uuid[])", order_ids, status)


async def shipments_of_orders(conn: Conn, order_ids: list[uuid.UUID]) -> list[asyncpg.Record]:
    """The shipments of these orders, locked, by order then parcel."""
    return await conn.fetch(
        "SELECT * FROM shipments WHERE order_id = ANY($1::uuid[]) ORDER BY order_id, parcel_id"
        " FOR UPDATE", order_ids)


async def set_checked_many(conn: Conn, rows: list[tuple[str, dict[str, Any] | None,
                                                        list[dict[str, str]], int | None]]
                           ) -> None:
    """`set_checked` for many parcels (parcel, customs, hold reasons, dock reading)."""
    await conn.execute(
        "UPDATE shipments s SET customs = v.customs::jsonb, hold_reasons = v.reasons::jsonb,"
        " measured_weight_g = v.measured FROM unnest($1::text[], $2::text[], $3::text[],"
        " $4::int[]) AS v(pid, customs, reasons, measured) WHERE s.parcel_id = v.pid",
        [p for p, _, _, _ in rows],
        [json.dumps(c) if c else None for _, c, _, _ in rows],
        [json.dumps(r) for _, _, r, _ in rows], [m for _, _, _, m in rows])


async def mark_shipped_many(conn: Conn, order_ids: list[uuid.UUID]) -> None:
    await conn.execute(
        "UPDATE shipments SET status = 'shipped', shipped_at = now(), hold_reasons = '[]'"
        " WHERE order_id = ANY($1::uuid[]) AND status = 'held'", order_ids)
