"""Inventory's run handlers against Postgres alone (tests/handlers/conftest.py): the hot path,
`intake.order_accepted`, decides a run exactly as its orders handled one by one (oldest first,
no oversell, the same events with the same ids), in a constant number of statements."""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from services.inventory import handlers, tasks
from services.inventory.handlers import order_accepted
from shared.contracts import (
    Address,
    OrderAccepted,
    OrderCancelRequested,
    OrderLine,
    OrderShipped,
    OrderSnapshot,
    ShippedParcel,
    SkuQuantity,
    StockAdjusted,
    Totals,
    derived_id,
)
from shared.topics import (
    INTAKE_ORDER_ACCEPTED,
    INTAKE_ORDER_CANCEL_REQUESTED,
    LOGISTICS_ORDER_SHIPPED,
    STOCK_ADJUSTMENTS,
)
from shared.uow import UnitOfWork

from .conftest import Published, ServiceDb

INTROSPECTION = re.compile(r"pg_catalog|pg_type|set_config\('jit'|current_setting\('jit'")
T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


def accepted(store: str, ext: str, lines: list[tuple[str, int]], *, country: str = "US",
             minute: int = 0) -> OrderAccepted:
    at = T0 + timedelta(minutes=minute)
    order_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{store}:{ext}"))
    total = sum((Decimal("10.00") * q for _, q in lines), Decimal("0.00"))
    snap = OrderSnapshot(
        order_id=order_id, store=store, external_order_id=ext, customer_id="c", placed_at=at,
        accepted_at=at, shipping_address=Address(name="N", line1="L", city="C",
                                                 postal_code="1", country=country),
        lines=[OrderLine(sku=s, quantity=q, unit_price=Decimal("10.00")) for s, q in lines],
        currency="USD", shipping_option="standard",
        totals=Totals(subtotal=total, discount=Decimal("0.00"), shipping_fee=Decimal("0.00"),
                      grand_total=total),
        payment_method="card", payment_status="paid")
    return OrderAccepted(order_id=order_id, order_key=snap.key, order=snap,
                         event_id=uuid.uuid5(uuid.NAMESPACE_URL, f"accepted:{store}:{ext}"),
                         occurred_at=at)


async def stock(db: ServiceDb, rows: list[tuple[str, str, int]]) -> None:
    """On-hand stock, with the receipts in the ledger (so it reconciles)."""
    for sku, warehouse, qty in rows:
        await db.pool.execute("INSERT INTO stock (sku, warehouse, on_hand) VALUES ($1, $2, $3)",
                              sku, warehouse, qty)
        await db.pool.execute("INSERT INTO ledger (sku, warehouse, kind, on_hand_delta,"
                              " reserved_delta) VALUES ($1, $2, 'receipt', $3, 0)",
                              sku, warehouse, qty)


async def products(db: ServiceDb, rows: list[tuple[str, str, str]]) -> None:
    for sku, category, price in rows:
        await db.pool.execute("INSERT INTO products (sku, category, price, attributes, active,"
                              " occurred_at) VALUES ($1, $2, $3, '{}', true, now())",
                              sku, category, Decimal(price))


def statuses(published: list[Published], key: str) -> list[str]:
    return [p.value["status"] for p in published
            if p.topic == "orders.status" and p.key == key]


def comparable(published: list[Published]) -> list[tuple[str, str | None, dict[str, Any]]]:
    """What was published, without the emission time (a clock reading)."""
    return [(p.topic, p.key, {k: v for k, v in p.value.items() if k != "occurred_at"})
            for p in published]


async def state(db: ServiceDb) -> list[tuple[Any, ...]]:
    orders = await db.pool.fetch(
        "SELECT order_id, order_key, status, snapshot, correlation_id, allocations, short_lines,"
        " substitutes, restock_eta, continues, trace, created_at FROM orders ORDER BY order_id")
    balances = await db.pool.fetch("SELECT sku, warehouse, on_hand, reserved FROM stock"
                                   " ORDER BY sku, warehouse")
    ledger = await db.pool.fetch("SELECT sku, warehouse, kind, reserved_delta, order_id, event_id"
                                 " FROM ledger ORDER BY id")
    return [tuple(r) for r in [*orders, *balances, *ledger]]


