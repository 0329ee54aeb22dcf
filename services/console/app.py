"""The console's application: its lifespan (own Postgres schema, the upstream client), sign-in and
sign-out, the language switch, the error pages, and the pages' routers."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from pathlib import Path

from fastapi import FastAPI, Form, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, RedirectResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from shared import outbox
from shared.db import connect, migrate
from shared.http import HttpGuard
from shared.logging import setup_logging
from shared.service import outbox_router
from shared.settings import check_credentials, get_settings, service_database_url

from . import auth, i18n, store
from .config import console_settings
from .pages import router as pages_router
from .upstream import Upstream, UpstreamError
from .web import (
    LANG_COOKIE,
    PRE_CSRF_COOKIE,
    SESSION_COOKIE,
    BadCsrf,
    Forbidden,
    LoginRequired,
    User,
    actor,
    audit,
    client_ip,
    current_user,
    login_url,
    pool,
    render,
    safe_next,
)

log = logging.getLogger(__name__)
STATIC = Path(__file__).parent / "static"
ASSETS = {"htmx.min.js": "text/javascript", "console.js": "text/javascript",
          "console.css": "text/css", "LICENSE-htmx.txt": "text/plain"}
NAME = "console"


@contextlib.asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings = get_settings()
    setup_logging(NAME, settings.shopkeeper_log_level)
    check_credentials(NAME, settings)
    dsn = service_database_url(NAME, settings)
    app.state.pool = await connect(dsn, NAME)
    await migrate(app.state.pool, NAME, Path(__file__).parent)
    app.state.upstream = Upstream(console_settings().upstream_timeout_seconds)
    # What the console itself publishes as its own events (customer.messages, and the backorder
    # decision with it) goes through its outbox, written in the transaction of the audit row; a
    # relay publishes it, so Kafka being away when a manager clicks loses nothing.
    producer = outbox.ProducerHolder(settings.kafka_bootstrap_servers, f"shopkeeper-{NAME}")
    app.state.relay = outbox.OutboxRelay(app.state.pool, dsn, NAME, producer,
                                         settings.shopkeeper_outbox_poll_seconds)
    app.state.relay.start()
    prune = asyncio.create_task(outbox.prune_forever(
        app.state.pool, settings.shopkeeper_outbox_retention_hours), name="outbox-prune")
    log.info("console started")
    try:
        yield
    finally:
        prune.cancel()
        await app.state.relay.stop()
        await producer.reset()
        await app.state.upstream.close()
        await app.state.pool.close()


def create_app() -> FastAPI:
    app = FastAPI(title="Shopkeeper console", lifespan=lifespan, docs_url=None, redoc_url=None,
                  openapi_url=None)

    @app.exception_handler(LoginRequired)
    async def _login(request: Request, exc: LoginRequired) -> Response:
        if request.headers.get("hx-request") == "true":
            return Response(status_code=401, headers={"HX-Redirect": login_url(request)})
        return RedirectResponse(login_url(request), status_code=303)

    @app.exception_handler(Forbidden)
    async def _forbidden(request: Request, exc: Forbidden) -> Response:
        user = await _maybe_user(request)
        return render(request, "error.html", user, status_code=403,
                      title_key="error.forbidden.title", message_key="error.forbidden.body")

    @app.exception_handler(BadCsrf)
    async def _csrf(request: Request, exc: BadCsrf) -> Response:
        user = await _maybe_user(request)
        return render(request, "error.html", user, status_code=403,
                      title_key="error.csrf.title", message_key="error.csrf.body")

    @app.exception_handler(UpstreamError)
    async def _upstream(request: Request, exc: UpstreamError) -> Response:
        user = await _maybe_user(request)
        log.warning("an upstream call failed for a console page %s: %s", request.url.path, exc)
        return render(request, "error.html", user, status_code=502 if exc.status >= 500 else
                      exc.status, title_key="error.upstream.title",
                      message_key="error.upstream.body", service=exc.service,
                      detail=exc.detail)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> Response:
        user = await _maybe_user(request)
        fields = ", ".join(str(e.get("loc", ["?"])[-1]) for e in exc.errors())
        return render(request, "error.html", user, status_code=422,
                      title_key="error.invalid.title", message_key="error.invalid.body",
                      service="console", detail=fields)

    app.add_api_route("/healthz", _healthz, methods=["GET"])
    app.add_api_route("/readyz", _readyz, methods=["GET"])
    app.add_api_route("/metrics", _metrics, methods=["GET"])
    app.add_api_route("/static/{name}", _asset, methods=["GET"])
    app.add_api_route("/", _home, methods=["GET"])
    app.add_api_route("/login", _login_form, methods=["GET"])
    app.add_api_route("/login", _login_post, methods=["POST"])
    app.add_api_route("/logout", _logout, methods=["POST"])
    app.add_api_route("/language", _language, methods=["POST"])
    app.include_router(pages_router)
    # The console's own quarantined outbox rows, for operators with the admin token (as every
    # service's: `shopkeeper outbox quarantined|release` and the Exceptions page).
    app.include_router(outbox_router(lambda request: (NAME, pool(request))))
    # Body limits, body and header deadlines and the write rate of every service; every write
    # path is open to the guard's token check: the console signs its users in itself (sessions,
    # CSRF) and calls the services with the token.
    app.add_middleware(HttpGuard, open_writes=("/",))
    return app


async def _maybe_user(request: Request) -> User | None:
    try:
        return await current_user(request)
    except LoginRequired:
        return None


async def _healthz() -> dict[str, str]:
    return {"status": "alive"}


async def _readyz(request: Request) -> JSONResponse:
    """Ready when its own Postgres answers; the services it calls have their own /readyz. The
    outbox relay's state is reported, not a reason to stop serving (Kafka away: the console's
    messages wait in its outbox)."""
    relay: outbox.OutboxRelay = request.app.state.relay
    checks: dict[str, object] = {"outbox_relay": relay.last_error or "ok",
                                 "outbox_quarantined": relay.quarantined}
    try:
        async with asyncio.timeout(3):
            await pool(request).fetchval("SELECT 1")
        return JSONResponse({"ready": True, "checks": {"postgres": True, **checks}})
    except Exception as exc:
        return JSONResponse({"ready": False, "checks": {"postgres": f"unreachable: {exc}",
                                                        **checks}}, status_code=503)


async def _metrics() -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)


async def _asset(name: str) -> Response:
    if name not in ASSETS:
        return Response(status_code=404)
    return FileResponse(STATIC / name, media_type=ASSETS[name],
                        headers={"Cache-Control": "max-age=3600"})


async def _home(request: Request) -> Response:
    await current_user(request)
    return RedirectResponse("/orders", status_code=303)


def _set_cookie(response: Response, name: str, value: str, max_age: int | None) -> None:
    response.set_cookie(name, value, max_age=max_age, httponly=True, samesite="lax",
                        secure=console_settings().cookie_secure, path="/")


async def _login_form(request: Request, next: str | None = None) -> Response:
    token = request.cookies.get(PRE_CSRF_COOKIE) or auth.new_token()
    response = render(request, "login.html", None, next=safe_next(next), pre_csrf=token)
    _set_cookie(response, PRE_CSRF_COOKIE, token, 3600)
    return response


async def _login_post(request: Request, username: str = Form(max_length=64),
                      password: str = Form(max_length=256), csrf: str = Form(""),
                      next: str = Form("/orders")) -> Response:
    cfg = console_settings()
    ip = client_ip(request)

    def again(key: str, status: int) -> Response:
        token = auth.new_token()
        response = render(request, "login.html", None, status_code=status, next=safe_next(next),
                          pre_csrf=token, error_key=key, username=username)
        _set_cookie(response, PRE_CSRF_COOKIE, token, 3600)
        return response

    if not auth.same(csrf, request.cookies.get(PRE_CSRF_COOKIE)):
        return again("login.error.expired", 403)
    db = pool(request)
    if await store.recent_failures(db, ip, cfg.ip_window_seconds) >= cfg.ip_failures:
        await audit(request, None, "login", username, "rate_limited", actor_name=username,
                    detail="too many failed sign-ins from one address")
        return again("login.error.rate_limited", 429)
    row = await store.user_by_name(db, username)
    # argon2 is meant to be slow (tens of ms of CPU): off the event loop.
    ok = await asyncio.to_thread(auth.verify_password, row["password_hash"] if row else None,
                                 password)
    locked = row is not None and row["locked_until"] is not None and await db.fetchval(
        "SELECT $1::timestamptz > now()", row["locked_until"])
    if row is None or not row["active"] or not ok or locked:
        await store.record_attempt(db, ip, username, False)
        now_locked = False
        if row is not None and not ok and not locked:
            now_locked = await store.login_failed(db, row["user_id"], cfg.max_failures,
                                                  cfg.lockout_seconds)
        outcome = "locked" if locked or now_locked else "failed"
        await audit(request, None, "login", username, outcome, actor_name=username)
        return again("login.error.locked" if locked or now_locked else "login.error.wrong", 401)
    await store.record_attempt(db, ip, username, True)
    await store.login_succeeded(db, row["user_id"])
    token, session_csrf = auth.new_token(), auth.new_token()
    await store.create_session(db, token, row["user_id"], session_csrf, cfg.session_hours)
    await store.audit(db, actor=row["username"], role=row["role"], action="login",
                      target=row["username"], outcome="ok")
    response = RedirectResponse(safe_next(next), status_code=303)
    _set_cookie(response, SESSION_COOKIE, token, int(cfg.session_hours * 3600))
    response.delete_cookie(PRE_CSRF_COOKIE, path="/")
    return response


async def _logout(request: Request) -> Response:
    user = await actor("orders.view")(request)
    token = request.cookies.get(SESSION_COOKIE)
    if token:
        await store.end_session(pool(request), token)
    await audit(request, user, "logout", user.username, "ok")
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


async def _language(request: Request) -> Response:
    """Switch the language: a cookie (works on the sign-in page too) and, signed in, the user's
    saved choice."""
    form = await request.form()
    lang = i18n.valid_language(str(form.get("lang") or "")) or i18n.DEFAULT_LANGUAGE
    back = safe_next(str(form.get("back") or "/orders"))
    user = await _maybe_user(request)
    if user is not None:
        if not auth.same(str(form.get("csrf") or ""), user.csrf):
            raise BadCsrf()
        await store.update_user(pool(request), user.user_id, locale=lang)
        await audit(request, user, "language", user.username, "ok", before=user.locale,
                    after=lang)
    response = RedirectResponse(back, status_code=303)
    _set_cookie(response, LANG_COOKIE, lang, 365 * 24 * 3600)
    return response


app = create_app()
