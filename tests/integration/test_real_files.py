"""Real files that others made (tests/real_files/, SOURCES.md names each one's origin and
licence) rendered to fax pages in the sandbox: the right number of pages, each upright
(EXIF orientation, landscape turned a quarter left), alpha flattened on white, form values
and annotations drawn. Every page is compared with an independent rendering of the same
file (pypdfium2's own for PDFs, Pillow's for pictures), and each comparison has a negative
control that the same measure rejects (upside down, turned the wrong way, alpha on black,
no forms), so a threshold that passes everything cannot hide."""

from __future__ import annotations

import base64
import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pypdfium2 as pdfium
import pytest
from PIL import Image, ImageChops, ImageOps, ImageSequence
from pypdf import PdfReader

from mailgw.documents import checks as documents
from mailgw.documents import office, sandbox
from mailgw.documents.render import FAX_WIDTH, QUALITIES, XDPI, Geometry, geometry
from mailgw.documents.sandbox import Limits

REAL = Path(__file__).resolve().parents[1] / "real_files"
LIMITS = Limits()
SAME = 0.02  # at most 2 % of the pixels differ from PDFium's own drawing once both are bilevel
CLOSE = 0.25  # density error (8 × 8 blocks) of the same drawing; a wrong one is above 0.5
PHOTO_CLOSE = 0.05  # a photo's ink is spread out: the same photo is under 0.05, a turned
PHOTO_WRONG = 0.15  # one above 0.2


@pytest.fixture(autouse=True, scope="module")
def fresh_pool() -> Iterator[None]:
    yield
    sandbox.shutdown()


def real(name: str) -> bytes:
    return (REAL / name).read_bytes()


def render(data: bytes, kind: str, quality: str = "high") -> tuple[dict[str, object],
                                                                   list[Image.Image]]:
    """The sandbox's answer and the fax pages (the G4 TIFF it made, page by page)."""
    answer = documents.render(data, kind, LIMITS, quality, "tiff")
    assert answer["usable"] is True, answer
    tiff = Image.open(io.BytesIO(base64.b64decode(str(answer["document"]))))
    pages = [frame.copy() for frame in ImageSequence.Iterator(tiff)]
    for page in pages:
        assert page.mode == "1" and page.width == FAX_WIDTH
        assert page.info["dpi"] == (XDPI, QUALITIES[quality])
    assert answer["pages"] == len(pages)
    return answer, pages


def ink(image: Image.Image, box: tuple[int, int, int, int] | None = None) -> float:
    """Share of black pixels (in `box`)."""
    part = (image.crop(box) if box else image).convert("L")
    return part.histogram()[0] / max(part.width * part.height, 1)


def bilevel(image: Image.Image) -> Image.Image:
    return image.convert("L").point([0] * 128 + [255] * 128, "1")


def differing(a: Image.Image, b: Image.Image) -> float:
    """The mean absolute difference of two bilevel drawings of one size: the share of pixels
    black in one and white in the other."""
    return ImageChops.logical_xor(bilevel(a), bilevel(b)).histogram()[255] / (a.width * a.height)


