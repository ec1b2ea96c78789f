"""`mailgw account invite EMAIL` as an operator runs it: a real process, the mail queued
in the outbox with its one-time link, the token kept only as a hash."""

from __future__ import annotations

import re
from pathlib import Path

from sqlalchemy import select

from mailgw.store import OutboxMail, Store
from mailgw.store.models_web import WebInvite
from tests.conftest import PASSWORD
from tests.integration.test_cli import mailgw


def test_account_invite_queues_a_one_time_link(tmp_path: Path) -> None:
    cfg = tmp_path / "mailgw.toml"
    db = tmp_path / "db.sqlite"
    cfg.write_text(f'[store]\nurl = "sqlite:///{db}"\n[log]\nformat = "json"\n',
                   encoding="utf-8")
    added = mailgw("account", "add", "alice@example.com", "--password-stdin", "--lang", "fr",
                   "--config", str(cfg), stdin=PASSWORD + "\n")
    assert added.returncode == 0, added.stderr
    no_url = mailgw("account", "invite", "alice@example.com", "--config", str(cfg))
    assert no_url.returncode == 1 and "base_url" in no_url.stderr
    unknown = mailgw("account", "invite", "nobody@example.com", "--config", str(cfg),
                     env={"MAILGW_NOTIFY__BASE_URL": "https://fax.example.org"})
    assert unknown.returncode == 1 and "no account" in unknown.stderr
    done = mailgw("account", "invite", "Alice@Example.com", "--config", str(cfg),
                  env={"MAILGW_NOTIFY__BASE_URL": "https://fax.example.org"})
    assert done.returncode == 0, done.stderr
    assert "alice@example.com" in done.stdout
    store = Store(f"sqlite:///{db}")
    try:
        with store.read() as s:
            mail = s.scalars(select(OutboxMail).where(OutboxMail.kind == "invite")).one()
            hashes = list(s.scalars(select(WebInvite.token_hash)))
            body = mail.body.decode()
    finally:
        store.dispose()
    assert mail.rcpt_to == "alice@example.com"
    link = re.search(r"https://fax\.example\.org/invite/([A-Za-z0-9_\-]+)", body)
    assert link, body[:2000]
    assert "mot de passe web" in body  # the account's language
    assert hashes and link.group(1) not in hashes
