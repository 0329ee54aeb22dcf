"""The console's Exceptions page and its own outbox, in a real browser on the real stack: parcels
in a delivery exception, stalled or lost (logistics' /parcels/exceptions), quarantined outbox
rows of the services, released by a manager (a support user sees no button and gets 403), and a
backorder decision taken while Kafka is down, whose message to the buyer waits in the console's
outbox and is published once Kafka is back."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime, timedelta

import asyncpg
import httpx
from playwright.async_api import Browser, expect

import stack.__main__ as local_stack
from shared.settings import service_database_url
from tests.conftest import ref
from tools import storefront as sfm
from tools.storefront import Storefront

from .console_browser import console_url, csrf_of, new_page, shot, sign_in
from .helpers import admin_client, eventually, new_product, place, tail, tail_all, value_of
from .test_cli import shopkeeper

Users = dict[str, tuple[str, str]]


def days_ago(days: float) -> str:
    return (datetime.now(UTC) - timedelta(days=days)).isoformat().replace("+00:00", "Z")


async def shipped_parcel(sf: Storefront) -> tuple[str, dict[str, str]]:
    sku = await new_product(sf, stock={"WH-LA": 2})
    key, _ = await place(sf, [(sku, 1, "12.50")])
    shipped = await sf.wait_for(key, "shipped", timeout=90)
    return key, shipped["details"]["parcels"][0]


async def quarantine_a_row(service: str, topic: str, key: str, value: dict[str, object]) -> int:
    """A row in `service`'s outbox as its relay leaves one the broker refused for good."""
    conn = await asyncpg.connect(service_database_url(service),
                                 server_settings={"search_path": service})
    try:
        return int(await conn.fetchval(
            "INSERT INTO outbox (topic, key, value, quarantined_at, error)"
            " VALUES ($1, $2, $3, now(), 'MessageSizeTooLargeError: (test) refused for good')"
            " RETURNING id", topic, key, json.dumps(value).encode()))
    finally:
        await conn.close()


async def test_exceptions_list_parcels_and_a_manager_releases_a_quarantined_row(
        storefront: Storefront, browser: Browser, users: Users) -> None:
    sf = storefront
    # Given a parcel the carrier lost and one silent for 8 days (USPS allows 5)
    (lost_key, lost), (silent_key, silent) = [await shipped_parcel(sf) for _ in range(2)]
    await sf.publish("carrier.tracking", lost["tracking_number"],
                     sfm.tracking("USPS", lost["tracking_number"], "lost", days_ago(0.01)))
    await sf.publish("carrier.tracking", silent["tracking_number"],
                     sfm.tracking("USPS", silent["tracking_number"], "in_transit", days_ago(8)))
    await sf.wait_for(lost_key, "delivery_exception", timeout=60)

    async def stalled() -> bool:
        async with admin_client("logistics") as client:
            flagged = (await client.post("/watchdog/run")).json()["flagged"]
            rows = (await client.get("/parcels/exceptions", params={"kind": "stalled"})).json()
        return silent["parcel_id"] in flagged or silent["parcel_id"] in {
            r["parcel_id"] for r in rows}
    await eventually(stalled, what="the silent parcel stalled")
    # And a row intake's relay could not publish, quarantined
    store, ext = ref("qstore"), ref("q")
    message_key = f"{store}:{ext}"
    row_id = await quarantine_a_row("intake", "customer.messages", message_key, {
        "event_id": str(uuid.uuid4()), "occurred_at": sfm.now_iso(), "store": store,
        "external_order_id": ext, "language": "en", "template": "test.release",
        "subject": "released", "body": "a row put back in line"})

    # When a support user opens the Exceptions page: everything listed, no release button
    context, page = await new_page(browser)
    await sign_in(page, users["support"], "/exceptions")
    row = page.locator(f"table.outbox tr[data-service=intake][data-row='{row_id}']")
    await expect(row).to_contain_text("MessageSizeTooLargeError")
    assert await row.locator("button.release").count() == 0
    # And a hand-made post with the user's own valid token is refused by the server
    r = await page.request.post(console_url("/exceptions/outbox/release"), form={
        "service": "intake", "row_id": str(row_id), "csrf": await csrf_of(page)})
    assert r.status == 403
    await context.close()

    # When a manager opens it
    context, page = await new_page(browser)
    await sign_in(page, users["manager"], "/exceptions")
    # Then the lost and the stalled parcel are there, with their order
    lost_row = page.locator(f"table.parcels tr[data-parcel='{lost['parcel_id']}']")
    await expect(lost_row).to_have_attribute("data-kind", "lost")
    await expect(lost_row).to_contain_text("lost by the carrier")
    await expect(lost_row.locator("a")).to_have_text(lost_key)
    silent_row = page.locator(f"table.parcels tr[data-parcel='{silent['parcel_id']}']")
    await expect(silent_row).to_have_attribute("data-kind", "stalled")
    await expect(silent_row).to_contain_text("in transit")
    await expect(silent_row.locator("a")).to_have_text(silent_key)
    await shot(page, "exceptions-outbox-en")
    # When the manager releases the quarantined row
    row = page.locator(f"table.outbox tr[data-service=intake][data-row='{row_id}']")
    await row.locator("button.release").click()
    await expect(page.locator(".flash.ok")).to_contain_text("Released")
    # Then intake's relay publishes it, and it is no longer listed
    published = await tail("customer.messages", lambda r: r.key == message_key.encode(),
                           timeout=60)
    assert value_of(published)["template"] == "test.release"
    assert await page.locator(f"table.outbox tr[data-row='{row_id}']"
                              "[data-service=intake]").count() == 0
    # And the audit trail says who released what
    await page.goto(console_url(f"/audit?q=intake/outbox/{row_id}"))
    audit_row = page.locator("table.audit tr", has_text="exceptions.release")
    await expect(audit_row).to_contain_text(users["manager"][0])
    await expect(audit_row).to_contain_text("customer.messages")
    # And releasing it again says it is not quarantined
    r = await page.request.post(console_url("/exceptions/outbox/release"), form={
        "service": "intake", "row_id": str(row_id), "csrf": await csrf_of(page)},
        max_redirects=0)
    assert r.status == 303 and "exceptions.release_gone" in r.headers["location"]
    await context.close()


