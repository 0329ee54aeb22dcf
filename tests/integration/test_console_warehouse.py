"""The console's warehouse pages in a real browser, on the real stack with fulfillment restarted
in manual mode (waves of one order, no timer; automatic mode is restored at the end, as in
test_fulfillment_manual.py): the wave, its pick list in route order, scanning every unit with a
keyboard-wedge scanner (typed code + Enter), weighing with the tolerance check, packing, and the
4x6 label PDF once the parcel has shipped.

The order ships from WH-FRA (stock only there) to Germany, so no other test's order joins it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from playwright.async_api import Browser, Page, expect

from services.fulfillment.domain import Bin, route_key
from tests.conftest import ref
from tools.storefront import Storefront

from .console_browser import console_url, new_page, shot, sign_in
from .helpers import eventually, http_get, new_product, place, restarted_with

MANUAL_ENV = {"SHOPKEEPER_WAREHOUSE_MODE": "manual", "SHOPKEEPER_FULFILLMENT_WAVE_SIZE": "1",
              "SHOPKEEPER_FULFILLMENT_WAVE_SECONDS": "3600"}
Users = dict[str, tuple[str, str]]


@pytest.fixture(scope="module")
def manual_warehouse(stack: None) -> Iterator[None]:
    with restarted_with("fulfillment", MANUAL_ENV):
        yield


async def _pick(order_id: str) -> dict[str, Any] | None:
    r = await http_get("fulfillment", f"/orders/{order_id}")
    if r.status_code != 200:
        return None
    picks = r.json()["picks"]
    return picks[0] if picks and picks[0]["wave_id"] else None


async def _scan(page: Page, code: str) -> str:
    """What a keyboard-wedge scanner does: types the code and Enter, into the focused field."""
    before = await page.locator("#station").get_attribute("data-swap") or ""
    field = page.locator("#scan")
    await expect(field).to_be_focused()
    await page.keyboard.type(code)
    await page.keyboard.press("Enter")
    await expect(page.locator("#station")).not_to_have_attribute("data-swap", before)
    return await page.locator("#result").inner_text()


async def test_a_manual_wave_is_picked_scanned_weighed_packed_and_ships(
        manual_warehouse: None, storefront: Storefront, browser: Browser, users: Users) -> None:
    sf = storefront
    # Given an order of two mugs and a lamp, stocked only in Frankfurt, reserved
    mug = await new_product(sf, stock={"WH-FRA": 10}, weight_g=350)
    lamp = await new_product(sf, stock={"WH-FRA": 10}, weight_g=900, dims=(200, 150, 120))
    key, _ = await place(sf, [(mug, 2, "12.50"), (lamp, 1, "30.00")], country="DE",
                         customer_id=ref("c"))
    order_id = str((await sf.wait_for(key, "reserved", timeout=60))["order_id"])
    pick = await eventually(lambda: _pick(order_id), timeout=60, what="the order in a wave")
    context, page = await new_page(browser)
    await sign_in(page, users["warehouse"], "/warehouse")

    # When the picker opens the wave: the pick list, one line per SKU, in walking order
    await shot(page, "warehouse-waves-en")
    await page.click(f"a[data-wave='{pick['wave_id']}']")
    rows = page.locator("table.picklist tr")
    await expect(rows).to_have_count(3)  # header + two SKUs
    bins = [Bin(b[0], int(b[1]), int(b[2]), int(b[3])) for b in
            [(await rows.nth(i).locator("td.bin").inner_text()).split("-") for i in (1, 2)]]
    assert bins == sorted(bins, key=route_key)
    mug_row = page.locator("table.picklist tr", has_text=mug)
    await expect(mug_row.locator("td.num")).to_have_text("2")
    await shot(page, "wave-en")
    # And it prints (a page of its own, for paper)
    async with context.expect_page() as printed:
        await page.click("#print-pick-list")
    print_page = await printed.value
    await expect(print_page.locator("table.picklist")).to_contain_text(lamp)
    await shot(print_page, "wave-print-en")
    await print_page.close()

    # When the packer opens the order's station and scans a code the order does not have
    await page.click(f"a[data-order='{key}']")
    await expect(page.locator("#scan")).to_be_focused()
    assert "Refused" in await _scan(page, "NOT-A-CODE-1")
    await expect(page.locator("#result")).to_have_class("result err")
    # And every unit, one scan each: each accepted, the field ready for the next
    for code in (mug, lamp, mug):
        assert code in await _scan(page, code)
        await expect(page.locator("#result")).to_have_class("result ok")
    # And with every unit in, the scan field closes and weighing opens
    await expect(page.locator("#scan")).to_be_disabled()
    await shot(page, "station-scanned-en")

    # When the parcel is weighed far off: the check fails and says what it should weigh
    await page.fill("#weight", "100")
    await page.click("#weigh")
    await expect(page.locator("#result")).to_contain_text("Weight off")
    pick = await _pick(order_id)
    assert pick is not None
    expected = pick["expected_g"]
    # And weighed again right: accepted
    await page.fill("#weight", str(expected + 10))
    await page.click("#weigh")
    await expect(page.locator("#result")).to_contain_text("Weight OK")
    # And packed
    await page.click("#pack")
    await expect(page.locator("#result")).to_contain_text("Packed in 1 parcel")
    await expect(page.locator("#result")).to_have_class("result ok")
    # Then it ships, and the station offers the 4x6 label once logistics has made it
    await sf.wait_for(key, "shipped", timeout=60)
    label = page.locator("a[id^=label-]")
    await expect(label).to_be_visible(timeout=30_000)
    await shot(page, "station-en")
    pdf = await page.request.get(console_url(await label.get_attribute("href") or ""))
    assert pdf.status == 200 and pdf.headers["content-type"] == "application/pdf"
    assert (await pdf.body()).startswith(b"%PDF")
    # And the wave is done
    wave = (await http_get("fulfillment", f"/waves/{pick['wave_id']}")).json()
    assert wave["status"] == "done"
    await context.close()


async def test_a_viewer_sees_the_station_but_cannot_scan(
        manual_warehouse: None, storefront: Storefront, browser: Browser, users: Users) -> None:
    sf = storefront
    sku = await new_product(sf, stock={"WH-FRA": 2}, weight_g=300)
    key, _ = await place(sf, [(sku, 1, "12.50")], country="DE", customer_id=ref("c"))
    order_id = str((await sf.wait_for(key, "reserved", timeout=60))["order_id"])
    await eventually(lambda: _pick(order_id), timeout=60, what="the order in a wave")
    context, page = await new_page(browser)
    await sign_in(page, users["viewer"], f"/warehouse/orders/{order_id}")
    # The station shows what is to scan, without the scan field
    await expect(page.locator("#station")).to_contain_text(sku)
    assert await page.locator("#scan").count() == 0
    # And a scan posted by hand is refused
    token = await page.get_attribute("input[name=csrf]", "value")
    r = await page.request.post(console_url(f"/warehouse/orders/{order_id}/scan"),
                                form={"code": sku, "csrf": token or ""})
    assert r.status == 403
    pick = await _pick(order_id)
    assert pick is not None and pick["remaining"] == {sku: 1}
    await context.close()
