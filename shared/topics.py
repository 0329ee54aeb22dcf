"""One registry of every topic: its name, key, value type and producer (cf. Confluent's Schemas).

`make up` creates exactly these (plus a `.dlq` for each) with auto-create off, so a typo in a topic
name fails loudly instead of creating a topic nobody reads.
"""

from __future__ import annotations

from dataclasses import dataclass

from . import contracts as c

KB = 1024


@dataclass(frozen=True)
class Topic:
    name: str
    key: str
    model: type[c.WireModel]
    producer: str  # "outside" for inbound contract topics, else the owning service
    public: bool
    # The largest value a consumer takes (docs/contract.md "Sizes"); over it: `too_large`.
    max_bytes: int = 1_000_000

    @property
    def dlq(self) -> str:
        return dlq_name(self.name)

    def __str__(self) -> str:
        return self.name


def dlq_name(topic: str) -> str:
    return f"{topic}.dlq"


# Public contract: inbound
CATALOG_PRODUCTS = Topic("catalog.products", "sku", c.ProductUpserted, "outside", True, 64 * KB)
STOCK_ADJUSTMENTS = Topic("stock.adjustments", "sku", c.StockAdjusted, "outside", True, 16 * KB)
ORDERS_PLACED = Topic("orders.placed", "order key", c.OrderPlaced, "outside", True, 256 * KB)
ORDERS_CANCEL_REQUESTED = Topic(
    "orders.cancel_requested", "order key", c.CancelRequested, "outside", True, 16 * KB
)
ORDERS_BACKORDER_DECISIONS = Topic(
    "orders.backorder_decisions", "order key", c.BackorderDecision, "outside", True, 64 * KB
)
AFTERSALES_REQUESTS = Topic(
    "aftersales.requests", "order key", c.AftersalesRequested, "outside", True, 64 * KB
)
RETURNS_RECEIVED = Topic("returns.received", "order key", c.ReturnReceived, "outside", True, 64 * KB)
CUSTOMER_FEEDBACK = Topic("customer.feedback", "order key", c.FeedbackGiven, "outside", True, 64 * KB)
CARRIER_TRACKING = Topic("carrier.tracking", "tracking_number", c.TrackingUpdated, "outside", True, 16 * KB)
# Exchange rates, from the seller's finance system or `POST /fx/rates` on intake.
FX_RATES = Topic("fx.rates", "base", c.FxRatesPublished, "outside", True, 64 * KB)
# Public contract: outbound
ORDERS_STATUS = Topic("orders.status", "order key", c.OrderStatusChanged, "shopkeeper", True)
PAYMENTS_REFUNDS = Topic("payments.refunds", "order key", c.RefundIssued, "shopkeeper", True)
# Beyond v1.1: money the customer owes on top (a dearer substitute).
PAYMENTS_CHARGES = Topic("payments.charges", "order key", c.ChargeRequested, "shopkeeper", True)
# v1.1 addition: messages to the buyer, in the buyer's language, for the storefront to deliver.
CUSTOMER_MESSAGES = Topic("customer.messages", "order key", c.CustomerMessage, "console", True)

