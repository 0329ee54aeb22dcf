"""Events between our own services (DESIGN.md: `{service}.{fact}`, past tense).

Every internal event has the envelope of STYLE.md: `event_id`, `event_type` and `event_version`
(stable strings, never a class path), `occurred_at`, `order_id`, `correlation_id` (the order's
first event) and `causation_id` (the event that caused this one). A breaking change gets a new
`event_version` and an upcaster in `shared.contracts.upcast`.

Order events carry the order they are about (`OrderSnapshot`), so a consumer never needs another
service's tables and never depends on the arrival order of two different topics.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Literal

from pydantic import Field

from .common import Event, Money, WireModel
from .public import Address, OrderLine, ShippingOption, SkuQuantity, Totals


class InternalEvent(Event):
    event_type: str
    event_version: int = 1
    correlation_id: str | None = None
    causation_id: str | None = None


class OrderEvent(InternalEvent):
    order_id: str
    order_key: str


class OrderSnapshot(WireModel):
    """The accepted order as intake reviewed it: what downstream services need of it."""

    order_id: str
    store: str
    external_order_id: str
    customer_id: str
    placed_at: datetime
    accepted_at: datetime
    shipping_address: Address
    lines: list[OrderLine]
    currency: str
    shipping_option: ShippingOption
    totals: Totals
    payment_method: str
    payment_status: str

    @property
    def key(self) -> str:
        return f"{self.store}:{self.external_order_id}"


class OrderAccepted(OrderEvent):
    event_type: Literal["intake.order_accepted"] = "intake.order_accepted"
    order: OrderSnapshot


class OrderCancelRequested(OrderEvent):
    """A customer's cancellation, handed down the chain (intake -> inventory -> fulfillment ->
    logistics) until it reaches the service that holds the order now, which confirms it or, once
    shipped, refuses it. Handing it on, rather than every service cancelling at once, keeps an
    order's statuses in order: nothing is reserved, packed or shipped after `cancelled`."""

    event_type: Literal["order.cancel_requested"] = "order.cancel_requested"
    reason: str
    refund_due: Money
    currency: str


class OrderCancelled(OrderEvent):
    """The cancellation is done: published by the service that confirmed it. Inventory releases
    any reservation; intake records the outcome."""

    event_type: Literal["order.cancelled"] = "order.cancelled"
    reason: str
    refund_due: Money
    currency: str
    confirmed_by: str


class OrderCancelRefused(OrderEvent):
    event_type: Literal["order.cancel_refused"] = "order.cancel_refused"
    reason: str


class Allocation(WireModel):
    warehouse: str
    lines: list[SkuQuantity]


class StockReserved(OrderEvent):
    event_type: Literal["inventory.stock_reserved"] = "inventory.stock_reserved"
    order: OrderSnapshot
    allocations: list[Allocation]


class Parcel(WireModel):
    parcel_id: str
    warehouse: str
    box: str
    weight_g: int
    dims_mm: dict[str, int]
    lines: list[SkuQuantity]
    attributes: list[str] = Field(default_factory=list)
    declared_value: Money


class OrderPacked(OrderEvent):
    event_type: Literal["fulfillment.order_packed"] = "fulfillment.order_packed"
    order: OrderSnapshot
    parcels: list[Parcel]


class ShippedParcel(WireModel):
    parcel_id: str
    warehouse: str
    carrier: str
    service: str
    tracking_number: str
    lines: list[SkuQuantity]


class OrderShipped(OrderEvent):
    event_type: Literal["logistics.order_shipped"] = "logistics.order_shipped"
    parcels: list[ShippedParcel]


class OrderDelivered(OrderEvent):
    event_type: Literal["logistics.order_delivered"] = "logistics.order_delivered"
    delivered_at: datetime


class CoverageChanged(InternalEvent):
    """What logistics can ship: intake rejects `unsupported_country` from this, not a shared table."""

    event_type: Literal["logistics.coverage_changed"] = "logistics.coverage_changed"
    countries: list[str]
    # Goods no configured service accepts to a country: {country: [attribute, ...]}.
    refused_attributes: dict[str, list[str]] = Field(default_factory=dict)


class ReturnRestocked(OrderEvent):
    event_type: Literal["aftersales.return_restocked"] = "aftersales.return_restocked"
    request_id: str
    warehouse: str
    lines: list[SkuQuantity]


# --- logistics -------------------------------------------------------------------------------

class ParcelLost(OrderEvent):
    """A carrier reported a parcel lost: aftersales reships its lines (a new linked order)."""

    event_type: Literal["logistics.parcel_lost"] = "logistics.parcel_lost"
    parcel_id: str
    tracking_number: str
    carrier: str
    lines: list[SkuQuantity]


class CarrierScoreComputed(InternalEvent):
    """Analytics' on-time rate of one carrier service in one destination zone, over all the
    deliveries it saw; logistics breaks selection ties with it. Key: `{service}:{zone}`."""

    event_type: Literal["analytics.carrier_scores"] = "analytics.carrier_scores"
    carrier: str
    service: str
    zone: str
    on_time_rate: Decimal = Field(ge=0, le=1)
    samples: int = Field(ge=0)


# --- fulfillment -----------------------------------------------------------------------------

class ShortPicked(OrderEvent):
    """A picker found fewer units in the bin than were reserved: inventory should re-allocate the
    `missing` units (from another bin or warehouse, or backorder them) and answer with a new
    `inventory.stock_reserved` for the order (its whole allocation); until then the order waits
    in fulfillment (status `short_picked`). Key: order key."""

    event_type: Literal["fulfillment.short_picked"] = "fulfillment.short_picked"
    sku: str
    warehouse: str
    missing: int = Field(ge=1)