def counting(into: list[str], handler_fn: Callable[[UnitOfWork, list[Any]], Awaitable[None]]
             = order_accepted) -> Callable[[UnitOfWork, list[Any]], Awaitable[None]]:
    """`handler_fn` (`order_accepted` by default), recording the statements it sends."""
    async def handler(uow: UnitOfWork, events: list[Any]) -> None:
        def log(query: Any) -> None:
            if not INTROSPECTION.search(query.query):  # asyncpg's own, once per new type
                into.append(query.query)
        uow.conn.add_query_logger(log)
        try:
            await handler_fn(uow, events)
        finally:
            uow.conn.remove_query_logger(log)
    return handler


async def test_a_run_for_scarce_stock_reserves_the_oldest_and_backorders_the_rest(
        service_db: Any) -> None:
    """Given 3 units of A in WH-LA and a run of five orders of one A each, when the run is
    handled, then the first three (in the run's order) are reserved, the last two backordered,
    the stock is reserved to the last unit and the ledger says so; handling the run again
    emits nothing."""
    async with service_db("inventory") as db:
        await stock(db, [("A", "WH-LA", 3)])
        run = [accepted("s", f"o{i}", [("A", 1)], minute=i) for i in range(5)]
        published = await db.run(order_accepted, run, INTAKE_ORDER_ACCEPTED.name)
        assert [statuses(published, e.order_key) for e in run] == [
            ["reserved"], ["reserved"], ["reserved"], ["backordered"], ["backordered"]]
        assert [p.key for p in published if p.topic == "inventory.stock_reserved"] == [
            "s:o0", "s:o1", "s:o2"]
        row = await db.pool.fetchrow("SELECT on_hand, reserved FROM stock WHERE sku = 'A'")
        assert (row["on_hand"], row["reserved"]) == (3, 3)
        assert await db.pool.fetchval("SELECT sum(reserved_delta) FROM ledger WHERE kind ="
                                      " 'reserve'") == 3
        queue = await db.pool.fetch("SELECT order_key FROM orders WHERE status = 'backordered'"
                                    " ORDER BY created_at, order_id")
        assert [r["order_key"] for r in queue] == ["s:o3", "s:o4"]
        assert await db.run(order_accepted, run, INTAKE_ORDER_ACCEPTED.name) == []


