"""Inventory's allocation rules (services/inventory/domain.py): pure, no I/O."""

from __future__ import annotations

from collections import Counter

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.inventory.domain import (
    Line,
    candidate_warehouses,
    counted_on_hand,
    merge_lines,
    short_lines,
    single_warehouse_plans,
)

PRIORITIES = {"US": ["WH-LA", "WH-NJ"], "DE": ["WH-BER"], "*": ["WH-NJ"]}
WAREHOUSES = ["WH-NJ", "WH-BER", "WH-LA", "WH-SG"]

# --- merge_lines ------------------------------------------------------------------------------


def test_merge_lines_sums_quantities_per_sku_and_sorts_by_sku() -> None:
    # Given unsorted lines with a repeated SKU
    lines = [Line("TEE", 1), Line("MUG", 2), Line("TEE", 3)]
    # When they are merged
    merged = merge_lines(lines)
    # Then there is one line per SKU, sorted, with summed quantities
    assert merged == [Line("MUG", 2), Line("TEE", 4)]


def test_merge_lines_of_nothing_is_nothing() -> None:
    # Given no lines
    # When they are merged
    # Then the result is empty
    assert merge_lines([]) == []


SKUS = st.sampled_from(["A", "B", "C", "D", "E"])
LINES = st.lists(st.builds(Line, SKUS, st.integers(min_value=1, max_value=999)), max_size=20)


@given(LINES)
def test_merge_lines_preserves_every_skus_total_quantity(lines: list[Line]) -> None:
    # Given any lines
    # When they are merged
    merged = merge_lines(lines)
    # Then per-SKU totals are unchanged, SKUs are unique and sorted
    expected: Counter[str] = Counter()
    for ln in lines:
        expected[ln.sku] += ln.quantity
    assert {ln.sku: ln.quantity for ln in merged} == dict(expected)
    skus = [ln.sku for ln in merged]
    assert skus == sorted(set(skus))


# --- candidate_warehouses ---------------------------------------------------------------------

@pytest.mark.parametrize(
    ("destination", "expected"),
    [
        pytest.param("US", ["WH-LA", "WH-NJ", "WH-BER", "WH-SG"], id="destination-priority"),
        pytest.param("DE", ["WH-BER", "WH-LA", "WH-NJ", "WH-SG"], id="other-destination"),
        pytest.param("JP", ["WH-NJ", "WH-BER", "WH-LA", "WH-SG"], id="star-fallback"),
    ],
)
def test_candidate_warehouses_put_priorities_first_then_the_rest_by_name(
        destination: str, expected: list[str]) -> None:
    # Given configured priorities and four warehouses
    # When the candidates for a destination are listed
    result = candidate_warehouses(destination, WAREHOUSES, PRIORITIES)
    # Then the destination's priorities (or '*') come first, the rest sorted by name
    assert result == expected


def test_candidate_warehouses_sorted_by_name_without_any_priority() -> None:
    # Given no priorities at all
    # When the candidates are listed
    result = candidate_warehouses("US", WAREHOUSES, {})
    # Then they are simply sorted by name
    assert result == sorted(WAREHOUSES)


def test_candidate_warehouses_ignore_priorities_for_warehouses_that_do_not_exist() -> None:
    # Given a priority naming a warehouse that is not available
    priorities = {"US": ["WH-GONE", "WH-NJ"]}
    # When the candidates are listed
    result = candidate_warehouses("US", ["WH-LA", "WH-NJ"], priorities)
    # Then the missing one is skipped and each warehouse appears once
    assert result == ["WH-NJ", "WH-LA"]


def test_destination_priority_overrides_the_star_fallback() -> None:
    # Given both a destination priority and a '*' one
    priorities = {"US": ["WH-LA"], "*": ["WH-NJ"]}
    # When the candidates for that destination are listed
    result = candidate_warehouses("US", ["WH-NJ", "WH-LA", "WH-BER"], priorities)
    # Then only the destination's priority is put first
    assert result == ["WH-LA", "WH-BER", "WH-NJ"]


# --- single_warehouse_plans -------------------------------------------------------------------

def test_single_warehouse_plans_lists_every_warehouse_that_fills_the_order_best_first() -> None:
    # Given three warehouses, two of which hold everything
    available = {
        "WH-NJ": {"MUG": 10, "TEE": 10},
        "WH-LA": {"MUG": 5, "TEE": 1},
        "WH-BER": {"MUG": 1},
    }
    lines = [Line("TEE", 1), Line("MUG", 2)]
    # When single-warehouse plans are made for the US
    plans = single_warehouse_plans(lines, "US", available, PRIORITIES)
    # Then both full warehouses are offered in priority order, with merged sorted lines
    assert [list(p.allocations) for p in plans] == [["WH-LA"], ["WH-NJ"]]
    assert plans[0].allocations["WH-LA"] == [Line("MUG", 2), Line("TEE", 1)]
    assert plans[0].trace == ["WH-LA can fill every line for US"]


def test_single_warehouse_plans_merge_repeated_skus_before_checking_stock() -> None:
    # Given a SKU on two lines whose total exceeds the only warehouse's stock
    available = {"WH-NJ": {"MUG": 3}}
    lines = [Line("MUG", 2), Line("MUG", 2)]
    # When plans are made
    plans = single_warehouse_plans(lines, "US", available, PRIORITIES)
    # Then there is none: 4 are needed, 3 are there
    assert plans == []


