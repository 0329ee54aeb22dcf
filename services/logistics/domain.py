"""Logistics' rules: which carrier service may take a parcel, what it costs, which one to pick
and why, and tracking numbers. Pure functions; the catalogue itself is data (migrations)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal

# The delivery promise of each shipping option, in days (the slowest acceptable transit).
PROMISE_DAYS = {"economy": 30, "standard": 12, "express": 5}
S10_WEIGHTS = (8, 6, 4, 2, 3, 5, 9, 7)


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
    on_time_score: Decimal = Decimal("0.90")


@dataclass(frozen=True)
class ParcelSpec:
    warehouse: str
    country: str
    weight_g: int
    dims_mm: tuple[int, int, int]
    attributes: tuple[str, ...] = ()


@dataclass
class Choice:
    service: CarrierService | None
    cost: Decimal | None
    chargeable_g: int | None
    trace: list[dict[str, object]] = field(default_factory=list)
    reason: str | None = None


def chargeable_weight(spec: ParcelSpec, divisor: int) -> int:
    """max(actual, volumetric); volumetric grams = cm3 / divisor * 1000 = mm3 / divisor."""
    l, w, h = spec.dims_mm  # noqa: E741
    return max(spec.weight_g, math.ceil(l * w * h / divisor))


def cost(service: CarrierService, chargeable_g: int) -> Decimal:
    steps = max(0, math.ceil((chargeable_g - 500) / 500))
    base = service.first_500g + service.per_500g * steps
    return (base * (1 + service.fuel_pct / 100)).quantize(Decimal("0.01"), ROUND_HALF_UP)


def ineligibility(service: CarrierService, spec: ParcelSpec) -> str | None:
    if spec.warehouse not in service.origins:
        return f"does not collect from {spec.warehouse}"
    if spec.country not in service.destinations:
        return f"does not serve {spec.country}"
    refused = sorted(set(spec.attributes) & set(service.refused))
    if refused:
        return f"refuses {', '.join(refused)} goods"
    if spec.weight_g > service.max_weight_g:
        return f"weight {spec.weight_g} g over its limit {service.max_weight_g} g"
    if max(spec.dims_mm) > service.max_side_mm:
        return f"longest side {max(spec.dims_mm)} mm over its limit {service.max_side_mm} mm"
    return None


def choose(services: Sequence[CarrierService], spec: ParcelSpec, option: str) -> Choice:
    """economy -> cheapest; standard -> cheapest that meets the promise; express -> fastest.
    Ties go to the better on-time score (then, for express, the cheaper), then the code. Every
    alternative is kept in the trace with why it lost."""
    trace: list[dict[str, object]] = []
    eligible: list[tuple[CarrierService, Decimal, int]] = []
    for s in sorted(services, key=lambda s: s.code):
        why = ineligibility(s, spec)
        if why:
            trace.append({"service": s.code, "eligible": False, "why": why})
            continue
        cw = chargeable_weight(spec, s.volumetric_divisor)
        eligible.append((s, cost(s, cw), cw))
    if not eligible:
        return Choice(None, None, None, trace, "no carrier service accepts this parcel")
    promise = PROMISE_DAYS.get(option, PROMISE_DAYS["standard"])
    if option == "express":
        ranked = sorted(eligible, key=lambda e: (e[0].transit_max, -e[0].on_time_score, e[1],
                                                 e[0].code))
        rule = "fastest"
    else:
        meeting = [e for e in eligible if e[0].transit_max <= promise] or eligible
        ranked = sorted(meeting, key=lambda e: (e[1], -e[0].on_time_score, e[0].code))
        ranked += [e for e in eligible if e not in meeting]
        rule = "cheapest meeting the promise" if option == "standard" else "cheapest"
    best = ranked[0]
    for s, c, cw in ranked:
        entry: dict[str, object] = {"service": s.code, "eligible": True, "cost": str(c),
                                    "chargeable_g": cw, "transit_days": [s.transit_min,
                                                                         s.transit_max]}
        if s is best[0]:
            entry["chosen"] = f"{rule} for {option}"
        elif s.transit_max > promise:
            entry["why"] = f"transit up to {s.transit_max} days misses the {promise}-day promise"
        else:
            lost_on = "cost"
            if option == "express":
                lost_on = "speed" if s.transit_max > best[0].transit_max else "on-time score"
            entry["why"] = f"lost on {lost_on} to {best[0].code}"
        trace.append(entry)
    return Choice(best[0], best[1], best[2], trace)


def s10_check_digit(serial: str) -> int:
    """UPU S10 mod-11 check digit of an 8-digit serial."""
    if len(serial) != 8 or not serial.isdigit():
        raise ValueError("S10 serial must be 8 digits")
    total = sum(int(d) * w for d, w in zip(serial, S10_WEIGHTS, strict=True))
    check = 11 - total % 11
    return {10: 0, 11: 5}.get(check, check)


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
        common = set.intersection(*(set(s.refused) for s in serving))
        if common:
            refused[c] = sorted(common)
    return countries, refused
