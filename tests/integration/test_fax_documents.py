"""Which attachments a fax is made of (PDF, TIFF, JPEG, PNG, office files), how their
refusals are coded, LibreOffice's conversion, and the whole path over real SMTP."""

from __future__ import annotations

import io
import os
import shutil
import smtplib
import stat
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path

import pytest
from PIL import Image
from pypdf import PdfReader
from sqlalchemy import select

from mailgw.codes import Code, Detail
from mailgw.documents import checks as documents
from mailgw.documents import office, sandbox
from mailgw.documents.checks import DocumentCheck
from mailgw.documents.samples import make_pdf
from mailgw.documents.sandbox import Limits
from mailgw.intake.verdict import Accept, Refuse
from mailgw.store import Job
from tests import render_samples as samples
from tests.conftest import PASSWORD, fax_message, wait_until
from tests.unit.test_decide import PDF, Plain, mail, run

JPEG = samples.picture(Image.new("RGB", (300, 400), (255, 255, 255)), "JPEG")
PNG = samples.alpha_png()
DOCX = b"PK\x03\x04 a word document"
DOCX_TYPE = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"


@pytest.fixture(autouse=True, scope="module")
def fresh_pool() -> Iterator[None]:
    yield
    sandbox.shutdown()


@pytest.fixture
def store_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'mailgw.db'}"


# -- the decision (plain lookups) ----------------------------------------------------------------

def test_pictures_are_fax_documents_in_the_mails_order() -> None:
    lookups = Plain()
    v = run(mail("FGB45L:0170709901", attach=(("photo.jpg", JPEG, "image/jpeg"),
                                              ("doc.pdf", PDF, "application/pdf"),
                                              ("scan.tif", samples.fax_tiff(1),
                                               "image/tiff"))), lookups)
    assert isinstance(v, Accept) and v.found.pages == 3
    assert lookups.asked.count("picture") == 2 and lookups.asked.count("pdf") == 1
    assert v.found.used == ["photo.jpg (1 p.)", "doc.pdf (1 p.)", "scan.tif (1 p.)"]
    assert v.plan.document is not None and v.plan.document.name == "3 documents"


def test_a_picture_alone_is_sent_as_its_rendered_pdf() -> None:
    v = run(mail("FGB45L:0170709901", attach=(("photo.jpg", JPEG, "image/jpeg"),)))
    assert isinstance(v, Accept) and v.plan.document is not None
    assert v.plan.document.data == b"%PDF-picture" and v.plan.document.name == "photo.jpg"


def test_inline_pictures_and_other_formats_are_not_documents() -> None:
    msg = mail("FGB45L:0170709901")
    msg.add_attachment(PNG, maintype="image", subtype="png", filename="logo.png",
                       disposition="inline")
    gif = samples.picture(Image.new("L", (10, 10)), "GIF")
    msg.add_attachment(gif, maintype="image", subtype="gif", filename="smile.gif")
    lookups = Plain()
    v = run(msg, lookups)
    assert isinstance(v, Refuse) and v.code == Code.NO_DOCUMENT
    assert "picture" not in lookups.asked
    msg.add_attachment(PDF, maintype="application", subtype="pdf", filename="doc.pdf")
    v = run(msg)
    assert isinstance(v, Accept) and v.found.used == ["doc.pdf (1 p.)"]
    assert v.found.ignored == ["smile.gif"]  # the inline logo is not even mentioned


