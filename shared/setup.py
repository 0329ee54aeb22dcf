"""A shop's setup as data, changed through the API of the service that owns it (docs/setup.md).

Warehouses, carrier services, zones, rate cards, boxes, sellers and store policies used to be
rows written by SQL migrations. Each kind now has one owning service, which declares it as a
`Kind` (its section name in the setup file, the model of one entry, how to read all entries and
how to save one) and gets, from `router(kinds)`, the same authenticated API as every other owner:

    GET    /setup                      every section this service owns
    PUT    /setup?dry_run=true         a plan for the sections given (created/updated/unchanged)
    PUT    /setup                      the same, applied in one transaction
    GET    /setup/{section}            one section
    GET    /setup/{section}/{key}      one entry
    PUT    /setup/{section}/{key}      create or replace one entry
    DELETE /setup/{section}/{key}      remove one (only kinds that allow it; others deactivate)
    GET    /setup/audit                who changed what, before and after

Every change that changes something, and only such a change, is written to the service's
`setup_audit` table (shared/migrations/0004_setup.sql) and published on `setup.changed` in the
same transaction (through the outbox), so services that keep a copy (logistics' warehouses,
analytics' sellers) follow it with `follow(handlers, {section: handler})`. Applying the same
file twice changes nothing and publishes nothing.

`shopkeeper setup export|import` (tools/setup_file.py) reads and writes the whole shop as one
YAML file through these routes, owner by owner.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import asyncpg
from fastapi import APIRouter, Depends, Header, HTTPException, Query, Request
from pydantic import BaseModel, Field, ValidationError, create_model

from .contracts import SetupChanged
from .http import require_admin
from .messaging import Handlers
from .topics import SETUP_CHANGED
from .uow import UnitOfWork

log = logging.getLogger(__name__)

Conn = asyncpg.Connection | asyncpg.pool.PoolConnectionProxy
Entry = BaseModel
KEY = re.compile(r"^[A-Za-z0-9*][A-Za-z0-9_.:*-]{0,63}$")


# Who owns which section, in the order an import applies them (what is referred to comes
# first: warehouses before logistics' zones that name them). Each owner declares its sections
# as `Kind`s (tests/handlers/test_setup_default.py checks the two agree); copies follow only the
# owner's changes (`follow`).
OWNERS: dict[str, tuple[str, ...]] = {
    "intake": ("sellers", "review_policies", "promotions"),
    "inventory": ("warehouses", "warehouse_priorities", "stock_policies"),
    "fulfillment": ("boxes",),
    "logistics": ("carriers", "carrier_services", "zones", "rate_cards"),
    "aftersales": ("aftersales_policies",),
}
SECTIONS = {section: owner for owner, sections in OWNERS.items() for section in sections}


@dataclass(frozen=True)
class Kind:
    """One kind of setup entry a service owns.

    `load(conn)` returns every entry as `{key: {field: value}}` with the model's field names
    (it is validated through `model`, so rows may carry Decimals, arrays, etc.).
    `save(uow, key, entry)` creates or replaces one entry in the service's tables (in the
    unit of work: the audit row and the event are written with it).
    `delete(uow, key)`, when given, removes one; kinds referenced by history (warehouses,
    services, boxes) have none and are deactivated with `active: false` instead.
    `changed(uow, keys)`, when given, runs once per request after the entries of this kind
    changed (re-review holds, republish coverage, ...)."""

    section: str
    model: type[Entry]
    load: Callable[[Conn], Awaitable[dict[str, dict[str, Any]]]]
    save: Callable[[UnitOfWork, str, Any], Awaitable[None]]
    delete: Callable[[UnitOfWork, str], Awaitable[None]] | None = None
    changed: Callable[[UnitOfWork, list[str]], Awaitable[None]] | None = None
    # Rules across entries and references (a store named by two sellers, a priority naming an
    # unknown warehouse): `check(conn, after, named, request)` gets every entry of the kind as
    # it would be after the request, the keys the request names, and the whole request parsed
    # (other sections of the same owner, e.g. warehouses created in the same file); it answers
    # the problems (`{"at": ..., "error": ...}`). Runs in plans too, before anything is saved.
    check: Callable[[Conn, dict[str, Any], set[str], dict[str, dict[str, Any]]],
                    Awaitable[list[dict[str, str]]]] | None = None
    doc: str = ""


class SetupInvalid(Exception):
    """Entries that do not validate: `problems` are `{"at": "section.key.field", "error": ...}`."""

    def __init__(self, problems: list[dict[str, str]]) -> None:
        super().__init__("; ".join(f"{p['at']}: {p['error']}" for p in problems))
        self.problems = problems


def _dump(entry: Entry) -> dict[str, Any]:
    return entry.model_dump(mode="json")


async def current(conn: Conn, kind: Kind) -> dict[str, Entry]:
    """Every entry of `kind` as its model (so that 5.5 and 5.50 compare equal)."""
    return {k: kind.model.model_validate(v) for k, v in (await kind.load(conn)).items()}


def parse(kinds: Sequence[Kind], sections: dict[str, Any]) -> dict[str, dict[str, Entry]]:
    """Validate the sections given (unknown sections, bad keys and bad fields are all reported
    together, each with where it is)."""
    by_name = {k.section: k for k in kinds}
    problems: list[dict[str, str]] = []
    parsed: dict[str, dict[str, Entry]] = {}
    for section, entries in sections.items():
        kind = by_name.get(section)
        if kind is None:
            problems.append({"at": section, "error": "not a section this service owns"
                             f" (it owns: {', '.join(by_name) or 'none'})"})
            continue
        if not isinstance(entries, dict):
            problems.append({"at": section, "error": "must be a mapping of key to entry"})
            continue
        parsed[section] = {}
        for key, raw in entries.items():
            key = str(key)
            if not KEY.match(key):
                problems.append({"at": f"{section}.{key}", "error": "a key is 1-64 letters, digits"
                                 " or _.:*- (and does not start with a punctuation mark)"})
                continue
            try:
                parsed[section][key] = kind.model.model_validate(raw)
            except ValidationError as exc:
                for err in exc.errors():
                    where = ".".join(str(p) for p in err["loc"])
                    problems.append({"at": f"{section}.{key}" + (f".{where}" if where else ""),
                                     "error": err["msg"]})
    if problems:
        raise SetupInvalid(problems)
    return parsed


def _diff(before: Entry | None, after: Entry | None) -> dict[str, list[Any]]:
    old = before.model_dump() if before is not None else {}
    new = after.model_dump() if after is not None else {}
    jold = _dump(before) if before is not None else {}
    jnew = _dump(after) if after is not None else {}
    return {f: [jold.get(f), jnew.get(f)] for f in sorted(set(old) | set(new))
            if old.get(f) != new.get(f)}


async def apply(uow: UnitOfWork, kinds: Sequence[Kind], sections: dict[str, Any], *,
                changed_by: str, dry_run: bool) -> dict[str, Any]:
    """Plan (and unless `dry_run`, apply) the entries given: each is created or replaced as a
    whole; entries not named are left as they are (nothing is deleted by a file)."""
    parsed = parse(kinds, sections)
    problems: list[dict[str, str]] = []
    for kind in kinds:
        if kind.check is not None and parsed.get(kind.section):
            after = {**(await current(uow.conn, kind)), **parsed[kind.section]}
            problems += await kind.check(uow.conn, after, set(parsed[kind.section]), parsed)
    if problems:
        raise SetupInvalid(problems)
    changes: list[dict[str, Any]] = []
    unchanged = 0
    for kind in kinds:  # the owner's order: warehouses before the priorities that name them
        wanted = parsed.get(kind.section)
        if not wanted:
            continue
        have = await current(uow.conn, kind)
        touched: list[str] = []
        for key, entry in wanted.items():
            before = have.get(key)
            if before is not None and before == entry:
                unchanged += 1
                continue
            changes.append({"section": kind.section, "key": key,
                            "action": "updated" if before is not None else "created",
                            "fields": _diff(before, entry)})
            if not dry_run:
                await kind.save(uow, key, entry)
                await record(uow, kind.section, key, before, entry, changed_by)
                touched.append(key)
        if touched and kind.changed is not None:
            await kind.changed(uow, touched)
    return {"service": uow.service, "dry_run": dry_run, "changes": changes,
            "unchanged": unchanged}


async def remove(uow: UnitOfWork, kind: Kind, key: str, *, changed_by: str) -> bool:
    """Delete one entry of a kind that allows it; False when there was none."""
    if kind.delete is None:
        raise HTTPException(405, f"{kind.section} entries are not deleted (history refers to"
                            " them): set `active: false` instead")
    before = (await current(uow.conn, kind)).get(key)
    if before is None:
        return False
    await kind.delete(uow, key)
    await record(uow, kind.section, key, before, None, changed_by)
    if kind.changed is not None:
        await kind.changed(uow, [key])
    return True


async def record(uow: UnitOfWork, section: str, key: str, before: Entry | None,
                 after: Entry | None, changed_by: str) -> None:
    """The audit row and the `setup.changed` event of one change, in the unit of work."""
    event = SetupChanged(owner=uow.service, kind=section, key=key,
                         data=_dump(after) if after is not None else None,
                         changed_by=changed_by)
    await uow.publish(SETUP_CHANGED, f"{section}:{key}", event)
    await uow.conn.execute(
        "INSERT INTO setup_audit (section, key, action, before, after, changed_by, event_id)"
        " VALUES ($1, $2, $3, $4::jsonb, $5::jsonb, $6, $7)",
        section, key, "deleted" if after is None else "updated" if before else "created",
        json.dumps(_dump(before)) if before is not None else None,
        json.dumps(_dump(after)) if after is not None else None, changed_by, event.event_id)
    log.info("setup %s %s %s by %s", section, key,
             "deleted" if after is None else "changed", changed_by)


# --- the copies other services keep -------------------------------------------------------------
CopyHandler = Callable[[UnitOfWork, list[SetupChanged]], Awaitable[None]]


def follow(handlers: Handlers, sections: dict[str, CopyHandler]) -> None:
    """Subscribe to `setup.changed` and hand each section's changes, in order, to its handler
    (other sections are ignored, and so is a change not published by the section's owner). A
    handler upserts (or deletes, `data is None`) its copy."""

    @handlers.on(SETUP_CHANGED)
    async def on_setup_changed(uow: UnitOfWork, events: list[SetupChanged]) -> None:
        for section, handler in sections.items():
            mine = []
            for e in events:
                if e.kind != section:
                    continue
                if e.owner != SECTIONS.get(section):
                    log.warning("setup.changed %s/%s from %s ignored: %s are %s's", section,
                                e.key, e.owner, section, SECTIONS.get(section))
                    continue
                mine.append(e)
            if mine:
                await handler(uow, mine)


# --- the API ------------------------------------------------------------------------------------
def operator(x_operator: str | None = Header(default=None, max_length=100)) -> str:
    """Who made the change, for the audit: the `X-Operator` header (the console and the CLI
    send it), else "operator"."""
    return (x_operator or "").strip() or "operator"


class SetupChange(BaseModel):
    section: str
    key: str
    action: Literal["created", "updated"]
    fields: dict[str, list[Any]] = Field(description="field -> [before, after], as JSON")


class SetupPlan(BaseModel):
    service: str
    dry_run: bool
    changes: list[SetupChange]
    unchanged: int


class SetupAuditRow(BaseModel):
    id: int
    section: str
    key: str
    action: Literal["created", "updated", "deleted"]
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    changed_by: str
    changed_at: str = Field(json_schema_extra={"format": "date-time"})
    event_id: str


class SetupDeleted(BaseModel):
    deleted: str = Field(examples=["zones/WH-LA"])


def router(service: str, kinds: Sequence[Kind]) -> APIRouter:
    """The setup API of one owning service (module docstring): typed routes per kind, so the
    service's OpenAPI document describes every entry."""
    api = APIRouter(prefix="/setup", tags=["setup"], dependencies=[Depends(require_admin)])
    everything = create_model(f"{service.capitalize()}Setup", **{  # type: ignore[call-overload]
        k.section: (dict[str, k.model],  # type: ignore[name-defined]
                    Field(default_factory=dict, description=k.doc))
        for k in kinds})
    invalid: dict[int | str, dict[str, Any]] = {422: {
        "description": "entries that do not validate: `detail.problems`, each with where it is"
                       " (`section.key.field`)"}}

    def pool(request: Request) -> asyncpg.Pool:
        return request.app.state.runtime.pool

    async def run(request: Request, sections: dict[str, Any], who: str, dry_run: bool
                  ) -> dict[str, Any]:
        try:
            async with UnitOfWork.begin(pool(request), service) as uow:
                # a plan is read-only: nothing is saved, audited or published
                return await apply(uow, kinds, sections, changed_by=who, dry_run=dry_run)
        except SetupInvalid as exc:
            raise HTTPException(422, {"reason": "invalid_setup", "problems": exc.problems}
                                ) from exc

    @api.get("", response_model=everything, summary="Every setup section this service owns")
    async def get_all(request: Request) -> dict[str, dict[str, Any]]:
        async with pool(request).acquire() as conn:
            return {k.section: {key: _dump(e) for key, e in sorted((await current(conn, k))
                                                                    .items())} for k in kinds}

    @api.put("", response_model=SetupPlan, responses=invalid,
             summary="Plan (dry_run=true) or apply sections of the setup file")
    async def put_all(request: Request, body: dict[str, Any],
                      dry_run: bool = Query(False, description="plan only: change nothing"),
                      who: str = Depends(operator)) -> dict[str, Any]:
        return await run(request, body, who, dry_run)

    @api.get("/audit", response_model=list[SetupAuditRow], summary="Setup changes, newest first")
    async def audit(request: Request, section: str | None = None, key: str | None = None,
                    limit: int = Query(100, ge=1, le=1000)) -> list[dict[str, Any]]:
        rows = await pool(request).fetch(
            "SELECT id, section, key, action, before, after, changed_by, changed_at, event_id"
            " FROM setup_audit WHERE ($1::text IS NULL OR section = $1)"
            " AND ($2::text IS NULL OR key = $2) ORDER BY id DESC LIMIT $3", section, key, limit)
        return [{**dict(r), "before": json.loads(r["before"]) if r["before"] else None,
                 "after": json.loads(r["after"]) if r["after"] else None,
                 "changed_at": r["changed_at"].isoformat(), "event_id": str(r["event_id"])}
                for r in rows]

    for kind in kinds:
        _kind_routes(api, service, kind, pool, run, invalid)
    return api


def _kind_routes(api: APIRouter, service: str, kind: Kind,
                 pool: Callable[[Request], asyncpg.Pool],
                 run: Callable[..., Awaitable[dict[str, Any]]],
                 invalid: dict[int | str, dict[str, Any]]) -> None:
    """GET/PUT/DELETE of one kind's section and entries, typed by its model."""
    section = kind.section

    async def get_section(request: Request) -> dict[str, Any]:
        async with pool(request).acquire() as conn:
            return {key: _dump(e) for key, e in sorted((await current(conn, kind)).items())}

    async def get_entry(key: str, request: Request) -> dict[str, Any]:
        async with pool(request).acquire() as conn:
            entry = (await current(conn, kind)).get(key)
        if entry is None:
            raise HTTPException(404, f"no {section} entry {key!r} in {service}")
        return _dump(entry)

    async def put_entry(key: str, body: dict[str, Any], request: Request,
                        who: str = Depends(operator)) -> dict[str, Any]:
        return await run(request, {section: {key: body}}, who, False)

    async def delete_entry(key: str, request: Request, who: str = Depends(operator)
                           ) -> dict[str, Any]:
        async with UnitOfWork.begin(pool(request), service) as uow:
            if not await remove(uow, kind, key, changed_by=who):
                raise HTTPException(404, f"no {section} entry {key!r} in {service}")
        return {"deleted": f"{section}/{key}"}

    api.add_api_route(f"/{section}", get_section, methods=["GET"],
                      response_model=dict[str, kind.model],  # type: ignore[name-defined]
                      summary=f"Every {section} entry" + (f": {kind.doc}" if kind.doc else ""))
    api.add_api_route(f"/{section}/{{key}}", get_entry, methods=["GET"],
                      response_model=kind.model, summary=f"One {section} entry")
    api.add_api_route(f"/{section}/{{key}}", put_entry, methods=["PUT"],
                      response_model=SetupPlan, responses=invalid,
                      summary=f"Create or replace one {section} entry")
    # (a kind without `delete` answers 405 with what to do instead: shared `remove`)
    api.add_api_route(f"/{section}/{{key}}", delete_entry, methods=["DELETE"],
                      response_model=SetupDeleted, summary=f"Delete one {section} entry")
