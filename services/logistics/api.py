"""Logistics' operators' HTTP: shipments of an order with the carrier choice's trace, and rate
shopping for a hypothetical parcel."""

from __future__ import annotations

import asyncio
import json
import re
from datetime import UTC, datetime
from typing import Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field

from shared import setup
from shared.contracts import OrderSnapshot
from shared.contracts.public import Attribute, ShippingOption
from shared.http import require_admin
from shared.uow import UnitOfWork

from . import domain, label, schemas, store
from .handlers import check_and_dispatch, flag_stalled, publish_coverage_in
from .kinds import KINDS

router = APIRouter()
# Setup owned here (kinds.py): carriers, carrier_services, zones, rate_cards.
router.include_router(setup.router("logistics", KINDS))
# A shipping quote is a read that takes a body: storefronts ask it at checkout, no token.
OPEN_WRITES = ("/quotes",)


class QuoteRequest(BaseModel):
    warehouse: str
    country: str = Field(pattern=r"^[A-Z]{2}$")
    weight_g: int = Field(gt=0, le=1_000_000)
    dims_mm: tuple[int, int, int]
    attributes: list[str] = []
    shipping_option: ShippingOption = "standard"
    postal_code: str | None = Field(default=None, max_length=20)


@router.post("/quotes", response_model=schemas.Quote,
             response_model_exclude_unset=True)
async def quote(q: QuoteRequest, request: Request) -> dict[str, Any]:
    """Rate-shop a hypothetical parcel: the choice and, per service, zone, cost with its
    surcharges, transit days, on-time score, and why it lost or could not take it."""
    spec = domain.ParcelSpec(q.warehouse, q.country, q.weight_g, q.dims_mm, tuple(q.attributes),
                             q.postal_code)
    pool = request.app.state.runtime.pool
    choice = domain.choose(await store.load_services(pool), spec, q.shipping_option)
    answer: dict[str, Any] = {
        "service": choice.service.code if choice.service else None,
        "cost": str(choice.cost) if choice.cost is not None else None,
        "chargeable_g": choice.chargeable_g, "reason": choice.reason, "trace": choice.trace}
    # When it would leave (the warehouse's local date, cut-off and working days) and, per
    # eligible service, when it would arrive. Unknown warehouse: neither.
    wh = await store.warehouse(pool, q.warehouse)
    day = (domain.ships_on(datetime.now(UTC), wh["timezone"], wh["cutoff"], wh["working_days"])
           if wh is not None else None)
    if day is not None:
        answer["ships_on"] = day.isoformat()
        for entry in choice.trace:
            if entry.get("eligible"):
                days: list[int] = entry["transit_days"]  # type: ignore[assignment]
                entry["estimated_delivery"] = [
                    d.isoformat() for d in domain.estimated_delivery(day, days[0], days[1])]
    return answer


@router.get("/shipments/{store_name}/{external_order_id}", dependencies=[Depends(require_admin)],
            response_model=list[schemas.Shipment],
            response_model_exclude_unset=True)
async def shipments(store_name: str, external_order_id: str, request: Request
                    ) -> list[dict[str, Any]]:
    """An order's parcels with their customs data and the order snapshot (the address: personal
    data, so the admin token is needed)."""
    return await store.shipments_of(request.app.state.runtime.pool,
                                    f"{store_name}:{external_order_id}")


@router.get("/labels/{parcel_id}.pdf", dependencies=[Depends(require_admin)],
            response_class=Response,
            responses={200: {"content": {"application/pdf": {}}, "description": "the label"}})
async def label_pdf(parcel_id: str, request: Request) -> Response:
    """The 4x6 inch label. It shows an address: personal data, so the admin token is needed."""
    row = await store.get_shipment(request.app.state.runtime.pool, parcel_id)
    if row is None or row["tracking_number"] is None or row["snapshot"] is None:
        raise HTTPException(404, "no label for this parcel (unknown, or no carrier service)")
    snap = json.loads(row["snapshot"])
    a = snap["shipping_address"]
    data = label.LabelData(
        tracking_number=row["tracking_number"], carrier=row["carrier"], service=row["service"],
        service_name=row["service_name"] or row["service"], weight_g=row["label_weight_g"]
        or row["weight_g"], parcel_id=parcel_id, order_key=row["order_key"],
        sender=[row["wh_name"] or row["warehouse"], row["wh_line1"] or "",
                " ".join(x for x in (row["wh_city"], row["wh_region"], row["wh_postal_code"])
                         if x), row["origin_country"] or ""],
        recipient=[a.get("name") or "", a.get("line1") or "", a.get("line2") or "",
                   " ".join(x for x in (a.get("city"), a.get("region"), a.get("postal_code"))
                            if x), a["country"]],
        country=a["country"], customs=json.loads(row["customs"]) if row["customs"] else None)
    # CPU work off the event loop: a blocked loop misses Kafka heartbeats (rebalances).
    pdf = await asyncio.to_thread(label.render, data)
    return Response(pdf, media_type="application/pdf",
                    headers={"Content-Disposition": f'inline; filename="{parcel_id}.pdf"'})


@router.post("/watchdog/run", dependencies=[Depends(require_admin)],
             response_model=schemas.Flagged)
