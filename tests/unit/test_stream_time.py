"""`shared.messaging.StreamTime`: records of several partitions are handed over in timestamp
order, and held back while a partition that has earlier ones unfetched has none buffered (what
makes a re-read after a restore take the decisions the first reading took)."""

from __future__ import annotations

from typing import Any

from aiokafka import ConsumerRecord, TopicPartition
from aiokafka.structs import OffsetAndTimestamp

from shared.messaging import Consumer, Handlers, StreamTime

ACCEPTED = TopicPartition("intake.order_accepted", 0)
STOCK = TopicPartition("stock.adjustments", 3)
SHIPPED = TopicPartition("logistics.order_shipped", 1)


def rec(tp: TopicPartition, offset: int, ts: int) -> ConsumerRecord[Any, Any]:
    return ConsumerRecord(tp.topic, tp.partition, offset, ts, 0, None, b"{}", None, 0, 2, [])


def seen(records: list[ConsumerRecord[Any, Any]]) -> list[tuple[str, int]]:
    return [(r.topic, r.offset) for r in records]


def test_records_of_several_partitions_come_in_timestamp_order() -> None:
    stream = StreamTime()
    # as a fetch after a rewind returns them: a run of one partition, then of another
    stream.add({STOCK: [rec(STOCK, 0, 100), rec(STOCK, 1, 300)],
                ACCEPTED: [rec(ACCEPTED, 7, 50), rec(ACCEPTED, 8, 200), rec(ACCEPTED, 9, 400)]})
    out = stream.take(set(), 10, now=0)
    assert seen(out) == [("intake.order_accepted", 7), ("stock.adjustments", 0),
                         ("intake.order_accepted", 8), ("stock.adjustments", 1),
                         ("intake.order_accepted", 9)]
    assert stream.buffered() == 0


def test_equal_timestamps_go_by_topic_partition_offset() -> None:
    stream = StreamTime()
    stream.add({STOCK: [rec(STOCK, 4, 100)], ACCEPTED: [rec(ACCEPTED, 9, 100)]})
    assert seen(stream.take(set(), 10, now=0)) == [("intake.order_accepted", 9),
                                                    ("stock.adjustments", 4)]


def test_nothing_is_handed_over_while_a_partition_behind_has_nothing_buffered() -> None:
    stream = StreamTime(max_idle=3.0)
    stream.add({SHIPPED: [rec(SHIPPED, 0, 500)]})
    # the order's acceptance (earlier) is on a partition not fetched yet: the shipment waits
    assert stream.take({ACCEPTED}, 10, now=0) == []
    assert stream.starved({ACCEPTED}, now=1) == {ACCEPTED}
    stream.add({ACCEPTED: [rec(ACCEPTED, 0, 100)]})
    assert seen(stream.take(set(), 10, now=1)) == [("intake.order_accepted", 0),
                                                   ("logistics.order_shipped", 0)]


def test_the_merge_stops_where_a_partition_behind_runs_out() -> None:
    stream = StreamTime()
    stream.add({ACCEPTED: [rec(ACCEPTED, 0, 100)],
                SHIPPED: [rec(SHIPPED, 0, 150), rec(SHIPPED, 1, 900)]})
    # ACCEPTED has more after offset 0 (behind): its next record may come before 150
    out = stream.take({ACCEPTED}, 10, now=0)
    assert seen(out) == [("intake.order_accepted", 0)]
    assert stream.first_offset(SHIPPED) == 0
    assert stream.starved({ACCEPTED}, now=0) == {ACCEPTED}


def test_a_partition_that_delivers_nothing_stops_holding_the_others_after_max_idle() -> None:
    stream = StreamTime(max_idle=3.0)
    stream.add({SHIPPED: [rec(SHIPPED, 0, 500)]})
    assert stream.take({ACCEPTED}, 10, now=10.0) == []
    assert stream.take({ACCEPTED}, 10, now=12.0) == []
    assert seen(stream.take({ACCEPTED}, 10, now=13.5)) == [("logistics.order_shipped", 0)]
    # given up on until it delivers again; then it holds the others once more
    stream.add({SHIPPED: [rec(SHIPPED, 1, 600)]})
    assert seen(stream.take({ACCEPTED}, 10, now=14.0)) == [("logistics.order_shipped", 1)]
    stream.add({ACCEPTED: [rec(ACCEPTED, 0, 100)]})
    stream.take(set(), 10, now=15.0)
    stream.add({SHIPPED: [rec(SHIPPED, 2, 700)]})
    assert stream.take({ACCEPTED}, 10, now=15.5) == []


