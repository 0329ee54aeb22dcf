"""What inventory's operators' HTTP answers (api.py), for OpenAPI and as a filter of each
answer."""

from __future__ import annotations

from pydantic import BaseModel, Field

from shared.responses import Json, Money, Timestamp


class StockRow(BaseModel):
    sku: str = Field(examples=["TSHIRT-RED-M"])
    warehouse: str = Field(examples=["WH-EU-1"])
    on_hand: int
    reserved: int
    available: int = Field(description="on_hand - reserved")
    refurbished: int = Field(description="graded returns kept apart from new stock")


class WarehouseStock(BaseModel):
    warehouse: str
    on_hand: int
    reserved: int
    available: int
    refurbished: int


class SkuStock(BaseModel):
    sku: str
    warehouses: list[WarehouseStock]


class LedgerRow(BaseModel):
    id: int
    warehouse: str
    kind: str = Field(examples=["adjustment", "reserve", "commit", "release", "correction"])
    on_hand_delta: int
    reserved_delta: int
    refurbished_delta: int
    units: int | None = None
    order_id: str | None = None
    reference: str | None = None
    event_id: str | None = None
    created_at: Timestamp


class Ledger(BaseModel):
    sku: str
    rows: list[LedgerRow]


class Backorder(BaseModel):
    order_id: str
    order_key: str = Field(examples=["acme-eu:100234"])
    short_lines: list[dict[str, Json]] = Field(description="lines waiting for stock")
    substitutes: Json = Field(description="substitutes offered, per short SKU")
    restock_eta: Timestamp | None = None
    decision: str | None = Field(default=None, description="the buyer's or store's decision")
    since: Timestamp


class Allocation(BaseModel):
    order_id: str
    order_key: str
    status: str = Field(examples=["reserved", "backordered", "released"])
    allocations: Json = Field(description="units reserved per warehouse and SKU")
    short_lines: Json
    substitutes: Json
    substitutions: Json
    price_difference: Money | None = None
    decision: str | None = None
    trace: Json = Field(description="how the sources were chosen, step by step")


class Drift(BaseModel):
    sku: str
    warehouse: str
    on_hand: int
    reserved: int
    refurbished: int
    ledger_on_hand: int
    ledger_reserved: int
    ledger_refurbished: int
    on_hand_drift: int
    reserved_drift: int
    refurbished_drift: int
    repaired: bool | None = None


class Reconciliation(BaseModel):
    balanced: bool = Field(description="true when every balance equals its ledger's sum")
    drift: list[Drift]


class Repair(Reconciliation):
    repaired: list[Drift]


class ReorderHint(BaseModel):
    sku: str
    available: int
    velocity_7d: float = Field(description="units a day over the last 7 days")
    velocity_30d: float
    days_of_cover: float | None = Field(description="null when nothing sells")
    lead_time_days: int
    low: bool = Field(description="cover shorter than the lead time, or orders waiting")


class ExpectedReceipt(BaseModel):
    id: int
    sku: str
    warehouse: str
    quantity: int
    eta: Timestamp
    reference: str | None = None
    backorders_updated: int = Field(description="backorders of the SKU that got a restock ETA")


class Policy(BaseModel):
    split_allowed: bool
    split_penalty: float
    partial: str = Field(examples=["hold", "ship_available"])
    backorder_limit_s: int
    substitute_price_band: float = Field(examples=[0.1])


class LeadTime(BaseModel):
    sku: str
    lead_time_days: int
