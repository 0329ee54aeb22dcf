"""Intake's run handlers (services/intake/handlers.py) against Postgres alone: a run of
`orders.placed` is reviewed with a constant number of statements, decides as one-by-one would,
and emits per order in the order of the run."""

from __future__ import annotations

import contextlib
import uuid
from datetime import UTC, datetime
from typing import Any

from services.intake import handlers
from shared.contracts import CancelRequested, OrderPlaced, ProductUpserted
from shared.messaging import RawMessage
from shared.uow import UnitOfWork
from tools.storefront import order as order_payload
from tools.storefront import order_event

SKU = "H-MUG"


class Counting:
    """A connection that counts the statements sent through it."""

    def __init__(self, conn: Any) -> None:
        self._conn = conn
        self.statements = 0

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._conn, name)
        if name in ("execute", "executemany", "fetch", "fetchrow", "fetchval"):
            async def counted(*args: Any, **kw: Any) -> Any:
                self.statements += 1
                return await attr(*args, **kw)
            return counted
        return attr


def placed(ext: str, **kw: Any) -> OrderPlaced:
    return OrderPlaced.model_validate(order_payload("h-shop", ext, [(SKU, 1, "12.50")], **kw))


async def with_product(db: Any) -> None:
    await db.run(handlers.product_upserted, [ProductUpserted.model_validate({
        "sku": SKU, "name": "Mug", "category": "home", "price": "12.50", "currency": "USD",
        "weight_g": 300, "dims_mm": {"l": 100, "w": 100, "h": 100},
        "occurred_at": datetime.now(UTC).isoformat()})], "catalog.products")


async def counted_run(db: Any, events: list[OrderPlaced]) -> tuple[int, list[Any]]:
    seen: list[int] = []

    async def handler(uow: UnitOfWork, todo: list[Any]) -> None:
        counting = Counting(uow.conn)
        uow.conn = counting  # type: ignore[assignment]
        await handlers.order_placed(uow, todo)
        seen.append(counting.statements)

    out = await db.run(handler, events, "orders.placed")
    return seen[0], out


async def test_a_run_of_orders_takes_as_many_statements_as_one(service_db: Any) -> None:
    """Given a known product and the reference data cached by a first run, when one order is
    handled as a run and then ten others as one run, then both take the same number of
    statements, and each order of the run is accepted and handed on (status, then
    intake.order_accepted) in the order of the run."""
    async with service_db("intake") as db:
        await with_product(db)
        await db.run(handlers.order_placed, [placed("o-warm")], "orders.placed")
        one, _ = await counted_run(db, [placed("o-1")])
        ten = [placed(f"o-{n}") for n in range(2, 12)]
        many, out = await counted_run(db, ten)
        assert many == one
        assert [(p.topic, p.key) for p in out] == [
            (t, f"h-shop:o-{n}") for n in range(2, 12)
            for t in ("orders.status", "intake.order_accepted")]
        assert {p.value["status"] for p in out if p.topic == "orders.status"} == {"accepted"}
        assert await db.pool.fetchval("SELECT count(*) FROM decisions") == 12


async def test_a_later_order_of_the_run_sees_the_earlier_ones(service_db: Any) -> None:
    """Given a store whose policy flags duplicates within an hour, when one run holds an order
    and the same items from the same customer under another id, then the second is held as a
    suspected duplicate of the first, as if they had come in two runs."""
    async with service_db("intake") as db:
        await with_product(db)
        await db.pool.execute("INSERT INTO store_policies (store, high_value_threshold,"
                              " duplicate_window_minutes) VALUES ('h-shop', 2000, 60)")
        first, second = placed("d-1", customer_id="c-same"), placed("d-2", customer_id="c-same")
        out = await db.run(handlers.order_placed, [first, second], "orders.placed")
        statuses = [(p.key, p.value["status"], [r["code"] for r in p.value["reasons"]])
                    for p in out if p.topic == "orders.status"]
        assert statuses == [("h-shop:d-1", "accepted", []),
                            ("h-shop:d-2", "on_hold", ["suspected_duplicate"])]
        holds = await db.pool.fetch("SELECT codes FROM holds WHERE closed_at IS NULL")
        assert [list(h["codes"]) for h in holds] == [["suspected_duplicate"]]


