"""Two fulfillment instances share the work: the consumer group splits the reservations, and the
wave releaser's advisory lock lets one pass run at a time, so every order is waved, packed and
announced exactly once."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

import stack.__main__ as local_stack
from tools.storefront import Storefront

from .helpers import http_get, new_product, place


@pytest.fixture(scope="module")
def second_instance(stack: None) -> Iterator[None]:
    local_stack.start_services(["fulfillment"], instance=2)
    try:
        yield
    finally:
        local_stack.stop_pid("fulfillment-2", timeout=30)


async def test_two_instances_wave_and_pack_each_order_exactly_once(
        storefront: Storefront, second_instance: None) -> None:
    sf = storefront
    # Given forty orders from different buyers, placed while two instances run
    sku = await new_product(sf, stock={"WH-LA": 45})
    keys = []
    for i in range(40):
        key, _ = await place(sf, [(sku, 1, "12.50")], customer_id=f"two-inst-{sku}-{i}")
        keys.append(key)
        await asyncio.sleep(0.01)
    # When they have all shipped
    for key in keys:
        await sf.wait_for(key, "shipped", timeout=120)
    await asyncio.sleep(1)
    # Then each was packed once, in one wave, into its own parcel
    for key in keys:
        packed = {e["event_id"] for e in sf.statuses[key] if e["status"] == "packed"}
        assert len(packed) == 1, (key, sf.seen(key))
        order_id = next(e["order_id"] for e in sf.statuses[key] if e["status"] == "packed")
        order = (await http_get("fulfillment", f"/orders/{order_id}")).json()
        assert [p["status"] for p in order["picks"]] == ["packed"]
        assert len(order["parcels"]) == 1
        assert order["picks"][0]["wave_id"]
