"""Fulfillment's packing rules (services/fulfillment/domain.py): pure, no I/O."""

from __future__ import annotations

from collections import Counter

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.fulfillment.domain import (
    FILL_RATIO,
    Box,
    Item,
    PackedBox,
    choose_boxes,
    fits,
    fits_item,
    outer_dims,
)

SMALL = Box("S", (200, 150, 100), tare_g=100, max_weight_g=5_000)
MEDIUM = Box("M", (300, 250, 200), tare_g=200, max_weight_g=10_000)
LARGE = Box("L", (500, 400, 300), tare_g=400, max_weight_g=20_000)
# Deliberately unsorted: the rules must not depend on the catalogue's order.
BOXES = [LARGE, SMALL, MEDIUM]


def item(sku: str = "MUG", weight_g: int = 300, dims: tuple[int, int, int] = (100, 80, 50),
         attributes: tuple[str, ...] = ()) -> Item:
    return Item(sku, weight_g, dims, attributes)


def box_codes(packed: list[PackedBox]) -> list[str]:
    return [pb.box.code for pb in packed]


def test_chooses_the_smallest_box_that_takes_everything() -> None:
    # Given two small items
    items = [item("MUG"), item("TEE", 200, (120, 100, 30))]
    # When boxes are chosen
    packed = choose_boxes(items, BOXES)
    # Then a single small box holds both
    assert box_codes(packed) == ["S"]
    assert packed[0].items == items


def test_an_item_may_be_rotated_to_fit() -> None:
    # Given an item longer than the small box's first side but fitting when turned
    rotated = item("LAMP", 300, (90, 190, 140))
    # When its fit is checked and boxes chosen
    # Then it fits the small box
    assert fits_item(rotated, SMALL)
    assert box_codes(choose_boxes([rotated], BOXES)) == ["S"]


def test_an_item_with_any_side_too_long_does_not_fit() -> None:
    # Given an item whose longest side exceeds the box's longest side
    too_long = item("ROD", 100, (210, 10, 10))
    # When its fit is checked
    # Then it does not fit the small box, whatever the rotation
    assert not fits_item(too_long, SMALL)


def test_fragile_padding_makes_a_bigger_box_needed() -> None:
    # Given the same item plain and fragile (20 mm of padding on every side)
    plain = item("VASE", 400, (150, 120, 70))
    fragile = item("VASE", 400, (150, 120, 70), ("fragile",))
    # When boxes are chosen
    # Then the plain one fits the small box and the fragile one needs the medium
    assert fragile.packed_dims == (190, 160, 110)
    assert box_codes(choose_boxes([plain], BOXES)) == ["S"]
    assert box_codes(choose_boxes([fragile], BOXES)) == ["M"]


def test_a_box_over_its_weight_limit_is_not_used() -> None:
    # Given a dense item that fits the small box by size; 100 g tare + 4,950 g > 5,000 g
    heavy = item("ANVIL", 4_950, (100, 100, 100))
    # When boxes are chosen
    packed = choose_boxes([heavy], BOXES)
    # Then the next box with a higher weight limit is used
    assert box_codes(packed) == ["M"]
    assert packed[0].weight_g == 200 + 4_950


def test_the_weight_limit_includes_the_tare_and_is_inclusive() -> None:
    # Given an item that brings the small box exactly to its limit
    exact = item("BLOCK", 4_900, (100, 100, 100))
    # When its fit is checked
    # Then it fits
    assert fits([exact], SMALL)


def test_items_never_fill_more_than_the_fill_ratio_of_a_box() -> None:
    # Given items each fitting the small box but together above 85% of its volume
    cube = item("CUBE", 100, (100, 100, 90))  # 900,000 mm3 each; S is 3,000,000 mm3
    items = [cube, cube, cube]
    assert sum(i.volume for i in items) > SMALL.volume * FILL_RATIO
    # When boxes are chosen
    packed = choose_boxes(items, BOXES)
    # Then a larger box is used for all of them
    assert box_codes(packed) == ["M"]


