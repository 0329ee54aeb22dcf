"""What the console's browser tests share: Debian's Chromium driven by Playwright (never a
downloaded browser), console users per module, signing in, and screenshots under artifacts/."""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from playwright.async_api import Browser, BrowserContext, Page, async_playwright, expect

from services.console.i18n import catalogue
from shared.settings import service_port
from tests.conftest import ref
from tools.console_users import add_user

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]
HAVE_CHROMIUM = os.path.exists(CHROMIUM)
# How long `expect(...)` waits for a page to show something (Playwright's default is 5 s): the
# Exceptions page reads a whole DLQ and asks nine services; on a loaded two-core machine that
# once took longer. A wait, not a speed check (tools/bench_console.py measures the pages).
expect.set_options(timeout=20_000)
SHOTS = Path(__file__).resolve().parents[2] / "artifacts" / "console"


def console_url(path: str = "") -> str:
    return f"http://127.0.0.1:{service_port('console')}{path}"


@contextlib.asynccontextmanager
async def chromium() -> AsyncIterator[Browser]:
    """Debian's Chromium (each test module's `browser` fixture)."""
    assert HAVE_CHROMIUM, "chromium is missing: scripts/install-system-deps.sh"
    async with async_playwright() as p:
        b = await p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            yield b
        finally:
            await b.close()


async def make_users() -> dict[str, tuple[str, str]]:
    """role -> (user name, password): one fresh user of each role for the module."""
    out: dict[str, tuple[str, str]] = {}
    for role in ("admin", "manager", "warehouse", "support", "viewer"):
        name = ref(role[:3])
        password, _ = await add_user(name, role, one_time=False)
        out[role] = (name, password)
    return out


async def new_page(browser: Browser, locale: str = "en-US") -> tuple[BrowserContext, Page]:
    """A fresh browser profile (no cookies) on a tablet-sized screen."""
    context = await browser.new_context(viewport={"width": 1180, "height": 820}, locale=locale)
    page = await context.new_page()
    page.set_default_timeout(20_000)
    return context, page


async def sign_in(page: Page, user: tuple[str, str], next_path: str = "/orders") -> None:
    await page.goto(console_url(f"/login?next={next_path}"))
    await page.fill("input[name=username]", user[0])
    await page.fill("input[name=password]", user[1])
    await page.click("#sign-in")
    await page.wait_for_url(re.compile(re.escape(next_path.split("?")[0])))


async def shot(page: Page, name: str) -> None:
    """The whole page, or its first 3,000 pixels when longer (queues grow as tests run; a huge
    full-page capture times out)."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    height = await page.evaluate("document.documentElement.scrollHeight")
    await page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=height <= 3000,
                          clip=None if height <= 3000 else {"x": 0, "y": 0, "width": 1180,
                                                            "height": 3000})


async def csrf_of(page: Page) -> str:
    value = await page.get_attribute("input[name=csrf]", "value")
    assert value
    return value


async def ui_text(page: Page) -> str:
    """The page's text without what people and services wrote (notes, codes, raw messages:
    `.data`, `code`, `pre`), which stays in the language it was written in."""
    text: str = await page.evaluate(
        "() => { const b = document.body.cloneNode(true);"
        " b.querySelectorAll('.data, code, pre').forEach(e => e.remove());"
        " return b.innerText; }")
    return text


def english_left(text: str) -> list[str]:
    """The console's English phrases (those that differ in Chinese) found in a page's text."""
    en, zh = catalogue("en"), catalogue("zh_CN")
    found = []
    for key, phrase in en.items():
        if phrase == zh.get(key) or len(phrase) < 3:
            continue
        if re.search(rf"(?<![\w.:-]){re.escape(phrase)}(?![\w.:-])", text):
            found.append(f"{key}: {phrase}")
    return found


def any_status(timeline: list[dict[str, Any]], status: str) -> bool:
    return any(step["status"] == status for step in timeline)
