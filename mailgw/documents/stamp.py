"""Cover pages and header lines put on a fax's PDF, in the sandbox worker (task "compose" of
mailgw.documents.tasks): the document is untrusted, and pypdf and fpdf2 run on it here.

- The cover page is laid out by fpdf2 (pure Python) from the HTML the cover template made
  (mailgw.documents.cover, in the parent): fpdf2's `write_html` knows headings, paragraphs,
  bold, tables and rules. A cover longer than one page is cut to its first page. Text is in
  DejaVu Sans (fonts/, a subset: Latin, Latin-1 and Extended, Greek, Cyrillic), so French
  accents and Cyrillic names print: fpdf2's own fonts are Latin-1 only.
- The header line is drawn over the top of every page, as fax machines print it: its text
  on the left, "Page x/y" on the right, on white, 7 pt at the fax's scale. A landscape page
  is turned a quarter to the left when it becomes a fax page (mailgw.documents.render), so
  its header runs down its right edge, which becomes the fax page's top.

Vector text on the PDF, not pixels: the PDF stays what it was (the drivers render it
themselves), and the text can be read back (tests, the preview).
"""

from __future__ import annotations

import io
from pathlib import Path

from fpdf import FPDF
from pypdf import PdfReader, PdfWriter, Transformation

from mailgw.documents.render import FAX_INCHES, PAPERS

FONTS = Path(__file__).with_name("fonts")
FAMILY = "dejavu"
HEADER_PT = 7.0  # the header's size once the page is fitted to the fax page
MARGIN_PT = 5.0  # from the page's edges, at the fax's scale


def _pdf() -> FPDF:
    pdf = FPDF(unit="pt", format="A4")
    regular, bold = str(FONTS / "DejaVuSans.ttf"), str(FONTS / "DejaVuSans-Bold.ttf")
    # no oblique face is shipped: <i> and <em> print upright rather than fail
    for style, path in (("", regular), ("B", bold), ("I", regular), ("BI", bold)):
        pdf.add_font(FAMILY, style, path)
    pdf.set_font(FAMILY, size=12)
    pdf.set_margins(56, 56, 56)
    return pdf


def cover_page(html: str) -> bytes:
    """One A4 page laid out from `html`; only the first page when it runs longer."""
    pdf = _pdf()
    pdf.add_page()
    pdf.write_html(html, font_family=FAMILY)
    data = bytes(pdf.output())
    if pdf.pages_count == 1:
        return data
    writer = PdfWriter()
    writer.add_page(PdfReader(io.BytesIO(data)).pages[0])
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def _fit(w_in: float, h_in: float) -> float:
    """The scale a w × h inch page gets on the fax page (as mailgw.documents.render.geometry)."""
    short, long = min(w_in, h_in), max(w_in, h_in)
    ratio = long / short
    paper = "letter" if abs(ratio - 11 / 8.5) < abs(ratio - 297 / 210) else "a4"
    return min(FAX_INCHES / short, PAPERS[paper] / long)


def _header(pdf: FPDF, w: float, h: float, left: str, right: str) -> None:
    """One overlay page of w × h points with the header along the fax page's top."""
    pdf.add_page(format=(w, h))
    landscape = w > h
    scale = 1 / _fit(w / 72, h / 72)
    size, margin = HEADER_PT * scale, MARGIN_PT * scale
    pdf.set_font(FAMILY, size=size)
    pdf.set_fill_color(255, 255, 255)
    length = (h if landscape else w) - 2 * margin
    x, y = (w - margin, margin) if landscape else (margin, margin)
    with pdf.rotation(-90 if landscape else 0, x=x, y=y):
        pdf.set_xy(x, y)
        pdf.cell(min(pdf.get_string_width(left) + size / 2, length * 0.75), size * 1.25,
                 left, fill=True)
        right_w = pdf.get_string_width(right) + size / 2
        pdf.set_xy(x + length - right_w, y)
        pdf.cell(right_w, size * 1.25, right, fill=True, align="R")


def stamp(writer: PdfWriter, left: str, page_word: str) -> None:
    """The header line on every page of `writer`: `left`, then "<page_word> x/y"."""
    pages = list(writer.pages)
    overlay = FPDF(unit="pt")
    overlay.set_auto_page_break(False)
    overlay.add_font(FAMILY, "", str(FONTS / "DejaVuSans.ttf"))
    boxes = []
    for n, page in enumerate(pages, 1):
        page.transfer_rotation_to_content()  # the box is now the page as it is shown
        box = page.cropbox
        boxes.append((float(box.left), float(box.bottom)))
        _header(overlay, float(box.width), float(box.height), left,
                f"{page_word} {n}/{len(pages)}")
    marks = PdfReader(io.BytesIO(bytes(overlay.output()))).pages
    for page, mark, (x0, y0) in zip(pages, marks, boxes, strict=True):
        page.merge_transformed_page(mark, Transformation().translate(x0, y0))


def compose(document: bytes, cover_html: str | None, header: str | None,
            page_word: str = "Page") -> tuple[bytes, int]:
    """The fax as the driver gets it: the cover page (when given) before the document, the
    header line (when given) on every page. Returns the PDF and its pages."""
    writer = PdfWriter()
    if cover_html is not None:
        writer.append(io.BytesIO(cover_page(cover_html)))
    writer.append(io.BytesIO(document))
    if header is not None:
        stamp(writer, header, page_word)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue(), len(writer.pages)