async def test_a_run_is_decided_exactly_as_its_orders_one_by_one(service_db: Any) -> None:
    """Given the same stock, products, expected receipts and store policies in two schemas, and
    a run mixing single-warehouse orders, a split, an order shipping what is there (with its
    continuation), backorders with substitutes and a restock ETA that counts the older
    backorders of the run, and a repeat of an order, when one schema handles the run at once
    and the other one event per run, then both publish the same events with the same ids, in
    the same order, and hold the same orders, balances and ledger."""
    run = [
        accepted("s", "a1", [("A", 2)], minute=0),
        accepted("s", "a2", [("A", 2), ("B", 1)], minute=1),   # WH-SZ has both
        accepted("part", "p1", [("A", 3), ("C", 1)], minute=2),  # ships what is there
        accepted("s", "a3", [("A", 1)], minute=3),
        accepted("s", "a4", [("A", 2)], minute=4),               # backordered behind p1-B1
        accepted("s", "a5", [("B", 1), ("C", 1)], minute=5),     # p1 took the last C
        accepted("s", "a6", [("E", 1), ("F", 1)], minute=7),     # split WH-LA + WH-SZ

        accepted("s", "a1", [("A", 2)], minute=0),               # the same order again
        accepted("s", "d1", [("D", 1)], country="DE", minute=6),
    ]
    run[6] = run[6].model_copy(update={"event_id": uuid.uuid4()})  # a re-send, new id
    outcomes = []
    for at_once in (True, False):
        async with service_db("inventory") as db:
            await stock(db, [("A", "WH-LA", 3), ("A", "WH-SZ", 2), ("B", "WH-SZ", 2),
                             ("C", "WH-LA", 1), ("E", "WH-LA", 4), ("D", "WH-FRA", 1),
                             ("F", "WH-SZ", 1)])
            await products(db, [("A", "mugs", "10.00"), ("E", "mugs", "11.00"),
                                ("B", "pens", "3.00"), ("C", "caps", "8.00")])
            await db.pool.execute("INSERT INTO store_policies (store, partial) VALUES"
                                  " ('part', 'ship_available')")
            await db.pool.execute("INSERT INTO expected_receipts (sku, warehouse, quantity, eta)"
                                  " VALUES ('A', 'WH-LA', 3, $1), ('A', 'WH-LA', 10, $2)",
                                  T0 + timedelta(days=3), T0 + timedelta(days=9))
            published: list[Published] = []
            if at_once:
                published = await db.run(order_accepted, run, INTAKE_ORDER_ACCEPTED.name)
            else:
                for e in run:
                    published += await db.run(order_accepted, [e], INTAKE_ORDER_ACCEPTED.name)
            outcomes.append((comparable(published), await state(db)))
    assert outcomes[0][0] == outcomes[1][0]
    assert outcomes[0][1] == outcomes[1][1]
    published_, _ = outcomes[0]
    by_key: dict[str | None, list[str]] = {}
    for topic, key, value in published_:
        if topic == "orders.status":
            by_key.setdefault(key, []).append(value["status"])
    assert by_key == {
        "s:a1": ["reserved"], "s:a2": ["reserved"],
        "part:p1": ["backordered", "reserved"], "part:p1-B1": ["accepted", "backordered"],
        "s:a3": ["backordered"], "s:a4": ["backordered"], "s:a5": ["backordered"],
        "s:d1": ["reserved"], "s:a6": ["reserved"]}
    details = {key: value["details"] for topic, key, value in published_
               if topic == "orders.status" and value["status"] == "backordered"}
    # Older backorders are served first: p1-B1 (2 A) and a3 (1 A) wait ahead of a4 (2 A),
    # so a4 needs 5 of the receipts (3 on day 3, 10 on day 9).
    assert details["part:p1-B1"]["restock_eta"] == "2026-12-04T09:00:00Z"
    assert details["s:a3"]["restock_eta"] == "2026-12-04T09:00:00Z"
    assert details["s:a4"]["restock_eta"] == "2026-12-10T09:00:00Z"
    assert details["s:a4"]["substitutes"] == {"A": ["E"]}


async def test_the_hot_path_sends_the_same_statements_for_a_run_of_2_and_of_40(
        service_db: Any) -> None:
    """Given stock for every order and the reference data cached by a first run, when a run of
    2 and then a run of 40 accepted orders are handled, then the handler sends as many
    statements for both (the outbox rows go in with one more, at commit); so do two runs that
    open backorders."""
    async with service_db("inventory") as db:
        await stock(db, [(f"S{i}", "WH-LA", 5) for i in range(40)] + [("HOT", "WH-SZ", 100),
                                                                        ("WARM", "WH-LA", 1)])
        await db.run(order_accepted, [accepted("s", "warm", [("WARM", 1)])],
                     INTAKE_ORDER_ACCEPTED.name)  # the first run reads policies, warehouses
        small: list[str] = []
        large: list[str] = []
        await db.run(counting(small), [accepted("s", f"x{i}", [(f"S{i}", 1)]) for i in range(2)],
                     INTAKE_ORDER_ACCEPTED.name)
        await db.run(counting(large), [accepted("s", f"y{i}", [(f"S{i}", 2), ("HOT", 1)])
                                       for i in range(40)], INTAKE_ORDER_ACCEPTED.name)
        assert len(small) == len(large), (small, large)
        assert any("FOR UPDATE" in q and "ORDER BY sku, warehouse" in q for q in large)
        small_bo: list[str] = []
        large_bo: list[str] = []
        await db.run(counting(small_bo), [accepted("s", f"z{i}", [("NONE", 1)])
                                          for i in range(2)], INTAKE_ORDER_ACCEPTED.name)
        await db.run(counting(large_bo), [accepted("s", f"w{i}", [("NONE", 1), (f"S{i}", 9)])
                                          for i in range(40)], INTAKE_ORDER_ACCEPTED.name)
        # Policies, priorities and warehouses come from the reference cache, their versions
        # read with the run's inbox rows; the known orders and the stock are one statement.
        assert len(small_bo) == len(large_bo), (small_bo, large_bo)
        assert len(large) <= 4 and len(large_bo) <= 8, (large, large_bo)