def test_the_limit_and_partition_order_are_kept() -> None:
    stream = StreamTime()
    stream.add({STOCK: [rec(STOCK, o, 10 * o) for o in range(5)]})
    assert [r.offset for r in stream.take(set(), 3, now=0)] == [0, 1, 2]
    assert [r.offset for r in stream.take(set(), 3, now=0)] == [3, 4]


def test_a_reset_partition_and_a_revoked_one_are_dropped() -> None:
    stream = StreamTime()
    stream.add({STOCK: [rec(STOCK, 5, 10), rec(STOCK, 6, 20)], ACCEPTED: [rec(ACCEPTED, 1, 5)]})
    stream.add({STOCK: [rec(STOCK, 3, 1)]})  # re-read from an earlier commit after a rebalance
    assert stream.first_offset(STOCK) == 3 and stream.buffered() == 2
    stream.retain({STOCK})
    assert stream.first_offset(ACCEPTED) is None
    assert seen(stream.take(set(), 10, now=0)) == [("stock.adjustments", 3)]


def test_catching_up_means_records_left_and_the_newest_handled_is_old() -> None:
    import time

    from shared.messaging import CATCH_UP_SECONDS, Consumer, Handlers
    consumer = Consumer("fulfillment", "localhost:1", None, None, Handlers())  # type: ignore[arg-type]
    assert consumer.catching_up  # not polled yet: nothing known
    consumer.started = True
    consumer._more_to_read = False
    assert not consumer.catching_up  # caught up (idle: the newest handled may be old)
    consumer._more_to_read = True
    consumer.stream_time_ms = int((time.time() - CATCH_UP_SECONDS - 60) * 1000)
    assert consumer.catching_up  # re-reading records a minute older than the threshold
    consumer.stream_time_ms = int(time.time() * 1000)
    assert not consumer.catching_up  # live, with a little lag


def test_a_commutative_service_gets_one_segment_per_topic_each_in_the_order_handed_over() -> None:
    """Analytics' handlers do not depend on the order across topics (Handlers.commutative): a
    run interleaving topics gives each handler one call with all of its topic's events, in the
    order they were handed over; a service that keeps the order gets the consecutive stretches."""
    from shared.contracts import OrderStatusChanged
    from shared.messaging import RawMessage, _segments

    def item(tp: TopicPartition, offset: int) -> tuple[RawMessage, Any]:
        event = OrderStatusChanged(order_id="00000000-0000-4000-8000-000000000001",
                                   store="s", external_order_id=str(offset), status="accepted")
        return RawMessage.of(rec(tp, offset, 100 + offset)), event

    run = [item(SHIPPED, 0), item(ACCEPTED, 1), item(SHIPPED, 2), item(STOCK, 3),
           item(ACCEPTED, 4)]
    grouped = [(topic, [raw.offset for raw, _ in seg]) for topic, seg in
               _segments(run, by_topic=True)]
    assert grouped == [("intake.order_accepted", [1, 4]), ("logistics.order_shipped", [0, 2]),
                       ("stock.adjustments", [3])]
    kept = [(topic, [raw.offset for raw, _ in seg]) for topic, seg in _segments(run)]
    assert kept == [("logistics.order_shipped", [0]), ("intake.order_accepted", [1]),
                    ("logistics.order_shipped", [2]), ("stock.adjustments", [3]),
                    ("intake.order_accepted", [4])]


class _Partitions:
    """A consumer's positions and high-water marks, and the broker's ends, as `_behind` asks."""

    def __init__(self, positions: dict[TopicPartition, int]) -> None:
        self.positions = dict(positions)
        self.ends = dict(positions)
        self.asked = 0

    def assignment(self) -> set[TopicPartition]:
        return set(self.positions)

    def highwater(self, tp: TopicPartition) -> int:
        return self.positions[tp]  # the last fetch's mark: stale, nothing new seen

    async def position(self, tp: TopicPartition) -> int:
        return self.positions[tp]

    async def end_offsets(self, parts: list[TopicPartition]) -> dict[TopicPartition, int]:
        self.asked += 1
        return {tp: self.ends[tp] for tp in parts}

    # what `_unheard` asks besides: when each partition was last fetched, and the first offset
    # at or after a time (from the timestamps of the records appended, `self.appended`)
    polled: dict[TopicPartition, int]
    appended: dict[TopicPartition, list[int]]

    def last_poll_timestamp(self, tp: TopicPartition) -> int:
        return self.polled[tp]

    async def offsets_for_times(self, times: dict[TopicPartition, int]) -> dict[TopicPartition,
                                                                                Any]:
        self.asked_times = getattr(self, "asked_times", 0) + 1
        out: dict[TopicPartition, Any] = {}
        for tp, t in times.items():
            stamps = self.appended.get(tp, [])
            offset = next((i for i, ts in enumerate(stamps) if ts >= t), None)
            out[tp] = None if offset is None else OffsetAndTimestamp(offset, stamps[offset])
        return out


