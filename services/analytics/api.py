"""Analytics' HTTP: the order timeline of docs/contract.md, search, the reports (JSON and CSV) and the
dashboard that draws them."""

from __future__ import annotations

import csv
import io
import json
import logging
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import FileResponse, HTMLResponse, Response

from shared.contracts import utcnow
from shared.http import bearer, has_admin_token, require_admin

from . import domain, reports, schemas, store
from .jobs import analytics_settings, wake_refold

log = logging.getLogger(__name__)

router = APIRouter()
STATIC = Path(__file__).parent / "static"
ASSETS = {"chart.umd.min.js": "text/javascript", "dashboard.js": "text/javascript",
          "dashboard.css": "text/css", "LICENSE-chart.js.md": "text/plain"}
DEFAULT_DAYS = 30
# A report's range without the admin token: the dashboard's reports are public (aggregates, no
# personal data), but a range over the shop's whole history is a cost anyone could impose.
MAX_PUBLIC_DAYS = 366


@router.get("/orders/{store_name}/{external_order_id}", response_model=schemas.Timeline)
async def order_timeline(store_name: str, external_order_id: str, request: Request
                         ) -> dict[str, Any]:
    found = await store.timeline(request.app.state.runtime.pool,
                                 f"{store_name}:{external_order_id}")
    if found is None:
        raise HTTPException(404, f"no order {store_name}:{external_order_id}")
    return found


@router.get("/orders", dependencies=[Depends(require_admin)], response_model=schemas.Found)
async def search_orders(request: Request, order_id: str | None = None,
                        customer: str | None = None, tracking: str | None = None,
                        limit: int = Query(100, ge=1, le=1000)) -> dict[str, Any]:
    """Search by our order id, customer id or tracking number (personal data: admin token)."""
    if not (order_id or customer or tracking):
        raise HTTPException(400, "give order_id, customer or tracking")
    found = await store.search(request.app.state.runtime.pool, order_id=order_id,
                               customer=customer, tracking=tracking, limit=limit)
    return {"orders": found}


@router.get("/summary", response_model=schemas.Summary)
async def summary(request: Request, store_name: list[str] | None = Query(None, alias="store")
                  ) -> dict[str, Any]:
    """All-time counts, from the all-time rollups (t_status, t_reason)."""
    pool = request.app.state.runtime.pool
    return {"orders_by_status": await store.status_counts(pool, store_name),
            "rejection_reasons": await store.reason_counts(pool, "rejected"),
            "hold_reasons": await store.reason_counts(pool, "on_hold")}


def _moment(value: str | None, end: bool) -> datetime | None:
    """`2026-11-27` (a whole day: the end of a range includes it) or an RFC 3339 time, taken as
    its whole UTC day (the rollups are daily): `from` its day's start, `to` its day's end."""
    if not value:
        return None
    try:
        if len(value) == 10:
            d = date.fromisoformat(value)
        else:
            t = datetime.fromisoformat(value.replace("Z", "+00:00"))
            d = (t if t.tzinfo else t.replace(tzinfo=UTC)).astimezone(UTC).date()
    except ValueError as exc:
        raise HTTPException(422, f"not a date or time: {value!r}") from exc
    return datetime(d.year, d.month, d.day, tzinfo=UTC) + timedelta(days=1 if end else 0)


def _set(values: list[str] | None) -> frozenset[str]:
    return frozenset(v.strip() for item in values or [] for v in item.split(",") if v.strip())


def filters(request: Request, start: str | None = Query(None, alias="from"),
            end: str | None = Query(None, alias="to"),
            store_name: list[str] | None = Query(None, alias="store"),
            country: list[str] | None = Query(None), warehouse: list[str] | None = Query(None),
            carrier: list[str] | None = Query(None)) -> domain.Filters:
    """The dashboard's filters; with no `from`, the last 30 days (from the start of that day).
    Without the admin token a range spans at most MAX_PUBLIC_DAYS."""
    t0 = _moment(start, False) or _moment(
        (utcnow() - timedelta(days=DEFAULT_DAYS)).date().isoformat(), False)
    assert t0 is not None
    span = ((_moment(end, True) or utcnow()) - t0).days
    if span > MAX_PUBLIC_DAYS and not has_admin_token(request.headers.get("authorization")):
        raise HTTPException(422, f"the range spans {span} days; without the admin token a report"
                            f" covers at most {MAX_PUBLIC_DAYS} days: narrow from/to")
    return domain.Filters(t0, _moment(end, True), _set(store_name),
                          frozenset(c.upper() for c in _set(country)), _set(warehouse),
                          _set(carrier))


async def _reports(request: Request, f: domain.Filters, only: str | None = None
                   ) -> dict[str, list[dict[str, Any]]]:
    return await reports.reports(request.app.state.runtime.pool, f, utcnow(),
                                 analytics_settings().ship_sla_hours, only=only,
                                 with_sellers=True)


PUBLIC = (*domain.REPORTS, *reports.SELLER_REPORTS)


@router.get("/reports", response_model=schemas.Reports)
async def all_reports(request: Request, f: domain.Filters = Depends(filters)) -> dict[str, Any]:
    """Every public report for the filters, as the dashboard draws them (`sellers`: each
    seller's figures in its base currency, docs/analytics.md)."""
    found = await _reports(request, f)
    return {"filters": _describe(f), "reports": {k: found[k] for k in PUBLIC},
            "csv": {k: f"/reports/{k}.csv" for k in PUBLIC}}


