"""Inventory's runs on hot SKUs with several segments each, and the deadlocks Postgres detects:
`python -m tools.bench_mixed_runs --orders 2000`.

Publishes accepted orders (`intake.order_accepted`, three of 8 hot SKUs each) and, from the
201st on, the shipment of the order accepted 200 before (`logistics.order_shipped`),
interleaved, so inventory's runs hold segments of both topics; waits until inventory has
every order and the shipments committed, and prints the time and the deadlocks detected in the
shop's database meanwhile (pg_stat_database). Run it with two inventory instances, e.g. the
stack's and `SHOPKEEPER_INVENTORY_PORT=8502 python -m services.inventory` (docs/inventory.md
"Locking: one order per run"). The orders go down the rest of the pipeline too, whose own
`logistics.order_shipped` then finds them committed (a warning each in inventory's log)."""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import time
import uuid
from datetime import UTC, datetime
from decimal import Decimal

import asyncpg
from aiokafka import AIOKafkaProducer

from shared.contracts import (
    Address,
    OrderAccepted,
    OrderLine,
    OrderShipped,
    OrderSnapshot,
    ShippedParcel,
    SkuQuantity,
    Totals,
)
from shared.settings import get_settings

from . import storefront as sf

BEHIND = 200  # an order ships this many orders after it was accepted


def accepted(ext: str, skus: list[str]) -> OrderAccepted:
    now = datetime.now(UTC)
    order_id = str(uuid.uuid4())
    total = Decimal("10.00") * len(skus)
    snap = OrderSnapshot(
        order_id=order_id, store="mix", external_order_id=ext, customer_id="c", placed_at=now,
        accepted_at=now, shipping_address=Address(name="N", line1="L", city="C",
                                                 postal_code="1", country="US"),
        lines=[OrderLine(sku=s, quantity=1, unit_price=Decimal("10.00")) for s in skus],
        currency="USD", shipping_option="standard",
        totals=Totals(subtotal=total, discount=Decimal("0.00"), shipping_fee=Decimal("0.00"),
                      grand_total=total),
        payment_method="card", payment_status="paid")
    return OrderAccepted(order_id=order_id, order_key=snap.key, order=snap)


def shipped(event: OrderAccepted) -> OrderShipped:
    return OrderShipped(order_id=event.order_id, order_key=event.order_key, parcels=[
        ShippedParcel(parcel_id=f"p-{event.order_id}", warehouse="WH-LA", carrier="ups",
                      service="ground", tracking_number=f"T{event.order_id[:8]}",
                      lines=[SkuQuantity(sku=ln.sku, quantity=ln.quantity)
                             for ln in event.order.lines])])


async def deadlocks(db: asyncpg.Connection) -> int:
    return int(await db.fetchval(
        "SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()") or 0)


async def run(orders: int) -> None:
    settings = get_settings()
    skus = [f"MIX-{uuid.uuid4().hex[:5]}-{i}" for i in range(8)]
    db = await asyncpg.connect(settings.database_url)
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers)
    await producer.start()
    try:
        for sku in skus:
            await producer.send_and_wait("catalog.products", json.dumps(
                sf.product(sku, "10.00")).encode(), key=sku.encode())
            await producer.send_and_wait("stock.adjustments", json.dumps(
                sf.stock(sku, "WH-LA", 1_000_000)).encode(), key=sku.encode())
        await asyncio.sleep(5)  # the stock is there before the first order
        before = await deadlocks(db)
        rng = random.Random(7)
        tag = uuid.uuid4().hex[:6]
        sent: list[OrderAccepted] = []
        started = time.perf_counter()
        for i in range(orders):
            event = accepted(f"{tag}-{i}", rng.sample(skus, 3))
            sent.append(event)
            await producer.send("intake.order_accepted", event.model_dump_json().encode(),
                                key=event.order_key.encode())
            if i >= BEHIND:
                old = sent[i - BEHIND]
                await producer.send("logistics.order_shipped", shipped(old).model_dump_json()
                                    .encode(), key=old.order_key.encode())
            if i % 50 == 0:
                await asyncio.sleep(0.05)
        await producer.flush()
        ids = [uuid.UUID(e.order_id) for e in sent]
        known = committed = 0
        for _ in range(600):
            row = await db.fetchrow(
                "SELECT count(*) AS known, count(*) FILTER (WHERE status = 'committed')"
                " AS committed FROM inventory.orders WHERE order_id = ANY($1::uuid[])", ids)
            assert row is not None  # an aggregate always returns its row
            known, committed = row["known"], row["committed"]
            if known == orders and committed >= orders - BEHIND:
                break
            await asyncio.sleep(1)
        print(f"{orders} accepted orders and {orders - BEHIND} shipments: inventory had"
              f" {known} orders ({committed} committed) after"
              f" {time.perf_counter() - started:.1f} s; deadlocks detected:"
              f" {await deadlocks(db) - before}", flush=True)
    finally:
        await producer.stop()
        await db.close()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m tools.bench_mixed_runs")
    parser.add_argument("--orders", type=int, default=2000)
    asyncio.run(run(parser.parse_args().orders))


if __name__ == "__main__":
    main()
