"""Logistics' rules: which carrier service may take a parcel, what it costs, which one to pick
and why, and tracking numbers. Pure functions; the catalogue itself is data (migrations)."""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from decimal import ROUND_HALF_UP, Decimal
from zoneinfo import ZoneInfo

from shared.money import FxRates, Threshold, in_units

# The delivery promise of each shipping option, in days (the slowest acceptable transit).
PROMISE_DAYS = {"economy": 30, "standard": 12, "express": 5}
S10_WEIGHTS = (8, 6, 4, 2, 3, 5, 9, 7)


@dataclass(frozen=True)
class Zone:
    """One destination zone of a service's rate card, as seen from one origin warehouse."""

    code: str
    first_500g: Decimal
    per_500g: Decimal
    transit_min: int
    transit_max: int


@dataclass(frozen=True)
class CarrierService:
    code: str
    carrier: str
    origins: tuple[str, ...]          # warehouses it collects from
    destinations: tuple[str, ...]     # ISO countries
    refused: tuple[str, ...]          # product attributes it does not accept
    max_weight_g: int
    max_side_mm: int
    transit_min: int
    transit_max: int
    first_500g: Decimal
    per_500g: Decimal
    fuel_pct: Decimal
    volumetric_divisor: int           # cm3 per kg
    tracking_format: str              # 's10:<2 letters>:<country>' or 'num:<prefix>:<digits>'
    on_time_score: Decimal = Decimal("0.90")   # the carrier's prior, before any history
    # (origin warehouse, destination country) -> zone; without one the service's own rate card
    # and transit days above serve.
    zones: Mapping[tuple[str, str], Zone] = field(default_factory=dict)
    remote_surcharge: Decimal = Decimal("0")
    # Destination postal-code prefixes (upper case, no spaces) the carrier calls remote.
    remote_prefixes: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    # On-time rate per zone code, from delivery history (or analytics); overrides the prior.
    zone_scores: Mapping[str, Decimal] = field(default_factory=dict)
    stall_days: int = 10              # no scan for this long -> the watchdog calls it stalled
    # Destination country -> attributes refused there (the destination's import rules, which
    # bind every service), on top of `refused`.
    refused_to: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    def refuses(self, country: str) -> frozenset[str]:
        """What it will not carry to `country`."""
        return frozenset(self.refused) | frozenset(self.refused_to.get(country, ()))


@dataclass(frozen=True)
class ParcelSpec:
    warehouse: str
    country: str
    weight_g: int
    dims_mm: tuple[int, int, int]
    attributes: tuple[str, ...] = ()
    postal_code: str | None = None


@dataclass(frozen=True)
class Rate:
    """What one eligible service would charge for a parcel, and how fast it would be."""

    zone: str
    chargeable_g: int
    base: Decimal
    fuel: Decimal
    remote_area: Decimal
    total: Decimal
    transit_min: int
    transit_max: int
    on_time_score: Decimal


@dataclass
class Choice:
    service: CarrierService | None
    cost: Decimal | None
    chargeable_g: int | None
    trace: list[dict[str, object]] = field(default_factory=list)
    reason: str | None = None
    rate: Rate | None = None


def chargeable_weight(spec: ParcelSpec, divisor: int) -> int:
    """max(actual, volumetric); volumetric grams = cm3 / divisor * 1000 = mm3 / divisor."""
    l, w, h = spec.dims_mm  # noqa: E741
    return max(spec.weight_g, math.ceil(l * w * h / divisor))


CENT = Decimal("0.01")


def _base(first_500g: Decimal, per_500g: Decimal, chargeable_g: int) -> Decimal:
    steps = max(0, math.ceil((chargeable_g - 500) / 500))
    return first_500g + per_500g * steps


