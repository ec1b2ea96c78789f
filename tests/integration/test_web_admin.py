"""The operators' pages over the real ASGI app of a running daemon (store, SMTP listener,
dispatcher, outbox to a real sink): a sender gets 404 on each of them; an operator
creates, invites, credits, limits and disables accounts, sees the queue, retries and drops
dead outbox mails; every action is journaled (row and log event). A disabled account is
refused everywhere: its mail (82), its API token, its web sign-in and sessions."""

from __future__ import annotations

import re
import smtplib
from pathlib import Path

import pytest
import structlog
from sqlalchemy import select
from starlette.testclient import TestClient

from mailgw.accounts import operators, tokens
from mailgw.accounts.accounts import AuthCache
from mailgw.store import Account, OutboxMail
from mailgw.store import outbox as outbox_rows
from mailgw.store.models import utcnow
from mailgw.store.models_admin import AdminAction
from tests.conftest import PASSWORD, SENDER, RunningApp, Sink, fax_message
from tests.integration.test_end_to_end import send
from tests.integration.test_web_security import (
    BOB,
    BOB_PASSWORD,
    LIMITS,
    client_for,
    fax,
    ready,
    set_password,
    sign_in,
)
from tests.webspace import LINK, WEB_PASSWORD, csrf_of, deferred_when

ADMIN = "ops@example.com"
ADMIN_PAGES = ("/admin", "/admin/accounts", "/admin/accounts/1", "/admin/queue",
               "/admin/outbox", "/admin/audit")


@pytest.fixture
def web(make_app, sink: Sink):  # type: ignore[no-untyped-def]
    app = make_app(notify={"base_url": "http://testserver"}, limits=LIMITS)
    app.add_account()
    app.add_account(BOB, BOB_PASSWORD)
    app.add_account(ADMIN, "OPSPASS12")
    with app.store.tx() as s:
        operators.set_flags(s, operators.Operator.command_line(), ADMIN, admin=True)
    return app, sink


def operator(app: RunningApp, sink: Sink) -> TestClient:
    return ready(app, sink, ADMIN)


def post(client: TestClient, page: str, action: str, **data: str):  # type: ignore[no-untyped-def]
    token = csrf_of(client.get(page).text)
    return client.post(action, data={"csrf": token, **data})


def account_id(app: RunningApp, email: str) -> int:
    with app.store.read() as s:
        return int(s.scalars(select(Account.id).where(Account.email == email)).one())


def journal(app: RunningApp) -> list[tuple[str, str, str]]:
    with app.store.read() as s:
        return [(a.actor, a.action, a.target)
                for a in s.scalars(select(AdminAction).order_by(AdminAction.id))]


def test_a_sender_gets_404_on_every_admin_page(web) -> None:
    app, sink = web
    anonymous = client_for(app)
    assert anonymous.get("/admin/queue").headers["location"].startswith("/login?next=")
    assert anonymous.post("/admin/accounts", data={}).status_code == 403
    client = ready(app, sink)
    sent = client.get("/sent")
    assert 'id="nav-admin"' not in sent.text
    for path in ADMIN_PAGES:
        assert client.get(path).status_code == 404, path
    token = csrf_of(sent.text)  # a valid form of a sender still finds nothing
    for path in ("/admin/accounts", "/admin/accounts/1/status", "/admin/outbox/1/retry",
                 "/admin/outbox/1/drop", "/admin/accounts/1/credits"):
        answer = client.post(path, data={"csrf": token, "disabled": "yes", "credits": "9"})
        assert answer.status_code == 404, path
    with app.store.read() as s:
        assert all(not a.disabled for a in s.scalars(select(Account)))
    assert [a for a in journal(app) if a[1] != "admin_on"] == []
    # the flag is read on every request: an operator no longer one loses the pages at once
    ops = operator(app, sink)
    assert ops.get("/admin/queue").status_code == 200
    assert 'id="nav-admin"' in ops.get("/sent").text
    with app.store.tx() as s:
        operators.set_flags(s, operators.Operator.command_line(), ADMIN, admin=False)
    assert ops.get("/admin/queue").status_code == 404


