"""Shopify: webhooks `orders/create|updated|paid|cancelled` in, fulfillments, cancellations and
refunds out through the Admin REST API (version in the channel's option `api_version`).

Auth: webhooks carry `X-Shopify-Hmac-Sha256`, base64 HMAC-SHA256 of the raw body with the app's
secret; API calls carry `X-Shopify-Access-Token` (credentials.access_token)."""

from __future__ import annotations

import json
from typing import Any

import httpx

from ..ratelimit import TokenBucket
from .base import (
    CARRIER_NAMES,
    ChannelConfig,
    HmacWebhook,
    Inbound,
    Job,
    Unmappable,
    all_parcels,
    call,
    customer_id,
    forwarded_codes,
    ioss_for,
    join_name,
    lines_subtotal,
    money,
    payment_method,
    resolve_sku,
    shipping_option,
    text,
    total,
    tracking_url,
)

PLATFORM = "shopify"
DEFAULT_API_VERSION = "2025-07"
TOPICS_PLACED = {"orders/create", "orders/updated", "orders/paid"}
FINANCIAL = {"paid": "paid", "partially_paid": "authorized", "authorized": "authorized",
             "pending": "pending", "voided": "failed", "refunded": "paid",
             "partially_refunded": "paid"}


WEBHOOK = HmacWebhook("X-Shopify-Hmac-Sha256", "X-Shopify-Webhook-Id", "X-Shopify-Topic")
sign, verify, delivery_id = WEBHOOK.sign, WEBHOOK.verify, WEBHOOK.delivery_id


def is_ping(body: bytes) -> bool:
    return False  # Shopify sends no test delivery


def bucket() -> TokenBucket:
    # The REST Admin API's leaky bucket: 40 requests, 2 per second.
    return TokenBucket(rate=2.0, burst=40)


def inbound(cfg: ChannelConfig, topic: str, order: Any) -> Inbound:
    if not isinstance(order, dict) or order.get("id") in (None, ""):
        raise Unmappable("the body is not a Shopify order (no `id`)")
    ext = str(order["id"])
    name = text(order.get("name"), 100)
    if topic == "orders/cancelled" or (topic == "orders/updated" and order.get("cancelled_at")):
        return Inbound("cancel_requested", ext, {
            "store": cfg.store, "external_order_id": ext,
            "reason": f"cancelled on Shopify ({order.get('cancel_reason') or 'no reason given'})",
        }, order_name=name)
    if topic not in TOPICS_PLACED:
        return Inbound("ignored", ext, reason=f"topic {topic!r} is not handled")
    value = map_order(cfg, order)
    # Kept for write-back: which of our SKUs each Shopify line item is (map_order keeps the
    # line items' order), so a parcel's lines become that parcel's fulfillment.
    return Inbound("placed", ext, value, order_name=name,
                   platform_data={"line_items": [
                       {"id": li.get("id"), "quantity": li.get("quantity"), "sku": ln["sku"]}
                       for li, ln in zip(order.get("line_items") or [], value["lines"],
                                         strict=True)]})


