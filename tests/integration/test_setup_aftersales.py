"""Aftersales' setup on the real stack (services/aftersales/kinds.py): `aftersales_policies`
exported, planned, applied with an operator's name, audited, published on `setup.changed`, and
a store's shorter return window rejecting the next late return."""

from __future__ import annotations

from typing import Any

import httpx

from shared.settings import get_settings
from tests.conftest import ref
from tools import storefront as sfm
from tools.storefront import Storefront

from .helpers import new_product, tail, url, value_of
from .test_aftersales import request


async def http(method: str, path: str, body: Any = None, operator: str | None = None
               ) -> httpx.Response:
    headers = {"Authorization": f"Bearer {get_settings().shopkeeper_admin_token}"}
    if operator:
        headers["X-Operator"] = operator
    async with httpx.AsyncClient(timeout=30) as client:
        return await client.request(method, url("aftersales", path), json=body,
                                    headers=headers)


async def test_a_stores_return_window_is_set_by_setup(storefront: Storefront) -> None:
    sf = storefront
    shop = ref("shop-setup")
    # Given the exported setup: the default policy, as the migrations seeded it
    exported = (await http("GET", "/setup")).json()
    default = exported["aftersales_policies"]["*"]
    assert default == {"return_window_days": 30, "refund_without_return_below": "15.00",
                       "return_shipping_cost": "5.00",
                       "replacement_without_review_below": "200.00", "currency": "USD"}

    # When a file gives a store a return window of 0 days, first as a dry run
    wanted = {"aftersales_policies": {shop: {**default, "return_window_days": 0}}}
    plan = await http("PUT", "/setup?dry_run=true", wanted, operator="mei")
    assert plan.status_code == 200, plan.text
    [change] = plan.json()["changes"]
    assert (change["key"], change["action"]) == (shop, "created")
    assert (await http("GET", f"/setup/aftersales_policies/{shop}")).status_code == 404
    # And applied
    applied = await http("PUT", "/setup", wanted, operator="mei")
    assert applied.status_code == 200, applied.text
    assert (await http("GET", "/policies")).json()[shop]["return_window_days"] == "0"

    # Then a return asked after delivery is rejected: outside the store's window
    sku = await new_product(sf, stock={"WH-LA": 1}, price="20.00")
    ext = ref("o")
    key = f"{shop}:{ext}"
    await sf.publish("orders.placed", key, sfm.order(shop, ext, [(sku, 1, "20.00")]))
    parcel = (await sf.wait_for(key, "shipped"))["details"]["parcels"][0]
    await sf.publish("carrier.tracking", parcel["tracking_number"],
                     sfm.tracking(parcel["carrier"], parcel["tracking_number"], "delivered"))
    await sf.wait_for(key, "delivered")
    rid = await request(sf, key, "return", "changed_mind", {sku: 1})
    rejected = await sf.wait_for(key, "return_rejected")
    assert rejected["details"] == {"request_id": rid}
    assert rejected["reasons"][0]["code"] == "outside_return_window"

    # And the change is audited with who made it
    audit = (await http("GET", f"/setup/audit?section=aftersales_policies&key={shop}")).json()
    assert [(a["action"], a["changed_by"]) for a in audit] == [("created", "mei")]
    assert audit[0]["after"]["return_window_days"] == 0
    # And published on setup.changed
    record = await tail("setup.changed", lambda r: value_of(r)["key"] == shop)
    assert record.key.decode() == f"aftersales_policies:{shop}"
    assert value_of(record)["owner"] == "aftersales"
    assert value_of(record)["data"]["return_window_days"] == 0
    # And the export put back is a plan of nothing
    again = await http("PUT", "/setup?dry_run=true", (await http("GET", "/setup")).json())
    assert again.json()["changes"] == []

    # When the old PUT /policies/{store} widens the window, it is audited the same way
    r = await http("PUT", f"/policies/{shop}", {**default, "return_window_days": 14},
                   operator="li")
    assert r.status_code == 200 and r.json()["return_window_days"] == "14"
    audit = (await http("GET", f"/setup/audit?section=aftersales_policies&key={shop}")).json()
    assert [(a["action"], a["changed_by"]) for a in audit] == [("updated", "li"),
                                                               ("created", "mei")]
    # And a bad entry is refused saying where
    bad = await http("PUT", f"/setup/aftersales_policies/{shop}",
                     {**default, "currency": "usd"})
    assert bad.status_code == 422
    assert [p["at"] for p in bad.json()["detail"]["problems"]] == [
        f"aftersales_policies.{shop}.currency"]
    # And the store's own policy may be deleted (the default then serves it), `*` may not
    assert (await http("DELETE", "/setup/aftersales_policies/*")).status_code == 409
    assert (await http("DELETE", f"/setup/aftersales_policies/{shop}")).status_code == 200
    assert shop not in (await http("GET", "/policies")).json()
