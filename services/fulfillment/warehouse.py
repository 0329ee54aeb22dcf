"""The warehouse floor: waves, pick lists, scan-to-verify, the weigh check and packing. The same
steps serve warehouse staff over HTTP (api.py, manual mode) and the simulated pickers (automatic
mode, the local stack's default), so both modes run the same rules and write the same rows.

Both go through the `Floor`: the orders a step works on and their picks, read under lock in a
constant number of statements, changed in memory by the steps (the rules are domain.py's), and
written with one statement per table; a simulated wave is worked whole, whatever its size.

Waves are released by one background task per instance (`start_waves`); it takes a Postgres
advisory lock for each pass, so with several instances only one releases at a time, and each
due wave is simulated under a lock of its own.
Every step works in a unit of work (shared/uow.py): the pass's, one per simulated wave (caused by
the wave, so a wave worked again emits the same ids), or an HTTP request's (no cause: an operator's
action is new each time). An order's `packed` is caused by `packed/<order>` whoever packs it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
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
from shared.db import TRANSIENT_DB_ERRORS, Conn, Read, Row, read_all, try_xact_lock
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
    # The longest the wave pass waits without a reason to look (picks made here, a deadline):
    # picks another instance made wait at most this long for their wave.
    idle_seconds: float = 1.0
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
    idle_seconds: float = Config.idle_seconds
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


# --- waves ------------------------------------------------------------------------------------

async def release_waves(uow: UnitOfWork, cfg: Config,
                        waiting: list[Row] | None = None) -> list[str]:
    """The waves due in every warehouse, from `waiting` (`store.waiting_summary`, read now when
    not given); each warehouse's waiting picks are read again under lock."""
    conn = uow.conn
    released = []
    for s in waiting if waiting is not None else await store.waiting_summary(conn):
        if not _due(s, cfg):
            continue
        warehouse = s["warehouse"]
        rows = {str(r["order_id"]): r for r in await store.waiting_picks(conn, warehouse)}
        # A backlog is released in as many full waves as it fills, the rest in one more.
        while rows:
            released.append(await _release_one(uow, cfg, warehouse, rows))
            if len(rows) < cfg.wave_size:
                break
    return released


def _due(waiting: Row, cfg: Config) -> bool:
    return domain.wave_due(waiting["waiting"], waiting["oldest_s"], cfg.wave_size,
                           cfg.wave_seconds)


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


# --- the floor: read under lock, decide in memory, write once per table -----------------------

@dataclass
class FloorOrder:
    order_id: uuid.UUID
    order_key: str
    status: str
    snapshot: str | None
    correlation_id: str | None

    def snap(self) -> OrderSnapshot:
        assert self.snapshot is not None, f"order {self.order_key} has no snapshot"
        return OrderSnapshot.model_validate_json(self.snapshot)


@dataclass
class FloorPick:
    """One order's work in one warehouse, as the floor's steps change it."""

    order: FloorOrder
    warehouse: str
    seq: int
    lines: list[tuple[str, int]]
    wave_id: str | None
    group_id: str | None
    status: str
    scanned: dict[str, int]
    expected_g: int | None
    measured_g: int | None

    @property
    def order_id(self) -> uuid.UUID:
        return self.order.order_id

    @property
    def order_key(self) -> str:
        return self.order.order_key

    @property
    def expected(self) -> dict[str, int]:
        return domain.expected_units(self.lines)


@dataclass(frozen=True)
class ParcelLink:
    """A parcel an order is in, with that order's own lines in it (maybe none)."""

    parcel_id: str
    warehouse: str
    box: str
    weight_g: int
    lines: list[tuple[str, int]]  # the parcel's units, every order's
    own: list[dict[str, Any]]


