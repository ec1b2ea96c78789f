"""Fax qualities over SMTP: a mail's `quality:` line or the account's quality reaches the
job, the ack, the simulator's call and the notice (real SMTP, real PostgreSQL)."""

from __future__ import annotations

import json
from email.message import EmailMessage

import pytest
from sqlalchemy import select

from mailgw.accounts import accounts
from mailgw.dispatch.drivers.simulator import CONNECT, page_seconds
from mailgw.documents.samples import make_pdf
from mailgw.store import Attempt, Job
from tests.conftest import PASSWORD, SENDER, fax_message
from tests.integration.test_end_to_end import send

SCALE = 0.002


def _text(m: EmailMessage) -> str:
    part = m.get_body(preferencelist=("plain",))
    assert part is not None
    return part.get_content()


def _mail(body: str) -> EmailMessage:
    msg = fax_message(f"{PASSWORD}:0170709901", make_pdf([["a"], ["b"]]))
    msg.get_body(preferencelist=("plain",)).set_content(body)  # type: ignore[union-attr]
    return msg


@pytest.mark.parametrize(("account_quality", "body", "expected", "ack_line"), [
    ("high", "Bonjour,\n\nquality: best\n", "best", "Quality: best (204×392 dpi)"),
    ("normal", "Please fax the attachment.\n", "normal", "Quality: normal (204×98 dpi)"),
    ("normal", "quality: 300dpi\n", "normal", "Quality: normal (204×98 dpi)"),
])
def test_the_quality_reaches_the_job_the_ack_the_call_and_the_notice(
        make_app, sink, account_quality: str, body: str, expected: str, ack_line: str) -> None:
    app = make_app(drivers={"simulator": {"time_scale": SCALE}})
    app.add_account(quality=account_quality)
    assert send(app.port, _mail(body)).startswith("250")
    ack = sink.wait_for(lambda ms: [m for m in ms if m["X-Mailgw-Kind"] == "ack"],
                        what="the ack")[0]
    text = _text(ack)
    assert ack_line in text, text
    if "300dpi" in body:  # told, and the account's quality used
        assert '"300dpi" not valid (normal, high, best)' in text, text
    notice = sink.wait_for(lambda ms: [m for m in ms if m["X-Mailgw-Kind"] == "notice"],
                           what="the notice")[0]
    assert ack_line in _text(notice)
    with app.store.read() as s:
        job = s.scalars(select(Job)).one()
        attempt = s.scalars(select(Attempt)).one()
    assert json.loads(job.options or "{}") == {"quality": expected}
    assert job.pages == 2  # the pages do not depend on the quality
    # The simulator's call lasted its pages at this quality's speed (times the scale).
    assert attempt.duration == pytest.approx((CONNECT + 2 * page_seconds(expected)) * SCALE)


def test_account_quality_in_french_and_set_later(make_app, sink) -> None:
    app = make_app(drivers={"simulator": {"time_scale": SCALE}})
    app.add_account(lang="fr")
    with app.store.tx() as s:
        view = accounts.update_account(s, SENDER, quality="meilleure")
    assert view.quality == "best"
    with app.store.tx() as s, pytest.raises(accounts.AccountError, match="normal, high, best"):
        accounts.update_account(s, SENDER, quality="ultra")
    assert send(app.port, _mail("qualité : normale\n")).startswith("250")
    ack = sink.wait_for(lambda ms: [m for m in ms if m["X-Mailgw-Kind"] == "ack"],
                        what="the ack")[0]
    assert "Qualité : normale (204×98 dpi)" in _text(ack)
