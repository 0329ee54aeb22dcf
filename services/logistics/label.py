"""Shipping labels: a 4x6 inch PDF (the thermal-printer size every carrier accepts) with a
Code 128 barcode of the tracking number, sender and recipient, service, weight and, for a
cross-border parcel, its CN22/CN23 summary. Drawn with ReportLab, whose Code 128 is built in.

Names and addresses in Chinese, Japanese and Korean are printed in their own script: a run of
CJK text is drawn with one of ReportLab's built-in CID fonts, chosen by the line's script
(Hangul: HYSMyeongJo-Medium; kana: HeiseiMin-W3; other Han: STSong-Light, simplified Chinese),
and the rest of the line with Helvetica. The CID fonts are not embedded: the PDF names the Adobe
character collection and the reader supplies the glyphs (Acrobat, browsers' viewers, and poppler
with Debian's poppler-data do). A reader or printer without CJK fonts shows boxes there, not "?"s
in the file; embedding a TrueType CJK font would remove that dependency (not done: 10-20 MB).
Letters of other scripts (Cyrillic, Arabic, …) still print as "?".

Rendering is CPU work: callers run it in a thread (asyncio.to_thread) so the event loop keeps
Kafka heartbeats going.
"""

from __future__ import annotations

import io
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from reportlab.graphics.barcode.code128 import Code128
from reportlab.lib.units import inch, mm
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.cidfonts import UnicodeCIDFont
from reportlab.pdfgen.canvas import Canvas

PAGE = (4 * inch, 6 * inch)
MARGIN = 4 * mm
# Letters the label font cannot draw and Unicode does not decompose to a Latin base letter.
_LATIN = str.maketrans({"ł": "l", "Ł": "L", "đ": "d", "Đ": "D", "\u0131": "i", "ħ": "h"})

CJK_FONTS = {"zh": "STSong-Light", "ja": "HeiseiMin-W3", "ko": "HYSMyeongJo-Medium"}
for _font in CJK_FONTS.values():  # once, at import: registration is global and not thread-safe
    pdfmetrics.registerFont(UnicodeCIDFont(_font))

_HANGUL = ((0x1100, 0x11FF), (0x3130, 0x318F), (0xA960, 0xA97F), (0xAC00, 0xD7AF),
           (0xD7B0, 0xD7FF))
_KANA = ((0x3040, 0x30FF), (0x31F0, 0x31FF), (0xFF66, 0xFF9F))
_HAN = ((0x3400, 0x4DBF), (0x4E00, 0x9FFF), (0xF900, 0xFAFF), (0x20000, 0x2FA1F))
# CJK punctuation, full-width forms and enclosed CJK: drawn with the CJK font of the line.
_CJK_OTHER = ((0x3000, 0x303F), (0x3200, 0x32FF), (0xFF00, 0xFF65), (0xFFA0, 0xFFEF))


def _within(ch: str, ranges: tuple[tuple[int, int], ...]) -> bool:
    code = ord(ch)
    return any(lo <= code <= hi for lo, hi in ranges)


def is_cjk(ch: str) -> bool:
    return any(_within(ch, r) for r in (_HANGUL, _KANA, _HAN, _CJK_OTHER))


def cjk_script(text: str) -> str | None:
    """The line's CJK language by its letters: any Hangul is Korean (Hanja included), any kana
    Japanese (kanji included), other Han Chinese; None without CJK."""
    if any(_within(ch, _HANGUL) for ch in text):
        return "ko"
    if any(_within(ch, _KANA) for ch in text):
        return "ja"
    if any(is_cjk(ch) for ch in text):
        return "zh"
    return None


def runs(text: str, latin_font: str) -> list[tuple[str, str]]:
    """(font, text) pieces of a line: CJK runs in the line's CJK font, the rest as `latin`
    prints it in `latin_font`."""
    script = cjk_script(text)
    if script is None:
        return [(latin_font, latin(text))] if text else []
    out: list[tuple[str, str]] = []
    for ch in text:
        font = CJK_FONTS[script] if is_cjk(ch) else latin_font
        piece = ch if font != latin_font else latin(ch)
        if out and out[-1][0] == font:
            out[-1] = (font, out[-1][1] + piece)
        else:
            out.append((font, piece))
    return out


@dataclass(frozen=True)
class LabelData:
    tracking_number: str
    carrier: str
    service: str
    service_name: str
    weight_g: int
    parcel_id: str
    order_key: str
    sender: Sequence[str]
    recipient: Sequence[str]
    country: str
    customs: Mapping[str, object] | None = None


