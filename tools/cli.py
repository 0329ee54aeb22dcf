"""`shopkeeper`: the operators' command line.

Every command talks to the running stack the way an operator would: the services' HTTP (with the
admin token for writes and personal data), Kafka for publishing and the DLQs, and, for `verify`,
Postgres with the admin URL. Errors are one clear line and a non-zero exit, never a traceback.

Where each service is: `SHOPKEEPER_<SERVICE>_URL` (e.g. `http://inventory.internal:8002`), else
`http://127.0.0.1:<its port>` (docs/contract.md's port, plus SHOPKEEPER_PORT_OFFSET), which is
where the local stack and docker-compose.yml publish it. `--json` prints every command's result
as one JSON document on stdout (errors too, as `{"error": ...}` on stderr) for scripts.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.metadata
import json
import sys
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any, NoReturn

import httpx
import typer
from rich.console import Console
from rich.table import Table

from shared.settings import SERVICES, WEB_APPS, get_settings
from tools.endpoints import service_url


def version() -> str:
    try:
        return importlib.metadata.version("shopkeeper")
    except importlib.metadata.PackageNotFoundError:  # a checkout that was not installed
        return "0+unknown"

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Operate a running Shopkeeper stack (start it with `make up`).")
holds_app = typer.Typer(no_args_is_help=True, help="Orders held for review (intake).")
stock_app = typer.Typer(no_args_is_help=True, help="Stock per SKU and warehouse (inventory).")
backorders_app = typer.Typer(no_args_is_help=True, help="Orders waiting for stock.")
dlq_app = typer.Typer(no_args_is_help=True, help="Dead-letter topics: inspect and replay.")
outbox_app = typer.Typer(no_args_is_help=True,
                         help="Events Kafka refused for good (quarantined outbox rows).")
users_app = typer.Typer(no_args_is_help=True, help="The web console's users.")
app.add_typer(holds_app, name="holds")
app.add_typer(stock_app, name="stock")
app.add_typer(backorders_app, name="backorders")
app.add_typer(dlq_app, name="dlq")
app.add_typer(outbox_app, name="outbox")
channels_app = typer.Typer(no_args_is_help=True,
                           help="Storefronts and marketplaces feeding Shopkeeper (channels).")
app.add_typer(channels_app, name="channels")
app.add_typer(users_app, name="users")
console = Console()
errors = Console(stderr=True)
_state = {"json": False}


class CliError(Exception):
    """Shown as one line, exit code 1."""


def fail(message: str, code: int = 1) -> NoReturn:
    if _state["json"]:
        sys.stderr.write(json.dumps({"error": message}) + "\n")
    else:
        console.print(f"[red]error:[/red] {message}", highlight=False)
    raise typer.Exit(code)


def show(data: Any, render: Callable[[], None]) -> None:
    """`--json`: the data as one JSON document; otherwise the human rendering."""
    if _state["json"]:
        sys.stdout.write(json.dumps(data, default=str) + "\n")
    else:
        render()


def _print_version(value: bool) -> None:
    if value:
        sys.stdout.write(f"shopkeeper {version()}\n")
        raise typer.Exit()


@app.callback()
def _options(
    json_output: bool = typer.Option(False, "--json", help="machine-readable output (JSON)"),
    _version: bool = typer.Option(False, "--version", callback=_print_version, is_eager=True,
                                  help="print the version and exit"),
) -> None:
    """Operate a running Shopkeeper stack (start it with `make up`). Each service's address:
    SHOPKEEPER_<SERVICE>_URL, default http://127.0.0.1:<port>."""
    _state["json"] = json_output


def run(coro: Coroutine[Any, Any, Any]) -> Any:
    try:
        return asyncio.run(coro)
    except CliError as exc:
        fail(str(exc))


def _url(service: str, path: str) -> str:
    try:
        return f"{service_url(service)}{path}"
    except ValueError as exc:
        raise CliError(str(exc)) from None


