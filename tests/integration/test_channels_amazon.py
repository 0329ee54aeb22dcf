"""The marketplace poller (Amazon SP-API shape) against the emulator as a real HTTP server:
paging, order items, token refresh, 429s, the cursor across a kill -9, and shipment
confirmations written back."""

from __future__ import annotations

import asyncio
import json
import signal
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import stack.__main__ as local_stack
from tests.conftest import ref
from tools import storefront as sfm
from tools.channel_emulator import Emulator, amazon_order
from tools.storefront import Storefront

from .channel_helpers import channel, configure, emulator
from .helpers import eventually, new_product, tail_all

__all__ = ["emulator"]


def stamp(seconds_ago: float) -> str:
    t = datetime.now(UTC) - timedelta(seconds=seconds_ago)
    return t.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


async def amazon_store(emulator: Emulator, market: str, **options: Any) -> str:
    """A store selling on its own marketplace id, so tests sharing the emulator do not see each
    other's orders."""
    store = ref("amzn")
    await configure(store, "amazon", emulator, options={
        "poll_seconds": 1, "page_size": 2, "marketplace_ids": [market],
        "initial_lookback_hours": 1,
        # Amazon's getOrders refills a request a minute; a test polling every second needs more
        # (getFeedDocument one in 45 s: a test reads several reports).
        "rate_limits": {"getOrders": [5, 20], "getFeedDocument": [5, 10]},
        "feed_poll_seconds": 1, **options})
    return store


def order_id() -> str:
    import random
    return f"{random.randint(100, 999)}-{random.randint(10**6, 10**7 - 1)}-" \
           f"{random.randint(10**6, 10**7 - 1)}"


async def placed_ids(store: str) -> list[str]:
    recs = await tail_all("orders.placed", lambda r: r.key.decode().startswith(f"{store}:"))
    return [json.loads(r.value)["external_order_id"] for r in recs]


def get_orders_calls(emulator: Emulator, after: float = 0) -> list[Any]:
    return [c for c in list(emulator.calls) if c.path == "/orders/v0/orders" and c.at >= after]


async def test_amazon_orders_are_polled_in_pages_and_shipments_confirmed(
        storefront: Storefront, emulator: Emulator) -> None:
    # Given five unshipped orders, one pending and one cancelled on the marketplace
    market = ref("MKT")
    sku = await new_product(storefront, stock={"WH-LA": 20})
    ids = [order_id() for _ in range(5)]
    for n, oid in enumerate(ids):
        emulator.add_amazon_order(*amazon_order(oid, [(sku, 1, "12.50")], marketplace=market,
                                                updated=stamp(60 - n)))
    pending, cancelled = order_id(), order_id()
    emulator.add_amazon_order(*amazon_order(pending, [(sku, 1, "12.50")], marketplace=market,
                                            status="Pending"))
    emulator.add_amazon_order(*amazon_order(cancelled, [(sku, 1, "12.50")], marketplace=market,
                                            status="Canceled"))
    # When the store's channel is configured (pages of two)
    store = await amazon_store(emulator, market)
    # Then every payable order is placed once, through NextToken pages and order items
    async def all_placed() -> bool:
        return sorted(await placed_ids(store)) == sorted(ids)
    await eventually(all_placed, timeout=60, what="the five orders polled")
    assert any("NextToken" in c.query for c in get_orders_calls(emulator))
    assert all(emulator.calls_to(f"/orders/v0/orders/{oid}/orderItems", "GET") for oid in ids)
    cancels = await tail_all("orders.cancel_requested",
                             lambda r: r.key == f"{store}:{cancelled}".encode())
    assert len(cancels) == 1
    # And each shipped order gets a shipment confirmation naming its items and tracking
    for oid in ids:
        shipped = await storefront.wait_for(f"{store}:{oid}", "shipped", timeout=90)
        number = shipped["details"]["parcels"][0]["tracking_number"]
        async def confirmed(oid: str = oid) -> list[Any]:
            return emulator.calls_to(f"/orders/v0/orders/{oid}/shipmentConfirmation", "POST")
        [call] = await eventually(confirmed, timeout=30, what=f"shipment of {oid} confirmed")
        assert call.body["packageDetail"]["trackingNumber"] == number
        assert call.body["packageDetail"]["orderItems"] == [{"orderItemId": f"{oid}-0",
                                                             "quantity": 1}]
    detail = await channel(store)
    assert detail["poll_cursor"] and detail["poll_last_error"] is None


