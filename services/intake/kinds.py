"""The setup intake owns (shared/setup.py, docs/intake.md "Setup"):

- `review_policies`: each store's review settings (`domain.Policy`), key a store or `*` (the
  default of stores without their own). Changing one re-reviews the open holds it may decide.
- `sellers`: who sells through which stores and the currency their books are kept in
  (analytics keeps a copy and reports in it). A store belongs to at most one seller.
- `promotions`: the promo codes intake grants (`domain.Promotion`), key the code in capitals.
  Never deleted (accepted orders count their uses): `active: false` retires one. Changing one
  re-reviews the holds it may decide.

All are served by `GET/PUT/DELETE /setup/...` (mounted in api.py) and published on
`setup.changed`; `PUT /policies/{store}` (partial overrides) and `PUT /promotions/{code}` go
through the same path.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any, Literal

import asyncpg
from fastapi import HTTPException
from pydantic import (
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    StrictBool,
    field_validator,
    model_validator,
)

from shared import setup
from shared.contracts import Money
from shared.contracts.setup import Currency, SellerEntry
from shared.db import Conn
from shared.money import fits, minor_digits
from shared.uow import UnitOfWork

from . import domain, review, store


def _number_as_text(value: Any) -> Any:
    """A setup file may write an amount as a number (`2000` or `2000.00` in YAML): read it as
    the decimal text it shows, then as money (at most 3 decimals)."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return value


Amount = Annotated[Money, BeforeValidator(_number_as_text), Field(ge=0, le=Decimal("1e12"))]
Minutes = Annotated[int, Field(ge=0, le=527_040, description="minutes (at most 366 days)")]
Percent = Annotated[Decimal, Field(ge=0, le=Decimal("9999.99"), decimal_places=2),
                    PlainSerializer(domain.decimal_text, return_type=str, when_used="json")]


# --- review_policies ------------------------------------------------------------------------------

class ReviewPolicy(BaseModel):
    """One store's review settings (`domain.Policy`); `*` serves every store without its own."""

    model_config = ConfigDict(extra="forbid")

    high_value_threshold: Amount = Field(description=(
        "an order worth this much or more (in high_value_currency) fires `high_value`"))
    high_value_currency: Currency = Field(description=(
        "the threshold's currency; orders in other currencies are converted (fx.rates)"))
    high_value_action: Literal["hold", "reject"] = Field(description="what `high_value` does")
    duplicate_window_minutes: Minutes = Field(description=(
        "an order like one of the same customer this recent is held as a suspected duplicate;"
        " 0 turns the check off"))
    merge_window_minutes: Minutes = Field(description=(
        "orders of one buyer to one address this close are offered as merge candidates; 0: off"))
    hold_pending_payment: StrictBool = Field(description="hold orders whose payment is pending")
    invalid_promo_action: Literal["hold", "reject"] = Field(description=(
        "what an invalid promotion code does"))
    restricted_goods_action: Literal["hold", "reject"] = Field(description=(
        "what goods no carrier takes to the destination do"))
    hold_sla_minutes: int = Field(gt=0, le=527_040, description=(
        "how long a hold may wait for an operator before it is overdue"))
    price_tolerance_percent: Percent = Field(description=(
        "a line priced off the store's price list by more than this is held (price_mismatch)"))

    @classmethod
    def of(cls, policy: domain.Policy) -> ReviewPolicy:
        return cls.model_validate(policy.as_dict())

    def policy(self) -> domain.Policy:
        return domain.Policy(**self.model_dump())


async def load_review_policies(conn: Conn) -> dict[str, dict[str, Any]]:
    rows = await conn.fetch(f"SELECT store, {', '.join(store.POLICY_COLUMNS)}"
                            " FROM store_policies")
    return {r["store"]: {c: r[c] for c in store.POLICY_COLUMNS} for r in rows}


async def save_review_policy(uow: UnitOfWork, key: str, entry: ReviewPolicy) -> None:
    await store.put_policy(uow, key, entry.policy())


async def delete_review_policy(uow: UnitOfWork, key: str) -> None:
    if key == "*":
        raise HTTPException(409, "review_policies.*: the default policy serves every store"
                            " without its own and cannot be deleted; change it instead")
    uow.forget(store.POLICIES)
    await uow.conn.execute("DELETE FROM store_policies WHERE store = $1", key)


