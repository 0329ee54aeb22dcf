"""The console's pages. Each reads through the services' HTTP APIs, checks the user's role before
it acts (403 otherwise), and writes every action to the audit trail with what it saw before and
what the service answered after."""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from typing import Any

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import BaseModel, ValidationError

from shared import dlq, outbox, topics
from shared.contracts import (
    AftersalesRequested,
    BackorderDecision,
    CancelRequested,
    CustomerMessage,
    ReturnReceived,
    StockAdjusted,
)
from shared.dlq import REPLAY_GROUP, REPLAYED_FROM
from shared.settings import SERVICES
from shared.topics import ALL as ALL_TOPICS
from shared.uow import UnitOfWork

from . import auth, i18n, roles, store
from .config import console_settings
from .upstream import UpstreamError, dead_letters, replayed_positions
from .web import (
    User,
    actor,
    audit,
    pool,
    render,
    upstream,
    viewer,
)

router = APIRouter()
FINAL = {"rejected", "cancelled", "shipped", "delivered", "refunded", "return_authorized",
         "return_rejected", "return_received", "delivery_exception"}
RETURNABLE = {"shipped", "delivered", "delivery_exception", "refunded", "return_rejected",
              "return_authorized", "return_received"}
RMA_KINDS = ("return", "refund", "exchange", "reship")
RMA_REASONS = ("damaged", "defective", "wrong_item", "not_as_described", "changed_mind",
               "not_received", "other")
HOLD_REASONS = ("suspected_duplicate", "amount_mismatch", "high_value", "blocked_customer",
                "restricted_goods", "qc_weight", "qc_damaged")
KEY_RE = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


def _event(model: type[BaseModel], **fields: Any) -> dict[str, Any]:
    """An inbound event as the contract has it (validated here: a console bug never reaches
    Kafka as a malformed event)."""
    value: dict[str, Any] = model(**fields).model_dump(mode="json")
    return value


def _back(path: str, **flash: str) -> RedirectResponse:
    query = "&".join(f"{k}={v}" for k, v in flash.items())
    return RedirectResponse(path + (("&" if "?" in path else "?") + query if query else ""),
                            status_code=303)


def _flash(request: Request) -> dict[str, str]:
    return {k: request.query_params[k] for k in ("ok", "err") if k in request.query_params}


# --- orders -----------------------------------------------------------------------------------

SEARCHES = ("key", "order_id", "customer", "email", "phone", "name", "tracking")
CONTACT_SEARCHES = ("email", "phone", "name")  # intake has the customer's contact data


async def _by_contact(request: Request, by: str, q: str) -> list[dict[str, Any]]:
    """A customer's orders by e-mail, phone or name: intake finds them (it keeps what the order
    said); analytics gives each its current status and tracking numbers, asked once per
    customer id among them (usually one or two), not once per order. An order analytics has
    not seen yet shows intake's status."""
    up = upstream(request)
    matches = await up.get("intake", "/orders", **{by: q, "limit": 50})
    customers = sorted({m["customer_id"] for m in matches if m.get("customer_id")})

    async def of_customer(customer: str) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = (await up.get("analytics", "/orders", customer=customer,
                                                    limit=1000))["orders"]
        return found
    current = {f"{o['store']}:{o['external_order_id']}": o
               for orders in await asyncio.gather(*(of_customer(c) for c in customers))
               for o in orders}
    return [current.get(f"{m['store']}:{m['external_order_id']}")
            or {**m, "placed_at": m["received_at"], "tracking_numbers": []} for m in matches]


@router.get("/orders")
async def orders(request: Request, user: User = Depends(viewer("orders.view")),
                 by: str = "key", q: str = "", store_name: str = "") -> Response:
    results: list[dict[str, Any]] = []
    q = q.strip()
    searched = bool(q)
    if searched:
        up = upstream(request)
        if by == "key":
            if store_name and KEY_RE.match(store_name) and KEY_RE.match(q):
                found = await up.get_or_none("analytics", f"/orders/{store_name}/{q}")
                if found:
                    results = [found]
        elif by in ("order_id", "customer", "tracking"):
            results = (await up.get("analytics", "/orders", **{by: q}))["orders"]
        elif by in CONTACT_SEARCHES:
            results = await _by_contact(request, by, q)
        if store_name and by != "key":
            results = [r for r in results if r["store"] == store_name]
    return render(request, "orders.html", user, results=results, searched=searched, by=by, q=q,
                  store_name=store_name, searches=SEARCHES, flash=_flash(request))


@router.get("/orders/{store_name}/{ext}")
async def order_detail(store_name: str, ext: str, request: Request,
                       user: User = Depends(viewer("orders.view"))) -> Response:
    up = upstream(request)
    found = await up.get_or_none("analytics", f"/orders/{store_name}/{ext}")
    if found is None:
        return render(request, "error.html", user, status_code=404,
                      title_key="orders.not_found.title", message_key="orders.not_found.body")
    parcels: list[dict[str, Any]] = []
    for step in found["timeline"]:
        for p in (step.get("details") or {}).get("parcels") or []:
            if p.get("tracking_number") and p not in parcels:
                parcels.append(p)
    shipments = await up.get("logistics", f"/shipments/{store_name}/{ext}")
    decided = await up.get_or_none("intake", f"/orders/{found['order_id']}/decision")
    words = (decided or {}).get("customer_words") or {}
    shipped_lines: dict[str, int] = {}
    for s in shipments:
        for line in s.get("lines") or []:
            shipped_lines[line["sku"]] = shipped_lines.get(line["sku"], 0) + line["quantity"]
    return render(request, "order.html", user, order=found, parcels=parcels, shipments=shipments,
                  words=words,
                  cancellable=found["status"] not in FINAL, shipped_lines=shipped_lines,
                  returnable=found["status"] in RETURNABLE, rma_kinds=RMA_KINDS,
                  rma_reasons=RMA_REASONS, flash=_flash(request))


