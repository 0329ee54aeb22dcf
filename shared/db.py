"""Postgres for one service: its pool (its own role and schema), migrations, the inbox."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

import asyncpg
from asyncpg.pool import PoolConnectionProxy
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_delay

from .retry import jittered, log_before_retry

Conn = asyncpg.Connection | PoolConnectionProxy
"""A connection, bare or from a pool: what handlers and stores take."""

log = logging.getLogger(__name__)

T = TypeVar("T")

SHARED_MIGRATIONS = Path(__file__).parent / "migrations"

class StaleReference(Exception):
    """Cached reference data changed while a unit of work was using it (shared/reference.py): the
    unit of work is retried, and reads the new version from the start. Transient."""


# Errors that mean "Postgres is away, busy or in a state that passes", as opposed to a bug or bad
# data: retried with backoff for as long as it lasts, the offset not committed, never counted
# toward the DLQ. By SQLSTATE class: 08 connection, 53 insufficient resources (53100 disk full,
# 53200 out of memory, 53300 too many connections), 57 operator intervention (57014 query
# cancelled, 57P01-57P05 admin/crash shutdown, cannot connect now), 40 transaction rollback
# (serialization failure, deadlock); and 25006 read-only transaction (a standby, a failover),
# 25P03 idle-in-transaction timeout, 55P03 lock not available, 58030 I/O error. And a unit of
# work that met a change of the reference data it had read from the cache (`StaleReference`).
TRANSIENT_DB_ERRORS: tuple[type[BaseException], ...] = (
    StaleReference,
    OSError,
    asyncio.TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.exceptions.InsufficientResourcesError,
    asyncpg.exceptions.OperatorInterventionError,
    asyncpg.exceptions.TransactionRollbackError,
    asyncpg.exceptions.ReadOnlySQLTransactionError,
    asyncpg.exceptions.IdleInTransactionSessionTimeoutError,
    asyncpg.LockNotAvailableError,
    asyncpg.exceptions.PostgresIOError,
)

TRANSIENT_SQLSTATE_CLASSES = ("08", "53", "57", "40")
TRANSIENT_SQLSTATES = frozenset({"25006", "25P03", "55P03", "58030"})


def is_transient_db_error(exc: BaseException) -> bool:
    """True for a Postgres fault that passes (see TRANSIENT_DB_ERRORS), judged by class and, for
    errors asyncpg does not map to a class, by SQLSTATE. A client-side "connection is closed"
    (the server went away under a pooled connection) counts too."""
    if isinstance(exc, TRANSIENT_DB_ERRORS):
        return True
    state = getattr(exc, "sqlstate", None)
    if isinstance(exc, asyncpg.PostgresError) and isinstance(state, str):
        return state[:2] in TRANSIENT_SQLSTATE_CLASSES or state in TRANSIENT_SQLSTATES
    if isinstance(exc, asyncpg.InterfaceError):
        return "closed" in str(exc) or "closing" in str(exc)
    return False


async def _reset_if_dirty(conn: asyncpg.Connection) -> None:
    """Pool release: asyncpg's default sends `RESET ALL; UNLISTEN *; CLOSE ALL; unlock all` on
    every release, a round trip per transaction. Pool connections here carry no session state
    (LISTEN and the relay's advisory lock live on the relay's own connection; the migration lock
    is released in a `finally`), so only a connection left inside a transaction is reset."""
    if conn.is_in_transaction():
        await conn.reset()


async def connect(dsn: str, schema: str, *, min_size: int = 2, max_size: int = 10,
                  wait_seconds: float = 120.0) -> asyncpg.Pool:
    """A pool on the service's schema, waiting for the database to come up."""
    # Backoff with jitter (shared/retry.py) until `wait_seconds` have passed; then the error.
    async for attempt in AsyncRetrying(
            retry=retry_if_exception_type(TRANSIENT_DB_ERRORS), stop=stop_after_delay(wait_seconds),
            wait=jittered(0.2, 5.0), reraise=True,
            before_sleep=log_before_retry(log, f"Postgres not reachable yet for {schema}")):
        with attempt:
            pool = await asyncpg.create_pool(
                dsn, min_size=min_size, max_size=max_size, command_timeout=30,
                reset=_reset_if_dirty,
                # No JIT: our statements are short, and a plan estimated above jit_above_cost
                # (analytics' first folds of a batch over 28 monthly partitions) spent 150 ms
                # compiling 300 functions for a query that runs in 15.
                server_settings={"search_path": schema, "application_name": f"shopkeeper-{schema}",
                                 "jit": "off"},
            )
            assert pool is not None
            return pool
    raise AssertionError("unreachable: tenacity re-raises the last error")


