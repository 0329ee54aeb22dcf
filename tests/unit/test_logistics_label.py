"""Shipping labels (services/logistics/label.py): the PDF opens, is 4x6 inches, and its Code 128
barcode decodes to the tracking number. Rendered to an image by poppler's pdftoppm (an
independent PDF reader) and decoded by zxing-cpp."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest
import zxingcpp
from PIL import Image

from services.logistics.label import CJK_FONTS, LabelData, cjk_script, latin, render, runs

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


def test_a_parcel_into_the_eu_shows_the_ioss_number_on_its_customs_summary(
        tmp_path: Path) -> None:
    # Given a parcel from the US to Germany whose declaration carries the order's IOSS number
    data = replace(DATA, country="DE", customs={**DATA.customs,  # type: ignore[dict-item]
                                                 "form": "CN23", "ioss_number": "IM2760000001"})
    source = tmp_path / "label.pdf"
    source.write_bytes(render(data))
    # When its text is extracted
    text = subprocess.run(["pdftotext", "-layout", str(source), "-"], check=True,
                          capture_output=True, text=True).stdout
    # Then the customs summary names the form and the IOSS number; a label without one does not
    assert "CN23" in text and "IOSS IM2760000001" in text
    source.write_bytes(render(DATA))
    plain = subprocess.run(["pdftotext", "-layout", str(source), "-"], check=True,
                           capture_output=True, text=True).stdout
    assert "IOSS" not in plain


@pytest.mark.parametrize(("text", "printed"), [
    ("São Paulo", "São Paulo"), ("Łódź", "Lódz"), ("Straße", "Straße"), ("東京", "??"),
    ("Hà Nội", "Hà Noi"),
])
def test_addresses_are_printed_in_latin_letters(text: str, printed: str) -> None:
    assert latin(text) == printed


# --- Chinese, Japanese and Korean ---------------------------------------------------------------
PDFTOTEXT = shutil.which("pdftotext")
CJK = {
    "zh": ["王小明", "北京市朝阳区建国路88号", "北京 100022", "CN"],
    "ja": ["山田 さくら", "東京都渋谷区神南1-2-3 マンション101", "渋谷区 150-0041", "JP"],
    "ko": ["김민준", "서울특별시 강남구 테헤란로 152", "서울 06236", "KR"],
}


def pdf_text(pdf: bytes, tmp_path: Path) -> str:
    """The label's text as poppler's pdftotext reads it (CID fonts map back to Unicode through
    Debian's poppler-data)."""
    assert PDFTOTEXT is not None
    source = tmp_path / "label.pdf"
    source.write_bytes(pdf)
    out = subprocess.run([PDFTOTEXT, "-layout", str(source), "-"], check=True,
                         capture_output=True, text=True)
    return out.stdout


@pytest.mark.skipif(PDFTOTEXT is None, reason="pdftotext (poppler-utils) is not installed;"
                    " scripts/install-system-deps.sh installs it")
@pytest.mark.parametrize("script", sorted(CJK))
def test_chinese_japanese_and_korean_names_print_in_their_own_script(script: str,
                                                                      tmp_path: Path) -> None:
    # Given a parcel to an address written in Chinese, Japanese or Korean
    recipient = CJK[script]
    data = replace(DATA, recipient=recipient, country=recipient[-1],
                   customs={**DATA.customs, "lines": [  # type: ignore[dict-item]
                       {"sku": "TEA", "quantity": 1, "description": "乌龙茶 Oolong tea",
                        "hs_code": "090230", "origin_country": "CN", "value": "12.00"}]})
    # When its label is rendered and read back by an independent PDF reader
    text = pdf_text(render(data), tmp_path)
    # Then every name and address line is there as written, not as question marks
    for line in recipient:
        for word in line.split():
            assert word in text, f"{word!r} missing from the {script} label:\n{text}"
    assert "乌龙茶" in text and "Oolong tea" in text
    assert "?" not in text
    # and the Latin parts and the barcode are as before
    assert "Shopkeeper Frankfurt DC" in text and "LX100000017DE" in text
    codes, _ = decode(render(data), tmp_path)
    assert ("LX100000017DE", "Code128") in codes


def test_each_line_uses_the_cjk_font_of_its_script_and_helvetica_for_the_rest() -> None:
    assert cjk_script("Łukasz Żółw") is None
    assert runs("Łukasz", "Helvetica") == [("Helvetica", "Lukasz")]
    assert cjk_script("東京都 さくら") == "ja"  # kanji with kana: Japanese
    assert cjk_script("서울 江南") == "ko"      # Hangul with Hanja: Korean
    assert cjk_script("北京市") == "zh"
    assert runs("北京 100022", "Helvetica") == [
        (CJK_FONTS["zh"], "北京"), ("Helvetica", " 100022")]
    assert runs("Москва 東京", "Helvetica")[0] == ("Helvetica", "?????? ")
