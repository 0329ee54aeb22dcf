"""Published outbox rows are deleted once older than the retention (shared.outbox.prune_sent,
run hourly by every instance)."""

from __future__ import annotations

from shared import outbox
from shared.db import connect
from shared.settings import service_database_url


async def test_prune_deletes_only_published_rows_older_than_the_retention(stack: None) -> None:
    pool = await connect(service_database_url("aftersales"), "aftersales", wait_seconds=10)
    try:
        async with pool.acquire() as conn:
            # Rows already published (sent_at set), so the running relay leaves them alone.
            ids = [r["id"] for r in await conn.fetch(
                "INSERT INTO outbox (topic, key, value, created_at, sent_at) VALUES"
                " ('test.retention', 'old', 'x', now() - interval '26 hours',"
                "  now() - interval '25 hours'),"
                " ('test.retention', 'recent', 'x', now() - interval '2 hours',"
                "  now() - interval '1 hour') RETURNING id")]
        try:
            deleted = await outbox.prune_sent(pool, 24)
            async with pool.acquire() as conn:
                left = {r["key"] for r in await conn.fetch(
                    "SELECT key FROM outbox WHERE id = ANY($1::bigint[])", ids)}
            assert left == {"recent"}
            assert deleted >= 1
        finally:
            async with pool.acquire() as conn:
                await conn.execute("DELETE FROM outbox WHERE topic = 'test.retention'")
    finally:
        await pool.close()
