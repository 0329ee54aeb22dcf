"""Fulfillment's rules: which box, how heavy, what goes in which parcel. Pure functions."""

from __future__ import annotations

import hashlib
import random
import re
import uuid
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

DEFAULT_WEIGHT_G = 500
DEFAULT_DIMS = (150, 100, 80)
FRAGILE_PADDING_MM = 20  # bubble wrap on every side of a fragile item
FILL_RATIO = 0.85        # items never fill a box completely


@dataclass(frozen=True)
class Box:
    code: str
    inner: tuple[int, int, int]
    tare_g: int
    max_weight_g: int
    active: bool = True  # an inactive box is never chosen for packing (setup `boxes`)

    @property
    def volume(self) -> int:
        return self.inner[0] * self.inner[1] * self.inner[2]


@dataclass(frozen=True)
class Item:
    sku: str
    weight_g: int
    dims: tuple[int, int, int]
    attributes: tuple[str, ...] = ()

    @property
    def packed_dims(self) -> tuple[int, int, int]:
        pad = 2 * FRAGILE_PADDING_MM if "fragile" in self.attributes else 0
        return (self.dims[0] + pad, self.dims[1] + pad, self.dims[2] + pad)

    @property
    def volume(self) -> int:
        d = self.packed_dims
        return d[0] * d[1] * d[2]


@dataclass
class PackedBox:
    box: Box
    items: list[Item] = field(default_factory=list)

    @property
    def weight_g(self) -> int:
        return self.box.tare_g + sum(i.weight_g for i in self.items)


def units(lines: Iterable[tuple[str, int]], products: Mapping[str, Item]) -> list[Item]:
    """One Item per unit of `lines` (sku, quantity), from the SKUs' `products`."""
    out: list[Item] = []
    for sku, qty in lines:
        out.extend([products[sku]] * qty)
    return out


def fits_item(item: Item, box: Box) -> bool:
    """Any rotation: compare sorted dimensions."""
    return all(a <= b for a, b in zip(sorted(item.packed_dims), sorted(box.inner), strict=True))


def fits(items: Sequence[Item], box: Box) -> bool:
    return (all(fits_item(i, box) for i in items)
            and sum(i.volume for i in items) <= box.volume * FILL_RATIO
            and box.tare_g + sum(i.weight_g for i in items) <= box.max_weight_g)


def choose_boxes(items: Sequence[Item], boxes: Sequence[Box]) -> list[PackedBox]:
    """The smallest box that takes everything; else first-fit decreasing into as few boxes as
    possible, each then shrunk to the smallest box its contents fit. An item no box takes gets
    the largest box (an operator sees it as oversize). Only active boxes are chosen."""
    by_size = sorted((b for b in boxes if b.active), key=lambda b: (b.volume, b.max_weight_g))
    if not by_size:
        raise ValueError("no active box to pack in: activate one (setup section boxes)")
    for box in by_size:
        if fits(items, box):
            return [PackedBox(box, list(items))]
    largest = by_size[-1]
    packed: list[PackedBox] = []
    for item in sorted(items, key=lambda i: (-i.volume, i.sku)):
        for pb in packed:
            if fits([*pb.items, item], pb.box):
                pb.items.append(item)
                break
        else:
            packed.append(PackedBox(largest, [item]))
    for pb in packed:
        pb.box = next((b for b in by_size if fits(pb.items, b)), pb.box)
    return packed


def outer_dims(box: Box) -> dict[str, int]:
    """Outer dimensions: the inner ones plus 5 mm of cardboard each side."""
    l, w, h = box.inner  # noqa: E741
    return {"l": l + 10, "w": w + 10, "h": h + 10}


# --- waves ------------------------------------------------------------------------------------

def wave_due(waiting: int, oldest_age_s: float, size: int, max_wait_s: float) -> bool:
    """A warehouse releases a wave when `size` orders wait or the oldest has waited `max_wait_s`:
    full waves make picking efficient, the timer keeps a quiet warehouse from sitting on orders."""
    return waiting > 0 and (waiting >= size or oldest_age_s >= max_wait_s)


