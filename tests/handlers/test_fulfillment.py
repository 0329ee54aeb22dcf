"""Fulfillment's run handlers and warehouse steps in a unit of work, against Postgres alone
(tests/handlers/conftest.py): reserved orders become pick tasks in a constant number of
statements per run, cancellations, and the simulated floor's `packed` with derived ids."""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from services.fulfillment import domain, handlers, store, warehouse
from shared import topics
from shared.contracts import (
    Allocation,
    OrderCancelRequested,
    OrderSnapshot,
    ProductUpserted,
    StockReserved,
    derived_id,
)
from shared.uow import UnitOfWork


def snapshot(ext: str, *, customer: str = "c-1", line1: str = "100 Main St",
             option: str = "standard", sku: str = "MUG", qty: int = 1) -> OrderSnapshot:
    now = datetime.now(UTC).isoformat()
    return OrderSnapshot.model_validate({
        "order_id": str(uuid.uuid4()), "store": "shop-test-1", "external_order_id": ext,
        "customer_id": customer, "placed_at": now, "accepted_at": now,
        "shipping_address": {"name": "Ana Lima", "line1": line1, "line2": None,
                             "city": "Austin", "region": "TX", "postal_code": "73301",
                             "country": "US"},
        "lines": [{"sku": sku, "quantity": qty, "unit_price": "12.50"}], "currency": "USD",
        "shipping_option": option,
        "totals": {"subtotal": "12.50", "discount": "0.00", "shipping_fee": "0.00",
                   "grand_total": "12.50"},
        "payment_method": "card", "payment_status": "paid"})


def reserved(snap: OrderSnapshot, *where: tuple[str, int]) -> StockReserved:
    sku = snap.lines[0].sku
    return StockReserved(
        order_id=snap.order_id, order_key=snap.key, order=snap,
        allocations=[Allocation(warehouse=wh, lines=[{"sku": sku, "quantity": q}])
                     for wh, q in (where or (("WH-LA", snap.lines[0].quantity),))])


class Counting:
    """A connection that counts the statements sent through it."""

    def __init__(self, conn: Any) -> None:
        self.conn = conn
        self.statements = 0

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.conn, name)
        if name in ("execute", "executemany", "fetch", "fetchrow", "fetchval"):
            async def counted(*args: Any, **kwargs: Any) -> Any:
                self.statements += 1
                return await attr(*args, **kwargs)
            return counted
        return attr


def counting(seen: list[int]) -> Any:
    async def handle(uow: UnitOfWork, events: list[Any]) -> None:
        real = uow.conn
        uow.conn = counter = Counting(real)  # type: ignore[assignment]
        try:
            await handlers.stock_reserved(uow, events)
        finally:
            uow.conn = real
        seen.append(counter.statements)
    return handle


async def test_a_run_of_reservations_is_a_constant_number_of_statements(
        service_db: Any) -> None:
    """Given runs of 1 and of 12 reserved orders (two of one buyer to one address, one split
    across two warehouses), when each run is handled, then both take the same statements, every
    order waits for its picks in arrival order, the buyer's two orders share a merge key and
    the split order's picks are never merged."""
    seen: list[int] = []
    async with service_db("fulfillment") as db:
        assert await db.run(counting(seen), [reserved(snapshot("one"))],
                            topics.INVENTORY_STOCK_RESERVED.name) == []
        a = snapshot("a", customer="buyer")
        b = snapshot("b", customer="buyer", line1="100 MAIN ST.")
        split = snapshot("split", qty=3)
        others = [snapshot(f"o{i}", customer=f"c{i}") for i in range(9)]
        run = [reserved(a), reserved(b), reserved(split, ("WH-LA", 2), ("WH-FRA", 1)),
               *(reserved(s) for s in others)]
        assert await db.run(counting(seen), run, topics.INVENTORY_STOCK_RESERVED.name) == []
        assert seen[0] == seen[1] <= 4
        rows = await db.pool.fetch("SELECT o.order_key, o.status, p.warehouse, p.merge_key,"
                                   " p.status AS pick FROM picks p JOIN orders o"
                                   " USING (order_id) ORDER BY p.seq")
        keys = [r["order_key"] for r in rows]
        assert keys == ["shop-test-1:one", a.key, b.key, split.key, split.key,
                        *(s.key for s in others)]
        assert {r["status"] for r in rows} == {"awaiting_pick"}
        assert {r["pick"] for r in rows} == {"waiting"}
        merge = {(r["order_key"], r["warehouse"]): r["merge_key"] for r in rows}
        assert merge[(a.key, "WH-LA")] == merge[(b.key, "WH-LA")]
        assert merge[(split.key, "WH-LA")] == merge[(split.key, "WH-FRA")] == \
            f"order:{split.order_id}"
        corr = await db.pool.fetchval("SELECT correlation_id FROM orders WHERE order_key = $1",
                                      a.key)
        assert corr == str(run[0].event_id)