class Floor:
    """What one step of the floor works on: a wave (the simulated pickers), a merge group or one
    order (a person, over HTTP), with every pick of those orders in every warehouse. Both modes
    go through it, so they run the same rules (domain.py) and write the same rows:

    - `Floor.lock` reads the orders locked in order_id order (as the handlers lock them), then
      their picks locked in arrival order (as a release locks the picks it waves): two
      statements, whatever the number of orders. Every writer of a pick in a wave (a step, a
      cancellation, a re-allocation) takes its order's lock first, so two of them on one order
      queue at the order (docs/fulfillment.md: the one exception, a release);
    - the steps (`scan`, `short`, `verify`, `weigh`, `hold`, `pack`) check and change that state
      in memory and emit as they go (`uow.publish`, `uow.status`: the outbox is written at
      commit); packing first reads the parcel numbers and the parcels the orders already have,
      for all its groups at once (`prepare_packing`);
    - `save` writes what changed: one statement per table (picks, orders, parcels, their
      orders) and the wave's closing.

    So a simulated wave takes the same number of statements for one order as for a hundred."""

    def __init__(self, uow: UnitOfWork, picks: list[FloorPick]) -> None:
        self.uow = uow
        self.picks = sorted(picks, key=lambda p: p.seq)  # arrival order, as waves take them
        self._products: dict[str, domain.Item] = {}
        self._next_parcel: dict[uuid.UUID, int] = {}  # lead order -> its next parcel number
        self._links: dict[uuid.UUID, list[ParcelLink]] = {}  # order -> the parcels it is in
        self._links_read: set[uuid.UUID] = set()  # orders whose parcels so far were read
        self._changed_picks: dict[tuple[uuid.UUID, str], FloorPick] = {}
        self._changed_orders: dict[uuid.UUID, FloorOrder] = {}
        self._new_parcels: list[tuple[domain.NewParcel, uuid.UUID, str, str | None]] = []

    @classmethod
    async def lock(cls, uow: UnitOfWork, *, order_id: uuid.UUID | None = None,
                   wave_id: str | None = None, group_id: str | None = None) -> Floor:
        """One order, or the orders of a wave (of one merge group of it), and all their picks,
        locked: two statements."""
        if order_id is not None:
            rows = await store.lock_orders(uow.conn, [order_id])
        else:
            assert wave_id is not None
            rows = await store.lock_wave_orders(uow.conn, wave_id, group_id)
        orders = {r["order_id"]: FloorOrder(r["order_id"], r["order_key"], r["status"],
                                            r["snapshot"], r["correlation_id"]) for r in rows}
        picks = [FloorPick(orders[r["order_id"]], r["warehouse"], r["seq"],
                           [(ln["sku"], ln["quantity"]) for ln in json.loads(r["lines"])],
                           r["wave_id"], r["group_id"], r["status"], json.loads(r["scanned"]),
                           r["expected_g"], r["measured_g"])
                 for r in (await store.lock_picks(uow.conn, list(orders)) if orders else [])]
        return cls(uow, picks)

    # --- finding picks -----------------------------------------------------------------------
    def in_wave(self, wave_id: str) -> list[FloorPick]:
        return [p for p in self.picks if p.wave_id == wave_id]

    def pick(self, order_id: uuid.UUID, warehouse: str) -> FloorPick:
        for p in self.picks:
            if p.order_id == order_id and p.warehouse == warehouse:
                return p
        raise NotReady(f"order {order_id} has no pick in {warehouse}")

    def group(self, wave_id: str, group_id: str, ready: frozenset[str]) -> list[FloorPick]:
        """The orders packed together (less those that dropped out: short, cancelled), each in
        a `ready` status, else NotReady."""
        picks = [p for p in self.picks if p.wave_id == wave_id and p.group_id == group_id
                 and p.status not in domain.OUT_OF_GROUP]
        if not picks:
            raise NotReady(f"nothing left to pack in group {group_id} of wave {wave_id}")
        why = domain.not_ready([(p.order_key, p.status) for p in picks], ready)
        if why:
            raise NotReady(why)
        return picks

    # --- changing it (written by `save`) -----------------------------------------------------
    def _set(self, pick: FloorPick, **fields: Any) -> None:
        for name, value in fields.items():
            setattr(pick, name, value)
        self._changed_picks[(pick.order_id, pick.warehouse)] = pick

    def _set_status(self, order: FloorOrder, status: str) -> None:
        order.status = status
        self._changed_orders[order.order_id] = order

    async def save(self, close_wave: str | None = None) -> None:
        """What the steps changed, one statement per table; then `close_wave` is done if none
        of its picks is open any more."""
        conn = self.uow.conn
        if self._changed_picks:
            await store.save_picks(conn, [
                (p.order_id, p.warehouse, p.status, p.scanned, p.expected_g, p.measured_g)
                for p in self._changed_picks.values()])
        if self._changed_orders:
            await store.set_statuses(conn, [(o.order_id, o.status)
                                            for o in self._changed_orders.values()])
        if self._new_parcels:
            await store.insert_parcels(conn, [
                (n.parcel_id, lead, warehouse, n.box.code, n.weight_g, n.lines, wave_id)
                for n, lead, warehouse, wave_id in self._new_parcels])
            await store.link_parcels(conn, [(n.parcel_id, order_id, own)
                                            for n, _, _, _ in self._new_parcels
                                            for order_id, own in n.shares.items()])
        if close_wave is not None:
            await store.close_wave_if_done(conn, close_wave)
        self._changed_picks.clear()
        self._changed_orders.clear()
        self._new_parcels.clear()

    # --- catalogue ---------------------------------------------------------------------------
    async def need_products(self, skus: Iterable[str]) -> None:
        """The SKUs' products, for what follows (reference data: no statement once cached)."""
        missing = set(skus) - self._products.keys()
        if missing:
            self._products.update(await store.products(self.uow, missing))

    async def units(self, lines: list[tuple[str, int]]) -> list[domain.Item]:
        await self.need_products(sku for sku, _ in lines)
        return domain.units(lines, self._products)

    async def plan(self, group: list[FloorPick]) -> list[domain.PackedBox]:
        """The boxes the group's units go in."""
        units = await self.units([line for p in group for line in p.lines])
        return domain.choose_boxes(units, await store.boxes(self.uow))

    # --- scan-to-verify and short picks ------------------------------------------------------
    async def scan(self, pick: FloorPick, code: str) -> dict[str, Any]:
        """Until the parcel is packed every scan is checked (one more unit after the last is an
        over-scan); a scan completes the pick only while it is being picked (not on QC
        hold)."""
        if pick.status not in domain.SCANNABLE:
            raise NotReady(f"order {pick.order_id} in {pick.warehouse} is {pick.status}")
        expected = pick.expected
        scanned = dict(pick.scanned)
        result = domain.verify_scan(code, expected, scanned,
                                    await store.gtins(self.uow.conn, list(expected)))
        if result.refused:
            self.uow.count(metrics.SCANS_REFUSED, result.refused)
            log.info("scan refused for order %s: %s", pick.order_id, result.refused)
            return {"accepted": False, "reason": result.refused, "sku": result.sku,
                    "remaining": domain.remaining(expected, scanned)}
        assert result.sku is not None
        scanned[result.sku] = scanned.get(result.sku, 0) + 1
        left = domain.remaining(expected, scanned)
        self._set(pick, scanned=scanned, status=domain.status_after_scan(pick.status, left))
        self.uow.count(metrics.UNITS_VERIFIED, pick.warehouse)
        return {"accepted": True, "reason": None, "sku": result.sku, "remaining": left,
                "verified": not left}

    def verify(self, pick: FloorPick) -> None:
        """The simulated picker scanned every unit of the pick (its refused scans counted by the
        caller)."""
        expected = pick.expected
        self._set(pick, scanned=expected, status=domain.status_after_scan(pick.status, {}))
        self.uow.count(metrics.UNITS_VERIFIED, pick.warehouse, amount=sum(expected.values()))

    async def short(self, pick: FloorPick, sku: str, missing: int) -> None:
        """The bin holds fewer than reserved: the order leaves the wave and waits for inventory
        to re-allocate (contract in ShortPicked); the rest of its merge group goes on without
        it."""
        if pick.status != "picking":
            raise NotReady(f"order {pick.order_id} in {pick.warehouse} is {pick.status}")
        order = pick.order
        self._set(pick, status="short")
        self._set_status(order, "short_picked")
        await self.uow.publish(topics.FULFILLMENT_SHORT_PICKED, order.order_key, ShortPicked(
            order_id=str(order.order_id), order_key=order.order_key, sku=sku,
            warehouse=pick.warehouse, missing=missing, correlation_id=order.correlation_id))
        self.uow.count(metrics.SHORT_PICKS, pick.warehouse)
        log.warning("order %s short-picked in %s: %s missing %d; asked inventory to re-allocate",
                    order.order_key, pick.warehouse, sku, missing)

    # --- weigh check and QC ------------------------------------------------------------------
    async def weigh(self, group: list[FloorPick], measured: int | Callable[[int], int],
                    cfg: Config) -> domain.WeighCheck:
        """Expected = the items plus the tare of the boxes chosen for them. Outside the
        tolerance the picks go on hold (the caller announces it: `hold`); a later weighing
        inside it releases them."""
        unscanned = [p.order_key for p in group if domain.remaining(p.expected, p.scanned)]
        if unscanned:  # held during picking: the units are still to be scanned
            raise NotReady("not every unit is scanned: " + ", ".join(unscanned))
        expected = sum(pb.weight_g for pb in await self.plan(group))
        check = domain.weigh_check(expected, measured(expected) if callable(measured)
                                   else measured, cfg.tolerance_pct, cfg.tolerance_min_g)
        for p in group:
            self._set(p, expected_g=check.expected_g, measured_g=check.measured_g,
                      status=check.status)
        if not check.ok:
            self.uow.count(metrics.WEIGH_CHECK_FAILURES, group[0].warehouse)
        return check

    async def hold(self, group: list[FloorPick], code: str, message: str) -> None:
        """The group's orders on QC hold: `on_hold` with the reason, no parcel, no label."""
        self.uow.count(metrics.QC_FAILURES, code)
        for p in group:
            self._set(p, status="on_hold")
            self._set_status(p.order, "on_hold")
            await order_status(self.uow, p.order.snap(), p.order.correlation_id, "on_hold",
                               reasons=[(code, message)],
                               details={"warehouse": p.warehouse, "wave_id": p.wave_id})
            log.warning("order %s on QC hold in %s: %s (%s)", p.order_key, p.warehouse, code,
                        message)

    # --- packing -----------------------------------------------------------------------------
    async def prepare_packing(self, groups: list[list[FloorPick]]) -> None:
        """Before packing `groups`: each lead order's next parcel number, counted under the
        leads' parcel locks (`store.lock_parcel_numbers`), and the parcels their orders are
        in already (a split order's other warehouses), announced with the new ones. Three
        statements for any number of groups; none for none."""
        leads = sorted({g[0].order_id for g in groups} - self._next_parcel.keys())
        orders = sorted({p.order_id for g in groups for p in g} - self._links_read)
        if not leads:
            return
        conn = self.uow.conn
        await store.lock_parcel_numbers(conn, leads)
        led = await store.parcels_led(conn, leads)
        self._next_parcel.update({lead: led.get(lead, 0) + 1 for lead in leads})
        self._links_read.update(orders)
        for r in await store.parcel_links(conn, orders):
            self._links.setdefault(r["linked"], []).append(ParcelLink(
                r["parcel_id"], r["warehouse"], r["box"], r["weight_g"],
                [(ln["sku"], ln["quantity"]) for ln in json.loads(r["lines"])],
                json.loads(r["own_lines"])))
        await self.need_products(sku for links in self._links.values() for link in links
                                 for sku, _ in link.lines)

    async def pack(self, wave_id: str, group_id: str) -> list[str]:
        """Box the group's units (one buyer's orders when merged), link every parcel to every
        order of the group (each with its own lines, maybe none), and announce `packed` for
        each order whose every pick is packed. `prepare_packing` first."""
        group = self.group(wave_id, group_id, domain.PACKABLE)
        lead, warehouse = group[0].order_id, group[0].warehouse
        if lead not in self._next_parcel:
            raise RuntimeError(f"group {group_id} of wave {wave_id} packed unprepared")
        parcels = domain.pack_parcels(lead, self._next_parcel[lead], await self.plan(group),
                                      [(p.order_id, p.expected) for p in group])
        self._next_parcel[lead] += len(parcels)
        for n in parcels:
            self._new_parcels.append((n, lead, warehouse, wave_id))
            lines = [(ln["sku"], ln["quantity"]) for ln in n.lines]
            for order_id, own in n.shares.items():
                self._links.setdefault(order_id, []).append(ParcelLink(
                    n.parcel_id, warehouse, n.box.code, n.weight_g, lines, own))
            self.uow.count(metrics.PARCELS_PACKED, n.box.code)
            if n.merged:
                self.uow.count(metrics.MERGED_PARCELS, warehouse)
        for p in group:
            self._set(p, status="packed")
        for p in group:
            if domain.order_done(q.status for q in self.picks if q.order_id == p.order_id):
                await self._finish(p.order)
        return [n.parcel_id for n in parcels]

    async def _finish(self, order: FloorOrder) -> None:
        """Every pick of the order is packed: `packed`, and the parcels for logistics. A merged
        parcel appears in each of its orders' events with the same parcel_id and weight, and
        with that order's own lines and value (inventory commits, and customs declares, per
        order)."""
        snap = order.snap()
        prices = domain.unit_prices((ln.sku, ln.unit_price) for ln in snap.lines)
        boxes = {b.code: b for b in await store.boxes(self.uow)}
        parcels = []
        for link in sorted(self._links.get(order.order_id, []), key=lambda x: x.parcel_id):
            items = await self.units(link.lines)
            box = boxes.get(link.box)
            parcels.append(Parcel(
                parcel_id=link.parcel_id, warehouse=link.warehouse, box=link.box,
                weight_g=link.weight_g,
                dims_mm=domain.outer_dims(box) if box else {"l": 0, "w": 0, "h": 0},
                lines=link.own, attributes=sorted({a for i in items for a in i.attributes}),
                declared_value=domain.declared_value(
                    ((ln["sku"], ln["quantity"]) for ln in link.own), prices)))
        self._set_status(order, "packed")
        details = {"parcels": [{"parcel_id": p.parcel_id, "warehouse": p.warehouse,
                                "box": p.box, "weight_g": p.weight_g} for p in parcels]}
        # An order is packed once: its events' ids derive from that, whichever pass (or person)
        # packed it, so a pass repeated after a restore from backup emits the same ids.
        with self.uow.caused_by(f"packed/{order.order_id}"):
            await order_status(self.uow, snap, order.correlation_id, "packed", details=details)
            await self.uow.publish(topics.FULFILLMENT_ORDER_PACKED, snap.key, OrderPacked(
                order_id=snap.order_id, order_key=snap.key, order=snap, parcels=parcels,
                correlation_id=order.correlation_id))


