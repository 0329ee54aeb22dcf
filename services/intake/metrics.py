"""Intake's business metrics (besides the shared ones): decisions, holds, duplicates. Counted
after commit through the unit of work (`uow.count`, `uow.observe`): a rolled-back run counts
nothing."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

DECISIONS = Counter(
    "shopkeeper_intake_decisions_total",
    "Review decisions that changed an order, by outcome and reason code (one per reason; an"
    " accepted order counts once with reason \"\")",
    ["outcome", "reason"],
)
HOLD_AGE = Histogram(
    "shopkeeper_hold_age_seconds", "How long a hold was open when it closed, by resolution",
    ["resolution"],
    buckets=(1, 10, 60, 300, 900, 1800, 3600, 4 * 3600, 12 * 3600, 24 * 3600, 3 * 86400),
)
DUPLICATE_HITS = Counter(
    "shopkeeper_duplicate_hits_total",
    "Orders found to repeat an earlier one (suspected_duplicate) or to share its buyer and"
    " address (merge_candidate)", ["kind"],
)
HOLDS_OPEN = Gauge("shopkeeper_holds_open", "Orders on hold now")
HOLD_OLDEST_SECONDS = Gauge("shopkeeper_hold_oldest_seconds", "Age of the oldest open hold")
HOLD_SLA_BREACHES = Counter(
    "shopkeeper_hold_sla_breaches_total", "Holds that outlived their store's SLA", ["store"]
)
