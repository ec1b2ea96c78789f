"""Received faxes mailed as PDF (mailgw.notify.received): the account that owns the called
number, the operator for the others, a partial reception, a smarthost that is down, and a
fax seen again after a restart. The HylaFAX side is in tests/system/test_hylafax_receive.py."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import func, select

from mailgw.accounts import accounts, inbound_numbers
from mailgw.dispatch.drivers.ports import ReceivedFax
from mailgw.notify.outbox import OutboxSender
from mailgw.notify.received import ReceivedMailer
from mailgw.store import OutboxMail, Store
from tests.conftest import PASSWORD, Sink, make_settings
from tests.received_faxes import body_text, fax_tiff, pdf_of

SOURCE = "hylafax:127.0.0.1:4559"
TIFF2 = fax_tiff(2, csid="+33 1 99 00 00 01 ACME")


@pytest.fixture
def gw(store_url: str, sink: Sink) -> Iterator[tuple[Store, Any, Sink]]:
    """A store (SQLite and PostgreSQL) with alice owning +33 1 70 70 99 01."""
    url = store_url
    settings = make_settings(url, sink.port)
    store = Store(url)
    store.upgrade()
    with store.tx() as s:
        accounts.add_account(s, "alice@example.com", PASSWORD, region="FR", lang="fr",
                             tz="Europe/Paris", credits=None)
        inbound_numbers.change(s, "alice@example.com", ["01 70 70 99 01"], [])
    yield store, settings, sink
    store.dispose()


def fax(name: str = "fax00001.tif", called: str = "+33170709901", **kw: Any) -> ReceivedFax:
    values: dict[str, Any] = {
        "source": SOURCE, "name": name, "called": called, "caller": "+33199000001",
        "csid": "+33 1 99 00 00 01 ACME", "pages": 2, "duration": 75.0,
        "received_at": datetime(2026, 12, 7, 14, 30, tzinfo=UTC), "resolution": 196,
        "tiff": TIFF2}
    values.update(kw)
    return ReceivedFax(**values)


def send_all(store: Store, settings: Any) -> int:
    sender = OutboxSender(store, settings.notify, owner="test")

    async def drain() -> int:
        try:
            return await sender.send_due()
        finally:
            await sender.close()
    return asyncio.run(drain())


def outbox_rows(store: Store) -> int:
    with store.read() as s:
        return int(s.scalar(select(func.count()).select_from(OutboxMail)) or 0)


def test_a_fax_to_a_mapped_number_is_mailed_to_its_account_as_pdf(gw) -> None:
    store, settings, sink = gw
    assert ReceivedMailer(lambda: store, settings).deliver(fax())
    assert send_all(store, settings) == 1
    (mail,) = sink.kinds("received")
    assert mail["To"] == "alice@example.com"
    assert mail["X-Mailgw-Received-Partial"] == "no"
    assert "Fax reçu de +33 1 99 00 00 01" in mail["Subject"]
    text = body_text(mail)
    for expected in ("Numéro appelé : +33 1 70 70 99 01", "(+33 1 99 00 00 01 ACME)",
                     "Pages : 2", "Durée : 1 min 15 s", "Qualité : haute (204×196 dpi)",
                     "07/12/2026 15:30"):
        assert expected in text, (expected, text)
    html = mail.get_body(("html",))
    assert html is not None and "ACME" in html.get_content()
    filename, pdf = pdf_of(mail)
    assert filename == "fax-20261207-143000.pdf" and len(pdf.pages) == 2
    # lossless: the pages are the TIFF's own G4 images, at 204×196 dpi (A4-ish, not square)
    page = pdf.pages[0]
    assert abs(float(page.mediabox.width) - 1728 / 204 * 72) < 1
    assert abs(float(page.mediabox.height) - 2200 / 196 * 72) < 1


def test_an_unknown_number_goes_to_the_operator_or_is_only_logged(gw) -> None:
    store, settings, sink = gw
    mailer = ReceivedMailer(lambda: store, settings)
    assert mailer.deliver(fax("fax00002.tif", called="+33170709999"))
    send_all(store, settings)
    (mail,) = sink.kinds("received")
    assert mail["To"] == "postmaster@gw.example.org"
    assert "inbound-number" in body_text(mail)
    quiet = make_settings(settings.store.url, sink.port,
                          notify={"received_unmapped_to": ""})
    assert ReceivedMailer(lambda: store, quiet).deliver(fax("fax00003.tif", called=""))
    assert outbox_rows(store) == 1  # remembered, not mailed


def test_a_partial_reception_says_so(gw) -> None:
    store, settings, sink = gw
    partial = fax("fax00004.tif", pages=1, tiff=fax_tiff(1), partial=True,
                  error="RSPREC error/got DCN (sender abort)")
    assert ReceivedMailer(lambda: store, settings).deliver(partial)
    send_all(store, settings)
    (mail,) = sink.kinds("received")
    assert mail["X-Mailgw-Received-Partial"] == "yes" and "(incomplet)" in mail["Subject"]
    assert "INCOMPLET (RSPREC error/got DCN (sender abort))" in body_text(mail)
    assert len(pdf_of(mail)[1].pages) == 1


def test_smarthost_down_then_back_and_a_restart_mails_it_once(gw) -> None:
    store, settings, sink = gw
    sink.stop()
    assert ReceivedMailer(lambda: store, settings).deliver(fax("fax00005.tif"))
    assert send_all(store, settings) == 0  # refused: the row waits
    # a restart sees the same recvq file again: taken, not mailed twice
    again = ReceivedMailer(lambda: store, settings)
    assert again.taken(SOURCE, ["fax00005.tif", "fax00006.tif"]) == {"fax00005.tif"}
    assert not again.deliver(fax("fax00005.tif"))
    back = Sink(port=sink.port).start()
    try:
        with store.tx() as s:  # skip the back-off
            for row in s.scalars(select(OutboxMail)):
                row.next_attempt_at = datetime.now(UTC)
        assert send_all(store, settings) == 1
        (mail,) = back.kinds("received")
        assert len(pdf_of(mail)[1].pages) == 2
    finally:
        back.stop()
    assert outbox_rows(store) == 1


def test_an_unreadable_tiff_is_attached_as_it_came(gw) -> None:
    store, settings, sink = gw
    assert ReceivedMailer(lambda: store, settings).deliver(
        fax("fax00007.tif", tiff=b"II*\x00garbage"))
    send_all(store, settings)
    (mail,) = sink.kinds("received")
    (part,) = list(mail.iter_attachments())
    assert part.get_content_type() == "image/tiff"
