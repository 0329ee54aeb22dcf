"""Offset commits are coalesced (`Consumer._commit_pending`, docs/messaging.md "Offset
commits"): the offsets of handled runs are committed at most every commit interval, at once
when the consumer is idle or stops, only for partitions still assigned, and always the highest
offset handled per partition. The live path (the services' groups committed on the real stack)
is in tests/integration/test_order_flows.py."""

from __future__ import annotations

from typing import Any

from aiokafka import TopicPartition

from shared.messaging import Consumer, Handlers, RawMessage

A = TopicPartition("orders.placed", 0)
B = TopicPartition("orders.placed", 1)


class Broker:
    """Stands in for the aiokafka consumer's two calls the commit path makes."""

    def __init__(self, assigned: set[TopicPartition]) -> None:
        self.assigned = assigned
        self.commits: list[dict[TopicPartition, int]] = []

    def assignment(self) -> set[TopicPartition]:
        return self.assigned

    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        self.commits.append(dict(offsets))


def consumer(interval_ms: int, assigned: set[TopicPartition]) -> tuple[Consumer, Broker]:
    c = Consumer("intake", "localhost:1", None, None, Handlers(),  # type: ignore[arg-type]
                 commit_interval_ms=interval_ms)
    broker = Broker(assigned)
    c.consumer = broker  # type: ignore[assignment]
    return c, broker


def run(*records: tuple[TopicPartition, int]) -> list[RawMessage]:
    return [RawMessage(tp.topic, tp.partition, offset, b"k", b"{}") for tp, offset in records]


async def test_runs_within_the_interval_are_committed_together_at_their_highest_offsets() -> None:
    c, broker = consumer(60_000, {A, B})
    for batch in (run((A, 5), (A, 6)), run((B, 2)), run((A, 7))):
        c._hand_over(batch)
        await c._commit_many(batch)
    assert broker.commits == []  # within the interval: nothing sent yet
    assert c._in_flight == {}  # but handled: no longer counted as lag
    await c._commit_pending(force=True)  # idle, or stopping
    assert broker.commits == [{A: 8, B: 3}]
    await c._commit_pending(force=True)
    assert len(broker.commits) == 1  # nothing new: no request


async def test_once_the_interval_has_passed_the_next_run_commits() -> None:
    c, broker = consumer(60_000, {A})
    await c._commit_many(run((A, 1)))
    c._last_commit -= 61  # the interval has passed
    await c._commit_many(run((A, 2)))
    assert broker.commits == [{A: 3}]


async def test_an_interval_of_zero_commits_after_every_run() -> None:
    c, broker = consumer(0, {A})
    await c._commit_many(run((A, 1)))
    await c._commit_many(run((A, 2)))
    assert broker.commits == [{A: 2}, {A: 3}]


async def test_a_partition_given_up_is_left_to_its_new_owner() -> None:
    c, broker = consumer(60_000, {A, B})
    await c._commit_many(run((A, 1), (B, 9)))
    broker.assigned = {A}  # a rebalance took B away: its new owner re-reads, the inbox drops
    await c._commit_pending(force=True)
    assert broker.commits == [{A: 2}]


async def test_stopping_commits_what_was_handled() -> None:
    c, _ = consumer(60_000, {A})
    await c._commit_many(run((A, 4)))
    stopped: list[Any] = []

    class Client(Broker):
        async def stop(self) -> None:
            stopped.append(len(self.commits))

    client = Client({A})
    c.consumer = client  # type: ignore[assignment]
    await c.stop()
    assert client.commits == [{A: 5}] and stopped == [1]  # committed before the client stopped
