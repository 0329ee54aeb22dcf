"""The setup entries one service owns and others copy (`setup.changed`, shared/setup.py): one
model per entry, so the owner validates what it publishes and the copies read it with the same
rules. Unknown fields are ignored (a copy reads what it needs of a newer owner's entry); the
owner's setup kind subclasses the model with `extra="forbid"`, so a typo in a setup file is an
error there (services/inventory/kinds.py, services/intake/kinds.py)."""

from __future__ import annotations

import zoneinfo
from typing import Annotated, Literal

from pydantic import Field, field_validator

from .common import ORDER_REF_RE, WireModel

WEEK = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
Day = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
Currency = Annotated[str, Field(pattern=r"^[A-Z]{3}$", description=(
    "a three-letter ISO 4217 code in capitals, such as USD"))]
StoreName = Annotated[str, Field(pattern=ORDER_REF_RE, description=(
    "a store as orders name it: 1-64 letters, digits or ._-"))]


class WarehouseAddress(WireModel):
    """Where the warehouse is (the sender's address on labels, through logistics' copy)."""

    line1: str = Field(min_length=1, max_length=200, description="street and number")
    line2: str | None = Field(default=None, max_length=200,
                              description="building, unit, ... (optional)")
    city: str = Field(min_length=1, max_length=100)
    region: str | None = Field(default=None, max_length=100,
                               description="state, province or county (optional)")
    postal_code: str = Field(min_length=1, max_length=20)


class WarehouseEntry(WireModel):
    """`warehouses` (owner: inventory; copied by logistics). Inventory allocates stock only from
    active ones."""

    name: str = Field(min_length=1, max_length=100, description="what operators call it")
    country: str = Field(pattern=r"^[A-Z]{2}$", description="ISO 3166-1 alpha-2 code, e.g. US")
    address: WarehouseAddress
    timezone: str = Field(description="IANA time zone name, e.g. America/Los_Angeles")
    cutoff: str = Field(pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$",
                        description="HH:MM local time; orders reserved after it ship the next"
                                    " working day")
    working_days: list[Day] = Field(min_length=1, max_length=7,
                                    description="days it ships, from mon..sun, no repeats")
    active: bool = Field(description="false: no stock is allocated from it (it is never"
                                     " deleted, history refers to it)")

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, v: str) -> str:
        if v not in zoneinfo.available_timezones():
            raise ValueError(f"unknown time zone {v!r}: use an IANA name such as"
                             " Europe/Berlin or America/Los_Angeles")
        return v

    @field_validator("working_days")
    @classmethod
    def _days_once_in_week_order(cls, v: list[str]) -> list[str]:
        repeated = sorted({d for d in v if v.count(d) > 1}, key=WEEK.index)
        if repeated:
            raise ValueError(f"{', '.join(repeated)} given more than once: name each day once")
        return sorted(v, key=WEEK.index)  # one spelling of a week, whatever order it came in


class SellerEntry(WireModel):
    """`sellers` (owner: intake; copied by analytics): a seller's name, the currency its books
    are kept in and the stores it sells through. A store belongs to at most one seller."""

    name: str = Field(min_length=1, max_length=200, description="the seller's name, for people")
    base_currency: Currency = Field(description=(
        "the currency the seller's books are kept in; analytics reports revenue, refunds and"
        " averages in it as well as per currency"))
    stores: list[StoreName] = Field(default_factory=list, max_length=1000, description=(
        "the stores the seller sells through (each named by at most one seller)"))

    @field_validator("stores")
    @classmethod
    def _distinct_sorted(cls, stores: list[str]) -> list[str]:
        """Kept sorted, so that the same stores in another order are the same entry."""
        twice = sorted({s for s in stores if stores.count(s) > 1})
        if twice:
            raise ValueError(f"stores named more than once: {', '.join(twice)}")
        return sorted(stores)
