"""Money across currencies: each currency's minor unit, thresholds that name their currency, and
conversion through the exchange rates services learn from `fx.rates` (docs/contract.md).

- A currency's minor unit comes from CLDR (Babel): JPY and KRW have none, KWD and BHD three
  decimals, most two. An amount finer than its currency's unit is not an amount of it.
- A threshold is `"2000.00 USD"`: compared with an amount in another currency only through a rate,
  and the rate used goes in the decision's trace (`Conversion.trace`).
- Rates are pairs `(base, quote, rate)`: one unit of `base` is `rate` units of `quote`. A
  conversion uses the direct pair, its inverse, or a cross through a common base; the newest
  `as_of` wins for each pair (an older message never replaces a newer rate).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from functools import lru_cache
from typing import Any

from babel.numbers import get_currency_precision

CURRENCY_RE = re.compile(r"^[A-Z]{3}$")


@lru_cache(maxsize=512)
def minor_digits(currency: str) -> int:
    """Decimals of the currency's minor unit (CLDR): USD 2, JPY 0, KWD 3; unknown codes 2."""
    try:
        return int(get_currency_precision(currency))
    except Exception:  # Babel knows every ISO 4217 code; anything else keeps the usual two
        return 2


def quantum(currency: str) -> Decimal:
    """The smallest amount of the currency: 0.01 USD, 1 JPY, 0.001 KWD."""
    return Decimal(1).scaleb(-minor_digits(currency))


def in_units(amount: Decimal, currency: str) -> Decimal:
    """`amount` rounded (half up) to the currency's minor unit."""
    return amount.quantize(quantum(currency), ROUND_HALF_UP)


def fits(amount: Decimal, currency: str) -> bool:
    """Whether `amount` is a whole number of the currency's minor units (no 12.50 JPY)."""
    return amount == amount.quantize(quantum(currency))


def show(amount: Decimal, currency: str) -> str:
    """`amount` with the currency's decimals and code: "5000 JPY", "12.345 KWD"."""
    return f"{in_units(amount, currency)} {currency}"


def refund_due(grand_total: Decimal, payment_status: str) -> Decimal:
    """On cancellation, what was taken goes back; nothing was taken for pending or failed."""
    return grand_total if payment_status in ("paid", "authorized") else Decimal("0.00")


@dataclass(frozen=True)
class Threshold:
    """An amount with its currency, as configured: `Threshold.parse("2000.00 USD")`."""

    amount: Decimal
    currency: str

    @classmethod
    def parse(cls, value: Any, default_currency: str = "USD") -> Threshold:
        """`"2000.00 USD"`, `{"amount": "2000.00", "currency": "USD"}`, or a bare amount (in
        `default_currency`: how thresholds were configured before they named a currency)."""
        if isinstance(value, Threshold):
            return value
        if isinstance(value, Mapping):
            amount, currency = value.get("amount"), value.get("currency", default_currency)
        elif isinstance(value, str) and " " in value.strip():
            amount, currency = value.strip().rsplit(None, 1)
        else:
            amount, currency = value, default_currency
        currency = str(currency).upper()
        if not CURRENCY_RE.match(currency):
            raise ValueError(f"currency must be a three-letter ISO 4217 code, got {currency!r}")
        try:
            parsed = Decimal(str(amount))
        except InvalidOperation as exc:
            raise ValueError(f"not an amount: {amount!r}") from exc
        if not parsed.is_finite() or parsed < 0:
            raise ValueError(f"an amount must be a non-negative number, got {amount!r}")
        return cls(in_units(parsed, currency), currency)

    def __str__(self) -> str:
        return show(self.amount, self.currency)


@dataclass(frozen=True)
class Rate:
    base: str
    quote: str
    rate: Decimal  # one `base` is `rate` `quote`
    as_of: datetime


@dataclass(frozen=True)
class Conversion:
    amount: Decimal  # in the target currency, exact (not rounded)
    rate: Decimal  # source -> target
    as_of: datetime | None  # the oldest rate used; None for the same currency
    via: str | None = None  # the common base of a cross rate

    def trace(self, source: Decimal, source_currency: str, target: str) -> dict[str, str]:
        """What a decision's trace records of the conversion."""
        out = {"converted": show(self.amount, target), "from": show(source, source_currency),
               "rate": significant(self.rate)}
        if self.as_of is not None:
            out["rate_as_of"] = self.as_of.isoformat()
        if self.via:
            out["via"] = self.via
        return out


class FxRates:
    """The exchange rates a service knows (its `fx_rates` table; `shared.fx.rates` caches them)."""

    def __init__(self, rates: Iterable[Rate] = ()) -> None:
        self.pairs: dict[tuple[str, str], Rate] = {}
        for r in rates:
            self.pairs[(r.base, r.quote)] = r

    def rate(self, source: str, target: str) -> tuple[Decimal, datetime | None, str | None] | None:
        if source == target:
            return Decimal(1), None, None
        direct = self.pairs.get((source, target))
        if direct:
            return direct.rate, direct.as_of, None
        inverse = self.pairs.get((target, source))
        if inverse and inverse.rate:
            return Decimal(1) / inverse.rate, inverse.as_of, None
        for (base, quote), r in self.pairs.items():  # a cross through a common base
            if quote == source and r.rate:
                other = self.pairs.get((base, target))
                if other:
                    return other.rate / r.rate, min(r.as_of, other.as_of), base
        return None

    def convert(self, amount: Decimal, source: str, target: str) -> Conversion | None:
        """`amount` of `source` in `target`, or None when no rate links them."""
        found = self.rate(source, target)
        if found is None:
            return None
        rate, as_of, via = found
        return Conversion(amount * rate, rate, as_of, via)


def significant(rate: Decimal, digits: int = 10) -> str:
    """A rate for people: ten significant digits, no exponent ("0.006666666667", "7.1")."""
    text = f"{rate:.{digits}g}"
    return f"{Decimal(text).normalize():f}" if "e" in text.lower() else text


def rates_from_message(base: str, rates: Mapping[str, Decimal], as_of: datetime) -> list[Rate]:
    return [Rate(base, quote, rate, as_of) for quote, rate in rates.items() if quote != base]


# --- storage: the shared migration 0003_fx_rates.sql gives every service the table -----------
async def store_rates(conn: Any, rates: list[Rate]) -> int:
    """Upsert `rates`; a pair keeps the rate with the newest `as_of`. Returns rows changed."""
    if not rates:
        return 0
    result = await conn.execute(
        "INSERT INTO fx_rates (base, quote, rate, as_of)"
        " SELECT * FROM unnest($1::text[], $2::text[], $3::numeric[], $4::timestamptz[])"
        " ON CONFLICT (base, quote) DO UPDATE SET rate = EXCLUDED.rate, as_of = EXCLUDED.as_of,"
        " updated_at = now() WHERE fx_rates.as_of < EXCLUDED.as_of",
        [r.base for r in rates], [r.quote for r in rates], [r.rate for r in rates],
        [r.as_of for r in rates])
    return int(str(result).rsplit(" ", 1)[-1])


async def load_rates(conn: Any) -> FxRates:
    rows = await conn.fetch("SELECT base, quote, rate, as_of FROM fx_rates")
    return FxRates(Rate(r["base"], r["quote"], r["rate"], r["as_of"]) for r in rows)


def rates_json(fx: FxRates) -> list[dict[str, str]]:
    return [{"base": r.base, "quote": r.quote, "rate": f"{r.rate.normalize():f}",
             "as_of": r.as_of.isoformat()} for r in sorted(fx.pairs.values(),
                                                          key=lambda r: (r.base, r.quote))]


