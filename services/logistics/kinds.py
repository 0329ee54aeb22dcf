"""Logistics' setup (shared/setup.py, docs/logistics.md "Setup"): the shipping catalogue as data
an operator changes over the API (or `shopkeeper setup import`), audited and published on
`setup.changed`.

    carriers          key carrier code (USPS)        who carries: its name
    carrier_services  key service code (USPS-GA)     one row of `services`: where it collects and
                                                     delivers, what it refuses, limits, base
                                                     rates, transit days, tracking format, ...
    zones             key origin warehouse (WH-LA)   the origin's zone chart: {country: zone}
    rate_cards        key service code (USPS-GA)     the service's rates and transit days per zone
                                                     (`zone_rates`), and its own zones when it
                                                     does not follow the charts (`service_zones`)

Warehouses are inventory's: logistics keeps a copy (handlers.warehouses_changed) and an entry
naming a warehouse the copy lacks is refused with 409 `setup_dependency`.

Prices are "zone x weight" as the quoting code (domain.rate) computes them: per zone, the first
500 g and each started 500 g step after it, then the service's fuel surcharge. A list of weight
bands per zone would need a new pricing rule in domain.py and a new table; the cards keep the
shape the code prices with."""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Annotated, Any

from fastapi import HTTPException
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    RootModel,
    field_validator,
    model_validator,
)

from shared.contracts.public import Attribute
from shared.setup import Conn, Kind, SetupInvalid
from shared.uow import UnitOfWork

from . import domain, store
from .handlers import publish_coverage_in

Country = Annotated[str, Field(pattern=r"^[A-Z]{2}$", description="ISO 3166-1 alpha-2")]
WarehouseCode = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")]
# Zones are names: `1` written unquoted in a YAML file is the zone "1".
ZoneCode = Annotated[str, BeforeValidator(lambda v: str(v) if isinstance(v, int) else v),
                     Field(pattern=r"^[A-Za-z0-9]{1,8}$",
                           description="a zone of the charts: D (domestic), 1 to 5, ...")]
Price = Annotated[Decimal, Field(ge=0, max_digits=10, decimal_places=2)]
Days = Annotated[int, Field(ge=0, le=365)]
STRICT = ConfigDict(extra="forbid")


class _TransitRange(BaseModel):
    """An entry with `transit_min` and `transit_max` days (a service, a zone's rate)."""

    @model_validator(mode="after")
    def _transit(self) -> _TransitRange:
        low, high = getattr(self, "transit_min"), getattr(self, "transit_max")  # noqa: B009
        if low > high:
            raise ValueError(f"transit_min ({low}) is above transit_max ({high})")
        return self


def _sorted_unique(values: list[str]) -> list[str]:
    """Sets kept as sorted lists: the order in a file never counts as a change."""
    return sorted(set(values))


# --- carriers ----------------------------------------------------------------------------------
class Carrier(BaseModel):
    """A carrier. Its on-time score is learnt from delivery history and analytics' carrier
    scores: not setup (a new carrier starts at the table's default, 0.900; a save keeps it)."""

    model_config = STRICT
    name: str = Field(min_length=1, max_length=200, description="the carrier's name on labels")


async def load_carriers(conn: Conn) -> dict[str, dict[str, Any]]:
    return {r["code"]: {"name": r["name"]}
            for r in await conn.fetch("SELECT code, name FROM carriers ORDER BY code")}


async def save_carrier(uow: UnitOfWork, code: str, entry: Carrier) -> None:
    await uow.conn.execute(
        "INSERT INTO carriers (code, name) VALUES ($1, $2)"
        " ON CONFLICT (code) DO UPDATE SET name = EXCLUDED.name", code, entry.name)
    store.catalogue_changed(uow)


async def delete_carrier(uow: UnitOfWork, code: str) -> None:
    """Only a carrier no service names (a typo, one never used): services are never deleted,
    so a carrier with services stays. Its remote-area postcodes go with it."""
    users = [r["code"] for r in await uow.conn.fetch(
        "SELECT code FROM services WHERE carrier = $1 ORDER BY code", code)]
    if users:
        raise HTTPException(409, {
            "reason": "setup_conflict", "at": f"carriers.{code}",
            "message": f"carrier {code} is used by carrier services {', '.join(users)}: a carrier"
                       " with services is kept (deactivate the services with `active: false`)"})
    await uow.conn.execute("DELETE FROM remote_areas WHERE carrier = $1", code)
    await uow.conn.execute("DELETE FROM carriers WHERE code = $1", code)
    store.catalogue_changed(uow)


