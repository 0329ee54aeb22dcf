"""Fulfillment's operators' HTTP: waves and their printable pick lists, and, for warehouse staff
in manual mode, scan, short pick, weigh, QC fail and pack (each needs the admin token); the
packing slip of a parcel; the box catalogue as setup (`/setup`, kinds.py). README.md
"Running a wave by hand" walks through it.

Refused scans are results (200 with `accepted: false` and a reason code), not HTTP errors; a step
asked for out of turn (weigh before every unit is scanned) is 409.
"""

from __future__ import annotations

import html
import json
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import HTMLResponse
from pydantic import BaseModel, Field

from shared import setup
from shared.contracts import OrderSnapshot
from shared.db import Conn
from shared.http import require_admin
from shared.uow import UnitOfWork

from . import domain, kinds, schemas, store, warehouse

router = APIRouter()
# GET/PUT /setup...: the box catalogue (kinds.py)
router.include_router(setup.router("fulfillment", kinds.KINDS))
admin = [Depends(require_admin)]


class ScanBody(BaseModel):
    code: str = Field(max_length=64, description="the unit's SKU or GTIN")
    warehouse: str | None = None


class ShortBody(BaseModel):
    sku: str
    missing: int = Field(ge=1)
    warehouse: str | None = None


class WeighBody(BaseModel):
    weight_g: int = Field(ge=0, le=1_000_000)
    warehouse: str | None = None


class QcBody(BaseModel):
    code: str = Field(default="qc_failed", pattern=r"^qc_[a-z_]{1,40}$")
    message: str = Field(default="", max_length=500)
    warehouse: str | None = None


class PackBody(BaseModel):
    warehouse: str | None = None


@asynccontextmanager
async def _tx(request: Request) -> AsyncIterator[UnitOfWork]:
    """A warehouse step's unit of work: no cause, as an operator's action is new each time
    (an order's `packed` is still caused by `packed/<order>`, warehouse._finish)."""
    async with UnitOfWork.begin(request.app.state.runtime.pool, "fulfillment") as uow:
        try:
            yield uow
        except warehouse.NotReady as exc:
            raise HTTPException(409, str(exc)) from exc


async def _pick(conn: Conn, order_id: uuid.UUID, wh: str | None) -> asyncpg.Record:
    """The order's pick a step is for (in `wh`, or its only one): a plain read, as the step
    then locks the orders it works on, and their picks, through the floor (warehouse.Floor)."""
    picks = [p for p in await store.order_picks(conn, order_id)
             if p["status"] != "cancelled"]
    if wh is not None:
        picks = [p for p in picks if p["warehouse"] == wh]
    if not picks:
        raise HTTPException(404, f"no pick of order {order_id}" + (f" in {wh}" if wh else ""))
    if len(picks) > 1:
        raise HTTPException(422, "the order is picked in several warehouses: name one")
    if picks[0]["wave_id"] is None:
        raise warehouse.NotReady(f"order {order_id} is not in a wave yet")
    return picks[0]


@router.get("/orders/awaiting", response_model=list[schemas.Awaiting])
async def awaiting(request: Request) -> list[dict[str, Any]]:
    rows = await request.app.state.runtime.pool.fetch(
        "SELECT order_id, order_key, created_at FROM orders WHERE status = 'awaiting_pick'"
        " ORDER BY created_at LIMIT 500")
    return [{"order_id": str(r["order_id"]), "order_key": r["order_key"],
             "since": r["created_at"].isoformat()} for r in rows]


@router.get("/orders/{order_id}", response_model=schemas.Order)
async def order(order_id: uuid.UUID, request: Request) -> dict[str, Any]:
    # One snapshot, no locks: a look must never hold up (nor deadlock with) the floor.
    async with request.app.state.runtime.pool.acquire() as conn, conn.transaction(
            isolation="repeatable_read", readonly=True):
        row = await store.get_order(conn, order_id, lock=False)
        if row is None:
            raise HTTPException(404, f"no order {order_id} in fulfillment")
        picks = await store.order_picks(conn, order_id)
        parcels = await store.parcels_of_order(conn, order_id)
    return {"order_id": str(order_id), "order_key": row["order_key"], "status": row["status"],
            "picks": [_pick_json(p) for p in picks],
            "parcels": [{"parcel_id": p["parcel_id"], "warehouse": p["warehouse"],
                         "box": p["box"], "weight_g": p["weight_g"],
                         "lines": json.loads(p["own_lines"])} for p in parcels]}


def _pick_json(p: asyncpg.Record) -> dict[str, Any]:
    expected = {ln["sku"]: ln["quantity"] for ln in json.loads(p["lines"])}
    return {"warehouse": p["warehouse"], "wave_id": p["wave_id"], "group_id": p["group_id"],
            "status": p["status"], "lines": json.loads(p["lines"]),
            "remaining": domain.remaining(expected, json.loads(p["scanned"])),
            "expected_g": p["expected_g"], "measured_g": p["measured_g"]}


