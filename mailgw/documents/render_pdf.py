"""PDF pages → fax pages with pypdfium2, each page checked by pypdf before PDFium sees it.

PDFium decodes a page's whole content stream when it loads the page (a 1 GB flate stream:
2 GB of memory and 6 s before the first pixel), so the checks come first, on pypdf's
objects, which decode nothing until asked: the page count (walking the page tree, never
trusting /Count), each page's size (with its UserUnit), the decoded size of its content
streams and of the forms it draws (inflated in bounded steps, counted, never kept), and
the decoded size of each image it draws. Only then is the page loaded and drawn, at the
size `render.geometry` fits it to. Runs inside the sandbox worker only (mailgw.documents.tasks),
which is why pypdf and PDFium are imported at the top.
"""

from __future__ import annotations

import io
import logging
import zlib
from collections.abc import Iterator
from typing import Any

import pypdfium2 as pdfium
import pypdfium2.raw as pdfium_c
from pypdf import PdfReader

from mailgw.documents.render import (
    MAX_BITMAP_BYTES,
    MAX_CONTENT_BYTES,
    Refusal,
    Rendered,
    check_page_size,
    finish,
    geometry,
    too_large,
)

MAX_FORM_DEPTH = 12  # forms drawing forms: deeper nesting is not followed (PDFium stops too)
_COMPONENTS = {"/DeviceGray": 1, "/CalGray": 1, "/G": 1, "/DeviceRGB": 3, "/CalRGB": 3,
               "/RGB": 3, "/Lab": 3, "/DeviceCMYK": 4, "/CMYK": 4}


def open_pdf(data: bytes) -> Any:
    """pypdf's reader, decrypted with the empty password when it needs one; Refusal else."""
    logging.disable(logging.CRITICAL)  # pypdf warns on stderr about every repaired xref
    if b"%PDF-" not in data[:1024]:
        raise Refusal("not_pdf", "not a PDF")
    try:
        reader = PdfReader(io.BytesIO(data), strict=False)
        if reader.is_encrypted:
            try:
                ok = bool(reader.decrypt(""))
            except Exception:  # noqa: BLE001 - unsupported algorithms raise many types
                ok = False
            if not ok:
                raise Refusal("encrypted", "encrypted with a password")
    except Refusal:
        raise
    except Exception as exc:  # noqa: BLE001 - any parser failure means "broken"
        raise Refusal("broken", f"broken PDF ({type(exc).__name__})") from exc
    return reader


def count_pages(reader: Any) -> int:
    try:
        pages = len(reader.pages)
    except Exception as exc:  # noqa: BLE001 - a page tree pypdf cannot walk is broken
        raise Refusal("broken", f"broken PDF ({type(exc).__name__})") from exc
    if pages < 1:
        raise Refusal("no_pages", "the PDF has no page")
    return pages


def render(data: bytes, quality: str, max_pages: int, *, keep: bool = True) -> Rendered:
    """Every page checked, then drawn; nothing drawn when there are more than `max_pages`.

    `keep=False` is the intake's render check of a PDF that is sent as it is: each page is
    still drawn by PDFium at the quality's full size (the part a render-time bomb would
    hit), but not made bilevel nor G4-encoded, since those pages would be thrown away;
    that work is bounded by the bitmap's size and costs 4/5 of a text page's check."""
    reader = open_pdf(data)
    pages = count_pages(reader)
    if pages > max_pages:
        return Rendered(pages)
    try:
        pdf = pdfium.PdfDocument(data)
    except pdfium.PdfiumError as exc:
        raise Refusal("broken", f"broken PDF (PDFium: {exc})") from exc
    try:
        if len(pdf) != pages:
            raise Refusal("broken", f"a damaged PDF: pypdf reads {pages} pages, PDFium "
                          f"{len(pdf)}")
        pdf.init_forms()  # form fields are drawn as they are filled in
        return Rendered(pages, list(_pages(reader, pdf, quality, keep)), original_ok=True)
    finally:
        pdf.close()


def _pages(reader: Any, pdf: Any, quality: str, keep: bool = True) -> Iterator[bytes]:
    for index in range(len(pdf)):
        check_page(reader.pages[index], index + 1)
        page = pdf[index]
        try:
            w_pt, h_pt = page.get_size()
            g = geometry(max(w_pt, 1.0) / 72, max(h_pt, 1.0) / 72, quality)
            if g.width * g.height > MAX_BITMAP_BYTES:
                raise too_large(index + 1, g.width * g.height)
            gray = draw(page, g.width, g.height, turn=g.turn, keep=keep)
        finally:
            page.close()
        yield finish(gray, g) if keep else b""


def draw(page: Any, width: int, height: int, *, turn: bool = False, keep: bool = True) -> Any:
    """The page drawn in greyscale into exactly width × height pixels (PDFium stretches it:
    204 dpi across, the quality's dpi down, with no resampling afterwards), its annotations
    and form fields included; turned a quarter to the left when `turn`. With `keep=False`
    drawn all the same, then dropped (None)."""
    bitmap = pdfium.PdfBitmap.new_native(width, height, pdfium_c.FPDFBitmap_Gray)
    try:
        bitmap.fill_rect((255, 255, 255, 255), 0, 0, width, height)
        args = (bitmap, page, 0, 0, width, height, 3 if turn else 0,
                pdfium_c.FPDF_ANNOT | pdfium_c.FPDF_GRAYSCALE)
        pdfium_c.FPDF_RenderPageBitmap(*args)
        if page.formenv:
            pdfium_c.FPDF_FFLDraw(page.formenv, *args)
        return bitmap.to_pil().copy() if keep else None
    finally:
        bitmap.close()


