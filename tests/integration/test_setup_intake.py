"""Intake's setup on the real stack (services/intake/kinds.py): `review_policies` and `sellers`
exported, planned, applied with an operator's name, audited, published on `setup.changed`,
and a policy taking effect on the next order (and, changed back through the old
`PUT /policies/{store}`, releasing the hold it caused)."""

from __future__ import annotations

from typing import Any

import httpx

from shared.settings import get_settings
from tests.conftest import ref
from tools import storefront as sfm
from tools.storefront import Storefront

from .helpers import new_product, tail, url, value_of


async def http(method: str, path: str, body: Any = None, operator: str | None = None
               ) -> httpx.Response:
    headers = {"Authorization": f"Bearer {get_settings().shopkeeper_admin_token}"}
    if operator:
        headers["X-Operator"] = operator
    async with httpx.AsyncClient(timeout=30) as client:
        return await client.request(method, url("intake", path), json=body, headers=headers)


async def test_review_policies_and_sellers_are_set_by_setup(storefront: Storefront) -> None:
    sf = storefront
    shop, seller = ref("shop-setup"), ref("seller")
    # Given the exported setup: the default review policy, as the migrations seeded it
    exported = (await http("GET", "/setup")).json()
    assert set(exported) == {"review_policies", "sellers", "promotions"}
    default = exported["review_policies"]["*"]
    assert default["high_value_threshold"] == "2000.00" and default["high_value_currency"] == "USD"

    # When a file gives a store a low threshold and a seller for it, first as a dry run
    wanted = {"review_policies": {shop: {**default, "high_value_threshold": "10.00"}},
              "sellers": {seller: {"name": "Setup Test Co", "base_currency": "EUR",
                                   "stores": [shop]}}}
    plan = await http("PUT", "/setup?dry_run=true", wanted, operator="ana")
    assert plan.status_code == 200, plan.text
    assert [(c["section"], c["key"], c["action"]) for c in plan.json()["changes"]] == [
        ("review_policies", shop, "created"), ("sellers", seller, "created")]
    assert plan.json()["changes"][0]["fields"]["high_value_threshold"] == [None, "10.00"]
    # then nothing changed yet
    assert (await http("GET", f"/setup/review_policies/{shop}")).status_code == 404
    # And applied
    applied = await http("PUT", "/setup", wanted, operator="ana")
    assert applied.status_code == 200, applied.text
    assert len(applied.json()["changes"]) == 2

    # Then the next order of 12.50 there is held for its value
    sku = await new_product(sf, stock={"WH-LA": 5})
    ext = ref("o")
    key = f"{shop}:{ext}"
    await sf.publish("orders.placed", key, sfm.order(shop, ext, [(sku, 1, "12.50")]))
    held = await sf.wait_for(key, "on_hold")
    assert [r["code"] for r in held["reasons"]] == ["high_value"]
    # And the store names its seller
    r = await http("GET", f"/stores/{shop}/seller")
    assert r.json() == {"seller": seller, "name": "Setup Test Co", "base_currency": "EUR",
                        "stores": [shop]}
    # And each change is audited with who made it, before and after
    audit = (await http("GET", f"/setup/audit?section=review_policies&key={shop}")).json()
    assert [(a["action"], a["changed_by"]) for a in audit] == [("created", "ana")]
    assert audit[0]["after"]["high_value_threshold"] == "10.00" and audit[0]["before"] is None
    # And the seller is published on setup.changed for the services keeping a copy
    record = await tail("setup.changed", lambda r: value_of(r)["key"] == seller)
    assert record.key.decode() == f"sellers:{seller}"
    assert value_of(record)["owner"] == "intake" and value_of(record)["kind"] == "sellers"
    assert value_of(record)["data"] == {"name": "Setup Test Co", "base_currency": "EUR",
                                       "stores": [shop]}
    assert value_of(record)["changed_by"] == "ana"

    # And the export put back is a plan of nothing
    again = await http("PUT", "/setup?dry_run=true", (await http("GET", "/setup")).json())
    assert again.json()["changes"] == []

    # When another seller names the same store, it is refused naming both, and nothing changes
    other = ref("seller")
    refused = await http("PUT", f"/setup/sellers/{other}",
                         {"name": "Other", "base_currency": "USD", "stores": [shop]})
    assert refused.status_code == 422
    [problem] = refused.json()["detail"]["problems"]
    assert problem["at"] == f"sellers.{other}.stores"
    assert shop in problem["error"] and seller in problem["error"]
    assert (await http("GET", f"/setup/sellers/{other}")).status_code == 404
    # And a bad entry is refused saying where
    bad = await http("PUT", f"/setup/review_policies/{shop}",
                     {**default, "high_value_action": "shrug"})
    assert bad.status_code == 422
    assert [p["at"] for p in bad.json()["detail"]["problems"]] == [
        f"review_policies.{shop}.high_value_action"]

    # When the threshold is raised back through the old PUT /policies (partial overrides)
    r = await http("PUT", f"/policies/{shop}", {"high_value_threshold": "2000.00"}, operator="li")
    assert r.status_code == 200 and r.json()["high_value_threshold"] == "2000.00"
    # Then the hold is reviewed again and released, and the change is audited too
    accepted = await sf.wait_for(key, "accepted")
    assert accepted["reasons"][0]["code"] == "hold_released"
    audit = (await http("GET", f"/setup/audit?section=review_policies&key={shop}")).json()
    assert [(a["action"], a["changed_by"]) for a in audit] == [("updated", "li"),
                                                               ("created", "ana")]

    # And a store's policy and a seller may be deleted (the default policy may not)
    assert (await http("DELETE", "/setup/review_policies/*")).status_code == 409
    assert (await http("DELETE", f"/setup/review_policies/{shop}")).status_code == 200
    assert (await http("DELETE", f"/setup/sellers/{seller}")).status_code == 200
    assert (await http("GET", f"/stores/{shop}/seller")).status_code == 404
    gone = await tail("setup.changed", lambda r: value_of(r)["key"] == seller
                      and value_of(r)["data"] is None)
    assert value_of(gone)["kind"] == "sellers"
