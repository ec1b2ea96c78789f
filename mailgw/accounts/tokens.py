"""API tokens: per account, several, named, scoped; shown once, kept as a hash, revocable.

The interface the HTTP API relies on (mailgw.http.api_v1): `verify` turns a presented
bearer token into a `Principal`, or None. The gateway password is never a token: anything
not shaped like one (`mgw_` and 43 URL-safe characters) is refused before any lookup.
Wrong tokens are slowed per client address by mailgw.accounts.token_gate; requests per
token are limited by mailgw.accounts.rate.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy.orm import Session

from mailgw.accounts.accounts import AccountError, find_by_email
from mailgw.store import tokens as rows

if TYPE_CHECKING:
    from mailgw.store.db import Store

SCOPES = ("jobs:write", "jobs:read", "library", "admin")
TOKEN_START = "mgw_"
PREFIX_LENGTH = len(TOKEN_START) + 8  # the public part: shown in lists, finds the row
TOUCH_EVERY = timedelta(minutes=1)  # last_used_at is written at most this often per token
_SHAPE = re.compile(r"mgw_[A-Za-z0-9_-]{43}")  # secrets.token_urlsafe(32): 43 characters
NAME_MAX = 100


class TokenError(AccountError):
    """A refused token operation; the message says why."""


@dataclass(frozen=True)
class Principal:
    """Who a valid token speaks for."""

    token_id: int
    name: str
    account_id: int
    account_email: str
    scopes: frozenset[str]

    def allows(self, scope: str) -> bool:
        return scope in self.scopes or "admin" in self.scopes


@dataclass(frozen=True)
class TokenView:
    """A token as lists show it: never the secret, nor its hash."""

    id: int
    account_email: str
    name: str
    prefix: str
    scopes: tuple[str, ...]
    created_at: datetime
    last_used_at: datetime | None
    expires_at: datetime | None
    revoked_at: datetime | None

    def state(self, now: datetime | None = None) -> str:
        """active | expired | revoked."""
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at is not None and self.expires_at <= (now or datetime.now(UTC)):
            return "expired"
        return "active"


def parse_scopes(scopes: str | Iterable[str]) -> frozenset[str]:
    """"jobs:write,jobs:read" (or a list of names) as a set; an unknown or missing scope is
    a TokenError (a ValueError) that names the known ones."""
    names = scopes.split(",") if isinstance(scopes, str) else list(scopes)
    wanted = frozenset(n.strip().lower() for n in names if n.strip())
    unknown = sorted(wanted - set(SCOPES))
    if unknown:
        raise TokenError(f"unknown scope {', '.join(unknown)}: a token's scopes are "
                         f"{', '.join(SCOPES)}")
    if not wanted:
        raise TokenError(f"a token needs at least one scope of {', '.join(SCOPES)}")
    return wanted


def token_shaped(presented: str) -> bool:
    """`mgw_` and 43 URL-safe characters: the only strings ever looked up."""
    return _SHAPE.fullmatch(presented) is not None


def digest(token: str) -> str:
    """The hash kept at rest: hex SHA-256.

    A token is 32 random bytes (256 bits), not a word a person chose: nobody can guess it
    or run a dictionary against a stolen hash, so a slow salted hash (argon2, as for
    passwords) would add nothing but its cost, paid on every API request. A fast hash keeps
    verification cheap, and a stolen table still gives away no usable token.
    """
    return hashlib.sha256(token.encode("ascii")).hexdigest()


def _check_name(name: str) -> str:
    name = name.strip()
    if not name:
        raise TokenError("a token needs a name (--name), e.g. the client that uses it")
    if len(name) > NAME_MAX or not name.isprintable():
        raise TokenError(f"a token's name is at most {NAME_MAX} printable characters")
    return name


def issue(session: Session, account_email: str, name: str, scopes: str | Iterable[str],
          expires_at: datetime | None = None) -> tuple[int, str]:
    """A new token for the account: (its id, the token). The token is returned once and
    never stored; only its hash and its prefix are. Names are unique per account."""
    wanted = parse_scopes(scopes)
    name = _check_name(name)
    account = find_by_email(session, account_email)
    if account is None:
        raise TokenError(f"no account {account_email}")
    now = datetime.now(UTC)
    if expires_at is not None and expires_at <= now:
        raise TokenError("a token's expiry must be in the future")
    if rows.name_taken(session, account.id, name):
        raise TokenError(f"{account.email} already has a token named {name!r}")
    token = TOKEN_START + secrets.token_urlsafe(32)
    token_id = rows.insert(session, account_id=account.id, name=name,
                           scopes=",".join(sorted(wanted)), hash=digest(token),
                           prefix=token[:PREFIX_LENGTH], created_at=now, expires_at=expires_at)
    return token_id, token


def verify(store: Store, presented: str, now: datetime | None = None) -> Principal | None:
    """The principal of a valid token; None for anything else (not token-shaped, unknown,
    revoked, expired). The hash is compared in constant time; last_used_at is written at
    most once a minute per token."""
    presented = presented.strip()
    if not token_shaped(presented):
        return None
    now = now or datetime.now(UTC)
    wanted = digest(presented)
    found = None
    for row in rows.candidates(store.read_engine, presented[:PREFIX_LENGTH]):
        if hmac.compare_digest(row.hash, wanted):
            found = row
    if found is None or found.revoked_at is not None:
        return None
    if found.expires_at is not None and found.expires_at <= now:
        return None
    if found.last_used_at is None or found.last_used_at <= now - TOUCH_EVERY:
        rows.touch(store.engine, found.id, now, since=now - TOUCH_EVERY)
    return Principal(token_id=found.id, name=found.name, account_id=found.account_id,
                     account_email=found.account_email,
                     scopes=frozenset(s for s in found.scopes.split(",") if s))


def list_tokens(session: Session, account_email: str | None = None) -> list[TokenView]:
    """The tokens of one account, or of all accounts (revoked and expired ones included)."""
    account_id = None
    if account_email is not None:
        account = find_by_email(session, account_email)
        if account is None:
            raise TokenError(f"no account {account_email}")
        account_id = account.id
    return [TokenView(t.id, email, t.name, t.prefix, tuple(t.scopes.split(",")),
                      t.created_at, t.last_used_at, t.expires_at, t.revoked_at)
            for t, email in rows.listed(session, account_id)]


def revoke(session: Session, token_id: int) -> bool:
    """Revoke a token at once (its next request is refused); False when there is no such
    token or it was revoked before."""
    return rows.revoke(session, token_id, datetime.now(UTC))
