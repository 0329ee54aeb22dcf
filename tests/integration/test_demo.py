"""`make run`'s demo, small: it must end with its table of orders by status."""

from __future__ import annotations

import asyncio
import os
import sys

from tests.conftest import ROOT


async def test_demo_run_ends_with_orders_by_status_most_delivered(stack: None) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tools.demo", "--orders", "60", "--rate", "60", "--days", "10", cwd=ROOT,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        env={**os.environ, "COLUMNS": "120"})
    out, _ = await asyncio.wait_for(proc.communicate(), 240)
    text = out.decode()
    assert proc.returncode == 0, text
    title = next(line for line in text.splitlines() if line.strip().endswith("orders by status")
                 and line.strip()[0].isdigit())
    total = int(title.split()[0])
    assert 60 <= total <= 63  # near-duplicates are extra orders
    summary = text[text.index(title):]
    rows = {line.split("│")[1].strip(): int(line.split("│")[2])
            for line in summary.splitlines() if line.count("│") == 3
            and line.split("│")[2].strip().isdigit()}
    assert sum(rows.values()) == total
    assert "Dashboard: http://127.0.0.1:" in text
    assert rows.get("delivered", 0) + rows.get("refunded", 0) >= 40, rows