async def test_the_poller_waits_out_a_429_and_refreshes_an_expired_token(
        storefront: Storefront, emulator: Emulator) -> None:
    market = ref("MKT")
    sku = await new_product(storefront, stock={"WH-LA": 5})
    oid = order_id()
    emulator.add_amazon_order(*amazon_order(oid, [(sku, 1, "12.50")], marketplace=market, updated=stamp(5)))
    tokens_before = len(emulator.calls_to("/auth/o2/token"))
    # Given the marketplace answers the next listing with 429, Retry-After 2 s
    emulator.fail_next("getOrders", 429, "2", when={"MarketplaceIds": market})
    t0 = asyncio.get_running_loop().time()
    store = await amazon_store(emulator, market)
    async def placed() -> bool:
        return await placed_ids(store) == [oid]
    await eventually(placed, timeout=60, what="order polled after the 429")
    mine = [c for c in get_orders_calls(emulator) if c.query.get("MarketplaceIds") == market]
    limited = [c for c in mine if c.status == 429]
    assert limited, "the 429 was not served"
    after = [c for c in mine if c.status == 200 and c.at > limited[-1].at]
    assert after and after[0].at - limited[-1].at >= 2.0
    assert asyncio.get_running_loop().time() - t0 >= 2.0
    # When the access token stops being accepted (expired early, revoked) and a new order comes
    tokens_now = len(emulator.calls_to("/auth/o2/token"))
    assert tokens_now > tokens_before
    revoked = time.time()
    emulator.tokens.clear()
    second = order_id()
    emulator.add_amazon_order(*amazon_order(second, [(sku, 1, "12.50")], marketplace=market,
                                            updated=stamp(0)))
    # Then the session meets a 403, buys a new token with the refresh token and goes on
    async def both() -> bool:
        return sorted(await placed_ids(store)) == sorted([oid, second])
    await eventually(both, timeout=30, what="order polled with a refreshed token")
    # (the first call to meet it may be the poll or a shipment confirmation: one session)
    assert any(c.status == 403 for c in list(emulator.calls) if c.at >= revoked)
    assert len(emulator.calls_to("/auth/o2/token")) > tokens_now


async def test_the_poller_resumes_from_its_cursor_after_a_kill_9(
        storefront: Storefront, emulator: Emulator) -> None:
    market = ref("MKT")
    sku = await new_product(storefront, stock={"WH-LA": 10})
    first = [order_id() for _ in range(3)]
    for n, oid in enumerate(first):
        emulator.add_amazon_order(*amazon_order(oid, [(sku, 1, "12.50")], marketplace=market,
                                                updated=stamp(30 - n)))
    store = await amazon_store(emulator, market)
    async def first_placed() -> bool:
        return sorted(await placed_ids(store)) == sorted(first)
    await eventually(first_placed, timeout=60, what="first orders polled")
    async def cursor() -> str | None:
        c = (await channel(store))["poll_cursor"]
        return c if c and c.startswith(stamp(28)[:10]) else None
    saved = await eventually(cursor, what="cursor persisted")
    # When channels is killed (-9) and, while it is down, more orders come in
    await asyncio.to_thread(local_stack.stop_pid, "channels", 10, signal.SIGKILL)
    later = [order_id() for _ in range(3)]
    for oid in later:
        emulator.add_amazon_order(*amazon_order(oid, [(sku, 1, "12.50")], marketplace=market,
                                                updated=stamp(1)))
    restarted = datetime.now(UTC).timestamp()
    await asyncio.to_thread(local_stack.start_services, ["channels"])
    # Then it lists from the saved cursor, and every order is placed exactly once
    async def all_placed() -> bool:
        return sorted(await placed_ids(store)) == sorted(first + later)
    await eventually(all_placed, timeout=60, what="orders after the restart")
    resumed = [c for c in get_orders_calls(emulator, restarted)
               if c.query.get("LastUpdatedAfter") and c.query.get("MarketplaceIds") == market]
    cursor_after = datetime.fromisoformat(saved)
    assert resumed and datetime.fromisoformat(
        resumed[0].query["LastUpdatedAfter"].replace("Z", "+00:00")) == cursor_after
    await asyncio.sleep(2)  # another poll or two: nothing new, nothing doubled
    ids = await placed_ids(store)
    assert sorted(ids) == sorted(first + later) and len(ids) == len(set(ids))


