"""Amazon (SP-API Orders API v0 shape): polled, not pushed. `getOrders` by `LastUpdatedAfter`
with `NextToken` paging, then `getOrderItems` per order; the cursor is kept per store and moves
only after a whole listing (a crash re-reads, the delivery id `AmazonOrderId@LastUpdateDate`
deduplicates). Login with Amazon (LWA): a refresh token buys an access token (`expires_in`),
refreshed before it lapses and on a 401/403. Rate limits are per operation (token buckets with
Amazon's documented defaults, overridable by the channel's option `rate_limits`), and a 429
holds the operation for its Retry-After (or a backoff when Amazon does not say).

Write-back: `shipped` is a shipment confirmation (`confirmShipment`) per parcel, naming the order
items in it. Cancellations and refunds go through the Feeds API (2021-06-30): `createFeedDocument`,
the XML uploaded to the document's pre-signed URL, then `createFeed` with
`POST_ORDER_ACKNOWLEDGEMENT_DATA` (the order's items with StatusCode Failure and a CancelReason:
a seller's cancellation) or `POST_PAYMENT_ADJUSTMENT_DATA` (an OrderAdjustment refunding the
amount across the order's items). Amazon processes a feed later: the job is `submitted` with its
feedId until `getFeed` says DONE (or CANCELLED / FATAL); then the processing report
(`resultFeedDocumentId`) decides `done` or `failed`. Each refund adjustment carries a
MerchantAdjustmentItemID derived from the write-back job, so a feed sent again after a crash is
refused by Amazon as a duplicate, which is read as "already applied" (see `judge`)."""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import json
import logging
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import httpx

from ..ratelimit import TokenBucket, backoff
from .base import (
    CENT,
    ChannelConfig,
    Failed,
    Inbound,
    Job,
    Retry,
    Submitted,
    Unmappable,
    all_parcels,
    call,
    customer_id,
    ioss_for,
    lines_subtotal,
    money,
    resolve_sku,
    shipping_option,
    text,
    total,
)

log = logging.getLogger(__name__)
PLATFORM = "amazon"
# Amazon's documented default rates (requests per second, burst).
RATES = {"getOrders": (0.0167, 20), "getOrderItems": (0.5, 30), "confirmShipment": (2.0, 10),
         "createFeedDocument": (0.5, 15), "createFeed": (0.0083, 15),
         "getFeed": (2.0, 15), "getFeedDocument": (0.0222, 10),
         # Documents go to / come from S3's pre-signed URLs, not the SP-API: no usage plan.
         "uploadFeedDocument": (10.0, 10), "downloadFeedDocument": (10.0, 10),
         "token": (1.0, 5)}
FEEDS = "/feeds/2021-06-30"
FEED_CONTENT_TYPE = "text/xml; charset=UTF-8"
# Our reasons, as Amazon's CancelReason / AdjustmentReason values.
CANCEL_REASON = "BuyerCanceled"
ADJUSTMENT_REASON = "CustomerReturn"


def bucket() -> TokenBucket:
    rate, burst = RATES["confirmShipment"]
    return TokenBucket(rate=rate, burst=burst)


def _amount(m: Any, what: str) -> str:
    return money((m or {}).get("Amount") if isinstance(m, dict) else None, what)


def inbound(cfg: ChannelConfig, order: dict[str, Any],
            items: list[dict[str, Any]]) -> Inbound:
    oid = order.get("AmazonOrderId")
    if not oid:
        raise Unmappable("the order has no AmazonOrderId")
    status = str(order.get("OrderStatus") or "")
    if status == "Canceled":
        return Inbound("cancel_requested", str(oid), {
            "store": cfg.store, "external_order_id": str(oid),
            "reason": "cancelled on Amazon"}, order_name=str(oid))
    if status in ("Pending", "PendingAvailability"):
        return Inbound("ignored", str(oid), reason=f"status {status}: not payable yet")
    value = map_order(cfg, order, items)
    return Inbound("placed", str(oid), value, order_name=str(oid),
                   platform_data={"items": [{"orderItemId": i.get("OrderItemId"),
                                             "quantity": i.get("QuantityOrdered"),
                                             "sku": ln["sku"], "price": ln_price(i)}
                                            for i, ln in zip(items, value["lines"],
                                                             strict=True)],
                                  "marketplace_id": order.get("MarketplaceId"),
                                  "currency": value["currency"]})


