"""How fast channels answers webhooks under load (Shopify gives a webhook 5 seconds): N signed
`orders/create` deliveries, C at a time, against the running stack; prints the answer times.

    python -m tools.bench_channels --deliveries 1000 --concurrency 50

Each answer means the delivery is committed to the inbox and its event to the outbox (the
relay publishes after). A refused or failed request is counted in `errors` by status code (or
exception), not retried; `load_1m` is the machine's load average when the run ends (other
processes share the cores). Results and how to read them: docs/BENCHMARKS.md, "Channels".
The store is a fresh one, deleted at the end; its SKUs are unknown, so
intake rejects the orders `unknown_sku` (the rest of the pipeline is not what is measured).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import time
import uuid

import httpx

from shared.settings import get_settings, service_port

from . import channel_emulator as emu

SECRET = "bench-webhook-secret-01"


async def bench(deliveries: int, concurrency: int) -> dict[str, float | str]:
    base = f"http://127.0.0.1:{service_port('channels')}"
    store = f"bench-{uuid.uuid4().hex[:8]}"
    auth = {"Authorization": f"Bearer {get_settings().shopkeeper_admin_token}"}
    limits = httpx.Limits(max_connections=concurrency)
    async with httpx.AsyncClient(timeout=30, limits=limits) as client:
        r = await client.put(f"{base}/channels/{store}", headers=auth,
                             json={"platform": "shopify", "webhook_secret": SECRET})
        r.raise_for_status()
        bodies = [json.dumps(emu.shopify_order(random.randint(10**11, 10**12),
                                               [("BENCH-SKU", 1, "9.99")])).encode()
                  for _ in range(deliveries)]
        times: list[float] = []
        errors = 0
        codes: dict[str, int] = {}
        queue: asyncio.Queue[bytes] = asyncio.Queue()
        for b in bodies:
            queue.put_nowait(b)

        async def worker() -> None:
            nonlocal errors
            while not queue.empty():
                body = queue.get_nowait()
                headers = {"X-Shopify-Topic": "orders/create",
                           "X-Shopify-Webhook-Id": str(uuid.uuid4()),
                           "X-Shopify-Hmac-Sha256": emu.shopify_signature(SECRET, body)}
                t0 = time.perf_counter()
                try:
                    resp = await client.post(f"{base}/webhooks/shopify/{store}", content=body,
                                             headers=headers)
                    code = str(resp.status_code)
                except httpx.HTTPError as exc:  # counted, not fatal: the run goes on
                    code = type(exc).__name__
                times.append(time.perf_counter() - t0)
                if code != "200":
                    errors += 1
                    codes[code] = codes.get(code, 0) + 1
        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        wall = time.perf_counter() - t0
        await client.delete(f"{base}/channels/{store}", headers=auth)
    q = statistics.quantiles(times, n=100)
    return {"deliveries": deliveries, "concurrency": concurrency, "errors": errors,
            "error_codes": ",".join(f"{k}:{v}" for k, v in sorted(codes.items())) or "-",
            "load_1m": os.getloadavg()[0],
            "per_second": deliveries / wall, "p50_ms": q[49] * 1000, "p95_ms": q[94] * 1000,
            "p99_ms": q[98] * 1000, "max_ms": max(times) * 1000}


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m tools.bench_channels")
    parser.add_argument("--deliveries", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=50)
    args = parser.parse_args()
    result = asyncio.run(bench(args.deliveries, args.concurrency))
    print(" ".join(f"{k}={v:.1f}" if isinstance(v, float) else f"{k}={v}"
                   for k, v in result.items()))


if __name__ == "__main__":
    main()
