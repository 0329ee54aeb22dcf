"""Channels' HTTP: operators configure stores' channels (token); platforms deliver webhooks
(signed, no token). A webhook is verified on its raw body before anything is parsed, recorded in
the channel's inbox and answered 200 only after that commits."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from typing import Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Request, Response
from pydantic import BaseModel, Field, ValidationError

from shared.contracts import OrderPlaced
from shared.http import require_admin
from shared.uow import UnitOfWork

from . import inbox, metrics, schemas, store, workers
from .config import channels_settings
from .platforms import generic as generic_mod
from .platforms import probe
from .platforms import shopify as shopify_mod
from .platforms import woocommerce as woo_mod
from .platforms.base import ChannelConfig, Inbound

log = logging.getLogger(__name__)
router = APIRouter()
STORE_RE = r"^[A-Za-z0-9._-]{1,64}$"
MAX_BODY = channels_settings().max_body_bytes
# Writes that authenticate by the platform's signature on the raw body, not by the admin token:
# the HTTP guard lets them through to the route.
OPEN_WRITES = ("/webhooks/", "/orders/")
Platform = Literal["shopify", "woocommerce", "amazon", "generic"]
NEEDS_WEBHOOK_SECRET = {"shopify", "woocommerce", "generic"}


class ChannelIn(BaseModel):
    platform: Platform
    webhook_secret: str | None = Field(default=None, min_length=8, max_length=500)
    api_base_url: str | None = Field(default=None, pattern=r"^https?://", max_length=500)
    credentials: dict[str, Any] = Field(default_factory=dict)
    sku_map: dict[str, str] = Field(default_factory=dict)
    default_currency: str = Field(default="USD", pattern=r"^[A-Z]{3}$")
    # api_version (Shopify), marketplace_ids (Amazon), poll_seconds, page_size, ioss_number
    options: dict[str, Any] = Field(default_factory=dict)


def _pool(request: Request) -> Any:
    return request.app.state.runtime.pool


@router.put("/channels/{store_name}", dependencies=[Depends(require_admin)],
            response_model=schemas.ChannelSaved)
async def put_channel(store_name: str, body: ChannelIn, request: Request,
                      response: Response) -> dict[str, Any]:
    """Create (201) or replace (200) a store's channel; secrets are sealed, never returned."""
    if not re.match(STORE_RE, store_name):
        raise HTTPException(422, {"code": "invalid_store",
                                  "message": "store must be 1-64 chars of [A-Za-z0-9._-]"})
    if body.platform in NEEDS_WEBHOOK_SECRET and not body.webhook_secret:
        raise HTTPException(422, {"code": "webhook_secret_required",
                                  "message": f"a {body.platform} channel needs webhook_secret"})
    if body.platform == "amazon":
        missing = [k for k in ("refresh_token", "client_id", "client_secret")
                   if not body.credentials.get(k)]
        if missing or not body.api_base_url:
            raise HTTPException(422, {"code": "credentials_required",
                                      "message": "an amazon channel needs api_base_url and"
                                                 f" credentials {missing or ''}".strip()})
    secrets = {"webhook_secret": body.webhook_secret, "credentials": body.credentials}
    async with _pool(request).acquire() as conn:
        created = await store.put_channel(conn, store_name, body.platform, body.api_base_url,
                                          secrets, body.sku_map, body.default_currency,
                                          body.options)
    _forget(store_name)
    log.info("channel %s (%s) %s", store_name, body.platform, "created" if created else "replaced")
    response.status_code = 201 if created else 200
    return {"store": store_name, "platform": body.platform, "created": created}


@router.delete("/channels/{store_name}", dependencies=[Depends(require_admin)],
               response_model=schemas.ChannelDeleted)
async def delete_channel(store_name: str, request: Request) -> dict[str, Any]:
    """Stop taking this store's deliveries and polls; its history (deliveries, write-backs)
    stays. Pending write-backs are skipped."""
    async with _pool(request).acquire() as conn:
        if not await store.delete_channel(conn, store_name):
            raise HTTPException(404, f"no channel for store {store_name!r}")
    _forget(store_name)
    log.info("channel %s deleted", store_name)
    return {"store": store_name, "deleted": True}


@router.get("/channels", dependencies=[Depends(require_admin)],
            response_model=list[schemas.Channel])
async def list_channels(request: Request) -> list[dict[str, Any]]:
    async with _pool(request).acquire() as conn:
        return await store.list_channels(conn)


@router.get("/channels/{store_name}", dependencies=[Depends(require_admin)],
            response_model=schemas.ChannelDetail)
async def channel_detail(store_name: str, request: Request) -> dict[str, Any]:
    async with _pool(request).acquire() as conn:
        rows = [c for c in await store.list_channels(conn) if c["store"] == store_name]
        if not rows:
            raise HTTPException(404, f"no channel for store {store_name!r}")
        return {**rows[0], "deliveries_recent": await store.recent_deliveries(conn, store_name),
                "writebacks_recent": await store.writebacks_of(conn, store_name)}


