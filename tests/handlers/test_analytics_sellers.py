"""Analytics' copy of intake's sellers and each seller's figures in its base currency
(services/analytics/sellers.py, issue 22), against Postgres alone: the `setup.changed` and
`fx.rates` handlers, orders and refunds through analytics' own handlers, the figures from the
rollups (reports.reports) checked against exact expectations and the oracle recomputed from the
facts."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from services.analytics import domain, reports, sellers, store
from services.analytics import handlers as h
from shared.contracts import (
    Address,
    FxRatesPublished,
    OrderAccepted,
    OrderLine,
    OrderSnapshot,
    OrderStatusChanged,
    RefundIssued,
    SetupChanged,
    Totals,
)
from shared.topics import FX_RATES, SETUP_CHANGED
from tests.handlers.test_analytics import fold

NOW = datetime.now(UTC).replace(microsecond=0)
RATES_AT = NOW - timedelta(hours=1)


def seller(key: str, base: str, stores: list[str], name: str = "") -> SetupChanged:
    return SetupChanged(owner="intake", kind="sellers", key=key, changed_by="test",
                        data={"name": name or key, "base_currency": base, "stores": stores})


def deleted(key: str) -> SetupChanged:
    return SetupChanged(owner="intake", kind="sellers", key=key, data=None, changed_by="test")


def handler(topic: str) -> Any:
    return h.handlers.subscriptions[topic].handler


async def copy(db: Any) -> tuple[list[tuple[Any, ...]], dict[str, str]]:
    rows = await db.pool.fetch("SELECT seller_id, name, base_currency, stores FROM sellers"
                               " ORDER BY seller_id")
    stores = {r["store"]: r["seller_id"] for r in await db.pool.fetch(
        "SELECT store, seller_id FROM seller_stores")}
    return [tuple(r) for r in rows], stores


async def test_the_sellers_copy_follows_upserts_moves_and_deletes(service_db: Any) -> None:
    """Given two sellers, when one is changed, a store moves from one to the other and one is
    deleted, then the copy and the store -> seller mapping follow each change in order; a change
    with a base currency that is no ISO code is skipped (the copy keeps what it had)."""
    on_setup = handler(SETUP_CHANGED.name)
    async with service_db("analytics") as db:
        await db.run(on_setup, [seller("acme-us", "USD", ["us-1", "us-2"], "Acme US"),
                                seller("acme-eu", "EUR", ["eu-1"])], SETUP_CHANGED.name)
        assert await copy(db) == (
            [("acme-eu", "acme-eu", "EUR", ["eu-1"]),
             ("acme-us", "Acme US", "USD", ["us-1", "us-2"])],
            {"us-1": "acme-us", "us-2": "acme-us", "eu-1": "acme-eu"})

        # us-2 moves to acme-eu: it belongs to acme-eu as soon as acme-eu's change comes, and
        # stays there when acme-us's change (without it) follows
        await db.run(on_setup, [seller("acme-eu", "eur", ["eu-1", "us-2"], "Acme EU")],
                      SETUP_CHANGED.name)
        assert (await copy(db))[1] == {"us-1": "acme-us", "us-2": "acme-eu", "eu-1": "acme-eu"}
        await db.run(on_setup, [seller("acme-us", "USD", ["us-1"], "Acme US")],
                     SETUP_CHANGED.name)
        rows, stores = await copy(db)
        assert rows == [("acme-eu", "Acme EU", "EUR", ["eu-1", "us-2"]),
                        ("acme-us", "Acme US", "USD", ["us-1"])]
        assert stores == {"us-1": "acme-us", "us-2": "acme-eu", "eu-1": "acme-eu"}
        # an older change of acme-us naming us-2, handled late (another partition, another
        # instance), does not take the store back
        stale = seller("acme-us", "USD", ["us-1", "us-2"], "Acme US")
        stale = stale.model_copy(update={"occurred_at": stale.occurred_at - timedelta(hours=1)})
        await db.run(on_setup, [stale], SETUP_CHANGED.name)
        assert (await copy(db))[1] == stores
        await db.run(on_setup, [seller("acme-us", "USD", ["us-1"], "Acme US")],
                     SETUP_CHANGED.name)
        rows, stores = await copy(db)

        # a change another kind of setup ignores; a bad currency is skipped
        other = SetupChanged(owner="logistics", kind="warehouses", key="WH-LA",
                             data={"country": "US"}, changed_by="test")
        await db.run(on_setup, [other, seller("acme-us", "dollars", ["us-1", "us-9"])],
                     SETUP_CHANGED.name)
        assert await copy(db) == (rows, stores)

        await db.run(on_setup, [deleted("acme-eu")], SETUP_CHANGED.name)
        assert await copy(db) == ([("acme-us", "Acme US", "USD", ["us-1"])], {"us-1": "acme-us"})
        # a replayed event (same id) changes nothing: the inbox drops it
        again = seller("acme-us", "USD", [])
        await db.run(on_setup, [again], SETUP_CHANGED.name)
        await db.run(on_setup, [again], SETUP_CHANGED.name)
        assert await copy(db) == ([("acme-us", "acme-us", "USD", [])], {})


def order(shop: str, ext: str, currency: str, total: str, minutes: int = 0) -> OrderAccepted:
    amount = Decimal(total)
    snap = OrderSnapshot(
        order_id=str(uuid.uuid4()), store=shop, external_order_id=ext, customer_id=f"c-{ext}",
        placed_at=NOW - timedelta(hours=3, minutes=minutes), accepted_at=NOW,
        shipping_address=Address(name="Ana Lima", line1="100 Main St", city="Austin",
                                 postal_code="73301", country="US"),
        lines=[OrderLine(sku="MUG-01", quantity=1, unit_price=amount)], currency=currency,
        shipping_option="standard",
        totals=Totals(subtotal=amount, discount=Decimal("0"), shipping_fee=Decimal("0"),
                      grand_total=amount),
        payment_method="card", payment_status="paid")
    return OrderAccepted(order_id=snap.order_id, order_key=snap.key, order=snap,
                         occurred_at=NOW - timedelta(hours=2))


def refund(o: OrderAccepted, amount: str) -> RefundIssued:
    return RefundIssued(order_id=o.order_id, store=o.order.store,
                        external_order_id=o.order.external_order_id, request_id=f"r-{o.order_id}",
                        amount=Decimal(amount), currency=o.order.currency, reason="damaged",
                        occurred_at=NOW - timedelta(hours=1))


def rejected(o: OrderAccepted) -> OrderStatusChanged:
    return OrderStatusChanged(order_id=o.order_id, store=o.order.store,
                              external_order_id=o.order.external_order_id, status="rejected",
                              occurred_at=NOW - timedelta(minutes=90))


async def test_a_sellers_figures_are_converted_to_its_base_currency(service_db: Any) -> None:
    """Given a USD seller with USD, EUR, JPY and GBP orders (GBP with no rate to USD, JPY
    through a cross rate via EUR), a refund in EUR, a rejected order (not revenue), a KWD seller
    (three decimals) and a store of no seller, when the reports are read, then each seller's
    revenue, refunds and average order value are in its base currency at the newest rate, GBP is
    reported under `unconverted` in its own currency, the per-currency figures are unchanged,
    and the sums equal the oracle's recompute from the facts."""
    on_setup, on_rates = handler(SETUP_CHANGED.name), handler(FX_RATES.name)
    us, kw, lone = "sel-us", "sel-kw", "sel-lone"
    orders = [order(us, "1", "USD", "100.00"), order(us, "2", "USD", "50.50"),
              order(us, "3", "EUR", "200.00"), order(us, "4", "JPY", "15000"),
              order(us, "5", "GBP", "40.00"), order(us, "6", "EUR", "999.00"),
              order(kw, "7", "KWD", "12.345"), order(kw, "8", "USD", "10.01"),
              order(lone, "9", "USD", "70.00")]
    async with service_db("analytics") as db:
        await db.run(on_setup, [seller("acme-us", "USD", [us], "Acme US"),
                                seller("acme-kw", "KWD", [kw], "Acme Kuwait")],
                     SETUP_CHANGED.name)
        # An older EUR rate then the newest; JPY only against EUR (a cross rate to USD); KWD per
        # USD as USD's quote (the inverse is used for KWD -> USD, the direct one USD -> KWD).
        await db.run(on_rates, [
            FxRatesPublished(base="EUR", rates={"USD": Decimal("1.05")},
                             as_of=RATES_AT - timedelta(days=2)),
            FxRatesPublished(base="EUR", rates={"USD": Decimal("1.10"), "JPY": Decimal("160")},
                             as_of=RATES_AT),
            FxRatesPublished(base="USD", rates={"KWD": Decimal("0.3075")},
                             as_of=RATES_AT - timedelta(hours=5))], FX_RATES.name)
        await db.run(h.order_accepted, orders, "intake.order_accepted")
        await db.run(h.status_changed, [rejected(orders[5])], "orders.status")
        await db.run(h.refund_issued, [refund(orders[2], "20.00"), refund(orders[6], "1.005")],
                     "payments.refunds")
        await fold(db)  # the fold job's pass: the rollups the reports read

        f = domain.Filters(NOW - timedelta(days=2), None, frozenset(), frozenset(),
                           frozenset(), frozenset())
        async with db.pool.acquire() as conn:
            got = await reports.reports(conn, f, NOW, 48.0, with_sellers=True)
            plain = await reports.reports(conn, f, NOW, 48.0)
            alone = await reports.reports(conn, f, NOW, 48.0, only="sellers")
            summary_only = await reports.reports(conn, f, NOW, 48.0, only="summary",
                                                 with_sellers=True)
            views = await store.load_views(conn, f)
            fx_known = await reports.load_rates(conn)

        by = {r["seller"]: r for r in got["sellers"]}
        assert alone == {"sellers": got["sellers"]}
        # 100.00 + 50.50 USD, 200 EUR x 1.10 = 220.00, 15000 JPY x 1.10/160 = 103.125
        # -> 473.625, rounded once: 473.63; 4 orders -> 118.40625 -> 118.41
        assert by["acme-us"] == {
            "seller": "acme-us", "name": "Acme US", "base_currency": "USD", "stores": [us],
            "orders": 4, "revenue": "473.63", "refunds": 1, "refunds_amount": "22.00",
            "average_order_value": "118.41",
            "converted_at_rate_as_of": RATES_AT.isoformat(),
            "by_currency": [
                {"currency": "EUR", "orders": 1, "revenue": "200.00", "refunds": 1,
                 "refunds_amount": "20.00", "rate": "1.10", "rate_as_of": RATES_AT.isoformat(),
                 "revenue_converted": "220.00", "refunds_converted": "22.00"},
                {"currency": "GBP", "orders": 1, "revenue": "40.00", "refunds": 0,
                 "refunds_amount": "0.00", "rate": None, "rate_as_of": None,
                 "revenue_converted": None, "refunds_converted": None},
                {"currency": "JPY", "orders": 1, "revenue": "15000", "refunds": 0,
                 "refunds_amount": "0", "rate": "0.006875", "rate_as_of": RATES_AT.isoformat(),
                 "revenue_converted": "103.13", "refunds_converted": "0.00"},
                {"currency": "USD", "orders": 2, "revenue": "150.50", "refunds": 0,
                 "refunds_amount": "0.00", "rate": "1", "rate_as_of": None,
                 "revenue_converted": "150.50", "refunds_converted": "0.00"}],
            "unconverted": [{"currency": "GBP", "orders": 1, "revenue": "40.00", "refunds": 0,
                             "refunds_amount": "0.00"}]}
        # KWD keeps three decimals: 12.345 KWD + 10.01 USD x 0.3075 = 3.078075 -> 15.423 KWD;
        # the refund of 1.005 KWD is not rounded to 1.01 (nor 1.00)
        kw_row = by["acme-kw"]
        assert (kw_row["revenue"], kw_row["refunds_amount"], kw_row["average_order_value"],
                kw_row["orders"]) == ("15.423", "1.005", "7.712", 2)
        assert kw_row["converted_at_rate_as_of"] == (RATES_AT - timedelta(hours=5)).isoformat()
        assert kw_row["unconverted"] == []
        assert set(by) == {"acme-us", "acme-kw"}  # the lone store belongs to no seller

        # the summary gains each seller's rows; everything else is as without sellers
        extra = [r for r in got["summary"] if r["metric"].startswith("seller.")]
        assert got["summary"][:len(plain["summary"])] == plain["summary"]
        assert summary_only["summary"] == got["summary"]
        assert {r["metric"]: r["value"] for r in extra} == {
            "seller.acme-kw.revenue": "15.423 KWD", "seller.acme-kw.refunds_amount": "1.005 KWD",
            "seller.acme-kw.average_order_value": "7.712 KWD",
            "seller.acme-us.revenue": "473.63 USD", "seller.acme-us.refunds_amount": "22.00 USD",
            "seller.acme-us.average_order_value": "118.41 USD",
            "seller.acme-us.unconverted": "40.00 GBP"}
        assert {k: v for k, v in got.items() if k != "summary" and k != "sellers"} == {
            k: v for k, v in plain.items() if k != "summary"}

        # the oracle: the same figures from the orders folded from their facts
        mapping = {us: "acme-us", kw: "acme-kw"}
        found, _ = await reports.seller_sums(conn=db.pool, s=await reports.scope(db.pool, f))
        assert sellers.figures(found, sellers.oracle_sums(domain.select(views, f), mapping),
                               fx_known) == got["sellers"]

        # a store filter keeps the sellers owning one of the stores
        only_kw = domain.Filters(f.start, None, frozenset({kw}), frozenset(), frozenset(),
                                 frozenset())
        async with db.pool.acquire() as conn:
            assert [r["seller"] for r in (await reports.reports(
                conn, only_kw, NOW, 48.0, only="sellers"))["sellers"]] == ["acme-kw"]