# --- carrier services --------------------------------------------------------------------------
TRACKING_FORMAT = re.compile(r"^(s10:[A-Z]{2}:[A-Z]{2}|num:[A-Z0-9]{0,10}:[1-9][0-9]?)$")


class CarrierServiceEntry(_TransitRange):
    """One carrier service: the `services` table's configurable columns."""

    model_config = STRICT
    carrier: str = Field(min_length=1, max_length=64, description="a key of `carriers`")
    name: str = Field(min_length=1, max_length=200, examples=["Ground Advantage"])
    origins: list[WarehouseCode] = Field(min_length=1, description="warehouses it collects from")
    destinations: list[Country] = Field(min_length=1, description="countries it delivers to")
    refused: list[Attribute] = Field(default=[], description="product attributes it refuses")
    max_weight_g: int = Field(gt=0, le=1_000_000, description="heaviest parcel, grams")
    max_side_mm: int = Field(gt=0, le=10_000, description="longest side, mm")
    transit_min: Days = Field(description="transit days where no zone rate says otherwise")
    transit_max: Days
    first_500g: Price = Field(description="base rate of the first 500 g where no zone rate"
                                          " applies (the rate cards' zones usually do)")
    per_500g: Price = Field(description="base rate of each further started 500 g")
    fuel_pct: Decimal = Field(ge=0, le=100, max_digits=5, decimal_places=2,
                              description="fuel surcharge, % of the base rate")
    volumetric_divisor: int = Field(gt=0, le=100_000,
                                    description="cm3 per kg for the volumetric weight")
    tracking_format: str = Field(description="'s10:<2 letters>:<country>' (UPU S10, e.g."
                                             " s10:LX:CN) or 'num:<prefix>:<digits>' (e.g."
                                             " num:1Z:16)")
    remote_surcharge: Price = Field(description="flat fee to the carrier's remote postcodes")
    stall_days: int = Field(ge=1, le=365, description="days without a scan before the watchdog"
                                                      " calls a parcel stalled")
    currency: str = Field(pattern=r"^[A-Z]{3}$", description="currency of its rates")
    active: bool = Field(description="false: no longer offered (services are never deleted)")

    @field_validator("origins", "destinations", "refused")
    @classmethod
    def _sets(cls, values: list[str]) -> list[str]:
        return _sorted_unique(values)

    @field_validator("tracking_format")
    @classmethod
    def _tracking(cls, fmt: str) -> str:
        """As label/tracking code parses it (domain.tracking_number)."""
        if not TRACKING_FORMAT.match(fmt):
            raise ValueError("a tracking format is 's10:<2 capital letters>:<2-letter country>'"
                             " or 'num:<up to 10 capitals or digits>:<1 to 99 digits>'")
        sample = domain.tracking_number(fmt, 12345678)
        if fmt.startswith("s10:") and not domain.is_valid_s10(sample):
            raise ValueError(f"gives {sample}, not a valid S10 number")
        return fmt



SERVICE_COLUMNS = ("carrier", "name", "origins", "destinations", "refused", "max_weight_g",
                   "max_side_mm", "transit_min", "transit_max", "first_500g", "per_500g",
                   "fuel_pct", "volumetric_divisor", "tracking_format", "remote_surcharge",
                   "stall_days", "currency", "active")


async def load_services(conn: Conn) -> dict[str, dict[str, Any]]:
    rows = await conn.fetch(f"SELECT code, {', '.join(SERVICE_COLUMNS)} FROM services"
                            " ORDER BY code")
    return {r["code"]: {c: r[c] for c in SERVICE_COLUMNS} for r in rows}


async def check_services(conn: Conn, after: dict[str, Any], named: set[str],
                         request: dict[str, dict[str, Any]]) -> list[dict[str, str]]:
    """Each service's carrier exists, or the same request creates it (plans check it too)."""
    carriers = {r["code"] for r in await conn.fetch("SELECT code FROM carriers")}
    carriers |= set(request.get("carriers", {}))
    return [{"at": f"carrier_services.{code}.carrier",
             "error": f"no carrier {after[code].carrier!r} in carriers: add it there first (the"
                      " same file may, in its carriers section)"}
            for code in sorted(named) if after[code].carrier not in carriers]


