"""Events between our own services (docs/design.md: `{service}.{fact}`, past tense).

Every internal event has the envelope of docs/design.md: `event_id`, `event_type` and `event_version`
(stable strings, never a class path), `occurred_at`, `order_id`, `correlation_id` (the order's
first event) and `causation_id` (the event that caused this one). A breaking change gets a new
`event_version` and an upcaster in `shared.contracts.upcast`.

Order events carry the order they are about (`OrderSnapshot`), so a consumer never needs another
service's tables and never depends on the arrival order of two different topics.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from .common import Event, Money, UtcDatetime, WireModel
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
    placed_at: UtcDatetime
    accepted_at: UtcDatetime
    shipping_address: Address
    lines: list[OrderLine]
    currency: str
    shipping_option: ShippingOption
    totals: Totals
    payment_method: str
    payment_status: str
    # intake: earlier unshipped orders of the same buyer to the same address (order ids), which
    # fulfillment may pack together with this one. Optional: empty when there are none.
    merge_with: list[str] = Field(default_factory=list)

    # The customer's words for the bench (fulfillment prints them; optional, older snapshots
    # have none).
    note: str | None = None
    gift_message: str | None = None
    gift_wrap: bool = False

    # aftersales: a replacement order (exchange or reship) names the order it replaces.
    replaces_order_id: str | None = None
    kind: str | None = None

    # intake: the order's EU import one-stop-shop number (`orders.placed` v1.1), for logistics'
    # customs declaration of a parcel into the EU. Optional: absent before it was carried.
    ioss_number: str | None = Field(default=None, max_length=32)

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
    """Too late to cancel: the parcels are with the carrier. On `logistics.order_cancel_refused`
    (logistics refused it) and `intake.order_cancel_refused` (intake hands every refusal to
    aftersales, which opens a return)."""

    event_type: Literal["order.cancel_refused"] = "order.cancel_refused"
    reason: str
    # Optional: the customer's own words for the cancellation (the return request's comment).
    customer_reason: str | None = None


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
    # Optional, for analytics (cost per parcel, carrier on-time against the promise); logistics
    # fills them when it knows them. Absent means unknown, never zero.
    cost: Money | None = None
    promised_days: int | None = None


class OrderShipped(OrderEvent):
    event_type: Literal["logistics.order_shipped"] = "logistics.order_shipped"
    parcels: list[ShippedParcel]


class OrderDelivered(OrderEvent):
    event_type: Literal["logistics.order_delivered"] = "logistics.order_delivered"
    delivered_at: UtcDatetime


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


# --- analytics ---------------------------------------------------------------------------------


class CarrierScored(InternalEvent):
    """`analytics.carrier_scores`, key: carrier. How often a carrier service delivered to a
    country within its promise, over the recent window; logistics may weigh its choice by it."""

    event_type: Literal["analytics.carrier_scored"] = "analytics.carrier_scored"
    carrier: str
    service: str
    country: str
    on_time_rate: float
    samples: int
    window_days: int


class ReorderHinted(InternalEvent):
    """`analytics.reorder_hints`, key: sku. Sales velocity (units per day) for inventory's reorder
    points; advisory, inventory decides."""

    event_type: Literal["analytics.reorder_hinted"] = "analytics.reorder_hinted"
    sku: str
    velocity_7d: float
    velocity_30d: float
    units_7d: int
    units_30d: int


# --- inventory --------------------------------------------------------------------------------
class StockLow(InternalEvent):
    """A SKU's stock will not last its supplier lead time (or orders already wait for it), or
    it has recovered (`low` false). Published on the change only; a reorder hint for buyers."""

    event_type: Literal["inventory.stock_low"] = "inventory.stock_low"
    sku: str
    low: bool
    available: int
    velocity_7d: float
    velocity_30d: float
    days_of_cover: float | None
    lead_time_days: int
    backordered_units: int = 0


# --- aftersales ------------------------------------------------------------------------------
# A replacement order (exchange, reship) travels as `OrderAccepted` on
# `aftersales.replacement_ordered`: same payload, a new order_id, zero prices, `replaces_order_id`.

class ReturnLabelRequested(OrderEvent):
    """Aftersales asks logistics for a return label: the customer ships `lines` from `from_address`
    back to `warehouse`."""

    event_type: Literal["aftersales.return_label_requested"] = "aftersales.return_label_requested"
    request_id: str
    from_address: Address
    warehouse: str
    lines: list[SkuQuantity]


class ReturnLabelIssued(OrderEvent):
    """Logistics' answer: the return ships on this service with this tracking number."""

    event_type: Literal["logistics.return_label_issued"] = "logistics.return_label_issued"
    request_id: str
    warehouse: str
    carrier: str
    service: str
    tracking_number: str


class ReturnGraded(OrderEvent):
    """Returned goods graded `refurbish` (their own stock state, not sellable as new) or `scrap`
    (written off). Resellable goods go through `aftersales.return_restocked` instead."""

    event_type: Literal["aftersales.return_graded"] = "aftersales.return_graded"
    request_id: str
    warehouse: str
    grade: Literal["refurbish", "scrap"]
    lines: list[SkuQuantity]


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


# --- logistics: parcels back at the warehouse ---------------------------------------------------

class ParcelReturned(OrderEvent):
    """A carrier brought a parcel back to the warehouse (`returned_to_sender`: refused at the
    door, undeliverable). Aftersales restocks `lines` (this order's own lines in the parcel; a
    merged parcel gives one event per order) at `warehouse` and refunds them less shipping."""

    event_type: Literal["logistics.parcel_returned"] = "logistics.parcel_returned"
    parcel_id: str
    tracking_number: str
    carrier: str
    warehouse: str
    lines: list[SkuQuantity]


class SetupChanged(InternalEvent):
    """`setup.changed`, key `{kind}:{key}`: one entry of a shop's setup (a warehouse, a carrier
    service, a seller, ...) created, replaced (`data`: the whole entry as its owner's API
    returns it) or deleted (`data` null), by `changed_by` through `owner`'s API (shared/setup.py).
    Services that keep a copy of a kind follow it; the rest ignore it."""

    event_type: Literal["setup.changed"] = "setup.changed"
    owner: str
    kind: str
    key: str
    data: dict[str, Any] | None
    changed_by: str