@router.post("/orders/{store_name}/{ext}/cancel")
async def order_cancel(store_name: str, ext: str, request: Request,
                       user: User = Depends(actor("orders.cancel")),
                       reason: str = Form("", max_length=500)) -> Response:
    up = upstream(request)
    before = await up.get_or_none("analytics", f"/orders/{store_name}/{ext}")
    key = f"{store_name}:{ext}"
    event = _event(CancelRequested, store=store_name, external_order_id=ext,
                   reason=reason or None)
    await up.publish("orders.cancel_requested", key, event)
    await audit(request, user, "orders.cancel", key, "requested",
                before={"status": before["status"] if before else None},
                after={"event_id": event["event_id"]}, detail=reason)
    return _back(f"/orders/{store_name}/{ext}", ok="orders.cancel.sent")


@router.post("/orders/{store_name}/{ext}/return")
async def order_return(store_name: str, ext: str, request: Request,
                       user: User = Depends(actor("returns.open"))) -> Response:
    """Open an after-sales request for the customer (as the storefront would publish it)."""
    form = await request.form()
    lines = [{"sku": str(sku), "quantity": int(str(qty))}
             for sku, qty in zip(form.getlist("sku"), form.getlist("quantity"), strict=False)
             if str(qty).isdigit() and int(str(qty)) > 0]
    request_id = f"rma-{uuid.uuid4().hex[:10]}"
    try:
        event = _event(AftersalesRequested, store=store_name, external_order_id=ext,
                       request_id=request_id, kind=str(form.get("kind") or ""),
                       reason=str(form.get("reason") or ""), lines=lines,
                       comment=str(form.get("comment") or "") or None, exchange_for=None)
    except ValidationError:
        return _back(f"/orders/{store_name}/{ext}", err="order.return_invalid")
    await upstream(request).publish("aftersales.requests", f"{store_name}:{ext}", event)
    await audit(request, user, "returns.open", f"{store_name}:{ext}/{request_id}", "requested",
                after={"kind": event["kind"], "reason": event["reason"], "lines": lines})
    return _back(f"/orders/{store_name}/{ext}", ok="order.return_opened")


# --- review queue -----------------------------------------------------------------------------

@router.get("/review")
async def review(request: Request, user: User = Depends(viewer("review.view")),
                 reason: str = "") -> Response:
    holds = await upstream(request).get("intake", "/holds", reason=reason or None, limit=500)
    for h in holds:
        h["sla_left"] = (h["sla_seconds"] - h["age_seconds"]) if h.get("sla_seconds") else None
    return render(request, "review.html", user, holds=holds, reason=reason,
                  hold_reasons=HOLD_REASONS, flash=_flash(request))


@router.get("/review/{order_id}")
async def review_detail(order_id: uuid.UUID, request: Request,
                        user: User = Depends(viewer("review.view"))) -> Response:
    decision = await upstream(request).get_or_none("intake", f"/orders/{order_id}/decision")
    if decision is None:
        return render(request, "error.html", user, status_code=404,
                      title_key="orders.not_found.title", message_key="orders.not_found.body")
    notes = await store.notes_on(pool(request), str(order_id))
    return render(request, "review_detail.html", user, d=decision, notes=notes,
                  flash=_flash(request))


async def _decide(request: Request, user: User, order_id: uuid.UUID, verb: str,
                  reason: str | None, note: str | None) -> dict[str, Any]:
    up = upstream(request)
    before = await up.get_or_none("intake", f"/orders/{order_id}/decision")
    try:
        after = await up.call("intake", "POST", f"/holds/{order_id}/{verb}",
                              body={"reason": reason or None, "note": note or None},
                              operator=user.username)
    except UpstreamError as exc:
        await audit(request, user, f"review.{verb}", str(order_id), "refused",
                    before={"status": before["status"] if before else None}, detail=exc.detail)
        raise
    await audit(request, user, f"review.{verb}", str(order_id), "ok",
                before={"status": before["status"] if before else None}, after=after,
                detail=note or reason)
    result: dict[str, Any] = after
    return result


@router.post("/review/{order_id}/approve")
async def review_approve(order_id: uuid.UUID, request: Request,
                         user: User = Depends(actor("review.decide")),
                         note: str = Form("", max_length=2000)) -> Response:
    await _decide(request, user, order_id, "approve", None, note)
    return _back("/review", ok="review.approved")


@router.post("/review/{order_id}/reject")
async def review_reject(order_id: uuid.UUID, request: Request,
                        user: User = Depends(actor("review.decide")),
                        reason: str = Form("", max_length=500),
                        note: str = Form("", max_length=2000)) -> Response:
    await _decide(request, user, order_id, "reject", reason, note)
    return _back("/review", ok="review.rejected")


@router.post("/review/{order_id}/note")
async def review_note(order_id: uuid.UUID, request: Request,
                      user: User = Depends(actor("review.note")),
                      note: str = Form(min_length=1, max_length=2000)) -> Response:
    await audit(request, user, "review.note", str(order_id), "ok", detail=note)
    return _back(f"/review/{order_id}", ok="review.noted")


