"""Campaigns over real SMTP, the simulator and the sink: a job whose numbers came from a list
or a group, or that has `notify.summary_from` numbers or more, gets one summary with the CSV
report; a few numbers typed in the Subject keep a notice each."""

from __future__ import annotations

import time
from collections.abc import Callable
from email.message import EmailMessage
from typing import Any

import pytest
from sqlalchemy import select

from mailgw.accounts import groups
from mailgw.documents.samples import make_pdf
from mailgw.store import Job, OutboxMail
from tests.conftest import PASSWORD, SENDER, RunningApp, Sink, fax_message, wait_until
from tests.integration.test_end_to_end import send

# Dispatch as fast as the simulator allows: 50 lines, a call of one page in 4.5 ms.
FAST = {"dispatch": {"workers": 50},
        "drivers": {"simulator": {"time_scale": 0.0001, "lines": 50}}}


def finished(app: RunningApp, timeout: float = 60) -> list[str]:
    """Once every job is final and its outbox is empty: the kinds of the mails written."""
    def done() -> list[str] | None:
        with app.store.read() as s:
            jobs = list(s.scalars(select(Job)))
            mails = list(s.scalars(select(OutboxMail).order_by(OutboxMail.id)))
        if not jobs or any(j.outcome == "in_progress" for j in jobs):
            return None
        if not mails or any(m.sent_at is None for m in mails):
            return None
        return [m.kind for m in mails]

    kinds: list[str] = wait_until(done, timeout, "every job final and its mails sent")
    return kinds


def received(sink: Sink, kinds: list[str]) -> list[EmailMessage]:
    """What the sink got: exactly the outbox's mails (all marked sent, so all delivered)."""
    mails = sink.wait_for(lambda ms: len(ms) >= len(kinds), what=f"{len(kinds)} mails")
    assert sorted(m["X-Mailgw-Kind"] for m in mails) == sorted(kinds)
    return mails


def report_rows(summary: EmailMessage) -> list[list[str]]:
    (att,) = list(summary.iter_attachments())
    raw = att.get_content()
    data = raw if isinstance(raw, bytes) else raw.encode()
    return [line.split(";") for line in data.decode("utf-8-sig").splitlines()]


def test_a_csv_of_2000_numbers_gets_an_ack_and_one_summary(
        make_app: Callable[..., RunningApp], sink: Sink) -> None:
    """A French Excel file (`;`, Windows-1252, header `Téléphone`) of 2,000 numbers: the
    sender receives 2 mails, not 2,001."""
    app = make_app(**FAST)
    app.add_account()
    numbers = [f"0170{i // 88:04d}{i % 88:02d}" for i in range(1980)]  # delivered
    numbers += [f"0171{i:04d}97" for i in range(20)]  # not in service
    lines = ["Nom;Téléphone;Ville"] + [f"Client é{i};{n[:2]} {n[2:4]} {n[4:6]} {n[6:8]} "
                                         f"{n[8:]};Orléans" for i, n in enumerate(numbers)]
    csv_file = ("\r\n".join(lines) + "\r\n").encode("cp1252")
    msg = fax_message(f"{PASSWORD}::PROMO-12", make_pdf([["x"]]))
    msg.add_attachment(csv_file, maintype="text", subtype="csv", filename="clients.csv")
    started = time.monotonic()
    assert send(app.port, msg).startswith("250 2.0.0 [80]")
    kinds = finished(app, timeout=120)
    took = time.monotonic() - started
    assert sorted(kinds) == ["ack", "summary"], kinds
    mails = received(sink, kinds)
    summary = next(m for m in mails if m["X-Mailgw-Kind"] == "summary")
    assert summary["To"] == SENDER and summary["X-Mailgw-Outcome"] == "Partial success"
    rows = report_rows(summary)
    assert rows[0][-2:] == ["Nom", "Ville"], rows[0]
    assert len(rows) == 2001
    by_number = {r[2]: r for r in rows[1:]}
    assert set(by_number) == {"33" + n[1:] for n in numbers}
    assert by_number["33170000000"][-2:] == ["Client é0", "Orléans"]
    assert by_number["33171000097"][3] == "117"  # not in service
    with app.store.read() as s:
        (job,) = s.scalars(select(Job))
        assert job.numbers_from_list and job.recipient_count == 2000
    print(f"\n2,000 numbers: mail to summary sent in {took:.1f} s")


