"""`shopkeeper`: the operators' command line.

Every command talks to the running stack the way an operator would: the services' HTTP (with the
admin token for writes and personal data), Kafka for publishing and the DLQs, and, for `verify`,
Postgres with the admin URL. Errors are one clear line and a non-zero exit, never a traceback.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
from collections.abc import AsyncIterator, Coroutine
from typing import Any, NoReturn

import httpx
import typer
from rich.console import Console
from rich.table import Table

from shared.settings import get_settings, service_port

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Operate a running Shopkeeper stack (start it with `make up`).")
holds_app = typer.Typer(no_args_is_help=True, help="Orders held for review (intake).")
stock_app = typer.Typer(no_args_is_help=True, help="Stock per SKU and warehouse (inventory).")
backorders_app = typer.Typer(no_args_is_help=True, help="Orders waiting for stock.")
dlq_app = typer.Typer(no_args_is_help=True, help="Dead-letter topics: inspect and replay.")
app.add_typer(holds_app, name="holds")
app.add_typer(stock_app, name="stock")
app.add_typer(backorders_app, name="backorders")
app.add_typer(dlq_app, name="dlq")
console = Console()


class CliError(Exception):
    """Shown as one line, exit code 1."""


def fail(message: str, code: int = 1) -> NoReturn:
    console.print(f"[red]error:[/red] {message}", highlight=False)
    raise typer.Exit(code)


def run(coro: Coroutine[Any, Any, Any]) -> Any:
    try:
        return asyncio.run(coro)
    except CliError as exc:
        fail(str(exc))


def _url(service: str, path: str) -> str:
    return f"http://127.0.0.1:{service_port(service)}{path}"


async def call(service: str, method: str, path: str, *, auth: bool = False,
               body: dict[str, Any] | None = None, ok: tuple[int, ...] = (200,)) -> Any:
    headers = {"Authorization": f"Bearer {get_settings().shopkeeper_admin_token}"} if auth else {}
    try:
        async with httpx.AsyncClient(timeout=15) as client:
            r = await client.request(method, _url(service, path), headers=headers, json=body)
    except httpx.HTTPError as exc:
        raise CliError(f"cannot reach {service} at {_url(service, '')} ({type(exc).__name__});"
                       " is the stack up? (`make up`)") from None
    if r.status_code == 401:
        raise CliError(f"{service} refused the admin token: set SHOPKEEPER_ADMIN_TOKEN")
    if r.status_code not in ok:
        detail = r.json().get("detail") if r.headers.get("content-type", "").startswith(
            "application/json") else r.text[:200]
        raise CliError(f"{service} answered {r.status_code}: {detail}")
    return r.json() if r.content else None


def table(title: str, rows: list[dict[str, Any]], columns: list[str]) -> None:
    t = Table(title=title)
    for c in columns:
        t.add_column(c)
    for row in rows:
        t.add_row(*[_cell(row.get(c)) for c in columns])
    console.print(t)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, (dict, list)):
        return json.dumps(value, default=str)
    return str(value)


# --- orders -----------------------------------------------------------------------------------
@app.command()
def order(store: str, external_id: str) -> None:
    """An order's timeline, as analytics has it."""
    body = run(call("analytics", "GET", f"/orders/{store}/{external_id}", ok=(200, 404)))
    if body is None or "timeline" not in body:
        fail(f"no order {store}:{external_id}")
    console.print(f"[bold]{store}:{external_id}[/bold]  order_id {body['order_id']}  "
                  f"status [bold]{body['status']}[/bold]")
    table("timeline", [{**t, "reasons": "; ".join(f"{r['code']}: {r['message']}"
                                                   for r in t["reasons"])}
                       for t in body["timeline"]], ["occurred_at", "status", "reasons", "details"])


@app.command()
def report(days: int = typer.Option(30, min=1, help="the last N days")) -> None:
    """The shop's KPIs (analytics), orders by status and the main rejection and hold reasons."""
    from datetime import UTC, datetime, timedelta

    start = (datetime.now(UTC) - timedelta(days=days)).date().isoformat()
    body = run(call("analytics", "GET", f"/reports?from={start}"))
    reports = body.get("reports", {})
    table(f"KPIs, last {days} days", [{"metric": r["metric"], "value": r["value"]}
                                      for r in reports.get("summary", [])], ["metric", "value"])
    summary = run(call("analytics", "GET", "/summary"))
    table("orders by status", [{"status": k, "orders": v}
                               for k, v in summary["orders_by_status"].items()],
          ["status", "orders"])
    for name in ("rejection_reasons", "hold_reasons"):
        if summary.get(name):
            table(name.replace("_", " "), [{"reason": k, "orders": v}
                                           for k, v in summary[name].items()],
                  ["reason", "orders"])


rules_app = typer.Typer(no_args_is_help=True, help="Intake's review rules.")
app.add_typer(rules_app, name="rules")


