"""Fulfillment's warehouse-floor rules (services/fulfillment/domain.py): waves, the pick route,
scan-to-verify, the weigh check, order merging, the simulated picker, and box choice against the
local stack's box catalogue. Pure, no I/O."""

from __future__ import annotations

import itertools
import random
import uuid
from decimal import Decimal

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from services.fulfillment.domain import (
    HOLDABLE,
    PACKABLE,
    WEIGHABLE,
    Bin,
    Box,
    Item,
    PackedBox,
    Waiting,
    choose_boxes,
    declared_value,
    fits,
    merge_groups,
    merge_key,
    not_ready,
    order_done,
    pack_parcels,
    pick_list,
    route_key,
    seed_bin,
    simulate_pick,
    simulated_weight,
    status_after_scan,
    unit_prices,
    verify_scan,
    wave_due,
    wave_selection,
    weigh_check,
    weight_ok,
    weight_tolerance_g,
)

# The catalogue of migrations/0001_fulfillment.sql.
CATALOGUE = [
    Box("BOX-S", (220, 160, 100), 120, 3000),
    Box("BOX-M", (320, 240, 160), 250, 10000),
    Box("BOX-L", (450, 350, 250), 450, 20000),
    Box("BOX-XL", (600, 400, 400), 800, 30000),
]


# --- box choice -------------------------------------------------------------------------------

UNITS = st.lists(
    st.builds(
        Item,
        sku=st.sampled_from(["MUG", "LAMP", "BOOK", "VASE"]),
        weight_g=st.integers(1, 12_000),
        # Any orientation: the catalogue lists sides in no particular order.
        dims=st.permutations([0, 1, 2]).flatmap(
            lambda order: st.tuples(st.integers(5, 560), st.integers(5, 380),
                                    st.integers(5, 360)).map(
                lambda d: (d[order[0]], d[order[1]], d[order[2]]))),
        attributes=st.sampled_from([(), ("fragile",)]),
    ),
    min_size=1, max_size=8,
)


@given(UNITS)
def test_the_chosen_box_always_fits_and_no_smaller_catalogue_box_does(units: list[Item]) -> None:
    # Given units that each fit the largest box of the catalogue on their own
    assume(all(fits([u], CATALOGUE[-1]) for u in units))
    # When boxes are chosen
    packed = choose_boxes(units, CATALOGUE)
    for pb in packed:
        # Then each chosen box takes its contents (some rotation, fill ratio, weight)
        assert fits(pb.items, pb.box)
        # And no smaller box of the catalogue would
        assert not any(fits(pb.items, b) for b in CATALOGUE if b.volume < pb.box.volume)


def test_a_rotated_item_fits_a_box_it_only_fits_on_its_side() -> None:
    # Given a flat item listed standing up (taller than any small box is high)
    tablet = Item("TAB", 400, (150, 200, 10))
    # When a box is chosen
    # Then the small box takes it lying down
    assert [pb.box.code for pb in choose_boxes([tablet], CATALOGUE)] == ["BOX-S"]


# --- waves ------------------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("waiting", "oldest_s", "due"),
    [
        (0, 99.0, False),  # nothing waits
        (1, 0.1, False),   # one order, fresh
        (19, 0.4, False),  # not full, not old
        (20, 0.0, True),   # full
        (25, 0.0, True),   # more than full
        (1, 0.5, True),    # old enough
    ],
)
def test_a_wave_is_due_when_n_orders_wait_or_t_seconds_pass(waiting: int, oldest_s: float,
                                                           due: bool) -> None:
    assert wave_due(waiting, oldest_s, size=20, max_wait_s=0.5) is due


def test_express_orders_go_first_then_the_oldest() -> None:
    # Given five orders waiting, two of them express (the later ones)
    waiting = [Waiting("a", False, 1), Waiting("b", False, 2), Waiting("c", True, 5),
               Waiting("d", False, 3), Waiting("e", True, 4)]
    # When a wave of three is chosen
    chosen = wave_selection(waiting, 3)
    # Then the express orders come first (oldest first among them), then the oldest other
    assert [w.order_id for w in chosen] == ["e", "c", "a"]


# --- pick route -------------------------------------------------------------------------------

def test_the_route_snakes_up_odd_aisles_and_down_even_ones_zone_by_zone() -> None:
    # Given bins across two zones and three aisles
    bins = [Bin("B", 1, 1, 1), Bin("A", 2, 3, 1), Bin("A", 1, 7, 2), Bin("A", 2, 9, 1),
            Bin("A", 1, 2, 1), Bin("A", 3, 1, 1), Bin("A", 1, 7, 1), Bin("A", 3, 8, 1)]
    # When they are put in route order
    route = sorted(bins, key=route_key)
    # Then zone A is walked before B; aisle 1 up (racks ascending, lower level first),
    # aisle 2 down (racks descending), aisle 3 up again
    assert route == [Bin("A", 1, 2, 1), Bin("A", 1, 7, 1), Bin("A", 1, 7, 2),
                     Bin("A", 2, 9, 1), Bin("A", 2, 3, 1),
                     Bin("A", 3, 1, 1), Bin("A", 3, 8, 1), Bin("B", 1, 1, 1)]


