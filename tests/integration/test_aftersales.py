"""After-sales end to end on the real stack, as a storefront, warehouse, carrier and operator see
it: requests on `aftersales.requests`, answers on `orders.status` and `payments.refunds`,
replacement orders flowing through inventory, fulfillment and logistics to `shipped`."""

from __future__ import annotations

from typing import Any

import httpx

from shared.settings import get_settings
from tests.conftest import ref
from tools import storefront as sfm
from tools.storefront import Storefront

from .helpers import eventually, http_get, new_product, place, stock_of, url


async def http_post(service: str, path: str, body: dict[str, Any]) -> httpx.Response:
    headers = {"Authorization": f"Bearer {get_settings().shopkeeper_admin_token}"}
    async with httpx.AsyncClient(timeout=10) as client:
        return await client.post(url(service, path), json=body, headers=headers)


async def delivered_order(sf: Storefront, sku: str, price: str, quantity: int = 1,
                          shipping_fee: str = "5.00") -> tuple[str, dict[str, Any]]:
    key, _ = await place(sf, [(sku, quantity, price)], shipping_fee=shipping_fee)
    shipped = await sf.wait_for(key, "shipped")
    parcel = shipped["details"]["parcels"][0]
    await sf.publish("carrier.tracking", parcel["tracking_number"],
                     sfm.tracking(parcel["carrier"], parcel["tracking_number"], "delivered"))
    await sf.wait_for(key, "delivered")
    return key, parcel


async def request(sf: Storefront, key: str, kind: str, reason: str, lines: dict[str, int],
                  exchange_for: dict[str, str] | None = None) -> str:
    store, ext = key.split(":")
    rid = ref("rma")
    await sf.publish("aftersales.requests", key, sfm.order_event(
        store, ext, request_id=rid, kind=kind, reason=reason, comment=None,
        lines=[{"sku": s, "quantity": q} for s, q in lines.items()], exchange_for=exchange_for))
    return rid


async def http_put(service: str, path: str, body: dict[str, Any]) -> httpx.Response:
    headers = {"Authorization": f"Bearer {get_settings().shopkeeper_admin_token}"}
    async with httpx.AsyncClient(timeout=10) as client:
        return await client.put(url(service, path), json=body, headers=headers)


async def detail(key: str, rid: str) -> dict[str, Any]:
    store, ext = key.split(":")
    r = await http_get("aftersales", f"/requests/{store}/{ext}/{rid}", auth=True)
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


async def test_small_damaged_item_is_refunded_without_a_return_shipping_included(
        storefront: Storefront) -> None:
    sf = storefront
    # Given a delivered order of one 10.00 item with 5.00 shipping
    sku = await new_product(sf, stock={"WH-LA": 2}, price="10.00")
    key, _ = await delivered_order(sf, sku, "10.00")
    # When the customer asks for a refund without return because it arrived damaged
    rid = await request(sf, key, "refund", "damaged", {sku: 1})
    # Then it is authorized by policy (below 15.00) and refunded with the shipping
    authorized = await sf.wait_for(key, "return_authorized")
    assert authorized["details"] == {"request_id": rid}
    assert authorized["reasons"][0]["code"] == "refund_without_return"
    refunded = await sf.wait_for(key, "refunded")
    assert refunded["details"] == {"request_id": rid, "amount": "15.00", "currency": "USD"}
    refunds = await eventually(lambda: _async(sf.refunds.get(key)), what="payments.refunds")
    assert refunds[0]["amount"] == "15.00" and refunds[0]["reason"] == "damaged"
    # And nothing is asked back: no return label, no return_received
    assert (await detail(key, rid))["return_label"] is None
    assert "return_received" not in sf.seen(key)
    store, ext = key.split(":")
    history = (await http_get("aftersales", f"/refunds?store_name={store}&external_order_id={ext}",
                              auth=True)).json()
    assert [(h["request_id"], h["amount"], h["kind"]) for h in history] == [(rid, "15.00", "refund")]


