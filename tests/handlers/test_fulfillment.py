"""Fulfillment's run handlers and warehouse steps in a unit of work, against Postgres alone
(tests/handlers/conftest.py): reserved orders become pick tasks in a constant number of
statements per run, cancellations, and the simulated floor's `packed` with derived ids."""

from __future__ import annotations

import random
import re
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
from shared.parking import orders_sweep
from shared.uow import UnitOfWork

from .conftest import Published


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


async def test_a_cancellation_that_came_before_the_reservation_is_handled_after_it(
        service_db: Any) -> None:
    """Given a cancellation handled before its order's reservation, when the reservation comes
    in a run with another, then both join their waves and the first is then cancelled, picks
    and all, with the same events and ids as when the two arrive the other way round."""
    first, other = snapshot("early"), snapshot("other")
    cancel = OrderCancelRequested(order_id=first.order_id, order_key=first.key,
                                  reason="changed my mind", refund_due=Decimal("12.50"),
                                  currency="USD")
    run = [reserved(first), reserved(other)]
    async with service_db("fulfillment") as db:
        assert await db.run(handlers.cancel_forwarded, [cancel]) == []
        early = await db.run(handlers.stock_reserved, run)
        assert [(p.topic, p.key) for p in early] == [
            ("orders.status", first.key), ("payments.refunds", first.key),
            ("fulfillment.order_cancelled", first.key)]
        assert await db.pool.fetchval("SELECT status FROM picks WHERE order_id = $1",
                                      uuid.UUID(first.order_id)) == "cancelled"
        assert await db.pool.fetchval("SELECT count(*) FROM parked_cancels") == 0
    async with service_db("fulfillment") as db:
        late = await db.run(handlers.stock_reserved, run)
        late += await db.run(handlers.cancel_forwarded, [cancel])
    assert [p.value["event_id"] for p in early] == [p.value["event_id"] for p in late]


async def test_the_sweep_handles_a_cancellation_parked_while_its_order_came_in(
        service_db: Any) -> None:
    """Given a reserved order and its cancellation parked anyway (two instances: one parked it
    while the other inserted the order, neither seeing the other's row), when the sweep
    passes, then the order is cancelled with the ids of a cancellation coming second; a
    second pass finds nothing."""
    snap = snapshot("raced")
    cancel = OrderCancelRequested(order_id=snap.order_id, order_key=snap.key,
                                  reason="changed my mind", refund_due=Decimal("12.50"),
                                  currency="USD")
    async with service_db("fulfillment") as db:
        await db.run(handlers.stock_reserved, [reserved(snap)])
        await db.pool.execute("INSERT INTO parked_cancels (order_id, event) VALUES ($1, $2)",
                              uuid.UUID(snap.order_id), cancel.model_dump_json())
        sweep = orders_sweep(handlers._cancel)
        async with UnitOfWork.begin(db.pool, "fulfillment") as uow:
            assert await sweep.once(uow) == 1
        out = await db.published()
        assert [(p.topic, p.key) for p in out] == [
            ("orders.status", snap.key), ("payments.refunds", snap.key),
            ("fulfillment.order_cancelled", snap.key)]
        assert out[0].value["causation_id"] == str(cancel.event_id)
        async with UnitOfWork.begin(db.pool, "fulfillment") as uow:
            assert await sweep.once(uow) == 0
    async with service_db("fulfillment") as db:
        await db.run(handlers.stock_reserved, [reserved(snap)])
        late = await db.run(handlers.cancel_forwarded, [cancel])
    assert [p.value["event_id"] for p in out] == [p.value["event_id"] for p in late]


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


# --- the simulated floor: a wave in a constant number of statements ---------------------------

INTROSPECTION = re.compile(r"pg_catalog|pg_type|set_config\('jit'|current_setting\('jit'")