@router.post("/channels/{store_name}/test", dependencies=[Depends(require_admin)],
             response_model=schemas.ProbeResult)
async def test_channel(store_name: str, request: Request) -> dict[str, Any]:
    """Decrypt the secrets and reach the platform's API with them (no order is touched)."""
    async with _pool(request).acquire() as conn:
        cfg = await store.get_channel(conn, store_name)
    if cfg is None:
        raise HTTPException(404, f"no channel for store {store_name!r}")
    return {"store": store_name, "platform": cfg.platform, **await probe(cfg)}


WriteBackState = Literal["pending", "submitted", "done", "failed", "skipped"]


@router.get("/channels/{store_name}/writebacks", dependencies=[Depends(require_admin)],
            response_model=list[schemas.WriteBack])
async def list_writebacks(store_name: str, request: Request, state: WriteBackState | None = None,
                          limit: int = 100) -> list[dict[str, Any]]:
    """The store's write-backs, newest first (e.g. `?state=failed`: each with its reason, an
    Amazon feed's with its feedId and the processing report's errors)."""
    async with _pool(request).acquire() as conn:
        return await store.writebacks_of(conn, store_name, state, max(1, min(limit, 1000)))


@router.post("/channels/{store_name}/writebacks/retry", dependencies=[Depends(require_admin)],
             response_model=schemas.Requeued)
async def retry_writebacks(store_name: str, request: Request) -> dict[str, Any]:
    async with _pool(request).acquire() as conn:
        requeued = await store.retry_failed(conn, store_name)
    workers.WRITEBACKS_QUEUED.set()  # this instance's worker sends them at once
    return {"store": store_name, "requeued": requeued}


# --- webhooks -----------------------------------------------------------------------------------
async def _body(request: Request) -> bytes:
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > MAX_BODY:
        raise HTTPException(413, {"code": "too_large",
                                  "message": f"body over {MAX_BODY} bytes"})
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY:
            raise HTTPException(413, {"code": "too_large",
                                      "message": f"body over {MAX_BODY} bytes"})
        chunks.append(chunk)
    return b"".join(chunks)


# Webhooks read their channel's config (and open its secrets) from here, not from Postgres each
# time: one round trip and one decryption less per delivery. A change made through another
# instance is seen within CONFIG_TTL seconds (plus one load); one made through this instance at
# once. When an entry expires, one load refreshes it while the deliveries arriving meanwhile
# keep the entry they had: 50 webhooks in flight used to miss together every CONFIG_TTL, and
# queue 50 loads and decryptions for the pool's connections.
CONFIG_TTL = 5.0
_configs: dict[str, tuple[float, ChannelConfig | None]] = {}
_loading: dict[str, asyncio.Future[ChannelConfig | None]] = {}


_changes: dict[str, int] = {}


async def _load_channel(request: Request, store_name: str) -> ChannelConfig | None:
    changes = _changes.get(store_name, 0)
    async with _pool(request).acquire() as conn:
        cfg = await store.get_channel(conn, store_name)
    if _changes.get(store_name, 0) == changes:  # not changed here meanwhile: keep it
        if len(_configs) > 10_000:
            _configs.clear()
        _configs[store_name] = (time.monotonic(), cfg)
    return cfg


def _loaded(store_name: str, future: asyncio.Future[ChannelConfig | None]) -> None:
    _loading.pop(store_name, None)
    if not future.cancelled():
        future.exception()  # seen here: a failed refresh is retried by the next delivery


def _forget(store_name: str) -> None:
    """A channel changed through this instance: its next delivery reads it afresh."""
    _changes[store_name] = _changes.get(store_name, 0) + 1
    _configs.pop(store_name, None)
    _loading.pop(store_name, None)


async def _cached_channel(request: Request, store_name: str) -> ChannelConfig | None:
    hit = _configs.get(store_name)
    if hit and time.monotonic() - hit[0] < CONFIG_TTL:
        return hit[1]
    loading = _loading.get(store_name)
    if loading is None:
        loading = _loading[store_name] = asyncio.ensure_future(
            _load_channel(request, store_name))
        loading.add_done_callback(lambda f: _loaded(store_name, f))
    if hit and hit[1] is not None:
        return hit[1]  # expired: the refresh is under way; this delivery keeps the entry
    return await asyncio.shield(loading)


async def _channel(request: Request, store_name: str, platform: str) -> ChannelConfig:
    cfg = await _cached_channel(request, store_name)
    if cfg is None or cfg.platform != platform:
        metrics.DELIVERIES.labels(platform, "unknown_store").inc()
        raise HTTPException(404, {"code": "unknown_store",
                                  "message": f"no {platform} channel for store {store_name!r}"})
    return cfg


