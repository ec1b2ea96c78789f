"""A fax's page as a PNG (sandbox task "firstpage", child side): the first page for a
preview's ack, any page for the job page's thumbnails (mailgw.http.web.media_routes).

The fax is the PDF the driver would get (cover and header line included) or a fax TIFF;
its first page is drawn at `width` pixels (800 by default: what a mail client shows
whole, sharp enough to read a letter) in grey levels, as the fax machine will print it.
Only the sandbox worker imports this (through mailgw.documents.tasks), so its libraries
are loaded at the top, before any fork.
"""

from __future__ import annotations

import base64
import io
import json
import logging

import pypdfium2 as pdfium
from PIL import Image

WIDTH = 800
MAX_WIDTH = 2000
TIFF_MAGIC = (b"II*\x00", b"MM\x00*")


def _from_tiff(data: bytes, width: int, index: int = 0) -> tuple[Image.Image, int]:
    image = Image.open(io.BytesIO(data))
    pages = getattr(image, "n_frames", 1)
    image.seek(index)
    dpi = image.info.get("dpi") or (204, 196)
    # fax TIFFs have non-square pixels (204×98, 204×196): drawn at the paper's proportions
    height = image.height * float(dpi[0]) / float(dpi[1] or dpi[0])
    page = image.convert("L").resize((width, max(1, round(height * width / image.width))))
    return page, pages


def _from_pdf(data: bytes, width: int, index: int = 0) -> tuple[Image.Image, int]:
    pdf = pdfium.PdfDocument(data)
    try:
        pages = len(pdf)
        if not 0 <= index < pages:
            raise IndexError(f"no page {index + 1} in {pages}")
        page = pdf[index]
        bitmap = page.render(scale=width / page.get_width(), grayscale=True)
        image = bitmap.to_pil().convert("L")
        if image.width != width:  # pdfium rounds the page's edges outwards
            image = image.resize((width, max(1, round(image.height * width / image.width))))
        return image, pages
    finally:
        pdf.close()


def first_page_png(data: bytes) -> dict[str, object]:
    """Input: one JSON line ({"width": 800}, and "page": 0-based, 0 by default), then the
    PDF or TIFF. The answer: png (base64), width, height and the fax's pages; or error."""
    logging.disable(logging.CRITICAL)
    head, _, body = data.partition(b"\n")
    asked = json.loads(head or b"{}")
    width = min(max(int(asked.get("width") or WIDTH), 100), MAX_WIDTH)
    index = max(int(asked.get("page") or 0), 0)
    try:
        page, pages = _from_tiff(body, width, index) if body[:4] in TIFF_MAGIC \
            else _from_pdf(body, width, index)
    except Exception as exc:  # noqa: BLE001 - any reader failure: no picture, said why
        return {"error": f"{type(exc).__name__}: {str(exc)[:200]}"}
    out = io.BytesIO()
    page.save(out, "PNG", optimize=True)
    return {"png": base64.b64encode(out.getvalue()).decode("ascii"), "width": page.width,
            "height": page.height, "pages": pages}
