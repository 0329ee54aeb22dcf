"""Analytics benchmarks (docs/BENCHMARKS.md, "Analytics at a million orders"):

- `cpu`: orders through the whole pipeline at a steady rate; analytics' CPU seconds per 1,000
  orders, counted once every consumer has caught up (so the rollup writes of every event are in).
- `dashboard`: every request the dashboard and the CLI make (summary, the reports page, each
  report, each report's CSV for a month), sequentially, N times each: p50, p95, max; analytics'
  resident memory before and after.

    python -m tools.bench_analytics cpu --orders 1000 --rate 40
    python -m tools.bench_analytics dashboard --repeat 20 --month 2025-08
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from services.analytics import domain
from shared.settings import get_settings, service_port
from tools.bench import (
    Bench,
    TimedStorefront,
    cpu_seconds,
    pct,
    prepare_catalogue,
    service_pids,
    settle,
)


def rss_mb(pid: int) -> tuple[float, float]:
    """Resident and peak resident memory (MB) of a process."""
    fields = dict(line.split(":", 1) for line in
                  Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    return (int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024)


async def cpu(orders: int, rate: float, idle_seconds: float = 20.0) -> dict[str, Any]:
    """Analytics' CPU seconds per 1,000 orders, and the same less what the process burns idle
    (its timers, jobs, Kafka long polls and Prometheus scrapes, measured for `idle_seconds`
    first with nothing published, times the run's duration): the cost of the events
    themselves, which does not fall as the rate rises."""
    settings = get_settings()
    async with TimedStorefront(settings.kafka_bootstrap_servers) as shop:
        skus = await prepare_catalogue(shop, 20, 1_000_000)
        bench = Bench(shop, skus)
        await bench.step(10, 3)  # warm-up, not counted
        await settle()
        pid = service_pids()["analytics"][0]
        idle_from, idle_t0 = cpu_seconds(pid), time.monotonic()
        await asyncio.sleep(idle_seconds)
        idle_rate = (cpu_seconds(pid) - idle_from) / (time.monotonic() - idle_t0)
        before, t0 = cpu_seconds(pid), time.monotonic()
        n0 = bench.n
        keys = await bench.publish_at(rate, orders / rate)
        await bench.until_shipped(keys, timeout=600)
        await settle(600)
        elapsed = time.monotonic() - t0
        done = bench.n - n0
        used = cpu_seconds(pid) - before
    above_idle = max(0.0, used - idle_rate * elapsed)
    return {"orders": done, "rate": rate, "analytics_cpu_s": round(used, 2),
            "analytics_cpu_s_per_1000_orders": round(1000 * used / max(done, 1), 2),
            "idle_cpu_s_per_minute": round(60 * idle_rate, 2),
            "run_seconds": round(elapsed, 1),
            "analytics_cpu_s_per_1000_orders_above_idle": round(
                1000 * above_idle / max(done, 1), 2),
            "analytics_rss_mb": [round(x, 1) for x in rss_mb(pid)]}


async def dashboard(repeat: int, month: str | None, last_days: bool) -> dict[str, Any]:
    """Every request `repeat` times. Reports over `month` (YYYY-MM; default: last month), as the
    dashboard asks them with its from/to filled in, or with `last_days` over the dashboard's
    default range (the last 30 days); CSVs of `month`."""
    base = f"http://127.0.0.1:{service_port('analytics')}"
    today = datetime.now(UTC).date()
    if month:
        first = date.fromisoformat(f"{month}-01")
    else:
        first = (today.replace(day=1) - timedelta(days=1)).replace(day=1)
    last = (first + timedelta(days=32)).replace(day=1) - timedelta(days=1)
    span = f"from={first.isoformat()}&to={last.isoformat()}"
    q = "" if last_days else f"?{span}"
    paths = ["/summary", f"/reports{q}", "/reports/options"]
    paths += [f"/reports/{name}{q}" for name in domain.REPORTS]
    paths += [f"/reports/{name}.csv?{span}" for name in domain.REPORTS]
    pid = service_pids()["analytics"][0]
    rss_before = rss_mb(pid)
    out: dict[str, Any] = {"requests": {}}
    async with httpx.AsyncClient(base_url=base, timeout=120) as http:
        for path in paths:
            samples = []
            for _ in range(repeat):
                t0 = time.perf_counter()
                r = await http.get(path)
                samples.append((time.perf_counter() - t0) * 1000)
                r.raise_for_status()
            samples.sort()
            out["requests"][path] = {"p50_ms": round(pct(samples, 50), 1),
                                     "p95_ms": round(pct(samples, 95), 1),
                                     "max_ms": round(samples[-1], 1)}
            print(f"[bench] {path}: {out['requests'][path]}", flush=True)
    out["analytics_rss_mb_before"] = round(rss_before[0], 1)
    rss_after, peak = rss_mb(pid)
    out["analytics_rss_mb_after"] = round(rss_after, 1)
    out["analytics_peak_rss_mb"] = round(peak, 1)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m tools.bench_analytics")
    sub = parser.add_subparsers(dest="what", required=True)
    c = sub.add_parser("cpu", help="analytics CPU per 1,000 orders through the pipeline")
    c.add_argument("--orders", type=int, default=1000)
    c.add_argument("--rate", type=float, default=40.0)
    c.add_argument("--idle-seconds", type=float, default=20.0,
                   help="how long to measure the process idle first")
    d = sub.add_parser("dashboard", help="latency of every dashboard request")
    d.add_argument("--repeat", type=int, default=20)
    d.add_argument("--month", help="YYYY-MM: the reports' range and the CSVs' month")
    d.add_argument("--last-days", action="store_true",
                   help="reports over the dashboard's default range instead of --month")
    args = parser.parse_args()
    result = asyncio.run(cpu(args.orders, args.rate, args.idle_seconds) if args.what == "cpu"
                         else dashboard(args.repeat, args.month, args.last_days))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
