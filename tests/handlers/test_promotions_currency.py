"""Promotions with a currency in intake's schema (migration 0006, services/intake/store.py) and
the `orders.placed` handler using them: the seed rows stay USD with their values, amounts keep
their currency's minor unit, and an order in another currency gets the code converted at the
rate intake knows (the rate in the decision's trace), or is held `fx_rate_missing` without one."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from services.intake import domain, handlers, kinds, store
from shared import setup
from shared.contracts import OrderPlaced
from shared.money import Rate, store_rates
from shared.uow import UnitOfWork
from tools.storefront import order as order_payload

from .test_intake import SKU, with_product

AS_OF = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)


def placed(ext: str, currency: str, price: str, codes: list[str], discount: str
           ) -> OrderPlaced:
    return OrderPlaced.model_validate(order_payload(
        "h-shop", ext, [(SKU, 1, price)], shipping_fee="0", promo_codes=codes,
        discount=discount, currency=currency))


async def test_seed_promotions_stay_usd_and_amounts_keep_their_minor_unit(
        service_db: Any) -> None:
    async with service_db("intake") as db:
        seeded = {p["code"]: p for p in await store.all_promotions(db.pool)}
        assert {c: (p["kind"], p["value"], p["min_spend"], p["currency"])
                for c, p in seeded.items()} == {
            "SAVE5": ("fixed", "5.00", "30.00", "USD"),
            "WELCOME10": ("percent", "10.00", "0.00", "USD")}
        async with db.pool.acquire() as conn:
            await store.upsert_promotion(conn, domain.Promotion(
                "YEN500", "fixed", Decimal("500"), Decimal("3000"), currency="JPY"))
            await store.upsert_promotion(conn, domain.Promotion(
                "KWD1", "fixed", Decimal("1.125"), Decimal("9.250"), currency="KWD"))
            found = await store.promotions(conn, ["yen500", "kwd1"])
        assert (found["YEN500"].value, found["YEN500"].currency) == (Decimal("500"), "JPY")
        assert found["KWD1"].value == Decimal("1.125")  # three decimals kept
        shown = {p["code"]: p for p in await store.all_promotions(db.pool)}
        assert (shown["YEN500"]["value"], shown["YEN500"]["min_spend"]) == ("500", "3000")
        assert (shown["KWD1"]["value"], shown["KWD1"]["min_spend"]) == ("1.125", "9.250")


async def test_a_yen_order_gets_the_dollar_code_converted_or_waits_for_a_rate(
        service_db: Any) -> None:
    async with service_db("intake") as db:
        await with_product(db)
        await store_rates(db.pool, [Rate("USD", "JPY", Decimal("150"), AS_OF)])
        async with db.pool.acquire() as conn:
            await store.upsert_promotion(conn, domain.Promotion(
                "EURO4", "fixed", Decimal("4.00"), currency="EUR"))
        # SAVE5 (5.00 USD off 30.00 USD) on a ¥5,000 order: ¥750 off; ¥4,000 is below ¥4,500;
        # a EUR code without any EUR rate waits for one
        out = await db.run(handlers.order_placed, [
            placed("y-1", "JPY", "5000", ["SAVE5"], "750"),
            placed("y-2", "JPY", "4000", ["SAVE5"], "750"),
            placed("y-3", "JPY", "5000", ["EURO4"], "500")], "orders.placed")
        statuses = {p.key: (p.value["status"], [r["code"] for r in p.value["reasons"]])
                    for p in out if p.topic == "orders.status"}
        assert statuses == {"h-shop:y-1": ("accepted", []),
                            "h-shop:y-2": ("rejected", ["invalid_promo"]),
                            "h-shop:y-3": ("on_hold", ["fx_rate_missing"])}
        rows = {r["external_order_id"]: r for r in await db.pool.fetch(
            "SELECT o.external_order_id, d.reasons, d.rules FROM decisions d"
            " JOIN orders o USING (order_id)")}
        # The accepted order's trace records the conversion with the rate and its date
        note = next(h for h in json.loads(rows["y-1"]["rules"]) if h["code"] == "promo_converted")
        value = next(c for c in note["inputs"]["conversions"] if c["amount"] == "value")
        assert (value["converted"], value["rate"], value["rate_as_of"]) == (
            "750 JPY", "150", AS_OF.isoformat())
        assert "30.00 USD = 4500 JPY at 150" in json.loads(rows["y-2"]["reasons"])[0]["message"]
        held = json.loads(rows["y-3"]["reasons"])[0]["message"]
        assert "no exchange rate from EUR to JPY" in held and "'EURO4'" in held
        holds = await db.pool.fetch("SELECT codes FROM holds WHERE closed_at IS NULL")
        assert [list(h["codes"]) for h in holds] == [["fx_rate_missing"]]
        # When the code is set up in yen instead (setup section `promotions`), the hold is
        # reviewed again and released: ¥500 off is what the store took
        async with UnitOfWork.begin(db.pool, "intake") as uow:
            plan = await setup.apply(uow, kinds.KINDS, {"promotions": {"EURO4": {
                "kind": "fixed", "value": "500", "currency": "JPY"}}}, changed_by="ops",
                dry_run=False)
        assert [(c["key"], c["fields"]["currency"]) for c in plan["changes"]] == [
            ("EURO4", ["EUR", "JPY"])]
        assert await db.pool.fetchval(
            "SELECT status FROM orders WHERE external_order_id = 'y-3'") == "accepted"


def entry(**fields: Any) -> dict[str, Any]:
    return {"kind": "fixed", "value": "8.00", "min_spend": "40.00", "currency": "EUR",
            "starts_at": None, "ends_at": None, "active": True, "scope_skus": [],
            "scope_categories": [], "stackable": True, "per_customer_limit": None, **fields}


async def test_promotions_are_a_setup_section_audited_and_published(service_db: Any) -> None:
    async with service_db("intake") as db:
        async with UnitOfWork.begin(db.pool, "intake") as uow:
            plan = await setup.apply(uow, kinds.KINDS, {"promotions": {"EURO8": entry(
                scope_skus=["B", "A", "A"])}}, changed_by="marketing", dry_run=False)
        assert [(c["key"], c["action"]) for c in plan["changes"]] == [("EURO8", "created")]
        # saved as GET /promotions shows it, published on setup.changed and audited
        shown = {p["code"]: p for p in await store.all_promotions(db.pool)}["EURO8"]
        assert (shown["value"], shown["min_spend"], shown["currency"], shown["scope_skus"]) == (
            "8.00", "40.00", "EUR", ["A", "B"])
        events = await db.published("setup.changed")
        assert [(e.key, e.value["data"]["currency"], e.value["changed_by"]) for e in events] == [
            ("promotions:EURO8", "EUR", "marketing")]
        assert await db.pool.fetchval(
            "SELECT changed_by FROM setup_audit WHERE section = 'promotions'") == "marketing"
        # the export applied back changes nothing
        async with db.pool.acquire() as conn:
            exported = {k: e.model_dump(mode="json") for k, e in (await setup.current(
                conn, next(k for k in kinds.KINDS if k.section == "promotions"))).items()}
        async with UnitOfWork.begin(db.pool, "intake") as uow:
            again = await setup.apply(uow, kinds.KINDS, {"promotions": exported},
                                      changed_by="t", dry_run=True)
        assert again["changes"] == [] and again["unchanged"] == 3


@pytest.mark.parametrize(("key", "fields", "where", "error"), [
    ("save5", {}, "promotions.save5", "use 'SAVE5'"),
    ("P", {"kind": "percent", "value": "120"}, "promotions.P", "at most 100"),
    ("P", {"currency": "JPY", "value": "500.50"}, "promotions.P", "finer than JPY allows"),
    ("P", {"currency": "KWD", "min_spend": "1.2345"}, "promotions.P.min_spend", ""),
    ("P", {"currency": "euro"}, "promotions.P.currency", ""),
    ("P", {"starts_at": "2026-01-01T00:00:00"}, "promotions.P.starts_at", "timezone"),
])
async def test_a_bad_promotion_is_refused_saying_where(service_db: Any, key: str,
                                                       fields: dict[str, Any], where: str,
                                                       error: str) -> None:
    async with service_db("intake") as db:
        with pytest.raises(setup.SetupInvalid) as caught:
            async with UnitOfWork.begin(db.pool, "intake") as uow:
                await setup.apply(uow, kinds.KINDS, {"promotions": {key: entry(**fields)}},
                                  changed_by="t", dry_run=True)
        assert [p["at"] for p in caught.value.problems] == [where]
        assert error in caught.value.problems[0]["error"]
