"""Intake's operators' HTTP: the review queue (holds), decisions with their explanation, the rule
set (store policies, promotions, block list) and dry runs of a candidate rule set.

Every write is audited with who (the `X-Operator` header; "operator" when absent), when and why
(the note). What an operator writes as `reason` on a rejection goes to the storefront; the `note`
stays in intake's audit.
"""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Literal

from fastapi import APIRouter, Depends, Header, HTTPException, Query, Request
from pydantic import BaseModel, Field, ValidationError

from shared import setup, topics
from shared.contracts import Address, FxRatesPublished, money_text, utcnow
from shared.http import require_admin
from shared.messaging import describe_validation_error
from shared.money import CURRENCY_RE, fits, in_units
from shared.uow import UnitOfWork

from . import domain, kinds, metrics, review, schemas, store

router = APIRouter()
router.include_router(setup.router("intake", kinds.KINDS))
admin = [Depends(require_admin)]


def operator(x_operator: str | None = Header(default=None, max_length=100)) -> str:
    return (x_operator or "").strip() or "operator"


class Decision(BaseModel):
    reason: str | None = Field(default=None, max_length=500)
    note: str | None = Field(default=None, max_length=2000)


class AddressCorrection(BaseModel):
    shipping_address: Address
    note: str | None = Field(default=None, max_length=2000)


class DryRun(BaseModel):
    policies: dict[str, dict[str, Any]] = Field(default_factory=dict)
    limit: int = Field(default=100, ge=1, le=5000)


class PromotionIn(BaseModel):
    kind: Literal["percent", "fixed"]
    value: Decimal = Field(ge=0)
    min_spend: Decimal = Field(default=Decimal("0"), ge=0)
    starts_at: datetime | None = None
    ends_at: datetime | None = None
    active: bool = True
    scope_skus: list[str] = Field(default_factory=list)
    scope_categories: list[str] = Field(default_factory=list)
    stackable: bool = True
    per_customer_limit: int | None = Field(default=None, ge=1)
    currency: str = Field(default="USD", pattern=r"^[A-Z]{3}$", examples=["USD", "EUR"],
                          description="ISO 4217 currency of min_spend and of a fixed value;"
                          " an order in another currency is compared with them converted at"
                          " the newest known rate (fx.rates)")


class BlockIn(BaseModel):
    kind: Literal["customer_id", "email", "phone", "address"]
    value: str = Field(min_length=1, max_length=500)
    action: Literal["hold", "reject"] = "hold"
    note: str | None = Field(default=None, max_length=2000)


@router.get("/catalog/{sku}", response_model=schemas.CatalogProduct)
async def catalog_product(sku: str, request: Request) -> dict[str, Any]:
    row = await store.get_product(request.app.state.runtime.pool, sku)
    if row is None:
        raise HTTPException(404, f"intake has not received product {sku} on catalog.products")
    return {"sku": row["sku"], "active": row["active"], "category": row["category"],
            "price": str(row["price"]), "attributes": list(row["attributes"])}


@router.get("/coverage", response_model=schemas.Coverage)
async def coverage(request: Request) -> dict[str, Any]:
    """What intake knows of logistics' coverage (logistics.coverage_changed): the countries it
    serves and, per country, goods no service takes there (the restricted-goods rule's input)."""
    found = await store.load_coverage(request.app.state.runtime.pool)
    return {"countries": sorted(found.served) if found.served is not None else None,
            "refused_attributes": found.refused_attributes}


# --- holds ------------------------------------------------------------------------------------

@router.get("/holds", dependencies=admin, response_model=list[schemas.Hold])
async def list_holds(request: Request, reason: str | None = None, store_name: str | None =
                     Query(default=None, alias="store"),
                     min_age_seconds: float | None = Query(default=None, ge=0),
                     limit: int = Query(default=100, ge=1, le=1000)) -> list[dict[str, Any]]:
    return await store.holds(request.app.state.runtime.pool, reason=reason, store=store_name,
                             min_age_seconds=min_age_seconds, limit=limit)