# Internal
INTAKE_ORDER_ACCEPTED = Topic("intake.order_accepted", "order key", c.OrderAccepted, "intake", False)
INTAKE_ORDER_CANCEL_REQUESTED = Topic(
    "intake.order_cancel_requested", "order key", c.OrderCancelRequested, "intake", False
)
INVENTORY_ORDER_CANCEL_FORWARDED = Topic(
    "inventory.order_cancel_forwarded", "order key", c.OrderCancelRequested, "inventory", False
)
FULFILLMENT_ORDER_CANCEL_FORWARDED = Topic(
    "fulfillment.order_cancel_forwarded", "order key", c.OrderCancelRequested, "fulfillment", False
)
INVENTORY_ORDER_CANCELLED = Topic(
    "inventory.order_cancelled", "order key", c.OrderCancelled, "inventory", False
)
FULFILLMENT_ORDER_CANCELLED = Topic(
    "fulfillment.order_cancelled", "order key", c.OrderCancelled, "fulfillment", False
)
LOGISTICS_ORDER_CANCELLED = Topic(
    "logistics.order_cancelled", "order key", c.OrderCancelled, "logistics", False
)
LOGISTICS_ORDER_CANCEL_REFUSED = Topic(
    "logistics.order_cancel_refused", "order key", c.OrderCancelRefused, "logistics", False
)
INVENTORY_STOCK_RESERVED = Topic(
    "inventory.stock_reserved", "order key", c.StockReserved, "inventory", False
)
FULFILLMENT_ORDER_PACKED = Topic(
    "fulfillment.order_packed", "order key", c.OrderPacked, "fulfillment", False
)
LOGISTICS_ORDER_SHIPPED = Topic(
    "logistics.order_shipped", "order key", c.OrderShipped, "logistics", False
)
LOGISTICS_ORDER_DELIVERED = Topic(
    "logistics.order_delivered", "order key", c.OrderDelivered, "logistics", False
)
# Every owner of shop setup (shared/setup.py): one entry changed, for the services keeping a copy.
SETUP_CHANGED = Topic("setup.changed", "{kind}:{key}", c.SetupChanged, "shopkeeper", False, 256 * KB)
LOGISTICS_COVERAGE_CHANGED = Topic(
    "logistics.coverage_changed", "'coverage'", c.CoverageChanged, "logistics", False
)
AFTERSALES_RETURN_RESTOCKED = Topic(
    "aftersales.return_restocked", "order key", c.ReturnRestocked, "aftersales", False
)
# logistics: lost parcels for aftersales to reship.
LOGISTICS_PARCEL_LOST = Topic(
    "logistics.parcel_lost", "order key", c.ParcelLost, "logistics", False
)
# analytics: feedback loops (advisory; the consumers decide)
ANALYTICS_CARRIER_SCORES = Topic(
    "analytics.carrier_scores", "carrier", c.CarrierScored, "analytics", False
)
ANALYTICS_REORDER_HINTS = Topic(
    "analytics.reorder_hints", "sku", c.ReorderHinted, "analytics", False
)
# inventory
INVENTORY_STOCK_LOW = Topic("inventory.stock_low", "sku", c.StockLow, "inventory", False)
# aftersales: replacement orders (exchange, reship) skip intake's review and go straight to
# inventory; return labels through logistics; refurbish and scrap grades.
AFTERSALES_REPLACEMENT_ORDERED = Topic(
    "aftersales.replacement_ordered", "order key", c.OrderAccepted, "aftersales", False
)
AFTERSALES_RETURN_LABEL_REQUESTED = Topic(
    "aftersales.return_label_requested", "order key", c.ReturnLabelRequested, "aftersales", False
)
LOGISTICS_RETURN_LABEL_ISSUED = Topic(
    "logistics.return_label_issued", "order key", c.ReturnLabelIssued, "logistics", False
)
AFTERSALES_RETURN_GRADED = Topic(
    "aftersales.return_graded", "order key", c.ReturnGraded, "aftersales", False
)
# fulfillment: a short pick, for inventory to re-allocate the missing units.
FULFILLMENT_SHORT_PICKED = Topic(
    "fulfillment.short_picked", "order key", c.ShortPicked, "fulfillment", False
)
# logistics: a parcel back at the warehouse (returned to sender), for aftersales to restock and
# refund; intake: a cancellation that came after shipping, for aftersales to open a return.
LOGISTICS_PARCEL_RETURNED = Topic(
    "logistics.parcel_returned", "order key", c.ParcelReturned, "logistics", False
)
INTAKE_ORDER_CANCEL_REFUSED = Topic(
    "intake.order_cancel_refused", "order key", c.OrderCancelRefused, "intake", False
)

ALL: tuple[Topic, ...] = tuple(v for v in list(globals().values()) if isinstance(v, Topic))
BY_NAME: dict[str, Topic] = {t.name: t for t in ALL}


def all_topic_names() -> list[str]:
    """Every topic the stack must have, DLQs included."""
    return [n for t in ALL for n in (t.name, t.dlq)]
