"""Inventory's operators' HTTP: stock per SKU, backorders, and ledger reconciliation."""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Request

from . import store

router = APIRouter()


@router.get("/stock/{sku}")
async def stock(sku: str, request: Request) -> dict[str, Any]:
    return {"sku": sku, "warehouses": await store.stock_of(request.app.state.runtime.pool, sku)}


@router.get("/backorders")
async def backorders(request: Request) -> list[dict[str, Any]]:
    rows = await request.app.state.runtime.pool.fetch(
        "SELECT order_id, order_key, short_lines, created_at FROM orders"
        " WHERE status = 'backordered' ORDER BY created_at LIMIT 500")
    return [{"order_id": str(r["order_id"]), "order_key": r["order_key"],
             "short_lines": json.loads(r["short_lines"]), "since": r["created_at"].isoformat()}
            for r in rows]


@router.get("/reconcile")
async def reconcile(request: Request) -> dict[str, Any]:
    drift = await store.reconcile(request.app.state.runtime.pool)
    return {"balanced": not drift, "drift": drift}
