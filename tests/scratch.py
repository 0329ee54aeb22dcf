"""A scratch schema made from a service's own migrations (seed data included), dropped
afterwards: the handler tests' `service_db`, and the integration tests that need a schema
holding only their own rows."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg

from shared.db import connect, migrate
from shared.settings import get_settings

ROOT = Path(__file__).resolve().parents[1]


@contextlib.asynccontextmanager
async def scratch_schema(service: str, prefix: str = "h") -> AsyncIterator[asyncpg.Pool]:
    """`async with scratch_schema("analytics") as pool:` a fresh schema at the service's
    migrations, reached through `pool` (the admin login, search_path on the schema)."""
    schema = f"{prefix}_{service}_{uuid.uuid4().hex[:8]}"
    admin = get_settings().database_url
    conn = await asyncpg.connect(admin)
    await conn.execute(f"CREATE SCHEMA {schema}")
    pool = await connect(admin, schema, min_size=1, max_size=4)
    try:
        await migrate(pool, schema, ROOT / "services" / service)
        yield pool
    finally:
        await pool.close()
        await conn.execute(f"DROP SCHEMA {schema} CASCADE")
        await conn.close()
