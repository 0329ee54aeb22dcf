"""Intake's review engine on the real stack: holds that release themselves when their cause
clears, operators' decisions, re-sent orders, duplicates and dry runs. Each test uses its own
store, whose rules it sets over HTTP, so it does not change other tests' stores."""

from __future__ import annotations

import uuid
from typing import Any

import httpx

from shared.settings import get_settings
from tests.conftest import ref
from tools import storefront as sfm
from tools.storefront import Storefront

from .helpers import STORE, eventually, http_get, new_product, tail, url, value_of


def auth(operator: str | None = None) -> dict[str, str]:
    headers = {"Authorization": f"Bearer {get_settings().shopkeeper_admin_token}"}
    if operator:
        headers["X-Operator"] = operator
    return headers


async def http(method: str, path: str, body: Any = None, operator: str | None = None
               ) -> httpx.Response:
    async with httpx.AsyncClient(timeout=30) as client:
        return await client.request(method, url("intake", path), json=body,
                                    headers=auth(operator))


async def new_store(**policy: Any) -> str:
    shop = ref("shop-review")
    r = await http("PUT", f"/policies/{shop}", policy, operator="test-setup")
    assert r.status_code == 200, r.text
    return shop


async def publish_order(sf: Storefront, shop: str, payload: dict[str, Any]) -> str:
    key = f"{shop}:{payload['external_order_id']}"
    await sf.publish("orders.placed", key, payload)
    return key


async def decision_of(order_id: str) -> dict[str, Any]:
    r = await http("GET", f"/orders/{order_id}/decision")
    assert r.status_code == 200, r.text
    return r.json()


async def test_pending_payment_hold_releases_itself_when_the_order_is_resent_as_paid(
        storefront: Storefront) -> None:
    sf = storefront
    # Given a store that holds orders whose card payment is still pending
    shop = await new_store(hold_pending_payment=True)
    sku = await new_product(sf, stock={"WH-LA": 5})
    payload = sfm.order(shop, ref("o"), [(sku, 1, "12.50")], payment_status="pending")
    key = await publish_order(sf, shop, payload)
    held = await sf.wait_for(key, "on_hold")
    assert [r["code"] for r in held["reasons"]] == ["payment_pending"]
    holds = (await http("GET", f"/holds?store={shop}&reason=payment_pending")).json()
    assert [h["order_id"] for h in holds] == [held["order_id"]]
    assert holds[0]["created_at"] and holds[0]["sla_seconds"] == 240 * 60

    # When the storefront re-sends the order, now paid (a new event)
    paid = {**payload, "event_id": str(uuid.uuid4()),
            "payment": {"method": "card", "status": "paid"}}
    await publish_order(sf, shop, paid)

    # Then the same order is released and flows on; no second order
    accepted = await sf.wait_for(key, "accepted")
    assert accepted["order_id"] == held["order_id"]
    assert accepted["reasons"][0]["code"] == "hold_released"
    await sf.wait_for(key, "reserved")
    assert sf.seen(key).count("on_hold") == 1 and sf.seen(key).count("accepted") == 1
    assert (await http("GET", f"/holds?store={shop}")).json() == []
    body = await decision_of(held["order_id"])
    assert [d["trigger"] for d in body["history"]] == ["placed", "order_resent"]
    assert body["decision"]["status"] == "accepted"
    assert body["history"][0]["rules"][0]["inputs"] == {"payment_status": "pending",
                                                        "method": "card"}