async def work_wave(db: Any, wave_id: str, cfg: warehouse.Config, seen: list[int] | None = None
                    ) -> list[Published]:
    """`simulate_wave` in the wave's unit of work, as a pass does; the statements it sends are
    appended to `seen` (asyncpg's query logger); returns what it published."""
    before = await db.pool.fetchval("SELECT coalesce(max(id), 0) FROM outbox")
    sent: list[str] = []

    def log(query: Any) -> None:
        if not INTROSPECTION.search(query.query):  # asyncpg's own, once per new type
            sent.append(query.query)
    async with UnitOfWork.begin(db.pool, "fulfillment", cause=f"wave:{wave_id}") as uow:
        uow.conn.add_query_logger(log)
        try:
            await warehouse.simulate_wave(uow, wave_id, cfg, random.Random(1))
        finally:
            uow.conn.remove_query_logger(log)
    if seen is not None:
        seen.append(len(sent))
    published: list[Published] = await db.published(after=before)
    return published


async def release(db: Any, cfg: warehouse.Config) -> dict[str, str]:
    """A pass's release: warehouse -> its new wave."""
    async with UnitOfWork.begin(db.pool, "fulfillment") as uow:
        waves = await warehouse.release_waves(uow, cfg)
    rows = await db.pool.fetch("SELECT warehouse, wave_id FROM waves WHERE wave_id = ANY($1)",
                               waves)
    return {r["warehouse"]: r["wave_id"] for r in rows}


def two_lines(ext: str) -> OrderSnapshot:
    """An order of two mugs and a lamp."""
    snap = snapshot(ext, customer=f"buyer-{ext}", sku="MUG", qty=2)
    return snap.model_copy(update={"lines": [
        *snap.lines, snap.lines[0].model_copy(update={"sku": "LAMP", "quantity": 1,
                                                      "unit_price": Decimal("30.00")})]})


def packed_events(out: list[Published]) -> list[tuple[str, str, str]]:
    return [(p.topic, p.key or "", p.value.get("status", "")) for p in out]