@rules_app.command("dry-run")
def rules_dry_run(store: str, setting: list[str] = typer.Argument(..., help="name=value, e.g."
                                                                   " high_value_threshold=500"),
                  last: int = typer.Option(100, min=1, max=5000, help="orders to re-review")
                  ) -> None:
    """Re-review the last N stored orders with candidate settings for STORE; nothing changes
    for real. Shows which decisions would change and why."""
    candidate: dict[str, Any] = {}
    for item in setting:
        name, sep, value = item.partition("=")
        if not sep:
            fail(f"settings are name=value, got {item!r}", 2)
        candidate[name] = value
    body = run(call("intake", "POST", "/rules/dry-run", auth=True,
                    body={"policies": {store: candidate}, "limit": last}))
    console.print(f"re-reviewed {body['evaluated']} orders; {body['changed']} would change")
    for key in ("transitions",):
        if body.get(key):
            table("decision changes", [{"from -> to": k, "orders": v}
                                       for k, v in body[key].items()], ["from -> to", "orders"])


# --- holds ------------------------------------------------------------------------------------
@holds_app.command("list")
def holds_list() -> None:
    """Orders on hold, oldest first."""
    rows = run(call("intake", "GET", "/holds", auth=True))
    for r in rows:
        r["reasons"] = ", ".join(x["code"] for x in r["reasons"])
    table(f"{len(rows)} orders on hold", rows,
          ["order_id", "store", "external_order_id", "reasons", "grand_total", "received_at"])


@holds_app.command("approve")
def holds_approve(order_id: str, note: str = typer.Option("", help="why, for the audit")) -> None:
    """Release a held order."""
    body = run(call("intake", "POST", f"/holds/{order_id}/approve", auth=True,
                    body={"reason": note or None}))
    console.print(f"order {body['order_id']} {body['status']}")


@holds_app.command("reject")
def holds_reject(order_id: str, note: str = typer.Option(..., help="why, told to the customer")
                 ) -> None:
    """Reject a held order."""
    body = run(call("intake", "POST", f"/holds/{order_id}/reject", auth=True,
                    body={"reason": note}))
    console.print(f"order {body['order_id']} {body['status']}")


# --- stock ------------------------------------------------------------------------------------
@stock_app.command("show")
def stock_show(sku: str) -> None:
    """On hand, reserved and available per warehouse, and refurbished returns (their own
    stock, not sellable as new)."""
    body = run(call("inventory", "GET", f"/stock/{sku}"))
    if not body["warehouses"]:
        fail(f"no stock recorded for {sku}")
    table(sku, body["warehouses"], ["warehouse", "on_hand", "reserved", "available",
                                    "refurbished"])


@stock_app.command("receive")
def stock_receive(sku: str, warehouse: str, quantity: int = typer.Argument(..., min=1),
                  reference: str = typer.Option("", help="purchase order or delivery note")
                  ) -> None:
    """Goods in: publishes a `stock.adjustments` `received` event."""
    from tools import storefront as sf

    event = sf.stock(sku, warehouse, quantity)
    if reference:
        event["reference"] = reference
    run(_publish("stock.adjustments", sku, event))
    console.print(f"published: {quantity} x {sku} received at {warehouse}")


async def _publish(topic: str, key: str | None, value: dict[str, Any] | bytes,
                   headers: list[tuple[str, bytes]] | None = None) -> None:
    async with _producer() as producer:
        await _send(producer, topic, key, value, headers)


@contextlib.asynccontextmanager
async def _producer() -> AsyncIterator[Any]:
    from aiokafka import AIOKafkaProducer
    from aiokafka.errors import KafkaError

    producer = AIOKafkaProducer(bootstrap_servers=get_settings().kafka_bootstrap_servers,
                                acks="all", enable_idempotence=True, request_timeout_ms=10000)
    try:
        await asyncio.wait_for(producer.start(), 15)
        yield producer
    except (KafkaError, OSError, TimeoutError) as exc:
        raise CliError(f"cannot publish to Kafka at {get_settings().kafka_bootstrap_servers}"
                       f" ({type(exc).__name__}); is the stack up? (`make up`)") from None
    finally:
        await producer.stop()


async def _send(producer: Any, topic: str, key: str | None, value: dict[str, Any] | bytes,
                headers: list[tuple[str, bytes]] | None = None) -> None:
    raw = value if isinstance(value, bytes) else json.dumps(value).encode()
    await producer.send_and_wait(topic, raw, key=key.encode() if key else None, headers=headers)


# --- backorders -------------------------------------------------------------------------------
@backorders_app.command("list")
def backorders_list() -> None:
    """Orders waiting for stock, oldest first."""
    rows = run(call("inventory", "GET", "/backorders"))
    table(f"{len(rows)} backordered orders", rows, ["order_key", "short_lines", "since"])


# --- DLQ --------------------------------------------------------------------------------------
REPLAY_GROUP = "shopkeeper-dlq-replay"


