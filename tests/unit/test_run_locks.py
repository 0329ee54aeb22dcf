"""What a run declares it will lock (shared/locks.py, docs/messaging.md "One lock order per
run"): the keys of all its segments together, and the whole service (exclusive) as soon as one
segment finds its rows while running or declares nothing."""

from __future__ import annotations

from typing import Any

from services.inventory.handlers import handlers as inventory
from shared import topics
from shared.locks import EXCLUSIVE, RunLocks, exclusive
from shared.messaging import Handlers


async def nothing(uow: Any, events: list[Any]) -> None:
    return None


def service() -> Handlers:
    h = Handlers(run_lock="test:serial")
    h.on(topics.INTAKE_ORDER_ACCEPTED, locks=lambda es: RunLocks.of(stock=es))(nothing)
    h.on(topics.LOGISTICS_ORDER_SHIPPED, locks=lambda es: RunLocks.of(orders=es))(nothing)
    h.on(topics.STOCK_ADJUSTMENTS, locks=exclusive)(nothing)
    h.on(topics.CATALOG_PRODUCTS)(nothing)
    return h


def test_a_run_declares_the_keys_of_all_its_segments() -> None:
    locks = service().locks_of([(topics.INTAKE_ORDER_ACCEPTED.name, ["B", "A"]),
                                (topics.LOGISTICS_ORDER_SHIPPED.name, ["o1"]),
                                (topics.INTAKE_ORDER_ACCEPTED.name, ["A", "C"])])
    assert locks == RunLocks(frozenset({"stock:A", "stock:B", "stock:C", "orders:o1"}))


def test_one_segment_that_finds_its_rows_or_declares_nothing_makes_the_run_exclusive() -> None:
    h = service()
    for topic in (topics.STOCK_ADJUSTMENTS, topics.CATALOG_PRODUCTS):
        locks = h.locks_of([(topics.INTAKE_ORDER_ACCEPTED.name, ["A"]), (topic.name, ["x"])])
        assert locks.exclusive
    assert EXCLUSIVE.exclusive and not RunLocks().exclusive


def test_every_inventory_subscription_declares_what_it_locks() -> None:
    """Inventory opts in, and no subscription is left to the exclusive default by omission."""
    assert inventory.run_lock == "inventory:backorders"
    assert [name for name, sub in inventory.subscriptions.items() if sub.locks is None] == []
