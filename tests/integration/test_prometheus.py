"""Prometheus in the local stack scrapes every service and the web console, and has every alert
rule loaded."""

from __future__ import annotations

import httpx
import yaml

from shared.settings import SERVICES, WEB_APPS, prometheus_port
from tests.conftest import ROOT

from .helpers import eventually

API = f"http://127.0.0.1:{prometheus_port()}/api/v1"


async def test_prometheus_scrapes_every_service_and_loads_every_rule(stack: None) -> None:
    wanted_targets = (*SERVICES, *WEB_APPS)
    async with httpx.AsyncClient(timeout=10) as client:
        async def all_up() -> dict[str, str] | None:
            targets = (await client.get(f"{API}/targets")).json()["data"]["activeTargets"]
            health = {t["labels"].get("service", ""): t["health"] for t in targets}
            return health if all(health.get(s) == "up" for s in wanted_targets) else None
        health = await eventually(all_up, timeout=60, what="every service target up")
        assert set(wanted_targets) <= set(health)
        # And the console's own series are there (its outbox relay's), labelled as the console
        query = 'shopkeeper_outbox_quarantined{service="console"}'

        async def console_series() -> list[object] | None:
            body = (await client.get(f"{API}/query", params={"query": query})).json()
            return body["data"]["result"] or None
        await eventually(console_series, timeout=60, what="the console's series scraped")

        rules = (await client.get(f"{API}/rules")).json()["data"]["groups"]
        loaded = {r["name"] for g in rules for r in g["rules"]}
        wanted = {r["alert"] for g in yaml.safe_load(
            (ROOT / "stack/prometheus/alerts.yml").read_text())["groups"] for r in g["rules"]}
        assert wanted and wanted <= loaded, wanted - loaded
