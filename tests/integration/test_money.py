"""Money as a seller has it, on the real stack (docs/intake.md "Currencies and price lists"):
exchange rates published through intake reach every service that compares money, a yen order is
judged against a dollar threshold through them, an order without a rate is held saying so, and a
line priced off the store's list is held until the list is corrected."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from tests.conftest import ref
from tools.storefront import Storefront

from .helpers import STORE, admin_client, eventually, http_get, new_product, place


async def _rates(service: str) -> dict[tuple[str, str], dict[str, Any]]:
    rows = (await http_get(service, "/fx/rates", auth=True)).json()
    return {(r["base"], r["quote"]): r for r in rows}


async def test_rates_reach_every_service_and_convert_a_yen_order(storefront: Storefront) -> None:
    sf = storefront
    sku = await new_product(sf, stock={"WH-LA": 5}, price="30.00")
    # When an operator publishes USD rates (as of now: newer than any earlier test's)
    async with admin_client("intake") as intake:
        r = await intake.post("/fx/rates", json={"base": "USD", "rates": {"JPY": "150"}},
                              headers={"X-Operator": "finance"})
    assert r.status_code == 202, r.text
    assert r.json()["pairs"] == 1

    # Then intake, aftersales and logistics each keep a copy
    for service in ("intake", "aftersales", "logistics"):
        async def known(service: str = service) -> bool:
            rate = (await _rates(service)).get(("USD", "JPY"))
            return rate is not None and Decimal(rate["rate"]) == 150
        await eventually(known, what=f"the USD/JPY rate in {service}")

    # And a ¥4,500 order (30 USD) is not high value against the 2,000 USD threshold
    small, _ = await place(sf, [(sku, 1, "4500")], currency="JPY", shipping_fee="0")
    await sf.wait_for(small, "reserved", timeout=60)
    # While a ¥450,000 one (3,000 USD) is held, the conversion named in the reason
    big, _ = await place(sf, [(sku, 100, "4500")], currency="JPY", shipping_fee="0")
    held = await sf.wait_for(big, "on_hold", timeout=60)
    assert [r["code"] for r in held["reasons"]] == ["high_value"]
    assert "450000.00 JPY (3000.00 USD at 0.006666666667) is above the review threshold" \
        " 2000.00 USD" in held["reasons"][0]["message"]


async def test_an_order_in_a_currency_without_a_rate_is_held_saying_so(
        storefront: Storefront) -> None:
    sf = storefront
    sku = await new_product(sf, stock={"WH-LA": 5}, price="30.00")
    # ISK: no test publishes a rate for it
    key, _ = await place(sf, [(sku, 1, "4000")], currency="ISK", shipping_fee="0")
    held = await sf.wait_for(key, "on_hold", timeout=60)
    assert [r["code"] for r in held["reasons"]] == ["fx_rate_missing"]
    assert "no exchange rate from ISK to USD" in held["reasons"][0]["message"]


UNRATED = ("HUF", "CZK", "RON", "BGN", "DKK", "NOK", "PLN", "TRY", "ZAR", "THB", "MYR", "IDR",
           "PHP", "VND", "INR", "KRW", "TWD", "HKD", "SGD", "NZD")


async def test_an_order_held_for_want_of_a_rate_is_released_when_the_rate_arrives(
        storefront: Storefront) -> None:
    sf = storefront
    sku = await new_product(sf, stock={"WH-LA": 5}, price="30.00")
    # A currency intake has no rate for: no other test publishes these, and a rate, once known,
    # stays (so a rerun on the same stack takes the next one)
    known = {q for pair in await _rates("intake") for q in pair}
    currency = next((c for c in UNRATED if c not in known), None)
    assert currency, f"every one of {UNRATED} has a rate on this stack: start a fresh one"
    key, _ = await place(sf, [(sku, 1, "10800")], currency=currency, shipping_fee="0")
    held = await sf.wait_for(key, "on_hold", timeout=60)
    assert [r["code"] for r in held["reasons"]] == ["fx_rate_missing"]
    # When finance publishes the rate
    async with admin_client("intake") as intake:
        r = await intake.post("/fx/rates", json={"base": "USD", "rates": {currency: "360"}},
                              headers={"X-Operator": "finance"})
    assert r.status_code == 202, r.text
    # Then intake reviews the hold again by itself: 30 USD is far below the threshold
    accepted = await sf.wait_for(key, "accepted", timeout=60)
    assert accepted["reasons"] == [] or all(r["code"] != "fx_rate_missing"
                                            for r in accepted["reasons"])
    await sf.wait_for(key, "reserved", timeout=60)


async def test_a_line_off_the_price_list_is_held_until_the_list_is_corrected(
        storefront: Storefront) -> None:
    sf = storefront
    sku = await new_product(sf, stock={"WH-LA": 5}, price="10.00")
    async with admin_client("intake") as intake:
        r = await intake.put(f"/price-lists/{STORE}/USD",
                             json={"entries": [{"sku": sku, "price": "10.00"}]})
        assert r.status_code == 200, r.text
        assert [(e["sku"], e["price"], e["valid_from"]) for e in r.json()] == [
            (sku, "10.00", None)]
        # A price finer than the currency allows is refused with the reason
        bad = await intake.put(f"/price-lists/{STORE}/JPY",
                               json={"entries": [{"sku": sku, "price": "10.50"}]})
        assert bad.status_code == 422 and "finer than JPY allows" in bad.text

        # When an order sells it at 5x the list price
        key, _ = await place(sf, [(sku, 1, "50.00")])
        held = await sf.wait_for(key, "on_hold", timeout=60)
        # Then it is held for price_mismatch, with the expected price
        assert [r["code"] for r in held["reasons"]] == ["price_mismatch"]
        assert f"line {sku}: unit price 50.00 USD is off the list price 10.00 USD" in \
            held["reasons"][0]["message"]

        # When the list is corrected, the hold is reviewed again and the order goes on
        r = await intake.put(f"/price-lists/{STORE}/USD", json={"entries": [
            {"sku": sku, "price": "50.00"}]}, headers={"X-Operator": ref("pricing")})
        assert r.status_code == 200, r.text
        await sf.wait_for(key, "reserved", timeout=60)
        listed = (await intake.get(f"/price-lists/{STORE}", params={"sku": sku})).json()
        assert [e["price"] for e in listed] == ["50.00"]

    # And an order 1 % off the list, inside the 2 % tolerance, is not held
    near, _ = await place(sf, [(sku, 1, "50.50")])
    await sf.wait_for(near, "reserved", timeout=60)
