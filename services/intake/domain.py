"""Intake's review rules: pure functions, no Kafka, no SQL.

An order is reviewed in the order a shop manager would: is it well formed and possible at all
(quantities, known products, a destination we ship to, an address a carrier can deliver to,
payment), then do the numbers add up (promotions, totals), then is it risky (high value). The
first group rejects; the second and third hold for an operator.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Literal

from shared.contracts import OrderPlaced

CENT = Decimal("0.01")

# Postal-code patterns for the local-stack countries; other countries only need a non-empty code.
POSTAL_CODE_PATTERNS: dict[str, str] = {
    "US": r"^\d{5}(-\d{4})?$",
    "CA": r"^[A-Za-z]\d[A-Za-z] ?\d[A-Za-z]\d$",
    "MX": r"^\d{5}$",
    "BR": r"^\d{5}-?\d{3}$",
    "GB": r"^[A-Za-z]{1,2}\d[A-Za-z\d]? ?\d[A-Za-z]{2}$",
    "DE": r"^\d{5}$",
    "FR": r"^\d{5}$",
    "ES": r"^\d{5}$",
    "IT": r"^\d{5}$",
    "NL": r"^\d{4} ?[A-Za-z]{2}$",
    "PL": r"^\d{2}-\d{3}$",
    "AU": r"^\d{4}$",
    "JP": r"^\d{3}-?\d{4}$",
    "KR": r"^\d{5}$",
    "SG": r"^\d{6}$",
    "MY": r"^\d{5}$",
    "TH": r"^\d{5}$",
    "PH": r"^\d{4}$",
    "ID": r"^\d{5}$",
    "VN": r"^\d{6}$",
    "CN": r"^\d{6}$",
}
_COMPILED = {k: re.compile(v) for k, v in POSTAL_CODE_PATTERNS.items()}
ISO_ALPHA2 = re.compile(r"^[A-Z]{2}$")


@dataclass(frozen=True)
class Product:
    sku: str
    active: bool
    category: str
    price: Decimal
    attributes: tuple[str, ...] = ()


@dataclass(frozen=True)
class Promotion:
    code: str
    kind: Literal["percent", "fixed"]
    value: Decimal
    min_spend: Decimal = Decimal("0")
    starts_at: datetime | None = None
    ends_at: datetime | None = None
    active: bool = True


@dataclass(frozen=True)
class Policy:
    """Per-store review settings (intake.store_policies)."""

    high_value_threshold: Decimal = Decimal("2000.00")


@dataclass
class Review:
    status: Literal["accepted", "rejected", "on_hold"]
    reasons: list[tuple[str, str]] = field(default_factory=list)


def review(order: OrderPlaced, products: dict[str, Product], served: set[str] | None,
           promotions: dict[str, Promotion], policy: Policy, now: datetime) -> Review:
    rejection = _reject_reasons(order, products, served)
    if rejection:
        return Review("rejected", rejection)
    discount, promo_problem = compute_discount(order, promotions, now)
    if promo_problem:
        return Review("rejected", [promo_problem])
    holds = _hold_reasons(order, discount, policy)
    if holds:
        return Review("on_hold", holds)
    return Review("accepted")


def _reject_reasons(order: OrderPlaced, products: dict[str, Product],
                    served: set[str] | None) -> list[tuple[str, str]]:
    reasons: list[tuple[str, str]] = []
    for i, line in enumerate(order.lines):
        if not 1 <= line.quantity <= 999:
            reasons.append(("invalid_quantity",
                            f"lines[{i}].quantity must be 1-999, got {line.quantity} ({line.sku})"))
        if line.unit_price < 0:
            reasons.append(("malformed", f"lines[{i}].unit_price must not be negative"))
    unknown = [ln.sku for ln in order.lines if ln.sku not in products or not products[ln.sku].active]
    if unknown:
        reasons.append(("unknown_sku", f"unknown or inactive SKU: {', '.join(sorted(set(unknown)))}"))
    country = order.shipping_address.country
    if not ISO_ALPHA2.match(country):
        reasons.append(("unsupported_country",
                        f"shipping_address.country {country!r} is not an ISO 3166-1 alpha-2 code"))
    elif served is not None and country not in served:
        reasons.append(("unsupported_country", f"no configured carrier serves {country}"))
    missing = address_problems(order)
    if missing:
        reasons.append(("incomplete_address", "; ".join(missing)))
    if order.payment.status == "failed":
        reasons.append(("payment_failed", "payment.status is failed"))
    return reasons


def address_problems(order: OrderPlaced) -> list[str]:
    a = order.shipping_address
    problems = [f"shipping_address.{f} is missing" for f in ("name", "line1", "city")
                if not (getattr(a, f) or "").strip()]
    code = (a.postal_code or "").strip()
    if not code:
        problems.append("shipping_address.postal_code is missing")
    elif a.country in _COMPILED and not _COMPILED[a.country].match(code):
        problems.append(f"shipping_address.postal_code {code!r} is not a valid {a.country} code")
    return problems


def compute_discount(order: OrderPlaced, promotions: dict[str, Promotion], now: datetime
                     ) -> tuple[Decimal, tuple[str, str] | None]:
    """The discount intake would grant; an unknown, expired or unmet code is a problem."""
    subtotal = sum((ln.unit_price * ln.quantity for ln in order.lines), Decimal("0"))
    discount = Decimal("0")
    for code in order.promo_codes:
        promo = promotions.get(code.upper())
        if promo is None or not promo.active:
            return discount, ("invalid_promo", f"promo code {code!r} is unknown")
        if (promo.starts_at and now < promo.starts_at) or (promo.ends_at and now > promo.ends_at):
            return discount, ("invalid_promo", f"promo code {code!r} is not valid now")
        if subtotal < promo.min_spend:
            return discount, ("invalid_promo",
                              f"promo code {code!r} needs a minimum spend of {promo.min_spend}")
        if promo.kind == "percent":
            discount += (subtotal * promo.value / 100).quantize(CENT, ROUND_HALF_UP)
        else:
            discount += promo.value
    return min(discount, subtotal), None


def _hold_reasons(order: OrderPlaced, discount: Decimal, policy: Policy) -> list[tuple[str, str]]:
    t = order.totals
    holds: list[tuple[str, str]] = []
    lines_total = sum((ln.unit_price * ln.quantity for ln in order.lines), Decimal("0"))
    if abs(lines_total - t.subtotal) > CENT:
        holds.append(("amount_mismatch",
                      f"totals.subtotal {t.subtotal} differs from the lines' sum {lines_total}"))
    if abs(discount - t.discount) > CENT:
        holds.append(("amount_mismatch",
                      f"totals.discount {t.discount} differs from the promotions' {discount}"))
    expected = t.subtotal - t.discount + t.shipping_fee
    if abs(expected - t.grand_total) > CENT:
        holds.append(("amount_mismatch",
                      f"totals.grand_total {t.grand_total} differs from subtotal - discount +"
                      f" shipping_fee = {expected}"))
    if t.grand_total > policy.high_value_threshold:
        holds.append(("high_value", f"grand total {t.grand_total} {order.currency} is above the"
                                    f" review threshold {policy.high_value_threshold}"))
    return holds


def refund_due(grand_total: Decimal, payment_status: str) -> Decimal:
    """On cancellation, what was taken goes back; nothing was taken for pending or failed."""
    return grand_total if payment_status in ("paid", "authorized") else Decimal("0.00")


def identify(raw: dict[str, object] | None) -> tuple[str, str] | None:
    """Which order a malformed `orders.placed` value names, if it names one validly. Only the
    value counts: a value that is not a JSON object names no order and goes to the DLQ."""
    if raw is None:
        return None
    store, ext = raw.get("store"), raw.get("external_order_id")
    pattern = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
    if isinstance(store, str) and isinstance(ext, str) and pattern.match(store) \
            and pattern.match(ext):
        return store, ext
    return None


def snapshot(order_id: str, order: OrderPlaced, accepted_at: datetime) -> dict[str, object]:
    """The fields of `OrderSnapshot` that downstream services get with `intake.order_accepted`."""
    return {
        "order_id": order_id, "store": order.store, "external_order_id": order.external_order_id,
        "customer_id": order.customer.id, "placed_at": order.placed_at, "accepted_at": accepted_at,
        "shipping_address": order.shipping_address, "lines": order.lines,
        "currency": order.currency, "shipping_option": order.shipping_option,
        "totals": order.totals, "payment_method": order.payment.method,
        "payment_status": order.payment.status,
    }
