"""Proof of the sender (intake.proof, intake.proof_dns): trusted Authentication-Results
only, DKIM and SPF checked with a key and records made in the test, DMARC alignment
(RFC 7489) relaxed and strict, and the decision that refuses an account's mail without
the proof it requires (82, as a wrong password)."""

from __future__ import annotations

from email.message import EmailMessage

import pytest

from mailgw.codes import Code
from mailgw.inbound.mail import parse_mail
from mailgw.intake import proof
from mailgw.intake.decide import decide
from mailgw.intake.proof import AuthResult, Policy, aligned, dmarc_aligned
from mailgw.intake.proof_dns import Prover, dkim_results, dmarc_policy, spf_result
from mailgw.intake.verdict import AccountFacts, MailFacts
from mailgw.ops.config import ConfigError, load
from tests.dns_zone import Key, ZoneResolver, txt
from tests.unit.test_decide import A_PDF, NOW, POLICY, Plain, mail

FROM = "alice@example.com"


@pytest.fixture(scope="module")
def key() -> Key:
    return Key()


def zone_for(key: Key, *, domain: str = "example.com", extra: dict | None = None
             ) -> ZoneResolver:
    return ZoneResolver({(f"sel._domainkey.{domain}", "TXT"): [txt(key.record)],
                         ("example.com", "TXT"): [txt("v=spf1 ip4:192.0.2.0/24 -all")],
                         **(extra or {})})


def message(sender: str = FROM, subject: str = "FGB45L:0170709901") -> bytes:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = "fax@gw.example.org"
    msg["Subject"] = subject
    msg["Message-ID"] = "<m1@example.com>"
    msg.set_content("Please fax the attachment.\n")
    msg.add_attachment(b"%PDF-1.4 test", maintype="application", subtype="pdf",
                       filename="doc.pdf")
    return msg.as_bytes()


def own(resolver: ZoneResolver) -> Prover:
    return Prover(verify="own", resolver=resolver)


# -- DKIM, checked by mailgw ----------------------------------------------------------------

def test_a_signed_mail_passes(key: Key) -> None:
    raw = key.sign(message(), "example.com")
    resolver = zone_for(key)
    assert dkim_results(raw, resolver) == [AuthResult("dkim", "pass",
                                                      {"header.d": "example.com"})]
    assert own(resolver).dmarc(raw, FROM)
    assert ("sel._domainkey.example.com", "TXT") in resolver.asked  # the key came from DNS


def test_a_broken_signature_fails(key: Key) -> None:
    raw = key.sign(message(), "example.com")
    tampered = raw.replace(b"Please fax the attachment.", b"Please fax the other thing.")
    assert tampered != raw
    assert [r.result for r in dkim_results(tampered, zone_for(key))] == ["fail"]
    assert not own(zone_for(key)).dmarc(tampered, FROM)
    # a signed header changed (the Subject, with its numbers) breaks it too
    other = raw.replace(b"FGB45L:0170709901", b"FGB45L:0999999999")
    assert not own(zone_for(key)).dmarc(other, FROM)


def test_a_key_that_is_not_the_signers_fails(key: Key) -> None:
    raw = Key().sign(message(), "example.com")  # someone else's key, claiming example.com
    assert not own(zone_for(key)).dmarc(raw, FROM)


def test_a_forwarded_mail_keeps_its_signature(key: Key) -> None:
    raw = key.sign(message(), "example.com")
    forwarded = (b"Received: from relay.forwarder.example (relay.forwarder.example "
                 b"[198.51.100.7])\r\n\tby mx.gw.example.org; Mon, 1 Jun 2026 12:00:00 +0200\r\n"
                 b"Authentication-Results: relay.forwarder.example; spf=fail "
                 b"smtp.mailfrom=example.com\r\n"
                 b"Received: from mail.example.com by relay.forwarder.example; "
                 b"Mon, 1 Jun 2026 11:59:59 +0200\r\n" + raw)
    resolver = zone_for(key)
    # SPF fails for the forwarder's address, the signature still holds: aligned pass
    prover = Prover(verify="own", resolver=resolver)
    assert prover.dmarc(forwarded, FROM, mail_from=FROM, client_ip="198.51.100.7")


