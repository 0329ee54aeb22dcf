"""`shared.db.read_all`: several reads of a run in one statement (docs/messaging.md), on the real
Postgres: each read's rows come back typed as its columns are, in the order the read gives
them, with its own parameters; a data-modifying read (DELETE ... RETURNING) works too; a read
known without asking sends nothing; and one statement is sent for all of them."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import asyncpg

from shared.db import Read, read_all
from shared.settings import get_settings


class Counting:
    def __init__(self, conn: asyncpg.Connection) -> None:
        self._conn = conn
        self.sent: list[str] = []

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._conn, name)
        if name in ("fetch", "fetchrow"):
            async def counted(sql: str, *args: Any) -> Any:
                self.sent.append(sql)
                return await attr(sql, *args)
            return counted
        return attr


async def test_reads_are_sent_together_typed_and_in_order(stack: None) -> None:
    conn = await asyncpg.connect(get_settings().database_url)
    tx = conn.transaction()
    await tx.start()
    try:
        await conn.execute(
            "CREATE TEMP TABLE t (id uuid, n int, price numeric(10, 2), at timestamptz,"
            " tags text[]) ON COMMIT DROP; CREATE TEMP TABLE q (k text) ON COMMIT DROP;"
            " INSERT INTO q VALUES ('a'), ('b'), ('c')")
        ids = [uuid.uuid4() for _ in range(3)]
        at = datetime(2026, 12, 7, 3, 0, tzinfo=UTC)
        await conn.executemany("INSERT INTO t VALUES ($1, $2, $3, $4, $5)",
                               [(i, n, Decimal(n) / 4, at, [f"x{n}"])
                                for n, i in enumerate(ids)])
        counting = Counting(conn)
        rows, taken, nothing, few = await read_all(
            counting,  # type: ignore[arg-type]
            Read("SELECT id, n, price, at, tags FROM t WHERE n >= $1 ORDER BY n DESC", (0,),
                 lambda rs: [(r["id"], r["n"], r["price"], r["at"], r["tags"]) for r in rs]),
            Read("DELETE FROM q WHERE k = ANY($1::text[]) RETURNING k", (["a", "c"],),
                 lambda rs: sorted(r["k"] for r in rs)),
            Read.known("no keys"),
            Read("SELECT n FROM t WHERE n < $1 AND id = ANY($2::uuid[]) ORDER BY n", (2, ids),
                 lambda rs: [r["n"] for r in rs]))
        assert len(counting.sent) == 1  # one statement for the three reads asked
        assert rows == [(ids[n], n, Decimal(n) / 4, at, [f"x{n}"]) for n in (2, 1, 0)]
        assert taken == ["a", "c"]
        assert await conn.fetchval("SELECT array_agg(k) FROM q") == ["b"]
        assert nothing == "no keys"
        assert few == [0, 1]
        alone = Counting(conn)
        assert await Read("SELECT k FROM q", (), lambda rs: [r["k"] for r in rs]).fetch(
            alone) == ["b"]  # type: ignore[arg-type]
        assert len(alone.sent) == 1
    finally:
        await tx.rollback()
        await conn.close()
