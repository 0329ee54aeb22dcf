"""Faults the foundation must survive: a service killed mid-stream, and events delivered twice.
Nothing lost, nothing doubled (consumers dedupe by event_id, so "doubled" means two different
event_ids for one state change)."""

from __future__ import annotations

import asyncio
import signal

import pytest

import stack.__main__ as local_stack
from tools import storefront as sfm
from tools.storefront import Storefront

from .helpers import (
    STORE,
    eventually,
    http_get,
    new_product,
    place,
    ref,
    stock_of,
    tail,
    value_of,
)


def distinct(sf: Storefront, key: str, status: str) -> int:
    return len({e["event_id"] for e in sf.statuses.get(key, []) if e["status"] == status})


@pytest.mark.parametrize("victim", ["intake", "inventory", "fulfillment", "logistics"])
async def test_a_service_killed_mid_stream_loses_and_doubles_nothing(storefront: Storefront,
                                                                     victim: str) -> None:
    sf = storefront
    orders = 30
    sku = await new_product(sf, stock={"WH-LA": orders + 5})
    keys = []
    for i in range(orders):
        key, _ = await place(sf, [(sku, 1, "12.50")])
        keys.append(key)
        if i == orders // 3:
            local_stack.stop_pid(victim, timeout=10, sig=signal.SIGKILL)
        await asyncio.sleep(0.02)
    await asyncio.to_thread(local_stack.start_services, [victim])

    for key in keys:
        await sf.wait_for(key, "shipped", timeout=90)
    await asyncio.sleep(2)
    for key in keys:
        for status in ("accepted", "reserved", "packed", "shipped"):
            assert distinct(sf, key, status) == 1, (key, status, sf.seen(key))
    assert (await stock_of(sku))["WH-LA"] == {"warehouse": "WH-LA", "on_hand": 5, "reserved": 0,
                                              "available": 5, "refurbished": 0}
    assert (await http_get("inventory", "/reconcile")).json()["balanced"] is True


async def test_a_redelivered_internal_event_changes_nothing(storefront: Storefront) -> None:
    sf = storefront
    sku = await new_product(sf, stock={"WH-LA": 5})
    key, payload = await place(sf, [(sku, 1, "12.50")])
    await sf.wait_for(key, "shipped")

    reserved = await tail("inventory.stock_reserved",
                          lambda r: r.key == key.encode())
    await sf.publish("inventory.stock_reserved", key, reserved.value)  # the same bytes again
    await sf.publish("orders.placed", key, payload)                    # and the order again
    marker_sku = await new_product(sf, stock={"WH-LA": 1})             # a later event...
    later, _ = await place(sf, [(marker_sku, 1, "12.50")])
    await sf.wait_for(later, "shipped")                                # ...has gone through
    await asyncio.sleep(1)
    assert sf.seen(key) == ["accepted", "reserved", "packed", "shipped"]
    assert value_of(reserved)["order_key"] == key
    assert (await stock_of(sku))["WH-LA"]["on_hand"] == 4


async def test_readiness_reports_consumer_and_database(stack: None) -> None:
    for service in local_stack.SERVICES:
        body = (await http_get(service, "/readyz")).json()
        assert body["ready"] is True
        assert body["checks"]["postgres"] is True and body["checks"]["kafka_consumer"] is True
        metrics = (await http_get(service, "/metrics")).text
        assert "shopkeeper_outbox_pending" in metrics and "shopkeeper_consumer_lag" in metrics


async def test_operator_writes_need_the_admin_token(stack: None) -> None:
    assert (await http_get("intake", "/holds")).status_code == 401
    assert (await http_get("intake", "/holds", auth=True)).status_code == 200

    async def ok() -> bool:
        return (await http_get("aftersales", "/requests/review", auth=True)).status_code == 200
    await eventually(ok)


async def test_one_event_three_times_in_one_batch_is_handled_once(storefront: Storefront) -> None:
    """Consumers record a run's inbox rows in one statement: the same event_id several times in
    one run must still be handled once (the first), the copies counted as duplicates."""
    sf = storefront
    sku = await new_product(sf, stock={"WH-LA": 5})
    ext = ref("o")
    key, payload = f"{STORE}:{ext}", sfm.order(STORE, ext, [(sku, 2, "12.50")])
    for _ in range(3):  # back to back: one fetch, one run, in practice
        await sf.publish("orders.placed", key, payload)
    await sf.wait_for(key, "shipped")
    await asyncio.sleep(1)
    for status in ("accepted", "reserved", "packed", "shipped"):
        assert distinct(sf, key, status) == 1, (status, sf.seen(key))
    assert (await stock_of(sku))["WH-LA"]["on_hand"] == 3
