"""The warehouse floor: waves, pick lists, scan-to-verify, the weigh check and packing. The same
steps serve warehouse staff over HTTP (api.py, manual mode) and the simulated pickers (automatic
mode, the local stack's default), so both modes run the same rules and write the same rows.

Waves are released by one background task per instance (`start_waves`); it takes a Postgres
advisory lock for each pass, so with several instances only one releases and simulates at a time.
Every step works in a unit of work (shared/uow.py): the pass's, one per simulated wave (caused by
the wave, so a wave worked again emits the same ids), or an HTTP request's (no cause: an operator's
action is new each time). An order's `packed` is caused by `packed/<order>` whoever packs it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import asyncpg
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared import topics
from shared.contracts import (
    OrderPacked,
    OrderSnapshot,
    Parcel,
    ShortPicked,
)
from shared.db import TRANSIENT_DB_ERRORS, Conn, try_xact_lock
from shared.service import Runtime
from shared.settings import get_settings
from shared.uow import UnitOfWork

from . import domain, metrics, store

log = logging.getLogger(__name__)

WAVE_LOCK = "shopkeeper.fulfillment.waves"


class NotReady(Exception):
    """A step asked for out of turn (weigh before every unit is scanned, pack before weighing):
    the API answers 409 with this message."""


@dataclass(frozen=True)
class Config:
    """From SHOPKEEPER_FULFILLMENT_* variables. The defaults keep the local stack fast and
    error-free; a real warehouse wants bigger waves (e.g. 50 orders or 15 minutes)."""

    wave_size: int = 20
    wave_seconds: float = 0.5
    tick_seconds: float = 0.2
    # Automatic mode: how many due waves the simulated floor works at once, each in its own
    # transaction. One at a time, a pass spent most of its time waiting for Postgres round trips
    # and capped the whole pipeline near 85 orders/s here (docs/BENCHMARKS.md).
    parallel_waves: int = 4
    pick_seconds_per_line: float = 0.0
    scan_error_rate: float = 0.0
    short_pick_rate: float = 0.0
    weigh_error_rate: float = 0.0
    tolerance_pct: float = 3.0
    tolerance_min_g: int = 20
    merge: bool = True

    @classmethod
    def from_env(cls) -> Config:
        settings = FulfillmentSettings()
        return cls(**{f: getattr(settings, f) for f in cls.__dataclass_fields__})


class FulfillmentSettings(BaseSettings):
    """SHOPKEEPER_FULFILLMENT_<FIELD> for each field of `Config` (same defaults), and `SEED` for
    the simulated floor's random numbers; a bad value is an error naming the variable."""

    model_config = SettingsConfigDict(env_prefix="SHOPKEEPER_FULFILLMENT_", extra="ignore",
                                      case_sensitive=False, env_ignore_empty=True)

    wave_size: int = Config.wave_size
    wave_seconds: float = Config.wave_seconds
    tick_seconds: float = Config.tick_seconds
    parallel_waves: int = Config.parallel_waves
    pick_seconds_per_line: float = Config.pick_seconds_per_line
    scan_error_rate: float = Config.scan_error_rate
    short_pick_rate: float = Config.short_pick_rate
    weigh_error_rate: float = Config.weigh_error_rate
    tolerance_pct: float = Config.tolerance_pct
    tolerance_min_g: int = Config.tolerance_min_g
    merge: bool = Config.merge
    seed: str | None = None


def config() -> Config:
    """Read again on every call (cheap), as the variables are: tests start instances with their
    own."""
    return Config.from_env()


def _lines(pick: asyncpg.Record) -> list[tuple[str, int]]:
    return [(ln["sku"], ln["quantity"]) for ln in json.loads(pick["lines"])]


def _expected(pick: asyncpg.Record) -> dict[str, int]:
    out: dict[str, int] = {}
    for sku, q in _lines(pick):
        out[sku] = out.get(sku, 0) + q
    return out