async def save_service(uow: UnitOfWork, code: str, entry: CarrierServiceEntry) -> None:
    await known_warehouses(uow.conn, f"carrier_services.{code}.origins", entry.origins)
    values = [getattr(entry, c) for c in SERVICE_COLUMNS]
    await uow.conn.execute(
        f"INSERT INTO services (code, {', '.join(SERVICE_COLUMNS)}) VALUES ($1, "
        + ", ".join(f"${i + 2}" for i in range(len(SERVICE_COLUMNS))) + ")"
        " ON CONFLICT (code) DO UPDATE SET "
        + ", ".join(f"{c} = EXCLUDED.{c}" for c in SERVICE_COLUMNS), code, *values)
    await derive_service_zones(uow)


async def services_changed(uow: UnitOfWork, keys: list[str]) -> None:
    """Where and what can be shipped may have changed: intake hears the coverage again (it
    rejects unsupported countries and holds restricted goods by it)."""
    await publish_coverage_in(uow)


# --- zone charts -------------------------------------------------------------------------------
class ZoneChart(RootModel[Annotated[dict[Country, ZoneCode], Field(min_length=1)]]):
    """The zone chart of one origin warehouse: destination country -> zone (D domestic, then 1
    nearest to 5 farthest). Services collecting there use it unless their rate card has its own
    zones."""


async def load_zones(conn: Conn) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for r in await conn.fetch("SELECT origin, country, zone FROM zone_chart"
                              " ORDER BY origin, country"):
        out.setdefault(r["origin"], {})[r["country"]] = r["zone"]
    return out


async def save_zones(uow: UnitOfWork, origin: str, entry: ZoneChart) -> None:
    await known_warehouses(uow.conn, f"zones.{origin}", [origin])
    await uow.conn.execute("DELETE FROM zone_chart WHERE origin = $1", origin)
    await uow.conn.executemany(
        "INSERT INTO zone_chart (origin, country, zone) VALUES ($1, $2, $3)",
        [(origin, c, z) for c, z in sorted(entry.root.items())])
    await derive_service_zones(uow)


async def delete_zones(uow: UnitOfWork, origin: str) -> None:
    """Only a chart no service uses: a service collecting at the origin that follows the charts
    would lose its zones (and price every parcel at its base rate)."""
    users = [r["code"] for r in await uow.conn.fetch(
        "SELECT code FROM services WHERE $1 = ANY (origins) AND NOT own_zones ORDER BY code",
        origin)]
    if users:
        raise HTTPException(409, {
            "reason": "setup_conflict", "at": f"zones.{origin}",
            "message": f"the zone chart of {origin} is used by carrier services"
                       f" {', '.join(users)}: take {origin} out of their origins (or give their"
                       " rate cards their own zones) first"})
    await uow.conn.execute("DELETE FROM zone_chart WHERE origin = $1", origin)
    await derive_service_zones(uow)


# --- rate cards --------------------------------------------------------------------------------
class ZoneRate(_TransitRange):
    """The price and transit days of one zone: first 500 g, then each started 500 g step; the
    service's fuel surcharge is added on top."""

    model_config = STRICT
    first_500g: Price
    per_500g: Price
    transit_min: Days
    transit_max: Days



class RateCard(BaseModel):
    """A carrier service's rate card: per destination zone, the price by weight and the transit
    days. A parcel to a zone without a rate here is priced at the service's own first_500g and
    per_500g (carrier_services) with its transit days."""

    model_config = STRICT
    rates: dict[ZoneCode, ZoneRate] = Field(description="zone -> price and transit days")
    zones: dict[WarehouseCode, dict[Country, ZoneCode]] | None = Field(
        default=None, description="null: the zone charts (section zones) of the service's origins"
                                  " for the countries it serves; given: this service's own zones,"
                                  " origin -> {country: zone} (a carrier's own zoning)")


async def load_rate_cards(conn: Conn) -> dict[str, dict[str, Any]]:
    cards: dict[str, dict[str, Any]] = {
        r["code"]: {"rates": {}, "zones": {} if r["own_zones"] else None}
        for r in await conn.fetch("SELECT code, own_zones FROM services")}
    for r in await conn.fetch("SELECT * FROM zone_rates ORDER BY service, zone"):
        cards[r["service"]]["rates"][r["zone"]] = {
            k: r[k] for k in ("first_500g", "per_500g", "transit_min", "transit_max")}
    for r in await conn.fetch("SELECT sz.* FROM service_zones sz JOIN services s"
                              " ON s.code = sz.service WHERE s.own_zones"
                              " ORDER BY service, origin, country"):
        cards[r["service"]]["zones"].setdefault(r["origin"], {})[r["country"]] = r["zone"]
    return cards