async def test_the_ends_are_asked_again_only_once_the_partitions_reach_them() -> None:
    """Given records waiting (fresh ends wanted) and one partition with records appended since
    its last fetch, when the consumer looks again before that partition is fetched up to the
    ends it learnt, while records keep being appended, then it waits for those ends only (not
    for what was appended since), and asks the broker again only once they are reached."""
    consumer = Consumer("t", "localhost:1", None, None, Handlers())  # type: ignore[arg-type]
    parts = _Partitions({ACCEPTED: 5, STOCK: 9})
    consumer.consumer = consumer._ends = parts
    parts.ends[STOCK] = 10
    assigned = {ACCEPTED, STOCK}
    assert await consumer._behind(assigned, fresh=True) == {STOCK}
    parts.ends.update({STOCK: 12, ACCEPTED: 6})  # appended since: not waited for
    assert await consumer._behind(assigned, fresh=True) == {STOCK}
    assert parts.asked == 1
    parts.positions[STOCK] = 10  # fetched up to what was asked
    assert await consumer._behind(assigned, fresh=True) == {ACCEPTED, STOCK}
    assert parts.asked == 2
    assert await consumer._behind(assigned, fresh=False) == set()  # live: the fetched marks


async def test_a_partition_last_fetched_before_the_records_waiting_is_asked_for_older_ones() -> None:
    """Given the cancellation (t=205) fetched, and the acceptance (t=185) appended to a partition
    whose last fetch (t=150) came before it and which has nothing buffered, then that partition
    counts as behind until fetched: the cancellation waits for the acceptance. Once asked, a
    partition holding only newer records (t=300) is not waited for, and is not asked again for
    records no newer than the question."""
    cancels = TopicPartition("intake.order_cancel_requested", 0)
    consumer = Consumer("t", "localhost:1", None, None, Handlers())  # type: ignore[arg-type]
    parts = _Partitions({ACCEPTED: 4, cancels: 2, STOCK: 9})
    consumer.consumer = consumer._ends = parts
    parts.polled = {ACCEPTED: 150, cancels: 10_000_000_000_000, STOCK: 10_000_000_000_000}
    parts.appended = {ACCEPTED: [100, 110, 120, 130, 185], cancels: [90, 95, 205]}
    parts.ends.update({ACCEPTED: 5, cancels: 3})
    consumer.stream.add({cancels: [rec(cancels, 2, 205)]})
    assigned = {ACCEPTED, cancels, STOCK}
    assert await consumer._behind(assigned, fresh=False) == set()  # the fetched marks: stale
    assert await consumer._unheard(assigned, set()) == {ACCEPTED}
    assert consumer.stream.take({ACCEPTED}, 10, now=0) == []  # the cancellation waits

    # fetched: the acceptance comes first
    parts.positions[ACCEPTED] = 5
    consumer.stream.add({ACCEPTED: [rec(ACCEPTED, 4, 185)]})
    assert await consumer._unheard(assigned, set()) == set()
    assert seen(consumer.stream.take(set(), 10, now=0)) == [("intake.order_accepted", 4),
                                                            ("intake.order_cancel_requested", 2)]

    # later: only a newer record (t=300) is unfetched there: not waited for, asked once
    parts.appended[ACCEPTED].append(300)
    parts.ends[ACCEPTED] = 6
    consumer.stream.add({cancels: [rec(cancels, 3, 250)]})
    asked = parts.asked
    assert await consumer._unheard(assigned, set()) == set()
    assert parts.asked == asked + 1
    assert await consumer._unheard(assigned, set()) == set()
    assert parts.asked == asked + 1  # answered for everything up to t=250 already
