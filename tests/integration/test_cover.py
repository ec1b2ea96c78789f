"""Cover pages and header lines (mailgw.documents.cover, .stamp; mailgw.dispatch.faxdoc): made
in the real sandbox from a real PDF and read back with pypdf; then end to end, over SMTP
with the simulator, each recipient's fax starting with a cover of its own."""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from pypdf import PdfReader, PdfWriter
from sqlalchemy import select

from mailgw.accounts import accounts
from mailgw.dispatch.drivers.base import CallRequest, CallResult
from mailgw.dispatch.drivers.simulator import SimulatorDriver
from mailgw.documents.cover import CoverError, Covers, Facts, compose, header_text
from mailgw.documents.samples import make_pdf
from mailgw.documents.sandbox import Limits
from mailgw.store import Attempt, Delivery
from tests.conftest import PASSWORD, SENDER, RunningApp, Sink, fax_message
from tests.integration.test_campaign import finished, received
from tests.integration.test_end_to_end import send

LIMITS = Limits(cpu_seconds=20)
FACTS = Facts(number="+33170709901", pages=4, sender="jean@example.com",
              account="jean@example.com", lang="fr", tz="Europe/Paris", ref="R-42",
              comment="relance été", columns={"Nom": "Иванов", "Prénom": "Élodie",
                                                 "FAX": "01 70 70 99 01"})


def texts(pdf: bytes) -> list[str]:
    return [page.extract_text() for page in PdfReader(io.BytesIO(pdf)).pages]


def three_pages() -> bytes:
    """Two portrait pages and a landscape one (its header runs down its right edge)."""
    writer = PdfWriter()
    writer.append(io.BytesIO(make_pdf([["first page"], ["second page"]])))
    writer.add_blank_page(842, 595)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def test_the_cover_shows_the_recipients_columns_and_the_header_is_on_every_page() -> None:
    html = Covers().html(FACTS)
    fax, pages = compose(three_pages(), html, header_text(FACTS), "fr", LIMITS)
    assert pages == 4
    got = texts(fax)
    cover = got[0]
    for value in ("Télécopie", "Иванов", "Élodie", "+33170709901", "R-42", "relance été",
                  "jean@example.com", "4 (celle-ci comprise)"):
        assert value in cover, (value, cover)
    assert "first page" in got[1] and "second page" in got[2]
    for n, text in enumerate(got, 1):
        assert f"Page {n}/4" in text, text
        assert "jean@example.com" in text and "→ +33170709901" in text


def test_a_header_without_cover_keeps_the_pages() -> None:
    fax, pages = compose(three_pages(), None, "header", "ru", LIMITS)
    assert pages == 3
    assert [t.strip().endswith(f"Стр. {n}/3") or f"Стр. {n}/3" in t
            for n, t in enumerate(texts(fax), 1)] == [True] * 3


def test_a_cover_without_header_is_only_put_first() -> None:
    fax, pages = compose(three_pages(), Covers().html(FACTS), None, "fr", LIMITS)
    assert pages == 4 and "Page 1/" not in "".join(texts(fax))
    assert "Иванов" in texts(fax)[0]


def test_a_column_value_cannot_inject_markup() -> None:
    facts = Facts(number="+33170709901", pages=2, sender="a@example.com",
                  account="a@example.com", lang="en",
                  columns={"Name": "<h1>Boss</h1> & <img src='http://x/'>"})
    html = Covers().html(facts)
    assert "<h1>Boss" not in html and "&lt;h1&gt;Boss" in html
    fax, _ = compose(make_pdf([["x"]]), html, None, "en", LIMITS)
    assert "<h1>Boss</h1> & <img src='http://x/'>" in texts(fax)[0]


@pytest.fixture
def broken_templates(tmp_path: Path) -> str:
    for lang in ("en", "fr"):
        (tmp_path / lang).mkdir()
        (tmp_path / lang / "cover.html").write_text("<h1>{% if %}</h1>", encoding="utf-8")
    return str(tmp_path)


def test_an_operators_broken_template_is_a_cover_error(broken_templates: str) -> None:
    with pytest.raises(CoverError, match="cover template cannot be used"):
        Covers(broken_templates).html(FACTS)


def test_the_operators_template_comes_first(tmp_path: Path) -> None:
    (tmp_path / "fr").mkdir()
    (tmp_path / "fr" / "cover.html").write_text("<p>Cher {{ Prénom }} {{ Nom }}</p>",
                                                encoding="utf-8")
    assert Covers(str(tmp_path)).html(FACTS) == "<p>Cher Élodie Иванов</p>"
    assert "Fax" in Covers(str(tmp_path)).html(
        Facts(number="+1", pages=1, sender="a", account="a", lang="en"))  # ours for en


