"""Inventory's source selection (split shipments), substitutes, restock ETA, price difference
and reorder hints (services/inventory/domain.py): pure, no I/O."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.inventory.domain import (
    ExpectedReceipt,
    Line,
    Product,
    choose_plan,
    merge_lines,
    partial_plan,
    price_difference,
    reorder_hint,
    restock_eta,
    split_plan,
    substitutes,
)

PRIORITIES = {"US": ["WH-LA", "WH-SZ"], "DE": ["WH-FRA", "WH-SZ"], "*": ["WH-SZ"]}


def stock(**per_wh: dict[str, int]) -> dict[str, dict[str, int]]:
    base: dict[str, dict[str, int]] = {"WH-LA": {}, "WH-SZ": {}, "WH-FRA": {}}
    return {**base, **{k.replace("_", "-"): v for k, v in per_wh.items()}}


# --- choose_plan / split_plan -----------------------------------------------------------------

def test_one_warehouse_in_the_destinations_region_comes_first() -> None:
    # Given every warehouse can fill the order
    avail = stock(WH_LA={"A": 5}, WH_SZ={"A": 5}, WH_FRA={"A": 5})
    # When a German order is planned
    plans = choose_plan([Line("A", 2)], "DE", avail, PRIORITIES, True, 1.5)
    # Then Frankfurt is tried first, and the trace says why
    assert list(plans[0].allocations) == ["WH-FRA"]
    assert "destination DE" in plans[0].trace[0]


def test_split_only_when_no_single_warehouse_can_fill_and_the_store_allows_it() -> None:
    # Given A only in LA and B only in Shenzhen
    avail = stock(WH_LA={"A": 1}, WH_SZ={"B": 1})
    lines = [Line("A", 1), Line("B", 1)]
    # When the store allows splits, the plan spans both; when not, there is no plan
    plans = choose_plan(lines, "US", avail, PRIORITIES, True, 1.5)
    assert len(plans) == 1
    assert plans[0].allocations == {"WH-LA": [Line("A", 1)], "WH-SZ": [Line("B", 1)]}
    assert "no single warehouse" in plans[0].trace[0]
    assert choose_plan(lines, "US", avail, PRIORITIES, False, 1.5) == []


def test_split_prefers_fewer_warehouses_and_the_region_within_the_penalty() -> None:
    # Given A in every warehouse and B in Shenzhen and Frankfurt only
    avail = stock(WH_LA={"A": 1}, WH_SZ={"B": 1}, WH_FRA={"A": 1, "B": 1})
    # When a US order for A and 2 B is planned (no single warehouse has 2 B)
    plan = split_plan([Line("A", 1), Line("B", 2)], "US", avail, PRIORITIES, 1.5)
    # Then the two warehouses that cover it are used
    assert plan is not None
    assert sum(ln.quantity for lines in plan.allocations.values() for ln in lines) == 3
    assert set(plan.allocations) == {"WH-SZ", "WH-FRA"}  # the only pair that covers it
    assert "penalty 1.5" in plan.trace[0]


def test_a_split_names_its_warehouses_in_priority_order_whatever_the_skus() -> None:
    # Given the SKU sorting first is in the second-priority warehouse
    avail = stock(WH_LA={"Z": 1}, WH_SZ={"A": 1})
    plan = split_plan([Line("A", 1), Line("Z", 1)], "US", avail, PRIORITIES, 1.5)
    assert plan is not None
    assert list(plan.allocations) == ["WH-LA", "WH-SZ"]
    assert plan.trace[0].startswith("split WH-LA+WH-SZ")


def test_a_line_may_be_split_between_warehouses() -> None:
    avail = stock(WH_LA={"A": 2}, WH_SZ={"A": 3})
    plan = split_plan([Line("A", 5)], "US", avail, PRIORITIES, 1.0)
    assert plan is not None
    assert plan.allocations == {"WH-LA": [Line("A", 2)], "WH-SZ": [Line("A", 3)]}


@given(st.dictionaries(st.sampled_from(["WH-LA", "WH-SZ", "WH-FRA"]),
                       st.dictionaries(st.sampled_from(["A", "B", "C"]),
                                       st.integers(min_value=0, max_value=5)), min_size=1),
       st.lists(st.tuples(st.sampled_from(["A", "B", "C"]), st.integers(min_value=1, max_value=6)),
                min_size=1, max_size=4),
       st.sampled_from(["US", "DE", "JP"]))
def test_every_plan_fills_the_order_exactly_and_within_stock(avail: dict[str, dict[str, int]],
                                                             raw: list[tuple[str, int]],
                                                             dest: str) -> None:
    lines = [Line(s, q) for s, q in raw]
    want = {ln.sku: ln.quantity for ln in merge_lines(lines)}
    for plan in choose_plan(lines, dest, avail, PRIORITIES, True, 1.5):
        got: dict[str, int] = {}
        for wh, wl in plan.allocations.items():
            for ln in wl:
                assert ln.quantity <= avail[wh].get(ln.sku, 0)
                got[ln.sku] = got.get(ln.sku, 0) + ln.quantity
        assert got == want
    # and a partial plan never takes more than there is, and what it lacks is the rest
    part, short = partial_plan(lines, dest, avail, PRIORITIES, True)
    taken: dict[str, int] = {}
    for wl in part.allocations.values():
        for ln in wl:
            taken[ln.sku] = taken.get(ln.sku, 0) + ln.quantity
    for sku, q in want.items():
        assert taken.get(sku, 0) + sum(s.quantity for s in short if s.sku == sku) == q


def test_partial_without_split_ships_from_the_warehouse_holding_most() -> None:
    avail = stock(WH_LA={"A": 1}, WH_SZ={"A": 2, "B": 1})
    part, short = partial_plan([Line("A", 3), Line("B", 1)], "US", avail, PRIORITIES, False)
    assert part.allocations == {"WH-SZ": [Line("A", 2), Line("B", 1)]}
    assert short == [Line("A", 1)]


# --- substitutes ------------------------------------------------------------------------------

MUG = Product("MUG", "kitchen", Decimal("10.00"), frozenset({"fragile"}))


@pytest.mark.parametrize(("candidate", "in_stock", "offered"), [
    (Product("MUG2", "kitchen", Decimal("11.00"), frozenset()), 5, True),
    (Product("MUG2", "kitchen", Decimal("12.00"), frozenset({"fragile"})), 5, True),   # at band
    (Product("MUG2", "kitchen", Decimal("12.01"), frozenset()), 5, False),             # too dear
    (Product("MUG2", "kitchen", Decimal("7.99"), frozenset()), 5, False),              # too cheap
    (Product("MUG2", "garden", Decimal("10.00"), frozenset()), 5, False),              # category
    (Product("MUG2", "kitchen", Decimal("10.00"), frozenset()), 1, False),             # stock
    (Product("MUG2", "kitchen", Decimal("10.00"), frozenset({"battery"})), 5, False),  # hazard
    (Product("MUG2", "kitchen", Decimal("10.00"), frozenset({"magnetic"})), 5, False),
    (Product("MUG2", "kitchen", Decimal("10.00"), frozenset({"oversize"})), 5, True),  # not hazard
    (Product("MUG2", "kitchen", Decimal("10.00"), frozenset(), active=False), 5, False),
])
def test_substitutes_follow_category_stock_price_band_and_hazards(candidate: Product,
                                                                  in_stock: int,
                                                                  offered: bool) -> None:
    got = substitutes(MUG, [MUG, candidate], {"MUG": 0, "MUG2": in_stock}, 2, Decimal("0.2"))
    assert got == (["MUG2"] if offered else [])


def test_a_hazard_the_original_has_is_no_obstacle_and_closest_price_comes_first() -> None:
    torch = Product("TORCH", "tools", Decimal("20.00"), frozenset({"battery"}))
    others = [Product("T2", "tools", Decimal("23.00"), frozenset({"battery"})),
              Product("T3", "tools", Decimal("19.50"), frozenset())]
    assert substitutes(torch, others, {"T2": 9, "T3": 9}, 1, Decimal("0.2")) == ["T3", "T2"]


# --- restock ETA, price difference, reorder hints ---------------------------------------------

def d(day: int) -> datetime:
    return datetime(2026, 12, day, tzinfo=UTC)


def test_restock_eta_is_when_the_last_short_line_is_covered() -> None:
    expected = [ExpectedReceipt("A", 1, d(3)), ExpectedReceipt("A", 5, d(9)),
                ExpectedReceipt("B", 10, d(5))]
    assert restock_eta([Line("A", 1)], expected) == d(3)
    assert restock_eta([Line("A", 4), Line("B", 2)], expected) == d(9)
    assert restock_eta([Line("A", 7)], expected) is None   # not enough on the way
    assert restock_eta([Line("C", 1)], expected) is None   # nothing on the way


def test_restock_eta_counts_what_older_backorders_will_take_first() -> None:
    expected = [ExpectedReceipt("A", 2, d(3)), ExpectedReceipt("A", 5, d(9))]
    assert restock_eta([Line("A", 1)], expected, {"A": 1}) == d(3)
    assert restock_eta([Line("A", 1)], expected, {"A": 2}) == d(9)
    assert restock_eta([Line("A", 1)], expected, {"A": 7}) is None


def test_price_difference_is_substitute_price_minus_paid_times_quantity() -> None:
    diff = price_difference({"MUG": Decimal("10.00"), "TEE": Decimal("5.00")},
                            {"MUG2": Decimal("11.50")}, {"MUG": "MUG2"}, {"MUG": 2, "TEE": 1})
    assert diff == Decimal("3.00")


@pytest.mark.parametrize(("avail", "s7", "s30", "lead", "waiting", "cover", "low"), [
    (70, 70, 90, 14, 0, 7.0, True),       # a surge this week: 10/day, a week of cover
    (300, 7, 300, 14, 0, 30.0, False),    # the month's rate is the faster: 10/day, 30 days
    (50, 0, 0, 14, 0, None, False),       # no sales: no cover figure, not low
    (50, 0, 0, 14, 3, None, True),        # orders already wait for it
])
def test_reorder_hint_days_of_cover_against_lead_time(avail: int, s7: int, s30: int, lead: int,
                                                      waiting: int, cover: float | None,
                                                      low: bool) -> None:
    hint = reorder_hint("A", avail, s7, s30, lead, waiting)
    assert hint.days_of_cover == cover
    assert hint.low is low
