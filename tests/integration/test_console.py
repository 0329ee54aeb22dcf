"""The web console in a real browser (Debian's Chromium through Playwright) on the real stack:
signing in, roles (a warehouse user cannot approve a refund: no button, and 403), a manager
releasing a held order to `reserved`, a return received and graded by the warehouse, a dead
letter replayed, and the whole console in 中文 with no English left. Screenshots of each page
go to artifacts/console/. The manual wave is in test_console_warehouse.py (it restarts
fulfillment in manual mode)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from typing import Any

import httpx
from playwright.async_api import Browser, expect

from shared.settings import get_settings
from tests.conftest import ref
from tools import storefront as sfm
from tools.storefront import Storefront

from .console_browser import (
    console_url,
    csrf_of,
    english_left,
    new_page,
    shot,
    sign_in,
    ui_text,
)
from .helpers import (
    STORE,
    admin_client,
    eventually,
    http_get,
    new_product,
    place,
    tail,
    value_of,
)

Users = dict[str, tuple[str, str]]


# --- helpers: orders in the states the pages work on ------------------------------------------

async def console_shows(key: str, status: str | None = None) -> None:
    """Wait until the console's source for an order (analytics' read model) has it in `status`
    (or has it at all, without one). The storefront sees a status first; analytics folds it a
    moment later, and a page opened in between shows the order as it was (no return form on a
    `packed` order), or as unknown ("No such order") before analytics' first fold."""
    store, ext = key.split(":")

    async def folded() -> bool:
        r = await http_get("analytics", f"/orders/{store}/{ext}", auth=True)
        return r.status_code == 200 and status in (None, r.json()["status"])
    await eventually(folded, timeout=60,
                     what=f"analytics' read model shows {key} {status or '(any status)'}")


async def shipped_order(sf: Storefront, price: str) -> tuple[str, dict[str, Any]]:
    sku = await new_product(sf, stock={"WH-LA": 3}, price=price)
    key, _ = await place(sf, [(sku, 1, price)])
    shipped = await sf.wait_for(key, "shipped", timeout=90)
    await console_shows(key, "shipped")
    return key, {"sku": sku, "parcel": shipped["details"]["parcels"][0]}


async def delivered_order(sf: Storefront, price: str) -> tuple[str, dict[str, Any]]:
    key, info = await shipped_order(sf, price)
    p = info["parcel"]
    await sf.publish("carrier.tracking", p["tracking_number"],
                     sfm.tracking(p["carrier"], p["tracking_number"], "delivered"))
    await sf.wait_for(key, "delivered", timeout=60)
    await console_shows(key, "delivered")
    return key, info


async def rma(sf: Storefront, key: str, kind: str, reason: str, sku: str) -> str:
    store, ext = key.split(":")
    rid = ref("rma")
    await sf.publish("aftersales.requests", key, sfm.order_event(
        store, ext, request_id=rid, kind=kind, reason=reason, comment=None,
        lines=[{"sku": sku, "quantity": 1}], exchange_for=None))
    return rid


async def request_status(key: str, rid: str) -> str | None:
    store, ext = key.split(":")
    async with admin_client("aftersales") as client:
        r = await client.get(f"/requests/{store}/{ext}/{rid}")
    return str(r.json()["status"]) if r.status_code == 200 else None


async def in_status(key: str, rid: str, status: str) -> bool:
    return await request_status(key, rid) == status


# --- signing in -------------------------------------------------------------------------------

async def test_sign_in_wrong_password_then_right_then_out(browser: Browser, users: Users
                                                          ) -> None:
    context, page = await new_page(browser)
    # Given the sign-in page
    await page.goto(console_url("/orders"))
    await expect(page).to_have_url(console_url("/login?next=/orders"))
    await shot(page, "login-en")
    # When a wrong password is given: an error, still signed out
    name, password = users["support"]
    await page.fill("input[name=username]", name)
    await page.fill("input[name=password]", password + "x")
    await page.click("#sign-in")
    await expect(page.locator(".flash.err")).to_contain_text("Wrong user name or password")
    # When the right one is given: the orders page, with the user's role and no admin pages
    await page.fill("input[name=password]", password)
    await page.click("#sign-in")
    await expect(page).to_have_url(console_url("/orders"))
    await expect(page.locator(".who")).to_contain_text(f"{name} · support")
    assert await page.locator("nav a[href='/users']").count() == 0
    # And the session cookie cannot be read by scripts and is SameSite
    cookie = next(c for c in await context.cookies() if c["name"] == "sk_session")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Lax"
    # When signing out, the pages need signing in again
    await page.click("#logout")
    await expect(page).to_have_url(console_url("/login"))
    await page.goto(console_url("/review"))
    await expect(page).to_have_url(console_url("/login?next=/review"))
    await context.close()


