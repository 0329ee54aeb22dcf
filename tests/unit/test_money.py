"""Money across currencies (shared/money.py) and intake's currency-aware rules: the high-value
threshold in its own currency through exchange rates, amounts checked against their currency's
minor unit, and price lists with a tolerance. Pure: no I/O."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from services.intake import domain
from services.intake.domain import Context, Policy
from shared.contracts import OrderPlaced
from shared.money import FxRates, Rate, Threshold, fits, minor_digits, quantum, show

from .test_intake_domain import NOW, PRODUCTS, SERVED, order_payload

AS_OF = datetime(2025, 6, 1, 9, 0, tzinfo=UTC)
USD_CNY = Rate("USD", "CNY", Decimal("7.10"), AS_OF)
USD_JPY = Rate("USD", "JPY", Decimal("150"), AS_OF)


@pytest.mark.parametrize(("currency", "digits", "unit"), [
    ("USD", 2, "0.01"), ("JPY", 0, "1"), ("KRW", 0, "1"), ("KWD", 3, "0.001"),
    ("BHD", 3, "0.001"), ("CNY", 2, "0.01")])
def test_each_currency_has_its_minor_unit(currency: str, digits: int, unit: str) -> None:
    assert minor_digits(currency) == digits and quantum(currency) == Decimal(unit)


def test_an_amount_fits_its_currency_only_in_whole_minor_units() -> None:
    assert fits(Decimal("5000.00"), "JPY") and not fits(Decimal("5000.50"), "JPY")
    assert fits(Decimal("12.345"), "KWD") and not fits(Decimal("12.345"), "USD")
    assert show(Decimal("5000"), "JPY") == "5000 JPY" and show(Decimal("1.5"), "KWD") == \
        "1.500 KWD"


@pytest.mark.parametrize(("raw", "amount", "currency"), [
    ("2000.00 USD", "2000.00", "USD"), ("300000 JPY", "300000", "JPY"),
    ({"amount": "12.345", "currency": "KWD"}, "12.345", "KWD"), ("150", "150.00", "USD")])
def test_thresholds_name_their_currency(raw: Any, amount: str, currency: str) -> None:
    t = Threshold.parse(raw)
    assert (t.amount, t.currency) == (Decimal(amount), currency)


@pytest.mark.parametrize("raw", ["12 usd!", "-5 USD", "abc USD", {"amount": "1", "currency": "X"}])
def test_a_bad_threshold_is_refused_with_its_reason(raw: Any) -> None:
    with pytest.raises(ValueError):
        Threshold.parse(raw)


def test_conversion_uses_the_direct_pair_its_inverse_or_a_cross_rate() -> None:
    fx = FxRates([USD_CNY, USD_JPY])
    direct = fx.convert(Decimal("10"), "USD", "CNY")
    assert direct is not None and direct.amount == Decimal("71.00") and direct.via is None
    inverse = fx.convert(Decimal("71"), "CNY", "USD")
    assert inverse is not None and inverse.amount.quantize(Decimal("0.01")) == Decimal("10.00")
    cross = fx.convert(Decimal("7.10"), "CNY", "JPY")
    assert cross is not None and cross.via == "USD"
    assert cross.amount.quantize(Decimal("1")) == Decimal("150")
    assert fx.convert(Decimal("1"), "EUR", "USD") is None
    same = fx.convert(Decimal("3"), "EUR", "EUR")
    assert same is not None and same.amount == Decimal("3") and same.as_of is None


def _order(currency: str, lines: list[tuple[str, int, str]], shipping_fee: str = "0.00",
           **totals: str) -> OrderPlaced:
    payload = order_payload(lines=lines, shipping_fee=shipping_fee)
    payload["currency"] = currency
    payload["totals"].update(totals)
    return OrderPlaced.model_validate(payload)


def _review(order: OrderPlaced, ctx: Context | None = None,
            policy: Policy | None = None) -> domain.Review:
    return domain.review(order, PRODUCTS, SERVED, {}, policy or Policy(), NOW, ctx)


def test_a_yen_order_is_compared_with_a_dollar_threshold_through_the_rate() -> None:
    # Given ¥5,000 (about 33 USD) against a 2,000 USD threshold, and a rate
    order = _order("JPY", [("MUG", 1, "5000")], subtotal="5000", grand_total="5000")
    # Then it is not high value: converted, not compared as a bare number
    assert _review(order, Context(fx=FxRates([USD_JPY]))).status == "accepted"
    # Given ¥400,000 (about 2,667 USD): held as high value, the rate used in the trace
    big = _order("JPY", [("MUG", 1, "400000")], subtotal="400000", grand_total="400000")
    result = _review(big, Context(fx=FxRates([USD_JPY])))
    assert [c for c, _ in result.reasons] == ["high_value"]
    hit = result.fired[0]
    assert hit.inputs["converted"] == "2666.67 USD" and hit.inputs["rate"] == "0.006666666667"
    assert hit.inputs["rate_as_of"] == AS_OF.isoformat()
    assert "400000.00 JPY (2666.67 USD at" in hit.message and "2000.00 USD" in hit.message


def test_without_a_rate_the_high_value_check_holds_the_order_and_says_why() -> None:
    order = _order("CNY", [("MUG", 1, "100.00")], subtotal="100.00", grand_total="100.00")
    result = _review(order)  # no rates known
    assert [c for c, _ in result.reasons] == ["fx_rate_missing"]
    assert "no exchange rate from CNY to USD" in result.reasons[0][1]
    # A store whose threshold is in its own currency needs no rate
    own = Policy(high_value_threshold=Decimal("10000"), high_value_currency="CNY")
    assert _review(order, policy=own).status == "accepted"


def test_a_threshold_currency_is_validated_when_the_policy_changes() -> None:
    assert Policy().with_overrides({"high_value_currency": "CNY"}).high_value_currency == "CNY"
    with pytest.raises(ValueError, match="high_value_currency"):
        Policy().with_overrides({"high_value_currency": "yuan"})


def test_three_decimal_amounts_are_taken_and_finer_ones_refused() -> None:
    kwd = _order("KWD", [("MUG", 2, "1.125")], subtotal="2.250", grand_total="2.250")
    policy = Policy(high_value_currency="KWD")
    assert _review(kwd, policy=policy).status == "accepted"
    jpy = _order("JPY", [("MUG", 1, "5000.50")], subtotal="5000.50", grand_total="5000.50")
    result = _review(jpy, policy=Policy(high_value_currency="JPY"))
    assert result.status == "rejected" and [c for c, _ in result.reasons] == ["malformed"]
    assert "JPY amounts have 0 decimals" in result.reasons[0][1]


def test_a_line_priced_off_the_list_is_held_with_the_expected_price() -> None:
    # Given a 12.50 USD list price for MUG and a 2 % tolerance
    listed = Context(list_prices={"MUG": Decimal("12.50")})
    cheap = _order("USD", [("MUG", 1, "1.00")], subtotal="1.00", grand_total="1.00")
    result = _review(cheap, listed)
    assert [c for c, _ in result.reasons] == ["price_mismatch"]
    assert result.fired[0].inputs["expected"] == "12.50"
    assert "unit price 1.00 USD is off the list price 12.50 USD by more than 2.00%" in \
        result.reasons[0][1]
    # Within the tolerance (12.70 is 1.6 % over), and lines without a list price: accepted
    near = _order("USD", [("MUG", 1, "12.70"), ("TEE", 1, "99.00")], subtotal="111.70",
                  grand_total="111.70")
    assert _review(near, listed).status == "accepted"
    # A tolerance of 0 wants the exact price
    exact = Policy(price_tolerance_percent=Decimal("0"))
    assert _review(near, listed, exact).status == "on_hold"


def test_promotions_work_on_top_of_the_list_price() -> None:
    listed = Context(list_prices={"MUG": Decimal("12.50")})
    promo = {"TENOFF": domain.Promotion("TENOFF", "percent", Decimal("10"))}
    payload = order_payload(lines=[("MUG", 2, "12.50")], shipping_fee="0.00", discount="2.50",
                            promo_codes=["TENOFF"])
    order = OrderPlaced.model_validate(payload)
    result = domain.review(order, PRODUCTS, SERVED, promo, Policy(), NOW, listed)
    assert result.status == "accepted" and result.discount == Decimal("2.50")


def test_an_aftersales_policy_is_applied_in_the_orders_currency() -> None:
    from services.aftersales.domain import Policy as AftersalesPolicy
    from services.aftersales.domain import decide_reship

    usd = AftersalesPolicy()  # refund-only below 15.00 USD, replacements below 200.00 USD
    cny = usd.in_currency("CNY", FxRates([USD_CNY]))
    assert cny is not None and cny.currency == "CNY"
    assert (cny.refund_without_return_below, cny.replacement_without_review_below,
            cny.return_shipping_cost) == (Decimal("106.50"), Decimal("1420.00"),
                                          Decimal("35.50"))
    # A ¥1,000 reship is below 200 USD: no operator needed; compared as bare numbers it was not
    assert decide_reship("not_received", Decimal("1000"), cny).outcome == "authorized"
    assert decide_reship("not_received", Decimal("1000"), usd).outcome == "review"
    # Without a rate there is no policy in that currency: an operator decides
    assert usd.in_currency("CNY", FxRates()) is None
    assert usd.in_currency("USD", FxRates()) is usd


def test_the_cn22_limit_is_400_usd_whatever_the_declarations_currency() -> None:
    from services.logistics.domain import Product as LogisticsProduct
    from services.logistics.domain import declaration

    products = {"MUG": LogisticsProduct("MUG", "Mug", "691200", "CN", 350)}
    fx = FxRates([USD_JPY])
    # ¥30,000 is 200 USD: a CN22 (compared as a bare number with 400 it was a CN23)
    assert declaration([("MUG", 1)], products, {"MUG": Decimal("30000")}, "JPY", fx).form == \
        "CN22"
    assert declaration([("MUG", 1)], products, {"MUG": Decimal("90000")}, "JPY", fx).form == \
        "CN23"
    # Without a rate: the CN23, accepted for any value
    assert declaration([("MUG", 1)], products, {"MUG": Decimal("300")}, "JPY").form == "CN23"
    assert declaration([("MUG", 1)], products, {"MUG": Decimal("300")}, "USD").form == "CN22"
