"""Reading dead-letter topics (`<topic>.dlq`): what `shopkeeper dlq list|replay` and the console's
Exceptions page both show and replay, in one place.

A replay is recorded as the commits of one consumer group, REPLAY_GROUP, shared by the CLI and
the console: a message replayed by either is below the group's committed offset and is not
replayed again by `shopkeeper dlq replay` (consumers dedupe by event_id anyway).
"""

from __future__ import annotations

import asyncio

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.errors import KafkaError

REPLAY_GROUP = "shopkeeper-dlq-replay"
REPLAYED_FROM = "x-replayed-from"  # header of a replayed message: "<topic>.dlq:<part>:<offset>"


class DlqUnavailable(RuntimeError):
    """Kafka could not be reached, or the dead-letter topic does not exist; the message says
    which."""


async def topic_partitions(consumer: AIOKafkaConsumer, topic: str) -> list[TopicPartition]:
    """Every partition of a topic, waiting for metadata (a fresh consumer knows none yet)."""
    for _ in range(50):
        parts = consumer.partitions_for_topic(topic)
        if parts:
            return [TopicPartition(topic, p) for p in sorted(parts)]
        await consumer._client.force_metadata_update()
        await asyncio.sleep(0.1)
    raise DlqUnavailable(f"topic {topic} not found; is the stack up and the topic registered?")


async def read(bootstrap: str, topic: str, *, group: str | None = None, limit: int = 200,
               offsets: set[tuple[int, int]] | None = None
               ) -> tuple[AIOKafkaConsumer, list[ConsumerRecord[bytes, bytes]]]:
    """Up to `limit` records of `topic`.dlq: from the start (group None) or from `group`'s
    committed position (what it has not replayed yet); with `offsets`, only those
    (partition, offset) pairs. The caller stops the returned consumer (after committing, for a
    replay)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group,
                                enable_auto_commit=False, auto_offset_reset="earliest")
    try:
        await asyncio.wait_for(consumer.start(), 15)
        parts = await topic_partitions(consumer, f"{topic}.dlq")
        consumer.assign(parts)
        if group is None:
            await consumer.seek_to_beginning(*parts)
        ends = await consumer.end_offsets(parts)
        records: list[ConsumerRecord[bytes, bytes]] = []
        while len(records) < limit:
            positions = {tp: await consumer.position(tp) for tp in parts}
            if all(positions[tp] >= ends[tp] for tp in parts):
                break
            batch = await consumer.getmany(timeout_ms=1000, max_records=limit - len(records))
            for recs in batch.values():
                records.extend(r for r in recs
                               if offsets is None or (r.partition, r.offset) in offsets)
        return consumer, records
    except (KafkaError, OSError, TimeoutError) as exc:
        await consumer.stop()
        raise DlqUnavailable(f"cannot read {topic}.dlq ({type(exc).__name__}: {exc});"
                             " is Kafka up?") from None
    except BaseException:
        await consumer.stop()
        raise


async def replayed_positions(bootstrap: str, topic: str) -> dict[int, int]:
    """Per partition of `topic`.dlq, REPLAY_GROUP's committed offset: records below it were
    replayed (by `shopkeeper dlq replay`)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=REPLAY_GROUP,
                                enable_auto_commit=False)
    try:
        await asyncio.wait_for(consumer.start(), 15)
        out: dict[int, int] = {}
        for tp in await topic_partitions(consumer, f"{topic}.dlq"):
            out[tp.partition] = await consumer.committed(tp) or 0
        return out
    except (KafkaError, OSError, TimeoutError) as exc:
        raise DlqUnavailable(f"cannot read the replay positions of {topic}.dlq"
                             f" ({type(exc).__name__})") from None
    finally:
        await consumer.stop()


def origin(topic: str, record: ConsumerRecord[bytes, bytes]) -> str:
    """The `x-replayed-from` reference of a dead letter."""
    return f"{topic}.dlq:{record.partition}:{record.offset}"


def headers(record: ConsumerRecord[bytes, bytes]) -> dict[str, str]:
    return {k: v.decode(errors="replace") for k, v in record.headers}