def map_order(cfg: ChannelConfig, o: dict[str, Any]) -> dict[str, Any]:
    ext = str(o["id"])
    addr = o.get("shipping_address") or o.get("billing_address") or {}
    if not isinstance(addr, dict) or not addr.get("country_code"):
        raise Unmappable("shipping_address.country_code is missing")
    cust = o.get("customer") or {}
    email = o.get("email") or cust.get("email")
    lines = []
    for i, li in enumerate(o.get("line_items") or []):
        if not isinstance(li, dict):
            raise Unmappable(f"line_items[{i}] is not an object")
        tax = total([money(t.get("price"), f"line_items[{i}].tax_lines.price")
                     for t in li.get("tax_lines") or []])
        lines.append({
            "sku": resolve_sku(cfg, li.get("sku"), li.get("variant_id"), li.get("product_id"),
                               li.get("id")),
            "quantity": int(li.get("quantity") or 0),
            "unit_price": money(li.get("price"), f"line_items[{i}].price"),
            "tax": tax,
        })
    if not lines:
        raise Unmappable("the order has no line_items")
    subtotal = lines_subtotal(lines)
    shipping_lines = [s for s in o.get("shipping_lines") or [] if isinstance(s, dict)]
    shipping_fee = total([money(s.get("price"), "shipping_lines.price") for s in shipping_lines])
    discount = money(o.get("total_discounts"), "total_discounts")
    duties = money(((o.get("original_total_duties_set") or {}).get("shop_money") or {})
                   .get("amount"), "original_total_duties_set")
    # Prices that include tax (EU VAT shops) already carry it: the buyer pays no tax on top, so
    # totals.tax is 0 and the lines keep theirs for the record.
    tax = "0.00" if o.get("taxes_included") else money(o.get("total_tax"), "total_tax")
    country = str(addr["country_code"]).upper()
    gateways = o.get("payment_gateway_names") or [o.get("gateway")]
    return {
        "store": cfg.store, "external_order_id": ext,
        "placed_at": o.get("created_at") or o.get("processed_at"),
        "customer": {"id": customer_id(PLATFORM, cust.get("id"), email),
                     "name": join_name(cust.get("first_name"), cust.get("last_name")),
                     "email": text(email, 320), "phone": text(o.get("phone")
                                                              or cust.get("phone"), 40)},
        "shipping_address": {
            "name": text(addr.get("name"), 200) or join_name(addr.get("first_name"),
                                                            addr.get("last_name")),
            "line1": text(addr.get("address1"), 300), "line2": text(addr.get("address2"), 300),
            "city": text(addr.get("city"), 120),
            "region": text(addr.get("province_code") or addr.get("province"), 120),
            "postal_code": text(addr.get("zip"), 20), "country": country},
        "lines": lines,
        "currency": str(o.get("currency") or cfg.default_currency).upper(),
        "shipping_option": shipping_option(*[s.get("code") for s in shipping_lines],
                                           *[s.get("title") for s in shipping_lines]),
        "totals": {"subtotal": subtotal, "discount": discount, "shipping_fee": shipping_fee,
                   "tax": tax, "duties": duties,
                   "grand_total": money(o.get("total_price"), "total_price")},
        "payment": {"method": payment_method(*gateways),
                    "status": FINANCIAL.get(str(o.get("financial_status")), "pending")},
        "promo_codes": forwarded_codes(cfg, [str(d.get("code"))[:64] for d in o.get("discount_codes") or []
                        if isinstance(d, dict) and d.get("code")][:10]),
        "note": text(o.get("note"), 2000),
        "ioss_number": ioss_for(cfg, country),
        "channel": {"platform": PLATFORM, "order_name": text(o.get("name"), 100)},
    }


# --- write-back ---------------------------------------------------------------------------------
def _tracking(parcel: dict[str, Any]) -> dict[str, Any]:
    carrier = str(parcel.get("carrier") or "")
    number = str(parcel.get("tracking_number") or "")
    return {"number": number, "company": CARRIER_NAMES.get(carrier, carrier),
            "url": tracking_url(carrier, number)}


def partly_fulfilled(open_orders: list[dict[str, Any]]) -> bool:
    return any(int(li.get("fulfillable_quantity", li.get("quantity")) or 0)
               < int(li.get("quantity") or 0)
               for f in open_orders for li in f.get("line_items") or [])