def cost(service: CarrierService, chargeable_g: int, zone: Zone | None = None) -> Decimal:
    """First 500 g plus each started 500 g step (of the zone's rate card when given), plus fuel."""
    first, per = (zone.first_500g, zone.per_500g) if zone else (service.first_500g,
                                                                 service.per_500g)
    base = _base(first, per, chargeable_g)
    return (base * (1 + service.fuel_pct / 100)).quantize(CENT, ROUND_HALF_UP)


def zone_of(service: CarrierService, spec: ParcelSpec) -> Zone | None:
    return service.zones.get((spec.warehouse, spec.country))


def normal_postcode(postal_code: str | None) -> str:
    return re.sub(r"[\s-]", "", (postal_code or "").upper())


def is_remote(service: CarrierService, spec: ParcelSpec) -> bool:
    code = normal_postcode(spec.postal_code)
    return bool(code) and any(code.startswith(p)
                              for p in service.remote_prefixes.get(spec.country, ()))


def rate(service: CarrierService, spec: ParcelSpec) -> Rate:
    """The price of an eligible service: zone rate card by chargeable weight, fuel surcharge on
    the base, then the flat remote-area surcharge (carriers publish it as a fixed amount)."""
    zone = zone_of(service, spec)
    cw = chargeable_weight(spec, service.volumetric_divisor)
    first, per = (zone.first_500g, zone.per_500g) if zone else (service.first_500g,
                                                                 service.per_500g)
    base = _base(first, per, cw).quantize(CENT, ROUND_HALF_UP)
    with_fuel = cost(service, cw, zone)
    remote = service.remote_surcharge if is_remote(service, spec) else Decimal("0")
    code = zone.code if zone else "-"
    return Rate(zone=code, chargeable_g=cw, base=base, fuel=with_fuel - base,
                remote_area=remote.quantize(CENT), total=with_fuel + remote.quantize(CENT),
                transit_min=zone.transit_min if zone else service.transit_min,
                transit_max=zone.transit_max if zone else service.transit_max,
                on_time_score=service.zone_scores.get(code, service.on_time_score))


def ineligibility(service: CarrierService, spec: ParcelSpec) -> str | None:
    if spec.warehouse not in service.origins:
        return f"does not collect from {spec.warehouse}"
    if spec.country not in service.destinations:
        return f"does not serve {spec.country}"
    refused = sorted(set(spec.attributes) & set(service.refused))
    if refused:
        return f"refuses {', '.join(refused)} goods"
    barred = sorted(set(spec.attributes) & service.refuses(spec.country))
    if barred:
        return f"may not carry {', '.join(barred)} goods to {spec.country}"
    if spec.weight_g > service.max_weight_g:
        return f"weight {spec.weight_g} g over its limit {service.max_weight_g} g"
    if max(spec.dims_mm) > service.max_side_mm:
        return f"longest side {max(spec.dims_mm)} mm over its limit {service.max_side_mm} mm"
    return None


