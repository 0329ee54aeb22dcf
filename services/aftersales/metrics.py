"""Aftersales' business metrics (docs/design.md "Metrics"): requests by kind, reason and outcome,
refund amounts, time from request to refund, replacement orders, feedback tags.

Plain prometheus_client metrics, counted through the unit of work (`uow.count`, `uow.observe`):
after commit, so a rolled-back, retried run counts once. The requests and refunds tables are the
ledger, these are trends."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

REQUESTS = Counter("shopkeeper_aftersales_requests_total",
                   "After-sales requests by kind, reason and first outcome",
                   ["kind", "reason", "outcome"])
REFUNDS = Counter("shopkeeper_aftersales_refunds_total", "Refunds issued", ["kind", "reason"])
REFUND_AMOUNT = Counter("shopkeeper_aftersales_refund_amount_total", "Money refunded",
                        ["currency"])
TIME_TO_REFUND = Histogram("shopkeeper_aftersales_time_to_refund_seconds",
                           "From the request to its refund",
                           buckets=(1, 10, 60, 600, 3600, 6 * 3600, 86400, 3 * 86400, 7 * 86400,
                                    14 * 86400, 30 * 86400))
REPLACEMENTS = Counter("shopkeeper_aftersales_replacement_orders_total",
                       "Replacement orders (exchange, reship)", ["kind", "source"])
GRADES = Counter("shopkeeper_aftersales_returned_units_total", "Returned units by grade",
                 ["grade"])
FEEDBACK = Counter("shopkeeper_aftersales_feedback_total", "Feedback by rating", ["rating"])
FEEDBACK_TAGS = Counter("shopkeeper_aftersales_feedback_tags_total", "Feedback tags", ["tag"])
FOLLOW_UPS = Counter("shopkeeper_aftersales_follow_ups_total", "Follow-up cases opened")
FOLLOW_UPS_CLOSED = Counter(
    "shopkeeper_aftersales_follow_ups_closed_total", "Follow-up cases closed", ["resolution"])
