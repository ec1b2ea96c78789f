"""Accounts: who may send, with which password (argon2 hash at rest, mailgw.accounts.passwords),
region, language, zone. The rows are read and written by mailgw.store.accounts.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from email.errors import HeaderParseError
from email.headerregistry import Address
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import phonenumbers
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from mailgw.accounts.passwords import hash_password, verify_password
from mailgw.accounts.passwords import password_verified as password_verified  # callers' name
from mailgw.accounts.passwords import verify_password_cached as verify_password_cached
from mailgw.dispatch.pacing import parse_window
from mailgw.dispatch.states import parse_retry_overrides
from mailgw.documents.cover_options import check as yes_no
from mailgw.documents.quality import check as quality_check
from mailgw.intake.proof import REQUIRES
from mailgw.recipients import normalize_number
from mailgw.store import accounts as rows
from mailgw.store.models import Account
from mailgw.subject_parser import strip_prefixes
from mailgw.vocab import LANGS


class AccountError(ValueError):
    """A refused account operation; the message says why."""


@dataclass(frozen=True)
class AccountView:
    """What an account looks like outside a session (no hash)."""

    id: int
    email: str
    region: str
    lang: str
    tz: str
    credits: int | None
    senders: tuple[str, ...]
    require: str = "password"
    quality: str = "high"  # the fax quality (mailgw.documents.quality)
    cover: bool = False  # a cover page on its faxes (mailgw.documents.cover_options)
    header_line: bool = False  # a header line on every page of its faxes
    test_number: str | None = None  # the only number a `test: yes` mail dials
    admin: bool = False  # an operator (the web space's admin pages)
    disabled: bool = False  # refused everywhere as an unknown account

    @classmethod
    def of(cls, a: Account, senders: list[str] | None = None) -> AccountView:
        return cls(a.id, a.email, a.region, a.lang, a.tz, a.credits,
                   tuple(senders if senders is not None else [s.address for s in a.senders]),
                   a.require or "password", a.quality or "high", bool(a.cover),
                   bool(a.header_line), a.test_number, bool(a.admin), bool(a.disabled))


def normalize_address(address: str) -> str:
    """Addresses compare case-insensitively (local parts too: users type them both ways),
    and UTF-8 ones (SMTPUTF8) in one Unicode form: `é` typed as one character or as `e`
    and an accent is the same address (NFC)."""
    return unicodedata.normalize("NFC", address.strip()).lower()


def valid_address(address: str) -> bool:
    """An addr-spec, in ASCII or in UTF-8 (RFC 6531: with SMTPUTF8 both the local part and
    the domain may be UTF-8). The stdlib parser refuses UTF-8 local parts, so it checks
    the address with each UTF-8 character as a letter; those characters must be printable,
    and a UTF-8 domain must have an IDNA form."""
    if not address.isascii():
        if any(not (c.isascii() or c.isprintable()) or c.isspace() for c in address):
            return False
        domain = address.rpartition("@")[2]
        try:
            domain.encode("idna")
        except UnicodeError:
            return False
        address = "".join(c if c.isascii() else "a" for c in address)
    try:
        parsed = Address(addr_spec=address)
    except (ValueError, IndexError, TypeError, HeaderParseError):  # "@x.org" raises this
        return False
    domain = parsed.domain
    return bool(parsed.username and domain and ("." in domain or domain == "localhost"))


def check_password_rules(password: str) -> None:
    # ':' would split the Subject; a reply prefix could be stripped by the parser.
    if not password or password != password.strip():
        raise AccountError("the password must not be empty or start/end with spaces")
    if ":" in password or "\n" in password or "\r" in password:
        raise AccountError("the password must not contain ':' or line breaks")
    if len(password) > 128:
        raise AccountError("the password is longer than 128 characters")
    if strip_prefixes(password + ":") != password + ":":
        # `TR:0170709901` is read as a forward prefix: such a password could never be given
        raise AccountError("the password must not be a reply prefix (Re, TR, Fwd, AW …)")


def check_require(require: str) -> str:
    """What an account may require beyond the password (mailgw.intake.proof.REQUIRES)."""
    if require not in REQUIRES:
        raise AccountError(f"require: expected one of {', '.join(REQUIRES)}, got {require!r}")
    return require


def check_quality(value: str) -> str:
    """normal | high | best (or their fr/ru names, mailgw.documents.quality), canonical."""
    try:
        return quality_check(value)
    except ValueError as exc:
        raise AccountError(str(exc)) from None


def check_yes_no(option: str, value: str) -> bool:
    try:
        return yes_no(value)
    except ValueError as exc:
        raise AccountError(f"{option}: {exc}") from None


def add_account(session: Session, email: str, password: str, *, region: str, lang: str,
                tz: str, credits: int | None, require: str = "password",
                quality: str = "high") -> AccountView:
    email = normalize_address(email)
    if not valid_address(email):
        raise AccountError(f"not a valid address: {email}")
    check_password_rules(password)
    region = region.upper()
    if region not in phonenumbers.SUPPORTED_REGIONS:
        raise AccountError(f"unknown region {region!r} (an ISO 3166 code such as FR)")
    if lang not in LANGS:
        raise AccountError(f"unsupported language {lang!r} (one of {', '.join(LANGS)})")
    try:
        ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise AccountError(f"unknown time zone {tz!r}") from None
    if credits is not None and credits < 0:
        raise AccountError("credits must be zero or more")
    check_require(require)
    quality = check_quality(quality)
    if rows.address_taken(session, email):
        raise AccountError(f"{email} is already an account or a sender address")
    account = rows.insert(session, email=email, password_hash=hash_password(password),
                          region=region, lang=lang, tz=tz, credits=credits, require=require,
                          quality=quality)
    return AccountView.of(account, [email])


def allow_sender(session: Session, email: str, other: str) -> None:
    account = find_by_email(session, email)
    if account is None:
        raise AccountError(f"no account {email}")
    other = normalize_address(other)
    if not valid_address(other):
        raise AccountError(f"not a valid address: {other}")
    if rows.address_taken(session, other):
        raise AccountError(f"{other} already sends for an account")
    rows.add_sender(session, account.id, other)


def set_password(session: Session, email: str, password: str) -> None:
    account = find_by_email(session, email)
    if account is None:
        raise AccountError(f"no account {email}")
    check_password_rules(password)
    account.password_hash = hash_password(password)


def _test_number(value: str, region: str) -> str | None:
    """The test number in E.164 (read in the account's region), None for 'none'."""
    if value.strip().lower() in ("", "none", "off"):
        return None
    number = normalize_number(value, region)
    if number is None:
        raise AccountError(f"not a valid fax number in {region}: {value!r}")
    return number


def update_account(session: Session, email: str, *, region: str | None = None,
                   lang: str | None = None, tz: str | None = None, credits: str | None = None,
                   window: str | None = None, notice_address: str | None = None,
                   webhook_url: str | None = None, webhook_secret: str | None = None,
                   retry: str | None = None, require: str | None = None,
                   quality: str | None = None, cover: str | None = None,
                   header_line: str | None = None, test_number: str | None = None
                   ) -> AccountView:
    """Change what is given; credits accept N, +N, -N or 'unlimited' (never below zero)."""
    account = find_by_email(session, email)
    if account is None:
        raise AccountError(f"no account {email}")
    if require is not None:
        account.require = check_require(require)
    if quality is not None:
        account.quality = check_quality(quality)
    if cover is not None:
        account.cover = check_yes_no("cover", cover)
    if header_line is not None:
        account.header_line = check_yes_no("header-line", header_line)
    if region is not None:
        if region.upper() not in phonenumbers.SUPPORTED_REGIONS:
            raise AccountError(f"unknown region {region!r}")
        account.region = region.upper()
    if test_number is not None:
        account.test_number = _test_number(test_number, account.region)
    if lang is not None:
        if lang not in LANGS:
            raise AccountError(f"unsupported language {lang!r}")
        account.lang = lang
    if tz is not None:
        try:
            ZoneInfo(tz)
        except (ZoneInfoNotFoundError, ValueError):
            raise AccountError(f"unknown time zone {tz!r}") from None
        account.tz = tz
    if credits is not None:
        account.credits = _new_credits(account.credits, credits)
    if window is not None:
        if window.strip().lower() in ("", "none", "off"):
            account.send_window = None
        else:
            try:
                parse_window(window)
            except ValueError as exc:
                raise AccountError(f"window: {exc}") from None
            account.send_window = window.strip()
    if notice_address is not None:
        if notice_address.strip().lower() in ("", "none"):
            account.notice_address = None
        elif not valid_address(notice_address.strip()):
            raise AccountError(f"not a valid address: {notice_address}")
        else:
            account.notice_address = normalize_address(notice_address)
    if webhook_url is not None:
        if webhook_url.strip().lower() in ("", "none"):
            account.webhook_url = None
        elif not webhook_url.startswith(("https://", "http://")):
            raise AccountError("the webhook URL must start with https:// (or http://)")
        else:
            account.webhook_url = webhook_url.strip()
    if webhook_secret is not None:
        account.webhook_secret = webhook_secret or None
    if retry is not None:
        if retry.strip().lower() in ("", "none", "default"):
            account.retry_policy = None
        else:
            try:
                account.retry_policy = json.dumps(parse_retry_overrides(retry))
            except ValueError as exc:
                raise AccountError(f"retry: {exc}") from None
    session.flush()
    return AccountView.of(account)


def _new_credits(current: int | None, text: str) -> int | None:
    text = text.strip().lower()
    if text == "unlimited":
        return None
    try:
        value = int(text)
    except ValueError:
        raise AccountError(f"credits: expected N, +N, -N or unlimited, got {text!r}") from None
    if text[0] in "+-":
        value = (current or 0) + value
    if value < 0:
        raise AccountError("credits cannot go below zero")
    return value


def find_by_email(session: Session, email: str) -> Account | None:
    return rows.by_email(session, normalize_address(email))


def find_by_sender(session: Session, address: str) -> Account | None:
    """The account a From address sends for, or None."""
    return rows.by_sender(session, normalize_address(address))


def find_for_mail(engine: Engine, *, login: str | None = None,
                  sender: str | None = None) -> Account | None:
    """The account of a mail (by its SMTP AUTH login, else its From address), detached.
    Runs for every mail, so one Core query on a pooled connection instead of an ORM
    session: a quarter of the CPU, and always the current row (no cache to go stale)."""
    if login is None and sender is None:
        return None
    if login is not None:
        return rows.for_mail(engine, login=normalize_address(login), sender=None)
    return rows.for_mail(engine, login=None, sender=normalize_address(sender or ""))


class MailAccounts:
    """The account of each mail, remembered for `ttl` seconds: one query per sender and
    second instead of one per mail. A change made in this process (any ORM flush of an
    account or sender address) is seen at once; one made by another process (`mailgw
    account …`) within `ttl` (SMTP AUTH's cache waits 30 s). A balance is never taken from
    here: intake checks and takes credits at commit, on the current row (an account seen
    here without a credit limit is not read again: a limit set elsewhere applies within
    `ttl`)."""

    def __init__(self, engine: Engine, ttl: float = 1.0, most: int = 10_000,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.engine = engine
        self.ttl = ttl
        self.clock = clock
        self.most = most
        self.seen: dict[tuple[str, str], tuple[float, Account | None]] = {}
        self.changes = rows.changes()

    def get(self, *, login: str | None = None, sender: str | None = None) -> Account | None:
        key = ("login", normalize_address(login)) if login is not None else \
            ("sender", normalize_address(sender or ""))
        now = self.clock()
        if self.changes != rows.changes():
            self.seen, self.changes = {}, rows.changes()
        hit = self.seen.get(key)
        if hit is not None and now - hit[0] < self.ttl:
            return hit[1]
        account = find_for_mail(self.engine, login=login, sender=sender)
        if len(self.seen) >= self.most:
            self.seen = {}
        self.seen[key] = (now, account)
        return account


def list_accounts(session: Session) -> list[AccountView]:
    return [AccountView.of(a, sorted(s.split(",")) if s else [])
            for a, s in rows.with_senders(session)]


class AuthCache:
    """What SMTP AUTH checks against: aiosmtpd's authenticator is synchronous and runs on
    the event loop, so it must never query the database.

    `refresh` (called from a thread) loads the hashes; verified (login, password) pairs are
    remembered by a keyed digest so a client that logs in often costs one argon2 check.
    """

    def __init__(self) -> None:
        self._hashes: dict[str, str] = {}
        self._verified: dict[bytes, str] = {}
        self._key = os.urandom(32)

    def refresh(self, session: Session) -> int:
        hashes = rows.password_hashes(session)
        if hashes != self._hashes:
            self._verified = {}  # a password changed: forget what was verified
        self._hashes = hashes
        return len(hashes)

    def has(self, login: str) -> bool:
        """`login` is an account's address."""
        return normalize_address(login) in self._hashes

    def _digest(self, email: str, password: str) -> bytes:
        return hashlib.blake2b(f"{email}\0{password}".encode(), key=self._key).digest()

    def verified(self, login: str, password: str) -> bool:
        """The pair was verified before (no argon2 check needed)."""
        email = normalize_address(login)
        password_hash = self._hashes.get(email)
        return password_hash is not None and \
            self._verified.get(self._digest(email, password)) == password_hash

    def check(self, login: str, password: str) -> str | None:
        """The account's address when the pair is right, else None."""
        email = normalize_address(login)
        password_hash = self._hashes.get(email)
        if password_hash is None:
            return None
        digest = self._digest(email, password)
        if self._verified.get(digest) == password_hash:
            return email
        if verify_password(password_hash, password):
            if len(self._verified) > 10_000:
                self._verified.clear()
            self._verified[digest] = password_hash
            return email
        return None