def test_an_operator_manages_accounts_and_each_action_is_journaled(web) -> None:
    app, sink = web
    client = operator(app, sink)
    page = "/admin/accounts"
    listing = client.get(page)
    assert listing.status_code == 200 and BOB in listing.text and ADMIN in listing.text
    bad = post(client, page, page, email="not an address", password="CAROL1", region="FR",
               lang="fr", tz="Europe/Paris", credits="")
    assert bad.status_code == 400 and "Refused: Not a valid address: not an address." in bad.text
    with structlog.testing.capture_logs() as logs:
        made = post(client, page, page, email="carol@example.com", password="CAROL1",
                    region="fr", lang="fr", tz="Europe/Paris", credits="")
    assert made.status_code == 303, made.text
    assert any(e["event"] == "admin_action" and e["action"] == "account_create"
               and e["actor"] == ADMIN for e in logs)
    carol = account_id(app, "carol@example.com")
    here = f"/admin/accounts/{carol}"
    assert made.headers["location"] == f"{here}?done=created"
    shown = client.get(made.headers["location"])
    assert "Account created." in shown.text and 'id="web-password">not set' in shown.text
    # the invitation: the mail with its one-time link reaches carol
    sent = post(client, here, f"{here}/invite")
    assert sent.headers["location"] == f"{here}?done=invited"
    sink.wait_for(lambda _: any(m["To"] == "carol@example.com" for m in sink.kinds("invite")),
                  what="carol's invitation")
    # credits: +N, unlimited, and a refusal
    assert post(client, here, f"{here}/credits", credits="12").status_code == 303
    assert post(client, here, f"{here}/credits", credits="-2").status_code == 303
    refused = post(client, here, f"{here}/credits", credits="-50")
    assert refused.status_code == 400 and "below zero" in refused.text
    with app.store.read() as s:
        assert s.get(Account, carol).credits == 10  # type: ignore[union-attr]
    # limits: the sending window and the retry policy, shown back as typed
    saved = post(client, here, f"{here}/limits", window="08:00-20:00 Mon-Sat",
                 retry="busy=2m,max_attempts=3")
    assert saved.status_code == 303
    again = client.get(here).text
    assert 'value="08:00-20:00 Mon-Sat"' in again and 'value="busy=120s,max_attempts=3"' in again
    wrong = post(client, here, f"{here}/limits", window="25:00-26:00", retry="default")
    assert wrong.status_code == 400 and "window" in wrong.text
    # no CSRF token: refused, nothing changed
    assert client.post(f"{here}/credits", data={"credits": "999"}).status_code == 403
    # an operator cannot disable their own account
    me = account_id(app, ADMIN)
    own = post(client, f"/admin/accounts/{me}", f"/admin/accounts/{me}/status", disabled="yes")
    assert own.status_code == 400
    assert post(client, here, f"{here}/status", disabled="yes").status_code == 303
    assert 'id="status">disabled' in client.get(here).text
    actions = [(who, what) for who, what, target in journal(app) if target ==
               "carol@example.com"]
    assert actions == [(ADMIN, "account_create"), (ADMIN, "invite"), (ADMIN, "credits"),
                       (ADMIN, "credits"), (ADMIN, "limits"), (ADMIN, "account_disable")]
    audit = client.get("/admin/audit").text
    assert audit.count('data-action="credits"') == 2 and "after: 10" in audit
    assert "account disabled" in audit and "cli:" in audit  # the command line's admin_on


def test_a_disabled_account_is_refused_everywhere(web, corpus: Path) -> None:
    app, sink = web
    bob = ready(app, sink, BOB)
    token = _token(app)
    assert tokens.verify(app.store, token) is not None
    job_id = fax(app, corpus, f"{BOB_PASSWORD}:0170709901", sender=BOB)
    ops = operator(app, sink)
    target = f"/admin/accounts/{account_id(app, BOB)}"
    assert post(ops, target, f"{target}/status", disabled="yes").status_code == 303
    # mail: answered as an unknown sender's
    with pytest.raises(smtplib.SMTPDataError) as refused:
        send(app.port, fax_message(f"{BOB_PASSWORD}:0170709902", b"%PDF-1.4", sender=BOB))
    assert refused.value.smtp_code == 550 and b"[82]" in refused.value.smtp_error
    # SMTP AUTH: its login is not among the known ones
    cache = AuthCache()
    with app.store.read() as s:
        cache.refresh(s)
    assert cache.check(BOB, BOB_PASSWORD) is None and cache.check(SENDER, PASSWORD)
    # the API token stops verifying, over HTTP too
    assert tokens.verify(app.store, token) is None
    api = client_for(app).get("/api/v1/account", headers={"Authorization": f"Bearer {token}"})
    assert api.status_code == 401
    # the web: the open session ends, the right password opens nothing
    assert bob.get(f"/jobs/{job_id}").status_code == 303
    fresh = client_for(app)
    page = fresh.get("/login")
    no = fresh.post("/login", data={"csrf": csrf_of(page.text), "email": BOB,
                                    "password": WEB_PASSWORD, "next": "/sent"})
    assert no.status_code == 200 and 'id="login-error"' in no.text
    # enabled again, all of it works again
    assert post(ops, target, f"{target}/status", disabled="no").status_code == 303
    assert tokens.verify(app.store, token) is not None
    assert sign_in(client_for(app), BOB) == "/sent"
    assert send(app.port, fax_message(f"{BOB_PASSWORD}:0170709903", _pdf(corpus),
                                      sender=BOB)).startswith("250")
    assert [w for _, w, t in journal(app) if t == BOB] == ["account_disable", "account_enable"]


