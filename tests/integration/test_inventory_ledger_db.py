"""The ledger property against the real schema: random operation sequences run through
services/inventory/store.py on Postgres (each example in a transaction, rolled back), side by
side with the pure model of domain.py. The database's CHECKs and conditional UPDATEs must agree
with the model at every step, and the ledger must add up to the balances at the end."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.inventory import domain, store
from services.inventory.domain import Balance, Line, Plan, Refused
from shared.contracts import StockAdjusted
from shared.settings import service_database_url

WAREHOUSES = ["WH-LA", "WH-FRA"]
wh = st.sampled_from(WAREHOUSES)
ops = st.lists(st.one_of(
    st.tuples(st.sampled_from(["received", "counted", "damaged", "return"]), wh,
              st.integers(min_value=0, max_value=15)),
    st.tuples(st.just("reserve"), st.lists(st.tuples(wh, st.integers(min_value=1, max_value=8)),
                                           min_size=1, max_size=2, unique_by=lambda t: t[0])),
    st.tuples(st.sampled_from(["release", "commit", "short"]),
              st.integers(min_value=0, max_value=9)),
    st.tuples(st.sampled_from(["refurbish", "scrap"]), wh, st.integers(min_value=1, max_value=5)),
), min_size=1, max_size=25)


async def _balances(conn: Any, sku: str) -> dict[str, Balance]:
    rows = await conn.fetch("SELECT warehouse, on_hand, reserved, refurbished FROM stock"
                            " WHERE sku = $1", sku)
    got = {w: Balance() for w in WAREHOUSES}
    got.update({r["warehouse"]: Balance(r["on_hand"], r["reserved"], r["refurbished"])
                for r in rows})
    return got


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                 HealthCheck.function_scoped_fixture])
@given(sequence=ops)
async def test_any_sequence_on_postgres_matches_the_model_and_the_ledger(
        stack: None, sequence: list[tuple[Any, ...]]) -> None:
    sku = f"PROP-{uuid.uuid4().hex[:10]}"
    model = {w: Balance() for w in WAREHOUSES}
    orders: list[list[tuple[str, int]]] = []
    conn = await asyncpg.connect(service_database_url("inventory"),
                                 server_settings={"search_path": "inventory"})
    tx = conn.transaction()
    await tx.start()
    try:
        for op in sequence:
            kind = op[0]
            if kind in ("received", "counted", "damaged"):
                _, w, q = op
                await store.adjust(conn, StockAdjusted(sku=sku, warehouse=w, kind=kind,
                                                       quantity=q))
                b = model[w]
                move = (domain.receive(b, q) if kind == "received" else
                        domain.count(b, q)[0] if kind == "counted" else domain.damage(b, q)[0])
                model[w] = domain.apply(b, move)
            elif kind == "return":
                _, w, q = op
                await store.add_on_hand(conn, sku, w, q, "return", None, uuid.uuid4())
                model[w] = domain.apply(model[w], domain.receive(model[w], q, "return"))
            elif kind == "reserve":
                lines = sorted(op[1])
                try:
                    tentative = dict(model)
                    for w, q in lines:
                        tentative[w] = domain.apply(tentative[w], domain.reserve(tentative[w], q))
                    expected_ok = True
                except Refused:
                    expected_ok = False
                plan = Plan({w: [Line(sku, q)] for w, q in lines})
                try:
                    async with conn.transaction():
                        await store.reserve(conn, uuid.uuid4(), plan, uuid.uuid4())
                    ok = True
                except store.StockGone:
                    ok = False
                assert ok == expected_ok, (op, model)
                if ok:
                    model = tentative
                    orders.append(lines)
            elif kind in ("refurbish", "scrap"):
                _, w, q = op
                await store.return_graded(conn, sku, w, kind, q, uuid.uuid4(), uuid.uuid4(),
                                          "prop")
                b = model[w]
                model[w] = domain.apply(b, domain.refurbish(b, q) if kind == "refurbish"
                                        else domain.scrap(b, q))
            elif kind == "short" and orders:
                i = op[1] % len(orders)
                (w, q), rest = orders[i][0], orders[i][1:]
                await store.write_off_short(conn, sku, w, 1, uuid.uuid4(), uuid.uuid4(), "prop")
                model[w] = domain.apply(model[w], domain.shortage(model[w], 1))
                orders[i] = [(w, q - 1), *rest] if q > 1 else rest
                if not orders[i]:
                    orders.pop(i)
            elif orders and kind != "short":
                lines = orders.pop(op[1] % len(orders))
                if kind == "release":
                    await store.release(conn, uuid.uuid4(), [
                        {"warehouse": w, "lines": [{"sku": sku, "quantity": q}]}
                        for w, q in lines], uuid.uuid4())
                    for w, q in lines:
                        model[w] = domain.apply(model[w], domain.release(model[w], q))
                else:
                    order_id, event_id = uuid.uuid4(), uuid.uuid4()
                    await store.commit_all(conn, [
                        store.Reservation(order_id, w, sku, q, event_id, "commit")
                        for w, q in lines])
                    for w, q in lines:
                        model[w] = domain.apply(model[w], domain.commit(model[w], q))
            got = await _balances(conn, sku)
            assert got == model, (op, got, model)
            assert all(b.available >= 0 and b.reserved >= 0 for b in got.values())
        assert await store.reconcile(conn, sku=sku) == []
        # The sales kept by the hour (migration 0006) are the ledger's commits, whichever
        # statement wrote them.
        sold = await conn.fetchval("SELECT coalesce(-sum(on_hand_delta), 0) FROM ledger"
                                   " WHERE sku = $1 AND kind = 'commit'", sku)
        assert await conn.fetchval("SELECT coalesce(sum(units), 0) FROM sales_hourly"
                                   " WHERE sku = $1", sku) == sold
        if any(b.on_hand or b.reserved for b in model.values()) or sold:
            _, s7, s30 = (await store.sales(conn, [sku]))[sku]
            assert s7 == s30 == sold
    finally:
        await tx.rollback()
        await conn.close()


async def test_sales_are_counted_by_the_hour_within_their_windows(stack: None) -> None:
    """The low-stock pass reads sales by the hour: commits 2 hours, 3 days, 10 days and 40 days
    old count in the 7-day window for the first two and in the 30-day window for the first
    three; several commits of one hour are one row."""
    sku = f"HOURS-{uuid.uuid4().hex[:10]}"
    conn = await asyncpg.connect(service_database_url("inventory"),
                                 server_settings={"search_path": "inventory"})
    tx = conn.transaction()
    await tx.start()
    try:
        await store.adjust(conn, StockAdjusted(sku=sku, warehouse="WH-LA", kind="received",
                                               quantity=100))
        ago = ["2 hours", "2 hours", "3 days", "10 days", "40 days"]
        # one statement for the first two (the trigger sums a statement's rows by hour), then
        # one each
        await conn.execute(
            "INSERT INTO ledger (sku, warehouse, kind, on_hand_delta, reserved_delta, created_at)"
            " SELECT $1, 'WH-LA', 'commit', -u, 0, now() - a::interval"
            " FROM unnest($2::text[], $3::int[]) AS x(a, u)", sku, ago[:2], [1, 2])
        for a, u in zip(ago[2:], [4, 8, 16], strict=True):
            await conn.execute(
                "INSERT INTO ledger (sku, warehouse, kind, on_hand_delta, reserved_delta,"
                " created_at) VALUES ($1, 'WH-LA', 'commit', $2, 0, now() - $3::text::interval)",
                sku, -u, a)
        rows = await conn.fetch("SELECT units FROM sales_hourly WHERE sku = $1 ORDER BY hour",
                                sku)
        assert [r["units"] for r in rows] == [16, 8, 4, 3]
        assert (await store.sales(conn, [sku]))[sku] == (100, 1 + 2 + 4, 1 + 2 + 4 + 8)
    finally:
        await tx.rollback()
        await conn.close()
