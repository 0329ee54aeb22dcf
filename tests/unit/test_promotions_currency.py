"""Promotions whose amounts name their currency (issue 22, point 1; services/intake/domain.py
`check_promotions`): a fixed value and a minimum spend are in the promotion's currency, an order
in another currency is compared with them converted at the newest known rate (rounded to the
order currency's minor unit, the rate and its date in the trace), and without a rate the order is
held `fx_rate_missing` as the high-value check does. Pure: no I/O."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from services.intake import domain
from services.intake.domain import Context, Policy, Promotion
from shared.contracts import OrderPlaced
from shared.money import FxRates, Rate

from .test_intake_domain import NOW, PRODUCTS, SERVED, order_payload

AS_OF = datetime(2025, 6, 1, 9, 0, tzinfo=UTC)
USD_JPY = Rate("USD", "JPY", Decimal("150"), AS_OF)
USD_KWD = Rate("USD", "KWD", Decimal("0.3071"), AS_OF)
USD_EUR = Rate("USD", "EUR", Decimal("0.80"), AS_OF)
# The seed's SAVE5: 5.00 off a spend of at least 30.00, in USD (the default currency)
SAVE5 = Promotion("SAVE5", "fixed", Decimal("5.00"), Decimal("30.00"))
TEN = Promotion("TEN", "percent", Decimal("10"), Decimal("30.00"))
TEN_ANY = Promotion("TENANY", "percent", Decimal("10"))
PROMOS = {p.code: p for p in (SAVE5, TEN, TEN_ANY)}


def order(currency: str, price: str, *, codes: list[str], discount: str, grand: str
          ) -> OrderPlaced:
    """One MUG at `price`, no shipping fee, the store's discount and grand total as given."""
    payload = order_payload(lines=[("MUG", 1, price)], shipping_fee="0", promo_codes=codes)
    payload["currency"] = currency
    payload["totals"].update(subtotal=price, discount=discount, grand_total=grand)
    return OrderPlaced.model_validate(payload)


def review(o: OrderPlaced, fx: FxRates | None = None, policy: Policy | None = None,
           promotions: dict[str, Promotion] | None = None) -> domain.Review:
    return domain.review(o, PRODUCTS, SERVED, promotions or PROMOS, policy or Policy(), NOW,
                         Context(fx=fx or FxRates()))


def test_a_yen_order_gets_the_dollar_code_converted_with_the_rate_in_the_trace() -> None:
    # Given SAVE5 (5.00 USD off a 30.00 USD spend) and 1 USD = 150 JPY
    fx = FxRates([USD_JPY])
    # When a ¥5,000 order uses it with the store's discount of ¥750 (5 USD)
    result = review(order("JPY", "5000", codes=["SAVE5"], discount="750", grand="4250"), fx)
    # Then it is accepted with a ¥750 discount, not ¥5
    assert result.status == "accepted" and result.discount == Decimal("750")
    # And the trace names both conversions, the rate and its date
    note = next(h for h in result.fired if h.code == "promo_converted")
    assert note.effect == "note" and note.rule == "promotion"
    conv = {c["amount"]: c for c in note.inputs["conversions"]}
    assert conv["value"]["converted"] == "750 JPY" and conv["value"]["from"] == "5.00 USD"
    assert conv["min_spend"]["converted"] == "4500 JPY" and conv["value"]["rate"] == "150"
    assert conv["value"]["rate_as_of"] == AS_OF.isoformat()
    assert "promo code 'SAVE5' discount 5.00 USD = 750 JPY at 150 (rate as of 2025-06-01" in \
        note.message


def test_a_yen_order_below_the_converted_minimum_spend_is_an_invalid_promo() -> None:
    fx = FxRates([USD_JPY])
    # 31 JPY met a bare "30" once; ¥4,000 (26.67 USD) is below 30.00 USD = ¥4,500
    for price in ("31", "4000"):
        result = review(order("JPY", price, codes=["SAVE5"], discount="0", grand=price), fx)
        assert result.status == "rejected" and [c for c, _ in result.reasons] == ["invalid_promo"]
        assert "needs a minimum spend of 30.00 USD = 4500 JPY at 150 (rate as of" \
            in result.reasons[0][1]
        assert result.fired[0].inputs["conversions"][0]["converted"] == "4500 JPY"


def test_the_old_bare_number_discount_no_longer_adds_up() -> None:
    # The store took 5 JPY off, as intake used to compute: the discount is 750 JPY now
    fx = FxRates([USD_JPY])
    result = review(order("JPY", "5000", codes=["SAVE5"], discount="5", grand="4995"), fx)
    assert result.status == "on_hold" and [c for c, _ in result.reasons] == ["amount_mismatch"]
    assert "differs from the promotions' 750" in result.reasons[0][1]


def test_a_percent_code_converts_only_its_minimum_spend() -> None:
    fx = FxRates([USD_JPY])
    ok = review(order("JPY", "5000", codes=["TEN"], discount="500", grand="4500"), fx)
    assert ok.status == "accepted" and ok.discount == Decimal("500")
    conv = next(h for h in ok.fired if h.code == "promo_converted").inputs["conversions"]
    assert [c["amount"] for c in conv] == ["min_spend"]
    # Without a minimum spend a percent code needs no rate at all
    free = review(order("JPY", "5000", codes=["TENANY"], discount="500", grand="4500"),
                  policy=Policy(high_value_currency="JPY", high_value_threshold=Decimal("300000")))
    assert free.status == "accepted" and free.fired == []