@router.post("/holds/{order_id}/approve", dependencies=admin,
             response_model=schemas.StatusChanged)
async def approve(order_id: uuid.UUID, request: Request, decision: Decision | None = None,
                  who: str = Depends(operator)) -> dict[str, str]:
    note = decision.note if decision else None
    async with UnitOfWork.begin(_pool(request), "intake") as uow:
        row = await _held(uow.conn, order_id)
        order = store.stored_order(row["payload"])
        await _close(uow, order_id, row, "accepted", "approved", who, note)
        await review.status(uow, order_id=str(order_id), store=order.store,
                            external_order_id=order.external_order_id, status="accepted",
                            reasons=[("approved_by_operator",
                                      "released from hold by an operator")],
                            correlation_id=str(order.event_id))
        # Merge candidates as of now: orders may have shipped or arrived while this one waited.
        now, _ = await review.evaluate(uow, order, order_id, row["received_at"])
        await review.accept(uow, order_id, order, str(order.event_id), now.merge_with)
    return {"order_id": str(order_id), "status": "accepted"}


@router.post("/holds/{order_id}/reject", dependencies=admin,
             response_model=schemas.StatusChanged)
async def reject(order_id: uuid.UUID, decision: Decision, request: Request,
                 who: str = Depends(operator)) -> dict[str, str]:
    reason = decision.reason or "rejected by an operator after review"
    async with UnitOfWork.begin(_pool(request), "intake") as uow:
        row = await _held(uow.conn, order_id)
        reasons = [("rejected_by_operator", reason)]
        await _close(uow, order_id, row, "rejected", "rejected", who, decision.note,
                     reasons=reasons)
        await uow.status(order_id=str(order_id), store=row["store"],
                         external_order_id=row["external_order_id"], status="rejected",
                         reasons=reasons)
        await review.rereview_open_holds(uow, trigger="order_rejected",
                                         codes=["suspected_duplicate"])
    return {"order_id": str(order_id), "status": "rejected"}


@router.post("/holds/{order_id}/claim", dependencies=admin, response_model=schemas.Claimed)
async def claim(order_id: uuid.UUID, request: Request, who: str = Depends(operator)
                ) -> dict[str, str]:
    async with UnitOfWork.begin(_pool(request), "intake") as uow:
        await _held(uow.conn, order_id)
        await store.claim_hold(uow.conn, order_id, who)
        await store.audit(uow.conn, order_id, who, "claim", None)
    return {"order_id": str(order_id), "owner": who}


@router.post("/holds/{order_id}/address", dependencies=admin,
             response_model=schemas.Reviewed)
async def correct_address(order_id: uuid.UUID, body: AddressCorrection, request: Request,
                          who: str = Depends(operator)) -> dict[str, Any]:
    """Correct the shipping address of a held order and review it again: released when nothing
    else holds it."""
    async with UnitOfWork.begin(_pool(request), "intake") as uow:
        row = await _held(uow.conn, order_id)
        old = store.stored_order(row["payload"])
        corrected = old.model_copy(update={"shipping_address": body.shipping_address})
        await store.audit(uow.conn, order_id, who, "correct_address", body.note,
                          {"country": body.shipping_address.country})
        status = await review.rereview(uow, order_id, trigger="address_corrected", by=who,
                                       order=corrected, correlation_id=str(old.event_id))
        after = await store.get_order(uow.conn, order_id)
    assert after is not None
    return {"order_id": str(order_id), "status": status,
            "reasons": [{"code": c, "message": m}
                        for c, m in review.stored_reasons(after["reasons"])]}


async def _held(conn: Any, order_id: uuid.UUID) -> Any:
    row = await store.get_order(conn, order_id)
    if row is None:
        raise HTTPException(404, f"no order {order_id}")
    if row["status"] != "on_hold":
        raise HTTPException(409, f"order {order_id} is {row['status']}, not on_hold")
    return row


