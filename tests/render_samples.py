"""Documents made in the tests: fax-page inputs (landscape PDF, multi-page TIFF, PNG with
alpha, photo with EXIF rotation) and render-time bombs (a 1 GB flate stream, a 200-inch
page, a 10,000-page tree, a huge image), each small on disk."""

from __future__ import annotations

import functools
import io
import struct
import zlib

from PIL import Image


def raw_pdf(objects: list[bytes]) -> bytes:
    """A PDF of these objects (1 is the catalog), with a right xref table."""
    out = io.BytesIO()
    out.write(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(out.tell())
        out.write(b"%d 0 obj\n" % number + body + b"\nendobj\n")
    xref = out.tell()
    out.write(b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1))
    for off in offsets:
        out.write(b"%010d 00000 n \n" % off)
    out.write(b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n"
              % (len(objects) + 1, xref))
    return out.getvalue()


def stream(body: bytes, extra: bytes = b"") -> bytes:
    return b"<< /Length %d %s>>\nstream\n" % (len(body), extra) + body + b"\nendstream"


def one_page_pdf(content: bytes, width: float = 595, height: float = 842,
                 extra: bytes = b"", objects: tuple[bytes, ...] = (),
                 filtered: bytes = b"") -> bytes:
    """One page drawing `content` (already encoded when `filtered` names its filter)."""
    return raw_pdf([b"<< /Type /Catalog /Pages 2 0 R >>",
                    b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
                    b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 %g %g] /Contents 4 0 R %s>>"
                    % (width, height, extra),
                    stream(content, filtered), *objects])


def flate_of_spaces(head: bytes, size: int, chunk: int = 1 << 20) -> bytes:
    """A zlib stream that inflates to `head` and then `size` spaces: one 1 MB block
    compressed once with a streaming compressobj and repeated (a full flush makes blocks
    independent), the Adler-32 computed over what it inflates to. 1 GB → about 1 MB."""
    spaces = b" " * chunk
    deflate = zlib.compressobj(9, zlib.DEFLATED, -15)
    first = deflate.compress(head) + deflate.flush(zlib.Z_FULL_FLUSH)
    block = deflate.compress(spaces) + deflate.flush(zlib.Z_FULL_FLUSH)
    tail = deflate.flush()
    adler = zlib.adler32(head)
    for _ in range(size // chunk):
        adler = zlib.adler32(spaces, adler)
    return b"\x78\xda" + first + block * (size // chunk) + tail + struct.pack(">I", adler)


@functools.cache
def flate_bomb_pdf(size: int = 1 << 30) -> bytes:
    """One page whose content stream decompresses to `size` bytes (default 1 GB)."""
    data = flate_of_spaces(b"0 0 0 rg 72 720 200 50 re f\n", size)
    return one_page_pdf(data, filtered=b"/Filter /FlateDecode ")


def huge_page_pdf(inches: float = 200) -> bytes:
    return one_page_pdf(b"0 0 0 rg 0 0 100 100 re f", inches * 72, inches * 72)


@functools.cache
def page_tree_pdf(pages: int = 10_000) -> bytes:
    from pypdf import PdfWriter

    writer = PdfWriter()
    for _ in range(pages):
        writer.add_blank_page(595, 842)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def huge_image_pdf(side: int = 20_000) -> bytes:
    """A page drawing one RGB image declared side × side (1.2 GB decoded for 20,000); its
    data is a few bytes (the size is read from the dictionary, never decoded)."""
    image = stream(zlib.compress(b"\0" * 64), b"/Type /XObject /Subtype /Image /Width %d "
                   b"/Height %d /ColorSpace /DeviceRGB /BitsPerComponent 8 "
                   b"/Filter /FlateDecode " % (side, side))
    return one_page_pdf(b"q 500 0 0 500 50 300 cm /Im0 Do Q",
                        extra=b"/Resources << /XObject << /Im0 5 0 R >> >> ",
                        objects=(image,))


def png_bomb(side: int = 20_000) -> bytes:
    """A greyscale PNG of side × side white pixels (400 MB decoded), about 400 KB."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(
            ">I", zlib.crc32(kind + body))

    row = b"\0" + b"\xff" * side
    deflate = zlib.compressobj(9)
    idat = b"".join(deflate.compress(row) for _ in range(side)) + deflate.flush()
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", side, side, 8, 0,
                                                                0, 0, 0))
            + chunk(b"IDAT", idat) + chunk(b"IEND", b""))


def marked_pdf(width: float, height: float) -> bytes:
    """A page with a black bar along its top edge and a block at the bar's left end (so
    its orientation can be read back from the fax page)."""
    bar = b"0 0 0 rg 0 %g %g 36 re f 0 %g 72 72 re f" % (height - 36, width, height - 108)
    return one_page_pdf(bar, width, height)


def picture(image: Image.Image, fmt: str, **options: object) -> bytes:
    out = io.BytesIO()
    image.save(out, fmt, **options)
    return out.getvalue()


def fax_tiff(pages: int = 3, ydpi: int = 196) -> bytes:
    """A fax-ready multi-page TIFF: 1728 wide, bilevel, G4, with a mark per page."""
    frames = []
    for n in range(pages):
        frame = Image.new("1", (1728, round(11.69 * ydpi)), 1)
        frame.paste(0, (100 + 200 * n, 100, 300 + 200 * n, 300))
        frames.append(frame)
    return picture(frames[0], "TIFF", compression="group4", dpi=(204, ydpi), save_all=True,
                   append_images=frames[1:])


def scan_tiff(pages: int = 2) -> bytes:
    """A colour scan as a TIFF (LZW, 150 dpi): not fax-ready, so rendered."""
    frames = []
    for n in range(pages):
        frame = Image.new("RGB", (1240, 1754), (255, 255, 255))
        frame.paste((20, 20, 20), (100, 100 + 300 * n, 900, 200 + 300 * n))
        frames.append(frame)
    return picture(frames[0], "TIFF", compression="tiff_lzw", dpi=(150, 150), save_all=True,
                   append_images=frames[1:])


def exif_rotated_jpeg() -> bytes:
    """A phone photo held upright: stored landscape (600 × 400) with EXIF orientation 6
    (turn a quarter clockwise to show). The stored left edge is black: shown, it is the top."""
    stored = Image.new("RGB", (600, 400), (255, 255, 255))
    stored.paste((0, 0, 0), (0, 0, 60, 400))
    exif = Image.Exif()
    exif[0x0112] = 6
    return picture(stored, "JPEG", exif=exif.tobytes(), quality=90)


def alpha_png() -> bytes:
    """Transparent black everywhere (0, 0, 0, 0) but an opaque black square in the middle:
    flattened on white, only the square is ink."""
    image = Image.new("RGBA", (400, 600), (0, 0, 0, 0))
    image.paste((0, 0, 0, 255), (150, 250, 250, 350))
    return picture(image, "PNG")
