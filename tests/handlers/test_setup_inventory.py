"""Inventory's setup (services/inventory/kinds.py) against Postgres alone: warehouses,
warehouse priorities and stock policies load as the migrations seeded them, round-trip with no
change, report bad entries at `section.key.field`, are audited and published when they change,
and change what the next reservation does (inactive warehouses skipped, new priorities used)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from fastapi import HTTPException

from services.inventory import handlers
from services.inventory.kinds import KINDS
from shared import setup
from shared.topics import INTAKE_ORDER_ACCEPTED
from shared.uow import UnitOfWork

from .conftest import ServiceDb
from .test_inventory import accepted, products, stock

BY_NAME = {k.section: k for k in KINDS}
US_WAREHOUSES = {"warehouses": ["WH-LA", "WH-SZ"]}


async def export(db: ServiceDb) -> dict[str, dict[str, Any]]:
    """What GET /setup answers: every section, entries as JSON."""
    async with db.pool.acquire() as conn:
        return {k.section: {key: e.model_dump(mode="json")
                            for key, e in (await setup.current(conn, k)).items()}
                for k in KINDS}


async def apply(db: ServiceDb, sections: dict[str, Any], *, dry_run: bool = False
                ) -> dict[str, Any]:
    async with UnitOfWork.begin(db.pool, "inventory") as uow:
        return await setup.apply(uow, KINDS, sections, changed_by="tester", dry_run=dry_run)


async def problems(db: ServiceDb, sections: dict[str, Any]) -> dict[str, str]:
    with pytest.raises(setup.SetupInvalid) as err:
        await apply(db, sections)
    return {p["at"]: p["error"] for p in err.value.problems}


def warehouse(**over: Any) -> dict[str, Any]:
    entry = {"name": "Toronto", "country": "CA",
             "address": {"line1": "1 Front St W", "line2": None, "city": "Toronto",
                         "region": "ON", "postal_code": "M5J 2X5"},
             "timezone": "America/Toronto", "cutoff": "14:30",
             "working_days": ["mon", "tue", "wed", "thu", "fri", "sat"], "active": True}
    return {**entry, **over}


async def reserved_in(db: ServiceDb, out: list[Any], key: str) -> list[str] | str:
    """Where the order of `key` was reserved, or its status if it was not."""
    for p in out:
        if p.topic == "inventory.stock_reserved" and p.key == key:
            return [a["warehouse"] for a in p.value["allocations"]]
    return [p.value["status"] for p in out if p.topic == "orders.status" and p.key == key][-1]


async def test_the_seeded_setup_round_trips_with_no_change(service_db: Any) -> None:
    """Given a fresh schema, when its setup is exported and applied back (dry run and real),
    then it is what the migrations seeded, and nothing changes, is audited or published."""
    async with service_db("inventory") as db:
        exported = await export(db)
        assert exported["warehouses"]["WH-LA"] == {
            "name": "Los Angeles", "country": "US",
            "address": {"line1": "2400 E 8th St", "line2": None, "city": "Los Angeles",
                        "region": "CA", "postal_code": "90021"},
            "timezone": "America/Los_Angeles", "cutoff": "15:00",
            "working_days": ["mon", "tue", "wed", "thu", "fri"], "active": True}
        assert exported["warehouses"]["WH-SZ"]["address"]["line1"] == \
            "8 Fuyong Industrial Rd, Bao'an"
        assert exported["warehouses"]["WH-SZ"]["timezone"] == "Asia/Shanghai"
        assert exported["warehouses"]["WH-FRA"]["timezone"] == "Europe/Berlin"
        assert exported["warehouse_priorities"]["US"] == US_WAREHOUSES
        assert exported["warehouse_priorities"]["*"] == {"warehouses": ["WH-SZ"]}
        assert len(exported["warehouse_priorities"]) == 22
        assert exported["stock_policies"] == {"*": {
            "split_allowed": True, "split_penalty": 1.5, "partial": "hold",
            "backorder_limit_s": 1209600, "substitute_price_band": 0.2}}
        total = sum(len(v) for v in exported.values())
        for dry_run in (True, False):
            plan = await apply(db, exported, dry_run=dry_run)
            assert plan["changes"] == [] and plan["unchanged"] == total
        # YAML-ish input (days in any order) is the same entry
        days = dict(exported["warehouses"]["WH-LA"], working_days=["fri", "mon", "tue", "wed",
                                                                    "thu"])
        assert (await apply(db, {"warehouses": {"WH-LA": days}}, dry_run=True))["changes"] == []
        assert await db.pool.fetchval("SELECT count(*) FROM setup_audit") == 0
        assert await db.published() == []


async def test_bad_entries_are_reported_at_section_key_field(service_db: Any) -> None:
    """Given entries wrong in many ways, when they are applied, then each problem is reported
    where it is, and nothing is saved."""
    async with service_db("inventory") as db:
        found = await problems(db, {
            "warehouses": {
                "WH-X": warehouse(country="Canada", timezone="Mars/Olympus", cutoff="25:00",
                                  working_days=["mon", "mon"], dock="B"),
                "WH-Y": warehouse(address={"city": "Toronto", "postal_code": "M5J"},
                                  working_days=[], active="maybe"),
            },
            "warehouse_priorities": {"CA": {"warehouses": ["WH-LA", "WH-LA"]},
                                     "GB": {"warehouses": []}},
            "stock_policies": {"shop-1": {"split_allowed": True, "split_penalty": 1.234,
                                          "partial": "sometimes", "backorder_limit_s": 0,
                                          "substitute_price_band": 2}},
            "boxes": {},
        })
        assert set(found) == {
            "warehouses.WH-X.country", "warehouses.WH-X.timezone", "warehouses.WH-X.cutoff",
            "warehouses.WH-X.working_days", "warehouses.WH-X.dock",
            "warehouses.WH-Y.address.line1", "warehouses.WH-Y.working_days",
            "warehouses.WH-Y.active",
            "warehouse_priorities.CA.warehouses", "warehouse_priorities.GB.warehouses",
            "stock_policies.shop-1.split_penalty", "stock_policies.shop-1.partial",
            "stock_policies.shop-1.backorder_limit_s",
            "stock_policies.shop-1.substitute_price_band", "boxes"}
        assert "Mars/Olympus" in found["warehouses.WH-X.timezone"]
        assert "mon given more than once" in found["warehouses.WH-X.working_days"]
        assert "WH-LA named more than once" in found["warehouse_priorities.CA.warehouses"]
        # what only the database knows: the codes, and the key's form
        found = await problems(db, {"warehouse_priorities": {
            "CA": {"warehouses": ["WH-TOR", "WH-LA"]}, "canada": {"warehouses": ["WH-LA"]}}})
        assert "unknown warehouse WH-TOR" in found["warehouse_priorities.CA.warehouses"]
        assert "add it under warehouses" in found["warehouse_priorities.CA.warehouses"]
        # a plan reports them too, and accepts a warehouse the same request creates
        with pytest.raises(setup.SetupInvalid):
            await apply(db, {"warehouse_priorities": {"CA": {"warehouses": ["WH-TOR"]}}},
                        dry_run=True)
        plan = await apply(db, {"warehouses": {"WH-TOR": warehouse()},
                                "warehouse_priorities": {"CA": {"warehouses": ["WH-TOR"]}}},
                           dry_run=True)
        assert [c["key"] for c in plan["changes"]] == ["WH-TOR", "CA"]
        assert await db.pool.fetchval("SELECT count(*) FROM warehouses") == 3
        assert await db.pool.fetchval(
            "SELECT count(*) FROM warehouse_priority WHERE destination = 'CA'") == 2
        found = await problems(db, {"warehouse_priorities": {"canada": {"warehouses": ["WH-LA"]}}})
        assert "destination country" in found["warehouse_priorities.canada"]
        assert await db.pool.fetchval("SELECT count(*) FROM setup_audit") == 0


async def test_a_change_is_saved_audited_and_published_and_deletes_follow_the_rules(
        service_db: Any) -> None:
    """Given a new warehouse with a priority naming it and a store's policy in one file, when
    it is planned then applied, then the plan lists them, they are saved, audited and published
    on setup.changed; priorities and policies other than "*" can be deleted, warehouses not."""
    async with service_db("inventory") as db:
        sections = {"warehouses": {"WH-TOR": warehouse()},
                    "warehouse_priorities": {"CA": {"warehouses": ["WH-TOR", "WH-LA"]}},
                    "stock_policies": {"shop-1": {
                        "split_allowed": False, "split_penalty": 2.25,
                        "partial": "ship_available", "backorder_limit_s": 86400,
                        "substitute_price_band": 0.125}}}
        plan = await apply(db, sections, dry_run=True)
        assert [(c["section"], c["key"], c["action"]) for c in plan["changes"]] == [
            ("warehouses", "WH-TOR", "created"), ("warehouse_priorities", "CA", "updated"),
            ("stock_policies", "shop-1", "created")]
        assert plan["changes"][1]["fields"] == {
            "warehouses": [["WH-LA", "WH-SZ"], ["WH-TOR", "WH-LA"]]}
        assert await db.published() == []
        await apply(db, sections)
        assert (await export(db))["warehouses"]["WH-TOR"] == warehouse()
        assert (await apply(db, sections, dry_run=True))["changes"] == []
        audit = await db.pool.fetch("SELECT section, key, action, after, changed_by"
                                    " FROM setup_audit ORDER BY id")
        assert [(r["section"], r["key"], r["action"]) for r in audit] == [
            ("warehouses", "WH-TOR", "created"), ("warehouse_priorities", "CA", "updated"),
            ("stock_policies", "shop-1", "created")]
        assert json.loads(audit[0]["after"]) == warehouse()
        assert {r["changed_by"] for r in audit} == {"tester"}
        events = await db.published("setup.changed")
        assert [(e.key, e.value["owner"], e.value["kind"]) for e in events] == [
            ("warehouses:WH-TOR", "inventory", "warehouses"),
            ("warehouse_priorities:CA", "inventory", "warehouse_priorities"),
            ("stock_policies:shop-1", "inventory", "stock_policies")]
        assert events[0].value["data"] == warehouse()

        async with UnitOfWork.begin(db.pool, "inventory") as uow:
            assert await setup.remove(uow, BY_NAME["warehouse_priorities"], "CA",
                                      changed_by="tester")
            assert await setup.remove(uow, BY_NAME["stock_policies"], "shop-1",
                                      changed_by="tester")
        assert "CA" not in (await export(db))["warehouse_priorities"]
        assert [e.value["data"] for e in await db.published("setup.changed")][-2:] == [None, None]
        for section, key, status in (("warehouse_priorities", "*", 422),
                                     ("stock_policies", "*", 422), ("warehouses", "WH-TOR", 405)):
            with pytest.raises(HTTPException) as refused:
                async with UnitOfWork.begin(db.pool, "inventory") as uow:
                    await setup.remove(uow, BY_NAME[section], key, changed_by="tester")
            assert refused.value.status_code == status
        assert "*" in (await export(db))["stock_policies"]


async def test_an_inactive_warehouse_is_not_allocated_from(service_db: Any) -> None:
    """Given stock for US orders in WH-LA (first choice) and WH-SZ, when WH-LA is deactivated,
    then the next US order is reserved in WH-SZ, and an order only WH-LA could fill is
    backordered rather than reserved there, offered only substitutes in stock in an active
    warehouse; reactivated, WH-LA is first choice again."""
    async with service_db("inventory") as db:
        await stock(db, [("MUG", "WH-LA", 5), ("MUG", "WH-SZ", 5), ("LAMP", "WH-LA", 5),
                         ("LAMP-LA", "WH-LA", 5), ("LAMP-SZ", "WH-SZ", 5)])
        await products(db, [("LAMP", "light", "10.00"), ("LAMP-LA", "light", "10.00"),
                            ("LAMP-SZ", "light", "10.00")])
        la = (await export(db))["warehouses"]["WH-LA"]
        await apply(db, {"warehouses": {"WH-LA": {**la, "active": False}}})
        mug, lamp = accepted("shop-1", "o1", [("MUG", 1)]), accepted("shop-1", "o2",
                                                                      [("LAMP", 1)], minute=1)
        out = await db.run(handlers.order_accepted, [mug, lamp], INTAKE_ORDER_ACCEPTED.name)
        assert await reserved_in(db, out, mug.order.key) == ["WH-SZ"]
        assert await reserved_in(db, out, lamp.order.key) == "backordered"
        [backordered] = [p.value for p in out if p.topic == "orders.status"
                         and p.key == lamp.order.key]
        assert backordered["details"]["substitutes"] == {"LAMP": ["LAMP-SZ"]}
        assert await db.pool.fetchval(
            "SELECT reserved FROM stock WHERE sku = 'LAMP' AND warehouse = 'WH-LA'") == 0
        await apply(db, {"warehouses": {"WH-LA": la}})
        again = accepted("shop-1", "o3", [("MUG", 1)], minute=2)
        out = await db.run(handlers.order_accepted, [again], INTAKE_ORDER_ACCEPTED.name)
        assert await reserved_in(db, out, again.order.key) == ["WH-LA"]


async def test_a_priority_change_takes_effect_for_the_next_reservation(service_db: Any) -> None:
    """Given US orders reserved in WH-LA (first choice) and the priorities already read in a
    unit of work, when US is changed to try WH-FRA first in that same unit of work, then its
    next reservation, and the next run's, come from WH-FRA (the memo was forgotten)."""
    async with service_db("inventory") as db:
        await stock(db, [("MUG", "WH-LA", 5), ("MUG", "WH-FRA", 5)])
        first = accepted("shop-1", "o1", [("MUG", 1)])
        out = await db.run(handlers.order_accepted, [first], INTAKE_ORDER_ACCEPTED.name)
        assert await reserved_in(db, out, first.order.key) == ["WH-LA"]

        async def change_then_reserve(uow: UnitOfWork, events: list[Any]) -> None:
            assert (await handlers._priorities(uow))["US"] == ["WH-LA", "WH-SZ"]
            await setup.apply(uow, KINDS, {"warehouse_priorities": {
                "US": {"warehouses": ["WH-FRA", "WH-LA"]}}}, changed_by="tester",
                dry_run=False)
            await handlers.order_accepted(uow, events)

        second = accepted("shop-1", "o2", [("MUG", 1)], minute=1)
        out = await db.run(change_then_reserve, [second], INTAKE_ORDER_ACCEPTED.name)
        assert await reserved_in(db, out, second.order.key) == ["WH-FRA"]
        third = accepted("shop-1", "o3", [("MUG", 1)], minute=2)
        out = await db.run(handlers.order_accepted, [third], INTAKE_ORDER_ACCEPTED.name)
        assert await reserved_in(db, out, third.order.key) == ["WH-FRA"]


async def test_a_stock_policy_change_takes_effect_for_the_next_reservation(
        service_db: Any) -> None:
    """Given a store whose orders split across warehouses (the "*" policy), when its
    `stock_policies` entry forbids splitting, then its next order that would need a split is
    backordered."""
    async with service_db("inventory") as db:
        await stock(db, [("MUG", "WH-LA", 1), ("MUG", "WH-SZ", 1)])
        await apply(db, {"stock_policies": {"shop-1": {
            "split_allowed": False, "split_penalty": 1.5, "partial": "hold",
            "backorder_limit_s": 1209600, "substitute_price_band": 0.2}}})
        order = accepted("shop-1", "o1", [("MUG", 2)])
        out = await db.run(handlers.order_accepted, [order], INTAKE_ORDER_ACCEPTED.name)
        assert await reserved_in(db, out, order.order.key) == "backordered"
        other = accepted("shop-2", "o1", [("MUG", 2)], minute=1)
        out = await db.run(handlers.order_accepted, [other], INTAKE_ORDER_ACCEPTED.name)
        assert await reserved_in(db, out, other.order.key) == ["WH-LA", "WH-SZ"]