async def test_a_cancellation_that_came_before_its_order_is_handled_as_if_it_came_after(
        service_db: Any) -> None:
    """Given a cancellation handled before its order, when the order's run comes, then the
    order is reviewed and the cancellation handed down the chain, with the same events and ids
    as when the two arrive the other way round (a restore re-reads them in time order); the
    same order re-sent in the run changes nothing."""
    async with service_db("intake") as db:
        await with_product(db)
        cancel = CancelRequested.model_validate(order_event("h-shop", "e-1", reason="oops"))
        assert await db.run(handlers.cancel_requested, [cancel],
                            "orders.cancel_requested") == []
        order, other = placed("e-1"), placed("e-2")
        again = order.model_copy(update={"event_id": uuid.uuid4()})
        early = await db.run(handlers.order_placed, [order, other, again], "orders.placed")
        assert [(p.topic, p.key, p.value.get("status")) for p in early] == [
            ("orders.status", "h-shop:e-1", "accepted"),
            ("intake.order_accepted", "h-shop:e-1", None),
            ("orders.status", "h-shop:e-2", "accepted"),
            ("intake.order_accepted", "h-shop:e-2", None),
            ("intake.order_cancel_requested", "h-shop:e-1", None)]
        assert early[-1].value["reason"] == "oops"
        assert await db.pool.fetchval(
            "SELECT status FROM orders WHERE external_order_id = 'e-1'") == "cancel_requested"
        assert await db.pool.fetchval("SELECT count(*) FROM early_cancellations") == 0
    # The other way round, on a fresh schema: the same events, the same ids.
    async with service_db("intake") as db:
        await with_product(db)
        first = await db.run(handlers.order_placed, [order, other], "orders.placed")
        second = await db.run(handlers.cancel_requested, [cancel], "orders.cancel_requested")
        assert sorted((p.topic, p.key, p.value["event_id"]) for p in early) == sorted(
            (p.topic, p.key, p.value["event_id"]) for p in first + second)


async def test_the_sweep_handles_a_cancellation_parked_while_its_order_came_in(
        service_db: Any) -> None:
    """Given an accepted order and its cancellation parked anyway (two instances at once), when
    the sweep passes, then the cancellation is handed down the chain as if it came late."""
    async with service_db("intake") as db:
        await with_product(db)
        await db.run(handlers.order_placed, [placed("e-1")], "orders.placed")
        cancel = CancelRequested.model_validate(order_event("h-shop", "e-1", reason="oops"))
        await db.pool.execute("INSERT INTO early_cancellations (store, external_order_id,"
                              " reason, event) VALUES ('h-shop', 'e-1', 'oops', $1)",
                              cancel.model_dump_json())
        async with UnitOfWork.begin(db.pool, "intake") as uow:
            assert await handlers.PARKED_SWEEP.once(uow) == 1
        out = await db.published("intake.order_cancel_requested")
        assert [(p.key, p.value["causation_id"]) for p in out] == [
            ("h-shop:e-1", str(cancel.event_id))]
        assert await db.pool.fetchval("SELECT count(*) FROM early_cancellations") == 0


async def test_an_order_whose_early_cancellation_was_kept_before_0008_arrives_cancelled(
        service_db: Any) -> None:
    """Given a cancellation kept by a version that parked no event (migration 0008), when the
    order's run comes, then the order is stored cancelled and the storefront hears `cancelled`
    with the refund due."""
    async with service_db("intake") as db:
        await with_product(db)
        await db.pool.execute("INSERT INTO early_cancellations (store, external_order_id,"
                              " reason) VALUES ('h-shop', 'e-1', 'oops')")
        out = await db.run(handlers.order_placed, [placed("e-1")], "orders.placed")
        assert [(p.topic, p.key, p.value.get("status")) for p in out] == [
            ("orders.status", "h-shop:e-1", "cancelled"),
            ("payments.refunds", "h-shop:e-1", None)]
        assert out[0].value["reasons"][0]["message"] == "oops"


async def test_handling_the_same_run_again_emits_the_same_event_ids(service_db: Any) -> None:
    """Given a run handled once and rolled back, when it is handled again, then the events it
    emits have the same ids (derived from the orders' events)."""
    async with service_db("intake") as db:
        await with_product(db)
        events = [placed("r-1"), placed("r-2")]
        ids: list[list[str]] = []

        async def handle_then_roll_back(uow: UnitOfWork, todo: list[Any]) -> None:
            await handlers.order_placed(uow, todo)
            ids.append([str(e) for e in uow._rows])  # the rows to be inserted
            raise RuntimeError("roll back")

        for _ in range(2):
            with contextlib.suppress(RuntimeError):
                await db.run(handle_then_roll_back, events, "orders.placed")
        assert ids[0] and len(ids[0]) == 4
        out = await db.run(handlers.order_placed, events, "orders.placed")
        first = [p.value["event_id"] for p in out]
        assert len(first) == 4 and all(f in row for f, row in zip(first, ids[1], strict=True))


