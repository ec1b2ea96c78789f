"""The web space's Settings pages over the real ASGI app of a running daemon: notices and
language, the webhook's secret shown once, fax defaults, the test number, the allow-list,
API tokens (shown once, usable on the REST API, revoked) and the gateway password (typed
twice, argon2, never echoed, then a mail with it is accepted over real SMTP); CSRF refused
on every form."""

from __future__ import annotations

import re
import smtplib
from pathlib import Path

import pytest
from sqlalchemy import select

from mailgw.accounts import tokens
from mailgw.accounts.passwords import verify_password
from mailgw.store.models import Account, ApiToken, SenderAddress
from tests.conftest import PASSWORD, SENDER
from tests.integration.test_web_security import BOB, BOB_PASSWORD, ready, web
from tests.webspace import WEB_PASSWORD, csrf_of, send_fax

__all__ = ["web"]  # the fixture, used by name


def _account(app, email: str = SENDER) -> Account:  # type: ignore[no-untyped-def]
    with app.store.read() as s:
        account = s.scalar(select(Account).where(Account.email == email))
        assert account is not None
        s.expunge(account)
        return account


def _senders(app) -> list[str]:  # type: ignore[no-untyped-def]
    with app.store.read() as s:
        return sorted(s.scalars(select(SenderAddress.address)))


def test_notices_language_fax_defaults_and_test_number(web) -> None:
    app, sink = web
    client = ready(app, sink)
    page = client.get("/settings")
    assert page.status_code == 200 and '<label for="mode">' in page.text
    csrf = csrf_of(page.text)
    done = client.post("/settings/notices", data={"csrf": csrf, "mode": "summary",
                                                  "threshold": "3", "lang": "fr"})
    assert done.status_code == 303 and done.headers["location"].startswith("/settings?done")
    a = _account(app)
    assert (a.notice_mode, a.summary_from, a.lang) == ("summary", 3, "fr")
    assert "Réglages" in client.get("/settings").text  # the account's language now
    bad = client.post("/settings/notices", data={"csrf": csrf, "mode": "summary",
                                                 "threshold": "many", "lang": "en"})
    assert bad.status_code == 400 and 'role="alert"' in bad.text
    assert _account(app).lang == "fr"  # nothing of a refused form is written
    back = client.post("/settings/notices", data={"csrf": csrf, "mode": "", "threshold": "",
                                                  "lang": "en"})
    assert back.status_code == 303
    a = _account(app)
    assert (a.notice_mode, a.summary_from, a.lang) == (None, None, "en")

    assert client.post("/settings/fax", data={"csrf": csrf, "quality": "best",
                                              "cover": "yes"}).status_code == 303
    assert (_account(app).quality, _account(app).cover) == ("best", True)
    assert client.post("/settings/fax", data={"csrf": csrf, "quality": "normal"}
                       ).status_code == 303
    assert (_account(app).quality, _account(app).cover) == ("normal", False)
    assert client.post("/settings/fax", data={"csrf": csrf, "quality": "ultra"}
                       ).status_code == 400

    assert client.post("/settings/test-number", data={"csrf": csrf,
                                                      "number": "01 70 70 99 01"}
                       ).status_code == 303
    assert _account(app).test_number == "+33170709901"
    refused = client.post("/settings/test-number", data={"csrf": csrf, "number": "12"})
    assert refused.status_code == 400 and "Not a valid fax number." in refused.text
    assert client.post("/settings/test-number", data={"csrf": csrf, "number": ""}
                       ).status_code == 303
    assert _account(app).test_number is None


