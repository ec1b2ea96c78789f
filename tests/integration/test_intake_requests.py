"""Intake from request facts (the HTTP entrances' path): the same decision and jobs as a
mail, the request's id as its idempotency key, and no ack mail when the caller answers."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import func, select

from mailgw.documents.samples import make_pdf
from mailgw.inbound.model import InboundMail
from mailgw.intake import requests
from mailgw.intake.model import Envelope
from mailgw.store import Job, OutboxMail
from tests.conftest import PASSWORD, SENDER


@pytest.fixture(params=["sqlite"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'requests.db'}"


def _fax(password: str, key: str | None) -> InboundMail:
    return requests.request_mail(
        sender=SENDER, subject_line=requests.subject(password, "0170709901", "R1", "a: b"),
        message_id=requests.message_id("account:1", key), options={"quality": "best"},
        files=[requests.file("doc.pdf", "application/pdf", make_pdf([["x"], ["y"]]))])


def test_a_request_is_decided_and_committed_like_a_mail(make_app) -> None:
    app = make_app()
    app.add_account()
    intake = app.app.intake
    env = Envelope(mail_from=SENDER, rcpt_tos=("fax@gw.example.org",), ack_mail=False)
    first = intake.handle_request(_fax(PASSWORD, "k1"), env)
    assert first.code == 80 and len(first.job_ids) == 1 and first.lang == "en"
    again = intake.handle_request(_fax(PASSWORD, "k1"), env)
    assert again.code == 80 and again.job_ids == first.job_ids  # the same key, the same job
    other = intake.handle_request(_fax(PASSWORD, None), env)
    assert other.code == 80 and other.job_ids != first.job_ids
    wrong = intake.handle_request(_fax("nope", None), env)
    assert wrong.code == 82 and not wrong.job_ids
    with app.store.read() as s:
        jobs = s.scalars(select(Job)).all()
        acks = s.scalar(select(func.count()).select_from(OutboxMail)
                        .where(OutboxMail.kind == "ack"))
    assert len(jobs) == 2 and {j.comment for j in jobs} == {"a: b"}
    assert {j.pages for j in jobs} == {2}
    assert acks == 0  # the HTTP caller answers; no ack mail