async def test_five_wrong_passwords_lock_the_account_and_forms_need_the_csrf_token(
        users: Users) -> None:
    console = console_url()
    async with httpx.AsyncClient(base_url=console, timeout=30) as client:
        # Given the sign-in form's token
        token = _login_token((await client.get("/login")).text)
        name, password = users["viewer"]
        # When a post comes without the token: refused
        r = await client.post("/login", data={"username": name, "password": password})
        assert r.status_code == 403 and "expired" in r.text
        token = _login_token(r.text)  # a fresh form
        # When five wrong passwords are given, the account is locked
        for _ in range(5):
            r = await client.post("/login", data={"username": name, "password": "wrong-pass",
                                                  "csrf": token})
            assert r.status_code == 401
            token = _login_token(r.text)
        # Then even the right password is refused, saying why
        r = await client.post("/login", data={"username": name, "password": password,
                                              "csrf": token})
        assert r.status_code == 401 and "locked" in r.text
    # And an admin sees the lock in the audit trail
    async with httpx.AsyncClient(base_url=console, timeout=30) as admin:
        token = _login_token((await admin.get("/login")).text)
        r = await admin.post("/login", data={"username": users["admin"][0],
                                             "password": users["admin"][1], "csrf": token})
        assert r.status_code == 303
        found = await admin.get("/audit", params={"q": name, "action": "login"})
        assert found.status_code == 200 and found.text.count("locked") >= 1


def _login_token(html: str) -> str:
    form = html.split('action="/login"')[1]
    return form.split('name="csrf" value="')[1].split('"')[0]


# --- orders -----------------------------------------------------------------------------------

async def test_support_finds_a_customers_orders_by_email_and_phone(
        storefront: Storefront, browser: Browser, users: Users) -> None:
    sf = storefront
    # Given an order whose buyer left an e-mail and a phone, shipped
    sku = await new_product(sf, stock={"WH-LA": 2}, price="21.00")
    tag = ref("mail").split("-")[1]
    ext = ref("o")
    key = f"{STORE}:{ext}"
    payload = sfm.order(STORE, ext, [(sku, 1, "21.00")])
    payload["customer"].update(email=f"Zhang.{tag}@Example.cn", phone=f"+86 138 {tag[:4]} 0000")
    await sf.publish("orders.placed", key, payload)
    await sf.wait_for(key, "shipped", timeout=90)
    context, page = await new_page(browser)
    await sign_in(page, users["support"], "/orders")
    # When support searches by the e-mail as the buyer says it
    row = page.locator("table.list tr", has_text=key)

    async def search(by: str, q: str) -> bool:
        await page.goto(console_url("/orders"))
        await page.select_option("#by", by)
        await page.fill("input[name=q]", q)
        async with page.expect_navigation():
            await page.locator("form.search button").click()
        return await row.count() == 1
    # Then the order is found with its current status and tracking number (the status is
    # analytics' read model, folded a moment after the storefront saw it: searched again until
    # it shows)
    async def found_shipped() -> bool:
        return (await search("email", f"zhang.{tag}@example.cn")
                and "shipped" in await row.inner_text())
    await eventually(found_shipped, timeout=30, what="the order found by e-mail, shipped")
    await expect(row).to_contain_text("shipped")
    await shot(page, "orders-email-en")
    # And the phone, typed with other punctuation, finds it too
    assert await search("phone", f"+86-138-{tag[:4]}-0000")
    # And another store's filter hides it
    await page.fill("input[name=store_name]", "another-store")
    async with page.expect_navigation():
        await page.locator("form.search button").click()
    await expect(page.locator(".empty")).to_be_visible()
    await context.close()


# --- review queue -----------------------------------------------------------------------------