async def _dlq_records(topic: str, *, group: str | None, limit: int) -> tuple[Any, list[Any]]:
    from aiokafka import AIOKafkaConsumer
    from aiokafka.errors import KafkaError

    from tools.storefront import topic_partitions

    consumer = AIOKafkaConsumer(bootstrap_servers=get_settings().kafka_bootstrap_servers,
                                group_id=group, enable_auto_commit=False,
                                auto_offset_reset="earliest")
    try:
        await asyncio.wait_for(consumer.start(), 15)
        parts = await topic_partitions(consumer, f"{topic}.dlq")
    except (KafkaError, OSError, TimeoutError, RuntimeError) as exc:
        await consumer.stop()
        raise CliError(f"cannot read {topic}.dlq ({exc}); is the stack up and the topic"
                       " registered?") from None
    consumer.assign(parts)
    if group is None:
        await consumer.seek_to_beginning(*parts)
    ends = await consumer.end_offsets(parts)
    records: list[Any] = []
    while len(records) < limit:
        positions = {tp: await consumer.position(tp) for tp in parts}
        if all(positions[tp] >= ends[tp] for tp in parts):
            break
        batch = await consumer.getmany(timeout_ms=1000, max_records=limit - len(records))
        for recs in batch.values():
            records.extend(recs)
    return consumer, records


@dlq_app.command("list")
def dlq_list(topic: str, limit: int = typer.Option(50, min=1)) -> None:
    """What is in TOPIC.dlq, with the error that put it there."""
    async def go() -> list[dict[str, Any]]:
        consumer, records = await _dlq_records(topic, group=None, limit=limit)
        await consumer.stop()
        return [{"partition": r.partition, "offset": r.offset,
                 "key": r.key.decode(errors="replace") if r.key else "",
                 "error_type": dict(r.headers).get("x-error-type", b"").decode(),
                 "error": dict(r.headers).get("x-error", b"").decode()[:120]} for r in records]
    rows = run(go())
    table(f"{len(rows)} messages in {topic}.dlq", rows,
          ["partition", "offset", "key", "error_type", "error"])


@dlq_app.command("replay")
def dlq_replay(topic: str, limit: int = typer.Option(1000, min=1)) -> None:
    """Publish TOPIC.dlq's messages (not replayed before) back to TOPIC, same key and value.
    Fix the cause first; consumers dedupe by event_id, so a replay never doubles an effect."""
    async def go() -> int:
        from aiokafka import TopicPartition

        consumer, records = await _dlq_records(topic, group=REPLAY_GROUP, limit=limit)
        try:
            async with _producer() as producer:
                for r in records:
                    origin = f"{topic}.dlq:{r.partition}:{r.offset}".encode()
                    await _send(producer, topic, r.key.decode(errors="replace") if r.key else None,
                                r.value or b"", [("x-replayed-from", origin)])
                    await consumer.commit({TopicPartition(r.topic, r.partition): r.offset + 1})
        finally:
            await consumer.stop()
        return len(records)
    count = run(go())
    console.print(f"replayed {count} messages from {topic}.dlq to {topic}")


# --- verify and simulate ----------------------------------------------------------------------
@app.command()
def verify(wait: float = typer.Option(30.0, help="seconds to let in-flight work settle")) -> None:
    """Cross-service invariants: every order in one consistent state, stock ledger balanced,
    outboxes drained. Exit 1 when any check fails."""
    from tools.verify import verify as run_checks

    results = run(run_checks(get_settings().database_url, settle_seconds=wait))
    table("invariants", [{"check": r.name, "result": "ok" if r.ok else "FAILED",
                          "detail": r.detail} for r in results], ["check", "result", "detail"])
    if not all(r.ok for r in results):
        raise typer.Exit(1)


@app.command()
def simulate(orders: int = typer.Option(500, min=1, help="orders to place"),
             rate: float = typer.Option(50.0, min=0.1, help="orders per second"),
             days: int = typer.Option(30, min=1, help="simulated period, compressed"),
             seed: int = typer.Option(7, help="same seed, same traffic")) -> None:
    """Realistic storefront traffic with live progress and a summary (the `make run` demo)."""
    from tools.simulator import Simulation

    code = asyncio.run(Simulation(orders, rate, days, seed, console).run())
    raise typer.Exit(code)


@app.command("seed-history")
def seed_history(
        orders: int = typer.Option(100_000, min=1, help="orders of history to write"),
        days: int = typer.Option(730, min=1, help="over the last N days"),
        seed: int = typer.Option(1, help="same seed, same history; another seed adds more"),
        schema: str = typer.Option("analytics", help="the analytics schema to write into")
) -> None:
    """Write a realistic order history straight into analytics (COPY), for benchmarks and demos:
    seasonality, repeat customers, returns. Rollups, timelines and search see it at once."""
    import asyncpg

    from tools.seed_history import seed as write_history

    def progress(n: int, seconds: float) -> None:
        console.print(f"{n:,} orders written in {seconds:.0f} s")

    try:
        result = asyncio.run(write_history(get_settings().database_url, orders, days=days,
                                           seed=seed, schema=schema, progress=progress))
    except RuntimeError as exc:
        fail(str(exc))
    except (OSError, asyncpg.PostgresError) as exc:
        fail(f"Postgres refused the history ({type(exc).__name__}: {exc}); is the stack up?"
             " (`make up`)")
    console.print(f"seeded {result['orders']:,} orders ({result['facts']:,} facts) over"
                  f" {result['days']} days in {result['seconds']} s")


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        console.print("interrupted")
        sys.exit(130)


if __name__ == "__main__":
    main()
