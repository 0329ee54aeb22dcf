"""Intake's setup kinds (services/intake/kinds.py) against Postgres alone: `review_policies` and
`sellers` round-trip, refuse bad entries saying where, keep a store to one seller, and the old
`PUT /policies/{store}` goes through the same audited, published path (and still re-reviews
open holds)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from services.intake import api, handlers, kinds
from shared import setup
from shared.settings import get_settings
from shared.uow import UnitOfWork

from .test_intake import placed, with_product


@asynccontextmanager
async def client(db: Any) -> AsyncIterator[httpx.AsyncClient]:
    """Intake's HTTP routes on the scratch schema, with the admin token and an operator."""
    app = FastAPI()
    app.include_router(api.router)
    app.state.runtime = SimpleNamespace(pool=db.pool)
    headers = {"Authorization": f"Bearer {get_settings().shopkeeper_admin_token}",
               "X-Operator": "li"}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t",
                                 headers=headers) as c:
        yield c


async def apply(db: Any, sections: dict[str, Any], dry_run: bool = False) -> dict[str, Any]:
    async with UnitOfWork.begin(db.pool, "intake") as uow:
        return await setup.apply(uow, kinds.KINDS, sections, changed_by="test",
                                 dry_run=dry_run)


async def export(db: Any) -> dict[str, Any]:
    async with db.pool.acquire() as conn:
        return {k.section: {key: e.model_dump(mode="json")
                            for key, e in (await setup.current(conn, k)).items()}
                for k in kinds.KINDS}


ACME = {"name": "Acme US", "base_currency": "USD", "stores": ["acme-shop", "acme-outlet"]}


async def test_the_seeded_setup_round_trips(service_db: Any) -> None:
    """Given a fresh schema, the export is today's default policy, no seller and the seeded
    promotions, and applying it back (dry run) changes nothing."""
    async with service_db("intake") as db:
        exported = await export(db)
        assert exported == {"sellers": {}, "review_policies": {"*": {
            "high_value_threshold": "2000.00", "high_value_currency": "USD",
            "high_value_action": "hold", "duplicate_window_minutes": 0,
            "merge_window_minutes": 1440, "hold_pending_payment": False,
            "invalid_promo_action": "reject", "restricted_goods_action": "hold",
            "hold_sla_minutes": 240, "price_tolerance_percent": "2.00"}},
            "promotions": {code: {
                "kind": kind, "value": value, "min_spend": min_spend, "currency": "USD",
                "starts_at": None, "ends_at": None, "active": True, "scope_skus": [],
                "scope_categories": [], "stackable": True, "per_customer_limit": None}
                for code, kind, value, min_spend in (("SAVE5", "fixed", "5.00", "30.00"),
                                                     ("WELCOME10", "percent", "10.00",
                                                      "0.00"))}}
        plan = await apply(db, exported, dry_run=True)
        assert plan["changes"] == [] and plan["unchanged"] == 3


async def test_entries_saved_round_trip_and_a_plan_changes_nothing(service_db: Any) -> None:
    async with service_db("intake") as db:
        policy = {**(await export(db))["review_policies"]["*"],
                  "high_value_threshold": 750, "high_value_currency": "EUR",
                  "price_tolerance_percent": "5"}
        # a dry run plans the creations and changes nothing
        plan = await apply(db, {"review_policies": {"acme-shop": policy},
                                "sellers": {"acme-us": ACME}}, dry_run=True)
        assert [(c["section"], c["key"], c["action"]) for c in plan["changes"]] == [
            ("review_policies", "acme-shop", "created"), ("sellers", "acme-us", "created")]
        assert await db.pool.fetchval("SELECT count(*) FROM sellers") == 0
        assert await db.published() == []
        # applied, each is audited and published
        await apply(db, {"review_policies": {"acme-shop": policy}, "sellers": {"acme-us": ACME}})
        exported = await export(db)
        assert exported["sellers"] == {"acme-us": {
            "name": "Acme US", "base_currency": "USD", "stores": ["acme-outlet", "acme-shop"]}}
        assert exported["review_policies"]["acme-shop"]["high_value_threshold"] == "750.00"
        assert exported["review_policies"]["acme-shop"]["price_tolerance_percent"] == "5.00"
        events = await db.published("setup.changed")
        assert [(e.key, e.value["owner"], e.value["changed_by"]) for e in events] == [
            ("review_policies:acme-shop", "intake", "test"), ("sellers:acme-us", "intake", "test")]
        assert events[1].value["data"] == exported["sellers"]["acme-us"]
        # and the export applied back is a plan of nothing
        again = await apply(db, exported, dry_run=True)  # 2 policies, 1 seller, 2 promotions
        assert again["changes"] == [] and again["unchanged"] == 5
        # the same stores in another order are the same entry
        same = await apply(db, {"sellers": {"acme-us": {**ACME, "stores": ACME["stores"][::-1]}}})
        assert same["changes"] == []


async def test_bad_entries_are_refused_saying_where(service_db: Any) -> None:
    async with service_db("intake") as db:
        good = (await export(db))["review_policies"]["*"]
        with pytest.raises(setup.SetupInvalid) as caught:
            await apply(db, {
                "review_policies": {"acme-shop": {**good, "high_value_currency": "usd",
                                                  "hold_sla_minutes": 0, "surprise": 1}},
                "sellers": {"acme-us": {**ACME, "base_currency": "dollars",
                                        "stores": ["a", "a"]},
                            "bad key!": ACME}})
        where = sorted(p["at"] for p in caught.value.problems)
        assert where == ["review_policies.acme-shop.high_value_currency",
                         "review_policies.acme-shop.hold_sla_minutes",
                         "review_policies.acme-shop.surprise",
                         "sellers.acme-us.base_currency", "sellers.acme-us.stores",
                         "sellers.bad key!"]
        twice = next(p for p in caught.value.problems if p["at"] == "sellers.acme-us.stores")
        assert "more than once: a" in twice["error"]
        assert await db.published() == []


