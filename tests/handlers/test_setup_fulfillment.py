"""Fulfillment's setup (services/fulfillment/kinds.py) against Postgres alone: the box
catalogue loads as the migrations seeded it, round-trips with no change, reports bad entries at
`boxes.key.field`, is audited and published when it changes, and packing uses only active
boxes (a new box is used, an inactive one is not)."""

from __future__ import annotations

import random
from typing import Any

import pytest
from fastapi import HTTPException

from services.fulfillment import domain, handlers, warehouse
from services.fulfillment.kinds import KINDS
from shared import setup, topics
from shared.uow import UnitOfWork

from .conftest import ServiceDb
from .test_fulfillment import reserved, snapshot

BOXES = KINDS[0]


async def export(db: ServiceDb) -> dict[str, Any]:
    async with db.pool.acquire() as conn:
        return {key: e.model_dump(mode="json")
                for key, e in (await setup.current(conn, BOXES)).items()}


async def apply(db: ServiceDb, boxes: dict[str, Any], *, dry_run: bool = False
                ) -> dict[str, Any]:
    async with UnitOfWork.begin(db.pool, "fulfillment") as uow:
        return await setup.apply(uow, KINDS, {"boxes": boxes}, changed_by="tester",
                                 dry_run=dry_run)


async def pack_one(db: ServiceDb, ext: str) -> str:
    """Reserve, wave and pack one order of one MUG (default size 150x100x80 mm, 500 g); the
    box its parcel went in."""
    cfg = warehouse.Config(wave_size=1)
    snap = snapshot(ext, customer=f"buyer-{ext}")
    await db.run(handlers.stock_reserved, [reserved(snap)], topics.INVENTORY_STOCK_RESERVED.name)
    async with UnitOfWork.begin(db.pool, "fulfillment") as uow:
        [wave_id] = await warehouse.release_waves(uow, cfg)
    async with UnitOfWork.begin(db.pool, "fulfillment", cause=f"wave:{wave_id}") as uow:
        await warehouse.simulate_wave(uow, wave_id, cfg, random.Random(1))
    box: str = await db.pool.fetchval(
        "SELECT p.box FROM parcels p JOIN orders o USING (order_id) WHERE o.order_key = $1",
        snap.key)
    return box


async def test_the_seeded_boxes_round_trip_with_no_change(service_db: Any) -> None:
    """Given a fresh schema, when the boxes are exported and applied back (dry run and real),
    then they are the seeded four, all active, and nothing changes, is audited or published."""
    async with service_db("fulfillment") as db:
        boxes = await export(db)
        assert boxes == {
            "BOX-L": {"inner_mm": [450, 350, 250], "tare_g": 450, "max_weight_g": 20000,
                      "active": True},
            "BOX-M": {"inner_mm": [320, 240, 160], "tare_g": 250, "max_weight_g": 10000,
                      "active": True},
            "BOX-S": {"inner_mm": [220, 160, 100], "tare_g": 120, "max_weight_g": 3000,
                      "active": True},
            "BOX-XL": {"inner_mm": [600, 400, 400], "tare_g": 800, "max_weight_g": 30000,
                       "active": True}}
        for dry_run in (True, False):
            plan = await apply(db, boxes, dry_run=dry_run)
            assert plan["changes"] == [] and plan["unchanged"] == 4
        assert await db.pool.fetchval("SELECT count(*) FROM setup_audit") == 0
        assert await db.published() == []


