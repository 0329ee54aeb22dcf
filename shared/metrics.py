"""The Prometheus metrics every service exposes (docs/design.md "Metrics").

One process per instance, so the default registry is the service's; Prometheus adds
`job` and `instance`.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from prometheus_client import Counter, Gauge, Histogram

# --- business metrics count what committed -------------------------------------------------
# A handler's counters are bumped inside its transaction; a run that rolls back and is retried
# would count twice. Inside `deferred()` (opened by the consumer around each transaction) the
# bumps are kept and applied only after the commit; outside one (an HTTP request, a timer) they
# apply at once.
_pending: contextvars.ContextVar[list[Callable[[], None]] | None] = contextvars.ContextVar(
    "metrics_pending", default=None)


def _later(fn: Callable[[], None]) -> None:
    pending = _pending.get()
    if pending is None:
        fn()
    else:
        pending.append(fn)


@contextlib.contextmanager
def deferred(uow: Any = None) -> Iterator[list[Callable[[], None]]]:
    """Collect metric updates; the caller runs the returned list after its commit succeeds
    (with a unit of work: they join its after-commit hooks)."""
    updates: list[Callable[[], None]] = uow._after if uow is not None else []
    token = _pending.set(updates)
    try:
        yield updates
    finally:
        _pending.reset(token)


def apply(updates: list[Callable[[], None]]) -> None:
    for fn in updates:
        fn()
    updates.clear()


class _Deferred:
    def __init__(self, target: Any) -> None:
        self._target = target

    def inc(self, amount: float = 1) -> None:
        _later(lambda: self._target.inc(amount))

    def observe(self, value: float) -> None:
        _later(lambda: self._target.observe(value))


class TransactionalCounter(_Deferred):
    """A Counter whose increments inside `deferred()` wait for the commit."""

    def __init__(self, name: str, documentation: str, labelnames: Sequence[str] = ()) -> None:
        super().__init__(Counter(name, documentation, labelnames))

    def labels(self, *values: str) -> _Deferred:
        return _Deferred(self._target.labels(*values))


class TransactionalHistogram(_Deferred):
    """A Histogram whose observations inside `deferred()` wait for the commit."""

    def __init__(self, name: str, documentation: str, labelnames: Sequence[str] = (),
                 buckets: Sequence[float] = Histogram.DEFAULT_BUCKETS) -> None:
        super().__init__(Histogram(name, documentation, labelnames, buckets=buckets))

    def labels(self, *values: str) -> _Deferred:
        return _Deferred(self._target.labels(*values))



EVENTS_CONSUMED = Counter(
    "shopkeeper_events_consumed_total",
    "Events handled, by topic and outcome (ok, duplicate, rejected, dlq)",
    ["topic", "outcome"],
)
EVENTS_PUBLISHED = Counter(
    "shopkeeper_events_published_total", "Events published by the outbox relay", ["topic"]
)
HANDLER_SECONDS = Histogram(
    "shopkeeper_handler_seconds",
    "Time to handle one event, transaction included",
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
ORDER_STATUS = TransactionalCounter(
    "shopkeeper_order_status_total", "Order status changes published, by status and main reason",
    ["status", "reason"],
)
MONEY_REQUESTS = TransactionalCounter(
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
