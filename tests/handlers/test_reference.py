"""Reference data cached across units of work (shared/reference.py, docs/messaging.md "Reference
data cached across runs"), on Postgres alone: a change by any writer (a unit of work, direct SQL
of every kind) is read by the next unit of work; a rolled-back change never reaches the cache;
a unit of work never mixes two versions; two instances (two caches) both follow a change; a
cached read costs one statement per unit of work, whatever it reads."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest

from services.fulfillment import store as fulfillment_store
from shared.db import StaleReference
from shared.reference import ReferenceCache
from shared.uow import UnitOfWork

THINGS = "test.things"


async def things(uow: UnitOfWork, key: str = "all") -> dict[str, int]:
    """The test's reference data: `ref_things` as a dict (or one row of it, keyed by `key`)."""
    async def load() -> dict[str, int]:
        rows = await uow.conn.fetch("SELECT k, v FROM ref_things"
                                    + ("" if key == "all" else " WHERE k = $1"),
                                    *(() if key == "all" else (key,)))
        return {r["k"]: r["v"] for r in rows}
    return await uow.reference((THINGS, key), load, tables=("ref_things",))


async def read(pool: asyncpg.Pool, cache: ReferenceCache, key: str = "all"
               ) -> tuple[dict[str, int], int]:
    """`things` in a unit of work of its own; with the statements it sent."""
    async with pool.acquire() as conn, UnitOfWork.transaction(conn, "test", cache=cache) as uow:
        sent: list[str] = []

        def log(query: Any) -> None:
            sent.append(query.query)
        conn.add_query_logger(log)
        try:
            value = await things(uow, key)
            for _ in range(3):  # asyncpg calls the loggers soon after each statement
                await asyncio.sleep(0)
        finally:
            conn.remove_query_logger(log)
    return value, len([q for q in sent if "typeinfo_tree" not in q])


@pytest.fixture
async def db(service_db: Any) -> AsyncIterator[asyncpg.Pool]:
    """A service schema with the reference machinery (shared migrations) and a table of ours."""
    async with service_db("channels") as service:
        await service.pool.execute(
            "CREATE TABLE ref_things (k text PRIMARY KEY, v int NOT NULL);"
            " INSERT INTO ref_things VALUES ('a', 1), ('b', 2)")
        yield service.pool


async def test_a_cached_read_costs_one_statement_and_any_committed_write_is_read_next(
        db: asyncpg.Pool) -> None:
    """Given reference data read once (its triggers put on its table by that first read), when
    it is read again, then it comes from the cache for one statement (the versions); and after
    each kind of direct SQL write (INSERT, UPDATE, DELETE, TRUNCATE), committed by a
    connection that knows nothing of the cache, the next read loads the new state."""
    cache = ReferenceCache()
    assert (await read(db, cache))[0] == {"a": 1, "b": 2}
    assert await read(db, cache) == ({"a": 1, "b": 2}, 1)
    loads = cache.loads
    assert await read(db, cache) == ({"a": 1, "b": 2}, 1)
    assert cache.loads == loads
    for sql, expected in [("INSERT INTO ref_things VALUES ('c', 3)", {"a": 1, "b": 2, "c": 3}),
                          ("UPDATE ref_things SET v = 20 WHERE k = 'b'", {"a": 1, "b": 20, "c": 3}),
                          ("DELETE FROM ref_things WHERE k = 'a'", {"b": 20, "c": 3}),
                          ("TRUNCATE ref_things", {})]:
        await db.execute(sql)
        value, statements = await read(db, cache)
        assert value == expected, sql
        assert statements == 3, sql  # the versions, the load, the version again
        assert await read(db, cache) == (expected, 1), sql


async def test_a_change_rolled_back_never_reaches_the_cache(db: asyncpg.Pool) -> None:
    """Given cached reference data, when a unit of work changes it by direct SQL (not telling
    the unit of work), reads it (it sees its own change) and rolls back, then the next reads
    load the committed state, not the rolled-back view, and the version the rolled-back
    change drew is never given to a later change: a later committed change is read as it is."""
    cache = ReferenceCache()
    await read(db, cache)
    with pytest.raises(RuntimeError):
        async with db.acquire() as conn, UnitOfWork.transaction(conn, "test",
                                                                cache=cache) as uow:
            await conn.execute("UPDATE ref_things SET v = 99 WHERE k = 'a'")
            assert await things(uow, "a") == {"a": 99}  # its own view, read from its tx
            drawn = await conn.fetchval("SELECT version FROM reference_versions WHERE name = $1",
                                        THINGS)
            raise RuntimeError("roll back")
    assert (await read(db, cache))[0] == {"a": 1, "b": 2}
    assert (await read(db, cache, "a"))[0] == {"a": 1}
    await db.execute("UPDATE ref_things SET v = 7 WHERE k = 'a'")
    now = await db.fetchval("SELECT version FROM reference_versions WHERE name = $1", THINGS)
    assert now > drawn  # a sequence: the number the rolled-back change drew is never reused
    assert (await read(db, cache, "a"))[0] == {"a": 7}
    assert (await read(db, cache))[0] == {"a": 7, "b": 2}


