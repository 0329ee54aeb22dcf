"""The benchmark in miniature, so it never rots. It asserts that every figure is reported,
never a timing (speed is for `make bench` to measure)."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

from tests.conftest import ROOT


async def test_bench_smoke_reports_every_figure(stack: None, tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tools.bench", "--rates", "10", "--step-seconds", "3",
        "--warmup-seconds", "1", "--latency-seconds", "2", "--kafka-messages", "2000",
        "--pg-seconds", "1", "--json", str(out), "--markdown", str(tmp_path / "bench.md"),
        cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        env=dict(os.environ))
    text, _ = await asyncio.wait_for(proc.communicate(), 400)
    assert proc.returncode == 0, text.decode()[-3000:]
    result = json.loads(out.read_text())
    assert result["kafka_msgs_per_s"] > 0 and result["postgres_tx_per_s"] > 0
    assert result["steps"] and result["steps"][0]["orders"] == 30
    assert result["steps"][0]["shipped"] == 30
    assert set(result["latency_ms"]) == {"accepted", "reserved", "shipped"}
    assert set(result["cpu_s_per_1000_orders"]) == {"intake", "inventory", "fulfillment",
                                                   "logistics", "aftersales", "analytics"}
    assert "| rate offered" in (tmp_path / "bench.md").read_text()