# --- waves ------------------------------------------------------------------------------------

async def release_waves(uow: UnitOfWork, cfg: Config) -> list[str]:
    conn = uow.conn
    released = []
    for s in await store.waiting_summary(conn):
        if not domain.wave_due(s["waiting"], s["oldest_s"], cfg.wave_size, cfg.wave_seconds):
            continue
        warehouse = s["warehouse"]
        rows = {str(r["order_id"]): r for r in await store.waiting_picks(conn, warehouse)}
        # A backlog is released in as many full waves as it fills, the rest in one more.
        while rows:
            released.append(await _release_one(uow, cfg, warehouse, rows))
            if len(rows) < cfg.wave_size:
                break
    return released


async def _release_one(uow: UnitOfWork, cfg: Config, warehouse: str,
                       rows: dict[str, asyncpg.Record]) -> str:
    """One wave from `rows` (the warehouse's waiting picks), which loses those it takes."""
    chosen = domain.wave_selection(
        [domain.Waiting(oid, r["express"], r["seq"]) for oid, r in rows.items()],
        cfg.wave_size)
    groups = domain.merge_groups(
        [(w.order_id, rows[w.order_id]["merge_key"] if cfg.merge else w.order_id)
         for w in chosen])
    lines = domain.pick_list([(w.order_id, _lines(rows[w.order_id])) for w in chosen], {})
    wave_id = f"W-{warehouse}-{uuid.uuid4().hex[:10]}"
    await store.insert_wave(uow.conn, wave_id, warehouse, len(chosen),
                            cfg.pick_seconds_per_line * len(lines))
    await store.assign_picks(uow.conn, warehouse, wave_id,
                             [(uuid.UUID(w.order_id), groups[w.order_id]) for w in chosen])
    uow.observe(metrics.WAVE_SIZE, len(chosen), warehouse)
    uow.count(metrics.LINES_PICKED, warehouse, amount=len(lines))
    log.info("wave %s released in %s: %d orders (%d express), %d pick lines, %d parcels"
             " to pack", wave_id, warehouse, len(chosen), sum(w.express for w in chosen),
             len(lines), len(set(groups.values())))
    for w in chosen:
        del rows[w.order_id]
    return wave_id


async def wave_pick_list(conn: Conn, wave_id: str) -> list[domain.PickLine]:
    picks = [p for p in await store.wave_picks(conn, wave_id) if p["status"] != "cancelled"]
    parts = [(p["order_key"], _lines(p)) for p in picks]
    skus = sorted({sku for _, lines in parts for sku, _ in lines})
    return domain.pick_list(parts, await store.bins(conn, skus))


# --- scan-to-verify and short picks -----------------------------------------------------------

async def scan(uow: UnitOfWork, pick: asyncpg.Record, code: str) -> dict[str, Any]:
    """Until the parcel is packed every scan is checked (one more unit after the last is an
    over-scan); a scan completes the pick only while it is being picked (not on QC hold)."""
    if pick["status"] not in ("picking", "verified", "weighed", "on_hold"):
        raise NotReady(f"order {pick['order_id']} in {pick['warehouse']} is {pick['status']}")
    expected = _expected(pick)
    scanned: dict[str, int] = json.loads(pick["scanned"])
    result = domain.verify_scan(code, expected, scanned,
                                await store.gtins(uow.conn, list(expected)))
    if result.refused:
        uow.count(metrics.SCANS_REFUSED, result.refused)
        log.info("scan refused for order %s: %s", pick["order_id"], result.refused)
        return {"accepted": False, "reason": result.refused, "sku": result.sku,
                "remaining": domain.remaining(expected, scanned)}
    assert result.sku is not None
    scanned[result.sku] = scanned.get(result.sku, 0) + 1
    left = domain.remaining(expected, scanned)
    status = pick["status"] if left or pick["status"] != "picking" else "verified"
    await store.set_pick(uow.conn, pick["order_id"], pick["warehouse"], scanned=scanned,
                         status=status)
    uow.count(metrics.UNITS_VERIFIED, pick["warehouse"])
    return {"accepted": True, "reason": None, "sku": result.sku, "remaining": left,
            "verified": not left}