def test_a_pick_list_consolidates_each_sku_across_the_wave_and_sorts_it_to_orders() -> None:
    # Given three orders in a wave sharing SKUs, with known bins
    bins = {"MUG": Bin("A", 2, 5, 1), "LAMP": Bin("A", 1, 3, 2), "BOOK": Bin("B", 1, 1, 1)}
    parts = [("o1", [("MUG", 2), ("BOOK", 1)]), ("o2", [("MUG", 1), ("LAMP", 1)]),
             ("o3", [("MUG", 1), ("MUG", 1)])]
    # When the pick list is drawn up
    lines = pick_list(parts, bins)
    # Then one line per SKU, in route order, with the total and the split to orders
    assert [(ln.sku, ln.quantity, ln.orders) for ln in lines] == [
        ("LAMP", 1, (("o2", 1),)),
        ("MUG", 5, (("o1", 2), ("o2", 1), ("o3", 2))),
        ("BOOK", 1, (("o1", 1),)),
    ]


def test_an_unslotted_sku_gets_the_same_seeded_bin_every_time() -> None:
    # Given a SKU no one has slotted
    # When its bin is seeded twice
    # Then it is the same, inside the warehouse's layout
    b = seed_bin("SKU-NEW-1")
    assert b == seed_bin("SKU-NEW-1")
    assert b.zone in "ABCD" and 1 <= b.aisle <= 12 and 1 <= b.rack <= 20 and 1 <= b.level <= 5
    assert pick_list([("o1", [("SKU-NEW-1", 1)])], {})[0].bin == b


# --- scan-to-verify ---------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("code", "scanned", "sku", "refused"),
    [
        ("MUG", {}, "MUG", None),                      # by SKU
        ("0012345678905", {}, "MUG", None),             # by GTIN
        ("LAMP", {}, None, "wrong_item"),               # not in the order
        ("4006381333931", {}, "VASE", "wrong_item"),     # a known GTIN of another SKU
        ("MUG", {"MUG": 2}, "MUG", "over_scan"),        # one too many
        ("BOOK", {"MUG": 2}, "BOOK", None),
        ("BOOK", {"BOOK": 1}, "BOOK", "over_scan"),
        ("", {}, None, "unknown_code"),
    ],
)
def test_each_scan_is_checked_against_the_order(code: str, scanned: dict[str, int],
                                                sku: str | None, refused: str | None) -> None:
    expected = {"MUG": 2, "BOOK": 1}
    gtins = {"0012345678905": "MUG", "4006381333931": "VASE"}
    result = verify_scan(code, expected, scanned, gtins)
    assert (result.sku, result.refused) == (sku, refused)


# --- weigh check ------------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("expected_g", "measured_g", "tolerance_g", "ok"),
    [
        (100, 100, 20, True),
        (100, 120, 20, True),     # 20 g floor, inclusive
        (100, 79, 20, False),
        (500, 520, 20, True),     # 3 % = 15 g < 20 g: the floor rules
        (500, 521, 20, False),
        (1000, 1030, 30, True),   # 3 % = 30 g
        (1000, 969, 30, False),
        (10000, 10300, 300, True),
        (10000, 9699, 300, False),
        (0, 20, 20, True),
    ],
)
def test_weight_tolerance_is_the_larger_of_3_percent_and_20_grams(
        expected_g: int, measured_g: int, tolerance_g: int, ok: bool) -> None:
    assert weight_tolerance_g(expected_g) == tolerance_g
    assert weight_ok(expected_g, measured_g) is ok


def test_the_tolerance_is_configurable() -> None:
    assert weight_tolerance_g(1000, pct=5, min_g=10) == 50
    assert weight_ok(1000, 1045, pct=5, min_g=10)
    assert not weight_ok(100, 115, pct=5, min_g=10)


# --- merging ----------------------------------------------------------------------------------

ADDR = {"line1": "100 Main St.", "line2": None, "city": "Austin", "region": "TX",
        "postal_code": "73301", "country": "US"}


def test_one_buyers_orders_to_one_address_from_one_warehouse_share_a_parcel() -> None:
    # Given orders of one buyer, one written differently (case, punctuation, spaces)
    same = merge_key("c-1", ADDR, "standard", "WH-LA")
    spelled = merge_key("c-1", {**ADDR, "line1": "100  MAIN st", "city": "austin"}, "standard",
                        "WH-LA")
    # Then the address is the same
    assert same == spelled
    # And another buyer, address, shipping option or warehouse is not
    assert same != merge_key("c-2", ADDR, "standard", "WH-LA")
    assert same != merge_key("c-1", {**ADDR, "line1": "102 Main St"}, "standard", "WH-LA")
    assert same != merge_key("c-1", ADDR, "express", "WH-LA")
    assert same != merge_key("c-1", ADDR, "standard", "WH-SZ")


