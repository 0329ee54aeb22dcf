"""The console's plumbing for pages: the signed-in user of a request, role checks (403), CSRF on
every form, the language and time zone a page is rendered in, and the audit of every action."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import asyncpg
from fastapi import Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from . import auth, i18n, roles, store
from .config import console_settings
from .upstream import Upstream

log = logging.getLogger(__name__)

SESSION_COOKIE = "sk_session"
LANG_COOKIE = "sk_lang"
PRE_CSRF_COOKIE = "sk_pre"  # double-submit token of the login form (no session yet)

templates = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))
templates.env.globals["can"] = roles.can


@dataclass(frozen=True)
class User:
    user_id: int
    username: str
    role: str
    locale: str | None
    time_zone: str
    csrf: str
    must_change: bool = False

    def can(self, action: str) -> bool:
        return roles.can(self.role, action)


class LoginRequired(Exception):
    pass


class Forbidden(Exception):
    def __init__(self, action: str) -> None:
        self.action = action


class BadCsrf(Exception):
    pass


def pool(request: Request) -> asyncpg.Pool:
    p: asyncpg.Pool = request.app.state.pool
    return p


def upstream(request: Request) -> Upstream:
    u: Upstream = request.app.state.upstream
    return u


def language(request: Request, user: User | None = None) -> str:
    """The cookie a switch set, else the user's saved choice, else Accept-Language."""
    return (i18n.valid_language(request.cookies.get(LANG_COOKIE))
            or (user.locale if user and i18n.valid_language(user.locale) else None)
            or i18n.negotiate(request.headers.get("accept-language")))


def translator(request: Request, user: User | None = None) -> i18n.Translator:
    return i18n.Translator(language(request, user),
                           user.time_zone if user else console_settings().default_time_zone)


async def current_user(request: Request) -> User:
    token = request.cookies.get(SESSION_COOKIE)
    if not token:
        raise LoginRequired()
    row = await store.session_user(pool(request), token)
    if row is None:
        raise LoginRequired()
    return User(row["user_id"], row["username"], row["role"], row["locale"], row["time_zone"],
                row["csrf"], row["must_change"])


def viewer(action: str) -> Callable[[Request], Awaitable[User]]:
    """A dependency: the signed-in user, who must be allowed `action` (else 403)."""
    async def dep(request: Request) -> User:
        user = await current_user(request)
        if not user.can(action):
            await audit(request, user, action, None, "forbidden")
            raise Forbidden(action)
        return user
    return dep


def actor(action: str) -> Callable[[Request], Awaitable[User]]:
    """A dependency for a POST: signed in, allowed `action`, and the form (or the htmx header)
    carries the session's CSRF token."""
    async def dep(request: Request) -> User:
        user = await current_user(request)
        form = await request.form()
        sent = request.headers.get("x-csrf-token") or form.get("csrf")
        if not auth.same(str(sent) if sent else None, user.csrf):
            raise BadCsrf()
        if not user.can(action):
            await audit(request, user, action, None, "forbidden")
            raise Forbidden(action)
        return user
    return dep


async def audit(request: Request, user: User | None, action: str, target: str | None,
                outcome: str, *, before: Any = None, after: Any = None,
                detail: str | None = None, actor_name: str | None = None,
                conn: store.Conn | None = None) -> None:
    """One row of the audit trail; on `conn` when the caller writes it in its own transaction
    (with the outbox rows of what it publishes)."""
    await store.audit(conn or pool(request), actor=actor_name or (user.username if user else "anonymous"),
                      role=user.role if user else None, action=action, target=target,
                      outcome=outcome, before=before, after=after, detail=detail)


def render(request: Request, name: str, user: User | None, status_code: int = 200,
           **context: Any) -> HTMLResponse:
    t = translator(request, user)
    ctx = {"request": request, "user": user, "_": t, "t": t, "lang": t.lang,
           "languages": i18n.LANGUAGES, "csrf": user.csrf if user else "",
           "path": request.url.path, "htmx": request.headers.get("hx-request") == "true",
           **context}
    return templates.TemplateResponse(request, name, ctx, status_code=status_code)


def login_url(request: Request) -> str:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return f"/login?next={quote(target)}"


def safe_next(value: str | None) -> str:
    """Only a path on this site: never an open redirect."""
    if value and value.startswith("/") and not value.startswith("//") and "\\" not in value:
        return value
    return "/orders"


def client_ip(request: Request) -> str:
    return request.client.host if request.client else "unknown"
