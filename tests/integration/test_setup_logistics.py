"""Logistics' setup on the real stack (services/logistics/kinds.py, docs/logistics.md "Setup"):
the export holds the seeded catalogue and applies back unchanged; a plan changes nothing; a new
carrier service to a new country is quoted, ships orders there and reaches intake's coverage; a
rate card change changes the price; every change is audited; and logistics' copy of inventory's
warehouses follows setup.changed (published here directly: inventory's side lands separately)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx

from shared.contracts import SetupChanged
from shared.settings import get_settings
from tests.conftest import ref
from tools.storefront import Storefront

from .helpers import eventually, http_get, new_product, place, url

AUTH = {"Authorization": f"Bearer {get_settings().shopkeeper_admin_token}"}
PARCEL = {"warehouse": "WH-LA", "country": "NZ", "weight_g": 1200, "dims_mm": [200, 150, 100]}


async def http(method: str, path: str, body: Any = None) -> httpx.Response:
    async with httpx.AsyncClient(timeout=30) as client:
        return await client.request(method, url("logistics", path), json=body,
                                    headers={**AUTH, "X-Operator": "test-setup"})


def new_service(carrier: str, **over: Any) -> dict[str, Any]:
    return {"carrier": carrier, "name": "Kiwi Saver", "origins": ["WH-LA"],
            "destinations": ["NZ"], "refused": [], "max_weight_g": 20000, "max_side_mm": 1000,
            "transit_min": 5, "transit_max": 9, "first_500g": "7.00", "per_500g": "2.00",
            "fuel_pct": "0", "volumetric_divisor": 5000, "tracking_format": "num:KW:14",
            "remote_surcharge": "0", "stall_days": 10, "currency": "USD", "active": True,
            **over}


def mine(quote: dict[str, Any], code: str) -> dict[str, Any]:
    """The service's line in a quote's trace."""
    return next(t for t in quote["trace"] if t["service"] == code)


async def intake_serves(country: str) -> bool:
    return country in (await http_get("intake", "/coverage")).json()["countries"]


async def test_export_plan_new_service_quoted_rate_card_and_audit(
        storefront: Storefront) -> None:
    # Given the seeded catalogue, exported
    r = await http("GET", "/setup")
    assert r.status_code == 200, r.text
    exported = r.json()
    assert set(exported) == {"carriers", "carrier_services", "zones", "rate_cards"}
    assert exported["carriers"]["DHL"] == {"name": "DHL Express"}
    assert exported["carrier_services"]["USPS-GA"] == {
        "carrier": "USPS", "name": "Ground Advantage", "origins": ["WH-LA"],
        "destinations": ["US"], "refused": [], "max_weight_g": 31500, "max_side_mm": 1000,
        "transit_min": 2, "transit_max": 5, "first_500g": "5.50", "per_500g": "1.20",
        "fuel_pct": "0.00", "volumetric_divisor": 5000, "tracking_format": "num:9400:18",
        "remote_surcharge": "0.00", "stall_days": 5, "currency": "USD", "active": True}
    assert exported["zones"]["WH-FRA"]["DE"] == "D"
    assert exported["rate_cards"]["DHL-PAKET"]["rates"]["1"] == {
        "first_500g": "5.53", "per_500g": "0.51", "transit_min": 1, "transit_max": 3}
    # When it is applied back as a plan, nothing would change
    r = await http("PUT", "/setup?dry_run=true", exported)
    assert r.status_code == 200, r.text
    assert r.json()["changes"] == []
    assert r.json()["unchanged"] == sum(len(v) for v in exported.values())

    carrier, code = ref("KIWI").upper(), ref("KW-SAVER").upper()
    new = {"carriers": {carrier: {"name": "Kiwi Post"}},
           "carrier_services": {code: new_service(carrier)}}
    # A plan for a new carrier and service says what it would create, and creates nothing
    plan = (await http("PUT", "/setup?dry_run=true", new)).json()
    assert [(c["section"], c["key"], c["action"]) for c in plan["changes"]] == [
        ("carriers", carrier, "created"), ("carrier_services", code, "created")]
    assert (await http("GET", f"/setup/carrier_services/{code}")).status_code == 404
    # A service collecting at a warehouse logistics does not know: 409, nothing saved
    r = await http("PUT", "/setup", {**new, "carrier_services": {
        code: new_service(carrier, origins=["WH-LA", "WH-NOWHERE"])}})
    assert r.status_code == 409, r.text
    assert "warehouse WH-NOWHERE is not known to logistics yet" in r.text
    assert (await http("GET", f"/setup/carriers/{carrier}")).status_code == 404

    assert not await intake_serves("NZ")
    try:
        # When it is applied
        r = await http("PUT", "/setup", new)
        assert r.status_code == 200, r.text
        assert len(r.json()["changes"]) == 2
        # Then a parcel to New Zealand is quoted on it, at its base rate (no zone: no card yet)
        quote = (await http("POST", "/quotes", PARCEL)).json()
        assert (quote["service"], quote["cost"]) == (code, "11.00")  # 7.00 + 2 x 2.00
        entry = mine(quote, code)
        assert entry["zone"] == "-"
        ships_on = datetime.fromisoformat(quote["ships_on"]).date()
        today_la = datetime.now(ZoneInfo("America/Los_Angeles")).date()
        assert today_la <= ships_on <= today_la + timedelta(days=3)
        assert entry["estimated_delivery"] == [
            (ships_on + timedelta(days=d)).isoformat() for d in (5, 9)]
        # And intake hears the new coverage: NZ is no longer an unsupported country
        await eventually(lambda: intake_serves("NZ"), what="NZ in intake's coverage")
        sku = await new_product(storefront, stock={"WH-LA": 3})
        key, _ = await place(storefront, [(sku, 1, "12.50")], country="NZ")
        shipped = await storefront.wait_for(key, "shipped", timeout=90)
        assert shipped["details"]["parcels"][0]["service"] == code

        # When its rate card gives it its own zone for NZ with dearer, quicker rates
        card = {"rates": {"3": {"first_500g": "9.00", "per_500g": "3.00", "transit_min": 3,
                                "transit_max": 6}}, "zones": {"WH-LA": {"NZ": "3"}}}
        r = await http("PUT", f"/setup/rate_cards/{code}", card)
        assert r.status_code == 200, r.text
        # Then the quote changes, and the card reads back as written
        quote = (await http("POST", "/quotes", PARCEL)).json()
        entry = mine(quote, code)
        assert (quote["cost"], entry["zone"], entry["transit_days"]) == ("15.00", "3", [3, 6])
        assert (await http("GET", f"/setup/rate_cards/{code}")).json() == card

        # And every change is in the audit, with who made it
        rows = (await http("GET", f"/setup/audit?key={code}")).json()
        assert [(a["section"], a["action"], a["changed_by"]) for a in rows] == [
            ("rate_cards", "updated", "test-setup"), ("carrier_services", "created", "test-setup")]
        assert rows[0]["before"] == {"rates": {}, "zones": None}
        assert rows[0]["after"] == card
        # A carrier with a service is not deleted
        assert (await http("DELETE", f"/setup/carriers/{carrier}")).status_code == 409
    finally:
        # Services are never deleted: it is deactivated, and NZ leaves the coverage again
        r = await http("PUT", f"/setup/carrier_services/{code}",
                       new_service(carrier, active=False))
        assert r.status_code == 200, r.text
    await eventually(lambda: _not(intake_serves("NZ")), what="NZ out of intake's coverage")
    assert (await http("POST", "/quotes", PARCEL)).json()["service"] is None


async def test_the_warehouse_copy_follows_setup_changed(storefront: Storefront) -> None:
    code = ref("WH-AKL").upper()
    chart = {"NZ": "D", "AU": "1"}
    # Given a warehouse logistics has not heard of: its zone chart is refused
    r = await http("PUT", f"/setup/zones/{code}", chart)
    assert r.status_code == 409, r.text
    assert r.json()["detail"]["reason"] == "setup_dependency"
    # When inventory publishes it (shipping every day, cut-off at midnight: always tomorrow)
    event = SetupChanged(owner="inventory", kind="warehouses", key=code, changed_by="test", data={
        "name": "Shopkeeper Auckland DC", "country": "NZ", "priority": 9,
        "address": {"line1": "1 Quay St", "line2": None, "city": "Auckland", "region": None,
                    "postal_code": "1010"},
        "timezone": "Pacific/Auckland", "cutoff": "00:00",
        "working_days": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"], "active": True})
    await storefront.publish("setup.changed", f"warehouses:{code}",
                             event.model_dump(mode="json"))

    # Then logistics knows it: quotes from it promise its ship date, in its time zone
    async def ships_on() -> str | None:
        quote = (await http("POST", "/quotes", {**PARCEL, "warehouse": code})).json()
        return quote.get("ships_on")
    day = await eventually(ships_on, what=f"logistics' copy of {code}")
    tomorrow = datetime.now(UTC).astimezone(ZoneInfo("Pacific/Auckland")).date()
    assert day in ((tomorrow + timedelta(days=1)).isoformat(),
                   (tomorrow + timedelta(days=2)).isoformat())  # a midnight in between
    # And its zone chart may be set now
    r = await http("PUT", f"/setup/zones/{code}", chart)
    assert r.status_code == 200, r.text
    assert (await http("GET", f"/setup/zones/{code}")).json() == chart
    assert (await http("DELETE", f"/setup/zones/{code}")).status_code == 200


async def _not(check: Any) -> bool:
    return not await check