@router.post("/review/{order_id}/address")
async def review_address(order_id: uuid.UUID, request: Request,
                         user: User = Depends(actor("review.decide")),
                         name: str = Form(max_length=200), line1: str = Form(max_length=300),
                         line2: str = Form("", max_length=300), city: str = Form(max_length=120),
                         region: str = Form("", max_length=120),
                         postal_code: str = Form(max_length=20),
                         country: str = Form(pattern="^[A-Z]{2}$"),
                         note: str = Form("", max_length=2000)) -> Response:
    """Correct a held order's shipping address; intake reviews it again (released when nothing
    else holds it). The address itself stays out of the audit trail (personal data)."""
    up = upstream(request)
    before = await up.get_or_none("intake", f"/orders/{order_id}/decision")
    address = {"name": name, "line1": line1, "line2": line2 or None, "city": city,
               "region": region or None, "postal_code": postal_code, "country": country}
    after = await up.call("intake", "POST", f"/holds/{order_id}/address",
                          body={"shipping_address": address, "note": note or None},
                          operator=user.username)
    await audit(request, user, "review.correct_address", str(order_id), "ok",
                before={"status": before["status"] if before else None},
                after={"status": after.get("status"), "country": country}, detail=note)
    return _back(f"/review/{order_id}", ok="review.address_corrected")


@router.post("/review/bulk-approve")
async def review_bulk(request: Request, user: User = Depends(actor("review.decide"))
                      ) -> Response:
    form = await request.form()
    done, failed = 0, 0
    for value in form.getlist("order_id"):
        try:
            await _decide(request, user, uuid.UUID(str(value)), "approve", None,
                          "bulk approval")
            done += 1
        except (UpstreamError, ValueError):
            failed += 1
    return _back(f"/review?done={done}&failed={failed}", ok="review.bulk_done")


# --- warehouse --------------------------------------------------------------------------------

@router.get("/warehouse")
async def warehouse(request: Request, user: User = Depends(viewer("warehouse.view"))
                    ) -> Response:
    up = upstream(request)
    waves = await up.get("fulfillment", "/waves", status="released")
    awaiting = await up.get("fulfillment", "/orders/awaiting")
    return render(request, "warehouse.html", user, waves=waves, awaiting=awaiting)


@router.get("/warehouse/waves/{wave_id}")
async def wave(wave_id: str, request: Request, user: User = Depends(viewer("warehouse.view")),
               print_view: bool = False) -> Response:
    w = await upstream(request).get_or_none("fulfillment", f"/waves/{wave_id}")
    if w is None:
        return render(request, "error.html", user, status_code=404,
                      title_key="warehouse.no_wave.title", message_key="warehouse.no_wave.body")
    groups: dict[str, list[str]] = {}
    for o in w["orders"]:
        groups.setdefault(o["group_id"] or o["order_id"], []).append(o["order_key"])
    merged = [keys for keys in groups.values() if len(keys) > 1]
    return render(request, "wave_print.html" if print_view else "wave.html", user, w=w,
                  merged=merged)


async def _station(request: Request, user: User, order_id: uuid.UUID,
                   result: dict[str, Any] | None = None, status_code: int = 200) -> Response:
    up = upstream(request)
    o = await up.get_or_none("fulfillment", f"/orders/{order_id}")
    if o is None:
        return render(request, "error.html", user, status_code=404,
                      title_key="warehouse.no_order.title", message_key="warehouse.no_order.body")
    picks = [p for p in o["picks"] if p["status"] != "cancelled"]
    pick = picks[0] if picks else None
    scanned_all = pick is not None and not pick["remaining"]
    labels = []
    for p in o["parcels"]:
        shipped = await up.raw("logistics", f"/labels/{p['parcel_id']}.pdf")
        labels.append({**p, "label_ready": shipped.status_code == 200})
    template = "station_body.html" if request.headers.get("hx-request") == "true" else \
        "station.html"
    return render(request, template, user, o=o, pick=pick, scanned_all=scanned_all,
                  result=result, labels=labels, status_code=status_code)


@router.get("/warehouse/orders/{order_id}")
async def station(order_id: uuid.UUID, request: Request,
                  user: User = Depends(viewer("warehouse.view"))) -> Response:
    return await _station(request, user, order_id)


async def _work(request: Request, user: User, order_id: uuid.UUID, step: str,
                body: dict[str, Any] | None) -> dict[str, Any]:
    try:
        answer = await upstream(request).call("fulfillment", "POST",
                                              f"/orders/{order_id}/{step}", body=body)
    except UpstreamError as exc:
        await audit(request, user, f"warehouse.{step}", str(order_id), "refused", before=body,
                    detail=exc.detail)
        return {"step": step, "ok": False, "refused": exc.detail, "status": exc.status}
    outcome = "ok" if answer.get("accepted", answer.get("ok", True)) else "refused"
    await audit(request, user, f"warehouse.{step}", str(order_id), outcome, before=body,
                after=answer)
    return {"step": step, **answer}


@router.post("/warehouse/orders/{order_id}/scan")
async def station_scan(order_id: uuid.UUID, request: Request,
                       user: User = Depends(actor("warehouse.work")),
                       code: str = Form(min_length=1, max_length=64)) -> Response:
    result = await _work(request, user, order_id, "scan", {"code": code.strip()})
    return await _station(request, user, order_id, result)


@router.post("/warehouse/orders/{order_id}/weigh")
async def station_weigh(order_id: uuid.UUID, request: Request,
                        user: User = Depends(actor("warehouse.work")),
                        weight_g: int = Form(ge=0, le=1_000_000)) -> Response:
    result = await _work(request, user, order_id, "weigh", {"weight_g": weight_g})
    return await _station(request, user, order_id, result)


@router.post("/warehouse/orders/{order_id}/pack")
async def station_pack(order_id: uuid.UUID, request: Request,
                       user: User = Depends(actor("warehouse.work"))) -> Response:
    result = await _work(request, user, order_id, "pack", None)
    return await _station(request, user, order_id, result)