async def test_manager_approves_a_held_order_and_it_is_reserved(
        storefront: Storefront, browser: Browser, users: Users) -> None:
    sf = storefront
    # Given a high-value order on hold
    sku = await new_product(sf, stock={"WH-LA": 2}, price="2500.00")
    key, _ = await place(sf, [(sku, 1, "2500.00")])
    held = await sf.wait_for(key, "on_hold", timeout=60)
    assert held["reasons"][0]["code"] == "high_value"
    context, page = await new_page(browser)
    await sign_in(page, users["manager"], "/review")
    # When the manager filters the queue by the reason and opens the order
    await page.select_option("#reason-filter", "high_value")
    row = page.locator(f"tr[data-order='{key}']")
    await expect(row).to_be_visible()
    await expect(row).to_contain_text("$2,504.99")  # with shipping
    await shot(page, "review-queue-en")
    await row.locator("a").click()
    await expect(page.locator("h2").first).to_contain_text("Why it was held")
    await shot(page, "review-detail-en")
    # And approves it with a note
    await page.fill("form[action$='/approve'] input[name=note]", "called the buyer")
    await page.click("#approve")
    await expect(page.locator(".flash.ok")).to_contain_text("Approved")
    # Then the order goes on and reaches reserved
    await sf.wait_for(key, "reserved", timeout=60)
    store, ext = key.split(":")

    async def timeline_shows_reserved() -> bool:
        await page.goto(console_url(f"/orders/{store}/{ext}"))
        return "reserved" in await page.locator(".timeline").inner_text()
    await eventually(timeline_shows_reserved, timeout=30, what="reserved in the timeline")
    await shot(page, "order-reserved-en")
    # And the audit trail has who approved it, before and after
    await page.goto(console_url(f"/audit?q={held['order_id']}"))
    audit_row = page.locator("table.audit tr", has_text="review.approve")
    await expect(audit_row).to_contain_text(users["manager"][0])
    await expect(audit_row).to_contain_text("on_hold")
    await context.close()


# --- returns ----------------------------------------------------------------------------------

async def test_a_warehouse_user_cannot_approve_a_refund_but_a_manager_can(
        storefront: Storefront, browser: Browser, users: Users) -> None:
    sf = storefront
    # Given a refund without return above the automatic threshold, waiting for a person
    key, info = await delivered_order(sf, "80.00")
    rid = await rma(sf, key, "refund", "not_as_described", info["sku"])
    await eventually(lambda: in_status(key, rid, "review"), what="refund queued for review")
    store, ext = key.split(":")
    # When a warehouse user opens the returns queue: the request is there, with no approve button
    context, page = await new_page(browser)
    await sign_in(page, users["warehouse"], "/returns")
    row = page.locator(f"tr[data-request='{rid}']")
    await expect(row).to_be_visible()
    assert await row.locator(".approve-refund").count() == 0
    assert await row.locator("button").count() == 0
    # And a hand-made post with the user's own valid token is refused by the server
    r = await page.request.post(console_url(f"/returns/{store}/{ext}/{rid}/decide"), form={
        "decision": "approve", "note": "sneaky", "csrf": await csrf_of(page)})
    assert r.status == 403
    assert await request_status(key, rid) == "review"
    await context.close()
    # When a manager approves it with a note
    context, page = await new_page(browser)
    await sign_in(page, users["manager"], "/returns")
    row = page.locator(f"tr[data-request='{rid}']")
    await row.locator("input[name=note]").fill("buyer sent photos")
    await shot(page, "returns-queue-en")
    await row.locator(".approve-refund").click()
    await expect(page.locator(".flash.ok")).to_be_visible()
    # Then the money goes back
    refunded = await sf.wait_for(key, "refunded", timeout=60)
    assert refunded["details"]["amount"] == "84.99"  # the item and its shipping
    await context.close()