async def test_resent_order_updates_the_held_order_and_reviews_it_again(
        storefront: Storefront) -> None:
    sf = storefront
    # Given an order held because its totals do not add up
    shop = await new_store()
    sku = await new_product(sf, stock={"WH-LA": 5})
    payload = sfm.order(shop, ref("o"), [(sku, 2, "12.50")])
    payload["totals"]["grand_total"] = "19.99"
    key = await publish_order(sf, shop, payload)
    held = await sf.wait_for(key, "on_hold")
    assert [r["code"] for r in held["reasons"]] == ["amount_mismatch"]

    # When it is re-sent still wrong, but differently
    again = {**payload, "event_id": str(uuid.uuid4()),
             "totals": {**payload["totals"], "grand_total": "18.99"}}
    await publish_order(sf, shop, again)

    # Then it stays one held order, with the new reasons
    async def held_again() -> list[dict[str, Any]]:
        return [e for e in sf.statuses[key] if e["status"] == "on_hold"][1:]
    update = (await eventually(held_again, what="second on_hold"))[0]
    assert update["order_id"] == held["order_id"]
    assert "18.99" in update["reasons"][0]["message"]
    holds = (await http("GET", f"/holds?store={shop}")).json()
    assert len(holds) == 1 and "18.99" in holds[0]["reasons"][0]["message"]
    # And a change that makes it impossible rejects it: the same order, reviewed again
    failed = {**again, "event_id": str(uuid.uuid4()),
              "payment": {"method": "card", "status": "failed"}}
    await publish_order(sf, shop, failed)
    rejected = await sf.wait_for(key, "rejected")
    assert rejected["order_id"] == held["order_id"]
    assert [r["code"] for r in rejected["reasons"]] == ["payment_failed"]
    body = await decision_of(held["order_id"])
    assert [d["status"] for d in body["history"]] == ["on_hold", "on_hold", "rejected"]
    assert (await http("GET", f"/holds?store={shop}")).json() == []
    assert "accepted" not in sf.seen(key)


async def test_operator_approves_a_held_order_with_a_note_audited(storefront: Storefront
                                                                  ) -> None:
    sf = storefront
    # Given a store with a low high-value threshold and an order above it
    shop = await new_store(high_value_threshold="20.00")
    sku = await new_product(sf, stock={"WH-LA": 5})
    key = await publish_order(sf, shop, sfm.order(shop, ref("o"), [(sku, 2, "12.50")]))
    held = await sf.wait_for(key, "on_hold")
    assert [r["code"] for r in held["reasons"]] == ["high_value"]
    order_id = held["order_id"]

    # When an operator claims and approves it with a note
    assert (await http("POST", f"/holds/{order_id}/claim", operator="maria")).json() == {
        "order_id": order_id, "owner": "maria"}
    old = await http("GET", f"/holds?min_age_seconds=0&store={shop}")
    assert old.json()[0]["owner"] == "maria"
    r = await http("POST", f"/holds/{order_id}/approve", {"note": "called the customer"},
                   operator="maria")
    assert r.status_code == 200, r.text

    # Then it is accepted and ships; who, when and why are kept
    accepted = await sf.wait_for(key, "accepted")
    assert accepted["reasons"][0]["code"] == "approved_by_operator"
    await sf.wait_for(key, "reserved")
    body = await decision_of(order_id)
    approve = [a for a in body["audit"] if a["action"] == "approved"]
    assert approve[0]["actor"] == "maria" and approve[0]["note"] == "called the customer"
    assert approve[0]["at"] and approve[0]["details"] == {"held_for": ["high_value"]}
    assert body["decision"]["rules"][0]["inputs"]["operator"] == "maria"
    # And approving twice is refused
    assert (await http("POST", f"/holds/{order_id}/approve")).status_code == 409


async def test_operator_rejects_a_held_order_and_corrects_an_address(storefront: Storefront
                                                                     ) -> None:
    sf = storefront
    shop = await new_store(high_value_threshold="20.00")
    sku = await new_product(sf, stock={"WH-LA": 5})
    key = await publish_order(sf, shop, sfm.order(shop, ref("o"), [(sku, 2, "12.50")]))
    held = await sf.wait_for(key, "on_hold")
    r = await http("POST", f"/holds/{held['order_id']}/reject",
                   {"reason": "could not verify the buyer", "note": "no answer on phone"},
                   operator="li")
    assert r.status_code == 200
    rejected = await sf.wait_for(key, "rejected")
    assert rejected["reasons"] == [{"code": "rejected_by_operator",
                                    "message": "could not verify the buyer"}]

    # An address correction re-runs review: still held while the value is too high
    key2 = await publish_order(sf, shop, sfm.order(shop, ref("o"), [(sku, 2, "12.50")]))
    held2 = await sf.wait_for(key2, "on_hold")
    fixed = {**sfm.DEMO_ADDRESSES["US"], "name": "Ana Lima", "line1": "200 Side St",
             "line2": None, "country": "US"}
    r = await http("POST", f"/holds/{held2['order_id']}/address",
                   {"shipping_address": fixed, "note": "customer called"}, operator="li")
    assert r.json()["status"] == "on_hold"
    # and released once the store's rules no longer hold it
    await http("PUT", f"/policies/{shop}", {"high_value_threshold": "2000.00"}, operator="li")
    accepted = await sf.wait_for(key2, "accepted")
    assert accepted["reasons"][0]["code"] == "hold_released"
    reserved = await sf.wait_for(key2, "reserved")
    assert reserved["order_id"] == held2["order_id"]
    audit = (await decision_of(held2["order_id"]))["audit"]
    assert [a["action"] for a in audit] == ["correct_address"]


