"""CPU per order as the data grows: `python -m tools.bench_growth --orders 100000 --rate 60`.

Issue 18 asks for CPU per order at the start and at the end of a long run: a cost that grows
with the tables (a periodic job that reads every row of the month, a look-up without the index
its rows need) shows as CPU per order rising from window to window while the rate stays the
same. This publishes `orders` single-line orders at `rate` (below the pipeline's sustained
throughput, docs/BENCHMARKS.md, so every window's work is done in that window) and prints, per
window of `orders / windows` orders: the CPU per order of every service, Postgres and Kafka
while the window was published, the SQL statements per order (pg_stat_statements) and how many
of the window's orders had shipped when it ended. At the end it waits for every order to ship.
Numbers are printed, never asserted (the machine's own speed varies)."""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from typing import Any

from shared.settings import get_settings

from . import bench as b


async def run(orders: int, rate: float, windows: int) -> list[dict[str, Any]]:
    admin = get_settings().database_url
    rows: list[dict[str, Any]] = []
    async with b.TimedStorefront(get_settings().kafka_bootstrap_servers) as shop:
        bench = b.Bench(shop, await b.prepare_catalogue(shop, 20, 10_000_000))
        pids = b.service_pids()
        per_window = max(1, orders // windows)
        all_keys: list[str] = []
        for w in range(windows):
            cpu0, stmts0, t0 = b.cpu_by_process(pids), await b.statements(admin), time.perf_counter()
            keys = await bench.publish_at(rate, per_window / rate)
            cpu1, stmts1 = b.cpu_by_process(pids), await b.statements(admin)
            seconds = time.perf_counter() - t0
            all_keys += keys
            n = max(1, len(keys))
            per = {k: round(1000 * (cpu1[k] - cpu0[k]) / n, 2) for k in cpu0}
            row = {"window": w + 1, "orders_so_far": len(all_keys), "seconds": round(seconds, 1),
                   "cpu_ms_per_order": round(sum(per.values()), 2), "by_process": per,
                   "shipped_in_window": bench.shipped(keys),
                   "statements_per_order": (round((stmts1[0] - stmts0[0]) / n, 1)
                                            if stmts0 and stmts1 else None)}
            rows.append(row)
            print(f"[bench-growth] window {row['window']}/{windows}: {row['orders_so_far']}"
                  f" orders so far, CPU ms per order {row['cpu_ms_per_order']}"
                  f" (postgres {per.get('postgres')}, kafka {per.get('kafka')}),"
                  f" statements per order {row['statements_per_order']},"
                  f" {row['shipped_in_window']}/{n} of the window shipped by its end", flush=True)
        await bench.until_shipped(all_keys, timeout=600)
        print(f"[bench-growth] shipped {bench.shipped(all_keys)} of {len(all_keys)}")
    first, last = rows[0]["cpu_ms_per_order"], rows[-1]["cpu_ms_per_order"]
    print(f"[bench-growth] CPU ms per order: first window {first}, last {last}"
          f" ({(last / first - 1) * 100:+.0f} %)")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m tools.bench_growth")
    parser.add_argument("--orders", type=int, default=100_000)
    parser.add_argument("--rate", type=float, default=60)
    parser.add_argument("--windows", type=int, default=10)
    parser.add_argument("--json", default="", help="also write the windows here")
    args = parser.parse_args()
    rows = asyncio.run(run(args.orders, args.rate, args.windows))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
