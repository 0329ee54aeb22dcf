"""After-sales rules: may this request be granted without an operator, and how much goes back.
Pure functions; the policy is data per store (aftersales.policies)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Literal

from shared.money import FxRates, in_units

from . import tagging

CENT = Decimal("0.01")
SELLER_FAULT = frozenset({"damaged", "defective", "wrong_item", "not_as_described"})


@dataclass(frozen=True)
class Policy:
    return_window_days: int = 30
    refund_without_return_below: Decimal = Decimal("15.00")
    # What a customer-caused return (changed_mind, other) costs: deducted from its refund. A
    # seller-fault return ships free and its refund includes the order's shipping.
    return_shipping_cost: Decimal = Decimal("5.00")
    # A reship or exchange worth more than this waits for an operator.
    replacement_without_review_below: Decimal = Decimal("200.00")
    # The currency of the amounts above; an order in another one converts them (`in_currency`).
    currency: str = "USD"

    def in_currency(self, currency: str, fx: FxRates) -> Policy | None:
        """The policy with its amounts in `currency` (rounded to its minor unit), or None when
        no exchange rate links the two: then an operator decides (`FX_MISSING`)."""
        if currency == self.currency:
            return self
        conv = fx.convert(Decimal(1), self.currency, currency)
        if conv is None:
            return None
        return replace(
            self, currency=currency,
            refund_without_return_below=in_units(self.refund_without_return_below * conv.rate,
                                                 currency),
            return_shipping_cost=in_units(self.return_shipping_cost * conv.rate, currency),
            replacement_without_review_below=in_units(
                self.replacement_without_review_below * conv.rate, currency))


def fx_missing(policy_currency: str, order_currency: str) -> Decision:
    return Decision("review", "fx_rate_missing",
                    f"the store's policy is in {policy_currency} and the order in"
                    f" {order_currency}, and no exchange rate links them: an operator decides"
                    " (publish rates on fx.rates to decide such requests automatically)")


@dataclass(frozen=True)
class OrderedLine:
    sku: str
    quantity: int
    unit_price: Decimal


@dataclass(frozen=True)
class Decision:
    outcome: Literal["authorized", "rejected", "review"]
    code: str
    message: str


def decide(kind: str, reason: str, lines: Mapping[str, int], ordered: Sequence[OrderedLine],
           already_requested: Mapping[str, int], non_returnable: set[str],
           delivered_at: datetime | None, now: datetime, policy: Policy,
           exchange_for: Mapping[str, str] | None = None,
           prices: Mapping[str, Decimal] | None = None) -> Decision:
    """`prices`: the catalogue's current price of the exchange targets (unknown ones absent)."""
    refused = check_lines(lines, ordered, already_requested)
    if refused:
        return refused
    if kind in ("return", "exchange"):
        blocked = sorted(set(lines) & non_returnable)
        if blocked and reason not in SELLER_FAULT:
            return Decision("rejected", "not_returnable", f"not returnable: {', '.join(blocked)}")
        if delivered_at is None:
            return Decision("review", "not_delivered", "the order is not delivered yet")
        if now - delivered_at > timedelta(days=policy.return_window_days):
            return Decision("rejected", "outside_return_window",
                            f"delivered {delivered_at.date()}, the window is"
                            f" {policy.return_window_days} days")
        if kind == "exchange":
            return _decide_exchange(lines, ordered, exchange_for or {}, prices or {}, policy)
        return Decision("authorized", "within_policy", "inside the return window, returnable")
    if kind == "refund":
        value = line_value(lines, ordered)
        if value < policy.refund_without_return_below:
            return Decision("authorized", "refund_without_return",
                            f"value {value} is below {policy.refund_without_return_below}:"
                            " cheaper than a return")
        return Decision("review", "refund_above_threshold",
                        f"value {value} needs an operator for a refund without return")
    if kind == "reship":
        return decide_reship(reason, line_value(lines, ordered), policy)
    return Decision("review", f"{kind}_needs_review", f"{kind} requests go to an operator")


def check_lines(lines: Mapping[str, int], ordered: Sequence[OrderedLine],
                already_requested: Mapping[str, int]) -> Decision | None:
    """The lines must be on the order, less what earlier requests already claimed."""
    by_sku: dict[str, int] = {}
    for ln in ordered:
        by_sku[ln.sku] = by_sku.get(ln.sku, 0) + ln.quantity
    if not lines:
        return Decision("rejected", "no_lines", "the request names no lines")
    for sku, qty in lines.items():
        left = by_sku.get(sku, 0) - already_requested.get(sku, 0)
        if qty > left:
            return Decision("rejected", "lines_not_in_order",
                            f"{sku}: {qty} requested, {max(left, 0)} left on the order")
    return None


def _decide_exchange(lines: Mapping[str, int], ordered: Sequence[OrderedLine],
                     exchange_for: Mapping[str, str], prices: Mapping[str, Decimal],
                     policy: Policy) -> Decision:
    missing = sorted(set(lines) - set(exchange_for))
    if missing:
        return Decision("rejected", "no_exchange_target",
                        f"exchange_for names no new sku for {', '.join(missing)}")
    price = {ln.sku: ln.unit_price for ln in ordered}
    for sku in sorted(lines):
        new = exchange_for[sku]
        if new not in prices:
            return Decision("review", "unknown_exchange_sku", f"{new} is not in the catalogue")
        if prices[new] != price[sku]:
            # A price difference means charging or refunding the customer: a person decides.
            return Decision("review", "exchange_price_differs",
                            f"{sku} at {price[sku]} for {new} at {prices[new]}")
    value = line_value(lines, ordered)
    if value >= policy.replacement_without_review_below:
        return Decision("review", "replacement_above_threshold",
                        f"value {value} needs an operator for an exchange")
    return Decision("authorized", "within_policy", "inside the return window, same-price exchange")