async def short_pick(uow: UnitOfWork, pick: asyncpg.Record, sku: str, missing: int) -> None:
    """The bin holds fewer than reserved: the order leaves the wave and waits for inventory to
    re-allocate (contract in ShortPicked); the rest of its merge group goes on without it."""
    if pick["status"] != "picking":
        raise NotReady(f"order {pick['order_id']} in {pick['warehouse']} is {pick['status']}")
    order = await store.get_order(uow.conn, pick["order_id"])
    assert order is not None
    await store.set_pick(uow.conn, pick["order_id"], pick["warehouse"], status="short")
    await store.set_status(uow.conn, pick["order_id"], "short_picked")
    await uow.publish(topics.FULFILLMENT_SHORT_PICKED, order["order_key"], ShortPicked(
        order_id=str(pick["order_id"]), order_key=order["order_key"], sku=sku,
        warehouse=pick["warehouse"], missing=missing, correlation_id=order["correlation_id"]))
    uow.count(metrics.SHORT_PICKS, pick["warehouse"])
    log.warning("order %s short-picked in %s: %s missing %d; asked inventory to re-allocate",
                order["order_key"], pick["warehouse"], sku, missing)


async def order_status(uow: UnitOfWork, snap: OrderSnapshot, correlation_id: str | None,
                       status: str, *, reasons: list[tuple[str, str]] | None = None,
                       details: dict[str, Any] | None = None) -> None:
    """`uow.status` for one order, with that order's own correlation id: a unit of work of the
    floor (a wave, a request) spans orders of many customers, so its cause carries none."""
    await uow.status(order_id=snap.order_id, store=snap.store,
                     external_order_id=snap.external_order_id, status=status, reasons=reasons,
                     details=details, correlation_id=correlation_id)


# --- weigh check, QC and packing --------------------------------------------------------------

async def _plan(uow: UnitOfWork, picks: list[asyncpg.Record]) -> list[domain.PackedBox]:
    units = await store.items(uow, [line for p in picks for line in _lines(p)])
    return domain.choose_boxes(units, await store.boxes(uow))


async def _group(conn: Conn, wave_id: str, group_id: str, ready: set[str]
                 ) -> list[asyncpg.Record]:
    picks = await store.group_picks(conn, wave_id, group_id)
    if not picks:
        raise NotReady(f"nothing left to pack in group {group_id} of wave {wave_id}")
    late = [f"{p['order_key']}: {p['status']}" for p in picks if p["status"] not in ready]
    if late:
        raise NotReady("not every order of the parcel is ready: " + ", ".join(late))
    return picks


async def weigh(uow: UnitOfWork, wave_id: str, group_id: str,
                measured: int | Callable[[int], int], cfg: Config) -> dict[str, Any]:
    """Expected = the items plus the tare of the boxes chosen for them. Outside the tolerance the
    parcel goes on QC hold (no label); a later weighing inside it releases the hold."""
    picks = await _group(uow.conn, wave_id, group_id, {"verified", "weighed", "on_hold"})
    unscanned = [p["order_key"] for p in picks
                 if domain.remaining(_expected(p), json.loads(p["scanned"]))]
    if unscanned:  # held during picking: the units are still to be scanned
        raise NotReady("not every unit is scanned: " + ", ".join(unscanned))
    expected = sum(pb.weight_g for pb in await _plan(uow, picks))
    measured_g = measured(expected) if callable(measured) else measured
    ok = domain.weight_ok(expected, measured_g, cfg.tolerance_pct, cfg.tolerance_min_g)
    tolerance = domain.weight_tolerance_g(expected, cfg.tolerance_pct, cfg.tolerance_min_g)
    for p in picks:
        await store.set_pick(uow.conn, p["order_id"], p["warehouse"], expected_g=expected,
                             measured_g=measured_g, status="weighed" if ok else "on_hold")
    if not ok:
        uow.count(metrics.WEIGH_CHECK_FAILURES, picks[0]["warehouse"])
        await _hold(uow, picks, "qc_weight",
                    f"weighed {measured_g} g, expected {expected} g ± {tolerance} g")
    return {"ok": ok, "expected_g": expected, "measured_g": measured_g, "tolerance_g": tolerance,
            "orders": [str(p["order_id"]) for p in picks]}


