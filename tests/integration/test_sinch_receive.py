"""Faxes Sinch received, mailed as PDF (mailgw.dispatch.drivers.sinch_receive): Sinch's
INCOMING_FAX webhook arrives over HTTP at /callbacks/sinch/incoming (the fake posts it as
Sinch documents it, Basic credentials from the service's incomingWebhookUrl), and the mail
leaves through the outbox to a real SMTP sink. SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import img2pdf
import pytest
from sqlalchemy import func, select

from mailgw.accounts import accounts, inbound_numbers
from mailgw.ops import config
from mailgw.store import OutboxMail, Store
from mailgw.store.models import ReceivedFax as ReceivedRow
from tests.conftest import PASSWORD, Sink, free_port, make_settings
from tests.fake_providers import FakeSinch
from tests.integration.test_cloud_drivers import endpoint
from tests.integration.test_received import send_all
from tests.received_faxes import body_text, fax_tiff, pdf_of

CALLBACK_PASSWORD = "cb-pass-123"
FAX_PDF = bytes(img2pdf.convert(fax_tiff(3, label="sinch"), nodate=True))


@pytest.fixture
def sinch() -> Iterator[FakeSinch]:
    fake = FakeSinch().start()
    yield fake
    fake.stop()


@pytest.fixture
def gw(store_url: str, sink: Sink) -> Iterator[tuple[Store, Sink]]:
    """A store (SQLite and PostgreSQL) with alice owning +33 1 70 70 99 01."""
    store = Store(store_url)
    store.upgrade()
    with store.tx() as s:
        accounts.add_account(s, "alice@example.com", PASSWORD, region="FR", lang="fr",
                             tz="Europe/Paris", credits=None)
        inbound_numbers.change(s, "alice@example.com", ["01 70 70 99 01"], [])
    yield store, sink
    store.dispose()


def settings_for(store: Store, sink: Sink, fake: FakeSinch, port: int,
                 **sinch: Any) -> config.Settings:
    section = {"api_url": fake.url, "project_id": fake.project, "key_id": fake.key_id,
               "key_secret": fake.key_secret, "public_url": f"http://127.0.0.1:{port}",
               "callback_password": CALLBACK_PASSWORD, "timeout": "2s", **sinch}
    return make_settings(store.url,
                         sink.port, dispatch={"driver": "sinch"},
                         http={"listen": f"127.0.0.1:{port}"}, drivers={"sinch": section})


def webhook(port: int, password: str = CALLBACK_PASSWORD) -> str:
    """The incomingWebhookUrl the operator sets on the Sinch fax service."""
    return f"http://mailgw:{password}@127.0.0.1:{port}/callbacks/sinch/incoming"


def with_endpoint(store: Store, sink: Sink, fake: FakeSinch,
                  posts: Callable[[int], list[tuple[int, bytes]]], **sinch: Any
                  ) -> tuple[config.Settings, list[int]]:
    """mailgw's HTTP endpoint up while `posts(port)` has the fake post its webhooks."""
    port = free_port()
    settings = settings_for(store, sink, fake, port, **sinch)

    async def go() -> list[int]:
        async with endpoint(settings, store):
            answers = await asyncio.to_thread(posts, port)
        return [status for status, _ in answers]

    return settings, asyncio.run(go())


def outbox_rows(store: Store) -> int:
    with store.read() as s:
        return int(s.scalar(select(func.count()).select_from(OutboxMail)) or 0)


def received_rows(store: Store) -> list[tuple[str, str, str, int]]:
    with store.read() as s:
        return [(r.source, r.name, r.called, r.pages) for r in s.scalars(select(ReceivedRow))]


def test_a_fax_to_a_mapped_number_is_mailed_to_its_account_as_the_pdf_it_came_as(
        gw, sinch: FakeSinch) -> None:
    store, sink = gw
    settings, answers = with_endpoint(store, sink, sinch, lambda port: [sinch.incoming(
        webhook(port), to="+33170709901", sender="+33199000001", pages=3, document=FAX_PDF,
        fax_id="01HDFHACK1YN7CCDYRA6ZRMA8Z", resolution="FINE")])
    assert answers == [200]
    assert received_rows(store) == [("sinch", "01HDFHACK1YN7CCDYRA6ZRMA8Z", "+33170709901", 3)]
    assert send_all(store, settings) == 1
    (mail,) = sink.kinds("received")
    assert mail["To"] == "alice@example.com"
    assert mail["X-Mailgw-Received-Partial"] == "no"
    assert "Fax reçu de +33 1 99 00 00 01" in mail["Subject"]
    text = body_text(mail)
    for expected in ("Numéro appelé : +33 1 70 70 99 01", "Pages : 3", "Durée : 1 min 15 s",
                     "Qualité : haute (204×196 dpi)", "07/12/2026 15:30"):
        assert expected in text, (expected, text)
    filename, pdf = pdf_of(mail)
    assert filename == "fax-20261207-143015.pdf" and len(pdf.pages) == 3
    (part,) = [p for p in mail.iter_attachments()]
    assert part.get_content() == FAX_PDF  # mailed as Sinch gave it