def choose(services: Sequence[CarrierService], spec: ParcelSpec, option: str) -> Choice:
    """economy -> cheapest; standard -> cheapest that meets the promise; express -> fastest.
    Ties go to the better on-time score (then, for express, the cheaper), then the code. Every
    alternative is kept in the trace with why it lost. Speed and price are the destination
    zone's, the remote-area surcharge included, and the score is the service's in that zone."""
    trace: list[dict[str, object]] = []
    eligible: list[tuple[CarrierService, Rate]] = []
    for s in sorted(services, key=lambda s: s.code):
        why = ineligibility(s, spec)
        if why:
            trace.append({"service": s.code, "eligible": False, "why": why})
            continue
        eligible.append((s, rate(s, spec)))
    if not eligible:
        return Choice(None, None, None, trace, "no carrier service accepts this parcel")
    promise = PROMISE_DAYS.get(option, PROMISE_DAYS["standard"])
    if option == "express":
        ranked = sorted(eligible, key=lambda e: (e[1].transit_max, -e[1].on_time_score,
                                                 e[1].total, e[0].code))
        rule = "fastest"
    else:
        meeting = [e for e in eligible if e[1].transit_max <= promise] or eligible
        ranked = sorted(meeting, key=lambda e: (e[1].total, -e[1].on_time_score, e[0].code))
        ranked += [e for e in eligible if e not in meeting]
        rule = "cheapest meeting the promise" if option == "standard" else "cheapest"
    best, best_rate = ranked[0]
    for s, r in ranked:
        entry: dict[str, object] = {
            "service": s.code, "carrier": s.carrier, "eligible": True, "zone": r.zone,
            "cost": str(r.total), "chargeable_g": r.chargeable_g,
            "surcharges": {"fuel": str(r.fuel), "remote_area": str(r.remote_area)},
            "transit_days": [r.transit_min, r.transit_max],
            "on_time_score": str(r.on_time_score)}
        if s is best:
            entry["chosen"] = f"{rule} for {option}"
        elif r.transit_max > promise:
            entry["why"] = f"transit up to {r.transit_max} days misses the {promise}-day promise"
        else:
            lost_on = "cost"
            if option == "express":
                lost_on = "speed" if r.transit_max > best_rate.transit_max else "on-time score"
            elif r.total == best_rate.total:
                lost_on = "on-time score"
            entry["why"] = f"lost on {lost_on} to {best.code}"
        trace.append(entry)
    return Choice(best, best_rate.total, best_rate.chargeable_g, trace, rate=best_rate)


def s10_check_digit(serial: str) -> int:
    """UPU S10 mod-11 check digit of an 8-digit serial."""
    if len(serial) != 8 or not serial.isdigit():
        raise ValueError("S10 serial must be 8 digits")
    total = sum(int(d) * w for d, w in zip(serial, S10_WEIGHTS, strict=True))
    check = 11 - total % 11
    return {10: 0, 11: 5}.get(check, check)


def tracking_serial(seed: str, attempt: int = 0) -> int:
    """A parcel's tracking serial, derived from what it is (its parcel id; a return label's
    request id) and not drawn from a sequence: handling the same parcel again, after a restore
    or in another order than the first time, gives it the same number. `attempt` > 0 are the
    next candidates when a number is taken (see `store.free_tracking_number`)."""
    digest = hashlib.sha256(f"{seed}#{attempt}".encode()).digest()
    return int.from_bytes(digest[:8], "big")


def tracking_number(fmt: str, sequence: int) -> str:
    kind, prefix, rest = fmt.split(":")
    if kind == "s10":
        serial = f"{sequence % 10**8:08d}"
        return f"{prefix}{serial}{s10_check_digit(serial)}{rest}"
    digits = int(rest)
    return f"{prefix}{sequence % 10**digits:0{digits}d}"


def is_valid_s10(number: str) -> bool:
    if len(number) != 13 or not number[:2].isalpha() or not number[11:].isalpha():
        return False
    serial, check = number[2:10], number[10]
    return serial.isdigit() and check.isdigit() and s10_check_digit(serial) == int(check)


def coverage(services: Sequence[CarrierService]) -> tuple[list[str], dict[str, list[str]]]:
    """Countries served, and per country the attributes that no serving service accepts."""
    countries = sorted({c for s in services for c in s.destinations})
    refused: dict[str, list[str]] = {}
    for c in countries:
        serving = [s for s in services if c in s.destinations]
        common = set.intersection(*(set(s.refuses(c)) for s in serving))
        if common:
            refused[c] = sorted(common)
    return countries, refused


# --- customs ----------------------------------------------------------------------------------

# One customs territory: no declaration between these (the local stack's EU members and more).
EU = frozenset({"AT", "BE", "BG", "CY", "CZ", "DE", "DK", "EE", "ES", "FI", "FR", "GR", "HR",
                "HU", "IE", "IT", "LT", "LU", "LV", "MT", "NL", "PL", "PT", "RO", "SE", "SI",
                "SK"})
