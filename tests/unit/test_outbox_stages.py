"""The relay's stages (shared/outbox.py `stages`): a key's rows for another topic wait for the
acknowledgement of its earlier rows, so that what a row causes downstream is appended after it."""

from __future__ import annotations

from typing import Any

from shared.outbox import stages


def row(i: int, topic: str, key: str | None) -> dict[str, Any]:
    return {"id": i, "topic": topic, "key": key}


def ids(staged: list[list[dict[str, Any]]]) -> list[list[int]]:
    return [[r["id"] for r in stage] for stage in staged]


def test_a_status_then_the_next_hops_event_go_in_two_stages() -> None:
    rows = [row(1, "orders.status", "s:1"), row(2, "inventory.stock_reserved", "s:1")]
    assert ids(stages(rows)) == [[1], [2]]


def test_rows_of_one_key_and_topic_stay_together() -> None:
    rows = [row(1, "orders.status", "s:1"), row(2, "orders.status", "s:1"),
            row(3, "orders.status", "s:1")]
    assert ids(stages(rows)) == [[1, 2, 3]]


def test_other_keys_do_not_wait() -> None:
    rows = [row(1, "orders.status", "s:1"), row(2, "inventory.stock_reserved", "s:1"),
            row(3, "orders.status", "s:2"), row(4, "inventory.stock_reserved", "s:2"),
            row(5, "inventory.stock_reserved", "s:3")]
    assert ids(stages(rows)) == [[1, 3, 5], [2, 4]]


def test_each_change_of_topic_is_one_stage_more() -> None:
    # reserved, the hop to fulfillment, then a cancellation forwarded in the same round
    rows = [row(1, "orders.status", "s:1"), row(2, "inventory.stock_reserved", "s:1"),
            row(3, "inventory.order_cancel_forwarded", "s:1"), row(4, "orders.status", "s:1")]
    assert ids(stages(rows)) == [[1], [2], [3], [4]]


def test_rows_without_a_key_have_no_order_to_keep() -> None:
    rows = [row(1, "a", None), row(2, "b", None), row(3, "a", "k"), row(4, "b", None)]
    assert ids(stages(rows)) == [[1, 2, 3, 4]]


def test_every_row_is_in_exactly_one_stage_in_id_order_within_it() -> None:
    topics = ["t1", "t2", "t3"]
    rows = [row(i, topics[(i * 7) % 3], f"k{i % 5}") for i in range(60)]
    staged = stages(rows)
    flat = [r["id"] for stage in staged for r in stage]
    assert sorted(flat) == list(range(60))
    for stage in staged:
        assert [r["id"] for r in stage] == sorted(r["id"] for r in stage)
    # a key's rows never go to an earlier stage than a row of it before them
    where = {r["id"]: n for n, stage in enumerate(staged) for r in stage}
    for a in rows:
        for b in rows:
            if a["key"] == b["key"] and a["id"] < b["id"]:
                assert where[a["id"]] <= where[b["id"]]
                if a["topic"] != b["topic"]:
                    assert where[a["id"]] < where[b["id"]]