@router.get("/warehouse/labels/{parcel_id}.pdf")
async def label(parcel_id: str, request: Request,
                user: User = Depends(viewer("warehouse.view"))) -> Response:
    if not KEY_RE.match(parcel_id):
        return Response(status_code=404)
    r = await upstream(request).raw("logistics", f"/labels/{parcel_id}.pdf")
    if r.status_code != 200:
        return render(request, "error.html", user, status_code=404,
                      title_key="warehouse.no_label.title", message_key="warehouse.no_label.body")
    await audit(request, user, "warehouse.label", parcel_id, "ok")
    return Response(r.content, media_type="application/pdf",
                    headers={"Content-Disposition": f'inline; filename="{parcel_id}.pdf"'})


# --- returns ----------------------------------------------------------------------------------

@router.get("/returns")
async def returns(request: Request, user: User = Depends(viewer("returns.view"))) -> Response:
    queue = await upstream(request).get("aftersales", "/requests/review")
    return render(request, "returns.html", user, queue=queue, flash=_flash(request))


@router.post("/returns/{store_name}/{ext}/{request_id}/decide")
async def returns_decide(store_name: str, ext: str, request_id: str, request: Request,
                         user: User = Depends(actor("returns.decide")),
                         decision: str = Form(pattern="^(approve|reject)$"),
                         note: str = Form(min_length=1, max_length=2000)) -> Response:
    path = f"/requests/{store_name}/{ext}/{request_id}"
    up = upstream(request)
    before = await up.get_or_none("aftersales", path)
    after = await up.call("aftersales", "POST", f"{path}/decision",
                          body={"decision": decision, "note": note, "operator": user.username})
    await audit(request, user, f"returns.{decision}", f"{store_name}:{ext}/{request_id}", "ok",
                before={"status": before["status"] if before else None}, after=after,
                detail=note)
    return _back("/returns", ok="returns.decided")


@router.post("/returns/{store_name}/{ext}/{request_id}/grade")
async def returns_grade(store_name: str, ext: str, request_id: str, request: Request,
                        user: User = Depends(actor("returns.grade")),
                        grade: str = Form(pattern="^(resellable|refurbish|scrap)$"),
                        note: str = Form("", max_length=2000)) -> Response:
    path = f"/requests/{store_name}/{ext}/{request_id}"
    up = upstream(request)
    before = await up.get_or_none("aftersales", path)
    after = await up.call("aftersales", "POST", f"{path}/grade",
                          body={"grade": grade, "note": note or None, "operator": user.username})
    await audit(request, user, "returns.grade", f"{store_name}:{ext}/{request_id}", "ok",
                before={"status": before["status"] if before else None}, after=after,
                detail=note)
    return _back("/returns", ok="returns.graded")


# --- follow-up cases (aftersales) --------------------------------------------------------------
# Unhappy feedback opens a case (aftersales); support works it here: assign, comment, close with
# a resolution, reopen. Each step is aftersales' (which keeps the notes); the console audits it.
CASE_RESOLUTIONS = ("resolved", "refunded", "replaced", "no_action", "unreachable")
CASE_STATUSES = ("open", "closed", "all")


@router.get("/cases")
async def cases(request: Request, user: User = Depends(viewer("cases.view")),
                status: str = "open", mine: bool = False) -> Response:
    status = status if status in CASE_STATUSES else "open"
    params: dict[str, Any] = {"status": status, "limit": 500}
    if mine:
        params["assignee"] = user.username
    up = upstream(request)
    found, summary = await asyncio.gather(up.get("aftersales", "/follow-ups", **params),
                                          up.get("aftersales", "/follow-ups/summary"))
    return render(request, "cases.html", user, cases=found, summary=summary, status=status,
                  mine=mine, statuses=CASE_STATUSES, flash=_flash(request))


@router.get("/cases/{case_id}")
async def case_detail(case_id: int, request: Request, user: User = Depends(viewer("cases.view"))
                      ) -> Response:
    found = await upstream(request).get("aftersales", f"/follow-ups/{case_id}")
    people = [u["username"] for u in await store.users(pool(request))
              if u["role"] in ("admin", "manager", "support")]
    return render(request, "case.html", user, case=found, people=people,
                  resolutions=CASE_RESOLUTIONS, flash=_flash(request))


async def _case_step(request: Request, user: User, case_id: int, step: str, body: dict[str, Any]
                     ) -> Response:
    """One step of a case through aftersales, audited with the status before and after; a step
    the case's state forbids (aftersales answers 409) comes back as a message, not an error page."""
    path = f"/follow-ups/{case_id}"
    up = upstream(request)
    before = await up.get_or_none("aftersales", path)
    try:
        after = await up.call("aftersales", "POST", f"{path}/{step}",
                              body={**body, "operator": user.username})
    except UpstreamError as exc:
        if exc.status != 409:
            raise
        await audit(request, user, f"cases.{step}", f"case:{case_id}", "refused",
                    detail=exc.detail)
        return _back(f"/cases/{case_id}", err="cases.refused")
    await audit(request, user, f"cases.{step}", f"case:{case_id}", "ok",
                before={k: before.get(k) for k in ("status", "assignee")} if before else None,
                after={k: after.get(k) for k in ("status", "assignee", "resolution")},
                detail=body.get("body") or body.get("note") or body.get("assignee"))
    return _back(f"/cases/{case_id}", ok=f"cases.{step}_done")


