"""Logistics' zones, surcharges, scores, customs, the dock check and the watchdog's rules
(services/logistics/domain.py): pure, no I/O."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.logistics.domain import (
    PROMISE_DAYS,
    CarrierService,
    Declaration,
    ParcelSpec,
    Product,
    Zone,
    choose,
    current_status,
    declaration,
    dispatch_problems,
    ineligibility,
    ioss_for,
    is_remote,
    is_stalled,
    needs_customs,
    normal_hs_code,
    on_time,
    rate,
    smoothed_score,
    weight_tolerance,
)

BASE = CarrierService(
    code="BASE", carrier="CAR", origins=("WH-LA",), destinations=("US", "CA", "GB"),
    refused=(), max_weight_g=30_000, max_side_mm=1_200, transit_min=2, transit_max=5,
    first_500g=Decimal("5.00"), per_500g=Decimal("2.00"), fuel_pct=Decimal("10"),
    volumetric_divisor=5_000, tracking_format="num:1Z:10", on_time_score=Decimal("0.90"),
)
SPEC = ParcelSpec("WH-LA", "GB", 1_000, (200, 150, 100), postal_code="SW1A 2AA")
ZONE2 = Zone("2", Decimal("8.00"), Decimal("3.00"), 4, 7)


def svc(code: str, **changes: Any) -> CarrierService:
    return replace(BASE, code=code, **changes)


def entry(trace: list[dict[str, object]], code: str) -> dict[str, object]:
    return next(e for e in trace if e["service"] == code)


# --- zones, surcharges, scores ----------------------------------------------------------------

def test_the_destination_zones_rate_card_and_transit_days_apply() -> None:
    # Given a service with a zone 2 card from WH-LA to GB
    service = svc("Z", zones={("WH-LA", "GB"): ZONE2})
    # When a 1,000 g parcel to GB is rated
    r = rate(service, SPEC)
    # Then the zone's first 500 g plus one step, plus 10 % fuel, and its transit days apply
    assert (r.zone, r.base, r.fuel, r.total) == ("2", Decimal("11.00"), Decimal("1.10"),
                                                 Decimal("12.10"))
    assert (r.transit_min, r.transit_max) == (4, 7)


def test_without_a_zone_the_services_own_card_applies() -> None:
    # Given a service without zones
    # When a parcel is rated
    r = rate(BASE, SPEC)
    # Then its own card and transit days serve, under zone "-"
    assert (r.zone, r.total, r.transit_max) == ("-", Decimal("7.70"), 5)


@pytest.mark.parametrize(("postal_code", "remote"), [
    ("IV2 3AB", True), ("iv23ab", True), ("HS1 2AB", True), ("SW1A 2AA", False), (None, False),
    ("", False),
])
def test_remote_areas_match_on_postal_code_prefix(postal_code: str | None, remote: bool) -> None:
    # Given a carrier calling the Highlands (IV) and Outer Hebrides (HS) remote
    service = svc("R", remote_prefixes={"GB": ("IV", "HS")}, remote_surcharge=Decimal("32.00"))
    # When a GB postal code is checked
    # Then a prefix match (any case, spaces ignored) is remote
    assert is_remote(service, replace(SPEC, postal_code=postal_code)) is remote


def test_the_remote_area_surcharge_is_added_after_fuel() -> None:
    # Given a 32.00 remote-area surcharge
    service = svc("R", remote_prefixes={"GB": ("IV",)}, remote_surcharge=Decimal("32.00"))
    # When a parcel to the Highlands is rated
    r = rate(service, replace(SPEC, postal_code="IV2 3AB"))
    # Then the flat surcharge comes on top of base plus fuel
    assert (r.remote_area, r.total) == (Decimal("32.00"), Decimal("39.70"))


def test_a_remote_surcharge_can_make_another_service_cheapest_and_the_trace_shows_it() -> None:
    # Given a courier cheaper on the card but with a remote surcharge, and a post without one
    courier = svc("COURIER", first_500g=Decimal("4.00"), remote_prefixes={"GB": ("IV",)},
                  remote_surcharge=Decimal("30.00"))
    post = svc("POST", first_500g=Decimal("6.00"))
    spec = replace(SPEC, postal_code="IV2 3AB")
    # When economy is chosen for a remote address
    choice = choose([courier, post], spec, "economy")
    # Then the post wins and the trace lists the courier's surcharge and zone
    assert choice.service is not None and choice.service.code == "POST"
    lost = entry(choice.trace, "COURIER")
    assert lost["surcharges"] == {"fuel": "0.60", "remote_area": "30.00"}
    assert lost["cost"] == "36.60" and lost["zone"] == "-"
    assert lost["why"] == "lost on cost to POST"


def test_standard_promise_is_judged_on_the_zones_transit_days() -> None:
    # Given a cheap service that is quick in zone 1 but takes 14 days to GB's zone
    slow_there = Zone("4", Decimal("3.00"), Decimal("1.00"), 9, 14)
    cheap = svc("CHEAP", first_500g=Decimal("1.00"), zones={("WH-LA", "GB"): slow_there})
    fair = svc("FAIR", first_500g=Decimal("9.00"), transit_max=8)
    # When standard (12 days) is chosen to GB
    choice = choose([cheap, fair], SPEC, "standard")
    # Then the cheap one misses the promise in that zone
    assert choice.service is not None and choice.service.code == "FAIR"
    assert entry(choice.trace, "CHEAP")["why"] == \
        "transit up to 14 days misses the 12-day promise"


def test_the_on_time_score_of_the_destination_zone_breaks_ties() -> None:
    # Given two equal services; A's carrier is better in general, B is better in zone 2
    a = svc("A", on_time_score=Decimal("0.97"), zones={("WH-LA", "GB"): ZONE2},
            zone_scores={"2": Decimal("0.60")})
    b = svc("B", on_time_score=Decimal("0.80"), zones={("WH-LA", "GB"): ZONE2},
            zone_scores={"2": Decimal("0.95")})
    # When standard is chosen to GB (zone 2)
    choice = choose([a, b], SPEC, "standard")
    # Then the zone's score decides, and the trace says so
    assert choice.service is not None and choice.service.code == "B"
    assert entry(choice.trace, "A")["why"] == "lost on on-time score to B"
    assert entry(choice.trace, "A")["on_time_score"] == "0.60"


@pytest.mark.parametrize(("on_time_count", "delivered", "expected"), [
    (0, 0, "0.900"),      # no history: the prior
    (2, 2, "0.917"),      # two on time barely move it
    (50, 100, "0.536"),   # history outweighs the prior
    (1000, 1000, "0.999"),
])
def test_score_is_the_on_time_rate_pulled_towards_the_prior(on_time_count: int, delivered: int,
                                                            expected: str) -> None:
    assert smoothed_score(on_time_count, delivered, Decimal("0.90")) == Decimal(expected)


@pytest.mark.parametrize(("days", "expected"), [(4, True), (5, True), (5.01, False), (9, False)])
def test_on_time_means_delivered_within_the_zones_maximum_transit(days: float,
                                                                  expected: bool) -> None:
    shipped = datetime(2026, 11, 1, 12, tzinfo=UTC)
    assert on_time(shipped, shipped + timedelta(days=days), 5) is expected


# --- hypothesis: the choice is eligible and never dearer than it needs to be ------------------

zones_st = st.one_of(st.just({}), st.builds(
    lambda first, per, tmin, extra: {("WH-LA", "GB"): Zone(
        "2", Decimal(first) / 100, Decimal(per) / 100, tmin, tmin + extra)},
    st.integers(100, 5_000), st.integers(0, 1_000), st.integers(1, 20), st.integers(0, 20)))
scores_st = st.dictionaries(st.sampled_from(["2", "-"]),
                            st.integers(50, 100).map(lambda n: Decimal(n) / 100), max_size=2)
services_st = st.lists(
    st.builds(
        lambda i, first, per, fuel, tmax, score, refused, max_w, origin, dest, remote, zones,
        zone_scores: svc(
            f"S{i}", first_500g=Decimal(first) / 100, per_500g=Decimal(per) / 100,
            fuel_pct=Decimal(fuel), transit_min=1, transit_max=tmax,
            on_time_score=Decimal(score) / 100, refused=refused, max_weight_g=max_w,
            origins=(origin,), destinations=(dest, "CA"),
            remote_prefixes={"GB": ("IV",)}, remote_surcharge=Decimal(remote), zones=zones,
            zone_scores=zone_scores),
        st.integers(0, 99), st.integers(100, 5_000), st.integers(0, 1_000), st.integers(0, 20),
        st.integers(1, 40), st.integers(50, 100),
        st.sampled_from([(), ("battery",), ("liquid", "powder")]),
        st.sampled_from([2_000, 20_000, 30_000]), st.sampled_from(["WH-LA", "WH-SZ"]),
        st.sampled_from(["GB", "US"]), st.sampled_from([0, 25]), zones_st, scores_st),
    max_size=8, unique_by=lambda s: s.code)
spec_st = st.builds(
    lambda w, attrs, pc: ParcelSpec("WH-LA", "GB", w, (300, 200, 150), attrs, pc),
    st.integers(1, 25_000), st.sampled_from([(), ("battery",), ("liquid",)]),
    st.sampled_from(["IV2 3AB", "SW1A 2AA", None]))


@settings(max_examples=300)
@given(services_st, spec_st, st.sampled_from(["economy", "standard", "express"]))
def test_the_chosen_service_is_eligible_and_never_dearer_than_it_must_be(
        services: list[CarrierService], spec: ParcelSpec, option: str) -> None:
    choice = choose(services, spec, option)
    eligible = [s for s in services if ineligibility(s, spec) is None]
    if not eligible:
        assert choice.service is None
        return
    chosen = choice.service
    assert chosen is not None and ineligibility(chosen, spec) is None
    rates = {s.code: rate(s, spec) for s in eligible}
    mine = rates[chosen.code]
    assert choice.cost == mine.total
    promise = PROMISE_DAYS[option]
    if option == "express":
        # Fastest; among the equally fast, the best score; among those, never the dearer.
        assert mine.transit_max == min(r.transit_max for r in rates.values())
        peers = [r for r in rates.values() if r.transit_max == mine.transit_max
                 and r.on_time_score == mine.on_time_score]
        assert all(mine.total <= r.total for r in peers)
    else:
        meeting = [r for r in rates.values() if r.transit_max <= promise]
        if meeting:
            # Meets the promise, and no eligible service meeting it is cheaper.
            assert mine.transit_max <= promise
            assert all(mine.total <= r.total for r in meeting)
        else:
            assert all(mine.total <= r.total for r in rates.values())


# --- customs ----------------------------------------------------------------------------------

@pytest.mark.parametrize(("origin", "dest", "needed"), [
    ("US", "US", False), ("US", "DE", True), ("DE", "FR", False), ("DE", "PL", False),
    ("DE", "GB", True), ("CN", "DE", True), ("DE", "US", True),
])
def test_customs_are_needed_across_customs_territories_only(origin: str, dest: str,
                                                            needed: bool) -> None:
    assert needs_customs(origin, dest) is needed


@pytest.mark.parametrize(("code", "normal"), [
    ("6912.00", "691200"), ("6912.00.50", "69120050"), ("8517 62 00 10", "8517620010"),
    ("6912", None), ("69120", None), ("abc123", None), ("", None), (None, None),
])
def test_hs_codes_need_at_least_six_digits(code: str | None, normal: str | None) -> None:
    assert normal_hs_code(code) == normal


MUG = Product("MUG", "Ceramic mug", "6912.00", "CN", 350)
LAMP = Product("LAMP", "Desk lamp", "9405.21", "CN", 1_200)


def declare(lines: list[tuple[str, int]], products: dict[str, Product],
            prices: dict[str, str]) -> Declaration:
    return declaration(lines, products, {k: Decimal(v) for k, v in prices.items()}, "USD")


def test_a_declaration_lists_each_line_with_hs_code_origin_value_and_weight() -> None:
    # Given two products with customs data
    d = declare([("MUG", 2), ("LAMP", 1)], {"MUG": MUG, "LAMP": LAMP},
                {"MUG": "12.50", "LAMP": "40.00"})
    # Then the declaration is a complete CN22 worth 65.00
    assert d.complete and d.form == "CN22" and d.total_value == Decimal("65.00")
    assert d.lines[0] == {"sku": "MUG", "description": "Ceramic mug", "hs_code": "691200",
                          "origin_country": "CN", "quantity": 2, "value": "25.00",
                          "net_weight_g": 700}


@pytest.mark.parametrize(("price", "form"), [("400.00", "CN22"), ("400.01", "CN23")])
def test_above_the_cn22_limit_the_form_is_cn23(price: str, form: str) -> None:
    assert declare([("LAMP", 1)], {"LAMP": LAMP}, {"LAMP": price}).form == form


@pytest.mark.parametrize(("products", "missing"), [
    ({"MUG": replace(MUG, hs_code=None)}, ["MUG: no valid HS code"]),
    ({"MUG": replace(MUG, hs_code="69")}, ["MUG: no valid HS code ('69')"]),
    ({"MUG": replace(MUG, origin_country=None)}, ["MUG: no origin country"]),
    ({}, ["MUG: product data not received"]),
])
def test_missing_customs_data_is_named(products: dict[str, Product], missing: list[str]) -> None:
    d = declare([("MUG", 1)], products, {"MUG": "12.50"})
    assert not d.complete and d.missing == missing


@pytest.mark.parametrize(("destination", "printed"), [
    ("DE", "IM2760000001"), ("FR", "IM2760000001"), ("GB", None), ("US", None), ("CH", None)])
def test_the_ioss_number_goes_on_declarations_into_the_eu_only(destination: str,
                                                                printed: str | None) -> None:
    # Given an order placed with the seller's IOSS number
    number = ioss_for(destination, "IM2760000001")
    # When its parcel's declaration is drawn up for the destination
    d = declaration([("MUG", 1)], {"MUG": MUG}, {"MUG": Decimal("12.50")}, "EUR",
                    ioss_number=number)
    # Then the number is on it into the EU, and left off elsewhere
    assert d.ioss_number == printed
    assert d.as_dict().get("ioss_number") == printed
    assert d.complete  # the number is never what makes papers incomplete


def test_an_order_without_an_ioss_number_declares_none() -> None:
    assert ioss_for("DE", None) is None
    assert "ioss_number" not in declare([("MUG", 1)], {"MUG": MUG}, {"MUG": "1.00"}).as_dict()


# --- the dock check ---------------------------------------------------------------------------

ADDRESS = {"name": "Ana Lima", "line1": "10 Downing St", "line2": None, "city": "London",
           "region": None, "postal_code": "SW1A 2AA", "country": "GB"}


@pytest.mark.parametrize(("label_g", "tolerance"), [(100, 50), (1_000, 50), (1_001, 51),
                                                    (10_000, 500)])
def test_weight_tolerance_is_the_larger_of_50_g_and_5_percent(label_g: int, tolerance: int) -> None:
    assert weight_tolerance(label_g) == tolerance


@pytest.mark.parametrize(("measured", "ok"), [(2_000, True), (2_100, True), (1_900, True),
                                              (2_101, False), (1_899, False)])
def test_a_parcel_weighing_outside_tolerance_of_its_label_is_stopped(measured: int,
                                                                     ok: bool) -> None:
    problems = dispatch_problems(2_000, measured, ADDRESS, None)
    assert (problems == []) is ok
    if not ok:
        assert problems[0][0] == "weight_mismatch"


def test_an_incomplete_address_and_incomplete_customs_are_both_named() -> None:
    # Given an address without street and a declaration lacking an HS code
    customs = declare([("MUG", 1)], {"MUG": replace(MUG, hs_code=None)}, {"MUG": "1.00"})
    # When the parcel is checked at the dock
    problems = dispatch_problems(500, 500, {**ADDRESS, "line1": " "}, customs)
    # Then both stop it, with reasons an operator can act on
    assert problems == [("incomplete_address", "address lacks line1"),
                        ("customs_incomplete", "MUG: no valid HS code")]


def test_a_complete_parcel_passes() -> None:
    customs = declare([("MUG", 1)], {"MUG": MUG}, {"MUG": "1.00"})
    assert dispatch_problems(500, 520, ADDRESS, customs) == []


# --- watchdog ---------------------------------------------------------------------------------

NOW = datetime(2026, 11, 27, 12, tzinfo=UTC)


@pytest.mark.parametrize(("status", "silent_days", "stalled"), [
    ("in_transit", 5.1, True), ("in_transit", 5, False), ("shipped", 6, True),
    ("failed_attempt", 9, True), ("delivered", 30, False), ("lost", 30, False),
    ("returned_to_sender", 30, False),
])
def test_a_parcel_silent_longer_than_its_services_limit_is_stalled(status: str,
                                                                   silent_days: float,
                                                                   stalled: bool) -> None:
    assert is_stalled(status, NOW - timedelta(days=silent_days), 5, NOW) is stalled


# --- tracking order ---------------------------------------------------------------------------

def at(hour: int) -> datetime:
    return datetime(2026, 11, 20, hour, tzinfo=UTC)


@pytest.mark.parametrize(("scans", "status"), [
    pytest.param([], "shipped", id="no-scan"),
    pytest.param([(at(8), "in_transit"), (at(12), "delivered")], "delivered", id="in-order"),
    pytest.param([(at(12), "delivered"), (at(8), "in_transit")], "delivered",
                 id="late-scan-does-not-undo-delivery"),
    pytest.param([(at(12), "delivered"), (at(10), "exception")], "delivered",
                 id="late-exception-ignored"),
    pytest.param([(at(9), "failed_attempt"), (at(8), "out_for_delivery"), (at(11), "delivered")],
                 "delivered", id="shuffled"),
    pytest.param([(at(8), "in_transit"), (at(8), "exception")], "in_transit",
                 id="same-time-is-not-newer"),
    pytest.param([(at(8), "in_transit"), (at(8), "in_transit")], "in_transit", id="duplicate"),
])
def test_scans_are_ordered_by_the_carriers_clock_not_by_arrival(
        scans: list[tuple[datetime, str]], status: str) -> None:
    assert current_status(scans) == status


@given(st.permutations([(at(h), s) for h, s in [(6, "info_received"), (8, "in_transit"),
                                                 (10, "out_for_delivery"), (11, "delivered")]]))
def test_any_arrival_order_ends_in_the_latest_scan(scans: list[tuple[datetime, str]]) -> None:
    assert current_status(scans) == "delivered"
