"""WooCommerce: webhooks `order.created` / `order.updated` in; the order completed with a
tracking note, cancelled or refunded out, through the REST API v3 (`/wp-json/wc/v3`).

Auth: webhooks carry `X-WC-Webhook-Signature`, base64 HMAC-SHA256 of the raw body with the
webhook's secret; API calls use HTTP basic auth with the consumer key and secret."""

from __future__ import annotations

import json
import re
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import httpx

from ..ratelimit import TokenBucket
from .base import (
    CARRIER_NAMES,
    CENT,
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

PLATFORM = "woocommerce"
PING = re.compile(rb"^webhook_id=\d+$")
STATUS_PAYMENT = {"processing": "paid", "completed": "paid", "on-hold": "pending",
                  "pending": "pending", "failed": "failed", "refunded": "paid"}


WEBHOOK = HmacWebhook("X-WC-Webhook-Signature", "X-WC-Webhook-Delivery-ID", "X-WC-Webhook-Topic")
sign, verify, delivery_id = WEBHOOK.sign, WEBHOOK.verify, WEBHOOK.delivery_id


def is_ping(body: bytes) -> bool:
    """WooCommerce's test delivery when a webhook is saved: `webhook_id=N`, form-encoded."""
    return bool(PING.match(body.strip()))


def bucket() -> TokenBucket:
    # WooCommerce sets no API limit of its own; a shop's host might. 5/s, bursts of 10.
    return TokenBucket(rate=5.0, burst=10)


def inbound(cfg: ChannelConfig, topic: str, order: Any) -> Inbound:
    if not isinstance(order, dict) or order.get("id") in (None, ""):
        raise Unmappable("the body is not a WooCommerce order (no `id`)")
    ext = str(order["id"])
    name = f"#{order.get('number') or ext}"
    status = str(order.get("status") or "")
    if topic not in ("order.created", "order.updated"):
        return Inbound("ignored", ext, reason=f"topic {topic!r} is not handled")
    if status == "cancelled":
        return Inbound("cancel_requested", ext, {
            "store": cfg.store, "external_order_id": ext,
            "reason": "cancelled on WooCommerce"}, order_name=name)
    if status in ("checkout-draft", "trash"):
        return Inbound("ignored", ext, reason=f"order status {status!r} is not an order yet")
    return Inbound("placed", ext, map_order(cfg, order), order_name=name)


def map_order(cfg: ChannelConfig, o: dict[str, Any]) -> dict[str, Any]:
    ext = str(o["id"])
    ship = o.get("shipping") or {}
    bill = o.get("billing") or {}
    addr = ship if isinstance(ship, dict) and ship.get("country") else bill
    if not isinstance(addr, dict) or not addr.get("country"):
        raise Unmappable("shipping.country (and billing.country) is missing")
    lines = []
    for i, li in enumerate(o.get("line_items") or []):
        if not isinstance(li, dict):
            raise Unmappable(f"line_items[{i}] is not an object")
        qty = int(li.get("quantity") or 0)
        # `subtotal` is the line before coupons, without tax; the unit price is its share.
        sub = Decimal(money(li.get("subtotal"), f"line_items[{i}].subtotal"))
        unit = (sub / qty).quantize(CENT, ROUND_HALF_UP) if qty else sub
        lines.append({
            "sku": resolve_sku(cfg, li.get("sku"), li.get("variation_id") or None,
                               li.get("product_id"), li.get("id")),
            "quantity": qty, "unit_price": f"{unit:.2f}",
            "tax": money(li.get("subtotal_tax"), f"line_items[{i}].subtotal_tax")})
    if not lines:
        raise Unmappable("the order has no line_items")
    shipping_lines = [s for s in o.get("shipping_lines") or [] if isinstance(s, dict)]
    # Fees (gift wrap, COD surcharge) are charges besides the goods: counted with shipping.
    fees = [money(f.get("total"), "fee_lines.total") for f in o.get("fee_lines") or []
            if isinstance(f, dict)]
    shipping_fee = total([money(s.get("total"), "shipping_lines.total")
                          for s in shipping_lines] + fees)
    country = str(addr["country"]).upper()
    status = str(o.get("status") or "")
    pay_status = "paid" if o.get("date_paid") or o.get("date_paid_gmt") else \
        STATUS_PAYMENT.get(status, "pending")
    placed = o.get("date_created_gmt") or o.get("date_created")
    if placed and not str(placed).endswith("Z") and "+" not in str(placed)[10:]:
        placed = f"{placed}Z"  # WooCommerce's *_gmt dates have no zone: they are UTC
    return {
        "store": cfg.store, "external_order_id": ext, "placed_at": placed,
        "customer": {"id": customer_id(PLATFORM, o.get("customer_id"), bill.get("email")),
                     "name": join_name(bill.get("first_name"), bill.get("last_name")),
                     "email": text(bill.get("email"), 320), "phone": text(bill.get("phone"), 40)},
        "shipping_address": {
            "name": join_name(addr.get("first_name"), addr.get("last_name")),
            "line1": text(addr.get("address_1"), 300), "line2": text(addr.get("address_2"), 300),
            "city": text(addr.get("city"), 120), "region": text(addr.get("state"), 120),
            "postal_code": text(addr.get("postcode"), 20), "country": country},
        "lines": lines,
        "currency": str(o.get("currency") or cfg.default_currency).upper(),
        "shipping_option": shipping_option(*[s.get("method_id") for s in shipping_lines],
                                           *[s.get("method_title") for s in shipping_lines]),
        "totals": {"subtotal": lines_subtotal(lines),
                   "discount": money(o.get("discount_total"), "discount_total"),
                   "shipping_fee": shipping_fee,
                   "tax": money(o.get("total_tax"), "total_tax"), "duties": "0.00",
                   "grand_total": money(o.get("total"), "total")},
        "payment": {"method": payment_method(o.get("payment_method"),
                                             o.get("payment_method_title")),
                    "status": pay_status},
        "promo_codes": forwarded_codes(cfg, [str(c.get("code"))[:64] for c in o.get("coupon_lines") or []
                        if isinstance(c, dict) and c.get("code")][:10]),
        "note": text(o.get("customer_note"), 2000),
        "ioss_number": ioss_for(cfg, country),
        "channel": {"platform": PLATFORM, "order_name": f"#{o.get('number') or ext}"},
    }


# --- write-back ---------------------------------------------------------------------------------
def _api(cfg: ChannelConfig, path: str) -> str:
    return f"{(cfg.api_base_url or '').rstrip('/')}/wp-json/wc/v3/{path}"


def _auth(cfg: ChannelConfig) -> httpx.BasicAuth:
    return httpx.BasicAuth(cfg.secret("consumer_key"), cfg.secret("consumer_secret"))


async def write_back(client: httpx.AsyncClient, bucket: TokenBucket, cfg: ChannelConfig,
                     job: Job) -> None:
    oid = job.platform_order_id
    kw: dict[str, Any] = {"auth": _auth(cfg), "headers": {"Content-Type": "application/json"}}
    if job.action == "shipped":
        parcels = all_parcels(job.details)
        notes = []
        for p in parcels:
            carrier = str(p.get("carrier") or "")
            number = str(p.get("tracking_number") or "")
            url = tracking_url(carrier, number)
            notes.append(f"{CARRIER_NAMES.get(carrier, carrier)} {number}"
                         + (f" {url}" if url else ""))
        # The status first (a PUT: repeating it is harmless), then the customer's note.
        await call(client, bucket, PLATFORM, "order_update", "PUT", _api(cfg, f"orders/{oid}"),
                   content=json.dumps({"status": "completed"}), **kw)
        await call(client, bucket, PLATFORM, "order_note", "POST",
                   _api(cfg, f"orders/{oid}/notes"),
                   content=json.dumps({"note": "Shipped: " + "; ".join(notes),
                                       "customer_note": True}), **kw)
    elif job.action == "cancelled":
        if job.order_data.get("cancelled_on_platform"):
            return
        await call(client, bucket, PLATFORM, "order_update", "PUT", _api(cfg, f"orders/{oid}"),
                   content=json.dumps({"status": "cancelled"}), **kw)
    elif job.action == "refunded":
        await call(client, bucket, PLATFORM, "refund_create", "POST",
                   _api(cfg, f"orders/{oid}/refunds"),
                   content=json.dumps({"amount": str(job.details.get("amount")),
                                       "reason": f"Shopkeeper refund"
                                                 f" {job.details.get('request_id')}",
                                       "api_refund": False}), **kw)