def test_render_refusals_are_coded_with_their_reason() -> None:
    page = DocumentCheck(False, error="page 1 is 200 x 200 in", reason="page_too_large",
                         params=(("page", 1), ("w_in", 200), ("h_in", 200), ("limit_in", 50),
                                 ("w_cm", 508), ("h_cm", 508), ("limit_cm", 127)))
    v = run(mail("FGB45L:0170709901", attach=(("big.pdf", PDF, "application/pdf"),)),
            Plain(pdfs={PDF: page}))
    assert isinstance(v, Refuse) and v.code == Code.OVER_LIMIT and v.detail is not None
    assert v.detail.text("en") == "big.pdf: page 1 is 200 x 200 in, at most 50 in on a side"
    assert v.detail.text("fr") == "big.pdf : la page 1 mesure 508 x 508 cm, au plus 127 cm " \
        "de côté"
    killed = DocumentCheck(False, error="killed", reason="unreadable")
    v = run(mail("FGB45L:0170709901", attach=(("p.jpg", JPEG, "image/jpeg"),)),
            Plain(pdfs={JPEG: killed}))
    assert isinstance(v, Refuse) and v.code == Code.BAD_DOCUMENT
    many = DocumentCheck(True, pages=150)
    two = (("a.pdf", PDF, "application/pdf"), ("b.jpg", JPEG, "image/jpeg"))
    v = run(mail("FGB45L:0170709901", attach=two), Plain(pdfs={PDF: many, JPEG: many}))
    assert isinstance(v, Refuse) and v.detail == Detail.of("too_many_pages", pages=300,
                                                           limit=200)


def test_an_office_file_without_libreoffice() -> None:
    """Alone: 93, naming the accepted types. Beside a PDF: the PDF goes, the ack names it."""
    docx = (("lettre.docx", DOCX, DOCX_TYPE),)
    v = run(mail("FGB45L:0170709901", attach=docx))
    assert isinstance(v, Refuse) and v.code == Code.BAD_DOCUMENT and v.detail is not None
    assert v.detail.text("en") == "lettre.docx: Word, Excel, OpenDocument and RTF files are " \
        "not accepted here; send a PDF, TIFF, JPEG or PNG"
    assert "PDF, TIFF, JPEG ou PNG" in v.detail.text("fr")
    assert "PDF, TIFF, JPEG или PNG" in v.detail.text("ru")
    v = run(mail("FGB45L:0170709901", attach=(("a.pdf", PDF, "application/pdf"), *docx)))
    assert isinstance(v, Accept) and v.found.ignored == ["lettre.docx"]
    converted = DocumentCheck(True, pages=2, document=b"%PDF-converted")
    v = run(mail("FGB45L:0170709901", attach=docx), Plain(pdfs={DOCX: converted}))
    assert isinstance(v, Accept) and v.plan.document is not None
    assert v.plan.document.data == b"%PDF-converted" and v.found.pages == 2


# -- LibreOffice -----------------------------------------------------------------------------

