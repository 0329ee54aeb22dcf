"""The benchmark in miniature, so it never rots. It asserts that every figure is reported,
never a timing (speed is for `make bench` to measure)."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

from shared.settings import SERVICES
from tests.conftest import ROOT


async def test_bench_smoke_reports_every_figure(stack: None, tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tools.bench", "--rates", "10", "--step-seconds", "3",
        "--warmup-seconds", "1", "--latency-seconds", "2", "--kafka-messages", "2000",
        "--latency-runs", "1", "--latency-rate", "5",
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
    assert set(result["cpu_s_per_1000_orders"]) == set(SERVICES)
    assert set(result["infra_cpu_s_per_1000_orders"]) == {"postgres", "kafka"}
    assert result["infra_cpu_s_per_1000_orders"]["postgres"] > 0
    assert result["statements_per_order"]["all"] > 0  # pg_stat_statements is preloaded
    assert len(result["fixed_rate_latency"]) == 1
    assert "reserved" in result["fixed_rate_latency"][0]
    text_md = (tmp_path / "bench.md").read_text()
    assert "| rate offered" in text_md
    assert "## Before and after the optimisation" in text_md  # against docs/bench-baseline.json


def test_bench_markdown_keeps_the_notes_written_under_its_mark(tmp_path: Path) -> None:
    from tools.bench import NOTES_MARK, write_markdown
    doc = tmp_path / "BENCHMARKS.md"
    doc.write_text(f"# old figures\n{NOTES_MARK}\nwhy the figures are what they are\n")
    write_markdown(doc, "# new figures\n")
    assert doc.read_text() == f"# new figures\n\n{NOTES_MARK}\nwhy the figures are what they are\n"


async def test_the_consumer_comparison_reports_both_consumers(stack: None) -> None:
    """`python -m tools.bench_consumer` (FastStream's subscriber against our poll loop, the
    measurement behind docs/messaging.md) runs and prints its table; no timing is asserted."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tools.bench_consumer", "--records", "300",
        "--latency-records", "20", "--rate", "20", "--idle-seconds", "1",
        cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        env=dict(os.environ))
    text, _ = await asyncio.wait_for(proc.communicate(), 300)
    out = text.decode()
    assert proc.returncode == 0, out[-3000:]
    rows = [line for line in out.splitlines() if line.startswith(("| faststream", "| ours"))]
    assert len(rows) == 2 and all(len(r.split("|")) == 7 for r in rows)


async def test_the_fixed_load_prints_cpu_per_order_and_latencies(stack: None) -> None:
    """`python -m tools.bench_load` (the A/B protocol of docs/BENCHMARKS.md) ships its orders
    and prints both lines; no timing is asserted."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tools.bench_load", "--rate", "5", "--seconds", "2",
        cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        env=dict(os.environ))
    text, _ = await asyncio.wait_for(proc.communicate(), 300)
    out = text.decode()
    assert proc.returncode == 0, out[-3000:]
    assert "[bench-load] 10 orders at 5.0/s; CPU ms per order: total" in out
    assert "'reserved': {'p50'" in out


async def test_the_growth_run_reports_every_window(stack: None, tmp_path: Path) -> None:
    """`python -m tools.bench_growth` (CPU per order at the start and the end of a long run,
    issue 18) in miniature: every window is reported with its CPU per process and its
    statements, and every order ships. No timing is asserted."""
    out = tmp_path / "growth.json"
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tools.bench_growth", "--orders", "20", "--rate", "10",
        "--windows", "2", "--json", str(out),
        cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        env=dict(os.environ))
    text, _ = await asyncio.wait_for(proc.communicate(), 300)
    assert proc.returncode == 0, text.decode()[-3000:]
    rows = json.loads(out.read_text())
    assert [r["orders_so_far"] for r in rows] == [10, 20]
    assert all(set(r["by_process"]) == set(SERVICES) | {"postgres", "kafka"} for r in rows)
    assert all(r["statements_per_order"] > 0 for r in rows)
    assert "shipped 20 of 20" in text.decode()