@router.get("/waves", response_model=list[schemas.WaveSummary])
async def waves(request: Request, status: str = "released") -> list[dict[str, Any]]:
    rows = await request.app.state.runtime.pool.fetch(
        "SELECT * FROM waves WHERE status = $1 ORDER BY created_at DESC LIMIT 200", status)
    return [{"wave_id": r["wave_id"], "warehouse": r["warehouse"], "status": r["status"],
             "size": r["size"], "released_at": r["created_at"].isoformat()} for r in rows]


async def _wave(request: Request, wave_id: str) -> dict[str, Any]:
    async with request.app.state.runtime.pool.acquire() as conn, conn.transaction(
            isolation="repeatable_read", readonly=True):  # one snapshot, no locks
        wave = await store.get_wave(conn, wave_id)
        if wave is None:
            raise HTTPException(404, f"no wave {wave_id}")
        lines = await warehouse.wave_pick_list(conn, wave_id)
        picks = await store.wave_picks(conn, wave_id)
    return {"wave_id": wave_id, "warehouse": wave["warehouse"], "status": wave["status"],
            "released_at": wave["created_at"].isoformat(),
            "pick_list": [{"sku": ln.sku, "bin": ln.bin.label, "quantity": ln.quantity,
                           "orders": [{"order_key": k, "quantity": q} for k, q in ln.orders]}
                          for ln in lines],
            "orders": [{"order_id": str(p["order_id"]), "order_key": p["order_key"],
                        **_pick_json(p), **_bench_flags(p["snapshot"])} for p in picks]}


def _words(snapshot: str | None) -> OrderSnapshot | None:
    return OrderSnapshot.model_validate_json(snapshot) if snapshot else None


def _bench_flags(snapshot: str | None) -> dict[str, bool]:
    """What the pick list may say of the customer's words: that there are some, not what."""
    snap = _words(snapshot)
    return {"gift_wrap": bool(snap and snap.gift_wrap),
            "has_note": bool(snap and (snap.note or snap.gift_message))}


@router.get("/waves/{wave_id}", response_model=schemas.Wave)
async def wave(wave_id: str, request: Request) -> dict[str, Any]:
    return await _wave(request, wave_id)


@router.get("/waves/{wave_id}/picklist.html", response_class=HTMLResponse)
async def picklist(wave_id: str, request: Request) -> HTMLResponse:
    w = await _wave(request, wave_id)
    e = html.escape
    rows = "".join(
        f"<tr><td>{i}</td><td class=bin>{e(ln['bin'])}</td><td>{e(ln['sku'])}</td>"
        f"<td class=q>{ln['quantity']}</td><td>"
        + "<br>".join(f"{e(o['order_key'])} &times; {o['quantity']}" for o in ln["orders"])
        + "</td><td class=box>&#9744;</td></tr>"
        for i, ln in enumerate(w["pick_list"], 1))
    groups: dict[str, list[str]] = {}
    for o in w["orders"]:
        groups.setdefault(o["group_id"] or o["order_id"], []).append(o["order_key"])
    merged = "".join(f"<li>{' + '.join(e(k) for k in keys)}</li>"
                     for keys in groups.values() if len(keys) > 1)
    handling = "".join(
        f"<li>{e(o['order_key'])}: "
        + ", ".join(x for x in ("gift wrap" if o["gift_wrap"] else "",
                                "the customer's words are on the packing slip"
                                if o["has_note"] else "") if x) + "</li>"
        for o in w["orders"] if o["gift_wrap"] or o["has_note"])
    body = (f"<h1>Pick list {e(wave_id)}</h1><p>{e(w['warehouse'])} · released "
            f"{e(w['released_at'])} · {len(w['orders'])} orders · {len(w['pick_list'])} lines"
            f" (serpentine route: zone, aisle, rack, level)</p>"
            "<table><tr><th>#</th><th>Bin</th><th>SKU</th><th>Qty</th><th>Sort to orders</th>"
            f"<th>Done</th></tr>{rows}</table>"
            + (f"<h2>Pack together (same buyer and address)</h2><ul>{merged}</ul>"
               if merged else "")
            + (f"<h2>Handle with care: the customer asked</h2><ul class=handling>{handling}</ul>"
               if handling else ""))
    return HTMLResponse(_page(f"Pick list {wave_id}", body))


def _customer_words(snap: OrderSnapshot | None) -> str:
    """The order's note, gift wrap and gift message, as the packer reads them on the slip."""
    if snap is None:
        return ""
    e = html.escape
    out = ""
    if snap.gift_wrap:
        out += "<p class=gift-wrap><strong>Gift wrap this order.</strong></p>"
    if snap.note:
        out += f"<p class=note><strong>Note from the customer:</strong> {e(snap.note)}</p>"
    if snap.gift_message:
        out += ("<div class=gift-message><strong>Gift message (print or write it on the card"
                f" in the box):</strong><blockquote>{e(snap.gift_message)}</blockquote></div>")
    return out