async def _request(service: str, method: str, path: str, *, headers: dict[str, str],
                   body: Any, timeout: float) -> httpx.Response:
    """One call to a service; unreachable or refusing the token: one clear CliError."""
    try:
        async with httpx.AsyncClient(timeout=timeout) as client:
            r = await client.request(method, _url(service, path), headers=headers, json=body)
    except httpx.HTTPError as exc:
        raise CliError(f"cannot reach {service} at {_url(service, '')} ({type(exc).__name__});"
                       " is the stack up? (`make up`)") from None
    if r.status_code == 401:
        raise CliError(f"{service} refused the admin token: set SHOPKEEPER_ADMIN_TOKEN")
    return r


async def call(service: str, method: str, path: str, *, auth: bool = False,
               body: dict[str, Any] | None = None, ok: tuple[int, ...] = (200,)) -> Any:
    headers = {"Authorization": f"Bearer {get_settings().shopkeeper_admin_token}"} if auth else {}
    r = await _request(service, method, path, headers=headers, body=body, timeout=15)
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


# --- setup ------------------------------------------------------------------------------------
setup_app = typer.Typer(no_args_is_help=True, help="The shop's setup as one YAML file"
                        " (docs/setup.md): warehouses, carriers, boxes, sellers, policies.")
app.add_typer(setup_app, name="setup")


async def setup_call(service: str, method: str, path: str, body: Any) -> Any:
    """One owner's /setup route for tools/setup_file.py; its refusals become SetupError."""
    from tools import setup_file

    headers = {"Authorization": f"Bearer {get_settings().shopkeeper_admin_token}",
               "X-Operator": _operator()}
    r = await _request(service, method, path, headers=headers, body=body, timeout=60)
    if r.status_code != 200:
        try:
            detail = r.json().get("detail")
        except ValueError:
            detail = r.text[:200]
        raise setup_file.problems_of(service, r.status_code, detail)
    return r.json()


def _operator() -> str:
    """Who is changing the setup, for the owners' audit logs: SHOPKEEPER_OPERATOR, else the
    login name."""
    import getpass
    import os

    try:
        return os.environ.get("SHOPKEEPER_OPERATOR") or f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli"


@contextlib.contextmanager
def _setup_errors() -> Any:
    """A refused or unreadable setup file: the message and one line per problem, exit 1."""
    from tools.setup_file import SetupError

    try:
        yield
    except SetupError as exc:
        if _state["json"]:
            sys.stderr.write(json.dumps({"error": str(exc), "problems": exc.problems}) + "\n")
            raise typer.Exit(1) from None
        console.print(f"[red]error:[/red] {exc}", highlight=False)
        for line in exc.problems:
            console.print(f"  - {line}", highlight=False, markup=False)
        raise typer.Exit(1) from None


def _setup_run(coro: Coroutine[Any, Any, Any]) -> Any:
    with _setup_errors():
        return run(coro)


def _show_plans(plans: list[dict[str, Any]], applied: bool) -> None:
    rows = [{"service": p["service"], "section": c["section"], "key": c["key"],
             "action": c["action"], "fields": ", ".join(c["fields"])}
            for p in plans for c in p["changes"]]

    def render() -> None:
        if rows:
            table("applied" if applied else "would change (dry run)", rows,
                  ["service", "section", "key", "action", "fields"])
        for p in plans:
            if p.get("waiting"):
                console.print(f"{p['service']}: planned after the changes above are applied"
                              f" ({p['waiting']})", highlight=False)
        unchanged = sum(p["unchanged"] for p in plans)
        console.print(f"{len(rows)} change{'' if len(rows) == 1 else 's'}, {unchanged}"
                      f" entr{'y' if unchanged == 1 else 'ies'} unchanged."
                      + ("" if applied or not rows else
                         " Nothing was changed: add --apply to apply."), highlight=False)
    show({"applied": applied, "plans": plans}, render)


