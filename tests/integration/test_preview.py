"""Preview and test before a campaign (mailgw.intake.trial, .preview), over real SMTP with the
simulator: a preview is checked, never dialled, and its ack carries the pages (the first
as an inline PNG, all as a PDF); `test: yes` dials only the account's test number."""

from __future__ import annotations

import io
import smtplib
from collections.abc import Callable, Iterator
from email.message import EmailMessage
from typing import Any

import pytest
from PIL import Image
from pypdf import PdfReader
from sqlalchemy import func, select

from mailgw.accounts import accounts
from mailgw.dispatch.drivers.base import CallRequest, CallResult
from mailgw.dispatch.drivers.simulator import SimulatorDriver
from mailgw.documents.samples import make_pdf
from mailgw.store import Account, Delivery, Job
from tests.conftest import PASSWORD, SENDER, RunningApp, Sink, fax_message
from tests.integration.test_campaign import finished, received
from tests.integration.test_cover import FAST, cover_mail, texts
from tests.integration.test_end_to_end import _data, send

TEST_NUMBER = "+33170709977"


@pytest.fixture
def dialled(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, bytes]]:
    """Every number the simulator was asked to call, with the fax it was handed."""
    seen: dict[str, bytes] = {}
    place = SimulatorDriver.place_call

    async def spy(self: SimulatorDriver, request: CallRequest) -> CallResult:
        seen[request.number] = request.document or b""
        return await place(self, request)

    monkeypatch.setattr(SimulatorDriver, "place_call", spy)
    yield seen


def mail(subject: str, body: str, pdf: bytes) -> EmailMessage:
    msg = fax_message(subject, None)
    msg.set_content(body)
    msg.add_attachment(pdf, maintype="application", subtype="pdf", filename="letter.pdf")
    return msg


def the_ack(sink: Sink) -> EmailMessage:
    (ack,) = sink.wait_for(lambda ms: len(ms) >= 1, what="the ack")
    assert ack["X-Mailgw-Kind"] == "ack"
    return ack


def pages_of(ack: EmailMessage) -> tuple[Image.Image, PdfReader, str]:
    """The inline first page (shown by cid: in the HTML), the attached PDF, the text."""
    html = ack.get_body(("html",))
    assert html is not None
    png = next(p for p in ack.walk() if p.get_content_type() == "image/png")
    cid = str(png["Content-ID"]).strip("<>")
    assert f"cid:{cid}" in html.get_content()  # type: ignore[attr-defined]
    assert png.get_content_disposition() == "inline"
    pdf = next(p for p in ack.iter_attachments() if p.get_content_type() == "application/pdf")
    image = Image.open(io.BytesIO(png.get_content()))  # type: ignore[attr-defined]
    text = ack.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    return image, PdfReader(io.BytesIO(pdf.get_content())), text  # type: ignore[attr-defined]


def not_blank(image: Image.Image) -> bool:
    low, high = image.convert("L").getextrema()  # type: ignore[misc]
    return bool(low < 128 and high > 128)


def nothing_written(app: RunningApp, credits: int | None) -> None:
    with app.store.read() as s:
        assert s.scalar(select(func.count()).select_from(Job)) == 0
        assert s.scalar(select(func.count()).select_from(Delivery)) == 0
        assert s.scalar(select(Account.credits).where(Account.email == SENDER)) == credits


def test_a_preview_is_rendered_never_dialled_and_costs_nothing(
        make_app: Callable[..., RunningApp], sink: Sink, dialled: dict[str, bytes]) -> None:
    app = make_app(**FAST)
    app.add_account(credits=50)
    msg = mail(f"{PASSWORD}:0170709901,0170709902:INV-7",
               "preview: yes\ncover: yes\nheader: yes\n\nHello,\n",
               make_pdf([["the letter"], ["page two"]]))
    reply = send(app.port, msg)
    assert reply.startswith("250 2.0.0 [80]") and "preview" in reply, reply
    assert "sending now" not in reply, reply  # nothing is sent: code 80 says so
    ack = the_ack(sink)
    assert ack["X-Mailgw-Preview"] == "yes" and "preview" in str(ack["Subject"])
    image, pdf, text = pages_of(ack)
    assert image.width == 800 and image.height > 1000 and not_blank(image)
    assert len(pdf.pages) == 3  # the cover, then the two pages
    assert "Pages: 3" in text and "nothing was dialled" in text, text
    cover = pdf.pages[0].extract_text()
    assert "+33170709901" in cover and "INV-7" in cover, cover
    assert "Page 1/3" in cover
    assert "the letter" in pdf.pages[1].extract_text()
    nothing_written(app, 50)
    assert dialled == {}


