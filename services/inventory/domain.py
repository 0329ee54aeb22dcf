"""Inventory's rules: where to take stock from, and what is short. Pure: no Kafka, no SQL.

The database enforces the one rule that must hold under any race (`on_hand - reserved >= 0`);
these functions decide *which* reservation to attempt and explain why.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from itertools import combinations


@dataclass(frozen=True)
class Line:
    sku: str
    quantity: int


@dataclass
class Plan:
    """A candidate allocation: warehouse -> lines, with the reasoning that chose it."""

    allocations: dict[str, list[Line]]
    trace: list[str] = field(default_factory=list)


def merge_lines(lines: Sequence[Line]) -> list[Line]:
    """One line per SKU, sorted by SKU: locks are always taken in the same order (no deadlocks)."""
    total: dict[str, int] = {}
    for ln in lines:
        total[ln.sku] = total.get(ln.sku, 0) + ln.quantity
    return [Line(sku, q) for sku, q in sorted(total.items())]


def candidate_warehouses(destination: str, warehouses: Sequence[str],
                         priorities: Mapping[str, Sequence[str]]) -> list[str]:
    """Warehouses in the order to try for a destination: its configured priority first (the
    region's warehouse), then the rest by name, so the choice is deterministic."""
    preferred = [w for w in priorities.get(destination, priorities.get("*", ())) if w in warehouses]
    return preferred + sorted(w for w in warehouses if w not in preferred)


def single_warehouse_plans(lines: Sequence[Line], destination: str,
                           available: Mapping[str, Mapping[str, int]],
                           priorities: Mapping[str, Sequence[str]]) -> list[Plan]:
    """Every warehouse that can fill the whole order, best first. `available[wh][sku]`."""
    merged = merge_lines(lines)
    plans = []
    for wh in candidate_warehouses(destination, list(available), priorities):
        stock = available[wh]
        if all(stock.get(ln.sku, 0) >= ln.quantity for ln in merged):
            plans.append(Plan({wh: merged}, [f"{wh} can fill every line for {destination}"]))
    return plans


def short_lines(lines: Sequence[Line], available: Mapping[str, Mapping[str, int]]) -> list[Line]:
    """What is missing: per SKU, the quantity beyond the best single warehouse's stock. When
    each SKU exists somewhere but no warehouse has all of them, what the fullest warehouse (the
    one holding most of the order) lacks is reported."""
    merged = merge_lines(lines)
    best = {ln.sku: max((s.get(ln.sku, 0) for s in available.values()), default=0)
            for ln in merged}
    short = [Line(ln.sku, ln.quantity - best[ln.sku]) for ln in merged if best[ln.sku] < ln.quantity]
    if short or not available:
        return short or merged
    # Every SKU is in stock somewhere, but not together: short against the fullest warehouse.
    fullest = max(available, key=lambda w: sum(min(available[w].get(ln.sku, 0), ln.quantity)
                                                for ln in merged))
    return [Line(ln.sku, ln.quantity - available[fullest].get(ln.sku, 0)) for ln in merged
            if available[fullest].get(ln.sku, 0) < ln.quantity]


def counted_on_hand(counted: int, reserved: int) -> tuple[int, int]:
    """A cycle count sets on_hand; a count below what is reserved cannot be stored (the CHECK),
    so it is clamped and the difference reported as drift for an operator."""
    return max(counted, reserved), max(0, reserved - counted)


# --- source selection: split shipments --------------------------------------------------------
def split_plan(lines: Sequence[Line], destination: str,
               available: Mapping[str, Mapping[str, int]],
               priorities: Mapping[str, Sequence[str]], split_penalty: float,
               max_warehouses: int = 3) -> Plan | None:
    """The cheapest way to fill the whole order from several warehouses, or None.

    Every set of 2..max_warehouses warehouses is tried; within a set, each line is taken from
    its warehouses in priority order. Cost = sum of the warehouses' priority ranks (0 = the
    destination's own region) + `split_penalty` per extra warehouse, so fewer parcels win unless
    the region preference outweighs them. Ties go to the earlier set (deterministic)."""
    merged = merge_lines(lines)
    order = candidate_warehouses(destination, list(available), priorities)
    best: tuple[float, Plan] | None = None
    for size in range(2, min(max_warehouses, len(order)) + 1):
        for subset in combinations(order, size):
            filled = _fill(merged, subset, available)
            if filled is None or len(filled) < size:
                continue  # cannot fill, or a warehouse in the set is not needed (a smaller set)
            alloc = {w: filled[w] for w in subset}  # in priority order, whatever the SKUs' names
            cost = sum(order.index(w) for w in alloc) + split_penalty * (len(alloc) - 1)
            if best is None or cost < best[0]:
                trace = [f"split {'+'.join(alloc)}: cost {cost:g} (ranks"
                         f" {[order.index(w) for w in alloc]}, penalty {split_penalty:g}"
                         f" x {len(alloc) - 1})"]
                best = (cost, Plan(alloc, trace))
    return best[1] if best else None


def _fill(merged: Sequence[Line], warehouses: Sequence[str],
          available: Mapping[str, Mapping[str, int]]) -> dict[str, list[Line]] | None:
    out: dict[str, list[Line]] = {}
    for ln in merged:
        left = ln.quantity
        for wh in warehouses:
            take = min(left, max(0, available[wh].get(ln.sku, 0)))
            if take:
                out.setdefault(wh, []).append(Line(ln.sku, take))
                left -= take
            if not left:
                break
        if left:
            return None
    return out


def partial_plan(lines: Sequence[Line], destination: str,
                 available: Mapping[str, Mapping[str, int]],
                 priorities: Mapping[str, Sequence[str]], split_allowed: bool
                 ) -> tuple[Plan, list[Line]]:
    """What can ship now and what stays short ("ship what is there, backorder the rest"):
    from the best single warehouse, or from every warehouse in priority order when split."""
    merged = merge_lines(lines)
    order = candidate_warehouses(destination, list(available), priorities)
    if not split_allowed and order:  # the one warehouse holding most of the order
        order = [max(order, key=lambda w: (sum(min(available[w].get(ln.sku, 0), ln.quantity)
                                               for ln in merged), -order.index(w)))]
    alloc: dict[str, list[Line]] = {}
    short: list[Line] = []
    for ln in merged:
        left = ln.quantity
        for wh in order:
            take = min(left, max(0, available[wh].get(ln.sku, 0)))
            if take:
                alloc.setdefault(wh, []).append(Line(ln.sku, take))
                left -= take
        if left:
            short.append(Line(ln.sku, left))
    trace = [f"partial: {'+'.join(alloc) or 'nothing'} now,"
             f" short {[(s.sku, s.quantity) for s in short]}"]
    return Plan(alloc, trace), short


def choose_plan(lines: Sequence[Line], destination: str,
                available: Mapping[str, Mapping[str, int]],
                priorities: Mapping[str, Sequence[str]], split_allowed: bool,
                split_penalty: float) -> list[Plan]:
    """Plans to attempt, best first, each with the trace that explains it: single warehouses
    (destination's region first), then a split when the store allows it."""
    plans = single_warehouse_plans(lines, destination, available, priorities)
    order = candidate_warehouses(destination, list(available), priorities)
    head = f"destination {destination}: warehouse order {order}"
    for p in plans:
        p.trace.insert(0, head)
    if split_allowed:
        split = split_plan(lines, destination, available, priorities, split_penalty)
        if split is not None:
            split.trace.insert(0, head + ("; no single warehouse can fill every line" if not plans
                                          else "; split kept as a fallback"))
            plans.append(split)
    return plans


# --- a run of accepted orders, decided one after another -------------------------------------
@dataclass
class Decision:
    """What to do with one accepted order, decided against the availability the orders before
    it in the run left (`decide_order`).

    - `reserved`: `plan` is reserved whole;
    - `partial` ("ship what is there"): `plan` is reserved now, `short` (the lines it lacks)
      becomes a continuation order, backordered with `backorder` (its own short lines);
    - `backordered`: nothing is reserved, `backorder` is what is short.
    `seen` is the availability this order saw once decided (for the substitutes on offer)."""

    outcome: str
    plan: Plan | None
    trace: list[str]
    short: list[Line] = field(default_factory=list)
    backorder: list[Line] = field(default_factory=list)
    seen: dict[str, dict[str, int]] = field(default_factory=dict)


def take(available: dict[str, dict[str, int]], plan: Plan) -> None:
    """Reserve `plan` in the working availability `available` (in place). A plan that asks for
    more than is there is a bug in the caller: the CHECKs of the stock table would refuse it."""
    for wh, lines in plan.allocations.items():
        for ln in lines:
            left = available.get(wh, {}).get(ln.sku, 0) - ln.quantity
            if left < 0:
                raise Refused(f"plan takes {ln.quantity} x {ln.sku} in {wh}; only"
                              f" {left + ln.quantity} left")
            available[wh][ln.sku] = left


def decide_order(lines: Sequence[Line], destination: str, available: dict[str, dict[str, int]],
                 priorities: Mapping[str, Sequence[str]], split_allowed: bool,
                 split_penalty: float, ship_available: bool) -> Decision:
    """One accepted order against the working availability, which it updates in place for the
    next order of the run (so a run decides exactly as its orders handled one by one, oldest
    first, never overselling): the best plan (`choose_plan`), else with `ship_available` what is
    there now and the rest as a continuation, else a backorder. The stock rows of every SKU are
    locked by the caller, so the best plan is the one reserved (no race left to lose)."""
    plans = choose_plan(lines, destination, available, priorities, split_allowed, split_penalty)
    if plans:
        plan = plans[0]
        take(available, plan)
        return Decision("reserved", plan, [*plan.trace, f"reserved {sorted(plan.allocations)}"])
    trace = ["no single warehouse can fill every line"
             + ("; no split can either" if split_allowed
                else "; the store does not allow split shipments"), "backorder"]
    if ship_available:
        partial, short = partial_plan(lines, destination, available, priorities, split_allowed)
        if partial.allocations and short:
            take(available, partial)
            seen = {wh: dict(s) for wh, s in available.items()}
            return Decision("partial", partial, [*trace, *partial.trace], short,
                            short_lines(short, available), seen)
    seen = {wh: dict(s) for wh, s in available.items()}
    return Decision("backordered", None, trace, [], short_lines(lines, available), seen)


# --- short picks: re-allocating the missing units ---------------------------------------------
Allocation = dict[str, list[Line]]


def take_out(allocation: Mapping[str, Sequence[Line]], warehouse: str, sku: str, q: int
             ) -> Allocation:
    """The allocation less `q` units of `sku` in `warehouse`; a warehouse left with nothing
    drops out."""
    out: Allocation = {}
    for wh, lines in allocation.items():
        kept = []
        for ln in merge_lines(lines):
            if wh == warehouse and ln.sku == sku:
                taken = min(q, ln.quantity)
                q -= taken
                ln = Line(sku, ln.quantity - taken)
            if ln.quantity:
                kept.append(ln)
        if kept:
            out[wh] = kept
    return out


def held(allocation: Mapping[str, Sequence[Line]], warehouse: str, sku: str) -> int:
    return sum(ln.quantity for ln in allocation.get(warehouse, ()) if ln.sku == sku)


def combine(a: Mapping[str, Sequence[Line]], b: Mapping[str, Sequence[Line]]) -> Allocation:
    """Two allocations of one order as one: per warehouse, one line per SKU."""
    return {wh: merge_lines([*a.get(wh, ()), *b.get(wh, ())]) for wh in sorted({*a, *b})}


def reallocation_candidates(warehouses: Sequence[str], allocation: Mapping[str, Sequence[Line]],
                            short_warehouse: str, split_allowed: bool, restocked: bool
                            ) -> list[str]:
    """Where the missing units of a short pick may come from. Never a warehouse that already
    holds another part of the order: fulfillment may have picked or packed it, and re-picks
    only the short warehouse and new ones. The short warehouse itself only after a restock (its
    count was just proved wrong). Any other warehouse adds a parcel set, so it needs a store
    that allows split shipments."""
    out = [w for w in warehouses if split_allowed and w not in allocation and w != short_warehouse]
    if restocked:
        out.append(short_warehouse)
    return sorted(out)


def reallocation_plans(missing: Sequence[Line], destination: str,
                       available: Mapping[str, Mapping[str, int]], candidates: Sequence[str],
                       priorities: Mapping[str, Sequence[str]], split_penalty: float
                       ) -> list[Plan]:
    """Plans for the missing units, by the same source selection as a new order (one
    warehouse, destination's region first, else the cheapest split), among `candidates`."""
    allowed = {w: available[w] for w in candidates if w in available}
    return choose_plan(missing, destination, allowed, priorities, True, split_penalty)


# --- backorders -------------------------------------------------------------------------------
HAZARDOUS = frozenset({"battery", "liquid", "powder", "magnetic"})


@dataclass(frozen=True)
class Product:
    sku: str
    category: str
    price: Decimal
    attributes: frozenset[str]
    active: bool = True


def substitutes(original: Product, candidates: Sequence[Product], in_stock: Mapping[str, int],
                needed: int, price_band: Decimal, limit: int = 5) -> list[str]:
    """Products a customer may take instead: same category, active, enough in stock (in one
    warehouse), price within +-band of the original, and no hazardous attribute the original
    lacks (a battery where there was none changes how it may ship). Closest price first."""
    low, high = original.price * (1 - price_band), original.price * (1 + price_band)
    extra_hazard = HAZARDOUS - original.attributes
    ok = [c for c in candidates
          if c.sku != original.sku and c.active and c.category == original.category
          and low <= c.price <= high and not (c.attributes & extra_hazard)
          and in_stock.get(c.sku, 0) >= needed]
    ok.sort(key=lambda c: (abs(c.price - original.price), c.sku))
    return [c.sku for c in ok[:limit]]


@dataclass(frozen=True)
class ExpectedReceipt:
    sku: str
    quantity: int
    eta: datetime


def restock_eta(short: Sequence[Line], expected: Sequence[ExpectedReceipt],
                ahead: Mapping[str, int] | None = None) -> datetime | None:
    """When every short line is covered by receipts expected (earliest first), the latest of
    those dates; None when some short line has no receipt in sight. `ahead[sku]` units are
    owed to older backorders first (restock fills oldest first), so they come off the top."""
    latest: datetime | None = None
    for ln in short:
        need = ln.quantity + (ahead or {}).get(ln.sku, 0)
        got = 0
        for r in sorted((r for r in expected if r.sku == ln.sku), key=lambda r: r.eta):
            got += r.quantity
            if got >= need:
                latest = r.eta if latest is None else max(latest, r.eta)
                break
        else:
            return None
    return latest


def price_difference(original: Mapping[str, Decimal], substitute_price: Mapping[str, Decimal],
                     substitutions: Mapping[str, str], quantities: Mapping[str, int]) -> Decimal:
    """What the substitution costs the customer (+) or owes them (-): per line, (substitute's
    catalogue price - the unit price paid) x quantity."""
    total = Decimal("0")
    for sku, sub in substitutions.items():
        total += (substitute_price[sub] - original[sku]) * quantities[sku]
    return total.quantize(Decimal("0.01"))


# --- the ledger, as a pure model of store.py's SQL --------------------------------------------
class Refused(Exception):
    """A movement the database would refuse (the CHECKs or the conditional UPDATE)."""


@dataclass
class Balance:
    on_hand: int = 0
    reserved: int = 0
    # Refurbished returns: their own stock state, never part of `available` (not sellable as new).
    refurbished: int = 0

    @property
    def available(self) -> int:
        return self.on_hand - self.reserved


@dataclass(frozen=True)
class Movement:
    kind: str
    on_hand_delta: int
    reserved_delta: int
    refurbished_delta: int = 0
    # Units the row is about when no balance moves (scrap).
    units: int | None = None


def reserve(b: Balance, q: int, kind: str = "reserve") -> Movement:
    """`UPDATE ... SET reserved = reserved + q WHERE on_hand - reserved >= q`."""
    if q <= 0 or b.available < q:
        raise Refused(f"reserve {q} with {b.available} available")
    return Movement(kind, 0, q)


def release(b: Balance, q: int) -> Movement:
    if q <= 0 or b.reserved < q:
        raise Refused(f"release {q} of {b.reserved} reserved")
    return Movement("release", 0, -q)


def commit(b: Balance, q: int) -> Movement:
    """Dispatch: goods promised to an order leave; on_hand and reserved both fall."""
    if q <= 0 or b.reserved < q:
        raise Refused(f"commit {q} of {b.reserved} reserved")
    return Movement("commit", -q, -q)


def receive(b: Balance, q: int, kind: str = "receipt") -> Movement:
    """Receipts and resellable returns."""
    if q < 0:
        raise Refused("negative receipt")
    return Movement(kind, q, 0)


def count(b: Balance, counted: int) -> tuple[Movement, int]:
    """Cycle count as an absolute quantity, clamped at what is reserved; returns the drift."""
    new, drift = counted_on_hand(counted, b.reserved)
    return Movement("count", new - b.on_hand, 0), drift


def damage(b: Balance, q: int) -> tuple[Movement, int]:
    """Write-off, never below what is promised to orders; returns what could not be written off."""
    new = max(b.on_hand - q, b.reserved)
    return Movement("damage", new - b.on_hand, 0), max(0, q - b.available)


def shortage(b: Balance, q: int) -> Movement:
    """A picker found the bin `q` units short of what an order holds: those units are not
    there, so they leave on_hand and the order's reservation together (like a dispatch to
    nowhere); `available` does not move. Never more than is reserved."""
    if q <= 0 or b.reserved < q:
        raise Refused(f"shortage {q} of {b.reserved} reserved")
    return Movement("shortage", -q, -q)


def refurbish(b: Balance, q: int) -> Movement:
    """A return graded `refurbish` enters the refurbished stock state, not on_hand: it is not
    sellable as new, so no reservation can take it."""
    if q <= 0:
        raise Refused("refurbish needs a positive quantity")
    return Movement("return_refurbish", 0, 0, q)


def scrap(b: Balance, q: int) -> Movement:
    """A return graded `scrap`: the goods were never restocked (a return only enters stock when
    graded resellable or refurbish), so no balance moves; the row records the write-off of `q`
    units so the ledger tells where every returned unit went."""
    if q <= 0:
        raise Refused("scrap needs a positive quantity")
    return Movement("scrap", 0, 0, 0, q)


def correction(b: Balance, ledger_on_hand: int, ledger_reserved: int,
               ledger_refurbished: int = 0) -> Movement | None:
    """Reconciliation: a ledger row that brings the ledger's sums to the balance (the balance is
    what the warehouse counted and orders hold; the ledger must explain it). None if balanced."""
    d_on, d_res = b.on_hand - ledger_on_hand, b.reserved - ledger_reserved
    d_ref = b.refurbished - ledger_refurbished
    return Movement("correction", d_on, d_res, d_ref) if (d_on or d_res or d_ref) else None


def apply(b: Balance, m: Movement) -> Balance:
    new = Balance(b.on_hand + m.on_hand_delta, b.reserved + m.reserved_delta,
                  b.refurbished + m.refurbished_delta)
    if new.reserved < 0 or new.available < 0 or new.refurbished < 0:
        raise Refused(f"{m.kind} would leave on_hand {new.on_hand}, reserved {new.reserved},"
                      f" refurbished {new.refurbished}")
    return new


# --- reorder hints ----------------------------------------------------------------------------
@dataclass(frozen=True)
class ReorderHint:
    sku: str
    available: int
    velocity_7d: float
    velocity_30d: float
    days_of_cover: float | None
    lead_time_days: int
    low: bool


def reorder_hint(sku: str, available: int, sold_7d: int, sold_30d: int, lead_time_days: int,
                 backordered: int = 0) -> ReorderHint:
    """Days of cover = available / daily velocity, the faster of the 7- and 30-day rates (a
    recent surge must not hide behind a quiet month). Low when cover is shorter than the lead
    time, or when orders already wait for the SKU."""
    v7, v30 = sold_7d / 7, sold_30d / 30
    velocity = max(v7, v30)
    cover = available / velocity if velocity > 0 else None
    low = backordered > 0 or (cover is not None and cover < lead_time_days)
    return ReorderHint(sku, available, round(v7, 3), round(v30, 3),
                       round(cover, 1) if cover is not None else None, lead_time_days, low)
