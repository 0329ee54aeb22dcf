"""Logistics' run handlers in a unit of work, against Postgres alone (tests/handlers/conftest.py):
a run of packed orders shipped in a constant number of statements, merged parcels in one run,
orders without a service, customs completed by new product data, tracking to the door and
cancellations."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from services.logistics import handlers
from shared import topics
from shared.contracts import (
    OrderCancelRequested,
    OrderPacked,
    OrderSnapshot,
    Parcel,
    ProductUpserted,
    TrackingUpdated,
)
from shared.uow import UnitOfWork
from tests.handlers.test_fulfillment import Counting


def snapshot(ext: str, country: str = "US", postal_code: str = "73301") -> OrderSnapshot:
    now = datetime.now(UTC).isoformat()
    return OrderSnapshot.model_validate({
        "order_id": str(uuid.uuid4()), "store": "shop-test-1", "external_order_id": ext,
        "customer_id": "c-1", "placed_at": now, "accepted_at": now,
        "shipping_address": {"name": "Ana Lima", "line1": "100 Main St", "line2": None,
                             "city": "Austin", "region": "TX", "postal_code": postal_code,
                             "country": country},
        "lines": [{"sku": "MUG", "quantity": 1, "unit_price": "12.50"}], "currency": "USD",
        "shipping_option": "standard",
        "totals": {"subtotal": "12.50", "discount": "0.00", "shipping_fee": "0.00",
                   "grand_total": "12.50"},
        "payment_method": "card", "payment_status": "paid"})


def packed(snap: OrderSnapshot, *parcel_ids: str, weight_g: int = 800) -> OrderPacked:
    return OrderPacked(
        order_id=snap.order_id, order_key=snap.key, order=snap,
        parcels=[Parcel(parcel_id=pid, warehouse="WH-LA", box="BOX-S", weight_g=weight_g,
                        dims_mm={"l": 230, "w": 170, "h": 110},
                        lines=[{"sku": "MUG", "quantity": 1}], declared_value=Decimal("12.50"))
                 for pid in (parcel_ids or (f"P-{snap.external_order_id}-1",))])


def counting(seen: list[int]) -> Any:
    async def handle(uow: UnitOfWork, events: list[Any]) -> None:
        real = uow.conn
        uow.conn = counter = Counting(real)  # type: ignore[assignment]
        try:
            await handlers.order_packed(uow, events)
        finally:
            uow.conn = real
        seen.append(counter.statements)
    return handle


async def test_a_run_of_packed_orders_ships_in_a_constant_number_of_statements(
        service_db: Any) -> None:
    """Given the reference data cached by a first run, and runs of 1 and of 10 packed US orders
    from WH-LA, when each run is handled, then both take the same statements, and every order
    is `shipped` with a carrier, a tracking number of its own and its `logistics.order_shipped`,
    caused by its packed event."""
    seen: list[int] = []
    async with service_db("logistics") as db:
        await db.run(handlers.order_packed, [packed(snapshot("warm"))],
                     topics.FULFILLMENT_ORDER_PACKED.name)  # caches catalogue and warehouses
        first = packed(snapshot("one"))
        await db.run(counting(seen), [first], topics.FULFILLMENT_ORDER_PACKED.name)
        run = [packed(snapshot(f"o{i}")) for i in range(10)]
        out = await db.run(counting(seen), run, topics.FULFILLMENT_ORDER_PACKED.name)
        # the orders, their parcels' shipments, the carriers' scores, the tracking numbers,
        # the dock check's products, orders and shipments inserted as checked (shipped); the
        # catalogue and the warehouses are cached, and their versions were read with the run's
        # inbox rows (UnitOfWork.first_times). Before the check ran on the parcels in hand, the
        # shipments were read back, checked and handed over, and the orders shipped: 11.
        assert seen[0] == seen[1] == 7
        assert [(p.topic, p.key) for p in out] == [
            pair for e in run for pair in (("orders.status", e.order_key),
                                           ("logistics.order_shipped", e.order_key))]
        for e, status, shipped in zip(run, out[::2], out[1::2], strict=True):
            assert status.value["status"] == "shipped"
            assert status.value["causation_id"] == str(e.event_id)
            assert shipped.value["causation_id"] == str(e.event_id)
        numbers = [p.value["parcels"][0]["tracking_number"] for p in out[1::2]]
        assert len(set(numbers)) == 10 and all(numbers)
        rows = await db.pool.fetch("SELECT status FROM orders")
        assert {r["status"] for r in rows} == {"shipped"}
        # each parcel written once, as the dock check left it: handed over, read at the dock
        # (the automatic warehouse reads what packing weighed), nothing held
        parcels = await db.pool.fetch(
            "SELECT status, shipped_at, weight_g, label_weight_g, measured_weight_g,"
            " hold_reasons FROM shipments")
        assert len(parcels) == 12
        for p in parcels:
            assert p["status"] == "shipped" and p["shipped_at"] is not None
            assert p["measured_weight_g"] == p["label_weight_g"] == p["weight_g"]
            assert json.loads(p["hold_reasons"]) == []


async def test_a_merged_parcel_in_one_run_ships_with_the_first_orders_tracking(
        service_db: Any) -> None:
    """Given two orders of one buyer packed into one parcel, both in one run, when it is
    handled, then the first order's shipment carries the parcel and the second ships with its
    carrier and tracking number (the run is handled in two parts)."""
    async with service_db("logistics") as db:
        a, b = snapshot("m1"), snapshot("m2")
        out = await db.run(handlers.order_packed, [packed(a, "P-merged-1"),
                                                   packed(b, "P-merged-1")])
        shipped = [p for p in out if p.topic == "logistics.order_shipped"]
        assert [p.key for p in shipped] == [a.key, b.key]
        assert shipped[0].value["parcels"][0]["tracking_number"] == \
            shipped[1].value["parcels"][0]["tracking_number"]
        assert await db.pool.fetchval("SELECT count(*) FROM shipments") == 1
        assert await db.pool.fetchval("SELECT count(*) FROM parcel_orders") == 1


async def test_no_service_then_customs_completed_by_product_data(service_db: Any) -> None:
    """Given a run of an order to a country no service of WH-LA serves and one to Germany
    whose product has no customs data, when the run is handled, then the first is a
    `delivery_exception` (no_eligible_service) and the second is `on_hold`
    (customs_incomplete); when the product's data arrives, the second ships, caused by it."""
    async with service_db("logistics") as db:
        nowhere, abroad = snapshot("kp", country="KP"), snapshot("de", country="DE",
                                                                 postal_code="10115")
        out = await db.run(handlers.order_packed, [packed(nowhere), packed(abroad)])
        status = {p.key: p.value for p in out if p.topic == "orders.status"}
        assert status[nowhere.key]["status"] == "delivery_exception"
        assert status[nowhere.key]["reasons"][0]["code"] == "no_eligible_service"
        assert status[abroad.key]["status"] == "on_hold"
        assert status[abroad.key]["reasons"][0]["code"] == "customs_incomplete"
        product = ProductUpserted(sku="MUG", name="Mug", category="home", price=Decimal("12.5"),
                                  currency="USD", weight_g=400,
                                  dims_mm={"l": 100, "w": 100, "h": 100},
                                  hs_code="6912.00", origin_country="CN")
        out = await db.run(handlers.product_upserted, [product], topics.CATALOG_PRODUCTS.name)
        assert [(p.topic, p.key, p.value.get("status")) for p in out] == [
            ("orders.status", abroad.key, "shipped"),
            ("logistics.order_shipped", abroad.key, None)]
        assert out[0].value["causation_id"] == str(product.event_id)
        assert out[0].value["correlation_id"] == await db.pool.fetchval(
            "SELECT correlation_id FROM orders WHERE order_key = $1", abroad.key)


