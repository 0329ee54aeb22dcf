"""Follow-up cases in the console (issue 22): unhappy feedback opens a case in aftersales; support
sees it with the open-case KPIs, assigns it to themself, comments and closes it with a
resolution, a manager reopens it; a viewer sees it without a button and gets 403 when posting;
every step is in aftersales' history and the console's audit trail. A real browser on the real
stack."""

from __future__ import annotations

from typing import Any

import httpx
from playwright.async_api import Browser, expect

from tools import storefront as sfm
from tools.storefront import Storefront

from .console_browser import console_url, csrf_of, new_page, shot, sign_in
from .helpers import eventually, http_get, new_product
from .test_aftersales import delivered_order

Users = dict[str, tuple[str, str]]


async def unhappy_case(sf: Storefront) -> tuple[str, int]:
    sku = await new_product(sf, stock={"WH-LA": 1}, price="9.00")
    key, _ = await delivered_order(sf, sku, "9.00")
    store, ext = key.split(":")
    await sf.publish("customer.feedback", key, sfm.order_event(
        store, ext, rating=1, comment="The lamp arrived broken"))

    async def case() -> dict[str, Any] | None:
        rows = (await http_get("aftersales", "/follow-ups?status=all", auth=True)).json()
        return next((r for r in rows if r["order_key"] == key), None)
    return key, int((await eventually(case, what="follow-up case"))["id"])


async def test_support_works_a_case_from_open_to_closed_and_a_manager_reopens_it(
        storefront: Storefront, browser: Browser, users: Users) -> None:
    key, cid = await unhappy_case(storefront)
    support = users["support"][0]

    # Support sees the case in the open list, with the KPIs above it
    context, page = await new_page(browser)
    await sign_in(page, users["support"], "/cases")
    await expect(page.locator("#case-kpis")).to_contain_text("open")
    row = page.locator(f"tr[data-case='{cid}']")
    await expect(row).to_contain_text(key)
    await expect(row).to_contain_text("unassigned")
    await expect(row).to_contain_text("damaged")
    await row.locator("a.case-link").click()
    await page.wait_for_url(f"**/cases/{cid}")

    # assigns it to themself (the field offers their own name), comments, closes it
    await page.click("#case-assign button")
    await expect(page.locator(".flash.ok")).to_have_text("Case assigned.")
    await expect(page.locator("#case-assignee")).to_have_text(support)
    await page.fill("#case-comment textarea", "Called the customer: a new lamp is on its way")
    await page.click("#case-comment button")
    await expect(page.locator("#case-notes")).to_contain_text("a new lamp is on its way")
    await page.select_option("#case-close select[name=resolution]", "replaced")
    await page.fill("#case-close input[name=note]", "reship sent")
    await page.click("#case-close button")
    await expect(page.locator("#case-status")).to_have_text("Closed · replaced")
    await shot(page, "case-closed-en")
    await context.close()

    # aftersales has the whole history, by the console's user
    detail = (await http_get("aftersales", f"/follow-ups/{cid}", auth=True)).json()
    assert (detail["status"], detail["assignee"], detail["resolution"]) == (
        "closed", support, "replaced")
    assert [(n["kind"], n["author"]) for n in detail["notes"]] == [
        ("assigned", support), ("comment", support), ("closed", support)]

    # A manager reopens it, in Chinese
    context, page = await new_page(browser, locale="zh-CN")
    await sign_in(page, users["manager"], f"/cases/{cid}")
    await page.fill("#case-reopen input[name=note]", "客户说新灯也坏了")
    await page.click("#case-reopen button")
    await expect(page.locator(".flash.ok")).to_have_text("工单已重新打开。")
    await expect(page.locator("#case-status")).to_have_text("未结")
    await shot(page, "case-reopened-zh")
    await context.close()

    # The console's audit trail has each step, with who did it
    context, page = await new_page(browser)
    await sign_in(page, users["admin"], f"/audit?q=case:{cid}")
    for action in ("cases.assign", "cases.comments", "cases.close", "cases.reopen"):
        await expect(page.locator("main")).to_contain_text(action)
    await context.close()


async def test_a_viewer_sees_cases_but_cannot_act(storefront: Storefront, browser: Browser,
                                                   users: Users) -> None:
    _, cid = await unhappy_case(storefront)
    context, page = await new_page(browser)
    await sign_in(page, users["viewer"], f"/cases/{cid}")
    await expect(page.locator("#case-facts")).to_be_visible()
    assert await page.locator("#case-assign, #case-close, #case-comment").count() == 0
    # and the server refuses the same action, whatever the page shows
    csrf = await csrf_of(page)
    cookies = {c["name"]: c["value"] for c in await context.cookies()}
    async with httpx.AsyncClient(cookies=cookies) as client:
        r = await client.post(console_url(f"/cases/{cid}/close"),
                              data={"csrf": csrf, "resolution": "resolved", "note": "x"})
    assert r.status_code == 403
    await context.close()
    # The warehouse role has no Cases page at all
    context, page = await new_page(browser)
    await sign_in(page, users["warehouse"], "/warehouse")
    assert await page.locator("nav a[href='/cases']").count() == 0
    assert (await page.goto(console_url("/cases"))).status == 403  # type: ignore[union-attr]
    await context.close()