async def run_watchdog(request: Request) -> dict[str, Any]:
    """One stalled-parcel pass now, instead of waiting for the timer."""
    flagged = await flag_stalled(request.app.state.runtime.pool, datetime.now(UTC))
    return {"flagged": flagged}


@router.get("/carrier-scores", response_model=list[schemas.CarrierScore])
async def carrier_scores(request: Request) -> list[dict[str, Any]]:
    return await store.scores(request.app.state.runtime.pool)


@router.get("/parcels/held", response_model=list[schemas.HeldParcel])
async def held(request: Request) -> list[dict[str, Any]]:
    """Parcels stopped before dispatch, with why: what an operator works through."""
    return await store.held_parcels(request.app.state.runtime.pool)


ExceptionKind = Literal["exception", "lost", "stalled"]


@router.get("/parcels/exceptions", dependencies=[Depends(require_admin)],
            response_model=list[schemas.ParcelException])
async def parcel_exceptions(request: Request,
                            kind: list[ExceptionKind] | None = Query(default=None),
                            limit: int = Query(default=200, ge=1, le=1000)
                            ) -> list[dict[str, Any]]:
    """Parcels after hand-over that need a person, the most recent first: delivery exceptions
    (failed attempt, exception, returned to sender), lost parcels, and stalled ones (no scan
    for longer than their service's `stall_days`; a later scan ends it). `kind` narrows it
    (repeatable). Tracking numbers and order keys: the admin token is needed."""
    kinds: set[str] = set(kind or ("exception", "lost", "stalled"))
    return await store.parcel_exceptions(request.app.state.runtime.pool, kinds, limit)


class DockScan(BaseModel):
    measured_weight_g: int = Field(gt=0, le=1_000_000)


@router.post("/parcels/{parcel_id}/dock-scan", dependencies=[Depends(require_admin)],
             response_model=schemas.DockScanResult)
async def dock_scan(parcel_id: str, scan: DockScan, request: Request) -> dict[str, Any]:
    """The dock scale's reading of a parcel not yet handed over: the final check runs again
    with it (weight against the label, address, customs). All parcels of the order pass ->
    shipped; else the parcel stays held and the answer says why."""
    # An operator's action: no cause (what it emits is new each time).
    async with UnitOfWork.begin(request.app.state.runtime.pool, "logistics") as uow:
        conn = uow.conn
        row = await conn.fetchrow("SELECT order_id FROM shipments WHERE parcel_id = $1",
                                  parcel_id)
        if row is None:
            raise HTTPException(404, "unknown parcel")
        order = await store.get_order(conn, row["order_id"])
        assert order is not None
        if order["status"] != "waiting" or order["snapshot"] is None:
            raise HTTPException(409, f"the order is {order['status']}, not waiting at the dock")
        await conn.execute("UPDATE shipments SET measured_weight_g = $2 WHERE parcel_id = $1",
                           parcel_id, scan.measured_weight_g)
        shipped = await check_and_dispatch(
            uow, order, OrderSnapshot.model_validate_json(order["snapshot"]))
        after = await conn.fetchrow("SELECT status, hold_reasons FROM shipments"
                                    " WHERE parcel_id = $1", parcel_id)
        assert after is not None
    return {"parcel_id": parcel_id, "order_shipped": shipped, "status": after["status"],
            "hold_reasons": json.loads(after["hold_reasons"])}


class Restriction(BaseModel):
    note: str = Field(min_length=1, max_length=500)


@router.get("/restrictions", response_model=list[schemas.Restriction])
async def restrictions(request: Request) -> list[dict[str, Any]]:
    """Destination restrictions: goods no service may carry to a country (import rules)."""
    return await store.restrictions(request.app.state.runtime.pool)


@router.put("/restrictions/{country}/{attribute}", dependencies=[Depends(require_admin)],
            response_model=schemas.Restriction,
            response_model_exclude_unset=True)
async def put_restriction(country: str, attribute: Attribute, body: Restriction,
                          request: Request) -> dict[str, Any]:
    """Bar `attribute` goods to `country` for every service; coverage is published again, so
    intake holds (or rejects) such orders from now on."""
    if not re.fullmatch(r"[A-Z]{2}", country):
        raise HTTPException(422, "country must be ISO 3166-1 alpha-2, upper case")
    async with UnitOfWork.begin(request.app.state.runtime.pool, "logistics") as uow:
        await store.set_restriction(uow.conn, country, attribute, body.note)
        await publish_coverage_in(uow)
    return {"country": country, "attribute": attribute, "note": body.note}


@router.delete("/restrictions/{country}/{attribute}", dependencies=[Depends(require_admin)],
               response_model=schemas.Lifted)
async def delete_restriction(country: str, attribute: str, request: Request) -> dict[str, Any]:
    """Lift a restriction (a permit came through, the rule changed); coverage is published
    again and intake releases the holds it had caused."""
    async with UnitOfWork.begin(request.app.state.runtime.pool, "logistics") as uow:
        if not await store.drop_restriction(uow.conn, country, attribute):
            raise HTTPException(404, "no such restriction")
        await publish_coverage_in(uow)
    return {"country": country, "attribute": attribute, "lifted": True}
