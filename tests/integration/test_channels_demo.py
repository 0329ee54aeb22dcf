"""`make run`'s platforms part: one store per platform, each through its real entry point."""

from __future__ import annotations

import io

from rich.console import Console

from tools.channel_demo import ChannelDemo

from .helpers import admin_client


async def test_demo_sends_an_order_through_each_platform_and_shows_tracking_written_back(
        stack: None) -> None:
    out = io.StringIO()
    demo = ChannelDemo(1, Console(file=out, width=200))
    assert await demo.run() == 0
    text = out.getvalue()
    rows = [line for line in text.splitlines() if line.startswith("│")]
    by_platform = {r.split("│")[1].strip(): r for r in rows}
    assert set(by_platform) == {"shopify", "woocommerce", "amazon", "generic"}, text
    assert all("shipped" in r for r in rows), text
    assert "fulfillment " in by_platform["shopify"]
    assert "completed + note" in by_platform["woocommerce"]
    assert "shipment" in by_platform["amazon"]
    async with admin_client("channels") as c:
        listed = {ch["store"]: ch for ch in (await c.get("/channels")).json()}
    assert listed["demo-amazon"]["options"]["paused"] is True
    assert listed["demo-shopify"]["writebacks_done"] >= 1