async def qc_fail(uow: UnitOfWork, wave_id: str, group_id: str, code: str,
                  message: str) -> list[str]:
    picks = await _group(uow.conn, wave_id, group_id,
                         {"picking", "verified", "weighed", "on_hold"})
    for p in picks:
        await store.set_pick(uow.conn, p["order_id"], p["warehouse"], status="on_hold")
    await _hold(uow, picks, code, message)
    return [str(p["order_id"]) for p in picks]


async def _hold(uow: UnitOfWork, picks: list[asyncpg.Record], code: str, message: str) -> None:
    uow.count(metrics.QC_FAILURES, code)
    for p in picks:
        snap = OrderSnapshot.model_validate_json(p["snapshot"])
        await store.set_status(uow.conn, p["order_id"], "on_hold")
        await order_status(uow, snap, p["correlation_id"], "on_hold", reasons=[(code, message)],
                           details={"warehouse": p["warehouse"], "wave_id": p["wave_id"]})
        log.warning("order %s on QC hold in %s: %s (%s)", p["order_key"], p["warehouse"],
                    code, message)


async def pack(uow: UnitOfWork, wave_id: str, group_id: str) -> list[str]:
    """Box the group's units (one buyer's orders when merged), link every parcel to the orders
    whose units it carries, and announce `packed` for each order whose every pick is packed."""
    conn = uow.conn
    picks = await _group(conn, wave_id, group_id, {"weighed"})
    lead: uuid.UUID = picks[0]["order_id"]
    warehouse = picks[0]["warehouse"]
    prefix = f"P-{lead.hex[:12]}-"
    n = await store.next_parcel_number(conn, lead)
    owed = {p["order_id"]: Counter(_expected(p)) for p in picks}
    parcel_ids = []
    for packed in await _plan(uow, picks):
        parcel_id = f"{prefix}{n}"
        n += 1
        counts = Counter(i.sku for i in packed.items)
        await store.insert_parcel(conn, parcel_id, lead, warehouse, packed.box.code,
                                  packed.weight_g, _as_lines(counts))
        share: dict[uuid.UUID, Counter[str]] = {}
        for sku, q in sorted(counts.items()):
            for order_id, left in owed.items():
                take = min(q, left[sku])
                if take:
                    share.setdefault(order_id, Counter())[sku] += take
                    left[sku] -= take
                    q -= take
        # Every order of a merged group is linked to every parcel of it (with its own lines,
        # maybe none): each order's `order_packed` then names the same parcels, and logistics
        # ships them once, for whichever order comes first.
        for order_id in owed:
            await store.link_parcel(conn, parcel_id, order_id,
                                    _as_lines(share.get(order_id, Counter())), wave_id)
        uow.count(metrics.PARCELS_PACKED, packed.box.code)
        if len(share) > 1:
            uow.count(metrics.MERGED_PARCELS, warehouse)
        parcel_ids.append(parcel_id)
    for p in picks:
        await store.set_pick(conn, p["order_id"], p["warehouse"], status="packed")
    for p in picks:
        # (a cancelled pick of a live order is a warehouse dropped after a short pick)
        if all(q["status"] in ("packed", "cancelled")
               for q in await store.order_picks(conn, p["order_id"])):
            await _finish(uow, p["order_id"])
    await store.close_wave_if_done(conn, wave_id)
    return parcel_ids


