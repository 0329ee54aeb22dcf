"""Intake's operators' HTTP: the review queue (holds) and what intake knows of the catalogue."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Request
from pydantic import BaseModel

from shared.contracts import OrderPlaced
from shared.http import require_admin
from shared.messaging import emit_status

from . import store
from .handlers import accept

router = APIRouter()


class Decision(BaseModel):
    reason: str | None = None


@router.get("/catalog/{sku}")
async def catalog_product(sku: str, request: Request) -> dict[str, Any]:
    row = await store.get_product(request.app.state.runtime.pool, sku)
    if row is None:
        raise HTTPException(404, f"intake has not received product {sku} on catalog.products")
    return {"sku": row["sku"], "active": row["active"], "category": row["category"],
            "price": str(row["price"]), "attributes": list(row["attributes"])}


@router.get("/holds", dependencies=[Depends(require_admin)])
async def list_holds(request: Request) -> list[dict[str, Any]]:
    return await store.holds(request.app.state.runtime.pool)


@router.post("/holds/{order_id}/approve", dependencies=[Depends(require_admin)])
async def approve(order_id: uuid.UUID, request: Request) -> dict[str, str]:
    async with request.app.state.runtime.pool.acquire() as conn, conn.transaction():
        row = await _held(conn, order_id)
        order = OrderPlaced.model_validate_json(row["payload"])
        await store.set_status(conn, order_id, "accepted", [])
        await emit_status(conn, order_id=str(order_id), store=order.store,
                          external_order_id=order.external_order_id, status="accepted",
                          reasons=[("approved_by_operator", "released from hold by an operator")])
        await accept(conn, order_id, order, str(order.event_id), None)
    return {"order_id": str(order_id), "status": "accepted"}


@router.post("/holds/{order_id}/reject", dependencies=[Depends(require_admin)])
async def reject(order_id: uuid.UUID, decision: Decision, request: Request) -> dict[str, str]:
    reason = decision.reason or "rejected by an operator after review"
    async with request.app.state.runtime.pool.acquire() as conn, conn.transaction():
        row = await _held(conn, order_id)
        reasons = [("rejected_by_operator", reason)]
        await store.set_status(conn, order_id, "rejected", reasons)
        await emit_status(conn, order_id=str(order_id), store=row["store"],
                          external_order_id=row["external_order_id"], status="rejected",
                          reasons=reasons)
    return {"order_id": str(order_id), "status": "rejected"}


async def _held(conn: Any, order_id: uuid.UUID) -> Any:
    row = await store.get_order(conn, order_id)
    if row is None:
        raise HTTPException(404, f"no order {order_id}")
    if row["status"] != "on_hold":
        raise HTTPException(409, f"order {order_id} is {row['status']}, not on_hold")
    return row