def ln_price(item: dict[str, Any]) -> str:
    """An item's ItemPrice (the whole quantity), kept for refunds."""
    return _amount(item.get("ItemPrice"), "ItemPrice")


def map_order(cfg: ChannelConfig, o: dict[str, Any],
              items: list[dict[str, Any]]) -> dict[str, Any]:
    oid = str(o["AmazonOrderId"])
    addr = o.get("ShippingAddress") or {}
    if not addr.get("CountryCode"):
        raise Unmappable("ShippingAddress.CountryCode is missing")
    included = bool(cfg.options.get("prices_include_tax"))
    lines, taxes, shipping, discounts = [], [], [], []
    for i, it in enumerate(items):
        qty = int(it.get("QuantityOrdered") or 0)
        # ItemPrice is the price of the whole quantity, not of one unit.
        price = Decimal(_amount(it.get("ItemPrice"), f"OrderItems[{i}].ItemPrice"))
        unit = (price / qty).quantize(CENT, ROUND_HALF_UP) if qty else price
        item_tax = _amount(it.get("ItemTax"), f"OrderItems[{i}].ItemTax")
        lines.append({"sku": resolve_sku(cfg, it.get("SellerSKU"), it.get("ASIN")),
                      "quantity": qty, "unit_price": f"{unit:.2f}", "tax": item_tax})
        taxes += [item_tax, _amount(it.get("ShippingTax"), "ShippingTax")]
        shipping.append(_amount(it.get("ShippingPrice"), "ShippingPrice"))
        shipping.append(f"{-Decimal(_amount(it.get('ShippingDiscount'), 'ShippingDiscount')):.2f}")
        discounts.append(_amount(it.get("PromotionDiscount"), "PromotionDiscount"))
    if not lines:
        raise Unmappable("the order has no items")
    country = str(addr["CountryCode"]).upper()
    buyer = o.get("BuyerInfo") or {}
    cod = o.get("PaymentMethod") == "COD"
    total_ = o.get("OrderTotal") or {}
    return {
        "store": cfg.store, "external_order_id": oid, "placed_at": o.get("PurchaseDate"),
        "occurred_at": o.get("LastUpdateDate"),
        "customer": {"id": customer_id(PLATFORM, None, buyer.get("BuyerEmail")),
                     "name": text(buyer.get("BuyerName"), 200),
                     "email": text(buyer.get("BuyerEmail"), 320),
                     "phone": text(addr.get("Phone"), 40)},
        "shipping_address": {
            "name": text(addr.get("Name"), 200), "line1": text(addr.get("AddressLine1"), 300),
            "line2": text(addr.get("AddressLine2"), 300), "city": text(addr.get("City"), 120),
            "region": text(addr.get("StateOrRegion"), 120),
            "postal_code": text(addr.get("PostalCode"), 20), "country": country},
        "lines": lines,
        "currency": str(total_.get("CurrencyCode") or cfg.default_currency).upper(),
        "shipping_option": shipping_option(o.get("ShipmentServiceLevelCategory"),
                                           o.get("ShipServiceLevel")),
        "totals": {"subtotal": lines_subtotal(lines), "discount": total(discounts),
                   "shipping_fee": total(shipping),
                   "tax": "0.00" if included else total(taxes), "duties": "0.00",
                   "grand_total": _amount(total_, "OrderTotal")},
        "payment": {"method": "cod" if cod else "card", "status": "pending" if cod else "paid"},
        "promo_codes": [],
        "note": None,
        "ioss_number": ioss_for(cfg, country),
        "channel": {"platform": PLATFORM, "order_name": oid},
    }


