"""After-sales rules (services/aftersales/domain.py): pure, no I/O."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.aftersales.domain import (
    SELLER_FAULT,
    Decision,
    OrderedLine,
    Policy,
    amount_paid,
    decide,
    decide_cancelled_after_shipping,
    decide_reship,
    grade_of,
    needs_follow_up,
    refund_amount,
    remaining_lines,
    return_deduction,
    returned_to_sender_refund,
    tag_feedback,
    unclaimed,
)

NOW = datetime(2025, 6, 30, 12, 0, tzinfo=UTC)
DELIVERED = NOW - timedelta(days=5)
ORDERED = [OrderedLine("MUG", 2, Decimal("10.00")), OrderedLine("TEE", 1, Decimal("25.00")),
           OrderedLine("SOCK", 3, Decimal("7.50"))]
NOT_SELLER_FAULT = ["changed_mind", "not_received", "other"]


def run_decide(kind: str = "return", reason: str = "changed_mind",
               lines: Mapping[str, int] | None = None, *,
               already: Mapping[str, int] | None = None, non_returnable: set[str] | None = None,
               delivered_at: datetime | None = DELIVERED, now: datetime = NOW,
               policy: Policy | None = None) -> Decision:
    return decide(kind, reason, {"MUG": 1} if lines is None else lines, ORDERED, already or {},
                  non_returnable or set(), delivered_at, now, policy or Policy())


# --- decide: which lines ----------------------------------------------------------------------

def test_rejects_a_request_naming_no_lines() -> None:
    # Given a request without lines
    # When it is decided
    decision = run_decide(lines={})
    # Then it is rejected as no_lines
    assert (decision.outcome, decision.code) == ("rejected", "no_lines")


@pytest.mark.parametrize("kind", ["return", "refund", "exchange", "reship"])
def test_rejects_a_sku_that_is_not_on_the_order(kind: str) -> None:
    # Given a request for a SKU the order does not have
    # When it is decided
    decision = run_decide(kind, lines={"HAT": 1})
    # Then it is rejected as lines_not_in_order, with nothing left
    assert (decision.outcome, decision.code) == ("rejected", "lines_not_in_order")
    assert decision.message == "HAT: 1 requested, 0 left on the order"


def test_rejects_more_than_was_ordered() -> None:
    # Given 3 MUGs requested of 2 ordered
    # When it is decided
    decision = run_decide(lines={"MUG": 3})
    # Then it is rejected as lines_not_in_order
    assert (decision.outcome, decision.code) == ("rejected", "lines_not_in_order")
    assert decision.message == "MUG: 3 requested, 2 left on the order"


def test_counts_quantities_already_requested_against_the_order() -> None:
    # Given 1 of the 2 MUGs already requested earlier
    # When 2 more are requested
    decision = run_decide(lines={"MUG": 2}, already={"MUG": 1})
    # Then only 1 is left and the request is rejected
    assert (decision.outcome, decision.code) == ("rejected", "lines_not_in_order")
    assert decision.message == "MUG: 2 requested, 1 left on the order"


def test_accepts_exactly_what_is_left_after_earlier_requests() -> None:
    # Given 1 of the 2 MUGs already requested earlier
    # When the last one is requested
    decision = run_decide(lines={"MUG": 1}, already={"MUG": 1})
    # Then it passes the line check
    assert decision.outcome == "authorized"


def test_never_reports_a_negative_quantity_left() -> None:
    # Given more already requested than ordered (inconsistent history)
    # When another one is requested
    decision = run_decide(lines={"MUG": 1}, already={"MUG": 5})
    # Then the message says 0 left, not a negative number
    assert decision.message == "MUG: 1 requested, 0 left on the order"


def test_sums_an_sku_ordered_on_several_lines() -> None:
    # Given an order with the same SKU on two lines (1 + 2)
    ordered = [OrderedLine("MUG", 1, Decimal("10.00")), OrderedLine("MUG", 2, Decimal("10.00"))]
    # When 3 are returned
    decision = decide("return", "changed_mind", {"MUG": 3}, ordered, {}, set(), DELIVERED, NOW,
                      Policy())
    # Then all 3 count as ordered
    assert decision.outcome == "authorized"


# --- decide: returns --------------------------------------------------------------------------

@pytest.mark.parametrize("reason", NOT_SELLER_FAULT)
def test_rejects_returning_a_non_returnable_item_without_seller_fault(reason: str) -> None:
    # Given a non-returnable SKU and a reason that is not the seller's fault
    # When its return is decided
    decision = run_decide("return", reason, {"MUG": 1, "TEE": 1}, non_returnable={"TEE", "HAT"})
    # Then it is rejected as not_returnable, naming only the requested blocked SKU
    assert (decision.outcome, decision.code) == ("rejected", "not_returnable")
    assert decision.message == "not returnable: TEE"


@pytest.mark.parametrize("reason", sorted(SELLER_FAULT))
def test_allows_returning_a_non_returnable_item_when_the_seller_is_at_fault(reason: str) -> None:
    # Given a non-returnable SKU and a seller-fault reason
    # When its return is decided
    decision = run_decide("return", reason, {"TEE": 1}, non_returnable={"TEE"})
    # Then it is authorized within policy
    assert (decision.outcome, decision.code) == ("authorized", "within_policy")


def test_seller_fault_reasons_are_exactly_the_four_documented_ones() -> None:
    # Given the after-sales reasons of the contract
    # When the seller-fault set is read
    # Then it is damaged, defective, wrong item and not as described
    assert {"damaged", "defective", "wrong_item", "not_as_described"} == SELLER_FAULT


def test_sends_a_return_for_an_undelivered_order_to_review() -> None:
    # Given an order not delivered yet
    # When a return is decided
    decision = run_decide(delivered_at=None)
    # Then an operator reviews it
    assert (decision.outcome, decision.code) == ("review", "not_delivered")


@pytest.mark.parametrize(
    ("age", "outcome", "code"),
    [
        pytest.param(timedelta(days=0), "authorized", "within_policy", id="just-delivered"),
        pytest.param(timedelta(days=30), "authorized", "within_policy", id="last-moment"),
        pytest.param(timedelta(days=30, seconds=1), "rejected", "outside_return_window",
                     id="one-second-late"),
        pytest.param(timedelta(days=90), "rejected", "outside_return_window", id="long-after"),
    ],
)
def test_return_window_is_30_days_from_delivery_inclusive(age: timedelta, outcome: str,
                                                          code: str) -> None:
    # Given an order delivered `age` ago and the default 30-day window
    # When a return is decided
    decision = run_decide(delivered_at=NOW - age)
    # Then it is authorized up to exactly 30 days, rejected after
    assert (decision.outcome, decision.code) == (outcome, code)


def test_return_window_comes_from_the_store_policy() -> None:
    # Given a 14-day window and an order delivered 15 days ago
    delivered = NOW - timedelta(days=15)
    # When a return is decided
    decision = run_decide(delivered_at=delivered, policy=Policy(return_window_days=14))
    # Then it is outside the window, and the message names the delivery date and window
    assert (decision.outcome, decision.code) == ("rejected", "outside_return_window")
    assert decision.message == f"delivered {delivered.date()}, the window is 14 days"


def test_not_returnable_is_checked_before_delivery_and_window() -> None:
    # Given a non-returnable item on an undelivered order, returned for changing one's mind
    # When the return is decided
    decision = run_decide(lines={"TEE": 1}, non_returnable={"TEE"}, delivered_at=None)
    # Then it is rejected outright rather than reviewed
    assert decision.code == "not_returnable"


# --- decide: refunds, exchanges, reships ------------------------------------------------------

@pytest.mark.parametrize(
    ("lines", "outcome", "code"),
    [
        pytest.param({"MUG": 1}, "authorized", "refund_without_return", id="10.00-below-15"),
        pytest.param({"SOCK": 1}, "authorized", "refund_without_return",
                     id="7.50-below-15"),
        pytest.param({"SOCK": 2}, "review", "refund_above_threshold", id="15.00-at-threshold"),
        pytest.param({"TEE": 1}, "review", "refund_above_threshold", id="25.00-above"),
    ],
)
def test_refund_without_return_is_authorized_only_below_the_threshold(
        lines: dict[str, int], outcome: str, code: str) -> None:
    # Given a refund-only request and the default 15.00 threshold
    # When it is decided
    decision = run_decide("refund", "damaged", lines)
    # Then cheap ones are authorized (cheaper than a return), the others reviewed
    assert (decision.outcome, decision.code) == (outcome, code)


def test_refund_threshold_comes_from_the_store_policy() -> None:
    # Given a store refunding up to 30.00 without return
    # When a 25.00 refund is decided
    decision = run_decide("refund", "damaged", {"TEE": 1},
                          policy=Policy(refund_without_return_below=Decimal("30.00")))
    # Then it is authorized
    assert (decision.outcome, decision.code) == ("authorized", "refund_without_return")


def test_refund_ignores_returnability_and_delivery() -> None:
    # Given a non-returnable item on an undelivered order
    # When a small refund is decided
    decision = run_decide("refund", "not_received", {"MUG": 1}, non_returnable={"MUG"},
                          delivered_at=None)
    # Then returnability and delivery do not matter for a refund without return
    assert decision.outcome == "authorized"


@pytest.mark.parametrize("reason, lines, outcome, code", [
    ("not_received", {"MUG": 1}, "authorized", "within_policy"),
    ("damaged", {"TEE": 1}, "authorized", "within_policy"),
    ("changed_mind", {"MUG": 1}, "review", "reship_needs_review"),
    ("wrong_item", {"MUG": 1}, "review", "reship_needs_review"),
    ("other", {"MUG": 1}, "review", "reship_needs_review"),
])
def test_reship_for_a_lost_or_damaged_parcel_is_authorized_below_the_threshold(
        reason: str, lines: dict[str, int], outcome: str, code: str) -> None:
    # Given a customer's reship request
    # When it is decided under the default policy (200.00)
    decision = run_decide("reship", reason, lines)
    # Then only lost (not received) or damaged goods are reshipped without an operator
    assert (decision.outcome, decision.code) == (outcome, code)


def test_reship_above_the_replacement_threshold_goes_to_an_operator() -> None:
    # Given a store whose replacements above 15.00 need a person
    policy = Policy(replacement_without_review_below=Decimal("15.00"))
    # When a 25.00 reship is decided
    decision = run_decide("reship", "not_received", {"TEE": 1}, policy=policy)
    # Then it is queued
    assert (decision.outcome, decision.code) == ("review", "replacement_above_threshold")


@pytest.mark.parametrize("value, confirmed, outcome, code", [
    (Decimal("10.00"), True, "authorized", "lost_in_transit"),
    (Decimal("199.99"), True, "authorized", "lost_in_transit"),
    (Decimal("200.00"), True, "review", "replacement_above_threshold"),
])
def test_a_parcel_the_carrier_lost_is_reshipped_without_an_operator_up_to_the_threshold(
        value: Decimal, confirmed: bool, outcome: str, code: str) -> None:
    # Given logistics reporting a lost parcel of some value
    decision = decide_reship("not_received", value, Policy(), carrier_confirmed=confirmed)
    # Then it is authorized below the store's replacement threshold
    assert (decision.outcome, decision.code) == (outcome, code)


PRICES = {"MUG-RED": Decimal("10.00"), "TEE-L": Decimal("25.00"), "MUG-XL": Decimal("12.00")}


@pytest.mark.parametrize("exchange_for, outcome, code", [
    ({"MUG": "MUG-RED"}, "authorized", "within_policy"),
    (None, "rejected", "no_exchange_target"),
    ({"TEE": "TEE-L"}, "rejected", "no_exchange_target"),
    ({"MUG": "MUG-XL"}, "review", "exchange_price_differs"),
    ({"MUG": "HAT"}, "review", "unknown_exchange_sku"),
])
def test_exchange_is_authorized_for_a_same_price_known_sku(
        exchange_for: dict[str, str] | None, outcome: str, code: str) -> None:
    # Given an exchange of one MUG (10.00) inside the window
    decision = decide("exchange", "changed_mind", {"MUG": 1}, ORDERED, {}, set(), DELIVERED, NOW,
                      Policy(), exchange_for, PRICES)
    # Then a same-price known target is authorized; anything else is rejected or queued
    assert (decision.outcome, decision.code) == (outcome, code)


def test_exchange_follows_the_return_window_and_returnability() -> None:
    # Given an exchange delivered 31 days ago, and one of a non-returnable item
    late = decide("exchange", "changed_mind", {"MUG": 1}, ORDERED, {}, set(),
                  NOW - timedelta(days=31), NOW, Policy(), {"MUG": "MUG-RED"}, PRICES)
    blocked = decide("exchange", "changed_mind", {"MUG": 1}, ORDERED, {}, {"MUG"}, DELIVERED,
                     NOW, Policy(), {"MUG": "MUG-RED"}, PRICES)
    # Then both are rejected like a return would be
    assert (late.outcome, late.code) == ("rejected", "outside_return_window")
    assert (blocked.outcome, blocked.code) == ("rejected", "not_returnable")


# --- return shipping, grading, feedback ------------------------------------------------------

@pytest.mark.parametrize("kind, reason, deduction", [
    ("return", "changed_mind", Decimal("5.00")),
    ("return", "other", Decimal("5.00")),
    ("return", "not_received", Decimal("5.00")),
    ("return", "damaged", Decimal("0")),
    ("return", "defective", Decimal("0")),
    ("return", "wrong_item", Decimal("0")),
    ("return", "not_as_described", Decimal("0")),
    ("refund", "changed_mind", Decimal("0")),
    ("exchange", "changed_mind", Decimal("0")),
])
def test_customer_caused_returns_pay_their_return_shipping(kind: str, reason: str,
                                                           deduction: Decimal) -> None:
    # Given the default policy (return shipping 5.00)
    # Then only a customer-caused return is charged for it
    assert return_deduction(kind, reason, Policy()) == deduction


def test_a_changed_mind_return_refund_is_the_line_less_return_shipping() -> None:
    # Given one MUG (10.00, 1.00 of the 10% discount) returned for changed_mind
    amount = run_refund({"MUG": 1}, "changed_mind", deduction=Decimal("5.00"))
    # Then the refund is 10.00 - 1.00 - 5.00
    assert amount == Decimal("4.00")


def test_a_deduction_larger_than_the_line_refunds_nothing() -> None:
    assert run_refund({"MUG": 1}, "changed_mind", deduction=Decimal("50.00")) == Decimal("0.00")


@pytest.mark.parametrize("condition, reason, grade", [
    ("resellable", "changed_mind", "resellable"),
    ("resellable", "damaged", "resellable"),
    ("damaged", "damaged", "scrap"),
    ("damaged", "defective", "scrap"),
    ("damaged", "changed_mind", None),
    ("damaged", "other", None),
])
def test_grade_from_the_warehouse_condition(condition: str, reason: str,
                                            grade: str | None) -> None:
    # Then damaged goods from a customer-caused return wait for an operator's grade
    assert grade_of(condition, reason) == grade


@pytest.mark.parametrize("comment, tags", [
    ("Arrived broken and two weeks late", ["damaged", "late"]),
    ("收到的时候已经破损了，物流太慢", ["damaged", "late"]),  # noqa: RUF001
    ("Too small, need a bigger size", ["size"]),
    ("尺码偏小", ["size"]),
    ("质量很差，做工粗糙", ["quality"]),  # noqa: RUF001
    ("Wrong item, not what I ordered", ["wrong_item"]),
    ("发错货了", ["wrong_item"]),
    ("Love it, perfect", ["praise"]),
    ("", []),
    (None, []),
])
def test_feedback_is_tagged_in_english_and_chinese(comment: str | None, tags: list[str]) -> None:
    assert tag_feedback(comment) == tags


@pytest.mark.parametrize("rating, follow_up", [(1, True), (2, True), (3, False), (5, False)])
def test_a_rating_of_two_or_less_opens_a_follow_up(rating: int, follow_up: bool) -> None:
    assert needs_follow_up(rating) is follow_up


# --- refund_amount ----------------------------------------------------------------------------

# Order: MUG 2x10.00 + TEE 25.00 + SOCK 3x7.50 = 67.50 subtotal, 6.75 discount (10%),
# 5.00 shipping, 65.75 grand total.
SUBTOTAL, DISCOUNT, SHIPPING, GRAND = (Decimal("67.50"), Decimal("6.75"), Decimal("5.00"),
                                       Decimal("65.75"))


def run_refund(lines: Mapping[str, int], reason: str = "changed_mind", *,
               already: Decimal = Decimal("0.00"), shipping_refunded: bool = False,
               subtotal: Decimal = SUBTOTAL, discount: Decimal = DISCOUNT,
               grand_total: Decimal = GRAND, deduction: Decimal = Decimal("0")) -> Decimal:
    return refund_amount(lines, ORDERED, subtotal, discount, SHIPPING, grand_total, reason,
                         already, shipping_refunded, deduction)


@pytest.mark.parametrize(
    ("lines", "expected"),
    [
        pytest.param({"MUG": 1}, "9.00", id="one-mug"),        # 10.00 - 1.00
        pytest.param({"MUG": 2}, "18.00", id="two-mugs"),      # 20.00 - 2.00
        pytest.param({"TEE": 1}, "22.50", id="tee"),           # 25.00 - 2.50
        pytest.param({"SOCK": 1}, "6.75", id="sock"),          # 7.50 - 0.75
    ],
)
def test_refund_is_the_line_value_less_its_prorated_discount(lines: dict[str, int],
                                                             expected: str) -> None:
    # Given an order with a 10% order-level discount
    # When a not-seller-fault refund is computed
    amount = run_refund(lines)
    # Then each line gives back its price less its share of the discount
    assert amount == Decimal(expected)


def test_prorated_discount_rounds_half_up_to_the_cent() -> None:
    # Given 10.00 off an order of 30.00 and a 10.00 line: 10 - 3.333... = 6.666...
    ordered_subtotal = Decimal("30.00")
    # When the refund is computed
    amount = run_refund({"MUG": 1}, subtotal=ordered_subtotal, discount=Decimal("10.00"))
    # Then it is rounded to the cent
    assert amount == Decimal("6.67")


def test_no_discount_share_when_the_subtotal_is_zero() -> None:
    # Given an order whose subtotal is recorded as zero
    # When a line is refunded
    amount = run_refund({"MUG": 1}, subtotal=Decimal("0"), discount=Decimal("0"))
    # Then no division by zero: the full line value comes back
    assert amount == Decimal("10.00")


@pytest.mark.parametrize("reason", sorted(SELLER_FAULT))
def test_seller_fault_refund_adds_shipping_once(reason: str) -> None:
    # Given a seller-fault reason and shipping not refunded yet
    # When one mug is refunded
    first = run_refund({"MUG": 1}, reason)
    # And later another, shipping having been refunded already
    second = run_refund({"MUG": 1}, reason, already=first, shipping_refunded=True)
    # Then shipping is added to the first refund only
    assert first == Decimal("14.00")
    assert second == Decimal("9.00")


@pytest.mark.parametrize("reason", NOT_SELLER_FAULT)
def test_refund_without_seller_fault_never_includes_shipping(reason: str) -> None:
    # Given a reason that is not the seller's fault
    # When one mug is refunded
    amount = run_refund({"MUG": 1}, reason)
    # Then shipping stays with the customer
    assert amount == Decimal("9.00")


def test_refunding_the_whole_order_for_seller_fault_gives_back_the_grand_total() -> None:
    # Given every line refunded for a seller fault
    # When the refund is computed
    amount = run_refund({"MUG": 2, "TEE": 1, "SOCK": 3}, "damaged")
    # Then exactly what was paid comes back
    assert amount == GRAND


def test_refund_is_capped_at_the_grand_total_less_earlier_refunds() -> None:
    # Given 60.00 already refunded of 65.75
    # When a 22.50 line is refunded
    amount = run_refund({"TEE": 1}, already=Decimal("60.00"))
    # Then only the 5.75 still held comes back
    assert amount == Decimal("5.75")


def test_refund_is_never_negative() -> None:
    # Given earlier refunds above the grand total (e.g. a goodwill refund)
    # When another line is refunded
    amount = run_refund({"TEE": 1}, already=Decimal("70.00"))
    # Then nothing is refunded, rather than a negative amount
    assert amount == Decimal("0.00")


@given(st.lists(st.sampled_from([("MUG", 1), ("TEE", 1), ("SOCK", 1)]), max_size=8),
       st.sampled_from(["damaged", "changed_mind"]))
def test_successive_refunds_never_exceed_the_grand_total(requests: list[tuple[str, int]],
                                                         reason: str) -> None:
    # Given any sequence of single-item refunds on one order
    paid_back = Decimal("0.00")
    shipping_done = False
    for sku, qty in requests:
        # When each is computed on top of the earlier ones
        amount = run_refund({sku: qty}, reason, already=paid_back, shipping_refunded=shipping_done)
        # Then none is negative
        assert amount >= 0
        paid_back += amount
        shipping_done = shipping_done or reason in SELLER_FAULT
    # And together they never exceed what was paid
    assert paid_back <= GRAND


REASONS = ["damaged", "defective", "wrong_item", "not_as_described", "changed_mind",
           "not_received", "other"]
cents = st.integers(min_value=0, max_value=50_000).map(lambda c: Decimal(c) / 100)


@st.composite
def orders_and_requests(draw: st.DrawFn) -> tuple[list[OrderedLine], Decimal, Decimal,
                                                  list[tuple[str, str, dict[str, int]]]]:
    skus = [f"S{i}" for i in range(draw(st.integers(1, 4)))]
    ordered = [OrderedLine(s, draw(st.integers(1, 5)), draw(cents)) for s in skus]
    subtotal = sum((ln.unit_price * ln.quantity for ln in ordered), Decimal("0"))
    discount = draw(st.integers(0, int(subtotal * 100)).map(lambda c: Decimal(c) / 100))
    requests = draw(st.lists(st.tuples(
        st.sampled_from(["return", "refund"]), st.sampled_from(REASONS),
        st.dictionaries(st.sampled_from(skus), st.integers(1, 5), min_size=1)), max_size=10))
    return ordered, discount, draw(cents), requests


@given(orders_and_requests(), cents)
def test_any_sequence_of_requests_never_refunds_more_than_was_paid(
        case: tuple[list[OrderedLine], Decimal, Decimal, list[tuple[str, str, dict[str, int]]]],
        return_shipping: Decimal) -> None:
    # Given any order (prices, discount, shipping) and any sequence of return and refund
    # requests, whatever their reasons and lines (even lines refunded twice)
    ordered, discount, shipping, requests = case
    subtotal = sum((ln.unit_price * ln.quantity for ln in ordered), Decimal("0"))
    grand = subtotal - discount + shipping
    policy = Policy(return_shipping_cost=return_shipping)
    paid_back, shipping_done = Decimal("0.00"), False
    for kind, reason, lines in requests:
        # When each refund is computed on top of the earlier ones
        amount = refund_amount(lines, ordered, subtotal, discount, shipping, grand, reason,
                               paid_back, shipping_done, return_deduction(kind, reason, policy))
        assert amount >= 0
        paid_back += amount
        shipping_done = shipping_done or reason in SELLER_FAULT
    # Then together they never exceed what was paid
    assert paid_back <= grand


# --- returned to sender, cancellations after shipping -----------------------------------------

def test_a_parcel_returned_to_sender_refunds_the_goods_less_discount_and_no_shipping() -> None:
    # Given the whole order back to sender (65.75 paid: 67.50 less 6.75 discount, 5.00 shipping)
    # When the refund is computed
    amount = returned_to_sender_refund({"MUG": 2, "TEE": 1, "SOCK": 3}, ORDERED, SUBTOTAL,
                                       DISCOUNT, GRAND, Decimal("0.00"))
    # Then everything paid comes back except the outbound shipping, with no return deduction
    assert amount == GRAND - SHIPPING == Decimal("60.75")


def test_a_returned_parcel_refunds_only_what_earlier_refunds_left() -> None:
    # Given 60.00 already refunded
    # When a parcel with the 22.50 tee comes back
    amount = returned_to_sender_refund({"TEE": 1}, ORDERED, SUBTOTAL, DISCOUNT, GRAND,
                                       Decimal("60.00"))
    # Then only the 5.75 still held comes back
    assert amount == Decimal("5.75")


@pytest.mark.parametrize(("status", "paid"), [("paid", GRAND), ("authorized", GRAND),
                                              ("pending", Decimal("0.00")),
                                              ("failed", Decimal("0.00"))])
def test_amount_paid_is_nothing_until_the_payment_is_taken(status: str, paid: Decimal) -> None:
    assert amount_paid(GRAND, status) == paid


def test_an_unpaid_order_returned_to_sender_refunds_nothing() -> None:
    # Given cash on delivery, refused at the door: nothing was taken
    # When the refund is computed
    amount = returned_to_sender_refund({"MUG": 1}, ORDERED, SUBTOTAL, DISCOUNT,
                                       amount_paid(GRAND, "pending"), Decimal("0.00"))
    # Then nothing goes back
    assert amount == Decimal("0.00")


@given(st.lists(st.sampled_from([("MUG", 1), ("TEE", 1), ("SOCK", 2)]), max_size=6),
       st.sampled_from(["damaged", "changed_mind"]))
def test_returned_parcels_after_any_refunds_never_exceed_what_was_paid(
        requests: list[tuple[str, int]], reason: str) -> None:
    # Given any refunds on the order, then every parcel back to sender
    paid_back = Decimal("0.00")
    for sku, qty in requests:
        paid_back += run_refund({sku: qty}, reason, already=paid_back)
    # When the returned parcels are refunded on top
    amount = returned_to_sender_refund({"MUG": 2, "TEE": 1, "SOCK": 3}, ORDERED, SUBTOTAL,
                                       DISCOUNT, GRAND, paid_back)
    # Then the total never exceeds what was paid, and no refund is negative
    assert amount >= 0 and paid_back + amount <= GRAND


def test_remaining_lines_are_the_order_less_what_requests_claimed() -> None:
    assert remaining_lines(ORDERED, {}) == {"MUG": 2, "TEE": 1, "SOCK": 3}
    assert remaining_lines(ORDERED, {"MUG": 1, "TEE": 1}) == {"MUG": 1, "SOCK": 3}
    assert remaining_lines(ORDERED, {"MUG": 5, "TEE": 1, "SOCK": 3}) == {}


@pytest.mark.parametrize(("lines", "claimed", "left"), [
    pytest.param({"MUG": 2}, {}, {"MUG": 2}, id="nothing-claimed"),
    pytest.param({"MUG": 2}, {"MUG": 1}, {"MUG": 1}, id="part-reshipped"),
    pytest.param({"MUG": 2, "TEE": 1}, {"TEE": 1}, {"MUG": 2}, id="tee-refunded"),
    pytest.param({"MUG": 2}, {"MUG": 2}, {}, id="all-replaced"),
])
def test_unclaimed_lines_are_what_no_other_request_settled(
        lines: dict[str, int], claimed: dict[str, int], left: dict[str, int]) -> None:
    assert unclaimed(lines, ORDERED, claimed) == left


def test_a_cancel_after_shipping_on_its_way_is_authorized_as_a_return() -> None:
    # Given an order on its way (not delivered)
    # When the customer cancels after shipping
    decision = decide_cancelled_after_shipping({"MUG": 2, "TEE": 1}, ORDERED, set(), None, NOW,
                                               Policy())
    # Then a return is authorized at once: refuse it at the door or send it back
    assert (decision.outcome, decision.code) == ("authorized", "cancelled_after_shipping")


@pytest.mark.parametrize(("non_returnable", "delivered_at", "code"), [
    pytest.param({"MUG"}, None, "not_returnable", id="not-returnable"),
    pytest.param(set(), NOW - timedelta(days=31), "outside_return_window", id="window-over"),
])
def test_a_cancel_after_shipping_follows_the_return_policy(
        non_returnable: set[str], delivered_at: datetime | None, code: str) -> None:
    decision = decide_cancelled_after_shipping({"MUG": 2}, ORDERED, non_returnable,
                                               delivered_at, NOW, Policy())
    assert (decision.outcome, decision.code) == ("rejected", code)