async def test_warehouse_receives_a_damaged_return_and_grades_it(
        storefront: Storefront, browser: Browser, users: Users) -> None:
    sf = storefront
    # Given an authorized return of a delivered order
    key, info = await delivered_order(sf, "30.00")
    rid = await rma(sf, key, "return", "changed_mind", info["sku"])
    await sf.wait_for(key, "return_authorized", timeout=60)
    store, ext = key.split(":")
    context, page = await new_page(browser)
    await sign_in(page, users["warehouse"], "/returns")
    # When the warehouse receives the parcel, the goods damaged
    await page.click("#receive-return")
    await page.fill("input[name=store_name]", store)
    await page.fill("input[name=ext]", ext)
    await page.fill("input[name=request_id]", rid)
    await page.locator("form[method=get] button").click()
    await page.select_option("select.condition", "damaged")
    await shot(page, "returns-receive-en")
    await page.click("#confirm-receipt")
    await expect(page.locator(".flash.ok")).to_be_visible()
    await sf.wait_for(key, "return_received", timeout=60)
    await eventually(lambda: in_status(key, rid, "inspection"), what="waiting for a grade")
    # And grades them refurbish with a note on the photos
    await page.goto(console_url("/returns"))
    row = page.locator(f"tr[data-request='{rid}']")
    await row.locator("select.grade").select_option("refurbish")
    await row.locator("input[name=note]").fill("scuffed box, works; photos 1-3")
    await row.locator(".grade-return").click()
    await expect(page.locator(".flash.ok")).to_be_visible()
    # Then the refund follows (30.00 less 5.00 return shipping)
    refunded = await sf.wait_for(key, "refunded", timeout=60)
    assert refunded["details"]["amount"] == "25.00"
    await context.close()


async def test_support_opens_a_refund_request_from_the_order_page(
        storefront: Storefront, browser: Browser, users: Users) -> None:
    sf = storefront
    # Given a delivered order
    key, _ = await delivered_order(sf, "80.00")
    store, ext = key.split(":")
    context, page = await new_page(browser)
    await sign_in(page, users["support"], f"/orders/{store}/{ext}")
    # When support opens a refund for the item, not as described
    await page.select_option("select[name=kind]", "refund")
    await page.select_option("select[name=reason]", "not_as_described")
    await page.fill("input[name=quantity]", "1")
    await page.fill("input[name=comment]", "colour is different")
    await page.click("#open-return")
    await expect(page.locator(".flash.ok")).to_be_visible()
    # Then aftersales has it, and (above the automatic threshold) it waits for a manager
    async def queued() -> bool:
        async with admin_client("aftersales") as client:
            rows = (await client.get("/requests/review")).json()
        return any(r["order_key"] == key and r["kind"] == "refund" for r in rows)
    await eventually(queued, what="the refund request in the review queue")
    # And support sees no cancel button (a manager's decision)
    assert await page.locator("#cancel-order").count() == 0
    await context.close()


async def test_the_order_page_shows_the_customers_note_and_gift_message_escaped(
        storefront: Storefront, browser: Browser, users: Users) -> None:
    sf = storefront
    # Given an order with a note, a gift message (with markup in it) and gift wrap
    sku = await new_product(sf, stock={"WH-LA": 2})
    key, _ = await place(sf, [(sku, 1, "12.50")], note="Leave it with the neighbour at no. 5",
                         gift_message="<b>Happy birthday</b>, 生日快乐!", gift_wrap=True)
    await sf.wait_for(key, "reserved", timeout=60)
    await console_shows(key)
    store, ext = key.split(":")
    context, page = await new_page(browser)
    # When support opens the order (the viewer's account is locked by the lockout test above)
    await sign_in(page, users["support"], f"/orders/{store}/{ext}")
    # Then the customer's words are there, as text
    await expect(page.locator("#customer-note")).to_have_text(
        "Leave it with the neighbour at no. 5")
    await expect(page.locator("#gift-message")).to_have_text("<b>Happy birthday</b>, 生日快乐!")
    await expect(page.locator("#gift-wrap")).to_be_visible()
    assert await page.locator("#gift-message b").count() == 0, "the message is not markup"
    await context.close()


# --- backorders -------------------------------------------------------------------------------

