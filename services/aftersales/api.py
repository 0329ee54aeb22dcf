"""After-sales operators' HTTP: the queue of requests that need a person, approving or rejecting
them with a note (audited in request_history), grading returned goods, refund history,
follow-up cases and feedback."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from pydantic import BaseModel, Field

from shared import setup
from shared.contracts import money_text
from shared.http import require_admin
from shared.uow import UnitOfWork

from . import handlers, kinds, metrics, schemas, store

router = APIRouter()
router.include_router(setup.router("aftersales", kinds.KINDS))


class Decision(BaseModel):
    decision: Literal["approve", "reject"]
    note: str = Field(min_length=1, max_length=2000)
    operator: str = Field(default="operator", max_length=64)


class Grading(BaseModel):
    grade: Literal["resellable", "refurbish", "scrap"]
    note: str | None = Field(default=None, max_length=2000)
    operator: str = Field(default="operator", max_length=64)


def _row(r: Any) -> dict[str, Any]:
    out = dict(r)
    for k in ("lines", "decision", "exchange_for", "returned_lines", "return_label"):
        if k in out:
            out[k] = json.loads(out[k]) if out[k] is not None else None
    for k in ("created_at", "updated_at", "at"):
        if out.get(k) is not None:
            out[k] = out[k].isoformat()
    if out.get("order_id") is not None:
        out["order_id"] = str(out["order_id"])
    return out


@contextlib.asynccontextmanager
async def _operator(request: Request, key: str) -> AsyncIterator[UnitOfWork]:
    """An operator's decision on order `key` in one unit of work. No consumed event causes it
    (the events keep the ids they are built with); what it emits joins the order's trace: the
    correlation id of its first event, read before the transaction (it never changes once the
    order is known; None for an order aftersales has not heard of, which the caller refuses)."""
    pool = request.app.state.runtime.pool
    correlation = await pool.fetchval("SELECT correlation_id FROM orders WHERE order_key = $1",
                                      key)
    async with UnitOfWork.begin(pool, "aftersales", correlation_id=correlation) as uow:
        yield uow


@router.get("/requests/review", dependencies=[Depends(require_admin)],
            response_model=list[schemas.Request],
            response_model_exclude_unset=True)
async def review_queue(request: Request) -> list[dict[str, Any]]:
    rows = await request.app.state.runtime.pool.fetch(
        "SELECT order_key, request_id, kind, reason, lines, status, decision, exchange_for,"
        " comment, source, returned_lines, created_at FROM requests"
        " WHERE status IN ('review', 'inspection') ORDER BY created_at LIMIT 500")
    return [_row(r) for r in rows]


@router.get("/requests/{store_name}/{ext}/{request_id}", dependencies=[Depends(require_admin)],
            response_model=schemas.RequestDetail,
            response_model_exclude_unset=True)
async def request_detail(store_name: str, ext: str, request_id: str,
                         request: Request) -> dict[str, Any]:
    pool = request.app.state.runtime.pool
    key = f"{store_name}:{ext}"
    row = await pool.fetchrow("SELECT * FROM requests WHERE order_key = $1 AND request_id = $2",
                              key, request_id)
    if row is None:
        raise HTTPException(404, f"no request {request_id} on {key}")
    trail = await pool.fetch("SELECT status, note, actor, at FROM request_history WHERE"
                             " order_key = $1 AND request_id = $2 ORDER BY id", key, request_id)
    replacement = await pool.fetchrow("SELECT order_key FROM replacements WHERE request_id = $1"
                                      " AND replaces_order_id = $2", request_id, row["order_id"])
    return {**_row(row), "history": [_row(t) for t in trail],
            "replacement_order_key": replacement["order_key"] if replacement else None}


@router.post("/requests/{store_name}/{ext}/{request_id}/decision",
             dependencies=[Depends(require_admin)], response_model=schemas.Decided)
async def decide(store_name: str, ext: str, request_id: str, body: Decision,
                 request: Request) -> dict[str, Any]:
    key = f"{store_name}:{ext}"
    async with _operator(request, key) as uow:
        conn = uow.conn
        req = await store.get_request(conn, key, request_id)
        if req is None:
            raise HTTPException(404, f"no request {request_id} on {key}")
        if req["status"] != "review":
            raise HTTPException(409, f"request {request_id} is {req['status']}, not in review")
        order = await store.order_by_key(conn, key)
        if order is None:
            raise HTTPException(409, f"aftersales has no accepted order {key} yet")
        if req["order_id"] is None:
            await conn.execute("UPDATE requests SET order_id = $3 WHERE order_key = $1 AND"
                               " request_id = $2", key, request_id, order["order_id"])
        approved = body.decision == "approve"
        status = "authorized" if approved else "rejected"
        await store.set_request_status(conn, key, request_id, status, body.note, body.operator)
        code = "approved_by_operator" if approved else "rejected_by_operator"
        await handlers.announce_decision(uow, order, request_id, approved, code, body.note)
        if approved:
            await handlers.carry_out(uow, order, await store.get_request(conn, key, request_id))
        final = await store.get_request(conn, key, request_id)
    assert final is not None
    return {"request_id": request_id, "status": final["status"]}


@router.post("/requests/{store_name}/{ext}/{request_id}/grade",
             dependencies=[Depends(require_admin)], response_model=schemas.Graded)
async def grade(store_name: str, ext: str, request_id: str, body: Grading,
                request: Request) -> dict[str, Any]:
    """Grade goods waiting in inspection (all returned lines get the one grade), then settle:
    restock or set aside, and refund a return."""
    key = f"{store_name}:{ext}"
    async with _operator(request, key) as uow:
        conn = uow.conn
        req = await store.get_request(conn, key, request_id)
        if req is None:
            raise HTTPException(404, f"no request {request_id} on {key}")
        if req["status"] != "inspection":
            raise HTTPException(409, f"request {request_id} is {req['status']}, not in inspection")
        order = await store.order_by_key(conn, key)
        assert order is not None
        await store.history(conn, key, request_id, "inspection",
                            f"graded {body.grade}: {body.note or ''}".strip(), body.operator)
        returned = json.loads(req["returned_lines"])
        graded: list[tuple[str, int, str | None]] = [
            (ln["sku"], ln["quantity"], body.grade) for ln in returned]
        await handlers.settle_return(uow, order, req, graded)
        final = await store.get_request(conn, key, request_id)
    assert final is not None
    return {"request_id": request_id, "status": final["status"], "grade": body.grade}


class PolicyIn(BaseModel):
    return_window_days: int = Field(ge=0, le=365)
    refund_without_return_below: Decimal = Field(ge=0, le=100_000_000)
    return_shipping_cost: Decimal = Field(ge=0, le=10_000_000)
    replacement_without_review_below: Decimal = Field(ge=0, le=100_000_000)
    currency: str = Field(default="USD", pattern=r"^[A-Z]{3}$", description=(
        "the currency of the three amounts; orders in others convert them (fx.rates)"))


POLICY_COLUMNS = ", ".join(kinds.COLUMNS)


@router.get("/policies", dependencies=[Depends(require_admin)],
            response_model=dict[str, schemas.Policy])
async def policies(request: Request) -> dict[str, dict[str, str]]:
    """Every store's after-sales policy; `*` serves stores without their own."""
    rows = await request.app.state.runtime.pool.fetch(
        f"SELECT store, {POLICY_COLUMNS} FROM policies ORDER BY store")
    return {r["store"]: {k: str(v) for k, v in dict(r).items() if k != "store"} for r in rows}