async def test_a_stores_own_policy_decides_its_requests(storefront: Storefront) -> None:
    sf = storefront
    # Given a store refunding without return up to 100.00 and charging 2.00 return shipping
    store = ref("shop")
    r = await http_put("aftersales", f"/policies/{store}", {
        "return_window_days": 14, "refund_without_return_below": "100.00",
        "return_shipping_cost": "2.00", "replacement_without_review_below": "200.00"})
    assert r.status_code == 200, r.text
    # And a delivered order of an 80.00 item there
    sku = await new_product(sf, stock={"WH-LA": 1}, price="80.00")
    ext = ref("o")
    key = f"{store}:{ext}"
    await sf.publish("orders.placed", key, sfm.order(store, ext, [(sku, 1, "80.00")],
                                                     shipping_fee="5.00"))
    parcel = (await sf.wait_for(key, "shipped"))["details"]["parcels"][0]
    await sf.publish("carrier.tracking", parcel["tracking_number"],
                     sfm.tracking(parcel["carrier"], parcel["tracking_number"], "delivered"))
    await sf.wait_for(key, "delivered")
    # When the customer asks for a refund without return (the default store would queue it)
    rid = await request(sf, key, "refund", "changed_mind", {sku: 1})
    # Then this store's threshold authorizes it, and no return shipping is charged
    refunded = await sf.wait_for(key, "refunded")
    assert refunded["details"] == {"request_id": rid, "amount": "80.00", "currency": "USD"}
    policies = (await http_get("aftersales", "/policies", auth=True)).json()
    assert policies[store]["return_window_days"] == "14" and "*" in policies


async def test_changed_mind_return_gets_a_label_and_is_refunded_less_return_shipping(
        storefront: Storefront) -> None:
    sf = storefront
    # Given a delivered order of two 20.00 items
    sku = await new_product(sf, stock={"WH-LA": 4}, price="20.00")
    key, _ = await delivered_order(sf, sku, "20.00", quantity=2)
    # When the customer returns one because they changed their mind
    rid = await request(sf, key, "return", "changed_mind", {sku: 1})
    await sf.wait_for(key, "return_authorized")
    # Then logistics issues a return label on a real service back to the shipping warehouse

    async def labelled() -> dict[str, Any] | None:
        label: dict[str, Any] | None = (await detail(key, rid))["return_label"]
        return label
    label = await eventually(labelled, what="return label from logistics")
    assert (label["carrier"], label["service"], label["warehouse"]) == ("USPS", "USPS-GA", "WH-LA")
    assert label["tracking_number"].startswith("9400")
    # And once received resellable, the unit is restocked and refunded less 5.00 return shipping
    store, ext = key.split(":")
    await sf.publish("returns.received", key, sfm.order_event(
        store, ext, request_id=rid, lines=[{"sku": sku, "quantity": 1, "condition": "resellable"}]))
    await sf.wait_for(key, "return_received")
    refunded = await sf.wait_for(key, "refunded")
    assert refunded["details"] == {"request_id": rid, "amount": "15.00", "currency": "USD"}

    async def restocked() -> bool:
        return (await stock_of(sku))["WH-LA"]["on_hand"] == 3
    await eventually(restocked, what="returned unit back on hand")


async def test_damaged_return_waits_for_an_operators_grade_then_is_refunded(
        storefront: Storefront) -> None:
    sf = storefront
    sku = await new_product(sf, stock={"WH-LA": 2}, price="30.00")
    key, _ = await delivered_order(sf, sku, "30.00")
    rid = await request(sf, key, "return", "changed_mind", {sku: 1})
    await sf.wait_for(key, "return_authorized")
    store, ext = key.split(":")
    # Given goods from a changed-mind return that came back damaged
    await sf.publish("returns.received", key, sfm.order_event(
        store, ext, request_id=rid, lines=[{"sku": sku, "quantity": 1, "condition": "damaged"}]))
    await sf.wait_for(key, "return_received")

    async def inspected() -> bool:
        return (await detail(key, rid))["status"] == "inspection"
    await eventually(inspected, what="request in inspection")
    # When an operator grades them refurbish
    r = await http_post("aftersales", f"/requests/{store}/{ext}/{rid}/grade",
                        {"grade": "refurbish", "note": "scuffed box, works", "operator": "mei"})
    assert r.status_code == 200, r.text
    # Then the refund follows (30.00 less 5.00 return shipping) and nothing is restocked as new
    refunded = await sf.wait_for(key, "refunded")
    assert refunded["details"]["amount"] == "25.00"
    body = await detail(key, rid)
    assert body["grade"] == "refurbish"
    assert any(h["actor"] == "mei" and "refurbish" in h["note"] for h in body["history"])
    assert (await stock_of(sku))["WH-LA"]["on_hand"] == 1