def _pool(request: Request) -> Any:
    return request.app.state.runtime.pool


async def _close(uow: UnitOfWork, order_id: uuid.UUID, row: Any, status: str, resolution: str,
                 who: str, note: str | None, reasons: list[tuple[str, str]] | None = None) -> None:
    conn = uow.conn
    held = review.stored_reasons(row["reasons"])
    await store.set_status(conn, order_id, status, reasons or [])
    closed = await store.close_hold(conn, order_id, resolution, who)
    if closed is not None:
        uow.observe(metrics.HOLD_AGE, closed["age_seconds"], resolution)
    uow.count(metrics.DECISIONS, status, reasons[0][0] if reasons else "approved_by_operator")
    rule = {"rule": "operator", "code": f"{resolution}_by_operator", "effect": status,
            "message": f"{resolution} by {who}", "inputs": {
                "operator": who, "note": note, "held_for": [c for c, _ in held]}}
    await store.insert_decision(conn, order_id, f"operator_{resolution}", status, reasons or [],
                                [rule], {})
    await store.audit(conn, order_id, who, resolution, note, {"held_for": [c for c, _ in held]})


# --- decisions --------------------------------------------------------------------------------

@router.get("/orders", dependencies=admin, response_model=list[schemas.CustomerOrder])
async def find_orders(request: Request,
                      email: str | None = Query(default=None, min_length=3, max_length=320),
                      phone: str | None = Query(default=None, min_length=4, max_length=40),
                      name: str | None = Query(default=None, min_length=2, max_length=200),
                      limit: int = Query(default=50, ge=1, le=500)) -> list[dict[str, Any]]:
    """A customer's orders by e-mail or phone (normalised as the block list and duplicate check
    do: `Ana@Example.com ` is `ana@example.com`, `+49 (30) 1234` is `+49301234`), or by the
    start of their name, any case; newest first. Personal data: the admin token is needed."""
    if not (email or phone or name):
        raise HTTPException(400, "give email, phone or name")
    wanted_phone = domain.normalise_phone(phone) if phone else None
    if phone and not wanted_phone:
        raise HTTPException(422, "phone has no digits")
    like = name.strip().lower().replace("\\", "\\\\").replace("%", "\\%").replace(
        "_", "\\_") if name else None
    return await store.find_by_customer(
        request.app.state.runtime.pool, email=domain.normalise_email(email) if email else None,
        phone=wanted_phone, name=like, limit=limit)


@router.get("/orders/{order_id}/decision", dependencies=admin,
            response_model=schemas.OrderDecision)
async def decision(order_id: uuid.UUID, request: Request) -> dict[str, Any]:
    """The order's latest decision with the rules that fired and their inputs, its history, and
    what operators did."""
    pool = request.app.state.runtime.pool
    row = await pool.fetchrow("SELECT order_id, store, external_order_id, status, reasons,"
                              " payload FROM orders WHERE order_id = $1", order_id)
    if row is None:
        raise HTTPException(404, f"no order {order_id}")
    history = await store.decisions(pool, order_id)
    placed = store.stored_order(row["payload"])
    return {"order_id": str(order_id), "store": row["store"],
            "external_order_id": row["external_order_id"], "status": row["status"],
            "decision": history[-1] if history else None, "history": history,
            "audit": await store.audit_of(pool, order_id),
            "customer_words": {"note": placed.note, "gift_message": placed.gift_message,
                               "gift_wrap": placed.gift_wrap}}


@router.post("/rules/dry-run", dependencies=admin, response_model=schemas.DryRunResult)
async def dry_run(body: DryRun, request: Request) -> dict[str, Any]:
    try:
        return await review.dry_run(request.app.state.runtime.pool, body.policies, body.limit)
    except ValueError as exc:
        raise HTTPException(422, str(exc)) from exc