def test_an_unknown_number_goes_to_the_operator_json_body(gw, sinch: FakeSinch) -> None:
    """The JSON shape (callbackUrlContentType application/json): the PDF base64 in `file`;
    Sinch's page count is wrong on purpose: the PDF's own count is the one mailed."""
    store, sink = gw
    settings, answers = with_endpoint(store, sink, sinch, lambda port: [sinch.incoming(
        webhook(port), to="+33170709999", pages=7, document=FAX_PDF,
        content_type="application/json")])
    assert answers == [200]
    send_all(store, settings)
    (mail,) = sink.kinds("received")
    assert mail["To"] == "postmaster@gw.example.org"
    text = body_text(mail)
    assert "inbound-number" in text and "Pages : 3" in text
    assert "Qualité" not in text  # Sinch said no resolution: none is claimed
    assert len(pdf_of(mail)[1].pages) == 3


def test_bad_credentials_are_refused_and_nothing_is_kept(gw, sinch: FakeSinch) -> None:
    store, sink = gw

    def posts(port: int) -> list[tuple[int, bytes]]:
        return [sinch.incoming(webhook(port, "guess"), to="+33170709901", document=FAX_PDF),
                sinch.incoming(f"http://127.0.0.1:{port}/callbacks/sinch/incoming",
                               to="+33170709901", document=FAX_PDF)]

    _, answers = with_endpoint(store, sink, sinch, posts)
    assert answers == [401, 401]
    # without a callback password there is nothing to check an incoming fax against
    _, answers = with_endpoint(store, sink, sinch, lambda port: [sinch.incoming(
        f"http://127.0.0.1:{port}/callbacks/sinch/incoming", to="+33170709901",
        document=FAX_PDF)], callback_password="", public_url="")
    assert answers == [403]
    assert received_rows(store) == [] and outbox_rows(store) == 0


def test_a_duplicated_webhook_is_mailed_once(gw, sinch: FakeSinch) -> None:
    store, sink = gw

    def posts(port: int) -> list[tuple[int, bytes]]:
        return [sinch.incoming(webhook(port), to="+33170709901", document=FAX_PDF,
                               fax_id="DUP1", content_type=ctype)
                for ctype in ("multipart/form-data", "multipart/form-data", "application/json")]

    settings, answers = with_endpoint(store, sink, sinch, posts)
    assert answers == [200, 200, 200]  # Sinch must stop retrying
    assert outbox_rows(store) == 1
    assert send_all(store, settings) == 1
    assert len(sink.kinds("received")) == 1


def test_a_failed_reception_without_document_is_still_told(gw, sinch: FakeSinch) -> None:
    store, sink = gw
    settings, answers = with_endpoint(store, sink, sinch, lambda port: [sinch.incoming(
        webhook(port), to="+33170709901", pages=1, document=None, status="FAILURE",
        errorType="FAX_ERROR", errorMessage="The sender hung up")])
    assert answers == [200]
    send_all(store, settings)
    (mail,) = sink.kinds("received")
    assert mail["X-Mailgw-Received-Partial"] == "yes"
    text = body_text(mail)
    assert "The sender hung up" in text and "Aucun document n'accompagnait ce fax." in text
    assert list(mail.iter_attachments()) == []


def test_smarthost_down_then_back_loses_nothing(gw, sinch: FakeSinch) -> None:
    store, sink = gw
    sink.stop()
    settings, answers = with_endpoint(store, sink, sinch, lambda port: [sinch.incoming(
        webhook(port), to="+33170709901", document=FAX_PDF, fax_id="LATE1")])
    assert answers == [200]  # taken: the outbox holds it
    assert send_all(store, settings) == 0
    back = Sink(port=sink.port).start()
    try:
        with store.tx() as s:  # skip the back-off
            for row in s.scalars(select(OutboxMail)):
                row.next_attempt_at = datetime.now(UTC)
        assert send_all(store, settings) == 1
        (mail,) = back.kinds("received")
        assert mail["To"] == "alice@example.com" and len(pdf_of(mail)[1].pages) == 3
    finally:
        back.stop()