async def restart_kafka() -> None:
    """Start the stopped broker again. On a loaded machine it can take longer than the stack's
    90 s to load its partitions; its port is then waited for here, up to five minutes."""
    try:
        await asyncio.to_thread(local_stack.start_kafka, 1)
    except SystemExit:
        async def port_open() -> bool:
            return local_stack.port_open("127.0.0.1", local_stack.kafka_port(1))
        await eventually(port_open, timeout=300, what="Kafka's port open again")


async def _console_outbox(key: str) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(service_database_url("console"),
                                 server_settings={"search_path": "console"})
    try:
        return await conn.fetch("SELECT topic, sent_at FROM outbox WHERE key = $1 ORDER BY id",
                                key)
    finally:
        await conn.close()


async def test_a_buyer_is_told_even_when_kafka_is_down_at_the_click(
        storefront: Storefront, browser: Browser, users: Users) -> None:
    sf = storefront
    # Given a backordered order and a manager on the Backorders page
    sku = await new_product(sf, stock={}, price="15.00")
    key, _ = await place(sf, [(sku, 1, "15.00")])
    await sf.wait_for(key, "backordered", timeout=60)
    context, page = await new_page(browser)
    await sign_in(page, users["manager"], f"/backorders?sku={sku}")
    row = page.locator(f"section[data-sku='{sku}'] tr[data-order='{key}']")
    await expect(row).to_be_visible()
    # When Kafka is down and the manager asks the buyer to wait
    # (a clean stop, as in test_channels_shopify: a kill -9 is `make chaos`'s)
    await asyncio.to_thread(local_stack.stop_pid, "kafka", 60)
    try:
        await row.locator("button.wait").click()
        # Then the decision is taken (written with its audit row) ...
        await expect(page.locator(".flash.ok")).to_be_visible()
        # ... and the decision and the message wait in the console's outbox, unsent
        rows = await _console_outbox(key)
        assert [r["topic"] for r in rows] == ["orders.backorder_decisions", "customer.messages"]
        assert all(r["sent_at"] is None for r in rows)
    finally:
        await restart_kafka()
    # When Kafka is back, the buyer's message is published, once, and the decision too
    message = value_of(await tail("customer.messages", lambda r: r.key == key.encode(),
                                  timeout=120))
    assert (message["language"], message["template"]) == ("en", "backorder.wait")
    decision = value_of(await tail("orders.backorder_decisions",
                                   lambda r: r.key == key.encode(), timeout=60))
    assert decision["decision"] == "wait"

    async def sent() -> bool:
        return all(r["sent_at"] is not None for r in await _console_outbox(key))
    await eventually(sent, timeout=60, what="the console's outbox rows marked sent")
    assert len(await tail_all("customer.messages", lambda r: r.key == key.encode())) == 1

    async def waiting() -> bool:
        async with admin_client("inventory") as client:
            rows = (await client.get("/backorders", params={"sku": sku})).json()
        return bool(rows) and rows[0]["decision"] == "wait"
    await eventually(waiting, timeout=120, what="inventory recording the wait decision")
    await context.close()

    async def ready() -> bool:
        return all(local_stack.service_ready(s) for s in local_stack.SERVICES)
    await eventually(ready, timeout=240, what="every service ready again")


async def test_the_consoles_own_quarantined_rows_are_listed_and_released_like_a_services(
        browser: Browser, users: Users) -> None:
    # Given a row the console's own relay could not publish, quarantined
    store, ext = ref("cstore"), ref("q")
    key = f"{store}:{ext}"
    row_id = await quarantine_a_row("console", "customer.messages", key, {
        "event_id": str(uuid.uuid4()), "occurred_at": sfm.now_iso(), "store": store,
        "external_order_id": ext, "language": "zh-CN", "template": "test.console",
        "subject": "s", "body": "b"})
    # When an operator asks the CLI for every quarantined row: the console's is there
    code, out = await shopkeeper("--json", "outbox", "quarantined")
    assert code == 0, out
    listed = json.loads(out)
    assert any(r["service"] == "console" and r["id"] == row_id for r in listed)
    # And the console's endpoint wants the admin token, like a service's
    async with httpx.AsyncClient(timeout=10) as client:
        assert (await client.get(console_url("/outbox/quarantined"))).status_code == 401
    # When a manager releases it on the Exceptions page
    context, page = await new_page(browser)
    await sign_in(page, users["manager"], "/exceptions")
    row = page.locator(f"table.outbox tr[data-service=console][data-row='{row_id}']")
    await row.locator("button.release").click()
    await expect(page.locator(".flash.ok")).to_be_visible()
    # Then the console's relay publishes it
    published = await tail("customer.messages", lambda r: r.key == key.encode(), timeout=60)
    assert value_of(published)["template"] == "test.console"
    await context.close()