async def test_a_short_picked_order_reallocated_re_picks_only_what_was_short(
        service_db: Any) -> None:
    """Given an order split across WH-LA and WH-FRA whose WH-FRA part was found short, when
    inventory re-allocates it (WH-FRA's part moved to WH-SZ) in a run that also reserves it a
    third time, then WH-LA's pick is untouched, WH-FRA's drops out, WH-SZ's waits, and the
    third reservation changes nothing."""
    async with service_db("fulfillment") as db:
        snap = snapshot("short", qty=2)
        await db.run(handlers.stock_reserved, [reserved(snap, ("WH-LA", 1), ("WH-FRA", 1))])
        oid = uuid.UUID(snap.order_id)
        await db.pool.execute("UPDATE picks SET status = 'picking' WHERE order_id = $1", oid)
        await db.pool.execute("UPDATE picks SET status = 'short' WHERE order_id = $1 AND"
                              " warehouse = 'WH-FRA'", oid)
        await db.pool.execute("UPDATE orders SET status = 'short_picked' WHERE order_id = $1",
                              oid)
        again = reserved(snap, ("WH-LA", 1), ("WH-SZ", 1))
        await db.run(handlers.stock_reserved, [again, reserved(snap, ("WH-LA", 2))])
        picks = {r["warehouse"]: r["status"] for r in await db.pool.fetch(
            "SELECT warehouse, status FROM picks WHERE order_id = $1", oid)}
        assert picks == {"WH-LA": "picking", "WH-FRA": "cancelled", "WH-SZ": "waiting"}
        order = await db.pool.fetchrow("SELECT * FROM orders WHERE order_id = $1", oid)
        assert order["status"] == "awaiting_pick"
        assert '"WH-SZ"' in order["allocations"]


def test_plan_reserved_is_pure_and_sees_its_own_run() -> None:
    """The domain's plan: the same order twice in a run is new once, then ignored."""
    snap = snapshot("twice")
    r = domain.Reserved(snap.order_id, snap.key, [{"warehouse": "WH-LA", "lines": []}],
                        "c", snap.shipping_address.model_dump(), "express")
    plan = domain.plan_reserved([r, r], {}, {})
    assert [o.order_id for o in plan.new] == [snap.order_id]
    assert plan.outcomes == [("new", ""), ("ignored", "awaiting_pick")]
    assert [p.express for p in plan.picks] == [True]