# -- end to end ------------------------------------------------------------------------------

@pytest.fixture
def handed(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, bytes]]:
    """The document each number's call was handed (the simulator still places the call)."""
    seen: dict[str, bytes] = {}
    place = SimulatorDriver.place_call

    async def spy(self: SimulatorDriver, request: CallRequest) -> CallResult:
        if request.document is not None:
            seen[request.number] = request.document
        return await place(self, request)

    monkeypatch.setattr(SimulatorDriver, "place_call", spy)
    yield seen


FAST: dict[str, Any] = {"drivers": {"simulator": {"time_scale": 0.0001}},
                        "notify": {"summary_from": 0}}
CSV = "Nom;Prénom;FAX\r\nDupont;Élodie;01 70 70 99 01\r\nИванов;Пётр;01 70 70 99 02\r\n"


def cover_mail(body: str) -> Any:
    msg = fax_message(f"{PASSWORD}::R-7:relance", None)
    msg.set_content(body)
    msg.add_attachment(make_pdf([["the letter"]]), maintype="application", subtype="pdf",
                       filename="letter.pdf")
    msg.add_attachment(CSV.encode(), maintype="text", subtype="csv", filename="clients.csv")
    return msg


def test_a_list_with_cover_yes_sends_each_recipient_a_cover_of_its_own(
        make_app: Callable[..., RunningApp], sink: Sink, handed: dict[str, bytes]) -> None:
    app = make_app(**FAST)
    app.add_account()
    reply = send(app.port, cover_mail("cover: yes\nheader: oui\n\nHello,\n"))
    assert reply.startswith("250 2.0.0 [80]"), reply
    kinds = finished(app)
    mails = received(sink, kinds)
    ack = next(m for m in mails if m["X-Mailgw-Kind"] == "ack")
    assert "Pages: 2" in ack.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert set(handed) == {"+33170709901", "+33170709902"}
    for number, name in (("+33170709901", "Dupont"), ("+33170709902", "Иванов")):
        got = texts(handed[number])
        assert len(got) == 2
        assert name in got[0] and number in got[0] and "R-7" in got[0], got[0]
        assert "the letter" in got[1]
        assert "Page 1/2" in got[0] and "Page 2/2" in got[1]
    notices = [m for m in mails if m["X-Mailgw-Kind"] == "notice"]
    assert len(notices) == 2
    for notice in notices:
        assert notice["X-Mailgw-State"] == "delivered"
        assert "(2/2 pages)" in notice["Subject"], notice["Subject"]


def test_the_accounts_setting_asks_for_it_and_the_mail_can_say_no(
        make_app: Callable[..., RunningApp], sink: Sink, handed: dict[str, bytes]) -> None:
    app = make_app(**FAST)
    app.add_account()
    with app.store.tx() as s:
        accounts.update_account(s, SENDER, cover="yes")
    msg = cover_mail("cover: no\n\nHello,\n")
    assert send(app.port, msg).startswith("250 2.0.0 [80]")
    finished(app)
    assert [len(texts(doc)) for doc in handed.values()] == [1, 1]
    with app.store.tx() as s:
        accounts.update_account(s, SENDER, cover="no", header_line="yes")
    handed.clear()
    assert send(app.port, cover_mail("Hello,\n")).startswith("250 2.0.0 [80]")
    finished(app)
    assert [(len(t), "Page 1/1" in t[0]) for t in map(texts, handed.values())] == [
        (1, True), (1, True)]


def test_a_broken_template_fails_the_delivery_and_dispatch_goes_on(
        make_app: Callable[..., RunningApp], sink: Sink, handed: dict[str, bytes],
        broken_templates: str) -> None:
    app = make_app(drivers={"simulator": {"time_scale": 0.0001}},
                   notify={"summary_from": 0, "templates_dir": broken_templates})
    app.add_account()
    assert send(app.port, cover_mail("cover: yes\n")).startswith("250 2.0.0 [80]")
    plain = fax_message(f"{PASSWORD}:0170709903:R-8", make_pdf([["no cover"]]))
    assert send(app.port, plain).startswith("250 2.0.0 [80]")
    finished(app)
    with app.store.read() as s:
        rows = s.execute(select(Delivery.number, Delivery.state, Attempt.error_code,
                                Attempt.error_text)
                         .join(Attempt, Attempt.delivery_id == Delivery.id)).all()
    by_number = {r.number: r for r in rows}
    assert by_number["+33170709903"].state == "delivered"  # the dispatcher lives on
    for number in ("+33170709901", "+33170709902"):
        row = by_number[number]
        assert (row.state, row.error_code) == ("failed", "cover"), row
        assert "cover template cannot be used" in row.error_text
    assert set(handed) == {"+33170709903"}  # no call was placed without its cover
