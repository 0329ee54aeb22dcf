"""Intake's review rules: pure functions, no Kafka, no SQL.

An order is reviewed in the order a shop manager would: is it well formed and possible at all
(quantities, known products, a destination we ship to, an address a carrier can deliver to,
payment), then do the numbers add up (promotions, totals), then is it risky (blocked customer,
restricted goods for the destination, high value, payment pending, a duplicate). The first group
rejects; the others hold for an operator, or reject where the store's policy says so. Every rule
that fires is a `RuleHit` with its inputs: the explanation kept with each decision. The settings
are data (`Policy`, per store), so a candidate rule set can be dry-run against past orders.
See docs/review-rules.md.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field, fields, replace
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, Literal

from shared import money
from shared.contracts import OrderLine, OrderPlaced
from shared.money import CURRENCY_RE, FxRates, Threshold, fits, minor_digits, quantum, show

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


Action = Literal["reject", "hold"]
ACTIONS: tuple[str, ...] = ("reject", "hold")


@dataclass(frozen=True)
class Promotion:
    code: str
    kind: Literal["percent", "fixed"]
    value: Decimal
    min_spend: Decimal = Decimal("0")
    starts_at: datetime | None = None
    ends_at: datetime | None = None
    active: bool = True
    # Scope: the lines a promotion discounts. Both empty means the whole order.
    scope_skus: frozenset[str] = frozenset()
    scope_categories: frozenset[str] = frozenset()
    # An exclusive promotion cannot be combined with any other code on the same order.
    stackable: bool = True
    per_customer_limit: int | None = None
    # The currency of `min_spend` and of a fixed `value` (a percent needs none): an order in
    # another currency is compared with them converted at the newest rate intake knows.
    currency: str = "USD"


@dataclass(frozen=True)
class Policy:
    """Per-store review settings (intake.store_policies): the rule set, as data.

    `*_action` says whether a rule rejects or holds. A window of 0 turns a rule off."""

    high_value_threshold: Decimal = Decimal("2000.00")
    high_value_currency: str = "USD"  # the threshold's currency; orders in others are converted
    high_value_action: Action = "hold"
    duplicate_window_minutes: int = 0
    merge_window_minutes: int = 1440
    hold_pending_payment: bool = False
    invalid_promo_action: Action = "reject"
    restricted_goods_action: Action = "hold"
    hold_sla_minutes: int = 240
    # A line priced off the store's price list by more than this is held (`price_mismatch`).
    price_tolerance_percent: Decimal = Decimal("2.00")

    def with_overrides(self, overrides: dict[str, Any]) -> Policy:
        """This policy with some settings replaced; unknown names or bad values are a
        ValueError naming the setting (dry runs and the policy API take JSON)."""
        known = {f.name: f for f in fields(self)}
        values: dict[str, Any] = {}
        for name, raw in overrides.items():
            if name not in known:
                raise ValueError(f"unknown policy setting {name!r}; known: {sorted(known)}")
            current = getattr(self, name)
            try:
                if isinstance(current, bool):
                    if not isinstance(raw, bool):
                        raise ValueError("must be true or false")
                    value: Any = raw
                elif isinstance(current, Decimal):
                    value = Decimal(str(raw))
                    if not value.is_finite() or value < 0:
                        raise ValueError("must not be negative")
                    value = value.quantize(Decimal("0.001"))
                elif name.endswith("_currency"):
                    if not isinstance(raw, str) or not CURRENCY_RE.match(raw):
                        raise ValueError("must be a three-letter ISO 4217 code such as USD")
                    value = raw
                elif isinstance(current, int):
                    value = int(raw)
                    if value < 0 or value != raw:
                        raise ValueError("must be a non-negative integer")
                else:
                    if raw not in ACTIONS:
                        raise ValueError(f"must be one of {ACTIONS}")
                    value = raw
            except (ArithmeticError, TypeError, ValueError) as exc:
                raise ValueError(f"policy setting {name!r}: {exc}") from exc
            values[name] = value
        return replace(self, **values)

    def as_dict(self) -> dict[str, Any]:
        return {f.name: (decimal_text(v) if isinstance(v := getattr(self, f.name), Decimal)
                         else v) for f in fields(self)}


def decimal_text(value: Decimal) -> str:
    """"2000.00", "2.50", "0.125": at least two decimals, no trailing zeros beyond."""
    cents = value.quantize(CENT)
    return str(cents) if cents == value else str(value.normalize())


@dataclass(frozen=True)
class BlockedEntry:
    """A blocked customer, matched on one normalised identity (see `identities`)."""

    kind: Literal["customer_id", "email", "phone", "address"]
    value: str
    action: Action = "hold"


@dataclass(frozen=True)
class PriorOrder:
    """An order received before the one under review, for duplicate and merge checks."""

    order_id: str
    external_order_id: str
    customer_id: str | None
    address_key: str | None
    items_key: str | None
    received_at: datetime
    status: str
    shipped: bool = False


@dataclass(frozen=True)
class Context:
    """What review needs besides the order and its catalogue: all of it read by the caller."""

    refused_attributes: dict[str, list[str]] = field(default_factory=dict)
    blocked: tuple[BlockedEntry, ...] = ()
    prior: tuple[PriorOrder, ...] = ()
    promo_uses: dict[str, int] = field(default_factory=dict)
    received_at: datetime | None = None
    fx: FxRates = field(default_factory=FxRates)
    # The store's list price of each of the order's SKUs in the order's currency, at placing.
    list_prices: dict[str, Decimal] = field(default_factory=dict)


@dataclass(frozen=True)
class RuleHit:
    """One rule that fired, with the inputs it saw: the explanation of a decision."""

    rule: str
    code: str
    effect: Literal["reject", "hold", "note"]
    message: str
    inputs: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"rule": self.rule, "code": self.code, "effect": self.effect,
                "message": self.message, "inputs": self.inputs}


@dataclass
class Review:
    status: Literal["accepted", "rejected", "on_hold"]
    reasons: list[tuple[str, str]] = field(default_factory=list)
    fired: list[RuleHit] = field(default_factory=list)
    merge_with: list[str] = field(default_factory=list)
    discount: Decimal = Decimal("0")


# Statuses of a prior order that no longer count as a live order for duplicates and merges.
CLOSED_STATUSES = frozenset({"rejected", "cancelled", "cancel_requested"})
MERGE_CAP = 10


def review(order: OrderPlaced, products: dict[str, Product], served: set[str] | None,
           promotions: dict[str, Promotion], policy: Policy, now: datetime,
           context: Context | None = None) -> Review:
    """Review an order: reject what cannot be fulfilled, hold what needs a person, else accept.
    Every rule that fires is recorded with its inputs (`Review.fired`)."""
    ctx = context or Context()
    hits = _reject_hits(order, products, served)
    hits += _blocked_hits(order, ctx.blocked)
    hits += _restricted_hits(order, products, ctx.refused_attributes, policy)
    hits += [h for h in _high_value_hits(order, policy, ctx.fx) if h.effect == "reject"]
    promo = check_promotions(order, promotions, now, uses=ctx.promo_uses, products=products,
                             fx=ctx.fx)
    discount = promo.discount
    promo_inputs: dict[str, Any] = {"promo_codes": list(order.promo_codes)}
    if promo.conversions:  # the rates used for codes in another currency
        promo_inputs["conversions"] = promo.conversions
    if promo.problem and promo.problem[0] == "fx_rate_missing":
        # As the high-value check: without a rate the check cannot be made; held, whatever
        # the store's invalid_promo_action.
        hits.append(RuleHit("promotion", "fx_rate_missing", "hold", promo.problem[1],
                            {**promo_inputs, "order_currency": order.currency,
                             "promotion_currencies": {c: cur for c, cur in promo.missing}}))
    elif promo.problem:
        hits.append(RuleHit("promotion", promo.problem[0], policy.invalid_promo_action,
                            promo.problem[1], {**promo_inputs,
                                               "action": policy.invalid_promo_action}))
    rejects = [h for h in hits if h.effect == "reject"]
    if rejects:
        return Review("rejected", [(h.code, h.message) for h in rejects], rejects,
                      discount=discount)
    # The discount cannot be known without the rate: the amounts are checked once it is.
    known = promo.problem is None or promo.problem[0] != "fx_rate_missing"
    hits += _hold_hits(order, discount if known else None, policy, ctx, now)
    merge = merge_candidates(order, ctx, policy, now)
    holds = [h for h in hits if h.effect == "hold"]
    notes = []
    if promo.conversions and promo.problem is None:
        notes.append(RuleHit(
            "promotion", "promo_converted", "note",
            "; ".join(f"promo code {c['code']!r} {_PROMO_AMOUNT[c['amount']]}"
                      f" {_conversion_text(c)}" for c in promo.conversions), promo_inputs))
    if merge:
        notes.append(RuleHit("merge_candidate", "merge_candidate", "note",
                             f"same buyer and address as unshipped order(s) {', '.join(merge)}",
                             {"merge_with": merge,
                              "window_minutes": policy.merge_window_minutes}))
    if holds:
        return Review("on_hold", [(h.code, h.message) for h in holds], holds + notes, merge,
                      discount)
    return Review("accepted", [], notes, merge, discount)


def _reject_hits(order: OrderPlaced, products: dict[str, Product],
                 served: set[str] | None) -> list[RuleHit]:
    hits: list[RuleHit] = []
    for i, line in enumerate(order.lines):
        if not 1 <= line.quantity <= 999:
            hits.append(RuleHit(
                "quantity", "invalid_quantity", "reject",
                f"lines[{i}].quantity must be 1-999, got {line.quantity} ({line.sku})",
                {"line": i, "sku": line.sku, "quantity": line.quantity}))
        if line.unit_price < 0:
            hits.append(RuleHit("unit_price", "malformed", "reject",
                                f"lines[{i}].unit_price must not be negative",
                                {"line": i, "unit_price": str(line.unit_price)}))
    finer = [(name, amount) for name, amount in _amounts(order)
             if not fits(amount, order.currency)]
    if finer:
        digits = minor_digits(order.currency)
        hits.append(RuleHit(
            "money", "malformed", "reject",
            f"{', '.join(f'{n} {a}' for n, a in finer[:3])}: {order.currency} amounts have"
            f" {digits} decimal{'s' if digits != 1 else ''}",
            {"currency": order.currency, "fields": [n for n, _ in finer]}))
    unknown = sorted({ln.sku for ln in order.lines
                      if ln.sku not in products or not products[ln.sku].active})
    if unknown:
        hits.append(RuleHit("known_sku", "unknown_sku", "reject",
                            f"unknown or inactive SKU: {', '.join(unknown)}", {"skus": unknown}))
    country = order.shipping_address.country
    if not ISO_ALPHA2.match(country):
        hits.append(RuleHit(
            "country_served", "unsupported_country", "reject",
            f"shipping_address.country {country!r} is not an ISO 3166-1 alpha-2 code",
            {"country": country}))
    elif served is not None and country not in served:
        hits.append(RuleHit("country_served", "unsupported_country", "reject",
                            f"no configured carrier serves {country}",
                            {"country": country, "served": sorted(served)}))
    missing = address_problems(order)
    if missing:
        hits.append(RuleHit("address_complete", "incomplete_address", "reject",
                            "; ".join(missing), {"country": country, "problems": missing}))
    if order.payment.status == "failed":
        hits.append(RuleHit("payment", "payment_failed", "reject", "payment.status is failed",
                            {"payment_status": "failed"}))
    return hits


def _amounts(order: OrderPlaced) -> list[tuple[str, Decimal]]:
    t = order.totals
    out = [(f"totals.{name}", getattr(t, name)) for name in
           ("subtotal", "discount", "shipping_fee", "tax", "duties", "grand_total")]
    out += [(f"lines[{i}].unit_price", ln.unit_price) for i, ln in enumerate(order.lines)]
    out += [(f"lines[{i}].tax", ln.tax) for i, ln in enumerate(order.lines)
            if ln.tax is not None]
    return out


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


# --- identities (normalised, for duplicates, merges and the block list) -----------------------

def normalise_text(value: str | None) -> str:
    folded = unicodedata.normalize("NFKD", value or "").encode("ascii", "ignore").decode()
    return " ".join(re.sub(r"[^a-z0-9]+", " ", folded.lower()).split())


def normalise_email(value: str | None) -> str:
    return (value or "").strip().lower()


def normalise_phone(value: str | None) -> str:
    digits = re.sub(r"\D", "", value or "")
    return f"+{digits}" if digits else ""


def address_key(order: OrderPlaced) -> str:
    """The shipping address folded so that case, accents, punctuation and spacing do not matter
    ("Rua A, 10" == "rua a 10"); the name is left out: one household, one address."""
    a = order.shipping_address
    parts = [normalise_text(a.line1), normalise_text(a.line2), normalise_text(a.city),
             normalise_text(a.postal_code).replace(" ", ""), a.country.upper()]
    return "|".join(parts)


def items_key(order: OrderPlaced) -> str:
    """The items bought, order of lines and split lines not mattering."""
    qty: dict[str, int] = {}
    for ln in order.lines:
        qty[ln.sku] = qty.get(ln.sku, 0) + ln.quantity
    return ",".join(f"{sku}x{q}" for sku, q in sorted(qty.items()))


def identities(order: OrderPlaced) -> dict[str, str]:
    c = order.customer
    ids = {"customer_id": c.id, "email": normalise_email(c.email),
           "phone": normalise_phone(c.phone), "address": address_key(order)}
    return {k: v for k, v in ids.items() if v}


def normalise_identity(kind: str, value: str) -> str:
    """How a block-list entry is stored, so it compares equal to `identities`."""
    if kind == "email":
        return normalise_email(value)
    if kind == "phone":
        return normalise_phone(value)
    return value.strip()


def _blocked_hits(order: OrderPlaced, blocked: tuple[BlockedEntry, ...]) -> list[RuleHit]:
    ids = identities(order)
    matched = [b for b in blocked if ids.get(b.kind) == b.value]
    if not matched:
        return []
    action: Action = "reject" if any(b.action == "reject" for b in matched) else "hold"
    kinds = sorted({b.kind for b in matched})
    # The inputs name which identity matched, never its value: decisions are not personal data.
    return [RuleHit("blocked_customer", "blocked_customer", action,
                    f"customer matches the block list on {', '.join(kinds)}",
                    {"matched_on": kinds, "action": action})]


def _restricted_hits(order: OrderPlaced, products: dict[str, Product],
                     refused: dict[str, list[str]], policy: Policy) -> list[RuleHit]:
    country = order.shipping_address.country
    banned = set(refused.get(country, ()))
    if not banned:
        return []
    found = {ln.sku: sorted(banned & set(products[ln.sku].attributes))
             for ln in order.lines if ln.sku in products}
    found = {sku: attrs for sku, attrs in found.items() if attrs}
    if not found:
        return []
    detail = "; ".join(f"{sku} ({', '.join(a)})" for sku, a in sorted(found.items()))
    return [RuleHit("restricted_goods", "restricted_goods", policy.restricted_goods_action,
                    f"no carrier takes these goods to {country}: {detail}",
                    {"country": country, "skus": found,
                     "action": policy.restricted_goods_action})]


# --- promotions -------------------------------------------------------------------------------

def _in_scope(promo: Promotion, line: OrderLine, products: dict[str, Product] | None) -> bool:
    if not promo.scope_skus and not promo.scope_categories:
        return True
    if line.sku in promo.scope_skus:
        return True
    product = (products or {}).get(line.sku)
    return product is not None and product.category in promo.scope_categories


@dataclass
class PromoCheck:
    """What the promotion check found: the discount intake would grant, the first problem
    (`invalid_promo`, or `fx_rate_missing` when a code's amounts cannot be converted to the
    order's currency), and the conversions made (each a `Conversion.trace` with the code)."""

    discount: Decimal = Decimal("0")
    problem: tuple[str, str] | None = None
    conversions: list[dict[str, str]] = field(default_factory=list)
    missing: list[tuple[str, str]] = field(default_factory=list)  # (code, its currency) unrated


def _in_order_currency(amount: Decimal, promo: Promotion, order: OrderPlaced, fx: FxRates,
                       what: str, check: PromoCheck) -> Decimal | None:
    """A promotion's amount (`min_spend`, a fixed `value`) in the order's currency: as it is
    when the currencies agree (or it is 0), else converted at the newest known rate and rounded
    to the order currency's minor unit, the conversion recorded in `check`. None (and the code
    noted as missing a rate) when no rate links the two currencies."""
    if promo.currency == order.currency or amount == 0:
        return amount
    conv = fx.convert(amount, promo.currency, order.currency)
    if conv is None:
        check.missing.append((promo.code, promo.currency))
        return None
    converted = money.in_units(conv.amount, order.currency)
    check.conversions.append({"code": promo.code, "amount": what,
                              **conv.trace(amount, promo.currency, order.currency)})
    return converted


_PROMO_AMOUNT = {"min_spend": "minimum spend", "value": "discount"}


def _conversion_text(trace: dict[str, str]) -> str:
    """ "30.00 USD = 4500 JPY at 150 (rate as of 2025-06-01T09:00:00+00:00)" """
    text = f"{trace['from']} = {trace['converted']} at {trace['rate']}"
    if "via" in trace:
        text += f" via {trace['via']}"
    if "rate_as_of" in trace:
        text += f" (rate as of {trace['rate_as_of']})"
    return text


def check_promotions(order: OrderPlaced, promotions: dict[str, Promotion], now: datetime,
                     *, uses: dict[str, int] | None = None,
                     products: dict[str, Product] | None = None,
                     fx: FxRates | None = None) -> PromoCheck:
    """The promotion check: see `compute_discount`. A code's minimum spend and fixed value are
    in its own currency: for an order in another currency they are converted at the newest rate
    in `fx` (the conversions are kept for the trace); a code whose amounts need a rate that is
    not known is `fx_rate_missing` (unless another code is plainly invalid, which wins)."""
    rates = fx or FxRates()
    check = PromoCheck()
    subtotal = sum((ln.unit_price * ln.quantity for ln in order.lines), Decimal("0"))
    codes = [c.upper() for c in order.promo_codes]
    granted: list[tuple[Promotion, str]] = []

    def invalid(message: str) -> PromoCheck:
        check.problem = ("invalid_promo", message)
        return check

    for code in order.promo_codes:
        promo = promotions.get(code.upper())
        if promo is None or not promo.active:
            return invalid(f"promo code {code!r} is unknown")
        if (promo.starts_at and now < promo.starts_at) or (promo.ends_at and now > promo.ends_at):
            return invalid(f"promo code {code!r} is not valid now")
        min_spend = _in_order_currency(promo.min_spend, promo, order, rates, "min_spend", check)
        if min_spend is not None and subtotal < min_spend:
            needed = f"{promo.min_spend}"
            if promo.currency != order.currency:
                needed = _conversion_text(check.conversions[-1])
            return invalid(f"promo code {code!r} needs a minimum spend of {needed}")
        if codes.count(code.upper()) > 1:
            return invalid(f"promo code {code!r} is used more than once")
        used = (uses or {}).get(promo.code, 0)
        if promo.per_customer_limit is not None and used >= promo.per_customer_limit:
            return invalid(f"promo code {code!r} was already used {used} time(s) by this"
                           f" customer (limit {promo.per_customer_limit})")
        granted.append((promo, code))
    if len(granted) > 1:
        for promo, code in granted:
            if not promo.stackable:
                return invalid(f"promo code {code!r} cannot be combined with other codes")
    discount = Decimal("0")
    for promo, code in granted:
        scoped = [ln for ln in order.lines if _in_scope(promo, ln, products)]
        if not scoped:
            check.discount = discount
            return invalid(f"promo code {code!r} applies to none of the order's items")
        base = sum((ln.unit_price * ln.quantity for ln in scoped), Decimal("0"))
        amount: Decimal | None
        if promo.kind == "percent":
            amount = (base * promo.value / 100).quantize(quantum(order.currency),
                                                         ROUND_HALF_UP)
        else:
            amount = _in_order_currency(promo.value, promo, order, rates, "value", check)
        if amount is not None:
            discount += min(amount, base)
    check.discount = min(discount, subtotal)
    if check.missing:
        named = ", ".join(dict.fromkeys(repr(c) for c, _ in check.missing))
        pairs = ", ".join(dict.fromkeys(f"{cur} to {order.currency}"
                                        for _, cur in check.missing))
        check.problem = ("fx_rate_missing",
                         f"no exchange rate from {pairs} to apply promo code(s) {named}"
                         " (minimum spend or fixed amount in another currency);"
                         " publish one on fx.rates (POST /fx/rates on intake)")
    return check


def compute_discount(order: OrderPlaced, promotions: dict[str, Promotion], now: datetime,
                     *, uses: dict[str, int] | None = None,
                     products: dict[str, Product] | None = None,
                     fx: FxRates | None = None,
                     ) -> tuple[Decimal, tuple[str, str] | None]:
    """The discount intake would grant; an unknown, expired, unmet, used-up, out-of-scope or
    non-combinable code is a problem. Each code discounts its own scope of the subtotal; the sum
    never exceeds the subtotal. A code's minimum spend and fixed value are in its currency,
    converted for an order in another (`check_promotions`)."""
    check = check_promotions(order, promotions, now, uses=uses, products=products, fx=fx)
    return check.discount, check.problem


def _high_value_hits(order: OrderPlaced, policy: Policy, fx: FxRates) -> list[RuleHit]:
    """Above the threshold, in the threshold's currency: an order in another currency is
    converted at the rate intake knows (recorded in the trace); with no rate the check cannot
    be made and the order is held (`fx_rate_missing`), whatever the rule's action."""
    t = order.totals
    threshold = Threshold.parse({"amount": policy.high_value_threshold,
                                 "currency": policy.high_value_currency})
    conv = fx.convert(t.grand_total, order.currency, threshold.currency)
    inputs: dict[str, Any] = {"grand_total": str(t.grand_total), "currency": order.currency,
                              "threshold": str(threshold.amount)}
    if threshold.currency != order.currency:
        inputs["threshold_currency"] = threshold.currency
    if conv is None:
        return [RuleHit("high_value", "fx_rate_missing", "hold",
                        f"no exchange rate from {order.currency} to {threshold.currency} to"
                        f" compare the grand total with the review threshold {threshold};"
                        " publish one on fx.rates (POST /fx/rates on intake)", inputs)]
    if conv.amount <= threshold.amount:
        return []
    shown = f"{t.grand_total} {order.currency}"
    if order.currency != threshold.currency:
        inputs.update(conv.trace(t.grand_total, order.currency, threshold.currency))
        shown += f" ({inputs['converted']} at {inputs['rate']})"
    return [RuleHit("high_value", "high_value", policy.high_value_action,
                    f"grand total {shown} is above the review threshold {threshold}", inputs)]


def _price_hits(order: OrderPlaced, list_prices: dict[str, Decimal],
                policy: Policy) -> list[RuleHit]:
    """A line priced off the store's list (in the order's currency, valid when it was placed)
    by more than the tolerance; lines without a list price are not checked. The list price is
    before promotions: discounts are checked on their own (`totals.discount`)."""
    hits = []
    for ln in order.lines:
        listed = list_prices.get(ln.sku)
        if listed is None:
            continue
        off = abs(ln.unit_price - listed)
        allowed = listed * policy.price_tolerance_percent / 100
        if off <= allowed and not (listed == 0 and off > 0):
            continue
        hits.append(RuleHit(
            "price_list", "price_mismatch", "hold",
            f"line {ln.sku}: unit price {show(ln.unit_price, order.currency)} is off the list"
            f" price {show(listed, order.currency)} by more than"
            f" {decimal_text(policy.price_tolerance_percent)}%",
            {"sku": ln.sku, "unit_price": str(ln.unit_price), "expected": str(listed),
             "currency": order.currency,
             "tolerance_percent": decimal_text(policy.price_tolerance_percent)}))
    return hits


def _hold_hits(order: OrderPlaced, discount: Decimal | None, policy: Policy,
               ctx: Context, now: datetime) -> list[RuleHit]:
    """The holds; `discount` is None when the promotions' discount cannot be known (no rate)."""
    t = order.totals
    unit = quantum(order.currency)  # the tolerance of every sum: one minor unit
    hits: list[RuleHit] = []
    lines_total = sum((ln.unit_price * ln.quantity for ln in order.lines), Decimal("0"))
    if abs(lines_total - t.subtotal) > unit:
        hits.append(RuleHit("totals", "amount_mismatch", "hold",
                            f"totals.subtotal {t.subtotal} differs from the lines' sum"
                            f" {lines_total}",
                            {"field": "totals.subtotal", "claimed": str(t.subtotal),
                             "computed": str(lines_total)}))
    if discount is not None and abs(discount - t.discount) > unit:
        hits.append(RuleHit("totals", "amount_mismatch", "hold",
                            f"totals.discount {t.discount} differs from the promotions' {discount}",
                            {"field": "totals.discount", "claimed": str(t.discount),
                             "computed": str(discount), "promo_codes": list(order.promo_codes)}))
    # CONTRACT v1.1: tax and duties (default 0) are part of what the buyer pays.
    expected = t.subtotal - t.discount + t.shipping_fee + t.tax + t.duties
    if abs(expected - t.grand_total) > unit:
        hits.append(RuleHit("totals", "amount_mismatch", "hold",
                            f"totals.grand_total {t.grand_total} differs from subtotal - discount"
                            f" + shipping_fee + tax + duties = {expected}",
                            {"field": "totals.grand_total", "claimed": str(t.grand_total),
                             "computed": str(expected)}))
    hits += [h for h in _high_value_hits(order, policy, ctx.fx) if h.effect == "hold"]
    hits += _price_hits(order, ctx.list_prices, policy)
    if policy.hold_pending_payment and order.payment.status == "pending" \
            and order.payment.method != "cod":
        hits.append(RuleHit("payment_pending", "payment_pending", "hold",
                            f"payment.status is pending ({order.payment.method}); released when"
                            " the order is re-sent as paid or authorized",
                            {"payment_status": "pending", "method": order.payment.method}))
    dup = find_duplicate(order, ctx, policy, now)
    if dup is not None:
        other, matched = dup
        hits.append(RuleHit("duplicate", "suspected_duplicate", "hold",
                            f"same items and same {matched} as order {other.external_order_id}"
                            f" ({other.order_id}) placed within"
                            f" {policy.duplicate_window_minutes} minutes",
                            {"other_order_id": other.order_id,
                             "other_external_order_id": other.external_order_id,
                             "matched_on": matched, "items": items_key(order),
                             "window_minutes": policy.duplicate_window_minutes}))
    return hits


def _live_prior(ctx: Context, window_minutes: int, now: datetime) -> list[PriorOrder]:
    """Earlier orders still alive (not rejected or cancelled) inside the window, oldest first."""
    if window_minutes <= 0:
        return []
    ref = ctx.received_at or now
    since = ref - timedelta(minutes=window_minutes)
    return sorted((p for p in ctx.prior
                   if p.status not in CLOSED_STATUSES and since <= p.received_at <= ref),
                  key=lambda p: p.received_at)


def find_duplicate(order: OrderPlaced, ctx: Context, policy: Policy, now: datetime
                   ) -> tuple[PriorOrder, str] | None:
    """An earlier live order with the same items from the same customer or to the same
    normalised address, under another external id, inside the store's window."""
    items, addr = items_key(order), address_key(order)
    for p in _live_prior(ctx, policy.duplicate_window_minutes, now):
        if p.external_order_id == order.external_order_id or p.items_key != items:
            continue
        if p.customer_id and p.customer_id == order.customer.id:
            return p, "customer"
        if p.address_key and p.address_key == addr:
            return p, "address"
    return None


def merge_candidates(order: OrderPlaced, ctx: Context, policy: Policy, now: datetime
                     ) -> list[str]:
    """Earlier live, unshipped orders of the same buyer to the same address: fulfillment may pack
    them together. Capped, newest first, so a long-lived buyer does not grow a huge list."""
    addr = address_key(order)
    found = [p for p in _live_prior(ctx, policy.merge_window_minutes, now)
             if not p.shipped and p.external_order_id != order.external_order_id
             and p.customer_id == order.customer.id and p.address_key == addr]
    return [p.order_id for p in reversed(found)][:MERGE_CAP]


refund_due = money.refund_due


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


def snapshot(order_id: str, order: OrderPlaced, accepted_at: datetime,
             merge_with: list[str] | None = None) -> dict[str, object]:
    """The fields of `OrderSnapshot` that downstream services get with `intake.order_accepted`."""
    return {
        "order_id": order_id, "store": order.store, "external_order_id": order.external_order_id,
        "customer_id": order.customer.id, "placed_at": order.placed_at, "accepted_at": accepted_at,
        "shipping_address": order.shipping_address, "lines": order.lines,
        "currency": order.currency, "shipping_option": order.shipping_option,
        "totals": order.totals, "payment_method": order.payment.method,
        "payment_status": order.payment.status, "merge_with": merge_with or [],
        "note": order.note, "gift_message": order.gift_message, "gift_wrap": order.gift_wrap,
        "ioss_number": order.ioss_number,
    }


@dataclass
class RunSoFar:
    """The orders of a run decided before the current one. The run's reads are made once, at
    its start, so they do not see these orders: `context` adds them where the database would
    have had them had each order been handled in its own transaction (as prior orders for the
    duplicate and merge checks, and as promo code uses), so a run decides as one-by-one would."""

    received_at: datetime
    prior: dict[str, list[PriorOrder]] = field(default_factory=dict)
    promo_uses: dict[tuple[str, str], int] = field(default_factory=dict)

    def context(self, order: OrderPlaced, ctx: Context) -> Context:
        addr = address_key(order)
        earlier = tuple(p for p in self.prior.get(order.store, [])
                        if p.external_order_id != order.external_order_id
                        and (p.customer_id == order.customer.id or p.address_key == addr))
        uses = dict(ctx.promo_uses)
        for code in {c.upper() for c in order.promo_codes}:
            n = self.promo_uses.get((order.customer.id, code), 0)
            if n:
                uses[code] = uses.get(code, 0) + n
        if not earlier and uses == ctx.promo_uses:
            return ctx
        return replace(ctx, prior=ctx.prior + earlier, promo_uses=uses)

    def add(self, order_id: str, order: OrderPlaced, status: str) -> None:
        """`order` was decided `status` (accepted, on_hold, rejected, cancelled)."""
        self.prior.setdefault(order.store, []).append(PriorOrder(
            order_id, order.external_order_id, order.customer.id, address_key(order),
            items_key(order), self.received_at, status))
        if status == "accepted":
            for code in {c.upper() for c in order.promo_codes}:
                key = (order.customer.id, code)
                self.promo_uses[key] = self.promo_uses.get(key, 0) + 1