def test_an_unaligned_signature_proves_nothing(key: Key) -> None:
    raw = key.sign(message(), "other.example")
    resolver = zone_for(key, domain="other.example")
    assert [r.result for r in dkim_results(raw, resolver)] == ["pass"]  # valid, but not ours
    assert not own(resolver).dmarc(raw, FROM)


def test_relaxed_and_strict_alignment_of_a_subdomain_signature(key: Key) -> None:
    raw = key.sign(message(), "mail.example.com")
    relaxed = zone_for(key, domain="mail.example.com")
    assert own(relaxed).dmarc(raw, FROM)  # no DMARC record: relaxed
    strict = zone_for(key, domain="mail.example.com", extra={
        ("_dmarc.example.com", "TXT"): [txt("v=DMARC1; p=reject; adkim=s")]})
    assert not own(strict).dmarc(raw, FROM)
    # strict still passes a signature of the From domain itself
    assert own(zone_for(key, extra={("_dmarc.example.com", "TXT"): [
        txt("v=DMARC1; p=reject; adkim=s; aspf=s")]})).dmarc(
        key.sign(message(), "example.com"), FROM)


def test_a_signature_with_a_body_length_is_not_taken(key: Key) -> None:
    raw = key.sign(message(), "example.com", length=True)
    assert b" l=" in raw.split(b"\r\n\r\n")[0] or b";l=" in raw.split(b"\r\n\r\n")[0]
    assert not own(zone_for(key)).dmarc(raw, FROM)


def test_the_from_must_be_one_address_of_the_accounts_domain(key: Key) -> None:
    raw = key.sign(message(), "example.com")
    assert not own(zone_for(key)).dmarc(raw, "alice@elsewhere.example")  # account's From
    two = b"From: mallory@evil.example\r\n" + raw  # a second From field
    assert not own(zone_for(key)).dmarc(two, FROM)
    # RFC 7489 6.6.1: several From fields, or several addresses in one, prove nothing
    said = f"{MX}; dmarc=pass header.from=example.com"
    assert Prover((MX,)).dmarc(with_ar(message(), said), FROM)
    assert not Prover((MX,)).dmarc(with_ar(b"From: bob@example.com\r\n" + message(), said),
                                   FROM)
    assert not Prover((MX,)).dmarc(with_ar(message(sender=f"{FROM}, bob@example.com"), said),
                                   FROM)


def test_dns_failure_is_no_proof_and_no_crash(key: Key) -> None:
    raw = key.sign(message(), "example.com")
    broken = ZoneResolver({}, broken=True)
    assert not own(broken).dmarc(raw, FROM, mail_from=FROM, client_ip="192.0.2.10")
    assert dmarc_policy("example.com", broken) == proof.STRICT


def test_no_key_published(key: Key) -> None:
    raw = key.sign(message(), "example.com")
    assert not own(ZoneResolver({})).dmarc(raw, FROM)


# -- SPF, checked by mailgw -----------------------------------------------------------------

def test_spf_pass_fail_and_alignment(key: Key) -> None:
    resolver = zone_for(key)
    assert spf_result("192.0.2.10", FROM, "example.com", resolver).result == "pass"
    assert spf_result("203.0.113.5", FROM, "example.com", resolver).result == "fail"
    raw = message()  # unsigned
    prover = own(resolver)
    assert prover.dmarc(raw, FROM, mail_from=FROM, client_ip="192.0.2.10")
    assert not prover.dmarc(raw, FROM, mail_from=FROM, client_ip="203.0.113.5")
    assert not prover.dmarc(raw, FROM)  # no client address: no SPF
    # an SPF pass for another domain's MAIL FROM is not aligned with the From
    other = ZoneResolver({("bounce.other.example", "TXT"): [txt("v=spf1 ip4:192.0.2.0/24 -all")]})
    assert spf_result("192.0.2.10", "b@bounce.other.example", "x", other).result == "pass"
    assert not own(other).dmarc(raw, FROM, mail_from="b@bounce.other.example",
                                client_ip="192.0.2.10")


def test_spf_follows_include_and_mx() -> None:
    resolver = ZoneResolver({
        ("example.com", "TXT"): [txt("v=spf1 mx include:_spf.provider.example -all")],
        ("example.com", "MX"): ["10 mx1.example.com."],
        ("mx1.example.com", "A"): ["192.0.2.25"],
        ("_spf.provider.example", "TXT"): [txt("v=spf1 ip6:2001:db8::/32 -all")]})
    assert spf_result("192.0.2.25", FROM, "example.com", resolver).result == "pass"
    assert spf_result("2001:db8::1", FROM, "example.com", resolver).result == "pass"
    assert spf_result("192.0.2.26", FROM, "example.com", resolver).result == "fail"


