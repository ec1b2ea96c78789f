"""Documents → fax pages, run inside the sandbox worker (task "render", mailgw.documents.tasks).

A fax page is 1728 pixels wide at 204 dpi (215 mm, ITU-T T.4) and bilevel; its vertical
resolution is the quality: normal 98, high 196 (default), best 392 lines per inch. Every
page, whatever it came from, is fitted the same way (`geometry`):

- a landscape page (wider than tall, after its own /Rotate or EXIF orientation) is turned a
  quarter to the left (its top on the left edge), as printers do, so it fills the portrait fax;
- the page is scaled, up or down, to fit A4 or Letter (whichever its shape is nearer),
  centred across and at the top;
- then made bilevel: a threshold at mid-grey for text and drawings, Floyd–Steinberg
  dithering when more than `DITHER_MIDTONES` of the page is mid-grey (photos, greyscale
  scans), so that a photo keeps its shades.

A TIFF that is already fax-ready (every page 1728 wide, bilevel, CCITT G3 or G4) is taken
as is. Pages are kept G4-compressed (≈ 30 KB), never as bitmaps, and leave as one
multi-page G4 TIFF or as a PDF made losslessly from those G4 pages (img2pdf).

Render-time bombs are refused before any bitmap is made (`Refusal`, reasons below): a page
larger than `MAX_PAGE_INCHES` on a side, any bitmap (the page rendered at the fax's dpi, an
image in a PDF, an attached picture) over `MAX_BITMAP_BYTES` once decoded, a page whose
drawing instructions decode to more than `MAX_CONTENT_BYTES` (documents.render_pdf), more pages
than the mail's page limit (counted before anything is drawn). CPU, memory and wall time
are the sandbox's own limits around the whole task.

The parent imports this module for its constants (QUALITIES, the caps), so Pillow and
img2pdf are imported inside the functions, which only the worker runs.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

FAX_WIDTH = 1728  # pixels across, ITU-T T.4
XDPI = 204
QUALITIES = {"normal": 98, "high": 196, "best": 392}  # lines per inch, OVH's names
PAPERS = {"a4": 297 / 25.4, "letter": 11.0}  # length in inches
FAX_INCHES = FAX_WIDTH / XDPI  # 8.47 in, the scan line
MAX_PAGE_INCHES = 50.0  # a side longer than this is refused (A0 is 33.1 × 46.8 in)
MAX_BITMAP_BYTES = 128 << 20  # one decoded bitmap: a 600 dpi A4 colour scan is 100 MB
MAX_CONTENT_BYTES = 64 << 20  # a page's decoded drawing instructions
DITHER_MIDTONES = 0.15  # share of mid-grey pixels above which a page is dithered
FAX_READY_YDPI = (98, 196, 391, 392)
FAX_COMPRESSIONS = ("group3", "group4")


class Refusal(Exception):
    """The document cannot become fax pages: `reason` is a key of mailgw.codes.DETAILS."""

    def __init__(self, reason: str, error: str, **params: object):
        super().__init__(error)
        self.reason = reason
        self.error = error
        self.params = params


def too_large(page: int, size: float, what: str = "the page") -> Refusal:
    mb = round(size / (1 << 20))
    return Refusal("bitmap_too_large", f"page {page}: {what} would take {mb} MB as a bitmap, "
                   f"more than {MAX_BITMAP_BYTES >> 20} MB", page=page, mb=mb,
                   limit=MAX_BITMAP_BYTES >> 20)


def check_page_size(page: int, w_in: float, h_in: float) -> None:
    if max(w_in, h_in) > MAX_PAGE_INCHES:
        raise Refusal("page_too_large", f"page {page} is {w_in:.0f} x {h_in:.0f} in, more than "
                      f"{MAX_PAGE_INCHES:.0f} in on a side", page=page,
                      w_cm=round(w_in * 2.54), h_cm=round(h_in * 2.54),
                      limit_cm=round(MAX_PAGE_INCHES * 2.54), w_in=round(w_in),
                      h_in=round(h_in), limit_in=round(MAX_PAGE_INCHES))


@dataclass(frozen=True)
class Geometry:
    """Where one source page goes on the fax page (all in fax pixels)."""

    turn: bool  # landscape: turned a quarter to the left
    paper: str
    width: int  # the page's content once scaled
    height: int
    page_height: int  # the fax page's length in lines
    ydpi: int

    @property
    def left(self) -> int:
        return (FAX_WIDTH - self.width) // 2


def geometry(w_in: float, h_in: float, quality: str = "high") -> Geometry:
    """Pure: a w × h inch page (upright, as it is shown) on a fax page of `quality`."""
    ydpi = QUALITIES[quality]
    turn = w_in > h_in
    if turn:
        w_in, h_in = h_in, w_in
    ratio = h_in / w_in
    paper = "letter" if abs(ratio - 11 / 8.5) < abs(ratio - 297 / 210) else "a4"
    length = PAPERS[paper]
    fit = min(FAX_INCHES / w_in, length / h_in)
    page_height = round(length * ydpi)
    return Geometry(turn, paper, max(1, min(FAX_WIDTH, round(w_in * fit * XDPI))),
                    max(1, min(page_height, round(h_in * fit * ydpi))), page_height, ydpi)


def finish(gray: object, g: Geometry) -> bytes:
    """An upright greyscale drawing (PIL "L", already turned) → one G4 fax page."""
    from PIL import Image  # late import: Pillow loads in the worker only

    assert isinstance(gray, Image.Image)
    if gray.size != (g.width, g.height):
        gray = gray.resize((g.width, g.height), Image.Resampling.BOX if
                           gray.width >= g.width else Image.Resampling.BICUBIC)
    page = Image.new("L", (FAX_WIDTH, g.page_height), 255)
    page.paste(gray, (g.left, 0))
    return g4_page(binarise(page), g.ydpi)


def binarise(gray: object) -> object:
    """Threshold for text, dithering for photos (see the module's docstring)."""
    from PIL import Image  # late import: Pillow loads in the worker only

    assert isinstance(gray, Image.Image)
    hist = gray.histogram()
    if sum(hist[48:208]) > DITHER_MIDTONES * gray.width * gray.height:
        return gray.convert("1")  # Floyd–Steinberg
    return gray.point([0] * 128 + [255] * 128, "1")


def g4_page(bilevel: object, ydpi: int) -> bytes:
    from PIL import Image  # late import: Pillow loads in the worker only

    assert isinstance(bilevel, Image.Image)
    out = io.BytesIO()
    bilevel.save(out, "TIFF", compression="group4", dpi=(XDPI, ydpi))
    return out.getvalue()


# -- pictures: JPEG, PNG, TIFF ---------------------------------------------------------------

def _bands(mode: str) -> int:
    return {"1": 1, "L": 1, "P": 1, "LA": 2, "PA": 2, "I;16": 2, "I": 4, "F": 4,
            "RGB": 3, "YCbCr": 3, "LAB": 3, "HSV": 3, "RGBA": 4, "CMYK": 4}.get(mode, 4)


def fax_ready(frame: object) -> bool:
    """Already a fax page: 1728 wide, bilevel, CCITT G3/G4, a fax line density."""
    from PIL import Image  # late import: Pillow loads in the worker only

    assert isinstance(frame, Image.Image)
    dpi = frame.info.get("dpi") or (0, 0)
    return (frame.width == FAX_WIDTH and frame.mode == "1"
            and frame.info.get("compression") in FAX_COMPRESSIONS
            and round(float(dpi[1])) in FAX_READY_YDPI)


# EXIF orientation → the transpose that shows the picture upright (as ImageOps.exif_transpose)
_EXIF_TURNS = {2: "FLIP_LEFT_RIGHT", 3: "ROTATE_180", 4: "FLIP_TOP_BOTTOM", 5: "TRANSPOSE",
               6: "ROTATE_270", 7: "TRANSVERSE", 8: "ROTATE_90"}


def eight_bits(frame: object) -> Any:
    """A 16-bit grey (a scanner's I;16 PNG or TIFF; "I" or "F" over 255) scaled to 8 bits:
    Pillow's own conversion clips at 255, which made a 16-bit scan a blank page, and its
    `reduce` refuses these modes (a large one was refused as broken). Other modes as they are."""
    from PIL import Image  # late import: Pillow loads in the worker only

    assert isinstance(frame, Image.Image)
    if not (frame.mode.startswith("I;16") or frame.mode in ("I", "F")):
        return frame
    wide = frame if frame.mode == "F" else frame.convert("I")
    high = wide.getextrema()[1]  # one band: (low, high)
    wide16 = frame.mode.startswith("I;16") or (isinstance(high, (int, float)) and high > 255)
    scale = 1 / 257 if wide16 else 1.0
    return wide.point(lambda v: v * scale).convert("L")


def picture_page(frame: object, quality: str) -> bytes:
    """One picture frame → one fax page: first reduced by a whole factor towards the page's
    size (so that flattening and greyscale work on a few MB, not the whole photo), alpha
    flattened on white, greyscale, turned upright per its EXIF orientation, scaled to the
    fax page (turned a quarter left when it is landscape) and made bilevel."""
    from PIL import Image  # late import: Pillow loads in the worker only

    assert isinstance(frame, Image.Image)
    orientation = frame.getexif().get(0x0112, 1)
    swap = orientation in _EXIF_TURNS and orientation >= 5
    dpi = frame.info.get("dpi") or (72, 72)
    xd, yd = (float(dpi[0]) or 72.0), (float(dpi[1]) or 72.0)
    w, h = (frame.height / yd, frame.width / xd) if swap else (frame.width / xd,
                                                               frame.height / yd)
    g = geometry(w, h, quality)
    size = (g.height, g.width) if g.turn else (g.width, g.height)  # before the quarter turn
    stored = (size[1], size[0]) if swap else size
    frame = eight_bits(frame)
    assert isinstance(frame, Image.Image)
    factor = min(frame.width // stored[0], frame.height // stored[1])
    if factor >= 2:
        frame = frame.reduce(factor)
    if frame.mode in ("RGBA", "LA", "PA") or frame.has_transparency_data:
        la = frame.convert("LA")
        gray = Image.new("L", la.size, 255)
        gray.paste(la.getchannel("L"), (0, 0), la.getchannel("A"))
    else:
        gray = frame.convert("L")
    if orientation in _EXIF_TURNS:
        gray = gray.transpose(Image.Transpose[_EXIF_TURNS[orientation]])
    grows = size[0] > gray.width or size[1] > gray.height
    gray = gray.resize(size, Image.Resampling.BICUBIC if grows else Image.Resampling.BOX)
    if g.turn:
        gray = gray.transpose(Image.Transpose.ROTATE_90)  # a quarter to the left
    return finish(gray, g)


def picture_pages(data: bytes, quality: str, max_pages: int) -> tuple[int, Iterator[bytes],
                                                                       bool]:
    """(pages, G4 pages, fax_ready) for a JPEG, PNG or TIFF; frames beyond the first only
    for a TIFF. A fax-ready TIFF's pages are checked (decoded) but kept as they are."""
    from PIL import Image, ImageSequence  # late import: Pillow loads in the worker only

    Image.MAX_IMAGE_PIXELS = MAX_BITMAP_BYTES  # Pillow's own bomb check, at open
    try:
        image = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError as exc:
        raise too_large(1, MAX_BITMAP_BYTES * 2, "the picture") from exc
    except Exception as exc:  # noqa: BLE001 - any decoder failure is a broken picture
        raise Refusal("broken", f"not a readable picture ({type(exc).__name__})") from exc
    if image.format not in ("JPEG", "MPO", "PNG", "TIFF"):
        raise Refusal("broken", f"a {image.format} picture, not JPEG, PNG or TIFF")
    pages = getattr(image, "n_frames", 1) if image.format == "TIFF" else 1
    if pages > max_pages:
        return pages, iter(()), False
    if image.format in ("JPEG", "MPO"):
        _draft(image, quality)
    frames = [image] if pages == 1 else ImageSequence.Iterator(image)
    ready = image.format == "TIFF"
    for n, frame in enumerate(frames, 1):
        _check_frame(frame, n)
        ready = ready and fax_ready(frame)
    image.seek(0)
    return pages, _picture_pages(image, pages, quality, ready), ready


def _draft(image: object, quality: str) -> None:
    """Let the JPEG decoder scale by 1/2, 1/4 or 1/8 while the result still covers two
    thirds of the fax page (a 12 MP photo decodes at 3 MP: 4 times less memory and time)."""
    from PIL import Image  # late import: Pillow loads in the worker only

    assert isinstance(image, Image.Image)
    short = FAX_WIDTH * 2 // 3  # up to 1.5 times enlarged: no loss a bilevel page shows
    long = round(PAPERS["a4"] * QUALITIES[quality]) * 2 // 3
    target = (short, long) if image.height >= image.width else (long, short)
    image.draft("L" if image.mode == "L" else "RGB", target)


def _check_frame(frame: object, page: int) -> None:
    """A frame's size (a fax TIFF's page size) and its bitmap once decoded, before decoding."""
    from PIL import Image  # late import: Pillow loads in the worker only

    assert isinstance(frame, Image.Image)
    dpi = frame.info.get("dpi") or (72, 72)
    if frame.mode == "1" and frame.info.get("compression") in FAX_COMPRESSIONS:
        check_page_size(page, frame.width / (float(dpi[0]) or XDPI),
                        frame.height / (float(dpi[1]) or 196))
    size = frame.width * frame.height * _bands(frame.mode)
    if size > MAX_BITMAP_BYTES:
        raise too_large(page, size, "the picture")


def _picture_pages(image: object, pages: int, quality: str, ready: bool) -> Iterator[bytes]:
    from PIL import Image  # late import: Pillow loads in the worker only

    assert isinstance(image, Image.Image)
    for n in range(pages):
        image.seek(n)
        if ready:  # decoded to prove it is sound; the TIFF itself is sent as it is
            image.load()
            yield b""
        else:
            yield picture_page(image, quality)


# -- the output -------------------------------------------------------------------------------

def to_tiff(pages: list[bytes]) -> bytes:
    """One multi-page G4 TIFF from single-page ones (each decoded only while it is written)."""
    from PIL import Image  # late import: Pillow loads in the worker only

    first, rest = Image.open(io.BytesIO(pages[0])), pages[1:]
    out = io.BytesIO()
    first.save(out, "TIFF", compression="group4", save_all=True,
               append_images=(Image.open(io.BytesIO(p)) for p in rest))
    return out.getvalue()


def to_pdf(pages: list[bytes]) -> bytes:
    """A PDF holding the G4 pages as they are (CCITTFaxDecode): lossless, ≈ the TIFF's size."""
    import img2pdf  # late import: loads in the worker only

    return bytes(img2pdf.convert(pages, engine=img2pdf.Engine.internal, nodate=True))


@dataclass
class Rendered:
    pages: int
    g4: list[bytes] = field(default_factory=list)
    original_ok: bool = False  # a PDF: the original can be sent as it is (pages agree)