@setup_app.command("export")
def setup_export(output: str = typer.Option("-", "--output", "-o",
                                            help="file to write (default: standard output)")
                 ) -> None:
    """Write the running shop's whole setup as one YAML file."""
    from pathlib import Path

    from tools import setup_file

    doc = _setup_run(setup_file.export(setup_call))
    text = setup_file.dump(doc)
    if output == "-":
        sys.stdout.write(text)
    else:
        Path(output).write_text(text, encoding="utf-8")
        counts = ", ".join(f"{len(v)} {k}" for k, v in doc.items() if isinstance(v, dict))
        errors.print(f"wrote {output}: {counts}", highlight=False)


@setup_app.command("import")
def setup_import(file: str = typer.Argument(..., help="the setup YAML file"),
                 apply: bool = typer.Option(False, "--apply",
                                            help="apply it (default: only show the plan)")
                 ) -> None:
    """Validate a setup file and show what it would change; with --apply, change it. Entries
    the file does not name are left as they are."""
    from pathlib import Path

    from tools import setup_file

    with _setup_errors():
        doc = setup_file.read(Path(file))
    if apply:
        _show_plans(_setup_run(setup_file.apply(setup_call, doc)), applied=True)
    else:
        _show_plans(_setup_run(setup_file.plan(setup_call, doc)), applied=False)


@setup_app.command("audit")
def setup_audit(section: str = typer.Option(None, help="one section, e.g. warehouses"),
                key: str = typer.Option(None, help="one entry's key"),
                limit: int = typer.Option(50, min=1, max=1000)) -> None:
    """Who changed the setup, when, and what (every owner's audit log, newest first)."""
    from urllib.parse import urlencode

    from tools import setup_file

    owners = ([setup_file.SECTIONS[section]] if section in setup_file.SECTIONS
              else list(setup_file.OWNERS))
    query = urlencode({k: v for k, v in {"section": section, "key": key, "limit": limit}.items()
                       if v is not None})

    async def gather() -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = []
        for owner in owners:
            rows += [{**r, "service": owner}
                     for r in await setup_call(owner, "GET", f"/setup/audit?{query}", None)]
        return sorted(rows, key=lambda r: r["changed_at"], reverse=True)[:limit]

    rows = _setup_run(gather())
    show(rows, lambda: table("setup changes", [
        {**r, "fields": ", ".join(sorted(k for k in set(r["before"] or {}) | set(r["after"] or {})
                                         if (r["before"] or {}).get(k) != (r["after"] or {}).get(k)))}
        for r in rows], ["changed_at", "service", "section", "key", "action", "changed_by",
                         "fields"]))


# --- orders -----------------------------------------------------------------------------------
@app.command()
def order(store: str, external_id: str) -> None:
    """An order's timeline, as analytics has it."""
    body = run(call("analytics", "GET", f"/orders/{store}/{external_id}", ok=(200, 404)))
    if body is None or "timeline" not in body:
        fail(f"no order {store}:{external_id}")

    def render() -> None:
        console.print(f"[bold]{store}:{external_id}[/bold]  order_id {body['order_id']}  "
                      f"status [bold]{body['status']}[/bold]")
        table("timeline", [{**t, "reasons": "; ".join(f"{r['code']}: {r['message']}"
                                                       for r in t["reasons"])}
                           for t in body["timeline"]],
              ["occurred_at", "status", "reasons", "details"])
    show(body, render)


@app.command()
def report(days: int = typer.Option(30, min=1, help="the last N days")) -> None:
    """The shop's KPIs (analytics), orders by status and the main rejection and hold reasons."""
    from datetime import UTC, datetime, timedelta

    start = (datetime.now(UTC) - timedelta(days=days)).date().isoformat()
    body = run(call("analytics", "GET", f"/reports?from={start}"))
    reports = body.get("reports", {})
    summary = run(call("analytics", "GET", "/summary"))

    def render() -> None:
        table(f"KPIs, last {days} days", [{"metric": r["metric"], "value": r["value"]}
                                          for r in reports.get("summary", [])],
              ["metric", "value"])
        table("orders by status", [{"status": k, "orders": v}
                                   for k, v in summary["orders_by_status"].items()],
              ["status", "orders"])
        for name in ("rejection_reasons", "hold_reasons"):
            if summary.get(name):
                table(name.replace("_", " "), [{"reason": k, "orders": v}
                                               for k, v in summary[name].items()],
                      ["reason", "orders"])
    show({"days": days, "reports": body, "summary": summary}, render)


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

    def render() -> None:
        console.print(f"re-reviewed {body['evaluated']} orders; {body['changed']} would change")
        if body.get("transitions"):
            table("decision changes", [{"from -> to": k, "orders": v}
                                       for k, v in body["transitions"].items()],
                  ["from -> to", "orders"])
    show(body, render)