async def test_a_cancellation_that_came_before_its_order_is_handled_as_if_it_came_after(
        service_db: Any) -> None:
    """Given a cancellation handled before its order's acceptance, when the order comes in a
    run with another, then both are reserved and the cancellation follows the order to
    fulfillment, with the same events and ids as when the two arrive the other way round (a
    restore re-reads them in time order); a backordered order's is confirmed."""
    def cancel_of(e: OrderAccepted) -> OrderCancelRequested:
        return OrderCancelRequested(order_id=e.order_id, order_key=e.order_key,
                                    reason="changed my mind", refund_due=Decimal("10.00"),
                                    currency="USD")
    first, second = accepted("s", "c1", [("A", 1)]), accepted("s", "c2", [("A", 1)])
    short = accepted("s", "c3", [("B", 1)])
    cancels = [cancel_of(first), cancel_of(short)]
    async with service_db("inventory") as db:
        await stock(db, [("A", "WH-LA", 5), ("B", "WH-LA", 0)])
        assert await db.run(handlers.cancel_requested, cancels,
                            INTAKE_ORDER_CANCEL_REQUESTED.name) == []
        early = await db.run(order_accepted, [first, second, short], INTAKE_ORDER_ACCEPTED.name)
        assert statuses(early, "s:c1") == ["reserved"] and statuses(early, "s:c2") == [
            "reserved"]
        assert statuses(early, "s:c3") == ["backordered", "cancelled"]
        assert [p.key for p in early if p.topic == "inventory.order_cancel_forwarded"] == [
            "s:c1"]
        assert await db.pool.fetchval("SELECT count(*) FROM parked_cancels") == 0
    async with service_db("inventory") as db:
        await stock(db, [("A", "WH-LA", 5), ("B", "WH-LA", 0)])
        late = await db.run(order_accepted, [first, second, short], INTAKE_ORDER_ACCEPTED.name)
        late += await db.run(handlers.cancel_requested, cancels,
                             INTAKE_ORDER_CANCEL_REQUESTED.name)
        assert sorted((p.topic, p.key, p.value["event_id"]) for p in early) == sorted(
            (p.topic, p.key, p.value["event_id"]) for p in late)


async def test_a_restock_refills_the_oldest_backorders_first(service_db: Any) -> None:
    """Given three backorders of A opened by one run, when 2 units are received, then the two
    oldest are reserved and the third still waits."""
    async with service_db("inventory") as db:
        await stock(db, [("A", "WH-LA", 0)])
        run = [accepted("s", f"r{i}", [("A", 1)], minute=i) for i in range(3)]
        await db.run(order_accepted, run, INTAKE_ORDER_ACCEPTED.name)
        received = StockAdjusted(sku="A", warehouse="WH-LA", kind="received", quantity=2)
        published = await db.run(handlers.stock_adjusted, [received], STOCK_ADJUSTMENTS.name)
        assert [statuses(published, e.order_key) for e in run] == [["reserved"], ["reserved"], []]


