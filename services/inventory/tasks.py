"""Inventory's periodic work: expire backorders past their store's limit, and raise low-stock
events from sales velocity. Every instance runs the loop; each tick takes a transaction-level
advisory lock (`pg_try_advisory_xact_lock`), so one instance does the work and nothing assumes
it is alone."""

from __future__ import annotations

import asyncio
import logging

from prometheus_client import Counter, Gauge
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared import topics
from shared.contracts import OrderCancelled, OrderSnapshot, StockLow, derived_id
from shared.db import TRANSIENT_DB_ERRORS, Conn, try_xact_lock
from shared.money import refund_due
from shared.service import Runtime
from shared.uow import UnitOfWork

from . import domain, store
from .handlers import BACKORDERS, cancelled_status

log = logging.getLogger(__name__)



class InventorySettings(BaseSettings):
    """SHOPKEEPER_INVENTORY_TICK_SECONDS, _LOW_STOCK_SECONDS, _LEAD_TIME_DAYS."""

    model_config = SettingsConfigDict(env_prefix="SHOPKEEPER_INVENTORY_", extra="ignore",
                                      case_sensitive=False, env_ignore_empty=True)

    tick_seconds: float = 5.0
    # The low-stock scan reads every SKU's sales: less often than the expiry check.
    low_stock_seconds: float = 30.0
    # A SKU's lead time when purchasing has not set one (PUT /lead-times/{sku}).
    lead_time_days: int = 14


SETTINGS = InventorySettings()
TICK_SECONDS = SETTINGS.tick_seconds
LOW_STOCK_SECONDS = SETTINGS.low_stock_seconds
DEFAULT_LEAD_TIME_DAYS = SETTINGS.lead_time_days

LOW_STOCK_SKUS = Gauge("shopkeeper_inventory_low_stock_skus",
                       "SKUs whose days of cover are below their lead time")
STOCK_LOW_EVENTS = Counter("shopkeeper_inventory_stock_low_total",
                           "inventory.stock_low events raised, by direction", ["low"])


async def expire_backorders(uow: UnitOfWork) -> int:
    """Cancel backorders older than their store's limit, with the full refund due."""
    conn = uow.conn
    # A look first, without the lock: the backorders lock taken exclusively holds back every
    # run of reservations (shared/locks.py), so it is taken only when something is due.
    if not await store.expired_backorders(conn, 1, lock=False):
        return 0
    await store.lock_refill(conn)
    expired = await store.expired_backorders(conn)
    for row in expired:
        snap = OrderSnapshot.model_validate_json(row["snapshot"])
        await store.update_order(conn, row["order_id"], "cancelled")
        await store.add_trace(conn, row["order_id"], ["backorder expired: store limit reached"])
        reason = "backorder not restocked within the store's limit"
        # A backorder expires once: the cause (and so the ids of what it emits) derives from it.
        causation = str(derived_id("backorder-expired", snap.order_id))
        with uow.caused_by(causation):
            due = refund_due(snap.totals.grand_total, snap.payment_status)
            await cancelled_status(uow, snap, [("backorder_expired", reason)], due,
                                   correlation_id=row["correlation_id"], causation_id=causation)
            await uow.publish(topics.INVENTORY_ORDER_CANCELLED, snap.key, OrderCancelled(
                order_id=snap.order_id, order_key=snap.key, reason=reason,
                refund_due=due, currency=snap.currency,
                confirmed_by="inventory", correlation_id=row["correlation_id"],
                causation_id=causation))
        uow.count(BACKORDERS, "expired")
        log.info("order %s: backorder expired, cancelled with refund due", snap.order_id)
    return len(expired)


async def reorder_hints(conn: Conn, skus: list[str] | None = None,
                        waiting: dict[str, int] | None = None) -> list[domain.ReorderHint]:
    """`waiting`: the backordered units per SKU, when the caller has read them already."""
    sales = await store.sales(conn, skus)
    leads = await store.lead_times(conn)
    if waiting is None:
        waiting = await store.waiting_units(conn)
    return [domain.reorder_hint(sku, avail, s7, s30, leads.get(sku, DEFAULT_LEAD_TIME_DAYS),
                                waiting.get(sku, 0))
            for sku, (avail, s7, s30) in sales.items()]


async def check_low_stock(uow: UnitOfWork) -> int:
    """Publish `inventory.stock_low` for every SKU whose state changed (no cause: a scan is
    not repeated, each event keeps an id of its own)."""
    conn = uow.conn
    waiting = await store.waiting_units(conn)
    hints = await reorder_hints(conn, waiting=waiting)
    changed = 0
    # Only the states that differ from the recorded ones are written (a SKU seen for the first
    # time too): a pass over thousands of SKUs writes the few that flipped.
    recorded = await store.low_states(conn)
    flipped = await store.flip_low(conn, {h.sku: h.low for h in hints
                                          if recorded.get(h.sku) is not h.low})
    for h in hints:
        if h.sku in flipped:
            changed += 1
            uow.count(STOCK_LOW_EVENTS, str(h.low).lower())
            await uow.publish(topics.INVENTORY_STOCK_LOW, h.sku, StockLow(
                sku=h.sku, low=h.low, available=h.available, velocity_7d=h.velocity_7d,
                velocity_30d=h.velocity_30d, days_of_cover=h.days_of_cover,
                lead_time_days=h.lead_time_days, backordered_units=waiting.get(h.sku, 0)))
    low = sum(1 for h in hints if h.low)
    uow.after_commit(lambda: LOW_STOCK_SKUS.set(low))
    return changed


async def tick(runtime: Runtime, low_stock: bool) -> None:
    async with UnitOfWork.begin(runtime.pool, "inventory") as uow:
        if not await try_xact_lock(uow.conn, "inventory:tick"):
            return  # another instance is on it
        # The low-stock scan first: expiry takes the backorders lock exclusively, which holds
        # back every run of reservations until commit (shared/locks.py), so it comes last.
        if low_stock:
            await check_low_stock(uow)
        await expire_backorders(uow)


async def run(runtime: Runtime) -> None:
    loop = asyncio.get_running_loop()
    last_scan = 0.0
    while True:
        await asyncio.sleep(TICK_SECONDS)
        try:
            scan = loop.time() - last_scan >= LOW_STOCK_SECONDS
            await tick(runtime, scan)
            if scan:
                last_scan = loop.time()
        except asyncio.CancelledError:
            raise
        except TRANSIENT_DB_ERRORS as exc:
            log.warning("inventory tick skipped: %s", exc)
        except Exception:
            log.exception("inventory tick failed; trying again next tick")


async def start(runtime: Runtime) -> None:
    runtime.spawn(run(runtime), "inventory-tick")
