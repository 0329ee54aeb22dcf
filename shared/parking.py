"""Cancellations that overtake their orders (docs/cancellation.md): parked, then handled right
after the order, as if they had come second.

A cancellation is handed down the chain on topics of its own, and nothing orders two topics: a
service may read an order's cancellation before the order (a busy consumer live, even when the
order was written first). Deciding "cancelled before it arrived" there would make the outcome
depend on which topic was read first, and a restore or a replay, which re-reads the two in time
order, would decide otherwise (other statuses, other event ids). So the service parks the
cancellation whole (`park_cancel`, table `parked_cancels`, shared migration 0008; intake keeps
the storefront's in `early_cancellations`), and the run that brings the order takes it in its
first statement (`take_parked_cancels_read`) and handles it after the order
(`handle_parked_cancels`), each cancellation the cause of what it emits: the same events and
ids as when it comes second.

Two instances of a service without a run lock (shared/locks.py) may park a cancellation while
the other is inserting its order: neither sees the other's uncommitted row, and the park would
wait for a run that already happened. The sweep (`start_parked_sweep`) handles, every 30 s, what
is parked for an order that exists, as a cancellation coming late.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from .contracts import Event, OrderCancelRequested
from .db import Read
from .uow import UnitOfWork

if TYPE_CHECKING:
    from .service import Runtime

log = logging.getLogger(__name__)
C = TypeVar("C", bound=Event)
Cancel = Callable[[UnitOfWork, C], Awaitable[None]]

SWEEP_SECONDS = 30.0


async def park_cancel(uow: UnitOfWork, request: OrderCancelRequested) -> None:
    """Keep a cancellation whose order this service has not seen yet; the first one kept wins."""
    await uow.conn.execute("INSERT INTO parked_cancels (order_id, event) VALUES ($1, $2)"
                           " ON CONFLICT DO NOTHING", uuid.UUID(request.order_id),
                           request.model_dump_json())
    log.info("cancel of %s kept: the order has not reached %s yet; handled right after it",
             request.order_key, uow.service)


async def order_or_park(uow: UnitOfWork, request: OrderCancelRequested,
                        get_order: Callable[[Any, uuid.UUID], Awaitable[Any]]) -> Any:
    """The order `request` cancels, locked (`get_order(conn, order_id)`), or None after parking
    the request because the order has not reached this service yet."""
    row = await get_order(uow.conn, uuid.UUID(request.order_id))
    if row is None:
        await park_cancel(uow, request)
    return row


def take_parked_cancels_read(order_ids: list[uuid.UUID]
                             ) -> Read[dict[uuid.UUID, OrderCancelRequested]]:
    """The cancellations parked for `order_ids`, taken (deleted), one per order: for a run's
    first statement (`shared.db.read_all`)."""
    return Read("DELETE FROM parked_cancels WHERE order_id = ANY($1::uuid[])"
                " RETURNING order_id, event", (order_ids,),
                lambda rows: {r["order_id"]: OrderCancelRequested.model_validate_json(r["event"])
                              for r in rows})


async def handle_parked_cancels(uow: UnitOfWork, order_ids: Iterable[uuid.UUID],
                                parked: dict[uuid.UUID, OrderCancelRequested],
                                cancel: Cancel[OrderCancelRequested]) -> None:
    """After a run has handled its orders (`order_ids`, in the run's order), the cancellations
    parked for them, each the cause of what it emits."""
    for request in uow.each([parked[i] for i in dict.fromkeys(order_ids) if i in parked]):
        log.info("cancel of %s, which came before the order, handled now", request.order_key)
        await cancel(uow, request)


class Sweep(Generic[C]):
    """What a service's sweep takes (`sql`: a DELETE ... RETURNING of the parked cancellations
    whose order exists, one column `event`), how it reads them, and how it cancels."""

    def __init__(self, sql: str, model: type[C], cancel: Cancel[C]) -> None:
        self.sql, self.model, self.cancel = sql, model, cancel

    async def once(self, uow: UnitOfWork) -> int:
        rows = await uow.conn.fetch(self.sql)
        for request in uow.each([self.model.model_validate_json(r["event"]) for r in rows]):
            log.warning("cancel %s was parked although its order is here (two instances at"
                        " once): handled now", request.event_id)
            await self.cancel(uow, request)
        return len(rows)


def orders_sweep(cancel: Cancel[OrderCancelRequested]) -> Sweep[OrderCancelRequested]:
    """The sweep of a service whose `orders` table is keyed by `order_id`."""
    return Sweep("DELETE FROM parked_cancels p USING orders o WHERE o.order_id = p.order_id"
                 " RETURNING p.event", OrderCancelRequested, cancel)


def start_parked_sweep(sweep: Sweep[C], every: float = SWEEP_SECONDS
                       ) -> Callable[[Runtime], Awaitable[None]]:
    """An on-start hook running `sweep` every `every` seconds, each pass one unit of work."""
    async def start(runtime: Runtime) -> None:
        async def loop() -> None:
            while True:
                await asyncio.sleep(every)
                try:
                    async with UnitOfWork.begin(runtime.pool, runtime.name) as uow:
                        await sweep.once(uow)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # the next pass tries again
                    log.warning("parked cancellations sweep failed: %s; the next pass in %.0f s"
                                " tries again", exc, every)
        runtime.spawn(loop(), "parked-cancels-sweep")
    return start
