"""shared/setup.py on Postgres alone: plans, applies, audits and publishes setup changes, and
the copies follow them (docs/setup.md)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from pydantic import BaseModel, ConfigDict, Field

from shared import setup
from shared.contracts import SetupChanged
from shared.messaging import Handlers
from shared.uow import UnitOfWork

pytestmark = pytest.mark.asyncio


class Shelf(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1)
    price: Decimal = Field(ge=0)
    tags: list[str] = Field(default_factory=list)


async def _load(conn: Any) -> dict[str, dict[str, Any]]:
    rows = await conn.fetch("SELECT code, name, price, tags FROM shelves")
    return {r["code"]: {"name": r["name"], "price": r["price"], "tags": r["tags"]} for r in rows}


async def _save(uow: UnitOfWork, key: str, entry: Shelf) -> None:
    await uow.conn.execute(
        "INSERT INTO shelves VALUES ($1, $2, $3, $4) ON CONFLICT (code) DO UPDATE SET"
        " name = EXCLUDED.name, price = EXCLUDED.price, tags = EXCLUDED.tags",
        key, entry.name, entry.price, entry.tags)


async def _delete(uow: UnitOfWork, key: str) -> None:
    await uow.conn.execute("DELETE FROM shelves WHERE code = $1", key)


CHANGED: list[list[str]] = []


async def _changed(uow: UnitOfWork, keys: list[str]) -> None:
    CHANGED.append(keys)


SHELVES = setup.Kind("shelves", Shelf, _load, _save, _delete, _changed)


async def _db(db: Any) -> None:
    await db.pool.execute("CREATE TABLE shelves (code text PRIMARY KEY, name text NOT NULL,"
                          " price numeric(10, 2) NOT NULL, tags text[] NOT NULL)")
    await db.pool.execute("INSERT INTO shelves VALUES ('A', 'Aisle A', 5.50, '{}')")


async def _apply(db: Any, sections: dict[str, Any], dry_run: bool = False) -> dict[str, Any]:
    async with UnitOfWork.begin(db.pool, "fulfillment") as uow:
        return await setup.apply(uow, [SHELVES], sections, changed_by="ana", dry_run=dry_run)


async def test_plan_apply_audit_publish(service_db: Any) -> None:
    async with service_db("fulfillment") as db:
        await _db(db)
        CHANGED.clear()
        # the same entry written differently (5.5 for 5.50) is no change
        plan = await _apply(db, {"shelves": {"A": {"name": "Aisle A", "price": "5.5"},
                                             "B": {"name": "Back", "price": 2, "tags": ["x"]}}},
                            dry_run=True)
        assert plan["unchanged"] == 1
        assert plan["changes"] == [{"section": "shelves", "key": "B", "action": "created",
                                    "fields": {"name": [None, "Back"], "price": [None, "2"],
                                               "tags": [None, ["x"]]}}]
        # a dry run changes, audits and publishes nothing
        assert await db.pool.fetchval("SELECT count(*) FROM shelves") == 1
        assert await db.pool.fetchval("SELECT count(*) FROM setup_audit") == 0
        assert await db.published() == []
        assert CHANGED == []

        plan = await _apply(db, {"shelves": {"A": {"name": "Aisle A", "price": "6.00"},
                                             "B": {"name": "Back", "price": 2}}})
        assert [(c["key"], c["action"], c["fields"]) for c in plan["changes"]] == [
            ("A", "updated", {"price": ["5.50", "6.00"]}),
            ("B", "created", {"name": [None, "Back"], "price": [None, "2"], "tags": [None, []]})]
        assert CHANGED == [["A", "B"]]
        audit = await db.pool.fetch("SELECT section, key, action, before->>'price' AS old,"
                                    " after->>'price' AS new, changed_by FROM setup_audit"
                                    " ORDER BY id")
        assert [tuple(r) for r in audit] == [("shelves", "A", "updated", "5.50", "6.00", "ana"),
                                             ("shelves", "B", "created", None, "2", "ana")]
        events = await db.published("setup.changed")
        assert [(e.key, e.value["owner"], e.value["kind"], e.value["data"]) for e in events] == [
            ("shelves:A", "fulfillment", "shelves", {"name": "Aisle A", "price": "6.00",
                                                     "tags": []}),
            ("shelves:B", "fulfillment", "shelves", {"name": "Back", "price": "2", "tags": []})]

        # applying the same again changes nothing and publishes nothing
        again = await _apply(db, {"shelves": {"A": {"name": "Aisle A", "price": "6"}}})
        assert again["changes"] == [] and again["unchanged"] == 1
        assert len(await db.published("setup.changed")) == 2

        async with UnitOfWork.begin(db.pool, "fulfillment") as uow:
            assert await setup.remove(uow, SHELVES, "B", changed_by="bo")
            assert not await setup.remove(uow, SHELVES, "nope", changed_by="bo")
        last = (await db.published("setup.changed"))[-1]
        assert (last.key, last.value["data"], last.value["changed_by"]) == ("shelves:B", None,
                                                                           "bo")


async def test_every_problem_is_reported_with_where_it_is(service_db: Any) -> None:
    async with service_db("fulfillment") as db:
        await _db(db)
        with pytest.raises(setup.SetupInvalid) as caught:
            await _apply(db, {"shelves": {"A": {"name": "", "price": -1, "colour": "red"},
                                          "bad key!": {"name": "x", "price": 1}},
                              "boxes": {}})
        where = sorted(p["at"] for p in caught.value.problems)
        assert where == ["boxes", "shelves.A.colour", "shelves.A.name", "shelves.A.price",
                         "shelves.bad key!"]
        assert await db.pool.fetchval("SELECT count(*) FROM setup_audit") == 0


async def test_follow_hands_each_section_its_own_changes(service_db: Any) -> None:
    seen: list[tuple[str, str, bool]] = []

    async def copy(uow: UnitOfWork, events: list[SetupChanged]) -> None:
        seen.extend((e.kind, e.key, e.data is None) for e in events)

    handlers = Handlers()
    setup.follow(handlers, {"warehouses": copy})
    handler = handlers.subscriptions["setup.changed"].handler
    events = [SetupChanged(owner="inventory", kind="warehouses", key="WH-1", data={"a": 1},
                           changed_by="x"),
              SetupChanged(owner="fulfillment", kind="boxes", key="B", data={}, changed_by="x"),
              SetupChanged(owner="inventory", kind="warehouses", key="WH-2", data=None,
                           changed_by="x")]
    async with service_db("logistics") as db:
        await db.run(handler, events, "setup.changed")
    assert seen == [("warehouses", "WH-1", False), ("warehouses", "WH-2", True)]
