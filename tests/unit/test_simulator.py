"""The simulator is deterministic for a seed: same plan, same per-order decisions."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from typing import Any

from tools.simulator import CATALOGUE, Reactor, plan

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


def test_same_seed_gives_the_same_traffic() -> None:
    a = plan(7, 300, 50, 30, "run1", NOW)
    b = plan(7, 300, 50, 30, "run1", NOW)
    assert a.actions == b.actions
    assert plan(8, 300, 50, 30, "run1", NOW).actions != a.actions


def test_traffic_mixes_what_real_storefronts_send() -> None:
    p = plan(7, 2000, 100, 30, "run1", NOW)
    kinds = p.kinds
    assert kinds["order"] + kinds["invalid_order"] == 2000
    assert 0.015 < kinds["invalid_order"] / 2000 < 0.05        # about 3 % invalid
    assert kinds["resend"] > 20 and kinds["cancel"] > 10 and kinds["near_duplicate"] > 5
    assert kinds["restock"] == 2 and kinds["product"] > 20
    placed = [a.value for a in p.actions if a.kind == "order"]
    countries = Counter(v["shipping_address"]["country"] for v in placed if isinstance(v, dict))
    assert countries.most_common(1)[0][0] == "US" and len(countries) >= 15
    assert sum(1 for v in placed if isinstance(v, dict) and v["promo_codes"]) > 50
    times = [a.at for a in p.actions]
    assert times == sorted(times)


def test_a_rerun_is_the_same_traffic_as_new_orders_and_new_events() -> None:
    first, rerun = plan(7, 50, 50, 30, "run8", NOW), plan(7, 50, 50, 30, "run9", NOW)
    assert all(":run9-" in k for k in rerun.orders)
    ids = {a.value["event_id"] for a in first.actions if isinstance(a.value, dict)}
    assert not ids & {a.value["event_id"] for a in rerun.actions if isinstance(a.value, dict)}
    assert [a.kind for a in first.actions] == [a.kind for a in rerun.actions]


def shipped(key: str) -> list[dict[str, Any]]:
    return [{"status": "shipped", "details": {"parcels": [
        {"tracking_number": f"T-{key}", "carrier": "USPS"}]}}]


def test_reactions_depend_on_the_seed_and_the_order_not_on_arrival() -> None:
    keys = [f"shop:{i}" for i in range(40)]
    first, second = Reactor(7, 30, NOW), Reactor(7, 30, NOW)
    a = {k: [(x.topic, x.value["status"]) for x in first.respond(k, shipped(k))] for k in keys}
    b = {k: [(x.topic, x.value["status"]) for x in second.respond(k, shipped(k))]
         for k in reversed(keys)}
    assert a == b
    assert all(t == "carrier.tracking" for acts in a.values() for t, _ in acts)


def test_each_status_is_answered_once() -> None:
    reactor = Reactor(7, 30, NOW)
    assert reactor.respond("shop:1", shipped("shop:1"))
    assert reactor.respond("shop:1", shipped("shop:1")) == []


def test_carrier_scans_are_in_the_simulated_past_and_in_order() -> None:
    reactor = Reactor(7, 30, NOW)
    for i in range(30):
        scans = reactor.respond(f"shop:{i}", shipped(f"shop:{i}"))
        times = [s.value["occurred_at"] for s in scans]
        assert times == sorted(times) and len(set(times)) == len(times)
        assert all(t < NOW.isoformat().replace("+00:00", "Z") for t in times)


def test_stores_of_other_currencies_price_in_them_after_the_days_rates() -> None:
    from decimal import Decimal

    p = plan(seed=3, orders=400, rate=100, days=30, run_id="cny", now=NOW)
    assert p.actions[0].kind == "fx" and p.actions[0].value["rates"]["CNY"] == "7.1000"
    placed = [a.value for a in p.actions if a.kind == "order"]
    cny = [o for o in placed if o["store"] == "aliexpress-1"]
    assert cny and all(o["currency"] == "CNY" for o in cny)
    assert {o["currency"] for o in placed if o["store"] == "amazon-de-1"} == {"EUR"}
    assert {o["currency"] for o in placed if o["store"] not in ("aliexpress-1", "amazon-de-1")
            } == {"USD"}
    for o in cny:  # the amounts are the catalogue's USD prices converted, and add up
        t = o["totals"]
        assert Decimal(t["grand_total"]) == (Decimal(t["subtotal"]) - Decimal(t["discount"])
                                             + Decimal(t["shipping_fee"]))
        prices = {s[0]: Decimal(s[3]) for s in CATALOGUE}
        for line in o["lines"]:
            assert Decimal(line["unit_price"]) == (prices[line["sku"]] * Decimal("7.1")
                                                   ).quantize(Decimal("0.01"))
