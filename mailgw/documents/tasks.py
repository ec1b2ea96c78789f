"""The tasks the sandbox worker runs on untrusted documents: each takes bytes and answers a
JSON-able dict (mailgw.documents.worker runs them under the document's limits).

Only the worker (and benchmarks calling a task in-process) imports this module, so it and
the modules it uses (documents.audio, documents.render_pdf) import their heavy libraries at
the top: the worker has them loaded before its first document, and a forked child never
pays for an import. Tests add tasks of their own through `protocol.EXTRA_TASKS_ENV`.
"""

from __future__ import annotations

import base64
import io
import json
import logging
import struct
import wave
from collections.abc import Callable

import img2pdf  # loaded before any fork (documents.render imports it late, too)
from PIL import Image, TiffImagePlugin  # noqa: F401 - the same, for Pillow and its TIFF codec
from pypdf import PdfWriter

from mailgw.documents import audio, render, render_pdf, stamp, thumbnail
from mailgw.documents.samples import make_pdf, make_wav

Task = Callable[[bytes], object]


def pdf_info(data: bytes) -> dict[str, object]:
    """Pages by walking the page tree (never trusting /Count); usable = opens without password."""
    try:
        pages = len(render_pdf.open_pdf(data).pages)
    except render.Refusal as refusal:
        return {"usable": False, "pages": None, "error": refusal.error}
    except Exception as exc:  # noqa: BLE001 - any parser failure means "broken"
        return {"usable": False, "pages": None, "error": f"broken PDF ({type(exc).__name__})"}
    if pages < 1:
        return {"usable": False, "pages": 0, "error": "the PDF has no page"}
    return {"usable": True, "pages": pages, "error": None}


def wav_info(data: bytes) -> dict[str, object]:
    try:
        with wave.open(io.BytesIO(data)) as w:
            frames, rate = w.getnframes(), w.getframerate()
    except (wave.Error, EOFError, ValueError) as exc:
        return {"usable": False, "duration": None, "error": f"not a readable WAV file ({exc})"}
    if rate <= 0 or frames <= 0:
        return {"usable": False, "duration": 0.0, "error": "the sound is empty"}
    return {"usable": True, "duration": frames / rate, "error": None}


def pdf_merge(data: bytes) -> dict[str, object]:
    """Several PDFs (each framed by a 4-byte big-endian length) → one, for one fax."""
    logging.disable(logging.CRITICAL)
    writer = PdfWriter()
    offset = 0
    while offset < len(data):
        (size,) = struct.unpack(">I", data[offset:offset + 4])
        part = data[offset + 4:offset + 4 + size]
        offset += 4 + size
        writer.append(io.BytesIO(part))
    out = io.BytesIO()
    writer.write(out)
    return {"pdf": base64.b64encode(out.getvalue()).decode("ascii")}


def render_task(data: bytes) -> dict[str, object]:
    """Documents → fax pages (mailgw.documents.render). Input: one JSON line of parameters,
    then the document.

    Parameters: kind (pdf | picture), quality, max_pages, output (auto | pdf | tiff). `auto`
    returns no document for a PDF (its original is sent) and a PDF for a picture. The answer:
    usable, pages, rendered (False when over max_pages: nothing was drawn), error, reason,
    params (for the refusal's sentence), document (base64), format, fax_ready.
    """
    head, _, body = data.partition(b"\n")
    params = json.loads(head)
    kind, output = str(params.get("kind", "pdf")), str(params.get("output", "auto"))
    quality = str(params.get("quality", "high"))
    quality = quality if quality in render.QUALITIES else "high"
    max_pages = int(params.get("max_pages", 200))
    try:
        if kind == "pdf":
            # sent as it is (auto): the pages are drawn to prove they render, not kept
            result = render_pdf.render(body, quality, max_pages, keep=output != "auto")
            ready = False
        else:
            pages, stream, ready = render.picture_pages(body, quality, max_pages)
            result = render.Rendered(pages, list(stream))
    except render.Refusal as exc:
        return {"usable": False, "pages": None, "error": exc.error, "reason": exc.reason,
                "params": exc.params}
    answer: dict[str, object] = {"usable": True, "pages": result.pages, "error": None,
                                 "reason": None, "rendered": bool(result.g4),
                                 "fax_ready": ready}
    if not result.g4 or (output == "auto" and kind == "pdf"):
        return answer
    fmt = "tiff" if output == "tiff" else "pdf"
    if ready and fmt == "tiff":
        document = body
    elif ready:
        document = render.to_pdf([body])
    else:
        document = render.to_tiff(result.g4) if fmt == "tiff" else render.to_pdf(result.g4)
    answer.update(format=fmt, document=base64.b64encode(document).decode("ascii"))
    return answer