def check_page(page: Any, number: int) -> None:
    """Size, drawing instructions and images of one page, before it is drawn."""
    try:
        box = page.cropbox
        unit = float(page.user_unit or 1)
        w_in, h_in = abs(float(box.width)) * unit / 72, abs(float(box.height)) * unit / 72
    except Exception as exc:  # noqa: BLE001 - a page without a usable box is broken
        raise Refusal("broken", f"page {number} has no usable size") from exc
    check_page_size(number, w_in, h_in)
    budget = [MAX_CONTENT_BYTES]
    contents = _resolve(page.get("/Contents"))
    for stream in contents if isinstance(contents, list) else [contents]:
        _spend(_resolve(stream), budget, number)
    seen: set[int] = set()
    _resources(_resolve(page.get("/Resources")), budget, number, seen, 0)
    annots = _resolve(page.get("/Annots"))
    for annot in annots if isinstance(annots, list) else []:
        for form in _appearances(_resolve(annot)):
            _form(form, budget, number, seen, 1)


def _appearances(annot: Any) -> list[Any]:
    """An annotation's normal appearance streams (forms PDFium draws with the page)."""
    ap: Any = _resolve(annot.get("/AP")) if _is_dict(annot) else None
    normal: Any = _resolve(ap.get("/N")) if _is_dict(ap) else None
    if _is_stream(normal):
        return [normal]
    return [_resolve(v) for v in normal.values()] if _is_dict(normal) else []


def _resources(res: Any, budget: list[int], number: int, seen: set[int], depth: int) -> None:
    if not _is_dict(res):
        return
    xobjects = _resolve(res.get("/XObject"))
    if not _is_dict(xobjects):
        return
    for ref in xobjects.values():
        obj = _resolve(ref)
        if not _is_stream(obj):
            continue
        if obj.get("/Subtype") == "/Image":
            _image(obj, number)
        elif obj.get("/Subtype") == "/Form":
            _form(obj, budget, number, seen, depth + 1)


def _form(form: Any, budget: list[int], number: int, seen: set[int], depth: int) -> None:
    if not _is_stream(form) or id(form) in seen or depth > MAX_FORM_DEPTH:
        return
    seen.add(id(form))
    _spend(form, budget, number)
    _resources(_resolve(form.get("/Resources")), budget, number, seen, depth)


def _image(image: Any, number: int) -> None:
    """An image's decoded size from its dictionary (never decoded here)."""
    try:
        w, h = int(image.get("/Width", 0)), int(image.get("/Height", 0))
        bpc = int(image.get("/BitsPerComponent", 8) or 8)
    except (TypeError, ValueError):
        return
    space = _resolve(image.get("/ColorSpace"))
    if isinstance(space, list) and space:
        name = str(space[0])
        comps = int(_resolve(space[1]).get("/N", 3)) if name == "/ICCBased" and _is_stream(
            _resolve(space[1])) else 3 if name == "/Indexed" else _COMPONENTS.get(name, 4)
    else:
        comps = 1 if image.get("/ImageMask") else _COMPONENTS.get(str(space), 4)
    size = w * h * max(comps * bpc // 8, 1)
    if size > MAX_BITMAP_BYTES:
        raise too_large(number, size, "an image")


def _spend(stream: Any, budget: list[int], number: int) -> None:
    """Take a stream's decoded size from the page's budget; Refusal when it runs out."""
    if not _is_stream(stream):
        return
    budget[0] -= decoded_size(stream, budget[0] + 1)
    if budget[0] < 0:
        raise Refusal("content_too_large", f"page {number}'s drawing instructions decode to "
                      f"more than {MAX_CONTENT_BYTES >> 20} MB", page=number,
                      limit=MAX_CONTENT_BYTES >> 20)


def decoded_size(stream: Any, limit: int) -> int:
    """The stream's decoded length, counted up to `limit` (then `limit`). A plain flate
    stream is inflated here in 1 MB steps and counted, never kept; other filter chains are
    decoded by pypdf under its own limits. A stream that fails to decode counts for what
    came out (PDFium stops at the same damage)."""
    filters = _resolve(stream.get("/Filter"))
    if isinstance(filters, list) and len(filters) == 1:
        filters = _resolve(filters[0])
    raw = getattr(stream, "_data", b"")
    if filters is None:
        return len(raw)
    if filters in ("/FlateDecode", "/Fl"):
        return _inflated_size(raw, limit)
    try:
        return len(stream.get_data())
    except Exception as exc:  # noqa: BLE001 - pypdf's LimitReachedError and decoder errors
        return limit if type(exc).__name__ == "LimitReachedError" else 0


def _inflated_size(raw: bytes, limit: int) -> int:
    inflater = zlib.decompressobj()
    size = 0
    data = raw
    try:
        while size < limit and not inflater.eof:
            out = inflater.decompress(data, 1 << 20)
            data = inflater.unconsumed_tail
            if not out and not data:
                break
            size += len(out)
    except zlib.error:
        pass
    return min(size, limit)


def _resolve(obj: Any) -> Any:
    try:
        return obj.get_object() if obj is not None and hasattr(obj, "get_object") else obj
    except Exception:  # noqa: BLE001 - a dangling reference is nothing
        return None


def _is_dict(obj: Any) -> bool:
    return hasattr(obj, "get") and hasattr(obj, "values")


def _is_stream(obj: Any) -> bool:
    return _is_dict(obj) and hasattr(obj, "get_data")
