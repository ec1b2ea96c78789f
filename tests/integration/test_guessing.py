"""Guessing is slowed, owners are never shut out (DESIGN), over real SMTP on loopback.

Clients bind their own source addresses (Linux routes 127.0.0.0/8 to lo): the owner, the
guessers and an owner on a new address each sit in their own /24, so networks stay apart.
argon2 work is counted with the `mailgw_password_checks` metric (count-based, no timing).
"""

from __future__ import annotations

import smtplib
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from mailgw.intake.service import Envelope
from mailgw.ops import metrics
from mailgw.store import OutboxMail
from mailgw.store.models import KnownClient
from tests.conftest import PASSWORD, SENDER, RunningApp, fax_message, wait_until
from tests.integration.test_end_to_end import crlf

OWNER = "127.0.1.5"  # delivered alice's right password before: a known address
GUESSER = "127.0.2.9"
NEW_HOME = "127.0.3.7"  # alice, from an address she never used
CHECKS = 8  # [limits] password_checks in these tests (30 by default)
LIMITS = {"auth_failures": 3, "auth_delay": "10ms", "auth_delay_max": "50ms",
          "password_checks": CHECKS, "password_checks_all": 40}


@pytest.fixture(params=["sqlite"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'guessing.db'}"


def checks() -> float:
    return metrics.REGISTRY.get_sample_value("mailgw_password_checks_total") or 0.0


def deferred(via: str) -> float:
    return metrics.REGISTRY.get_sample_value("mailgw_guesses_deferred_total",
                                             {"via": via}) or 0.0


def deliver(port: int, msg: Any, source: str, login: tuple[str, str] | None = None
            ) -> tuple[int, str]:
    """One SMTP transaction from `source`: the reply that settled it (AUTH's, DATA's)."""
    with smtplib.SMTP("127.0.0.1", port, timeout=60, source_address=(source, 0)) as client:
        client.ehlo("client.example.com")
        if login is not None:
            try:
                client.login(*login)
            except smtplib.SMTPAuthenticationError as exc:
                return exc.smtp_code, exc.smtp_error.decode()
        client.mail(str(msg["From"]))
        client.rcpt(str(msg["To"]))
        try:
            code, text = client.data(crlf(msg.as_bytes()))
        except smtplib.SMTPDataError as exc:  # refused at the DATA command (a busy client)
            return exc.smtp_code, exc.smtp_error.decode()
        return code, text.decode()


def like_an_mta(port: int, msg: Any, source: str, login: tuple[str, str] | None = None,
                within: float = 30.0) -> tuple[int, str, float, int]:
    """Send, and send again after any 4xx, like a queueing MTA: the final reply, the
    seconds it took and the tries. A 5xx ends it (and fails the callers' assertions)."""
    start = time.monotonic()
    tries: list[tuple[int, str]] = []

    def attempt() -> bool:
        tries.append(deliver(port, msg, source, login))
        return not 400 <= tries[-1][0] < 500

    wait_until(attempt, within, f"a final reply for {source}")
    return tries[-1][0], tries[-1][1], time.monotonic() - start, len(tries)


def guesses(port: int, source: str, count: int, *, sender: str = SENDER,
            login: bool = False) -> list[int]:
    """`count` wrong passwords from `source`, with the victim's From (or as AUTH)."""
    codes = []
    for i in range(count):
        msg = fax_message(f"guess-{source}-{i}:0170709901", None, sender=sender)
        creds = (sender, f"guess-{source}-{i}") if login else None
        codes.append(deliver(port, msg, source, creds)[0])
    return codes


@pytest.fixture
def attacked(make_app, corpus: Path) -> tuple[RunningApp, bytes]:
    """alice has sent from OWNER once (a job, an ack): OWNER is known to her account."""
    app = make_app(limits=LIMITS, smtp={"allow_auth_without_tls": True})
    app.add_account()
    app.app._refresh_auth()  # type: ignore[union-attr]  # the account came after start
    pdf = (corpus / "pdfs" / "one-page-crazyones.pdf").read_bytes()
    code, text = deliver(app.port, fax_message(f"{PASSWORD}:0170709901", pdf), OWNER)
    assert code == 250 and "[80]" in text, text
    with app.store.read() as s:
        assert s.scalars(select(KnownClient.address)).all() == [OWNER]
    return app, pdf


def outbox(app: RunningApp) -> int:
    """Acks written (notices of the owner's faxes come later, from the dispatcher)."""
    with app.store.read() as s:
        return s.scalar(select(func.count()).select_from(OutboxMail)
                        .where(OutboxMail.kind == "ack")) or 0


def test_fifty_guesses_then_the_owner_from_a_known_address_gets_through(attacked) -> None:
    app, pdf = attacked
    mails_before, before = outbox(app), checks()
    codes = guesses(app.port, GUESSER, 50)
    # Wrong guesses: refused (82) while checks remain, then 4xx unchecked; never accepted.
    assert all(c == 550 or 400 <= c < 500 for c in codes), codes
    # The first owner mail (before OWNER was known) took one of the minute's checks.
    assert codes[:CHECKS - 1] == [550] * (CHECKS - 1), codes
    assert all(400 <= c < 500 for c in codes[CHECKS:]) and deferred("mail") > 0, codes
    assert checks() - before <= CHECKS  # the argon2 work the 50 guesses could cause
    assert outbox(app) == mails_before  # nothing is ever sent about a guess

    code, text, seconds, tries = like_an_mta(
        app.port, fax_message(f"{PASSWORD}:0170709901", pdf), OWNER)
    assert code == 250 and "[80]" in text, text
    print(f"owner from a known address: 2xx after {seconds:.2f} s, {tries} tries")
    assert outbox(app) == mails_before + 1  # her ack

    # alice from an address she never used, during the attack: a 4xx or a 2xx, never a 5xx.
    code, text = deliver(app.port, fax_message(f"{PASSWORD}:0170709901", pdf), NEW_HOME)
    assert code == 250 or 400 <= code < 500, (code, text)


def test_with_smtp_auth_the_owner_gets_through_a_guessing_attack(attacked) -> None:
    app, pdf = attacked
    before = checks()
    codes = guesses(app.port, GUESSER, 25, login=True) + guesses(app.port, GUESSER, 25)
    assert all(c in (535, 550) or 400 <= c < 500 for c in codes), codes
    assert codes.count(454) > 0  # AUTH attempts turned away unchecked
    assert checks() - before <= CHECKS
    guard = app.app.intake.guard  # type: ignore[union-attr]
    # The AUTH failures slow the guesser's address, not alice's other clients.
    assert guard.client_delay(GUESSER) > 0 and guard.client_delay(OWNER) == 0

    msg = fax_message(":0170709901:REF-AUTH", pdf)
    code, text, seconds, _ = like_an_mta(app.port, msg, OWNER, login=(SENDER, PASSWORD))
    assert code == 250 and "[80]" in text, text
    print(f"owner with SMTP AUTH from a known address: 2xx after {seconds:.2f} s")
    code, text = deliver(app.port, fax_message(":0170709901", pdf), NEW_HOME,
                         login=(SENDER, PASSWORD))
    assert code == 250 or 400 <= code < 500, (code, text)


def test_twenty_addresses_at_once_cannot_pass_the_checks_a_minute(attacked) -> None:
    app, _ = attacked
    before, deferred_before = checks(), deferred("mail")
    sources = [f"127.0.{10 + i}.1" for i in range(20)]
    codes: list[int] = []
    lock = threading.Lock()
    start = threading.Barrier(len(sources))

    def guesser(source: str) -> None:
        start.wait()
        got = guesses(app.port, source, 4)
        with lock:
            codes.extend(got)

    began = time.monotonic()
    threads = [threading.Thread(target=guesser, args=(s,)) for s in sources]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    minutes = int((time.monotonic() - began) // 60)
    made = checks() - before
    print(f"20 addresses, {len(codes)} guesses: {made:.0f} argon2 checks reached the account")
    assert len(codes) == 80 and all(c == 550 or 400 <= c < 500 for c in codes), codes
    assert made <= CHECKS * (1 + minutes)  # the account's budget for each minute begun
    assert deferred("mail") - deferred_before >= 80 - CHECKS * (1 + minutes)


def test_argon2_work_stays_bounded_when_every_account_is_guessed(make_app) -> None:
    """Guesses spread over many accounts meet the budget of all accounts together."""
    app = make_app(limits={**LIMITS, "password_checks_all": 6})
    victims = [f"user{i}@example.com" for i in range(6)]
    for victim in victims:
        app.add_account(victim, PASSWORD)
    before = checks()
    began = time.monotonic()
    codes: list[int] = []
    threads = [threading.Thread(target=lambda s=s: codes.extend(
        [c for v in victims for c in guesses(app.port, s, 2, sender=v)]))
        for s in (f"127.0.{30 + i}.1" for i in range(4))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    minutes = int((time.monotonic() - began) // 60)
    assert len(codes) == 48 and all(c == 550 or 400 <= c < 500 for c in codes), codes
    assert checks() - before <= 6 * (1 + minutes)


def test_a_guessing_address_gets_few_data_transactions_at_once(attacked) -> None:
    """Once an address has guessed wrong, it gets `data_per_guessing_client` (2) DATA at
    once: the others wait their turn before the 354, the owner's address does not."""
    app, _ = attacked
    assert guesses(app.port, GUESSER, 1) == [550]
    intake = app.app.intake  # type: ignore[union-attr]
    original = intake.handle
    inside: list[str | None] = []
    most = [0]
    gate = threading.Event()

    def held(raw: bytes, env: Envelope) -> Any:
        inside.append(env.client_ip)
        most[0] = max(most[0], inside.count(GUESSER))
        gate.wait(60)
        try:
            return original(raw, env)
        finally:
            inside.remove(env.client_ip)

    intake.handle = held
    slots = app.app.connections.clients  # type: ignore[union-attr]
    threads = [threading.Thread(target=guesses, args=(app.port, GUESSER, 1))
               for _ in range(4)]
    owner = [threading.Thread(target=guesses, args=(app.port, OWNER, 1)) for _ in range(3)]
    for t in threads + owner:
        t.start()
    # Two of the guesser's mails in intake, two waiting for its slots; all of the owner's in.
    wait_until(lambda: inside.count(GUESSER) == 2 and slots.users(GUESSER) == 4
               and inside.count(OWNER) == 3, 30, "the guesser's slots full")
    gate.set()
    for t in threads + owner:
        t.join(60)
    assert most[0] == 2


def test_imap_mail_is_deferred_not_refused_once_the_checks_are_spent(attacked) -> None:
    """IMAP has no client address and no 4xx: such a mail is left for a later poll."""
    app, pdf = attacked
    guesses(app.port, GUESSER, CHECKS)  # the account's checks for this minute
    intake = app.app.intake  # type: ignore[union-attr]
    raw = fax_message(f"{PASSWORD}:0170709901", pdf).as_bytes()
    result = intake.handle(raw, Envelope(None, ("fax@gw.example.org",)))
    assert result.deferred and result.reply.startswith("451 4.7.1") and result.code is None


# -- the parts, with a clock of our own -------------------------------------------------------

class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize(("ip", "network"), [
    ("192.0.2.77", "192.0.2.0/24"), ("::ffff:192.0.2.77", "192.0.2.0/24"),
    ("2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"), ("fe80::1%eth0", "fe80::/64"),
    ("not-an-ip", None), (None, None)])
def test_networks_are_ipv4_24_and_ipv6_64(ip: str | None, network: str | None) -> None:
    from mailgw.intake.guessing import network_of

    assert network_of(ip) == network


def test_wrong_guesses_earn_a_growing_delay_per_account_address_and_network() -> None:
    from mailgw.intake.guessing import Guard, GuessPolicy

    clock = Clock()
    guard = Guard(GuessPolicy(failures=3, window=600, delay=1, max_delay=8), clock=clock)
    delays = [guard.failed("alice@example.com", "192.0.2.1") for _ in range(7)]
    assert delays == [0, 0, 1, 2, 4, 8, 8]
    # Another address of the same network guessing another account: the network's count.
    assert guard.failed("bob@example.com", "192.0.2.200") == 8
    # The account's count slows a guess from anywhere; the owner's client is not slowed.
    assert guard.failed("alice@example.com", "198.51.100.1") == 8
    assert guard.client_delay("203.0.113.5") == 0 and not guard.suspect("203.0.113.5")
    assert guard.suspect("192.0.2.99")  # the network guessed
    clock.now += 601  # the window has passed
    assert guard.client_delay("192.0.2.1") == 0 and not guard.suspect("192.0.2.1")


def test_the_budget_bounds_checks_without_proof_but_never_proven_ones() -> None:
    from mailgw.intake.guessing import Deferred, Guard, GuessPolicy

    clock = Clock()
    guard = Guard(GuessPolicy(checks=3, checks_all=5, per=60), clock=clock)
    ran: list[str] = []

    def verify(who: str, right: bool = False) -> Any:
        return lambda: ran.append(who) or right

    for _ in range(3):
        assert guard.check("alice@example.com", "192.0.2.1", False, verify("guess"))[0] is False
    with pytest.raises(Deferred):
        guard.check("alice@example.com", "192.0.2.1", False, verify("guess"))
    with pytest.raises(Deferred):  # the right password without proof: deferred too
        guard.check("alice@example.com", "198.51.100.7", False, verify("alice", True))
    assert ran == ["guess"] * 3  # deferred mail costs no check
    # With proof: checked, whatever the guessers did.
    assert guard.check("alice@example.com", "203.0.113.5", True, verify("alice", True)) == \
        (True, 0.0)
    # All accounts together: 2 left of 5.
    assert guard.take_check("bob@example.com") and guard.take_check("carol@example.com")
    assert not guard.take_check("dave@example.com")
    clock.now += 30
    assert not guard.take_check("alice@example.com")
    clock.now += 31  # a minute after the first checks: the window slid past them
    assert guard.take_check("alice@example.com")


def test_a_password_verified_before_passes_unchecked_unless_the_account_is_guessed() -> None:
    """A sender that sends often (over IMAP: no address to know) costs no check and no
    budget; during an attack its mail takes a check like any other, or a right guess would
    be told apart from a wrong one for free."""
    from mailgw.intake.guessing import Guard, GuessPolicy

    guard = Guard(GuessPolicy(failures=3, checks=2, checks_all=100), clock=Clock())
    assert all(guard.may_check("alice@example.com", False, True) for _ in range(50))
    assert guard.may_check("alice@example.com", False, False)  # a first check: one of 2
    for _ in range(3):
        guard.failed("alice@example.com", "192.0.2.1")
    assert guard.under_attack("alice@example.com") and not guard.under_attack("bob@example.com")
    assert guard.may_check("alice@example.com", False, True)  # the second of 2
    assert not guard.may_check("alice@example.com", False, True)
    assert guard.may_check("alice@example.com", True, False)  # with proof: always
    assert guard.may_check("bob@example.com", False, True)


def test_known_clients_are_remembered_in_the_store_with_an_expiry(tmp_path: Path) -> None:
    _known_clients(f"sqlite:///{tmp_path / 'known.db'}")


def test_known_clients_on_postgresql(pg_url: str) -> None:
    _known_clients(pg_url)


def _known_clients(url: str) -> None:
    from datetime import timedelta

    from mailgw.accounts import accounts
    from mailgw.intake.known_clients import KnownClients
    from mailgw.store import Store, utcnow

    store = Store(url)
    store.upgrade()
    try:
        with store.tx() as s:
            alice = accounts.add_account(s, SENDER, PASSWORD, region="FR", lang="en",
                                         tz="Europe/Paris", credits=None).id
            bob = accounts.add_account(s, "bob@example.com", PASSWORD, region="FR", lang="en",
                                       tz="Europe/Paris", credits=None).id
        now = [utcnow()]
        clock = Clock()
        known = KnownClients(store, ttl=30 * 86400, cache_ttl=0, clock=clock,
                             now=lambda: now[0])
        assert not known.is_known(alice, "192.0.2.10")
        known.remember(alice, SENDER, "192.0.2.10")
        known.remember(bob, "bob@example.com", "2001:db8::1")
        assert known.is_known(alice, "192.0.2.10") and not known.is_known(bob, "192.0.2.10")
        assert known.of("192.0.2.99").logins == {SENDER}  # its network
        assert known.is_known(bob, "2001:db8::ffff") and not known.is_known(bob, "2001:db9::1")
        # A second node (another process) reads the same memory.
        other = KnownClients(store, ttl=30 * 86400, cache_ttl=0, now=lambda: now[0])
        assert other.is_known(alice, "::ffff:192.0.2.10")
        # Seen again 20 days later: kept; 31 days after that, forgotten and purged.
        now[0] += timedelta(days=20)
        clock.now += 2 * 86400
        known.remember(alice, SENDER, "192.0.2.10")
        now[0] += timedelta(days=31)
        assert not known.is_known(alice, "192.0.2.10")
        clock.now += 2 * 3600
        known.remember(alice, SENDER, "198.51.100.1")  # a write, which purges the expired
        with store.read() as s:
            assert sorted(s.scalars(select(KnownClient.address)).all()) == ["198.51.100.1"]
    finally:
        store.dispose()
