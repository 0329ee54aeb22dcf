"""How long the console's pages take on the running stack, as a signed-in manager sees them:
`python -m tools.bench_console [--rounds 20]` (SHOPKEEPER_PORT_OFFSET as for the stack).

Prints, per page, the median and the slowest of `rounds` sequential requests (the pages call
several services each: Exceptions asks logistics twice and the eight outboxes in parallel;
an e-mail search asks intake, then analytics per order found), and intake's own e-mail search
alone with the plan Postgres chose for it. Numbers, no verdict: compare runs on one machine.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
import uuid

import asyncpg
import httpx

from shared.settings import get_settings, service_database_url, service_port
from tools.console_users import add_user
from tools.endpoints import service_url

PAGES = ("/orders?by=email&q=ana%40example.com", "/orders?by=phone&q=%2B5511999990000",
         "/exceptions", "/review", "/dashboard")


async def _timed(client: httpx.AsyncClient, path: str, rounds: int) -> tuple[float, float, int]:
    took = []
    status = 0
    for _ in range(rounds):
        t0 = time.perf_counter()
        r = await client.get(path)
        took.append(time.perf_counter() - t0)
        status = r.status_code
    return statistics.median(took), max(took), status


async def main(rounds: int) -> None:
    name = f"bench-{uuid.uuid4().hex[:8]}"
    password, _ = await add_user(name, "manager", one_time=False)
    base = f"http://127.0.0.1:{service_port('console')}"
    async with httpx.AsyncClient(base_url=base, timeout=60) as client:
        form = (await client.get("/login")).text.split('action="/login"')[1]
        token = form.split('name="csrf" value="')[1].split('"')[0]
        r = await client.post("/login", data={"username": name, "password": password,
                                              "csrf": token})
        assert r.status_code == 303, r.text[:300]
        print(f"console pages, {rounds} sequential requests each (median / slowest):")
        for path in PAGES:
            median, worst, status = await _timed(client, path, rounds)
            print(f"  {path:45s} {median * 1000:7.1f} ms / {worst * 1000:7.1f} ms  (HTTP {status})")
    headers = {"Authorization": f"Bearer {get_settings().shopkeeper_admin_token}"}
    async with httpx.AsyncClient(base_url=service_url("intake"), timeout=60,
                                 headers=headers) as intake:
        median, worst, status = await _timed(intake, "/orders?email=ana@example.com&limit=50",
                                             rounds)
        found = len((await intake.get("/orders?email=ana@example.com&limit=50")).json())
        print(f"intake GET /orders?email= ({found} found, limit 50): {median * 1000:.1f} ms /"
              f" {worst * 1000:.1f} ms (HTTP {status})")
    conn = await asyncpg.connect(service_database_url("intake"),
                                 server_settings={"search_path": "intake"})
    try:
        count = await conn.fetchval("SELECT count(*) FROM orders")
        plan = await conn.fetch(
            "EXPLAIN SELECT order_id FROM orders WHERE payload->'customer'->>'email' IS NOT NULL"
            " AND lower(btrim(payload->'customer'->>'email')) = 'ana@example.com'"
            " ORDER BY received_at DESC LIMIT 50")
    finally:
        await conn.close()
    print(f"intake's plan for an e-mail search over {count} orders:")
    for row in plan:
        print("  " + row[0])


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20)
    asyncio.run(main(parser.parse_args().rounds))