async def test_a_manager_asks_a_backordered_buyer_to_wait_and_the_buyer_is_told(
        storefront: Storefront, browser: Browser, users: Users) -> None:
    sf = storefront
    # Given an order for a product with no stock: backordered
    sku = await new_product(sf, stock={}, price="15.00")
    key, _ = await place(sf, [(sku, 1, "15.00")])
    await sf.wait_for(key, "backordered", timeout=60)
    ext = key.split(":")[1]
    context, page = await new_page(browser)
    await sign_in(page, users["manager"], "/backorders")
    # When the manager finds the SKU's queue and asks the buyer to wait
    await page.fill("input[name=sku]", sku)
    await page.locator("form[method=get] button").click()
    row = page.locator(f"section[data-sku='{sku}'] tr[data-order='{key}']")
    await shot(page, "backorders-queue-en")
    await row.locator("button.wait").click()
    await expect(page.locator(".flash.ok")).to_be_visible()
    # Then the decision goes to inventory as the buyer's answer
    decision = await tail("orders.backorder_decisions", lambda r: r.key == key.encode())
    assert value_of(decision)["decision"] == "wait"
    # And the buyer gets the templated message, in English (a US address)
    message = value_of(await tail("customer.messages", lambda r: r.key == key.encode()))
    assert (message["language"], message["template"]) == ("en", "backorder.wait")
    assert ext in message["subject"] and sku in message["subject"]
    assert "out of stock" in message["body"]
    # And inventory records the choice
    async def waiting() -> bool:
        async with admin_client("inventory") as client:
            rows = (await client.get("/backorders", params={"sku": sku})).json()
        return bool(rows) and rows[0]["decision"] == "wait"
    await eventually(waiting, what="the wait decision recorded")
    await context.close()


# --- exceptions -------------------------------------------------------------------------------

async def test_a_dead_letter_is_inspected_and_replayed_after_its_cause_is_fixed(
        storefront: Storefront, browser: Browser, users: Users) -> None:
    sf = storefront
    # Given a return of a shipped (not yet delivered) order, waiting for a decision
    key, info = await shipped_order(sf, "40.00")
    rid = await rma(sf, key, "return", "changed_mind", info["sku"])
    await eventually(lambda: in_status(key, rid, "review"), what="return waiting for review")
    store, ext = key.split(":")
    # And the warehouse's receipt of it, which arrives too early and ends in the DLQ
    await sf.publish("returns.received", key, sfm.order_event(
        store, ext, request_id=rid, lines=[{"sku": info["sku"], "quantity": 1,
                                            "condition": "resellable"}]))
    await tail("returns.received.dlq", lambda r: r.key == key.encode(), timeout=60)
    context, page = await new_page(browser)
    await sign_in(page, users["manager"], "/exceptions")
    # When the manager inspects the DLQ: the message is there with the reason
    await page.select_option("#dlq-topic", "returns.received")
    await page.click("#inspect")
    row = page.locator(f"tr[data-key='{key}']")
    await expect(row).to_contain_text("LookupError")
    await expect(row).to_contain_text("authorize it, then replay")
    await shot(page, "exceptions-dlq-en")
    # And fixes the cause (authorizes the return), then replays the message
    await page.goto(console_url("/returns"))
    req = page.locator(f"tr[data-request='{rid}']")
    await req.locator("input[name=note]").fill("parcel already back")
    await req.locator(".approve-refund").click()
    await sf.wait_for(key, "return_authorized", timeout=60)
    await page.goto(console_url("/exceptions?topic=returns.received"))
    await page.locator(f"tr[data-key='{key}'] button.replay").click()
    await expect(page.locator(".flash.ok")).to_contain_text("Replayed")
    # Then the receipt is handled this time: received and refunded
    await sf.wait_for(key, "return_received", timeout=60)
    await sf.wait_for(key, "refunded", timeout=60)
    await expect(page.locator(f"tr[data-key='{key}']")).to_contain_text("replayed before")
    await context.close()


# --- 中文 ---------------------------------------------------------------------------------------

PAGES = ["/orders", "/review", "/warehouse", "/returns", "/returns/receive", "/exceptions",
         "/stock", "/backorders", "/rules", "/dashboard", "/users", "/audit", "/me", "/cases"]


