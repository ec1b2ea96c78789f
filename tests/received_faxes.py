"""Received faxes for the tests: a fax's TIFF as faxgetty writes it (G3/G4, 1728 wide,
204 dpi across, 98/196 down, the sender's TSI in ImageDescription), and the mail's checks."""

from __future__ import annotations

import io
from email.message import EmailMessage

from PIL import Image, ImageDraw, TiffImagePlugin, TiffTags
from pypdf import PdfReader


def fax_tiff(pages: int, *, label: str = "received", vres: int = 196, csid: str = "",
             compression: str = "group4") -> bytes:
    frames = []
    for n in range(pages):
        im = Image.new("1", (1728, 2200 if vres > 100 else 1100), 1)
        ImageDraw.Draw(im).text((100, 100 + 10 * n), f"{label} page {n + 1}", fill=0)
        frames.append(im)
    out = io.BytesIO()
    extra = {"description": csid} if csid else {}
    frames[0].save(out, "TIFF", compression=compression, dpi=(204, vres), save_all=True,
                   append_images=frames[1:], **extra)
    return out.getvalue()


def pdf_of(mail: EmailMessage) -> tuple[str, PdfReader]:
    """The attached PDF's file name and the PDF."""
    (part,) = [p for p in mail.iter_attachments() if p.get_content_type() == "application/pdf"]
    return str(part.get_filename()), PdfReader(io.BytesIO(part.get_content()))


def body_text(mail: EmailMessage) -> str:
    part = mail.get_body(("plain",))
    assert part is not None
    return str(part.get_content())


def hylafax_tiff(pages: int, *, csid: str, subaddress: str = "", seconds: int = 0,
                 vres: int = 196) -> bytes:
    """A TIFF as faxgetty writes it into recvq/: the TSI in ImageDescription, HylaFAX's
    private tags for the subaddress (34909) and the time on the line (34910)."""
    frames = []
    for n in range(pages):
        im = Image.new("1", (1728, 2200 if vres > 100 else 1100), 1)
        ImageDraw.Draw(im).text((100, 100), f"{csid} page {n + 1}", fill=0)
        frames.append(im)
    info = TiffImagePlugin.ImageFileDirectory_v2()
    info[270] = csid
    if subaddress:
        info[34909] = subaddress
        info.tagtype[34909] = TiffTags.ASCII
    if seconds:
        info[34910] = seconds
        info.tagtype[34910] = TiffTags.LONG
    out = io.BytesIO()
    frames[0].save(out, "TIFF", compression="group4", dpi=(204, vres), save_all=True,
                   append_images=frames[1:], tiffinfo=info)
    return out.getvalue()
