"""The Prometheus metrics every service exposes (docs/design.md "Metrics").

One process per instance, so the default registry is the service's; Prometheus adds
`job` and `instance`.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

# Business metrics count what committed: a handler bumps them through its unit of work
# (`uow.count`, `uow.observe`: after-commit hooks), so a run rolled back and retried counts once.
EVENTS_CONSUMED = Counter(
    "shopkeeper_events_consumed_total",
    "Events handled, by topic and outcome (ok, duplicate, skipped, rejected, dlq)",
    ["topic", "outcome"],
)
EVENTS_PUBLISHED = Counter(
    "shopkeeper_events_published_total", "Events published by the outbox relay", ["topic"]
)
HANDLER_SECONDS = Histogram(
    "shopkeeper_handler_seconds",
    "Time a handler took for its events of one run (one observation per handler call)",
    ["topic"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
HANDLER_RETRIES = Counter(
    "shopkeeper_handler_retries_total", "Handler attempts that failed and were retried",
    ["topic", "kind"],
)
OUTBOX_PENDING = Gauge("shopkeeper_outbox_pending", "Outbox rows not yet published")
OUTBOX_OLDEST_SECONDS = Gauge(
    "shopkeeper_outbox_oldest_seconds", "Age of the oldest unpublished outbox row"
)
CONSUMER_LAG = Gauge("shopkeeper_consumer_lag", "Messages behind the end of the log", ["topic"])
CONSUMER_STALLED = Gauge(
    "shopkeeper_consumer_stalled", "1 when the consumer has lag and makes no progress"
)
DLQ_TOTAL = Counter("shopkeeper_dlq_total", "Messages sent to a dead-letter topic", ["topic"])
ORDER_STATUS = Counter(
    "shopkeeper_order_status_total", "Order status changes published, by status and main reason",
    ["status", "reason"],
)
MONEY_REQUESTS = Counter(
    "shopkeeper_payment_requests_total",
    "Refund and charge requests sent to the payment system (payments.refunds, payments.charges)",
    ["kind", "reason"],
)
CONSUMER_BLOCKED = Gauge(
    "shopkeeper_consumer_blocked",
    "1 while the consumer retries an infrastructure fault (Postgres or Kafka away, disk full,"
    " read-only): nothing is committed or dead-lettered meanwhile",
)
OUTBOX_QUARANTINED = Gauge(
    "shopkeeper_outbox_quarantined",
    "Outbox rows the broker refused for good (too large, invalid) and that are kept aside",
)
CLOCK_SKEW_CLAMPED = Counter(
    "shopkeeper_clock_skew_clamped_total",
    "Events whose occurred_at was too far ahead of this clock and was clamped to the time"
    " received", ["topic"],
)
DLQ_TRUNCATED = Counter(
    "shopkeeper_dlq_truncated_total",
    "Dead letters whose value was cut to fit the broker's record size limit", ["topic"],
)
