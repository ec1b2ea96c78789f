"""API tokens: every statement mailgw.accounts.tokens runs.

`verify` costs one indexed read per request (by the token's public prefix) and a write at
most once a minute per token (`touch` only writes when last_used_at is older than `since`).
"""

from __future__ import annotations

from datetime import datetime
from typing import NamedTuple

from sqlalchemy import Engine, false, or_, select, update
from sqlalchemy.orm import Session

from mailgw.store.models import Account, ApiToken


def insert(s: Session, *, account_id: int, name: str, scopes: str, hash: str, prefix: str,
           created_at: datetime, expires_at: datetime | None) -> int:
    row = ApiToken(account_id=account_id, name=name, scopes=scopes, hash=hash, prefix=prefix,
                   created_at=created_at, expires_at=expires_at)
    s.add(row)
    s.flush()
    return row.id


def name_taken(s: Session, account_id: int, name: str) -> bool:
    return s.scalar(select(ApiToken.id).where(ApiToken.account_id == account_id,
                                              ApiToken.name == name)) is not None


def listed(s: Session, account_id: int | None) -> list[tuple[ApiToken, str]]:
    """(token, account address), by account then id; all accounts when `account_id` is None."""
    stmt = (select(ApiToken, Account.email).join(Account, Account.id == ApiToken.account_id)
            .order_by(Account.email, ApiToken.id))
    if account_id is not None:
        stmt = stmt.where(ApiToken.account_id == account_id)
    return [(token, email) for token, email in s.execute(stmt)]


def revoke(s: Session, token_id: int, now: datetime) -> bool:
    """False when there is no such token, or it was revoked before."""
    result = s.execute(update(ApiToken).where(ApiToken.id == token_id,
                                              ApiToken.revoked_at.is_(None))
                       .values(revoked_at=now))
    return bool(getattr(result, "rowcount", 0))


class Candidate(NamedTuple):
    """A token row as `verify` needs it, with its account's address."""

    id: int
    name: str
    scopes: str
    hash: str
    account_id: int
    account_email: str
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None


def candidates(engine: Engine, prefix: str) -> list[Candidate]:
    """The tokens with this prefix (one, almost always) and their account. One Core query
    on a pooled connection: it runs for every API request."""
    stmt = (select(ApiToken.id, ApiToken.name, ApiToken.scopes, ApiToken.hash,
                   ApiToken.account_id, Account.email, ApiToken.expires_at,
                   ApiToken.revoked_at, ApiToken.last_used_at)
            .join(Account, Account.id == ApiToken.account_id)
            .where(ApiToken.prefix == prefix, Account.disabled == false()))  # disabled: none
    with engine.connect() as conn:
        return [Candidate(*row) for row in conn.execute(stmt)]


def touch(engine: Engine, token_id: int, now: datetime, since: datetime) -> None:
    """last_used_at = now, unless it is already at or after `since` (another request, or
    another node, wrote it within the minute)."""
    stmt = (update(ApiToken)
            .where(ApiToken.id == token_id,
                   or_(ApiToken.last_used_at.is_(None), ApiToken.last_used_at < since))
            .values(last_used_at=now))
    with engine.begin() as conn:
        conn.execute(stmt)