def fulfillments(parcels: list[dict[str, Any]], open_orders: list[dict[str, Any]],
                 order_data: dict[str, Any], sent: frozenset[str] = frozenset()
                 ) -> list[dict[str, Any]]:
    """The `POST fulfillments.json` bodies for a shipped order: one per parcel, naming the
    fulfillment order line items in it (our SKU -> Shopify line item -> fulfillment order line
    item, up to its `fulfillable_quantity`). A parcel whose tracking number is already on a
    fulfillment (`sent`: a repeat after a crash) is left out. When the items cannot be told
    apart (an order kept before the SKUs were recorded, or no parcel lines), one fulfillment
    takes every open fulfillment order, with the first parcel's tracking; the others go in its
    message."""
    parcels = [p for p in parcels if str(p.get("tracking_number") or "") not in sent]
    if not parcels:
        return []
    sku_of = {str(li.get("id")): li.get("sku") for li in order_data.get("line_items") or []}
    remaining = [{"fo": f["id"], "id": li.get("id"), "sku": sku_of.get(str(li.get("line_item_id"))),
                  "left": int(li.get("fulfillable_quantity", li.get("quantity")) or 0)}
                 for f in open_orders for li in f.get("line_items") or []]
    known = bool(remaining) and all(r["sku"] for r in remaining) \
        and all(p.get("lines") for p in parcels)
    if not known:
        body: dict[str, Any] = {
            "line_items_by_fulfillment_order": [{"fulfillment_order_id": f["id"]}
                                                for f in open_orders],
            "tracking_info": _tracking(parcels[0]), "notify_customer": True}
        if len(parcels) > 1:
            body["message"] = "Also shipped: " + "; ".join(
                f"{t['company']} {t['number']}" for t in map(_tracking, parcels[1:]))
        return [{"fulfillment": body}]
    out = []
    for p in parcels:
        by_fo: dict[Any, list[dict[str, Any]]] = {}
        for line in p.get("lines") or []:
            want = int(line.get("quantity") or 0)
            for r in remaining:
                if want <= 0:
                    break
                if r["sku"] != line.get("sku") or r["left"] <= 0:
                    continue
                take = min(want, r["left"])
                r["left"] -= take
                want -= take
                by_fo.setdefault(r["fo"], []).append({"id": r["id"], "quantity": take})
        if not by_fo:
            continue  # nothing of this parcel is left to fulfill: done before
        out.append({"fulfillment": {
            "line_items_by_fulfillment_order": [
                {"fulfillment_order_id": fo, "fulfillment_order_line_items": items}
                for fo, items in by_fo.items()],
            "tracking_info": _tracking(p), "notify_customer": True}})
    return out


def _api(cfg: ChannelConfig, path: str) -> str:
    version = cfg.options.get("api_version") or DEFAULT_API_VERSION
    return f"{(cfg.api_base_url or '').rstrip('/')}/admin/api/{version}/{path}"


def _headers(cfg: ChannelConfig) -> dict[str, str]:
    return {"X-Shopify-Access-Token": cfg.secret("access_token"),
            "Content-Type": "application/json"}


async def write_back(client: httpx.AsyncClient, bucket: TokenBucket, cfg: ChannelConfig,
                     job: Job) -> None:
    oid = job.platform_order_id
    h = _headers(cfg)
    if job.action == "shipped":
        parcels = all_parcels(job.details)
        resp = await call(client, bucket, PLATFORM, "fulfillment_orders", "GET",
                          _api(cfg, f"orders/{oid}/fulfillment_orders.json"), headers=h)
        open_orders = [f for f in resp.json().get("fulfillment_orders", [])
                       if f.get("status") in ("open", "in_progress", "scheduled")]
        if not open_orders:
            return  # already fulfilled (a repeat after a crash, or by hand): nothing to do
        sent: frozenset[str] = frozenset()
        if partly_fulfilled(open_orders):  # some parcels went before a crash: which ones
            done = await call(client, bucket, PLATFORM, "fulfillments", "GET",
                              _api(cfg, f"orders/{oid}/fulfillments.json"), headers=h)
            sent = frozenset(str(n) for f in done.json().get("fulfillments", [])
                             for n in f.get("tracking_numbers") or [f.get("tracking_number")]
                             if n)
        # One fulfillment per parcel (Shopify: "each fulfillment supports a single tracking
        # number; for several, create separate fulfillments"), with that parcel's items.
        for body in fulfillments(parcels, open_orders, job.order_data, sent):
            await call(client, bucket, PLATFORM, "fulfillment_create", "POST",
                       _api(cfg, "fulfillments.json"), headers=h, content=json.dumps(body))
    elif job.action == "cancelled":
        if job.order_data.get("cancelled_on_platform"):
            return
        await call(client, bucket, PLATFORM, "order_cancel", "POST",
                   _api(cfg, f"orders/{oid}/cancel.json"), headers=h, content="{}")
    elif job.action == "refunded":
        body = {"refund": {"note": f"Shopkeeper refund {job.details.get('request_id')}",
                           "notify": True, "currency": job.details.get("currency"),
                           "transactions": [{"kind": "refund",
                                             "amount": str(job.details.get("amount"))}]}}
        await call(client, bucket, PLATFORM, "refund_create", "POST",
                   _api(cfg, f"orders/{oid}/refunds.json"), headers=h, content=json.dumps(body))