async def test_an_expired_backorder_is_cancelled_with_ids_derived_from_its_expiry(
        service_db: Any) -> None:
    """Given a backorder older than its store's limit, when the tick expires it, then the
    storefront hears `cancelled` with the refund due, the payment system the refund request and
    the other services `inventory.order_cancelled`, each with the id the expiry derives (so an
    expiry repeated after a crash emits the same events), on the order's trace."""
    async with service_db("inventory") as db:
        order = accepted("s", "old", [("A", 1)])
        await db.run(order_accepted, [order], INTAKE_ORDER_ACCEPTED.name)
        await db.pool.execute("UPDATE store_policies SET backorder_limit_s = 1")
        before = await db.pool.fetchval("SELECT max(id) FROM outbox")
        async with UnitOfWork.begin(db.pool, "inventory") as uow:
            assert await tasks.expire_backorders(uow) == 1
        published = await db.published(after=before)
        assert [(p.topic, p.key) for p in published] == [
            ("orders.status", "s:old"), ("payments.refunds", "s:old"),
            ("inventory.order_cancelled", "s:old")]
        cause = str(derived_id("backorder-expired", order.order_id))
        assert [p.value["event_id"] for p in published] == [
            str(derived_id(cause, p.topic, p.key, 0)) for p in published]
        status = published[0].value
        assert (status["status"], status["details"]["refund_due"]) == ("cancelled", "10.00")
        assert status["correlation_id"] == str(order.event_id)
        assert await db.pool.fetchval("SELECT status FROM orders") == "cancelled"


def shipped(event: OrderAccepted, warehouse: str = "WH-LA") -> OrderShipped:
    return OrderShipped(order_id=event.order_id, order_key=event.order_key, parcels=[
        ShippedParcel(parcel_id=f"p-{event.order_id}", warehouse=warehouse, carrier="ups",
                      service="ground", tracking_number=f"T{event.order_id[:8]}",
                      lines=[SkuQuantity(sku=ln.sku, quantity=ln.quantity)
                             for ln in event.order.lines])])


async def test_a_run_of_shipments_commits_stock_in_the_same_statements_whatever_its_size(
        service_db: Any) -> None:
    """Given reserved orders, when a run of 1 and then a run of 5 of their shipments (one of
    them twice) are handled, then on_hand and reserved went down by what shipped, once per
    order, each order is committed, the ledger reconciles, and both runs sent the same
    statements."""
    async with service_db("inventory") as db:
        await stock(db, [("A", "WH-LA", 20), ("B", "WH-LA", 20)])
        orders = [accepted("s", f"o{i}", [("A", 1), ("B", 2)], minute=i) for i in range(6)]
        await db.run(order_accepted, orders, INTAKE_ORDER_ACCEPTED.name)
        one: list[str] = []
        many: list[str] = []
        await db.run(counting(one, handlers.order_shipped), [shipped(orders[0])],
                     LOGISTICS_ORDER_SHIPPED.name)
        again = shipped(orders[1])
        await db.run(counting(many, handlers.order_shipped),
                     [again, *(shipped(o) for o in orders[2:]), again.model_copy(
                         update={"event_id": uuid.uuid4()})], LOGISTICS_ORDER_SHIPPED.name)
        assert one == many and len(one) == 5
        rows = {r["sku"]: (r["on_hand"], r["reserved"]) for r in await db.pool.fetch(
            "SELECT sku, on_hand, reserved FROM stock")}
        assert rows == {"A": (14, 0), "B": (8, 0)}
        assert {r["status"] for r in await db.pool.fetch("SELECT status FROM orders")} == {
            "committed"}
        assert await db.pool.fetchval("SELECT count(*) FROM ledger WHERE kind = 'commit'") == 12