# --- the rule set -----------------------------------------------------------------------------

@router.get("/policies", dependencies=admin,
            response_model=dict[str, schemas.StorePolicy])
async def get_policies(request: Request) -> dict[str, Any]:
    found = await store.policies(request.app.state.runtime.pool)
    return {s: p.as_dict() for s, p in found.items()}


@router.put("/policies/{store_name}", dependencies=admin, response_model=schemas.StorePolicy)
async def put_policy(store_name: str, overrides: dict[str, Any], request: Request,
                     who: str = Depends(operator)) -> dict[str, Any]:
    """Change some of a store's settings ('*' is the default); the rest stay as they are (or as
    the default's, for a store that had none). Open holds of the store are reviewed again.
    The whole entry is then saved like `PUT /setup/review_policies/{store}`: audited in
    `GET /setup/audit` and published on `setup.changed`."""
    async with UnitOfWork.begin(_pool(request), "intake") as uow:
        found = await store.policies(uow.conn)
        try:
            new = found.get(store_name, found["*"]).with_overrides(overrides)
            # the setup model's bounds and decimals; a percent rounds to hundredths as its
            # column always did
            entry = kinds.ReviewPolicy.of(replace(
                new, price_tolerance_percent=new.price_tolerance_percent.quantize(domain.CENT)))
        except ValueError as exc:  # pydantic's ValidationError is one
            raise HTTPException(422, str(exc)) from exc
        try:
            await setup.apply(uow, kinds.KINDS, {"review_policies": {
                store_name: entry.model_dump(mode="json")}}, changed_by=who, dry_run=False)
        except setup.SetupInvalid as exc:
            raise HTTPException(422, str(exc)) from exc
        await store.audit(uow.conn, None, who, "put_policy", None,
                          {"store": store_name, "changes": {k: str(v) for k, v in
                                                            overrides.items()}})
    return entry.policy().as_dict()


@router.get("/stores/{store_name}/seller", dependencies=admin, response_model=schemas.StoreSeller)
async def store_seller(store_name: str, request: Request) -> dict[str, Any]:
    """The seller a store belongs to (setup section `sellers`); 404 when no seller names it."""
    found = await kinds.seller_of(_pool(request), store_name)
    if found is None:
        raise HTTPException(404, f"no seller names store {store_name!r} (setup section sellers)")
    return found


@router.get("/promotions", dependencies=admin, response_model=list[schemas.Promotion])
async def get_promotions(request: Request) -> list[dict[str, Any]]:
    return await store.all_promotions(request.app.state.runtime.pool)


@router.put("/promotions/{code}", dependencies=admin, response_model=schemas.Promotion)
async def put_promotion(code: str, body: PromotionIn, request: Request,
                        who: str = Depends(operator)) -> dict[str, Any]:
    """Create or replace a promotion (the code is kept in capitals). Saved like
    `PUT /setup/promotions/{code}`: audited in `GET /setup/audit` and published on
    `setup.changed`. Open holds a promotion may decide are reviewed again."""
    if body.kind == "percent" and body.value > 100:
        raise HTTPException(422, "value: a percent promotion is at most 100")
    # Amounts are kept in their currency's minor unit (rounded half up, as the two-decimal
    # columns always rounded USD): 500 JPY, 1.125 KWD; a percent with two decimals.
    # A time without a zone is local time, as the database always read it.
    starts, ends = (t.astimezone() if t is not None and t.tzinfo is None else t
                    for t in (body.starts_at, body.ends_at))
    promo = domain.Promotion(code.upper(), body.kind,
                             store.promotion_value(body.kind, body.value, body.currency),
                             in_units(body.min_spend, body.currency), starts,
                             ends, body.active, frozenset(body.scope_skus),
                             frozenset(body.scope_categories), body.stackable,
                             body.per_customer_limit, body.currency)
    try:
        entry = kinds.PromotionEntry.of(promo)
    except ValueError as exc:  # pydantic's ValidationError is one
        raise HTTPException(422, str(exc)) from exc
    async with UnitOfWork.begin(_pool(request), "intake") as uow:
        try:
            plan = await setup.apply(uow, kinds.KINDS, {"promotions": {
                promo.code: entry.model_dump(mode="json")}}, changed_by=who, dry_run=False)
        except setup.SetupInvalid as exc:
            raise HTTPException(422, str(exc)) from exc
        await store.audit(uow.conn, None, who, "put_promotion", None, {"code": promo.code})
        if not plan["changes"]:  # unchanged: the holds are reviewed again all the same
            await review.rereview_open_holds(uow, trigger="promotion_changed",
                                             codes=kinds.PROMO_HOLDS)
    return store.promotion_dict(promo)


