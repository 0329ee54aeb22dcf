"""SQL for the console's schema: users, sessions, login attempts and the audit trail."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from typing import Any

import asyncpg

from shared.db import Conn as _Conn

Conn = _Conn | asyncpg.Pool


def token_hash(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


# --- users ------------------------------------------------------------------------------------

async def user_by_name(conn: Conn, username: str) -> asyncpg.Record | None:
    return await conn.fetchrow("SELECT * FROM users WHERE lower(username) = lower($1)", username)


async def create_user(conn: Conn, username: str, password_hash: str, role: str,
                      time_zone: str = "UTC", locale: str | None = None,
                      must_change: bool = False) -> int:
    return int(await conn.fetchval(
        "INSERT INTO users (username, password_hash, role, time_zone, locale, must_change)"
        " VALUES ($1, $2, $3, $4, $5, $6) RETURNING user_id",
        username, password_hash, role, time_zone, locale, must_change))


async def set_password(conn: Conn, user_id: int, password_hash: str, must_change: bool) -> None:
    await conn.execute("UPDATE users SET password_hash = $2, must_change = $3, failed_logins = 0,"
                       " locked_until = NULL WHERE user_id = $1", user_id, password_hash,
                       must_change)


async def users(conn: Conn) -> list[asyncpg.Record]:
    return await conn.fetch("SELECT user_id, username, role, locale, time_zone, active,"
                            " locked_until, last_login_at, created_at FROM users ORDER BY username")


async def update_user(conn: Conn, user_id: int, **fields: Any) -> None:
    allowed = {"role", "active", "locale", "time_zone", "locked_until", "failed_logins"}
    sets = [k for k in fields if k in allowed]
    if not sets:
        return
    assignments = ", ".join(f"{k} = ${i + 2}" for i, k in enumerate(sets))
    await conn.execute(f"UPDATE users SET {assignments} WHERE user_id = $1", user_id,
                       *[fields[k] for k in sets])


async def login_failed(conn: Conn, user_id: int, max_failures: int, lockout_seconds: float
                       ) -> bool:
    """Count a failed password; lock the account after `max_failures` in a row. True if it is
    locked now."""
    locked = await conn.fetchval(
        "UPDATE users SET failed_logins = failed_logins + 1, locked_until = CASE WHEN"
        " failed_logins + 1 >= $2 THEN now() + make_interval(secs => $3) ELSE locked_until END"
        " WHERE user_id = $1 RETURNING locked_until > now()", user_id, max_failures,
        lockout_seconds)
    return bool(locked)


async def login_succeeded(conn: Conn, user_id: int) -> None:
    await conn.execute("UPDATE users SET failed_logins = 0, locked_until = NULL,"
                       " last_login_at = now() WHERE user_id = $1", user_id)


async def record_attempt(conn: Conn, client_ip: str, username: str, ok: bool) -> None:
    await conn.execute("INSERT INTO login_attempts (client_ip, username, ok) VALUES ($1, $2, $3)",
                       client_ip, username[:64], ok)


async def recent_failures(conn: Conn, client_ip: str, window_seconds: float) -> int:
    """Failed sign-ins from one address in the window since its last successful one (an office
    behind one address is not shut out for a colleague's typos; a guesser without a password
    never succeeds, and each account still locks on its own)."""
    return int(await conn.fetchval(
        "SELECT count(*) FROM login_attempts WHERE client_ip = $1 AND NOT ok"
        " AND at > now() - make_interval(secs => $2) AND at > coalesce((SELECT max(at) FROM"
        " login_attempts WHERE client_ip = $1 AND ok), '-infinity')", client_ip, window_seconds))


# --- sessions ---------------------------------------------------------------------------------

async def create_session(conn: Conn, token: str, user_id: int, csrf: str, hours: float) -> None:
    await conn.execute(
        "INSERT INTO sessions (token_hash, user_id, csrf, expires_at)"
        " VALUES ($1, $2, $3, now() + make_interval(secs => $4))",
        token_hash(token), user_id, csrf, hours * 3600)
    # Old sessions go when their owner logs in again.
    await conn.execute("DELETE FROM sessions WHERE expires_at < now()")


async def session_user(conn: Conn, token: str) -> asyncpg.Record | None:
    return await conn.fetchrow(
        "SELECT u.*, s.csrf FROM sessions s JOIN users u USING (user_id)"
        " WHERE s.token_hash = $1 AND s.expires_at > now() AND u.active", token_hash(token))


async def end_session(conn: Conn, token: str) -> None:
    await conn.execute("DELETE FROM sessions WHERE token_hash = $1", token_hash(token))


async def end_sessions_of(conn: Conn, user_id: int) -> None:
    await conn.execute("DELETE FROM sessions WHERE user_id = $1", user_id)


# --- audit ------------------------------------------------------------------------------------

def _json(value: Any) -> str | None:
    return None if value is None else json.dumps(value, default=str, ensure_ascii=False)


async def audit(conn: Conn, *, actor: str, role: str | None, action: str, target: str | None,
                outcome: str, before: Any = None, after: Any = None,
                detail: str | None = None) -> None:
    await conn.execute(
        "INSERT INTO audit (actor, role, action, target, outcome, before, after, detail)"
        " VALUES ($1, $2, $3, $4, $5, $6::jsonb, $7::jsonb, $8)",
        actor, role, action, target, outcome, _json(before), _json(after),
        (detail or "")[:2000] or None)


async def search_audit(conn: Conn, *, text: str | None = None, actor: str | None = None,
                       action: str | None = None, since: datetime | None = None,
                       limit: int = 200) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        "SELECT * FROM audit WHERE ($1::text IS NULL OR actor = $1)"
        " AND ($2::text IS NULL OR action = $2)"
        " AND ($3::text IS NULL OR target ILIKE '%' || $3 || '%' OR detail ILIKE '%' || $3 || '%'"
        "      OR before::text ILIKE '%' || $3 || '%' OR after::text ILIKE '%' || $3 || '%')"
        " AND ($4::timestamptz IS NULL OR at >= $4)"
        " ORDER BY at DESC, id DESC LIMIT $5", actor, action, text, since, limit)
    return [{**dict(r), "before": json.loads(r["before"]) if r["before"] else None,
             "after": json.loads(r["after"]) if r["after"] else None} for r in rows]


async def notes_on(conn: Conn, target: str) -> list[asyncpg.Record]:
    return await conn.fetch("SELECT at, actor, detail FROM audit WHERE target = $1 AND"
                            " action = 'review.note' ORDER BY at", target)
