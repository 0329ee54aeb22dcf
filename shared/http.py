"""Operators' HTTP shared by every service: the bearer token, and the guard in front of every
route (docs/OPERATIONS.md "The HTTP surface").

The guard is plain ASGI, so it acts before FastAPI reads or parses anything:
- a write (POST, PUT, PATCH, DELETE) must carry the bearer token before its body is read, except
  on the few paths a service declares open (they authenticate otherwise, e.g. a signed webhook,
  or are harmless, e.g. a shipping quote);
- a body over the limit is refused with 413, at once when its Content-Length says so, else as soon
  as more has arrived; a body that stops arriving is cut off with 408;
- writes are rate-limited per client address (a token bucket): 429 with Retry-After.
Slow request headers are cut off by `GuardedH11` (uvicorn's protocol with a header timeout).
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import h11
from fastapi import Depends, HTTPException, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from uvicorn.protocols.http.h11_impl import H11Protocol

from .settings import get_settings

log = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})

# Declared as a security scheme, so that OpenAPI tools (Swagger UI at /docs) offer the token.
bearer = HTTPBearer(auto_error=False, description="SHOPKEEPER_ADMIN_TOKEN")


def token_ok(token: str | None) -> bool:
    """The admin token, compared in constant time. An empty configured token matches nothing
    (and the service refuses to start with one: `check_credentials`)."""
    expected = get_settings().shopkeeper_admin_token
    if not expected or not token:
        return False
    return hmac.compare_digest(token.encode(), expected.encode())


def bearer_token(authorization: str | None) -> str | None:
    scheme, _, token = (authorization or "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def require_admin(credentials: HTTPAuthorizationCredentials | None = Depends(bearer)) -> None:
    """`Authorization: Bearer <SHOPKEEPER_ADMIN_TOKEN>`, or 401."""
    if credentials is None or not token_ok(credentials.credentials):
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            detail="missing or wrong bearer token (SHOPKEEPER_ADMIN_TOKEN)",
            headers={"WWW-Authenticate": "Bearer"},
        )


def has_admin_token(authorization: str | None) -> bool:
    """For a route that shows more to an operator with the token than to anyone."""
    return token_ok(bearer_token(authorization))


class _TokenBucket:
    def __init__(self, rate: float, burst: float) -> None:
        self.rate, self.burst = rate, burst
        self.buckets: dict[str, tuple[float, float]] = {}

    def take(self, client: str) -> float:
        """0 when the client may go on, else the seconds until it may."""
        now = time.monotonic()
        tokens, last = self.buckets.get(client, (self.burst, now))
        tokens = min(self.burst, tokens + (now - last) * self.rate)
        if tokens >= 1:
            self.buckets[client] = (tokens - 1, now)
            return 0.0
        self.buckets[client] = (tokens, now)
        if len(self.buckets) > 10_000:  # forget idle clients; a full bucket is the default
            self.buckets = {c: v for c, v in self.buckets.items() if now - v[1] < 60}
        return (1 - tokens) / self.rate


class _TooLarge(Exception):
    pass


class _TooSlow(Exception):
    pass


class HttpGuard:
    """ASGI middleware: token before body on writes, body size and time limits, write rate."""

    def __init__(self, app: ASGIApp, *, open_writes: tuple[str, ...] = (),
                 max_body_bytes: int | None = None, body_timeout: float | None = None,
                 writes_per_second: float | None = None,
                 open_writes_per_second: float | None = None) -> None:
        settings = get_settings()
        self.app = app
        self.open_writes = open_writes
        self.max_body = max_body_bytes if max_body_bytes is not None \
            else settings.shopkeeper_http_max_body_bytes
        self.body_timeout = body_timeout if body_timeout is not None \
            else settings.shopkeeper_http_body_timeout_seconds
        rate = writes_per_second if writes_per_second is not None \
            else settings.shopkeeper_http_writes_per_second
        self.limiter = _TokenBucket(rate, max(1.0, rate * 5)) if rate > 0 else None
        # Open writes may have their own rate: a platform's webhooks come from a few shared
        # addresses, far above an operator's pace (None: the same limit as other writes).
        self.open_limiter = self.limiter if open_writes_per_second is None else (
            _TokenBucket(open_writes_per_second, max(1.0, open_writes_per_second * 5))
            if open_writes_per_second > 0 else None)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1")
                   for k, v in scope.get("headers") or []}
        method, path = scope["method"], scope["path"]
        if method in WRITE_METHODS:
            open_path = bool(self.open_writes) and path.startswith(self.open_writes)
            if not open_path and not has_admin_token(headers.get("authorization")):
                await _answer(send, 401, "missing or wrong bearer token (SHOPKEEPER_ADMIN_TOKEN)",
                              {"www-authenticate": "Bearer"})
                return
            limiter = self.open_limiter if open_path else self.limiter
            if limiter is not None:
                client = (scope.get("client") or ("?", 0))[0]
                wait = limiter.take(client)
                if wait > 0:
                    await _answer(send, 429, f"too many writes from {client}; retry later",
                                  {"retry-after": str(max(1, round(wait + 0.5)))})
                    return
        length = headers.get("content-length")
        if length is not None:
            try:
                declared = int(length)
            except ValueError:
                await _answer(send, 400, "Content-Length is not a number")
                return
            if declared > self.max_body:
                await _answer(send, 413, f"too_large: the body is {declared} bytes; this"
                              f" service takes at most {self.max_body}")
                return
        started = False

        async def guarded_receive() -> Message:
            try:
                message = await asyncio.wait_for(receive(), self.body_timeout)
            except TimeoutError:
                raise _TooSlow from None
            if message["type"] == "http.request":
                guarded_receive.seen += len(message.get("body", b""))  # type: ignore[attr-defined]
                if guarded_receive.seen > self.max_body:  # type: ignore[attr-defined]
                    raise _TooLarge
            return message

        guarded_receive.seen = 0  # type: ignore[attr-defined]

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, guarded_receive, tracking_send)
        except _TooLarge:
            if not started:
                await _answer(send, 413, f"too_large: the body is over this service's limit"
                              f" of {self.max_body} bytes")
        except _TooSlow:
            if not started:
                await _answer(send, 408, f"the body did not arrive within"
                              f" {self.body_timeout:.0f} s")


async def _answer(send: Send, code: int, detail: str, headers: dict[str, str] | None = None
                  ) -> None:
    body = json.dumps({"detail": detail}).encode()
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
           (b"connection", b"close")]
    raw += [(k.encode(), v.encode()) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": code, "headers": raw})
    await send({"type": "http.response.body", "body": body})


class GuardedH11(H11Protocol):
    """uvicorn's HTTP/1.1 protocol with a deadline for a request's headers: a client that opens a
    connection and trickles its headers (slowloris) is disconnected after
    SHOPKEEPER_HTTP_HEADER_TIMEOUT_SECONDS, instead of holding the connection forever."""

    _header_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_header_timer()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._arm_header_timer()  # the next request on this connection gets its own deadline

    def connection_lost(self, exc: Exception | None) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
        super().connection_lost(exc)

    def _arm_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
        self._header_timer = self.loop.call_later(
            get_settings().shopkeeper_http_header_timeout_seconds, self._headers_overdue)

    def _headers_overdue(self) -> None:
        self._header_timer = None
        waiting = self.cycle is None or self.cycle.response_complete
        if waiting and self.conn.their_state is h11.IDLE and not self.transport.is_closing():
            self.transport.close()