# -- Authentication-Results from the MTA in front ------------------------------------------

MX = "mx.gw.example.org"


def with_ar(raw: bytes, *fields: str) -> bytes:
    return b"".join(f"Authentication-Results: {f}\r\n".encode() for f in fields) + raw


def test_a_spoofed_authentication_results_is_ignored() -> None:
    raw = with_ar(message(), "attacker.example; dmarc=pass header.from=example.com",
                  "attacker.example; dkim=pass header.d=example.com")
    assert not Prover((MX,)).dmarc(raw, FROM)
    assert not Prover(()).dmarc(raw, FROM)  # nobody trusted: no header counts


def test_a_trusted_authentication_results_is_honoured() -> None:
    prover = Prover((MX,))
    assert prover.dmarc(with_ar(message(), f"{MX}; dmarc=pass (p=reject dis=none) "
                                           "header.from=example.com"), FROM)
    assert prover.dmarc(with_ar(message(), f"{MX.upper()}; dkim=pass (2048-bit key) "
                                           "header.d=example.com header.s=sel"), FROM)
    assert prover.dmarc(with_ar(message(), f"{MX}; spf=pass smtp.mailfrom=bounce@mail."
                                           "example.com"), FROM)  # relaxed
    for said in (f"{MX}; dmarc=fail header.from=example.com",
                 f"{MX}; dmarc=pass header.from=evil.example",
                 f"{MX}; dkim=pass header.d=other.example",
                 f"{MX}; dkim=fail header.d=example.com",
                 f"{MX} 2; dmarc=pass header.from=example.com",  # unknown version
                 f"{MX}; none",
                 f"(hidden from filters) {MX}; dmarc=pass header.from=example.com"):
        assert not prover.dmarc(with_ar(message(), said), FROM), said


def test_headers_are_not_read_in_own_mode(key: Key) -> None:
    raw = with_ar(message(), f"{MX}; dmarc=pass header.from=example.com")
    assert not Prover((MX,), "own", ZoneResolver({})).dmarc(raw, FROM)
    assert Prover((MX,), "both", ZoneResolver({})).dmarc(raw, FROM)


def test_parse_rfc8601_examples() -> None:
    parsed = proof.parse_authentication_results(
        'example.com (mail.example.com); spf=pass (good) smtp.mailfrom="s@example.net";\r\n'
        '\tdkim=pass reason="good signature" header.i=@mail-router.example.net;\r\n'
        '\tdkim/1=fail (bad sig) header.i=@newyork.example.com (wrong key)')
    assert parsed is not None and parsed.authserv_id == "example.com"
    assert [(r.method, r.result) for r in parsed.results] == [
        ("spf", "pass"), ("dkim", "pass"), ("dkim", "fail")]
    assert parsed.results[0].props == {"smtp.mailfrom": "s@example.net"}
    assert parsed.results[1].props["reason"] == "good signature"
    assert parsed.results[2].props == {"header.i": "@newyork.example.com"}
    assert proof.parse_authentication_results("example.org 1; none").results == ()
    assert proof.parse_authentication_results('"quoted;id"; spf=pass').authserv_id == \
        "quoted;id"
    for broken in ("", "x; (unclosed comment", "x; =pass", 'x; spf=pass a="b', "x; spf=pass =",
                   "(comment first) x; spf=pass"):
        assert proof.parse_authentication_results(broken) is None, broken


def test_alignment_rules() -> None:
    assert aligned("example.com", "example.com", "s")
    assert aligned("Example.COM.", "example.com", "s")
    assert not aligned("example.com", "mail.example.com", "s")
    assert aligned("example.com", "mail.example.com", "r")
    assert aligned("a.example.co.uk", "b.example.co.uk", "r")
    assert not aligned("example.co.uk", "other.co.uk", "r")  # a public suffix is no org
    assert not aligned("alice.github.io", "mallory.github.io", "r")  # private suffixes too
    assert not aligned("example.com", "example.org", "r")
    assert not aligned("", "example.com", "r")
    assert proof.org_domain("mail.example.com") == "example.com"
    assert proof.parse_dmarc_record("v=DMARC1; p=none; adkim=s") == Policy("s", "r")
    assert proof.parse_dmarc_record("v=spf1 -all") is None
    assert dmarc_aligned("example.com", [AuthResult("dkim", "pass", {"header.i": "@example.com"})])