def test_the_allow_list(web) -> None:
    app, sink = web
    client = ready(app, sink)
    csrf = csrf_of(client.get("/settings").text)
    add = client.post("/settings/senders", data={"csrf": csrf, "action": "add",
                                                 "address": "Desk@Example.com"})
    assert add.status_code == 303
    assert "desk@example.com" in _senders(app)
    assert "desk@example.com" in client.get("/settings").text
    taken = client.post("/settings/senders", data={"csrf": csrf, "action": "add",
                                                   "address": BOB})
    assert taken.status_code == 400  # Bob's address sends for Bob
    own = client.post("/settings/senders", data={"csrf": csrf, "action": "remove",
                                                 "address": SENDER})
    assert own.status_code == 400 and SENDER in _senders(app)
    assert client.post("/settings/senders", data={"csrf": csrf, "action": "remove",
                                                  "address": BOB}).status_code == 303
    assert BOB in _senders(app)  # another account's address is not taken off its list
    gone = client.post("/settings/senders", data={"csrf": csrf, "action": "remove",
                                                  "address": "desk@example.com"})
    assert gone.status_code == 303 and "desk@example.com" not in _senders(app)


def test_the_webhook_secret_is_shown_once(web) -> None:
    app, sink = web
    client = ready(app, sink)
    csrf = csrf_of(client.get("/settings").text)
    saved = client.post("/settings/webhook", data={"csrf": csrf,
                                                   "url": "https://hooks.example.com/fax"})
    assert saved.status_code == 200
    secret = re.search(r'id="webhook-secret"[^>]*>([^<]+)<', saved.text)
    assert secret is not None
    a = _account(app)
    assert a.webhook_url == "https://hooks.example.com/fax"
    assert a.webhook_secret == secret.group(1)
    again = client.get("/settings").text
    assert secret.group(1) not in again and "https://hooks.example.com/fax" in again
    assert client.post("/settings/webhook", data={"csrf": csrf, "url": "ftp://x"}
                       ).status_code == 400
    assert _account(app).webhook_secret == secret.group(1)
    off = client.post("/settings/webhook", data={"csrf": csrf, "action": "remove"})
    assert off.status_code == 303
    assert (_account(app).webhook_url, _account(app).webhook_secret) == (None, None)


def test_api_tokens_are_shown_once_work_and_are_revoked(web) -> None:
    app, sink = web
    client = ready(app, sink)
    page = client.get("/settings/access")
    assert page.status_code == 200 and "<legend>" in page.text
    csrf = csrf_of(page.text)
    made = client.post("/settings/tokens", data={"csrf": csrf, "name": "billing",
                                                 "scope": ["jobs:read", "library"]})
    assert made.status_code == 200
    token = re.search(r'id="new-token"[^>]*>(mgw_[A-Za-z0-9_\-]{43})<', made.text)
    assert token is not None
    bearer = {"Authorization": f"Bearer {token.group(1)}"}
    assert client.get("/api/v1/account", headers=bearer).json()["email"] == SENDER
    listing = client.get("/settings/access").text
    assert token.group(1) not in listing and token.group(1)[:12] in listing
    with app.store.read() as s:  # kept as a hash only
        assert token.group(1) not in [t.hash for t in s.scalars(select(ApiToken))]
    assert client.post("/settings/tokens", data={"csrf": csrf, "name": "none"}
                       ).status_code == 400  # no scope
    assert client.post("/settings/tokens", data={"csrf": csrf, "name": "billing",
                                                 "scope": "jobs:read"}).status_code == 400
    with app.store.tx() as s:
        bobs_id, bobs = tokens.issue(s, BOB, "bob's", "jobs:read")
    assert client.post(f"/settings/tokens/{bobs_id}/revoke", data={"csrf": csrf}
                       ).status_code == 404
    assert tokens.verify(app.store, bobs) is not None  # Bob's token still works
    principal = tokens.verify(app.store, token.group(1))
    assert principal is not None
    out = client.post(f"/settings/tokens/{principal.token_id}/revoke", data={"csrf": csrf})
    assert out.status_code == 303
    assert tokens.verify(app.store, token.group(1)) is None
    assert client.get("/api/v1/account", headers=bearer).status_code == 401


