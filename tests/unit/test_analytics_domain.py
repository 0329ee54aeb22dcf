"""Analytics' KPIs on hand-built event sequences with known answers, including late, duplicated
and out-of-order events."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from itertools import count

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.analytics import domain as d
from services.analytics.api import to_csv
from services.analytics.handlers import _placed_body
from services.analytics.store import to_fact
from shared.contracts import OrderLine, ShippedParcel, SkuQuantity

T0 = datetime(2026, 11, 2, 10, 0, tzinfo=UTC)
_ids = count(1)


def h(hours: float) -> datetime:
    return T0 + timedelta(hours=hours)


def eid() -> str:
    return f"00000000-0000-0000-0000-{next(_ids):012d}"


def placed(at: datetime, customer: str = "c-1", country: str = "US",
           lines: tuple[tuple[str, int, str], ...] = (("MUG", 1, "10.00"),), store: str = "s1",
           total: str = "10.00", option: str = "standard") -> d.Placed:
    return d.Placed(eid(), at, store, "x", customer, country, at,
                    tuple(d.Line(s, q, Decimal(p)) for s, q, p in lines), Decimal(total), "USD",
                    option)


def status(at: datetime, name: str, *reasons: str) -> d.Status:
    return d.Status(eid(), at, name, tuple(reasons))


def shipped(at: datetime, *parcels: d.ParcelShipped) -> d.Shipped:
    return d.Shipped(eid(), at, parcels)


def parcel(n: str, carrier: str = "UPS", service: str = "std", warehouse: str = "WH-LA",
           cost: str | None = None, promised: int | None = None) -> d.ParcelShipped:
    return d.ParcelShipped(f"P-{n}", warehouse, carrier, service, f"T-{n}", (),
                           Decimal(cost) if cost else None, promised)


def track(at: datetime, number: str, what: str) -> d.Tracked:
    return d.Tracked(eid(), at, f"T-{number}", what)


def view(facts: list[d.Fact], tracking: list[d.Tracked] | None = None, key: str = "s1:x"
         ) -> d.OrderView:
    return d.fold(key, facts, tracking or [])


def flow(key: str, at: datetime, *names: str, **kw: object) -> d.OrderView:
    """An order placed at `at` going through `names`, one hour apart."""
    facts: list[d.Fact] = [placed(at, **kw)]  # type: ignore[arg-type]
    facts += [status(at + timedelta(hours=i + 1), n) for i, n in enumerate(names)]
    return view(facts, key=key)


# --- the fold: idempotent, ordered by occurred_at ----------------------------------------------

def test_fold_gives_the_same_view_whatever_the_arrival_order_and_duplicates() -> None:
    facts: list[d.Fact] = [placed(h(0)), status(h(1), "accepted"), status(h(2), "reserved"),
                           status(h(3), "packed"), shipped(h(4), parcel("1")),
                           status(h(4), "shipped"), status(h(50), "delivered")]
    tracking = [track(h(10), "1", "in_transit"), track(h(50), "1", "delivered")]
    in_order = view(facts, tracking)
    rng = random.Random(3)
    for _ in range(20):
        arrived = facts + rng.sample(facts, 3)  # some re-delivered
        rng.shuffle(arrived)
        late = tracking + tracking[:1]
        rng.shuffle(late)
        again = view(arrived, late)
        assert [s.status for s in again.statuses] == [s.status for s in in_order.statuses]
        assert again.status == "delivered"
        assert again.parcels["P-1"].delivered_at == h(50)
        assert d.shipping([again], 48) == d.shipping([in_order], 48)


def test_a_late_in_transit_scan_does_not_undo_a_delivery() -> None:
    v = view([placed(h(0)), shipped(h(1), parcel("1"))],
             [track(h(30), "1", "delivered"), track(h(5), "1", "in_transit")])
    assert v.parcels["P-1"].delivered_at == h(30)
    assert v.parcels["P-1"].last_tracking == "delivered"


def test_a_resent_order_keeps_its_first_version() -> None:
    first = placed(h(0), customer="c-1")
    resent = placed(h(1), customer="c-other")
    assert view([resent, first]).customer_id == "c-1"


def test_the_latest_rating_of_an_order_counts() -> None:
    v = view([placed(h(0)), d.Rated(eid(), h(9), 2), d.Rated(eid(), h(5), 5)])
    assert v.rating is not None and v.rating.rating == 2


# --- review, holds, stock ----------------------------------------------------------------------

def test_acceptance_and_rejection_reasons() -> None:
    views = [flow("s:1", h(0), "accepted"), flow("s:2", h(0), "accepted"),
             view([placed(h(0)), status(h(1), "rejected", "unknown_sku")], key="s:3"),
             view([placed(h(0)), status(h(1), "rejected", "invalid_quantity", "unknown_sku")],
                  key="s:4")]
    assert d.review(views) == {"reviewed": 4, "accepted": 2, "rejected": 2,
                               "acceptance_rate": 0.5}
    assert d.reason_counts(views, "rejected") == {"unknown_sku": 2, "invalid_quantity": 1}


def test_hold_rate_and_hold_age_count_open_holds_up_to_now() -> None:
    released = view([placed(h(0)), status(h(0), "on_hold", "high_value"),
                     status(h(2), "accepted")], key="s:1")
    waiting = view([placed(h(0)), status(h(0), "on_hold", "amount_mismatch")], key="s:2")
    never = flow("s:3", h(0), "accepted")
    got = d.holds([released, waiting, never], now=h(10))
    assert got["held"] == 2 and got["held_now"] == 1
    assert got["hold_rate"] == round(2 / 3, 4)
    assert got["hold_age_p50_h"] == 2.0 and got["hold_age_max_h"] == 10.0
    assert got["oldest_open_hold_h"] == 10.0


def test_backorder_rate_and_fill_rate() -> None:
    views = [flow("s:1", h(0), "accepted", "reserved"),
             flow("s:2", h(0), "accepted", "reserved"),
             flow("s:3", h(0), "accepted", "backordered", "reserved"),
             flow("s:4", h(0), "accepted", "backordered"),
             flow("s:5", h(0), "rejected")]
    got = d.stock(views)
    assert got["stock_decided"] == 4 and got["backordered"] == 2
    assert got["backorder_rate"] == 0.5 and got["fill_rate"] == 0.5
    assert got["backordered_now"] == 1


# --- shipping and carriers ---------------------------------------------------------------------

def test_placed_to_shipped_percentiles_and_on_time_ship_rate() -> None:
    views = [view([placed(h(0)), status(h(n), "shipped")], key=f"s:{n}") for n in range(1, 11)]
    got = d.shipping(views, sla_hours=6)
    assert got["shipped"] == 10
    assert got["placed_to_shipped_p50_h"] == 5.0
    assert got["placed_to_shipped_p90_h"] == 9.0
    assert got["shipped_on_time"] == 6 and got["on_time_ship_rate"] == 0.6


def test_carrier_on_time_against_the_promise_and_cost_per_parcel() -> None:
    # UPS promises 2 days on parcel 1 (delivered in 1 day: on time) and parcel 2 (3 days: late);
    # DHL promises nothing, so the standard option's 7 days apply (delivered in 5: on time).
    a = view([placed(h(0)), shipped(h(0), parcel("1", "UPS", cost="5.00", promised=2),
                                    parcel("2", "UPS", cost="7.00", promised=2))],
             [track(h(24), "1", "delivered"), track(h(72), "2", "delivered")], key="s:1")
    b = view([placed(h(0), country="DE"), shipped(h(0), parcel("3", "DHL"))],
             [track(h(120), "3", "delivered")], key="s:2")
    c = view([placed(h(0)), shipped(h(0), parcel("4", "UPS", cost="9.00", promised=2))],
             [track(h(5), "4", "exception")], key="s:3")
    rows = {r["carrier"]: r for r in d.carriers([a, b, c])}
    assert rows["UPS"]["parcels"] == 3 and rows["UPS"]["delivered"] == 2
    assert rows["UPS"]["on_time"] == 1 and rows["UPS"]["on_time_delivery_rate"] == 0.5
    assert rows["UPS"]["cost_per_parcel"] == "7.00" and rows["UPS"]["cost_samples"] == 3
    assert rows["UPS"]["exceptions"] == 1
    assert rows["DHL"]["on_time_delivery_rate"] == 1.0 and rows["DHL"]["cost_per_parcel"] is None
    assert d.carrier_scores([a, b, c]) == [
        {"carrier": "DHL", "service": "std", "country": "DE", "on_time_rate": 1.0, "samples": 1},
        {"carrier": "UPS", "service": "std", "country": "US", "on_time_rate": 0.5, "samples": 2}]


# --- after-sales, ratings, customers -----------------------------------------------------------

def test_return_rate_by_sku_and_reason_and_refunds() -> None:
    a = view([placed(h(0), lines=(("MUG", 4, "10.00"), ("TEE", 1, "15.00"))),
              status(h(1), "shipped"),
              d.Requested(eid(), h(9), "R1", "return", "defective", (d.Line("MUG", 1),)),
              d.Requested(eid(), h(9), "R1", "return", "defective", (d.Line("MUG", 1),)),
              d.Refunded(eid(), h(10), "R1", Decimal("10.00"), "USD", "defective")], key="s:1")
    b = view([placed(h(0), lines=(("MUG", 1, "10.00"),)), status(h(1), "shipped"),
              d.Requested(eid(), h(9), "R2", "exchange", "changed_mind", (d.Line("MUG", 1),)),
              d.Requested(eid(), h(9), "R3", "refund", "not_received", ())], key="s:2")
    rows, reasons = d.returns([a, b])
    mug = next(r for r in rows if r["sku"] == "MUG")
    assert (mug["sold"], mug["returned"], mug["return_rate"]) == (5, 2, 0.4)
    assert next(r for r in rows if r["sku"] == "TEE")["return_rate"] == 0.0
    assert reasons == {"defective": 1, "changed_mind": 1}
    assert d.refunds([a, b]) == [{"currency": "USD", "reason": "defective", "refunds": 1,
                                  "amount": "10.00"}]


def test_average_rating_and_distribution() -> None:
    views = [view([placed(h(0)), d.Rated(eid(), h(1), r)], key=f"s:{i}")
             for i, r in enumerate([5, 4, 4, 1])] + [flow("s:9", h(0), "accepted")]
    got = d.ratings(views)
    assert got["ratings"] == 4 and got["average_rating"] == 3.5
    assert got["distribution"] == {"1": 1, "2": 0, "3": 0, "4": 2, "5": 1}


def test_repeat_customers_count_sold_orders_only() -> None:
    views = [flow("s:1", h(0), "accepted", customer="a"), flow("s:2", h(5), "accepted", customer="a"),
             flow("s:3", h(0), "accepted", customer="b"),
             flow("s:4", h(0), "rejected", customer="b"), flow("s:5", h(0), "accepted", customer="c")]
    assert d.repeat_customers(views) == {"customers": 3, "repeat_customers": 1,
                                         "repeat_customer_rate": round(1 / 3, 4)}


@pytest.mark.parametrize(("recency", "frequency", "segment"), [
    (5, 3, "champions"), (5, 2, "loyal"), (45, 2, "loyal"), (5, 1, "new"), (90, 4, "at_risk"),
    (45, 1, "needs_attention"), (200, 1, "lost"),
])
def test_rfm_segments(recency: float, frequency: int, segment: str) -> None:
    assert d.rfm_segment(recency, frequency) == segment


def test_rfm_rows_per_customer() -> None:
    now = h(24 * 10)
    views = [flow("s:1", h(0), "accepted", customer="a", total="10.00"),
             flow("s:2", h(24), "accepted", customer="a", total="5.50"),
             flow("s:3", h(24 * 9), "accepted", customer="a", total="1.00"),
             flow("s:4", h(0), "accepted", customer="b", total="3.00")]
    rows = {r["customer_id"]: r for r in d.rfm(views, now)}
    assert rows["a"] == {"customer_id": "a", "recency_days": 1.0, "frequency": 3,
                         "monetary": "16.50 USD", "segment": "champions"}
    assert rows["b"]["segment"] == "new" and rows["b"]["recency_days"] == 10.0
    assert d.rfm_segments(list(rows.values())) == {"champions": 1, "new": 1}


def test_monthly_cohorts() -> None:
    oct_, nov, dec = (datetime(2026, m, 5, tzinfo=UTC) for m in (10, 11, 12))
    views = [flow("s:1", oct_, "accepted", customer="a"), flow("s:2", dec, "accepted", customer="a"),
             flow("s:3", oct_, "accepted", customer="b"), flow("s:4", nov, "accepted", customer="b"),
             flow("s:5", nov, "accepted", customer="c")]
    assert d.cohorts(views) == [
        {"cohort": "2026-10", "customers": 2, "m0": 2, "m1": 1, "m2": 1},
        {"cohort": "2026-11", "customers": 1, "m0": 1}]


def test_frequently_bought_together() -> None:
    ab = (("A", 1, "1.00"), ("B", 1, "1.00"))
    views = [flow("s:1", h(0), "accepted", lines=ab),
             flow("s:2", h(0), "accepted", lines=(*ab, ("C", 2, "1.00"))),
             flow("s:3", h(0), "accepted", lines=(("A", 1, "1.00"),)),
             flow("s:4", h(0), "rejected", lines=ab)]
    assert d.pairs(views)[0] == {"sku_a": "A", "sku_b": "B", "orders": 2, "support": 1.0,
                                 "confidence_b_given_a": round(2 / 3, 4)}
    assert len(d.pairs(views)) == 3


def test_best_sellers_and_velocity() -> None:
    now = h(24 * 20)
    views = [flow("s:1", now - timedelta(days=2), "accepted", lines=(("A", 7, "2.00"),)),
             flow("s:2", now - timedelta(days=15), "accepted", lines=(("A", 23, "2.00"),
                                                                    ("B", 3, "5.00"))),
             flow("s:3", now - timedelta(days=1), "cancelled", lines=(("B", 50, "5.00"),))]
    rows = d.best_sellers(views, now, days=30)
    assert rows[0] == {"sku": "A", "units": 30, "revenue": "60.00", "velocity_per_day": 1.0,
                       "velocity_7d": 1.0, "velocity_30d": 1.0}
    assert rows[1]["sku"] == "B" and rows[1]["units"] == 3 and rows[1]["velocity_7d"] == 0.0
    assert d.reorder_hints(views, now) == [
        {"sku": "A", "velocity_7d": 1.0, "velocity_30d": 1.0, "units_7d": 7, "units_30d": 30},
        {"sku": "B", "velocity_7d": 0.0, "velocity_30d": 0.1, "units_7d": 0, "units_30d": 3}]


# --- filters, reports, CSV ---------------------------------------------------------------------

def test_filters_by_time_store_country_warehouse_and_carrier() -> None:
    a = view([placed(h(0), store="s1", country="US"), shipped(h(1), parcel("1", "UPS"))],
             key="s1:a")
    b = view([placed(h(5), store="s2", country="DE"),
              shipped(h(6), parcel("2", "DHL", warehouse="WH-FRA"))], key="s2:b")
    views = [a, b]
    assert d.select(views, d.Filters(start=h(1))) == [b]
    assert d.select(views, d.Filters(end=h(1))) == [a]
    assert d.select(views, d.Filters(stores=frozenset({"s2"}))) == [b]
    assert d.select(views, d.Filters(countries=frozenset({"US"}))) == [a]
    assert d.select(views, d.Filters(warehouses=frozenset({"WH-FRA"}))) == [b]
    assert d.select(views, d.Filters(carriers=frozenset({"UPS"}))) == [a]


def test_every_report_is_a_table_and_exports_as_csv() -> None:
    views = [flow("s:1", h(0), "accepted", "reserved", "packed", "shipped", customer="a"),
             view([placed(h(0)), status(h(1), "rejected", "unknown_sku")], key="s:2")]
    got = d.reports(views, d.Filters(), now=h(48), sla_hours=48)
    assert set(d.REPORTS) | set(d.PERSONAL_REPORTS) == set(got)
    summary = {r["metric"]: r["value"] for r in got["summary"]}
    assert summary["orders"] == 2 and summary["sold"] == 1 and summary["acceptance_rate"] == 0.5
    assert summary["placed_to_shipped_p50_h"] == 4.0 and summary["on_time_ship_rate"] == 1.0
    assert got["rejection_reasons"] == [{"reason": "unknown_sku", "orders": 1}]
    csv_text = to_csv(got["orders_by_status"])
    assert csv_text.splitlines()[0] == "status,orders"
    assert sorted(csv_text.splitlines()[1:]) == ["rejected,1", "shipped,1"]
    assert to_csv([]) == "empty\n"


def test_an_order_is_stuck_when_not_final_and_unchanged_too_long() -> None:
    day = timedelta(hours=24)
    assert d.stuck("on_hold", h(0), h(25), day)
    assert not d.stuck("on_hold", h(0), h(23), day)
    assert not d.stuck("delivered", h(0), h(100), day)
    assert not d.stuck("return_rejected", h(0), h(100), day)


@given(st.lists(st.floats(min_value=0, max_value=1e6), min_size=1, max_size=50),
       st.sampled_from([50, 90, 99]))
def test_percentile_is_an_observed_value_with_enough_values_at_or_below(values: list[float],
                                                                       p: int) -> None:
    got = d.percentile(values, p)
    assert got in values
    assert sum(1 for v in values if v <= got) >= p / 100 * len(values)
    assert sum(1 for v in values if v < got) < p / 100 * len(values)


# --- what the handlers store comes back as the same facts ----------------------------------------

def test_stored_event_bodies_come_back_as_facts() -> None:
    body = _placed_body(store_name="s1", ext="x", customer_id="c-9", country="DE", placed_at=T0,
                        lines=[OrderLine(sku="MUG", quantity=2, unit_price="12.50")],
                        grand_total=Decimal("25"), currency="EUR", shipping_option="express")
    fact = to_fact("placed", "e1", h(1), body)
    assert fact == d.Placed("e1", h(1), "s1", "x", "c-9", "DE", T0,
                            (d.Line("MUG", 2, Decimal("12.50")),), Decimal("25.00"), "EUR",
                            "express")
    parcels = [ShippedParcel(parcel_id="P1", warehouse="WH-LA", carrier="UPS", service="std",
                             tracking_number="T1", lines=[SkuQuantity(sku="MUG", quantity=2)],
                             cost="6.40", promised_days=5),
               ShippedParcel(parcel_id="P2", warehouse="WH-LA", carrier="UPS", service="std",
                             tracking_number="T2", lines=[])]
    shipped_fact = to_fact("shipped", "e2", h(2),
                           {"parcels": [p.model_dump(mode="json") for p in parcels]})
    assert isinstance(shipped_fact, d.Shipped)
    first, second = shipped_fact.parcels
    assert (first.cost, first.promised_days, first.lines) == (Decimal("6.40"), 5,
                                                              (d.Line("MUG", 2),))
    assert (second.cost, second.promised_days) == (None, None)
    assert to_fact("status", "e3", h(3), {"status": "on_hold", "reasons": [
        {"code": "high_value", "message": "…"}]}) == d.Status("e3", h(3), "on_hold", ("high_value",))
    assert to_fact("refunded", "e4", h(4), {"request_id": "R", "amount": "3.00", "currency": "USD",
                                            "reason": "damaged"}) == d.Refunded(
        "e4", h(4), "R", Decimal("3.00"), "USD", "damaged")
    assert to_fact("unknown", "e5", h(5), {}) is None
