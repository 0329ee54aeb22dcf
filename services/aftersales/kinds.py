"""The setup aftersales owns (shared/setup.py, docs/aftersales.md "Setup"):

- `aftersales_policies`: each store's after-sales policy (`domain.Policy`), key a store or `*`
  (the default of stores without their own). A change applies to requests decided from then on.

Served by `GET/PUT/DELETE /setup/...` (mounted in api.py) and published on `setup.changed`;
`PUT /policies/{store}` goes through the same path.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any

from fastapi import HTTPException
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from shared import setup
from shared.contracts import Money
from shared.db import Conn
from shared.uow import UnitOfWork

from . import domain

COLUMNS = ("return_window_days", "refund_without_return_below", "return_shipping_cost",
           "replacement_without_review_below", "currency")


def _number_as_text(value: Any) -> Any:
    """A setup file may write an amount as a number (`15` or `15.00` in YAML): read it as the
    decimal text it shows, then as money (at most 3 decimals)."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return value


def _amount(most: int, doc: str) -> Any:
    return Field(ge=0, le=Decimal(most), description=f"{doc} (in `currency`, at most {most:,})")


Amount = Annotated[Money, BeforeValidator(_number_as_text)]


class AftersalesPolicy(BaseModel):
    """One store's after-sales policy (`domain.Policy`); `*` serves every store without its
    own. The three amounts are in `currency`; requests on orders in another currency convert
    them (fx.rates), or wait for an operator when no rate links the two."""

    model_config = ConfigDict(extra="forbid")

    return_window_days: int = Field(ge=0, le=365, description=(
        "days after delivery a return or exchange is accepted"))
    refund_without_return_below: Amount = _amount(
        100_000_000, "a refund worth less than this is paid without asking the goods back")
    return_shipping_cost: Amount = _amount(
        10_000_000, "deducted from the refund of a customer-caused return (changed_mind, other)")
    replacement_without_review_below: Amount = _amount(
        100_000_000, "a reship or exchange worth this much or more waits for an operator")
    currency: str = Field(pattern=r"^[A-Z]{3}$", description=(
        "the three-letter ISO 4217 code of the amounts, such as USD"))

    def policy(self) -> domain.Policy:
        return domain.Policy(**self.model_dump())


async def load(conn: Conn) -> dict[str, dict[str, Any]]:
    rows = await conn.fetch(f"SELECT store, {', '.join(COLUMNS)} FROM policies")
    return {r["store"]: {c: r[c] for c in COLUMNS} for r in rows}


async def save(uow: UnitOfWork, key: str, entry: AftersalesPolicy) -> None:
    uow.forget("aftersales.policy")
    await uow.conn.execute(
        f"INSERT INTO policies (store, {', '.join(COLUMNS)}) VALUES ($1, $2, $3, $4, $5, $6)"
        " ON CONFLICT (store) DO UPDATE SET return_window_days = EXCLUDED.return_window_days,"
        " refund_without_return_below = EXCLUDED.refund_without_return_below,"
        " return_shipping_cost = EXCLUDED.return_shipping_cost,"
        " replacement_without_review_below = EXCLUDED.replacement_without_review_below,"
        " currency = EXCLUDED.currency",
        key, entry.return_window_days, entry.refund_without_return_below,
        entry.return_shipping_cost, entry.replacement_without_review_below, entry.currency)


async def delete(uow: UnitOfWork, key: str) -> None:
    if key == "*":
        raise HTTPException(409, "aftersales_policies.*: the default policy serves every store"
                            " without its own and cannot be deleted; change it instead")
    uow.forget("aftersales.policy")
    await uow.conn.execute("DELETE FROM policies WHERE store = $1", key)


KINDS = [
    setup.Kind("aftersales_policies", AftersalesPolicy, load, save, delete=delete,
               doc="each store's return window, refund and replacement thresholds and return"
                   " shipping; `*` is the default of stores without one"),
]
