"""No input halts a service and no infrastructure fault becomes a dead letter, on the real stack
(docs/RELIABILITY.md "What no input can do"). Each test ends by showing that a later ordinary
order still goes through: the service was not halted."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import sys
import time
import uuid

import asyncpg
import httpx
from aiokafka import AIOKafkaProducer

from shared import topics
from shared.contracts import OrderStatusChanged
from shared.db import prune_inbox
from shared.messaging import longest_retention_ms
from shared.settings import get_settings, service_database_url
from shared.uow import QUOTE_CHARS, UnitOfWork
from tests.conftest import BOOTSTRAP, ROOT
from tools import storefront as sfm
from tools.storefront import Storefront

from .helpers import STORE, eventually, http_get, new_product, place, ref, tail, url
from .test_cli import shopkeeper


def _auth() -> dict[str, str]:
    return {"Authorization": f"Bearer {get_settings().shopkeeper_admin_token}"}


def _utf8(payload: dict[str, object]) -> bytes:
    """The value as a storefront sends it: UTF-8, not \\u escapes (which would triple its size)."""
    return json.dumps(payload, ensure_ascii=False).encode()


async def _still_flowing(sf: Storefront, sku: str) -> None:
    key, _ = await place(sf, [(sku, 1, "12.50")])
    await sf.wait_for(key, "accepted", timeout=60)


async def test_an_order_over_the_size_limit_is_rejected_too_large_and_intake_goes_on(
        storefront: Storefront) -> None:
    sf = storefront
    sku = await new_product(sf, stock={"WH-LA": 5})
    ext = ref("big")
    payload = sfm.order(STORE, ext, [(sku, 1, "12.50")])
    payload["promo_codes"] = ["優惠券" * 66_000]  # ~600 KB of valid, non-ASCII JSON text
    await sf.publish("orders.placed", f"{STORE}:{ext}", _utf8(payload))
    rejected = await sf.wait_for(f"{STORE}:{ext}", "rejected")
    assert rejected["reasons"][0]["code"] == "too_large"
    assert "262144" in rejected["reasons"][0]["message"]
    await _still_flowing(sf, sku)


async def test_long_text_quoted_back_is_cut_so_the_status_stays_small(
        storefront: Storefront) -> None:
    sf = storefront
    sku = await new_product(sf, stock={"WH-LA": 5})
    ext = ref("promo")
    payload = sfm.order(STORE, ext, [(sku, 1, "12.50")])
    payload["promo_codes"] = ["码" * 60_000]  # under the limit (~180 KB), an unknown code
    await sf.publish("orders.placed", f"{STORE}:{ext}", _utf8(payload))
    rejected = await sf.wait_for(f"{STORE}:{ext}", "rejected")
    reason = rejected["reasons"][0]
    assert reason["code"] == "invalid_promo"
    assert len(reason["message"]) == QUOTE_CHARS and reason["message"].endswith("\u2026")
    await _still_flowing(sf, sku)


async def test_a_value_near_the_brokers_limit_is_dead_lettered_as_a_prefix(
        storefront: Storefront) -> None:
    sf = storefront
    sku = await new_product(sf, stock={"WH-LA": 5})
    marker = ref("huge").encode()
    value = marker + b"x" * (1_048_400 - len(marker))  # not JSON, just under message.max.bytes
    producer = AIOKafkaProducer(bootstrap_servers=BOOTSTRAP, acks="all",
                                max_request_size=2 * 1024 * 1024)
    await producer.start()
    try:
        await producer.send_and_wait("orders.placed", value, key=b"huge")
    finally:
        await producer.stop()
    letter = await tail("orders.placed.dlq", lambda r: (r.value or b"").startswith(marker),
                        timeout=60)
    headers = dict(letter.headers)
    assert headers["x-truncated"] == b"true"
    assert headers["x-original-size"] == b"1048400"
    assert headers["x-original-topic"] == b"orders.placed"
    assert int(headers["x-original-offset"]) >= 0
    assert len(letter.value) < len(value)
    await _still_flowing(sf, sku)


async def test_a_nul_in_a_name_is_cleaned_and_the_order_gets_a_status(
        storefront: Storefront) -> None:
    sf = storefront
    sku = await new_product(sf, stock={"WH-LA": 5})
    ext = ref("nul")
    payload = sfm.order(STORE, ext, [(sku, 1, "12.50")])
    payload["customer"]["name"] = "Ana\u0000 Lima"
    payload["shipping_address"]["name"] = "Ana\u0000 Lima \ud800"
    await sf.publish("orders.placed", f"{STORE}:{ext}", payload)
    await sf.wait_for(f"{STORE}:{ext}", "accepted")


async def test_a_product_update_dated_in_the_future_does_not_freeze_the_product(
        storefront: Storefront) -> None:
    sf = storefront
    sku = await new_product(sf, price="10.00")
    future = sfm.product(sku, "99.00")
    future["occurred_at"] = "2099-01-01T00:00:00Z"
    await sf.publish("catalog.products", sku, future)

    async def price_is(expected: str) -> bool:
        return (await http_get("intake", f"/catalog/{sku}")).json().get("price") == expected
    await eventually(lambda: price_is("99.00"), what="the future-dated update taken")
    await asyncio.sleep(0.1)
    await sf.publish("catalog.products", sku, sfm.product(sku, "11.00"))  # a real, later update
    await eventually(lambda: price_is("11.00"), what="a later update winning")


async def test_a_row_the_broker_refuses_is_quarantined_and_the_rest_flows(
        storefront: Storefront) -> None:
    sf = storefront
    sku = await new_product(sf, stock={"WH-LA": 5})
    conn = await asyncpg.connect(service_database_url("intake"),
                                 server_settings={"search_path": "intake"})
    try:  # a row as a bug would write it, past enqueue's own check: 1.5 MB for the broker
        row_id = await conn.fetchval(
            "INSERT INTO outbox (topic, key, value) VALUES ('orders.status', $1, $2) RETURNING id",
            f"{STORE}:{ref('q')}", b"{" + b" " * 1_500_000 + b"}")
    finally:
        await conn.close()
    await _still_flowing(sf, sku)

    async def quarantined() -> bool:
        body = (await http_get("intake", "/outbox/quarantined", auth=True)).json()
        return any(r["id"] == row_id for r in body["rows"])
    await eventually(quarantined, what="the refused row quarantined")
    body = (await http_get("intake", "/outbox/quarantined", auth=True)).json()
    row = next(r for r in body["rows"] if r["id"] == row_id)
    assert "TooLarge" in row["error"] and row["size"] > 1_000_000
    assert (await http_get("intake", "/outbox/quarantined")).status_code == 401
    metrics = (await http_get("intake", "/metrics")).text
    assert "shopkeeper_outbox_quarantined" in metrics
    code, out = await shopkeeper("outbox", "quarantined", "--service", "intake")
    assert code == 0 and str(row_id) in out and "orders.status" in out, out


async def test_read_only_postgres_is_waited_out_and_nothing_is_dead_lettered(
        storefront: Storefront) -> None:
    """A standby or a failover: writes fail with 25006. The consumer retries without committing,
    /readyz says why, and once writes are back the order is handled, not dead-lettered."""
    sf = storefront
    sku = await new_product(sf, stock={"WH-LA": 5})
    dead_before = await _dead_letters("intake")
    admin = await asyncpg.connect(get_settings().database_url)
    try:
        await admin.execute("ALTER SYSTEM SET default_transaction_read_only = on")
        await admin.execute("SELECT pg_reload_conf()")
        await asyncio.sleep(1)
        key, _ = await place(sf, [(sku, 1, "12.50")])

        async def blocked() -> dict[str, object] | None:
            r = await http_get("intake", "/readyz")
            body = r.json()
            fault = str(body["checks"].get("infrastructure_fault", ""))
            return body if r.status_code == 503 and "ReadOnly" in fault else None
        await eventually(blocked, timeout=30, what="intake reporting the read-only fault")
    finally:
        await admin.execute("ALTER SYSTEM RESET default_transaction_read_only")
        await admin.execute("SELECT pg_reload_conf()")
        await admin.close()
    await sf.wait_for(key, "accepted", timeout=60)
    await eventually(lambda: _ready("intake"), what="intake ready again")
    assert await _dead_letters("intake") == dead_before


async def _ready(service: str) -> bool:
    return (await http_get(service, "/readyz")).status_code == 200


async def _dead_letters(service: str) -> float:
    text = (await http_get(service, "/metrics")).text
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith("shopkeeper_dlq_total{"))


async def test_writes_are_authenticated_before_their_body_is_read(stack: None) -> None:
    async with httpx.AsyncClient(timeout=10) as client:
        r = await client.put(url("intake", "/policies/shop-x"), content=b"{}")
        assert r.status_code == 401
        r = await client.put(url("intake", "/policies/shop-x"), content=b"{}",
                             headers={"Authorization": "Bearer"})  # the scheme, no token
        assert r.status_code == 401


async def test_a_body_declared_over_the_limit_is_refused_at_once(stack: None) -> None:
    """A client declares 1 GB and sends ten bytes: answered 413 at once, not waited for."""
    port = int(url("intake", "").rsplit(":", 1)[1])
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        token = get_settings().shopkeeper_admin_token
        s.sendall(f"PUT /policies/shop-x HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n"
                  f"Content-Type: application/json\r\nContent-Length: 1000000000\r\n\r\n"
                  f"0123456789".encode())
        answer = s.recv(4096)
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert time.monotonic() - started < 5


async def test_slow_headers_are_cut_off(stack: None) -> None:
    port = int(url("intake", "").rsplit(":", 1)[1])
    limit = get_settings().shopkeeper_http_header_timeout_seconds
    with socket.create_connection(("127.0.0.1", port), timeout=limit + 10) as s:
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")  # and never the blank line
        started = time.monotonic()
        assert s.recv(4096) == b""  # closed by the server
    assert time.monotonic() - started < limit + 5


async def test_a_service_refuses_to_start_with_an_empty_token(stack: None) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "services.intake", cwd=ROOT, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env={**os.environ, "SHOPKEEPER_ADMIN_TOKEN": "", "SHOPKEEPER_INTAKE_PORT": "18991"})
    out, _ = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode != 0
    assert b"refuses to start: SHOPKEEPER_ADMIN_TOKEN is empty" in out


async def test_an_event_too_large_to_publish_is_written_quarantined(stack: None) -> None:
    conn = await asyncpg.connect(service_database_url("intake"),
                                 server_settings={"search_path": "intake"})
    try:
        tr = conn.transaction()
        await tr.start()
        try:
            key = f"{STORE}:{ref('huge')}"
            await UnitOfWork(conn, "intake").publish(topics.ORDERS_STATUS, key, OrderStatusChanged(
                order_id="o", store=STORE, external_order_id="x", status="rejected",
                reasons=[], details={"blob": "x" * 1_100_000}))
            row = await conn.fetchrow("SELECT quarantined_at, error FROM outbox WHERE key = $1",
                                      key)
            assert row["quarantined_at"] is not None and "1000000-byte limit" in row["error"]
        finally:
            await tr.rollback()
    finally:
        await conn.close()


async def test_the_inbox_is_pruned_only_under_the_topics_retention(stack: None) -> None:
    week = 7 * 24 * 3600 * 1000
    assert await longest_retention_ms(BOOTSTRAP, ["orders.placed", "orders.status"]) == week
    conn = await asyncpg.connect(service_database_url("intake"),
                                 server_settings={"search_path": "intake"})
    try:
        tr = conn.transaction()
        await tr.start()
        try:
            old, new = uuid.uuid4(), uuid.uuid4()
            await conn.execute(
                "INSERT INTO inbox (event_id, topic, received_at) VALUES"
                " ($1, 't', now() - interval '15 days'), ($2, 't', now())", old, new)
            assert await prune_inbox(conn, 14) >= 1
            left = {r["event_id"] for r in await conn.fetch(
                "SELECT event_id FROM inbox WHERE event_id = ANY($1)", [old, new])}
            assert left == {new}
        finally:
            await tr.rollback()
    finally:
        await conn.close()
