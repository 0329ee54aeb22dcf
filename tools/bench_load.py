"""One fixed load, measured: `python -m tools.bench_load --rate 45 --seconds 25`.

Publishes single-line orders at `rate` for `seconds` through the bench storefront (20 SKUs, the
automatic warehouse), waits for every order to ship, then prints the CPU per order of every
service, Postgres and Kafka over that window and the latencies placed -> accepted, reserved,
shipped, and the SQL statements per order over that window (pg_stat_statements, reset when
the load starts, counted once every order has shipped; the whole shop's database, every service
and tool). The A/B protocol of docs/BENCHMARKS.md "Before and after the unit of work": run it on
two checkouts, each with its own stack (`SHOPKEEPER_PORT_OFFSET`), one after the other."""

from __future__ import annotations

import argparse
import asyncio
import os

from shared.settings import get_settings

from . import bench as b


async def run(rate: float, seconds: float) -> None:
    async with b.TimedStorefront(get_settings().kafka_bootstrap_servers) as shop:
        bench = b.Bench(shop, await b.prepare_catalogue(shop, 20, 1_000_000))
        pids = b.service_pids()
        cpu0 = b.cpu_by_process(pids)
        own0 = os.times()
        counting = await b.statements(get_settings().database_url, reset=True) is not None
        keys = await bench.publish_at(rate, seconds)
        await bench.until_shipped(keys)
        counted = await b.statements(get_settings().database_url) if counting else None
        cpu1 = b.cpu_by_process(pids)
        own1 = os.times()
        n = max(1, len(keys))
        per = {k: round(1000 * (cpu1[k] - cpu0[k]) / n, 1) for k in cpu0}
        print(f"[bench-load] {len(keys)} orders at {rate}/s; CPU ms per order: total"
              f" {sum(per.values()):.1f}, {per}")
        own = (own1.user + own1.system) - (own0.user + own0.system)
        print(f"[bench-load] the load generator itself (this process, not in the total):"
              f" {1000 * own / n:.1f} CPU ms per order")
        print(f"[bench-load] latency ms (to the status's publication): {bench.latencies(keys)}")
        print(f"[bench-load] latency ms (to its arrival at our watcher): "
              f"{bench.latencies(keys, as_watched=True)}")
        if counted is not None:
            print(f"[bench-load] SQL statements per order: {counted[0] / n:.1f}"
                  f" ({counted[1] / n:.1f} without BEGIN/COMMIT)")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m tools.bench_load")
    parser.add_argument("--rate", type=float, default=45)
    parser.add_argument("--seconds", type=float, default=25)
    args = parser.parse_args()
    asyncio.run(run(args.rate, args.seconds))


if __name__ == "__main__":
    main()
