"""Fulfillment's setup on the real stack (services/fulfillment/kinds.py): the export holds
the seeded boxes; a dry run plans without changing anything; a new box, applied, is the one the
next parcel is packed in; its change is in the audit and on `setup.changed`; deactivated, it is
not used any more.

The box catalogue is shared by the whole stack: the new box (smaller than BOX-S, so it takes the
test's small product) is deactivated at the end, so every other test packs as before."""

from __future__ import annotations

from typing import Any

import httpx

from shared.settings import get_settings
from tests.conftest import ref
from tools.storefront import Storefront

from .helpers import new_product, place, tail, url, value_of


async def admin(method: str, path: str, **kw: Any) -> httpx.Response:
    headers = {"Authorization": f"Bearer {get_settings().shopkeeper_admin_token}",
               "X-Operator": "setup-test"}
    async with httpx.AsyncClient(timeout=30) as client:
        return await client.request(method, url("fulfillment", path), headers=headers, **kw)


SMALL = {"inner_mm": [160, 130, 110], "tare_g": 80, "max_weight_g": 2000, "active": True}


async def packed_in(sf: Storefront, sku: str) -> list[str]:
    key, _ = await place(sf, [(sku, 1, "12.50")], country="US")
    packed = await sf.wait_for(key, "packed", timeout=90)
    return [p["box"] for p in packed["details"]["parcels"]]


async def test_export_dry_run_and_a_new_box_is_used_for_packing(storefront: Storefront) -> None:
    sf = storefront
    exported = (await admin("GET", "/setup")).json()
    assert exported["boxes"]["BOX-S"] == {"inner_mm": [220, 160, 100], "tare_g": 120,
                                          "max_weight_g": 3000, "active": True}
    assert set(exported["boxes"]) >= {"BOX-S", "BOX-M", "BOX-L", "BOX-XL"}
    plan = (await admin("PUT", "/setup", params={"dry_run": "true"}, json=exported)).json()
    assert plan["changes"] == []

    code = ref("BOX").upper()
    bad = await admin("PUT", f"/setup/boxes/{code}", json={**SMALL, "inner_mm": [160, 130]})
    assert bad.status_code == 422
    assert [p["at"] for p in bad.json()["detail"]["problems"]] == [f"boxes.{code}.inner_mm"]
    plan = (await admin("PUT", "/setup", params={"dry_run": "true"},
                        json={"boxes": {code: SMALL}})).json()
    assert [(c["key"], c["action"]) for c in plan["changes"]] == [(code, "created")]
    assert (await admin("GET", f"/setup/boxes/{code}")).status_code == 404  # only planned

    sku = await new_product(sf, stock={"WH-LA": 5})  # 120x90x90 mm, 350 g: BOX-S so far
    assert await packed_in(sf, sku) == ["BOX-S"]
    try:
        put = await admin("PUT", f"/setup/boxes/{code}", json=SMALL)
        assert put.status_code == 200, put.text
        assert await packed_in(sf, sku) == [code]

        audit = (await admin("GET", "/setup/audit", params={"key": code})).json()
        assert [(a["section"], a["action"], a["changed_by"], a["after"]) for a in audit] == [
            ("boxes", "created", "setup-test", SMALL)]
        event = value_of(await tail("setup.changed",
                                    lambda r: r.key == f"boxes:{code}".encode()))
        assert (event["owner"], event["kind"], event["data"]) == ("fulfillment", "boxes", SMALL)
        assert (await admin("DELETE", f"/setup/boxes/{code}")).status_code == 405
    finally:
        off = await admin("PUT", f"/setup/boxes/{code}", json={**SMALL, "active": False})
        assert off.status_code == 200, off.text
    assert await packed_in(sf, sku) == ["BOX-S"]  # an inactive box is not chosen