def test_three_decimal_currencies_are_rounded_to_their_minor_unit() -> None:
    # 5.00 USD at 0.3071 is 1.5355 KWD: 1.536 KWD off (half up, three decimals)
    fx = FxRates([USD_KWD])
    result = review(order("KWD", "10.000", codes=["SAVE5"], discount="1.536", grand="8.464"), fx)
    assert result.status == "accepted" and result.discount == Decimal("1.536")
    conv = {c["amount"]: c for c in next(
        h for h in result.fired if h.code == "promo_converted").inputs["conversions"]}
    assert conv["value"]["converted"] == "1.536 KWD"
    assert conv["min_spend"]["converted"] == "9.213 KWD"  # 30 x 0.3071
    # A promotion kept in KWD with three decimals applies as it is to a KWD order
    kwd = Promotion("K", "fixed", Decimal("1.125"), Decimal("9.000"), currency="KWD")
    same = review(order("KWD", "10.000", codes=["K"], discount="1.125", grand="8.875"),
                  promotions={"K": kwd}, policy=Policy(high_value_currency="KWD"))
    assert same.status == "accepted" and same.discount == Decimal("1.125") and same.fired == []


def test_without_a_rate_the_order_is_held_fx_rate_missing_naming_code_and_pair() -> None:
    # A store whose threshold is in yen needs no rate for the high-value check: only SAVE5 does
    yen = Policy(high_value_currency="JPY", high_value_threshold=Decimal("300000"))
    for action in ("reject", "hold"):
        result = review(order("JPY", "5000", codes=["SAVE5"], discount="750", grand="4250"),
                        policy=Policy(**{**yen.__dict__, "invalid_promo_action": action}))
        # Held whatever invalid_promo_action says, and only for the rate (no amount_mismatch)
        assert result.status == "on_hold" and [c for c, _ in result.reasons] == \
            ["fx_rate_missing"]
        message = result.reasons[0][1]
        assert "no exchange rate from USD to JPY" in message and "'SAVE5'" in message
        hit = result.fired[0]
        assert (hit.rule, hit.effect) == ("promotion", "hold")
        assert hit.inputs["promotion_currencies"] == {"SAVE5": "USD"}
    # With the default USD threshold, both checks miss a rate: two reasons, one code
    both = review(order("JPY", "5000", codes=["SAVE5"], discount="750", grand="4250"))
    assert [c for c, _ in both.reasons] == ["fx_rate_missing", "fx_rate_missing"]


def test_a_plainly_invalid_code_wins_over_a_missing_rate() -> None:
    result = review(order("JPY", "5000", codes=["SAVE5", "NOPE"], discount="0", grand="5000"))
    assert result.status == "rejected" and [c for c, _ in result.reasons] == ["invalid_promo"]
    assert "'NOPE' is unknown" in result.reasons[0][1]


def test_an_order_in_the_promotions_currency_is_unchanged() -> None:
    # The seed SAVE5 on a USD order: 5.00 off a spend of at least 30.00, no rate needed
    ok = review(order("USD", "40.00", codes=["SAVE5"], discount="5.00", grand="35.00"))
    assert ok.status == "accepted" and ok.discount == Decimal("5.00") and ok.fired == []
    low = review(order("USD", "29.99", codes=["SAVE5"], discount="5.00", grand="24.99"))
    assert [c for c, _ in low.reasons] == ["invalid_promo"]
    assert low.reasons[0][1] == "promo code 'SAVE5' needs a minimum spend of 30.00"
    # A EUR promotion on a EUR order: no rate either
    eur = Promotion("E5", "fixed", Decimal("5.00"), Decimal("30.00"), currency="EUR")
    same = review(order("EUR", "40.00", codes=["E5"], discount="5.00", grand="35.00"),
                  promotions={"E5": eur}, policy=Policy(high_value_currency="EUR"))
    assert same.status == "accepted" and same.discount == Decimal("5.00") and same.fired == []


def test_a_cross_rate_through_a_common_base_is_named_in_the_trace() -> None:
    # A EUR code on a JPY order, with rates from USD only: 4.00 EUR = 5 USD = 750 JPY
    eur = Promotion("E4", "fixed", Decimal("4.00"), currency="EUR")
    result = review(order("JPY", "5000", codes=["E4"], discount="750", grand="4250"),
                    FxRates([USD_JPY, USD_EUR]), promotions={"E4": eur})
    assert result.status == "accepted" and result.discount == Decimal("750")
    conv = next(h for h in result.fired if h.code == "promo_converted").inputs["conversions"]
    assert conv[0]["via"] == "USD" and conv[0]["converted"] == "750 JPY"
    # compute_discount, as before, answers the discount and the problem
    assert domain.compute_discount(
        order("JPY", "5000", codes=["E4"], discount="750", grand="4250"), {"E4": eur}, NOW,
        fx=FxRates([USD_JPY, USD_EUR])) == (Decimal("750"), None)
