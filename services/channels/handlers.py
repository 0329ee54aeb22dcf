"""Channels' subscriber: `shipped`, `cancelled` and `refunded` on `orders.status` for a store with
a platform channel become write-back jobs (the channel's own outbox of calls), in the run's
transaction. The write-back worker (workers.py) makes the calls."""

from __future__ import annotations

import logging
from typing import Any

from shared import topics
from shared.contracts import OrderStatusChanged
from shared.messaging import Handlers
from shared.uow import UnitOfWork

from . import store, workers
from .platforms import WRITE_BACK

log = logging.getLogger(__name__)
handlers = Handlers()
ACTIONS = {"shipped", "cancelled", "refunded"}


@handlers.on(topics.ORDERS_STATUS, wanted=lambda e: e.status in ACTIONS)
async def on_status(uow: UnitOfWork, events: list[OrderStatusChanged]) -> None:
    """A run of status changes to write back (the others never reach it, nor the inbox: most
    of an order's statuses are not written back): the stores' platforms in one statement, the
    write-back jobs in another (none when no store of the run has a platform channel)."""
    platforms = await store.platforms_of(uow, sorted({e.store for e in events}))
    jobs: list[tuple[str, str, str, str, dict[str, Any]]] = []
    for event in events:
        if platforms.get(event.store) not in WRITE_BACK:
            continue
        # One job per order and action; refunds are per after-sales request.
        ref = str(event.details.get("request_id") or "") if event.status == "refunded" else ""
        jobs.append((event.store, f"{event.store}:{event.external_order_id}", event.status, ref,
                     {"order_id": event.order_id, "external_order_id": event.external_order_id,
                      "details": event.details, "status_event_id": str(event.event_id)}))
    await store.enqueue_writebacks(uow.conn, jobs)
    if jobs:
        uow.after_commit(workers.WRITEBACKS_QUEUED.set)
        log.info("%d write-back job(s) queued (%s)", len(jobs),
                 ", ".join(f"{j[2]} of {j[1]}" for j in jobs[:5]))