def test_merge_groups_are_led_by_their_first_order() -> None:
    groups = merge_groups([("o1", "k1"), ("o2", "k2"), ("o3", "k1"), ("o4", "k3"), ("o5", "k1")])
    assert groups == {"o1": "o1", "o2": "o2", "o3": "o1", "o4": "o4", "o5": "o1"}


# --- the simulated picker ---------------------------------------------------------------------

def test_the_simulated_picker_is_exact_by_default() -> None:
    rng = random.Random(1)
    for lines in itertools.islice(itertools.cycle([[("A", 3)], [("A", 1), ("B", 2)]]), 50):
        assert simulate_pick(lines, rng, 0.0, 0.0).wrong_scans == 0
        assert simulate_pick(lines, rng, 0.0, 0.0).short is None
        assert simulated_weight(700, rng, 0.0) == 700


def test_errors_turned_on_make_wrong_scans_short_picks_and_off_weights() -> None:
    rng = random.Random(7)
    # Every unit mis-scanned once, the first line found short
    sim = simulate_pick([("A", 3), ("B", 2)], rng, 1.0, 1.0)
    assert sim.wrong_scans == 3 and sim.short == ("A", 1)
    # The scale off by enough to fail the weigh check
    assert not weight_ok(700, simulated_weight(700, rng, 1.0))
    assert not weight_ok(100, simulated_weight(100, rng, 1.0))


# --- the floor's steps: rules shared by the simulated floor and staff over HTTP ---------------

def test_a_pick_is_verified_by_its_last_unit_only_while_being_picked() -> None:
    assert status_after_scan("picking", {}) == "verified"
    assert status_after_scan("picking", {"MUG": 1}) == "picking"
    assert status_after_scan("on_hold", {}) == "on_hold"  # held: a scan only checks the unit
    assert status_after_scan("weighed", {}) == "weighed"


def test_a_group_takes_a_step_only_when_every_order_of_it_is_ready() -> None:
    assert not_ready([("s:a", "verified"), ("s:b", "on_hold")], WEIGHABLE) is None
    assert not_ready([("s:a", "weighed"), ("s:b", "verified")], PACKABLE) == (
        "not every order of the parcel is ready: s:b: verified")
    assert not_ready([("s:a", "picking")], HOLDABLE) is None


def test_an_order_is_done_when_every_warehouse_has_packed_or_dropped_its_part() -> None:
    assert order_done(["packed", "packed"])
    assert order_done(["packed", "cancelled"])  # a warehouse dropped after a short pick
    assert not order_done(["packed", "picking"])


def test_the_weigh_check_gives_the_status_and_the_reason() -> None:
    check = weigh_check(1000, 900)
    assert (check.ok, check.status, check.tolerance_g) == (False, "on_hold", 30)
    assert check.message == "weighed 900 g, expected 1000 g ± 30 g"
    assert weigh_check(1000, 1030).status == "weighed"


def test_a_merged_groups_units_are_shared_out_to_its_parcels_in_the_groups_order() -> None:
    # Given a group of two orders (a: 1 mug, b: 2 mugs and a lamp) planned in two boxes
    a, b = uuid.UUID(int=1 << 100), uuid.UUID(int=2 << 100)
    mug, lamp = Item("MUG", 350, (100, 80, 90)), Item("LAMP", 900, (200, 150, 120))
    planned = [PackedBox(CATALOGUE[1], [lamp, mug]), PackedBox(CATALOGUE[0], [mug, mug])]
    # When they are packed, numbered on from the lead's 2 parcels so far
    parcels = pack_parcels(a, 3, planned, [(a, {"MUG": 1}), (b, {"MUG": 2, "LAMP": 1})])
    # Then the ids count on under the lead, and every order is linked to every parcel, with
    # its own units (the first order's first), maybe none
    assert [p.parcel_id for p in parcels] == [f"P-{a.hex[:12]}-3", f"P-{a.hex[:12]}-4"]
    assert parcels[0].lines == [{"sku": "LAMP", "quantity": 1}, {"sku": "MUG", "quantity": 1}]
    assert parcels[0].shares == {a: [{"sku": "MUG", "quantity": 1}],
                                 b: [{"sku": "LAMP", "quantity": 1}]}
    assert parcels[1].shares == {a: [], b: [{"sku": "MUG", "quantity": 2}]}
    assert [p.merged for p in parcels] == [True, False]
    assert [p.weight_g for p in parcels] == [250 + 1250, 120 + 700]


def test_each_order_declares_its_own_units_at_its_first_price_for_a_sku() -> None:
    prices = unit_prices([("MUG", Decimal("12.50")), ("LAMP", Decimal("30")),
                          ("MUG", Decimal("99"))])
    assert declared_value([("MUG", 2), ("LAMP", 1), ("GHOST", 3)], prices) == Decimal("55.00")
