"""shared.uow.UnitOfWork without a database: its memo (reference data read once, read again after
a writer forgets it), ids derived from the cause, and metrics that count only what committed. The
unit of work against Postgres and the consumer: tests/integration/test_unit_of_work.py."""

from __future__ import annotations

import json
from typing import Any

from prometheus_client import Counter

from shared.contracts import OrderStatusChanged, derived_id
from shared.uow import UnitOfWork


class Loader:
    def __init__(self) -> None:
        self.calls = 0

    async def __call__(self) -> int:
        self.calls += 1
        return self.calls


class Recorder:
    """Stands in for the connection: records the statements the unit of work executes."""

    def __init__(self) -> None:
        self.executed: list[tuple[Any, ...]] = []

    async def execute(self, *args: Any) -> str:
        self.executed.append(args)
        return "INSERT 0 1"


def uow(conn: Any = None) -> UnitOfWork:
    return UnitOfWork(conn, "test")


async def test_a_key_loads_once_per_unit_of_work_and_units_do_not_share() -> None:
    load = Loader()
    first = uow()
    assert [await first.memo("x", load) for _ in range(3)] == [1, 1, 1]
    assert await uow().memo("x", load) == 2


async def test_forget_drops_the_name_and_every_tuple_key_under_it_only() -> None:
    a, b, other = Loader(), Loader(), Loader()
    u = uow()
    await u.memo("p", a)
    await u.memo(("p", ("SKU-1",)), b)
    await u.memo(("q", 1), other)
    u.forget("p")
    assert await u.memo("p", a) == 2
    assert await u.memo(("p", ("SKU-1",)), b) == 2
    assert await u.memo(("q", 1), other) == 1
    u.forget("not-there")  # nothing memoized under it: no error


def _status(order_id: str) -> OrderStatusChanged:
    return OrderStatusChanged(order_id=order_id, store="s", external_order_id="e",
                              status="accepted")


async def _handle(cause: str | None) -> list[str]:
    conn = Recorder()
    u = uow(conn)
    if cause is None:
        await u.publish("orders.status", "s:e", _status("o"))
    else:
        with u.caused_by(cause):
            await u.publish("orders.status", "s:e", _status("o"))
            await u.publish("orders.status", "s:e", _status("o"))
            await u.publish("intake.order_accepted", "s:e", _status("o"))
    await u.finish()
    (_statement, *columns), = conn.executed  # one statement for the unit's rows
    values = columns[2] if isinstance(columns[2], list) else [columns[2]]
    return [json.loads(v)["event_id"] for v in values]


async def test_events_published_under_a_cause_get_the_same_ids_when_handled_again() -> None:
    first, again = await _handle("cause-1"), await _handle("cause-1")
    assert first == again
    assert len(set(first)) == 3  # two events of one key and topic still differ (their rank)
    assert first[0] == str(derived_id("cause-1", "orders.status", "s:e", 0))


async def test_without_a_cause_an_event_keeps_its_own_id() -> None:
    assert await _handle(None) != await _handle(None)


async def test_business_metrics_count_after_the_commit_only() -> None:
    counter = Counter("shopkeeper_test_uow_total", "test", ["k"])
    child = counter.labels("a")
    rolled_back = uow()
    rolled_back.count(counter, "a")  # never committed: never counted
    u = uow()
    u.count(counter, "a", amount=2)
    assert child._value.get() == 0  # not before the commit
    u.committed()
    assert child._value.get() == 2
    u.committed()  # hooks run once
    assert child._value.get() == 2

