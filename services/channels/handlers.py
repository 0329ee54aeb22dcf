"""Channels' subscriber: `shipped`, `cancelled` and `refunded` on `orders.status` for a store with
a platform channel become write-back jobs (the channel's own outbox of calls), in the handler's
transaction. The write-back worker (workers.py) makes the calls."""

from __future__ import annotations

from shared import topics
from shared.contracts import OrderStatusChanged
from shared.messaging import Ctx, Handlers

from . import store
from .platforms import WRITE_BACK

handlers = Handlers()
ACTIONS = {"shipped", "cancelled", "refunded"}


@handlers.legacy(topics.ORDERS_STATUS)
async def on_status(ctx: Ctx, event: OrderStatusChanged) -> None:
    if event.status not in ACTIONS:
        return
    if await store.platform_of(ctx.conn, event.store) not in WRITE_BACK:
        return
    # One job per order and action; refunds are per after-sales request.
    ref = str(event.details.get("request_id") or "") if event.status == "refunded" else ""
    await store.enqueue_writeback(
        ctx.conn, event.store, f"{event.store}:{event.external_order_id}", event.status, ref,
        {"order_id": event.order_id, "external_order_id": event.external_order_id,
         "details": event.details, "status_event_id": str(event.event_id)})