def _as_lines(counts: Counter[str]) -> list[dict[str, Any]]:
    return [{"sku": sku, "quantity": q} for sku, q in sorted(counts.items()) if q]


async def _finish(uow: UnitOfWork, order_id: uuid.UUID) -> None:
    """Every pick of the order is packed: `packed`, and the parcels for logistics. A merged
    parcel appears in each of its orders' events with the same parcel_id and weight, and with
    that order's own lines and value (inventory commits, and customs declares, per order)."""
    conn = uow.conn
    row = await store.get_order(conn, order_id)
    assert row is not None
    snap = OrderSnapshot.model_validate_json(row["snapshot"])
    prices = {ln.sku: ln.unit_price for ln in reversed(snap.lines)}
    parcels = []
    for r in await store.parcels_of_order(conn, order_id):
        own = json.loads(r["own_lines"])
        items = await store.items(uow, [(ln["sku"], ln["quantity"]) for ln in json.loads(
            r["lines"])])
        box = next((b for b in await store.boxes(uow) if b.code == r["box"]), None)
        dims = domain.outer_dims(box) if box else {"l": 0, "w": 0, "h": 0}
        parcels.append(Parcel(
            parcel_id=r["parcel_id"], warehouse=r["warehouse"], box=r["box"],
            weight_g=r["weight_g"], dims_mm=dims, lines=own,
            attributes=sorted({a for i in items for a in i.attributes}),
            declared_value=sum((prices.get(ln["sku"], Decimal("0")) * ln["quantity"]
                                for ln in own), Decimal("0"))))
    await store.set_status(conn, order_id, "packed")
    details = {"parcels": [{"parcel_id": p.parcel_id, "warehouse": p.warehouse, "box": p.box,
                            "weight_g": p.weight_g} for p in parcels]}
    # An order is packed once: its events' ids derive from that, whichever pass (or person)
    # packed it, so a pass repeated after a restore from backup emits the same ids.
    with uow.caused_by(f"packed/{order_id}"):
        await order_status(uow, snap, row["correlation_id"], "packed", details=details)
        await uow.publish(topics.FULFILLMENT_ORDER_PACKED, snap.key, OrderPacked(
            order_id=snap.order_id, order_key=snap.key, order=snap, parcels=parcels,
            correlation_id=row["correlation_id"]))


# --- automatic mode ---------------------------------------------------------------------------

async def simulate_wave(uow: UnitOfWork, wave_id: str, cfg: Config,
                        rng: random.Random) -> None:
    """The simulated pickers work a wave through: scans (with refused ones at the error rate),
    short picks, the scale, packing. A group put on QC hold waits for an operator."""
    conn = uow.conn
    verified = []
    for p in await store.wave_picks(conn, wave_id):
        if p["status"] != "picking":
            continue
        sim = domain.simulate_pick(_lines(p), rng, cfg.scan_error_rate, cfg.short_pick_rate)
        if sim.wrong_scans:
            uow.count(metrics.SCANS_REFUSED, "wrong_item", amount=sim.wrong_scans)
        if sim.short:
            await short_pick(uow, p, sim.short[0], sim.short[1])
            continue
        verified.append((p["order_id"], p["warehouse"], _expected(p)))
        uow.count(metrics.UNITS_VERIFIED, p["warehouse"], amount=sum(_expected(p).values()))
    if verified:
        await store.set_picks_verified(conn, verified)
    groups = dict.fromkeys(p["group_id"] for p in await store.wave_picks(conn, wave_id)
                           if p["status"] == "verified")
    for group_id in groups:
        result = await weigh(uow, wave_id, group_id,
                             lambda e: domain.simulated_weight(e, rng, cfg.weigh_error_rate),
                             cfg)
        if result["ok"]:
            await pack(uow, wave_id, group_id)
    await store.close_wave_if_done(conn, wave_id)