# --- channels ---------------------------------------------------------------------------------
def _pairs(items: list[str], what: str) -> dict[str, Any]:
    """`name=value` items; a value that reads as JSON (numbers, lists, true) is taken as such."""
    out: dict[str, Any] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name:
            fail(f"{what} {item!r} is not name=value")
        try:
            out[name] = json.loads(value)
        except ValueError:
            out[name] = value
    return out


@channels_app.command("list")
def channels_list() -> None:
    """Every store's channel, its deliveries, write-backs and marketplace poll (no secrets)."""
    rows = run(call("channels", "GET", "/channels", auth=True))
    show(rows, lambda: table(f"{len(rows)} channels", rows,
                             ["store", "platform", "api_base_url", "deliveries",
                              "last_delivery_at", "writebacks_pending", "writebacks_submitted",
                              "writebacks_failed", "writebacks_done", "poll_cursor",
                              "poll_last_error"]))


@channels_app.command("writebacks")
def channels_writebacks(store: str,
                        state: str = typer.Option(None, help="pending, submitted, done, failed"
                                                  " or skipped"),
                        limit: int = typer.Option(50, min=1, max=1000)) -> None:
    """A store's write-backs, newest first: what failed and why, and the marketplace feeds
    still being processed (`submitted`)."""
    from urllib.parse import urlencode

    query = urlencode({k: v for k, v in {"state": state, "limit": limit}.items() if v})
    rows = run(call("channels", "GET", f"/channels/{store}/writebacks?{query}", auth=True))
    show(rows, lambda: table(f"{len(rows)} write-backs of {store}", rows,
                             ["created_at", "order_key", "action", "state", "attempts",
                              "feed_id", "feed_status", "last_error", "note"]))


@channels_app.command("add")
def channels_add(
    store: str, platform: str = typer.Argument(..., help="shopify, woocommerce, amazon, generic"),
    webhook_secret: str = typer.Option(None, envvar="SHOPKEEPER_CHANNEL_WEBHOOK_SECRET",
                                       help="the platform's webhook signing secret (or the"
                                            " variable, to keep it out of shell history)"),
    api_base_url: str = typer.Option(None, help="e.g. https://shop.myshopify.com"),
    credential: list[str] = typer.Option([], help="name=value, e.g. access_token=shpat_..."),
    sku: list[str] = typer.Option([], help="channel sku or variant id=our sku"),
    currency: str = typer.Option("USD", help="default currency"),
    option: list[str] = typer.Option([], help="name=value: api_version, marketplace_ids,"
                                              " poll_seconds, ioss_number, ..."),
) -> None:
    """Create or replace a store's channel."""
    body = {"platform": platform, "webhook_secret": webhook_secret, "api_base_url": api_base_url,
            "credentials": _pairs(credential, "credential"),
            "sku_map": {k: str(v) for k, v in _pairs(sku, "sku").items()},
            "default_currency": currency, "options": _pairs(option, "option")}
    out = run(call("channels", "PUT", f"/channels/{store}", auth=True, body=body,
                   ok=(200, 201)))
    show(out, lambda: console.print(f"channel {out['store']} ({out['platform']}) "
                                    f"{'created' if out['created'] else 'replaced'}"))