def test_preview_in_the_subject_in_place_of_the_numbers(
        make_app: Callable[..., RunningApp], sink: Sink, dialled: dict[str, bytes]) -> None:
    app = make_app(**FAST)
    app.add_account(credits=10)
    reply = send(app.port, fax_message(f"{PASSWORD}:preview:REF-1", make_pdf([["only"]])))
    assert reply.startswith("250 2.0.0 [80]"), reply
    image, pdf, _ = pages_of(the_ack(sink))
    assert len(pdf.pages) == 1 and "only" in pdf.pages[0].extract_text()
    assert image.width == 800 and not_blank(image)
    nothing_written(app, 10)
    assert dialled == {}


def test_a_list_preview_uses_the_first_rows_columns(
        make_app: Callable[..., RunningApp], sink: Sink, dialled: dict[str, bytes]) -> None:
    app = make_app(**FAST)
    app.add_account()
    assert send(app.port, cover_mail("aperçu: oui\ncover: yes\n\nBonjour,\n")).startswith(
        "250 2.0.0 [80]")
    _, pdf, text = pages_of(the_ack(sink))
    cover = pdf.pages[0].extract_text()
    assert "Dupont" in cover and "+33170709901" in cover, cover
    assert "Иванов" not in cover
    assert len(pdf.pages) == 2 and "Pages: 2" in text
    nothing_written(app, None)
    assert dialled == {}


def test_test_yes_dials_only_the_test_number(
        make_app: Callable[..., RunningApp], sink: Sink, dialled: dict[str, bytes]) -> None:
    app = make_app(**FAST)
    app.add_account()
    with app.store.tx() as s:
        view = accounts.update_account(s, SENDER, test_number="01 70 70 99 77")
    assert view.test_number == TEST_NUMBER
    reply = send(app.port, cover_mail("test: yes\ncover: yes\n\nHello,\n"))
    assert reply.startswith("250 2.0.0 [80]"), reply
    mails = received(sink, finished(app))
    assert set(dialled) == {TEST_NUMBER}
    got = texts(dialled[TEST_NUMBER])
    assert "Dupont" in got[0] and "Иванов" not in got[0]  # the first row's columns
    with app.store.read() as s:
        assert s.scalars(select(Delivery.number)).all() == [TEST_NUMBER]
    assert {m["X-Mailgw-Kind"] for m in mails} == {"ack", "notice"}
    ack = next(m for m in mails if m["X-Mailgw-Kind"] == "ack")
    text = ack.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert f"sent only to the account's test number, {TEST_NUMBER}" in text, text


def test_test_yes_without_a_test_number_is_refused(
        make_app: Callable[..., RunningApp], sink: Sink, dialled: dict[str, bytes]) -> None:
    app = make_app(**FAST)
    app.add_account(lang="fr")
    msg = mail(f"{PASSWORD}:0170709901:R", "essai: oui\n", make_pdf([["x"]]))
    with smtplib.SMTP("127.0.0.1", app.port, timeout=30) as client:
        client.ehlo("client.example.com")
        code, text = _data(client, msg)
    assert code == 550 and "[89]" in text and "account set --test-number" in text, text
    ack = the_ack(sink)
    body = ack.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert "numéro d'essai" in body and "--test-number" in body, body
    with app.store.read() as s:
        assert s.scalar(select(func.count()).select_from(Job)) == 0
    assert dialled == {}


def test_the_test_number_is_checked_and_can_be_cleared(
        make_app: Callable[..., RunningApp], sink: Sink) -> None:
    app: Any = make_app(**FAST)
    app.add_account()
    with app.store.tx() as s:
        with pytest.raises(accounts.AccountError, match="not a valid fax number"):
            accounts.update_account(s, SENDER, test_number="12")
    with app.store.tx() as s:
        accounts.update_account(s, SENDER, test_number="+33 1 70 70 99 77")
    with app.store.tx() as s:
        assert accounts.update_account(s, SENDER, test_number="none").test_number is None
