"""Inventory's rules: where to take stock from, and what is short. Pure: no Kafka, no SQL.

The database enforces the one rule that must hold under any race (`on_hand - reserved >= 0`);
these functions decide *which* reservation to attempt and explain why.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field


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