async def test_a_unit_of_work_that_forgets_reads_its_own_change_and_shares_none_of_it(
        db: asyncpg.Pool) -> None:
    """Given cached reference data, when a unit of work writes it and calls `forget` (as the
    setup API's writers do), then it reads its own change; if it rolls back, nobody sees it;
    once one commits, the next unit of work reads the change."""
    cache = ReferenceCache()
    await read(db, cache)
    for commit in (False, True):
        with pytest.raises(RuntimeError) if not commit else _nothing():
            async with db.acquire() as conn, UnitOfWork.transaction(conn, "test",
                                                                    cache=cache) as uow:
                assert await things(uow) == {"a": 1, "b": 2}
                await conn.execute("UPDATE ref_things SET v = 10 WHERE k = 'a'")
                uow.forget(THINGS)
                assert await things(uow) == {"a": 10, "b": 2}
                if not commit:
                    raise RuntimeError("roll back")
        assert (await read(db, cache))[0] == ({"a": 10, "b": 2} if commit else {"a": 1, "b": 2})


class _nothing:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


async def test_two_instances_each_with_its_cache_both_follow_a_change(db: asyncpg.Pool) -> None:
    """Given two instances (two caches), each with the data cached, when one changes it in a
    unit of work (its writer forgets, as the API does), then the next unit of work of each
    reads the change, and the one after that is served from each cache again."""
    one, two = ReferenceCache(), ReferenceCache()
    for cache in (one, two):
        await read(db, cache)
        assert (await read(db, cache))[1] == 1
    async with db.acquire() as conn, UnitOfWork.transaction(conn, "test", cache=one) as uow:
        await conn.execute("INSERT INTO ref_things VALUES ('z', 26)")
        uow.forget(THINGS)
    for cache in (one, two):
        assert (await read(db, cache))[0] == {"a": 1, "b": 2, "z": 26}
        assert await read(db, cache) == ({"a": 1, "b": 2, "z": 26}, 1)


async def test_a_unit_of_work_never_mixes_two_versions(db: asyncpg.Pool) -> None:
    """Given cached reference data, when a change commits while a unit of work is running,
    then the unit of work keeps reading the version it started with as long as the cache has
    it; one that has used nothing of the data yet and misses reads the new version whole; one
    that used a row of the old version and misses on another fails with `StaleReference` (a
    transient fault: the consumer handles the run again), and its retry reads the new one."""
    cache = ReferenceCache()
    await read(db, cache, "a")
    await read(db, cache, "b")
    await versions_of_other(db, cache)  # its triggers put: later reads of it take no lock
    async with db.acquire() as conn, UnitOfWork.transaction(conn, "test", cache=cache) as uow:
        await versions_of_other(db, cache, uow)
        await db.execute("UPDATE ref_things SET v = v + 100")
        assert await things(uow, "a") == {"a": 1}  # the version the unit of work started with
        assert await things(uow, "b") == {"b": 2}
    async with db.acquire() as conn, UnitOfWork.transaction(conn, "test", cache=cache) as uow:
        await versions_of_other(db, cache, uow)
        await db.execute("UPDATE ref_things SET v = v + 100")
        assert await things(uow, "a") == {"a": 201}  # missed, nothing used: the newest
        assert await things(uow, "b") == {"b": 202}
    with pytest.raises(StaleReference):
        async with db.acquire() as conn, UnitOfWork.transaction(conn, "test",
                                                                cache=cache) as uow:
            assert await things(uow, "a") == {"a": 201}
            await db.execute("UPDATE ref_things SET v = 5 WHERE k = 'b'")
            await things(uow, "all")  # not cached at this version; "a" of it was used
    assert (await read(db, cache, "a"))[0] == {"a": 201}
    assert (await read(db, cache))[0] == {"a": 201, "b": 5}


