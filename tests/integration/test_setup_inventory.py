"""Inventory's setup on the real stack (services/inventory/kinds.py): the export holds the
seeded warehouses, priorities and policy; a dry run plans without changing anything; a new
warehouse and a destination's priority naming it, applied, make the next order to that
destination reserved there; each change is in the audit and on `setup.changed`; the store
policy endpoint goes the same way.

What it changes is shared by the whole stack, so it uses a destination no other test ships to
(VN), a warehouse of its own, and puts VN's priority back and deactivates the warehouse at the
end."""

from __future__ import annotations

from typing import Any

import httpx

from shared.settings import get_settings
from tests.conftest import ref
from tools import storefront as sfm
from tools.storefront import Storefront

from .helpers import http_get, new_product, stock_of, tail, url, value_of

DESTINATION = "VN"


async def admin(method: str, path: str, **kw: Any) -> httpx.Response:
    headers = {"Authorization": f"Bearer {get_settings().shopkeeper_admin_token}",
               "X-Operator": "setup-test"}
    async with httpx.AsyncClient(timeout=30) as client:
        return await client.request(method, url("inventory", path), headers=headers, **kw)


def new_warehouse() -> dict[str, Any]:
    return {"name": "Ho Chi Minh City", "country": "VN",
            "address": {"line1": "1 Le Loi", "line2": "Floor 3", "city": "Ho Chi Minh City",
                        "region": None, "postal_code": "700000"},
            "timezone": "Asia/Ho_Chi_Minh", "cutoff": "16:00",
            "working_days": ["mon", "tue", "wed", "thu", "fri", "sat"], "active": True}


async def test_export_dry_run_apply_and_the_next_order_is_reserved_in_the_new_warehouse(
        storefront: Storefront) -> None:
    sf = storefront
    exported = (await admin("GET", "/setup")).json()
    assert exported["warehouses"]["WH-FRA"]["address"] == {
        "line1": "Cargo City Sued 557", "line2": None, "city": "Frankfurt am Main",
        "region": "HE", "postal_code": "60549"}
    assert exported["warehouses"]["WH-FRA"]["timezone"] == "Europe/Berlin"
    assert exported["warehouse_priorities"]["US"] == {"warehouses": ["WH-LA", "WH-SZ"]}
    assert exported["warehouse_priorities"][DESTINATION] == {"warehouses": ["WH-SZ"]}
    assert "*" in exported["stock_policies"]
    assert (await http_get("inventory", "/setup")).status_code in (401, 403)  # operators only

    # The export put back is a plan of nothing.
    plan = (await admin("PUT", "/setup", params={"dry_run": "true"}, json=exported)).json()
    assert plan["changes"] == [] and plan["dry_run"] is True

    code = ref("WH").upper()[:16]
    change = {"warehouses": {code: new_warehouse()},
              "warehouse_priorities": {DESTINATION: {"warehouses": [code, "WH-SZ"]}}}
    bad = await admin("PUT", "/setup", params={"dry_run": "true"}, json={"warehouses": {
        code: {**new_warehouse(), "timezone": "Asia/Saigonn"}}})
    assert bad.status_code == 422
    assert [p["at"] for p in bad.json()["detail"]["problems"]] == \
        [f"warehouses.{code}.timezone"]

    plan = (await admin("PUT", "/setup", params={"dry_run": "true"}, json=change)).json()
    assert [(c["section"], c["key"], c["action"]) for c in plan["changes"]] == [
        ("warehouses", code, "created"), ("warehouse_priorities", DESTINATION, "updated")]
    assert (await admin("GET", f"/setup/warehouses/{code}")).status_code == 404  # only planned

    try:
        applied = await admin("PUT", "/setup", json=change)
        assert applied.status_code == 200, applied.text
        assert len(applied.json()["changes"]) == 2
        assert (await admin("GET", f"/setup/warehouses/{code}")).json() == new_warehouse()

        # Stock in the new warehouse only (it must exist first: stock for an unknown
        # warehouse goes to the DLQ), then an order to VN is reserved there.
        sku = await new_product(sf, stock={code: 5})
        assert (await stock_of(sku))[code]["on_hand"] == 5
        ext = ref("o")
        key = f"{ref('setup')}:{ext}"
        store = key.split(":")[0]
        await sf.publish("orders.placed", key, sfm.order(store, ext, [(sku, 2, "12.50")],
                                                          country=DESTINATION))
        reserved = await sf.wait_for(key, "reserved")
        assert reserved["details"]["allocations"] == [
            {"warehouse": code, "lines": [{"sku": sku, "quantity": 2}]}]

        audit = (await admin("GET", "/setup/audit", params={"key": code})).json()
        assert [(a["section"], a["action"], a["changed_by"]) for a in audit] == [
            ("warehouses", "created", "setup-test")]
        assert audit[0]["before"] is None and audit[0]["after"] == new_warehouse()
        event = value_of(await tail("setup.changed",
                                    lambda r: r.key == f"warehouses:{code}".encode()))
        assert (event["owner"], event["kind"], event["key"], event["data"]) == (
            "inventory", "warehouses", code, new_warehouse())
        assert event["event_id"] == audit[0]["event_id"]
        priority = value_of(await tail(
            "setup.changed", lambda r: r.key == f"warehouse_priorities:{DESTINATION}".encode()
            and value_of(r)["data"] == {"warehouses": [code, "WH-SZ"]}))
        assert priority["changed_by"] == "setup-test"

        # Deleting the default is refused; warehouses are deactivated, never deleted.
        assert (await admin("DELETE", "/setup/warehouse_priorities/*")).status_code == 422
        assert (await admin("DELETE", f"/setup/warehouses/{code}")).status_code == 405
    finally:
        restore = await admin("PUT", "/setup", json={
            "warehouses": {code: {**new_warehouse(), "active": False}},
            "warehouse_priorities": {DESTINATION: {"warehouses": ["WH-SZ"]}}})
        assert restore.status_code == 200, restore.text
    assert (await admin("GET", f"/setup/warehouse_priorities/{DESTINATION}")).json() == {
        "warehouses": ["WH-SZ"]}


async def test_the_store_policy_endpoint_is_audited_and_published(storefront: Storefront
                                                                   ) -> None:
    store = ref("policy")
    put = await admin("PUT", f"/policies/{store}", json={"partial": "ship_available"})
    assert put.status_code == 200
    assert put.json() == {"split_allowed": True, "split_penalty": 1.5,
                          "partial": "ship_available", "backorder_limit_s": 1209600,
                          "substitute_price_band": 0.2}
    assert (await admin("GET", f"/setup/stock_policies/{store}")).json() == put.json()
    # the same again changes nothing, so it is not audited twice
    assert (await admin("PUT", f"/policies/{store}", json={"partial": "ship_available"})
            ).status_code == 200
    audit = (await admin("GET", "/setup/audit", params={"section": "stock_policies",
                                                        "key": store})).json()
    assert [(a["action"], a["changed_by"]) for a in audit] == [("created", "setup-test")]
    event = value_of(await tail("setup.changed",
                                lambda r: r.key == f"stock_policies:{store}".encode()))
    assert event["data"]["partial"] == "ship_available"

    # a store's policy may be deleted: the store then follows "*" again
    assert (await admin("DELETE", f"/setup/stock_policies/{store}")).status_code == 200
    assert (await admin("GET", f"/policies/{store}")).json()["partial"] == "hold"

    gone = value_of(await tail("setup.changed", lambda r: r.key == f"stock_policies:{store}"
                               .encode() and value_of(r)["data"] is None))
    assert gone["changed_by"] == "setup-test"