async def race(db: ServiceDb, held: list[OrderAccepted], first: list[tuple[str, Any]],
               second: list[tuple[str, Any]]) -> list[BaseException]:
    """Two consumer runs (`[(topic, event), ...]`) on two connections, as two instances would
    handle them (`Consumer._transact`, the run-level lock included), while a third transaction
    holds the rows of the `held` orders: `first` starts and goes until it waits for a lock,
    then `second` does; once both wait, the rows are let go. Returns the runs' errors."""
    from shared.db import connect
    from shared.messaging import Consumer, RawMessage
    from shared.settings import get_settings

    schema = await db.pool.fetchval("SELECT current_schema()")
    pools = [await connect(get_settings().database_url, schema, min_size=1, max_size=1)
             for _ in range(2)]
    try:
        pids = [await p.fetchval("SELECT pg_backend_pid()") for p in pools]
        consumers = [Consumer("inventory", "unused:9092", pool, None,  # type: ignore[arg-type]
                              handlers.handlers) for pool in pools]
        tasks_: list[asyncio.Task[Any]] = []

        async def until_waiting(n: int) -> None:
            """Until `n` of the runs wait for a lock (or one ended: the assert says how)."""
            for _ in range(3000):
                waiting = await db.pool.fetchval(
                    "SELECT count(DISTINCT pid) FROM pg_locks WHERE NOT granted"
                    " AND pid = ANY($1::int[])", pids)
                if waiting >= n or any(t.done() for t in tasks_):
                    break
                await asyncio.sleep(0.01)
            assert not any(t.done() for t in tasks_), [t.result() for t in tasks_ if t.done()]

        async with db.pool.acquire() as blocker:
            holding = blocker.transaction()
            await holding.start()
            await blocker.execute("SELECT 1 FROM orders WHERE order_id = ANY($1::uuid[])"
                                  " FOR UPDATE", [uuid.UUID(e.order_id) for e in held])
            for n, (consumer, run) in enumerate(zip(consumers, [first, second], strict=True)):
                records = [(RawMessage(topic, 0, k, None, b"{}"), e)
                           for k, (topic, e) in enumerate(run)]
                tasks_.append(asyncio.create_task(consumer._transact(records)))
                await until_waiting(n + 1)
            await holding.rollback()
        results = await asyncio.gather(*tasks_, return_exceptions=True)
    finally:
        for p in pools:
            await p.close()
    return [r for r in results if isinstance(r, BaseException)]


async def balances(db: ServiceDb) -> dict[str, tuple[int, int]]:
    return {r["sku"]: (r["on_hand"], r["reserved"]) for r in await db.pool.fetch(
        "SELECT sku, on_hand, reserved FROM stock")}


async def test_two_runs_whose_segments_lock_stock_in_opposite_orders_both_commit(
        service_db: Any) -> None:
    """Two instances' runs, each a segment of accepted orders then a segment of shipments, the
    first reserving SKU A and shipping B, the second reserving B and shipping A: segment by
    segment they would lock A then B and B then A. Given the shipments' orders held by a third
    transaction until both runs wait (so each has done what it can before its second segment),
    when it lets go, then both runs commit (without the run-level lock Postgres found a
    deadlock and one run failed with DeadlockDetectedError), every reservation and commitment
    made once, the ledger reconciling."""
    from services.inventory import store as inventory_store

    async with service_db("inventory") as db:
        await stock(db, [("A", "WH-LA", 10), ("B", "WH-LA", 10)])
        ship_a, ship_b = accepted("s", "ship-a", [("A", 1)]), accepted("s", "ship-b", [("B", 1)])
        await db.run(order_accepted, [ship_a, ship_b], INTAKE_ORDER_ACCEPTED.name)
        errors = await race(
            db, [ship_a, ship_b],
            [(INTAKE_ORDER_ACCEPTED.name, accepted("s", "new-a", [("A", 2)], minute=1)),
             (LOGISTICS_ORDER_SHIPPED.name, shipped(ship_b))],
            [(INTAKE_ORDER_ACCEPTED.name, accepted("s", "new-b", [("B", 2)], minute=1)),
             (LOGISTICS_ORDER_SHIPPED.name, shipped(ship_a))])
        assert errors == []
        assert await balances(db) == {"A": (9, 2), "B": (9, 2)}
        assert dict(await db.pool.fetch("SELECT order_key, status FROM orders")) == {
            "s:ship-a": "committed", "s:ship-b": "committed", "s:new-a": "reserved",
            "s:new-b": "reserved"}
        async with db.pool.acquire() as conn:
            assert await inventory_store.reconcile(conn) == []