async def order_status(uow: UnitOfWork, snap: OrderSnapshot, correlation_id: str | None,
                       status: str, *, reasons: list[tuple[str, str]] | None = None,
                       details: dict[str, Any] | None = None) -> None:
    """`uow.status` for one order, with that order's own correlation id: a unit of work of the
    floor (a wave, a request) spans orders of many customers, so its cause carries none."""
    await uow.status(order_id=snap.order_id, store=snap.store,
                     external_order_id=snap.external_order_id, status=status, reasons=reasons,
                     details=details, correlation_id=correlation_id)


# --- manual mode: a person's step, one order or one merge group at a time ---------------------
# The API finds the pick with a plain read (`store.order_picks`); each step then
# locks what it works on through the floor, orders first, as the simulated waves do.

async def scan(uow: UnitOfWork, pick: asyncpg.Record, code: str) -> dict[str, Any]:
    floor = await Floor.lock(uow, order_id=pick["order_id"])
    result = await floor.scan(floor.pick(pick["order_id"], pick["warehouse"]), code)
    await floor.save()
    return result


async def short_pick(uow: UnitOfWork, pick: asyncpg.Record, sku: str, missing: int) -> None:
    floor = await Floor.lock(uow, order_id=pick["order_id"])
    await floor.short(floor.pick(pick["order_id"], pick["warehouse"]), sku, missing)
    await floor.save()


