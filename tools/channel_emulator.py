"""A local stand-in for the platforms' APIs (Shopify Admin REST, WooCommerce REST v3, Amazon
SP-API Orders v0 and Login with Amazon), as a real HTTP server: nothing outside this machine is
reachable, so the tests and the demo point channels' `api_base_url` at it. It records every call,
keeps Amazon's orders to be polled, and injects faults (429 with Retry-After, 5xx) on demand.

Amazon's feeds are processed as Amazon does, later: a feed is IN_QUEUE, then IN_PROGRESS, then
(after `feed_delay` seconds) DONE with a processing report (a GZIP result document) that applies
or refuses each message: a refund for an unknown order or item, above what the item was charged
(less what was refunded before), or carrying a MerchantAdjustmentItemID applied before
(a duplicate) is an Error; cancelling a shipped order is an Error, an already cancelled one a
Warning. `feed_outcomes` makes the next feeds end FATAL or CANCELLED instead.

Also here: order payloads in each platform's documented shape and the platforms' webhook
signatures, as a storefront would send them (written apart from services/channels on purpose).
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import hmac
import json
import socket
import threading
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import parse_qsl
from xml.etree import ElementTree

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

SHOPIFY_TOKEN = "shpat_emulator"
WOO_KEY, WOO_SECRET = "ck_emulator", "cs_emulator"
LWA = {"client_id": "amzn1.application-oa2-client.emulator", "client_secret": "lwa-secret",
       "refresh_token": "Atzr|emulator"}


@dataclass
class Call:
    method: str
    path: str
    query: dict[str, str]
    body: Any
    status: int
    at: float = field(default_factory=time.time)


class Emulator:
    def __init__(self) -> None:
        self.calls: list[Call] = []
        self.faults: dict[str, list[tuple[int, str | None, dict[str, str]]]] = defaultdict(list)
        self.fulfilled: dict[str, list[dict[str, Any]]] = defaultdict(list)
        # Shopify orders the shop knows (add_shopify_order): their fulfillment order's line
        # items, with what is left to fulfill of each.
        self.shopify_left: dict[str, dict[int, int]] = {}
        self.shopify_lines: dict[str, dict[int, int]] = {}
        # Feeds API: documents created (their uploaded content) and feeds submitted, parsed.
        self.feed_documents: dict[str, bytes | None] = {}
        self.feeds: list[dict[str, Any]] = []
        # Processing: seconds from createFeed to DONE (IN_PROGRESS from half of it), the result
        # documents (GZIP), and what the feeds applied: adjustments by MerchantAdjustmentItemID
        # (or a generated id), refunded amounts per (order, item), cancelled and shipped orders.
        self.feed_delay = 1.0
        self.feed_outcomes: list[str] = []
        self.result_documents: dict[str, bytes] = {}
        self.adjustments: dict[str, dict[str, Any]] = {}
        self.refunded: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
        self.cancelled: set[str] = set()
        self.shipped: set[str] = set()
        self.amazon_orders: dict[str, dict[str, Any]] = {}
        self.amazon_items: dict[str, list[dict[str, Any]]] = {}
        self.token_ttl = 3600
        self.tokens: dict[str, float] = {}
        self.lock = threading.RLock()
        # Called with the feedId once a feed is accepted, before the answer goes out (a test
        # kills the caller there: the crash between Amazon's answer and the caller's commit).
        self.on_feed_created: Any = None
        self.app = self._build()
        self.server: uvicorn.Server | None = None
        self.thread: threading.Thread | None = None
        self.port = 0

    # --- control (tests and demo call these in-process) ---
    def fail_next(self, op: str, status: int = 429, retry_after: str | None = "1",
                  times: int = 1, when: dict[str, str] | None = None) -> None:
        """The next `times` calls of `op` (whose query has the items of `when`) fail."""
        with self.lock:
            self.faults[op] += [(status, retry_after, when or {})] * times

    def calls_to(self, fragment: str, method: str | None = None) -> list[Call]:
        return [c for c in list(self.calls) if fragment in c.path
                and (method is None or c.method == method) and c.status < 300]

    def add_shopify_order(self, order: dict[str, Any]) -> None:
        """An order created in the shop (before its webhook): its one fulfillment order lists
        every line item, fulfillable until fulfillments take them."""
        oid = str(order["id"])
        with self.lock:
            if oid not in self.shopify_lines:
                self.shopify_lines[oid] = {int(li["id"]): int(li["quantity"])
                                           for li in order.get("line_items") or []}
                self.shopify_left[oid] = dict(self.shopify_lines[oid])

    def add_amazon_order(self, order: dict[str, Any], items: list[dict[str, Any]]) -> None:
        with self.lock:
            self.amazon_orders[order["AmazonOrderId"]] = order
            self.amazon_items[order["AmazonOrderId"]] = items

    def refunds_of(self, order_id: str) -> list[dict[str, Any]]:
        """The adjustments Amazon applied to the order (one per adjusted item)."""
        with self.lock:
            self._advance()
            return [a for a in self.adjustments.values() if a["order"] == order_id]

    def age_feeds(self, seconds: float) -> None:
        """Move every feed's submission `seconds` into the past: a test's own clock for Amazon's
        processing (IN_QUEUE, then IN_PROGRESS from half of `feed_delay`, then DONE)."""
        with self.lock:
            for feed in self.feeds:
                feed["created"] -= seconds

    # --- feed processing (as Amazon does it, after the feed is accepted) ---
    def _advance(self) -> None:
        """Process every feed that is due, in the order they came: Amazon processes a feed
        whether or not anyone asks about it (a feed whose id the seller lost is applied too)."""
        with self.lock:
            for feed in self.feeds:
                self._feed_status(feed)

    def _feed_status(self, feed: dict[str, Any]) -> str:
        """The feed's processingStatus now; processes it the first time it is due."""
        with self.lock:
            if feed["status"] in ("DONE", "CANCELLED", "FATAL"):
                return str(feed["status"])
            age = time.time() - feed["created"]
            if age < self.feed_delay / 2:
                return "IN_QUEUE"
            if age < self.feed_delay:
                feed["status"] = "IN_PROGRESS"
                return "IN_PROGRESS"
            forced = self.feed_outcomes.pop(0) if self.feed_outcomes else None
            if forced == "CANCELLED":
                feed["status"] = "CANCELLED"
                return "CANCELLED"
            if forced == "FATAL":
                results: list[tuple[str, str, str, str, dict[str, str]]] = [
                    ("0", "Error", "90099", "The feed could not be processed (emulated FATAL)",
                     {})]
                report, ok, failed = results, 0, 1
            else:
                report, ok, failed = self._process(feed)
            doc_id = f"amzn1.tortuga.4.na.result.{uuid.uuid4()}"
            self.result_documents[doc_id] = gzip.compress(
                processing_report(feed["feedId"], ok + failed, ok, failed, report))
            feed["resultFeedDocumentId"] = doc_id
            feed["status"] = forced or "DONE"
            return str(feed["status"])

    def _process(self, feed: dict[str, Any]
                 ) -> tuple[list[tuple[str, str, str, str, dict[str, str]]], int, int]:
        """Apply each message of the feed (under the lock): results, successful, with error."""
        root = ElementTree.fromstring(feed["xml"])
        results: list[tuple[str, str, str, str, dict[str, str]]] = []
        ok = failed = 0
        for message in root.findall("Message"):
            mid = message.findtext("MessageID") or "0"
            adjustment = message.find("OrderAdjustment")
            ack = message.find("OrderAcknowledgement")
            if adjustment is not None:
                errors = self._adjust(adjustment)
            elif ack is not None:
                errors = self._acknowledge(ack)
            else:
                errors = [("Error", "90000", "Unsupported message", {})]
            results += [(mid, *e) for e in errors]
            if any(e[0] == "Error" for e in errors):
                failed += 1
            else:
                ok += 1
        return results, ok, failed

    def _adjust(self, adj: Any) -> list[tuple[str, str, str, dict[str, str]]]:
        """An OrderAdjustment: all its items or none (any error refuses the message)."""
        oid = adj.findtext("AmazonOrderID") or ""
        info = {"AmazonOrderID": oid}
        if oid not in self.amazon_orders:
            return [("Error", "90001", f"Order {oid} was not found for this seller", info)]
        items = {i["OrderItemId"]: i for i in self.amazon_items.get(oid, [])}
        errors: list[tuple[str, str, str, dict[str, str]]] = []
        todo: list[tuple[str, str, Decimal]] = []
        for item in adj.findall("AdjustedItem"):
            code = item.findtext("AmazonOrderItemCode") or ""
            adj_id = item.findtext("MerchantAdjustmentItemID") or f"{oid}/{code}/{uuid.uuid4()}"
            where = {**info, "AmazonOrderItemCode": code, "MerchantAdjustmentItemID": adj_id}
            if adj_id in self.adjustments:
                errors.append(("Error", "90004", f"Duplicate MerchantAdjustmentItemID {adj_id}:"
                               " this adjustment was already processed", where))
                continue
            if code not in items:
                errors.append(("Error", "90002", f"Order item {code} is not in order {oid}",
                               where))
                continue
            try:
                amount = sum((Decimal(c.findtext("Amount") or "0")
                              for c in item.findall("ItemPriceAdjustments/Component")),
                             Decimal("0"))
            except InvalidOperation:
                errors.append(("Error", "90005", "An Amount is not a number", where))
                continue
            charged = sum((Decimal(str((items[code].get(k) or {}).get("Amount") or "0"))
                           for k in ("ItemPrice", "ItemTax", "ShippingPrice", "ShippingTax")),
                          Decimal("0"))
            left = charged - self.refunded[(oid, code)]
            if amount <= 0 or amount > left:
                errors.append(("Error", "90003", f"The adjustment of {amount} for item {code}"
                               f" is above what can be refunded ({left} of {charged} charged)",
                               where))
                continue
            todo.append((adj_id, code, amount))
        if errors:
            return errors
        for adj_id, code, amount in todo:
            self.refunded[(oid, code)] += amount
            self.adjustments[adj_id] = {"order": oid, "item": code, "amount": amount}
        return []

    def _acknowledge(self, ack: Any) -> list[tuple[str, str, str, dict[str, str]]]:
        oid = ack.findtext("AmazonOrderID") or ""
        info = {"AmazonOrderID": oid}
        if oid not in self.amazon_orders:
            return [("Error", "90001", f"Order {oid} was not found for this seller", info)]
        if (ack.findtext("StatusCode") or "") != "Failure":
            return []
        if oid in self.shipped:
            return [("Error", "90006", f"Order {oid} has shipped: it cannot be cancelled", info)]
        if oid in self.cancelled:
            return [("Warning", "90007", f"Order {oid} is already cancelled", info)]
        self.cancelled.add(oid)
        return []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, port: int = 0) -> Emulator:
        if not port:
            with socket.socket() as s:
                s.bind(("127.0.0.1", 0))
                port = s.getsockname()[1]
        self.port = port
        self.server = uvicorn.Server(uvicorn.Config(self.app, host="127.0.0.1", port=port,
                                                    log_level="warning", access_log=False))
        self.thread = threading.Thread(target=self.server.run, name="channel-emulator",
                                       daemon=True)
        self.thread.start()
        deadline = time.time() + 20
        while not self.server.started:
            if time.time() > deadline:
                raise RuntimeError(f"channel emulator did not start on port {port}")
            time.sleep(0.05)
        return self

    def stop(self) -> None:
        if self.server:
            self.server.should_exit = True
        if self.thread:
            self.thread.join(10)

    # --- the HTTP side ---
    def _fault(self, op: str, query: dict[str, str] | None = None) -> Response | None:
        with self.lock:
            pending = self.faults.get(op) or []
            hit = next((f for f in pending
                        if all((query or {}).get(k) == v for k, v in f[2].items())), None)
            if hit is None:
                return None
            pending.remove(hit)
            status, after, _ = hit
        headers = {"Retry-After": after} if after is not None else {}
        return JSONResponse({"errors": f"emulated {status}"}, status_code=status,
                            headers=headers)

    def _build(self) -> FastAPI:
        app = FastAPI()
        emu = self

        @app.middleware("http")
        async def record(request: Request, call_next: Any) -> Response:
            raw = await request.body()
            try:
                body: Any = json.loads(raw) if raw else None
            except ValueError:
                body = raw.decode(errors="replace")
            resp: Response = await call_next(request)
            emu.calls.append(Call(request.method, request.url.path, dict(request.query_params),
                                  body, resp.status_code))
            return resp

        # Shopify
        def shopify_auth(request: Request) -> Response | None:
            if request.headers.get("x-shopify-access-token") != SHOPIFY_TOKEN:
                return JSONResponse({"errors": "[API] Invalid API key or access token"}, 401)
            return None

        @app.get("/admin/api/{version}/shop.json")
        async def shop(version: str, request: Request) -> Response:
            return shopify_auth(request) or JSONResponse({"shop": {"name": "Emulated shop"}})

        @app.get("/admin/api/{version}/orders/{oid}/fulfillment_orders.json")
        async def fulfillment_orders(version: str, oid: str, request: Request) -> Response:
            denied = shopify_auth(request) or emu._fault("fulfillment_orders")
            if denied:
                return denied
            with emu.lock:
                left = emu.shopify_left.get(oid)
                if left is None:  # an order the shop was not told of: no line items listed
                    status = "closed" if emu.fulfilled.get(oid) else "open"
                    items: list[dict[str, Any]] = []
                else:
                    status = "open" if any(left.values()) else "closed"
                    items = [{"id": li * 10 + 7, "line_item_id": li, "quantity": qty,
                              "fulfillable_quantity": left[li]}
                             for li, qty in emu.shopify_lines[oid].items()]
            return JSONResponse({"fulfillment_orders": [
                {"id": int(oid) * 10 + 1, "order_id": int(oid), "status": status,
                 "line_items": items}]})

        @app.get("/admin/api/{version}/orders/{oid}/fulfillments.json")
        async def fulfillments_of(version: str, oid: str, request: Request) -> Response:
            denied = shopify_auth(request)
            if denied:
                return denied
            with emu.lock:
                done = list(emu.fulfilled.get(oid, []))
            return JSONResponse({"fulfillments": [
                {"id": n + 1, "order_id": int(oid), "status": "success",
                 "tracking_company": f["tracking_info"].get("company"),
                 "tracking_number": f["tracking_info"].get("number"),
                 "tracking_numbers": [f["tracking_info"].get("number")]}
                for n, f in enumerate(done)]})

        @app.post("/admin/api/{version}/fulfillments.json")
        async def fulfillment_create(version: str, request: Request) -> Response:
            denied = shopify_auth(request) or emu._fault("fulfillment_create")
            if denied:
                return denied
            body = await request.json()
            f = body["fulfillment"]
            if not isinstance(f.get("tracking_info"), dict):
                return JSONResponse({"errors": {"tracking_info": "must be an object"}}, 422)
            with emu.lock:
                for group in f["line_items_by_fulfillment_order"]:
                    oid = str(group["fulfillment_order_id"] // 10)
                    left = emu.shopify_left.get(oid)
                    if left is None:
                        if emu.fulfilled.get(oid):
                            return JSONResponse({"errors": "fulfillment order is closed"}, 422)
                        continue
                    asked = group.get("fulfillment_order_line_items")
                    wanted = ({(i["id"] - 7) // 10: int(i["quantity"]) for i in asked}
                              if asked else dict(left))
                    for li, qty in wanted.items():
                        if li not in left or qty > left[li] or qty <= 0:
                            return JSONResponse({"errors": f"line item {li}: {qty} is more"
                                                 " than its fulfillable quantity"}, 422)
                    for li, qty in wanted.items():
                        left[li] -= qty
                emu.fulfilled[oid].append(f)
            return JSONResponse({"fulfillment": {"id": len(emu.calls), "status": "success",
                                                 "tracking_number": f["tracking_info"]["number"]}},
                                201)

        @app.post("/admin/api/{version}/orders/{oid}/cancel.json")
        async def shopify_cancel(version: str, oid: str, request: Request) -> Response:
            return shopify_auth(request) or JSONResponse({"order": {"id": int(oid)}})

        @app.post("/admin/api/{version}/orders/{oid}/refunds.json")
        async def shopify_refund(version: str, oid: str, request: Request) -> Response:
            return shopify_auth(request) or JSONResponse({"refund": {"order_id": int(oid)}}, 201)

        # WooCommerce
        def woo_auth(request: Request) -> Response | None:
            expected = "Basic " + base64.b64encode(f"{WOO_KEY}:{WOO_SECRET}".encode()).decode()
            if request.headers.get("authorization") != expected:
                return JSONResponse({"code": "woocommerce_rest_cannot_view"}, 401)
            return None

        @app.get("/wp-json/wc/v3/system_status")
        async def woo_status(request: Request) -> Response:
            return woo_auth(request) or JSONResponse({"environment": {"version": "9.0"}})

        @app.put("/wp-json/wc/v3/orders/{oid}")
        async def woo_update(oid: str, request: Request) -> Response:
            denied = woo_auth(request) or emu._fault("woo_order_update")
            return denied or JSONResponse({"id": int(oid), **(await request.json())})

        @app.post("/wp-json/wc/v3/orders/{oid}/notes")
        async def woo_note(oid: str, request: Request) -> Response:
            return woo_auth(request) or JSONResponse({"id": 1, **(await request.json())}, 201)

        @app.post("/wp-json/wc/v3/orders/{oid}/refunds")
        async def woo_refund(oid: str, request: Request) -> Response:
            return woo_auth(request) or JSONResponse({"id": 1, **(await request.json())}, 201)

        # Amazon: Login with Amazon, then SP-API Orders v0
        @app.post("/auth/o2/token")
        async def lwa_token(request: Request) -> Response:
            form = dict(parse_qsl((await request.body()).decode()))
            if (form.get("refresh_token") != LWA["refresh_token"]
                    or form.get("client_id") != LWA["client_id"]):
                return JSONResponse({"error": "invalid_grant"}, 400)
            token = f"Atza|{uuid.uuid4().hex}"
            emu.tokens[token] = time.time() + emu.token_ttl
            return JSONResponse({"access_token": token, "token_type": "bearer",
                                 "expires_in": emu.token_ttl})

        def amazon_auth(request: Request) -> Response | None:
            token = request.headers.get("x-amz-access-token", "")
            if emu.tokens.get(token, 0) < time.time():
                return JSONResponse({"errors": [{"code": "Unauthorized",
                                                 "message": "Access token is expired"}]}, 403)
            return None

        @app.get("/orders/v0/orders")
        async def get_orders(request: Request) -> Response:
            denied = amazon_auth(request) or emu._fault("getOrders",
                                                         dict(request.query_params))
            if denied:
                return denied
            q = request.query_params
            if q.get("NextToken"):
                after, offset, size = json.loads(base64.b64decode(q["NextToken"]))
            else:
                after, offset = q["LastUpdatedAfter"], 0
                size = int(q.get("MaxResultsPerPage") or 100)
            with emu.lock:
                markets = set(q.get("MarketplaceIds", "").split(","))
                found = sorted((o for o in emu.amazon_orders.values()
                                if o["LastUpdateDate"] > after
                                and o["MarketplaceId"] in markets),
                               key=lambda o: (o["LastUpdateDate"], o["AmazonOrderId"]))
            page = found[offset:offset + size]
            payload: dict[str, Any] = {"Orders": page}
            if offset + size < len(found):
                payload["NextToken"] = base64.b64encode(
                    json.dumps([after, offset + size, size]).encode()).decode()
            return JSONResponse({"payload": payload})

        @app.get("/orders/v0/orders/{oid}/orderItems")
        async def get_items(oid: str, request: Request) -> Response:
            denied = amazon_auth(request) or emu._fault("getOrderItems")
            if denied:
                return denied
            return JSONResponse({"payload": {"AmazonOrderId": oid,
                                             "OrderItems": emu.amazon_items.get(oid, [])}})

        @app.post("/orders/v0/orders/{oid}/shipmentConfirmation")
        async def confirm_shipment(oid: str, request: Request) -> Response:
            denied = amazon_auth(request) or emu._fault("confirmShipment")
            if denied:
                return denied
            with emu.lock:
                emu.shipped.add(oid)
            return Response(status_code=204)

        # Feeds API 2021-06-30: a document (its pre-signed upload URL), the upload, the feed.
        @app.post("/feeds/2021-06-30/documents")
        async def create_feed_document(request: Request) -> Response:
            denied = amazon_auth(request) or emu._fault("createFeedDocument")
            if denied:
                return denied
            spec = await request.json()
            if not str(spec.get("contentType", "")).startswith("text/xml"):
                return JSONResponse({"errors": [{"code": "InvalidInput",
                                                 "message": "contentType"}]}, 400)
            doc_id = f"amzn1.tortuga.4.na.{uuid.uuid4()}"
            with emu.lock:
                emu.feed_documents[doc_id] = None
            return JSONResponse({"feedDocumentId": doc_id,
                                 "url": f"{emu.url}/_s3/feed-documents/{doc_id}"}, 201)

        @app.put("/_s3/feed-documents/{doc_id}")
        async def upload_feed_document(doc_id: str, request: Request) -> Response:
            denied = emu._fault("uploadFeedDocument")
            if denied:
                return denied
            if request.headers.get("x-amz-access-token"):  # S3 would refuse a foreign header
                return JSONResponse({"Code": "InvalidArgument"}, 400)
            with emu.lock:
                if doc_id not in emu.feed_documents:
                    return JSONResponse({"Code": "NoSuchUpload"}, 404)
                emu.feed_documents[doc_id] = await request.body()
            return Response(status_code=200)

        @app.post("/feeds/2021-06-30/feeds")
        async def create_feed(request: Request) -> Response:
            denied = amazon_auth(request) or emu._fault("createFeed")
            if denied:
                return denied
            spec = await request.json()
            content = emu.feed_documents.get(spec.get("inputFeedDocumentId", ""))
            if content is None:
                return JSONResponse({"errors": [{"code": "InvalidInput", "message":
                                                 "inputFeedDocumentId: nothing uploaded"}]}, 400)
            root = ElementTree.fromstring(content)
            feed_id = str(50000 + len(emu.feeds))
            with emu.lock:
                feed_id = str(50000 + len(emu.feeds))
                emu.feeds.append({"feedId": feed_id, "feedType": spec["feedType"],
                                  "marketplaceIds": spec["marketplaceIds"], "xml": content,
                                  "message_type": root.findtext("MessageType"),
                                  "message": root.find("Message"), "created": time.time(),
                                  "status": "IN_QUEUE"})
            hook = emu.on_feed_created
            if hook is not None:
                hook(feed_id)
            return JSONResponse({"feedId": feed_id}, 202)

        @app.get("/feeds/2021-06-30/feeds/{feed_id}")
        async def get_feed(feed_id: str, request: Request) -> Response:
            denied = amazon_auth(request) or emu._fault("getFeed")
            if denied:
                return denied
            feed = next((f for f in emu.feeds if f["feedId"] == feed_id), None)
            if feed is None:
                return JSONResponse({"errors": [{"code": "NotFound",
                                                 "message": f"feed {feed_id}"}]}, 404)
            emu._advance()
            status = emu._feed_status(feed)
            body = {"feedId": feed_id, "feedType": feed["feedType"],
                    "marketplaceIds": feed["marketplaceIds"],
                    "createdTime": datetime.fromtimestamp(feed["created"], UTC).isoformat(),
                    "processingStatus": status}
            if feed.get("resultFeedDocumentId"):
                body["resultFeedDocumentId"] = feed["resultFeedDocumentId"]
            return JSONResponse(body)

        @app.get("/feeds/2021-06-30/documents/{doc_id}")
        async def get_feed_document(doc_id: str, request: Request) -> Response:
            denied = amazon_auth(request) or emu._fault("getFeedDocument")
            if denied:
                return denied
            if doc_id not in emu.result_documents:
                return JSONResponse({"errors": [{"code": "NotFound",
                                                 "message": f"document {doc_id}"}]}, 404)
            return JSONResponse({"feedDocumentId": doc_id, "compressionAlgorithm": "GZIP",
                                 "url": f"{emu.url}/_s3/result-documents/{doc_id}"})

        @app.get("/_s3/result-documents/{doc_id}")
        async def download_result_document(doc_id: str, request: Request) -> Response:
            denied = emu._fault("downloadFeedDocument")
            if denied:
                return denied
            if request.headers.get("x-amz-access-token"):  # S3 would refuse a foreign header
                return JSONResponse({"Code": "InvalidArgument"}, 400)
            content = emu.result_documents.get(doc_id)
            if content is None:
                return JSONResponse({"Code": "NoSuchKey"}, 404)
            return Response(content, media_type="application/octet-stream")

        @app.get("/_emulator/calls")
        async def calls() -> list[dict[str, Any]]:
            return [c.__dict__ for c in emu.calls]

        return app


def processing_report(feed_id: str, processed: int, successful: int, with_error: int,
                      results: list[tuple[str, str, str, str, dict[str, str]]]) -> bytes:
    """A feed's processing report as Amazon writes it (`AmazonEnvelope` of type
    ProcessingReport): the summary and a `Result` per error or warning."""
    env = ElementTree.Element("AmazonEnvelope")
    header = ElementTree.SubElement(env, "Header")
    ElementTree.SubElement(header, "DocumentVersion").text = "1.02"
    ElementTree.SubElement(header, "MerchantIdentifier").text = "EMULATED"
    ElementTree.SubElement(env, "MessageType").text = "ProcessingReport"
    message = ElementTree.SubElement(env, "Message")
    ElementTree.SubElement(message, "MessageID").text = "1"
    report = ElementTree.SubElement(message, "ProcessingReport")
    ElementTree.SubElement(report, "DocumentTransactionID").text = feed_id
    ElementTree.SubElement(report, "StatusCode").text = "Complete"
    summary = ElementTree.SubElement(report, "ProcessingSummary")
    warned = len({r[0] for r in results if r[1] == "Warning"})
    for tag, value in (("MessagesProcessed", processed), ("MessagesSuccessful", successful),
                       ("MessagesWithError", with_error), ("MessagesWithWarning", warned)):
        ElementTree.SubElement(summary, tag).text = str(value)
    for mid, code, message_code, description, info in results:
        result = ElementTree.SubElement(report, "Result")
        ElementTree.SubElement(result, "MessageID").text = mid
        ElementTree.SubElement(result, "ResultCode").text = code
        ElementTree.SubElement(result, "ResultMessageCode").text = message_code
        ElementTree.SubElement(result, "ResultDescription").text = description
        if info:
            extra = ElementTree.SubElement(result, "AdditionalInfo")
            for key, text in info.items():
                ElementTree.SubElement(extra, key).text = text
    return b'<?xml version="1.0" encoding="UTF-8"?>\n' + ElementTree.tostring(env, "utf-8")


# --- payloads as the platforms send them ---------------------------------------------------------
def now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def shopify_signature(secret: str, body: bytes) -> str:
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


def woo_signature(secret: str, body: bytes) -> str:
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


def shopkeeper_signature(secret: str, body: bytes, t: int | None = None) -> str:
    t = int(time.time()) if t is None else t
    return f"t={t},v1=" + hmac.new(secret.encode(), f"{t}.".encode() + body,
                                   hashlib.sha256).hexdigest()


def shopify_order(order_id: int, lines: list[tuple[str, int, str]], *, country: str = "US",
                  province: str | None = "TX", currency: str = "USD", shipping: str = "4.99",
                  tax_rate: str = "0.08", financial_status: str = "paid") -> dict[str, Any]:
    """An `orders/create` body (Admin REST shape): lines of (sku, quantity, price)."""
    from decimal import Decimal
    items, tax_total, subtotal = [], Decimal("0"), Decimal("0")
    for n, (sku, qty, price) in enumerate(lines):
        tax = (Decimal(price) * qty * Decimal(tax_rate)).quantize(Decimal("0.01"))
        tax_total += tax
        subtotal += Decimal(price) * qty
        items.append({"id": order_id * 100 + n, "variant_id": 40000000 + n,
                      "product_id": 7000 + n, "sku": sku, "title": sku, "quantity": qty,
                      "price": price, "tax_lines": [{"title": "Tax", "price": f"{tax:.2f}",
                                                     "rate": float(tax_rate)}]})
    grand = subtotal + Decimal(shipping) + tax_total
    return {"id": order_id, "name": f"#{order_id % 100000}", "email": "ana@example.com",
            "created_at": now_iso(), "updated_at": now_iso(), "currency": currency,
            "financial_status": financial_status, "taxes_included": False,
            "total_price": f"{grand:.2f}", "subtotal_price": f"{subtotal:.2f}",
            "total_tax": f"{tax_total:.2f}", "total_discounts": "0.00",
            "payment_gateway_names": ["shopify_payments"], "discount_codes": [],
            "customer": {"id": 9000 + order_id % 1000, "first_name": "Ana", "last_name": "Lima",
                         "email": "ana@example.com"},
            "shipping_address": {"first_name": "Ana", "last_name": "Lima", "name": "Ana Lima",
                                 "address1": "100 Main St", "address2": None, "city": "Austin",
                                 "province": "Texas", "province_code": province, "zip": "73301",
                                 "country": "United States", "country_code": country},
            "line_items": items,
            "shipping_lines": [{"code": "Standard", "title": "Standard Shipping",
                                "price": shipping}],
            "note": None}


def woo_order(order_id: int, lines: list[tuple[str, int, str]], *, country: str = "US",
              state: str = "TX", shipping: str = "5.00", tax_rate: str = "0.10",
              status: str = "processing") -> dict[str, Any]:
    """An `order.created` body (REST v3 shape)."""
    from decimal import Decimal
    items, tax_total, subtotal = [], Decimal("0"), Decimal("0")
    for n, (sku, qty, price) in enumerate(lines):
        line_sub = Decimal(price) * qty
        tax = (line_sub * Decimal(tax_rate)).quantize(Decimal("0.01"))
        tax_total += tax
        subtotal += line_sub
        items.append({"id": order_id * 10 + n, "product_id": 500 + n, "variation_id": 0,
                      "sku": sku, "name": sku, "quantity": qty, "subtotal": f"{line_sub:.2f}",
                      "subtotal_tax": f"{tax:.2f}", "total": f"{line_sub:.2f}",
                      "total_tax": f"{tax:.2f}", "price": float(price)})
    grand = subtotal + Decimal(shipping) + tax_total
    return {"id": order_id, "number": str(order_id), "status": status, "currency": "USD",
            "date_created_gmt": now_iso()[:19], "date_modified_gmt": now_iso()[:19],
            "date_paid_gmt": now_iso()[:19] if status in ("processing", "completed") else None,
            "discount_total": "0.00", "shipping_total": shipping,
            "total_tax": f"{tax_total:.2f}", "total": f"{grand:.2f}", "prices_include_tax": False,
            "customer_id": 0, "customer_note": "",
            "billing": {"first_name": "Zoë", "last_name": "Müller", "email": "zoe@example.com",
                        "phone": "+4930123456", "country": country},
            "shipping": {"first_name": "Zoë", "last_name": "Müller", "company": "",
                         "address_1": "100 Main St", "address_2": "", "city": "Austin",
                         "state": state, "postcode": "73301", "country": country},
            "payment_method": "stripe", "payment_method_title": "Credit card",
            "line_items": items,
            "shipping_lines": [{"method_id": "flat_rate", "method_title": "Flat rate",
                                "total": shipping}],
            "fee_lines": [], "coupon_lines": []}


def amazon_order(order_id: str, lines: list[tuple[str, int, str]], *, country: str = "US",
                 status: str = "Unshipped", updated: str | None = None,
                 tax_rate: str = "0.0825", marketplace: str = "ATVPDKIKX0DER"
                 ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """A getOrders entry and its getOrderItems list (Orders API v0 shape)."""
    from decimal import Decimal
    items, total = [], Decimal("0")
    for n, (sku, qty, price) in enumerate(lines):
        item_price = Decimal(price) * qty
        tax = (item_price * Decimal(tax_rate)).quantize(Decimal("0.01"))
        total += item_price + tax + Decimal("3.99")
        items.append({"ASIN": f"B0{n:08d}", "SellerSKU": sku, "OrderItemId": f"{order_id}-{n}",
                      "QuantityOrdered": qty, "QuantityShipped": 0,
                      "ItemPrice": {"CurrencyCode": "USD", "Amount": f"{item_price:.2f}"},
                      "ItemTax": {"CurrencyCode": "USD", "Amount": f"{tax:.2f}"},
                      "ShippingPrice": {"CurrencyCode": "USD", "Amount": "3.99"},
                      "ShippingTax": {"CurrencyCode": "USD", "Amount": "0.00"},
                      "PromotionDiscount": {"CurrencyCode": "USD", "Amount": "0.00"}})
    stamp = updated or now_iso()
    order = {"AmazonOrderId": order_id, "PurchaseDate": stamp, "LastUpdateDate": stamp,
             "OrderStatus": status, "FulfillmentChannel": "MFN",
             "OrderTotal": {"CurrencyCode": "USD", "Amount": f"{total:.2f}"},
             "ShipmentServiceLevelCategory": "Standard", "PaymentMethod": "Other",
             "MarketplaceId": marketplace,
             "BuyerInfo": {"BuyerEmail": f"{order_id}@marketplace.amazon.com"},
             "ShippingAddress": {"Name": "José Álvarez", "AddressLine1": "100 Main St",
                                 "City": "Austin", "StateOrRegion": "TX",
                                 "PostalCode": "73301", "CountryCode": country}}
    return order, items