@router.put("/policies/{store_name}", dependencies=[Depends(require_admin)],
            response_model=schemas.StorePolicy)
async def set_policy(store_name: str, body: PolicyIn, request: Request,
                     who: str = Depends(setup.operator)) -> dict[str, str]:
    """Set a store's policy; it applies to requests decided from now on. Saved like
    `PUT /setup/aftersales_policies/{store}`: audited in `GET /setup/audit` (who: the
    `X-Operator` header) and published on `setup.changed`."""
    entry = body.model_dump()
    async with UnitOfWork.begin(request.app.state.runtime.pool, "aftersales") as uow:
        try:
            await setup.apply(uow, kinds.KINDS, {"aftersales_policies": {store_name: entry}},
                              changed_by=who, dry_run=False)
        except setup.SetupInvalid as exc:
            raise HTTPException(422, str(exc)) from exc
    return {"store": store_name, **{k: str(v) for k, v in entry.items()}}


@router.get("/refunds", dependencies=[Depends(require_admin)], response_model=list[schemas.Refund])
async def refunds(request: Request, store_name: str | None = None,
                  external_order_id: str | None = None) -> list[dict[str, Any]]:
    """Refund history, newest first; filter by order with store_name and external_order_id."""
    key = f"{store_name}:{external_order_id}" if store_name and external_order_id else None
    rows = await request.app.state.runtime.pool.fetch(
        "SELECT o.order_key, f.order_id, f.request_id, r.kind, r.reason, f.amount, f.currency,"
        " f.includes_shipping, f.created_at, r.created_at AS requested_at FROM refunds f"
        " JOIN orders o USING (order_id) LEFT JOIN requests r ON r.order_key = o.order_key AND"
        " r.request_id = f.request_id WHERE $1::text IS NULL OR o.order_key = $1"
        " ORDER BY f.created_at DESC LIMIT 500", key)
    return [{**_row(r), "amount": money_text(r['amount']),
             "requested_at": r["requested_at"].isoformat() if r["requested_at"] else None}
            for r in rows]


Resolution = Literal["resolved", "refunded", "replaced", "no_action", "unreachable"]


class Assignment(BaseModel):
    assignee: str = Field(min_length=1, max_length=64)
    operator: str = Field(default="operator", max_length=64)


class Comment(BaseModel):
    body: str = Field(min_length=1, max_length=4000)
    operator: str = Field(default="operator", max_length=64)


class Closing(BaseModel):
    resolution: Resolution
    note: str = Field(min_length=1, max_length=4000)
    operator: str = Field(default="operator", max_length=64)


class Reopening(BaseModel):
    note: str = Field(min_length=1, max_length=4000)
    operator: str = Field(default="operator", max_length=64)