async def review_policies_changed(uow: UnitOfWork, keys: list[str]) -> None:
    """Open holds are reviewed again with the new settings: the store's own, or every store's
    when the default changed (as `PUT /policies/{store}` always did)."""
    for shop in [None] if "*" in keys else sorted(keys):
        await review.rereview_open_holds(uow, trigger="policy_changed", store_name=shop)


# --- sellers --------------------------------------------------------------------------------------

class Seller(SellerEntry):
    """A seller (key: its id, e.g. `acme-us`), as intake's setup file gives it: the fields of
    `SellerEntry` (shared/contracts/setup.py, the model analytics' copy reads), and no others."""

    model_config = ConfigDict(extra="forbid")


async def load_sellers(conn: Conn | asyncpg.Pool) -> dict[str, dict[str, Any]]:
    rows = await conn.fetch(
        "SELECT s.seller_id, s.name, s.base_currency,"
        " coalesce(array_agg(t.store ORDER BY t.store) FILTER (WHERE t.store IS NOT NULL), '{}')"
        " AS stores FROM sellers s LEFT JOIN seller_stores t USING (seller_id)"
        " GROUP BY s.seller_id")
    return {r["seller_id"]: {"name": r["name"], "base_currency": r["base_currency"],
                             "stores": list(r["stores"])} for r in rows}


async def save_seller(uow: UnitOfWork, key: str, entry: Seller) -> None:
    await uow.conn.execute(
        "INSERT INTO sellers (seller_id, name, base_currency) VALUES ($1, $2, $3)"
        " ON CONFLICT (seller_id) DO UPDATE SET name = EXCLUDED.name,"
        " base_currency = EXCLUDED.base_currency, updated_at = now()",
        key, entry.name, entry.base_currency)
    await uow.conn.execute("DELETE FROM seller_stores WHERE seller_id = $1", key)
    await uow.conn.execute(
        "INSERT INTO seller_stores (store, seller_id) SELECT unnest($1::text[]), $2",
        entry.stores, key)


async def delete_seller(uow: UnitOfWork, key: str) -> None:
    await uow.conn.execute("DELETE FROM sellers WHERE seller_id = $1", key)  # cascades


async def check_sellers(conn: Conn, after: dict[str, Any], named_now: set[str],
                        request: dict[str, dict[str, Any]]) -> list[dict[str, str]]:
    """A store belongs to at most one seller: checked on every seller as the request would leave
    them (so one request may move a store between sellers, and a plan shows the clash too). A
    store named by two sellers fails the whole request (422, nothing saved or published), at
    each seller of the request naming it, with the other seller named."""
    named: dict[str, list[str]] = {}
    for seller, entry in sorted(after.items()):
        for shop in entry.stores:
            named.setdefault(shop, []).append(seller)
    problems = []
    for shop, sellers in sorted(named.items()):
        for seller in (s for s in sellers if len(sellers) > 1 and s in named_now):
            other = next(s for s in sellers if s != seller)
            problems.append({
                "at": f"sellers.{seller}.stores",
                "error": f"store {shop!r} is also named by seller {other!r}: a store belongs to"
                         f" at most one seller; remove it from {other!r} or from {seller!r}"})
    return problems


async def seller_of(conn: Conn | asyncpg.Pool, shop: str) -> dict[str, Any] | None:
    """The seller `shop` belongs to, with its id; None when no seller names it."""
    row = await conn.fetchrow("SELECT seller_id FROM seller_stores WHERE store = $1", shop)
    if row is None:
        return None
    entry = (await load_sellers(conn)).get(row["seller_id"])
    return {"seller": row["seller_id"], **entry} if entry is not None else None


# --- promotions -----------------------------------------------------------------------------------