def compose_task(data: bytes) -> dict[str, object]:
    """A delivery's own fax (mailgw.documents.stamp): the cover page and the header line on the
    job's PDF. Input: one JSON line (cover: HTML or null, header: text or null, page_word),
    then the PDF. The answer: document (base64) and pages, or error."""
    logging.disable(logging.CRITICAL)
    head, _, body = data.partition(b"\n")
    params = json.loads(head)
    cover, header = params.get("cover"), params.get("header")
    try:
        document, pages = stamp.compose(body, None if cover is None else str(cover),
                                        None if header is None else str(header),
                                        str(params.get("page_word") or "Page"))
    except Exception as exc:  # noqa: BLE001 - fpdf2's HTML reader, a PDF pypdf cannot join
        return {"error": f"{type(exc).__name__}: {str(exc)[:200]}"}
    return {"document": base64.b64encode(document).decode("ascii"), "pages": pages}


def received_task(data: bytes) -> dict[str, object]:
    """A received fax's TIFF → a PDF, losslessly (img2pdf keeps G4 pages as they are and
    re-encodes the others without loss; each page keeps its own, often non-square, dpi).
    The answer: pdf (base64), pages, dpi ([x, y] of the first page), or error."""
    logging.disable(logging.CRITICAL)
    try:
        with Image.open(io.BytesIO(data)) as im:
            pages = int(getattr(im, "n_frames", 1))
            dpi = [round(float(v)) for v in im.info.get("dpi", (204, 196))]
            try:
                pdf = img2pdf.convert(data, nodate=True)
            except Exception:  # noqa: BLE001 - a page img2pdf refuses (a cut-off last page)
                frames = []
                for i in range(pages):
                    im.seek(i)
                    out = io.BytesIO()
                    im.convert("1").save(out, "TIFF", compression="group4",
                                         dpi=im.info.get("dpi", (204, 196)))
                    frames.append(out.getvalue())
                pdf = img2pdf.convert(frames, nodate=True)
    except Exception as exc:  # noqa: BLE001 - not a readable TIFF at all
        return {"error": f"{type(exc).__name__}: {str(exc)[:200]}"}
    return {"pdf": base64.b64encode(bytes(pdf)).decode("ascii"), "pages": pages, "dpi": dpi}


TASKS: dict[str, Task] = {
    "pdf": pdf_info, "wav": wav_info, "pdfmerge": pdf_merge, "audio": audio.audio_info,
    "render": render_task, "compose": compose_task, "firstpage": thumbnail.first_page_png,
    "received": received_task,
}


def warm_up() -> None:
    """Run each task once on a small sample: the first document then finds every library's
    lazy state (codecs, fonts, caches) set up, and no forked child pays for it."""
    logging.disable(logging.CRITICAL)
    sample = make_pdf([["warm-up"], ["page 2"]])
    frame = struct.pack(">I", len(sample)) + sample
    try:
        pdf_info(sample)
        pdf_merge(frame + frame)
        audio.audio_info(b'{"rate": 8000}\n' + make_wav(0.5))
        render_task(b'{"kind": "pdf", "output": "pdf"}\n' + sample)
        compose_task(b'{"cover": "<p>warm-up</p>", "header": "warm-up"}\n' + sample)
        thumbnail.first_page_png(b'{"width": 200}\n' + sample)
    except Exception:  # noqa: BLE001, S110 - only an optimisation; a document still works
        pass
