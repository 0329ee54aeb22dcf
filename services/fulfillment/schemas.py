"""What fulfillment's operators' HTTP answers (api.py), for OpenAPI and as a filter of each
answer. The pick list and the packing slip are HTML pages, not JSON."""

from __future__ import annotations

from pydantic import BaseModel, Field

from shared.responses import OpenModel, Timestamp


class Awaiting(BaseModel):
    order_id: str
    order_key: str = Field(examples=["acme-eu:100234"])
    since: Timestamp


class Line(OpenModel):
    sku: str
    quantity: int


class Pick(BaseModel):
    warehouse: str
    wave_id: str | None = None
    group_id: str | None = Field(default=None, description="orders packed together share one")
    status: str = Field(examples=["awaiting_wave", "picking", "verified", "weighed", "on_hold",
                                  "packed"])
    lines: list[Line]
    remaining: dict[str, int] = Field(description="units still to scan, per SKU")
    expected_g: int | None = None
    measured_g: int | None = None


class Parcel(BaseModel):
    parcel_id: str
    warehouse: str
    box: str = Field(examples=["M"])
    weight_g: int
    lines: list[Line]


class Order(BaseModel):
    order_id: str
    order_key: str
    status: str
    picks: list[Pick]
    parcels: list[Parcel]


class WaveSummary(BaseModel):
    wave_id: str
    warehouse: str
    status: str
    size: int
    released_at: Timestamp


class SortTo(BaseModel):
    order_key: str
    quantity: int


class PickListLine(BaseModel):
    sku: str
    bin: str = Field(examples=["A-03-2-1"])
    quantity: int
    orders: list[SortTo]


class WaveOrder(Pick):
    order_id: str
    order_key: str
    gift_wrap: bool = Field(default=False, description="the customer asked for gift wrap")
    has_note: bool = Field(default=False, description=(
        "the order has a note or a gift message, printed on its packing slip (the text is"
        " personal data: only the slip, behind the token, shows it)"))


class Wave(BaseModel):
    wave_id: str
    warehouse: str
    status: str
    released_at: Timestamp
    pick_list: list[PickListLine] = Field(description="in walking order (zone, aisle, rack, level)")
    orders: list[WaveOrder]


class ScanResult(BaseModel):
    order_id: str
    accepted: bool
    reason: str | None = Field(description="why a scan was refused (a reason code)",
                               examples=[None, "unknown_code", "over_scan"])
    sku: str | None = None
    remaining: dict[str, int]
    verified: bool | None = Field(default=None, description="every unit scanned")


class ShortPicked(BaseModel):
    order_id: str
    status: str = Field(examples=["short_picked"])


class WeighResult(BaseModel):
    ok: bool = Field(description="within the tolerance of the expected weight")
    expected_g: int
    measured_g: int
    tolerance_g: int
    orders: list[str] = Field(description="orders in the weighed parcel(s)")


class QcHold(BaseModel):
    on_hold: list[str] = Field(description="orders put on hold")
    reason: str = Field(examples=["qc_damaged"])


class Packed(BaseModel):
    order_id: str
    parcels: list[str] = Field(description="parcel ids")

