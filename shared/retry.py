"""Retrying a start-up step with tenacity: exponential backoff with full jitter, so that many
instances restarted together (a node drained, the whole compose stack up at once) do not knock
on Postgres or Kafka in lockstep.

Used where a step waits for a dependency to come up: the database pool (`shared/db.py`
`connect`), the Kafka consumer's start (`shared/service.py`), and where a loop must come back
forever (the outbox relay, shared/outbox.py). The consumer's loops for faults in flight
(shared/messaging.py) classify each failure (transient: forever, nothing committed; a data
error: counted toward the DLQ) and do async work between tries, so they keep their own loop and
take their waits from `Backoff`, the same full jitter.
"""

from __future__ import annotations

import logging
import random
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


class Backoff:
    """The waits of a hand-written retry loop, with the same full jitter as `jittered`: the n-th
    `next()` is uniform in [0, min(cap, first * 2**n)]; `reset()` after a success."""

    def __init__(self, first: float, cap: float) -> None:
        self.first, self.cap, self.tries = first, cap, 0

    def next(self) -> float:
        ceiling = min(self.cap, self.first * 2 ** min(self.tries, 32))
        self.tries += 1
        return random.uniform(0, ceiling)

    def reset(self) -> None:
        self.tries = 0