async def test_a_store_belongs_to_at_most_one_seller(service_db: Any) -> None:
    async with service_db("intake") as db:
        await apply(db, {"sellers": {"acme-us": ACME}})
        # Another seller naming one of its stores is refused, naming both, and nothing changes
        with pytest.raises(setup.SetupInvalid) as caught:
            await apply(db, {"sellers": {"acme-eu": {"name": "Acme EU", "base_currency": "EUR",
                                                      "stores": ["acme-eu", "acme-shop"]}}})
        [problem] = caught.value.problems
        assert problem["at"] == "sellers.acme-eu.stores"
        assert "'acme-shop'" in problem["error"] and "'acme-us'" in problem["error"]
        assert "acme-eu" not in (await export(db))["sellers"]
        # Two new sellers naming the same store in one request: both are named
        with pytest.raises(setup.SetupInvalid) as caught:
            await apply(db, {"sellers": {"b-1": {**ACME, "stores": ["x"]},
                                         "b-2": {**ACME, "stores": ["x"]}}})
        assert sorted(p["at"] for p in caught.value.problems) == [
            "sellers.b-1.stores", "sellers.b-2.stores"]
        # One request may move a store from a seller to another, in either order
        await apply(db, {"sellers": {
            "acme-eu": {"name": "Acme EU", "base_currency": "EUR", "stores": ["acme-shop"]},
            "acme-us": {**ACME, "stores": ["acme-outlet"]}}})
        assert (await export(db))["sellers"]["acme-eu"]["stores"] == ["acme-shop"]
        async with client(db) as c:
            r = await c.get("/stores/acme-shop/seller")
            assert r.status_code == 200, r.text
            assert r.json() == {"seller": "acme-eu", "name": "Acme EU", "base_currency": "EUR",
                                "stores": ["acme-shop"]}
            # a seller is deleted with its stores; the store then has none
            assert (await c.delete("/setup/sellers/acme-eu")).status_code == 200
            assert (await c.get("/stores/acme-shop/seller")).status_code == 404
        audit = await db.pool.fetch("SELECT key, action, changed_by FROM setup_audit"
                                    " WHERE section = 'sellers' ORDER BY id")
        assert [tuple(a) for a in audit] == [
            ("acme-us", "created", "test"), ("acme-eu", "created", "test"),
            ("acme-us", "updated", "test"), ("acme-eu", "deleted", "li")]


async def test_put_policies_is_audited_published_and_re_reviews_holds(service_db: Any) -> None:
    """Given a store whose threshold holds a 12.50 order, when an operator raises it with the
    old `PUT /policies/{store}` (partial overrides), then the change is in the setup audit and
    on `setup.changed`, the other settings are kept, and the hold is released."""
    async with service_db("intake") as db, client(db) as c:
        await with_product(db)
        r = await c.put("/policies/h-shop", json={"high_value_threshold": "10",
                                                  "duplicate_window_minutes": 5})
        assert r.status_code == 200, r.text
        assert r.json()["high_value_threshold"] == "10.00"
        out = await db.run(handlers.order_placed, [placed("p-1")], "orders.placed")
        assert [p.value["status"] for p in out if p.topic == "orders.status"] == ["on_hold"]

        r = await c.put("/policies/h-shop", json={"high_value_threshold": 2000})
        assert r.status_code == 200, r.text
        assert r.json()["duplicate_window_minutes"] == 5  # kept
        statuses = await db.published("orders.status")
        assert [s.value["status"] for s in statuses][-1] == "accepted"
        audit = await db.pool.fetch("SELECT key, action, before, after, changed_by"
                                    " FROM setup_audit ORDER BY id")
        assert [(a["key"], a["action"], a["changed_by"]) for a in audit] == [
            ("h-shop", "created", "li"), ("h-shop", "updated", "li")]
        assert json.loads(audit[1]["before"])["high_value_threshold"] == "10.00"
        assert json.loads(audit[1]["after"])["high_value_threshold"] == "2000.00"
        events = await db.published("setup.changed")
        assert [e.value["data"]["high_value_threshold"] for e in events] == ["10.00", "2000.00"]
        # the same settings again change (and publish) nothing
        await c.put("/policies/h-shop", json={"high_value_threshold": "2000.00"})
        assert len(await db.published("setup.changed")) == 2
        # bad settings are refused as before, naming the setting
        bad = await c.put("/policies/h-shop", json={"no_such_rule": 1})
        assert bad.status_code == 422 and "no_such_rule" in bad.text
        bad = await c.put("/policies/h-shop", json={"hold_sla_minutes": 0})
        assert bad.status_code == 422 and "hold_sla_minutes" in bad.text
        # the setup API shows it; a store's own policy may be deleted, the default may not
        assert (await c.get("/setup/review_policies/h-shop")).json()["duplicate_window_minutes"] == 5
        assert (await c.delete("/setup/review_policies/*")).status_code == 409
        assert (await c.delete("/setup/review_policies/h-shop")).status_code == 200
        assert "h-shop" not in (await c.get("/policies")).json()
