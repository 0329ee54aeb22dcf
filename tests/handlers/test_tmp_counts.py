from typing import Any
from tests.handlers.test_inventory import stock, accepted, counting, order_accepted, INTAKE_ORDER_ACCEPTED
from tests.handlers.test_intake import with_product, counted_run, placed, handlers as ih
from tests.handlers.test_fulfillment import counting as fcounting, reserved, snapshot
from shared import topics

async def test_counts(service_db: Any) -> None:
    async with service_db("inventory") as db:
        await stock(db, [(f"S{i}", "WH-LA", 5) for i in range(40)] + [("WARM", "WH-LA", 1)])
        await db.run(order_accepted, [accepted("s", "warm", [("WARM", 1)])], INTAKE_ORDER_ACCEPTED.name)
        a: list[str] = []; b: list[str] = []
        await db.run(counting(a), [accepted("s", f"x{i}", [(f"S{i}", 1)]) for i in range(2)], INTAKE_ORDER_ACCEPTED.name)
        await db.run(counting(b), [accepted("s", f"z{i}", [("NONE", 1)]) for i in range(2)], INTAKE_ORDER_ACCEPTED.name)
        print("INVENTORY", len(a), len(b))
    async with service_db("intake") as db:
        await with_product(db)
        await db.run(ih.order_placed, [placed("w")], "orders.placed")
        one, _ = await counted_run(db, [placed("o-1")])
        print("INTAKE", one)
    seen: list[int] = []
    async with service_db("fulfillment") as db:
        await db.run(fcounting(seen), [reserved(snapshot("w"))], topics.INVENTORY_STOCK_RESERVED.name)
        await db.run(fcounting(seen), [reserved(snapshot("one"))], topics.INVENTORY_STOCK_RESERVED.name)
        print("FULFILLMENT", seen)