# -- the decision -----------------------------------------------------------------------

DMARC = AccountFacts(7, "FR", "Europe/Paris", "en", require="password+dmarc")
AUTH = AccountFacts(7, "FR", "Europe/Paris", "en", require="password+auth")


def verdict(account: AccountFacts, proofs: frozenset[str], *, subject: str = "FGB45L:0170709901",
            auth: str | None = None, lookups: Plain | None = None):  # type: ignore[no-untyped-def]
    msg = mail(subject, attach=A_PDF)
    facts = MailFacts(parse_mail(msg.as_bytes()), ("fax@localhost",), auth, proof=proofs)
    return decide(facts, account, lookups or Plain(), NOW, policy=POLICY)


def test_an_account_that_requires_dmarc_refuses_the_password_alone() -> None:
    plain = Plain()
    v = verdict(DMARC, frozenset(), lookups=plain)
    assert v.code == Code.BAD_PASSWORD and not v.found.proven
    assert "password" not in plain.asked  # no argon2 work for a mail that cannot pass
    assert any("lacks dmarc" in s for s in v.found.steps)
    assert verdict(DMARC, frozenset({"dmarc"})).code == Code.SENDING
    assert verdict(DMARC, frozenset({"dmarc"}), subject="wrong:0170709901").code == \
        Code.BAD_PASSWORD
    assert verdict(DMARC, frozenset(), subject=":0170709901").code == Code.NO_PASSWORD
    # SMTP AUTH is not the proof this account asks for
    assert verdict(DMARC, frozenset({"auth"}), subject=":0170709901", auth=FROM).code == \
        Code.BAD_PASSWORD


def test_an_account_that_requires_auth() -> None:
    assert verdict(AUTH, frozenset({"dmarc"})).code == Code.BAD_PASSWORD
    assert verdict(AUTH, frozenset({"auth"}), subject=":0170709901", auth=FROM).code == \
        Code.SENDING
    # the default asks nothing more
    assert verdict(AccountFacts(7, "FR", "Europe/Paris", "en"), frozenset()).code == \
        Code.SENDING


def test_an_unknown_requirement_fails_closed() -> None:
    odd = AccountFacts(7, "FR", "Europe/Paris", "en", require="password+pigeon")
    assert verdict(odd, frozenset({"dmarc", "auth"})).code == Code.BAD_PASSWORD


def test_config_keys() -> None:
    s = load(search=False, environ={}, overrides={"proof": {
        "trusted_authserv_ids": ["mx.gw.example.org"], "verify": "both",
        "nameservers": ["127.0.0.1:5353", "::1", "[::1]:53"], "dns_timeout": "2s"}})
    assert s.proof.verify == "both" and s.proof.dns_timeout == 2.0
    with pytest.raises(ConfigError) as err:
        load(search=False, environ={}, overrides={"proof": {
            "verify": "dkim", "nameservers": ["dns.example.com"]}})
    assert any("proof.verify" in p for p in err.value.problems)
    assert any("proof.nameservers" in p for p in err.value.problems)


# -- the account setting: store, migration, command line -----------------------------------

def test_require_is_stored_and_migrated(store_url: str) -> None:
    from sqlalchemy import text

    from mailgw.accounts import accounts
    from mailgw.store import Store

    store = Store(store_url)
    try:
        store.upgrade("0009")  # an account made before the column existed
        with store.engine.begin() as conn:
            conn.execute(text("INSERT INTO account (email, password_hash, region, lang, tz, "
                              "created_at) VALUES ('old@example.com', 'x', 'FR', 'fr', "
                              "'Europe/Paris', CURRENT_TIMESTAMP)"))
        store.upgrade()
        old = accounts.find_for_mail(store.engine, login="old@example.com")
        assert old is not None and old.require == "password"  # as before: the password
        with store.tx() as s:
            accounts.add_account(s, "new@example.com", "pw1", region="FR", lang="fr",
                                 tz="Europe/Paris", credits=None, require="password+dmarc")
        new = accounts.find_for_mail(store.engine, login="new@example.com")
        assert new is not None and AccountFacts.of(new).require == "password+dmarc"
        with store.tx() as s:
            assert accounts.update_account(s, "new@example.com",
                                           require="password+auth").require == "password+auth"
            with pytest.raises(accounts.AccountError):
                accounts.update_account(s, "new@example.com", require="dmarc")
    finally:
        store.dispose()