def density_error(reference: Image.Image, ours: Image.Image, block: int = 8) -> float:
    """How far the local ink density (block × block pixels) of two drawings of one size
    differs, relative to their ink: 0 for the same drawing, near 1 for another one. A
    dithered photo is compared with the greys it stands for."""
    size = (max(reference.width // block, 1), max(reference.height // block, 1))
    a = reference.convert("L").resize(size, Image.Resampling.BOX)
    b = ours.convert("L").resize(size, Image.Resampling.BOX)
    diff = sum(i * c for i, c in enumerate(ImageChops.difference(a, b).histogram()))
    both = sum((255 - i) * c for i, c in enumerate(a.histogram())) + \
        sum((255 - i) * c for i, c in enumerate(b.histogram()))
    return diff / max(both, 1)


def content(page: Image.Image, g: Geometry, size: tuple[int, int] | None = None) -> Image.Image:
    """The drawing on the fax page (without the white margins), brought to `size`."""
    part = page.crop((g.left, 0, g.left + g.width, g.height)).convert("L")
    return part.resize(size, Image.Resampling.BOX) if size else part


# -- PDFs against pypdfium2's own rendering -----------------------------------------------------

def pdfium_reference(data: bytes, index: int, g: Geometry, *, forms: bool = True,
                     rotation: int | None = None) -> Image.Image:
    """PDFium's own drawing of the page (its annotations, and its form fields as filled in
    unless `forms` is False), at the fax page's horizontal scale, turned as the fax page is
    (or by `rotation`)."""
    pdf = pdfium.PdfDocument(data)
    try:
        if forms:
            pdf.init_forms()
        page = pdf[index]
        w, h = page.get_size()
        turn = 270 if g.turn else 0
        image = page.render(scale=g.width / (h if g.turn else w), grayscale=True,
                            rotation=turn if rotation is None else rotation,
                            may_draw_forms=forms, draw_annots=True).to_pil()
        return image.convert("L")
    finally:
        pdf.close()


def page_geometry(data: bytes, index: int, quality: str = "high") -> Geometry:
    pdf = pdfium.PdfDocument(data)
    try:
        w, h = pdf[index].get_size()  # as shown: the page's own /Rotate applied
        return geometry(w / 72, h / 72, quality)
    finally:
        pdf.close()


def compare_pdf(data: bytes, pages: list[Image.Image], quality: str = "high"
                ) -> list[tuple[float, float]]:
    """(differing share, density error) of each fax page against PDFium's own drawing."""
    found = []
    for n, page in enumerate(pages):
        g = page_geometry(data, n, quality)
        assert page.height == g.page_height
        reference = pdfium_reference(data, n, g)
        ours = content(page, g, reference.size)
        found.append((differing(reference, ours), density_error(bilevel(reference),
                                                                bilevel(ours))))
    return found


REAL_PDFS = {"AutoCad_Simple.pdf": 1, "AutoCad_Diagram.pdf": 1, "libreoffice-form.pdf": 1,
             "form_acrobatReader.pdf": 1, "commented.pdf": 1}


@pytest.mark.parametrize("quality", sorted(QUALITIES))
def test_real_pdfs_match_pdfiums_own_rendering(quality: str) -> None:
    """Each page, cut out of the fax page and brought to PDFium's own drawing's size, differs
    from it in under 2 % of its pixels once both are bilevel (measured: 0 to 1.3 %)."""
    for name, count in REAL_PDFS.items():
        answer, pages = render(real(name), "pdf", quality)
        assert answer["pages"] == count == len(pages), name
        for n, (diff, density) in enumerate(compare_pdf(real(name), pages, quality)):
            assert diff < SAME and density < CLOSE, (name, n, quality, diff, density)


@pytest.mark.parametrize("name", ["AutoCad_Simple.pdf", "AutoCad_Diagram.pdf"])
def test_landscape_pdfs_are_turned_a_quarter_left(name: str) -> None:
    """Portrait pages with /Rotate 270 (shown landscape, as AutoCAD plots them): one fax
    page each, turned so that the drawing's top is on the left edge, as PDFium draws the
    page turned by 270°; the other way round (90°) is far off."""
    data = real(name)
    answer, pages = render(data, "pdf")
    assert answer["pages"] == 1 == len(pages)
    g = page_geometry(data, 0)
    assert g.turn, "shown landscape: turned onto the portrait fax page"
    wrong = pdfium_reference(data, 0, g, rotation=90)
    ours = content(pages[0], g, wrong.size)
    assert density_error(bilevel(wrong), bilevel(ours)) > 0.5


def widget_boxes(data: bytes, scale: float) -> list[tuple[str, tuple[int, int, int, int]]]:
    """(value, box in PDFium's drawing at `scale`) of each text field filled in on page 1."""
    page = PdfReader(io.BytesIO(data)).pages[0]
    top, left = float(page.mediabox.top), float(page.mediabox.left)
    boxes = []
    for ref in page.get("/Annots") or []:
        widget = ref.get_object()
        field = widget.get("/Parent", widget).get_object() if "/T" not in widget else widget
        value = field.get("/V")
        if widget.get("/Subtype") != "/Widget" or field.get("/FT") != "/Tx" or not value:
            continue
        x0, y0, x1, y1 = (float(v) for v in widget["/Rect"])
        box = (round((min(x0, x1) - left) * scale) + 2, round((top - max(y0, y1)) * scale) + 2,
               round((max(x0, x1) - left) * scale) - 2, round((top - min(y0, y1)) * scale) - 2)
        boxes.append((str(value), box))
    return boxes


@pytest.mark.parametrize(("name", "values"), [("libreoffice-form.pdf", {"Alice", "Bob"}),
                                              ("form_acrobatReader.pdf", {"Bar"})])
def test_filled_in_forms_show_their_values(name: str, values: set[str]) -> None:
    """A form filled in (LibreOffice's, with NeedAppearances; Acrobat Reader's, with its own
    appearances): the page matches PDFium's drawing with its form fields, and each value's
    field has the ink of its text there, which a drawing without the form lacks."""
    data = real(name)
    _, (page,) = render(data, "pdf")
    g = page_geometry(data, 0)
    with_forms = pdfium_reference(data, 0, g)
    without = pdfium_reference(data, 0, g, forms=False)
    ours = content(page, g, with_forms.size)
    w_pt = pdfium.PdfDocument(data)[0].get_size()[0]
    boxes = widget_boxes(data, with_forms.width / w_pt)
    assert {value for value, _ in boxes} == values
    for value, box in boxes:
        assert ink(bilevel(ours), box) > 0.005, (name, value)  # the value's letters
        assert differing(with_forms.crop(box), ours.crop(box)) < 0.1, (name, value)
        assert differing(without.crop(box), ours.crop(box)) > 0.005, (name, value)


def test_annotations_are_drawn() -> None:
    """pypdf's commented.pdf: its two notes (Text annotations, drawn as icons) are on the
    fax page where PDFium puts them; the page without annotations has plain text there."""
    data = real("commented.pdf")
    _, (page,) = render(data, "pdf")
    g = page_geometry(data, 0)
    reference = pdfium_reference(data, 0, g)
    ours = bilevel(content(page, g, reference.size))
    pdf_page = PdfReader(io.BytesIO(data)).pages[0]
    scale = reference.width / float(pdf_page.mediabox.width)
    top = float(pdf_page.mediabox.top)
    notes = [a.get_object() for a in pdf_page["/Annots"]
             if a.get_object()["/Subtype"] == "/Text"]
    assert len(notes) == 2
    for note in notes:
        x0, y0, x1, y1 = (float(v) for v in note["/Rect"])
        box = (round(x0 * scale), round((top - y1) * scale), round(x1 * scale),
               round((top - y0) * scale))
        assert ink(ours, box) > 0.2  # the icon's outline and lines: more than text has
        assert differing(reference.crop(box), ours.crop(box)) < 0.1


# -- pictures against Pillow's own upright drawing ---------------------------------------------

def upright(data: bytes, background: int = 255) -> Image.Image:
    """The picture as a viewer shows it: EXIF orientation applied, alpha on `background`."""
    with Image.open(io.BytesIO(data)) as source:
        shown = ImageOps.exif_transpose(source) or source
        shown = shown.convert("RGBA")
    paper = Image.new("RGBA", shown.size, (background,) * 3 + (255,))
    paper.alpha_composite(shown)
    return paper.convert("L")


def picture_geometry(shown: Image.Image, dpi: tuple[float, float] = (72, 72)) -> Geometry:
    return geometry(shown.width / dpi[0], shown.height / dpi[1])


def on_fax_page(shown: Image.Image, g: Geometry) -> Image.Image:
    """`shown` placed as the fax page places it (turned a quarter left when landscape)."""
    turned = shown.transpose(Image.Transpose.ROTATE_90) if g.turn else shown
    return turned.resize((g.width, g.height), Image.Resampling.BOX)


@pytest.mark.parametrize(("name", "orientation"), [("Portrait_6.jpg", 6),
                                                   ("hopper_orientation_8.jpg", 8)])
def test_exif_rotated_photos_are_upright(name: str, orientation: int) -> None:
    """A phone-style photo stored sideways (EXIF orientation 6 or 8): the fax page is the
    photo upright; the photo as stored (turned the other way, or upside down) is far off."""
    data = real(name)
    with Image.open(io.BytesIO(data)) as source:
        assert source.getexif().get(0x0112) == orientation
        stored = source.convert("L")
    shown = upright(data)
    assert shown.size == stored.size[::-1]
    answer, (page,) = render(data, "picture")
    g = picture_geometry(shown)
    assert answer["pages"] == 1 and page.height == g.page_height and not g.turn
    good = density_error(on_fax_page(shown, g), content(page, g))
    wrong = density_error(on_fax_page(shown.transpose(Image.Transpose.ROTATE_180), g),
                          content(page, g))
    ignored = on_fax_page(stored, picture_geometry(stored))  # EXIF ignored
    sideways = density_error(ignored, content(page, g))
    assert good < PHOTO_CLOSE and min(wrong, sideways) > PHOTO_WRONG, (name, good, wrong,
                                                                        sideways)


def test_png_alpha_is_flattened_on_white() -> None:
    """Pillow's toucan (RGBA, two thirds transparent over black pixels): the fax page is
    the picture on white paper, not on black (as a conversion that drops alpha gives)."""
    data = real("pil123rgba.png")
    answer, (page,) = render(data, "picture")
    shown = upright(data)
    g = picture_geometry(shown)
    assert answer["pages"] == 1 and g.turn  # 162 × 150: wider than tall
    good = density_error(on_fax_page(shown, g), content(page, g))
    black = density_error(on_fax_page(upright(data, background=0), g), content(page, g))
    assert good < CLOSE and black > 0.5, (good, black)
    on_black = bilevel(on_fax_page(upright(data, background=0), g))
    assert ink(page) < 0.3 and ink(on_black) > 0.6, (ink(page), ink(on_black))


def test_scanned_multipage_g4_tiff_keeps_its_pages_in_order() -> None:
    """Pillow's g4-multi.tiff: three A4 pages scanned at 400 dpi, CCITT G4 ("Page1" …
    "Page3" at the top left). Not fax-ready (3307 px wide), so each page is fitted: three
    fax pages, upright, each nearest to its own source page."""
    data = real("g4-multi.tiff")
    answer, pages = render(data, "picture")
    assert answer["pages"] == 3 and answer["fax_ready"] is False
    source = Image.open(io.BytesIO(data))
    frames = [frame.convert("L") for frame in ImageSequence.Iterator(source)]
    g = picture_geometry(frames[0], source.info["dpi"])
    for n, page in enumerate(pages):
        assert page.height == g.page_height
        ours = content(page, g)
        errors = [density_error(on_fax_page(f, g), ours) for f in frames]
        assert errors[n] < CLOSE and errors[n] == min(errors), (n, errors)
        flipped = on_fax_page(frames[n].transpose(Image.Transpose.ROTATE_180), g)
        assert density_error(flipped, ours) > 0.5
        assert ink(ours, (0, 0, g.width // 3, g.height // 8)) > ink(ours)  # text top left


def test_real_fax_page_white_is_zero_stays_white() -> None:
    """A fax page made by Ghostscript 9.04 (commons-imaging's 1pagefax.tif): 1728 × 1146,
    98 lines per inch, CCITT modified Huffman, WhiteIsZero, blank. One page, still blank
    (a photometric mix-up would make it black)."""
    data = real("1pagefax.tif")
    answer, (page,) = render(data, "picture")
    assert answer["pages"] == 1 and page.height == round(297 / 25.4 * QUALITIES["high"])
    assert ink(page) == 0.0


def test_16_bit_grey_png_keeps_its_greys() -> None:
    """PngSuite's basn0g16.png (a 16-bit grey gradient, 0 to 65535): drawn with its greys
    scaled to 8 bits. Pillow's own conversion clips at 255, which made it a blank page
    (measured ink 0.07 %, now 34 %); the same picture 75 times larger is reduced first,
    which Pillow refuses for 16-bit modes (it was refused as broken)."""
    data = real("basn0g16.png")
    with Image.open(io.BytesIO(data)) as source:
        assert source.mode == "I;16"
        shades = source.convert("I").point(lambda v: v / 257).convert("L")
        clipped = source.convert("L")
    answer, (page,) = render(data, "picture")
    g = picture_geometry(shades)
    assert answer["pages"] == 1 and ink(page) > 0.2
    assert density_error(on_fax_page(shades, g), content(page, g)) < PHOTO_CLOSE
    assert density_error(on_fax_page(clipped, g), content(page, g)) > 0.5
    large = io.BytesIO()
    Image.open(io.BytesIO(data)).convert("I").resize((2400, 2400)).convert("I;16").save(
        large, "PNG")
    answer, (page,) = render(large.getvalue(), "picture")
    assert answer["pages"] == 1 and ink(page) > 0.2


# -- office files ------------------------------------------------------------------------------

def test_docx_from_word_becomes_its_pages() -> None:
    """python-docx's sct-first-page-hdrftr.docx (Word for Mac, two sections, page breaks,
    headers and footers): 6 Letter pages in Word, so 6 upright fax pages. LibreOffice is
    optional by design (office files are refused without it), so this skips without it."""
    if office.soffice() is None:
        pytest.skip("LibreOffice (soffice) is not installed: office files are converted only "
                    "where it is (optional by design); the DOCX's rendering is not tested")
    check = documents.check_office(real("sct-first-page-hdrftr.docx"),
                                   "sct-first-page-hdrftr.docx", Limits(cpu_seconds=60))
    assert check.usable and check.pages == 6 and check.document is not None
    answer, pages = render(check.document, "pdf")
    assert len(pages) == 6 and not page_geometry(check.document, 0).turn
    # every page upright: none turned, each a portrait fax page 1728 wide
    assert not any(page_geometry(check.document, n).turn for n in range(6))
    assert all(p.width == 1728 and p.height > p.width for p in pages)
    for n, (diff, density) in enumerate(compare_pdf(check.document, pages)):
        assert diff < SAME and density < CLOSE, (n, diff, density)


def measured() -> dict[str, Any]:  # pragma: no cover - for docs/fax-pages.md
    """The numbers docs/fax-pages.md quotes: python -c 'from tests.integration.test_real_files
    import measured; print(measured())'."""
    found: dict[str, Any] = {}
    for name in ("AutoCad_Simple.pdf", "AutoCad_Diagram.pdf", "libreoffice-form.pdf",
                 "form_acrobatReader.pdf", "commented.pdf"):
        for quality in QUALITIES:
            _, pages = render(real(name), "pdf", quality)
            found[f"{name} {quality}"] = [(round(d, 4), round(e, 3))
                                          for d, e in compare_pdf(real(name), pages, quality)]
    return found
