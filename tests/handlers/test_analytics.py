"""Analytics' handlers take runs (services/analytics/handlers.py), against Postgres alone: a run's
events are stored with one statement per table and their first-time facts queued for the fold
job, which folds each order touched once per pass; a run gives the read model and rollups that the
same events one run each give, however the fold's passes fall between the runs."""

from __future__ import annotations

import itertools
import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from services.analytics import handlers as h
from services.analytics import rollups, store
from shared.contracts import (
    AftersalesRequested,
    Event,
    FeedbackGiven,
    OrderAccepted,
    OrderShipped,
    OrderSnapshot,
    OrderStatusChanged,
    RefundIssued,
    ShippedParcel,
    SkuQuantity,
    TrackingUpdated,
)
from shared.uow import UnitOfWork
from tests.handlers.test_aftersales import counted, snapshot

T0 = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=6)

HANDLERS: dict[type[Event], Any] = {
    OrderAccepted: h.order_accepted, OrderStatusChanged: h.status_changed,
    OrderShipped: h.order_shipped, TrackingUpdated: h.tracking_updated,
    AftersalesRequested: h.request_received, RefundIssued: h.refund_issued,
    FeedbackGiven: h.feedback_given,
}


async def fold(db: Any) -> int:
    """One pass of the fold job (jobs.fold_pending) on `db`: the facts queued so far, folded."""
    async with db.pool.acquire() as conn, conn.transaction():
        return await store.fold_queued(conn, 48.0)


async def dispatch(uow: UnitOfWork, events: list[Any]) -> None:
    """As the consumer does: each stretch of one topic's events to its handler, one unit of
    work for the whole run."""
    for kind, group in itertools.groupby(events, key=type):
        await HANDLERS[kind](uow, list(group))


def status(snap: OrderSnapshot, name: str, minutes: int) -> OrderStatusChanged:
    return OrderStatusChanged(order_id=snap.order_id, store=snap.store,
                              external_order_id=snap.external_order_id, status=name,
                              occurred_at=T0 + timedelta(minutes=minutes))


def parcel(snap: OrderSnapshot) -> ShippedParcel:
    return ShippedParcel(parcel_id=f"P-{snap.external_order_id}", warehouse="WH-LA",
                         carrier="ups", service="ground",
                         tracking_number=f"1Z{snap.external_order_id}",
                         lines=[SkuQuantity(sku="MUG-01", quantity=1)])


def story(a: OrderSnapshot, b: OrderSnapshot) -> list[Event]:
    """Two orders' lives, with a carrier scan before its shipment, a status that comes late
    (older than the one before it), two of an order's statuses in one stretch, and the
    after-sales events."""
    at = T0 + timedelta(minutes=1)
    return [
        OrderAccepted(order_id=a.order_id, order_key=a.key, order=a, occurred_at=at),
        OrderAccepted(order_id=b.order_id, order_key=b.key, order=b, occurred_at=at),
        status(a, "accepted", 1), status(b, "accepted", 1), status(a, "reserved", 2),
        TrackingUpdated(carrier="ups", tracking_number=parcel(a).tracking_number,
                        status="in_transit", occurred_at=T0 + timedelta(minutes=50)),
        OrderShipped(order_id=a.order_id, order_key=a.key, parcels=[parcel(a)],
                     occurred_at=T0 + timedelta(minutes=40)),
        OrderShipped(order_id=b.order_id, order_key=b.key, parcels=[parcel(b)],
                     occurred_at=T0 + timedelta(minutes=45)),
        status(a, "delivered", 90), status(a, "shipped", 40), status(b, "shipped", 45),
        TrackingUpdated(carrier="ups", tracking_number=parcel(b).tracking_number,
                        status="delivered", occurred_at=T0 + timedelta(minutes=95)),
        AftersalesRequested(store=a.store, external_order_id=a.external_order_id,
                            request_id="rma-1", kind="refund", reason="damaged",
                            lines=[SkuQuantity(sku="MUG-01", quantity=1)],
                            occurred_at=T0 + timedelta(minutes=120)),
        RefundIssued(order_id=a.order_id, store=a.store, external_order_id=a.external_order_id,
                     request_id="rma-1", amount=Decimal("15.00"), currency="USD",
                     reason="damaged", occurred_at=T0 + timedelta(minutes=121)),
        FeedbackGiven(store=a.store, external_order_id=a.external_order_id, rating=2,
                      occurred_at=T0 + timedelta(minutes=130)),
        FeedbackGiven(store=b.store, external_order_id=b.external_order_id, rating=5,
                      occurred_at=T0 + timedelta(minutes=131)),
    ]


