"""Retries (shared/retry.py): start-up steps with jittered exponential backoff, a bounded number
of tries or time, the last error raised, one warning per try; the outbox relay that always comes
back; the jittered waits of the consumer's own loops."""

from __future__ import annotations

import asyncio
import logging
import socket
from typing import Any

import pytest
from aiokafka.errors import KafkaConnectionError
from tenacity import AsyncRetrying, RetryCallState
from tenacity.wait import wait_none

from shared import service
from shared.db import connect
from shared.outbox import OutboxRelay
from shared.retry import Backoff, jittered


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


def test_backoff_of_a_hand_written_loop_is_jittered_capped_and_resets() -> None:
    backoff = Backoff(0.1, 1.0)
    for ceiling in (0.1, 0.2, 0.4, 0.8, 1.0, 1.0):
        samples = []
        for _ in range(100):
            copy = Backoff(0.1, 1.0)
            copy.tries = backoff.tries
            samples.append(copy.next())
        assert all(0 <= s <= ceiling for s in samples), ceiling
        assert len({round(s, 6) for s in samples}) > 80, "full jitter: waits differ"
        backoff.next()
    backoff.reset()
    assert all(Backoff(0.1, 1.0).next() <= 0.1 for _ in range(50))
    assert 0 <= backoff.next() <= 0.1


class FakeProducer:
    def __init__(self) -> None:
        self.resets = 0

    async def reset(self) -> None:
        self.resets += 1


async def test_the_outbox_relay_comes_back_after_any_interruption(
        caplog: pytest.LogCaptureFixture) -> None:
    producer = FakeProducer()
    relay = OutboxRelay(None, "postgresql://unused", "intake", producer)  # type: ignore[arg-type]
    leading = asyncio.Event()
    failures = [KafkaConnectionError("broker gone"), OSError("connection reset by peer")]

    async def lead() -> None:
        if failures:
            raise failures.pop(0)
        relay.is_leader = True
        leading.set()
        await asyncio.Event().wait()  # leads until cancelled

    relay._lead = lead  # type: ignore[method-assign]
    with caplog.at_level(logging.WARNING, logger="shared.outbox"):
        relay.start()
        await asyncio.wait_for(leading.wait(), 10)
        await relay.stop()
    warnings = [r.getMessage() for r in caplog.records if "interrupted" in r.getMessage()]
    assert len(warnings) == 2 and "KafkaConnectionError" in warnings[0]
    assert "OSError: connection reset by peer" in relay.last_error  # type: ignore[operator]
    assert producer.resets == 1, "the producer is reset after a Kafka error only"
