"""Sellers and their base currency (issue 22): analytics' copy of intake's `sellers` setup
section, and each seller's revenue, refunds and average order value in its base currency as well
as per currency (docs/analytics.md "Sellers and their base currency").

- The copy: intake publishes each change of a seller on `setup.changed` (kind `sellers`, key the
  seller id, `data` `{name, base_currency, stores}` or null when deleted); `copy_sellers` upserts
  `sellers` and which seller each store belongs to (`seller_stores`: the newest change naming a
  store wins, by its `occurred_at`, so a store moved from one seller to another follows at once
  and an older change of the first seller handled later does not take it back).
- The figures: SQL sums the rollups per seller and currency (r_revenue, r_refund: a few rows
  whatever the number of orders, reports.sellers); `figures` converts those sums with the
  service's exchange rates (`fx.rates`, shared/money.py FxRates: direct, inverse or cross rate,
  the newest `as_of` of each pair) and rounds to the base currency's minor unit (JPY none, KWD
  three decimals). A currency with no rate to the base is never dropped: it is reported under
  `unconverted`, in its own currency.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from pydantic import ValidationError

from shared.contracts import SetupChanged
from shared.contracts.setup import SellerEntry
from shared.money import FxRates, in_units, significant
from shared.uow import UnitOfWork

log = logging.getLogger(__name__)


# --- the copy ---------------------------------------------------------------------------------

async def copy_sellers(uow: UnitOfWork, events: list[SetupChanged]) -> None:
    """`setup.changed` for `sellers`, in order: each upserts or deletes its seller and the
    stores it names. Setup changes are rare: a few statements per change is fine."""
    conn = uow.conn
    for e in uow.each(events):
        if e.data is None:
            await conn.execute("DELETE FROM seller_stores WHERE seller_id = $1", e.key)
            await conn.execute("DELETE FROM sellers WHERE seller_id = $1", e.key)
            log.info("seller %s deleted: its stores are reported per currency only", e.key)
            continue
        try:
            # intake's model, extras ignored; a currency in small letters is read as its code
            entry = SellerEntry.model_validate(
                {**e.data, "base_currency": str(e.data.get("base_currency", "")).upper()})
        except ValidationError as exc:
            # intake validates its entries; a copy that cannot be right is skipped, loudly
            log.error("setup.changed sellers.%s not copied: %s. The copy keeps what it had"
                      " (fix the seller in intake's setup)", e.key, exc)
            continue
        name, base, stores = entry.name, entry.base_currency, entry.stores
        await conn.execute(
            "INSERT INTO sellers (seller_id, name, base_currency, stores) VALUES ($1, $2, $3, $4)"
            " ON CONFLICT (seller_id) DO UPDATE SET name = EXCLUDED.name,"
            " base_currency = EXCLUDED.base_currency, stores = EXCLUDED.stores,"
            " updated_at = now()", e.key, name, base, stores)
        await conn.execute("DELETE FROM seller_stores WHERE seller_id = $1"
                           " AND NOT store = ANY($2::text[])", e.key, stores)
        await conn.execute(
            "INSERT INTO seller_stores (store, seller_id, changed_at)"
            " SELECT s, $2, $3 FROM unnest($1::text[]) s ON CONFLICT (store) DO UPDATE"
            " SET seller_id = EXCLUDED.seller_id, changed_at = EXCLUDED.changed_at"
            " WHERE seller_stores.changed_at <= EXCLUDED.changed_at", stores, e.key,
            e.occurred_at)
        log.info("seller %s (%s, base %s) now has stores %s", e.key, name, base,
                 ", ".join(stores) or "none")


# --- the figures ------------------------------------------------------------------------------

@dataclass
class Sums:
    """One seller's sums in one currency over a range (from the rollups, or the oracle)."""

    orders: int = 0
    revenue: Decimal = Decimal("0")
    refunds: int = 0
    refunds_amount: Decimal = Decimal("0")


@dataclass
class Seller:
    seller_id: str
    name: str
    base_currency: str
    stores: list[str] = field(default_factory=list)


