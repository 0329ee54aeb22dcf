"""The channels part of `make run`: one store per platform, each driven through its real entry
point against the platform emulator (tools/channel_emulator.py, started here as a real HTTP
server): a signed Shopify webhook, a signed WooCommerce webhook, orders on the emulated Amazon
marketplace that the poller collects, and the generic signed webhook. It waits until the orders
ship and shows what was written back to each platform.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
import urllib.request
import uuid
from typing import Any

import httpx
from rich.console import Console
from rich.table import Table

from shared.settings import get_settings, service_port

from . import channel_emulator as emu_mod
from . import storefront as sf

SECRET = "demo-webhook-secret-0001"
STORES = {"shopify": "demo-shopify", "woocommerce": "demo-woo", "amazon": "demo-amazon",
          "generic": "demo-custom"}
SKUS = [("CH-MUG-01", "12.50"), ("CH-TEE-02", "20.00"), ("CH-CAP-03", "15.00")]


def _url(path: str) -> str:
    return f"http://127.0.0.1:{service_port('channels')}{path}"


def _auth() -> dict[str, str]:
    return {"Authorization": f"Bearer {get_settings().shopkeeper_admin_token}"}


def channels_ready() -> bool:
    try:
        with urllib.request.urlopen(_url("/readyz"), timeout=2) as r:
            return r.status == 200
    except OSError:
        return False


class ChannelDemo:
    def __init__(self, orders_per_platform: int = 2, console: Console | None = None) -> None:
        self.n = orders_per_platform
        self.console = console or Console()
        self.emulator = emu_mod.Emulator()
        self.orders: list[tuple[str, str, str]] = []  # platform, store, external id

    async def run(self, timeout: float = 120.0) -> int:
        if not channels_ready():
            self.console.print("[yellow]channels is not up: skipping the platforms demo[/yellow]")
            return 0
        self.emulator.start()
        try:
            async with sf.Storefront(get_settings().kafka_bootstrap_servers) as shop, \
                    httpx.AsyncClient(timeout=10) as client:
                await self._catalogue(shop)
                await self._configure(client)
                await self._send(client)
                await self._wait(shop, timeout)
                self._report(shop)
                await self._pause_marketplace(client)
        finally:
            self.emulator.stop()
        await self._settle()
        return 0

    async def _settle(self, timeout: float = 60.0) -> None:
        """Hand over a stack whose services answer /readyz (the simulation checks it once; on a
        busy machine a service may take a moment to catch up with these orders)."""
        from .simulator import ready
        deadline = time.monotonic() + timeout
        services = ("intake", "inventory", "logistics", "analytics")
        while time.monotonic() < deadline:
            if all(await asyncio.gather(*(asyncio.to_thread(ready, s) for s in services))):
                return
            await asyncio.sleep(1)

    async def _catalogue(self, shop: sf.Storefront) -> None:
        for sku, price in SKUS:
            await shop.publish("catalog.products", sku, sf.product(sku, price))
            await shop.publish("stock.adjustments", sku, sf.stock(sku, "WH-LA", 500))
        deadline = time.monotonic() + 60
        async with httpx.AsyncClient(timeout=5) as c:
            while time.monotonic() < deadline:
                last = SKUS[-1][0]
                a = await c.get(f"http://127.0.0.1:{service_port('intake')}/catalog/{last}")
                b = await c.get(f"http://127.0.0.1:{service_port('inventory')}/stock/{last}")
                if a.status_code == 200 and b.status_code == 200 and b.json()["warehouses"]:
                    return
                await asyncio.sleep(0.3)

    def _body(self, platform: str) -> dict[str, Any]:
        creds = {"shopify": {"access_token": emu_mod.SHOPIFY_TOKEN},
                 "woocommerce": {"consumer_key": emu_mod.WOO_KEY,
                                 "consumer_secret": emu_mod.WOO_SECRET},
                 "amazon": dict(emu_mod.LWA), "generic": {}}[platform]
        options: dict[str, Any] = {}
        if platform == "amazon":
            options = {"poll_seconds": 2, "marketplace_ids": ["ATVPDKIKX0DER"],
                       "initial_lookback_hours": 1, "rate_limits": {"getOrders": [2, 20]}}
        return {"platform": platform, "webhook_secret": SECRET,
                "api_base_url": None if platform == "generic" else self.emulator.url,
                "credentials": creds, "default_currency": "USD", "options": options}

    async def _configure(self, client: httpx.AsyncClient) -> None:
        for platform, store in STORES.items():
            r = await client.put(_url(f"/channels/{store}"), json=self._body(platform),
                                 headers=_auth())
            r.raise_for_status()

    async def _send(self, client: httpx.AsyncClient) -> None:
        rng = random.Random()
        for i in range(self.n):
            sku, price = SKUS[i % len(SKUS)]
            lines = [(sku, 1 + i % 2, price)]
            oid = rng.randint(10**11, 10**12)
            order = emu_mod.shopify_order(oid, lines)
            self.emulator.add_shopify_order(order)  # created in the shop, then its webhook
            body = json.dumps(order).encode()
            r = await client.post(_url(f"/webhooks/shopify/{STORES['shopify']}"), content=body,
                                  headers={"X-Shopify-Topic": "orders/create",
                                           "X-Shopify-Webhook-Id": str(uuid.uuid4()),
                                           "X-Shopify-Hmac-Sha256":
                                               emu_mod.shopify_signature(SECRET, body)})
            r.raise_for_status()
            self.orders.append(("shopify", STORES["shopify"], str(oid)))
            wid = rng.randint(10**6, 10**7)
            body = json.dumps(emu_mod.woo_order(wid, lines)).encode()
            r = await client.post(_url(f"/webhooks/woocommerce/{STORES['woocommerce']}"),
                                  content=body,
                                  headers={"X-WC-Webhook-Topic": "order.created",
                                           "X-WC-Webhook-Delivery-ID": str(uuid.uuid4()),
                                           "X-WC-Webhook-Signature":
                                               emu_mod.woo_signature(SECRET, body)})
            r.raise_for_status()
            self.orders.append(("woocommerce", STORES["woocommerce"], str(wid)))
            aid = f"{rng.randint(100, 999)}-{rng.randint(10**6, 10**7 - 1)}-" \
                  f"{rng.randint(10**6, 10**7 - 1)}"
            self.emulator.add_amazon_order(*emu_mod.amazon_order(aid, lines))
            self.orders.append(("amazon", STORES["amazon"], aid))
            gid = f"web-{uuid.uuid4().hex[:10]}"
            body = json.dumps(sf.order(STORES["generic"], gid, lines)).encode()
            r = await client.post(_url(f"/orders/{STORES['generic']}"), content=body,
                                  headers={"X-Shopkeeper-Signature":
                                           emu_mod.shopkeeper_signature(SECRET, body)})
            r.raise_for_status()
            self.orders.append(("generic", STORES["generic"], gid))

    def _written_back(self, platform: str, ext: str) -> str:
        paths = {"shopify": "/fulfillments.json", "woocommerce": f"/orders/{ext}/notes",
                 "amazon": f"/orders/{ext}/shipmentConfirmation"}
        if platform == "generic":
            return "(reads orders.status)"
        for call in self.emulator.calls_to(paths[platform], "POST"):
            body = call.body or {}
            if platform == "shopify":
                fo = body["fulfillment"]["line_items_by_fulfillment_order"][0]
                if str(fo["fulfillment_order_id"] // 10) == ext:
                    return f"fulfillment {body['fulfillment']['tracking_info']['number']}"
            elif platform == "woocommerce":
                words = str(body.get("note", "")).split()
                return f"completed + note {words[2] if len(words) > 2 else ''}"
            else:
                return f"shipment {body['packageDetail']['trackingNumber']}"
        return ""

    async def _wait(self, shop: sf.Storefront, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if all(shop.seen(f"{s}:{e}")[-1:] in (["shipped"], ["delivered"], ["rejected"])
                   and (p == "generic" or "rejected" in shop.seen(f"{s}:{e}")
                        or self._written_back(p, e))
                   for p, s, e in self.orders):
                return
            await asyncio.sleep(0.5)

    def _report(self, shop: sf.Storefront) -> None:
        table = Table(title="orders through the platforms' entry points")
        for col in ("platform", "entry point", "order", "status", "written back"):
            table.add_column(col)
        entry = {"shopify": "signed webhook", "woocommerce": "signed webhook",
                 "amazon": "SP-API poll", "generic": "POST /orders"}
        for platform, store, ext in self.orders:
            seen = shop.seen(f"{store}:{ext}")
            table.add_row(platform, entry[platform], f"{store}:{ext}",
                          seen[-1] if seen else "(waiting)", self._written_back(platform, ext))
        self.console.print(table)
        self.console.print("Channels: `shopkeeper channels list` · docs/channels.md")

    async def _pause_marketplace(self, client: httpx.AsyncClient) -> None:
        """The emulated marketplace stops with the demo: stop polling it."""
        body = self._body("amazon")
        body["options"]["paused"] = True
        await client.put(_url(f"/channels/{STORES['amazon']}"), json=body, headers=_auth())