async def test_exchange_ships_a_zero_priced_replacement_order_to_shipped(
        storefront: Storefront) -> None:
    sf = storefront
    # Given a delivered order of a 20.00 item and another item at the same price in stock
    sku = await new_product(sf, stock={"WH-LA": 2}, price="20.00")
    other = await new_product(sf, stock={"WH-LA": 2}, price="20.00")
    key, _ = await delivered_order(sf, sku, "20.00")
    # When the customer exchanges it for the other one
    rid = await request(sf, key, "exchange", "changed_mind", {sku: 1}, exchange_for={sku: other})
    await sf.wait_for(key, "return_authorized")
    # Then a replacement order, linked to the original, flows like any order to shipped
    replacement = f"{key}-X1"
    accepted = await sf.wait_for(replacement, "accepted")
    original_id = next(e for e in sf.statuses[key] if e["status"] == "accepted")["order_id"]
    assert accepted["details"] == {"replaces": original_id, "request_id": rid}
    reserved = await sf.wait_for(replacement, "reserved")
    assert reserved["details"]["allocations"] == [
        {"warehouse": "WH-LA", "lines": [{"sku": other, "quantity": 1}]}]
    await sf.wait_for(replacement, "shipped", timeout=90)
    assert sf.seen(replacement)[:4] == ["accepted", "reserved", "packed", "shipped"]
    # And the returned original goes back on the shelf without a refund
    store, ext = key.split(":")
    await sf.publish("returns.received", key, sfm.order_event(
        store, ext, request_id=rid, lines=[{"sku": sku, "quantity": 1, "condition": "resellable"}]))
    await sf.wait_for(key, "return_received")

    async def restocked() -> bool:
        return (await stock_of(sku))["WH-LA"]["on_hand"] == 2
    await eventually(restocked, what="exchanged unit back on hand")
    assert "refunded" not in sf.seen(key)
    assert (await detail(key, rid))["replacement_order_key"] == replacement


async def test_a_lost_parcel_is_reshipped_without_an_operator(storefront: Storefront) -> None:
    sf = storefront
    # Given a shipped order, with stock left for a second shipment
    sku = await new_product(sf, stock={"WH-LA": 4}, price="12.00")
    key, _ = await place(sf, [(sku, 2, "12.00")])
    shipped = await sf.wait_for(key, "shipped")
    parcel = shipped["details"]["parcels"][0]
    # When the carrier reports the parcel lost
    await sf.publish("carrier.tracking", parcel["tracking_number"],
                     sfm.tracking(parcel["carrier"], parcel["tracking_number"], "lost"))
    await sf.wait_for(key, "delivery_exception")
    # Then aftersales authorizes a reship by itself and the replacement order reaches shipped
    authorized = await sf.wait_for(key, "return_authorized")
    assert authorized["reasons"][0]["code"] == "lost_in_transit"
    replacement = f"{key}-R1"
    await sf.wait_for(replacement, "accepted")
    reserved = await sf.wait_for(replacement, "reserved")
    assert reserved["details"]["allocations"][0]["lines"] == [{"sku": sku, "quantity": 2}]
    await sf.wait_for(replacement, "shipped", timeout=90)
    assert "refunded" not in sf.seen(key)