def latin(text: str) -> str:
    """What the label's standard font can print. UPU asks for addresses on international mail
    in Latin letters; accents survive (WinAnsi has them), other letters lose their diacritics,
    and anything else becomes '?'."""
    out = []
    for ch in text.translate(_LATIN):
        try:
            ch.encode("cp1252")
            out.append(ch)
        except UnicodeEncodeError:
            base = "".join(c for c in unicodedata.normalize("NFKD", ch)
                           if not unicodedata.combining(c))
            try:
                base.encode("ascii")
                out.append(base or "?")
            except UnicodeEncodeError:
                out.append("?")
    return "".join(out)


def text_width(text: str, font: str, size: float) -> float:
    return sum(pdfmetrics.stringWidth(piece, f, size) for f, piece in runs(text, font))


def draw(c: Canvas, x: float, y: float, text: str, font: str, size: float,
         align: str = "left") -> None:
    """Draw a line of the label's data in its scripts; `align` left or right (x is the edge)."""
    if align == "right":
        x -= text_width(text, font, size)
    for f, piece in runs(text, font):
        c.setFont(f, size)
        c.drawString(x, y, piece)
        x += pdfmetrics.stringWidth(piece, f, size)


def render(data: LabelData) -> bytes:
    buf = io.BytesIO()
    c = Canvas(buf, pagesize=PAGE, pageCompression=1)
    c.setTitle(f"Label {data.tracking_number}")
    c.setAuthor("Shopkeeper logistics")
    width, height = PAGE
    y = height - MARGIN

    y -= 16
    draw(c, MARGIN, y, data.carrier, "Helvetica-Bold", 16)
    draw(c, width - MARGIN, y, data.service, "Helvetica-Bold", 11, align="right")
    y -= 11
    draw(c, MARGIN, y, data.service_name, "Helvetica", 8)
    c.setFont("Helvetica", 8)
    c.drawRightString(width - MARGIN, y, f"{data.weight_g / 1000:.3f} kg")
    y -= 4
    c.line(MARGIN, y, width - MARGIN, y)

    y = _block(c, "FROM", data.sender, y - 12, 7.5)
    c.line(MARGIN, y, width - MARGIN, y)
    y = _block(c, "SHIP TO", data.recipient, y - 14, 11, bold=True)
    c.line(MARGIN, y, width - MARGIN, y)

    # Quiet zones of 10 modules either side (ISO/IEC 15417); a 0.33 mm module scans on 203 dpi
    # thermal printers and keeps a 20-character number inside the 4-inch width.
    barcode = Code128(data.tracking_number, barWidth=0.33 * mm, barHeight=22 * mm,
                      quiet=True, lquiet=10 * 0.33 * mm, rquiet=10 * 0.33 * mm)
    bx = max(MARGIN, (width - barcode.width) / 2)
    y -= 22 * mm + 6
    barcode.drawOn(c, bx, y)
    c.setFont("Courier-Bold", 11)
    y -= 12
    c.drawCentredString(width / 2, y, data.tracking_number)
    y -= 6
    c.line(MARGIN, y, width - MARGIN, y)

    y -= 10
    draw(c, MARGIN, y, f"Parcel {data.parcel_id}   Order {data.order_key}", "Helvetica", 7)
    if data.customs:
        y -= 10
        c.setFont("Helvetica-Bold", 8)
        c.drawString(MARGIN, y, f"{data.customs.get('form')} - customs declaration attached,"
                                f" value {data.customs.get('total_value')}"
                                f" {data.customs.get('currency')}")
        if data.customs.get("ioss_number"):
            # EU import VAT paid at the sale (IOSS): customs must see the number at once.
            y -= 9
            c.drawString(MARGIN, y, latin(f"IOSS {data.customs.get('ioss_number')} - EU VAT paid"))
        lines = data.customs.get("lines")
        for line in (lines if isinstance(lines, list) else [])[:4]:
            y -= 8
            draw(c, MARGIN, y, (
                f"{line.get('quantity')} x {line.get('description') or line.get('sku')}"
                f"  HS {line.get('hs_code') or '-'}  origin {line.get('origin_country') or '-'}"
                f"  {line.get('value')}")[:90], "Helvetica", 6.5)
    c.showPage()
    c.save()
    return buf.getvalue()


def _block(c: Canvas, title: str, lines: Sequence[str], y: float, size: float,
           bold: bool = False) -> float:
    c.setFont("Helvetica-Bold", 6.5)
    c.drawString(MARGIN, y + size * 0.2, title)
    y -= size + 2
    for text in lines:
        if text:
            draw(c, MARGIN + 4 * mm, y, text[:60], "Helvetica-Bold" if bold else "Helvetica", size)
            y -= size + 2
    return y - 2
