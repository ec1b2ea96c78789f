"""Behind an MTA, without one: the Received header of a trusted relay (and only its), what a
relay is told, one channel per transaction, the greeting name, UTF-8 accounts over our own
listener, and what `mailgw postfix-config` prints. tests/system/test_postfix.py runs the same
paths through a real Postfix."""

from __future__ import annotations

import re
import smtplib
from collections.abc import Iterator
from email.message import EmailMessage
from email.policy import SMTPUTF8
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import select

from mailgw.accounts import accounts
from mailgw.intake.routes import channel_of
from mailgw.intake.verdict import Policy
from mailgw.ops import cli, config
from mailgw.ops.postfix_config import nexthop, render
from mailgw.smtp.relay import MAX_HOPS, TrustedRelays, received_from_ip, received_headers
from mailgw.store import Delivery, Job
from tests.conftest import PASSWORD, SENDER, Sink, fax_message, wait_until
from tests.integration.test_cloud_drivers import pdf
from tests.integration.test_end_to_end import crlf

GW = "gw.example.org"
BOB, BOB_PASSWORD = "bob@example.net", "bob-secret-77"


@pytest.fixture(params=["sqlite"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:  # SQLite is enough here
    return f"sqlite:///{tmp_path / 'relay.db'}"


@pytest.fixture
def sink() -> Iterator[Sink]:
    """The smarthost, with SMTPUTF8 (acks to pépé@…)."""
    s = Sink()
    s.controller = Controller(s.handler, hostname="127.0.0.1", port=s.port,
                              enable_SMTPUTF8=True)
    s.start()
    yield s
    s.stop()


# -- the Received header ------------------------------------------------------------------

@pytest.mark.parametrize(("header", "ip"), [
    ("from client.example (client.example [192.0.2.7]) by mx.example.org (Postfix) with ESMTP"
     " id 4AB for <fax@gw.example.org>; Mon, 1 Jan 2024 00:00:00 +0000", "192.0.2.7"),
    ("from [6.6.6.6] (unknown [192.0.2.8]) by mx (Postfix) with ESMTP id X; d", "192.0.2.8"),
    ("from x([6.6.6.6]) (unknown [192.0.2.9]:4567) by mx (Postfix) with ESMTP; d", "192.0.2.9"),
    ("from h (unknown [IPv6:2001:db8::1]) by mx (Postfix) with ESMTPSA id X; d", "2001:db8::1"),
    ("from h (h [192.0.2.1]) (using TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits))"
     " (No client certificate requested) by mx (Postfix) with ESMTPS id 1; d", "192.0.2.1"),
    ("from [192.0.2.10] (helo=[6.6.6.6]) by mx with esmtp (Exim 4.96) id 1; d", "192.0.2.10"),
    ("from host.example ([192.0.2.11] helo=[6.6.6.6]) by mx with esmtp (Exim 4.96); d",
     "192.0.2.11"),
    ("from by (unknown [192.0.2.12]) by mx (Postfix); d", "192.0.2.12"),
    ("from x (y [6.6.6.6]) by z (unknown [192.0.2.13]) by mx (Postfix); d", "192.0.2.13"),
    ("from localhost (localhost [::ffff:127.0.0.1]) by mx; d", "127.0.0.1"),
    ("by mx (Postfix, from userid 0) id 1; d", None),
    ("from nowhere by mx; d", None),
    ("from x (y [999.1.1.1]) by mx; d", None),
    ("garbage", None),
])
def test_the_client_address_in_a_received_header(header: str, ip: str | None) -> None:
    """Postfix's, Sendmail's and Exim's forms; the HELO (the client's own word, brackets,
    parentheses and `by` included) never wins over what the MTA saw."""
    assert received_from_ip(header) == ip


def received(*ips: str) -> bytes:
    hops = "".join(f"Received: from h{i} (h{i} [{ip}])\r\n\tby mx{i} (Postfix) with ESMTP id "
                   f"Q{i};\r\n\tMon, 1 Jan 2024 00:00:00 +0000\r\n" for i, ip in enumerate(ips))
    return (hops + "Subject: x\r\n\r\nReceived: from body (b [198.51.100.99]) by y\r\n"
            ).encode()


def test_only_a_trusted_peer_s_received_header_is_read() -> None:
    relays = TrustedRelays.of(["127.0.0.1", "10.0.0.0/8"])
    raw = received("192.0.2.1", "192.0.2.2")
    assert relays.client_ip("192.0.2.50", raw) == "192.0.2.50"  # anyone can write headers
    assert relays.client_ip("127.0.0.1", raw) == "192.0.2.1"  # the topmost: the relay's
    # a trusted hop below (a content filter, a second MTA) is walked through
    assert relays.client_ip("127.0.0.1", received("10.1.2.3", "192.0.2.2")) == "192.0.2.2"
    assert relays.client_ip("127.0.0.1", received("10.1.2.3")) == "10.1.2.3"
    # submitted on the relay itself, or no header at all: the last address known
    assert relays.client_ip("127.0.0.1", b"Received: by mx (Postfix, from userid 0);"
                            b" d\r\n\r\n") == "127.0.0.1"
    assert relays.client_ip("127.0.0.1", b"Subject: x\r\n\r\nbody") == "127.0.0.1"
    assert relays.client_ip("127.0.0.1", received(*["10.0.0.1"] * (MAX_HOPS + 2))
                            ) == "10.0.0.1"
    assert received_headers(received("192.0.2.1"))[0].startswith("from h0 (h0 [192.0.2.1])")
    assert "::1" not in relays and None not in relays and "not an ip" not in relays
    assert not TrustedRelays.of([]) and "127.0.0.1" not in TrustedRelays.of([])


def test_trusted_relays_must_be_addresses_or_networks() -> None:
    with pytest.raises(config.ConfigError) as err:
        config.load(search=False, environ={},
                    overrides={"smtp": {"trusted_relays": ["127.0.0.1", "mx.example.org"]}})
    assert err.value.problems == ["smtp.trusted_relays: 'mx.example.org' is not an address or "
                                  "a network (such as 127.0.0.1 or 192.0.2.0/28)"]
    ok = config.load(search=False, environ={},
                     overrides={"smtp": {"trusted_relays": ["127.0.0.1", "2001:db8::/64"]}})
    assert ok.smtp.trusted_relays == ["127.0.0.1", "2001:db8::/64"]


# -- over SMTP: what a relay is told ------------------------------------------------------

def relayed(msg: EmailMessage, client: str) -> bytes:
    """The mail as a relay hands it on, its Received header on top."""
    return crlf(f"Received: from c (c [{client}])\r\n\tby mx.example.org (Postfix) with ESMTP"
                f" id 1A2B;\r\n\tMon, 1 Jan 2024 00:00:00 +0000\r\n".encode() + msg.as_bytes())


def data(port: int, raw: bytes, mail_from: str = SENDER, rcpt: str = f"fax@{GW}"
         ) -> tuple[int, str]:
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as c:
        c.ehlo("mx.example.org")
        c.mail(mail_from)
        assert c.rcpt(rcpt)[0] == 250
        code, text = c.data(raw)
    return code, text.decode()


def test_a_relay_is_told_250_and_only_the_proven_sender_hears(make_app, sink) -> None:
    app = make_app(smtp={"trusted_relays": ["127.0.0.1"]})
    app.add_account()
    code, text = data(app.port, relayed(fax_message(f"{PASSWORD}:0170709901", None),
                                        "192.0.2.1"))
    assert (code, text[:10]) == (250, "2.0.0 [92]"), text  # no document: refused, told by mail
    ack = sink.wait_for(lambda ms: len(ms) == 1, what="the ack")[0]
    assert ack["To"] == SENDER and ack["X-Mailgw-Code"] == "92"
    code, text = data(app.port, relayed(fax_message("wrong:0170709901", pdf(1)), "192.0.2.2"))
    assert (code, text[:10]) == (250, "2.0.0 [82]"), text  # dropped: nobody proven to tell
    code, text = data(app.port, relayed(fax_message("x:0170709901", pdf(1),
                                                    sender="nobody@example.org"), "192.0.2.3"),
                      mail_from="nobody@example.org")
    assert (code, text[:10]) == (250, "2.0.0 [82]"), text
    code, text = data(app.port, relayed(fax_message(f"{PASSWORD}:0170709901", pdf(1)),
                                        "192.0.2.1"))
    assert (code, text[:10]) == (250, "2.0.0 [80]"), text  # an accepted mail is unchanged
    sink.wait_for(lambda ms: len(ms) >= 2, what="the second ack")
    assert [m["X-Mailgw-Code"] for m in sink.kinds("ack")] == ["92", "80"]


def test_an_untrusted_peer_gets_the_refusal_itself(make_app, sink) -> None:
    app = make_app(smtp={"trusted_relays": ["192.0.2.25"]})
    app.add_account()
    code, text = data(app.port, relayed(fax_message("wrong:0170709901", pdf(1)), "192.0.2.2"))
    assert code == 550 and text.startswith("5.7.1 [82]"), text


def test_guesses_through_a_relay_delay_only_their_client(make_app, sink) -> None:
    """Every mail comes from the relay (127.0.0.1); wrong guesses count against the client in
    its Received header: alice's guesser is slowed, the relay and bob are not."""
    app = make_app(smtp={"trusted_relays": ["127.0.0.1"]}, limits={"auth_failures": 3})
    app.add_account()
    app.add_account(BOB, BOB_PASSWORD)
    for i in range(3):
        assert data(app.port, relayed(fax_message(f"guess{i}:0170709901", pdf(1)),
                                      "192.0.2.66"))[0] == 250
    guard = app.app.intake.guard
    assert guard.client_delay("192.0.2.66") > 0  # the guesser's own address
    assert guard.client_delay("127.0.0.1") == 0  # never the relay's
    code, text = data(app.port, relayed(fax_message(f"{BOB_PASSWORD}:0170709901", pdf(1),
                                                    sender=BOB), "198.51.100.77"), mail_from=BOB)
    assert (code, text[:10]) == (250, "2.0.0 [80]"), text


def test_forged_received_headers_do_not_dodge_the_throttle(make_app, sink) -> None:
    """From a peer that is not a trusted relay, each guess naming another client in a
    forged Received header still counts against the peer's own address."""
    app = make_app(limits={"auth_failures": 3})
    app.add_account()
    for i in range(3):
        with smtplib.SMTP("127.0.0.1", app.port, timeout=30) as c:
            c.ehlo("x")
            c.mail(SENDER)
            c.rcpt(f"fax@{GW}")
            code, _ = c.data(relayed(fax_message(f"g{i}:0170709901", pdf(1)), f"192.0.2.{i + 1}"))
            assert code == 550
    guard = app.app.intake.guard
    assert guard.client_delay("127.0.0.1") > 0
    assert all(guard.client_delay(f"192.0.2.{i + 1}") == 0 for i in range(3))


# -- one channel per transaction ------------------------------------------------------------

@pytest.mark.parametrize(("first", "second"), [
    (f"fax@{GW}", f"voice@{GW}"), (f"voice@{GW}", f"fax@{GW}"),
    (f"+33170709901@{GW}", f"voice@{GW}"), (f"voice@{GW}", f"+33170709901@{GW}"),
])
def test_a_second_channel_waits_for_its_own_mail(make_app, first: str, second: str) -> None:
    app = make_app()
    with smtplib.SMTP("127.0.0.1", app.port, timeout=10) as c:
        c.ehlo("x")
        c.mail(SENDER)
        assert c.rcpt(first)[0] == 250
        code, text = c.rcpt(second)
        assert (code, text[:5]) == (452, b"4.5.3"), text
        assert c.rcpt(first.upper())[0] == 250  # the same channel still is welcome


def test_numbers_of_one_channel_make_one_job(make_app, sink) -> None:
    """fax@ and several `<number>@` recipients in one transaction: one fax job with every
    number (the Subject's too); the same mail sent again to other recipients (an MTA's next
    transaction) is a mail of its own, not a repeat."""
    app = make_app()
    app.add_account()
    msg = fax_message(f"{PASSWORD}:0170709901:REF-MANY", pdf(1), message_id="<many@example>")
    first = (f"fax@{GW}", f"+33170709902@{GW}", f"0170709903@{GW}")

    def transaction(rcpts: tuple[str, ...]) -> bytes:
        with smtplib.SMTP("127.0.0.1", app.port, timeout=30) as c:
            c.ehlo("x")
            c.mail(SENDER)
            for rcpt in rcpts:
                assert c.rcpt(rcpt)[0] == 250
            code, text = c.data(crlf(msg.as_bytes()))
        assert code == 250, text
        return text

    assert b"job 1" in transaction(first)
    assert b"job 2" in transaction((f"+33170709904@{GW}",))
    assert b"job 1" in transaction(first)  # a true repeat: the first answer, no third job
    with app.store.read() as s:
        numbers = s.execute(select(Job.id, Delivery.number).join(Delivery)
                            .order_by(Job.id, Delivery.number)).all()
    assert [tuple(n) for n in numbers] == [
        (1, "+33170709901"), (1, "+33170709902"), (1, "+33170709903"),
        (2, "+33170709901"), (2, "+33170709904")]


# -- the greeting, UTF-8 accounts -----------------------------------------------------------

def test_the_greeting_names_the_gateway_domain(make_app) -> None:
    app = make_app()
    with smtplib.SMTP("127.0.0.1", app.port, timeout=10) as c:
        code, text = c.ehlo("x")
        assert code == 250 and text.split(b"\n")[0] == GW.encode()
    app2 = make_app(smtp={"hostname": "mailgw.example.net"})
    with smtplib.SMTP("127.0.0.1", app2.port, timeout=10) as c:
        assert c.ehlo("x")[1].split(b"\n")[0] == b"mailgw.example.net"


def test_utf8_addresses_are_accounts_and_senders(make_app, sink) -> None:
    app = make_app()
    app.add_account("PÉPÉ@exemple.fr", "mot-de-passe-é")
    with app.store.tx() as s:
        accounts.allow_sender(s, "pépé@exemple.fr", "émile@exemple.fr")
        # typed with a combining accent: the same address
        assert accounts.find_by_email(s, "pe\u0301pe\u0301@exemple.fr") is not None
    with app.store.tx() as s, pytest.raises(accounts.AccountError):
        accounts.allow_sender(s, "pépé@exemple.fr", "é mile@exemple.fr")
    for sender in ("pépé@exemple.fr", "émile@exemple.fr"):
        msg = fax_message(f"mot-de-passe-é:0170709901:REF-{len(sender)}", pdf(1), sender=sender)
        raw = crlf(msg.as_bytes(policy=SMTPUTF8))
        with smtplib.SMTP("127.0.0.1", app.port, timeout=30) as c:
            c.ehlo("x")
            c.mail(sender, ["SMTPUTF8", "BODY=8BITMIME"])
            assert c.rcpt(f"fax@{GW}")[0] == 250
            code, text = c.data(raw)
        assert code == 250 and b"[80]" in text, text
    wait_until(lambda: len(sink.kinds("ack")) == 2, what="two acks")
    # the acks' envelopes (the notices of the two faxes may have arrived too, or not yet)
    with sink.handler.cond:
        mails = list(sink.handler.mails)
    acks = [rcpts[0] for _, rcpts, raw in mails if b"\nX-Mailgw-Kind: ack\r\n" in raw]
    assert sorted(acks) == ["pépé@exemple.fr", "émile@exemple.fr"]


# -- mailgw postfix-config ------------------------------------------------------------------

def test_postfix_config_prints_maps_that_match_the_config(tmp_path: Path, capsys) -> None:
    toml = tmp_path / "mailgw.toml"
    toml.write_text(f'[gateway]\nfax_address = "fax@{GW}"\nvoice_address = "voice@{GW}"\n'
                    f'domain = "{GW}"\n[smtp]\nlisten = "0.0.0.0:2525"\n'
                    'max_message_size = "60MB"\n')
    assert cli.main(["postfix-config", "--config", str(toml)]) == 0
    out = capsys.readouterr().out
    for line in (f"relay_domains = {GW}",
                 "transport_maps = hash:/etc/postfix/mailgw_transport",
                 "relay_recipient_maps = hash:/etc/postfix/mailgw_recipients, "
                 "regexp:/etc/postfix/mailgw_recipients.regexp",
                 "message_size_limit = 56934464", "mailbox_size_limit = 56934464",
                 f"{GW}\tsmtp:[127.0.0.1]:2525", f"fax@{GW}\tOK", f"voice@{GW}\tOK",
                 'trusted_relays = ["127.0.0.1"]'):
        assert line in out, line
    assert cli.main(["postfix-config", "--config", str(toml), "--dir", str(tmp_path),
                     "--write"]) == 0
    assert (tmp_path / "mailgw_transport").read_text() == f"{GW}\tsmtp:[127.0.0.1]:2525\n"


def test_the_number_map_takes_what_mailgw_takes() -> None:
    settings = config.load(search=False, environ={}, overrides={"gateway": {
        "fax_address": f"fax@{GW}", "voice_address": f"voice@{GW}", "domain": GW}})
    line = render(settings, Path("/etc/postfix")).files["mailgw_recipients.regexp"].strip()
    pattern = re.compile(line.split("/")[1], re.IGNORECASE)  # this ERE reads the same in re
    policy = Policy.of(settings)
    for local in ("+33170709901", "0170709901", "01.70.70.99.01", "+33-1-70-70-99-01",
                  "123456", "12345", "1" * 17, "1" * 18, "fax", "+", "++123456", "12a456",
                  "33 170709901", "-123456-"):
        address = f"{local}@{GW}"
        number = channel_of(address, policy) == "fax" and address != policy.fax_address
        assert bool(pattern.match(address)) == number, local  # fax@ is in the hash map
    assert not pattern.match(f"0170709901@other{GW}")
    assert nexthop("[::]:25") == "smtp:[::1]:25" and nexthop("mx.local:2525") == \
        "smtp:[mx.local]:2525"


def test_the_operator_guide_shows_what_the_command_prints() -> None:
    settings = config.load(search=False, environ={}, overrides={
        "gateway": {"fax_address": f"fax@{GW}", "voice_address": f"voice@{GW}", "domain": GW},
        "smtp": {"listen": "127.0.0.1:2525"}})
    cfg = render(settings, Path("/etc/postfix"))
    guide = (Path(__file__).parents[2] / "docs" / "operator.md").read_text(encoding="utf-8")
    shown = {" ".join(line.split()) for line in guide.splitlines()}
    for line in [*cfg.main_cf, *"".join(cfg.files.values()).splitlines()]:
        if not line.startswith("#"):
            assert " ".join(line.split()) in shown, line
