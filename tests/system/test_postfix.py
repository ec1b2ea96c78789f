"""mailgw behind a real, private Postfix (tests/postfix.py), configured by `mailgw
postfix-config`: delivery through it, its queue while mailgw is down, one mail per refusal
(mailgw's ack, never Postfix's bounce with the password), guesses that delay nobody else,
a fax and a voice recipient in one mail, and a UTF-8 account over SMTPUTF8.

Every mail Postfix does not send to mailgw (its bounces, if any) goes to the same sink as
mailgw's acks, so "exactly one mail to the sender" is counted in one place.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Iterator
from email.message import EmailMessage
from email.policy import SMTPUTF8
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import select

from mailgw.ops import cli
from mailgw.store import Job
from tests.conftest import (
    PASSWORD,
    SENDER,
    RunningApp,
    Sink,
    fax_message,
    free_port,
    make_settings,
    wait_until,
)
from tests.integration.test_cloud_drivers import pdf
from tests.postfix import MYHOSTNAME, Postfix, postfix_or_skip, wait_drained
from tests.sounds import encode

pytestmark = pytest.mark.slow

GW = "gw.example.org"
BOB, BOB_PASSWORD = "bob@example.net", "bob-secret-77"
UTF8_USER, UTF8_PASSWORD = "pépé@exemple.fr", "mot-de-passe-é"


@pytest.fixture(scope="module")
def utf8_sink() -> Iterator[Sink]:
    """The smarthost of mailgw and the relayhost of Postfix, with SMTPUTF8 (acks to
    pépé@…)."""
    sink = Sink()
    sink.controller = Controller(sink.handler, hostname="127.0.0.1", port=sink.port,
                                 enable_SMTPUTF8=True)
    sink.start()
    yield sink
    sink.stop()


@pytest.fixture(scope="module")
def mailgw_port() -> int:
    return free_port()


@pytest.fixture(scope="module")
def postfix(utf8_sink: Sink, mailgw_port: int, tmp_path_factory: pytest.TempPathFactory
            ) -> Iterator[Postfix]:
    """Postfix configured with what `mailgw postfix-config --write` gives for mailgw's
    config: the maps postmapped, the main.cf lines appended, then started."""
    postfix_or_skip()
    server = Postfix(relay_port=utf8_sink.port)
    try:
        toml = tmp_path_factory.mktemp("pfconf") / "mailgw.toml"
        toml.write_text(f'[gateway]\nfax_address = "fax@{GW}"\nvoice_address = "voice@{GW}"\n'
                        f'domain = "{GW}"\n[smtp]\nlisten = "127.0.0.1:{mailgw_port}"\n'
                        f'trusted_relays = ["127.0.0.1"]\n')
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            assert cli.main(["postfix-config", "--config", str(toml), "--dir",
                             str(server.conf), "--write"]) == 0
        lines = out.getvalue().splitlines()
        for line in lines:
            if line.startswith("# wrote"):
                for path in line.split("run: ", 1)[1].split("; "):
                    server.postmap(Path(path.removeprefix("postmap ")))
        server.add_main(line for line in lines if not line.startswith("#"))
        server.start()
        yield server
    finally:
        server.cleanup()


@pytest.fixture
def app_factory(postfix: Postfix, utf8_sink: Sink, mailgw_port: int, tmp_path: Path
                ) -> Iterator[Any]:
    """mailgw on the port Postfix relays to, trusting Postfix (127.0.0.1); a clean sink,
    queue and log offset per test."""
    with utf8_sink.handler.cond:
        utf8_sink.handler.mails.clear()
    postfix.clear_queue()
    url = f"sqlite:///{tmp_path / 'mailgw.db'}"
    started: list[RunningApp] = []

    def start() -> RunningApp:
        settings = make_settings(url, utf8_sink.port, smtp={
            "listen": f"127.0.0.1:{mailgw_port}", "trusted_relays": ["127.0.0.1"]})
        app = RunningApp(settings).start()
        started.append(app)
        return app

    yield start
    for app in started:
        app.stop()
    postfix.clear_queue()


def mails_to(sink: Sink, address: str) -> list[EmailMessage]:
    return [m for (_, rcpts, _), m in zip(sink.handler.mails, sink.messages, strict=True)
            if address in rcpts]


def test_postfix_config_is_taken_by_postfix(postfix: Postfix, utf8_sink: Sink) -> None:
    """The maps and limits printed by `mailgw postfix-config` are Postfix's own now: known
    recipients only (no later bounce), the number form, and mailgw's size."""
    import smtplib

    main = postfix.run(Path("/usr/sbin/postconf"), "-n").stdout
    assert "relay_recipient_maps = hash:" in main and "message_size_limit = 23684464" in main
    with smtplib.SMTP("127.0.0.1", postfix.port, timeout=10) as c:
        c.ehlo("client.test.example")
        assert c.esmtp_features["size"] == "23684464"
        c.mail(SENDER)
        assert c.rcpt(f"fax@{GW}")[0] == 250
        assert c.rcpt(f"+33-1.70.70.99.01@{GW}")[0] == 250
        assert c.rcpt(f"voice@{GW}")[0] == 250  # Postfix takes it; mailgw splits (below)
        code, text = c.rcpt(f"nobody@{GW}")
        assert code == 550 and b"5.1.1" in text, text  # refused here: nothing to bounce
        assert c.rcpt(f"12345@{GW}")[0] == 550  # too short for a number
        c.rset()