async def weigh(uow: UnitOfWork, wave_id: str, group_id: str,
                measured: int | Callable[[int], int], cfg: Config) -> dict[str, Any]:
    """The group's parcels on the scale (with a merged order, the whole parcel); outside the
    tolerance the group goes on QC hold (no label)."""
    floor = await Floor.lock(uow, wave_id=wave_id, group_id=group_id)
    group = floor.group(wave_id, group_id, domain.WEIGHABLE)
    check = await floor.weigh(group, measured, cfg)
    if not check.ok:
        await floor.hold(group, "qc_weight", check.message)
    await floor.save()
    return {"ok": check.ok, "expected_g": check.expected_g, "measured_g": check.measured_g,
            "tolerance_g": check.tolerance_g, "orders": [str(p.order_id) for p in group]}


async def qc_fail(uow: UnitOfWork, wave_id: str, group_id: str, code: str,
                  message: str) -> list[str]:
    floor = await Floor.lock(uow, wave_id=wave_id, group_id=group_id)
    group = floor.group(wave_id, group_id, domain.HOLDABLE)
    await floor.hold(group, code, message)
    await floor.save()
    return [str(p.order_id) for p in group]


async def pack(uow: UnitOfWork, wave_id: str, group_id: str) -> list[str]:
    floor = await Floor.lock(uow, wave_id=wave_id, group_id=group_id)
    await floor.prepare_packing([floor.group(wave_id, group_id, domain.PACKABLE)])
    parcel_ids = await floor.pack(wave_id, group_id)
    await floor.save(close_wave=wave_id)
    return parcel_ids