async def test_a_lost_parcel_already_reshipped_on_request_is_not_reshipped_twice(
        storefront: Storefront) -> None:
    sf = storefront
    # Given a shipped order whose customer got a reship for a parcel that never came
    sku = await new_product(sf, stock={"WH-LA": 4}, price="12.00")
    key, _ = await place(sf, [(sku, 1, "12.00")])
    shipped = await sf.wait_for(key, "shipped")
    parcel = shipped["details"]["parcels"][0]
    rid = await request(sf, key, "reship", "not_received", {sku: 1})
    await sf.wait_for(f"{key}-R1", "accepted")
    # When the carrier later reports that parcel lost
    await sf.publish("carrier.tracking", parcel["tracking_number"],
                     sfm.tracking(parcel["carrier"], parcel["tracking_number"], "lost"))
    await sf.wait_for(key, "delivery_exception")
    # Then the automatic reship waits for an operator instead of shipping the lines again
    lost_rid = f"lost-{parcel['parcel_id']}"
    await eventually(lambda: _queued(lost_rid), what="lost parcel queued for an operator")
    body = await detail(key, lost_rid)
    assert body["decision"]["code"] == "already_requested" and body["source"] == "carrier"
    assert [e["details"]["request_id"] for e in sf.statuses[key]
            if e["status"] == "return_authorized"] == [rid]
    assert f"{key}-R2" not in sf.statuses


async def test_operator_approves_a_queued_reship_with_a_note(storefront: Storefront) -> None:
    sf = storefront
    sku = await new_product(sf, stock={"WH-LA": 2}, price="12.00")
    key, _ = await delivered_order(sf, sku, "12.00")
    # Given a reship request the policy cannot decide (reason "other")
    rid = await request(sf, key, "reship", "other", {sku: 1})

    async def queued() -> bool:
        rows = (await http_get("aftersales", "/requests/review", auth=True)).json()
        return any(r["request_id"] == rid for r in rows)
    await eventually(queued, what="request in the operators' queue")
    assert "return_authorized" not in sf.seen(key)
    store, ext = key.split(":")
    # When an operator approves it with a note
    r = await http_post("aftersales", f"/requests/{store}/{ext}/{rid}/decision",
                        {"decision": "approve", "note": "customer photo shows a crushed box",
                         "operator": "sam"})
    assert r.status_code == 200, r.text
    # Then the storefront hears the approval and the replacement ships
    authorized = await sf.wait_for(key, "return_authorized")
    assert authorized["reasons"] == [{"code": "approved_by_operator",
                                      "message": "customer photo shows a crushed box"}]
    await sf.wait_for(f"{key}-R1", "shipped", timeout=90)
    # And the decision is audited; a second decision is refused
    body = await detail(key, rid)
    assert any(h["actor"] == "sam" and h["status"] == "authorized" for h in body["history"])
    again = await http_post("aftersales", f"/requests/{store}/{ext}/{rid}/decision",
                            {"decision": "reject", "note": "too late"})
    assert again.status_code == 409


async def test_operator_rejects_a_queued_refund_with_a_reason(storefront: Storefront) -> None:
    sf = storefront
    sku = await new_product(sf, stock={"WH-LA": 1}, price="80.00")
    key, _ = await delivered_order(sf, sku, "80.00")
    rid = await request(sf, key, "refund", "not_as_described", {sku: 1})
    await eventually(lambda: _queued(rid), what="refund above the threshold queued")
    store, ext = key.split(":")
    r = await http_post("aftersales", f"/requests/{store}/{ext}/{rid}/decision",
                        {"decision": "reject", "note": "please return it instead"})
    assert r.status_code == 200, r.text
    rejected = await sf.wait_for(key, "return_rejected")
    assert rejected["details"] == {"request_id": rid}
    assert rejected["reasons"][0]["code"] == "rejected_by_operator"


