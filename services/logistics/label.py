"""Shipping labels: a 4x6 inch PDF (the thermal-printer size every carrier accepts) with a
Code 128 barcode of the tracking number, sender and recipient, service, weight and, for a
cross-border parcel, its CN22/CN23 summary. Drawn with ReportLab, whose Code 128 is built in.

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
from reportlab.pdfgen.canvas import Canvas

PAGE = (4 * inch, 6 * inch)
MARGIN = 4 * mm
# Letters the label font cannot draw and Unicode does not decompose to a Latin base letter.
_LATIN = str.maketrans({"ł": "l", "Ł": "L", "đ": "d", "Đ": "D", "\u0131": "i", "ħ": "h"})


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


def render(data: LabelData) -> bytes:
    buf = io.BytesIO()
    c = Canvas(buf, pagesize=PAGE, pageCompression=1)
    c.setTitle(f"Label {data.tracking_number}")
    c.setAuthor("Shopkeeper logistics")
    width, height = PAGE
    y = height - MARGIN

    c.setFont("Helvetica-Bold", 16)
    y -= 16
    c.drawString(MARGIN, y, latin(data.carrier))
    c.setFont("Helvetica-Bold", 11)
    c.drawRightString(width - MARGIN, y, latin(data.service))
    c.setFont("Helvetica", 8)
    y -= 11
    c.drawString(MARGIN, y, latin(data.service_name))
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

    c.setFont("Helvetica", 7)
    y -= 10
    c.drawString(MARGIN, y, f"Parcel {data.parcel_id}   Order {latin(data.order_key)}")
    if data.customs:
        y -= 10
        c.setFont("Helvetica-Bold", 8)
        c.drawString(MARGIN, y, f"{data.customs.get('form')} - customs declaration attached,"
                                f" value {data.customs.get('total_value')}"
                                f" {data.customs.get('currency')}")
        c.setFont("Helvetica", 6.5)
        lines = data.customs.get("lines")
        for line in (lines if isinstance(lines, list) else [])[:4]:
            y -= 8
            c.drawString(MARGIN, y, latin(
                f"{line.get('quantity')} x {line.get('description') or line.get('sku')}"
                f"  HS {line.get('hs_code') or '-'}  origin {line.get('origin_country') or '-'}"
                f"  {line.get('value')}")[:90])
    c.showPage()
    c.save()
    return buf.getvalue()


def _block(c: Canvas, title: str, lines: Sequence[str], y: float, size: float,
           bold: bool = False) -> float:
    c.setFont("Helvetica-Bold", 6.5)
    c.drawString(MARGIN, y + size * 0.2, title)
    y -= size + 2
    c.setFont("Helvetica-Bold" if bold else "Helvetica", size)
    for text in lines:
        if text:
            c.drawString(MARGIN + 4 * mm, y, latin(text)[:60])
            y -= size + 2
    return y - 2