async def test_a_malformed_order_that_names_itself_is_rejected(service_db: Any) -> None:
    """Given an `orders.placed` value that breaks the contract but names its store and id, when
    on_invalid gets it in a unit of work, then the order is rejected as malformed, once."""
    async with service_db("intake") as db:
        raw = RawMessage("orders.placed", 0, 7, b"h-shop:m-1",
                         b'{"store": "h-shop", "external_order_id": "m-1", "lines": "x"}')
        for _ in range(2):
            async with db.pool.acquire() as conn, UnitOfWork.transaction(
                    conn, "intake", cause="orders.placed/0/7") as uow:
                assert await handlers.reject_malformed(uow, raw, "malformed", "lines: bad")
        out = await db.published()
        assert [(p.key, p.value["status"], p.value["reasons"][0]["code"]) for p in out] == [
            ("h-shop:m-1", "rejected", "malformed")]


async def test_a_held_order_re_sent_changed_in_the_same_run_is_reviewed_again(
        service_db: Any) -> None:
    """Given a store that holds orders with payment pending, when one run holds an order and
    then its re-send, now paid, then the re-send is reviewed again against the order the run
    wrote: the hold is released and the order handed on, after its `on_hold`."""
    async with service_db("intake") as db:
        await with_product(db)
        await db.pool.execute("INSERT INTO store_policies (store, high_value_threshold,"
                              " hold_pending_payment) VALUES ('h-shop', 2000, true)")
        pending = placed("p-1", payment_status="pending", customer_id="c-p")
        paid = OrderPlaced.model_validate({**pending.model_dump(mode="json"),
                                           "event_id": str(uuid.uuid4()),
                                           "payment": {"method": "card", "status": "paid"}})
        out = await db.run(handlers.order_placed, [pending, paid], "orders.placed")
        assert [(p.topic, p.value.get("status"),
                 [r["code"] for r in p.value.get("reasons", [])]) for p in out] == [
            ("orders.status", "on_hold", ["payment_pending"]),
            ("orders.status", "accepted", ["hold_released"]),
            ("intake.order_accepted", None, [])]
        assert await db.pool.fetchval("SELECT resolution FROM holds") == "released"


async def test_a_run_of_shipments_marks_its_orders_in_as_many_statements_as_one(
        service_db: Any) -> None:
    """Given accepted orders, when one shipment is handled as a run and then three (two parcels
    of one order among them) as another, then both runs take the same number of statements and
    every shipped order is marked shipped (what the cancel-after-dispatch check reads)."""
    from shared.contracts import OrderShipped, ShippedParcel, SkuQuantity

    def shipped(order_id: str, key: str, parcel: str) -> OrderShipped:
        return OrderShipped(order_id=order_id, order_key=key, parcels=[ShippedParcel(
            parcel_id=parcel, warehouse="WH-LA", carrier="ups", service="ground",
            tracking_number=f"T-{parcel}", lines=[SkuQuantity(sku=SKU, quantity=1)])])

    async with service_db("intake") as db:
        await with_product(db)
        await db.run(handlers.order_placed, [placed(f"s-{n}") for n in range(3)],
                     "orders.placed")
        ids = {r["external_order_id"]: str(r["order_id"]) for r in await db.pool.fetch(
            "SELECT order_id, external_order_id FROM orders")}
        counts: list[int] = []

        async def counted(events: list[OrderShipped]) -> None:
            async def handler(uow: UnitOfWork, todo: list[Any]) -> None:
                counting = Counting(uow.conn)
                uow.conn = counting  # type: ignore[assignment]
                await handlers.order_shipped(uow, todo)
                counts.append(counting.statements)
            await db.run(handler, events, "logistics.order_shipped")

        await counted([shipped(ids["s-0"], "h-shop:s-0", "p0")])
        await counted([shipped(ids["s-1"], "h-shop:s-1", "p1a"),
                       shipped(ids["s-2"], "h-shop:s-2", "p2"),
                       shipped(ids["s-1"], "h-shop:s-1", "p1b")])
        assert counts[0] == counts[1] == 1
        assert await db.pool.fetchval("SELECT count(*) FROM orders WHERE shipped") == 3