def _case(r: Any) -> dict[str, Any]:
    return {**_row(r), "tags": list(r["tags"]),
            **{k: r[k].isoformat() if r[k] is not None else None
               for k in ("updated_at", "closed_at")}}


@router.get("/follow-ups", dependencies=[Depends(require_admin)],
            response_model=list[schemas.FollowUp])
async def follow_ups(request: Request,
                     status: Literal["open", "closed", "all"] = "open",
                     assignee: str | None = Query(default=None, max_length=64, description=(
                         "Only this person's cases; empty for the unassigned")),
                     tag: str | None = Query(default=None, max_length=32),
                     limit: int = Query(default=500, ge=1, le=5000)) -> list[dict[str, Any]]:
    """Follow-up cases, oldest first (open ones by default)."""
    async with request.app.state.runtime.pool.acquire() as conn:
        rows = await store.follow_ups(conn, None if status == "all" else status, assignee, tag,
                                      limit)
    return [_case(r) for r in rows]


@router.get("/follow-ups/summary", dependencies=[Depends(require_admin)],
            response_model=schemas.FollowUpSummary)
async def follow_up_summary(request: Request) -> dict[str, Any]:
    """The cases' KPIs: open, unassigned, age of the open ones, closed in the last 7 days."""
    async with request.app.state.runtime.pool.acquire() as conn:
        return dict(await store.follow_up_summary(conn))


@router.get("/follow-ups/{case_id}", dependencies=[Depends(require_admin)],
            response_model=schemas.FollowUpDetail)
async def follow_up_detail(case_id: int, request: Request) -> dict[str, Any]:
    async with request.app.state.runtime.pool.acquire() as conn:
        case = await store.follow_up(conn, case_id)
        if case is None:
            raise HTTPException(404, f"no follow-up case {case_id}")
        notes = await store.follow_up_notes(conn, case_id)
    return {**_case(case), "notes": [_row(n) for n in notes]}


async def _step(request: Request, case_id: int, kind: str, author: str, body: str,
                **fields: Any) -> dict[str, Any]:
    """One step of a case in one transaction, the case locked; 409 when its state forbids it."""
    async with request.app.state.runtime.pool.acquire() as conn, conn.transaction():
        case = await store.follow_up(conn, case_id, lock=True)
        if case is None:
            raise HTTPException(404, f"no follow-up case {case_id}")
        if kind == "reopened" and case["status"] != "closed":
            raise HTTPException(409, f"follow-up case {case_id} is open; only a closed case"
                                " can be reopened")
        if kind in ("assigned", "closed") and case["status"] != "open":
            raise HTTPException(409, f"follow-up case {case_id} is closed"
                                f" ({case['resolution']}); reopen it first")
        await store.update_follow_up(conn, case_id, kind, author, body, **fields)
        case = await store.follow_up(conn, case_id)
        notes = await store.follow_up_notes(conn, case_id)
    assert case is not None
    if kind == "closed":  # counted once committed
        metrics.FOLLOW_UPS_CLOSED.labels(fields["resolution"]).inc()
    return {**_case(case), "notes": [_row(n) for n in notes]}


@router.post("/follow-ups/{case_id}/assign", dependencies=[Depends(require_admin)],
             response_model=schemas.FollowUpDetail)
async def assign_follow_up(case_id: int, body: Assignment, request: Request) -> dict[str, Any]:
    return await _step(request, case_id, "assigned", body.operator,
                       f"assigned to {body.assignee}", assignee=body.assignee)


@router.post("/follow-ups/{case_id}/comments", dependencies=[Depends(require_admin)],
             response_model=schemas.FollowUpDetail)
async def comment_follow_up(case_id: int, body: Comment, request: Request) -> dict[str, Any]:
    return await _step(request, case_id, "comment", body.operator, body.body)


@router.post("/follow-ups/{case_id}/close", dependencies=[Depends(require_admin)],
             response_model=schemas.FollowUpDetail)
async def close_follow_up(case_id: int, body: Closing, request: Request) -> dict[str, Any]:
    return await _step(request, case_id, "closed", body.operator,
                       f"{body.resolution}: {body.note}", resolution=body.resolution)


@router.post("/follow-ups/{case_id}/reopen", dependencies=[Depends(require_admin)],
             response_model=schemas.FollowUpDetail)
async def reopen_follow_up(case_id: int, body: Reopening, request: Request) -> dict[str, Any]:
    return await _step(request, case_id, "reopened", body.operator, body.note)


@router.get("/feedback/tags", dependencies=[Depends(require_admin)],
            response_model=dict[str, schemas.TagStats])
async def feedback_tags(request: Request) -> dict[str, Any]:
    """How often each tag occurs, and the average rating of feedback carrying it."""
    rows = await request.app.state.runtime.pool.fetch(
        "SELECT tag, count(*) AS n, round(avg(rating), 2) AS rating FROM feedback,"
        " unnest(tags) AS tag GROUP BY tag ORDER BY n DESC")
    return {r["tag"]: {"count": r["n"], "average_rating": f"{r['rating']}"} for r in rows}
