"""Amazon feeds after they are accepted (issue 19), on the running stack with the emulator as a
real HTTP server: a refund's job waits in `submitted` until its processing report is read; a
refused refund fails the job with the report's words; a refund sent again after a crash between
Amazon's answer and our commit is applied once and the job is done with a note.

The refunds are `orders.status` `refunded` events as after-sales publishes them, for an order
the channel polled (backordered, so nothing else happens to it meanwhile)."""

from __future__ import annotations

import asyncio
import signal
import uuid
from typing import Any

import stack.__main__ as local_stack
from tests.conftest import ref
from tools.channel_emulator import Emulator, amazon_order, now_iso
from tools.storefront import Storefront

from .channel_helpers import emulator
from .helpers import admin_client, eventually, new_product
from .test_channels_amazon import amazon_store, feeds_for, order_id, stamp

__all__ = ["emulator"]


async def polled_order(sf: Storefront, emu: Emulator, price: str = "20.00"
                       ) -> tuple[str, str, dict[str, Any]]:
    """A store with one Amazon order, polled and backordered: (store, AmazonOrderId, status)."""
    market = ref("MKT")
    sku = await new_product(sf, stock={})
    oid = order_id()
    emu.add_amazon_order(*amazon_order(oid, [(sku, 1, price)], marketplace=market,
                                       updated=stamp(10)))
    store = await amazon_store(emu, market)
    status = await sf.wait_for(f"{store}:{oid}", "backordered", timeout=90)
    return store, oid, status


async def refund(sf: Storefront, store: str, oid: str, status: dict[str, Any],
                 amount: str) -> str:
    """`refunded` on orders.status as after-sales publishes it; its request id."""
    request_id = f"req-{uuid.uuid4().hex[:12]}"
    await sf.publish("orders.status", f"{store}:{oid}", {
        "event_id": str(uuid.uuid4()), "occurred_at": now_iso(),
        "order_id": status["order_id"], "store": store, "external_order_id": oid,
        "status": "refunded", "reasons": [],
        "details": {"amount": amount, "currency": "USD", "request_id": request_id}})
    return request_id


async def writebacks(store: str, state: str | None = None) -> list[dict[str, Any]]:
    async with admin_client("channels") as c:
        r = await c.get(f"/channels/{store}/writebacks",
                        params={"state": state} if state else {})
    assert r.status_code == 200, r.text
    return list(r.json())


async def refund_job(store: str, state: str) -> dict[str, Any] | None:
    return next((w for w in await writebacks(store)
                 if w["action"] == "refunded" and w["state"] == state), None)


async def test_a_refund_is_done_only_once_its_processing_report_is_read(
        storefront: Storefront, emulator: Emulator) -> None:
    store, oid, status = await polled_order(storefront, emulator)
    emulator.feed_delay = 3.0  # Amazon takes its time
    try:
        await refund(storefront, store, oid, status, "15.00")
        # Then the job is submitted with the accepted feed's ids while Amazon processes it
        async def submitted() -> dict[str, Any] | None:
            return await refund_job(store, "submitted")
        job = await eventually(submitted, timeout=30, what="refund submitted")
        assert job["feed_id"] and job["feed_document_id"] and job["done_at"] is None
        assert job["feed_type"] == "POST_PAYMENT_ADJUSTMENT_DATA"
        listed = [c for c in await admin_get("/channels") if c["store"] == store]
        assert listed[0]["writebacks_submitted"] == 1
        # And done once getFeed says DONE and the report says the adjustment was applied
        async def done() -> dict[str, Any] | None:
            return await refund_job(store, "done")
        job = await eventually(done, timeout=30, what="refund done")
    finally:
        emulator.feed_delay = 1.0
    assert job["feed_status"] == "DONE" and job["note"] is None and job["last_error"] is None
    statuses = emulator.calls_to(f"/feeds/2021-06-30/feeds/{job['feed_id']}", "GET")
    assert len(statuses) >= 2  # looked at while in queue or in progress, then done
    assert emulator.calls_to("/feeds/2021-06-30/documents/", "GET")
    [applied] = emulator.refunds_of(oid)
    assert str(applied["amount"]) == "15.00"


async def admin_get(path: str) -> Any:
    async with admin_client("channels") as c:
        r = await c.get(path)
    assert r.status_code == 200, r.text
    return r.json()


async def test_a_refund_amazon_refuses_fails_the_job_with_the_reason(
        storefront: Storefront, emulator: Emulator) -> None:
    store, oid, status = await polled_order(storefront, emulator)
    # When a refund above what the buyer was charged goes out (20.00 + tax + shipping)
    await refund(storefront, store, oid, status, "90.00")
    # Then the feed is accepted, processed, and its report refuses the adjustment
    async def failed() -> list[dict[str, Any]]:
        return await writebacks(store, "failed")
    [job] = await eventually(failed, timeout=60, what="refund failed")
    assert job["action"] == "refunded" and job["feed_status"] == "DONE"
    assert job["last_error"].startswith("not applied: 1 message(s) processed, 0 successful")
    assert "above what can be refunded" in job["last_error"]
    assert emulator.refunds_of(oid) == []
    # And operators see it in the channel's counts
    [listed] = [c for c in await admin_get("/channels") if c["store"] == store]
    assert listed["writebacks_failed"] == 1


async def test_a_refund_resent_after_a_crash_is_applied_once(
        storefront: Storefront, emulator: Emulator) -> None:
    store, oid, status = await polled_order(storefront, emulator)
    # Given channels dies (kill -9) right after Amazon accepted the refund's feed, before its
    # answer reached channels (so before the feed id was committed)
    killed: list[str] = []

    def crash(feed_id: str) -> None:
        if not killed and any(oid in f["xml"].decode() for f in emulator.feeds
                              if f["feedId"] == feed_id):
            local_stack.stop_pid("channels", 10, signal.SIGKILL)
            killed.append(feed_id)  # once it is dead (and its pid file gone)
    emulator.on_feed_created = crash
    try:
        await refund(storefront, store, oid, status, "12.00")
        async def crashed() -> list[str]:
            return killed
        await eventually(crashed, timeout=60, what="the crash")
    finally:
        emulator.on_feed_created = None
    assert len(feeds_for(emulator, oid, "POST_PAYMENT_ADJUSTMENT_DATA")) == 1
    # When channels starts again: the job is still pending (nothing was committed) and is sent
    # again, with the same adjustment ids
    await asyncio.to_thread(local_stack.start_services, ["channels"])
    async def done() -> dict[str, Any] | None:
        return await refund_job(store, "done")
    job = await eventually(done, timeout=60, what="refund done after the restart")
    # Then Amazon applied exactly one refund; the second feed was refused as a duplicate,
    # which channels read as already applied
    sent = feeds_for(emulator, oid, "POST_PAYMENT_ADJUSTMENT_DATA")
    assert len(sent) == 2 and sent[0]["feedId"] == killed[0]
    assert [str(r["amount"]) for r in emulator.refunds_of(oid)] == ["12.00"]
    assert job["feed_id"] == sent[1]["feedId"] and job["feed_status"] == "DONE"
    assert job["note"].startswith("already applied") and job["last_error"] is None
    [only] = [w for w in await writebacks(store) if w["action"] == "refunded"]
    assert only["id"] == job["id"]
