"""Aftersales' handlers take runs (services/aftersales/handlers.py), against Postgres alone: the
orders' path writes a whole run with one statement, and each request of a run is the cause of
what it publishes (derived ids, causation)."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from services.aftersales import handlers as h
from shared.contracts import (
    Address,
    AftersalesRequested,
    FeedbackGiven,
    OrderAccepted,
    OrderDelivered,
    OrderLine,
    OrderShipped,
    OrderSnapshot,
    ProductUpserted,
    ShippedParcel,
    SkuQuantity,
    Totals,
    derived_id,
)
from shared.uow import UnitOfWork

NOW = datetime.now(UTC)
STORE = "shop-h"


def snapshot(ext: str, sku: str = "MUG-01", price: str = "10.00") -> OrderSnapshot:
    return OrderSnapshot(
        order_id=str(uuid.uuid4()), store=STORE, external_order_id=ext, customer_id="c-1",
        placed_at=NOW, accepted_at=NOW,
        shipping_address=Address(name="Ana Lima", line1="100 Main St", city="Austin",
                                 postal_code="73301", country="US"),
        lines=[OrderLine(sku=sku, quantity=1, unit_price=Decimal(price))], currency="USD",
        shipping_option="standard",
        totals=Totals(subtotal=Decimal(price), discount=Decimal("0.00"),
                      shipping_fee=Decimal("5.00"), grand_total=Decimal(price) + 5),
        payment_method="card", payment_status="paid")


def accepted(snap: OrderSnapshot) -> OrderAccepted:
    return OrderAccepted(order_id=snap.order_id, order_key=snap.key, order=snap,
                         correlation_id=f"corr-{snap.external_order_id}")


def shipped(snap: OrderSnapshot, warehouse: str = "WH-LA") -> OrderShipped:
    return OrderShipped(order_id=snap.order_id, order_key=snap.key, parcels=[ShippedParcel(
        parcel_id=f"P-{snap.external_order_id}", warehouse=warehouse, carrier="ups",
        service="ground", tracking_number=f"1Z{snap.external_order_id}",
        lines=[SkuQuantity(sku=ln.sku, quantity=ln.quantity) for ln in snap.lines])])


def delivered(snap: OrderSnapshot, at: datetime = NOW) -> OrderDelivered:
    return OrderDelivered(order_id=snap.order_id, order_key=snap.key, delivered_at=at)


def product(sku: str, **fields: Any) -> ProductUpserted:
    return ProductUpserted(sku=sku, name=sku, category="kitchen", currency="USD", weight_g=300,
                           dims_mm={"l": 100, "w": 100, "h": 100}, **fields)


def _introspection(query: str) -> bool:
    """asyncpg's own look-ups of a statement's types (once per connection and statement)."""
    return "typeinfo_tree" in query or "set_config('jit'" in query


def counted(handler: Any, counts: list[int]) -> Any:
    """`handler`, counting the SQL statements it sends on the unit of work's connection (asyncpg
    calls query loggers soon after each statement: the loop is given a turn before counting)."""
    async def run(uow: UnitOfWork, events: list[Any]) -> None:
        sent: list[str] = []

        def logger(query: Any) -> None:
            sent.append(query.query)

        conn: Any = uow.conn
        for _ in range(3):  # the loggers of the statements before the handler's have run
            await asyncio.sleep(0)
        conn.add_query_logger(logger)
        try:
            await handler(uow, events)
            for _ in range(3):
                await asyncio.sleep(0)
        finally:
            conn.remove_query_logger(logger)
        counts.append(len([q for q in sent if not _introspection(q)]))
    return run


async def test_the_orders_path_writes_a_run_of_any_size_with_one_statement_per_handler(
        service_db: Any) -> None:
    """Given three orders, when their acceptances (one re-sent with a new event id), shipments
    (one order shipped twice) and deliveries come as runs of one topic each, then each handler
    sends one statement for its run, the first acceptance stays, the last shipment wins, and
    nothing is published."""
    snaps = [snapshot(f"o-{n}-{uuid.uuid4().hex[:6]}") for n in range(3)]
    counts: list[int] = []
    async with service_db("aftersales") as db:
        first = accepted(snaps[0])
        resent = OrderAccepted(order_id=snaps[0].order_id, order_key=snaps[0].key,
                               order=snaps[0], correlation_id="corr-other")
        assert await db.run(counted(h.order_accepted, counts),
                            [first, resent, *(accepted(s) for s in snaps[1:])]) == []
        assert await db.run(counted(h.order_shipped, counts),
                            [shipped(snaps[0], "WH-NJ"), *(shipped(s) for s in snaps)]) == []
        assert await db.run(counted(h.order_delivered, counts),
                            [delivered(s) for s in snaps]) == []
        assert counts == [1, 1, 1]
        rows = {r["order_key"]: r for r in await db.pool.fetch("SELECT * FROM orders")}
    assert sorted(rows) == sorted(s.key for s in snaps)
    one = rows[snaps[0].key]
    assert one["correlation_id"] == f"corr-{snaps[0].external_order_id}"
    assert [p["warehouse"] for p in json.loads(one["parcels"])] == ["WH-LA"]
    assert all(r["delivered_at"] == NOW for r in rows.values())


async def test_a_run_of_catalogue_updates_keeps_the_newest_per_sku(service_db: Any) -> None:
    """Given a run where a SKU's older update comes after its newer one, then the newer stands
    (one statement), as it would one event at a time; a later run with an older update changes
    nothing."""
    newer = product("CUP-1", returnable=False, price=Decimal("4.00"), occurred_at=NOW)
    older = product("CUP-1", returnable=True, price=Decimal("3.00"),
                    occurred_at=NOW - timedelta(hours=1))
    other = product("CUP-2", returnable=True, price=Decimal("5.00"), occurred_at=NOW)
    counts: list[int] = []
    async with service_db("aftersales") as db:
        await db.run(counted(h.product_upserted, counts), [newer, older, other])
        await db.run(h.product_upserted, [product(
            "CUP-2", returnable=False, price=Decimal("1.00"),
            occurred_at=NOW - timedelta(days=1))])
        rows = {r["sku"]: r for r in await db.pool.fetch("SELECT * FROM products")}
    assert counts == [1]
    assert (rows["CUP-1"]["returnable"], rows["CUP-1"]["price"]) == (False, Decimal("4.00"))
    assert rows["CUP-2"]["returnable"] is True


async def test_each_request_of_a_run_causes_its_own_events_with_derived_ids(
        service_db: Any) -> None:
    """Given two delivered orders, when a run brings a refund without return (damaged, below the
    policy's 15.00) for one and a return for the other, then each request's events are caused by
    it: ids derived from the request's event id, topic, key and rank, its id as causation; the
    refund includes shipping; handling the run again publishes nothing more."""
    a, b = snapshot(f"a-{uuid.uuid4().hex[:6]}"), snapshot(f"b-{uuid.uuid4().hex[:6]}")
    async with service_db("aftersales") as db:
        await db.run(h.order_accepted, [accepted(a), accepted(b)])
        await db.run(h.order_shipped, [shipped(a), shipped(b)])
        await db.run(h.order_delivered, [delivered(a), delivered(b)])
        refund = AftersalesRequested(store=STORE, external_order_id=a.external_order_id,
                                     request_id="rma-1", kind="refund", reason="damaged",
                                     lines=[SkuQuantity(sku="MUG-01", quantity=1)])
        back = AftersalesRequested(store=STORE, external_order_id=b.external_order_id,
                                   request_id="rma-2", kind="return", reason="changed_mind",
                                   lines=[SkuQuantity(sku="MUG-01", quantity=1)])
        out = await db.run(h.request_received, [refund, back], "aftersales.requests")
        again = await db.run(h.request_received, [refund, back], "aftersales.requests")
    assert again == []
    assert [(p.topic, p.key, p.value.get("status")) for p in out] == [
        ("orders.status", a.key, "return_authorized"),
        ("payments.refunds", a.key, None),
        ("orders.status", a.key, "refunded"),
        ("orders.status", b.key, "return_authorized"),
        ("aftersales.return_label_requested", b.key, None)]
    assert out[1].value["amount"] == "15.00" and out[2].value["details"]["amount"] == "15.00"
    assert out[4].value["warehouse"] == "WH-LA"
    assert out[4].value["correlation_id"] == f"corr-{b.external_order_id}"
    ranks: dict[tuple[str, str], int] = {}
    for p, cause in zip(out, [refund, refund, refund, back, back], strict=True):
        rank = ranks.get((p.topic, str(cause.event_id)), 0)
        ranks[(p.topic, str(cause.event_id))] = rank + 1
        assert p.value["event_id"] == str(derived_id(cause.event_id, p.topic, p.key, rank))
        if "causation_id" in p.value:
            assert p.value["causation_id"] == str(cause.event_id)


async def test_low_ratings_of_a_run_open_follow_up_cases(service_db: Any) -> None:
    """Given a run of a 1-star and a 5-star feedback (and the 1-star again), then both are
    kept once and only the low rating opens a follow-up case."""
    low = FeedbackGiven(store=STORE, external_order_id="o-1", rating=1,
                        comment="arrived broken")
    high = FeedbackGiven(store=STORE, external_order_id="o-2", rating=5, comment="great")
    async with service_db("aftersales") as db:
        assert await db.run(h.feedback, [low, high, low], "customer.feedback") == []
        kept = await db.pool.fetchval("SELECT count(*) FROM feedback")
        cases = await db.pool.fetch("SELECT order_key, rating FROM follow_ups")
    assert kept == 2
    assert [(c["order_key"], c["rating"]) for c in cases] == [(f"{STORE}:o-1", 1)]