@dataclass(frozen=True)
class Waiting:
    """One order's part in one warehouse, waiting for a wave."""

    order_id: str
    express: bool
    seq: int  # arrival order (older first)


def wave_selection(waiting: Sequence[Waiting], size: int) -> list[Waiting]:
    """Express first, then oldest first, up to `size`."""
    return sorted(waiting, key=lambda w: (not w.express, w.seq))[:size]


# --- bins and the pick route --------------------------------------------------------------------

ZONES = ("A", "B", "C", "D")


@dataclass(frozen=True, order=True)
class Bin:
    zone: str
    aisle: int
    rack: int
    level: int

    @property
    def label(self) -> str:
        return f"{self.zone}-{self.aisle:02d}-{self.rack:02d}-{self.level}"


def seed_bin(sku: str) -> Bin:
    """Where a new SKU is slotted when no one has said: derived from its name, so every instance
    and every rebuild puts it in the same bin (an operator may move it: the table is the truth)."""
    h = int.from_bytes(hashlib.sha256(sku.encode()).digest()[:8], "big")
    return Bin(ZONES[h % 4], 1 + (h >> 8) % 12, 1 + (h >> 16) % 20, 1 + (h >> 24) % 5)


def route_key(b: Bin) -> tuple[str, int, int, int]:
    """Serpentine (S-shape) walk: zone by zone, aisle by aisle in ascending order; up odd aisles
    (racks ascending) and back down even ones (racks descending), so the picker never walks an
    aisle empty-handed; lower levels first at a rack."""
    return (b.zone, b.aisle, b.rack if b.aisle % 2 == 1 else -b.rack, b.level)


@dataclass(frozen=True)
class PickLine:
    sku: str
    bin: Bin
    quantity: int
    # The sort-to-order step: how many units of this SKU go to which order (tote).
    orders: tuple[tuple[str, int], ...]


def pick_list(parts: Sequence[tuple[str, Sequence[tuple[str, int]]]],
              bins: Mapping[str, Bin]) -> list[PickLine]:
    """One line per SKU across the wave (quantities consolidated), in route order, each with its
    split to orders. `parts`: (order_id, [(sku, quantity), ...])."""
    per_sku: dict[str, dict[str, int]] = {}
    for order_id, lines in parts:
        for sku, qty in lines:
            split = per_sku.setdefault(sku, {})
            split[order_id] = split.get(order_id, 0) + qty
    out = [PickLine(sku, bins.get(sku) or seed_bin(sku), sum(split.values()),
                    tuple(sorted(split.items())))
           for sku, split in per_sku.items()]
    return sorted(out, key=lambda p: (route_key(p.bin), p.sku))


# --- scan-to-verify ---------------------------------------------------------------------------

@dataclass(frozen=True)
class Scan:
    sku: str | None
    refused: str | None  # reason code: unknown_code, wrong_item, over_scan


def verify_scan(code: str, expected: Mapping[str, int], scanned: Mapping[str, int],
                gtins: Mapping[str, str]) -> Scan:
    """One unit scanned against an order: by SKU or by GTIN (when the catalogue gave one)."""
    sku = code if code in expected else gtins.get(code)
    if sku is None:
        return Scan(None, "wrong_item" if code else "unknown_code")
    if sku not in expected:
        return Scan(sku, "wrong_item")
    if scanned.get(sku, 0) >= expected[sku]:
        return Scan(sku, "over_scan")
    return Scan(sku, None)


def remaining(expected: Mapping[str, int], scanned: Mapping[str, int]) -> dict[str, int]:
    return {sku: q - scanned.get(sku, 0) for sku, q in expected.items() if q > scanned.get(sku, 0)}


def expected_units(lines: Iterable[tuple[str, int]]) -> dict[str, int]:
    """A pick's lines as units per SKU (a SKU on two lines counts once, summed)."""
    out: dict[str, int] = {}
    for sku, q in lines:
        out[sku] = out.get(sku, 0) + q
    return out