def feeds_for(emulator: Emulator, oid: str, feed_type: str) -> list[dict[str, Any]]:
    """Feeds of that type naming the Amazon order (the emulator parsed their XML)."""
    return [f for f in list(emulator.feeds) if f["feedType"] == feed_type
            and oid in f["xml"].decode()]


async def test_cancellations_and_refunds_go_to_amazon_as_feeds(
        storefront: Storefront, emulator: Emulator) -> None:
    sf = storefront
    # Given an Amazon store with two orders: one of goods out of stock, one that ships
    market = ref("MKT")
    idle = await new_product(sf, stock={})
    sku = await new_product(sf, stock={"WH-LA": 5}, price="20.00")
    waiting, shipping = order_id(), order_id()
    emulator.add_amazon_order(*amazon_order(waiting, [(idle, 1, "12.50")], marketplace=market,
                                            updated=stamp(30)))
    emulator.add_amazon_order(*amazon_order(shipping, [(sku, 2, "20.00")], marketplace=market,
                                            updated=stamp(20)))
    store = await amazon_store(emulator, market)

    # When the buyer cancels the backordered one through Shopkeeper
    await sf.wait_for(f"{store}:{waiting}", "backordered", timeout=90)
    await sf.publish("orders.cancel_requested", f"{store}:{waiting}",
                     sfm.order_event(store, waiting, reason="changed my mind"))
    await sf.wait_for(f"{store}:{waiting}", "cancelled")
    # Then Amazon gets an order acknowledgement feed failing its item: a seller's cancellation
    async def acked() -> list[dict[str, Any]]:
        return feeds_for(emulator, waiting, "POST_ORDER_ACKNOWLEDGEMENT_DATA")
    [ack] = await eventually(acked, timeout=60, what="cancellation feed")
    assert ack["marketplaceIds"] == [market] and ack["message_type"] == "OrderAcknowledgement"
    message = ack["message"].find("OrderAcknowledgement")
    assert message.findtext("AmazonOrderID") == waiting
    assert message.findtext("StatusCode") == "Failure"
    assert [i.findtext("AmazonOrderItemCode") for i in message.findall("Item")] \
        == [f"{waiting}-0"]
    # (the document was uploaded to its pre-signed URL before the feed named it)
    assert emulator.calls_to("/_s3/feed-documents/", "PUT")

    # When the other order ships and the carrier brings its parcel back (refunded, less shipping)
    shipped = await sf.wait_for(f"{store}:{shipping}", "shipped", timeout=90)
    parcel = shipped["details"]["parcels"][0]
    await sf.publish("carrier.tracking", parcel["tracking_number"],
                     sfm.tracking(parcel["carrier"], parcel["tracking_number"],
                                  "returned_to_sender"))
    refunded = await sf.wait_for(f"{store}:{shipping}", "refunded", timeout=90)
    # Then Amazon gets an order adjustment feed of that amount on the order's item
    async def adjusted() -> list[dict[str, Any]]:
        return feeds_for(emulator, shipping, "POST_PAYMENT_ADJUSTMENT_DATA")
    [adj] = await eventually(adjusted, timeout=60, what="refund feed")
    item = adj["message"].find("OrderAdjustment/AdjustedItem")
    assert item.findtext("AmazonOrderItemCode") == f"{shipping}-0"
    amounts = {c.findtext("Type"): c.findtext("Amount")
               for c in item.findall("ItemPriceAdjustments/Component")}
    assert amounts == {"Principal": refunded["details"]["amount"]}
    # And each feed's job is done only once Amazon processed it and its report was read
    async def all_done() -> list[dict[str, Any]] | None:
        rows = (await channel(store))["writebacks_recent"]
        return rows if all(w["state"] == "done" for w in rows) and len(rows) == 3 else None
    rows = await eventually(all_done, timeout=60, what="write-backs done")
    assert sorted(w["action"] for w in rows) == ["cancelled", "refunded", "shipped"]
    feeds = {w["action"]: w for w in rows if w["feed_id"]}
    assert feeds["cancelled"]["feed_id"] == ack["feedId"]
    assert feeds["refunded"]["feed_id"] == adj["feedId"]
    assert all(w["feed_status"] == "DONE" and w["note"] is None for w in feeds.values())
    assert [str(r["amount"]) for r in emulator.refunds_of(shipping)] \
        == [refunded["details"]["amount"]]
    assert shipping not in emulator.cancelled and waiting in emulator.cancelled
