"""An account that requires a DMARC-aligned pass, over real SMTP: mailgw's own resolver
asks a real DNS server on 127.0.0.1 for a key made in the test; a signed mail gets 80, the
right password alone 82. And the same through trusted Authentication-Results."""

from __future__ import annotations

import smtplib
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select

from mailgw.store import Job
from tests.conftest import PASSWORD, SENDER, fax_message
from tests.dns_zone import DnsServer, Key, txt
from tests.integration.test_end_to_end import crlf

BOB = "bob@spf.example"  # his domain's SPF record allows 127.0.0.1


@pytest.fixture(params=["sqlite"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:  # SQLite is enough here
    return f"sqlite:///{tmp_path / 'proof.db'}"


@pytest.fixture(scope="module")
def key() -> Key:
    return Key()


@pytest.fixture
def dns_server(key: Key) -> Iterator[DnsServer]:
    server = DnsServer({
        ("sel._domainkey.example.com", "TXT"): [txt(key.record)],
        ("example.com", "TXT"): [txt("v=spf1 ip4:192.0.2.0/24 -all")],  # not loopback
        ("_dmarc.example.com", "TXT"): [txt("v=DMARC1; p=reject")],
        ("spf.example", "TXT"): [txt("v=spf1 ip4:127.0.0.1 -all")],
    })
    yield server
    server.stop()


def send_raw(port: int, raw: bytes, mail_from: str = SENDER) -> tuple[int, bytes]:
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
        client.ehlo("client.example.com")
        client.mail(mail_from)
        client.rcpt("fax@gw.example.org")
        return client.data(crlf(raw))


def test_an_account_requiring_dmarc_over_smtp(make_app, dns_server: DnsServer, key: Key,
                                              corpus: Path) -> None:
    app = make_app(proof={"verify": "own", "nameservers": [f"127.0.0.1:{dns_server.port}"],
                          "dns_timeout": "3s"})
    app.add_account(require="password+dmarc")
    app.add_account(BOB, require="password+dmarc")
    pdf = (corpus / "pdfs" / "one-page-crazyones.pdf").read_bytes()

    unsigned = fax_message(f"{PASSWORD}:0170709901:UNSIGNED", pdf).as_bytes()
    code, text = send_raw(app.port, unsigned)
    assert code == 550 and b"[82]" in text, text  # the right password alone
    assert dns_server.queries > 0  # the resolver asked our server (SPF, no signature)

    signed = key.sign(fax_message(f"{PASSWORD}:0170709901:SIGNED", pdf).as_bytes(),
                      "example.com")
    code, text = send_raw(app.port, signed)
    assert code == 250 and b"[80]" in text, text

    broken = signed.replace(b"SIGNED", b"SIGNEX")  # the Subject is signed
    code, text = send_raw(app.port, broken)
    assert code == 550 and b"[82]" in text, text

    # SPF: bob's domain allows the client's address (the SMTP peer, 127.0.0.1)
    code, text = send_raw(app.port, fax_message(f"{PASSWORD}:0170709901:SPF", pdf,
                                                sender=BOB).as_bytes(), mail_from=BOB)
    assert code == 250 and b"[80]" in text, text
    with app.store.read() as s:
        assert s.scalar(select(func.count()).select_from(Job)) == 2


def test_trusted_authentication_results_over_smtp(make_app, corpus: Path) -> None:
    app = make_app(proof={"trusted_authserv_ids": ["mx.gw.example.org"]})
    app.add_account(require="password+dmarc")
    pdf = (corpus / "pdfs" / "one-page-crazyones.pdf").read_bytes()

    def with_ar(authserv_id: str, ref: str) -> bytes:
        return (f"Authentication-Results: {authserv_id}; dmarc=pass (p=reject) "
                f"header.from=example.com\r\n").encode() + \
            fax_message(f"{PASSWORD}:0170709901:{ref}", pdf).as_bytes()

    code, text = send_raw(app.port, with_ar("evil.example", "SPOOFED"))
    assert code == 550 and b"[82]" in text, text
    code, text = send_raw(app.port, with_ar("mx.gw.example.org", "TRUSTED"))
    assert code == 250 and b"[80]" in text, text
