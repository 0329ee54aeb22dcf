"""What the channels tests do as a platform would: configure a store's channel, send signed
webhooks, and watch the emulator for what was written back."""

from __future__ import annotations

import json
import random
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from shared.settings import get_settings
from tools import channel_emulator as emu_mod
from tools.channel_emulator import Emulator

from .helpers import admin_client, url

SECRET = "whsec-test-0123456789"


CONFIGURED: list[str] = []
# The module's emulator: a Shopify order a test delivers is first created in that shop.
SHOPS: list[Emulator] = []


@pytest.fixture(scope="module")
def emulator() -> Iterator[Emulator]:
    """The platforms' APIs as a real HTTP server for the module; at its end the stores the
    module configured are deleted (their api_base_url dies with the emulator)."""
    emu = Emulator().start()
    SHOPS.append(emu)
    yield emu
    SHOPS.remove(emu)
    token = get_settings().shopkeeper_admin_token
    with httpx.Client(timeout=10, headers={"Authorization": f"Bearer {token}"}) as c:
        for store in CONFIGURED:
            c.delete(url("channels", f"/channels/{store}"))
    CONFIGURED.clear()
    emu.stop()


def order_number() -> int:
    return random.randint(10**11, 10**12)


async def configure(store: str, platform: str, emu: Emulator | None, **extra: Any
                    ) -> dict[str, Any]:
    creds: dict[str, Any] = {
        "shopify": {"access_token": emu_mod.SHOPIFY_TOKEN},
        "woocommerce": {"consumer_key": emu_mod.WOO_KEY, "consumer_secret": emu_mod.WOO_SECRET},
        "amazon": dict(emu_mod.LWA),
        "generic": {},
    }[platform]
    body = {"platform": platform, "webhook_secret": SECRET,
            "api_base_url": emu.url if emu else None, "credentials": creds,
            "default_currency": "USD", **extra}
    async with admin_client("channels") as c:
        r = await c.put(f"/channels/{store}", json=body)
    assert r.status_code in (200, 201), r.text
    CONFIGURED.append(store)
    return dict(r.json())


async def shopify_webhook(store: str, order: dict[str, Any], *, topic: str = "orders/create",
                          delivery: str | None = None, secret: str = SECRET) -> httpx.Response:
    for shop in SHOPS:
        shop.add_shopify_order(order)
    body = json.dumps(order).encode()
    headers = {"X-Shopify-Topic": topic, "X-Shopify-Webhook-Id": delivery or str(uuid.uuid4()),
               "X-Shopify-Hmac-Sha256": emu_mod.shopify_signature(secret, body),
               "X-Shopify-Shop-Domain": f"{store}.myshopify.com",
               "Content-Type": "application/json"}
    async with httpx.AsyncClient(timeout=10) as c:
        return await c.post(url("channels", f"/webhooks/shopify/{store}"), content=body,
                            headers=headers)


async def woo_webhook(store: str, order: dict[str, Any], *, topic: str = "order.created",
                      delivery: str | None = None, secret: str = SECRET) -> httpx.Response:
    body = json.dumps(order).encode()
    headers = {"X-WC-Webhook-Topic": topic,
               "X-WC-Webhook-Delivery-ID": delivery or str(random.randint(1, 10**9)),
               "X-WC-Webhook-Signature": emu_mod.woo_signature(secret, body),
               "X-WC-Webhook-Source": "https://shop.example/", "Content-Type": "application/json"}
    async with httpx.AsyncClient(timeout=10) as c:
        return await c.post(url("channels", f"/webhooks/woocommerce/{store}"), content=body,
                            headers=headers)


async def generic_post(store: str, body: bytes, signature: str) -> httpx.Response:
    async with httpx.AsyncClient(timeout=10) as c:
        return await c.post(url("channels", f"/orders/{store}"), content=body,
                            headers={"X-Shopkeeper-Signature": signature,
                                     "Content-Type": "application/json"})


async def channel(store: str) -> dict[str, Any]:
    async with admin_client("channels") as c:
        r = await c.get(f"/channels/{store}")
    assert r.status_code == 200, r.text
    return dict(r.json())
