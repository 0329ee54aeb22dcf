"""After-sales rules: may this request be granted without an operator, and how much goes back.
Pure functions; the policy is data per store (aftersales.policies)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Literal

CENT = Decimal("0.01")
SELLER_FAULT = frozenset({"damaged", "defective", "wrong_item", "not_as_described"})


@dataclass(frozen=True)
class Policy:
    return_window_days: int = 30
    refund_without_return_below: Decimal = Decimal("15.00")


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
           delivered_at: datetime | None, now: datetime, policy: Policy) -> Decision:
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
    if kind == "return":
        blocked = sorted(set(lines) & non_returnable)
        if blocked and reason not in SELLER_FAULT:
            return Decision("rejected", "not_returnable", f"not returnable: {', '.join(blocked)}")
        if delivered_at is None:
            return Decision("review", "not_delivered", "the order is not delivered yet")
        if now - delivered_at > timedelta(days=policy.return_window_days):
            return Decision("rejected", "outside_return_window",
                            f"delivered {delivered_at.date()}, the window is"
                            f" {policy.return_window_days} days")
        return Decision("authorized", "within_policy", "inside the return window, returnable")
    if kind == "refund":
        value = line_value(lines, ordered)
        if value < policy.refund_without_return_below:
            return Decision("authorized", "refund_without_return",
                            f"value {value} is below {policy.refund_without_return_below}:"
                            " cheaper than a return")
        return Decision("review", "refund_above_threshold",
                        f"value {value} needs an operator for a refund without return")
    return Decision("review", f"{kind}_needs_review", f"{kind} requests go to an operator")


def line_value(lines: Mapping[str, int], ordered: Sequence[OrderedLine]) -> Decimal:
    price = {ln.sku: ln.unit_price for ln in ordered}
    return sum((price.get(sku, Decimal("0")) * q for sku, q in lines.items()), Decimal("0"))


def refund_amount(lines: Mapping[str, int], ordered: Sequence[OrderedLine], subtotal: Decimal,
                  discount: Decimal, shipping_fee: Decimal, grand_total: Decimal, reason: str,
                  already_refunded: Decimal, shipping_refunded: bool) -> Decimal:
    """Lines' price less their pro-rated share of the order discount, plus shipping when the
    seller is at fault (once), never more than was paid less earlier refunds."""
    value = line_value(lines, ordered)
    share = (discount * value / subtotal) if subtotal > 0 else Decimal("0")
    amount = value - share
    if reason in SELLER_FAULT and not shipping_refunded:
        amount += shipping_fee
    amount = amount.quantize(CENT, ROUND_HALF_UP)
    return max(Decimal("0.00"), min(amount, grand_total - already_refunded))