def status_after_scan(status: str, left: Mapping[str, int]) -> str:
    """A pick being picked is `verified` once nothing is left to scan; a pick in any other state
    (weighed, on QC hold) keeps it: a scan then only checks the unit."""
    return "verified" if not left and status == "picking" else status


# --- the steps of the floor, in turn ----------------------------------------------------------
# The statuses a pick may be in for each step: a step asked for out of turn is refused (409).
SCANNABLE = frozenset({"picking", "verified", "weighed", "on_hold"})
WEIGHABLE = frozenset({"verified", "weighed", "on_hold"})
HOLDABLE = frozenset({"picking", "verified", "weighed", "on_hold"})
PACKABLE = frozenset({"weighed"})
# The picks that leave their wave's merge group: the rest of the group goes on without them.
OUT_OF_GROUP = frozenset({"short", "cancelled"})


def not_ready(parts: Sequence[tuple[str, str]], ready: frozenset[str]) -> str | None:
    """(order key, pick status) of a merge group: why the group cannot take the step (some order
    of it is not in a `ready` status), or None."""
    late = [f"{key}: {status}" for key, status in parts if status not in ready]
    return "not every order of the parcel is ready: " + ", ".join(late) if late else None


def order_done(pick_statuses: Iterable[str]) -> bool:
    """An order is packed when every pick of it is: in every warehouse of its allocation (a
    cancelled pick of a live order is a warehouse dropped after a short pick)."""
    return all(s in ("packed", "cancelled") for s in pick_statuses)


# --- weigh check ------------------------------------------------------------------------------

def weight_tolerance_g(expected_g: int, pct: float = 3.0, min_g: int = 20) -> int:
    """The larger of `pct` % of the expected weight and `min_g` grams: a scale and the catalogue's
    weights are never exact, a missing or extra item is."""
    return max(round(expected_g * pct / 100), min_g)


def weight_ok(expected_g: int, measured_g: int, pct: float = 3.0, min_g: int = 20) -> bool:
    return abs(measured_g - expected_g) <= weight_tolerance_g(expected_g, pct, min_g)


@dataclass(frozen=True)
class WeighCheck:
    """A group's parcels on the scale: expected (items + tares), measured, and the verdict."""

    expected_g: int
    measured_g: int
    tolerance_g: int
    ok: bool

    @property
    def status(self) -> str:
        """The picks' status after it: weighed, or on QC hold (no label)."""
        return "weighed" if self.ok else "on_hold"

    @property
    def message(self) -> str:
        return (f"weighed {self.measured_g} g, expected {self.expected_g} g"
                f" ± {self.tolerance_g} g")


def weigh_check(expected_g: int, measured_g: int, pct: float = 3.0,
                min_g: int = 20) -> WeighCheck:
    return WeighCheck(expected_g, measured_g, weight_tolerance_g(expected_g, pct, min_g),
                      weight_ok(expected_g, measured_g, pct, min_g))


# --- packing ----------------------------------------------------------------------------------

def parcel_id(lead: uuid.UUID, n: int) -> str:
    """Parcels are numbered per lead order (the first of its merge group): `P-{lead}-{n}`, n
    counting on from the parcels the lead already has (an order split across warehouses is
    packed once per warehouse, each time as its own lead)."""
    return f"P-{lead.hex[:12]}-{n}"


def as_lines(counts: Mapping[str, int]) -> list[dict[str, Any]]:
    """Units per SKU as contract lines, by SKU, leaving out zeros."""
    return [{"sku": sku, "quantity": q} for sku, q in sorted(counts.items()) if q]


@dataclass(frozen=True)
class NewParcel:
    """A parcel packed for a merge group: its box and units, and each order's own lines in it
    (every order of the group, maybe with none: each order's `order_packed` then names the same
    parcels, and logistics ships them once, for whichever order comes first)."""

    parcel_id: str
    box: Box
    weight_g: int
    lines: list[dict[str, Any]]
    shares: dict[uuid.UUID, list[dict[str, Any]]]

    @property
    def merged(self) -> bool:
        """It carries units of more than one order."""
        return sum(1 for lines in self.shares.values() if lines) > 1


