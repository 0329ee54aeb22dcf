"""`python -m services.inventory.reconcile [--repair] [--sku SKU]`: verify every balance
against the ledger, print the drift as JSON, and with --repair add correcting ledger rows.
Exit status 1 when drift remains."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys

from shared.db import connect
from shared.settings import service_database_url

from . import store


async def main(repair: bool, sku: str | None) -> int:
    pool = await connect(service_database_url("inventory"), "inventory", wait_seconds=10)
    try:
        async with pool.acquire() as conn:
            done = await store.reconcile(conn, repair=repair, sku=sku) if repair else []
            drift = await store.reconcile(conn, sku=sku)
    finally:
        await pool.close()
    print(json.dumps({"repaired": done, "balanced": not drift, "drift": drift}, default=str))
    return 1 if drift else 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repair", action="store_true")
    parser.add_argument("--sku")
    args = parser.parse_args()
    sys.exit(asyncio.run(main(args.repair, args.sku)))