def money(amount: Decimal, currency: str) -> str:
    """An amount with its currency's decimals: "5000" JPY, "12.345" KWD, "12.30" USD."""
    return f"{in_units(amount, currency):f}"


def figures(sellers: Iterable[Seller], sums: Mapping[tuple[str, str], Sums], fx: FxRates
            ) -> list[dict[str, Any]]:
    """Per seller: the figures in its base currency (each currency's sum converted at the newest
    rate known, the total rounded once to the base's minor unit), per currency, and what could
    not be converted (no rate links the currency to the base)."""
    out = []
    for s in sorted(sellers, key=lambda s: s.seller_id):
        base = s.base_currency
        revenue, refunded = Decimal("0"), Decimal("0")
        orders = refunds = 0
        oldest: datetime | None = None
        by_currency, unconverted = [], []
        for (seller_id, currency), x in sorted(sums.items()):
            if seller_id != s.seller_id or not (x.orders or x.refunds):
                continue
            row: dict[str, Any] = {
                "currency": currency, "orders": x.orders, "revenue": money(x.revenue, currency),
                "refunds": x.refunds, "refunds_amount": money(x.refunds_amount, currency)}
            found = fx.rate(currency, base)
            if found is None:
                unconverted.append(dict(row))
                row |= {"rate": None, "rate_as_of": None, "revenue_converted": None,
                        "refunds_converted": None}
            else:
                r, as_of, _via = found
                revenue += x.revenue * r
                refunded += x.refunds_amount * r
                orders += x.orders
                refunds += x.refunds
                if as_of is not None:
                    oldest = as_of if oldest is None else min(oldest, as_of)
                row |= {"rate": significant(r), "rate_as_of": as_of.isoformat() if as_of
                        else None, "revenue_converted": money(x.revenue * r, base),
                        "refunds_converted": money(x.refunds_amount * r, base)}
            by_currency.append(row)
        out.append({
            "seller": s.seller_id, "name": s.name, "base_currency": base, "stores": s.stores,
            "orders": orders, "revenue": money(revenue, base), "refunds": refunds,
            "refunds_amount": money(refunded, base),
            "average_order_value": money(revenue / orders, base) if orders else None,
            "converted_at_rate_as_of": oldest.isoformat() if oldest else None,
            "by_currency": by_currency, "unconverted": unconverted})
    return out


def summary_metrics(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The KPI summary's rows of each seller: `seller.<id>.revenue` etc., in its base currency
    (`.unconverted`: what had no rate, in its own currencies)."""
    out: list[dict[str, Any]] = []
    for r in rows:
        base, at = r["base_currency"], f"seller.{r['seller']}"
        out += [{"metric": f"{at}.revenue", "value": f"{r['revenue']} {base}"},
                {"metric": f"{at}.refunds_amount", "value": f"{r['refunds_amount']} {base}"},
                {"metric": f"{at}.average_order_value",
                 "value": f"{r['average_order_value']} {base}" if r["average_order_value"]
                 else None}]
        if r["unconverted"]:
            out.append({"metric": f"{at}.unconverted", "value": ", ".join(
                f"{u['revenue']} {u['currency']}" + (f" (refunds {u['refunds_amount']})"
                                                     if u["refunds"] else "")
                for u in r["unconverted"])})
    return out


def oracle_sums(views: Iterable[Any], store_seller: Mapping[str, str]
                ) -> dict[tuple[str, str], Sums]:
    """The same sums recomputed from folded orders (domain.OrderView, already filtered): the
    tests' oracle for the SQL over the rollups."""
    out: dict[tuple[str, str], Sums] = {}
    for v in views:
        seller_id = store_seller.get(v.store)
        if seller_id is None:
            continue
        if v.sold:
            x = out.setdefault((seller_id, v.currency), Sums())
            x.orders += 1
            x.revenue += v.grand_total
        for r in v.refunds:
            x = out.setdefault((seller_id, r.currency), Sums())
            x.refunds += 1
            x.refunds_amount += r.amount
    return out