def pack_parcels(lead: uuid.UUID, first: int, planned: Sequence[PackedBox],
                 owed: Sequence[tuple[uuid.UUID, Mapping[str, int]]]) -> list[NewParcel]:
    """The boxes chosen for a group (`choose_boxes`) as parcels numbered from `first`, each
    order's units shared out to them in the group's order (`owed`: each order's units)."""
    left = [(order_id, Counter(units)) for order_id, units in owed]
    out = []
    for n, packed in enumerate(planned, first):
        counts = Counter(i.sku for i in packed.items)
        share: dict[uuid.UUID, Counter[str]] = {}
        for sku, q in sorted(counts.items()):
            for order_id, units in left:
                take = min(q, units[sku])
                if take:
                    share.setdefault(order_id, Counter())[sku] += take
                    units[sku] -= take
                    q -= take
        out.append(NewParcel(parcel_id(lead, n), packed.box, packed.weight_g, as_lines(counts),
                             {order_id: as_lines(share.get(order_id, Counter()))
                              for order_id, _ in left}))
    return out


def unit_prices(lines: Iterable[tuple[str, Decimal]]) -> dict[str, Decimal]:
    """Price per SKU of an order's lines (a SKU on two lines: the first line's price)."""
    out: dict[str, Decimal] = {}
    for sku, price in lines:
        out.setdefault(sku, price)
    return out


def declared_value(own: Iterable[tuple[str, int]], prices: Mapping[str, Decimal]) -> Decimal:
    """What an order's own units in a parcel are worth (customs, insurance): inventory commits
    and customs declares per order, so a merged parcel declares each order's part."""
    return sum((prices.get(sku, Decimal("0")) * q for sku, q in own), Decimal("0"))


# --- order merging ----------------------------------------------------------------------------

def normalise_address(address: Mapping[str, str | None]) -> str:
    """Case, punctuation and spacing do not make two addresses different."""
    parts = []
    for f in ("line1", "line2", "city", "region", "postal_code", "country"):
        v = (address.get(f) or "").lower()
        parts.append(" ".join(re.sub(r"[^\w\s]", " ", v).split()))
    return "|".join(parts)


def merge_key(customer_id: str, address: Mapping[str, str | None], shipping_option: str,
              warehouse: str) -> str:
    """Orders with one key may share a parcel: same buyer, same address, same warehouse and the
    same shipping option (an express order never waits for, nor travels as, an economy one)."""
    return "\x1f".join((customer_id, normalise_address(address), shipping_option, warehouse))


def merge_groups(parts: Sequence[tuple[str, str]]) -> dict[str, str]:
    """(order_id, merge key) of one wave -> order_id to its group id: the group's first order."""
    first: dict[str, str] = {}
    out: dict[str, str] = {}
    for order_id, key in parts:
        out[order_id] = first.setdefault(key, order_id)
    return out


# --- automatic mode: the simulated picker -----------------------------------------------------

@dataclass(frozen=True)
class SimulatedPick:
    wrong_scans: int
    short: tuple[str, int] | None  # (sku, units missing)


def simulate_pick(lines: Sequence[tuple[str, int]], rng: random.Random, scan_error_rate: float,
                  short_rate: float) -> SimulatedPick:
    """What a picker does: per unit a wrong item scanned (refused, then the right one) at
    `scan_error_rate`; per line the bin found short at `short_rate` (one unit missing)."""
    wrong = 0
    for sku, qty in lines:
        for _ in range(qty):
            if scan_error_rate and rng.random() < scan_error_rate:
                wrong += 1
        if short_rate and rng.random() < short_rate:
            return SimulatedPick(wrong, (sku, 1))
    return SimulatedPick(wrong, None)