@router.get("/reports/options", response_model=schemas.Options)
async def options(request: Request) -> dict[str, list[str]]:
    """What the filters can choose from."""
    return await store.filter_options(request.app.state.runtime.pool)


@router.get("/reports/{name}", response_model=schemas.Report, responses={
    200: {"content": {"text/csv": {}}, "description": "the report (CSV: `name.csv` or"
          " `?format=csv`)"}})
async def one_report(name: str, request: Request, format: str = "json",
                     f: domain.Filters = Depends(filters)) -> Any:
    """One report; `name.csv` or `?format=csv` for CSV. `rfm_customers` (per customer) needs the
    admin token."""
    if name.endswith(".csv"):
        name, format = name[:-4], "csv"
    if name in domain.PERSONAL_REPORTS:
        require_admin(await bearer(request))
    elif name not in PUBLIC:
        raise HTTPException(404, f"no report {name!r}; reports: {', '.join(PUBLIC)}")
    rows = (await _reports(request, f, only=name))[name]
    if format == "csv":
        return Response(to_csv(rows), media_type="text/csv; charset=utf-8", headers={
            "Content-Disposition": f'attachment; filename="{name}.csv"'})
    return {"report": name, "filters": _describe(f), "rows": rows}


def to_csv(rows: list[dict[str, Any]]) -> str:
    columns: list[str] = []
    for r in rows:
        columns += [k for k in r if k not in columns]
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=columns or ["empty"], lineterminator="\n")
    writer.writeheader()
    for r in rows:  # nested values (a seller's `by_currency`, `unconverted`) as JSON text
        writer.writerow({k: "" if v is None else json.dumps(v) if isinstance(v, list | dict)
                         else v for k, v in r.items()})
    return out.getvalue()


def _describe(f: domain.Filters) -> dict[str, Any]:
    return {"from": f.start.isoformat() if f.start else None,
            "to": f.end.isoformat() if f.end else None, "store": sorted(f.stores),
            "country": sorted(f.countries), "warehouse": sorted(f.warehouses),
            "carrier": sorted(f.carriers)}


@router.get("/", response_class=HTMLResponse)
async def dashboard() -> FileResponse:
    return FileResponse(STATIC / "index.html", media_type="text/html")


@router.get("/static/{name}", response_class=Response, responses={
    200: {"content": {"text/javascript": {}, "text/css": {}, "text/plain": {}},
          "description": "one of the dashboard's files"}})
async def asset(name: str) -> FileResponse:
    if name not in ASSETS:
        raise HTTPException(404, "no such file")
    return FileResponse(STATIC / name, media_type=ASSETS[name],
                        headers={"Cache-Control": "max-age=3600"})


# --- each store's time zone (its day boundaries in the rollups and reports) ------------------

def _timezone_row(r: Any) -> dict[str, Any]:
    return {"store": r["store"], "timezone": r["tz"], "changed_at": r["changed_at"].isoformat(),
            "refolding": r["refold_after"] is not None}


@router.get("/stores/timezones", response_model=schemas.StoreTimezones)
async def store_timezones(request: Request) -> dict[str, Any]:
    """Each store's time zone: its day starts at 00:00 there in every report and rollup."""
    rows = await request.app.state.runtime.pool.fetch(
        "SELECT * FROM store_timezone ORDER BY store")
    return {"default": "UTC", "stores": [_timezone_row(r) for r in rows]}


@router.put("/stores/{store_name}/timezone", dependencies=[Depends(require_admin)],
            response_model=schemas.StoreTimezone)
async def set_store_timezone(store_name: str, body: schemas.TimezoneIn, request: Request
                             ) -> dict[str, Any]:
    """Set a store's time zone (an IANA name such as `Asia/Shanghai`). Its orders are then moved
    to the new zone's days in the background (`refolding` until done, a few thousand orders a
    second); orders of the store that arrive later count in the new zone at once."""
    name = body.timezone.strip()
    if not valid_timezone(name):
        raise HTTPException(422, {"code": "unknown_timezone",
                                  "message": f"{name!r} is not an IANA time zone name"
                                             " (e.g. Asia/Shanghai, Europe/Berlin, UTC)"})
    if not store_name or len(store_name) > 64 or ":" in store_name:
        raise HTTPException(422, {"code": "invalid_store",
                                  "message": "store must be 1-64 characters without ':'"})
    row = await request.app.state.runtime.pool.fetchrow(
        "INSERT INTO store_timezone (store, tz, refold_after) VALUES ($1, $2, '')"
        " ON CONFLICT (store) DO UPDATE SET tz = EXCLUDED.tz, changed_at = now(),"
        " refold_after = CASE WHEN store_timezone.tz = EXCLUDED.tz"
        " THEN store_timezone.refold_after ELSE '' END RETURNING *", store_name, name)
    log.info("store %s now counts its days in %s; its orders are being moved to that zone's"
             " days", store_name, name)
    wake_refold(request.app.state.runtime)
    return _timezone_row(row)


def valid_timezone(name: str) -> bool:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True