async def migrate(pool: asyncpg.Pool, schema: str, service_dir: Path) -> list[str]:
    """Apply shared and service migrations not yet applied, in name order, under a lock.

    The advisory lock makes N instances starting together apply each migration once.
    """
    files = sorted(SHARED_MIGRATIONS.glob("*.sql")) + sorted(
        (service_dir / "migrations").glob("*.sql")
    )
    applied: list[str] = []
    async with pool.acquire() as conn:
        await conn.execute("SELECT pg_advisory_lock(hashtext($1))", f"migrate:{schema}")
        try:
            await conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                " name text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
            )
            done = {r["name"] for r in await conn.fetch("SELECT name FROM schema_migrations")}
            for f in files:
                name = f"{f.parent.parent.name}/{f.name}"
                if name in done:
                    continue
                async with conn.transaction():
                    await conn.execute(f.read_text())
                    await conn.execute("INSERT INTO schema_migrations (name) VALUES ($1)", name)
                applied.append(name)
                log.info("applied migration %s", name)
        finally:
            await conn.execute("SELECT pg_advisory_unlock(hashtext($1))", f"migrate:{schema}")
    return applied


async def try_xact_lock(conn: Conn, name: str) -> bool:
    """Take the transaction-level advisory lock `name` if free (held until commit): the way one
    instance of a service does a periodic job while the others skip it."""
    return bool(await conn.fetchval("SELECT pg_try_advisory_xact_lock(hashtext($1))", name))


async def xact_lock(conn: Conn, name: str) -> None:
    """Wait for the transaction-level advisory lock `name` (held until commit)."""
    await conn.execute("SELECT pg_advisory_xact_lock(hashtext($1))", name)


async def prune_inbox(conn: Conn, older_than_days: float) -> int:
    """Forget handled event ids older than `older_than_days` (see `messaging.prune_inbox_forever`
    for why that is safe)."""
    result = await conn.execute(
        "DELETE FROM inbox WHERE received_at < now() - make_interval(secs => $1)",
        older_than_days * 86400)
    return int(result.split()[-1])


# --- several reads in one round trip ------------------------------------------------------------
Row = Mapping[str, Any]


@dataclass(frozen=True)
class Read(Generic[T]):
    """One read of a run, to be sent with others in one statement (`read_all`): its SQL with
    parameters `$1`.. of its own, their values, and what its rows make (`shape`). A read whose
    answer is known without asking (no keys to look up) is `Read.known(value)`: no SQL."""

    sql: str | None
    args: tuple[Any, ...]
    shape: Callable[[list[Row]], T]

    @classmethod
    def known(cls, value: T) -> Read[T]:
        return cls(None, (), lambda _rows: value)

    async def fetch(self, conn: Conn) -> T:
        """This read alone."""
        value: T = (await read_all(conn, self))[0]
        return value


_PARAM = re.compile(r"\$(\d+)")
_COLUMNS: dict[str, tuple[str, ...]] = {}


def _shifted(sql: str, by: int) -> str:
    """`sql` with its parameters `$n` numbered `$(n + by)`."""
    return _PARAM.sub(lambda m: f"${int(m.group(1)) + by}", sql)


async def _columns(conn: Conn, sql: str) -> tuple[str, ...]:
    """The column names of `sql`'s rows (prepared once per process and statement; a record of
    an array carries its values' types, not their names)."""
    names = _COLUMNS.get(sql)
    if names is None:
        names = tuple(a.name for a in (await conn.prepare(sql)).get_attributes())
        if len(set(names)) != len(names):
            raise ValueError(f"a read's columns must have distinct names: {names}")
        _COLUMNS[sql] = names
    return names


async def read_all(conn: Conn, *reads: Read[Any]) -> list[Any]:
    """What each of `reads` makes, in one round trip however many there are: each read becomes
    a CTE of one statement (`WITH r0 AS (...), r1 AS (...)`; a data-modifying read such as
    `DELETE ... RETURNING` too), its rows one array of records, decoded with their types, in
    the order the read gives them. A run's reads, one statement instead of one each: on this
    machine a statement's round trip (a socket write and read in both processes) costs more
    than most of the reads themselves."""
    asked = [r for r in reads if r.sql is not None]
    rows: dict[int, list[Row]] = {}
    if len(asked) == 1:
        only = asked[0]
        assert only.sql is not None
        rows[id(only)] = [dict(r) for r in await conn.fetch(only.sql, *only.args)]
    elif asked:
        ctes: list[str] = []
        arrays: list[str] = []
        args: list[Any] = []
        for i, r in enumerate(asked):
            assert r.sql is not None
            ctes.append(f"r{i} AS ({_shifted(r.sql, len(args))})")
            arrays.append(f"ARRAY(SELECT r{i} FROM r{i}) AS r{i}")
            args.extend(r.args)
        row = await conn.fetchrow(f"WITH {', '.join(ctes)} SELECT {', '.join(arrays)}", *args)
        assert row is not None
        for i, r in enumerate(asked):
            assert r.sql is not None
            names = await _columns(conn, r.sql)
            rows[id(r)] = [dict(zip(names, values, strict=True)) for values in row[f"r{i}"]]
    return [r.shape(rows.get(id(r), [])) for r in reads]