async def _simulate_alone(runtime: Runtime, wave_id: str, cfg: Config,
                          rng: random.Random) -> None:
    """One due wave in its own unit of work (its outbox rows in one statement at the end),
    caused by the wave: worked again after a rollback, it emits the same ids. The wave's lock
    keeps a second instance (or an overlapping pass) off it; the work re-reads the picks after
    taking it, so a wave finished meanwhile has nothing left to do."""
    try:
        async with UnitOfWork.begin(runtime.pool, "fulfillment", cause=f"wave:{wave_id}") as uow:
            if not await try_xact_lock(uow.conn, f"{WAVE_LOCK}:{wave_id}"):
                return
            await simulate_wave(uow, wave_id, cfg, rng)
    except asyncio.CancelledError:
        raise
    except TRANSIENT_DB_ERRORS as exc:
        # e.g. two waves sharing an order split across warehouses, locked in opposite order
        log.warning("simulating wave %s met %s: %s; it is retried on the next pass", wave_id,
                    type(exc).__name__, exc)
    except Exception:
        log.exception("simulating wave %s failed; it is retried on the next pass. If this"
                      " repeats, look at the wave: GET /waves/%s", wave_id, wave_id)


# The longest the wave pass waits for the consumer to catch up before one pass runs anyway.
WAVES_DEFERRED_SECONDS = 60.0


async def start_waves(runtime: Runtime) -> None:
    cfg = config()
    automatic = get_settings().shopkeeper_warehouse_mode == "automatic"
    rng = random.Random(FulfillmentSettings().seed)

    async def one_pass() -> None:
        # Releasing publishes nothing: no cause needed.
        async with UnitOfWork.begin(runtime.pool, "fulfillment") as uow:
            if not await try_xact_lock(uow.conn, WAVE_LOCK):
                return
            await release_waves(uow, cfg)
            due = await store.due_waves(uow.conn) if automatic else []
        workers = asyncio.Semaphore(max(1, cfg.parallel_waves))

        async def work(wave_id: str) -> None:
            async with workers:
                await _simulate_alone(runtime, wave_id, cfg, rng)

        await asyncio.gather(*(work(w) for w in due))

    deferred_since: list[float] = []

    def deferred() -> bool:
        """While the consumer re-reads the past (after a restore's rewind, or downtime), the
        picks waiting are not the present ones: a cancellation still to be re-read may be for
        an order the pass would pack. Waves wait until it has caught up, for at most
        WAVES_DEFERRED_SECONDS at a stretch (an overloaded consumer never stops the floor)."""
        if not runtime.consumer.catching_up:
            if deferred_since:
                log.info("waves: the consumer caught up after %.0f s; releasing waves again",
                         time.monotonic() - deferred_since[0])
            deferred_since.clear()
            return False
        if not deferred_since:
            deferred_since.append(time.monotonic())
            log.info("waves: the consumer is re-reading the past; waves wait until it has"
                     " caught up (at most %.0f s)", WAVES_DEFERRED_SECONDS)
        if time.monotonic() - deferred_since[0] < WAVES_DEFERRED_SECONDS:
            return True
        log.warning("waves: the consumer is still catching up after %.0f s; one pass runs"
                    " anyway", WAVES_DEFERRED_SECONDS)
        deferred_since[:] = [time.monotonic()]
        return False

    async def loop() -> None:
        while True:
            await asyncio.sleep(cfg.tick_seconds)
            if deferred():
                continue
            try:
                await one_pass()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # Postgres away: the next pass tries again
                log.warning("wave pass failed: %s: %s", type(exc).__name__, exc)

    log.info("waves: %d orders or %.1fs per warehouse, %s mode", cfg.wave_size, cfg.wave_seconds,
             "automatic" if automatic else "manual")
    runtime.spawn(loop(), "fulfillment-waves")