async def versions_of_other(db: asyncpg.Pool, cache: ReferenceCache,
                            uow: UnitOfWork | None = None) -> None:
    """Another name on the same table: a unit of work that reads it has read the versions."""
    if uow is None:
        async with db.acquire() as conn, UnitOfWork.transaction(conn, "test",
                                                                cache=cache) as own:
            await own.reference("other", _constant, tables=("ref_things",))
    else:
        await uow.reference("other", _constant, tables=("ref_things",))


async def _constant() -> int:
    return 0


async def test_the_first_unit_of_work_puts_the_triggers_and_caches_only_once_committed(
        db: asyncpg.Pool) -> None:
    """Given a table nobody has cached yet, when the first unit of work that reads it rolls
    back, then its triggers are gone with it and nothing of it is cached: the next unit of work
    puts them again, and a write after that is still followed."""
    cache = ReferenceCache()
    with pytest.raises(RuntimeError):
        async with db.acquire() as conn, UnitOfWork.transaction(conn, "test",
                                                                cache=cache) as uow:
            assert await things(uow) == {"a": 1, "b": 2}
            raise RuntimeError("roll back")
    assert await db.fetchval("SELECT count(*) FROM pg_trigger WHERE tgname = $1",
                             f"reference_{THINGS}") == 0
    assert (await read(db, cache))[0] == {"a": 1, "b": 2}
    assert await db.fetchval("SELECT count(*) FROM pg_trigger WHERE tgname = $1",
                             f"reference_{THINGS}") == 1
    await db.execute("UPDATE ref_things SET v = 3 WHERE k = 'a'")
    assert (await read(db, cache))[0] == {"a": 3, "b": 2}
    assert (await read(db, cache))[1] == 1


async def test_fulfillment_boxes_follow_an_operator_s_direct_sql(service_db: Any) -> None:
    """Given fulfillment's box catalogue cached, when an operator deactivates a box by SQL,
    then the next unit of work sees it inactive."""
    async with service_db("fulfillment") as service:
        cache = ReferenceCache()

        async def boxes() -> dict[str, bool]:
            async with service.pool.acquire() as conn, UnitOfWork.transaction(
                    conn, "fulfillment", cache=cache) as uow:
                return {b.code: b.active for b in await fulfillment_store.boxes(uow)}
        before = await boxes()
        assert before and all(before.values())
        assert await boxes() == before
        code = sorted(before)[0]
        await service.pool.execute("UPDATE boxes SET active = false WHERE code = $1", code)
        assert await boxes() == {**before, code: False}


async def test_rows_are_cached_each_on_its_own_and_a_missing_one_is_read_once_inserted(
        db: asyncpg.Pool) -> None:
    """Given rows read by key (as fulfillment reads products by SKU), when a unit of work asks
    for cached keys and new ones, then only the new ones are loaded, in one statement; a key
    with no row is cached as absent, and is read once a row for it is inserted."""
    cache = ReferenceCache()
    asked: list[list[str]] = []

    async def rows(keys: list[str]) -> tuple[dict[str, int], int]:
        async with db.acquire() as conn, UnitOfWork.transaction(conn, "test",
                                                                cache=cache) as uow:
            async def load(missing: list[str]) -> dict[str, int]:
                asked.append(missing)
                found = await conn.fetch("SELECT k, v FROM ref_things WHERE k = ANY($1::text[])",
                                         missing)
                return {r["k"]: r["v"] for r in found}
            sent: list[str] = []
            conn.add_query_logger(lambda q: sent.append(q.query))
            value = await uow.reference_rows("test.rows", keys, load, tables=("ref_things",))
            assert await uow.reference_rows("test.rows", keys, load,
                                            tables=("ref_things",)) == value  # once per uow
            for _ in range(3):
                await asyncio.sleep(0)
        return value, len([q for q in sent if "typeinfo_tree" not in q and q != "COMMIT;"])

    await rows(["a"])  # its triggers put
    assert await rows(["a", "b", "x"]) == ({"a": 1, "b": 2}, 3)  # versions, load, version
    assert asked[-1] == ["b", "x"]
    assert await rows(["b", "x", "a"]) == ({"a": 1, "b": 2}, 1)
    await db.execute("INSERT INTO ref_things VALUES ('x', 24)")
    assert (await rows(["a", "x"]))[0] == {"a": 1, "x": 24}
    assert asked[-1] == ["a", "x"]