async def test_address_correction_releases_an_order_held_for_a_blocked_address(
        storefront: Storefront) -> None:
    sf = storefront
    # Given an address on the block list and an order to it
    shop = await new_store()
    sku = await new_product(sf, stock={"WH-LA": 5})
    payload = sfm.order(shop, ref("o"), [(sku, 1, "12.50")])
    line1 = f"{uuid.uuid4().hex} road 1"
    payload["shipping_address"]["line1"] = line1.upper()
    order_addr = payload["shipping_address"]
    blocked_key = f"{line1}||austin|73301|US"
    r = await http("POST", "/blocked", {"kind": "address", "value": blocked_key,
                                        "note": "chargebacks"}, operator="risk-team")
    assert r.status_code == 200
    key = await publish_order(sf, shop, payload)
    held = await sf.wait_for(key, "on_hold")
    assert [r["code"] for r in held["reasons"]] == ["blocked_customer"]
    ids = (await http("GET", f"/orders/{held['order_id']}/identities")).json()
    assert ids["address"] == blocked_key

    # When an operator corrects the address to another one
    fixed = {**order_addr, "line1": "300 Clean St"}
    r = await http("POST", f"/holds/{held['order_id']}/address",
                   {"shipping_address": fixed, "note": "typo"}, operator="li")
    # Then the order is released with the new address
    assert r.json()["status"] == "accepted"
    accepted = await sf.wait_for(key, "accepted")
    assert accepted["order_id"] == held["order_id"]


async def test_same_order_under_another_id_is_held_as_a_suspected_duplicate(
        storefront: Storefront) -> None:
    sf = storefront
    # Given a store that looks for duplicates within 30 minutes
    shop = await new_store(duplicate_window_minutes=30)
    sku = await new_product(sf, stock={})  # out of stock: the orders stay unshipped
    customer = ref("c")
    first = await publish_order(sf, shop, sfm.order(shop, ref("o"), [(sku, 1, "12.50")],
                                                     customer_id=customer))
    original = await sf.wait_for(first, "accepted")
    await sf.wait_for(first, "backordered")
    # When the same customer places the same items again under another external id
    second = await publish_order(sf, shop, sfm.order(shop, ref("o"), [(sku, 1, "12.50")],
                                                      customer_id=customer))
    # Then the second is held, naming the first
    held = await sf.wait_for(second, "on_hold")
    assert [r["code"] for r in held["reasons"]] == ["suspected_duplicate"]
    assert original["order_id"] in held["reasons"][0]["message"]
    rule = (await decision_of(held["order_id"]))["decision"]["rules"][0]
    assert rule["inputs"]["other_order_id"] == original["order_id"]
    assert rule["inputs"]["matched_on"] == "customer"
    # And a third order of other items from the same buyer is accepted as a merge candidate
    sku2 = await new_product(sf, stock={"WH-LA": 10})
    third = await publish_order(sf, shop, sfm.order(shop, ref("o"), [(sku2, 1, "12.50")],
                                                     customer_id=customer))
    accepted = await sf.wait_for(third, "accepted")
    notes = (await decision_of(accepted["order_id"]))["decision"]["rules"]
    assert notes[0]["rule"] == "merge_candidate"
    assert set(notes[0]["inputs"]["merge_with"]) == {original["order_id"], held["order_id"]}
    record = await tail("intake.order_accepted",
                        lambda r: value_of(r)["order_id"] == accepted["order_id"])
    assert set(value_of(record)["order"]["merge_with"]) == {original["order_id"],
                                                            held["order_id"]}
    # And when the original is cancelled, the duplicate's hold clears by itself
    store_name, ext = first.split(":")
    await sf.publish("orders.cancel_requested", first, sfm.order_event(store_name, ext,
                                                                       reason="oops"))
    await sf.wait_for(first, "cancelled")
    released = await sf.wait_for(second, "accepted", timeout=60)
    assert released["reasons"][0]["code"] == "hold_released"


