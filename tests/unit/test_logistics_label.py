"""Shipping labels (services/logistics/label.py): the PDF opens, is 4x6 inches, and its Code 128
barcode decodes to the tracking number. Rendered to an image by poppler's pdftoppm (an
independent PDF reader) and decoded by zxing-cpp."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import zxingcpp
from PIL import Image

from services.logistics.label import LabelData, latin, render

DATA = LabelData(
    tracking_number="LX100000017DE", carrier="DPOST", service="DP-WPI",
    service_name="Warenpost International", weight_g=480, parcel_id="P-0123456789ab-1",
    order_key="shop-test-1:o-1",
    sender=["Shopkeeper Frankfurt DC", "Cargo City Sued 557", "Frankfurt am Main HE 60549", "DE"],
    recipient=["Łukasz Żółw", "ul. Marszałkowska 1", "", "Warszawa 00-624", "PL"], country="PL",
    customs={"form": "CN22", "total_value": "25.00", "currency": "USD",
             "lines": [{"sku": "MUG", "quantity": 2, "description": "Ceramic mug",
                        "hs_code": "691200", "origin_country": "CN", "value": "25.00"}]})


def decode(pdf: bytes, tmp_path: Path) -> tuple[list[tuple[str, str]], tuple[int, int]]:
    """Barcodes (text, format) found on the label rendered at 203 dpi, a thermal printer's."""
    source = tmp_path / "label.pdf"
    source.write_bytes(pdf)
    subprocess.run(["pdftoppm", "-r", "203", "-png", "-singlefile", str(source),
                    str(tmp_path / "label")], check=True, capture_output=True)
    image = Image.open(tmp_path / "label.png")
    return [(b.text, b.format.name) for b in zxingcpp.read_barcodes(image)], image.size


@pytest.mark.parametrize("number", ["LX100000017DE", "1Z0000000010000001",
                                    "9400000000000010000001", "JD000000000010000001"])
def test_the_label_barcode_decodes_to_the_tracking_number(number: str, tmp_path: Path) -> None:
    # Given a label for a tracking number of each seeded format (S10, UPS, USPS, DHL)
    pdf = render(DATA.__class__(**{**DATA.__dict__, "tracking_number": number}))
    # When it is rendered by another PDF reader and scanned
    found, size = decode(pdf, tmp_path)
    # Then it is a 4x6 inch page and its one barcode is Code 128 of the tracking number
    assert pdf.startswith(b"%PDF-")
    assert size == (812, 1218)  # 4 x 6 inches at 203 dpi
    assert found == [(number, "Code128")]


def test_the_label_carries_service_weight_addresses_and_customs(tmp_path: Path) -> None:
    # Given a cross-border label
    source = tmp_path / "label.pdf"
    source.write_bytes(render(DATA))
    # When its text is extracted
    text = subprocess.run(["pdftotext", "-layout", str(source), "-"], check=True,
                          capture_output=True, text=True).stdout
    # Then service, weight, both addresses (in Latin letters) and the CN22 summary are on it
    for expected in ("DP-WPI", "Warenpost International", "0.480 kg", "Frankfurt am Main",
                     "Lukasz Zólw", "ul. Marszalkowska 1", "Warszawa 00-624",
                     "CN22", "HS 691200", "origin CN"):
        assert expected in text, expected


@pytest.mark.parametrize(("text", "printed"), [
    ("São Paulo", "São Paulo"), ("Łódź", "Lódz"), ("Straße", "Straße"), ("東京", "??"),
    ("Hà Nội", "Hà Noi"),
])
def test_addresses_are_printed_in_latin_letters(text: str, printed: str) -> None:
    assert latin(text) == printed