def _token(app: RunningApp) -> str:
    with app.store.tx() as s:
        return tokens.issue(s, BOB, "bob-erp", "jobs:read")[1]


def _pdf(corpus: Path) -> bytes:
    return (corpus / "pdfs" / "one-page-crazyones.pdf").read_bytes()


def dead_mail(app: RunningApp, n: int) -> int:
    """An outbox mail the smarthost refused until it was given up."""
    body = (f"From: fax@gw.example.org\r\nTo: lost{n}@example.com\r\nSubject: lost {n}\r\n"
            f"Message-ID: <lost{n}@gw.example.org>\r\nX-Mailgw-Kind: notice\r\n\r\n"
            f"lost {n}\r\n").encode()
    with app.store.tx() as s:
        row = outbox_rows.add(s, kind="notice", mail_from="", rcpt_to=f"lost{n}@example.com",
                              message_id=f"<lost{n}@gw.example.org>", body=body)
        # dead in the transaction that writes it: the running outbox sender must never see
        # it due (it could send it before the test drops it)
        row.tries, row.last_error = 7, "550 5.1.1 no such user"
        row.next_attempt_at = row.dead_at = utcnow()
        s.flush()
        mail_id = row.id
    return mail_id


def test_the_queue_now_and_dead_mails_retried_or_dropped(web, corpus: Path) -> None:
    app, sink = web
    fax(app, corpus, f"{PASSWORD}:0170709901,0170709902:LATER::{deferred_when()}")
    first, second = dead_mail(app, 1), dead_mail(app, 2)
    client = operator(app, sink)
    queue = client.get("/admin/queue")
    assert queue.status_code == 200
    scheduled = re.search(r'data-state="scheduled"><td[^>]*>[^<]*</td><td[^>]*>(\d+)<',
                          queue.text)
    assert scheduled and scheduled.group(1) == "2"  # two numbers wait for their time
    assert 'id="outbox-dead"><a href="/admin/outbox">2</a>' in queue.text
    assert "simulator" in queue.text and 'id="next-due">none' not in queue.text
    outbox = client.get("/admin/outbox")
    assert f'data-mail="{first}"' in outbox.text and "no such user" in outbox.text
    retried = post(client, "/admin/outbox", f"/admin/outbox/{first}/retry")
    assert retried.headers["location"] == "/admin/outbox?done=retried"
    sink.wait_for(lambda ms: any(m["To"] == "lost1@example.com" for m in ms),
                  what="the retried mail")
    dropped = post(client, "/admin/outbox", f"/admin/outbox/{second}/drop")
    assert dropped.headers["location"] == "/admin/outbox?done=dropped"
    gone = post(client, "/admin/outbox", f"/admin/outbox/{second}/retry")
    assert gone.headers["location"] == "/admin/outbox?done=gone"
    with app.store.read() as s:
        assert s.get(OutboxMail, second) is None
        assert s.get(OutboxMail, first).sent_at is not None  # type: ignore[union-attr]
    assert 'id="no-dead"' in client.get("/admin/outbox").text
    assert [(w, t) for _, w, t in journal(app) if w.startswith("outbox")] == [
        ("outbox_retry", f"outbox {first}"), ("outbox_drop", f"outbox {second}")]


def test_invite_on_the_admin_page_then_the_new_account_signs_in(web) -> None:
    app, sink = web
    client = operator(app, sink)
    page = "/admin/accounts"
    post(client, page, page, email="dave@example.com", password="DAVE12", region="FR",
         lang="en", tz="Europe/Paris", credits="5")
    dave = account_id(app, "dave@example.com")
    post(client, f"/admin/accounts/{dave}", f"/admin/accounts/{dave}/invite")
    link = _link(sink, "dave@example.com")
    other = client_for(app)
    set_password(other, link)
    assert sign_in(other, "dave@example.com") == "/sent"
    assert 'id="web-password">set' in client.get(f"/admin/accounts/{dave}").text


def _link(sink: Sink, email: str) -> str:
    mails = sink.wait_for(lambda _: any(m["To"] == email for m in sink.kinds("invite")),
                          what=f"the invitation for {email}")
    mail = next(m for m in mails if m["To"] == email and m["X-Mailgw-Kind"] == "invite")
    body = mail.get_body(("plain",))
    hit = LINK.search(body.get_content() if body is not None else "")
    assert hit
    return hit.group(0)