# UPU: CN22 up to 300 SDR of contents, CN23 above: held as 400 USD, and a declaration in another
# currency is converted at the rate logistics knows (fx.rates). Without a rate the parcel gets a
# CN23, which is accepted for any value.
CN22_LIMIT = Threshold(Decimal("400.00"), "USD")
HS_CODE = re.compile(r"^\d{6}(\d{2}){0,2}$")  # HS6 at least; national 8 or 10 digits


def customs_territory(country: str) -> str:
    return "EU" if country in EU else country


def needs_customs(origin_country: str, destination: str) -> bool:
    return customs_territory(origin_country) != customs_territory(destination)


def normal_hs_code(code: str | None) -> str | None:
    digits = re.sub(r"[\s.]", "", code or "")
    return digits if HS_CODE.match(digits) else None


@dataclass(frozen=True)
class Product:
    sku: str
    name: str
    hs_code: str | None
    origin_country: str | None
    weight_g: int


@dataclass(frozen=True)
class Declaration:
    """CN22/CN23 data: one line per SKU (description, HS code, origin, quantity, value, net
    weight), the total, and what is missing. Incomplete -> the parcel is held before dispatch."""

    form: str
    currency: str
    lines: list[dict[str, object]]
    total_value: Decimal
    missing: list[str]
    # The seller's EU import one-stop-shop number: VAT was collected at the sale, so EU customs
    # releases the parcel without charging the buyer. Only on parcels into the EU.
    ioss_number: str | None = None

    @property
    def complete(self) -> bool:
        return not self.missing

    def as_dict(self) -> dict[str, object]:
        out: dict[str, object] = {
            "form": self.form, "currency": self.currency, "lines": self.lines,
            "total_value": str(self.total_value), "missing": self.missing,
            "category": "sale_of_goods"}
        if self.ioss_number:
            out["ioss_number"] = self.ioss_number
        return out


def ioss_for(destination: str, ioss_number: str | None) -> str | None:
    """The order's IOSS number when the parcel enters the EU; elsewhere it means nothing."""
    return ioss_number if ioss_number and customs_territory(destination) == "EU" else None


def declaration(lines: Sequence[tuple[str, int]], products: Mapping[str, Product],
                unit_values: Mapping[str, Decimal], currency: str,
                fx: FxRates | None = None, ioss_number: str | None = None) -> Declaration:
    out: list[dict[str, object]] = []
    missing: list[str] = []
    total = Decimal("0")
    for sku, qty in lines:
        p = products.get(sku)
        value = in_units(unit_values.get(sku, Decimal("0")) * qty, currency)
        total += value
        hs = normal_hs_code(p.hs_code) if p else None
        if p is None:
            missing.append(f"{sku}: product data not received")
        else:
            if hs is None:
                missing.append(f"{sku}: no valid HS code" + (f" ({p.hs_code!r})" if p.hs_code
                                                             else ""))
            if not p.origin_country:
                missing.append(f"{sku}: no origin country")
        out.append({"sku": sku, "description": p.name if p else None, "hs_code": hs,
                    "origin_country": p.origin_country if p else None, "quantity": qty,
                    "value": str(value), "net_weight_g": p.weight_g * qty if p else None})
    in_limit = (fx or FxRates()).convert(total, currency, CN22_LIMIT.currency)
    form = "CN22" if in_limit is not None and in_limit.amount <= CN22_LIMIT.amount else "CN23"
    return Declaration(form, currency, out, total, missing, ioss_number)


# --- final check before dispatch --------------------------------------------------------------

WEIGHT_TOLERANCE_G = 50
WEIGHT_TOLERANCE_PCT = Decimal("5")
REQUIRED_ADDRESS = ("name", "line1", "city", "postal_code", "country")


def weight_tolerance(label_weight_g: int) -> int:
    """max(50 g, 5 %): a scale's error and packing tape on light parcels, a percentage on heavy."""
    return max(WEIGHT_TOLERANCE_G, math.ceil(label_weight_g * WEIGHT_TOLERANCE_PCT / 100))


