"""Console users from the command line (`shopkeeper users add`, `make run`'s demo admin): written
to the console's schema with the console's own database role, never the admin's."""

from __future__ import annotations

import asyncio

import asyncpg

from services.console import auth, roles, store
from shared.settings import get_settings, service_database_url


async def add_user(username: str, role: str, time_zone: str = "UTC", *, reset: bool = False,
                   one_time: bool = True, wait_seconds: float = 60.0) -> tuple[str, bool]:
    """(password, created). An existing user is left alone unless `reset`. A one-time password
    (the default) asks the user to choose their own after signing in."""
    if not roles.is_role(role):
        raise ValueError(f"unknown role {role!r}; roles: {', '.join(roles.ROLES)}")
    dsn = service_database_url("console", get_settings())
    conn = await _connect(dsn, wait_seconds)
    try:
        await conn.execute("SET search_path = console")
        if not await conn.fetchval("SELECT to_regclass('console.users') IS NOT NULL"):
            raise ValueError("the console's tables are not there yet: start the stack"
                             " (`make up`) so the console applies its migrations")
        password = auth.one_time_password()
        existing = await store.user_by_name(conn, username)
        if existing is None:
            await store.create_user(conn, username, auth.hash_password(password), role,
                                    time_zone, must_change=one_time)
            created = True
        elif reset:
            await store.set_password(conn, existing["user_id"], auth.hash_password(password),
                                     one_time)
            await store.update_user(conn, existing["user_id"], role=role, active=True)
            created = False
        else:
            raise ValueError(f"console user {username} exists; --reset gives a new password")
        await store.audit(conn, actor="cli", role=None, action="users.add" if created else
                          "users.reset", target=username, outcome="ok", after={"role": role})
        return password, created
    finally:
        await conn.close()


async def _connect(dsn: str, wait_seconds: float) -> asyncpg.Connection:
    deadline = asyncio.get_running_loop().time() + wait_seconds
    while True:
        try:
            return await asyncpg.connect(dsn)
        except (OSError, asyncpg.PostgresError) as exc:
            if asyncio.get_running_loop().time() > deadline:
                raise ValueError(f"cannot reach the console's database ({type(exc).__name__});"
                                 " is the stack up? (`make up`)") from None
            await asyncio.sleep(0.5)
