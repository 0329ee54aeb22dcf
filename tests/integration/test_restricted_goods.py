"""Restricted goods on the real stack: the local carrier table bars powder goods to Australia
(a destination restriction binding every service), logistics publishes it in its coverage, and
intake holds (or, by a store's rule, rejects) such orders; lifting the restriction releases the
holds by themselves."""

from __future__ import annotations

from typing import Any

import httpx

from shared.settings import get_settings
from tests.conftest import ref
from tools import storefront as sfm
from tools.storefront import Storefront

from .helpers import eventually, http_get, new_product, url

AUTH = {"Authorization": f"Bearer {get_settings().shopkeeper_admin_token}"}
NOTE = "biosecurity import permit needed for powdered food (dairy-based powders)"


async def http(service: str, method: str, path: str, body: Any = None) -> httpx.Response:
    async with httpx.AsyncClient(timeout=30) as client:
        return await client.request(method, url(service, path), json=body,
                                    headers={**AUTH, "X-Operator": "test"})


async def new_store(**policy: Any) -> str:
    shop = ref("shop-restricted")
    r = await http("intake", "PUT", f"/policies/{shop}", policy)
    assert r.status_code == 200, r.text
    return shop


async def order_to(sf: Storefront, shop: str, sku: str, country: str) -> str:
    ext = ref("o")
    await sf.publish("orders.placed", f"{shop}:{ext}", sfm.order(
        shop, ext, [(sku, 1, "32.00")], country=country))
    return f"{shop}:{ext}"


async def test_powder_to_australia_is_held_as_restricted_then_released_when_lifted(
        storefront: Storefront) -> None:
    sf = storefront
    # Given the local carrier table: no service may take powder goods to AU (intake knows)
    await eventually(lambda: intake_refuses("AU", "powder"), what="intake's coverage")
    rows = (await http_get("logistics", "/restrictions")).json()
    assert {(r["country"], r["attribute"]) for r in rows} >= {("AU", "powder")}
    quote = (await http("logistics", "POST", "/quotes", {
        "warehouse": "WH-LA", "country": "AU", "weight_g": 1100, "dims_mm": [250, 160, 160],
        "attributes": ["powder"]})).json()
    assert quote["service"] is None
    assert all(not t["eligible"] for t in quote["trace"])
    # And a protein powder in stock, and two stores: one holds restricted goods, one rejects
    sku = await new_product(sf, stock={"WH-LA": 5}, price="32.00", attributes=["powder"])
    holding, rejecting = await new_store(), await new_store(restricted_goods_action="reject")

    # When buyers order it to Australia, and to the US
    held_key = await order_to(sf, holding, sku, "AU")
    rejected_key = await order_to(sf, rejecting, sku, "AU")
    us_key = await order_to(sf, holding, sku, "US")

    # Then the Australian orders are held / rejected as restricted goods, naming why
    held = await sf.wait_for(held_key, "on_hold")
    assert [r["code"] for r in held["reasons"]] == ["restricted_goods"]
    assert held["reasons"][0]["message"] == f"no carrier takes these goods to AU: {sku} (powder)"
    rejected = await sf.wait_for(rejected_key, "rejected")
    assert [r["code"] for r in rejected["reasons"]] == ["restricted_goods"]
    # And the same goods to the US are accepted
    await sf.wait_for(us_key, "accepted")

    try:
        # When an operator lifts the restriction (the permit came through)
        r = await http("logistics", "DELETE", "/restrictions/AU/powder")
        assert r.status_code == 200, r.text
        await eventually(lambda: _not(intake_refuses("AU", "powder")),
                         what="intake's coverage without the restriction")
        # Then the held order releases itself and ships on a service that takes it now
        released = await sf.wait_for(held_key, "accepted")
        assert released["order_id"] == held["order_id"]
        assert released["reasons"][0]["code"] == "hold_released"
        shipped = await sf.wait_for(held_key, "shipped", timeout=90)
        assert shipped["details"]["parcels"][0]["service"] in ("UPS-WWX", "DHL-EXP")
        # And the rejected one stays rejected (final)
        assert sf.seen(rejected_key) == ["rejected"]
    finally:
        r = await http("logistics", "PUT", "/restrictions/AU/powder", {"note": NOTE})
        assert r.status_code == 200, r.text

    # When the restriction is back and intake has heard of it, a new order to AU is held again
    await eventually(lambda: intake_refuses("AU", "powder"), what="intake's coverage restored")
    again = await order_to(sf, holding, sku, "AU")
    assert [r["code"] for r in (await sf.wait_for(again, "on_hold"))["reasons"]] == [
        "restricted_goods"]


async def intake_refuses(country: str, attribute: str) -> bool:
    coverage = (await http_get("intake", "/coverage")).json()
    return attribute in coverage["refused_attributes"].get(country, [])


async def test_restriction_changes_need_the_token_and_a_known_attribute() -> None:
    async with httpx.AsyncClient(timeout=30) as client:
        r = await client.delete(url("logistics", "/restrictions/AU/powder"))
        assert r.status_code == 401
    assert (await http("logistics", "PUT", "/restrictions/AU/plutonium",
                       {"note": "x"})).status_code == 422
    assert (await http("logistics", "PUT", "/restrictions/au/powder",
                       {"note": "x"})).status_code == 422
    assert (await http("logistics", "DELETE", "/restrictions/XX/battery")).status_code == 404


async def _not(check: Any) -> bool:
    return not await check