# --- automatic mode ---------------------------------------------------------------------------

async def simulate_wave(uow: UnitOfWork, wave_id: str, cfg: Config,
                        rng: random.Random) -> None:
    """The simulated pickers work a wave through: scans (with refused ones at the error rate),
    short picks, the scale, packing. A group put on QC hold waits for an operator.

    The whole wave at once, in a constant number of statements whatever its size (the floor's
    orders and picks, the parcel numbers and the parcels its orders have, then one write per
    table): the decisions are the same as order by order, in the same order (the random numbers
    are drawn pick by pick, then group by group), and so are the events."""
    floor = await Floor.lock(uow, wave_id=wave_id)
    for p in floor.in_wave(wave_id):
        if p.status != "picking":
            continue
        sim = domain.simulate_pick(p.lines, rng, cfg.scan_error_rate, cfg.short_pick_rate)
        if sim.wrong_scans:
            uow.count(metrics.SCANS_REFUSED, "wrong_item", amount=sim.wrong_scans)
        if sim.short:
            await floor.short(p, sim.short[0], sim.short[1])
            continue
        floor.verify(p)
    group_ids = [g for g in dict.fromkeys(p.group_id for p in floor.in_wave(wave_id)
                                          if p.status == "verified") if g is not None]
    if group_ids:  # the products of all the floor's picks (a split order's other parcels too)
        await floor.need_products(sku for p in floor.picks for sku, _ in p.lines)
    # The scale, group by group; then, in the same order, each group packed or put on hold.
    weighed = []
    for group_id in group_ids:
        group = floor.group(wave_id, group_id, domain.WEIGHABLE)
        weighed.append((group_id, group, await floor.weigh(
            group, lambda e: domain.simulated_weight(e, rng, cfg.weigh_error_rate), cfg)))
    await floor.prepare_packing([group for _, group, check in weighed if check.ok])
    for group_id, group, check in weighed:
        if check.ok:
            await floor.pack(wave_id, group_id)
        else:
            await floor.hold(group, "qc_weight", check.message)
    await floor.save(close_wave=wave_id)


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
        # A deadlock is rare: the floor locks orders in order_id order, then their picks, as
        # every other transaction of the service does (a wave sharing a split order with
        # another waits for it); a release locks waiting picks first, then their orders.
        log.warning("simulating wave %s met %s: %s; it is retried on the next pass", wave_id,
                    type(exc).__name__, exc)
    except Exception:
        log.exception("simulating wave %s failed; it is retried on the next pass. If this"
                      " repeats, look at the wave: GET /waves/%s", wave_id, wave_id)