@channels_app.command("test")
def channels_test(store: str) -> None:
    """Open the store's secrets and reach its platform's API with them."""
    out = run(call("channels", "POST", f"/channels/{store}/test", auth=True, ok=(200, 404)))
    if "ok" not in out:
        fail(f"no channel for store {store}")
    show(out, lambda: console.print(f"{store} ({out['platform']}): "
                                    f"{'ok' if out['ok'] else 'FAILED'} - {out['detail']}",
                                    highlight=False))
    if not out["ok"]:
        raise typer.Exit(1)


@channels_app.command("retry")
def channels_retry(store: str) -> None:
    """Queue the store's failed write-backs again (after fixing their cause)."""
    out = run(call("channels", "POST", f"/channels/{store}/writebacks/retry", auth=True))
    show(out, lambda: console.print(f"{out['requeued']} write-backs of {store} queued again"))


# --- holds ------------------------------------------------------------------------------------
@holds_app.command("list")
def holds_list() -> None:
    """Orders on hold, oldest first."""
    rows = run(call("intake", "GET", "/holds", auth=True))
    show(rows, lambda: table(
        f"{len(rows)} orders on hold",
        [{**r, "reasons": ", ".join(x["code"] for x in r["reasons"])} for r in rows],
        ["order_id", "store", "external_order_id", "reasons", "grand_total", "received_at"]))


@holds_app.command("approve")
def holds_approve(order_id: str, note: str = typer.Option("", help="why, for the audit")) -> None:
    """Release a held order."""
    body = run(call("intake", "POST", f"/holds/{order_id}/approve", auth=True,
                    body={"reason": note or None}))
    show(body, lambda: console.print(f"order {body['order_id']} {body['status']}"))


@holds_app.command("reject")
def holds_reject(order_id: str, note: str = typer.Option(..., help="why, told to the customer")
                 ) -> None:
    """Reject a held order."""
    body = run(call("intake", "POST", f"/holds/{order_id}/reject", auth=True,
                    body={"reason": note}))
    show(body, lambda: console.print(f"order {body['order_id']} {body['status']}"))


# --- stock ------------------------------------------------------------------------------------
@stock_app.command("show")
def stock_show(sku: str) -> None:
    """On hand, reserved and available per warehouse, and refurbished returns (their own
    stock, not sellable as new)."""
    body = run(call("inventory", "GET", f"/stock/{sku}"))
    if not body["warehouses"]:
        fail(f"no stock recorded for {sku}")
    show(body, lambda: table(sku, body["warehouses"], ["warehouse", "on_hand", "reserved",
                                                       "available", "refurbished"]))


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
    show({"published": "stock.adjustments", "event": event},
         lambda: console.print(f"published: {quantity} x {sku} received at {warehouse}"))


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
    show(rows, lambda: table(f"{len(rows)} backordered orders", rows,
                             ["order_key", "short_lines", "since"]))


# --- DLQ --------------------------------------------------------------------------------------
async def _dlq_records(topic: str, *, group: str | None, limit: int) -> tuple[Any, list[Any]]:
    from shared import dlq

    try:
        return await dlq.read(get_settings().kafka_bootstrap_servers, topic, group=group,
                              limit=limit)
    except dlq.DlqUnavailable as exc:
        raise CliError(str(exc)) from None


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
    show(rows, lambda: table(f"{len(rows)} messages in {topic}.dlq", rows,
                             ["partition", "offset", "key", "error_type", "error"]))


@dlq_app.command("replay")
def dlq_replay(topic: str, limit: int = typer.Option(1000, min=1)) -> None:
    """Publish TOPIC.dlq's messages (not replayed before) back to TOPIC, same key and value.
    Fix the cause first; consumers dedupe by event_id, so a replay never doubles an effect."""
    async def go() -> int:
        from aiokafka import TopicPartition

        from shared.dlq import REPLAY_GROUP, REPLAYED_FROM, origin

        consumer, records = await _dlq_records(topic, group=REPLAY_GROUP, limit=limit)
        try:
            async with _producer() as producer:
                for r in records:
                    await _send(producer, topic, r.key.decode(errors="replace") if r.key else None,
                                r.value or b"", [(REPLAYED_FROM, origin(topic, r).encode())])
                    await consumer.commit({TopicPartition(r.topic, r.partition): r.offset + 1})
        finally:
            await consumer.stop()
        return len(records)
    count = run(go())
    show({"topic": topic, "replayed": count},
         lambda: console.print(f"replayed {count} messages from {topic}.dlq to {topic}"))


