"""Inventory's operators' HTTP: stock by SKU and warehouse, a SKU's ledger, the backorder queue,
allocation traces, reconciliation, reorder hints, expected receipts and store policies, and the
setup inventory owns (`/setup`: warehouses, their priorities, stock policies)."""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from decimal import Decimal
from typing import Any, Literal

import asyncpg
from fastapi import APIRouter, Depends, HTTPException, Query, Request
from pydantic import BaseModel, Field

from shared import setup
from shared.contracts import money_text
from shared.http import require_admin
from shared.uow import UnitOfWork

from . import kinds, schemas, store, tasks
from .handlers import refresh_eta

router = APIRouter()
# GET/PUT/DELETE /setup...: warehouses, warehouse_priorities, stock_policies (kinds.py)
router.include_router(setup.router("inventory", kinds.KINDS))


def _pool(request: Request) -> asyncpg.Pool:
    pool: asyncpg.Pool = request.app.state.runtime.pool
    return pool


@router.get("/stock", response_model=list[schemas.StockRow])
async def stock_all(request: Request, warehouse: str | None = None,
                    limit: int = Query(1000, ge=1, le=10000)) -> list[dict[str, Any]]:
    return await store.all_stock(_pool(request), warehouse, limit)


@router.get("/stock/{sku}", response_model=schemas.SkuStock)
async def stock(sku: str, request: Request) -> dict[str, Any]:
    return {"sku": sku, "warehouses": await store.stock_of(_pool(request), sku)}


@router.get("/ledger/{sku}", response_model=schemas.Ledger)
async def ledger(sku: str, request: Request, warehouse: str | None = None,
                 limit: int = Query(1000, ge=1, le=100000)) -> dict[str, Any]:
    rows = await store.ledger_of(_pool(request), sku, warehouse, limit)
    return {"sku": sku, "rows": rows}


@router.get("/backorders", response_model=list[schemas.Backorder])
async def backorders(request: Request, sku: str | None = None,
                     limit: int = Query(500, ge=1, le=5000)) -> list[dict[str, Any]]:
    """The queue, oldest first (the order restock fills it in)."""
    rows = await _pool(request).fetch(
        "SELECT order_id, order_key, short_lines, substitutes, restock_eta, decision, created_at"
        " FROM orders WHERE status = 'backordered' AND ($1::text IS NULL OR EXISTS (SELECT 1"
        " FROM jsonb_array_elements(short_lines) l WHERE l->>'sku' = $1))"
        " ORDER BY created_at, order_id LIMIT $2", sku, limit)
    return [{"order_id": str(r["order_id"]), "order_key": r["order_key"],
             "short_lines": json.loads(r["short_lines"]),
             "substitutes": json.loads(r["substitutes"]),
             "restock_eta": r["restock_eta"].isoformat() if r["restock_eta"] else None,
             "decision": r["decision"], "since": r["created_at"].isoformat()}
            for r in rows]


@router.get("/orders/{order_id}/allocation", response_model=schemas.Allocation)
async def allocation(order_id: uuid.UUID, request: Request) -> dict[str, Any]:
    """How inventory chose the order's sources, step by step."""
    r = await _pool(request).fetchrow("SELECT * FROM orders WHERE order_id = $1", order_id)
    if r is None:
        raise HTTPException(404, "order unknown to inventory")
    return {"order_id": str(order_id), "order_key": r["order_key"], "status": r["status"],
            "allocations": json.loads(r["allocations"]), "short_lines": json.loads(r["short_lines"]),
            "substitutes": json.loads(r["substitutes"]),
            "substitutions": json.loads(r["substitutions"]),
            "price_difference": (money_text(r['price_difference'])
                                 if r["price_difference"] is not None else None),
            "decision": r["decision"], "trace": json.loads(r["trace"])}


@router.get("/reconcile", response_model=schemas.Reconciliation,
            response_model_exclude_unset=True)
async def reconcile(request: Request, sku: str | None = None) -> dict[str, Any]:
    async with _pool(request).acquire() as conn:
        drift = await store.reconcile(conn, sku=sku)
    return {"balanced": not drift, "drift": drift}


@router.post("/reconcile", dependencies=[Depends(require_admin)], response_model=schemas.Repair,
             response_model_exclude_unset=True)
