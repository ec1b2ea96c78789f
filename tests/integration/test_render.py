"""Documents → fax pages (mailgw.documents.render, in the sandbox): geometry, corpus PDFs against
pypdfium2's own rendering, pictures (EXIF, alpha, TIFF), the output formats."""

from __future__ import annotations

import base64
import io
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image, ImageChops

from mailgw.documents import checks as documents
from mailgw.documents import sandbox
from mailgw.documents.render import FAX_WIDTH, PAPERS, QUALITIES, XDPI, geometry
from mailgw.documents.samples import make_pdf
from mailgw.documents.sandbox import Limits
from tests import render_samples as samples

LIMITS = Limits()


@pytest.fixture(autouse=True, scope="module")
def fresh_pool() -> Iterator[None]:
    yield
    sandbox.shutdown()


def render(data: bytes, kind: str = "pdf", quality: str = "high", output: str = "tiff"
           ) -> tuple[dict[str, object], list[Image.Image]]:
    answer = documents.render(data, kind, LIMITS, quality, output)
    assert answer["usable"] is True, answer
    raw = base64.b64decode(str(answer["document"]))
    pages = []
    if answer["format"] == "tiff":
        tiff = Image.open(io.BytesIO(raw))
        for n in range(getattr(tiff, "n_frames", 1)):
            tiff.seek(n)
            assert tiff.info.get("compression") == "group4" or answer.get("fax_ready")
            pages.append(tiff.copy())
    return answer, pages


def ink(image: Image.Image, box: tuple[int, int, int, int] | None = None) -> float:
    """Share of black pixels (in `box`)."""
    part = (image.crop(box) if box else image).convert("L")
    return part.histogram()[0] / (part.width * part.height)


# -- geometry (pure) ------------------------------------------------------------------------

def test_a4_letter_and_landscape_geometry() -> None:
    a4 = geometry(210 / 25.4, 297 / 25.4)
    assert (a4.turn, a4.paper, a4.width, a4.height, a4.page_height) == \
        (False, "a4", 1687, 2292, 2292)
    letter = geometry(8.5, 11)
    assert letter.paper == "letter" and letter.width == FAX_WIDTH and letter.page_height == 2156
    landscape = geometry(297 / 25.4, 210 / 25.4, "normal")
    assert landscape.turn and landscape.width == 1687 and landscape.height == 1146
    assert geometry(8.5, 11, "best").page_height == 4312
    small = geometry(3, 5)  # an index card is scaled up to the page
    assert small.height == 2292 and small.width == round(3 * 11.69 / 5 * XDPI)


# -- corpus PDFs against pypdfium2's own rendering ----------------------------------------------

