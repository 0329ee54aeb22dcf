"""Fixtures of the console's browser tests (tests/integration/test_console*.py): Chromium and one
fresh user of each role, once per test module (console_browser.py has the helpers)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from playwright.async_api import Browser

from .console_browser import chromium, make_users


@pytest.fixture(scope="module")
async def browser(stack: None) -> AsyncIterator[Browser]:
    async with chromium() as b:
        yield b


@pytest.fixture(scope="module")
async def users(stack: None) -> dict[str, tuple[str, str]]:
    return await make_users()
