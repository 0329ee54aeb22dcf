"""WooCommerce and the generic signed webhook through their real entry points."""

from __future__ import annotations

import json
import time
from typing import Any

import httpx

from tests.conftest import ref
from tools import storefront as sfm
from tools.channel_emulator import Emulator, shopkeeper_signature, woo_order
from tools.storefront import Storefront

from .channel_helpers import (
    SECRET,
    channel,
    configure,
    emulator,
    generic_post,
    order_number,
    woo_webhook,
)
from .helpers import eventually, new_product, tail, url, value_of

__all__ = ["emulator"]


async def test_a_signed_woocommerce_order_ships_and_is_completed_with_a_tracking_note(
        storefront: Storefront, emulator: Emulator) -> None:
    store = ref("woo")
    await configure(store, "woocommerce", emulator)
    sku = await new_product(storefront, stock={"WH-LA": 10})
    oid = order_number()
    # When WooCommerce delivers order.created (a customer with a non-ASCII name)
    r = await woo_webhook(store, woo_order(oid, [(sku, 3, "10.00")]))
    assert r.status_code == 200 and r.json()["outcome"] == "placed", r.text
    shipped = await storefront.wait_for(f"{store}:{oid}", "shipped", timeout=90)
    placed = value_of(await tail("orders.placed",
                                 lambda rec: rec.key == f"{store}:{oid}".encode()))
    assert placed["shipping_address"]["name"] == "Zoë Müller"
    assert placed["totals"] == {"subtotal": "30.00", "discount": "0.00",
                                "shipping_fee": "5.00", "tax": "3.00", "duties": "0.00",
                                "grand_total": "38.00"}
    # Then the order is completed on WooCommerce and the customer gets the tracking in a note
    number = shipped["details"]["parcels"][0]["tracking_number"]
    async def written() -> list[Any]:
        return emulator.calls_to(f"/wp-json/wc/v3/orders/{oid}/notes", "POST")
    [note] = await eventually(written, timeout=30, what="tracking note written back")
    assert number in note.body["note"] and note.body["customer_note"] is True
    [update] = emulator.calls_to(f"/wp-json/wc/v3/orders/{oid}", "PUT")
    assert update.body == {"status": "completed"}


async def test_woocommerce_ping_is_answered_and_bad_signature_refused(
        emulator: Emulator) -> None:
    store = ref("woo")
    await configure(store, "woocommerce", emulator)
    async with httpx.AsyncClient(timeout=10) as c:
        ping = await c.post(url("channels", f"/webhooks/woocommerce/{store}"),
                            content=b"webhook_id=42",
                            headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert ping.status_code == 200 and ping.json() == {"ping": True}
    bad = await woo_webhook(store, woo_order(order_number(), [("X", 1, "1.00")]),
                            secret="wrong-secret-123")
    assert bad.status_code == 401
    assert (await channel(store))["deliveries_recent"] == []


async def test_a_woocommerce_cancellation_is_a_cancel_request(emulator: Emulator) -> None:
    store = ref("woo")
    await configure(store, "woocommerce", emulator)
    oid = order_number()
    r = await woo_webhook(store, woo_order(oid, [("X", 1, "1.00")], status="cancelled"),
                          topic="order.updated")
    assert r.json()["outcome"] == "cancel_requested"
    rec = value_of(await tail("orders.cancel_requested",
                              lambda rec: rec.key == f"{store}:{oid}".encode()))
    assert rec["reason"] == "cancelled on WooCommerce"


async def test_the_generic_signed_webhook_takes_our_own_order_json(
        storefront: Storefront, emulator: Emulator) -> None:
    store = ref("custom")
    await configure(store, "generic", None)
    sku = await new_product(storefront, stock={"WH-LA": 5})
    ext = ref("g")
    payload = sfm.order(store, ext, [(sku, 1, "12.50")])
    body = json.dumps(payload).encode()
    # When it is posted signed, it becomes an order; the same event again is a duplicate
    r = await generic_post(store, body, shopkeeper_signature(SECRET, body))
    assert r.status_code == 200 and r.json()["duplicate"] is False, r.text
    again = await generic_post(store, body, shopkeeper_signature(SECRET, body))
    assert again.json()["duplicate"] is True
    await storefront.wait_for(f"{store}:{ext}", "accepted")
    placed = value_of(await tail("orders.placed",
                                 lambda rec: rec.key == f"{store}:{ext}".encode()))
    assert placed["channel"]["platform"] == "generic"
    # A signature older than five minutes is a replay: refused
    old = await generic_post(store, body,
                             shopkeeper_signature(SECRET, body, int(time.time()) - 400))
    assert old.status_code == 401
    # A body that breaks the contract: 422 naming the field, nothing stored
    broken = dict(payload, event_id=None, totals={"subtotal": 12.5})
    raw = json.dumps(broken).encode()
    bad = await generic_post(store, raw, shopkeeper_signature(SECRET, raw))
    assert bad.status_code == 422 and bad.json()["detail"]["code"] == "malformed"
    assert "totals" in bad.json()["detail"]["message"]
    assert len((await channel(store))["deliveries_recent"]) == 1


async def test_shopkeeper_channels_add_list_test_and_retry(emulator: Emulator) -> None:
    from .test_cli import shopkeeper
    store = ref("cli")
    code, out = await shopkeeper("channels", "add", store, "woocommerce",
                                 "--webhook-secret", "cli-secret-123",
                                 "--api-base-url", emulator.url,
                                 "--credential", "consumer_key=ck_emulator",
                                 "--credential", "consumer_secret=cs_emulator",
                                 "--sku", "23=MUG-01", "--option", "poll_seconds=30")
    assert code == 0 and f"channel {store} (woocommerce) created" in out, out
    from .channel_helpers import CONFIGURED
    CONFIGURED.append(store)
    code, out = await shopkeeper("channels", "list")
    assert code == 0 and store in out and "cli-secret-123" not in out
    code, out = await shopkeeper("channels", "test", store)
    assert code == 0 and "ok" in out, out
    code, out = await shopkeeper("channels", "retry", store)
    assert code == 0 and f"0 write-backs of {store} queued again" in out
    # Wrong credentials: the test says so and exits 1
    await shopkeeper("channels", "add", store, "woocommerce", "--webhook-secret",
                     "cli-secret-123", "--api-base-url", emulator.url,
                     "--credential", "consumer_key=wrong", "--credential", "consumer_secret=x")
    code, out = await shopkeeper("channels", "test", store)
    assert code == 1 and "FAILED" in out and "401" in out
