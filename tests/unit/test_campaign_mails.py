"""A campaign's mails stay readable and small: the ack names 200 numbers then how many
more, and the summary's report is zipped from ZIP_FROM lines (mailgw.notify)."""

from __future__ import annotations

import email
import io
import zipfile
from datetime import UTC, datetime
from email.message import EmailMessage
from email.policy import default

import pytest

from mailgw.notify.messages import ACK_NUMBERS, AckFacts, ack_mail
from mailgw.notify.render import Renderer
from mailgw.notify.report_file import ZIP_FROM, report_attachment

MORE = {"en": "and 50 more", "fr": "et 50 autres", "ru": "и ещё 50"}


def parts(data: bytes) -> tuple[str, str]:
    msg = email.message_from_bytes(data, policy=default)
    assert isinstance(msg, EmailMessage)
    text, html = msg.get_body(("plain",)), msg.get_body(("html",))
    assert text is not None and html is not None
    return text.get_content(), html.get_content()


@pytest.mark.parametrize("lang", sorted(MORE))
def test_the_ack_names_200_numbers_then_how_many_more(lang: str) -> None:
    numbers = [f"+3317{i:07d}" for i in range(ACK_NUMBERS + 50)]
    invalid = [f"bad{i}" for i in range(ACK_NUMBERS + 50)]
    mail = ack_mail(Renderer(from_address="fax@gw.example.org", domain="gw.example.org"),
                    AckFacts(code=80, to="a@example.com", lang=lang, tz="Europe/Paris",
                             channel="fax", received=datetime(2026, 12, 7, tzinfo=UTC),
                             original_subject="x", original_message_id=None, job_ids=[1],
                             numbers=numbers, invalid_numbers=invalid))
    for body in parts(mail.data):
        assert "+33 1 70 00 01 99" in body and "+33 1 70 00 02 00" not in body
        assert "bad199" in body and "bad200" not in body
        assert body.count(MORE[lang]) == 2  # the numbers, and the invalid ones


def test_a_short_ack_says_no_more() -> None:
    mail = ack_mail(Renderer(from_address="fax@gw.example.org", domain="gw.example.org"),
                    AckFacts(code=80, to="a@example.com", lang="en", tz="UTC", channel="fax",
                             received=datetime(2026, 12, 7, tzinfo=UTC), original_subject="x",
                             original_message_id=None, numbers=["+33170709901"]))
    text, _ = parts(mail.data)
    assert "+33 1 70 70 99 01" in text and "more" not in text


def test_a_small_report_is_attached_as_csv() -> None:
    assert report_attachment(7, ZIP_FROM - 1, iter(["\ufeffA;B\r\n", "1;2\r\n"])) == (
        "report-7.csv", "\ufeffA;B\r\n1;2\r\n".encode(), "text", "csv")


def test_a_campaign_report_is_zipped_from_its_chunks() -> None:
    chunks = ["\ufeffREF_LIST;ID_LINE\r\n"] + [f"R;{i}\r\n" * 1000 for i in range(ZIP_FROM // 1000)]
    name, data, maintype, subtype = report_attachment(7, ZIP_FROM, iter(chunks))
    assert (name, maintype, subtype) == ("report-7.zip", "application", "zip")
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        assert archive.namelist() == ["report-7.csv"]
        assert archive.read("report-7.csv").decode("utf-8") == "".join(chunks)
    assert len(data) * 10 < len("".join(chunks).encode())  # compressed, not stored
