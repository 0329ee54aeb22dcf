"""The dock in manual warehouse mode, on logistics' real schema: a parcel waits for its dock
scan before hand-over. Runs the service's own check in a transaction that is rolled back, so no
event leaves and the running stack (automatic mode) is untouched."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from decimal import Decimal

import asyncpg
import pytest

from services.logistics import handlers
from shared.contracts import OrderSnapshot
from shared.settings import Settings, service_database_url
from shared.uow import UnitOfWork

SNAP = {
    "store": "shop-test-1", "customer_id": "c-1",
    "placed_at": datetime.now(UTC).isoformat(), "accepted_at": datetime.now(UTC).isoformat(),
    "shipping_address": {"name": "Ana Lima", "line1": "100 Main St", "line2": None,
                         "city": "Austin", "region": "TX", "postal_code": "73301",
                         "country": "US"},
    "lines": [{"sku": "MUG", "quantity": 1, "unit_price": "12.50"}], "currency": "USD",
    "shipping_option": "standard",
    "totals": {"subtotal": "12.50", "discount": "0.00", "shipping_fee": "0.00",
               "grand_total": "12.50"},
    "payment_method": "card", "payment_status": "paid",
}


async def test_manual_mode_waits_for_the_dock_scan_then_judges_its_weight(
        stack: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(handlers, "get_settings",
                        lambda: Settings(shopkeeper_warehouse_mode="manual"))
    order_id = uuid.uuid4()
    ext = f"dock-{order_id.hex[:8]}"
    snap = OrderSnapshot.model_validate({**SNAP, "order_id": str(order_id),
                                         "external_order_id": ext})
    conn = await asyncpg.connect(service_database_url("logistics"),
                                 server_settings={"search_path": "logistics"})
    tx = conn.transaction()
    await tx.start()
    try:
        # Given a packed US parcel chosen for USPS Ground Advantage, label weight 800 g
        await conn.execute(
            "INSERT INTO orders (order_id, order_key, store, external_order_id, status,"
            " parcel_count, snapshot) VALUES ($1, $2, 'shop-test-1', $3, 'waiting', 1, $4::jsonb)",
            order_id, f"shop-test-1:{ext}", ext, snap.model_dump_json())
        await conn.execute(
            "INSERT INTO shipments (parcel_id, order_id, warehouse, country, carrier, service,"
            " tracking_number, status, weight_g, cost, lines, trace, label_weight_g)"
            " VALUES ($1, $2, 'WH-LA', 'US', 'USPS', 'USPS-GA', $3, 'held', 800, $4,"
            " $5::jsonb, '[]', 800)", f"P-{ext}-1", order_id, f"TEST{order_id.hex[:12]}",
            Decimal("4.00"), json.dumps([{"sku": "MUG", "quantity": 1}]))

        async def check() -> bool:
            order = await conn.fetchrow("SELECT * FROM orders WHERE order_id = $1", order_id)
            # A unit of work on the test's transaction (rolled back at the end): its outbox
            # rows are written when it finishes.
            uow = UnitOfWork(conn, "logistics")
            shipped = await handlers.check_and_dispatch(uow, order, snap)
            await uow.finish()
            return shipped

        async def parcel() -> asyncpg.Record:
            return await conn.fetchrow("SELECT * FROM shipments WHERE order_id = $1", order_id)

        async def outbox() -> list[str]:
            return [json.loads(r["value"])["status"] for r in await conn.fetch(
                "SELECT value FROM outbox WHERE key = $1 AND topic = 'orders.status' ORDER BY id",
                f"shop-test-1:{ext}")]

        # When the final check runs before any dock scan
        # Then nothing ships, nothing is announced, and no weight is invented
        assert await check() is False
        assert (await parcel())["status"] == "held"
        assert (await parcel())["measured_weight_g"] is None
        assert await outbox() == []
        # When the scale reads 900 g (over max(50 g, 5 %))
        await conn.execute("UPDATE shipments SET measured_weight_g = 900 WHERE order_id = $1",
                           order_id)
        # Then the parcel is held for its weight, and the operator hears it
        assert await check() is False
        assert [h["code"] for h in json.loads((await parcel())["hold_reasons"])] == [
            "weight_mismatch"]
        assert await outbox() == ["on_hold"]
        # When it is re-weighed at 830 g, it is handed over
        await conn.execute("UPDATE shipments SET measured_weight_g = 830 WHERE order_id = $1",
                           order_id)
        assert await check() is True
        assert (await parcel())["status"] == "shipped"
        assert await outbox() == ["on_hold", "shipped"]
    finally:
        await tx.rollback()
        await conn.close()