def _unauthorized(cfg: ChannelConfig) -> HTTPException:
    metrics.DELIVERIES.labels(cfg.platform, "bad_signature").inc()
    log.warning("%s webhook for store %s has a bad signature; nothing stored (check the"
                " channel's webhook_secret)", cfg.platform, cfg.store)
    return HTTPException(401, {"code": "bad_signature",
                               "message": "signature does not match the store's secret"})


async def _commit(request: Request, cfg: ChannelConfig, delivery_id: str, topic: str,
                  inbound: Inbound, event: Any, body: bytes) -> dict[str, Any]:
    async with UnitOfWork.begin(_pool(request), "channels") as uow:
        first = await inbox.accept(uow, cfg, delivery_id, topic, inbound, event, body)
    return {"delivery_id": delivery_id, "duplicate": not first, "outcome": inbound.outcome,
            **({"reason": inbound.reason} if inbound.reason else {})}


def _json(body: bytes) -> Any:
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None


async def _platform_webhook(request: Request, store_name: str, module: Any) -> dict[str, Any]:
    """A platform's signed webhook, the same sequence for each: body (within the limit), the
    store's channel (404), the signature on the raw bytes (401, nothing stored), the delivery
    id (400), then the mapping and the commit before the answer. The module says how its
    platform signs, names deliveries and topics, and pings (platforms/base.py)."""
    t0 = time.perf_counter()
    platform = module.PLATFORM
    body = await _body(request)
    cfg = await _channel(request, store_name, platform)
    hook = module.WEBHOOK
    if module.is_ping(body) and not hook.signed(request.headers):
        return {"ping": True}  # WooCommerce's test delivery when a webhook is saved: unsigned
    if not hook.verify(cfg.secret("webhook_secret"), body, request.headers):
        raise _unauthorized(cfg)
    if module.is_ping(body):
        return {"ping": True}
    delivery = hook.delivery_id(request.headers)
    if not delivery:
        raise HTTPException(400, {"code": "no_delivery_id",
                                  "message": f"{hook.delivery_header} is missing"})
    topic = hook.topic(request.headers)
    order = _json(body)
    inbound, event = inbox.map_delivery(cfg, delivery,
                                        lambda: module.inbound(cfg, topic, order))
    out = await _commit(request, cfg, delivery, topic, inbound, event, body)
    metrics.WEBHOOK_SECONDS.labels(platform).observe(time.perf_counter() - t0)
    return out


@router.post("/webhooks/shopify/{store_name}", response_model=schemas.WebhookAnswer,
             response_model_exclude_none=True)
async def shopify_webhook(store_name: str, request: Request) -> dict[str, Any]:
    """Shopify's `orders/create|updated|paid|cancelled` (X-Shopify-Hmac-Sha256)."""
    return await _platform_webhook(request, store_name, shopify_mod)


@router.post("/webhooks/woocommerce/{store_name}", response_model=schemas.WebhookAnswer,
             response_model_exclude_none=True)
async def woocommerce_webhook(store_name: str, request: Request) -> dict[str, Any]:
    """WooCommerce's `order.created|updated` (X-WC-Webhook-Signature); its ping is 200."""
    return await _platform_webhook(request, store_name, woo_mod)


@router.post("/orders/{store_name}", response_model=schemas.WebhookAnswer,
             response_model_exclude_none=True)
async def generic_order(store_name: str, request: Request) -> dict[str, Any]:
    """Our own `orders.placed` JSON from a custom storefront; 422 with the field for bad input
    (nothing stored: the storefront fixes and re-sends). The event_id deduplicates."""
    t0 = time.perf_counter()
    body = await _body(request)
    cfg = await _channel(request, store_name, "generic")
    if not generic_mod.verify(cfg.secret("webhook_secret"), body, request.headers):
        raise _unauthorized(cfg)
    try:
        event = OrderPlaced.model_validate_json(body)
    except ValidationError as exc:
        metrics.DELIVERIES.labels("generic", "malformed").inc()
        detail = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}"
                           for e in exc.errors()[:5])
        raise HTTPException(422, {"code": "malformed", "message": detail[:1000]}) from exc
    if event.store != store_name:
        raise HTTPException(422, {"code": "malformed",
                                  "message": f"store {event.store!r} in the body is not"
                                             f" {store_name!r} of the URL"})
    if event.channel is None:
        event = event.model_copy(update={"channel": {"platform": "generic", "order_name": None}})
        event = OrderPlaced.model_validate(event.model_dump(mode="json"))
    inbound = Inbound("placed", event.external_order_id)
    out = await _commit(request, cfg, str(event.event_id), "orders.placed", inbound, event, body)
    metrics.WEBHOOK_SECONDS.labels("generic").observe(time.perf_counter() - t0)
    return out
