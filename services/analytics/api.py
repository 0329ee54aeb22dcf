"""Analytics' HTTP: the order timeline of CONTRACT.md and summary counts."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException, Query, Request

from . import store

router = APIRouter()


@router.get("/orders/{store_name}/{external_order_id}")
async def order_timeline(store_name: str, external_order_id: str, request: Request
                         ) -> dict[str, Any]:
    found = await store.timeline(request.app.state.runtime.pool,
                                 f"{store_name}:{external_order_id}")
    if found is None:
        raise HTTPException(404, f"no order {store_name}:{external_order_id}")
    return found


@router.get("/summary")
async def summary(request: Request, store_name: list[str] | None = Query(None, alias="store")
                  ) -> dict[str, Any]:
    pool = request.app.state.runtime.pool
    return {"orders_by_status": await store.status_counts(pool, store_name),
            "rejection_reasons": await store.reason_counts(pool, "rejected"),
            "hold_reasons": await store.reason_counts(pool, "on_hold")}