async def test_dry_run_reports_which_decisions_a_candidate_rule_set_would_change(
        storefront: Storefront) -> None:
    sf = storefront
    # Given recent orders of a store: one of 25.00 and one of 125.00
    shop = await new_store()
    sku = await new_product(sf, stock={"WH-LA": 20})
    small = await publish_order(sf, shop, sfm.order(shop, ref("o"), [(sku, 2, "12.50")]))
    big = await publish_order(sf, shop, sfm.order(shop, ref("o"), [(sku, 10, "12.50")]))
    small_id = (await sf.wait_for(small, "accepted"))["order_id"]
    big_id = (await sf.wait_for(big, "accepted"))["order_id"]

    # When a candidate threshold of 100.00 is dry-run against the last orders
    r = await http("POST", "/rules/dry-run",
                   {"policies": {shop: {"high_value_threshold": "100.00"}}, "limit": 200})
    assert r.status_code == 200, r.text
    report = r.json()

    # Then only the big order would change, from accepted to on_hold, because high_value fires
    mine = [o for o in report["orders"] if o["store"] == shop]
    assert [o["order_id"] for o in mine] == [big_id]
    assert mine[0]["current"]["status"] == "accepted"
    assert mine[0]["candidate"]["status"] == "on_hold"
    why = mine[0]["why"]["fires_only_with_candidate"]
    assert why[0]["rule"] == "high_value" and why[0]["inputs"]["threshold"] == "100.00"
    assert small_id not in [o["order_id"] for o in report["orders"]]
    assert report["evaluated"] >= 2
    # And nothing changed for real
    assert (await http("GET", "/policies")).json()[shop]["high_value_threshold"] == "2000.00"
    # And a bad candidate is refused with the setting named
    bad = await http("POST", "/rules/dry-run", {"policies": {shop: {"no_such_rule": 1}}})
    assert bad.status_code == 422 and "no_such_rule" in bad.text


async def test_hold_metrics_are_exposed(storefront: Storefront) -> None:
    shop = await new_store(high_value_threshold="1.00")
    sku = await new_product(storefront, stock={"WH-LA": 5})
    key = await publish_order(storefront, shop, sfm.order(shop, ref("o"), [(sku, 1, "12.50")]))
    await storefront.wait_for(key, "on_hold")

    async def exposed() -> str | None:
        text = (await http_get("intake", "/metrics")).text
        ok = "shopkeeper_holds_open " in text and "shopkeeper_hold_oldest_seconds " in text \
            and 'shopkeeper_intake_decisions_total{outcome="on_hold",reason="high_value"}' in text
        # the gauges are refreshed by the hold watcher, so the new hold shows up after a tick
        opened = [ln for ln in text.splitlines() if ln.startswith("shopkeeper_holds_open ")]
        return text if ok and opened and float(opened[0].split()[1]) >= 1 else None
    text = await eventually(exposed, timeout=90, what="hold metrics counting the new hold")
    assert "shopkeeper_hold_oldest_seconds " in text
    assert (await http_get("intake", "/holds")).status_code == 401


async def test_promotions_as_data_with_a_per_customer_limit(storefront: Storefront) -> None:
    sf = storefront
    # Given a one-use 20% promotion on one category, created over HTTP
    code = ref("ONCE").upper().replace("-", "")
    r = await http("PUT", f"/promotions/{code}",
                   {"kind": "percent", "value": "20", "scope_categories": ["toys"],
                    "per_customer_limit": 1, "stackable": False}, operator="marketing")
    assert r.status_code == 200, r.text
    shop = await new_store()
    toy = await new_product(sf, stock={"WH-LA": 5}, category="toys")
    mug = await new_product(sf, stock={"WH-LA": 5})
    customer = ref("c")
    # When a customer uses it on a toy (10.00) and a mug (12.50): 2.00 off the toy only
    first = await publish_order(sf, shop, sfm.order(
        shop, ref("o"), [(toy, 1, "10.00"), (mug, 1, "12.50")], customer_id=customer,
        promo_codes=[code.lower()], discount="2.00"))
    # Then it is accepted
    await sf.wait_for(first, "accepted")
    # And the same customer cannot use it again
    second = await publish_order(sf, shop, sfm.order(
        shop, ref("o"), [(toy, 1, "10.00")], customer_id=customer, promo_codes=[code],
        discount="2.00"))
    rejected = await sf.wait_for(second, "rejected")
    assert rejected["reasons"][0]["code"] == "invalid_promo"
    assert "already used 1 time" in rejected["reasons"][0]["message"]
    # And at a store whose policy holds invalid promotions, it is held instead
    lenient = await new_store(invalid_promo_action="hold")
    third = await publish_order(sf, lenient, sfm.order(
        lenient, ref("o"), [(toy, 1, "10.00")], customer_id=customer, promo_codes=["NOPE"],
        discount="1.00"))
    held = await sf.wait_for(third, "on_hold")
    assert "invalid_promo" in [r["code"] for r in held["reasons"]]


