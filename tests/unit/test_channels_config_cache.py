"""The webhooks' channel config cache (services/channels/api.py): when an entry expires, one load
refreshes it while concurrent deliveries keep the entry they had; a miss waits for that one
load; a change through this instance is read afresh."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from types import SimpleNamespace
from typing import Any

import pytest

from services.channels import api, store
from services.channels.platforms.base import ChannelConfig

CFG = ChannelConfig(store="s1", platform="shopify", api_base_url=None,
                    secrets={"webhook_secret": "x" * 8}, sku_map={})


class Pool:
    @contextlib.asynccontextmanager
    async def acquire(self) -> AsyncIterator[object]:
        yield object()


def request() -> Any:
    return SimpleNamespace(app=SimpleNamespace(state=SimpleNamespace(
        runtime=SimpleNamespace(pool=Pool()))))


@pytest.fixture
def loads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    seen: list[str] = []

    async def get_channel(conn: object, name: str) -> ChannelConfig:
        seen.append(name)
        await asyncio.sleep(0.05)  # a round trip and a decryption
        return CFG

    monkeypatch.setattr(store, "get_channel", get_channel)
    api._configs.clear()
    api._loading.clear()
    return seen


async def test_fifty_deliveries_on_a_cold_entry_make_one_load(loads: list[str]) -> None:
    got = await asyncio.gather(*(api._cached_channel(request(), "s1") for _ in range(50)))
    assert loads == ["s1"] and all(c is CFG for c in got)


async def test_an_expired_entry_is_refreshed_once_and_served_meanwhile(
        loads: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    await api._cached_channel(request(), "s1")
    # When the entry has expired and 50 deliveries arrive together
    monkeypatch.setattr(api, "CONFIG_TTL", 0.0)
    got = await asyncio.gather(*(api._cached_channel(request(), "s1") for _ in range(50)))
    # Then none waits for a load (they keep the entry) and one refresh runs
    assert all(c is CFG for c in got)
    await asyncio.sleep(0.1)
    assert loads == ["s1", "s1"]


async def test_a_change_through_this_instance_is_read_afresh(loads: list[str]) -> None:
    await api._cached_channel(request(), "s1")
    api._forget("s1")
    await api._cached_channel(request(), "s1")
    assert loads == ["s1", "s1"]
