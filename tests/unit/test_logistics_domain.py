"""Logistics' carrier rules (services/logistics/domain.py): pure, no I/O."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.logistics.domain import (
    CarrierService,
    Choice,
    ParcelSpec,
    chargeable_weight,
    choose,
    cost,
    coverage,
    ineligibility,
    is_valid_s10,
    s10_check_digit,
    tracking_number,
    tracking_serial,
)

BASE = CarrierService(
    code="BASE", carrier="Carrier", origins=("WH-LA", "WH-NJ"), destinations=("US", "CA"),
    refused=(), max_weight_g=30_000, max_side_mm=1_200, transit_min=2, transit_max=5,
    first_500g=Decimal("5.00"), per_500g=Decimal("2.00"), fuel_pct=Decimal("10"),
    volumetric_divisor=5_000, tracking_format="num:1Z:10", on_time_score=Decimal("0.90"),
)
# 1,000 g actual; 200x150x100 mm = 600 g volumetric at 5,000: chargeable 1,000 g.
SPEC = ParcelSpec("WH-LA", "US", 1_000, (200, 150, 100))


def svc(code: str, **changes: Any) -> CarrierService:
    return replace(BASE, code=code, **changes)


def by_service(choice: Choice) -> dict[str, dict[str, object]]:
    return {str(e["service"]): e for e in choice.trace}


def chosen_codes(choice: Choice) -> list[str]:
    return [str(e["service"]) for e in choice.trace if "chosen" in e]


# --- S10 tracking numbers ---------------------------------------------------------------------

@pytest.mark.parametrize(
    ("serial", "check"),
    [
        # Worked by hand with the UPU rule: weights 8,6,4,2,3,5,9,7; C = 11 - S mod 11.
        pytest.param("47312482", 9, id="upu-example-S200"),   # S=200, 200%11=2 -> 9
        pytest.param("12345678", 5, id="S204"),               # S=204, 204%11=6 -> 5
        pytest.param("00000001", 4, id="S7"),                 # S=7 -> 4
        pytest.param("00000010", 2, id="S9"),                 # S=9 -> 2
        pytest.param("10000000", 3, id="S8"),                 # S=8 -> 3
        pytest.param("00004000", 0, id="ten-becomes-0"),      # S=12, 12%11=1 -> 10 -> 0
        pytest.param("00060000", 0, id="ten-becomes-0-b"),    # S=12 -> 10 -> 0
        pytest.param("00000000", 5, id="eleven-becomes-5"),   # S=0 -> 11 -> 5
        pytest.param("99999999", 5, id="eleven-becomes-5-b"),  # S=396=36*11 -> 11 -> 5
    ],
)
def test_s10_check_digit_follows_the_upu_mod_11_rule(serial: str, check: int) -> None:
    # Given an 8-digit serial
    # When its S10 check digit is computed
    # Then it is the hand-computed UPU value
    assert s10_check_digit(serial) == check


@pytest.mark.parametrize("serial", ["1234567", "123456789", "1234567A", "", "1234 567"])
def test_s10_check_digit_refuses_anything_but_8_digits(serial: str) -> None:
    # Given a serial that is not 8 digits
    # When its check digit is asked for
    # Then it is refused
    with pytest.raises(ValueError, match="8 digits"):
        s10_check_digit(serial)


@pytest.mark.parametrize(
    ("fmt", "sequence", "expected"),
    [
        pytest.param("s10:RR:US", 47312482, "RR473124829US", id="s10"),
        pytest.param("s10:EE:CN", 123, "EE000001235CN", id="s10-zero-padded"),   # S=44 -> 11 -> 5
        pytest.param("s10:RR:US", 10**8 + 123, "RR000001235US", id="s10-wraps-at-1e8"),
        pytest.param("num:1Z:10", 42, "1Z0000000042", id="numeric"),
        pytest.param("num:1Z:10", 10**10 + 7, "1Z0000000007", id="numeric-wraps"),
        pytest.param("num:JD:6", 123456, "JD123456", id="numeric-full-width"),
    ],
)
def test_tracking_number_follows_the_service_format(fmt: str, sequence: int, expected: str) -> None:
    # Given a service's tracking format and a sequence number
    # When a tracking number is made
    # Then it has the format's prefix, padded digits and (for S10) check digit and country
    assert tracking_number(fmt, sequence) == expected


@pytest.mark.parametrize(
    ("number", "valid"),
    [
        pytest.param("RA473124829GB", True, id="valid"),
        pytest.param("EE000040000CN", True, id="valid-check-0"),
        pytest.param("RR000000005US", True, id="valid-check-5"),
        pytest.param("RA473124828GB", False, id="wrong-check-digit"),
        pytest.param("RA47312482GB", False, id="too-short"),
        pytest.param("RA4731248290GB", False, id="too-long"),
        pytest.param("1A473124829GB", False, id="digit-in-service-code"),
        pytest.param("RA473124829G1", False, id="digit-in-country"),
        pytest.param("RA4731248X9GB", False, id="letter-in-serial"),
        pytest.param("RA47312482XGB", False, id="letter-as-check"),
        pytest.param("", False, id="empty"),
    ],
)
def test_is_valid_s10_checks_shape_and_check_digit(number: str, valid: bool) -> None:
    # Given a candidate S10 number
    # When it is validated
    # Then only the 2 letters + 8 digits + right check digit + 2 letters shape passes
    assert is_valid_s10(number) is valid


@given(st.integers(min_value=0, max_value=10**12))
def test_every_generated_s10_number_is_valid_and_any_other_check_digit_is_not(seq: int) -> None:
    # Given any sequence number
    # When an S10 tracking number is generated
    number = tracking_number("s10:LX:DE", seq)
    # Then it is valid, and replacing its check digit by any other makes it invalid
    assert len(number) == 13
    assert is_valid_s10(number)
    for d in "0123456789":
        if d != number[10]:
            assert not is_valid_s10(number[:10] + d + number[11:])


# --- weight and cost --------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("weight_g", "dims", "divisor", "expected"),
    [
        pytest.param(1_000, (400, 300, 200), 5_000, 4_800, id="volumetric-wins"),
        pytest.param(1_000, (400, 300, 200), 6_000, 4_000, id="other-divisor"),
        pytest.param(6_000, (400, 300, 200), 5_000, 6_000, id="actual-wins"),
        pytest.param(100, (101, 101, 101), 5_000, 207, id="volumetric-rounded-up"),  # 206.06
        pytest.param(0, (0, 0, 0), 5_000, 0, id="nothing"),
    ],
)
def test_chargeable_weight_is_the_larger_of_actual_and_volumetric(
        weight_g: int, dims: tuple[int, int, int], divisor: int, expected: int) -> None:
    # Given a parcel and a carrier's volumetric divisor (cm3 per kg)
    spec = ParcelSpec("WH-LA", "US", weight_g, dims)
    # When its chargeable weight is computed
    # Then it is max(actual, ceil(mm3 / divisor)) grams
    assert chargeable_weight(spec, divisor) == expected


@pytest.mark.parametrize(
    ("chargeable_g", "expected"),
    [
        pytest.param(1, "5.50", id="under-first-step"),
        pytest.param(500, "5.50", id="first-500g"),
        pytest.param(501, "7.70", id="one-gram-over-starts-a-step"),
        pytest.param(1_000, "7.70", id="one-step"),
        pytest.param(1_001, "9.90", id="two-steps"),
        pytest.param(2_500, "14.30", id="four-steps"),
    ],
)
def test_cost_charges_each_started_500g_step_plus_fuel(chargeable_g: int, expected: str) -> None:
    # Given a service at 5.00 for the first 500 g, 2.00 per further 500 g, 10% fuel
    # When a parcel's cost is computed
    # Then it is (first + per * started steps) * 1.10
    assert cost(BASE, chargeable_g) == Decimal(expected)


def test_cost_without_fuel_surcharge_is_the_base_price() -> None:
    # Given a service without fuel surcharge
    service = svc("NOFUEL", fuel_pct=Decimal("0"))
    # When a 1,200 g parcel's cost is computed (two further steps)
    # Then it is just the base price
    assert cost(service, 1_200) == Decimal("9.00")


def test_cost_rounds_half_cents_up() -> None:
    # Given 2.50 with a 5% surcharge = 2.625
    service = svc("HALF", first_500g=Decimal("2.50"), fuel_pct=Decimal("5"))
    # When the cost is computed
    # Then the half cent is rounded up
    assert cost(service, 400) == Decimal("2.63")


# --- eligibility ------------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("spec", "reason"),
    [
        pytest.param(replace(SPEC, warehouse="WH-SG"), "does not collect from WH-SG", id="origin"),
        pytest.param(replace(SPEC, country="FR"), "does not serve FR", id="destination"),
        pytest.param(replace(SPEC, attributes=("liquid", "fragile", "battery")),
                     "refuses battery, liquid goods", id="refused-attributes"),
        pytest.param(replace(SPEC, weight_g=30_001), "weight 30001 g over its limit 30000 g",
                     id="weight"),
        pytest.param(replace(SPEC, dims_mm=(10, 1_201, 10)),
                     "longest side 1201 mm over its limit 1200 mm", id="side"),
        pytest.param(replace(SPEC, warehouse="WH-SG", country="FR"), "does not collect from WH-SG",
                     id="origin-checked-first"),
    ],
)
def test_ineligibility_explains_why_a_service_cannot_take_a_parcel(spec: ParcelSpec,
                                                                   reason: str) -> None:
    # Given a service refusing battery, liquid and powder goods, up to 30 kg and 1,200 mm
    service = svc("S", refused=("battery", "liquid", "powder"))
    # When a parcel it cannot take is checked
    # Then the reason says why
    assert ineligibility(service, spec) == reason


def test_a_parcel_exactly_at_the_limits_is_eligible() -> None:
    # Given a parcel at exactly the weight and side limits with accepted attributes
    spec = replace(SPEC, weight_g=30_000, dims_mm=(1_200, 100, 100), attributes=("fragile",))
    # When it is checked
    # Then nothing stands in the way
    assert ineligibility(svc("S", refused=("battery",)), spec) is None


# --- choose -----------------------------------------------------------------------------------

def test_economy_chooses_the_cheapest_service() -> None:
    # Given three eligible services at different prices
    services = [svc("A", first_500g=Decimal("6.00")), svc("B", first_500g=Decimal("4.00"),
                                                        transit_max=25),
                svc("C", first_500g=Decimal("5.00"))]
    # When economy is chosen
    choice = choose(services, SPEC, "economy")
    # Then the cheapest wins, with its cost and chargeable weight
    assert choice.service is not None
    assert choice.service.code == "B"
    assert choice.cost == Decimal("6.60")  # (4.00 + 2.00) * 1.10
    assert choice.chargeable_g == 1_000
    assert choice.reason is None
    assert by_service(choice)["B"]["chosen"] == "cheapest for economy"
    assert by_service(choice)["A"]["why"] == "lost on cost to B"


def test_economy_never_picks_a_service_slower_than_its_30_day_promise_when_one_meets_it() -> None:
    # Given a cheap 40-day service and a dearer 20-day one
    services = [svc("SLOW", first_500g=Decimal("1.00"), transit_max=40),
                svc("OK", first_500g=Decimal("5.00"), transit_max=20)]
    # When economy is chosen
    choice = choose(services, SPEC, "economy")
    # Then the one meeting the promise wins
    assert choice.service is not None
    assert choice.service.code == "OK"


def test_economy_trace_says_a_cheaper_too_slow_service_missed_the_promise() -> None:
    # Given a cheap 40-day service and a dearer 20-day one
    services = [svc("SLOW", first_500g=Decimal("1.00"), transit_max=40),
                svc("OK", first_500g=Decimal("5.00"), transit_max=20)]
    # When economy is chosen
    choice = choose(services, SPEC, "economy")
    # Then the trace says the cheaper one lost on the promise, not on cost
    assert by_service(choice)["SLOW"]["why"] == "transit up to 40 days misses the 30-day promise"


def test_standard_chooses_the_cheapest_service_within_the_12_day_promise() -> None:
    # Given a cheap slow service, a mid-priced 10-day one and an expensive fast one
    services = [svc("CHEAP", first_500g=Decimal("3.00"), transit_max=20),
                svc("MID", first_500g=Decimal("6.00"), transit_max=10),
                svc("FAST", first_500g=Decimal("9.00"), transit_max=3)]
    # When standard is chosen
    choice = choose(services, SPEC, "standard")
    # Then the cheapest meeting the promise wins, and the others say why they lost
    assert choice.service is not None
    assert choice.service.code == "MID"
    trace = by_service(choice)
    assert trace["MID"]["chosen"] == "cheapest meeting the promise for standard"
    assert trace["CHEAP"]["why"] == "transit up to 20 days misses the 12-day promise"
    assert trace["FAST"]["why"] == "lost on cost to MID"


def test_standard_falls_back_to_the_cheapest_when_no_service_meets_the_promise() -> None:
    # Given only services slower than 12 days
    services = [svc("SLOW1", first_500g=Decimal("4.00"), transit_max=20),
                svc("SLOW2", first_500g=Decimal("3.00"), transit_max=25)]
    # When standard is chosen
    choice = choose(services, SPEC, "standard")
    # Then the cheapest one still ships it
    assert choice.service is not None
    assert choice.service.code == "SLOW2"
    assert by_service(choice)["SLOW1"]["why"] == "transit up to 20 days misses the 12-day promise"


def test_express_chooses_the_fastest_service_whatever_it_costs() -> None:
    # Given a cheap 10-day, a 4-day and an expensive 2-day service
    services = [svc("CHEAP", first_500g=Decimal("3.00"), transit_max=10),
                svc("QUICK", first_500g=Decimal("8.00"), transit_max=4),
                svc("FASTEST", first_500g=Decimal("20.00"), transit_max=2)]
    # When express is chosen
    choice = choose(services, SPEC, "express")
    # Then the fastest wins
    assert choice.service is not None
    assert choice.service.code == "FASTEST"
    trace = by_service(choice)
    assert trace["FASTEST"]["chosen"] == "fastest for express"
    assert trace["QUICK"]["why"] == "lost on speed to FASTEST"
    assert trace["CHEAP"]["why"] == "transit up to 10 days misses the 5-day promise"


@pytest.mark.parametrize("option", ["economy", "standard", "express"])
def test_a_tie_goes_to_the_better_on_time_score(option: str) -> None:
    # Given two services equal in price and speed; the later code is more punctual
    services = [svc("AAA", on_time_score=Decimal("0.80")),
                svc("ZZZ", on_time_score=Decimal("0.97"))]
    # When a service is chosen
    choice = choose(services, SPEC, option)
    # Then the better on-time score wins
    assert choice.service is not None
    assert choice.service.code == "ZZZ"


@pytest.mark.parametrize("option", ["economy", "standard", "express"])
def test_a_full_tie_goes_to_the_first_code(option: str) -> None:
    # Given two identical services but their codes
    services = [svc("ZZZ"), svc("AAA")]
    # When a service is chosen
    choice = choose(services, SPEC, option)
    # Then the alphabetically first code wins, deterministically
    assert choice.service is not None
    assert choice.service.code == "AAA"


def test_express_tie_on_speed_goes_to_the_better_on_time_score() -> None:
    # Given two equally fast services; the punctual one is slightly dearer
    services = [svc("CHEAP", first_500g=Decimal("5.00"), on_time_score=Decimal("0.70")),
                svc("PUNCTUAL", first_500g=Decimal("5.10"), on_time_score=Decimal("0.98"))]
    # When express is chosen
    choice = choose(services, SPEC, "express")
    # Then the better on-time score breaks the speed tie
    assert choice.service is not None
    assert choice.service.code == "PUNCTUAL"


def test_chosen_cost_uses_the_chosen_services_volumetric_divisor() -> None:
    # Given a bulky light parcel (24,000,000 mm3, 1 kg) and one service with divisor 6,000
    spec = replace(SPEC, dims_mm=(400, 300, 200))
    services = [svc("A", volumetric_divisor=6_000)]
    # When a service is chosen
    choice = choose(services, spec, "standard")
    # Then its chargeable weight and cost come from its own divisor: 4,000 g, 7 steps
    assert choice.chargeable_g == 4_000
    assert choice.cost == Decimal("20.90")  # (5.00 + 7 * 2.00) * 1.10
    assert by_service(choice)["A"]["chargeable_g"] == 4_000
    assert by_service(choice)["A"]["cost"] == "20.90"


@pytest.mark.parametrize("option", ["economy", "standard", "express"])
def test_trace_lists_every_alternative_once_with_a_reason_and_exactly_one_chosen(option: str) -> None:
    # Given eligible and ineligible services
    services = [svc("NOWAY", origins=("WH-SG",)), svc("NOUS", destinations=("CA",)),
                svc("SLOW", first_500g=Decimal("2.00"), transit_max=20),
                svc("MID", first_500g=Decimal("4.00"), transit_max=8),
                svc("FAST", first_500g=Decimal("9.00"), transit_max=2)]
    # When a service is chosen
    choice = choose(services, SPEC, option)
    # Then every service appears once in the trace
    assert sorted(str(e["service"]) for e in choice.trace) == sorted(s.code for s in services)
    # And exactly one is chosen, the one returned
    assert choice.service is not None
    assert chosen_codes(choice) == [choice.service.code]
    # And every other one says why it was not chosen
    for entry in choice.trace:
        assert ("chosen" in entry) != ("why" in entry)
        assert entry["eligible"] is (entry["service"] not in ("NOWAY", "NOUS"))
    assert by_service(choice)["NOWAY"]["why"] == "does not collect from WH-LA"
    assert by_service(choice)["NOUS"]["why"] == "does not serve US"


@pytest.mark.parametrize("services", [[], [svc("NOWAY", origins=("WH-SG",))]],
                         ids=["no-services", "none-eligible"])
def test_no_eligible_service_means_no_choice_with_a_reason(services: list[CarrierService]) -> None:
    # Given no service able to take the parcel
    # When a service is chosen
    choice = choose(services, SPEC, "standard")
    # Then there is no service, cost or weight, a reason, and the trace says why each failed
    assert (choice.service, choice.cost, choice.chargeable_g) == (None, None, None)
    assert choice.reason == "no carrier service accepts this parcel"
    assert [e["eligible"] for e in choice.trace] == [False] * len(services)
    assert not chosen_codes(choice)


# --- coverage ---------------------------------------------------------------------------------

def test_coverage_lists_served_countries_and_goods_nobody_takes_there() -> None:
    # Given a service to US and CA refusing batteries and liquids, and one to US refusing batteries
    services = [svc("A", destinations=("US", "CA"), refused=("liquid", "battery")),
                svc("B", destinations=("US",), refused=("battery",)),
                svc("C", destinations=("MX",))]
    # When coverage is computed
    countries, refused = coverage(services)
    # Then every destination is listed once, sorted, with the attributes no serving service takes
    assert countries == ["CA", "MX", "US"]
    assert refused == {"CA": ["battery", "liquid"], "US": ["battery"]}


def test_coverage_of_no_services_is_empty() -> None:
    # Given no services
    # When coverage is computed
    # Then nothing is served and nothing is refused
    assert coverage([]) == ([], {})


def test_a_destination_restriction_binds_every_service_serving_it() -> None:
    # Given two services to US and AU taking powder, and AU barring powder goods
    barred = {"AU": ("powder",)}
    services = [svc("A", destinations=("US", "AU"), refused_to=barred),
                svc("B", destinations=("AU",), refused=("battery",), refused_to=barred)]
    # When coverage is computed
    countries, refused = coverage(services)
    # Then powder is refused to AU only
    assert countries == ["AU", "US"]
    assert refused == {"AU": ["powder"]}
    # And neither service may take a powder parcel there, saying why
    spec = ParcelSpec("WH-LA", "AU", 1_000, (200, 150, 100), ("powder",))
    assert ineligibility(services[0], spec) == "may not carry powder goods to AU"
    assert ineligibility(services[0], replace(spec, country="US")) is None


def test_a_parcels_tracking_number_is_derived_from_its_id() -> None:
    # Given a parcel id (a restore re-reads its `packed` and makes its shipment again)
    # When its tracking number is made twice, in any order among other parcels
    first = [tracking_number("s10:LX:DE", tracking_serial(p)) for p in ("P-a-1", "P-b-1")]
    again = [tracking_number("s10:LX:DE", tracking_serial(p)) for p in ("P-b-1", "P-a-1")]
    # Then each parcel gets the same number, a valid one, and other parcels (or the next
    # candidate of the same parcel, taken when its first is used) get others
    assert first == again[::-1]
    assert all(is_valid_s10(n) for n in first) and first[0] != first[1]
    assert tracking_serial("P-a-1", 1) != tracking_serial("P-a-1")