def decide_reship(reason: str, value: Decimal, policy: Policy, *,
                  carrier_confirmed: bool = False) -> Decision:
    """A parcel the carrier itself reported lost is reshipped without an operator up to the
    threshold; a customer's own claim (not received, damaged) is believed below it too. Any
    other reason, or a larger value, waits for an operator."""
    if reason not in ("not_received", "damaged") and not carrier_confirmed:
        return Decision("review", "reship_needs_review",
                        f"a reship for {reason} needs an operator")
    if value >= policy.replacement_without_review_below:
        return Decision("review", "replacement_above_threshold",
                        f"value {value} needs an operator for a reship")
    if carrier_confirmed:
        return Decision("authorized", "lost_in_transit", "the carrier reported the parcel lost")
    return Decision("authorized", "within_policy", f"reship for {reason} below the threshold")


def decide_cancelled_after_shipping(lines: Mapping[str, int], ordered: Sequence[OrderedLine],
                                    non_returnable: set[str], delivered_at: datetime | None,
                                    now: datetime, policy: Policy) -> Decision:
    """A cancellation that reached us after the parcels left: a `changed_mind` return of what is
    left of the order, by the store's policy like any return. A parcel still on its way is
    inside the window (it has not started: the customer may refuse it at the door); a delivered
    one is judged from its delivery."""
    decision = decide("return", "changed_mind", lines, ordered, {}, non_returnable,
                      delivered_at or now, now, policy)
    if decision.outcome != "authorized":
        return decision
    return Decision("authorized", "cancelled_after_shipping",
                    "cancelled after shipping: refuse the parcel at the door, or send it back"
                    " with the return label")


def remaining_lines(ordered: Sequence[OrderedLine],
                    claimed: Mapping[str, int]) -> dict[str, int]:
    """What of the order no request has claimed yet."""
    left: dict[str, int] = {}
    for ln in ordered:
        left[ln.sku] = left.get(ln.sku, 0) + ln.quantity
    return {sku: q - claimed.get(sku, 0) for sku, q in left.items() if q > claimed.get(sku, 0)}


def unclaimed(lines: Mapping[str, int], ordered: Sequence[OrderedLine],
              claimed: Mapping[str, int]) -> dict[str, int]:
    """The part of `lines` that no other request has refunded, replaced or asked back."""
    left = remaining_lines(ordered, claimed)
    return {sku: min(q, left[sku]) for sku, q in lines.items() if left.get(sku, 0) > 0}


def amount_paid(grand_total: Decimal, payment_status: str) -> Decimal:
    """What the customer was charged: nothing for a pending (cash on delivery) or failed
    payment."""
    return grand_total if payment_status in ("paid", "authorized") else Decimal("0.00")


def returned_to_sender_refund(lines: Mapping[str, int], ordered: Sequence[OrderedLine],
                              subtotal: Decimal, discount: Decimal, paid: Decimal,
                              already_refunded: Decimal) -> Decimal:
    """A parcel refused at the door or undeliverable: the goods' price less their share of the
    discount. The outbound shipping is not refunded (the carrier carried it both ways under one
    label) and no return shipping is deducted; never more than was paid less earlier refunds."""
    return refund_amount(lines, ordered, subtotal, discount, Decimal("0"), paid, "other",
                         already_refunded, True)


def line_value(lines: Mapping[str, int], ordered: Sequence[OrderedLine]) -> Decimal:
    price = {ln.sku: ln.unit_price for ln in ordered}
    return sum((price.get(sku, Decimal("0")) * q for sku, q in lines.items()), Decimal("0"))


def refund_amount(lines: Mapping[str, int], ordered: Sequence[OrderedLine], subtotal: Decimal,
                  discount: Decimal, shipping_fee: Decimal, grand_total: Decimal, reason: str,
                  already_refunded: Decimal, shipping_refunded: bool,
                  deduction: Decimal = Decimal("0")) -> Decimal:
    """Lines' price less their pro-rated share of the order discount, plus shipping when the
    seller is at fault (once), less `deduction` (return shipping the customer pays), never more
    than was paid less earlier refunds."""
    value = line_value(lines, ordered)
    share = (discount * value / subtotal) if subtotal > 0 else Decimal("0")
    amount = value - share - deduction
    if reason in SELLER_FAULT and not shipping_refunded:
        amount += shipping_fee
    amount = amount.quantize(CENT, ROUND_HALF_UP)
    return max(Decimal("0.00"), min(amount, grand_total - already_refunded))


def return_deduction(kind: str, reason: str, policy: Policy) -> Decimal:
    """A return the customer caused pays its own shipping back; seller fault ships free."""
    if kind == "return" and reason not in SELLER_FAULT:
        return policy.return_shipping_cost
    return Decimal("0")


Grade = Literal["resellable", "refurbish", "scrap"]


def grade_of(condition: str, reason: str) -> Grade | None:
    """The warehouse's condition as a grade, when no operator is needed: resellable goods go
    back on the shelf; damaged goods the seller sent broken are scrapped (the customer is owed
    the refund anyway). Damaged goods from a customer-caused return: None, an operator grades."""
    if condition == "resellable":
        return "resellable"
    if reason in SELLER_FAULT:
        return "scrap"
    return None


# Feedback tags: services/aftersales/tagging.py (whole words, negation, jieba for Chinese).
tag_feedback = tagging.tag_feedback


FOLLOW_UP_AT_OR_BELOW = 2


def needs_follow_up(rating: int) -> bool:
    return rating <= FOLLOW_UP_AT_OR_BELOW