async def test_tracking_to_the_door_and_a_cancellation_refused(service_db: Any) -> None:
    """Given a shipped order, when a run of its carrier's scans (in transit, delivered) is
    handled, then it is `delivered` once; a cancellation after that is refused, and one for
    an order logistics has not seen waits for its parcels and is handled after them, as if it
    had come second (shipped, so refused)."""
    async with service_db("logistics") as db:
        snap = snapshot("t")
        out = await db.run(handlers.order_packed, [packed(snap)])
        number = out[1].value["parcels"][0]["tracking_number"]
        now = datetime.now(UTC)
        scans = [TrackingUpdated(tracking_number=number, carrier="USPS", status=s,
                                 occurred_at=now + timedelta(hours=i))
                 for i, s in enumerate(("in_transit", "delivered"))]
        out = await db.run(handlers.tracking_updated, scans, topics.CARRIER_TRACKING.name)
        assert [(p.topic, p.value.get("status")) for p in out] == [
            ("orders.status", "delivered"), ("logistics.order_delivered", None)]
        assert out[0].value["causation_id"] == str(scans[1].event_id)

        def cancel(s: OrderSnapshot) -> OrderCancelRequested:
            return OrderCancelRequested(order_id=s.order_id, order_key=s.key, reason="no",
                                        refund_due=Decimal("12.50"), currency="USD")
        unseen = snapshot("unseen")
        out = await db.run(handlers.cancel_forwarded, [cancel(snap), cancel(unseen)])
        assert [(p.topic, p.key) for p in out] == [("logistics.order_cancel_refused", snap.key)]
        out = await db.run(handlers.order_packed, [packed(unseen)])
        assert [(p.topic, p.key, p.value.get("status")) for p in out] == [
            ("orders.status", unseen.key, "shipped"),
            ("logistics.order_shipped", unseen.key, None),
            ("logistics.order_cancel_refused", unseen.key, None)]
        assert await db.pool.fetchval("SELECT count(*) FROM parked_cancels") == 0