@router.post("/cases/{case_id}/assign")
async def case_assign(case_id: int, request: Request, user: User = Depends(actor("cases.work")),
                      assignee: str = Form(min_length=1, max_length=64)) -> Response:
    return await _case_step(request, user, case_id, "assign", {"assignee": assignee.strip()})


@router.post("/cases/{case_id}/comments")
async def case_comment(case_id: int, request: Request, user: User = Depends(actor("cases.work")),
                       body: str = Form(min_length=1, max_length=4000)) -> Response:
    return await _case_step(request, user, case_id, "comments", {"body": body})


@router.post("/cases/{case_id}/close")
async def case_close(case_id: int, request: Request, user: User = Depends(actor("cases.work")),
                     resolution: str = Form(pattern="^(" + "|".join(CASE_RESOLUTIONS) + ")$"),
                     note: str = Form(min_length=1, max_length=4000)) -> Response:
    return await _case_step(request, user, case_id, "close",
                            {"resolution": resolution, "note": note})


@router.post("/cases/{case_id}/reopen")
async def case_reopen(case_id: int, request: Request, user: User = Depends(actor("cases.work")),
                      note: str = Form(min_length=1, max_length=4000)) -> Response:
    return await _case_step(request, user, case_id, "reopen", {"note": note})


@router.get("/returns/receive")
async def returns_receive_form(request: Request, user: User = Depends(viewer("returns.view")),
                               store_name: str = "", ext: str = "", request_id: str = ""
                               ) -> Response:
    found = None
    if store_name and ext and request_id and all(
            KEY_RE.match(x) for x in (store_name, ext, request_id)):
        found = await upstream(request).get_or_none(
            "aftersales", f"/requests/{store_name}/{ext}/{request_id}")
    return render(request, "returns_receive.html", user, found=found, store_name=store_name,
                  ext=ext, request_id=request_id, searched=bool(request_id),
                  flash=_flash(request))


@router.post("/returns/receive")
async def returns_receive(request: Request, user: User = Depends(actor("returns.receive"))
                          ) -> Response:
    form = await request.form()
    store_name, ext, request_id = (str(form.get(k) or "") for k in ("store", "ext", "request_id"))
    lines = []
    for sku, qty, cond in zip(form.getlist("sku"), form.getlist("quantity"),
                              form.getlist("condition"), strict=False):
        if int(str(qty) or 0) > 0:
            lines.append({"sku": str(sku), "quantity": int(str(qty)), "condition": str(cond)})
    try:
        event = _event(ReturnReceived, store=store_name, external_order_id=ext,
                       request_id=request_id, lines=lines)
    except ValidationError:
        return _back(f"/returns/receive?store_name={store_name}&ext={ext}"
                     f"&request_id={request_id}", err="returns.receive.invalid")
    await upstream(request).publish("returns.received", f"{store_name}:{ext}", event)
    await audit(request, user, "returns.receive", f"{store_name}:{ext}/{request_id}",
                "requested", after={"lines": lines, "event_id": event["event_id"]})
    return _back("/returns", ok="returns.received")


# --- exceptions -------------------------------------------------------------------------------

def _topics() -> list[str]:
    return sorted(t.name for t in ALL_TOPICS)


OUTBOX_OWNERS = (*SERVICES, "console")  # every outbox: the services' and the console's own


async def _quarantined(request: Request) -> tuple[list[dict[str, Any]], list[str]]:
    """Every service's quarantined outbox rows (their `GET /outbox/quarantined`) and the
    console's own, newest first; and the services that could not be asked (shown, not fatal)."""
    up = upstream(request)

    async def of(service: str) -> list[dict[str, Any]]:
        if service == "console":
            async with pool(request).acquire() as conn:
                own = await outbox.quarantined(conn)
            return [{**r, "service": "console", "created_at": r["created_at"].isoformat(),
                     "quarantined_at": r["quarantined_at"].isoformat()} for r in own]
        body = await up.get(service, "/outbox/quarantined", limit=100)
        return [{**r, "service": service} for r in body["rows"]]

    answers = await asyncio.gather(*(of(s) for s in OUTBOX_OWNERS), return_exceptions=True)
    rows: list[dict[str, Any]] = []
    unreachable: list[str] = []
    for service, answer in zip(OUTBOX_OWNERS, answers, strict=True):
        if isinstance(answer, UpstreamError):
            unreachable.append(service)
        elif isinstance(answer, BaseException):
            raise answer
        else:
            rows.extend(answer)
    rows.sort(key=lambda r: str(r["quarantined_at"]), reverse=True)
    return rows, unreachable


async def _dead_letter_rows(request: Request, topic: str) -> list[dict[str, Any]]:
    """The newest 200 dead letters of `topic`, each marked when replayed before (by the console,
    or below the replay group's committed offset: `shopkeeper dlq replay`)."""
    replayed = await replayed_positions(topic)
    consumer, found = await dead_letters(topic, limit=20_000)
    await consumer.stop()
    found = sorted(found, key=lambda r: r.timestamp, reverse=True)[:200]  # the newest
    done = {row["target"] for row in await pool(request).fetch(
        "SELECT target FROM audit WHERE action = 'exceptions.replay' AND outcome = 'ok'"
        " AND target LIKE $1", f"{topic}.dlq:%")}
    records: list[dict[str, Any]] = []
    for r in found:
        ref = dlq.origin(topic, r)
        records.append({
            "partition": r.partition, "offset": r.offset, "ref": ref,
            "key": r.key.decode(errors="replace") if r.key else "",
            "headers": dlq.headers(r), "value": (r.value or b"").decode(errors="replace")[:4000],
            "replayed": ref in done or r.offset < replayed.get(r.partition, 0)})
    return records


async def _nothing() -> list[dict[str, Any]]:
    return []