async def reconcile_repair(request: Request, sku: str | None = None) -> dict[str, Any]:
    """Repair drift with correcting ledger rows, then report what is left (nothing)."""
    async with _pool(request).acquire() as conn:
        repaired = await store.reconcile(conn, repair=True, sku=sku)
        left = await store.reconcile(conn, sku=sku)
    return {"repaired": repaired, "balanced": not left, "drift": left}


@router.get("/reorder-hints", response_model=list[schemas.ReorderHint])
async def reorder_hints(request: Request, sku: list[str] | None = Query(None),
                        low_only: bool = False) -> list[dict[str, Any]]:
    async with _pool(request).acquire() as conn:
        hints = await tasks.reorder_hints(conn, sku)
    return [h.__dict__ for h in hints if h.low or not low_only]


class ExpectedReceiptIn(BaseModel):
    sku: str = Field(min_length=1, max_length=64)
    warehouse: str = Field(min_length=1, max_length=32)
    quantity: int = Field(ge=1, le=10_000_000)
    eta: datetime
    reference: str | None = Field(default=None, max_length=200)


@router.post("/receipts/expected", dependencies=[Depends(require_admin)], status_code=201,
             response_model=schemas.ExpectedReceipt)
async def expect_receipt(body: ExpectedReceiptIn, request: Request) -> dict[str, Any]:
    """Purchasing announces goods on the way: backorders of the SKU get a restock ETA."""
    # An operator's action: no cause, so what it emits has ids of its own.
    async with UnitOfWork.begin(_pool(request), "inventory") as uow:
        if not await store.warehouse_exists(uow.conn, body.warehouse):
            raise HTTPException(422, f"unknown warehouse {body.warehouse}")
        await store.lock_refill(uow.conn)
        rid = await store.expect_receipt(uow.conn, body.sku, body.warehouse, body.quantity,
                                         body.eta, body.reference)
        updated = await refresh_eta(uow, body.sku)
    return {"id": rid, **body.model_dump(mode="json"), "backorders_updated": updated}


class PolicyIn(BaseModel):
    split_allowed: bool | None = None
    split_penalty: float | None = Field(default=None, ge=0, le=1000)
    # hold: the whole order waits; ship_available: what is there ships, the rest becomes a
    # linked continuation order (docs/inventory.md).
    partial: Literal["hold", "ship_available"] | None = None
    backorder_limit_s: int | None = Field(default=None, ge=1)
    substitute_price_band: Decimal | None = Field(default=None, ge=0, le=1)


@router.get("/policies/{store_name}", response_model=schemas.Policy)
async def get_policy(store_name: str, request: Request) -> dict[str, Any]:
    async with _pool(request).acquire() as conn:
        return (await store.policy(conn, store_name)).__dict__


@router.put("/policies/{store_name}", dependencies=[Depends(require_admin)],
            response_model=schemas.Policy)
async def put_policy(store_name: str, body: PolicyIn, request: Request,
                     who: str = Depends(setup.operator)) -> dict[str, Any]:
    """The fields given, over the store's current policy (or the '*' default); saved as the
    store's `stock_policies` entry through the setup path, so it is audited and published."""
    async with UnitOfWork.begin(_pool(request), "inventory") as uow:
        merged = {**(await store.policy(uow.conn, store_name)).__dict__,
                  **body.model_dump(exclude_none=True)}
        # The columns keep 2 and 3 decimal places; they used to round what they were given.
        merged["split_penalty"] = round(float(merged["split_penalty"]), 2)
        merged["substitute_price_band"] = round(float(merged["substitute_price_band"]), 3)
        try:
            await setup.apply(uow, kinds.KINDS, {"stock_policies": {store_name: merged}},
                              changed_by=who, dry_run=False)
        except setup.SetupInvalid as exc:
            raise HTTPException(422, {"reason": "invalid_setup", "problems": exc.problems}
                                ) from exc
        return (await store.policy(uow.conn, store_name)).__dict__


@router.put("/lead-times/{sku}", dependencies=[Depends(require_admin)],
            response_model=schemas.LeadTime)
async def put_lead_time(sku: str, request: Request,
                        days: int = Query(..., ge=0, le=3650)) -> dict[str, Any]:
    await _pool(request).execute(
        "INSERT INTO lead_times (sku, days) VALUES ($1, $2) ON CONFLICT (sku) DO UPDATE"
        " SET days = EXCLUDED.days", sku, days)
    return {"sku": sku, "lead_time_days": days}
