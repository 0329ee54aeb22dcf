"""The public contract (docs/contract.md): what storefronts, warehouses, carriers and payment systems
publish to Shopkeeper and read from it. Field names and meanings are fixed; we may add, never
rename or drop.

Validation here is structural only (a wrong type or a missing field is `malformed`). Business
checks with their own reason codes (quantity range, known SKU, country served, address
completeness) belong to the services' domain rules, so that the right code reaches the customer.
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BeforeValidator, Field, PlainSerializer, WithJsonSchema

from .common import Event, Money, OrderRef, WireModel, order_key

Attribute = Literal["battery", "liquid", "powder", "magnetic", "fragile", "oversize", "high_value"]
ShippingOption = Literal["economy", "standard", "express"]
PaymentMethod = Literal["card", "paypal", "cod", "bank_transfer"]
PaymentStatus = Literal["paid", "authorized", "pending", "failed"]
AftersalesKind = Literal["return", "refund", "exchange", "reship"]
AftersalesReason = Literal[
    "damaged", "defective", "wrong_item", "not_as_described", "changed_mind", "not_received", "other"
]
TrackingStatus = Literal[
    "info_received", "in_transit", "out_for_delivery", "delivered", "failed_attempt",
    "exception", "lost", "returned_to_sender",
]


class Dims(WireModel):
    l: int = Field(ge=0)  # noqa: E741 - the contract's field name
    w: int = Field(ge=0)
    h: int = Field(ge=0)


class ProductUpserted(Event):
    """`catalog.products`, key: sku."""

    sku: str = Field(min_length=1, max_length=64)
    name: str = Field(max_length=500)
    category: str = Field(max_length=100)
    price: Money
    currency: str = Field(pattern=r"^[A-Z]{3}$")
    weight_g: int = Field(ge=0, le=1_000_000)
    dims_mm: Dims
    attributes: list[Attribute] = Field(default_factory=list, max_length=16)
    hs_code: str | None = Field(default=None, max_length=16)
    origin_country: str | None = Field(default=None, max_length=2)
    returnable: bool = True
    active: bool = True


class StockAdjusted(Event):
    """`stock.adjustments`, key: sku."""

    sku: str = Field(min_length=1, max_length=64)
    warehouse: str = Field(min_length=1, max_length=32)
    kind: Literal["received", "counted", "damaged"]
    quantity: int = Field(ge=0, le=10_000_000)
    reference: str | None = Field(default=None, max_length=200)


class Customer(WireModel):
    id: str = Field(min_length=1, max_length=64)
    name: str | None = Field(default=None, max_length=200)
    email: str | None = Field(default=None, max_length=320)
    phone: str | None = Field(default=None, max_length=40)


class Address(WireModel):
    name: str | None = Field(default=None, max_length=200)
    line1: str | None = Field(default=None, max_length=300)
    line2: str | None = Field(default=None, max_length=300)
    city: str | None = Field(default=None, max_length=120)
    region: str | None = Field(default=None, max_length=120)
    postal_code: str | None = Field(default=None, max_length=20)
    country: str = Field(max_length=8)


class OrderLine(WireModel):
    sku: str = Field(min_length=1, max_length=64)
    # The range 1-999 is a business rule with its own code (`invalid_quantity`), checked by intake.
    quantity: int = Field(ge=-1_000_000_000, le=1_000_000_000)
    unit_price: Money
    # v1.1: the line's tax (sales tax, VAT), informational; the order's total tax is totals.tax.
    tax: Money | None = None


class Totals(WireModel):
    subtotal: Money
    discount: Money
    shipping_fee: Money
    grand_total: Money
    # v1.1: grand_total = subtotal - discount + shipping_fee + tax + duties.
    tax: Money = Decimal("0.00")
    duties: Money = Decimal("0.00")


class Channel(WireModel):
    """v1.1: where an order came from (`shopify`, `woocommerce`, `amazon`, `generic`, ...) and the
    name the platform shows for it (`#1001`)."""

    # Optional, so that a v1.0 producer's own `channel` object (ignored before) still parses.
    platform: str | None = Field(default=None, max_length=32)
    order_name: str | None = Field(default=None, max_length=100)


class Payment(WireModel):
    method: PaymentMethod
    status: PaymentStatus


class OrderPlaced(Event):
    """`orders.placed`, key: `{store}:{external_order_id}`."""

    store: OrderRef
    external_order_id: OrderRef
    placed_at: AwareDatetime  # an offset is required (docs/contract.md)
    customer: Customer
    shipping_address: Address
    lines: list[OrderLine] = Field(min_length=1, max_length=100)
    currency: str = Field(pattern=r"^[A-Z]{3}$")
    shipping_option: ShippingOption
    totals: Totals
    payment: Payment
    promo_codes: list[str] = Field(default_factory=list, max_length=10)
    note: str | None = Field(default=None, max_length=2000)
    # The customer's words for the bench: printed on the packing slip (a gift message goes in
    # the box), gift wrap flagged on the pick list. Optional, additive.
    gift_message: str | None = Field(default=None, max_length=500)
    gift_wrap: bool = False
    # v1.1: the EU import one-stop-shop number (printed on CN23) and the order's channel.
    ioss_number: str | None = Field(default=None, max_length=32)
    channel: Channel | None = None

    @property
    def key(self) -> str:
        return order_key(self.store, self.external_order_id)


class OrderEventIn(Event):
    """Inbound events that name an order by store and external id."""

    store: OrderRef
    external_order_id: OrderRef

    @property
    def key(self) -> str:
        return order_key(self.store, self.external_order_id)


class CancelRequested(OrderEventIn):
    """`orders.cancel_requested`, key: order key."""

    reason: str | None = Field(default=None, max_length=500)


class BackorderDecision(OrderEventIn):
    """`orders.backorder_decisions`, key: order key."""

    decision: Literal["wait", "substitute", "cancel"]
    substitutions: dict[str, str] = Field(default_factory=dict)


class SkuQuantity(WireModel):
    sku: str = Field(min_length=1, max_length=64)
    quantity: int = Field(ge=1, le=999)


class AftersalesRequested(OrderEventIn):
    """`aftersales.requests`, key: order key."""

    request_id: str = Field(min_length=1, max_length=64)
    kind: AftersalesKind
    lines: list[SkuQuantity] = Field(default_factory=list, max_length=100)
    reason: AftersalesReason
    comment: str | None = Field(default=None, max_length=2000)
    exchange_for: dict[str, str] | None = None


class ReturnedLine(SkuQuantity):
    condition: Literal["resellable", "damaged"]


class ReturnReceived(OrderEventIn):
    """`returns.received`, key: order key."""

    request_id: str = Field(min_length=1, max_length=64)
    lines: list[ReturnedLine] = Field(min_length=1, max_length=100)


class FeedbackGiven(OrderEventIn):
    """`customer.feedback`, key: order key."""

    rating: int = Field(ge=1, le=5)
    comment: str | None = Field(default=None, max_length=4000)


class TrackingUpdated(Event):
    """`carrier.tracking`, key: tracking_number. Ordered by the carrier's `occurred_at`."""

    carrier: str = Field(min_length=1, max_length=64)
    tracking_number: str = Field(min_length=1, max_length=64)
    status: TrackingStatus
    location: str | None = Field(default=None, max_length=200)
    description: str | None = Field(default=None, max_length=500)


