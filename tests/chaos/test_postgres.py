"""Postgres faults under load (`make chaos`, docs/RELIABILITY.md): the postmaster killed with
SIGKILL (crash recovery from the WAL), an outage much longer than the consumers' poll, the server
turned read-only, the disk full, and a restore from a backup taken mid-run with every consumer
group rewound as docs/OPERATIONS.md says. An infrastructure fault is waited out: each fault
scenario asserts that not one record reached any DLQ while it ran, that it really bit (some
service reported it on `/readyz`), and that every order settled afterwards with nothing lost,
doubled or oversold."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import importlib
import os
import pwd
import signal
import subprocess
import time
from pathlib import Path

import asyncpg
import pytest
from aiokafka import AIOKafkaConsumer

import stack.__main__ as local_stack
from shared.messaging import POLL_MS
from shared.settings import SERVICES, get_settings, role_name
from tests.integration.helpers import eventually, http_get
from tools.storefront import Storefront, topic_partitions
from tools.verify import verify

from .conftest import assert_clean, run_load
from .test_scenarios import lags_drained

pytestmark = [pytest.mark.timeout(1800)]  # the marker chaos comes from conftest

OUTAGE_SECONDS = 20.0
READ_ONLY_SECONDS = 15.0
DISK_FULL_SECONDS = 15.0
# The rewind goes this far before the backup started: events sent just before it may still
# have been waiting in a consumer's lag, in neither the backup nor a re-read from the backup
# time. The inbox skips whatever the restored state already holds.
REWIND_MARGIN_SECONDS = 60.0


class FaultWatch:
    """Polls every service's `/readyz` while a fault lasts and keeps what they reported as
    `infrastructure_fault`: proof that the fault reached the services."""

    def __init__(self) -> None:
        self.seen: dict[str, str] = {}
        self._task: asyncio.Task[None] | None = None

    async def _poll(self) -> None:
        while True:
            for service in SERVICES:
                with contextlib.suppress(Exception):  # a service busy retrying may not answer
                    body = (await http_get(service, "/readyz")).json()
                    fault = str(body["checks"].get("infrastructure_fault", "none"))
                    if fault != "none":
                        self.seen.setdefault(service, fault)
            await asyncio.sleep(0.5)

    def __enter__(self) -> FaultWatch:
        self._task = asyncio.create_task(self._poll())
        return self

    def __exit__(self, *exc: object) -> None:
        if self._task:
            self._task.cancel()


def postmaster_pid() -> int:
    return int((local_stack.PG_DATA / "postmaster.pid").read_text().split()[0])


def children_of(pid: int) -> list[int]:
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            # the command may contain spaces and parentheses: the fields after the last ')'
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == pid:
                out.append(int(stat.parent.name))
    return out


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with contextlib.suppress(OSError):
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        return state != "Z"
    return False


def kill_postmaster() -> None:
    """SIGKILL the postmaster alone, as the kernel's OOM killer would. Its backends notice the
    postmaster is gone and exit; Postgres will not start again while one of them still holds
    the shared memory, so wait for them (a minute at most)."""
    pid = postmaster_pid()
    backends = children_of(pid)
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and any(alive(p) for p in [pid, *backends]):
        time.sleep(0.2)
    left = [p for p in [pid, *backends] if alive(p)]
    assert not left, f"Postgres processes {left} outlived their postmaster for a minute"


async def test_postgres_postmaster_killed_dash_nine_mid_stream(storefront: Storefront) -> None:
    log = local_stack.LOGS / "postgres.log"
    recovered: list[str] = []

    async def fault() -> None:
        mark = log.stat().st_size
        with FaultWatch() as watch:
            await asyncio.to_thread(kill_postmaster)
            await asyncio.sleep(2)
            await asyncio.to_thread(local_stack.start_postgres)
            await asyncio.sleep(2)
        with log.open("rb") as f:
            f.seek(mark)
            recovered.append(f.read().decode(errors="replace"))
        assert watch.seen, "no service reported the crash on /readyz"
    outcome = await run_load(storefront, "Postgres postmaster killed -9 (crash recovery)", fault)
    assert_clean(outcome, no_dead_letters=True)
    assert "automatic recovery in progress" in recovered[0], recovered[0][-2000:]


async def test_postgres_outage_longer_than_the_consumers_poll(storefront: Storefront) -> None:
    assert OUTAGE_SECONDS * 1000 > 10 * POLL_MS

    async def fault() -> None:
        with FaultWatch() as watch:
            await asyncio.to_thread(local_stack.stop_postgres)
            await asyncio.sleep(OUTAGE_SECONDS)
            await asyncio.to_thread(local_stack.start_postgres)
        assert watch.seen, "no service reported the outage on /readyz"
    outcome = await run_load(storefront, f"Postgres down {OUTAGE_SECONDS:.0f} s", fault)
    assert_clean(outcome, no_dead_letters=True)


async def test_postgres_read_only_for_a_while(storefront: Storefront) -> None:
    """A standby promoted late, or a failover in progress: every write fails with 25006."""
    async def fault() -> None:
        admin = await asyncpg.connect(get_settings().database_url)
        try:
            with FaultWatch() as watch:
                await admin.execute("ALTER SYSTEM SET default_transaction_read_only = on")
                await admin.execute("SELECT pg_reload_conf()")
                await asyncio.sleep(READ_ONLY_SECONDS)
        finally:
            await admin.execute("ALTER SYSTEM RESET default_transaction_read_only")
            await admin.execute("SELECT pg_reload_conf()")
            await admin.close()
        assert any("ReadOnly" in f for f in watch.seen.values()), watch.seen
    outcome = await run_load(storefront, f"Postgres read-only {READ_ONLY_SECONDS:.0f} s", fault)
    assert_clean(outcome, no_dead_letters=True)


# --- disk full --------------------------------------------------------------------------------
FULL_FS = local_stack.LOCAL / "pg" / "chaos-full"
TABLESPACE = "chaos_full"


def mount_small_filesystem(size_mb: int) -> None:
    """A tmpfs of `size_mb` owned by postgres, for a tablespace (root only)."""
    pg = pwd.getpwnam("postgres")
    FULL_FS.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o",
                    f"size={size_mb}m,mode=0700,uid={pg.pw_uid},gid={pg.pw_gid}",
                    "chaos-full", str(FULL_FS)], check=True, capture_output=True)


def fill(path: Path) -> int:
    """Write zeros to `path` until the filesystem says it is full; the bytes written."""
    written = 0
    chunk = b"\0" * (1 << 20)
    with path.open("wb", buffering=0) as f:
        while True:
            try:
                written += f.write(chunk)
            except OSError as exc:
                if exc.errno != errno.ENOSPC:
                    raise
                if len(chunk) == 1:
                    return written
                chunk = chunk[: len(chunk) // 2]


async def move_tables(conn: asyncpg.Connection, source: str, target: str) -> None:
    """Every table and index of every service's role from one tablespace to another (retried
    when it deadlocks with a service's transaction: it locks table after table)."""
    roles = ", ".join(f'"{role_name(s)}"' for s in SERVICES)
    for attempt in range(5):
        try:
            async with conn.transaction():
                await conn.execute(f"ALTER TABLE ALL IN TABLESPACE {source} OWNED BY {roles}"
                                   f" SET TABLESPACE {target}")
                await conn.execute(f"ALTER INDEX ALL IN TABLESPACE {source} OWNED BY {roles}"
                                   f" SET TABLESPACE {target}")
            return
        except asyncpg.DeadlockDetectedError:
            if attempt == 4:
                raise
            await asyncio.sleep(1)


