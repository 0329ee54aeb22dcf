"""Analytics' subscribers: the read model of order timelines, refunds and feedback."""

from __future__ import annotations

from shared import topics
from shared.contracts import FeedbackGiven, OrderStatusChanged, RefundIssued
from shared.messaging import Ctx, Handlers

from . import store

handlers = Handlers()


@handlers.on(topics.ORDERS_STATUS)
async def status_changed(ctx: Ctx, event: OrderStatusChanged) -> None:
    await store.record_status(ctx.conn, event)


@handlers.on(topics.PAYMENTS_REFUNDS)
async def refund_issued(ctx: Ctx, event: RefundIssued) -> None:
    await store.record_refund(ctx.conn, event)


@handlers.on(topics.CUSTOMER_FEEDBACK)
async def feedback_given(ctx: Ctx, event: FeedbackGiven) -> None:
    await store.record_feedback(ctx.conn, event)