def test_delivery_through_postfix(app_factory: Any, postfix: Postfix,
                                  utf8_sink: Sink) -> None:
    app = app_factory()
    app.add_account()
    since = len(postfix.log())
    msg = fax_message(f"{PASSWORD}:0170709901:REF-PF", pdf(2))
    qid = postfix.send(msg.as_bytes(), SENDER, [f"fax@{GW}"], source="127.0.0.2")
    sent = postfix.wait_status(f"fax@{GW}", "sent", since)
    assert sent[0][0] == qid and "[80]" in sent[0][3], sent
    utf8_sink.wait_for(lambda ms: any(m["X-Mailgw-Kind"] == "notice" for m in ms),
                       what="the notice")
    assert [m["X-Mailgw-Kind"] for m in mails_to(utf8_sink, SENDER)] == ["ack", "notice"]
    with app.store.read() as s:
        assert s.scalars(select(Job.ref)).all() == ["REF-PF"]


def test_mailgw_down_then_up_queue_drained_once(app_factory: Any, postfix: Postfix,
                                                utf8_sink: Sink) -> None:
    app = app_factory()
    app.add_account()
    app.stop()
    since = len(postfix.log())
    qid = postfix.send(fax_message(f"{PASSWORD}:0170709901:REF-DOWN", pdf(1)).as_bytes(),
                       SENDER, [f"fax@{GW}"])
    postfix.wait_status(f"fax@{GW}", "deferred", since)
    assert [q["queue_id"] for q in postfix.queue()] == [qid]
    again = app_factory()  # the same store and port
    postfix.flush()
    postfix.wait_status(f"fax@{GW}", "sent", since)
    wait_drained(postfix)
    postfix.flush()  # a second flush finds nothing to send again
    utf8_sink.wait_for(lambda ms: any(m["X-Mailgw-Kind"] == "notice" for m in ms),
                       what="the notice")
    with again.store.read() as s:
        assert s.scalars(select(Job.ref)).all() == ["REF-DOWN"]
    assert len([s for s in postfix.statuses(since) if s[2] == "sent"]) == 1
    assert [m["X-Mailgw-Kind"] for m in mails_to(utf8_sink, SENDER)] == ["ack", "notice"]


def test_refusal_is_one_mail_without_password(app_factory: Any, postfix: Postfix,
                                              utf8_sink: Sink) -> None:
    """A proven sender's refusal (no document: 92) is told by mailgw's ack alone: Postfix
    got 250 and sends no bounce. A wrong password (82) gets 250 and nothing at all."""
    app = app_factory()
    app.add_account()
    since = len(postfix.log())
    postfix.send(fax_message(f"{PASSWORD}:0170709901:REF-NODOC", None).as_bytes(),
                 SENDER, [f"fax@{GW}"], source="127.0.0.2")
    postfix.send(fax_message("wrong-guess-1:0170709901", pdf(1),
                             sender="carol@example.org").as_bytes(),
                 "carol@example.org", [f"fax@{GW}"], source="127.0.0.3")
    postfix.send(fax_message("wrong-guess-2:0170709901", pdf(1)).as_bytes(),
                 SENDER, [f"fax@{GW}"], source="127.0.0.4")
    sent = postfix.wait_status(f"fax@{GW}", "sent", since, count=3)
    assert sorted(s[3][:20] for s in sent) == ["(250 2.0.0 [82] Not ", "(250 2.0.0 [82] Not ",
                                               "(250 2.0.0 [92] Refu"], sent
    wait_drained(postfix)
    utf8_sink.wait_for(lambda ms: len(ms) >= 1, what="the ack")
    mails = utf8_sink.messages
    assert [(m["To"], m["X-Mailgw-Kind"]) for m in mails] == [(SENDER, "ack")]
    assert mails[0]["X-Mailgw-Code"] == "92"
    assert "bounced" not in postfix.log()[since:]
    everything = b"".join(raw for _, _, raw in utf8_sink.handler.mails)
    everything += postfix.log().encode()
    for secret in (PASSWORD, "wrong-guess-1", "wrong-guess-2"):
        assert secret.encode() not in everything, secret


