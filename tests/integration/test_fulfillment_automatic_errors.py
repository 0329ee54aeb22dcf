"""Automatic mode with the simulated pickers' errors turned on, on the real stack: every unit is
mis-scanned once (refused, counted) and every scale reading is off, so each parcel goes on QC
hold; staff then weigh it by hand (the HTTP works in either mode) and it ships. The module
restarts fulfillment with the error rates and restores the defaults at the end."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest

from tests.conftest import ref
from tools.storefront import Storefront

from .helpers import admin_client, http_get, new_product, place, restarted_with

ERRORS_ON = {"SHOPKEEPER_FULFILLMENT_SCAN_ERROR_RATE": "1",
             "SHOPKEEPER_FULFILLMENT_WEIGH_ERROR_RATE": "1"}


@pytest.fixture(scope="module")
def clumsy_warehouse(stack: None) -> Iterator[None]:
    with restarted_with("fulfillment", ERRORS_ON):
        yield


async def _metric(name: str, labels: str = "") -> float:
    text = (await http_get("fulfillment", "/metrics")).text
    pattern = rf"^{re.escape(name)}{re.escape(labels)} ([0-9.e+]+)$"
    m = re.search(pattern, text, re.MULTILINE)
    return float(m.group(1)) if m else 0.0


async def test_simulated_errors_are_refused_and_held_then_staff_release_the_parcel(
        storefront: Storefront, clumsy_warehouse: None) -> None:
    sf = storefront
    refused = await _metric("shopkeeper_fulfillment_scans_refused_total", '{reason="wrong_item"}')
    failed = await _metric("shopkeeper_fulfillment_weigh_check_failures_total",
                           '{warehouse="WH-FRA"}')
    # Given an order of three units
    sku = await new_product(sf, stock={"WH-FRA": 3}, weight_g=400)
    key, _ = await place(sf, [(sku, 3, "12.50")], country="DE", customer_id=ref("c"))
    # When the simulated picker works its wave
    held = await sf.wait_for(key, "on_hold", timeout=60)
    # Then each unit's wrong scan was refused, and the scale put it on QC hold (no label)
    assert held["reasons"][0]["code"] == "qc_weight"
    assert await _metric("shopkeeper_fulfillment_scans_refused_total",
                         '{reason="wrong_item"}') == refused + 3
    assert await _metric("shopkeeper_fulfillment_weigh_check_failures_total",
                         '{warehouse="WH-FRA"}') == failed + 1
    order_id = str(held["order_id"])
    pick = (await http_get("fulfillment", f"/orders/{order_id}")).json()["picks"][0]
    assert pick["status"] == "on_hold" and pick["expected_g"] == 3 * 400 + 120  # BOX-S tare
    assert abs(pick["measured_g"] - pick["expected_g"]) > 40
    # When staff weigh it right and pack it
    async with admin_client("fulfillment") as staff:
        w = (await staff.post(f"/orders/{order_id}/weigh",
                              json={"weight_g": pick["expected_g"] - 30})).json()
        assert w["ok"], w
        assert (await staff.post(f"/orders/{order_id}/pack")).status_code == 200
    # Then it ships
    await sf.wait_for(key, "shipped", timeout=60)
    # And its wave is done
    wave = (await http_get("fulfillment", f"/waves/{pick['wave_id']}")).json()
    assert wave["status"] == "done"
