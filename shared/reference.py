"""Reference data cached across units of work, exactly (docs/messaging.md "Reference data cached
across runs"; issue 18).

Reference data (box sizes, the carrier catalogue, store policies, exchange rates) changes
rarely, but every run used to read it again: `uow.memo` lasts one unit of work. A unit of work
reads it through `uow.reference(key, load, tables=...)` instead, which serves it from this
process-wide cache as long as nobody changed the tables it was read from:

- every cached *name* (the key, or its first element: `"fulfillment.boxes"`,
  `("inventory.policies", stores)`) has a version row in the schema's `reference_versions`
  (shared/migrations/0005_reference_versions.sql). A statement trigger on each table the name
  depends on sets it to a fresh number of a sequence on any INSERT, UPDATE, DELETE or TRUNCATE,
  in the writer's transaction: the API, a handler, a test's or an operator's direct SQL alike.
  The triggers are put there by the cache itself the first time a process uses the name
  (`reference_watch`), so a cached read cannot exist without them. The unit of work that puts
  them there holds the tables against writes until it commits, so what it reads is exactly the
  version it commits with them; it caches that after its commit only;
- a unit of work reads every version once, in one statement, at its first reference read, and
  uses only entries cached under exactly those versions. A miss loads the data and reads the
  name's version again: unchanged, the data is exactly that version (a change commits its data
  and its new version together, and a version is never handed out twice) and is cached; changed
  by someone else, the unit of work either adopts the new version (it has used nothing of that
  name yet) or fails with `StaleReference`, a transient fault the consumer retries (it had used
  entries of the old version: it must never mix two);
- a unit of work that changed the data itself (it called `uow.forget(name)`, as writers do, or
  the version row is its own uncommitted write) reads it from its connection, per run, as
  `uow.memo` does, and never puts its own view in the cache: if it rolls back, nobody sees it.

Cached values are shared by every unit of work of the process: callers must not change them.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Hashable, Mapping, Sequence
from typing import Any, TypeVar

import asyncpg

from .db import Conn, StaleReference

log = logging.getLogger(__name__)

T = TypeVar("T")

# Per name, at most this many keys (stores, sets of stores, SKUs) are cached; past it the name's
# entries are dropped and filled again.
MAX_KEYS_PER_NAME = 20_000


class _Absent:
    def __repr__(self) -> str:
        return "ABSENT"


ABSENT: Any = _Absent()
"""What `read_many` gives for a key its loader did not return (cached too: an insert of it is a
write, which moves the version on)."""

# A unit of work that has used nothing of a name yet adopts a newer version this many times
# before it gives up (a table rewritten continuously).
ADOPT_ATTEMPTS = 3

VERSIONS = (
    "SELECT current_database() AS db, 'reference_versions'::regclass::oid AS epoch, v.name,"
    " v.version, coalesce(v.writer = pg_current_xact_id_if_assigned(), false) AS mine"
    " FROM (SELECT 1) AS one LEFT JOIN reference_versions v ON true")
VERSION_OF = (
    "SELECT version, coalesce(writer = pg_current_xact_id_if_assigned(), false) AS mine"
    " FROM reference_versions WHERE name = $1")

Epoch = tuple[str, int]
"""Which schema, in which incarnation: the database and the oid of its `reference_versions`
(a schema dropped and made again starts its sequence again, and gets a new oid)."""


def name_of(key: Hashable) -> str:
    """A key is a name or a tuple starting with it."""
    name = key[0] if isinstance(key, tuple) else key
    if not isinstance(name, str):
        raise TypeError(f"a reference key is a name or a tuple starting with one, not {key!r}")
    return name


class ReferenceCache:
    """The process-wide cache: per schema and name, the entries of its newest version seen.
    Committed versions of a name only grow (the sequence is drawn under the version row's lock),
    so an older one is never stored over a newer one."""

    def __init__(self) -> None:
        self._watched: set[tuple[Epoch, str]] = set()
        self._tables: dict[str, tuple[str, ...]] = {}
        self._entries: dict[tuple[Epoch, str], tuple[int, dict[Hashable, Any]]] = {}
        self.loads = 0  # how many times a unit of work loaded a name's data (tests, metrics)

    def clear(self) -> None:
        self._watched.clear()
        self._entries.clear()

    def tables_of(self, name: str, tables: Sequence[str]) -> tuple[str, ...]:
        """The tables `name` depends on; every caller must declare the same."""
        declared = tuple(sorted(tables))
        if not declared:
            raise ValueError(f"reference data {name} must name the tables it is read from")
        known = self._tables.setdefault(name, declared)
        if known != declared:
            raise ValueError(f"reference data {name} declared on tables {known} and {declared}")
        return declared

    def get(self, epoch: Epoch, name: str, version: int, key: Hashable) -> tuple[bool, Any]:
        held = self._entries.get((epoch, name))
        if held is None or held[0] != version or key not in held[1]:
            return False, None
        return True, held[1][key]

    def put(self, epoch: Epoch, name: str, version: int, key: Hashable, value: Any) -> None:
        held = self._entries.get((epoch, name))
        if held is not None and held[0] > version:
            return  # a newer version is cached already: this one is never asked for again
        if held is None or held[0] < version or len(held[1]) >= MAX_KEYS_PER_NAME:
            held = (version, {})
            self._entries[(epoch, name)] = held
        held[1][key] = value


CACHE = ReferenceCache()
"""The process's cache (one per process; tests make their own to play two instances)."""


class ReferenceView:
    """One unit of work's view of the cache: the versions it read (once) and the names it must
    read itself (changed in this unit of work)."""

    def __init__(self, cache: ReferenceCache) -> None:
        self.cache = cache
        self.epoch: Epoch | None = None
        self.versions: dict[str, int] = {}
        self.mine: set[str] = set()  # version rows this unit of work wrote: its own view
        self.used: set[str] = set()  # names this unit of work has served at `versions[name]`
        # Names whose triggers this unit of work created (it holds their tables): what it reads
        # of them is cached once it has committed (`committed`).
        self.fresh: set[str] = set()
        self.pending: list[tuple[Epoch, str, int, Hashable, Any]] = []

    async def read(self, conn: Conn, key: Hashable, load: Callable[[], Awaitable[T]],
                   tables: Sequence[str]) -> tuple[bool, T]:
        """`(shared, value)`: the value of `key` at this unit of work's version of its name,
        from the cache or loaded (and cached); `shared` is False when this unit of work must
        read the name itself from now on (its own change, triggers it just created)."""
        async def load_one(keys: list[Hashable]) -> dict[Hashable, Any]:
            return {key: await load()}
        shared, values = await self.read_many(conn, name_of(key), [key], load_one, tables)
        value: T = values[key]
        return shared, value

    async def read_many(self, conn: Conn, name: str, keys: list[Hashable],
                        load: Callable[[list[Hashable]], Awaitable[Mapping[Hashable, Any]]],
                        tables: Sequence[str]) -> tuple[bool, dict[Hashable, Any]]:
        """`(shared, values)`: the values of `keys` (each cached on its own under the name;
        `ABSENT` for a key `load` did not return) at this unit of work's version of `name`;
        `load(missing)` reads those not cached, in one go. `shared` as in `read`."""
        watched = self.cache.tables_of(name, tables)

        async def loaded(wanted: list[Hashable]) -> dict[Hashable, Any]:
            self.cache.loads += 1
            found = await load(wanted)
            return {k: found.get(k, ABSENT) for k in wanted}

        if self.epoch is None:
            await self._read_versions(conn)
        assert self.epoch is not None
        epoch = self.epoch
        if (epoch, name) not in self.cache._watched and name not in self.fresh:
            created = await conn.fetchval("SELECT reference_watch($1, $2::text[])", name,
                                          list(watched))
            if created is None:
                self.cache._watched.add((epoch, name))
            else:
                log.info("reference data %s: version triggers put on %s (cached from the next"
                         " unit of work on)", name, ", ".join(watched))
                self.fresh.add(name)
                self.versions[name] = int(created)
        if name in self.fresh:
            values = await loaded(keys)
            self.pending.extend((epoch, name, self.versions[name], k, v)
                                for k, v in values.items())
            self.used.add(name)
            return True, values
        if name in self.mine or name not in self.versions:
            # Our own uncommitted change, or a row committed after our versions were read (a
            # new name: the next unit of work caches it).
            return False, await loaded(keys)
        for _ in range(ADOPT_ATTEMPTS):
            version = self.versions[name]
            values = {}
            missing = []
            for k in keys:
                hit, value = self.cache.get(epoch, name, version, k)
                if hit:
                    values[k] = value
                else:
                    missing.append(k)
            if not missing:
                self.used.add(name)
                return True, values
            fresh = await loaded(missing)
            row = await conn.fetchrow(VERSION_OF, name)
            if row is not None and row["version"] == version:
                for k, v in fresh.items():
                    self.cache.put(epoch, name, version, k, v)
                self.used.add(name)
                return True, {**values, **fresh}
            if row is not None and row["mine"]:
                self.mine.add(name)  # changed by this unit of work without `forget`
                return False, await loaded(keys)
            if name in self.used:
                raise StaleReference(
                    f"reference data {name} changed (version {version} ->"
                    f" {row['version'] if row else 'none'}) while this unit of work was using"
                    " it; retried with the new version")
            if row is None:
                return False, await loaded(keys)
            self.versions[name] = row["version"]  # nothing of it used yet: take the newer one
        raise StaleReference(f"reference data {name} kept changing while being read; retried")

    def committed(self, changed: set[str]) -> None:
        """After commit: what was read of names whose triggers this unit of work created goes
        into the cache (unless it changed them itself: their version moved on anyway)."""
        for epoch, name, version, key, value in self.pending:
            if name not in changed:
                self.cache.put(epoch, name, version, key, value)
        if self.epoch is not None:
            for name in self.fresh:
                self.cache._watched.add((self.epoch, name))
        self.pending.clear()
        self.fresh.clear()

    async def _read_versions(self, conn: Conn) -> None:
        self.prime(await conn.fetch(VERSIONS))

    def prime(self, rows: Sequence[Mapping[str, Any]] | Sequence[asyncpg.Record]) -> None:
        """The versions read (the rows of `VERSIONS`), by this view or, in the same statement
        as the run's inbox rows, by the consumer (`UnitOfWork.first_times`): a
        unit of work that reads reference data then spends no statement on its versions."""
        self.epoch = (str(rows[0]["db"]), int(rows[0]["epoch"]))
        for r in rows:
            if r["name"] is None:
                continue
            self.versions[r["name"]] = int(r["version"])
            if r["mine"]:
                self.mine.add(r["name"])
