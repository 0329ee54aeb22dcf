"""Logistics' setup kinds (services/logistics/kinds.py) on Postgres alone: every kind's export
applied back changes nothing, saves change what quoting reads, references are checked, and the
copy of inventory's warehouses follows setup.changed."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from fastapi import HTTPException

from services.logistics import domain, handlers, kinds, store
from shared import setup, topics
from shared.contracts import SetupChanged
from shared.uow import UnitOfWork

NEW_SERVICE = {
    "carrier": "ACME", "name": "Acme Saver", "origins": ["WH-LA"], "destinations": ["US", "NZ"],
    "refused": ["battery"], "max_weight_g": 10000, "max_side_mm": 800, "transit_min": 3,
    "transit_max": 6, "first_500g": "4.00", "per_500g": "1.00", "fuel_pct": "0",
    "volumetric_divisor": 5000, "tracking_format": "num:AC:12", "remote_surcharge": "0",
    "stall_days": 7, "currency": "USD", "active": True}
SPEC = domain.ParcelSpec("WH-LA", "US", 1200, (200, 150, 100))


async def apply(db: Any, sections: dict[str, Any], dry_run: bool = False) -> dict[str, Any]:
    async with UnitOfWork.begin(db.pool, "logistics") as uow:
        return await setup.apply(uow, kinds.KINDS, sections, changed_by="test", dry_run=dry_run)


async def export(db: Any) -> dict[str, dict[str, Any]]:
    async with db.pool.acquire() as conn:
        return {k.section: {key: e.model_dump(mode="json")
                            for key, e in (await setup.current(conn, k)).items()}
                for k in kinds.KINDS}


async def acme(db: Any) -> None:
    await apply(db, {"carriers": {"ACME": {"name": "Acme Parcels"}},
                     "carrier_services": {"ACME-SAVER": NEW_SERVICE}})


def quoted(services: list[domain.CarrierService], code: str) -> dict[str, Any]:
    trace = domain.choose(services, SPEC, "economy").trace
    return next(t for t in trace if t["service"] == code)


async def test_each_kind_exported_and_applied_back_is_unchanged(service_db: Any) -> None:
    """Given the seeded catalogue, when its export is planned and applied back, then nothing
    changes, nothing is audited or published, and service_zones are as the migration made."""
    async with service_db("logistics") as db:
        zones_before = await db.pool.fetch("SELECT * FROM service_zones ORDER BY 1, 2, 3")
        exported = await export(db)
        assert exported["carriers"]["USPS"] == {"name": "United States Postal Service"}
        assert exported["carrier_services"]["USPS-GA"]["tracking_format"] == "num:9400:18"
        assert exported["zones"]["WH-LA"]["US"] == "D"
        assert exported["rate_cards"]["USPS-GA"] == {
            "rates": {"D": {"first_500g": "3.85", "per_500g": "0.84", "transit_min": 2,
                            "transit_max": 3}}, "zones": None}
        for section, entries in exported.items():
            plan = await apply(db, {section: entries}, dry_run=True)
            assert plan["changes"] == [], section
            assert plan["unchanged"] == len(entries)
        plan = await apply(db, exported)
        assert plan["changes"] == [] and plan["unchanged"] == sum(map(len, exported.values()))
        assert await db.published() == []
        assert await db.pool.fetchval("SELECT count(*) FROM setup_audit") == 0
        # a save re-derives the zones of the services following the charts: the same rows
        await apply(db, {"carriers": {"ACME": {"name": "Acme"}},
                         "carrier_services": {"ACME-X": {**NEW_SERVICE, "active": False}}})
        assert await db.pool.fetch("SELECT * FROM service_zones WHERE service <> 'ACME-X'"
                                   " ORDER BY 1, 2, 3") == zones_before


async def test_a_new_carrier_and_service_are_quoted_and_coverage_republished(
        service_db: Any) -> None:
    async with service_db("logistics") as db:
        plan = await apply(db, {"carriers": {"ACME": {"name": "Acme Parcels"}},
                                "carrier_services": {"ACME-SAVER": NEW_SERVICE}}, dry_run=True)
        assert [(c["section"], c["key"], c["action"]) for c in plan["changes"]] == [
            ("carriers", "ACME", "created"), ("carrier_services", "ACME-SAVER", "created")]
        assert await db.published() == []
        await acme(db)
        # the carrier starts at the table's default score; a rename keeps a learnt one
        assert await db.pool.fetchval("SELECT on_time_score FROM carriers WHERE code = 'ACME'"
                                      ) == Decimal("0.900")
        await apply(db, {"carriers": {"USPS": {"name": "USPS"}}})
        assert await db.pool.fetchval("SELECT on_time_score FROM carriers WHERE code = 'USPS'"
                                      ) == Decimal("0.910")
        # quoted from the chart's zone D of WH-LA, at its own base rate (no rate card yet)
        entry = quoted(await store.load_services(db.pool), "ACME-SAVER")
        assert entry["eligible"] and entry["zone"] == "-" and entry["cost"] == "6.00"
        coverage = await db.published(topics.LOGISTICS_COVERAGE_CHANGED.name)
        assert coverage and "NZ" in coverage[-1].value["countries"]
        events = await db.published(topics.SETUP_CHANGED.name)
        assert [(e.key, e.value["kind"]) for e in events] == [
            ("carriers:ACME", "carriers"), ("carrier_services:ACME-SAVER", "carrier_services"),
            ("carriers:USPS", "carriers")]
        audit = await db.pool.fetch("SELECT section, key, action FROM setup_audit ORDER BY id")
        assert [tuple(r) for r in audit] == [("carriers", "ACME", "created"),
                                             ("carrier_services", "ACME-SAVER", "created"),
                                             ("carriers", "USPS", "updated")]


async def test_a_rate_card_prices_by_zone_and_round_trips(service_db: Any) -> None:
    async with service_db("logistics") as db:
        await acme(db)
        card = {"rates": {"D": {"first_500g": "3.00", "per_500g": "0.50", "transit_min": 1,
                                "transit_max": 2}}, "zones": None}
        await apply(db, {"rate_cards": {"ACME-SAVER": card}})
        entry = quoted(await store.load_services(db.pool), "ACME-SAVER")
        # 1200 g: first 500 g + 2 started steps
        assert (entry["zone"], entry["cost"], entry["transit_days"]) == ("D", "4.00", [1, 2])
        assert (await export(db))["rate_cards"]["ACME-SAVER"] == card
        # the service's own zones, instead of the charts'
        own = {"rates": {"7": {"first_500g": "9.99", "per_500g": "1.00", "transit_min": 4,
                               "transit_max": 9}}, "zones": {"WH-LA": {"US": "7"}}}
        await apply(db, {"rate_cards": {"ACME-SAVER": own}})
        entry = quoted(await store.load_services(db.pool), "ACME-SAVER")
        assert (entry["zone"], entry["cost"]) == ("7", "11.99")
        exported = await export(db)
        assert exported["rate_cards"]["ACME-SAVER"] == own
        assert (await apply(db, exported, dry_run=True))["changes"] == []
        # a chart change leaves its own zones alone, and re-zones the services following it
        chart = {**exported["zones"]["WH-LA"], "NZ": "3"}
        await apply(db, {"zones": {"WH-LA": chart}})
        assert await db.pool.fetchval("SELECT count(*) FROM service_zones WHERE service ="
                                      " 'ACME-SAVER'") == 1
        # zones own: bad origin, country and zone reported together
        with pytest.raises(setup.SetupInvalid) as bad:
            await apply(db, {"rate_cards": {"ACME-SAVER": {
                "rates": {}, "zones": {"WH-LA": {"DE": "1"}}}}})
        assert [p["at"] for p in bad.value.problems] == ["rate_cards.ACME-SAVER.zones.WH-LA.DE"
                                                         ] * 2


async def test_references_and_fields_are_checked(service_db: Any) -> None:
    async with service_db("logistics") as db:
        with pytest.raises(setup.SetupInvalid) as bad:
            await apply(db, {"carrier_services": {"X-1": {**NEW_SERVICE, "carrier": "NOPE"}}})
        assert bad.value.problems[0]["at"] == "carrier_services.X-1.carrier"
        await acme(db)
        with pytest.raises(HTTPException) as dep:
            await apply(db, {"carrier_services": {"X-1": {**NEW_SERVICE,
                                                          "origins": ["WH-LA", "WH-X"]}}})
        assert dep.value.status_code == 409
        assert dep.value.detail["reason"] == "setup_dependency"  # type: ignore[index]
        assert dep.value.detail["message"].startswith(  # type: ignore[index]
            "warehouse WH-X is not known to logistics yet: create it in inventory first")
        with pytest.raises(HTTPException):
            await apply(db, {"zones": {"WH-X": {"US": "1"}}})
        with pytest.raises(setup.SetupInvalid) as bad:
            await apply(db, {"carrier_services": {"X-1": {
                **NEW_SERVICE, "transit_min": 9, "tracking_format": "num:1Z",
                "max_weight_g": 0, "destinations": ["usa"], "colour": "red"}}})
        assert sorted(p["at"] for p in bad.value.problems) == [
            "carrier_services.X-1.colour", "carrier_services.X-1.destinations.0",
            "carrier_services.X-1.max_weight_g", "carrier_services.X-1.tracking_format"]
        with pytest.raises(setup.SetupInvalid) as bad:
            await apply(db, {"carrier_services": {"X-1": {**NEW_SERVICE, "transit_min": 9}}})
        assert "transit_min (9) is above transit_max (6)" in bad.value.problems[0]["error"]
        with pytest.raises(setup.SetupInvalid):
            await apply(db, {"rate_cards": {"NO-SUCH": {"rates": {}}}})
        assert await db.pool.fetchval("SELECT count(*) FROM services WHERE code = 'X-1'") == 0


async def test_deletes_only_what_nothing_uses(service_db: Any) -> None:
    async with service_db("logistics") as db:
        async with UnitOfWork.begin(db.pool, "logistics") as uow:
            carriers, _, zones, _ = kinds.KINDS
            with pytest.raises(HTTPException) as used:
                await setup.remove(uow, carriers, "USPS", changed_by="test")
            assert used.value.status_code == 409
            with pytest.raises(HTTPException):
                await setup.remove(uow, zones, "WH-SZ", changed_by="test")
        await apply(db, {"carriers": {"TYPO": {"name": "Typo"}}})
        async with UnitOfWork.begin(db.pool, "logistics") as uow:
            assert await setup.remove(uow, carriers, "TYPO", changed_by="test")
        # a chart no service uses: WH-SZ's, once its services collect elsewhere
        exported = await export(db)
        moved = {code: {**s, "origins": ["WH-LA"]}
                 for code, s in exported["carrier_services"].items() if "WH-SZ" in s["origins"]}
        await apply(db, {"carrier_services": moved})
        async with UnitOfWork.begin(db.pool, "logistics") as uow:
            assert await setup.remove(uow, zones, "WH-SZ", changed_by="test")
        assert "WH-SZ" not in (await export(db))["zones"]
        actions = [tuple(r) for r in await db.pool.fetch(
            "SELECT section, key, action FROM setup_audit WHERE action = 'deleted' ORDER BY id")]
        assert actions == [("carriers", "TYPO", "deleted"), ("zones", "WH-SZ", "deleted")]


def warehouse_event(code: str, **over: Any) -> SetupChanged:
    data = {"name": "Shopkeeper Auckland DC", "country": "NZ", "priority": 4,
            "address": {"line1": "1 Quay St", "line2": None, "city": "Auckland",
                        "region": None, "postal_code": "1010"},
            "timezone": "Pacific/Auckland", "cutoff": "14:30",
            "working_days": ["mon", "tue", "wed", "thu", "fri", "sat"], "active": True, **over}
    return SetupChanged(owner="inventory", kind="warehouses", key=code, data=data,
                        changed_by="test")


async def test_the_warehouse_copy_follows_inventory(service_db: Any) -> None:
    """Given inventory creates WH-AKL then moves its cut-off, when logistics handles the
    setup.changed run, then its copy has the newest, and a service may collect there."""
    async with service_db("logistics") as db:
        run = [warehouse_event("WH-AKL"), warehouse_event("WH-AKL", cutoff="16:00"),
               SetupChanged(owner="inventory", kind="boxes", key="BOX-S", data={},
                            changed_by="test")]
        # the subscription setup.follow made: other sections (inventory's boxes) are ignored
        subscribed = handlers.handlers.subscriptions[topics.SETUP_CHANGED.name]
        await db.run(subscribed.handler, run, topics.SETUP_CHANGED.name)
        row = await db.pool.fetchrow("SELECT * FROM warehouses WHERE code = 'WH-AKL'")
        assert dict(row) == {
            "code": "WH-AKL", "country": "NZ", "name": "Shopkeeper Auckland DC",
            "line1": "1 Quay St", "city": "Auckland", "region": None, "postal_code": "1010",
            "timezone": "Pacific/Auckland", "cutoff": "16:00",
            "working_days": ["mon", "tue", "wed", "thu", "fri", "sat"], "active": True}
        # the seeded ones have their own time zones
        seeded = {r["code"]: (r["timezone"], r["cutoff"], r["working_days"], r["active"])
                  for r in await db.pool.fetch("SELECT * FROM warehouses WHERE code LIKE 'WH-%'"
                                               " AND code <> 'WH-AKL'")}
        weekdays = ["mon", "tue", "wed", "thu", "fri"]
        assert seeded == {"WH-LA": ("America/Los_Angeles", "15:00", weekdays, True),
                          "WH-SZ": ("Asia/Shanghai", "15:00", weekdays, True),
                          "WH-FRA": ("Europe/Berlin", "15:00", weekdays, True)}
        # an entry logistics cannot read is skipped; a deletion only deactivates
        await db.run(handlers.warehouses_changed, [
            warehouse_event("WH-BAD", timezone="Mars/Olympus"),
            SetupChanged(owner="inventory", kind="warehouses", key="WH-AKL", data=None,
                         changed_by="test")], topics.SETUP_CHANGED.name)
        assert await db.pool.fetchval("SELECT count(*) FROM warehouses WHERE code = 'WH-BAD'"
                                      ) == 0
        assert await db.pool.fetchval("SELECT active FROM warehouses WHERE code = 'WH-AKL'"
                                      ) is False
        await acme(db)
        await apply(db, {"carrier_services": {"ACME-SAVER": {
            **NEW_SERVICE, "origins": ["WH-AKL", "WH-LA"]}}})
        assert await db.pool.fetchval("SELECT origins FROM services WHERE code = 'ACME-SAVER'"
                                      ) == ["WH-AKL", "WH-LA"]