# The longest the wave pass waits for the consumer to catch up before one pass runs anyway.
WAVES_DEFERRED_SECONDS = 60.0


# Set when a transaction that made picks wait has committed (handlers.stock_reserved): the
# pass of this instance looks at once instead of at its next deadline.
PICKS_WAITING = asyncio.Event()


@dataclass(frozen=True)
class FloorNow:
    """What the pass found before deciding anything (one statement, no transaction): the
    warehouses with a wave due, the released waves due for the simulated pickers, and the
    seconds until the next of either comes due, as far as this look can tell."""

    waiting: list[Row]
    release: bool
    due: list[str]
    next_in: float


async def floor_now(conn: Conn, cfg: Config, automatic: bool) -> FloorNow:
    waiting, released = await read_all(
        conn, store.waiting_read(), store.released_read() if automatic else Read.known([]))
    later = [cfg.wave_seconds - s["oldest_s"] for s in waiting if not _due(s, cfg)]
    later += [w["due_in"] for w in released if w["due_in"] > 0]
    return FloorNow(waiting, any(_due(s, cfg) for s in waiting),
                    [w["wave_id"] for w in released if w["due_in"] <= 0],
                    min(later, default=cfg.idle_seconds))


async def start_waves(runtime: Runtime) -> None:
    cfg = config()
    automatic = get_settings().shopkeeper_warehouse_mode == "automatic"
    rng = random.Random(FulfillmentSettings().seed)

    async def one_pass() -> float:
        """Release what is due and work the due waves; the seconds until the next deadline.
        Idle, a pass is one statement (`floor_now`)."""
        async with runtime.pool.acquire() as conn:
            now = await floor_now(conn, cfg, automatic)
        due, next_in = list(now.due), now.next_in
        if now.release:
            # Releasing publishes nothing: no cause needed.
            async with UnitOfWork.begin(runtime.pool, "fulfillment") as uow:
                if not await try_xact_lock(uow.conn, WAVE_LOCK):
                    return cfg.tick_seconds  # another instance is releasing: look again soon
                released = await release_waves(uow, cfg, now.waiting)
            if automatic and cfg.pick_seconds_per_line <= 0:
                due += released  # due as released
            elif released:  # due once picked: no sooner than one line's picking
                next_in = min(next_in, max(cfg.pick_seconds_per_line, cfg.tick_seconds))
        workers = asyncio.Semaphore(max(1, cfg.parallel_waves))

        async def work(wave_id: str) -> None:
            async with workers:
                await _simulate_alone(runtime, wave_id, cfg, rng)

        await asyncio.gather(*(work(w) for w in due))
        return next_in

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
        """A pass when picks were made to wait here (`PICKS_WAITING`), when the last pass's next
        deadline comes, and at least every `idle_seconds` (picks another instance made, a
        clock): never more often than every `tick_seconds`."""
        next_in = 0.0
        while True:
            await asyncio.sleep(cfg.tick_seconds)
            wait = min(next_in, cfg.idle_seconds) - cfg.tick_seconds
            if wait > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(PICKS_WAITING.wait(), wait)
            PICKS_WAITING.clear()
            if deferred():
                next_in = 0.0
                continue
            try:
                next_in = await one_pass()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # Postgres away: the next pass tries again
                next_in = 0.0
                log.warning("wave pass failed: %s: %s", type(exc).__name__, exc)

    log.info("waves: %d orders or %.1fs per warehouse, %s mode", cfg.wave_size, cfg.wave_seconds,
             "automatic" if automatic else "manual")
    runtime.spawn(loop(), "fulfillment-waves")
