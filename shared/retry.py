"""Retrying a start-up step with tenacity: exponential backoff with full jitter, so that many
instances restarted together (a node drained, the whole compose stack up at once) do not knock
on Postgres or Kafka in lockstep.

Used where a step waits for a dependency to come up: the database pool (`shared/db.py`
`connect`) and the Kafka consumer's start (`shared/service.py`). The consumer's and the outbox
relay's retry loops for faults in flight are their own (shared/messaging.py, shared/outbox.py).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from tenacity import RetryCallState
from tenacity.wait import wait_base, wait_random_exponential


def jittered(first: float, cap: float) -> wait_base:
    """Full jitter: the n-th wait is uniform in [0, min(cap, first * 2**n)] seconds."""
    return wait_random_exponential(multiplier=first, max=cap)


def log_before_retry(log: logging.Logger, what: str) -> Callable[[RetryCallState], None]:
    """`before_sleep`: one warning per failed try, with the error and the wait."""
    def before_sleep(state: RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome is not None else None
        wait = state.next_action.sleep if state.next_action is not None else 0.0
        log.warning("%s (try %d: %s); retrying in %.1fs", what, state.attempt_number, error, wait)
    return before_sleep