@router.get("/exceptions")
async def exceptions(request: Request, user: User = Depends(viewer("exceptions.view")),
                     topic: str = "") -> Response:
    up = upstream(request)
    # Every list at once: logistics twice, the eight outboxes, and the chosen DLQ.
    held, parcels, (quarantined, unreachable), records = await asyncio.gather(
        up.get("logistics", "/parcels/held"),
        up.get("logistics", "/parcels/exceptions", limit=200), _quarantined(request),
        _dead_letter_rows(request, topic) if topic in _topics() else _nothing())
    return render(request, "exceptions.html", user, held=held, parcels=parcels,
                  quarantined=quarantined, unreachable=unreachable, topics=_topics(),
                  topic=topic, records=records, flash=_flash(request))


@router.post("/exceptions/outbox/release")
async def exceptions_release(request: Request, user: User = Depends(actor("exceptions.release")),
                             service: str = Form(max_length=32),
                             row_id: int = Form(ge=1)) -> Response:
    """Put a quarantined outbox row back in line (after its cause is fixed, e.g. the broker's
    message.max.bytes raised): the owning service's relay publishes it; refused again, it goes
    back to quarantine."""
    if service not in OUTBOX_OWNERS:
        return _back("/exceptions", err="exceptions.unknown_service")
    target = f"{service}/outbox/{row_id}"
    before = next((r for r in (await _quarantined(request))[0]
                   if r["service"] == service and r["id"] == row_id), None)
    seen = {k: str(before[k]) for k in ("topic", "key", "error")} if before else None
    if service == "console":
        async with pool(request).acquire() as conn:
            released = await outbox.release(conn, row_id)
    else:
        try:
            await upstream(request).call(service, "POST",
                                         f"/outbox/quarantined/{row_id}/release",
                                         operator=user.username)
            released = True
        except UpstreamError as exc:
            if exc.status != 404:
                await audit(request, user, "exceptions.release", target, "refused",
                            before=seen, detail=exc.detail)
                raise
            released = False
    if not released:
        await audit(request, user, "exceptions.release", target, "refused", before=seen,
                    detail="no such quarantined row (released already?)")
        return _back("/exceptions", err="exceptions.release_gone")
    await audit(request, user, "exceptions.release", target, "ok", before=seen,
                after={"released": row_id})
    return _back("/exceptions", ok="exceptions.released")


@router.post("/exceptions/replay")
async def exceptions_replay(request: Request, user: User = Depends(actor("exceptions.replay")),
                            topic: str = Form(), partition: int = Form(ge=0),
                            offset: int = Form(ge=0)) -> Response:
    if topic not in _topics():
        return _back("/exceptions", err="exceptions.unknown_topic")
    consumer, found = await dead_letters(topic, limit=100_000, offsets={(partition, offset)})
    await consumer.stop()
    ref = f"{topic}.dlq:{partition}:{offset}"
    if not found:
        return _back(f"/exceptions?topic={topic}", err="exceptions.not_found")
    r = found[0]
    await upstream(request).publish(topic, r.key.decode(errors="replace") if r.key else None,
                                    r.value or b"", [(REPLAYED_FROM, ref.encode())])
    await audit(request, user, "exceptions.replay", ref, "ok",
                before={"error": dict((k, v.decode(errors="replace")) for k, v in r.headers
                                      ).get("x-error")},
                after={"topic": topic, "group": REPLAY_GROUP})
    return _back(f"/exceptions?topic={topic}", ok="exceptions.replayed")


# --- stock ------------------------------------------------------------------------------------

@router.get("/stock")
async def stock(request: Request, user: User = Depends(viewer("stock.view")), sku: str = "",
                warehouse_name: str = "") -> Response:
    up = upstream(request)
    ledger: list[dict[str, Any]] = []
    hints: list[dict[str, Any]] = []
    if sku:
        rows = (await up.get("inventory", f"/stock/{sku}"))["warehouses"]
        ledger = (await up.get("inventory", f"/ledger/{sku}", limit=200))["rows"]
        hints = await up.get("inventory", "/reorder-hints", sku=sku)
    else:
        rows = await up.get("inventory", "/stock", warehouse=warehouse_name or None, limit=500)
    return render(request, "stock.html", user, rows=rows, sku=sku, ledger=ledger, hints=hints,
                  warehouse_name=warehouse_name, flash=_flash(request))


@router.post("/stock/adjust")
async def stock_adjust(request: Request, user: User = Depends(actor("stock.adjust")),
                       sku: str = Form(min_length=1, max_length=64),
                       warehouse_name: str = Form(min_length=1, max_length=32),
                       kind: str = Form(pattern="^(received|counted|damaged)$"),
                       quantity: int = Form(ge=0, le=10_000_000),
                       reference: str = Form(min_length=1, max_length=200)) -> Response:
    before = (await upstream(request).get("inventory", f"/stock/{sku}"))["warehouses"]
    event = _event(StockAdjusted, sku=sku, warehouse=warehouse_name, kind=kind,
                   quantity=quantity, reference=reference)
    await upstream(request).publish("stock.adjustments", sku, event)
    await audit(request, user, f"stock.{kind}", f"{sku}@{warehouse_name}", "requested",
                before=[r for r in before if r["warehouse"] == warehouse_name],
                after={"quantity": quantity, "event_id": event["event_id"]}, detail=reference)
    return _back(f"/stock?sku={sku}", ok="stock.adjusted")