def test_single_warehouse_plans_none_when_no_warehouse_has_everything() -> None:
    # Given stock split across warehouses
    available = {"WH-NJ": {"MUG": 5}, "WH-LA": {"TEE": 5}}
    # When plans are made for both SKUs
    plans = single_warehouse_plans([Line("MUG", 1), Line("TEE", 1)], "US", available, PRIORITIES)
    # Then no single warehouse plan exists
    assert plans == []


STOCK = st.dictionaries(
    st.sampled_from(["WH-A", "WH-B", "WH-C", "WH-D"]),
    st.dictionaries(SKUS, st.integers(min_value=0, max_value=50), max_size=5),
    max_size=4,
)
DESTINATION = st.sampled_from(["US", "DE", "JP"])
PRIORITY_MAP = st.dictionaries(
    st.sampled_from(["US", "DE", "*"]),
    st.lists(st.sampled_from(["WH-A", "WH-B", "WH-C", "WH-X"]), unique=True, max_size=3),
    max_size=3,
)
SMALL_LINES = st.lists(st.builds(Line, SKUS, st.integers(min_value=1, max_value=30)),
                       min_size=1, max_size=8)


@given(SMALL_LINES, DESTINATION, STOCK, PRIORITY_MAP)
def test_a_single_warehouse_plan_never_asks_more_than_available(
        lines: list[Line], destination: str, available: dict[str, dict[str, int]],
        priorities: dict[str, list[str]]) -> None:
    # Given any order lines, stock and priorities
    # When single-warehouse plans are made
    plans = single_warehouse_plans(lines, destination, available, priorities)
    # Then each plan takes the whole merged order from one warehouse within its stock
    merged = merge_lines(lines)
    for plan in plans:
        ((wh, allocated),) = plan.allocations.items()
        assert allocated == merged
        assert all(ln.quantity <= available[wh].get(ln.sku, 0) for ln in allocated)
    # And exactly the warehouses able to fill the order are offered, in candidate order
    able = [wh for wh in candidate_warehouses(destination, list(available), priorities)
            if all(available[wh].get(ln.sku, 0) >= ln.quantity for ln in merged)]
    assert [next(iter(p.allocations)) for p in plans] == able


# --- short_lines ------------------------------------------------------------------------------

def test_short_lines_report_quantity_beyond_the_best_warehouse() -> None:
    # Given MUG: best warehouse holds 3 of 5 wanted; TEE is fully available somewhere
    available = {"WH-NJ": {"MUG": 3, "TEE": 10}, "WH-LA": {"MUG": 1}}
    lines = [Line("MUG", 5), Line("TEE", 2)]
    # When the short lines are computed
    short = short_lines(lines, available)
    # Then only MUG is short, by 2
    assert short == [Line("MUG", 2)]


def test_short_lines_report_a_sku_nowhere_in_stock_in_full() -> None:
    # Given a SKU no warehouse has
    available = {"WH-NJ": {"MUG": 3}}
    # When the short lines are computed
    short = short_lines([Line("CAP", 4), Line("MUG", 1)], available)
    # Then the whole quantity of that SKU is short
    assert short == [Line("CAP", 4)]


def test_short_lines_against_the_fullest_warehouse_when_stock_is_split() -> None:
    # Given every SKU in stock somewhere but never all together;
    # WH-NJ covers 5 of the 6 units wanted, WH-LA only 1
    available = {"WH-LA": {"TEE": 1}, "WH-NJ": {"MUG": 5}}
    lines = [Line("MUG", 5), Line("TEE", 1)]
    # When the short lines are computed
    short = short_lines(lines, available)
    # Then what the fullest warehouse lacks is reported
    assert short == [Line("TEE", 1)]


def test_short_lines_partly_held_by_the_fullest_warehouse_report_the_difference() -> None:
    # Given split stock where the fullest warehouse holds part of a SKU
    available = {"WH-NJ": {"MUG": 5, "TEE": 1}, "WH-LA": {"TEE": 3}}
    lines = [Line("MUG", 5), Line("TEE", 3)]
    # When the short lines are computed
    short = short_lines(lines, available)
    # Then the shortfall against WH-NJ is reported
    assert short == [Line("TEE", 2)]


def test_short_lines_are_empty_when_one_warehouse_can_fill_everything() -> None:
    # Given a warehouse that holds the whole order
    available = {"WH-NJ": {"MUG": 5, "TEE": 5}, "WH-LA": {}}
    # When the short lines are computed
    short = short_lines([Line("MUG", 5), Line("TEE", 5)], available)
    # Then nothing is short
    assert short == []


def test_short_lines_are_every_line_when_there_are_no_warehouses() -> None:
    # Given no warehouses at all
    lines = [Line("TEE", 1), Line("MUG", 2), Line("MUG", 1)]
    # When the short lines are computed
    short = short_lines(lines, {})
    # Then every merged line is short in full
    assert short == [Line("MUG", 3), Line("TEE", 1)]


# --- counted_on_hand --------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("counted", "reserved", "expected"),
    [
        pytest.param(10, 3, (10, 0), id="above-reserved"),
        pytest.param(3, 3, (3, 0), id="equal-to-reserved"),
        pytest.param(2, 5, (5, 3), id="below-reserved-is-clamped-with-drift"),
        pytest.param(0, 0, (0, 0), id="empty"),
    ],
)
def test_counted_on_hand_clamps_to_reserved_and_reports_drift(
        counted: int, reserved: int, expected: tuple[int, int]) -> None:
    # Given a cycle count and the quantity reserved
    # When on-hand is derived
    result = counted_on_hand(counted, reserved)
    # Then on-hand never drops below reserved; the gap is reported as drift
    assert result == expected