async def read_model(db: Any) -> dict[str, list[Any]]:
    """Every table the handlers write and the fold keeps, rows as JSON text, sorted (the
    order_state's facts as sorted event ids: their order in the list does not matter)."""
    tables = ["orders", "timeline", "order_index", "parcel_index", "refunds", "feedback",
              *rollups.TABLES]
    out: dict[str, list[Any]] = {}
    for t in tables:
        rows = [r[0] for r in await db.pool.fetch(f"SELECT row_to_json(x)::text FROM {t} x")]
        if t in rollups.TABLES:  # rows whose sums came back to zero are as good as absent
            values = [c for c, _ in rollups.TABLES[t].values]
            rows = [r for r in rows if any(Decimal(str(json.loads(r)[c])) for c in values)]
        out[t] = sorted(rows)
    out["facts"] = sorted(tuple(r) for r in await db.pool.fetch(
        "SELECT event_id::text, kind, order_key, tracking_number FROM facts"))
    out["order_state"] = sorted(
        (r["order_key"], sorted(f[1] for f in json.loads(r["facts"])), r["contrib"],
         r["start_day"], r["slice_id"]) for r in await db.pool.fetch("SELECT * FROM order_state"))
    return out


async def test_one_run_gives_the_read_model_of_the_same_events_one_at_a_time(
        service_db: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Given two orders' events (a scan before its shipment, a late status, after-sales), when
    they come as one run and the fold job passes once, then the run folds nothing itself, the
    pass folds each order once, and every table and rollup is what the same events give handled
    one run each with a pass of the fold after every run."""
    a, b = snapshot("a1"), snapshot("b1")
    events = story(a, b)
    folds: list[list[str]] = []
    fold_orders = store.fold_orders

    async def counting_fold(conn: Any, pending: dict[str, Any], *args: Any, **kw: Any) -> int:
        if pending:
            folds.append(sorted(pending))
        return await fold_orders(conn, pending, *args, **kw)

    async with service_db("analytics") as one_run, service_db("analytics") as each:
        monkeypatch.setattr(store, "fold_orders", counting_fold)
        assert await one_run.run(dispatch, events) == []
        assert folds == []  # queued in the run's transaction, not folded there
        # every fact but the early scan's (its parcel is not known yet: the shipment folds it)
        assert await one_run.pool.fetchval("SELECT count(*) FROM fold_queue") == len(events) - 1
        assert await fold(one_run) == len(events) - 1
        assert folds == [sorted([a.key, b.key])]
        assert await fold(one_run) == 0 and len(folds) == 1  # nothing left: nothing folded
        for e in events:
            await each.run(dispatch, [e])
            await fold(each)
        assert len(folds) == 1 + len(events) - 1  # every run but the early scan's folds
        assert await each.pool.fetchval("SELECT count(*) FROM fold_queue") == 0
        batched, single = await read_model(one_run), await read_model(each)
    assert batched == single
    assert len(batched["timeline"]) == 6 and len(batched["facts"]) == len(events)
    current = {json.loads(r)["order_key"]: json.loads(r)["status"] for r in batched["orders"]}
    assert current == {a.key: "delivered", b.key: "shipped"}


async def test_a_run_of_statuses_is_one_statement_and_the_newest_wins(service_db: Any) -> None:
    """Given one order's statuses in a run, out of order and with a tie, then one statement
    stores them all, the newest (on a tie the later one) is current, and a re-sent event (a new
    run) adds no fact."""
    a = snapshot("s1")
    run = [status(a, "shipped", 40), status(a, "reserved", 2), status(a, "delivered", 40),
           status(a, "accepted", 1)]
    counts: list[int] = []
    async with service_db("analytics") as db:
        await db.run(counted(h.status_changed, counts), run)
        # past the inbox (another topic name there): the facts' key keeps it once
        await db.run(h.status_changed, [run[0]], "again")
        row = await db.pool.fetchrow("SELECT * FROM orders")
        first_seen = await db.pool.fetchval("SELECT seen_at FROM order_index")
        facts = await db.pool.fetchval("SELECT count(*) FROM facts")
        timeline = await db.pool.fetchval("SELECT count(*) FROM timeline")
    assert counts == [1]
    assert (row["status"], row["status_at"]) == ("delivered", T0 + timedelta(minutes=40))
    assert row["first_seen"] == first_seen == T0 + timedelta(minutes=1)
    assert (facts, timeline) == (4, 4)


async def test_the_feedback_memory_answers_what_changed_in_one_statement(service_db: Any) -> None:
    """Given digests of carrier scores or reorder hints, when they are recorded, then the keys
    never published or published with another digest come back, each topic apart, and nothing
    comes back for digests recorded before: the feedback job publishes only those."""
    async with service_db("analytics") as db, db.pool.acquire() as conn:
        topic, other = "analytics.reorder_hints", "analytics.carrier_scores"
        assert await store.changed(conn, topic, {}) == set()
        assert await store.changed(conn, topic, {"MUG-01": "a", "TEE-02": "b"}) == {
            "MUG-01", "TEE-02"}
        assert await store.changed(conn, topic, {"MUG-01": "a", "TEE-02": "b"}) == set()
        assert await store.changed(conn, topic, {"MUG-01": "a", "TEE-02": "c", "CAP-03": "d"}
                                   ) == {"TEE-02", "CAP-03"}
        assert await store.changed(conn, other, {"MUG-01": "a"}) == {"MUG-01"}
        rows = await conn.fetch("SELECT topic, key, digest FROM feedback_published"
                                " ORDER BY topic, key")
    assert [tuple(r) for r in rows] == [
        (other, "MUG-01", "a"), (topic, "CAP-03", "d"), (topic, "MUG-01", "a"),
        (topic, "TEE-02", "c")]
