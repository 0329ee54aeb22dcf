"""Promotions whose amounts name their currency, on the real stack (issue 22, point 1;
docs/review-rules.md "Currencies"): a EUR-priced fixed code used on a USD order takes off the EUR
amount converted at the rate published on `fx.rates`, its minimum spend is converted too, and the
decision's trace names the rate and its date. Promotions are a setup section too
(`promotions`, key the code): the change is exported, planned, audited, and takes effect."""

from __future__ import annotations

from decimal import Decimal

from tests.conftest import ref
from tools.storefront import Storefront

from .helpers import admin_client, eventually, http_get, new_product, place


async def test_a_eur_fixed_code_on_a_usd_order_is_converted(storefront: Storefront) -> None:
    sf = storefront
    sku = await new_product(sf, stock={"WH-LA": 5}, price="30.00")
    code = ref("EUR8").upper().replace("-", "")
    async with admin_client("intake") as intake:
        # Given 1 USD = 0.80 EUR (1 EUR = 1.25 USD), published now (newer than any other)
        r = await intake.post("/fx/rates", json={"base": "USD", "rates": {"EUR": "0.80"}},
                              headers={"X-Operator": "finance"})
        assert r.status_code == 202, r.text

        async def known() -> bool:
            rows = (await http_get("intake", "/fx/rates", auth=True)).json()
            return any((x["base"], x["quote"]) == ("USD", "EUR")
                       and Decimal(x["rate"]) == Decimal("0.80") for x in rows)
        await eventually(known, what="the USD/EUR rate in intake")

        # And 8.00 EUR off a spend of at least 40.00 EUR (10.00 off 50.00, in USD)
        r = await intake.put(f"/promotions/{code}", json={
            "kind": "fixed", "value": "8.00", "min_spend": "40.00", "currency": "EUR"},
            headers={"X-Operator": "marketing"})
        assert r.status_code == 200, r.text
        assert (r.json()["value"], r.json()["currency"]) == ("8.00", "EUR")
        listed = {p["code"]: p for p in (await intake.get("/promotions")).json()}
        assert listed[code]["currency"] == "EUR" and listed["SAVE5"]["currency"] == "USD"

        # When a 60.00 USD order uses it with the store's discount of 10.00 USD
        ok, _ = await place(sf, [(sku, 2, "30.00")], promo_codes=[code], discount="10.00")
        accepted = await sf.wait_for(ok, "accepted", timeout=60)
        # Then it is accepted, and the decision's trace names the rate and its date
        trace = (await intake.get(f"/orders/{accepted['order_id']}/decision")).json()
        note = next(h for h in trace["decision"]["rules"] if h["code"] == "promo_converted")
        value = next(c for c in note["inputs"]["conversions"] if c["amount"] == "value")
        assert (value["from"], value["converted"], value["rate"]) == (
            "8.00 EUR", "10.00 USD", "1.25")
        assert value["rate_as_of"]

        # And a 45.00 USD order (over a bare "40", under 40.00 EUR = 50.00 USD) is refused
        low, _ = await place(sf, [(sku, 1, "45.00")], promo_codes=[code], discount="10.00")
        rejected = await sf.wait_for(low, "rejected", timeout=60)
        assert [x["code"] for x in rejected["reasons"]] == ["invalid_promo"]
        assert "needs a minimum spend of 40.00 EUR = 50.00 USD at 1.25" in \
            rejected["reasons"][0]["message"]

        # The code is in the setup export, its creation audited with who made it
        exported = (await intake.get("/setup/promotions")).json()
        assert exported[code]["currency"] == "EUR" and exported[code]["value"] == "8.00"
        audit = (await intake.get(f"/setup/audit?section=promotions&key={code}")).json()
        assert [(a["action"], a["changed_by"]) for a in audit] == [("created", "marketing")]

        # When the minimum spend is lowered to 30.00 EUR (37.50 USD) through the setup API,
        # planned first
        wanted = {"promotions": {code: {**exported[code], "min_spend": "30.00"}}}
        plan = (await intake.put("/setup?dry_run=true", json=wanted)).json()
        assert [(c["key"], c["action"], c["fields"]) for c in plan["changes"]] == [
            (code, "updated", {"min_spend": ["40.00", "30.00"]})]
        r = await intake.put(f"/setup/promotions/{code}", json=wanted["promotions"][code],
                             headers={"X-Operator": "marketing-lead"})
        assert r.status_code == 200, r.text
        # Then a 45.00 USD order now meets it: 10.00 USD off
        now_ok, _ = await place(sf, [(sku, 1, "45.00")], promo_codes=[code], discount="10.00")
        await sf.wait_for(now_ok, "accepted", timeout=60)
        audit = (await intake.get(f"/setup/audit?section=promotions&key={code}")).json()
        assert [(a["action"], a["changed_by"]) for a in audit] == [
            ("updated", "marketing-lead"), ("created", "marketing")]