def fake_soffice(tmp_path: Path, body: str) -> Path:
    """A stand-in `soffice` on PATH (a shell script), to test the plumbing without LO."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    script = bindir / "soffice"
    script.write_text("#!/bin/sh\n" + body)
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return bindir


def test_office_refused_when_soffice_is_missing(monkeypatch: pytest.MonkeyPatch,
                                                tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # nothing there
    got = documents.check_office(DOCX, "a.docx", Limits())
    assert not got.usable and got.reason == "office_unavailable"


def test_conversion_runs_with_its_own_profile_and_outdir(monkeypatch: pytest.MonkeyPatch,
                                                         tmp_path: Path) -> None:
    pdf = tmp_path / "made.pdf"
    pdf.write_bytes(make_pdf([["one"], ["two"]]))
    args = tmp_path / "args"
    bindir = fake_soffice(tmp_path, f'echo "$@" > {args}\n'
                          'while [ "$1" != "--outdir" ]; do shift; done\n'
                          f'cp {pdf} "$2/document.pdf"\n')
    monkeypatch.setenv("PATH", f"{bindir}:{os.environ['PATH']}")
    got = documents.check_office(DOCX, "lettre.docx", Limits())
    assert got.usable and got.pages == 2 and got.document == pdf.read_bytes()
    seen = args.read_text()
    assert "-env:UserInstallation=file:///" in seen and "--headless" in seen
    assert "--convert-to pdf" in seen and seen.rstrip().endswith("document.docx")
    work = seen.split("UserInstallation=file://")[1].split("/profile")[0]
    assert not Path(work).exists()  # the temporary directory is gone


def test_a_conversion_that_hangs_is_killed(monkeypatch: pytest.MonkeyPatch,
                                           tmp_path: Path) -> None:
    pidfile = tmp_path / "pid"
    bindir = fake_soffice(tmp_path, f"echo $$ > {pidfile}\nsleep 600 &\nwait\n")
    monkeypatch.setenv("PATH", f"{bindir}:{os.environ['PATH']}")
    got = documents.check_office(DOCX, "a.docx", Limits(wall_seconds=1.0))
    assert not got.usable and got.reason == "office_failed" and "took more than" in str(got.error)
    pid = int(pidfile.read_text())
    assert not Path(f"/proc/{pid}").exists()  # its whole group was killed and reaped


@pytest.mark.skipif(office.soffice() is None, reason="LibreOffice (soffice) is not installed")
def test_a_real_rtf_is_converted_by_libreoffice() -> None:
    rtf = rb"{\rtf1\ansi{\fonttbl\f0\fswiss Helvetica;}\f0\pard Fax me\par}"
    got = documents.check_office(rtf, "note.rtf", Limits(cpu_seconds=60))
    assert got.usable and got.pages == 1 and got.document is not None


# -- over real SMTP ------------------------------------------------------------------------------

def send(port: int, msg: EmailMessage) -> tuple[int, str]:
    with smtplib.SMTP("127.0.0.1", port, timeout=60) as client:
        client.ehlo("client.example.com")
        client.mail(str(msg["From"]))
        assert client.rcpt("fax@gw.example.org")[0] == 250
        code, text = client.data(msg.as_bytes().replace(b"\n", b"\r\n"))
    return code, text.decode()


def with_attachment(data: bytes, ctype: str, name: str) -> EmailMessage:
    msg = fax_message(f"{PASSWORD}:0170709901", None)
    main, sub = ctype.split("/")
    msg.add_attachment(data, maintype=main, subtype=sub, filename=name)
    return msg


def test_pictures_and_office_files_over_smtp(make_app, sink) -> None:
    app = make_app()
    app.add_account()
    code, text = send(app.port, with_attachment(samples.fax_tiff(3), "image/tiff", "fax.tif"))
    assert code == 250 and "[80]" in text, text
    photo = samples.exif_rotated_jpeg()
    code, text = send(app.port, with_attachment(photo, "image/jpeg", "IMG_0001.jpg"))
    assert code == 250 and "[80]" in text, text
    jobs = wait_until(lambda: _jobs(app), what="two jobs")
    assert [pages for pages, _, _ in jobs] == [3, 1]
    for pages, kind, document in jobs:
        assert kind == "application/pdf" and document is not None
        assert len(PdfReader(io.BytesIO(document)).pages) == pages
    code, text = send(app.port, with_attachment(DOCX, DOCX_TYPE, "lettre.docx"))
    if shutil.which("soffice") is None:
        assert code == 554 and "[93]" in text and "send a PDF, TIFF, JPEG or PNG" in text, text


def _jobs(app) -> list[tuple[int, str, bytes]]:  # type: ignore[no-untyped-def]
    with app.store.read() as s:
        jobs = [(j.pages, j.document_type, j.document)
                for j in s.scalars(select(Job).order_by(Job.id))]
        return jobs if len(jobs) >= 2 else []


def test_parse_lists_pictures_with_their_rendered_pages() -> None:
    from datetime import UTC, datetime

    from mailgw.intake.parse_report import as_json, examine
    from mailgw.ops.config import Settings

    msg = mail("FGB45L:0170709901", attach=(("scan.tif", samples.fax_tiff(2), "image/tiff"),
                                            ("a.pdf", make_pdf([["x"]]), "application/pdf")))
    seen = examine(msg.as_bytes(), Settings(), now=datetime(2026, 6, 1, tzinfo=UTC),
                   to="fax@localhost")
    assert [(d["filename"], d["pages"]) for d in seen.documents] == [("scan.tif", 2),
                                                                     ("a.pdf", 1)]
    assert seen.code == Code.SENDING and seen.found.pages == 3
    shown = as_json(seen)  # `documents` stays DESIGN's list of PDFs
    assert [d["filename"] for d in shown["documents"]] == ["a.pdf"]
    assert set(shown["documents"][0]) == {"filename", "pages", "usable", "error"}