async def test_a_hold_that_outlives_its_sla_is_logged_and_counted(storefront: Storefront
                                                                  ) -> None:
    # Given a store with a one-minute hold SLA and an order held there
    shop = await new_store(hold_sla_minutes=1, high_value_threshold="1.00")
    sku = await new_product(storefront, stock={"WH-LA": 5})
    key = await publish_order(storefront, shop, sfm.order(shop, ref("o"), [(sku, 1, "12.50")]))
    held = await storefront.wait_for(key, "on_hold")

    # When the minute passes, the hold shows as breached and the breach is counted for the store
    async def breached() -> bool:
        holds = (await http("GET", f"/holds?store={shop}")).json()
        return bool(holds) and holds[0]["sla_breached"]
    await eventually(breached, timeout=150, what="hold SLA breach")
    text = (await http_get("intake", "/metrics")).text
    assert f'shopkeeper_hold_sla_breaches_total{{store="{shop}"}} 1.0' in text
    oldest = next(ln for ln in text.splitlines()
                  if ln.startswith("shopkeeper_hold_oldest_seconds "))
    assert float(oldest.split()[1]) >= 60
    old = (await http("GET", f"/holds?store={shop}&min_age_seconds=60")).json()
    assert [h["order_id"] for h in old] == [held["order_id"]]


async def test_operators_find_a_customers_orders_by_email_phone_or_name(
        storefront: Storefront) -> None:
    sf = storefront
    sku = await new_product(sf, stock={"WH-LA": 5})
    tag = uuid.uuid4().hex[:8]
    # Given two orders of one customer, spelled differently by the storefront, and another's
    keys = []
    for email, phone, name in ((f"Mei.{tag}@Example.com ", f"+86 (21) {tag[:4]}-5678",
                                f"Wang Mei {tag}"),
                               (f"mei.{tag}@example.com", f"0086 21 {tag[:4]} 5678",
                                f"wang mei {tag}"),
                               (f"other.{tag}@example.com", "+1 555 0100", f"Li Lei {tag}")):
        ext = ref("o")
        payload = sfm.order(STORE, ext, [(sku, 1, "12.50")])
        payload["customer"].update(email=email, phone=phone, name=name)
        await sf.publish("orders.placed", f"{STORE}:{ext}", payload)
        await sf.wait_for(f"{STORE}:{ext}", "accepted")
        keys.append(f"{STORE}:{ext}")
    mine = set(keys[:2])

    def found(body: list[dict[str, Any]]) -> set[str]:
        return {f"{o['store']}:{o['external_order_id']}" for o in body}
    # When support searches by the e-mail as the customer spells it on the phone
    r = await http_get("intake", f"/orders?email=MEI.{tag}@example.com", auth=True)
    # Then both orders are found (normalised as the block list does), not the other customer's
    assert r.status_code == 200 and found(r.json()) == mine
    assert r.json()[0]["status"] == "accepted" and r.json()[0]["grand_total"]
    # And the phone in any punctuation finds them (digits compared, with the country code)
    r = await http_get("intake", f"/orders?phone=%2B86-21-{tag[:4]}-5678", auth=True)
    assert found(r.json()) == {keys[0]}  # "0086 ..." normalises to +0086..., another number
    # And the start of the name, any case
    r = await http_get("intake", f"/orders?name=WANG%20MEI%20{tag}", auth=True)
    assert found(r.json()) == mine
    # And a name with LIKE's wildcards matches them only as characters
    r = await http_get("intake", f"/orders?name=%25{tag}", auth=True)
    assert r.status_code == 200 and found(r.json()) == set()
    # And personal data needs the token; a search needs a field
    assert (await http_get("intake", f"/orders?email=mei.{tag}@example.com")).status_code == 401
    assert (await http_get("intake", "/orders", auth=True)).status_code == 400
