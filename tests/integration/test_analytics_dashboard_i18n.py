"""The analytics dashboard (:8006/) in 中文 and English in a real browser (Debian's Chromium
through Playwright): the browser's languages choose, the switch changes every word and is kept,
`?lang=` wins, and no English phrase of the catalogue is left on the Chinese page. Screenshots:
artifacts/dashboard-zh.png and artifacts/dashboard-en.png."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import pytest
from playwright.async_api import Browser, Page, expect

from shared.settings import service_port
from tests.conftest import ROOT, ref
from tests.unit.test_analytics_dashboard_i18n import MESSAGES
from tools import storefront as sfm
from tools.console_users import add_user
from tools.storefront import Storefront

from .console_browser import chromium, new_page, sign_in
from .helpers import new_product

ARTIFACTS = ROOT / "artifacts"


@pytest.fixture(scope="module")
async def browser(stack: None) -> AsyncIterator[Browser]:
    async with chromium() as b:
        yield b


def dashboard(query: str = "") -> str:
    return f"http://127.0.0.1:{service_port('analytics')}/{query}"


async def rendered(page: Page) -> None:
    await expect(page.locator("#render-status")).to_have_attribute("data-rendered", "true",
                                                                   timeout=30_000)


async def reader_text(page: Page) -> str:
    """What a reader sees in words: the page without the data cells (SKUs, store names, dates,
    numbers as the reports have them) and without the hidden marker for tests."""
    text: str = await page.evaluate(
        "() => { const b = document.body.cloneNode(true);"
        " b.querySelectorAll('td, #render-status, select[name=store] option,"
        " select[name=country] option, select[name=warehouse] option,"
        " select[name=carrier] option').forEach(e => { if (!e.dataset.i18n) e.remove(); });"
        " return b.innerText; }")
    return text


def english_left(text: str) -> list[str]:
    en, zh = MESSAGES["en"], MESSAGES["zh-CN"]
    return [f"{k}: {p}" for k, p in en.items() if p != zh.get(k) and len(p) >= 3
            and re.search(rf"(?<![\w.:-]){re.escape(p)}(?![\w.:-])", text)]


async def test_the_dashboard_speaks_the_browsers_language_and_switches(
        storefront: Storefront, browser: Browser) -> None:
    sf = storefront
    # Given a store with a shipped order
    store = ref("i18n")
    sku = await new_product(sf, stock={"WH-LA": 5})
    ext = ref("o")
    await sf.publish("orders.placed", f"{store}:{ext}", sfm.order(store, ext, [(sku, 1, "9.00")]))
    await sf.wait_for(f"{store}:{ext}", "shipped", timeout=90)

    # When a browser that prefers Chinese opens the dashboard
    context, page = await new_page(browser, locale="zh-CN")
    await page.goto(dashboard(f"?store={store}"))
    await rendered(page)
    # Then it is in Chinese, with no English phrase of the catalogue left
    await expect(page.locator("html")).to_have_attribute("lang", "zh-CN")
    await expect(page.locator("h1")).to_have_text("Shopkeeper 数据分析")
    await expect(page.locator(".tile[data-kpi=orders] span")).to_have_text("订单数")
    text = await reader_text(page)
    assert not english_left(text), english_left(text)
    assert "按状态统计的订单" in text and "全部指标" in text
    # And the codes in the tables are words too (the KPI table's names)
    await expect(page.locator("#t-summary")).to_contain_text("准时送达率")
    await page.screenshot(path=str(ARTIFACTS / "dashboard-zh.png"), full_page=True)

    # When the reader switches to English
    await page.click("button[data-lang=en]")
    # Then every word changes, the charts stay drawn, and the choice is kept on reload
    await expect(page.locator("html")).to_have_attribute("lang", "en")
    await expect(page.locator("h1")).to_have_text("Shopkeeper analytics")
    await expect(page.locator(".tile[data-kpi=orders] span")).to_have_text("orders")
    await expect(page.locator("#t-summary")).to_contain_text("on-time delivery rate")
    assert "lang=en" in page.url
    await page.goto(dashboard(f"?store={store}"))
    await rendered(page)
    await expect(page.locator("h1")).to_have_text("Shopkeeper analytics")
    assert "订单" not in await reader_text(page)
    await page.screenshot(path=str(ARTIFACTS / "dashboard-en.png"), full_page=True)
    await context.close()

    # And ?lang= chooses over an English browser
    context, page = await new_page(browser, locale="en-US")
    await page.goto(dashboard(f"?store={store}&lang=zh-CN"))
    await rendered(page)
    await expect(page.locator("h1")).to_have_text("Shopkeeper 数据分析")
    await context.close()


async def test_the_consoles_dashboard_opens_the_charts_in_the_consoles_language(
        browser: Browser) -> None:
    # Given a console user who reads Chinese
    name = ref("dash")
    password, _ = await add_user(name, "viewer", one_time=False)
    context, page = await new_page(browser, locale="zh-CN")
    await sign_in(page, (name, password), "/dashboard")
    # When they open the charts from the console's Dashboard
    link = page.locator("#analytics-charts")
    await expect(link).to_contain_text("数据分析看板")
    async with context.expect_page() as opened:
        await link.click()
    charts = await opened.value
    # Then the analytics dashboard is in Chinese too
    await rendered(charts)
    await expect(charts.locator("h1")).to_have_text("Shopkeeper 数据分析")
    assert "lang=zh-CN" in charts.url
    await context.close()
