"""Start-up retries (shared/retry.py): jittered exponential backoff, a bounded number of tries
or time, the last error raised, one warning per try."""

from __future__ import annotations

import logging
import socket
from typing import Any

import pytest
from tenacity import AsyncRetrying, RetryCallState
from tenacity.wait import wait_none

from shared import service
from shared.db import connect
from shared.retry import jittered


def state(attempt: int) -> RetryCallState:
    s = RetryCallState(AsyncRetrying(), fn=None, args=(), kwargs={})
    s.attempt_number = attempt
    return s


def test_waits_are_jittered_and_capped() -> None:
    wait = jittered(0.5, 5.0)
    for attempt, ceiling in ((1, 0.5), (2, 1.0), (3, 2.0), (4, 4.0), (5, 5.0), (30, 5.0)):
        samples = [wait(state(attempt)) for _ in range(200)]
        assert all(0 <= s <= ceiling for s in samples), attempt
        assert len({round(s, 6) for s in samples}) > 150, "full jitter: waits differ"


class FlakyConsumer:
    def __init__(self, failures: int) -> None:
        self.failures, self.starts, self.stops = failures, 0, 0

    async def start(self) -> None:
        self.starts += 1
        if self.starts <= self.failures:
            raise ConnectionError("broker not available")

    async def stop(self) -> None:
        self.stops += 1


async def test_the_consumer_start_is_retried_and_cleaned_up_between_tries(
        caplog: pytest.LogCaptureFixture) -> None:
    consumer = FlakyConsumer(failures=3)
    with caplog.at_level(logging.WARNING, logger="shared.service"):
        await service._start_with_retry(consumer, wait=wait_none())  # type: ignore[arg-type]
    assert (consumer.starts, consumer.stops) == (4, 3)
    tries = [r.getMessage() for r in caplog.records if "Kafka not reachable yet" in r.getMessage()]
    assert len(tries) == 3 and "try 1: broker not available" in tries[0]


async def test_the_consumer_start_gives_up_with_the_last_error(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(service, "START_ATTEMPTS", 4)
    consumer = FlakyConsumer(failures=100)
    with pytest.raises(ConnectionError, match="broker not available"):
        await service._start_with_retry(consumer, wait=wait_none())  # type: ignore[arg-type]
    assert consumer.starts == 4


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


async def test_connect_retries_an_unreachable_postgres_then_raises(
        caplog: pytest.LogCaptureFixture) -> None:
    dsn = f"postgresql://nobody:x@127.0.0.1:{_closed_port()}/none"
    with caplog.at_level(logging.WARNING, logger="shared.db"), pytest.raises(OSError):
        await connect(dsn, "intake", wait_seconds=1.0)
    tries: list[Any] = [r for r in caplog.records if "Postgres not reachable yet" in r.getMessage()]
    assert tries and "for intake (try 1:" in tries[0].getMessage()