def simulated_weight(expected_g: int, rng: random.Random, error_rate: float) -> int:
    """The scale: exact, or at `error_rate` off by 10 % and at least 50 g (an item missing or
    one too many)."""
    if error_rate and rng.random() < error_rate:
        delta = max(round(expected_g * 0.1), 50)
        return expected_g + (delta if rng.random() < 0.5 else -delta)
    return expected_g


# --- reserved orders arrive -------------------------------------------------------------------

@dataclass(frozen=True)
class Reserved:
    """One `inventory.stock_reserved` as the floor needs it: the order, where its units were
    reserved (`allocations`: [{"warehouse", "lines": [{"sku", "quantity"}]}]) and what decides
    whether it may share a parcel (buyer, address, shipping option)."""

    order_id: str
    order_key: str
    allocations: Sequence[Mapping[str, object]]
    customer_id: str
    address: Mapping[str, str | None]
    shipping_option: str


@dataclass(frozen=True)
class NewPick:
    """One order's part in one warehouse, to wait for that warehouse's next wave."""

    order_id: str
    warehouse: str
    lines: object  # the allocation's lines, as reserved
    express: bool
    merge_key: str


@dataclass
class ReservedPlan:
    """What a run of reservations does to the floor (`plan_reserved`)."""

    new: list[Reserved] = field(default_factory=list)           # orders to insert
    reallocated: list[Reserved] = field(default_factory=list)   # short-picked, re-allocated
    dropped: list[tuple[str, str]] = field(default_factory=list)  # picks (order, warehouse) out
    picks: list[NewPick] = field(default_factory=list)          # in arrival order
    # Per reservation, for the log: ("new", ""), ("reallocated", warehouses re-picked) or
    # ("ignored", the order's status).
    outcomes: list[tuple[str, str]] = field(default_factory=list)


def picks_for(order: Reserved, only: set[str] | None = None) -> list[NewPick]:
    """One pick per warehouse of the allocation (or of those in `only`). An order split across
    warehouses is never merged: its parcels already travel apart."""
    out = []
    for alloc in order.allocations:
        warehouse = str(alloc["warehouse"])
        if only is not None and warehouse not in only:
            continue
        key = (merge_key(order.customer_id, order.address, order.shipping_option, warehouse)
               if len(order.allocations) == 1 else f"order:{order.order_id}")
        out.append(NewPick(order.order_id, warehouse, alloc["lines"],
                           order.shipping_option == "express", key))
    return out


def plan_reserved(orders: Sequence[Reserved], status: Mapping[str, str],
                  picks: Mapping[str, Mapping[str, str]]) -> ReservedPlan:
    """A run of reservations, in order, against the orders' `status` and, for those found
    short, their `picks` (warehouse -> pick status). A new order joins the next wave of each
    warehouse it was allocated to. A second reservation of an order found short (inventory's
    answer to `fulfillment.short_picked`) re-picks the parts that were short and any warehouse
    new to the allocation; a warehouse whose whole part was short and moved elsewhere drops out
    (or the order would wait for it forever). Any other reservation of a known order changes
    nothing. An order reserved twice in the run sees what the first reservation did."""
    plan = ReservedPlan()
    now = dict(status)
    for order in orders:
        current = now.get(order.order_id)
        if current is None:
            plan.new.append(order)
            plan.picks += picks_for(order)
            plan.outcomes.append(("new", ""))
        elif current == "short_picked":
            had = picks.get(order.order_id, {})
            allocated = {str(a["warehouse"]) for a in order.allocations}
            again = {w for w in allocated if had.get(w, "short") == "short"}
            plan.dropped += [(order.order_id, w) for w in sorted(had)
                             if had[w] == "short" and w not in allocated]
            plan.reallocated.append(order)
            plan.picks += picks_for(order, again)
            plan.outcomes.append(("reallocated", ", ".join(sorted(again)) or "no warehouse"))
        else:
            plan.outcomes.append(("ignored", current))
            continue
        now[order.order_id] = "awaiting_pick"
    return plan
