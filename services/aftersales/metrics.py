"""Aftersales' business metrics (docs/design.md "Metrics"): requests by kind, reason and outcome,
refund amounts, time from request to refund, replacement orders, feedback tags.

Counted inside the handler's transaction: a rolled-back, retried transaction counts twice (rare,
faults only); the requests and refunds tables are the ledger, these are trends."""

from __future__ import annotations

from shared.metrics import TransactionalCounter, TransactionalHistogram

REQUESTS = TransactionalCounter("shopkeeper_aftersales_requests_total",
                   "After-sales requests by kind, reason and first outcome",
                   ["kind", "reason", "outcome"])
REFUNDS = TransactionalCounter("shopkeeper_aftersales_refunds_total", "Refunds issued", ["kind", "reason"])
REFUND_AMOUNT = TransactionalCounter("shopkeeper_aftersales_refund_amount_total", "Money refunded",
                        ["currency"])
TIME_TO_REFUND = TransactionalHistogram("shopkeeper_aftersales_time_to_refund_seconds",
                           "From the request to its refund",
                           buckets=(1, 10, 60, 600, 3600, 6 * 3600, 86400, 3 * 86400, 7 * 86400,
                                    14 * 86400, 30 * 86400))
REPLACEMENTS = TransactionalCounter("shopkeeper_aftersales_replacement_orders_total",
                       "Replacement orders (exchange, reship)", ["kind", "source"])
GRADES = TransactionalCounter("shopkeeper_aftersales_returned_units_total", "Returned units by grade",
                 ["grade"])
FEEDBACK = TransactionalCounter("shopkeeper_aftersales_feedback_total", "Feedback by rating", ["rating"])
FEEDBACK_TAGS = TransactionalCounter("shopkeeper_aftersales_feedback_tags_total", "Feedback tags", ["tag"])
FOLLOW_UPS = TransactionalCounter("shopkeeper_aftersales_follow_ups_total", "Follow-up cases opened")
FOLLOW_UPS_CLOSED = TransactionalCounter(
    "shopkeeper_aftersales_follow_ups_closed_total", "Follow-up cases closed", ["resolution"])
