"""The setup inventory owns (shared/setup.py, docs/inventory.md "Setup"):

- `warehouses` (key: the warehouse code, e.g. WH-LA): name, country, address, time zone, daily
  cut-off, working days and `active`. Never deleted (stock, ledger and orders refer to them):
  `active: false` takes one out of allocation. Logistics keeps a copy from `setup.changed`.
- `warehouse_priorities` (key: a destination country, or "*" for every other one): the
  warehouses to try, in order. Deletable, except "*".
- `stock_policies` (key: a store, or "*" for every other one): split shipments, partial
  shipments, how long a backorder waits, the substitutes' price band. Deletable, except "*".

Handlers read warehouses, priorities and policies once per unit of work (`uow.memo`, nothing
lives longer than one transaction), so a change is seen by the next reservation; `changed` also
forgets them in the unit of work that made the change.
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any, Literal

from fastapi import HTTPException
from pydantic import BaseModel, ConfigDict, Field, field_validator

from shared import setup
from shared.contracts.setup import WarehouseAddress, WarehouseEntry
from shared.db import Conn
from shared.uow import UnitOfWork

DESTINATION = re.compile(r"^(\*|[A-Z]{2})$")
# The memo keys of handlers.py (`_warehouses`, `_priorities`, `_policies`).
MEMO_WAREHOUSES, MEMO_PRIORITIES, MEMO_POLICIES = (
    "inventory.warehouses", "inventory.priorities", "inventory.policies")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


# --- warehouses ---------------------------------------------------------------------------------
class Address(WarehouseAddress):
    model_config = ConfigDict(extra="forbid")


class Warehouse(WarehouseEntry):
    """One warehouse, as inventory's setup file gives it: the fields of `WarehouseEntry`
    (shared/contracts/setup.py, the model logistics' copy reads), and no others."""

    model_config = ConfigDict(extra="forbid")
    address: Address


async def load_warehouses(conn: Conn) -> dict[str, dict[str, Any]]:
    rows = await conn.fetch("SELECT * FROM warehouses ORDER BY code")
    return {r["code"]: {
        "name": r["name"], "country": r["country"],
        "address": {"line1": r["line1"], "line2": r["line2"], "city": r["city"],
                    "region": r["region"], "postal_code": r["postal_code"]},
        "timezone": r["timezone"], "cutoff": r["cutoff"].strftime("%H:%M"),
        "working_days": list(r["working_days"]), "active": r["active"]} for r in rows}


async def save_warehouse(uow: UnitOfWork, code: str, w: Warehouse) -> None:
    a = w.address
    await uow.conn.execute(
        "INSERT INTO warehouses (code, name, country, line1, line2, city, region, postal_code,"
        " timezone, cutoff, working_days, active)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10::text::time, $11, $12)"
        " ON CONFLICT (code) DO UPDATE SET name = EXCLUDED.name, country = EXCLUDED.country,"
        " line1 = EXCLUDED.line1, line2 = EXCLUDED.line2, city = EXCLUDED.city,"
        " region = EXCLUDED.region, postal_code = EXCLUDED.postal_code,"
        " timezone = EXCLUDED.timezone, cutoff = EXCLUDED.cutoff,"
        " working_days = EXCLUDED.working_days, active = EXCLUDED.active",
        code, w.name, w.country, a.line1, a.line2, a.city, a.region, a.postal_code,
        w.timezone, w.cutoff, list(w.working_days), w.active)


async def warehouses_changed(uow: UnitOfWork, keys: list[str]) -> None:
    uow.forget(MEMO_WAREHOUSES)


# --- warehouse priorities -----------------------------------------------------------------------
class WarehousePriority(_Strict):
    """The warehouses to try for one destination, first choice first. Warehouses not named
    (and active) are still tried after these, in code order; inactive ones never are."""

    warehouses: list[str] = Field(min_length=1, max_length=50,
                                  description="warehouse codes, in the order to try")

    @field_validator("warehouses")
    @classmethod
    def _each_once(cls, v: list[str]) -> list[str]:
        repeated = sorted({w for w in v if v.count(w) > 1})
        if repeated:
            raise ValueError(f"{', '.join(repeated)} named more than once: name each"
                             " warehouse once")
        return v


async def load_priorities(conn: Conn) -> dict[str, dict[str, Any]]:
    rows = await conn.fetch(
        "SELECT destination, warehouse FROM warehouse_priority ORDER BY destination, rank")
    out: dict[str, dict[str, Any]] = {}
    for r in rows:
        out.setdefault(r["destination"], {"warehouses": []})["warehouses"].append(r["warehouse"])
    return out


async def check_priorities(conn: Conn, after: dict[str, Any], named: set[str],
                           request: dict[str, dict[str, Any]]) -> list[dict[str, str]]:
    """What the model cannot see, checked in plans too: the key's form, and that the codes are
    warehouses (known, or created by the same request: warehouses are saved first)."""
    problems = []
    known = {r["code"] for r in await conn.fetch("SELECT code FROM warehouses")}
    known |= set(request.get("warehouses", {}))
    for destination in sorted(named):
        if not DESTINATION.match(destination):
            problems.append({"at": f"warehouse_priorities.{destination}",
                             "error": "the key is a destination country (ISO 3166-1 alpha-2,"
                                      " e.g. DE) or * for every other destination"})
        unknown = [w for w in after[destination].warehouses if w not in known]
        if unknown:
            problems.append({"at": f"warehouse_priorities.{destination}.warehouses",
                             "error": f"unknown warehouse {', '.join(unknown)} (known:"
                                      f" {', '.join(sorted(known))}): add it under warehouses"
                                      " first or correct the code"})
    return problems


async def save_priority(uow: UnitOfWork, destination: str, p: WarehousePriority) -> None:
    await uow.conn.execute("DELETE FROM warehouse_priority WHERE destination = $1", destination)
    await uow.conn.execute(
        "INSERT INTO warehouse_priority (destination, rank, warehouse)"
        " SELECT $1, r, w FROM unnest($2::text[]) WITH ORDINALITY AS x(w, r)",
        destination, p.warehouses)


async def delete_priority(uow: UnitOfWork, destination: str) -> None:
    if destination == "*":
        raise HTTPException(422, "warehouse_priorities.*: the default for every other destination"
                                 " cannot be deleted; replace it with PUT instead")
    await uow.conn.execute("DELETE FROM warehouse_priority WHERE destination = $1", destination)


async def priorities_changed(uow: UnitOfWork, keys: list[str]) -> None:
    uow.forget(MEMO_PRIORITIES)


# --- stock policies -----------------------------------------------------------------------------
def _places(v: float, places: int) -> float:
    if round(v, places) != v:
        raise ValueError(f"at most {places} decimal places")
    return v


class StockPolicy(_Strict):
    """How inventory allocates one store's orders (docs/inventory.md)."""

    split_allowed: bool = Field(description="may an order ship from several warehouses")
    split_penalty: float = Field(ge=0, le=1000, description="cost of each extra warehouse of a"
                                 " split, in steps down the destination's priority list")
    partial: Literal["hold", "ship_available"] = Field(
        description="hold: the whole order waits for what is short; ship_available: what is"
                    " there ships, the rest follows as a linked order")
    backorder_limit_s: int = Field(ge=1, le=2_147_483_647, description="seconds a backorder"
                                   " waits before it is cancelled (1209600 = 14 days)")
    substitute_price_band: float = Field(ge=0, le=1, description="a substitute's price may"
                                         " differ from the original's by at most this fraction")

    @field_validator("split_penalty")
    @classmethod
    def _penalty_places(cls, v: float) -> float:
        return _places(v, 2)

    @field_validator("substitute_price_band")
    @classmethod
    def _band_places(cls, v: float) -> float:
        return _places(v, 3)


async def load_policies(conn: Conn) -> dict[str, dict[str, Any]]:
    rows = await conn.fetch("SELECT * FROM store_policies ORDER BY store")
    return {r["store"]: {"split_allowed": r["split_allowed"],
                         "split_penalty": float(r["split_penalty"]), "partial": r["partial"],
                         "backorder_limit_s": r["backorder_limit_s"],
                         "substitute_price_band": float(r["substitute_price_band"])}
            for r in rows}


async def save_policy(uow: UnitOfWork, store: str, p: StockPolicy) -> None:
    await uow.conn.execute(
        "INSERT INTO store_policies (store, split_allowed, split_penalty, partial,"
        " backorder_limit_s, substitute_price_band) VALUES ($1, $2, $3, $4, $5, $6)"
        " ON CONFLICT (store) DO UPDATE SET split_allowed = EXCLUDED.split_allowed,"
        " split_penalty = EXCLUDED.split_penalty, partial = EXCLUDED.partial,"
        " backorder_limit_s = EXCLUDED.backorder_limit_s,"
        " substitute_price_band = EXCLUDED.substitute_price_band",
        store, p.split_allowed, Decimal(str(p.split_penalty)), p.partial, p.backorder_limit_s,
        Decimal(str(p.substitute_price_band)))


async def delete_policy(uow: UnitOfWork, store: str) -> None:
    if store == "*":
        raise HTTPException(422, "stock_policies.*: the default for every other store cannot be"
                                 " deleted; replace it with PUT instead")
    await uow.conn.execute("DELETE FROM store_policies WHERE store = $1", store)


async def policies_changed(uow: UnitOfWork, keys: list[str]) -> None:
    uow.forget(MEMO_POLICIES)


# In this order: a file's warehouses are saved before the priorities that name them.
KINDS = [
    setup.Kind("warehouses", Warehouse, load_warehouses, save_warehouse,
               changed=warehouses_changed,
               doc="Warehouses by code; `active: false` instead of deleting."),
    setup.Kind("warehouse_priorities", WarehousePriority, load_priorities, save_priority,
               delete=delete_priority, changed=priorities_changed, check=check_priorities,
               doc="Warehouses to try per destination country, * for the rest."),
    setup.Kind("stock_policies", StockPolicy, load_policies, save_policy,
               delete=delete_policy, changed=policies_changed,
               doc="Allocation policy per store, * for the rest."),
]