class SpApi:
    """One channel's SP-API session: the access token and the per-operation buckets."""

    def __init__(self, client: httpx.AsyncClient, cfg: ChannelConfig) -> None:
        self.client = client
        self.cfg = cfg
        self.base = (cfg.api_base_url or "").rstrip("/")
        self.token: str | None = None
        self.expires_at = 0.0
        self.margin = 60.0
        overrides = cfg.options.get("rate_limits") or {}
        self.buckets = {op: TokenBucket(*map(float, overrides.get(op, default)))
                        for op, default in RATES.items()}
        self.refreshes = 0

    async def access_token(self, force: bool = False) -> str:
        if self.token and not force and time.time() < self.expires_at - self.margin:
            return self.token
        creds = self.cfg.credentials
        url = str(creds.get("token_url") or f"{self.base}/auth/o2/token")
        resp = await call(self.client, self.buckets["token"], PLATFORM, "token", "POST", url,
                          data={"grant_type": "refresh_token",
                                "refresh_token": creds.get("refresh_token", ""),
                                "client_id": creds.get("client_id", ""),
                                "client_secret": creds.get("client_secret", "")})
        body = resp.json()
        self.token = str(body["access_token"])
        ttl = float(body.get("expires_in", 3600))
        self.expires_at = time.time() + ttl
        self.margin = min(60.0, ttl / 5)  # refresh a minute early (sooner for short tokens)
        self.refreshes += 1
        return self.token

    async def request(self, op: str, method: str, path: str, *, attempts: int = 6,
                      **kw: Any) -> httpx.Response:
        """One operation; a 429 waits its Retry-After (or a backoff) and tries again, an
        expired token is refreshed once."""
        refreshed = False
        for attempt in range(1, attempts + 1):
            token = await self.access_token()
            try:
                return await call(self.client, self.buckets[op], PLATFORM, op, method,
                                  f"{self.base}{path}",
                                  headers={"x-amz-access-token": token,
                                           "Content-Type": "application/json"}, **kw)
            except Retry as exc:
                if attempt == attempts:
                    raise
                await asyncio.sleep(exc.after if exc.after is not None
                                    else min(backoff(attempt, 1.5), 30))
            except Failed as exc:
                if refreshed or exc.status not in (401, 403):
                    raise
                refreshed = True  # the token lapsed early (or was revoked): one fresh try
                await self.access_token(force=True)
        raise Retry(f"{op}: gave up after {attempts} attempts")

    async def orders(self, updated_after: datetime) -> Any:
        """Yield pages of orders updated after the cursor, following NextToken."""
        markets = ",".join(self.cfg.options.get("marketplace_ids") or ["ATVPDKIKX0DER"])
        params: dict[str, Any] = {"MarketplaceIds": markets,
                                  "LastUpdatedAfter": iso(updated_after)}
        if self.cfg.options.get("page_size"):
            params["MaxResultsPerPage"] = int(self.cfg.options["page_size"])
        while True:
            payload = (await self.request("getOrders", "GET", "/orders/v0/orders",
                                          params=params)).json().get("payload", {})
            yield payload.get("Orders", [])
            token = payload.get("NextToken")
            if not token:
                return
            params = {"MarketplaceIds": markets, "NextToken": token}

    async def items(self, order_id: str) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        params: dict[str, Any] = {}
        while True:
            payload = (await self.request("getOrderItems", "GET",
                                          f"/orders/v0/orders/{order_id}/orderItems",
                                          params=params)).json().get("payload", {})
            out += payload.get("OrderItems", [])
            if not payload.get("NextToken"):
                return out
            params = {"NextToken": payload["NextToken"]}


