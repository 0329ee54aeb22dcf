"""Test session plumbing. Integration tests use the real local stack: if it is not running, the
session starts it (`python -m stack up`) and stops it at the end, leaving no process behind; a
stack that was already running is reused and left running."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from shared.settings import get_settings

ROOT = Path(__file__).resolve().parent.parent
BOOTSTRAP = get_settings().kafka_bootstrap_servers


def _stack_ready() -> bool:
    from stack.__main__ import SERVICES, WEB_APPS, service_ready

    return all(service_ready(s) for s in (*SERVICES, *WEB_APPS))


@pytest.fixture(scope="session")
def stack() -> Iterator[None]:
    started = False
    if not _stack_ready():
        subprocess.run([sys.executable, "-m", "stack", "up"], cwd=ROOT, check=True)
        started = True
    yield
    if started and not os.environ.get("SHOPKEEPER_KEEP_STACK"):
        subprocess.run([sys.executable, "-m", "stack", "down"], cwd=ROOT, check=False)


@pytest.fixture(scope="session")
async def storefront(stack: None) -> AsyncIterator[object]:
    from tools.storefront import Storefront

    async with Storefront(BOOTSTRAP) as sf:
        yield sf


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "integration" in str(item.fspath):
            item.add_marker(pytest.mark.integration)


def ref(prefix: str) -> str:
    """Unique ids per test, so tests never see each other's orders or stock."""
    return f"{prefix}-{uuid.uuid4().hex[:10]}"
