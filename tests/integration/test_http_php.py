"""123-Vocal's /http.php through the real daemon: every code 80–91 (and 95/96), GET and POST,
the call options, idempotency, the 503 of a deferred check, and a job made over http.php
dialled by the simulator with its notice at the sink.

The daemon runs with role http (uvicorn on a real socket of 127.0.0.1, mailgw.http.server),
so the client address intake sees is the request's.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from sqlalchemy import func, select

from mailgw.accounts import groups, voice
from mailgw.documents import checks as documents
from mailgw.documents.sandbox import Limits
from mailgw.store import Account, Job, OutboxMail
from tests.conftest import PASSWORD, SENDER, RunningApp
from tests.sounds import encode

PARIS = ZoneInfo("Europe/Paris")
SEED_PAST = "153012092014"  # the help page's example: 12 Sep 2014, 15:30


@pytest.fixture(params=["sqlite"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'http_php.db'}"


@pytest.fixture(scope="module")
def message() -> tuple[bytes, float]:
    """A library message as the voice library stores it (8 kHz mono PCM)."""
    check = documents.check_sound(encode("wav", 4.0), Limits(20, 512_000_000))
    assert check.usable and check.audio is not None
    return check.audio, check.duration or 0.0


class Gateway:
    """The daemon with role http listening on 127.0.0.1 (uvicorn on the daemon's loop)."""

    def __init__(self, running: RunningApp):
        assert running.app is not None and running.app.http_address is not None
        assert "http" in running.roles
        self.running = running
        host, port = running.app.http_address
        self.url = f"http://{host}:{port}/http.php"
        self.client = httpx.Client(timeout=30)

    def get(self, **params: str) -> httpx.Response:
        return self.client.get(self.url, params=params)

    def post(self, headers: dict[str, str] | None = None, **params: str) -> httpx.Response:
        return self.client.post(self.url, data=params, headers=headers)

    def stop(self) -> None:
        self.client.close()

    def add_account(self, email: str = SENDER, **kw: Any) -> int:
        self.running.add_account(email, **{"lang": "fr", **kw})
        with self.running.store.read() as s:
            account = s.scalar(select(Account).where(Account.email == email))
            assert account is not None
            return account.id

    def jobs(self) -> list[Job]:
        with self.running.store.read() as s:
            return list(s.scalars(select(Job).order_by(Job.id)))

    def outbox(self, kind: str) -> int:
        with self.running.store.read() as s:
            return s.scalar(select(func.count()).select_from(OutboxMail)
                            .where(OutboxMail.kind == kind)) or 0


@pytest.fixture
def gateway(make_app: Callable[..., RunningApp]) -> Iterator[Callable[..., Gateway]]:
    made: list[Gateway] = []

    def factory(**sections: dict[str, Any]) -> Gateway:
        made.append(Gateway(make_app(http={"listen": "127.0.0.1:0"}, **sections)))
        return made[-1]

    yield factory
    for gw in made:
        gw.stop()


def code(response: httpx.Response) -> int:
    """The code as a 123-Vocal script reads it: the body's first word; the header agrees."""
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/plain; charset=utf-8"
    first = int(response.text.split()[0])
    assert response.headers["X-Mailgw-Code"] == str(first)
    return first


def future(days: int = 2) -> str:
    when = datetime.now(PARIS) + timedelta(days=days)
    return when.strftime("%H%M%d%m%Y")


def store_message(gw: Gateway, account_id: int, ref: str, message: tuple[bytes, float]) -> None:
    with gw.running.store.tx() as s:
        voice.store_message(s, account_id, ref, message[0], message[1], "accueil.wav")


def base(**over: str) -> dict[str, str]:
    return {"email": SENDER, "pass": PASSWORD, "numero": "0612345600", "ref": "32", **over}


# -- 87–90: the required values, before any account ------------------------------------------

@pytest.mark.parametrize("method", ["GET", "POST"])
def test_empty_required_values_in_123_vocal_order(gateway: Callable[..., Gateway],
                                                  method: str) -> None:
    gw = gateway()
    send = gw.get if method == "GET" else gw.post
    every_empty = dict.fromkeys(("email", "pass", "numero", "ref", "transfert", "com",
                                 "emetteur", "diff", "depot"), "")
    assert code(send(**every_empty)) == 87  # the help page's URL with nothing filled in
    r = send(**base(email=""))
    assert code(r) == 87 and r.text == "87 Adresse de l'expéditeur absente\n"
    assert code(send(**base(**{"pass": ""}))) == 88
    assert code(send(**base(numero=" "))) == 89
    r = send(**base(ref=""))
    assert code(r) == 90 and r.text.startswith("90 Référence vide")
    assert code(send(email=SENDER, numero="0612345600")) == 88  # absent is empty
    assert gw.jobs() == [] and gw.outbox("ack") == 0  # no account was read, nothing written


# -- 80–86, 91, 95, 96: the mail's decision --------------------------------------------------

def test_every_code_from_the_decision(gateway: Callable[..., Gateway],
                                      message: tuple[bytes, float]) -> None:
    gw = gateway()
    account_id = gw.add_account()
    store_message(gw, account_id, "32", message)
    with gw.running.store.tx() as s:
        groups.add_numbers(s, SENDER, "clients", ["0612345601", "0612345602"])
    r = gw.get(**base(com="relance"))
    assert code(r) == 80 and r.text.startswith("80 Envoi accepté, transmission en cours\n")
    (job,) = gw.jobs()
    assert r.headers["X-Mailgw-Job"] == str(job.id) and f"job {job.id}" in r.text
    assert (job.channel, job.ref, job.comment) == ("voice", "32", "relance")
    assert job.duration == pytest.approx(message[1])
    assert code(gw.get(**base(diff=SEED_PAST))) == 85  # 2014: in the past
    assert code(gw.get(**base(diff=SEED_PAST + "s"))) == 85  # nor can it be cancelled
    assert code(gw.get(**base(diff="demain"))) == 85  # not a date: never sent now
    later = future()
    r = gw.get(**base(diff=later))
    assert code(r) == 81
    deferred = gw.jobs()[-1]
    assert deferred.state == "scheduled" and r.headers["X-Mailgw-Job"] == str(deferred.id)
    r = gw.get(**base(diff=later + "s"))
    assert code(r) == 95 and r.text.startswith("95 Envoi différé annulé")
    assert r.headers["X-Mailgw-Job"] == str(deferred.id)  # the job cancelled
    with gw.running.store.read() as s:
        assert s.get(Job, deferred.id).state == "cancelled"  # type: ignore[union-attr]
    r = gw.get(**base(diff=later + "s"))
    assert code(r) == 96 and "X-Mailgw-Job" not in r.headers
    assert code(gw.get(**base(**{"pass": "wrong"}))) == 82
    assert code(gw.get(**base(email="nobody@example.com"))) == 82
    r = gw.get(**base(numero="12ab"))
    assert code(r) == 84 and "12ab" in r.text
    assert code(gw.get(**base(numero="0170:709901"))) == 84  # a ':' adds no Subject field
    r = gw.get(**base(numero="@fournisseurs"))
    assert code(r) == 86 and "@fournisseurs" in r.text
    r = gw.get(**base(ref="nope"))
    assert code(r) == 91 and "nope" in r.text
    r = gw.post(**base(com="x" * 33_000))  # the Subject's cap (32 000 bytes)
    assert code(r) == 94 and "32000" in r.text
    r = gw.get(**base(numero="@clients;0612345603,0612345600"))
    assert code(r) == 80
    with gw.running.store.read() as s:
        group_job = s.get(Job, int(r.headers["X-Mailgw-Job"]))
        assert group_job is not None
        assert sorted(d.number for d in group_job.deliveries) == [
            "+33612345600", "+33612345601", "+33612345602", "+33612345603"]
    assert gw.outbox("ack") == 0  # the HTTP answer is the reply: no ack mail


def test_wrong_password_writes_nothing_and_sends_no_mail(gateway: Callable[..., Gateway],
                                                         sink: Any) -> None:
    gw = gateway()
    gw.add_account(lang="en")
    r = gw.post(**base(**{"pass": "FGB45M"}))
    assert code(r) == 82 and r.text.startswith("82 Password or sender not valid")
    assert gw.jobs() == [] and gw.outbox("ack") == 0 and sink.messages == []


def test_an_account_that_requires_smtp_auth_is_82_over_http(
        gateway: Callable[..., Gateway], message: tuple[bytes, float]) -> None:
    gw = gateway()
    store_message(gw, gw.add_account(require="password+auth"), "32", message)
    assert code(gw.get(**base())) == 82 and gw.jobs() == []


def test_no_credit_is_83(gateway: Callable[..., Gateway], message: tuple[bytes, float]) -> None:
    gw = gateway()
    store_message(gw, gw.add_account(credits=0), "32", message)
    r = gw.get(**base())
    assert code(r) == 83 and r.text.startswith("83 Crédit insuffisant")
    assert gw.jobs() == []


def test_a_comment_that_looks_like_a_date_stays_a_comment(
        gateway: Callable[..., Gateway], message: tuple[bytes, float]) -> None:
    gw = gateway()
    store_message(gw, gw.add_account(), "32", message)
    assert code(gw.get(**base(com="12345678"))) == 80  # not read as a `when` (85)
    assert code(gw.get(**base(com="dossier: 153012092014", diff=future()))) == 81
    comments = [j.comment or "" for j in gw.jobs()]
    assert comments[0].startswith("12345678") and comments[1] == "dossier: 153012092014"


# -- POST, the options, idempotency ----------------------------------------------------------

def test_post_forms_and_call_options(gateway: Callable[..., Gateway],
                                     message: tuple[bytes, float]) -> None:
    gw = gateway()
    account_id = gw.add_account()
    store_message(gw, account_id, "promo", message)
    with gw.running.store.tx() as s:
        account = s.get(Account, account_id)
        assert account is not None
        voice.add_caller_id(s, account, "0170709900")
    r = gw.post(**base(ref="PROMO", depot="1"))  # form-urlencoded
    assert code(r) == 80
    multipart = gw.client.post(gw.url, files={k: (None, v) for k, v in base(
        ref="promo", transfert="01 70 70 99 01", emetteur="0170709900", com="été").items()})
    assert code(multipart) == 80
    dropped, called = gw.jobs()
    assert json.loads(dropped.options or "{}") == {"voicemail": "only"}
    assert json.loads(called.options or "{}") == {"transfer": "+33170709901",
                                                  "callerid": "+33170709900"}
    assert called.comment == "été"
    latin = gw.client.get(gw.url + "?" + "&".join(f"{k}={v}" for k, v in base(
        ref="promo", com="%E9t%E9").items()))  # an older French site's form, in Windows-1252
    assert code(latin) == 80 and gw.jobs()[-1].comment == "été"
    head = gw.client.head(gw.url, params=base(ref="promo"))
    assert head.status_code == 405 and len(gw.jobs()) == 3  # only GET and POST send
    # the query and the body together, as PHP's $_REQUEST: the body's value wins
    r = gw.client.post(gw.url, params=base(numero="abc", ref="promo"),
                       data={"numero": "0612345600"})
    assert code(r) == 80 and len(gw.jobs()) == 4
    with_file = gw.client.post(gw.url, data=base(ref="promo"), files={"f": ("a.wav", b"x")})
    assert with_file.status_code == 400 and len(gw.jobs()) == 4  # http.php takes no file


def test_idempotency_key_is_scoped_by_the_email(gateway: Callable[..., Gateway],
                                                message: tuple[bytes, float]) -> None:
    gw = gateway()
    store_message(gw, gw.add_account(), "32", message)
    store_message(gw, gw.add_account("bob@example.com"), "32", message)
    key = {"Idempotency-Key": "commande-42"}
    first = gw.post(headers=key, **base())
    again = gw.post(headers=key, **base())
    assert code(first) == code(again) == 80
    assert again.headers["X-Mailgw-Job"] == first.headers["X-Mailgw-Job"]
    bob = gw.post(headers=key, **base(email="bob@example.com"))
    assert code(bob) == 80 and bob.headers["X-Mailgw-Job"] != first.headers["X-Mailgw-Job"]
    plain = [gw.get(**base()) for _ in range(2)]  # 123-Vocal's own calls: a job each
    assert len({r.headers["X-Mailgw-Job"] for r in plain}) == 2
    assert len(gw.jobs()) == 4


def test_spent_password_checks_answer_503_not_a_code(gateway: Callable[..., Gateway]) -> None:
    gw = gateway(limits={"password_checks": 1, "auth_failures": 1, "auth_delay": "10ms"})
    gw.add_account()
    assert code(gw.get(**base(**{"pass": "guess1"}))) == 82
    app = gw.running.app
    assert app is not None and app.intake is not None
    assert app.intake.guard.client_delay("127.0.0.1") > 0  # this address's replies are held
    r = gw.get(**base(**{"pass": "guess2"}))
    assert r.status_code == 503 and r.headers["Retry-After"] == "60"
    assert "X-Mailgw-Code" not in r.headers and gw.jobs() == []


# -- end to end --------------------------------------------------------------------------------

def test_a_job_made_over_http_php_is_dialled_and_noticed(
        gateway: Callable[..., Gateway], sink: Any, message: tuple[bytes, float],
        capsys: pytest.CaptureFixture[str]) -> None:
    gw = gateway()
    store_message(gw, gw.add_account(lang="en"), "32", message)
    r = gw.get(**base(com="http"))
    assert code(r) == 80
    job_id = int(r.headers["X-Mailgw-Job"])
    notices = sink.wait_for(lambda ms: any(m["X-Mailgw-Kind"] == "notice" for m in ms),
                            what="notice", timeout=60)
    (notice,) = [m for m in notices if m["X-Mailgw-Kind"] == "notice"]
    assert notice["To"] == SENDER and notice["X-Mailgw-Job"] == str(job_id)
    body = notice.get_body(preferencelist=("plain",)).get_content()
    assert "message played in full" in body
    with gw.running.store.read() as s:
        job = s.get(Job, job_id)
        assert job is not None and job.state == "done"
    logged = "".join(capsys.readouterr())
    assert "/http.php" in logged and PASSWORD not in logged  # the access log hides `pass`
