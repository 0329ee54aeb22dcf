"""Channels' run handler and inbox (services/channels/handlers.py, inbox.py) against Postgres
alone: status changes become write-back jobs in a constant number of statements; a delivery
becomes an `orders.placed` with the id derived from the delivery, once."""

from __future__ import annotations

import uuid
from typing import Any

from services.channels import handlers, inbox, store, workers
from services.channels.platforms.base import ChannelConfig, Inbound
from shared.contracts import OrderPlaced, OrderStatusChanged
from shared.uow import UnitOfWork
from tools.storefront import order as order_payload


def status(store: str, ext: str, value: str, **details: Any) -> OrderStatusChanged:
    return OrderStatusChanged(order_id=str(uuid.uuid4()), store=store, external_order_id=ext,
                              status=value, details=details)


async def test_a_run_of_status_changes_queues_the_write_backs_of_platform_stores(
        service_db: Any) -> None:
    """Given a Shopify store and a generic one, when a run of status changes comes (shipped,
    accepted, refunded twice by two requests, the same shipped again under another id, and a
    generic store's cancellation), then one job per order, action and request is queued for the
    Shopify store only, in the order of the run, and nothing is published."""
    async with service_db("channels") as db:
        await db.pool.execute(
            "INSERT INTO channels (store, platform, secrets) VALUES ('h-shopify', 'shopify', ''),"
            " ('h-generic', 'generic', '')")
        events = [status("h-shopify", "1", "shipped"), status("h-shopify", "2", "accepted"),
                  status("h-shopify", "1", "refunded", request_id="r-1"),
                  status("h-shopify", "1", "refunded", request_id="r-2"),
                  status("h-shopify", "1", "shipped"), status("h-generic", "9", "cancelled"),
                  status("h-other", "3", "shipped")]
        assert await db.run(handlers.on_status, events, "orders.status") == []
        rows = await db.pool.fetch("SELECT order_key, action, ref FROM writebacks ORDER BY id")
        assert [tuple(r) for r in rows] == [("h-shopify:1", "shipped", ""),
                                            ("h-shopify:1", "refunded", "r-1"),
                                            ("h-shopify:1", "refunded", "r-2")]


async def test_a_delivery_is_published_once_with_the_id_it_derives(service_db: Any) -> None:
    """Given a generic store's order delivery, when it is accepted twice (the platform re-sent
    it), then `orders.placed` is published once, with the event's own id, and the second time
    is answered as a duplicate."""
    cfg = ChannelConfig("h-generic", "generic", None, {}, {})
    event = OrderPlaced.model_validate(order_payload("h-generic", "g-1", [("MUG", 1, "12.50")]))
    inbound = Inbound("placed", "g-1")
    async with service_db("channels") as db:
        firsts = []
        for _ in range(2):
            async with UnitOfWork.begin(db.pool, "channels") as uow:
                firsts.append(await inbox.accept(uow, cfg, str(event.event_id),
                                                 "orders.placed", inbound, event, b"{}"))
        assert firsts == [True, False]
        out = await db.published()
        assert [(p.topic, p.key, p.value["event_id"]) for p in out] == [
            ("orders.placed", "h-generic:g-1", str(event.event_id))]


async def test_a_submitted_feed_is_claimed_to_be_looked_at_and_a_retry_never_resends_it(
        service_db: Any) -> None:
    """Given Amazon write-backs: one whose feed was accepted (submitted), one failed while
    looking at its feed, one failed by its processed feed's report, when they are claimed and
    retried, then the submitted one is claimed with its feed id; a retry looks at the unread
    feed again (submitted, the same feed id) and sends only the refused one anew (pending, its
    old feed id in the note)."""
    from services.channels import store
    async with service_db("channels") as db:
        await db.pool.execute(
            "INSERT INTO writebacks (store, order_key, action, ref, payload) VALUES"
            " ('h-amzn', 'h-amzn:1', 'refunded', 'r-1', '{}'),"
            " ('h-amzn', 'h-amzn:2', 'refunded', 'r-2', '{}'),"
            " ('h-amzn', 'h-amzn:3', 'cancelled', '', '{}')")
        ids = [r["id"] for r in await db.pool.fetch("SELECT id FROM writebacks ORDER BY id")]
        async with db.pool.acquire() as conn:
            for wid, feed in zip(ids, ("F1", "F2", "F3"), strict=True):
                await store.feed_submitted(conn, wid, feed, f"D{feed}",
                                           "POST_PAYMENT_ADJUSTMENT_DATA", 1, 0)
            async with conn.transaction():
                row = await store.claim_due(conn)
                assert (row["id"], row["state"], row["feed_id"]) == (ids[0], "submitted", "F1")
            await store.finish_writeback(conn, ids[1], "failed", "getFeed: 403", 1)
            await store.finish_writeback(conn, ids[2], "failed", "not applied: ...", 1,
                                         feed_status="DONE")
            assert await store.retry_failed(conn, "h-amzn") == 2
            listed = {w["id"]: w for w in await store.writebacks_of(conn, "h-amzn")}
        assert (listed[ids[0]]["state"], listed[ids[0]]["feed_id"]) == ("submitted", "F1")
        assert (listed[ids[1]]["state"], listed[ids[1]]["feed_id"]) == ("submitted", "F2")
        again = listed[ids[2]]
        assert (again["state"], again["feed_id"], again["feed_status"]) == ("pending", None, None)
        assert again["note"] == "retried after feed F3: not applied: ..."
        assert listed[ids[0]]["submitted_at"] and listed[ids[0]]["done_at"] is None


async def test_an_idle_write_back_worker_knows_when_the_next_job_comes_due(
        service_db: Any) -> None:
    """Given no job, then nothing comes due; given a job queued by a run, then one is due now
    and the run wakes this instance's worker after its commit; given only a job to retry in a
    minute and a submitted feed to look at in ten seconds, then the next is due in ten."""
    async with service_db("channels") as db:
        await db.pool.execute(
            "INSERT INTO channels (store, platform, secrets) VALUES ('h-shopify', 'shopify', '')")
        assert await store.next_writeback_in(db.pool) is None
        workers.WRITEBACKS_QUEUED.clear()
        await db.run(handlers.on_status, [status("h-shopify", "1", "shipped")], "orders.status")
        assert workers.WRITEBACKS_QUEUED.is_set()
        due = await store.next_writeback_in(db.pool)
        assert due is not None and due <= 0
        await db.pool.execute("UPDATE writebacks SET next_attempt_at = now() + interval '1 min'")
        await db.pool.execute(
            "INSERT INTO writebacks (store, order_key, action, ref, payload, state, feed_id,"
            " next_attempt_at) VALUES ('h-shopify', 'h-shopify:2', 'shipped', '', '{}',"
            " 'submitted', 'f-1', now() + interval '10 s')")
        due = await store.next_writeback_in(db.pool)
        assert due is not None and 5 < due <= 10
