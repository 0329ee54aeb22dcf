"""Fulfillment's business metrics (docs/design.md "Metrics"): wave sizes, lines picked, refused scans,
short picks, QC holds and weigh-check failures, merged parcels.

Counted through the unit of work (`uow.count`, `uow.observe`): after its transaction commits, so a
pass or request that rolls back and is retried counts once. Operating trends; the tables are the
ledger.
"""

from __future__ import annotations

from prometheus_client import Counter, Histogram

WAVE_SIZE = Histogram(
    "shopkeeper_fulfillment_wave_size", "Orders per released wave, by warehouse", ["warehouse"],
    buckets=(1, 2, 5, 10, 20, 50, 100, 200),
)
LINES_PICKED = Counter(
    "shopkeeper_fulfillment_lines_picked_total",
    "Pick-list lines (one SKU consolidated across a wave) released, by warehouse", ["warehouse"],
)
UNITS_VERIFIED = Counter(
    "shopkeeper_fulfillment_units_verified_total", "Units scanned and accepted", ["warehouse"],
)
SCANS_REFUSED = Counter(
    "shopkeeper_fulfillment_scans_refused_total", "Scans refused, by reason code", ["reason"],
)
SHORT_PICKS = Counter(
    "shopkeeper_fulfillment_short_picks_total", "Lines found short at the bin", ["warehouse"],
)
QC_FAILURES = Counter(
    "shopkeeper_fulfillment_qc_failures_total",
    "Orders put on QC hold (no label), by reason (qc_weight: the weigh check)", ["reason"],
)
WEIGH_CHECK_FAILURES = Counter(
    "shopkeeper_fulfillment_weigh_check_failures_total",
    "Weighings outside the tolerance", ["warehouse"],
)
PARCELS_PACKED = Counter(
    "shopkeeper_fulfillment_parcels_packed_total", "Parcels packed, by box", ["box"],
)
MERGED_PARCELS = Counter(
    "shopkeeper_fulfillment_merged_parcels_total",
    "Parcels that carry more than one order of a buyer", ["warehouse"],
)