# --- quarantined outbox rows ------------------------------------------------------------------
@outbox_app.command("quarantined")
def outbox_quarantined(service: str = typer.Option(None, help="one service or `console`"
                                                   " (default: all)"),
                       limit: int = typer.Option(100, min=1, max=1000)) -> None:
    """Outbox rows the broker refused for good (too large, invalid), newest first: what was not
    published, to which key, and why. The rest of the outbox flows past them."""
    rows: list[dict[str, Any]] = []
    for name in [service] if service else [*SERVICES, *WEB_APPS]:
        body = run(call(name, "GET", f"/outbox/quarantined?limit={limit}", auth=True))
        rows += [{"service": name, **r} for r in body["rows"]]
    show(rows, lambda: table(f"{len(rows)} quarantined outbox rows", rows,
                             ["service", "id", "topic", "key", "size", "quarantined_at",
                              "error"]))


@outbox_app.command("release")
def outbox_release(service: str, row_id: int) -> None:
    """Put SERVICE's quarantined row ROW_ID back in line, e.g. after raising the broker's
    message.max.bytes; refused again, it returns to quarantine."""
    body = run(call(service, "POST", f"/outbox/quarantined/{row_id}/release", auth=True))
    show({"service": service, **body}, lambda: console.print(
        f"outbox row {row_id} of {service} released; the relay publishes it next"))


# --- console users ---------------------------------------------------------------------------
@users_app.command("add")
def users_add(username: str,
              role: str = typer.Option("viewer", help="admin, manager, support, warehouse or viewer"),
              time_zone: str = typer.Option("UTC", "--time-zone", help="e.g. Asia/Shanghai"),
              reset: bool = typer.Option(False, help="if the user exists, give a new password")
              ) -> None:
    """Create a console user (the first admin: `shopkeeper users add NAME --role admin`) and
    print a one-time password; the user picks their own after signing in. Writes the console's
    own schema with its role, as the console does."""
    from tools.console_users import add_user

    try:
        password, created = run(add_user(username, role, time_zone, reset=reset))
    except ValueError as exc:
        fail(str(exc), 2)
    verb = "created" if created else "given a new password"
    console.print(f"console user {username} ({role}) {verb}; one-time password: {password}",
                  highlight=False)


# --- verify and simulate ----------------------------------------------------------------------
@app.command()
def verify(wait: float = typer.Option(30.0, help="seconds to let in-flight work settle")) -> None:
    """Cross-service invariants: every order in one consistent state, stock ledger balanced,
    outboxes drained. Exit 1 when any check fails."""
    from tools.verify import verify as run_checks

    results = run(run_checks(get_settings().database_url, settle_seconds=wait))
    rows = [{"check": r.name, "result": "ok" if r.ok else "FAILED", "detail": r.detail}
            for r in results]
    show({"ok": all(r.ok for r in results), "checks": rows},
         lambda: table("invariants", rows, ["check", "result", "detail"]))
    if not all(r.ok for r in results):
        raise typer.Exit(1)


@app.command()
def simulate(orders: int = typer.Option(500, min=1, help="orders to place"),
             rate: float = typer.Option(50.0, min=0.1, help="orders per second"),
             days: int = typer.Option(30, min=1, help="simulated period, compressed"),
             seed: int = typer.Option(7, help="same seed, same traffic")) -> None:
    """Realistic storefront traffic with live progress and a summary (the `make run` demo)."""
    from tools.simulator import Simulation

    # With --json the live progress goes to stderr and stdout gets the summary alone.
    sim = Simulation(orders, rate, days, seed, errors if _state["json"] else console)
    code = asyncio.run(sim.run())
    if _state["json"]:
        sys.stdout.write(json.dumps({"exit_code": code, **sim.result}, default=str) + "\n")
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