def density_error(reference: Image.Image, ours: Image.Image, block: int = 8) -> float:
    """How far the local ink density (8 × 8 pixel blocks) of two bilevel drawings of the
    same size differs, relative to their ink: 0 for the same drawing, near 1 for a drawing
    moved by more than a block. Edge pixels that resampling moves by one hardly count."""
    size = (reference.width // block, reference.height // block)
    a = reference.convert("L").resize(size, Image.Resampling.BOX)
    b = ours.convert("L").resize(size, Image.Resampling.BOX)
    diff = sum(i * c for i, c in enumerate(ImageChops.difference(a, b).histogram()))
    both = sum((255 - i) * c for i, c in enumerate(a.histogram())) + \
        sum((255 - i) * c for i, c in enumerate(b.histogram()))
    return diff / max(both, 1)


def usable_corpus_pdfs(corpus: Path) -> list[tuple[Path, int]]:
    facts = json.loads((corpus / "expected_pdfs.json").read_text())
    return [(corpus / "pdfs" / f["file"], int(f["pages"])) for f in facts
            if f["opens_without_password"]]


@pytest.mark.parametrize("quality", ["normal", "high", "best"])
def test_corpus_pdfs_match_pdfiums_own_rendering(corpus: Path, quality: str) -> None:
    """Each page, cut out of the fax page and brought back to pypdfium2's plain rendering at
    the same horizontal dpi, matches it once both are bilevel; the same page moved by 12
    pixels does not (the comparison can fail)."""
    import pypdfium2 as pdfium

    checked = 0
    for path, pages in usable_corpus_pdfs(corpus):
        data = path.read_bytes()
        answer, faxed = render(data, quality=quality)
        assert answer["pages"] == pages == len(faxed), path.name
        pdf = pdfium.PdfDocument(data)
        for n, page in enumerate(faxed):
            assert page.width == FAX_WIDTH and page.info["dpi"] == (XDPI, QUALITIES[quality])
            w, h = pdf[n].get_size()
            g = geometry(w / 72, h / 72, quality)
            assert page.height == g.page_height
            reference = pdf[n].render(scale=g.width / (h if g.turn else w), grayscale=True,
                                      rotation=270 if g.turn else 0).to_pil()
            reference = reference.point([0] * 128 + [255] * 128, "1")
            ours = page.crop((g.left, 0, g.left + g.width, g.height)).convert("L").resize(
                reference.size, Image.Resampling.BOX).point([0] * 128 + [255] * 128, "1")
            error = density_error(reference, ours)
            assert error < 0.25, (path.name, n, quality, error)
            differing = ImageChops.logical_xor(reference, ours).histogram()[255]
            assert differing < 0.02 * reference.width * reference.height, (path.name, n)
            if ink(reference) > 0.001 and ink(reference) < 0.05:  # text pages
                moved = Image.new("1", ours.size, 1)
                moved.paste(ours, (0, 12))
                assert density_error(reference, moved) > 0.5, (path.name, n)
                checked += 1
        pdf.close()
    assert checked >= 4  # the negative control ran on real text pages


def test_landscape_pdf_is_turned_a_quarter_to_the_left() -> None:
    """A landscape page fills the portrait fax page: its top edge (the bar) on the left,
    the bar's left end (the block) at the bottom."""
    answer, (page,) = render(samples.marked_pdf(842, 595))
    assert answer["pages"] == 1 and page.size == (FAX_WIDTH, 2292)
    left = (FAX_WIDTH - 1687) // 2  # A4's 210 mm across, centred
    assert ink(page, (left + 5, 5, left + 95, 2285)) > 0.99  # the bar, down the left edge
    assert ink(page, (1600, 0, 1728, 2292)) < 0.001
    assert ink(page, (left + 110, 2100, left + 195, 2285)) > 0.99  # the block, at the bottom
    assert ink(page, (left + 110, 5, left + 195, 190)) < 0.001
    _, (upright,) = render(samples.marked_pdf(595, 842))  # a portrait page is not turned
    assert ink(upright, (100, 0, 1600, 50)) > 0.9 and ink(upright, (0, 300, 30, 2000)) < 0.01


def test_a_pdf_check_counts_rendered_pages_and_sends_the_original() -> None:
    check = documents.check_pdf(make_pdf([["one"], ["two"], ["three"]]), LIMITS)
    assert check.usable and check.pages == 3 and check.document is None


# -- pictures ---------------------------------------------------------------------------------

def test_exif_rotation_is_applied_before_anything_else() -> None:
    """Stored landscape, shown portrait: the fax page is the portrait photo, black band at
    the top. Without EXIF it would have been taken as landscape and turned."""
    answer, (page,) = render(samples.exif_rotated_jpeg(), "picture")
    assert answer["pages"] == 1 and page.width == FAX_WIDTH
    assert ink(page, (300, 0, 1400, 150)) > 0.9
    assert ink(page, (0, 600, 200, 1800)) < 0.05 and ink(page, (300, 1800, 1400, 2200)) < 0.05


def test_alpha_is_flattened_on_white() -> None:
    _, (page,) = render(samples.alpha_png(), "picture")
    assert ink(page, (0, 0, 1728, 400)) < 0.001  # transparent black is white paper
    assert ink(page, (800, 1100, 900, 1200)) > 0.99  # the opaque square is ink


def test_fax_ready_multipage_tiff_is_taken_as_is() -> None:
    tiff = samples.fax_tiff(3)
    answer = documents.render(tiff, "picture", LIMITS, output="tiff")
    assert answer["usable"] and answer["pages"] == 3 and answer["fax_ready"] is True
    assert base64.b64decode(str(answer["document"])) == tiff
    check = documents.check_picture(tiff, LIMITS)
    assert check.usable and check.pages == 3 and check.document is not None
    from pypdf import PdfReader

    reader = PdfReader(io.BytesIO(check.document))
    assert len(reader.pages) == 3
    xobject = reader.pages[0]["/Resources"]["/XObject"]
    image = next(iter(xobject.values())).get_object()
    assert "/CCITTFaxDecode" in str(image["/Filter"])  # the G4 pages themselves, lossless


def test_a_scanned_tiff_is_rendered_page_by_page() -> None:
    answer, pages = render(samples.scan_tiff(2), "picture")
    assert answer["fax_ready"] is False and len(pages) == 2
    assert all(p.width == FAX_WIDTH for p in pages)
    assert ink(pages[0]) != ink(pages[1]) or pages[0].tobytes() != pages[1].tobytes()


@pytest.mark.parametrize("quality", sorted(QUALITIES))
def test_output_resolution_follows_the_quality(quality: str) -> None:
    _, (page,) = render(make_pdf([["quality"]]), quality=quality)
    ydpi = QUALITIES[quality]
    assert page.info["dpi"] == (XDPI, ydpi) and page.mode == "1"
    assert page.size == (FAX_WIDTH, round(PAPERS["a4"] * ydpi))


def test_corpus_images_become_one_upright_page_each(corpus: Path) -> None:
    """The corpus's pictures: one page each, 1728 wide, none blank, none black; a clearly
    wide one is turned: its drawing is taller than it could be if it had been laid flat."""
    from PIL import ImageOps

    images = corpus / "images"
    if not images.is_dir():
        pytest.skip(f"no images in {corpus}")
    seen = 0
    for path in sorted(images.iterdir()):
        with Image.open(path) as source:
            shown = ImageOps.exif_transpose(source) or source
            width, height = shown.size
        answer, (page,) = render(path.read_bytes(), "picture")
        assert answer["pages"] == 1 and page.width == FAX_WIDTH, path.name
        assert page.height >= 2156 and 0.001 < ink(page) < 0.9, path.name
        box = ImageOps.invert(page.convert("L")).getbbox()
        assert box is not None
        if width > 1.3 * height:
            flat = FAX_WIDTH * height / width * QUALITIES["high"] / XDPI
            assert box[3] - box[1] > 1.5 * flat, path.name
        check = documents.check_picture(path.read_bytes(), LIMITS)
        assert check.usable and check.pages == 1 and check.document, path.name
        seen += 1
    assert seen >= 4


def test_not_a_picture_and_other_formats_are_refused() -> None:
    broken = documents.check_picture(b"\x89PNG\r\n\x1a\n" + b"garbage" * 10, LIMITS)
    assert not broken.usable and broken.reason == "broken"
    gif = samples.picture(Image.new("L", (10, 10)), "GIF")
    assert documents.check_picture(gif, LIMITS).reason == "broken"


def test_pages_over_the_limit_are_counted_not_drawn() -> None:
    small = Limits(max_pages=2)
    for data, kind in ((samples.fax_tiff(3), "picture"), (make_pdf([["a"], ["b"], ["c"]]),
                                                          "pdf")):
        answer = documents.render(data, kind, small, output="pdf")
        assert answer["usable"] is True and answer["pages"] == 3
        assert answer["rendered"] is False and "document" not in answer