async def test_postgres_disk_full_for_a_while(storefront: Storefront) -> None:
    """Every service's tables and indexes live, for this scenario, in a tablespace on a small
    tmpfs; mid-stream the test fills that filesystem (Postgres cannot extend a table: 53100,
    `could not extend file ... No space left on device`), keeps it full, then frees it. The WAL
    stays on the main disk: a full pg_wal is a PANIC and a crash restart, which the kill -9
    scenario covers."""
    if os.geteuid() != 0:
        pytest.skip("mounting the small filesystem for the tablespace needs root")
    admin = await asyncpg.connect(get_settings().database_url)
    size = int(await admin.fetchval(
        "SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0) FROM pg_class c"
        " JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind = 'r'"
        " AND n.nspname = ANY($1::text[])", list(SERVICES)))
    await asyncio.to_thread(mount_small_filesystem, size * 2 // (1 << 20) + 128)
    filler = FULL_FS / "filler"
    try:
        await admin.execute(f"CREATE TABLESPACE {TABLESPACE} LOCATION '{FULL_FS}'")
        await move_tables(admin, "pg_default", TABLESPACE)

        async def fault() -> None:
            with FaultWatch() as watch:
                await asyncio.to_thread(fill, filler)
                await asyncio.sleep(DISK_FULL_SECONDS)
                filler.unlink()
            assert any("DiskFull" in f for f in watch.seen.values()), watch.seen
        outcome = await run_load(storefront, f"Postgres disk full {DISK_FULL_SECONDS:.0f} s",
                                 fault)
    finally:
        filler.unlink(missing_ok=True)
        with contextlib.suppress(asyncpg.PostgresError):
            await move_tables(admin, TABLESPACE, "pg_default")
            await admin.execute(f"DROP TABLESPACE IF EXISTS {TABLESPACE}")
        await admin.close()
        await asyncio.to_thread(subprocess.run, ["umount", str(FULL_FS)], check=False)
    assert_clean(outcome, no_dead_letters=True)


# --- restore ----------------------------------------------------------------------------------
BACKUP = local_stack.LOCAL / "chaos-backup.dump"
DRAINED = local_stack.LOCAL / "chaos-drained.dump"  # the state to put back afterwards


def pg_dump(path: Path) -> None:
    """Every service's schema, in one snapshot (one pg_dump), as docs/OPERATIONS.md does."""
    subprocess.run([local_stack.pg_bin("pg_dump"), f"--dbname={get_settings().database_url}",
                    *[f"--schema={s}" for s in SERVICES], "--format=custom", f"--file={path}"],
                   check=True, capture_output=True)


def pg_restore(path: Path) -> None:
    """As docs/OPERATIONS.md restores: the schemas dropped and the dump's SQL replayed in one
    transaction (`pg_restore --clean` cannot drop the constraints of analytics' monthly
    partitions: "cannot drop inherited constraint")."""
    psql = subprocess.Popen([local_stack.pg_bin("psql"), get_settings().database_url,
                             "--single-transaction", "--quiet", "-v", "ON_ERROR_STOP=1",
                             "--file=-"], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    assert psql.stdin is not None and psql.stderr is not None
    try:
        psql.stdin.write(f"DROP SCHEMA IF EXISTS {', '.join(SERVICES)} CASCADE;\n".encode())
        psql.stdin.flush()  # before pg_restore writes to the same pipe
        subprocess.run([local_stack.pg_bin("pg_restore"), "--file=-", str(path)],
                       stdout=psql.stdin, check=True)
    finally:
        psql.stdin.close()
    error = psql.stderr.read().decode(errors="replace")
    if psql.wait() != 0:
        raise RuntimeError(f"restoring {path} failed: {error[-2000:]}")


async def rewind_to(service: str, when: float | None) -> None:
    """Move the (stopped) service's consumer group back to the first record at or after `when`
    (Unix seconds) on every partition it reads: what `kafka-consumer-groups.sh --reset-offsets
    --to-datetime` does. Never forward: a partition already behind that point stays. `when`
    None: to the end of every partition (forward too)."""
    topics = list(importlib.import_module(f"services.{service}.handlers")
                  .handlers.subscriptions)
    consumer = AIOKafkaConsumer(bootstrap_servers=get_settings().kafka_bootstrap_servers,
                                group_id=service, enable_auto_commit=False)
    await consumer.start()
    try:
        parts = [tp for t in topics for tp in await topic_partitions(consumer, t)]
        consumer.assign(parts)
        ends = await consumer.end_offsets(parts)
        if when is None:
            await consumer.commit(dict(ends.items()))
            return
        at = await consumer.offsets_for_times({tp: int(when * 1000) for tp in parts})
        offsets = {}
        for tp in parts:
            target = at[tp].offset if at[tp] is not None else ends[tp]
            committed = await consumer.committed(tp)
            offsets[tp] = target if committed is None else min(committed, target)
        await consumer.commit(offsets)
    finally:
        await consumer.stop()


async def test_restore_from_a_backup_taken_mid_run(storefront: Storefront) -> None:
    """Back up every schema a third into the load, take the rest of the orders, then restore
    as docs/OPERATIONS.md says: stop the services, pg_restore, rewind every consumer group to
    before the backup, start them. Every order must come out once (the same event ids: ids
    derive from their cause) and stock must balance. Afterwards the stack is put back as it
    was before the restore (a second dump taken with everything drained, the groups moved to
    the end of their topics), so the scenarios after this one find a consistent stack."""
    taken: list[float] = []

    async def backup() -> None:
        taken.append(time.time())
        await asyncio.to_thread(pg_dump, BACKUP)

    async def restore(keys: list[str]) -> float:
        await eventually(lags_drained, timeout=300, what="every group caught up before restore")
        await verify(get_settings().database_url, settle_seconds=120)
        await asyncio.to_thread(stop_services)
        await asyncio.to_thread(pg_dump, DRAINED)
        t0 = time.monotonic()
        await asyncio.to_thread(pg_restore, BACKUP)
        for service in SERVICES:
            await rewind_to(service, taken[0] - REWIND_MARGIN_SECONDS)
        await asyncio.to_thread(local_stack.start_services)
        await asyncio.sleep(15)  # lag is measured every 5 s; let it see the rewound positions
        await eventually(lags_drained, timeout=900, what="every group caught up after restore")
        return time.monotonic() - t0
    try:
        outcome = await run_load(storefront, "restore from a backup taken mid-run", backup,
                                 after=restore)
    finally:
        if DRAINED.exists():
            await asyncio.to_thread(stop_services)
            await asyncio.to_thread(pg_restore, DRAINED)
            for service in SERVICES:
                await rewind_to(service, None)
            await asyncio.to_thread(local_stack.start_services)
        BACKUP.unlink(missing_ok=True)
        DRAINED.unlink(missing_ok=True)
    assert_clean(outcome, no_dead_letters=True)


def stop_services() -> None:
    for service in SERVICES:
        local_stack.stop_pid(service, 30)
