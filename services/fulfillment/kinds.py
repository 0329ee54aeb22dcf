"""The setup fulfillment owns (shared/setup.py, docs/fulfillment.md "Setup"):

- `boxes` (key: the box code, e.g. BOX-M): inner size, tare, the most it may weigh packed, and
  `active`. Never deleted (parcels refer to them): `active: false` keeps a box out of packing.

Packing reads the catalogue once per unit of work (`uow.memo`, nothing lives longer than one
transaction), so a change is used by the next parcel; `changed` also forgets it in the unit of
work that made the change.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from shared import setup
from shared.db import Conn
from shared.uow import UnitOfWork

from . import store

Mm = Annotated[int, Field(ge=1, le=5000)]


class Box(BaseModel):
    """One shipping box."""

    model_config = ConfigDict(extra="forbid")

    inner_mm: list[Mm] = Field(min_length=3, max_length=3,
                               description="inside length, width and height in mm")
    tare_g: int = Field(ge=0, le=100_000, description="the empty box's weight in grams")
    max_weight_g: int = Field(ge=1, le=1_000_000,
                              description="the most the packed box may weigh (tare included)")
    active: bool = Field(description="false: never chosen for packing (it is never deleted,"
                                     " parcels refer to it)")

    @model_validator(mode="after")
    def _carries_something(self) -> Box:
        if self.max_weight_g <= self.tare_g:
            raise ValueError(f"max_weight_g ({self.max_weight_g}) must be more than tare_g"
                             f" ({self.tare_g}): it includes the box itself")
        return self


async def load_boxes(conn: Conn) -> dict[str, dict[str, Any]]:
    rows = await conn.fetch("SELECT * FROM boxes ORDER BY code")
    return {r["code"]: {"inner_mm": [r["inner_l"], r["inner_w"], r["inner_h"]],
                        "tare_g": r["tare_g"], "max_weight_g": r["max_weight_g"],
                        "active": r["active"]} for r in rows}


async def save_box(uow: UnitOfWork, code: str, b: Box) -> None:
    l, w, h = b.inner_mm  # noqa: E741
    await uow.conn.execute(
        "INSERT INTO boxes (code, inner_l, inner_w, inner_h, tare_g, max_weight_g, active)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (code) DO UPDATE SET"
        " inner_l = EXCLUDED.inner_l, inner_w = EXCLUDED.inner_w, inner_h = EXCLUDED.inner_h,"
        " tare_g = EXCLUDED.tare_g, max_weight_g = EXCLUDED.max_weight_g,"
        " active = EXCLUDED.active", code, l, w, h, b.tare_g, b.max_weight_g, b.active)


async def check_boxes(conn: Conn, after: dict[str, Any], named: set[str],
                      request: dict[str, dict[str, Any]]) -> list[dict[str, str]]:
    """Packing needs at least one active box: a request leaving none is refused (plans too)."""
    if any(b.active for b in after.values()):
        return []
    return [{"at": f"boxes.{k}.active", "error": "this would leave no active box to pack in:"
             " keep at least one box active"} for k in sorted(named)]


async def boxes_changed(uow: UnitOfWork, keys: list[str]) -> None:
    uow.forget(store.BOXES)  # packing reads the catalogue anew


KINDS = [
    setup.Kind("boxes", Box, load_boxes, save_box, changed=boxes_changed, check=check_boxes,
               doc="Shipping boxes by code; `active: false` instead of deleting."),
]
