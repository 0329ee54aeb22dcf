"""Intake's review rules added by issue 3: risk, duplicates, merges, promotions as data, the rule
set as data and the explanation of each decision. Pure: no I/O."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.intake import domain
from services.intake.domain import BlockedEntry, Context, Policy, PriorOrder, Product, Promotion
from shared.contracts import OrderPlaced

from .test_intake_domain import NOW, PRODUCTS, SERVED, make_order, order_payload

BATTERY = {**PRODUCTS, "CELL": Product("CELL", True, "electronics", Decimal("9.00"),
                                       ("battery", "fragile"))}


def review(order: OrderPlaced, *, policy: Policy | None = None, ctx: Context | None = None,
           promotions: dict[str, Promotion] | None = None) -> domain.Review:
    return domain.review(order, BATTERY, SERVED, promotions or {}, policy or Policy(), NOW, ctx)


def codes(result: domain.Review) -> list[str]:
    return [c for c, _ in result.reasons]


def order_with(**changes: Any) -> OrderPlaced:
    payload = order_payload(**{k: v for k, v in changes.items() if k not in ("customer",
                                                                            "payment", "ext")})
    if "customer" in changes:
        payload["customer"].update(changes["customer"])
    if "payment" in changes:
        payload["payment"].update(changes["payment"])
    if "ext" in changes:
        payload["external_order_id"] = changes["ext"]
    return OrderPlaced.model_validate(payload)


# --- blocked customers ------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("entry", "status"),
    [
        pytest.param(BlockedEntry("customer_id", "c-1"), "on_hold", id="customer-id-hold"),
        pytest.param(BlockedEntry("email", "ana@example.com", "reject"), "rejected",
                     id="email-reject"),
        pytest.param(BlockedEntry("phone", "+5511999990000"), "on_hold", id="phone"),
        pytest.param(BlockedEntry("address", "100 main st||austin|73301|US"), "on_hold",
                     id="address"),
        pytest.param(BlockedEntry("customer_id", "c-2"), "accepted", id="someone-else"),
    ],
)
def test_blocked_customers_are_held_or_rejected_by_their_entry(entry: BlockedEntry,
                                                               status: str) -> None:
    # Given a customer with an id, an email, a phone (with spacing) and an address
    order = order_with(customer={"phone": "+55 11 99999-0000", "email": "Ana@Example.com "})
    # When the block list has one entry
    result = review(order, ctx=Context(blocked=(entry,)))
    # Then a matching entry holds or rejects, as it says, naming only which identity matched
    assert result.status == status
    if status != "accepted":
        assert codes(result) == ["blocked_customer"]
        hit = result.fired[0]
        assert hit.inputs["matched_on"] == [entry.kind]
        assert entry.value not in str(hit.inputs)


def test_normalised_address_ignores_case_accents_punctuation_and_spacing() -> None:
    a = order_with(line1="Rua São João, 10", city="SÃO PAULO", postal_code="01000-000",
                   country="BR")
    b = order_with(line1="rua sao  joao 10", city="Sao Paulo", postal_code="01000000",
                   country="BR")
    assert domain.address_key(a) != domain.address_key(order_with())
    # postal codes differ only by the hyphen, folded to the same key
    assert domain.address_key(a).split("|")[:3] == domain.address_key(b).split("|")[:3]


# --- restricted goods -------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("refused", "action", "status"),
    [
        pytest.param({"US": ["battery"]}, "hold", "on_hold", id="held"),
        pytest.param({"US": ["battery"]}, "reject", "rejected", id="rejected-by-policy"),
        pytest.param({"US": ["liquid"]}, "hold", "accepted", id="other-attribute"),
        pytest.param({"DE": ["battery"]}, "hold", "accepted", id="other-country"),
    ],
)
def test_restricted_goods_for_the_destination_hold_or_reject_by_policy(
        refused: dict[str, list[str]], action: str, status: str) -> None:
    # Given an order to the US with a battery product
    order = make_order(lines=[("CELL", 1, "9.00")])
    # When logistics refuses some attributes for some countries
    result = review(order, policy=Policy().with_overrides({"restricted_goods_action": action}),
                    ctx=Context(refused_attributes=refused))
    # Then the order is held or rejected as restricted_goods when it carries one to that country
    assert result.status == status
    if status != "accepted":
        assert codes(result) == ["restricted_goods"]
        assert result.fired[0].inputs["skus"] == {"CELL": ["battery"]}


# --- payment pending --------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("hold_pending", "method", "status", "expected"),
    [
        pytest.param(True, "card", "pending", "on_hold", id="held"),
        pytest.param(True, "cod", "pending", "accepted", id="cash-on-delivery"),
        pytest.param(True, "card", "authorized", "accepted", id="authorized"),
        pytest.param(False, "card", "pending", "accepted", id="policy-off"),
    ],
)
def test_pending_payment_is_held_when_the_store_says_so(hold_pending: bool, method: str,
                                                        status: str, expected: str) -> None:
    order = order_with(payment={"method": method, "status": status})
    result = review(order, policy=Policy(hold_pending_payment=hold_pending))
    assert result.status == expected
    if expected == "on_hold":
        assert codes(result) == ["payment_pending"]


# --- high value -------------------------------------------------------------------------------

def test_high_value_rejects_when_the_store_policy_says_reject() -> None:
    order = make_order(lines=[("TEE", 10, "20.00")])
    result = review(order, policy=Policy(high_value_threshold=Decimal("100.00"),
                                         high_value_action="reject"))
    assert (result.status, codes(result)) == ("rejected", ["high_value"])
    assert result.fired[0].inputs == {"grand_total": "205.00", "currency": "USD",
                                      "threshold": "100.00"}


# --- duplicates and merges --------------------------------------------------------------------

def prior(order: OrderPlaced, *, ext: str = "999", minutes_ago: int = 5, status: str = "accepted",
          shipped: bool = False, customer: str | None = None, address: str | None = None,
          items: str | None = None) -> PriorOrder:
    return PriorOrder("00000000-0000-0000-0000-000000000999", ext,
                      customer if customer is not None else order.customer.id,
                      address if address is not None else domain.address_key(order),
                      items if items is not None else domain.items_key(order),
                      NOW - timedelta(minutes=minutes_ago), status, shipped)


DUP = Policy(duplicate_window_minutes=30)


@pytest.mark.parametrize(
    ("changes", "expected", "matched"),
    [
        pytest.param({}, "on_hold", "customer", id="same-customer-same-items"),
        pytest.param({"customer": "c-other"}, "on_hold", "address", id="same-address"),
        pytest.param({"customer": "c-other", "address": "elsewhere"}, "accepted", None,
                     id="neither"),
        pytest.param({"items": "MUGx1"}, "accepted", None, id="other-items"),
        pytest.param({"minutes_ago": 31}, "accepted", None, id="outside-window"),
        pytest.param({"minutes_ago": 30}, "on_hold", "customer", id="window-bound-inclusive"),
        pytest.param({"status": "cancelled"}, "accepted", None, id="other-cancelled"),
        pytest.param({"status": "rejected"}, "accepted", None, id="other-rejected"),
        pytest.param({"ext": "1001"}, "accepted", None, id="same-external-id-is-a-resend"),
    ],
)
def test_duplicates_are_held_naming_the_other_order(changes: dict[str, Any], expected: str,
                                                    matched: str | None) -> None:
    order = make_order()
    result = review(order, policy=DUP, ctx=Context(prior=(prior(order, **changes),)))
    assert result.status == expected
    if matched:
        assert codes(result) == ["suspected_duplicate"]
        assert "999" in result.reasons[0][1]
        assert result.fired[0].inputs["matched_on"] == matched
        assert result.fired[0].inputs["other_order_id"].endswith("999")


def test_duplicate_detection_is_off_with_a_zero_window() -> None:
    order = make_order()
    assert review(order, ctx=Context(prior=(prior(order),))).status == "accepted"


@pytest.mark.parametrize(
    ("changes", "merge"),
    [
        pytest.param({"items": "TEEx9"}, True, id="same-buyer-and-address-unshipped"),
        pytest.param({"items": "TEEx9", "shipped": True}, False, id="other-shipped"),
        pytest.param({"items": "TEEx9", "address": "elsewhere"}, False, id="other-address"),
        pytest.param({"items": "TEEx9", "customer": "c-2"}, False, id="other-buyer"),
        pytest.param({"items": "TEEx9", "status": "cancelled"}, False, id="other-cancelled"),
        pytest.param({"items": "TEEx9", "minutes_ago": 2000}, False, id="outside-window"),
    ],
)
def test_merge_candidates_are_unshipped_orders_of_the_same_buyer_and_address(
        changes: dict[str, Any], merge: bool) -> None:
    order = make_order()
    result = review(order, ctx=Context(prior=(prior(order, **changes),)))
    assert result.status == "accepted"  # a merge candidate is a note, never a hold
    assert result.merge_with == (["00000000-0000-0000-0000-000000000999"] if merge else [])
    assert any(h.rule == "merge_candidate" for h in result.fired) == merge


def test_snapshot_carries_merge_candidates() -> None:
    snap = domain.snapshot("o-1", make_order(), NOW, ["o-0"])
    assert snap["merge_with"] == ["o-0"]


# --- promotions as data -----------------------------------------------------------------------

MUGS = Promotion("MUGS", "percent", Decimal("50"), scope_skus=frozenset({"MUG"}))
APPAREL = Promotion("APP", "fixed", Decimal("5.00"), scope_categories=frozenset({"apparel"}))
SOLO = Promotion("SOLO", "fixed", Decimal("1.00"), stackable=False)
ONCE = Promotion("ONCE", "fixed", Decimal("1.00"), per_customer_limit=1)
ALL = {p.code: p for p in (MUGS, APPAREL, SOLO, ONCE,
                           Promotion("TEN", "percent", Decimal("10")))}


@pytest.mark.parametrize(
    ("codes_", "uses", "discount", "problem"),
    [
        pytest.param(["MUGS"], {}, "12.50", None, id="sku-scope"),            # 50% of 25.00
        pytest.param(["APP"], {}, "5.00", None, id="category-scope"),
        pytest.param(["MUGS", "APP"], {}, "17.50", None, id="stackable-scopes"),
        pytest.param(["SOLO"], {}, "1.00", None, id="exclusive-alone"),
        pytest.param(["SOLO", "TEN"], {}, None, "cannot be combined", id="exclusive-combined"),
        pytest.param(["TEN", "SOLO"], {}, None, "cannot be combined", id="exclusive-second"),
        pytest.param(["ONCE"], {"ONCE": 0}, "1.00", None, id="limit-not-reached"),
        pytest.param(["ONCE"], {"ONCE": 1}, None, "already used 1 time", id="limit-reached"),
        pytest.param(["TEN", "ten"], {}, None, "used more than once", id="same-code-twice"),
    ],
)
def test_promotions_as_data(codes_: list[str], uses: dict[str, int], discount: str | None,
                            problem: str | None) -> None:
    # Given an order of 2 mugs (25.00, home) and a tee (20.00, apparel)
    order = make_order(promo_codes=codes_)
    granted, issue = domain.compute_discount(order, ALL, NOW, uses=uses, products=PRODUCTS)
    if problem:
        assert issue is not None and issue[0] == "invalid_promo" and problem in issue[1]
    else:
        assert issue is None and granted == Decimal(discount or "0")


def test_a_promotion_scoped_to_nothing_in_the_order_is_invalid() -> None:
    order = make_order(lines=[("TEE", 1, "20.00")], promo_codes=["MUGS"])
    _, issue = domain.compute_discount(order, ALL, NOW, products=PRODUCTS)
    assert issue is not None and "applies to none" in issue[1]


@pytest.mark.parametrize(("action", "status"), [("reject", "rejected"), ("hold", "on_hold")])
def test_invalid_promo_is_rejected_or_held_by_store_policy(action: str, status: str) -> None:
    order = make_order(promo_codes=["NOPE"], discount="4.50")
    result = review(order, policy=Policy(invalid_promo_action=action))  # type: ignore[arg-type]
    assert result.status == status
    assert "invalid_promo" in codes(result)


prices = st.decimals(min_value=Decimal("0.00"), max_value=Decimal("500.00"), places=2)
promos = st.builds(
    Promotion, code=st.sampled_from(["A", "B", "C"]), kind=st.sampled_from(["percent", "fixed"]),
    value=st.decimals(min_value=Decimal("0"), max_value=Decimal("100"), places=2),
    min_spend=st.just(Decimal("0")), stackable=st.booleans(),
    scope_skus=st.sampled_from([frozenset(), frozenset({"MUG"}), frozenset({"TEE"})]))


@settings(max_examples=300, deadline=None)
@given(mug=prices, tee=prices, shipping=prices, chosen=st.lists(promos, max_size=3))
def test_discount_properties(mug: Decimal, tee: Decimal, shipping: Decimal,
                             chosen: list[Promotion]) -> None:
    # Given any prices and any promotions (at most one per code)
    table = {p.code: p for p in chosen}
    order = make_order(lines=[("MUG", 1, f"{mug:.2f}"), ("TEE", 1, f"{tee:.2f}")],
                       promo_codes=list(table), shipping_fee=f"{shipping:.2f}")
    subtotal = mug + tee
    discount, problem = domain.compute_discount(order, table, NOW, products=PRODUCTS)
    # Then the discount is never negative, never above the subtotal, and the total never negative
    assert Decimal("0") <= discount <= subtotal
    assert subtotal - discount + shipping >= 0
    # And an exclusive code is never combined with another one
    exclusive = [p for p in table.values() if not p.stackable]
    if exclusive and len(table) > 1:
        assert problem is not None and "cannot be combined" in problem[1]
    if problem is None:
        # And stacked codes grant the sum of what each grants alone (capped at the subtotal)
        alone = []
        for code in table:
            single = make_order(lines=[("MUG", 1, f"{mug:.2f}"), ("TEE", 1, f"{tee:.2f}")],
                                promo_codes=[code])
            alone.append(domain.compute_discount(single, table, NOW, products=PRODUCTS)[0])
        assert discount == min(sum(alone, Decimal("0")), subtotal)


# --- the rule set as data and the explanation -------------------------------------------------

def test_policy_overrides_validate_names_and_values() -> None:
    p = Policy().with_overrides({"high_value_threshold": "500", "duplicate_window_minutes": 15,
                                 "hold_pending_payment": True, "high_value_action": "reject"})
    assert (p.high_value_threshold, p.duplicate_window_minutes) == (Decimal("500.00"), 15)
    assert p.as_dict()["high_value_threshold"] == "500.00"
    for bad in ({"no_such": 1}, {"duplicate_window_minutes": -1},
                {"hold_pending_payment": "yes"}, {"high_value_action": "shrug"},
                {"high_value_threshold": "lots"}, {"merge_window_minutes": 1.5}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            Policy().with_overrides(bad)


def test_every_decision_names_the_rules_that_fired_with_their_inputs() -> None:
    order = make_order(lines=[("TEE", 200, "20.00")], grand_total="4100.00")
    result = review(order)
    assert result.status == "on_hold"
    assert sorted((h.rule, h.code) for h in result.fired) == [("high_value", "high_value"),
                                                              ("totals", "amount_mismatch")]
    mismatch = next(h for h in result.fired if h.rule == "totals")
    assert mismatch.inputs == {"field": "totals.grand_total", "claimed": "4100.00",
                               "computed": "4005.00"}
    assert all(h.as_dict()["message"] for h in result.fired)


def test_rejections_list_only_the_rejecting_rules() -> None:
    order = make_order(lines=[("NOPE", 1, "1.00")], payment_status="failed")
    result = review(order)
    assert [h.effect for h in result.fired] == ["reject", "reject"]
    assert codes(result) == ["unknown_sku", "payment_failed"]


def test_a_policy_is_a_plain_value() -> None:
    assert replace(Policy(), hold_sla_minutes=5).hold_sla_minutes == 5


@pytest.mark.parametrize(
    ("kind", "raw", "stored"),
    [("email", " Ana@Example.COM ", "ana@example.com"),
     ("phone", "+55 (11) 99999-0000", "+5511999990000"),
     ("customer_id", " c-1 ", "c-1")],
)
def test_block_list_entries_are_stored_as_the_order_identities_compare(kind: str, raw: str,
                                                                      stored: str) -> None:
    assert domain.normalise_identity(kind, raw) == stored
    order = order_with(customer={"email": "ana@example.com", "phone": "+5511999990000"})
    assert domain.identities(order)[kind] == stored
