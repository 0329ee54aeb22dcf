"""A delivery into the channel's inbox: recorded (deduplicated on the platform's delivery id)
and turned into `orders.placed` / `orders.cancel_requested` outbox rows, in one unit of work
(`UnitOfWork.begin` by the webhook or the poll). Webhooks answer 200 only after it commits; the
outbox relay publishes when Kafka is there."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from typing import Any

from pydantic import ValidationError

from shared import topics
from shared.contracts import CancelRequested, OrderPlaced, order_key, utcnow
from shared.uow import UnitOfWork

from . import metrics, store
from .platforms.base import ChannelConfig, Inbound, Unmappable

log = logging.getLogger(__name__)
# Event ids derive from (store, delivery id): the same delivery always makes the same event.
DELIVERY_NS = uuid.UUID("2f0c9a4e-8d57-4c1b-b6a2-51e3f0d9c7a4")
MAPPING_ERRORS = (Unmappable, ValidationError, ValueError, TypeError, KeyError, AttributeError)


def map_delivery(cfg: ChannelConfig, delivery_id: str,
                 mapper: Callable[[], Inbound]) -> tuple[Inbound, Any]:
    """Run the platform's mapping and validate the result against the contract. A delivery that
    cannot become an order is `unmappable` with the reason (it is still recorded and answered
    200: the platform re-sending it would not help)."""
    try:
        inbound = mapper()
        event: Any = None
        if inbound.outcome == "placed":
            value = dict(inbound.value or {})
            value["event_id"] = str(uuid.uuid5(DELIVERY_NS, f"{cfg.store}/{delivery_id}"))
            value["occurred_at"] = value.get("occurred_at") or utcnow().isoformat()
            event = OrderPlaced.model_validate(value)
        elif inbound.outcome == "cancel_requested":
            event = CancelRequested.model_validate({
                **(inbound.value or {}),
                "event_id": str(uuid.uuid5(DELIVERY_NS, f"{cfg.store}/{delivery_id}"))})
        return inbound, event
    except MAPPING_ERRORS as exc:
        reason = str(exc).replace("\n", " ")[:500]
        if isinstance(exc, ValidationError):
            reason = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}"
                               for e in exc.errors()[:5])[:500]
        return Inbound("unmappable", reason=f"{type(exc).__name__}: {reason}"), None


async def accept(uow: UnitOfWork, cfg: ChannelConfig, delivery_id: str, topic: str,
                 inbound: Inbound, event: Any, body: bytes | None) -> bool:
    """In the caller's unit of work. False: this delivery was seen before (nothing done).
    The unit of work has no cause: the events keep the ids derived from the delivery (the same
    delivery always makes the same event). Counted once it commits."""
    conn = uow.conn
    ext = inbound.external_order_id
    first = await store.record_delivery(
        conn, cfg.store, delivery_id, cfg.platform, topic, ext, inbound.outcome, inbound.reason,
        body if inbound.outcome == "unmappable" else None)
    if not first:
        uow.count(metrics.DELIVERIES, cfg.platform, "duplicate")
        return False
    uow.count(metrics.DELIVERIES, cfg.platform, inbound.outcome)
    if inbound.outcome == "placed":
        assert isinstance(event, OrderPlaced)
        await uow.publish(topics.ORDERS_PLACED, event.key, event)
    elif inbound.outcome == "cancel_requested":
        assert isinstance(event, CancelRequested)
        await uow.publish(topics.ORDERS_CANCEL_REQUESTED, event.key, event)
    elif inbound.outcome == "unmappable":
        log.warning("%s delivery %s for store %s cannot become an order: %s; kept in deliveries"
                    " (GET /channels/%s) - fix the mapping (e.g. sku_map) and have the platform"
                    " re-send it", cfg.platform, delivery_id, cfg.store, inbound.reason,
                    cfg.store)
    if ext and inbound.outcome in ("placed", "cancel_requested"):
        await store.remember_order(conn, order_key(cfg.store, ext), cfg.store, ext,
                                   inbound.order_name, inbound.platform_data,
                                   cancelled=inbound.outcome == "cancel_requested")
    return True