def _page(title: str, body: str) -> str:
    return ("<!doctype html><html><head><meta charset=utf-8><title>" + html.escape(title)
            + "</title><style>body{font-family:sans-serif;margin:2em}table{border-collapse:"
            "collapse;width:100%}td,th{border:1px solid #999;padding:.3em .6em;text-align:left}"
            ".bin{font-family:monospace;font-size:1.2em}.q{font-weight:bold;text-align:right}"
            "@media print{body{margin:0}}</style></head><body>" + body + "</body></html>")


@router.post("/orders/{order_id}/scan", dependencies=admin, response_model=schemas.ScanResult,
             response_model_exclude_unset=True)
async def scan(order_id: uuid.UUID, body: ScanBody, request: Request) -> dict[str, Any]:
    async with _tx(request) as uow:
        pick = await _pick(uow.conn, order_id, body.warehouse)
        return {"order_id": str(order_id), **await warehouse.scan(uow, pick, body.code)}


@router.post("/orders/{order_id}/short", dependencies=admin,
             response_model=schemas.ShortPicked)
async def short(order_id: uuid.UUID, body: ShortBody, request: Request) -> dict[str, Any]:
    async with _tx(request) as uow:
        pick = await _pick(uow.conn, order_id, body.warehouse)
        await warehouse.short_pick(uow, pick, body.sku, body.missing)
    return {"order_id": str(order_id), "status": "short_picked"}


@router.post("/orders/{order_id}/weigh", dependencies=admin,
             response_model=schemas.WeighResult)
async def weigh(order_id: uuid.UUID, body: WeighBody, request: Request) -> dict[str, Any]:
    """Weighs the parcel(s) the order goes in: with a merged order, the whole parcel."""
    async with _tx(request) as uow:
        pick = await _pick(uow.conn, order_id, body.warehouse)
        return await warehouse.weigh(uow, pick["wave_id"], pick["group_id"], body.weight_g,
                                     warehouse.config())


@router.post("/orders/{order_id}/qc-fail", dependencies=admin, response_model=schemas.QcHold)
async def qc_fail(order_id: uuid.UUID, body: QcBody, request: Request) -> dict[str, Any]:
    async with _tx(request) as uow:
        pick = await _pick(uow.conn, order_id, body.warehouse)
        held = await warehouse.qc_fail(uow, pick["wave_id"], pick["group_id"], body.code,
                                       body.message)
    return {"on_hold": held, "reason": body.code}


@router.post("/orders/{order_id}/pack", dependencies=admin, response_model=schemas.Packed)
async def pack_order(order_id: uuid.UUID, request: Request,
                     body: PackBody | None = None) -> dict[str, Any]:
    async with _tx(request) as uow:
        pick = await _pick(uow.conn, order_id, body.warehouse if body else None)
        parcels = await warehouse.pack(uow, pick["wave_id"], pick["group_id"])
    return {"order_id": str(order_id), "parcels": parcels}


@router.get("/parcels/{parcel_id}/slip.html", response_class=HTMLResponse, dependencies=admin)
async def packing_slip(parcel_id: str, request: Request) -> HTMLResponse:
    """What goes in the box: the ship-to and, per order, its lines (a merged parcel lists each
    order). Personal data, hence the admin token."""
    parcel, orders = await store.parcel_with_orders(request.app.state.runtime.pool, parcel_id)
    if parcel is None:
        raise HTTPException(404, f"no parcel {parcel_id}")
    e = html.escape
    snap = OrderSnapshot.model_validate_json(orders[0]["snapshot"]) if orders else None
    a = snap.shipping_address if snap else None
    ship_to = "<br>".join(e(x) for x in ([a.name, a.line1, a.line2, " ".join(
        filter(None, [a.postal_code, a.city, a.region])), a.country] if a else []) if x)
    sections = "".join(
        f"<h2>Order {e(o['order_key'])}</h2>" + _customer_words(_words(o["snapshot"]))
        + "<table><tr><th>SKU</th><th>Qty</th></tr>"
        + "".join(f"<tr><td>{e(ln['sku'])}</td><td>{ln['quantity']}</td></tr>"
                  for ln in json.loads(o["lines"])) + "</table>" for o in orders)
    body = (f"<h1>Packing slip {e(parcel_id)}</h1><p>{e(parcel['warehouse'])} · box "
            f"{e(parcel['box'])} · {parcel['weight_g']} g</p><h2>Ship to</h2><p>{ship_to}</p>"
            + sections)
    return HTMLResponse(_page(f"Packing slip {parcel_id}", body))
