"""Promotions with a currency in intake's schema (migration 0006, services/intake/store.py) and
the `orders.placed` handler using them: the seed rows stay USD with their values, amounts keep
their currency's minor unit, and an order in another currency gets the code converted at the
rate intake knows (the rate in the decision's trace), or is held `fx_rate_missing` without one."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from services.intake import domain, handlers, store
from shared.contracts import OrderPlaced
from shared.money import Rate, store_rates
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
