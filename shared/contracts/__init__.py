"""Event models: the public contract (`public`) and our internal events (`internal`)."""

from .common import Event, Money, WireModel, new_id, order_key, utcnow
from .internal import (
    Allocation,
    CarrierScoreComputed,
    CoverageChanged,
    InternalEvent,
    OrderAccepted,
    OrderCancelled,
    OrderCancelRefused,
    OrderCancelRequested,
    OrderDelivered,
    OrderEvent,
    OrderPacked,
    OrderShipped,
    OrderSnapshot,
    Parcel,
    ParcelLost,
    ReturnRestocked,
    ShippedParcel,
    StockReserved,
)
from .public import (
    Address,
    AftersalesRequested,
    BackorderDecision,
    CancelRequested,
    Customer,
    FeedbackGiven,
    OrderLine,
    OrderPlaced,
    OrderStatusChanged,
    ProductUpserted,
    Reason,
    RefundIssued,
    ReturnReceived,
    SkuQuantity,
    StockAdjusted,
    Totals,
    TrackingUpdated,
)

__all__ = [
    "Address", "AftersalesRequested", "Allocation", "BackorderDecision", "CancelRequested",
    "CoverageChanged", "Customer", "Event", "FeedbackGiven", "InternalEvent", "Money",
    "OrderAccepted", "OrderCancelRefused", "OrderCancelRequested", "OrderCancelled",
    "OrderDelivered", "OrderEvent", "OrderLine", "OrderPacked", "OrderPlaced", "OrderShipped",
    "OrderSnapshot", "OrderStatusChanged", "Parcel", "ProductUpserted", "Reason", "RefundIssued",
    "ReturnReceived", "ReturnRestocked", "ShippedParcel", "SkuQuantity", "StockAdjusted",
    "StockReserved", "Totals", "TrackingUpdated", "WireModel", "new_id", "order_key", "utcnow",
]
# logistics
__all__ += ["CarrierScoreComputed", "ParcelLost"]
# fulfillment
from .internal import ShortPicked  # noqa: E402

__all__ += ["ShortPicked"]
