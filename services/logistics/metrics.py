"""Logistics' business metrics (docs/design.md "Metrics"): parcels by carrier and service, what they
cost, and why parcels stop (held before dispatch, exceptions on the road).

Counted through the unit of work (`uow.count`): after its transaction commits, so a run that rolls
back and is retried counts once. Operating trends, not the ledger (the shipments table is).
"""

from __future__ import annotations

from prometheus_client import Counter

PARCELS_SHIPPED = Counter(
    "shopkeeper_logistics_parcels_shipped_total", "Parcels handed to a carrier",
    ["carrier", "service"],
)
SHIPPING_COST = Counter(
    "shopkeeper_logistics_shipping_cost_total",
    "Carrier cost of the parcels handed over (rate card, surcharges included)",
    ["carrier", "service", "currency"],
)
PARCELS_HELD = Counter(
    "shopkeeper_logistics_parcels_held_total", "Parcels stopped before dispatch, by reason",
    ["reason"],
)
EXCEPTIONS = Counter(
    "shopkeeper_logistics_exceptions_total",
    "Delivery exceptions, by reason (failed_attempt, exception, lost, returned_to_sender,"
    " stalled)",
    ["carrier", "reason"],
)
PARCELS_DELIVERED = Counter(
    "shopkeeper_logistics_parcels_delivered_total",
    "Parcels delivered, and whether within the zone's promised transit days",
    ["carrier", "service", "on_time"],
)
