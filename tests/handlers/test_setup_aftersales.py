"""Aftersales' setup kind `aftersales_policies` (services/aftersales/kinds.py) against Postgres
alone: it round-trips, refuses bad entries saying where, and the old `PUT /policies/{store}`
goes through the same audited, published path with its answer unchanged."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from services.aftersales import api, kinds, store
from shared import setup
from shared.settings import get_settings
from shared.uow import UnitOfWork

DEFAULT = {"return_window_days": 30, "refund_without_return_below": "15.00",
           "return_shipping_cost": "5.00", "replacement_without_review_below": "200.00",
           "currency": "USD"}


@asynccontextmanager
async def client(db: Any) -> AsyncIterator[httpx.AsyncClient]:
    app = FastAPI()
    app.include_router(api.router)
    app.state.runtime = SimpleNamespace(pool=db.pool)
    headers = {"Authorization": f"Bearer {get_settings().shopkeeper_admin_token}",
               "X-Operator": "mei"}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t",
                                 headers=headers) as c:
        yield c


async def apply(db: Any, sections: dict[str, Any], dry_run: bool = False) -> dict[str, Any]:
    async with UnitOfWork.begin(db.pool, "aftersales") as uow:
        return await setup.apply(uow, kinds.KINDS, sections, changed_by="test",
                                 dry_run=dry_run)


async def export(db: Any) -> dict[str, Any]:
    async with db.pool.acquire() as conn:
        return {key: e.model_dump(mode="json")
                for key, e in (await setup.current(conn, kinds.KINDS[0])).items()}


async def test_the_seeded_policy_round_trips(service_db: Any) -> None:
    async with service_db("aftersales") as db:
        exported = await export(db)
        assert exported == {"*": DEFAULT}
        plan = await apply(db, {"aftersales_policies": exported}, dry_run=True)
        assert plan["changes"] == [] and plan["unchanged"] == 1


async def test_a_store_policy_is_planned_applied_and_round_trips(service_db: Any) -> None:
    async with service_db("aftersales") as db:
        mine = {**DEFAULT, "return_window_days": 7, "refund_without_return_below": 25,
                "currency": "EUR"}
        plan = await apply(db, {"aftersales_policies": {"eu-shop": mine}}, dry_run=True)
        assert [(c["key"], c["action"]) for c in plan["changes"]] == [("eu-shop", "created")]
        assert await db.published() == []
        await apply(db, {"aftersales_policies": {"eu-shop": mine}})
        exported = await export(db)
        assert exported["eu-shop"] == {**mine, "refund_without_return_below": "25.00"}
        policy = await store.policy(db.pool, "eu-shop")
        assert (policy.return_window_days, policy.currency) == (7, "EUR")
        [event] = await db.published("setup.changed")
        assert event.key == "aftersales_policies:eu-shop"
        assert event.value["data"] == exported["eu-shop"]
        again = await apply(db, {"aftersales_policies": exported}, dry_run=True)
        assert again["changes"] == [] and again["unchanged"] == 2


async def test_bad_entries_are_refused_saying_where(service_db: Any) -> None:
    async with service_db("aftersales") as db:
        with pytest.raises(setup.SetupInvalid) as caught:
            await apply(db, {"aftersales_policies": {"s-1": {
                **DEFAULT, "return_window_days": 400, "return_shipping_cost": "-1",
                "currency": "Euro", "restocking_fee": "1.00"}}})
        assert sorted(p["at"] for p in caught.value.problems) == [
            "aftersales_policies.s-1.currency", "aftersales_policies.s-1.restocking_fee",
            "aftersales_policies.s-1.return_shipping_cost",
            "aftersales_policies.s-1.return_window_days"]
        with pytest.raises(setup.SetupInvalid) as caught:
            await apply(db, {"aftersales_policies": {"s-1": {
                k: v for k, v in DEFAULT.items() if k != "currency"}}})
        assert [p["at"] for p in caught.value.problems] == ["aftersales_policies.s-1.currency"]


async def test_put_policies_keeps_its_answer_and_is_audited_and_published(
        service_db: Any) -> None:
    async with service_db("aftersales") as db, client(db) as c:
        body = {"return_window_days": 14, "refund_without_return_below": "100.00",
                "return_shipping_cost": 2, "replacement_without_review_below": "200.00"}
        r = await c.put("/policies/shop-a", json=body)
        assert r.status_code == 200, r.text
        assert r.json() == {"store": "shop-a", "return_window_days": "14",
                            "refund_without_return_below": "100.00",
                            "return_shipping_cost": "2", "replacement_without_review_below":
                            "200.00", "currency": "USD"}
        assert (await c.get("/policies")).json()["shop-a"]["return_window_days"] == "14"
        audit = await db.pool.fetch("SELECT section, key, action, after, changed_by"
                                    " FROM setup_audit")
        assert [(a["section"], a["key"], a["action"], a["changed_by"]) for a in audit] == [
            ("aftersales_policies", "shop-a", "created", "mei")]
        assert json.loads(audit[0]["after"])["return_shipping_cost"] == "2.00"
        [event] = await db.published("setup.changed")
        assert event.value["changed_by"] == "mei"
        # the same policy again changes nothing; a bad one is refused as before
        assert (await c.put("/policies/shop-a", json=body)).status_code == 200
        assert len(await db.published("setup.changed")) == 1
        bad = await c.put("/policies/shop-a", json={**body, "return_window_days": -1})
        assert bad.status_code == 422
        # the setup API: a store's policy may be deleted (the default then serves), `*` not
        assert (await c.get("/setup/aftersales_policies/shop-a")).json()["return_shipping_cost"] \
            == "2.00"
        assert (await c.delete("/setup/aftersales_policies/*")).status_code == 409
        assert (await c.delete("/setup/aftersales_policies/shop-a")).status_code == 200
        assert (await store.policy(db.pool, "shop-a")).return_window_days == 30
        actions = await db.pool.fetch("SELECT action FROM setup_audit ORDER BY id")
        assert [a["action"] for a in actions] == ["created", "deleted"]