async def test_a_simulated_wave_takes_the_same_statements_for_one_order_as_for_many(
        service_db: Any) -> None:
    """Given the catalogue's mug and (fragile) lamp, when a wave of one order is worked, and
    then a wave of nine (two of one buyer merged into one parcel, an order split with
    Frankfurt whose Frankfurt part was packed first, six others), then both waves take the
    same number of statements; every order is `packed` with `fulfillment.order_packed`
    (ids derived from `packed/<order>`), the merged parcel is linked to both orders with their
    own lines, the split order's parcels are numbered under it across both warehouses and
    announced together, and the waves are done."""
    cfg = warehouse.Config(wave_seconds=0.0)
    async with service_db("fulfillment") as db:
        await db.pool.execute(
            "INSERT INTO products (sku, weight_g, dims, attributes, occurred_at) VALUES"
            " ('MUG', 350, '{100,80,90}', '{}', now()),"
            " ('LAMP', 900, '{200,150,120}', '{fragile}', now())")
        async with UnitOfWork.begin(db.pool, "fulfillment") as uow:  # the reference data cached
            await store.products(uow, ["MUG", "LAMP"])
            await store.boxes(uow)
        seen: list[int] = []

        # A wave of one order
        one = snapshot("one")
        await db.run(handlers.stock_reserved, [reserved(one)])
        out = await work_wave(db, (await release(db, cfg))["WH-LA"], cfg, seen)
        assert packed_events(out) == [("orders.status", one.key, "packed"),
                                      ("fulfillment.order_packed", one.key, "")]
        [parcel] = out[1].value["parcels"]
        assert (parcel["parcel_id"], parcel["box"], parcel["weight_g"]) == (
            f"P-{uuid.UUID(one.order_id).hex[:12]}-1", "BOX-S", 350 + 120)

        # A wave of many: a merged pair, a split order, six others
        a = snapshot("a", customer="buyer")
        b = snapshot("b", customer="buyer", line1="100 MAIN ST.", qty=2)
        split = two_lines("split")
        others = [snapshot(f"o{i}", customer=f"c{i}") for i in range(6)]
        split_reserved = StockReserved(
            order_id=split.order_id, order_key=split.key, order=split, allocations=[
                Allocation(warehouse="WH-LA", lines=[{"sku": "MUG", "quantity": 2}]),
                Allocation(warehouse="WH-FRA", lines=[{"sku": "LAMP", "quantity": 1}])])
        run = [reserved(a), reserved(b), split_reserved, *(reserved(s) for s in others)]
        await db.run(handlers.stock_reserved, run)
        waves = await release(db, cfg)
        fra = await work_wave(db, waves["WH-FRA"], cfg)
        assert fra == []  # the split order waits for its part in Los Angeles
        out = await work_wave(db, waves["WH-LA"], cfg, seen)

        # Then the same statements for one order as for nine
        assert seen[0] == seen[1] <= 11
        # And every order packed, in the wave's order, with ids derived from packed/<order>
        order = [a, b, split, *others]
        assert packed_events(out) == [e for s in order for e in (
            ("orders.status", s.key, "packed"), ("fulfillment.order_packed", s.key, ""))]
        for s, (status, event) in zip(order, zip(out[::2], out[1::2], strict=True),
                                      strict=True):
            assert event.value["event_id"] == str(derived_id(
                f"packed/{s.order_id}", "fulfillment.order_packed", s.key, 0))
            assert status.value["event_id"] == str(derived_id(
                f"packed/{s.order_id}", "orders.status", s.key, 0))
        packed = {p.key: p.value for p in out if p.topic == "fulfillment.order_packed"}
        # the merged pair: one parcel under a, each order with its own lines and value
        lead = f"P-{uuid.UUID(a.order_id).hex[:12]}-1"
        for s, qty in ((a, 1), (b, 2)):
            [p] = packed[s.key]["parcels"]
            assert (p["parcel_id"], p["box"], p["weight_g"]) == (lead, "BOX-S", 3 * 350 + 120)
            assert p["lines"] == [{"sku": "MUG", "quantity": qty}]
            assert Decimal(p["declared_value"]) == Decimal("12.50") * qty
        links = await db.pool.fetch("SELECT order_id, lines FROM parcel_orders"
                                    " WHERE parcel_id = $1 ORDER BY lines", lead)
        assert [(str(r["order_id"]), r["lines"]) for r in links] == [
            (a.order_id, '[{"sku": "MUG", "quantity": 1}]'),
            (b.order_id, '[{"sku": "MUG", "quantity": 2}]')]
        # the split order: its Frankfurt parcel first (number 1), then Los Angeles' (2)
        prefix = f"P-{uuid.UUID(split.order_id).hex[:12]}-"
        assert [(p["parcel_id"], p["warehouse"], p["box"], p["lines"], p["attributes"],
                 p["declared_value"]) for p in packed[split.key]["parcels"]] == [
            (f"{prefix}1", "WH-FRA", "BOX-M", [{"sku": "LAMP", "quantity": 1}], ["fragile"],
             "30.00"),
            (f"{prefix}2", "WH-LA", "BOX-S", [{"sku": "MUG", "quantity": 2}], [], "25.00")]
        # And the rows: every order packed, every pick packed, each parcel of the wave tagged
        assert {r["status"] for r in await db.pool.fetch("SELECT status FROM orders")} == {
            "packed"}
        assert {r["status"] for r in await db.pool.fetch("SELECT status FROM picks")} == {
            "packed"}
        parcels = await db.pool.fetch("SELECT parcel_id, wave_id FROM parcels"
                                      " WHERE wave_id = $1", waves["WH-LA"])
        assert len(parcels) == 1 + 1 + len(others)  # the pair's, the split's, one each
        assert await db.pool.fetchval(
            "SELECT count(*) FROM waves WHERE status <> 'done'") == 0