@router.post("/stock/expected")
async def stock_expected(request: Request, user: User = Depends(actor("stock.adjust")),
                         sku: str = Form(min_length=1, max_length=64),
                         warehouse_name: str = Form(min_length=1, max_length=32),
                         quantity: int = Form(ge=1, le=10_000_000),
                         eta: str = Form(pattern=r"^\d{4}-\d{2}-\d{2}$"),
                         reference: str = Form("", max_length=200)) -> Response:
    """Goods on the way: inventory gives the SKU's backorders a restock ETA."""
    body = {"sku": sku, "warehouse": warehouse_name, "quantity": quantity,
            "eta": f"{eta}T00:00:00Z", "reference": reference or None}
    after = await upstream(request).call("inventory", "POST", "/receipts/expected", body=body)
    await audit(request, user, "stock.expected", f"{sku}@{warehouse_name}", "ok", before=body,
                after={"backorders_updated": after.get("backorders_updated")})
    return _back(f"/stock?sku={sku}", ok="stock.expected_saved")


# --- backorders -------------------------------------------------------------------------------

@router.get("/backorders")
async def backorders(request: Request, user: User = Depends(viewer("backorders.view")),
                     sku: str = "") -> Response:
    rows = await upstream(request).get("inventory", "/backorders", sku=sku or None)
    by_sku: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        for line in r["short_lines"]:
            by_sku.setdefault(line["sku"], []).append(r)
    return render(request, "backorders.html", user, by_sku=by_sku, sku=sku,
                  flash=_flash(request))


@router.post("/backorders/{store_name}/{ext}/decide")
async def backorder_decide(store_name: str, ext: str, request: Request,
                           user: User = Depends(actor("backorders.decide")),
                           decision: str = Form(pattern="^(wait|substitute|cancel)$"),
                           order_id: str = Form(max_length=64),
                           sku: str = Form(max_length=64),
                           substitutions: str = Form(""),
                           restock_eta: str = Form("", max_length=40)) -> Response:
    """The decision (on `orders.backorder_decisions`, as the customer's answer taken by the
    manager) and the templated message telling the buyer, in the buyer's language, on
    `customer.messages`."""
    subs: dict[str, str] = {}
    for pair in substitutions.split(","):
        if "=" in pair:
            a, _, b = pair.partition("=")
            subs[a.strip()] = b.strip()
    up = upstream(request)
    key = f"{store_name}:{ext}"
    found = (await up.get("analytics", "/orders", order_id=order_id))["orders"]
    lang = i18n.buyer_language(found[0]["country"] if found else None)
    buyer = i18n.Translator(lang)
    values = {"order": found[0].get("external_order_id", ext) if found else ext, "sku": sku,
              "substitute": subs.get(sku, ""),
              "eta": buyer.dt(restock_eta) if restock_eta else buyer("msg.eta_unknown")}
    message = CustomerMessage(store=store_name, external_order_id=ext,
                              language=i18n.bcp47(lang), template=f"backorder.{decision}",
                              subject=buyer(f"msg.backorder.{decision}.subject", **values),
                              body=buyer(f"msg.backorder.{decision}.body", **values))
    event = BackorderDecision(store=store_name, external_order_id=ext, decision=decision,
                              substitutions=subs)
    # One unit of work: the audit row and both events in the console's outbox (the relay
    # publishes them in this order, on the order's key). Kafka away now: they wait, none lost.
    # An operator's action has no cause: the events keep the ids built here, which the audit
    # row records.
    async with UnitOfWork.begin(pool(request), "console") as uow:
        await uow.publish(topics.ORDERS_BACKORDER_DECISIONS, key, event)
        await uow.publish(topics.CUSTOMER_MESSAGES, key, message)
        await audit(request, user, f"backorders.{decision}", key, "requested", conn=uow.conn,
                    after={"substitutions": subs, "event_id": str(event.event_id),
                           "message": {"language": message.language,
                                       "subject": message.subject,
                                       "event_id": str(message.event_id)}})
    return _back("/backorders", ok="backorders.sent")


# --- rules ------------------------------------------------------------------------------------

def _candidate(form_setting: str, form_value: str) -> dict[str, Any]:
    """A setting as intake's JSON wants it: `5` a number, `true` a boolean, `hold` a string."""
    text = form_value.strip()
    try:
        value: Any = json.loads(text)
    except ValueError:
        value = text
    return {form_setting.strip(): value}


@router.get("/rules")
async def rules(request: Request, user: User = Depends(viewer("rules.view"))) -> Response:
    policies = await upstream(request).get("intake", "/policies")
    return render(request, "rules.html", user, policies=policies, dry=None,
                  flash=_flash(request))


@router.post("/rules/dry-run")
async def rules_dry_run(request: Request, user: User = Depends(actor("rules.edit")),
                        store_name: str = Form(min_length=1, max_length=64),
                        setting: str = Form(min_length=1, max_length=64),
                        value: str = Form(max_length=200)) -> Response:
    up = upstream(request)
    dry = await up.call("intake", "POST", "/rules/dry-run",
                        body={"policies": {store_name: _candidate(setting, value)},
                              "limit": 500})
    await audit(request, user, "rules.dry_run", store_name, "ok",
                before=_candidate(setting, value), after={"changed": dry.get("changed")})
    policies = await up.get("intake", "/policies")
    return render(request, "rules.html", user, policies=policies, dry=dry,
                  candidate={"store": store_name, "setting": setting, "value": value},
                  flash={})


@router.post("/rules/apply")
async def rules_apply(request: Request, user: User = Depends(actor("rules.edit")),
                      store_name: str = Form(min_length=1, max_length=64),
                      setting: str = Form(min_length=1, max_length=64),
                      value: str = Form(max_length=200)) -> Response:
    up = upstream(request)
    before = (await up.get("intake", "/policies")).get(store_name)
    after = await up.call("intake", "PUT", f"/policies/{store_name}",
                          body=_candidate(setting, value), operator=user.username)
    await audit(request, user, "rules.apply", store_name, "ok",
                before={setting: (before or {}).get(setting)}, after={setting: after.get(setting)})
    return _back("/rules", ok="rules.applied")