def test_three_numbers_in_the_subject_get_three_notices(
        make_app: Callable[..., RunningApp], sink: Sink) -> None:
    app = make_app(**FAST)
    app.add_account()
    subject = f"{PASSWORD}:0170709901,0170709902,0170709903"
    assert send(app.port, fax_message(subject, make_pdf([["x"]]))).startswith("250 2.0.0 [80]")
    kinds = finished(app)
    assert sorted(kinds) == ["ack", "notice", "notice", "notice"]
    notices = [m for m in received(sink, kinds) if m["X-Mailgw-Kind"] == "notice"]
    assert all(m["X-Mailgw-State"] == "delivered" for m in notices)


def _with_list(kind: str) -> Callable[[RunningApp], EmailMessage]:
    def build(app: RunningApp) -> EmailMessage:
        if kind == "group":
            with app.store.tx() as s:
                groups.add_numbers(s, SENDER, "clients", ["0170709901", "0170709902"])
            return fax_message(f"{PASSWORD}:@clients", make_pdf([["x"]]))
        msg = fax_message(f"{PASSWORD}:", make_pdf([["x"]]))
        if kind == "txt":
            msg.add_attachment(b"0170709901\n0170709902\n", maintype="text", subtype="plain",
                               filename="numbers.txt")
        else:
            msg.add_attachment("TÉL\n01 70 70 99 01\n01 70 70 99 02\n".encode(),
                               maintype="text", subtype="csv", filename="numbers.csv")
        return msg
    return build


@pytest.mark.parametrize("kind", ["group", "txt", "csv"])
def test_two_numbers_from_a_list_or_a_group_get_one_summary(
        make_app: Callable[..., RunningApp], sink: Sink, kind: str) -> None:
    app = make_app(**FAST)
    app.add_account()
    assert send(app.port, _with_list(kind)(app)).startswith("250 2.0.0 [80]")
    kinds = finished(app)
    assert sorted(kinds) == ["ack", "summary"], kinds
    summary = next(m for m in received(sink, kinds) if m["X-Mailgw-Kind"] == "summary")
    assert {r[2] for r in report_rows(summary)[1:]} == {"33170709901", "33170709902"}


@pytest.mark.parametrize("count,expected", [(9, ["notice"] * 9), (10, ["summary"])])
def test_ten_numbers_in_the_subject_are_a_campaign(
        make_app: Callable[..., RunningApp], sink: Sink, count: int,
        expected: list[str]) -> None:
    """The default `summary_from = 10`: nine numbers get nine notices, ten get a summary."""
    app = make_app(**FAST)
    app.add_account()
    numbers = ",".join(f"01707099{i:02d}" for i in range(count))
    assert send(app.port, fax_message(f"{PASSWORD}:{numbers}", make_pdf([["x"]])))
    kinds = finished(app)
    assert sorted(kinds) == sorted(["ack", *expected])
    received(sink, kinds)


def test_summary_from_0_keeps_a_notice_per_number_even_for_a_list(
        make_app: Callable[..., RunningApp], sink: Sink) -> None:
    settings: dict[str, Any] = {**FAST, "notify": {"summary_from": 0}}
    app = make_app(**settings)
    app.add_account()
    assert send(app.port, _with_list("csv")(app)).startswith("250 2.0.0 [80]")
    assert sorted(finished(app)) == ["ack", "notice", "notice"]


def test_a_number_in_the_address_is_not_a_list(make_app: Callable[..., RunningApp],
                                               sink: Sink) -> None:
    app = make_app(**FAST)
    app.add_account()
    msg = fax_message(f"{PASSWORD}:", make_pdf([["x"]]), to="+33170709901@gw.example.org")
    assert send(app.port, msg).startswith("250 2.0.0 [80]")
    assert sorted(finished(app)) == ["ack", "notice"]
    with app.store.read() as s:
        (job,) = s.scalars(select(Job))
        assert not job.numbers_from_list and job.recipient_count == 1
