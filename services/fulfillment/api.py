"""Fulfillment's operators' HTTP: the orders waiting in the warehouse, and packing by hand in
manual mode."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Request

from shared.http import require_admin

from . import store
from .handlers import pack

router = APIRouter()


@router.get("/orders/awaiting")
async def awaiting(request: Request) -> list[dict[str, Any]]:
    rows = await request.app.state.runtime.pool.fetch(
        "SELECT order_id, order_key, created_at FROM orders WHERE status = 'awaiting_pick'"
        " ORDER BY created_at LIMIT 500")
    return [{"order_id": str(r["order_id"]), "order_key": r["order_key"],
             "since": r["created_at"].isoformat()} for r in rows]


@router.post("/orders/{order_id}/pack", dependencies=[Depends(require_admin)])
async def pack_order(order_id: uuid.UUID, request: Request) -> dict[str, Any]:
    async with request.app.state.runtime.pool.acquire() as conn, conn.transaction():
        row = await store.get_order(conn, order_id)
        if row is None:
            raise HTTPException(404, f"no order {order_id} in fulfillment")
        if row["status"] != "awaiting_pick":
            raise HTTPException(409, f"order {order_id} is {row['status']}")
        parcels = await pack(conn, row, None)
    return {"order_id": str(order_id), "parcels": [p.model_dump(mode="json") for p in parcels]}