async def test_cancellations_before_and_after_packing(service_db: Any) -> None:
    """Given one order waiting for its wave and one packed, when a run of their cancellations
    is handled, then the first is cancelled here (`cancelled` with the refund, and
    `fulfillment.order_cancelled`), the second is forwarded to logistics; handled again in a
    new schema, the same events get the same ids."""
    waiting, packed = snapshot("w"), snapshot("p")

    def cancel(snap: OrderSnapshot) -> OrderCancelRequested:
        return OrderCancelRequested(order_id=snap.order_id, order_key=snap.key,
                                    reason="changed my mind", refund_due=Decimal("12.50"),
                                    currency="USD")
    events = [cancel(waiting), cancel(packed)]
    ids = []
    for _ in range(2):
        async with service_db("fulfillment") as db:
            await db.run(handlers.stock_reserved, [reserved(waiting), reserved(packed)])
            await db.pool.execute("UPDATE orders SET status = 'packed' WHERE order_key = $1",
                                  packed.key)
            out = await db.run(handlers.cancel_forwarded, events)
            assert [(p.topic, p.key) for p in out] == [
                ("orders.status", waiting.key), ("payments.refunds", waiting.key),
                ("fulfillment.order_cancelled", waiting.key),
                ("fulfillment.order_cancel_forwarded", packed.key)]
            assert out[0].value["status"] == "cancelled"
            assert out[0].value["causation_id"] == str(events[0].event_id)
            assert out[3].value["causation_id"] == str(events[1].event_id)
            assert await db.pool.fetchval("SELECT status FROM picks WHERE order_id = $1",
                                          uuid.UUID(waiting.order_id)) == "cancelled"
            ids.append([p.value["event_id"] for p in out])
    assert ids[0] == ids[1]


async def test_the_simulated_floor_packs_with_ids_derived_from_the_order(
        service_db: Any) -> None:
    """Given two reserved orders of one buyer (merged into one parcel), when a pass releases a
    wave and the floor works it, each in a unit of work, then both orders are `packed` in one
    parcel, and each order's `packed` and `fulfillment.order_packed` have ids derived from
    `packed/<order>` with the order's own correlation id."""
    cfg = warehouse.Config(wave_size=2)
    async with service_db("fulfillment") as db:
        a = snapshot("m1", customer="buyer")
        b = snapshot("m2", customer="buyer")
        run = [reserved(a), reserved(b)]
        await db.run(handlers.stock_reserved, run)
        async with UnitOfWork.begin(db.pool, "fulfillment") as uow:
            [wave_id] = await warehouse.release_waves(uow, cfg)
        async with UnitOfWork.begin(db.pool, "fulfillment", cause=f"wave:{wave_id}") as uow:
            await warehouse.simulate_wave(uow, wave_id, cfg, random.Random(1))
        out = await db.published()
        packed = [p for p in out if p.topic == "fulfillment.order_packed"]
        assert [p.key for p in packed] == [a.key, b.key]
        assert packed[0].value["parcels"][0]["parcel_id"] == \
            packed[1].value["parcels"][0]["parcel_id"]
        for snap, event, p in zip((a, b), run, packed, strict=True):
            assert p.value["event_id"] == str(derived_id(
                f"packed/{snap.order_id}", "fulfillment.order_packed", snap.key, 0))
            assert p.value["correlation_id"] == str(event.event_id)
        statuses = [p for p in out if p.topic == "orders.status"]
        assert [s.value["status"] for s in statuses] == ["packed", "packed"]
        assert statuses[0].value["correlation_id"] == str(run[0].event_id)
        assert await db.pool.fetchval("SELECT status FROM waves WHERE wave_id = $1",
                                      wave_id) == "done"


async def test_a_product_update_is_seen_by_the_next_read_in_the_run(service_db: Any) -> None:
    """Given the products memoized in a unit of work, when a product update is handled in it,
    then the next read sees the new weight (the memo was forgotten) and the SKU has its bin."""
    async with service_db("fulfillment") as db:
        product = ProductUpserted(sku="KETTLE", name="Kettle", category="home", price=Decimal("30"),
                                  currency="USD", weight_g=1200,
                                  dims_mm={"l": 200, "w": 150, "h": 220}, attributes=["fragile"])
        weights: list[int] = []

        async def handle_then_read(uow: UnitOfWork, events: list[Any]) -> None:
            before = await store.items(uow, [("KETTLE", 1)])
            await handlers.product_upserted(uow, events)
            after = await store.items(uow, [("KETTLE", 1)])
            weights.extend([before[0].weight_g, after[0].weight_g])

        await db.run(handle_then_read, [product], topics.CATALOG_PRODUCTS.name)
        assert weights == [domain.DEFAULT_WEIGHT_G, 1200]
        assert await db.pool.fetchval("SELECT zone FROM bin_locations WHERE sku = 'KETTLE'")