async def test_a_simulated_wave_of_short_picks_and_qc_holds_is_announced_order_by_order(
        service_db: Any) -> None:
    """Given a wave of three orders (two merged), when every bin is found short, then each
    order is `short_picked` with a `fulfillment.short_picked` caused by the wave; given
    another such wave, when every scale reading is off, then each order of each group goes on
    QC hold (`qc_weight`, its warehouse and wave), no parcel is made, and the wave stays open.
    Neither takes more statements than a wave that packs."""
    async with service_db("fulfillment") as db:
        async with UnitOfWork.begin(db.pool, "fulfillment") as uow:  # the reference data cached
            await store.products(uow, ["MUG"])
            await store.boxes(uow)
        seen: list[int] = []
        for tag, cfg in (("short", warehouse.Config(wave_seconds=0.0, short_pick_rate=1.0)),
                         ("scale", warehouse.Config(wave_seconds=0.0, weigh_error_rate=1.0))):
            a = snapshot(f"{tag}-a", customer=f"{tag}-buyer")
            b = snapshot(f"{tag}-b", customer=f"{tag}-buyer")
            c = snapshot(f"{tag}-c", customer=f"{tag}-other")
            await db.run(handlers.stock_reserved, [reserved(a), reserved(b), reserved(c)])
            wave_id = (await release(db, cfg))["WH-LA"]
            out = await work_wave(db, wave_id, cfg, seen)
            if tag == "short":
                assert [(p.topic, p.key) for p in out] == [
                    ("fulfillment.short_picked", s.key) for s in (a, b, c)]
                for s, p in zip((a, b, c), out, strict=True):
                    assert p.value["event_id"] == str(derived_id(
                        f"wave:{wave_id}", "fulfillment.short_picked", s.key, 0))
                    assert (p.value["sku"], p.value["missing"]) == ("MUG", 1)
                expected = {"short_picked"}
            else:
                assert packed_events(out) == [("orders.status", s.key, "on_hold")
                                              for s in (a, b, c)]
                for p in out:
                    assert p.value["reasons"][0]["code"] == "qc_weight"
                    assert p.value["details"] == {"warehouse": "WH-LA", "wave_id": wave_id}
                expected = {"on_hold"}
            statuses = await db.pool.fetch(
                "SELECT o.status AS o, p.status AS p FROM orders o JOIN picks p"
                " USING (order_id) WHERE p.wave_id = $1", wave_id)
            assert {r["o"] for r in statuses} == expected
            assert await db.pool.fetchval("SELECT count(*) FROM parcels") == 0
            wave_status = await db.pool.fetchval("SELECT status FROM waves WHERE wave_id = $1",
                                                 wave_id)
            assert wave_status == ("done" if tag == "short" else "released")
        assert seen[0] <= seen[1] <= 11


async def test_the_wave_pass_looks_in_one_statement_and_knows_its_next_deadline(
        service_db: Any) -> None:
    """Given nothing waiting, when the pass looks (`floor_now`), then it takes one statement,
    nothing is due and it looks again after `idle_seconds`; given one order waiting, then its
    next look is when the wave's timer runs out; given a wave's worth, then a release is due,
    and once released (no picking time), that wave is due for the pickers and nothing else."""
    cfg = warehouse.Config(wave_size=2, wave_seconds=30, idle_seconds=1.0)
    async with service_db("fulfillment") as db, db.pool.acquire() as conn:
        counted = Counting(conn)
        idle = await warehouse.floor_now(counted, cfg, True)  # type: ignore[arg-type]
        assert counted.statements == 1
        assert (idle.release, idle.due, idle.next_in) == (False, [], 1.0)
        await db.run(handlers.stock_reserved, [reserved(snapshot("t1"))])
        one = await warehouse.floor_now(conn, cfg, True)
        assert not one.release and one.due == []
        assert 25 < one.next_in <= 30
        await db.run(handlers.stock_reserved, [reserved(snapshot("t2"))])
        full = await warehouse.floor_now(conn, cfg, True)
        assert full.release
        async with UnitOfWork.begin(db.pool, "fulfillment") as uow:
            [wave_id] = await warehouse.release_waves(uow, cfg, full.waiting)
        after = await warehouse.floor_now(conn, cfg, True)
        assert (after.release, after.due, after.next_in) == (False, [wave_id], 1.0)
        manual = await warehouse.floor_now(conn, cfg, False)
        assert manual.due == []
