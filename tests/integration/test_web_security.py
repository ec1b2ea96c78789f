"""The web space's sign-in and its defences, over the real ASGI app of a running daemon
(store, SMTP listener, dispatcher, outbox to a real sink): invitations, CSRF, another
account's job, log-out, TOTP, the security headers, slowed guessing without lock-out."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlparse

import pyotp
import pytest
from sqlalchemy import select
from starlette.testclient import TestClient

from mailgw.http.asgi import build
from mailgw.store.models import Job
from mailgw.store.models_web import WebInvite, WebLogin, WebSession
from tests.conftest import PASSWORD, SENDER, RunningApp, Sink, wait_until
from tests.webspace import WEB_PASSWORD, csrf_of, deferred_when, invite, send_fax

BOB, BOB_PASSWORD = "bob@example.com", "BOBPASS1"
LIMITS = {"auth_failures": 2, "auth_delay": "10ms", "auth_delay_max": "40ms"}


@pytest.fixture
def web(make_app, sink: Sink) -> Iterator[tuple[RunningApp, Sink]]:
    app = make_app(notify={"base_url": "http://testserver"}, limits=LIMITS)
    app.add_account()
    app.add_account(BOB, BOB_PASSWORD)
    yield app, sink


def client_for(app: RunningApp) -> TestClient:
    assert app.app is not None
    return TestClient(build(app.app), follow_redirects=False)


def set_password(client: TestClient, link: str, password: str = WEB_PASSWORD) -> None:
    path = urlparse(link).path
    page = client.get(path)
    assert page.status_code == 200
    done = client.post(path, data={"csrf": csrf_of(page.text), "password": password,
                                   "confirm": password})
    assert done.status_code == 303 and done.headers["location"] == "/login?done=set"


def sign_in(client: TestClient, email: str = SENDER, password: str = WEB_PASSWORD,
            next_url: str = "/sent") -> str:
    page = client.get("/login")
    answer = client.post("/login", data={"csrf": csrf_of(page.text), "email": email,
                                         "password": password, "next": next_url})
    assert answer.status_code == 303, answer.text
    return str(answer.headers["location"])


def ready(app: RunningApp, sink: Sink, email: str = SENDER) -> TestClient:
    client = client_for(app)
    set_password(client, invite(app, sink, email))
    assert sign_in(client, email) == "/sent"
    return client


def fax(app: RunningApp, corpus: Path, subject: str, sender: str = SENDER) -> int:
    pdf = (corpus / "pdfs" / "one-page-crazyones.pdf").read_bytes()
    before = job_ids(app)
    send_fax(app.port, subject, pdf, sender)
    new = wait_until(lambda: sorted(set(job_ids(app)) - set(before)), what="the new job")
    return int(new[0])


def job_ids(app: RunningApp) -> list[int]:
    with app.store.read() as s:
        return list(s.scalars(select(Job.id)))


def test_the_invitation_sets_a_web_password_once(web) -> None:
    app, sink = web
    client = client_for(app)
    link = invite(app, sink)
    token = link.rsplit("/", 1)[1]
    with app.store.read() as s:  # the token is kept as a hash only
        stored = s.scalars(select(WebInvite.token_hash)).all()
        assert stored and token not in stored
    path = urlparse(link).path
    page = client.get(path)
    assert page.status_code == 200 and SENDER in page.text
    short = client.post(path, data={"csrf": csrf_of(page.text), "password": "short",
                                    "confirm": "short"})
    assert short.status_code == 200 and "At least 10 characters, please." in short.text
    differ = client.post(path, data={"csrf": csrf_of(page.text), "password": WEB_PASSWORD,
                                     "confirm": WEB_PASSWORD + "!"})
    assert differ.status_code == 200 and "The two passwords differ." in differ.text
    set_password(client, link)
    assert client.get(path).status_code == 404  # used once
    with app.store.read() as s:
        login = s.scalars(select(WebLogin)).one()
        assert login.password_hash and WEB_PASSWORD not in login.password_hash
    # the gateway password does not open the web space; the web password does
    page = client.get("/login")
    refused = client.post("/login", data={"csrf": csrf_of(page.text), "email": SENDER,
                                          "password": PASSWORD, "next": "/sent"})
    assert refused.status_code == 200 and 'id="login-error"' in refused.text
    assert sign_in(client) == "/sent"
    assert client.get("/sent").status_code == 200


def test_the_same_password_as_the_gateway_is_refused(web) -> None:
    app, sink = web
    app.add_account("carol@example.com", "LongGatewayPass1")
    client = client_for(app)
    path = urlparse(invite(app, sink, "carol@example.com")).path
    page = client.get(path)
    same = client.post(path, data={"csrf": csrf_of(page.text), "password": "LongGatewayPass1",
                                   "confirm": "LongGatewayPass1"})
    assert same.status_code == 200 and "gateway password" in same.text
    with app.store.read() as s:
        assert s.scalars(select(WebLogin.password_hash)).all() in ([], [None])


def test_a_form_without_its_csrf_token_is_refused(web, corpus: Path) -> None:
    app, sink = web
    job_id = fax(app, corpus, f"{PASSWORD}:0170709901:R1:later:{deferred_when()}")
    client = ready(app, sink)
    assert client.post("/logout", data={}).status_code == 403
    assert client.post("/logout", data={"csrf": "forged"}).status_code == 403
    assert client.post(f"/jobs/{job_id}/cancel", data={"csrf": "x" * 32}).status_code == 403
    assert client.get("/sent").status_code == 200  # still signed in, nothing done
    with app.store.read() as s:
        assert s.get(Job, job_id).state == "scheduled"
    other = client_for(app)  # the login form too: no token, no check of the password
    assert other.post("/login", data={"email": SENDER, "password": WEB_PASSWORD}
                      ).status_code == 403
    page = client.get(f"/jobs/{job_id}")
    cancelled = client.post(f"/jobs/{job_id}/cancel", data={"csrf": csrf_of(page.text)})
    assert cancelled.status_code == 303
    with app.store.read() as s:
        assert s.get(Job, job_id).state == "cancelled"


def test_another_accounts_job_is_not_found(web, corpus: Path) -> None:
    app, sink = web
    bobs = fax(app, corpus, f"{BOB_PASSWORD}:0170709901:B1:bob's:{deferred_when()}", BOB)
    client = ready(app, sink)
    csrf = csrf_of(client.get("/sent").text)
    assert client.get(f"/jobs/{bobs}").status_code == 404
    assert client.get(f"/jobs/{bobs}/report.csv").status_code == 404
    assert client.post(f"/jobs/{bobs}/cancel", data={"csrf": csrf}).status_code == 404
    assert client.post(f"/jobs/{bobs}/retry", data={"csrf": csrf}).status_code == 404
    assert "B1" not in client.get("/sent").text
    with app.store.read() as s:
        assert s.get(Job, bobs).state == "scheduled"


def test_a_session_is_invalid_after_log_out(web) -> None:
    app, sink = web
    client = ready(app, sink)
    cookie = client.cookies["mailgw_session"]
    out = client.post("/logout", data={"csrf": csrf_of(client.get("/sent").text)})
    assert out.status_code == 303 and out.headers["location"] == "/login"
    replay = client_for(app)
    replay.cookies.set("mailgw_session", cookie)
    assert replay.get("/sent").status_code == 303
    # log out everywhere ends the other browsers' sessions too
    first, second = client_for(app), client_for(app)
    sign_in(first)
    sign_in(second)
    done = first.post("/logout/all", data={"csrf": csrf_of(first.get("/security").text)})
    assert done.headers["location"] == "/login?done=all"
    assert second.get("/sent").status_code == 303
    with app.store.read() as s:
        assert s.scalars(select(WebSession)).all() == []


def test_every_answer_carries_the_security_headers(web, corpus: Path) -> None:
    app, sink = web
    job_id = fax(app, corpus, f"{PASSWORD}:0170709901:R1::{deferred_when()}")
    client = ready(app, sink)
    for path in ("/login", "/sent", f"/jobs/{job_id}", "/jobs/999999", "/security",
                 "/static/web.css", "/invite/nothing", "/sent.csv", f"/jobs/{job_id}/report.csv"):
        answer = client.get(path)
        csp = answer.headers["content-security-policy"]
        assert "frame-ancestors 'none'" in csp and "unsafe-inline" not in csp, path
        assert "script-src" not in csp and "default-src 'none'" in csp, path
        assert answer.headers["referrer-policy"] == "same-origin", path
        assert answer.headers["x-content-type-options"] == "nosniff", path
        assert answer.status_code in (200, 303, 404), (path, answer.status_code)
        if answer.headers.get("content-type", "").startswith("text/html"):
            assert not re.search(r"<script|\sstyle=|\son[a-z]+=", answer.text), path
    cookie = client.cookies.jar
    session = next(c for c in cookie if c.name == "mailgw_session")
    assert session.has_nonstandard_attr("HttpOnly")
    assert (session.get_nonstandard_attr("SameSite") or "").lower() == "lax"


def test_the_second_factor_with_recovery_codes(web) -> None:
    app, sink = web
    client = ready(app, sink)
    page = client.get("/security")
    client.post("/security/totp", data={"csrf": csrf_of(page.text), "action": "start"})
    page = client.get("/security")
    secret = re.search(r'id="totp-secret">([A-Z2-7]+)<', page.text).group(1)  # type: ignore[union-attr]
    wrong = client.post("/security/totp", data={"csrf": csrf_of(page.text), "action": "confirm",
                                               "code": "000000"})
    assert wrong.status_code == 400
    code = pyotp.TOTP(secret).now()
    on = client.post("/security/totp", data={"csrf": csrf_of(page.text), "action": "confirm",
                                            "code": code})
    codes = re.findall(r"<code>([0-9a-f]{8}-[0-9a-f]{8})</code>", on.text)
    assert len(codes) == 10
    with app.store.read() as s:  # recovery codes hashed at rest
        assert codes[0] not in (s.scalars(select(WebLogin.recovery_codes)).one() or "")
    # a new sign-in needs the second factor; the password alone opens nothing
    fresh = client_for(app)
    assert sign_in(fresh, next_url="/jobs/1").startswith("/login/totp")
    assert fresh.get("/sent").status_code == 303
    page = fresh.get("/login/totp?next=/sent")
    again = fresh.post("/login/totp", data={"csrf": csrf_of(page.text), "code": code,
                                            "next": "/sent"})
    assert again.status_code == 200 and "Wrong code" in again.text  # a code is used once
    used = fresh.post("/login/totp", data={"csrf": csrf_of(page.text), "code": codes[0],
                                           "next": "/sent"})
    assert used.status_code == 303 and used.headers["location"] == "/sent"
    assert fresh.get("/sent").status_code == 200
    third = client_for(app)
    sign_in(third)
    page = third.get("/login/totp")
    spent = third.post("/login/totp", data={"csrf": csrf_of(page.text), "code": codes[0],
                                            "next": "/sent"})
    assert spent.status_code == 200  # a recovery code works once


def test_a_notice_link_lands_on_the_job_after_sign_in(web, corpus: Path) -> None:
    app, sink = web
    job_id = fax(app, corpus, f"{PASSWORD}:0170709901:R1::{deferred_when()}")
    client = client_for(app)
    set_password(client, invite(app, sink))
    first = client.get(f"/jobs/{job_id}")
    assert first.status_code == 303
    assert first.headers["location"] == f"/login?next=%2Fjobs%2F{job_id}"
    assert sign_in(client, next_url=f"/jobs/{job_id}") == f"/jobs/{job_id}"
    # an address elsewhere is never a place to go back to
    other = client_for(app)
    assert sign_in(other, next_url="//evil.example/x") == "/sent"


def test_wrong_passwords_are_slowed_and_the_owner_still_gets_in(web) -> None:
    app, sink = web
    client = client_for(app)
    set_password(client, invite(app, sink))
    guesser = client_for(app)
    for _ in range(4):
        page = guesser.get("/login")
        answer = guesser.post("/login", data={"csrf": csrf_of(page.text), "email": SENDER,
                                              "password": "not it at all", "next": "/sent"})
        assert answer.status_code in (200, 429)
    assert sign_in(client) == "/sent"  # no lock-out: the right password opens
    assert client.get("/sent").status_code == 200


def test_sent_filters_pages_and_exports_what_it_shows(web, corpus: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    app, sink = web
    later = fax(app, corpus, f"{PASSWORD}:0170709902:R-LATER:call back:{deferred_when()}")
    now = fax(app, corpus, f"{PASSWORD}:0170709901:INV-7:relance client A")
    wait_until(lambda: _outcome(app, now) == "delivered_all", what="the fax delivered")
    client = ready(app, sink)

    def shown(query: str) -> list[str]:
        return re.findall(r'data-job="(\d+)"', client.get(f"/sent?{query}").text)

    assert shown("") == [str(now), str(later)]  # newest first
    assert shown("state=in_progress") == [str(later)]
    assert shown("state=delivered_all") == [str(now)]
    assert shown("ref=inv") == [str(now)]
    assert shown("number=01+70+70+99+02") == [str(later)]
    assert shown("number=9902") == [str(later)]
    assert shown("text=RELANCE") == [str(now)]
    assert shown("channel=voice") == []
    assert shown("text=%25") == []  # a LIKE wildcard is a plain character
    assert "not understood" in client.get("/sent?state=lost").text
    csv_all = client.get("/sent.csv").content.decode("utf-8-sig").splitlines()
    assert csv_all[0].startswith("REF_LIST;ID_LINE;INT_NUMBER;STATUS_CODE")
    assert [line.split(";")[0] for line in csv_all[1:]] == ["INV-7", "R-LATER"]
    assert csv_all[1].split(";")[2:4] == ["33170709901", "21"]
    monkeypatch.setattr("mailgw.http.web.filters.PER_PAGE", 1)
    assert shown("page=2") == [str(later)]
    page_two = client.get("/sent.csv?page=2").content.decode("utf-8-sig").splitlines()
    assert [line.split(";")[0] for line in page_two[1:]] == ["R-LATER"]  # what is shown


def _outcome(app: RunningApp, job_id: int) -> str:
    with app.store.read() as s:
        job = s.get(Job, job_id)
        return job.outcome if job else ""