def iso(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def parse_time(value: Any) -> datetime:
    return datetime.fromisoformat(str(value).replace("Z", "+00:00"))


_sessions: dict[str, SpApi] = {}


def session(client: httpx.AsyncClient, cfg: ChannelConfig) -> SpApi:
    """One SP-API session per store and process, so token and buckets are shared by the poller
    and write-back (renewed when the channel's config changes)."""
    s = _sessions.get(cfg.store)
    if s is None or s.cfg != cfg or s.client is not client:
        s = _sessions[cfg.store] = SpApi(client, cfg)
    return s


def packages(parcels: list[dict[str, Any]], items: list[dict[str, Any]]
             ) -> list[tuple[dict[str, Any], list[dict[str, Any]]]]:
    """Each parcel with the order items in it (our SKU -> Amazon's order item, up to its
    quantity). Items kept before their SKU was recorded: all of them on the first parcel."""
    if not items or not all(i.get("sku") for i in items) or \
            not all(p.get("lines") for p in parcels):
        return [(parcels[0], [{"orderItemId": i["orderItemId"], "quantity": i["quantity"]}
                              for i in items])]
    left = [{**i, "left": int(i.get("quantity") or 0)} for i in items]
    out = []
    for p in parcels:
        picked: list[dict[str, Any]] = []
        for line in p.get("lines") or []:
            want = int(line.get("quantity") or 0)
            for i in left:
                if want <= 0:
                    break
                if i["sku"] != line.get("sku") or i["left"] <= 0:
                    continue
                take = min(want, i["left"])
                i["left"] -= take
                want -= take
                picked.append({"orderItemId": i["orderItemId"], "quantity": take})
        if picked:
            out.append((p, picked))
    return out


def _envelope(message_type: str, merchant: str, body: ET.Element) -> bytes:
    env = ET.Element("AmazonEnvelope", {
        "xmlns:xsi": "http://www.w3.org/2001/XMLSchema-instance",
        "xsi:noNamespaceSchemaLocation": "amzn-envelope.xsd"})
    header = ET.SubElement(env, "Header")
    ET.SubElement(header, "DocumentVersion").text = "1.01"
    ET.SubElement(header, "MerchantIdentifier").text = merchant
    ET.SubElement(env, "MessageType").text = message_type
    message = ET.SubElement(env, "Message")
    ET.SubElement(message, "MessageID").text = "1"
    message.append(body)
    return b'<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(env, encoding="utf-8")


def cancellation_feed(merchant: str, order_id: str, ref: str,
                      items: list[dict[str, Any]]) -> bytes:
    """`POST_ORDER_ACKNOWLEDGEMENT_DATA`: StatusCode Failure cancels the order's items."""
    ack = ET.Element("OrderAcknowledgement")
    ET.SubElement(ack, "AmazonOrderID").text = order_id
    ET.SubElement(ack, "MerchantOrderID").text = ref[:64]
    ET.SubElement(ack, "StatusCode").text = "Failure"
    for i in items:
        item = ET.SubElement(ack, "Item")
        ET.SubElement(item, "AmazonOrderItemCode").text = str(i["orderItemId"])
        ET.SubElement(item, "CancelReason").text = CANCEL_REASON
    return _envelope("OrderAcknowledgement", merchant, ack)


def adjustment_ids(order_key: str, ref: str, count: int) -> list[str]:
    """The MerchantAdjustmentItemID of each adjusted item of a refund: derived from the
    write-back job's identity (order, action, after-sales request), so the same refund sent
    twice carries the same ids and Amazon refuses the second as a duplicate."""
    digest = hashlib.sha256(f"{order_key}|refunded|{ref}".encode()).hexdigest()[:16]
    return [f"SK-{digest}-{n + 1}" for n in range(count)]


def refund_shares(amount: Decimal, items: list[dict[str, Any]]
                  ) -> list[tuple[dict[str, Any], list[tuple[str, Decimal]]]]:
    """The amount across the items: each a Principal up to its price; what is left (shipping
    refunded too) as Shipping on the first item."""
    left = amount
    shares: list[tuple[dict[str, Any], Decimal]] = []
    for i in items:
        share = min(left, Decimal(str(i.get("price") or "0")))
        if share > 0:
            shares.append((i, share))
            left -= share
    if not shares:  # no prices kept: the whole amount on the first item
        shares, left = [(items[0], amount)], Decimal("0")
    return [(i, [("Principal", share)] + ([("Shipping", left)] if n == 0 and left > 0 else []))
            for n, (i, share) in enumerate(shares)]


def refund_feed(merchant: str, order_id: str, amount: Decimal, currency: str,
                items: list[dict[str, Any]], order_key: str = "", ref: str = "") -> bytes:
    """`POST_PAYMENT_ADJUSTMENT_DATA`: the amount refunded across the order's items (see
    `refund_shares`), each AdjustedItem with its MerchantAdjustmentItemID (`adjustment_ids`)."""
    if amount <= 0:
        raise Failed(f"refund of {amount} {currency}: nothing to adjust")
    adj = ET.Element("OrderAdjustment")
    ET.SubElement(adj, "AmazonOrderID").text = order_id
    shares = refund_shares(amount, items)
    ids = adjustment_ids(order_key or order_id, ref, len(shares))
    for (i, parts), adj_id in zip(shares, ids, strict=True):
        item = ET.SubElement(adj, "AdjustedItem")
        ET.SubElement(item, "AmazonOrderItemCode").text = str(i["orderItemId"])
        ET.SubElement(item, "MerchantAdjustmentItemID").text = adj_id
        ET.SubElement(item, "AdjustmentReason").text = ADJUSTMENT_REASON
        prices = ET.SubElement(item, "ItemPriceAdjustments")
        for kind, value in parts:
            component = ET.SubElement(prices, "Component")
            ET.SubElement(component, "Type").text = kind
            ET.SubElement(component, "Amount", {"currency": currency}).text = f"{value:.2f}"
    return _envelope("OrderAdjustment", merchant, adj)


async def submit_feed(api: SpApi, feed_type: str, content: bytes, marketplace: str
                      ) -> Submitted:
    """Feeds API 2021-06-30: a document, its content uploaded, then the feed. Its ids."""
    doc = (await api.request("createFeedDocument", "POST", f"{FEEDS}/documents", attempts=1,
                             content=json.dumps({"contentType": FEED_CONTENT_TYPE}))).json()
    if not doc.get("url") or not doc.get("feedDocumentId"):
        raise Retry(f"createFeedDocument answered without url/feedDocumentId: {str(doc)[:200]}")
    # The pre-signed URL carries its own authorisation: no SP-API token on it.
    await call(api.client, api.buckets["uploadFeedDocument"], PLATFORM, "uploadFeedDocument",
               "PUT", str(doc["url"]), content=content,
               headers={"Content-Type": FEED_CONTENT_TYPE})
    feed = (await api.request("createFeed", "POST", f"{FEEDS}/feeds", attempts=1,
                              content=json.dumps({"feedType": feed_type,
                                                  "marketplaceIds": [marketplace],
                                                  "inputFeedDocumentId":
                                                      doc["feedDocumentId"]}))).json()
    if not feed.get("feedId"):
        raise Retry(f"createFeed answered without feedId: {str(feed)[:200]}")
    return Submitted(str(feed["feedId"]), str(doc["feedDocumentId"]), feed_type)


async def write_back(client: httpx.AsyncClient, bucket: TokenBucket, cfg: ChannelConfig,
                     job: Job) -> Submitted | None:
    items = job.order_data.get("items") or []
    marketplace = str(job.order_data.get("marketplace_id")
                      or (cfg.options.get("marketplace_ids") or ["ATVPDKIKX0DER"])[0])
    api = session(client, cfg)
    oid = job.platform_order_id
    if job.action == "cancelled":
        if job.order_data.get("cancelled_on_platform"):
            return None  # cancelled on Amazon: nothing to tell it
        if not items:
            raise Failed(f"order {oid} has no order items kept from the poll to cancel")
        feed = cancellation_feed(str(cfg.credentials.get("seller_id") or cfg.store), oid,
                                 job.order_key, items)
        sent = await submit_feed(api, "POST_ORDER_ACKNOWLEDGEMENT_DATA", feed, marketplace)
        log.info("Amazon order %s: cancellation submitted as feed %s (waiting for its"
                 " processing report)", oid, sent.feed_id)
        return sent
    if job.action == "refunded":
        if not items:
            raise Failed(f"order {oid} has no order items kept from the poll to refund")
        amount = Decimal(str(job.details.get("amount") or "0"))
        currency = str(job.details.get("currency") or job.order_data.get("currency")
                       or cfg.default_currency)
        feed = refund_feed(str(cfg.credentials.get("seller_id") or cfg.store), oid, amount,
                           currency, items, job.order_key, job.ref)
        sent = await submit_feed(api, "POST_PAYMENT_ADJUSTMENT_DATA", feed, marketplace)
        log.info("Amazon order %s: refund of %s %s submitted as feed %s (waiting for its"
                 " processing report)", oid, amount, currency, sent.feed_id)
        return sent
    for parcel, picked in packages(all_parcels(job.details), items):
        body = {"marketplaceId": marketplace,
                "packageDetail": {
                    "packageReferenceId": str(parcel.get("parcel_id") or "1")[:64],
                    "carrierCode": str(parcel.get("carrier") or "Other"),
                    "shippingMethod": str(parcel.get("service") or ""),
                    "trackingNumber": str(parcel.get("tracking_number") or ""),
                    "shipDate": iso(datetime.now(UTC)),
                    "orderItems": picked}}
        await api.request("confirmShipment", "POST",
                          f"/orders/v0/orders/{oid}/shipmentConfirmation", attempts=1,
                          content=json.dumps(body))
    return None


# --- the feed's processing report ---------------------------------------------------------------
FINAL_STATUSES = ("DONE", "CANCELLED", "FATAL")
# Words by which a processing report's error says an adjustment id was seen before. Amazon's
# exact ResultMessageCode for it is not documented with the schema: a channel's option
# `duplicate_result_codes` (a list of ResultMessageCodes) names it once seen in a real report.
DUPLICATE_WORDS = ("duplicate", "already")


@dataclass(frozen=True)
class ReportResult:
    """One `Result` of a processing report: ResultCode Error or Warning."""

    message_id: str
    code: str
    message_code: str
    description: str
    additional: dict[str, str] = field(default_factory=dict)

    def __str__(self) -> str:
        where = f" (message {self.message_id})" if self.message_id else ""
        return f"{self.code} {self.message_code}{where}: {self.description}"


@dataclass(frozen=True)
class ProcessingReport:
    """`AmazonEnvelope/Message/ProcessingReport` of a feed: its summary and results."""

    status_code: str
    processed: int
    successful: int
    with_error: int
    with_warning: int
    results: list[ReportResult]

    @property
    def errors(self) -> list[ReportResult]:
        return [r for r in self.results if r.code.lower() == "error"]

    @property
    def warnings(self) -> list[ReportResult]:
        return [r for r in self.results if r.code.lower() == "warning"]

    def summary(self) -> str:
        return (f"{self.processed} message(s) processed, {self.successful} successful,"
                f" {self.with_error} with error, {self.with_warning} with warning")


def _int(value: str | None) -> int:
    try:
        return int(str(value or "0").strip())
    except ValueError:
        return 0


def parse_processing_report(content: bytes) -> ProcessingReport:
    """The processing report's XML (gunzipped). Raises ValueError when it is not one."""
    try:
        root = ET.fromstring(content)
    except ET.ParseError as exc:
        raise ValueError(f"the processing report is not XML: {exc}") from exc
    report = root.find("Message/ProcessingReport")
    if report is None:
        report = root.find(".//ProcessingReport")
    if report is None:
        raise ValueError("no AmazonEnvelope/Message/ProcessingReport in the feed's result"
                         f" document ({content[:120]!r})")
    summary = report.find("ProcessingSummary")
    results = []
    for r in report.findall("Result"):
        info = r.find("AdditionalInfo")
        results.append(ReportResult(
            message_id=(r.findtext("MessageID") or "").strip(),
            code=(r.findtext("ResultCode") or "").strip(),
            message_code=(r.findtext("ResultMessageCode") or "").strip(),
            description=(r.findtext("ResultDescription") or "").strip(),
            additional={c.tag: (c.text or "").strip() for c in info} if info is not None
            else {}))
    def count(tag: str) -> int:
        return _int(summary.findtext(tag)) if summary is not None else 0
    return ProcessingReport(status_code=(report.findtext("StatusCode") or "").strip(),
                            processed=count("MessagesProcessed"),
                            successful=count("MessagesSuccessful"),
                            with_error=count("MessagesWithError"),
                            with_warning=count("MessagesWithWarning"), results=results)


@dataclass(frozen=True)
class Verdict:
    """What a processing report means for the write-back: `done` (with a note for operators
    when Amazon warned or the refund was already applied) or `failed` (the error text)."""

    state: str
    text: str | None
    duplicate: bool = False


def is_duplicate(result: ReportResult, ids: list[str], codes: tuple[str, ...] = ()) -> bool:
    """An error saying one of our adjustment ids was applied before (a feed sent again)."""
    if result.code.lower() != "error":
        return False
    if result.message_code and result.message_code in codes:
        return True
    words = " ".join([result.description, *result.additional.values()])
    return any(i in words for i in ids) and any(w in words.lower() for w in DUPLICATE_WORDS)


def judge(report: ProcessingReport, ids: list[str] | None = None,
          duplicate_codes: tuple[str, ...] = ()) -> Verdict:
    """Success, a partial or whole failure, or a refund already applied (every error is a
    duplicate of our own adjustment ids)."""
    ids = ids or []
    errors = report.errors
    warned = "; ".join(str(w) for w in report.warnings[:5])
    if not errors and report.with_error == 0:
        return Verdict("done", f"Amazon warned: {warned}" if warned else None)
    if errors and ids and all(is_duplicate(e, ids, duplicate_codes) for e in errors):
        return Verdict("done", "already applied: Amazon refused the adjustment id(s) as"
                               " duplicates, i.e. an earlier submission of this refund went"
                               f" through ({'; '.join(str(e) for e in errors[:3])})",
                       duplicate=True)
    shown = "; ".join(str(e) for e in errors[:5]) or "no Result entries given"
    part = ("partly applied" if report.successful > 0 else "not applied")
    return Verdict("failed", f"{part}: {report.summary()}: {shown}"[:1000])


@dataclass(frozen=True)
class FeedCheck:
    """One look at a submitted feed: still processing (`submitted`), or its verdict."""

    status: str
    state: str
    text: str | None = None
    report: ProcessingReport | None = None
    duplicate: bool = False


def job_adjustment_ids(job: Job) -> list[str]:
    """The adjustment ids the job's refund feed carried (recomputed: they are deterministic)."""
    if job.action != "refunded":
        return []
    items = job.order_data.get("items") or []
    amount = Decimal(str(job.details.get("amount") or "0"))
    if not items or amount <= 0:
        return []
    return adjustment_ids(job.order_key, job.ref, len(refund_shares(amount, items)))


async def result_document(api: SpApi, document_id: str) -> bytes:
    """`getFeedDocument` (the pre-signed url, maybe GZIP), then the content itself."""
    doc = (await api.request("getFeedDocument", "GET", f"{FEEDS}/documents/{document_id}",
                             attempts=1)).json()
    if not doc.get("url"):
        raise Retry(f"getFeedDocument answered without url: {str(doc)[:200]}")
    resp = await call(api.client, api.buckets["downloadFeedDocument"], PLATFORM,
                      "downloadFeedDocument", "GET", str(doc["url"]))
    content = resp.content
    if str(doc.get("compressionAlgorithm") or "").upper() == "GZIP":
        try:
            content = gzip.decompress(content)
        except (OSError, EOFError) as exc:
            raise Retry(f"feed document {document_id} is not valid GZIP: {exc}") from exc
    return content


async def check_feed(client: httpx.AsyncClient, cfg: ChannelConfig, job: Job,
                     feed_id: str) -> FeedCheck:
    """`getFeed`: IN_QUEUE / IN_PROGRESS keep the job submitted; DONE reads and judges the
    processing report; CANCELLED and FATAL fail it (nothing applied). Raises Retry/Failed for
    the calls themselves."""
    api = session(client, cfg)
    feed = (await api.request("getFeed", "GET", f"{FEEDS}/feeds/{feed_id}",
                              attempts=1)).json()
    status = str(feed.get("processingStatus") or "")
    if status not in FINAL_STATUSES:
        return FeedCheck(status or "UNKNOWN", "submitted")
    result_id = feed.get("resultFeedDocumentId")
    report: ProcessingReport | None = None
    if result_id:
        try:
            report = parse_processing_report(await result_document(api, str(result_id)))
        except ValueError as exc:
            return FeedCheck(status, "failed", f"feed {feed_id} is {status} but its processing"
                             f" report cannot be read: {exc}"[:1000])
    if status == "CANCELLED":
        return FeedCheck(status, "failed", f"feed {feed_id} was cancelled before Amazon"
                         " processed it: nothing applied", report)
    if status == "FATAL":
        why = "; ".join(str(e) for e in report.errors[:5]) if report else "no report given"
        return FeedCheck(status, "failed", f"feed {feed_id} failed as a whole (FATAL): nothing"
                         f" applied: {why}"[:1000], report)
    if report is None:
        return FeedCheck(status, "failed", f"feed {feed_id} is DONE without a"
                         " resultFeedDocumentId: its outcome is unknown")
    codes = tuple(str(c) for c in cfg.options.get("duplicate_result_codes") or [])
    verdict = judge(report, job_adjustment_ids(job), codes)
    return FeedCheck(status, verdict.state, verdict.text, report, verdict.duplicate)