async def test_a_refill_run_and_a_run_of_reservations_and_shipments_both_commit(
        service_db: Any) -> None:
    """A run reserving A and then shipping B, and a restock of B whose refill reserves a
    backorder of A and B: the refill locks B (the receipt), then A (the backorder's plan) while
    the other run holds A and wants B. Given the shipment's order held until both runs wait,
    when it lets go, then both commit (without the run-level lock: a deadlock), the restock
    filling the backorder after the shipment."""
    from services.inventory import store as inventory_store

    async with service_db("inventory") as db:
        await stock(db, [("A", "WH-LA", 10), ("B", "WH-LA", 1)])
        ship_b = accepted("s", "ship-b", [("B", 1)])
        waits = accepted("s", "waits", [("A", 1), ("B", 1)], minute=1)
        await db.run(order_accepted, [ship_b, waits], INTAKE_ORDER_ACCEPTED.name)
        assert await db.pool.fetchval("SELECT status FROM orders WHERE order_key = 's:waits'"
                                      ) == "backordered"
        errors = await race(
            db, [ship_b],
            [(INTAKE_ORDER_ACCEPTED.name, accepted("s", "new-a", [("A", 2)], minute=2)),
             (LOGISTICS_ORDER_SHIPPED.name, shipped(ship_b))],
            [(STOCK_ADJUSTMENTS.name, StockAdjusted(sku="B", warehouse="WH-LA",
                                                    kind="received", quantity=1))])
        assert errors == []
        assert await balances(db) == {"A": (10, 3), "B": (1, 1)}
        assert dict(await db.pool.fetch("SELECT order_key, status FROM orders")) == {
            "s:ship-b": "committed", "s:waits": "reserved", "s:new-a": "reserved"}
        async with db.pool.acquire() as conn:
            assert await inventory_store.reconcile(conn) == []


async def test_the_expiry_look_finds_exactly_the_backorders_past_their_store_s_limit(
        service_db: Any) -> None:
    """A store's own limit wins over the default's; the default ('*', 14 days here) covers the
    stores without one; orders not backordered never expire; oldest first, and the limit of
    rows is kept (store.expired_backorders, read by store ranges since migration 0007)."""
    from services.inventory import store
    async with service_db("inventory") as db:
        await db.pool.execute("INSERT INTO store_policies (store, backorder_limit_s) VALUES"
                              " ('fast', 60), ('slow', 30 * 86400)")
        ages = {  # name: (store, status, age)
            "fast-due": ("fast", "backordered", "2 minutes"),
            "fast-young": ("fast", "backordered", "30 seconds"),
            "slow-20d": ("slow", "backordered", "20 days"),
            "slow-31d": ("slow", "backordered", "31 days"),
            "other-15d": ("other", "backordered", "15 days"),
            "other-13d": ("other", "backordered", "13 days"),
            "other-reserved": ("other", "reserved", "40 days"),
            "nostore-15d": (None, "backordered", "15 days"),
        }
        ids = {name: uuid.uuid5(uuid.NAMESPACE_URL, name) for name in ages}
        for name, (st, status, age) in ages.items():
            await db.pool.execute(
                "INSERT INTO orders (order_id, order_key, status, store, created_at)"
                " VALUES ($1, $2, $3, $4, now() - $5::text::interval)",
                ids[name], name, status, st, age)
        async with db.pool.acquire() as conn:
            due = await store.expired_backorders(conn, lock=False)
        assert [r["order_key"] for r in due] == ["slow-31d", "other-15d", "nostore-15d",
                                                 "fast-due"]
        async with db.pool.acquire() as conn, conn.transaction():
            assert [r["order_key"] for r in await store.expired_backorders(conn, 2)] == [
                "slow-31d", "other-15d"]
