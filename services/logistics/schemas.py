"""What logistics' operators' HTTP answers (api.py), for OpenAPI and as a filter of each answer.
The label is a PDF, not JSON."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from shared.responses import IsoDatetime, Json, Money, OpenModel, Timestamp


class TraceEntry(OpenModel):
    """One carrier service's line in the choice: why it won, lost, or could not take it."""

    service: str = Field(examples=["DHL-PAKET"])
    eligible: bool
    carrier: str | None = None
    zone: str | None = None
    cost: Money | None = None
    chargeable_g: int | None = None
    surcharges: dict[str, Money] | None = Field(default=None,
                                                examples=[{"fuel": "0.40", "remote_area": "0"}])
    transit_days: list[int] | None = Field(default=None, examples=[[1, 3]])
    on_time_score: str | None = None
    chosen: str | None = Field(default=None, examples=["cheapest meeting the promise for standard"])
    why: str | None = Field(default=None, examples=["lost on cost to DHL-PAKET"])
    estimated_delivery: list[str] | None = Field(
        default=None, examples=[["2026-03-04", "2026-03-06"]],
        description="quotes: earliest and latest delivery date, ships_on plus the transit days")


class Quote(BaseModel):
    service: str | None = Field(description="the chosen service; null when none takes it")
    cost: Money | None
    chargeable_g: int | None = Field(description="max(actual, volumetric) grams")
    reason: str | None = Field(description="why no service takes it")
    trace: list[TraceEntry]
    ships_on: str | None = Field(
        default=None, examples=["2026-03-02"],
        description="the day it would leave the warehouse: its local date when today is a"
                    " working day before the cut-off, else its next working day")


class Shipment(OpenModel):
    parcel_id: str
    order_id: str
    warehouse: str
    country: str = Field(examples=["DE"])
    carrier: str | None = None
    service: str | None = None
    tracking_number: str | None = None
    status: str = Field(examples=["held", "shipped", "in_transit", "delivered"])
    weight_g: int
    chargeable_g: int | None = None
    cost: Money | None = None
    cost_currency: str | None = None
    zone: str | None = None
    transit_max: int | None = None
    lines: list[dict[str, Json]]
    trace: list[TraceEntry]
    declared_value: Money | None = None
    customs: dict[str, Json] | None = Field(default=None, description="customs data (CN23)")
    hold_reasons: list[Json] = Field(description="why the parcel stopped at the dock")
    label_weight_g: int | None = None
    measured_weight_g: int | None = None
    on_time: bool | None = None
    last_event_at: IsoDatetime | None = None
    shipped_at: IsoDatetime | None = None
    delivered_at: IsoDatetime | None = None
    stalled_for: IsoDatetime | None = None
    created_at: IsoDatetime


class Flagged(BaseModel):
    flagged: list[str] = Field(description="parcels newly flagged as stalled")


class CarrierScore(BaseModel):
    service: str
    zone: str
    source: str = Field(examples=["history", "analytics"])
    delivered: int
    on_time: int
    rate: Money | None = Field(description="on-time rate, 0 to 1")
    updated_at: Timestamp


class HeldParcel(BaseModel):
    parcel_id: str
    order_key: str
    warehouse: str
    country: str
    service: str | None = None
    tracking_number: str | None = None
    hold_reasons: list[Json]
    created_at: Timestamp


class ParcelException(BaseModel):
    """A parcel an operator should look at after hand-over: the carrier reported a delivery
    exception (failed attempt, exception, returned to sender) or lost it, or it has had no scan
    for longer than its service allows (stalled)."""

    parcel_id: str
    order_key: str = Field(examples=["acme-eu:100234"])
    kind: Literal["exception", "lost", "stalled"]
    status: str = Field(examples=["failed_attempt", "lost", "in_transit"],
                        description="the carrier's last status of the parcel")
    warehouse: str
    country: str
    carrier: str | None = None
    service: str | None = None
    tracking_number: str | None = None
    description: str | None = Field(default=None,
                                    description="the carrier's words with that status")
    location: str | None = None
    shipped_at: IsoDatetime | None = None
    last_event_at: IsoDatetime | None = Field(default=None, description="the last scan")
    stalled_for: IsoDatetime | None = Field(
        default=None, description="stalled: the silence the watchdog flagged (its last scan)")


class DockScanResult(BaseModel):
    parcel_id: str
    order_shipped: bool = Field(description="every parcel of the order passed: shipped")
    status: str
    hold_reasons: list[Json]


class Restriction(BaseModel):
    country: str = Field(examples=["AU"])
    attribute: str = Field(examples=["battery"])
    note: str
    updated_at: Timestamp | None = None


class Lifted(BaseModel):
    country: str
    attribute: str
    lifted: bool