class PromotionEntry(BaseModel):
    """A promo code (key: the code in capitals, as `GET /promotions` shows it; orders' codes match
    it in any case): percent of, or a fixed amount off, its scope of the order, from a minimum
    spend. Its amounts are in `currency`; orders in another currency are compared with them
    converted at the newest known rate (fx.rates)."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["percent", "fixed"] = Field(description=(
        "percent: `value` percent of the scope's total; fixed: `value` off, up to that total"))
    value: Amount = Field(description="a percent (at most 100) or an amount in `currency`")
    min_spend: Amount = Field(default=Decimal("0"), description=(
        "the order's subtotal must be at least this (in `currency`, converted for orders in"
        " another); 0: none"))
    currency: Currency = Field(default="USD", description=(
        "the currency of `min_spend` and of a fixed `value`"))
    starts_at: AwareDatetime | None = Field(default=None, description=(
        "valid from (with its time zone); none: always"))
    ends_at: AwareDatetime | None = Field(default=None, description="valid until; none: ever")
    active: StrictBool = Field(default=True, description=(
        "false retires the code (it is never deleted: accepted orders count its uses)"))
    scope_skus: list[str] = Field(default_factory=list, max_length=10_000, description=(
        "the SKUs it discounts; with scope_categories empty too: the whole order"))
    scope_categories: list[str] = Field(default_factory=list, max_length=1000, description=(
        "the categories it discounts (a product's category from catalog.products)"))
    stackable: StrictBool = Field(default=True, description=(
        "false: cannot be combined with any other code on the same order"))
    per_customer_limit: int | None = Field(default=None, ge=1, le=1_000_000, description=(
        "how many accepted orders of one customer may use it; none: no limit"))

    @field_validator("scope_skus", "scope_categories")
    @classmethod
    def _as_set(cls, items: list[str]) -> list[str]:
        """Sets, kept sorted: the same items in another order are the same entry."""
        return sorted(set(items))

    @model_validator(mode="after")
    def _amounts_fit(self) -> PromotionEntry:
        if self.kind == "percent" and self.value > 100:
            raise ValueError("value: a percent promotion is at most 100")
        if self.kind == "percent" and self.value != self.value.quantize(domain.CENT):
            raise ValueError("value: a percent has at most 2 decimals")
        for name in (("value",) if self.kind == "fixed" else ()) + ("min_spend",):
            amount = getattr(self, name)
            if not fits(amount, self.currency):
                digits = minor_digits(self.currency)
                raise ValueError(f"{name}: {amount} is finer than {self.currency} allows"
                                 f" ({digits} decimal{'s' if digits != 1 else ''})")
        return self

    @classmethod
    def of(cls, p: domain.Promotion) -> PromotionEntry:
        return cls(kind=p.kind, value=p.value, min_spend=p.min_spend, currency=p.currency,
                   starts_at=p.starts_at, ends_at=p.ends_at, active=p.active,
                   scope_skus=sorted(p.scope_skus), scope_categories=sorted(p.scope_categories),
                   stackable=p.stackable, per_customer_limit=p.per_customer_limit)

    def promotion(self, code: str) -> domain.Promotion:
        return domain.Promotion(code, self.kind, self.value, self.min_spend, self.starts_at,
                                self.ends_at, self.active, frozenset(self.scope_skus),
                                frozenset(self.scope_categories), self.stackable,
                                self.per_customer_limit, self.currency)


async def load_promotions(conn: Conn) -> dict[str, dict[str, Any]]:
    found = await store.promotion_rows(conn)
    return {p.code: PromotionEntry.of(p).model_dump() for p in found}


async def save_promotion(uow: UnitOfWork, key: str, entry: PromotionEntry) -> None:
    await store.upsert_promotion(uow.conn, entry.promotion(key))


async def check_promotions(conn: Conn, after: dict[str, Any], named_now: set[str],
                           request: dict[str, dict[str, Any]]) -> list[dict[str, str]]:
    """Codes are kept in capitals (orders' codes are matched in any case): a key in small
    letters would be another entry than the code it saves."""
    return [{"at": f"promotions.{key}",
             "error": f"a promotion code is written in capitals: use {key.upper()!r}"}
            for key in sorted(named_now) if key != key.upper()]


# The holds a promotion change may decide.
PROMO_HOLDS = ["invalid_promo", "amount_mismatch", "fx_rate_missing"]


async def promotions_changed(uow: UnitOfWork, keys: list[str]) -> None:
    """Holds a promotion may decide are reviewed again (as `PUT /promotions/{code}` always did,
    and those waiting for a rate: the code's currency may have changed)."""
    await review.rereview_open_holds(uow, trigger="promotion_changed", codes=PROMO_HOLDS)


KINDS = [
    setup.Kind("review_policies", ReviewPolicy, load_review_policies, save_review_policy,
               delete=delete_review_policy, changed=review_policies_changed,
               doc="each store's review settings; `*` is the default of stores without one"),
    setup.Kind("sellers", Seller, load_sellers, save_seller, delete=delete_seller,
               check=check_sellers,
               doc="sellers: name, base currency and the stores each sells through"),
    setup.Kind("promotions", PromotionEntry, load_promotions, save_promotion,
               changed=promotions_changed, check=check_promotions,
               doc="promo codes: percent or fixed, minimum spend and amounts in a currency,"
                   " window, scope, stacking, per-customer limit; never deleted (active: false)"),
]