@router.get("/blocked", dependencies=admin, response_model=list[schemas.BlockedEntry])
async def get_blocked(request: Request) -> list[dict[str, Any]]:
    return await store.blocked_list(request.app.state.runtime.pool)


@router.post("/blocked", dependencies=admin, response_model=schemas.Blocked)
async def add_blocked(body: BlockIn, request: Request, who: str = Depends(operator)
                      ) -> dict[str, str]:
    """Block a customer by id, email, phone or address (the address as `domain.address_key`
    prints it, or any order's via `GET /orders/{order_id}/identities`)."""
    value = domain.normalise_identity(body.kind, body.value)
    async with UnitOfWork.begin(_pool(request), "intake") as uow:
        await store.block(uow.conn, body.kind, value, body.action, body.note, who)
        await store.audit(uow.conn, None, who, "block", body.note, {"kind": body.kind})
    return {"kind": body.kind, "action": body.action}


@router.post("/blocked/remove", dependencies=admin, response_model=schemas.Unblocked)
async def remove_blocked(body: BlockIn, request: Request, who: str = Depends(operator)
                         ) -> dict[str, Any]:
    value = domain.normalise_identity(body.kind, body.value)
    async with UnitOfWork.begin(_pool(request), "intake") as uow:
        removed = await store.unblock(uow.conn, body.kind, value)
        await store.audit(uow.conn, None, who, "unblock", body.note, {"kind": body.kind})
        await review.rereview_open_holds(uow, trigger="customer_unblocked",
                                         codes=["blocked_customer"])
    return {"removed": removed}


@router.get("/orders/{order_id}/identities", dependencies=admin,
            response_model=schemas.Identities,
            response_model_exclude_unset=True)
async def order_identities(order_id: uuid.UUID, request: Request) -> dict[str, str]:
    """The normalised identities of an order, as the block list and duplicate check see them."""
    payload = await request.app.state.runtime.pool.fetchval(
        "SELECT payload FROM orders WHERE order_id = $1", order_id)
    if payload is None:
        raise HTTPException(404, f"no order {order_id}")
    return domain.identities(store.stored_order(payload))


# --- exchange rates and price lists (docs/intake.md "Currencies and price lists") -------------

class FxRatesIn(BaseModel):
    base: str = Field(pattern=r"^[A-Z]{3}$", examples=["USD"])
    rates: dict[str, str] = Field(min_length=1, max_length=300, examples=[{"CNY": "7.1034"}],
                                  description="one `base` is worth this many of each currency")
    as_of: datetime | None = Field(default=None, description="default: now")


@router.post("/fx/rates", dependencies=admin, response_model=schemas.FxPublished,
             status_code=202)
