"""The HTTP guard in front of every service (shared/http.py), on a small app in process: the
token is checked before a write's body is read, bodies are bounded, writes are rate-limited.
The same guard on a real server (413 at once for a declared 1 GB, slow headers cut off) is in
tests/integration/test_hardening.py."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
from fastapi import Depends, FastAPI, Request

from shared.http import HttpGuard, require_admin
from shared.settings import get_settings

TOKEN = {"Authorization": f"Bearer {get_settings().shopkeeper_admin_token}"}


def _app(**guard: object) -> tuple[FastAPI, list[bytes]]:
    app = FastAPI()
    bodies: list[bytes] = []

    @app.post("/admin", dependencies=[Depends(require_admin)])
    async def admin_write(request: Request) -> dict[str, int]:
        bodies.append(await request.body())
        return {"n": len(bodies[-1])}

    @app.post("/quotes")
    async def quote(request: Request) -> dict[str, int]:
        bodies.append(await request.body())
        return {"n": len(bodies[-1])}

    @app.get("/read")
    async def read() -> dict[str, bool]:
        return {"ok": True}

    app.add_middleware(HttpGuard, **guard)  # type: ignore[arg-type]
    return app, bodies


def _client(app: FastAPI) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t")


async def test_a_write_without_the_token_is_refused_before_its_body_is_read() -> None:
    app, bodies = _app()
    async with _client(app) as c:
        assert (await c.post("/admin", content=b"x" * 100)).status_code == 401
        assert (await c.post("/admin", content=b"x", headers={"Authorization": "Bearer "})
                ).status_code == 401
        assert (await c.post("/admin", content=b"x", headers={"Authorization": "Bearer nope"})
                ).status_code == 401
    assert bodies == []


async def test_a_write_with_the_token_goes_through() -> None:
    app, bodies = _app()
    async with _client(app) as c:
        r = await c.post("/admin", content=b"hello", headers=TOKEN)
    assert r.status_code == 200 and bodies == [b"hello"]


async def test_open_write_paths_take_no_token() -> None:
    app, bodies = _app(open_writes=("/quotes",))
    async with _client(app) as c:
        assert (await c.post("/quotes", content=b"{}")).status_code == 200
        assert (await c.post("/admin", content=b"{}")).status_code == 401
    assert bodies == [b"{}"]


async def test_a_body_declared_over_the_limit_is_refused_unread() -> None:
    app, bodies = _app(max_body_bytes=1000)
    async with _client(app) as c:
        r = await c.post("/admin", content=b"x" * 1001, headers=TOKEN)
    assert r.status_code == 413 and "1000" in r.json()["detail"] and bodies == []


async def test_a_streamed_body_over_the_limit_is_cut_off() -> None:
    app, bodies = _app(max_body_bytes=1000)

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(10):
            yield b"y" * 300

    async with _client(app) as c:
        r = await c.post("/admin", content=chunks(), headers=TOKEN)  # chunked: no length
    assert r.status_code == 413 and bodies == []


async def test_writes_beyond_the_rate_get_429_with_retry_after_and_reads_do_not() -> None:
    app, _ = _app(writes_per_second=1.0)  # a burst of 5, then one a second
    async with _client(app) as c:
        codes = [(await c.post("/admin", content=b"{}", headers=TOKEN)).status_code
                 for _ in range(7)]
        limited = await c.post("/admin", content=b"{}", headers=TOKEN)
        reads = [(await c.get("/read")).status_code for _ in range(20)]
    assert codes[:5] == [200] * 5 and codes[5:] == [429, 429]
    assert limited.status_code == 429 and int(limited.headers["retry-after"]) >= 1
    assert reads == [200] * 20


async def test_open_writes_can_have_their_own_rate() -> None:
    # Given operators' writes limited to 1/s (burst 5) and open writes (webhooks) to 10/s
    app, _ = _app(writes_per_second=1.0, open_writes=("/quotes",), open_writes_per_second=10.0)
    async with _client(app) as c:
        # When a platform sends 30 webhooks at once, and an operator 7 writes
        opened = [(await c.post("/quotes", content=b"{}")).status_code for _ in range(30)]
        admin = [(await c.post("/admin", content=b"{}", headers=TOKEN)).status_code
                 for _ in range(7)]
    # Then the webhooks get their burst of 50 and the operator's limit is untouched by them
    assert opened == [200] * 30
    assert admin[:5] == [200] * 5 and admin[5:] == [429, 429]
