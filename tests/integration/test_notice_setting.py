"""An account's own notice setting (mailgw.accounts.notices) over the gateway's
`[notify] on` and `summary_from`: summary, failures, and the summary threshold, through
the real SMTP listener, dispatcher and outbox to a real sink."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select

from mailgw.accounts import accounts, notices
from mailgw.documents.samples import make_pdf
from mailgw.store import OutboxMail
from tests.conftest import PASSWORD, SENDER, fax_message, wait_until
from tests.integration.test_end_to_end import send

BOB, BOB_PASSWORD = "bob@example.com", "BOBPASS1"


@pytest.fixture(params=["sqlite"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'notices.db'}"


def _set(app, email: str, mode: str, threshold: str = "") -> None:  # type: ignore[no-untyped-def]
    with app.store.tx() as s:
        account = accounts.find_by_email(s, email)
        assert account is not None
        notices.set_notices(account, mode, threshold)


def _drained(app) -> None:  # type: ignore[no-untyped-def]
    def done() -> bool:
        with app.store.read() as s:
            rows = list(s.scalars(select(OutboxMail)))
        return bool(rows) and all(r.sent_at for r in rows)
    wait_until(done, what="the outbox drained")


def test_an_accounts_summary_setting_overrides_the_gateways_all(make_app, sink) -> None:
    app = make_app(notify={"on": "all"})
    app.add_account()
    app.add_account(BOB, BOB_PASSWORD)
    _set(app, SENDER, "summary")
    pdf = make_pdf([["a"]])
    assert send(app.port, fax_message(f"{PASSWORD}:0170709901,0170709997:S1", pdf)
                ).startswith("250")
    assert send(app.port, fax_message(f"{BOB_PASSWORD}:0170709901:B1", pdf, sender=BOB)
                ).startswith("250")
    sink.wait_for(lambda ms: any(m["X-Mailgw-Kind"] == "summary" for m in ms),
                  what="the summary")
    sink.wait_for(lambda ms: any(m["X-Mailgw-Kind"] == "notice" for m in ms),
                  what="Bob's notice")
    _drained(app)
    mine = [m["X-Mailgw-Kind"] for m in sink.messages if m["To"] == SENDER]
    assert mine.count("summary") == 1 and mine.count("notice") == 0, mine
    bobs = [m["X-Mailgw-Kind"] for m in sink.messages if m["To"] == BOB]
    assert bobs.count("notice") == 1 and "summary" not in bobs, bobs  # the gateway's `all`


def test_failures_only_and_a_threshold_of_the_accounts_own(make_app, sink) -> None:
    app = make_app(notify={"on": "all", "summary_from": 10})
    app.add_account()
    app.add_account(BOB, BOB_PASSWORD)
    _set(app, SENDER, "failures")
    _set(app, BOB, "", "2")  # the gateway's mode, but a summary from 2 numbers
    pdf = make_pdf([["a"]])
    assert send(app.port, fax_message(f"{PASSWORD}:0170709901,0170709997:F1", pdf)
                ).startswith("250")
    assert send(app.port, fax_message(f"{BOB_PASSWORD}:0170709901,0170709902:B2", pdf,
                                      sender=BOB)).startswith("250")
    sink.wait_for(lambda ms: any(m["X-Mailgw-Kind"] == "summary" for m in ms),
                  what="Bob's summary")
    sink.wait_for(lambda ms: any(m["X-Mailgw-Kind"] == "notice" for m in ms),
                  what="the failure's notice")
    _drained(app)
    mine = [m for m in sink.messages if m["To"] == SENDER and m["X-Mailgw-Kind"] != "ack"]
    assert [(m["X-Mailgw-Kind"], m["X-Mailgw-State"]) for m in mine] == [("notice", "failed")]
    bobs = [m["X-Mailgw-Kind"] for m in sink.messages if m["To"] == BOB]
    assert bobs.count("summary") == 1 and "notice" not in bobs, bobs


def test_a_setting_is_checked_whole_before_it_is_written(make_app) -> None:
    app = make_app()
    app.add_account()
    with app.store.tx() as s:
        account = accounts.find_by_email(s, SENDER)
        assert account is not None
        with pytest.raises(accounts.AccountError):
            notices.set_notices(account, "summary", "many")
        assert account.notice_mode is None and account.summary_from is None
        with pytest.raises(accounts.AccountError):
            notices.set_notices(account, "sometimes", "3")
        notices.set_notices(account, "Summary", "0")
        assert (account.notice_mode, account.summary_from) == ("summary", 0)
        notices.set_notices(account, "default", "")
        assert (account.notice_mode, account.summary_from) == (None, None)