def test_guesses_for_one_account_do_not_delay_another(app_factory: Any, postfix: Postfix,
                                                      utf8_sink: Sink) -> None:
    """Behind Postfix every mail comes from 127.0.0.1: mailgw reads the client from the
    Received header, so the guesser of alice's password (127.0.1.2, not the relay's /24) is slowed,
    and bob (127.0.2.3) gets through at the first try."""
    app = app_factory()
    app.add_account()
    app.add_account(BOB, BOB_PASSWORD)
    since = len(postfix.log())
    guesses = [postfix.send(fax_message(f"guess-{i}:0170709901", pdf(1)).as_bytes(), SENDER,
                            [f"fax@{GW}"], source="127.0.1.2")
               for i in range(app.settings.limits.auth_failures)]
    wait_until(lambda: {s[0] for s in postfix.statuses(since)} >= set(guesses), 30,
               "every guess answered")
    assert all(s[2] == "sent" for s in postfix.statuses(since))  # 250: no bounce, no DSN
    guard = app.app.intake.guard  # the guesser is slowed (its replies held), not the relay
    assert guard.client_delay("127.0.1.2") > 0 and guard.client_delay("127.0.0.1") == 0
    qid = postfix.send(fax_message(f"{BOB_PASSWORD}:0170709901:REF-BOB", pdf(1),
                                   sender=BOB).as_bytes(), BOB, [f"fax@{GW}"],
                       source="127.0.2.3")
    wait_until(lambda: [s for s in postfix.statuses(since) if s[0] == qid], 30, "bob's mail")
    assert [(s[2], s[3][:14]) for s in postfix.statuses(since) if s[0] == qid] == [
        ("sent", "(250 2.0.0 [80")]
    utf8_sink.wait_for(lambda ms: any(m["To"] == BOB for m in ms), what="bob's ack")


def test_fax_and_voice_in_one_mail_become_two_jobs(app_factory: Any, postfix: Postfix,
                                                   utf8_sink: Sink) -> None:
    """mailgw answers the second channel's RCPT 452 4.5.3; Postfix sends that recipient in
    a mail of its own: one fax job and one voice job, none dropped."""
    app = app_factory()
    app.add_account()
    since = len(postfix.log())
    msg = fax_message(f"{PASSWORD}:0170709901:REF-BOTH", pdf(1), to=f"fax@{GW}, voice@{GW}")
    msg.add_attachment(encode("wav", 2.0), maintype="audio", subtype="wav",
                       filename="hello.wav")
    postfix.send(msg.as_bytes(), SENDER, [f"voice@{GW}", f"fax@{GW}"])
    postfix.wait_status(f"fax@{GW}", "sent", since)
    postfix.flush()  # in case Postfix deferred the other recipient instead of trying at once
    postfix.wait_status(f"voice@{GW}", "sent", since)
    wait_drained(postfix)
    with app.store.read() as s:
        assert sorted(s.scalars(select(Job.channel)).all()) == ["fax", "voice"]
    utf8_sink.wait_for(lambda ms: len([m for m in ms if m["X-Mailgw-Kind"] == "ack"]) == 2,
                       what="two acks")


def test_utf8_account_through_postfix(app_factory: Any, postfix: Postfix,
                                      utf8_sink: Sink) -> None:
    app = app_factory()
    app.add_account(UTF8_USER, UTF8_PASSWORD)
    since = len(postfix.log())
    msg = fax_message(f"{UTF8_PASSWORD}:0170709901:REF-UTF8", pdf(1), sender=UTF8_USER)
    raw = msg.as_bytes(policy=SMTPUTF8)
    postfix.send(raw, UTF8_USER, [f"fax@{GW}"], smtputf8=True)
    postfix.wait_status(f"fax@{GW}", "sent", since)
    acks = utf8_sink.wait_for(lambda ms: any(m["X-Mailgw-Kind"] == "ack" for m in ms),
                              what="the ack")
    assert utf8_sink.envelopes[0][1] == [UTF8_USER]
    assert acks[0]["X-Mailgw-Code"] == "80" and acks[0]["To"] == UTF8_USER
    with app.store.read() as s:
        assert s.scalars(select(Job.sender)).all() == [UTF8_USER]


def test_greeting_name_is_not_postfix_s_own() -> None:
    """Postfix refuses a next hop that greets with its own myhostname; mailgw's default
    name is the gateway domain."""
    settings = make_settings("sqlite:////nonexistent", 25)
    from mailgw.smtp.relay import greeting_name

    assert greeting_name(settings.smtp.hostname, settings.gateway.domain) == GW != MYHOSTNAME
