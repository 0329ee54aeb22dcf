"""Intake's review rules (services/intake/domain.py): pure, no I/O."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from services.intake import domain
from services.intake.domain import POSTAL_CODE_PATTERNS, Policy, Product, Promotion
from shared.contracts import OrderPlaced, OrderSnapshot

NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
SERVED = {"US", "CA", "DE", "GB", "NZ"}
PRODUCTS = {
    "MUG": Product("MUG", True, "home", Decimal("12.50")),
    "TEE": Product("TEE", True, "apparel", Decimal("20.00")),
    "OLD": Product("OLD", False, "home", Decimal("5.00")),
}
POLICY = Policy()


def order_payload(*, lines: list[tuple[str, int, str]] | None = None, country: str = "US",
                  postal_code: str | None = "73301", payment_status: str = "paid",
                  promo_codes: list[str] | None = None, discount: str = "0.00",
                  shipping_fee: str = "5.00", subtotal: str | None = None,
                  grand_total: str | None = None, **address: Any) -> dict[str, Any]:
    """A well-formed `orders.placed` value; totals are consistent unless overridden."""
    lines = lines if lines is not None else [("MUG", 2, "12.50"), ("TEE", 1, "20.00")]
    lines_total = sum((Decimal(p) * q for _, q, p in lines), Decimal("0"))
    sub = Decimal(subtotal) if subtotal is not None else lines_total
    grand = (Decimal(grand_total) if grand_total is not None
             else sub - Decimal(discount) + Decimal(shipping_fee))
    addr: dict[str, Any] = {"name": "Ana Lima", "line1": "100 Main St", "line2": None,
                            "city": "Austin", "region": "TX", "postal_code": postal_code,
                            "country": country}
    addr.update(address)
    return {
        "event_id": "7d1f3c1e-2a4b-4c8d-9e0f-1a2b3c4d5e6f",
        "occurred_at": "2025-06-01T11:59:00Z",
        "store": "shop-1", "external_order_id": "1001", "placed_at": "2025-06-01T11:58:00Z",
        "customer": {"id": "c-1", "name": "Ana Lima", "email": "ana@example.com"},
        "shipping_address": addr,
        "lines": [{"sku": s, "quantity": q, "unit_price": p} for s, q, p in lines],
        "currency": "USD", "shipping_option": "standard",
        "totals": {"subtotal": f"{sub:.2f}", "discount": discount, "shipping_fee": shipping_fee,
                   "grand_total": f"{grand:.2f}"},
        "payment": {"method": "card", "status": payment_status},
        "promo_codes": promo_codes or [],
    }


def make_order(**kwargs: Any) -> OrderPlaced:
    return OrderPlaced.model_validate(order_payload(**kwargs))


def run_review(order: OrderPlaced, *, served: set[str] | None = SERVED,
               promotions: dict[str, Promotion] | None = None,
               policy: Policy = POLICY, now: datetime = NOW) -> domain.Review:
    return domain.review(order, PRODUCTS, served, promotions or {}, policy, now)


def codes(result: domain.Review) -> list[str]:
    return [code for code, _ in result.reasons]


# --- accepted ---------------------------------------------------------------------------------

def test_accepts_a_well_formed_paid_order_with_consistent_totals() -> None:
    # Given a well-formed order to a served country, paid, with totals that add up
    order = make_order()
    # When it is reviewed
    result = run_review(order)
    # Then it is accepted with no reasons
    assert result.status == "accepted"
    assert result.reasons == []


def test_accepts_any_iso_country_when_coverage_is_not_known_yet() -> None:
    # Given no coverage information (served is None) and a country nobody listed
    order = make_order(country="ZA", postal_code="0001")
    # When it is reviewed
    result = run_review(order, served=None)
    # Then the country is not a reason to reject
    assert result.status == "accepted"


# --- rejections -------------------------------------------------------------------------------

@pytest.mark.parametrize("quantity", [0, -1, 1000, 5000])
def test_rejects_quantity_outside_1_to_999(quantity: int) -> None:
    # Given a line with an out-of-range quantity
    order = make_order(lines=[("MUG", quantity, "12.50")])
    # When it is reviewed
    result = run_review(order)
    # Then it is rejected as invalid_quantity, naming the line and the SKU
    assert result.status == "rejected"
    assert codes(result) == ["invalid_quantity"]
    assert "lines[0].quantity" in result.reasons[0][1]
    assert "MUG" in result.reasons[0][1]


@pytest.mark.parametrize("quantity", [1, 999])
def test_accepts_quantity_at_the_bounds_1_and_999(quantity: int) -> None:
    # Given a line whose quantity is exactly at a bound
    order = make_order(lines=[("MUG", quantity, "1.00")])
    # When it is reviewed
    result = run_review(order, policy=Policy(high_value_threshold=Decimal("100000")))
    # Then the quantity is fine
    assert result.status == "accepted"


def test_rejects_quantity_above_999_on_every_offending_line() -> None:
    # Given two lines both out of range
    order = make_order(lines=[("MUG", 1000, "1.00"), ("TEE", 0, "1.00")])
    # When it is reviewed
    result = run_review(order)
    # Then each line gets its own invalid_quantity reason
    assert codes(result) == ["invalid_quantity", "invalid_quantity"]
    assert "lines[0]" in result.reasons[0][1]
    assert "lines[1]" in result.reasons[1][1]


def test_rejects_negative_unit_price_as_malformed() -> None:
    # Given a line with a negative unit price
    order = make_order(lines=[("MUG", 1, "-1.00")])
    # When it is reviewed
    result = run_review(order)
    # Then it is rejected as malformed
    assert result.status == "rejected"
    assert codes(result) == ["malformed"]


@pytest.mark.parametrize("sku", ["NOPE", "OLD"], ids=["unknown", "inactive"])
def test_rejects_unknown_or_inactive_sku(sku: str) -> None:
    # Given an order with a SKU that is not in the catalogue or is inactive
    order = make_order(lines=[("MUG", 1, "12.50"), (sku, 1, "5.00")])
    # When it is reviewed
    result = run_review(order)
    # Then it is rejected as unknown_sku, naming only that SKU
    assert result.status == "rejected"
    assert codes(result) == ["unknown_sku"]
    assert sku in result.reasons[0][1]
    assert "MUG" not in result.reasons[0][1]


def test_unknown_sku_reason_lists_each_sku_once_sorted() -> None:
    # Given several unknown SKUs, one repeated
    order = make_order(lines=[("ZED", 1, "1.00"), ("ABC", 1, "1.00"), ("ZED", 2, "1.00")])
    # When it is reviewed
    result = run_review(order)
    # Then a single reason names each unknown SKU once, sorted
    assert codes(result) == ["unknown_sku"]
    assert result.reasons[0][1].endswith("ABC, ZED")


@pytest.mark.parametrize("country", ["usa", "us", "U1", "U", "USA1"])
def test_rejects_a_country_that_is_not_an_iso_alpha2_code(country: str) -> None:
    # Given a shipping country that is not an upper-case ISO 3166-1 alpha-2 code
    order = make_order(country=country)
    # When it is reviewed (even without coverage information)
    result = run_review(order, served=None)
    # Then it is rejected as unsupported_country, saying it is not an ISO code
    assert result.status == "rejected"
    assert codes(result) == ["unsupported_country"]
    assert "ISO 3166-1" in result.reasons[0][1]


def test_rejects_a_valid_country_no_carrier_serves() -> None:
    # Given a real ISO country outside the served set
    order = make_order(country="FR", postal_code="75001")
    # When it is reviewed
    result = run_review(order)
    # Then it is rejected as unsupported_country, naming the country
    assert result.status == "rejected"
    assert codes(result) == ["unsupported_country"]
    assert result.reasons[0][1] == "no configured carrier serves FR"


@pytest.mark.parametrize("field", ["name", "line1", "city"])
@pytest.mark.parametrize("value", [None, "", "   "])
def test_rejects_address_missing_a_required_field(field: str, value: str | None) -> None:
    # Given an address whose required field is absent or blank
    order = make_order(**{field: value})
    # When it is reviewed
    result = run_review(order)
    # Then it is rejected as incomplete_address naming that field
    assert result.status == "rejected"
    assert codes(result) == ["incomplete_address"]
    assert f"shipping_address.{field} is missing" in result.reasons[0][1]


@pytest.mark.parametrize("postal_code", [None, "", "  "])
def test_rejects_address_without_postal_code(postal_code: str | None) -> None:
    # Given an address with no postal code
    order = make_order(postal_code=postal_code)
    # When it is reviewed
    result = run_review(order)
    # Then it is rejected as incomplete_address
    assert codes(result) == ["incomplete_address"]
    assert "shipping_address.postal_code is missing" in result.reasons[0][1]


def test_incomplete_address_reason_lists_every_problem() -> None:
    # Given an address missing its name and city
    order = make_order(name=None, city="")
    # When it is reviewed
    result = run_review(order)
    # Then one incomplete_address reason lists both problems
    assert codes(result) == ["incomplete_address"]
    assert result.reasons[0][1] == ("shipping_address.name is missing; "
                                    "shipping_address.city is missing")


# One valid and one invalid example per country with a postal-code pattern.
POSTAL_CODES: dict[str, tuple[str, str]] = {
    "US": ("73301-1234", "7330"),
    "CA": ("M5H 1A1", "12345"),
    "MX": ("06600", "6600"),
    "BR": ("01000-000", "0100-000"),
    "GB": ("SW1A 2AA", "12345"),
    "DE": ("10117", "1011"),
    "FR": ("75001", "7500A"),
    "ES": ("28013", "280130"),
    "IT": ("00184", "184"),
    "NL": ("1012 LG", "1012 L"),
    "PL": ("00-624", "00624"),
    "AU": ("2000", "20000"),
    "JP": ("100-0001", "100-001"),
    "KR": ("04524", "4524"),
    "SG": ("048616", "48616"),
    "MY": ("50450", "5045"),
    "TH": ("10110", "1011A"),
    "PH": ("1226", "12260"),
    "ID": ("10310", "103100"),
    "VN": ("700000", "70000"),
    "CN": ("100000", "10000"),
}


def test_postal_code_table_covers_every_country_with_a_pattern() -> None:
    # Given the countries with a postal-code pattern
    # When compared with this test's examples
    # Then every one of them has examples (a new pattern needs new examples here)
    assert set(POSTAL_CODES) == set(POSTAL_CODE_PATTERNS)


@pytest.mark.parametrize(("country", "code"), [(c, v) for c, (v, _) in POSTAL_CODES.items()])
def test_accepts_a_valid_postal_code_for_the_country(country: str, code: str) -> None:
    # Given an address with a postal code valid for its country
    order = make_order(country=country, postal_code=code)
    # When its address is checked
    problems = domain.address_problems(order)
    # Then there is no problem
    assert problems == []


@pytest.mark.parametrize(("country", "code"), [(c, i) for c, (_, i) in POSTAL_CODES.items()])
def test_rejects_a_postal_code_invalid_for_the_country(country: str, code: str) -> None:
    # Given an order to a served country with a postal code that does not match its pattern
    order = make_order(country=country, postal_code=code)
    # When it is reviewed
    result = run_review(order, served=set(POSTAL_CODE_PATTERNS))
    # Then it is rejected as incomplete_address, saying which country's format failed
    assert result.status == "rejected"
    assert codes(result) == ["incomplete_address"]
    assert f"is not a valid {country} code" in result.reasons[0][1]


def test_accepts_any_non_empty_postal_code_for_a_country_without_a_pattern() -> None:
    # Given a served country with no postal-code pattern
    assert "NZ" not in POSTAL_CODE_PATTERNS
    order = make_order(country="NZ", postal_code="anything")
    # When it is reviewed
    result = run_review(order)
    # Then the postal code is accepted as is
    assert result.status == "accepted"


def test_rejects_a_failed_payment() -> None:
    # Given an order whose payment failed
    order = make_order(payment_status="failed")
    # When it is reviewed
    result = run_review(order)
    # Then it is rejected as payment_failed
    assert result.status == "rejected"
    assert codes(result) == ["payment_failed"]


@pytest.mark.parametrize("status", ["paid", "authorized", "pending"])
def test_does_not_reject_payment_that_has_not_failed(status: str) -> None:
    # Given an order whose payment is paid, authorized or pending
    order = make_order(payment_status=status)
    # When it is reviewed
    result = run_review(order)
    # Then payment is not a reason to reject
    assert result.status == "accepted"


def test_collects_every_rejection_reason_in_one_review() -> None:
    # Given an order with several independent problems
    order = make_order(lines=[("NOPE", 0, "1.00")], country="FR", postal_code="",
                       payment_status="failed")
    # When it is reviewed
    result = run_review(order)
    # Then all of them are reported, in the rule order
    assert result.status == "rejected"
    assert codes(result) == ["invalid_quantity", "unknown_sku", "unsupported_country",
                             "incomplete_address", "payment_failed"]


def test_rejection_takes_precedence_over_holds() -> None:
    # Given an order that would be held (totals mismatch) but also has a failed payment
    order = make_order(payment_status="failed", grand_total="1.00")
    # When it is reviewed
    result = run_review(order)
    # Then it is rejected and no hold reasons are reported
    assert result.status == "rejected"
    assert codes(result) == ["payment_failed"]


# --- promotions -------------------------------------------------------------------------------

PCT10 = Promotion("SAVE10", "percent", Decimal("10"))
FIVE_OFF = Promotion("FIVE", "fixed", Decimal("5.00"))


@pytest.mark.parametrize(
    ("promo", "message"),
    [
        pytest.param(None, "is unknown", id="unknown"),
        pytest.param(Promotion("SAVE10", "percent", Decimal("10"), active=False), "is unknown",
                     id="inactive"),
        pytest.param(Promotion("SAVE10", "percent", Decimal("10"), ends_at=NOW - timedelta(days=1)),
                     "is not valid now", id="expired"),
        pytest.param(Promotion("SAVE10", "percent", Decimal("10"), starts_at=NOW + timedelta(days=1)),
                     "is not valid now", id="not-yet-started"),
        pytest.param(Promotion("SAVE10", "percent", Decimal("10"), min_spend=Decimal("100.00")),
                     "needs a minimum spend of 100.00", id="min-spend-not-met"),
    ],
)
def test_rejects_an_invalid_promo_code(promo: Promotion | None, message: str) -> None:
    # Given an order (subtotal 45.00) using a promo code that cannot be granted
    order = make_order(promo_codes=["SAVE10"], discount="4.50")
    promotions = {"SAVE10": promo} if promo else {}
    # When it is reviewed
    result = run_review(order, promotions=promotions)
    # Then it is rejected as invalid_promo with the specific explanation
    assert result.status == "rejected"
    assert codes(result) == ["invalid_promo"]
    assert "'SAVE10'" in result.reasons[0][1]
    assert message in result.reasons[0][1]


def test_accepts_a_valid_percent_promo_with_matching_discount() -> None:
    # Given an order (subtotal 45.00) using 10% off and claiming a 4.50 discount
    order = make_order(promo_codes=["SAVE10"], discount="4.50")
    # When it is reviewed
    result = run_review(order, promotions={"SAVE10": PCT10})
    # Then it is accepted
    assert result.status == "accepted"


def test_promo_codes_are_looked_up_case_insensitively() -> None:
    # Given an order using a lower-case code for an upper-case promotion
    order = make_order(promo_codes=["save10"], discount="4.50")
    # When the discount is computed
    discount, problem = domain.compute_discount(order, {"SAVE10": PCT10}, NOW)
    # Then the promotion is found
    assert problem is None
    assert discount == Decimal("4.50")


@pytest.mark.parametrize(
    ("promo", "expected"),
    [
        pytest.param(Promotion("P", "percent", Decimal("10")), Decimal("4.50"), id="percent"),
        pytest.param(Promotion("P", "percent", Decimal("33")), Decimal("14.85"), id="percent-odd"),
        pytest.param(Promotion("P", "fixed", Decimal("7.25")), Decimal("7.25"), id="fixed"),
        pytest.param(Promotion("P", "fixed", Decimal("80.00")), Decimal("45.00"), id="fixed-capped"),
        pytest.param(Promotion("P", "percent", Decimal("150")), Decimal("45.00"),
                     id="percent-capped"),
    ],
)
def test_computes_discount_and_caps_it_at_subtotal(promo: Promotion, expected: Decimal) -> None:
    # Given an order with subtotal 45.00 and one promo code
    order = make_order(promo_codes=["P"])
    # When the discount is computed
    discount, problem = domain.compute_discount(order, {"P": promo}, NOW)
    # Then it is the promotion's value, never more than the subtotal
    assert problem is None
    assert discount == expected


def test_stacks_several_promo_codes() -> None:
    # Given an order (subtotal 45.00) with a 10% and a 5.00 fixed code
    order = make_order(promo_codes=["SAVE10", "FIVE"])
    # When the discount is computed
    discount, problem = domain.compute_discount(order, {"SAVE10": PCT10, "FIVE": FIVE_OFF}, NOW)
    # Then both apply
    assert problem is None
    assert discount == Decimal("9.50")


def test_no_promo_codes_means_no_discount() -> None:
    # Given an order without promo codes
    order = make_order()
    # When the discount is computed
    discount, problem = domain.compute_discount(order, {"SAVE10": PCT10}, NOW)
    # Then there is no discount and no problem
    assert (discount, problem) == (Decimal("0"), None)


@pytest.mark.parametrize("min_spend", ["45.00", "44.99"])
def test_min_spend_equal_to_or_below_subtotal_is_met(min_spend: str) -> None:
    # Given a promotion whose minimum spend is the subtotal (45.00) or just below
    promo = Promotion("P", "fixed", Decimal("1.00"), min_spend=Decimal(min_spend))
    order = make_order(promo_codes=["P"])
    # When the discount is computed
    discount, problem = domain.compute_discount(order, {"P": promo}, NOW)
    # Then it is granted
    assert problem is None
    assert discount == Decimal("1.00")


@pytest.mark.parametrize(
    "promo",
    [Promotion("P", "fixed", Decimal("1.00"), starts_at=NOW),
     Promotion("P", "fixed", Decimal("1.00"), ends_at=NOW)],
    ids=["starts-now", "ends-now"],
)
def test_promotion_window_bounds_are_inclusive(promo: Promotion) -> None:
    # Given a promotion that starts or ends exactly now
    order = make_order(promo_codes=["P"])
    # When the discount is computed now
    _, problem = domain.compute_discount(order, {"P": promo}, NOW)
    # Then the code is valid
    assert problem is None


# --- holds ------------------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        # Subtotal claimed 50.00 (lines say 45.00); grand total consistent with the claim.
        pytest.param({"subtotal": "50.00"}, "totals.subtotal", id="subtotal"),
        # A 5.00 discount with no promo code; grand total consistent with the claim.
        pytest.param({"discount": "5.00"}, "totals.discount", id="discount"),
        # Lines, discount fine; grand total does not add up.
        pytest.param({"grand_total": "49.00"}, "totals.grand_total", id="grand_total"),
    ],
)
def test_holds_an_order_whose_totals_do_not_add_up(overrides: dict[str, str], field: str) -> None:
    # Given an order where exactly one total is inconsistent
    order = make_order(**overrides)
    # When it is reviewed
    result = run_review(order)
    # Then it is held for amount_mismatch, naming the total that differs
    assert result.status == "on_hold"
    assert codes(result) == ["amount_mismatch"]
    assert result.reasons[0][1].startswith(field)


def test_accepts_an_order_whose_grand_total_includes_tax_and_duties() -> None:
    # Given an order of 45.00 + 5.00 shipping with 4.05 tax and 1.20 duties (CONTRACT v1.1)
    payload = order_payload(grand_total="55.25")
    payload["totals"] |= {"tax": "4.05", "duties": "1.20"}
    # When it is reviewed
    result = run_review(OrderPlaced.model_validate(payload))
    # Then the totals add up: grand_total = subtotal - discount + shipping_fee + tax + duties
    assert result.status == "accepted"


def test_holds_an_order_whose_grand_total_leaves_out_its_tax() -> None:
    # Given an order that declares 4.05 tax but a grand total without it
    payload = order_payload()
    payload["totals"] |= {"tax": "4.05"}
    # When it is reviewed
    result = run_review(OrderPlaced.model_validate(payload))
    # Then it is held for amount_mismatch on the grand total, naming tax in the rule
    assert codes(result) == ["amount_mismatch"]
    assert result.reasons[0][1].startswith("totals.grand_total")
    assert "+ tax + duties = 54.05" in result.reasons[0][1]


def test_holds_discount_larger_than_the_promotions_grant() -> None:
    # Given a 10% code (4.50 on 45.00) but a claimed discount of 9.00
    order = make_order(promo_codes=["SAVE10"], discount="9.00")
    # When it is reviewed
    result = run_review(order, promotions={"SAVE10": PCT10})
    # Then it is held for amount_mismatch on the discount
    assert result.status == "on_hold"
    assert codes(result) == ["amount_mismatch"]
    assert "promotions' 4.50" in result.reasons[0][1]


def test_tolerates_a_one_cent_rounding_difference_in_totals() -> None:
    # Given a grand total one cent off
    order = make_order(grand_total="50.01")
    # When it is reviewed
    result = run_review(order)
    # Then it is accepted (rounding tolerance)
    assert result.status == "accepted"


def test_holds_an_order_above_the_high_value_threshold() -> None:
    # Given an order with grand total 2000.01 and the default threshold of 2000.00
    order = make_order(lines=[("MUG", 1, "1995.01")])
    assert order.totals.grand_total == Decimal("2000.01")
    # When it is reviewed
    result = run_review(order)
    # Then it is held as high_value, naming amount, currency and threshold
    assert result.status == "on_hold"
    assert codes(result) == ["high_value"]
    assert "2000.01 USD" in result.reasons[0][1]
    assert "2000.00" in result.reasons[0][1]


def test_accepts_an_order_exactly_at_the_high_value_threshold() -> None:
    # Given an order whose grand total equals the threshold
    order = make_order(lines=[("MUG", 1, "1995.00")])
    # When it is reviewed
    result = run_review(order)
    # Then it is accepted
    assert result.status == "accepted"


def test_uses_the_store_policy_high_value_threshold() -> None:
    # Given a store whose threshold is 40.00 and an order of 50.00
    order = make_order()
    # When it is reviewed under that policy
    result = run_review(order, policy=Policy(high_value_threshold=Decimal("40.00")))
    # Then it is held as high_value
    assert result.status == "on_hold"
    assert codes(result) == ["high_value"]


def test_reports_every_hold_reason_together() -> None:
    # Given a high-value order whose grand total also does not add up
    order = make_order(lines=[("MUG", 1, "3000.00")], grand_total="3100.00")
    # When it is reviewed
    result = run_review(order)
    # Then both hold reasons are listed
    assert result.status == "on_hold"
    assert codes(result) == ["amount_mismatch", "high_value"]


# --- refund_due, identify, snapshot -----------------------------------------------------------

@pytest.mark.parametrize(
    ("status", "expected"),
    [("paid", Decimal("50.00")), ("authorized", Decimal("50.00")),
     ("pending", Decimal("0.00")), ("failed", Decimal("0.00"))],
)
def test_refund_due_on_cancel_is_what_was_taken(status: str, expected: Decimal) -> None:
    # Given a cancelled order of 50.00 with a payment status
    # When the refund due is computed
    due = domain.refund_due(Decimal("50.00"), status)
    # Then paid/authorized money goes back, nothing for pending/failed
    assert due == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        pytest.param({"store": "shop-1", "external_order_id": "A.b_9-1"}, ("shop-1", "A.b_9-1"),
                     id="valid"),
        pytest.param({"store": "s", "external_order_id": "x" * 64, "lines": "junk"},
                     ("s", "x" * 64), id="valid-64-chars-other-fields-broken"),
        pytest.param(None, None, id="not-an-object"),
        pytest.param({}, None, id="empty"),
        pytest.param({"store": "shop-1"}, None, id="no-external-id"),
        pytest.param({"external_order_id": "1001"}, None, id="no-store"),
        pytest.param({"store": "shop-1", "external_order_id": 1001}, None, id="id-not-a-string"),
        pytest.param({"store": "my shop", "external_order_id": "1001"}, None, id="space"),
        pytest.param({"store": "", "external_order_id": "1001"}, None, id="empty-store"),
        pytest.param({"store": "shop-1", "external_order_id": "x" * 65}, None, id="too-long"),
        pytest.param({"store": "shop/1", "external_order_id": "1001"}, None, id="slash"),
    ],
)
def test_identify_names_an_order_only_from_valid_store_and_id(
        raw: dict[str, object] | None, expected: tuple[str, str] | None) -> None:
    # Given a raw (possibly malformed) orders.placed value
    # When intake tries to identify the order it names
    result = domain.identify(raw)
    # Then only a valid store and external id pair identifies it
    assert result == expected


def test_snapshot_builds_a_valid_order_snapshot() -> None:
    # Given an accepted order
    order = make_order()
    # When its snapshot is taken
    snap = OrderSnapshot(**domain.snapshot("ord-1", order, NOW))
    # Then it validates as an OrderSnapshot carrying the order's data
    assert snap.key == "shop-1:1001"
    assert snap.payment_status == "paid"
    assert snap.totals == order.totals
    assert snap.accepted_at == NOW


def test_the_snapshot_carries_the_orders_ioss_number_to_logistics() -> None:
    # Given an EU order placed with the seller's IOSS number, and one without (a v1.0 order)
    eu = make_order(country="DE")
    eu = eu.model_copy(update={"ioss_number": "IM2760000001"})
    # When their snapshots are taken
    # Then the number travels with the first, and the second has none
    assert OrderSnapshot(**domain.snapshot("ord-1", eu, NOW)).ioss_number == "IM2760000001"
    assert OrderSnapshot(**domain.snapshot("ord-2", make_order(), NOW)).ioss_number is None
