"""Shopify through its real entry point: signed webhooks in, orders that ship, fulfillments with
tracking written back to the emulated Admin API. Real Kafka, Postgres and services."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx

import stack.__main__ as local_stack
from tests.conftest import ref
from tools.channel_emulator import Emulator, shopify_order
from tools.storefront import Storefront

from .channel_helpers import (
    SECRET,
    channel,
    configure,
    emulator,
    order_number,
    shopify_webhook,
)
from .helpers import admin_client, eventually, new_product, tail, tail_all, url, value_of

__all__ = ["emulator"]


def placed_for(store: str, ext: str) -> Any:
    return lambda r: r.key == f"{store}:{ext}".encode()


async def test_a_signed_shopify_order_ships_and_its_fulfillment_is_written_back(
        storefront: Storefront, emulator: Emulator) -> None:
    # Given a Shopify store whose channel points at the emulated Admin API, and stock
    store = ref("shopify")
    await configure(store, "shopify", emulator)
    sku = await new_product(storefront, stock={"WH-LA": 10})
    oid = order_number()
    order = shopify_order(oid, [(sku, 2, "12.50")], tax_rate="0.0825")
    # When Shopify delivers orders/create
    r = await shopify_webhook(store, order)
    # Then it is answered 200 once committed, and the order goes all the way to shipped
    assert r.status_code == 200 and r.json()["outcome"] == "placed", r.text
    key = f"{store}:{oid}"
    shipped = await storefront.wait_for(key, "shipped", timeout=90)
    assert storefront.seen(key)[:1] == ["accepted"]
    placed = value_of(await tail("orders.placed", placed_for(store, str(oid))))
    assert placed["channel"] == {"platform": "shopify", "order_name": order["name"]}
    assert placed["totals"]["tax"] == "2.06" and placed["totals"]["grand_total"] == "32.05"
    # And the fulfillment reaches Shopify with the tracking number, company and URL
    parcel = shipped["details"]["parcels"][0]
    async def fulfilled() -> list[dict[str, Any]]:
        return emulator.fulfilled.get(str(oid), [])
    [fulfillment] = await eventually(fulfilled, timeout=30, what="fulfillment written back")
    tracking = fulfillment["tracking_info"]
    assert tracking["number"] == parcel["tracking_number"]
    assert tracking["company"] and tracking["url"] and parcel["tracking_number"] in tracking["url"]
    assert fulfillment["notify_customer"] is True
    detail = await channel(store)
    assert [w["state"] for w in detail["writebacks_recent"]] == ["done"]


async def test_a_bad_signature_is_refused_and_nothing_is_stored(
        storefront: Storefront, emulator: Emulator) -> None:
    store = ref("shopify")
    await configure(store, "shopify", emulator)
    oid = order_number()
    # When a delivery is signed with another secret
    r = await shopify_webhook(store, shopify_order(oid, [("ANY", 1, "5.00")]),
                              secret="not-the-secret")
    # Then it is refused with 401, no delivery is recorded and no order published
    assert r.status_code == 401 and r.json()["detail"]["code"] == "bad_signature"
    assert (await channel(store))["deliveries_recent"] == []
    await asyncio.sleep(1.5)  # what the outbox relay would have published by now
    assert await tail_all("orders.placed", placed_for(store, str(oid))) == []


async def test_the_same_delivery_twice_is_one_order(storefront: Storefront,
                                                     emulator: Emulator) -> None:
    store = ref("shopify")
    await configure(store, "shopify", emulator)
    sku = await new_product(storefront, stock={"WH-LA": 5})
    oid = order_number()
    order = shopify_order(oid, [(sku, 1, "12.50")])
    # When Shopify retries a delivery (same X-Shopify-Webhook-Id)
    first = await shopify_webhook(store, order, delivery="wh-1")
    again = await shopify_webhook(store, order, delivery="wh-1")
    # Then both are answered 200, the second as a duplicate, and one event is published
    assert first.json()["duplicate"] is False and again.json()["duplicate"] is True
    await storefront.wait_for(f"{store}:{oid}", "accepted")
    await asyncio.sleep(1.0)
    assert len(await tail_all("orders.placed", placed_for(store, str(oid)))) == 1
    # And an orders/updated delivery is a re-send intake recognises: still one order
    r = await shopify_webhook(store, order, topic="orders/updated", delivery="wh-2")
    assert r.json()["outcome"] == "placed"
    await eventually(lambda: _count(store, oid, 2), what="re-send published")
    assert storefront.seen(f"{store}:{oid}").count("accepted") == 1


async def _count(store: str, oid: int, n: int) -> bool:
    return len(await tail_all("orders.placed", placed_for(store, str(oid)))) == n


async def test_unknown_store_and_oversized_body_are_refused(emulator: Emulator) -> None:
    r = await shopify_webhook(ref("nostore"), shopify_order(order_number(), [("X", 1, "1.00")]))
    assert r.status_code == 404 and r.json()["detail"]["code"] == "unknown_store"
    store = ref("shopify")
    await configure(store, "shopify", emulator)
    # A 3 MiB body, declared: refused by the HTTP guard on its Content-Length before the body is
    # read (shared/http.py). Sent by hand: the server answers and closes while a client that
    # writes the whole body first may still be writing, and would see a reset instead.
    port = int(url("channels", "").rsplit(":", 1)[1])
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"POST /webhooks/shopify/{store} HTTP/1.1\r\nHost: x\r\nContent-Type: "
                 f"application/json\r\nContent-Length: {3 * 1024 * 1024}\r\n\r\n{{".encode())
    await writer.drain()
    answer = (await asyncio.wait_for(reader.read(), 10)).decode()
    writer.close()
    assert answer.startswith("HTTP/1.1 413"), answer[:200]
    assert "too_large" in answer and str(2 * 1024 * 1024) in answer


async def test_a_cancellation_on_shopify_becomes_a_cancel_request(
        storefront: Storefront, emulator: Emulator) -> None:
    store = ref("shopify")
    await configure(store, "shopify", emulator,
                    options={"api_version": "2025-07"})
    sku = await new_product(storefront, stock={"WH-LA": 5})
    oid = order_number()
    order = shopify_order(oid, [(sku, 1, "12.50")])
    # Warehouse in manual mode is not needed: a cancel right after placing wins the race
    # often enough to be a cancellation, and otherwise is refused after shipping; both are
    # written as a cancel request that intake receives.
    await shopify_webhook(store, order)
    r = await shopify_webhook(store, {**order, "cancelled_at": order["created_at"],
                                      "cancel_reason": "customer"}, topic="orders/cancelled")
    assert r.json()["outcome"] == "cancel_requested"
    rec = value_of(await tail("orders.cancel_requested", placed_for(store, str(oid))))
    assert rec["reason"] == "cancelled on Shopify (customer)"


async def test_write_back_waits_out_a_429_and_then_succeeds(
        storefront: Storefront, emulator: Emulator) -> None:
    store = ref("shopify")
    await configure(store, "shopify", emulator)
    sku = await new_product(storefront, stock={"WH-LA": 5})
    oid = order_number()
    # Given Shopify will answer the next fulfillment with 429 and Retry-After: 1
    emulator.fail_next("fulfillment_create", 429, "1")
    await shopify_webhook(store, shopify_order(oid, [(sku, 1, "12.50")]))
    await storefront.wait_for(f"{store}:{oid}", "shipped", timeout=90)
    # Then the fulfillment is written once, after the 429, not before Retry-After
    async def fulfilled() -> list[dict[str, Any]]:
        return emulator.fulfilled.get(str(oid), [])
    await eventually(fulfilled, timeout=30, what="fulfillment after the 429")
    attempts = [c for c in emulator.calls if c.path.endswith("/fulfillments.json")
                and c.body["fulfillment"]["line_items_by_fulfillment_order"][0][
                    "fulfillment_order_id"] == oid * 10 + 1]
    statuses = [c.status for c in attempts]
    assert 429 in statuses and statuses[-1] == 201, statuses
    limited = next(c for c in attempts if c.status == 429)
    assert attempts[-1].at - limited.at >= 1.0
    async with httpx.AsyncClient() as c:
        text = (await c.get(url("channels", "/metrics"))).text
    assert 'shopkeeper_channel_rate_limited_total{operation="fulfillment_create",' \
           'platform="shopify"}' in text


async def test_webhooks_arriving_while_kafka_is_down_are_all_published_after(
        storefront: Storefront, emulator: Emulator) -> None:
    store = ref("shopify")
    await configure(store, "shopify", emulator)
    ids = [order_number() for _ in range(5)]
    # Given Kafka is stopped
    # A clean stop: after a kill -9 the broker recovers every partition's log on start, which
    # can take minutes on a busy machine (the kill -9 case is `make chaos`'s).
    await asyncio.to_thread(local_stack.stop_pid, "kafka", 60)
    try:
        # When five deliveries arrive, they are all answered 200 (committed to the inbox)
        for oid in ids:
            r = await shopify_webhook(store, shopify_order(oid, [("NOT-A-SKU", 1, "5.00")]))
            assert r.status_code == 200, r.text
    finally:
        await asyncio.to_thread(local_stack.start_kafka, 1)
    # Then once Kafka is back every one is published, none twice
    async def all_published() -> bool:
        recs = await tail_all("orders.placed", lambda r: r.key.decode().startswith(f"{store}:"))
        return sorted(json.loads(r.value)["external_order_id"] for r in recs) == \
            sorted(str(i) for i in ids)
    await eventually(all_published, timeout=120, what="every delivery published after Kafka")
    async def ready() -> bool:
        return all(local_stack.service_ready(s) for s in local_stack.SERVICES)
    await eventually(ready, timeout=120, what="every service ready again")


async def test_operators_list_channels_without_secrets(emulator: Emulator) -> None:
    store = ref("shopify")
    await configure(store, "shopify", emulator, sku_map={"40000000": "MUG-01"})
    async with admin_client("channels") as c:
        listed = (await c.get("/channels")).json()
        tested = (await c.post(f"/channels/{store}/test")).json()
    async with httpx.AsyncClient() as anon:
        assert (await anon.get(url("channels", "/channels"))).status_code == 401
    mine = next(ch for ch in listed if ch["store"] == store)
    assert mine["platform"] == "shopify" and mine["sku_map"] == {"40000000": "MUG-01"}
    assert SECRET not in json.dumps(listed) and "shpat_" not in json.dumps(listed)
    assert tested["ok"] is True, tested