def dispatch_problems(label_weight_g: int, measured_weight_g: int,
                      address: Mapping[str, object], customs: Declaration | None
                      ) -> list[tuple[str, str]]:
    """What stops a parcel at the dock, as (reason code, message); empty -> hand it over."""
    problems: list[tuple[str, str]] = []
    if abs(measured_weight_g - label_weight_g) > weight_tolerance(label_weight_g):
        problems.append(("weight_mismatch", f"measured {measured_weight_g} g, label says "
                         f"{label_weight_g} g (tolerance {weight_tolerance(label_weight_g)} g)"))
    blank = [f for f in REQUIRED_ADDRESS if not str(address.get(f) or "").strip()]
    if blank:
        problems.append(("incomplete_address", "address lacks " + ", ".join(blank)))
    if customs is not None and not customs.complete:
        problems.append(("customs_incomplete", "; ".join(customs.missing)))
    return problems


# --- tracking: watchdog and carrier score -----------------------------------------------------

TERMINAL = frozenset({"delivered", "lost", "returned_to_sender"})


def supersedes(occurred_at: datetime, last_event_at: datetime | None) -> bool:
    """A scan changes a parcel's state only if the carrier made it after the newest one we
    know: scans arrive late and out of order, the carrier's clock orders them. An equal time is
    not newer (a re-sent scan with a new event id changes nothing)."""
    return last_event_at is None or occurred_at > last_event_at


def current_status(scans: Sequence[tuple[datetime, str]], initial: str = "shipped") -> str:
    """The state after scans in arrival order: what the tracking handler arrives at, one by
    one."""
    status, last = initial, None
    for occurred_at, scan in scans:
        if supersedes(occurred_at, last):
            status, last = scan, occurred_at
    return status


def is_stalled(status: str, last_scan: datetime, stall_days: int, now: datetime) -> bool:
    return status not in TERMINAL and now - last_scan > timedelta(days=stall_days)


def on_time(shipped_at: datetime, delivered_at: datetime, transit_max_days: int) -> bool:
    """Against the promise made when choosing: the zone's maximum transit days, whole days."""
    return (delivered_at - shipped_at) <= timedelta(days=transit_max_days)


SCORE_PRIOR_WEIGHT = 10


def smoothed_score(on_time_count: int, delivered: int, prior: Decimal) -> Decimal:
    """On-time rate pulled towards the carrier's prior until there is history enough: a service
    with two deliveries, both on time, should not outrank one with 0.95 over thousands."""
    rate = (Decimal(on_time_count) + prior * SCORE_PRIOR_WEIGHT) / (delivered + SCORE_PRIOR_WEIGHT)
    return rate.quantize(Decimal("0.001"), ROUND_HALF_UP)


# --- ship dates: the warehouse's time zone, cut-off and working days ---------------------------

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def ships_on(now: datetime, timezone: str, cutoff: str, working_days: Sequence[str]
             ) -> date | None:
    """The day a parcel packed now leaves the warehouse: today (the warehouse's local date) when
    today is a working day and it is before the local cut-off ("HH:MM"), else the next working
    day. None when the warehouse has no working day at all."""
    local = now.astimezone(ZoneInfo(timezone))
    hours, minutes = (int(x) for x in cutoff.split(":"))
    day = local.date()
    if local.time() >= time(hours, minutes):
        day += timedelta(days=1)
    for _ in range(7):
        if WEEKDAYS[day.weekday()] in working_days:
            return day
        day += timedelta(days=1)
    return None


def estimated_delivery(ship_day: date, transit_min: int, transit_max: int) -> tuple[date, date]:
    """Earliest and latest delivery: the ship day plus the transit days (calendar days, as the
    on-time check counts them)."""
    return ship_day + timedelta(days=transit_min), ship_day + timedelta(days=transit_max)