async def test_bad_boxes_are_reported_at_boxes_key_field(service_db: Any) -> None:
    """Given boxes wrong in several ways, when applied, then each problem is reported where it
    is and nothing is saved; boxes are not deleted, and the last active box stays active."""
    async with service_db("fulfillment") as db:
        with pytest.raises(setup.SetupInvalid) as err:
            await apply(db, {
                "BOX-A": {"inner_mm": [100, 100], "tare_g": -1, "max_weight_g": 1000,
                          "active": True},
                "BOX-B": {"inner_mm": [100, 100, 0], "tare_g": 100, "max_weight_g": 1000,
                          "active": True, "colour": "brown"},
                "BOX-C": {"inner_mm": [100, 100, 100], "tare_g": 500, "max_weight_g": 500,
                          "active": True},
                "BOX D": {"inner_mm": [100, 100, 100], "tare_g": 5, "max_weight_g": 500,
                          "active": True}})
        found = {p["at"]: p["error"] for p in err.value.problems}
        assert set(found) == {"boxes.BOX-A.inner_mm", "boxes.BOX-A.tare_g",
                              "boxes.BOX-B.inner_mm.2", "boxes.BOX-B.colour", "boxes.BOX-C",
                              "boxes.BOX D"}
        assert "must be more than tare_g" in found["boxes.BOX-C"]
        assert await db.pool.fetchval("SELECT count(*) FROM boxes") == 4

        with pytest.raises(HTTPException) as refused:
            async with UnitOfWork.begin(db.pool, "fulfillment") as uow:
                await setup.remove(uow, BOXES, "BOX-S", changed_by="tester")
        assert refused.value.status_code == 405
        everything_off = {k: {**v, "active": False} for k, v in (await export(db)).items()}
        for dry_run in (True, False):  # a plan says so too
            with pytest.raises(setup.SetupInvalid) as err:
                await apply(db, everything_off, dry_run=dry_run)
            assert "no active box" in err.value.problems[0]["error"]
        assert await db.pool.fetchval("SELECT count(*) FROM boxes WHERE active") == 4
        assert await db.pool.fetchval("SELECT count(*) FROM setup_audit") == 0


async def test_packing_uses_a_new_box_and_never_an_inactive_one(service_db: Any) -> None:
    """Given one MUG (which BOX-S takes), when BOX-S is deactivated, then it is packed in BOX-M;
    when a new, smaller box is added, then the next one is packed in it; each change audited
    and published on setup.changed."""
    async with service_db("fulfillment") as db:
        assert await pack_one(db, "p1") == "BOX-S"
        small = (await export(db))["BOX-S"]
        await apply(db, {"BOX-S": {**small, "active": False}})
        assert await pack_one(db, "p2") == "BOX-M"
        mailer = {"inner_mm": [200, 150, 90], "tare_g": 60, "max_weight_g": 2000,
                  "active": True}
        plan = await apply(db, {"BOX-MAILER": mailer, "BOX-S": {**small, "active": False}},
                           dry_run=True)
        assert [(c["key"], c["action"]) for c in plan["changes"]] == [
            ("BOX-MAILER", "created")]
        await apply(db, {"BOX-MAILER": mailer})
        assert await pack_one(db, "p3") == "BOX-MAILER"
        audit = await db.pool.fetch("SELECT key, action, changed_by FROM setup_audit"
                                    " ORDER BY id")
        assert [(r["key"], r["action"], r["changed_by"]) for r in audit] == [
            ("BOX-S", "updated", "tester"), ("BOX-MAILER", "created", "tester")]
        events = await db.published("setup.changed")
        assert [(e.key, e.value["owner"], e.value["data"]) for e in events] == [
            ("boxes:BOX-S", "fulfillment", {**small, "active": False}),
            ("boxes:BOX-MAILER", "fulfillment", mailer)]


def test_choose_boxes_skips_inactive_boxes() -> None:
    item = domain.Item("MUG", 500, domain.DEFAULT_DIMS)
    small = domain.Box("S", (220, 160, 100), 120, 3000)
    medium = domain.Box("M", (320, 240, 160), 250, 10000)
    assert [p.box.code for p in domain.choose_boxes([item], [small, medium])] == ["S"]
    off = domain.Box("S", (220, 160, 100), 120, 3000, active=False)
    assert [p.box.code for p in domain.choose_boxes([item], [off, medium])] == ["M"]
    # too big for every active box: the largest active one, never an inactive one
    huge = domain.Item("SOFA", 20000, (1000, 800, 600))
    assert [p.box.code for p in domain.choose_boxes([huge], [medium, off])] == ["M"]
