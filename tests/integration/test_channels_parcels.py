"""Orders that ship in several parcels, and EU imports: every parcel's tracking goes back to the
platform (Shopify: one fulfillment per parcel with its items; WooCommerce: one note naming them
all), and the channel's IOSS number reaches the customs declaration and the label. Real Kafka,
Postgres and services; the platforms are the emulator."""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path
from typing import Any

from tests.conftest import ref
from tools.channel_emulator import Emulator, shopify_order, woo_order
from tools.storefront import Storefront

from .channel_helpers import configure, emulator, order_number, shopify_webhook, woo_webhook
from .helpers import eventually, http_get, new_product

__all__ = ["emulator"]
IOSS = "IM2760000001"


async def shipments(store: str, ext: str) -> list[dict[str, Any]]:
    return list((await http_get("logistics", f"/shipments/{store}/{ext}", auth=True)).json())


def pdf_text(pdf: bytes, tmp_path: Path, name: str) -> str:
    (tmp_path / name).write_bytes(pdf)
    return subprocess.run(["pdftotext", "-layout", str(tmp_path / name), "-"], check=True,
                          capture_output=True, text=True).stdout


async def test_an_eu_order_in_two_parcels_gets_ioss_papers_and_a_fulfillment_per_parcel(
        storefront: Storefront, emulator: Emulator, tmp_path: Path) -> None:
    # Given a Shopify store with an IOSS number, and two products in two warehouses outside
    # the EU (Los Angeles, Shenzhen)
    store = ref("shopify")
    await configure(store, "shopify", emulator, options={"ioss_number": IOSS})
    a = await new_product(storefront, stock={"WH-LA": 5})
    b = await new_product(storefront, stock={"WH-SZ": 5})
    oid = order_number()
    order = shopify_order(oid, [(a, 1, "12.50"), (b, 2, "8.00")], country="DE", province=None)
    # When a German customer's order arrives through the webhook
    r = await shopify_webhook(store, order)
    assert r.status_code == 200 and r.json()["outcome"] == "placed", r.text
    # Then it ships in two parcels, each with its own lines
    shipped = await storefront.wait_for(f"{store}:{oid}", "shipped", timeout=120)
    parcels = shipped["details"]["parcels"]
    assert sorted((p["lines"][0]["sku"], p["lines"][0]["quantity"]) for p in parcels) \
        == sorted([(a, 1), (b, 2)])
    # And both parcels (US -> DE, CN -> DE) declare the IOSS number, printed on the label
    rows = await shipments(store, str(oid))
    assert len(rows) == 2
    for row in rows:
        assert row["customs"]["ioss_number"] == IOSS, row["customs"]
        label = await http_get("logistics", f"/labels/{row['parcel_id']}.pdf", auth=True)
        assert label.status_code == 200
        text = await asyncio.to_thread(pdf_text, label.content, tmp_path, row["parcel_id"])
        assert f"IOSS {IOSS}" in text and row["customs"]["form"] in text

    # And Shopify gets one fulfillment per parcel: its tracking number and its items only
    async def both() -> list[dict[str, Any]] | None:
        done = emulator.fulfilled.get(str(oid), [])
        return done if len(done) == 2 else None
    fulfillments = await eventually(both, timeout=60, what="two fulfillments written back")
    line_item = {a: oid * 100, b: oid * 100 + 1}  # shopify_order's line item ids
    sent = {}
    for f in fulfillments:
        [group] = f["line_items_by_fulfillment_order"]
        [item] = group["fulfillment_order_line_items"]
        sent[f["tracking_info"]["number"]] = ((item["id"] - 7) // 10, item["quantity"])
        assert f["tracking_info"]["company"] and f["notify_customer"] is True
    assert sent == {p["tracking_number"]: (line_item[p["lines"][0]["sku"]],
                                           p["lines"][0]["quantity"]) for p in parcels}
    # And nothing is left open on the shop's fulfillment order
    assert not any(emulator.shopify_left[str(oid)].values())


async def test_a_woocommerce_order_in_two_parcels_names_both_in_its_note(
        storefront: Storefront, emulator: Emulator) -> None:
    store = ref("woo")
    await configure(store, "woocommerce", emulator)
    a = await new_product(storefront, stock={"WH-LA": 5})
    b = await new_product(storefront, stock={"WH-SZ": 5})
    oid = order_number()
    r = await woo_webhook(store, woo_order(oid, [(a, 1, "10.00"), (b, 1, "10.00")]))
    assert r.status_code == 200 and r.json()["outcome"] == "placed", r.text
    shipped = await storefront.wait_for(f"{store}:{oid}", "shipped", timeout=120)
    numbers = [p["tracking_number"] for p in shipped["details"]["parcels"]]
    assert len(numbers) == 2

    async def written() -> list[Any]:
        return emulator.calls_to(f"/wp-json/wc/v3/orders/{oid}/notes", "POST")
    [note] = await eventually(written, timeout=60, what="tracking note written back")
    assert all(n in note.body["note"] for n in numbers), note.body
