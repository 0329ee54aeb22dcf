"""`make run`'s demo, small: it must end with its table of orders by status."""

from __future__ import annotations

import asyncio
import os
import re
import sys

from shared.settings import service_port
from tests.conftest import ROOT

from .helpers import http_get


async def test_demo_run_ends_with_orders_by_status_most_delivered(stack: None) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tools.demo", "--orders", "60", "--rate", "60", "--days", "10", cwd=ROOT,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        env={**os.environ, "COLUMNS": "120"})
    out, _ = await asyncio.wait_for(proc.communicate(), 240)
    text = out.decode()
    assert proc.returncode == 0, text
    # rich wraps a table's title when the table is narrower than it
    found = re.findall(r"(\d+) orders by status", " ".join(text[max(0, text.rindex("┏") - 400):]
                                                             .split()))
    assert found, text[-2000:]
    total = int(found[-1])  # the summary's title, just above its table
    assert 60 <= total <= 63  # near-duplicates are extra orders
    summary = text[text.rindex("┏"):]  # the final table
    rows = {line.split("│")[1].strip(): int(line.split("│")[2])
            for line in summary.splitlines() if line.count("│") == 3
            and line.split("│")[2].strip().isdigit()}
    assert sum(rows.values()) == total
    assert rows.get("delivered", 0) + rows.get("refunded", 0) >= 40, rows

    # Its shop is set up from setup/demo.yaml: two sellers, whose revenue is reported in each
    # one's base currency (the CNY store's orders are in CNY; the US seller's in USD)
    assert "Setup: setup/demo.yaml applied" in text, text[:2000]
    cny = re.search(r"Seller shenzhen-trading: revenue ([\d.]+) CNY.*\(from ([^)]*)\)", text)
    usd = re.search(r"Seller acme-us: revenue ([\d.]+) USD.*\(from ([^)]*)\)", text)
    assert cny and usd, text[-2500:]
    assert float(cny.group(1)) > 0 and "CNY" in cny.group(2) and float(usd.group(1)) > 0
    assert "EUR" in usd.group(2)  # Amazon.de's euros, converted to the seller's dollars

    # It ends with the dashboard's address, once analytics has the demo's data.
    dashboard = f"Dashboard: http://127.0.0.1:{service_port('analytics')}/"
    assert any(line.startswith(dashboard) for line in text.splitlines()), text[-500:]
    summary = {r["metric"]: r["value"] for r in
               (await http_get("analytics", "/reports")).json()["reports"]["summary"]}
    assert summary["orders"] >= 60
    timeline = re.search(r"An order's timeline: http://127\.0\.0\.1:\d+(/orders/\S+)", text)
    assert timeline, text[-500:]
    assert (await http_get("analytics", timeline.group(1))).status_code == 200