async def test_switching_to_chinese_leaves_no_english_on_any_page(
        storefront: Storefront, browser: Browser, users: Users) -> None:
    sf = storefront
    # Given an order with a timeline, a held order and an English-speaking browser
    key, _ = await shipped_order(sf, "19.90")
    sku = await new_product(sf, stock={"WH-LA": 1}, price="2600.00")
    held_key, _ = await place(sf, [(sku, 1, "2600.00")])
    await sf.wait_for(held_key, "on_hold", timeout=60)
    context, page = await new_page(browser, locale="en-US")
    await sign_in(page, users["admin"])
    # Every page in English first, for the screenshots
    store, ext = key.split(":")
    pages = [*PAGES, f"/orders/{store}/{ext}", f"/stock?sku={sku}"]
    for path in pages:
        response = await page.goto(console_url(path))
        assert response is not None and response.status == 200, path
        await shot(page, _name(path) + "-en")
    # When the user switches to 中文
    await page.goto(console_url("/orders"))
    await page.click("button[data-lang=zh_CN]")
    await expect(page.locator("html")).to_have_attribute("lang", "zh-CN")
    # Then no page has any English left
    for path in pages:
        await page.goto(console_url(path))
        text = await ui_text(page)
        assert not english_left(text), (path, english_left(text))
        assert "订单" in await page.locator("nav").inner_text()
        await shot(page, _name(path) + "-zh")
    # And the choice is the user's: a new session starts in Chinese
    await context.close()
    context, page = await new_page(browser, locale="en-US")
    await sign_in(page, users["admin"])
    await expect(page.locator("h1")).to_have_text("订单")
    await context.close()


async def test_accept_language_chooses_chinese_before_any_switch(browser: Browser) -> None:
    context, page = await new_page(browser, locale="zh-CN")
    await page.goto(console_url("/login"))
    await expect(page.locator("h1")).to_have_text("登录")
    assert not english_left(await page.locator("body").inner_text())
    await shot(page, "login-zh")
    await context.close()


def _name(path: str) -> str:
    head = path.strip("/").split("?")[0].replace("/", "-")
    if head.startswith("orders-"):
        return "order"
    return head or "home"


async def test_the_admin_token_never_reaches_the_browser(browser: Browser, users: Users
                                                         ) -> None:
    context, page = await new_page(browser)
    await sign_in(page, users["admin"])
    for path in ("/orders", "/review", "/exceptions"):
        await page.goto(console_url(path))
        assert get_settings().shopkeeper_admin_token not in await page.content()
    await context.close()


async def test_the_first_admin_comes_from_the_cli_with_a_one_time_password(stack: None) -> None:
    # Given `shopkeeper users add NAME --role admin`
    name = ref("first")
    done = await asyncio.to_thread(subprocess.run, [
        sys.executable, "-m", "tools.cli", "users", "add", name, "--role", "admin"],
        capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    password = done.stdout.split("one-time password:")[1].split()[0]
    # When they sign in with it: asked to choose their own
    async with httpx.AsyncClient(base_url=console_url(), timeout=30) as client:
        token = _login_token((await client.get("/login")).text)
        r = await client.post("/login", data={"username": name, "password": password,
                                              "csrf": token})
        assert r.status_code == 303
        page = await client.get("/orders")
        assert 'id="change-password"' in page.text
        # And once they have, the banner is gone and the old password no longer works
        csrf = page.text.split('name="csrf" value="')[1].split('"')[0]
        r = await client.post("/me", data={"csrf": csrf, "password": "a-long-new-secret",
                                           "password_again": "a-long-new-secret"})
        assert r.status_code == 303
        assert 'id="change-password"' not in (await client.get("/orders")).text
    async with httpx.AsyncClient(base_url=console_url(), timeout=30) as other:
        token = _login_token((await other.get("/login")).text)
        r = await other.post("/login", data={"username": name, "password": password,
                                             "csrf": token})
        assert r.status_code == 401
    # And the same name twice is refused with a clear line
    again = await asyncio.to_thread(subprocess.run, [
        sys.executable, "-m", "tools.cli", "users", "add", name, "--role", "viewer"],
        capture_output=True, text=True, timeout=60)
    assert again.returncode != 0 and "exists" in again.stdout


async def test_a_form_with_bad_fields_gets_a_page_saying_which(stack: None) -> None:
    async with httpx.AsyncClient(base_url=console_url(), timeout=30,
                                 headers={"Accept-Language": "zh-CN"}) as client:
        token = _login_token((await client.get("/login")).text)
        r = await client.post("/login", data={"username": "x" * 65, "password": "p",
                                              "csrf": token})
    assert r.status_code == 422
    assert "部分字段不正确" in r.text and "username" in r.text
