"""Client-side rate limits: a token bucket per channel (and per operation where the platform
limits operations separately, as Amazon's SP-API does), and reading a 429's `Retry-After`."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime


@dataclass
class TokenBucket:
    """`rate` tokens per second up to `burst`. In-process: N instances of the service each hold
    their own bucket, so the platform may see N times the rate (its 429 is still honoured)."""

    rate: float
    burst: float
    tokens: float = -1.0
    stamp: float = field(default_factory=time.monotonic)
    # A platform's Retry-After holds the whole bucket until then.
    blocked_until: float = 0.0

    def __post_init__(self) -> None:
        if self.tokens < 0:
            self.tokens = self.burst

    def _refill(self, now: float) -> None:
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now

    def delay(self, now: float | None = None) -> float:
        """Seconds to wait before a call may go (0: now); takes the token when 0."""
        now = time.monotonic() if now is None else now
        if now < self.blocked_until:
            return self.blocked_until - now
        self._refill(now)
        if self.tokens >= 1:
            self.tokens -= 1
            return 0.0
        return (1 - self.tokens) / self.rate

    async def acquire(self) -> None:
        wait = self.delay()
        while wait > 0:
            await asyncio.sleep(min(wait, 5.0))
            wait = self.delay()

    def block_for(self, seconds: float, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        self.blocked_until = max(self.blocked_until, now + seconds)
        self.tokens = 0


def retry_after_seconds(value: str | None, default: float, now: float | None = None) -> float:
    """A `Retry-After` header (seconds or an HTTP date) in seconds, capped to 15 minutes."""
    if not value:
        return default
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value).timestamp()
        except (TypeError, ValueError):
            return default
        seconds = when - (time.time() if now is None else now)
    return max(0.0, min(seconds, 900.0))


def backoff(attempt: int, base: float = 2.0, cap: float = 600.0) -> float:
    """Exponential: 2, 4, 8 ... seconds, capped."""
    return float(min(cap, base ** max(1, attempt)))