# --- outbound ---------------------------------------------------------------------------------

OrderStatusName = Literal[
    "accepted", "rejected", "on_hold", "backordered", "reserved", "packed", "shipped", "delivered",
    "delivery_exception", "cancelled", "return_authorized", "return_rejected", "return_received",
    "refunded",
]


class Reason(WireModel):
    code: str
    message: str


class OrderStatusChanged(Event):
    """`orders.status`, key: order key. Every change of an order's state, in order."""

    order_id: str
    store: str
    external_order_id: str
    status: OrderStatusName
    reasons: list[Reason] = Field(default_factory=list)
    details: dict[str, Any] = Field(default_factory=dict)
    # Additions to the contract (allowed: fields may be added): tracing ids.
    correlation_id: str | None = None
    causation_id: str | None = None


class RefundIssued(Event):
    """`payments.refunds`, key: order key."""

    order_id: str
    store: str
    external_order_id: str
    request_id: str
    amount: Money
    currency: str
    reason: str


class ChargeRequested(Event):
    """`payments.charges`, key: order key. Money the customer owes on top of what was paid (a
    substitute that costs more), for the payment system to collect; one event per charge,
    repeated only with the same `event_id`."""

    order_id: str
    store: str
    external_order_id: str
    charge_id: str
    amount: Money
    currency: str
    reason: str


class CustomerMessage(Event):
    """`customer.messages`, key: order key. A message to the buyer of an order, already written
    in the buyer's language, for the storefront or channel to deliver (a v1.1 addition: the
    console's backorder decisions send one)."""

    store: str
    external_order_id: str
    language: str = Field(max_length=16, description="BCP 47, e.g. zh-CN")
    template: str = Field(max_length=64, description="e.g. backorder.substitute")
    subject: str = Field(max_length=300)
    body: str = Field(max_length=4000)


def money(value: str | int | Decimal) -> Decimal:
    return Decimal(value).quantize(Decimal("0.01"))


RATE_RE = r"^\d{1,12}(\.\d{1,12})?$"
Currency = Annotated[str, Field(pattern=r"^[A-Z]{3}$")]


def _parse_rate(value: Any) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, (str, Decimal)):
        raise ValueError("a rate must be a decimal string such as \"7.1034\", not a number")
    text = str(value)
    if not re.match(RATE_RE, text) or Decimal(text) <= 0:
        raise ValueError(f"a rate must be a positive decimal string, got {text!r}")
    return Decimal(text)


Rate = Annotated[
    Decimal, BeforeValidator(_parse_rate),
    PlainSerializer(lambda d: f"{d.normalize():f}", return_type=str, when_used="always"),
    WithJsonSchema({"type": "string", "pattern": RATE_RE, "examples": ["7.1034"]}),
]


class FxRatesPublished(Event):
    """`fx.rates`, key: base. One unit of `base` is worth `rates[quote]` units of each quote
    currency, as of `as_of`; for each pair the newest `as_of` wins."""

    base: Currency
    rates: dict[Currency, Rate] = Field(min_length=1, max_length=300)
    as_of: AwareDatetime