async def publish_rates(body: FxRatesIn, request: Request,
                        who: str = Depends(operator)) -> dict[str, Any]:
    """Publish exchange rates on `fx.rates` (through intake's outbox) for every service that
    compares money across currencies; intake's own copy follows from the topic like theirs."""
    try:
        event = FxRatesPublished.model_validate(
            {"base": body.base, "rates": body.rates, "as_of": body.as_of or utcnow()})
    except ValidationError as exc:
        raise HTTPException(422, describe_validation_error(exc)) from exc
    async with UnitOfWork.begin(_pool(request), "intake") as uow:
        await uow.publish(topics.FX_RATES, event.base, event)
        await store.audit(uow.conn, None, who, "publish_fx_rates", None,
                          {"base": event.base, "as_of": event.as_of.isoformat(),
                           "rates": {k: str(v) for k, v in event.rates.items()}})
    return {"event_id": str(event.event_id), "base": event.base, "pairs": len(event.rates)}


ALWAYS = datetime.min.replace(tzinfo=UTC)  # the valid_from of a price without one


class ListPriceIn(BaseModel):
    sku: str = Field(min_length=1, max_length=64)
    price: str = Field(pattern=r"^\d{1,12}(\.\d{1,3})?$", examples=["12.50"])
    valid_from: datetime | None = Field(default=None, description="default: always")
    valid_to: datetime | None = None


class PriceListIn(BaseModel):
    entries: list[ListPriceIn] = Field(min_length=1, max_length=5000)


@router.put("/price-lists/{store_name}/{currency}", dependencies=admin,
            response_model=list[schemas.ListPrice])
async def put_price_list(store_name: str, currency: str, body: PriceListIn, request: Request,
                         who: str = Depends(operator)) -> list[dict[str, Any]]:
    """Set list prices of a store ('*': every store's default) in a currency; an entry with the
    same SKU and `valid_from` is replaced. Open holds of the store are reviewed again. Answers
    the list's entries of the SKUs sent."""
    if not CURRENCY_RE.match(currency):
        raise HTTPException(422, f"currency {currency!r} is not a three-letter ISO 4217 code")
    entries = []
    for e in body.entries:
        price = Decimal(e.price)
        if not fits(price, currency):
            raise HTTPException(422, f"{e.sku}: {e.price} is finer than {currency} allows")
        if e.valid_to is not None and e.valid_from is not None and e.valid_to <= e.valid_from:
            raise HTTPException(422, f"{e.sku}: valid_to must be after valid_from")
        entries.append({"sku": e.sku, "price": price, "valid_to": e.valid_to,
                        "valid_from": e.valid_from or ALWAYS})
    async with UnitOfWork.begin(_pool(request), "intake") as uow:
        await store.put_prices(uow.conn, store_name, currency, entries, who)
        await store.audit(uow.conn, None, who, "put_price_list", None,
                          {"store": store_name, "currency": currency,
                           "entries": [{**e.model_dump(mode="json")} for e in body.entries]})
        await review.rereview_open_holds(uow, trigger="price_list_changed",
                                         store_name=None if store_name == "*" else store_name)
        rows = await store.price_list(uow.conn, store_name, currency, None)
    touched = {e["sku"] for e in entries}
    return [_list_price(r) for r in rows if r["sku"] in touched]


@router.get("/price-lists/{store_name}", dependencies=admin,
            response_model=list[schemas.ListPrice])
async def get_price_list(store_name: str, request: Request,
                         currency: str | None = Query(default=None, pattern=r"^[A-Z]{3}$"),
                         sku: str | None = Query(default=None, max_length=64)
                         ) -> list[dict[str, Any]]:
    rows = await store.price_list(request.app.state.runtime.pool, store_name, currency, sku)
    return [_list_price(r) for r in rows]


def _list_price(r: Any) -> dict[str, Any]:
    since = r["valid_from"]
    return {**dict(r), "price": money_text(r["price"]),
            # asyncpg reads the year-1 sentinel back without its offset
            "valid_from": None if since.replace(tzinfo=None) == datetime.min
            else since.isoformat(),
            "valid_to": r["valid_to"].isoformat() if r["valid_to"] else None,
            "updated_at": r["updated_at"].isoformat()}