def test_require_on_the_command_line(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import json

    from tests.integration.test_cli import mailgw

    cfg = tmp_path / "mailgw.toml"
    cfg.write_text(f'[store]\nurl = "sqlite:///{tmp_path / "db.sqlite"}"\n', encoding="utf-8")
    r = mailgw("--config", str(cfg), "account", "add", "a@example.com", "--password-stdin",
               "--require", "password+dmarc", stdin="pw1\n")
    assert r.returncode == 0 and "require password+dmarc" in r.stdout, r.stderr
    r = mailgw("--config", str(cfg), "account", "set", "a@example.com", "--require",
               "password+auth")
    assert r.returncode == 0 and "require password+auth" in r.stdout, r.stderr
    (acc,) = json.loads(mailgw("--config", str(cfg), "account", "list", "--json").stdout)
    assert acc["require"] == "password+auth"
    r = mailgw("--config", str(cfg), "account", "set", "a@example.com", "--require", "dkim")
    assert r.returncode == 2 and "password+dmarc" in r.stderr


def test_parse_reads_the_trusted_headers(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from mailgw.accounts import accounts
    from mailgw.intake.facts import ReadOnlyStore
    from mailgw.intake.parse_report import examine
    from mailgw.store import Store

    url = f"sqlite:///{tmp_path / 'p.db'}"
    store = Store(url)
    store.upgrade()
    with store.tx() as s:
        accounts.add_account(s, FROM, "FGB45L", region="FR", lang="en", tz="Europe/Paris",
                             credits=None, require="password+dmarc")
    store.dispose()
    settings = load(search=False, environ={}, overrides={
        "store": {"url": url}, "proof": {"trusted_authserv_ids": [MX]}})
    reader = ReadOnlyStore(url)
    try:
        msg = mail("FGB45L:0170709901", attach=A_PDF, sender=FROM)
        plain = examine(msg.as_bytes(), settings, now=NOW, store=reader)
        assert plain.code == Code.BAD_PASSWORD
        assert any("DMARC-aligned pass: no" in n for n in plain.notes)
        proven = examine(with_ar(msg.as_bytes(), f"{MX}; dkim=pass header.d=example.com"),
                         settings, now=NOW, store=reader)
        assert proven.verdict.found.proven
        assert any("DMARC-aligned pass: yes" in n for n in proven.notes)
    finally:
        reader.dispose()


def test_one_mail_has_one_dns_time_budget(key: Key) -> None:
    from mailgw.intake.proof_dns import Deadline, DnsError

    clock = [100.0]
    inner = zone_for(key)
    budget = Deadline(inner, 5.0, clock=lambda: clock[0])
    budget.lookup("example.com", "TXT", 30)
    clock[0] += 4.0
    budget.lookup("example.com", "TXT", 30)
    assert inner.timeouts == [5.0, 1.0]  # each query gets what is left, never a fresh 30 s
    clock[0] += 1.0
    with pytest.raises(DnsError):
        budget.lookup("example.com", "TXT")
    # spent before the checks start: no proof, no exception
    raw = key.sign(message(), "example.com")
    assert not Prover(verify="own", resolver=zone_for(key), timeout=0.0).dmarc(raw, FROM)


def test_any_good_signature_among_several(key: Key) -> None:
    raw = key.sign(message(), "example.com")
    both = Key().sign(raw, "example.com", selector="old")  # on top: a key not published
    resolver = zone_for(key, extra={("old._domainkey.example.com", "TXT"): [txt(key.record)]})
    assert [r.result for r in dkim_results(both, resolver)] == ["fail", "pass"]
    assert own(resolver).dmarc(both, FROM)


def test_a_header_dkimpy_cannot_read_proves_nothing(key: Key) -> None:
    raw = key.sign(message(), "example.com")
    odd = raw.replace(b"\r\nTo:", b"\r\nno colon here\r\nTo:", 1)
    assert not own(zone_for(key)).dmarc(odd, FROM)