def test_uses_several_boxes_when_no_single_box_takes_everything() -> None:
    # Given three 12 kg items: the large box takes at most one at a time (20 kg limit)
    items = [item(f"W{i}", 12_000, (100, 100, 100)) for i in range(3)]
    # When boxes are chosen
    packed = choose_boxes(items, BOXES)
    # Then each goes in its own large box and every item is placed once
    assert box_codes(packed) == ["L", "L", "L"]
    assert Counter(i.sku for pb in packed for i in pb.items) == Counter(["W0", "W1", "W2"])


def test_each_of_several_boxes_is_shrunk_to_the_smallest_that_fits_its_contents() -> None:
    # Given a 15 kg item and a light one that cannot share a box (20 kg limit exceeded
    # with a 6 kg addition), first-fit decreasing gives each its own box
    big = item("BIG", 15_000, (150, 150, 150))
    small = item("SMALL", 6_000, (50, 50, 50))
    # When boxes are chosen
    packed = choose_boxes([small, big], BOXES)
    # Then the heavy one keeps the large box and the other is shrunk to a medium one
    assert [(pb.box.code, [i.sku for i in pb.items]) for pb in packed] == [
        ("L", ["BIG"]), ("M", ["SMALL"])]


def test_an_item_no_box_takes_gets_the_largest_box_alone() -> None:
    # Given an oversize item and a normal one
    oversize = item("SOFA", 30_000, (2_000, 900, 800))
    normal = item("MUG")
    # When boxes are chosen
    packed = choose_boxes([normal, oversize], BOXES)
    # Then the oversize one is alone in the largest box; the normal one is packed normally
    assert [(pb.box.code, [i.sku for i in pb.items]) for pb in packed] == [
        ("L", ["SOFA"]), ("S", ["MUG"])]


def test_packed_box_weight_is_tare_plus_items() -> None:
    # Given two items in a small box
    packed = choose_boxes([item("A", 300), item("B", 450)], BOXES)
    # When its weight is read
    # Then it is the tare plus every item
    assert packed[0].weight_g == 100 + 300 + 450


ITEMS = st.lists(
    st.builds(
        Item,
        sku=st.text(alphabet="ABCDEFGH", min_size=1, max_size=3),
        weight_g=st.integers(min_value=1, max_value=19_000),
        dims=st.tuples(st.integers(1, 400), st.integers(1, 300), st.integers(1, 260)),
        attributes=st.sampled_from([(), ("fragile",)]),
    ),
    min_size=1, max_size=12,
)


@given(ITEMS)
def test_every_item_is_placed_exactly_once_in_a_box_it_fits(items: list[Item]) -> None:
    # Given any items that each fit the large box on their own
    # When boxes are chosen
    packed = choose_boxes(items, BOXES)
    # Then every item is placed exactly once
    assert Counter(i for pb in packed for i in pb.items) == Counter(items)
    for pb in packed:
        # And each box takes its contents (size, fill ratio, weight)
        assert pb.items
        assert fits(pb.items, pb.box)
        # And no smaller box would
        smaller = [b for b in BOXES if b.volume < pb.box.volume]
        assert not any(fits(pb.items, b) for b in smaller)


@given(ITEMS)
def test_one_box_is_used_whenever_one_box_takes_everything(items: list[Item]) -> None:
    # Given any items
    # When boxes are chosen
    packed = choose_boxes(items, BOXES)
    # Then a single box is used exactly when some box can take everything
    assert (len(packed) == 1) == any(fits(items, b) for b in BOXES)


@pytest.mark.parametrize(
    ("box", "expected"),
    [(SMALL, {"l": 210, "w": 160, "h": 110}), (LARGE, {"l": 510, "w": 410, "h": 310})],
)
def test_outer_dims_add_5mm_of_cardboard_each_side(box: Box, expected: dict[str, int]) -> None:
    # Given a box
    # When its outer dimensions are computed
    # Then each is the inner one plus 10 mm
    assert outer_dims(box) == expected