async def test_low_rating_is_tagged_in_chinese_and_opens_a_follow_up(
        storefront: Storefront) -> None:
    sf = storefront
    sku = await new_product(sf, stock={"WH-LA": 1}, price="9.00")
    key, _ = await delivered_order(sf, sku, "9.00")
    store, ext = key.split(":")
    await sf.publish("customer.feedback", key, sfm.order_event(
        store, ext, rating=1, comment="包装破损，物流太慢"))  # noqa: RUF001

    async def follow_up() -> list[dict[str, Any]]:
        rows = (await http_get("aftersales", "/follow-ups", auth=True)).json()
        return [r for r in rows if r["order_key"] == key]
    rows = await eventually(follow_up, what="follow-up case")
    assert rows[0]["tags"] == ["damaged", "late"] and rows[0]["rating"] == 1
    assert rows[0]["status"] == "open" and rows[0]["assignee"] is None


async def test_a_follow_up_case_is_assigned_commented_closed_and_reopened(
        storefront: Storefront) -> None:
    sf = storefront
    sku = await new_product(sf, stock={"WH-LA": 1}, price="9.00")
    key, _ = await delivered_order(sf, sku, "9.00")
    store, ext = key.split(":")
    await sf.publish("customer.feedback", key, sfm.order_event(
        store, ext, rating=2, comment="The mug arrived cracked"))

    async def case() -> dict[str, Any] | None:
        rows = (await http_get("aftersales", "/follow-ups?status=all", auth=True)).json()
        return next((r for r in rows if r["order_key"] == key), None)
    cid = (await eventually(case, what="follow-up case"))["id"]
    unassigned = (await http_get("aftersales", "/follow-ups?assignee=", auth=True)).json()
    assert cid in [r["id"] for r in unassigned]

    r = await http_post("aftersales", f"/follow-ups/{cid}/assign",
                        {"assignee": "mei", "operator": "lead"})
    assert r.status_code == 200, r.text
    assert r.json()["assignee"] == "mei"
    mine = (await http_get("aftersales", "/follow-ups?assignee=mei&tag=damaged",
                           auth=True)).json()
    assert [row["id"] for row in mine if row["id"] == cid] == [cid]
    r = await http_post("aftersales", f"/follow-ups/{cid}/comments",
                        {"body": "called the customer, sending a new mug", "operator": "mei"})
    assert r.status_code == 200, r.text
    r = await http_post("aftersales", f"/follow-ups/{cid}/close",
                        {"resolution": "replaced", "note": "reship sent", "operator": "mei"})
    closed = r.json()
    assert r.status_code == 200, r.text
    assert (closed["status"], closed["resolution"], closed["closed_by"]) == (
        "closed", "replaced", "mei")
    assert [n["kind"] for n in closed["notes"]] == ["assigned", "comment", "closed"]
    assert closed["notes"][0]["body"] == "assigned to mei" and closed["notes"][0]["author"] == "lead"

    # A closed case takes no assignment and no second closing; it can be reopened.
    r = await http_post("aftersales", f"/follow-ups/{cid}/assign", {"assignee": "li"})
    assert r.status_code == 409 and "reopen it first" in r.text
    r = await http_post("aftersales", f"/follow-ups/{cid}/close",
                        {"resolution": "bogus", "note": "x"})
    assert r.status_code == 422
    r = await http_post("aftersales", f"/follow-ups/{cid}/reopen",
                        {"note": "the new mug broke too", "operator": "mei"})
    assert r.status_code == 200 and r.json()["status"] == "open"
    assert r.json()["resolution"] is None and r.json()["closed_at"] is None
    r = await http_post("aftersales", f"/follow-ups/{cid}/reopen", {"note": "again"})
    assert r.status_code == 409
    assert (await http_get("aftersales", "/follow-ups/999999999", auth=True)).status_code == 404

    summary = (await http_get("aftersales", "/follow-ups/summary", auth=True)).json()
    assert summary["open"] >= 1 and summary["oldest_open_seconds"] >= 0
    assert summary["closed_last_7_days"] >= 0


async def _queued(rid: str) -> bool:
    rows = (await http_get("aftersales", "/requests/review", auth=True)).json()
    return any(r["request_id"] == rid for r in rows)


async def _async(value: Any) -> Any:
    return value