def test_the_gateway_password_is_changed_twice_typed_and_never_echoed(web, corpus: Path
                                                                       ) -> None:
    app, sink = web
    client = ready(app, sink)
    csrf = csrf_of(client.get("/settings/access").text)
    new = "Fresh-Gateway-7"

    def post(password: str, confirm: str) -> tuple[int, str]:
        answer = client.post("/settings/password", data={"csrf": csrf, "password": password,
                                                         "confirm": confirm})
        return answer.status_code, answer.text

    status, text = post(new, new + "x")
    assert status == 400 and "The two passwords differ." in text and new not in text
    status, text = post("a:b", "a:b")
    assert status == 400 and 'id="error">It cannot be empty' in text
    status, text = post(WEB_PASSWORD, WEB_PASSWORD)
    assert status == 400 and "This is your web password" in text
    assert verify_password(_account(app).password_hash, PASSWORD)  # unchanged so far
    status, _ = post(new, new)
    assert status == 303
    stored = _account(app).password_hash
    assert stored.startswith("$argon2") and verify_password(stored, new)
    assert new not in client.get("/settings/access?done=gw_changed").text
    pdf = (corpus / "pdfs" / "one-page-crazyones.pdf").read_bytes()
    send_fax(app.port, f"{new}:0170709901:NEWPASS", pdf)  # accepted with the new one
    with pytest.raises(smtplib.SMTPException):
        send_fax(app.port, f"{PASSWORD}:0170709901:OLDPASS", pdf)


@pytest.mark.parametrize("path,fields", [
    ("/settings/notices", {"mode": "summary", "threshold": "1", "lang": "ru"}),
    ("/settings/webhook", {"url": "https://evil.example/hook"}),
    ("/settings/fax", {"quality": "best", "cover": "yes"}),
    ("/settings/test-number", {"number": "0170709901"}),
    ("/settings/senders", {"action": "add", "address": "evil@example.com"}),
    ("/settings/tokens", {"name": "evil", "scope": "admin"}),
    ("/settings/password", {"password": "Evil-Pass-1", "confirm": "Evil-Pass-1"}),
])
def test_every_settings_form_refuses_a_missing_or_forged_csrf(web, path: str,
                                                              fields: dict[str, str]) -> None:
    app, sink = web
    client = ready(app, sink)
    before = _account(app)
    assert client.post(path, data=fields).status_code == 403
    assert client.post(path, data=fields | {"csrf": "forged" * 5}).status_code == 403
    after = _account(app)
    for column in ("notice_mode", "summary_from", "lang", "webhook_url", "quality", "cover",
                   "test_number", "password_hash"):
        assert getattr(after, column) == getattr(before, column), column
    assert "evil@example.com" not in _senders(app)
    with app.store.read() as s:
        assert s.scalars(select(ApiToken)).all() == []
    _ = BOB_PASSWORD


def test_the_new_pages_carry_the_headers_and_label_every_field(web) -> None:
    app, sink = web
    client = ready(app, sink)
    control = re.compile(r'<(input|select|textarea)\b([^>]*)>')
    for path in ("/settings", "/settings/access", "/contacts", "/library"):
        answer = client.get(path)
        assert answer.status_code == 200, path
        csp = answer.headers["content-security-policy"]
        assert "frame-ancestors 'none'" in csp and "unsafe-inline" not in csp, path
        assert not re.search(r"<script|\sstyle=|\son[a-z]+=", answer.text), path
        for _tag, attrs in control.findall(answer.text):
            if re.search(r'type="hidden"|\shidden\b', attrs):
                continue
            found = re.search(r'\bid="([^"]+)"', attrs)
            assert found, f"{path}: a field without an id: {attrs}"
            assert f'<label for="{found.group(1)}"' in answer.text, (path, found.group(1))
    for lang, word in (("fr", "Réglages"), ("ru", "Настройки")):
        csrf = csrf_of(client.get("/settings").text)
        client.post("/settings/notices", data={"csrf": csrf, "mode": "", "threshold": "",
                                               "lang": lang})
        assert f"<h1>{word}</h1>" in client.get("/settings").text
        assert 'lang="' + lang + '"' in client.get("/contacts").text