async def save_rate_card(uow: UnitOfWork, code: str, entry: RateCard) -> None:
    conn = uow.conn
    service = await conn.fetchrow("SELECT origins, destinations FROM services WHERE code = $1",
                                  code)
    if service is None:
        raise SetupInvalid([{"at": f"rate_cards.{code}",
                             "error": f"no carrier service {code!r}: add it under"
                                      " carrier_services first (the same file may)"}])
    if entry.zones is not None:
        problems = []
        await known_warehouses(conn, f"rate_cards.{code}.zones", list(entry.zones))
        for origin, chart in sorted(entry.zones.items()):
            if origin not in service["origins"]:
                problems.append({"at": f"rate_cards.{code}.zones.{origin}",
                                 "error": f"{code} does not collect from {origin} (its origins:"
                                          f" {', '.join(service['origins'])})"})
            for country, zone in sorted(chart.items()):
                if country not in service["destinations"]:
                    problems.append({"at": f"rate_cards.{code}.zones.{origin}.{country}",
                                     "error": f"{code} does not deliver to {country}: add it to"
                                              " its destinations first"})
                if zone not in entry.rates:
                    problems.append({"at": f"rate_cards.{code}.zones.{origin}.{country}",
                                     "error": f"zone {zone} has no rate in rates"})
        if problems:
            raise SetupInvalid(problems)
    await conn.execute("DELETE FROM zone_rates WHERE service = $1", code)
    await conn.executemany(
        "INSERT INTO zone_rates (service, zone, first_500g, per_500g, transit_min, transit_max)"
        " VALUES ($1, $2, $3, $4, $5, $6)",
        [(code, z, r.first_500g, r.per_500g, r.transit_min, r.transit_max)
         for z, r in sorted(entry.rates.items())])
    await conn.execute("UPDATE services SET own_zones = $2 WHERE code = $1", code,
                       entry.zones is not None)
    if entry.zones is not None:
        await conn.execute("DELETE FROM service_zones WHERE service = $1", code)
        await conn.executemany(
            "INSERT INTO service_zones (service, origin, country, zone) VALUES ($1, $2, $3, $4)",
            [(code, o, c, z) for o, chart in sorted(entry.zones.items())
             for c, z in sorted(chart.items())])
    await derive_service_zones(uow)


# --- shared by the kinds -----------------------------------------------------------------------
async def derive_service_zones(uow: UnitOfWork) -> None:
    """The destination zones of every service that follows the charts, made again from the
    charts of its origins for the countries it serves (as migration 0002 made them): after a
    chart, a service's origins or destinations, or a rate card changed. The catalogue memo is
    forgotten. Two setup requests re-make them one after the other (a transaction-scoped lock),
    never interleaved."""
    await uow.conn.execute("SELECT pg_advisory_xact_lock(hashtext('logistics.service_zones'))")
    await uow.conn.execute(
        "DELETE FROM service_zones sz USING services s WHERE sz.service = s.code"
        " AND NOT s.own_zones")
    await uow.conn.execute(
        "INSERT INTO service_zones (service, origin, country, zone)"
        " SELECT s.code, z.origin, z.country, z.zone FROM services s JOIN zone_chart z"
        " ON z.origin = ANY (s.origins) AND z.country = ANY (s.destinations)"
        " WHERE NOT s.own_zones")
    store.catalogue_changed(uow)


async def known_warehouses(conn: Conn, at: str, codes: list[str]) -> None:
    """Warehouses are inventory's: logistics knows those its copy has (from setup.changed)."""
    known = {r["code"] for r in await conn.fetch(
        "SELECT code FROM warehouses WHERE code = ANY ($1::text[])", codes)}
    for code in codes:
        if code not in known:
            raise HTTPException(409, {
                "reason": "setup_dependency", "at": at,
                "message": f"warehouse {code} is not known to logistics yet: create it in"
                           " inventory first; logistics learns it from setup.changed within"
                           " seconds"})


# The owner's order: carriers before the services naming them, services before their cards.
KINDS = [
    Kind("carriers", Carrier, load_carriers, save_carrier, delete=delete_carrier,
         doc="Carriers by code: their name. Deleted only while no carrier service names them."),
    Kind("carrier_services", CarrierServiceEntry, load_services, save_service,
         changed=services_changed, check=check_services,
         doc="Carrier services by code (never deleted: `active: false`); a change publishes"
             " logistics.coverage_changed."),
    Kind("zones", ZoneChart, load_zones, save_zones, delete=delete_zones,
         doc="Zone chart of each origin warehouse: country -> zone."),
    Kind("rate_cards", RateCard, load_rate_cards, save_rate_card,
         doc="Per carrier service: price (first 500 g + each 500 g) and transit days per zone,"
             " and its own zones when it does not follow the charts."),
]