# --- dashboard --------------------------------------------------------------------------------

@router.get("/dashboard")
async def dashboard(request: Request, user: User = Depends(viewer("dashboard.view"))
                    ) -> Response:
    up = upstream(request)
    summary = await up.get("analytics", "/summary")
    reports = (await up.get("analytics", "/reports"))["reports"]
    by_status = summary["orders_by_status"]
    top = max(by_status.values(), default=0) or 1
    public = console_settings().analytics_public_url
    charts = f"{public.rstrip('/')}/" if public else None
    return render(request, "dashboard.html", user, kpis=reports.get("summary", []), charts=charts,
                  by_status=by_status, top=top, hold_reasons=summary.get("hold_reasons", {}),
                  rejection_reasons=summary.get("rejection_reasons", {}))


# --- users, me and the audit trail ------------------------------------------------------------

@router.get("/users")
async def users(request: Request, user: User = Depends(viewer("users.manage"))) -> Response:
    return render(request, "users.html", user, users=await store.users(pool(request)),
                  roles=roles.ROLES, new_password=None, flash=_flash(request))


@router.post("/users")
async def users_add(request: Request, user: User = Depends(actor("users.manage")),
                    username: str = Form(pattern=r"^[A-Za-z0-9._@-]{1,64}$"),
                    role: str = Form(), time_zone: str = Form("UTC")) -> Response:
    if not roles.is_role(role):
        return _back("/users", err="users.bad_role")
    if await store.user_by_name(pool(request), username):
        return _back("/users", err="users.exists")
    password = auth.one_time_password()
    await store.create_user(pool(request), username, await _hash(password), role,
                            i18n.zone(time_zone).key, must_change=True)
    await audit(request, user, "users.add", username, "ok", after={"role": role})
    return render(request, "users.html", user, users=await store.users(pool(request)),
                  roles=roles.ROLES, new_password={"username": username, "password": password},
                  flash={"ok": "users.added"})


@router.post("/users/{user_id}")
async def users_change(user_id: int, request: Request, user: User = Depends(actor("users.manage")),
                       role: str = Form(""), active: str = Form(""), unlock: str = Form(""),
                       reset: str = Form("")) -> Response:
    db = pool(request)
    row = await db.fetchrow("SELECT username, role, active FROM users WHERE user_id = $1",
                            user_id)
    if row is None:
        return _back("/users", err="users.unknown")
    before = {"role": row["role"], "active": row["active"]}
    changes: dict[str, Any] = {}
    if role and roles.is_role(role):
        changes["role"] = role
    if active in ("true", "false"):
        changes["active"] = active == "true"
    if unlock:
        changes.update(locked_until=None, failed_logins=0)
    await store.update_user(db, user_id, **changes)
    if "role" in changes or changes.get("active") is False:
        await store.end_sessions_of(db, user_id)
    new_password = None
    if reset:
        password = auth.one_time_password()
        await store.set_password(db, user_id, await _hash(password), True)
        await store.end_sessions_of(db, user_id)
        new_password = {"username": row["username"], "password": password}
        changes["password_reset"] = True
    await audit(request, user, "users.change", row["username"], "ok", before=before,
                after=changes)
    return render(request, "users.html", user, users=await store.users(db), roles=roles.ROLES,
                  new_password=new_password, flash={"ok": "users.changed"})


@router.get("/me")
async def me(request: Request, user: User = Depends(viewer("orders.view"))) -> Response:
    return render(request, "me.html", user, zones=COMMON_ZONES, flash=_flash(request))


@router.post("/me")
async def me_save(request: Request, user: User = Depends(actor("orders.view")),
                  time_zone: str = Form(""), password: str = Form(""),
                  password_again: str = Form("")) -> Response:
    db = pool(request)
    if time_zone:
        await store.update_user(db, user.user_id, time_zone=i18n.zone(time_zone).key)
        await audit(request, user, "me.time_zone", user.username, "ok", before=user.time_zone,
                    after=time_zone)
    if password:
        if len(password) < auth.MIN_PASSWORD or password != password_again:
            return _back("/me", err="me.password_rules")
        await store.set_password(db, user.user_id, await _hash(password), False)
        await audit(request, user, "me.password", user.username, "ok")
    return _back("/me", ok="me.saved")


async def _hash(password: str) -> str:
    """argon2 off the event loop (it is meant to take tens of ms of CPU)."""
    return await asyncio.to_thread(auth.hash_password, password)


COMMON_ZONES = ("UTC", "Asia/Shanghai", "Asia/Hong_Kong", "Asia/Singapore", "Asia/Tokyo",
                "Europe/Berlin", "Europe/London", "America/Los_Angeles", "America/New_York",
                "America/Sao_Paulo", "Australia/Sydney")


@router.get("/audit")
async def audit_page(request: Request, user: User = Depends(viewer("audit.view")),
                     q: str = "", who: str = "", action: str = "") -> Response:
    rows = await store.search_audit(pool(request), text=q or None, actor=who or None,
                                    action=action or None, limit=300)
    for r in rows:
        r["before_json"] = json.dumps(r["before"], ensure_ascii=False) if r["before"] else ""
        r["after_json"] = json.dumps(r["after"], ensure_ascii=False) if r["after"] else ""
    return render(request, "audit.html", user, rows=rows, q=q, who=who, action=action)
