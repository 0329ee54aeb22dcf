"""Short picks re-allocated and "ship what is there" continuation orders
(services/inventory/domain.py and handlers.continuation_of): pure, no I/O."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.inventory.domain import (
    Line,
    combine,
    held,
    reallocation_candidates,
    reallocation_plans,
    take_out,
)
from services.inventory.handlers import continuation_of
from shared.contracts import Address, OrderLine, OrderSnapshot, Totals

PRIORITIES = {"US": ["WH-LA", "WH-SZ"], "DE": ["WH-FRA", "WH-SZ"], "*": ["WH-SZ"]}
ALL = ["WH-FRA", "WH-LA", "WH-SZ"]


def test_take_out_removes_the_missing_units_and_drops_an_emptied_warehouse() -> None:
    alloc = {"WH-LA": [Line("A", 3), Line("B", 1)], "WH-SZ": [Line("C", 2)]}
    assert take_out(alloc, "WH-LA", "A", 1) == {"WH-LA": [Line("A", 2), Line("B", 1)],
                                                 "WH-SZ": [Line("C", 2)]}
    assert take_out(alloc, "WH-SZ", "C", 2) == {"WH-LA": [Line("A", 3), Line("B", 1)]}


@given(st.lists(st.tuples(st.sampled_from(ALL), st.sampled_from("ABC"),
                          st.integers(min_value=1, max_value=9)), min_size=1, max_size=6),
       st.data())
def test_take_out_then_combine_gives_back_the_allocation(
        parts: list[tuple[str, str, int]], data: st.DataObject) -> None:
    alloc: dict[str, list[Line]] = {}
    for wh, sku, q in parts:
        alloc = combine(alloc, {wh: [Line(sku, q)]})
    wh, sku, _ = data.draw(st.sampled_from(parts))
    q = data.draw(st.integers(min_value=1, max_value=held(alloc, wh, sku)))
    kept = take_out(alloc, wh, sku, q)
    assert held(kept, wh, sku) == held(alloc, wh, sku) - q
    assert combine(kept, {wh: [Line(sku, q)]}) == alloc


@pytest.mark.parametrize(("split", "restocked", "expected"), [
    (True, False, ["WH-FRA"]),            # not the short warehouse, not one holding a part
    (False, False, []),                   # another warehouse would be a split
    (True, True, ["WH-FRA", "WH-LA"]),    # after a restock the short warehouse counts again
    (False, True, ["WH-LA"]),
])
def test_reallocation_candidates(split: bool, restocked: bool, expected: list[str]) -> None:
    # Given an order split over WH-LA (short) and WH-SZ (maybe picked already)
    kept = {"WH-LA": [Line("A", 1)], "WH-SZ": [Line("B", 1)]}
    assert reallocation_candidates(ALL, kept, "WH-LA", split, restocked) == expected


def test_missing_units_go_to_the_destinations_next_warehouse() -> None:
    avail = {"WH-LA": {"A": 5}, "WH-SZ": {"A": 5}, "WH-FRA": {"A": 5}}
    plans = reallocation_plans([Line("A", 2)], "US", avail, ["WH-FRA", "WH-SZ"], PRIORITIES, 1.5)
    assert plans[0].allocations == {"WH-SZ": [Line("A", 2)]}


def test_missing_units_may_be_split_among_the_candidates_only() -> None:
    avail = {"WH-LA": {"A": 9}, "WH-SZ": {"A": 1}, "WH-FRA": {"A": 1}}
    plans = reallocation_plans([Line("A", 2)], "US", avail, ["WH-FRA", "WH-SZ"], PRIORITIES, 1.5)
    assert [p.allocations for p in plans] == [{"WH-SZ": [Line("A", 1)],
                                               "WH-FRA": [Line("A", 1)]}]
    assert reallocation_plans([Line("A", 2)], "US", avail, [], PRIORITIES, 1.5) == []


def _snapshot() -> OrderSnapshot:
    now = datetime(2026, 11, 27, tzinfo=UTC)
    return OrderSnapshot(
        order_id=str(uuid.uuid4()), store="shop", external_order_id="100", customer_id="c",
        placed_at=now, accepted_at=now,
        shipping_address=Address(name="N", line1="L", line2=None, city="C", region=None,
                                 postal_code="1", country="US"),
        lines=[OrderLine(sku="A", quantity=3, unit_price=Decimal("12.50")),
               OrderLine(sku="B", quantity=1, unit_price=Decimal("4.00"))],
        currency="USD", shipping_option="standard",
        totals=Totals(subtotal=Decimal("41.50"), discount=Decimal("0.00"),
                      shipping_fee=Decimal("4.99"), grand_total=Decimal("46.49")),
        payment_method="card", payment_status="paid")


def test_the_continuation_is_a_linked_order_of_the_short_lines_at_the_prices_paid() -> None:
    snap = _snapshot()
    rest = continuation_of(snap, [Line("A", 2)])
    assert rest.external_order_id == "100-B1" and rest.key == "shop:100-B1"
    assert (rest.replaces_order_id, rest.kind) == (snap.order_id, "backorder")
    assert rest.lines == [OrderLine(sku="A", quantity=2, unit_price=Decimal("12.50"))]
    assert rest.totals.grand_total == Decimal("25.00") and rest.totals.shipping_fee == 0
    # the same original gives the same continuation (a redelivery makes no second one)
    assert continuation_of(snap, [Line("A", 2)]).order_id == rest.order_id != snap.order_id
