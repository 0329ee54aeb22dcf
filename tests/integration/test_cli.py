"""The `shopkeeper` command against the real stack, as an operator would type it."""

from __future__ import annotations

import asyncio
import os
import sys

from tests.conftest import ROOT, ref
from tools.storefront import Storefront

from .helpers import new_product, place, tail, tail_all


async def shopkeeper(*args: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tools.cli", *args, cwd=ROOT, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT, env={**os.environ, "COLUMNS": "200", **(env or {})})
    out, _ = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode is not None
    return proc.returncode, out.decode()


async def test_order_shows_the_timeline_of_a_shipped_order(storefront: Storefront) -> None:
    sku = await new_product(storefront, stock={"WH-LA": 3})
    key, _ = await place(storefront, [(sku, 1, "12.50")])
    await storefront.wait_for(key, "shipped")
    store, ext = key.split(":")
    for _ in range(50):  # analytics reads orders.status too; give it a moment
        code, out = await shopkeeper("order", store, ext)
        if "shipped" in out:
            break
        await asyncio.sleep(0.2)
    assert code == 0 and "accepted" in out and "reserved" in out and "shipped" in out


async def test_unknown_order_and_unreachable_stack_are_one_clear_line(stack: None) -> None:
    code, out = await shopkeeper("order", "no-store", ref("none"))
    assert code == 1 and out.strip().startswith("error: no order")
    code, out = await shopkeeper("holds", "list", env={"SHOPKEEPER_INTAKE_PORT": "1"})
    assert code == 1 and "cannot reach intake" in out and "Traceback" not in out
    code, out = await shopkeeper("stock", "receive", "SKU-X", "WH-LA", "0")
    assert code == 2 and "Traceback" not in out
    code, out = await shopkeeper("frobnicate")
    assert code == 2 and "Traceback" not in out


async def test_stock_receive_then_show(storefront: Storefront) -> None:
    sku = await new_product(storefront, stock={"WH-LA": 2})
    code, out = await shopkeeper("stock", "receive", sku, "WH-FRA", "7", "--reference", "PO-1")
    assert code == 0, out
    for _ in range(50):
        code, out = await shopkeeper("stock", "show", sku)
        if "WH-FRA" in out:
            break
        await asyncio.sleep(0.2)
    assert code == 0 and "WH-FRA" in out and " 7 " in out


async def test_operator_lists(stack: None) -> None:
    for args in (["holds", "list"], ["backorders", "list"], ["report"]):
        code, out = await shopkeeper(*args)
        assert code == 0, (args, out)
    code, out = await shopkeeper("report")
    assert "orders by status" in out


async def test_dlq_list_and_replay_each_message_once(storefront: Storefront) -> None:
    marker = ref("poison")
    await storefront.publish("customer.feedback", marker, b"{not json " + marker.encode())
    original = await tail("customer.feedback.dlq", lambda r: marker.encode() in (r.value or b""))
    code, out = await shopkeeper("dlq", "list", "customer.feedback", "--limit", "100000")
    assert code == 0 and marker in out

    for _ in range(2):  # a second replay must not send the same DLQ message again
        code, out = await shopkeeper("dlq", "replay", "customer.feedback", "--limit", "100000")
        assert code == 0 and "replayed" in out, out
        await asyncio.sleep(2)  # the replayed poison fails again and returns to the DLQ

    origin = f"customer.feedback.dlq:{original.partition}:{original.offset}".encode()
    copies = await tail_all("customer.feedback.dlq",
                            lambda r: dict(r.headers).get("x-replayed-from") == origin)
    # Every service that consumes the topic dead-letters its own copy (x-service says which);
    # each replayed once means one copy per service, not one per replay.
    services = [dict(r.headers)["x-service"] for r in copies]
    assert services and len(services) == len(set(services)), services


async def test_verify_finds_every_invariant_holding(stack: None) -> None:
    code, out = await shopkeeper("verify", "--wait", "60")
    assert code == 0, out
    assert "FAILED" not in out and "stock ledger balanced" in out


async def test_report_prints_the_kpis_and_rules_dry_run_changes_nothing(stack: None) -> None:
    code, out = await shopkeeper("report", "--days", "7")
    assert code == 0 and "KPIs, last 7 days" in out and "orders by status" in out, out
    code, out = await shopkeeper("rules", "dry-run", "shop-test-1", "high_value_threshold=1",
                                 "--last", "20")
    assert code == 0 and "re-reviewed" in out, out
    code, out = await shopkeeper("rules", "dry-run", "shop-test-1", "no-equals-sign")
    assert code == 2 and "name=value" in out and "Traceback" not in out
