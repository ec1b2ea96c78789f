"""Accounts and their sender addresses: every statement mailgw.accounts.accounts runs.

Addresses arrive here normalised (mailgw.accounts.accounts.normalize_address); the rules
(password, region, language …) are checked before a row is written.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, bindparam, delete, event, false, func, select
from sqlalchemy.orm import Session

from mailgw.store.models import Account, SenderAddress

_ACCOUNT = Account.__table__
# Built once: intake runs one of them for every mail.
# A disabled account is not found: its mail is answered as an unknown sender's (82).
_BY_SENDER = (select(_ACCOUNT)
              .join(SenderAddress.__table__, SenderAddress.account_id == _ACCOUNT.c.id)
              .where(SenderAddress.address == bindparam("address"),
                     _ACCOUNT.c.disabled == false()))
_BY_EMAIL = select(_ACCOUNT).where(_ACCOUNT.c.email == bindparam("address"),
                                   _ACCOUNT.c.disabled == false())


def address_taken(s: Session, address: str) -> bool:
    """The address is already an account's or sends for one."""
    return s.scalar(select(SenderAddress.id).where(SenderAddress.address == address)) is not None


def insert(s: Session, **fields: Any) -> Account:
    """A new account whose own address is its first sender address."""
    account = Account(**fields)
    s.add(account)
    s.flush()
    s.add(SenderAddress(account_id=account.id, address=account.email))
    s.flush()
    return account


def add_sender(s: Session, account_id: int, address: str) -> None:
    s.add(SenderAddress(account_id=account_id, address=address))


def remove_sender(s: Session, account_id: int, address: str) -> bool:
    """The address no longer sends for the account; False when it did not."""
    result = s.execute(delete(SenderAddress).where(SenderAddress.account_id == account_id,
                                                   SenderAddress.address == address))
    return bool(getattr(result, "rowcount", 0))


def by_email(s: Session, email: str) -> Account | None:
    return s.scalar(select(Account).where(Account.email == email))


def by_sender(s: Session, address: str) -> Account | None:
    return s.scalar(select(Account).join(SenderAddress).where(SenderAddress.address == address))


def for_mail(engine: Engine, *, login: str | None, sender: str | None) -> Account | None:
    """By SMTP AUTH login, else by From address: one Core query on a pooled connection (no
    ORM session), the row detached."""
    stmt, address = (_BY_EMAIL, login) if login is not None else (_BY_SENDER, sender)
    with engine.connect() as conn:
        row = conn.execute(stmt, {"address": address or ""}).first()
    return None if row is None else Account(**row._mapping)


def with_senders(s: Session) -> list[tuple[Account, str | None]]:
    """Every account with its sender addresses comma-joined (None when it has none)."""
    joined = (func.group_concat(SenderAddress.address)
              if s.bind is not None and s.bind.dialect.name == "sqlite"
              else func.string_agg(SenderAddress.address, ","))  # PostgreSQL
    rows = s.execute(select(Account, joined).join(SenderAddress, isouter=True)
                     .group_by(Account.id).order_by(Account.id)).all()
    return [(a, senders) for a, senders in rows]


def password_hashes(s: Session) -> dict[str, str]:
    """{account address: password hash}, what SMTP AUTH checks against (a disabled account
    is not among them: its login is refused as an unknown one)."""
    return {email: h for email, h in s.execute(select(Account.email, Account.password_hash)
                                               .where(Account.disabled == false()))}


_changes = 0  # accounts or sender addresses flushed by this process


def changes() -> int:
    """How many flushes of this process touched an account or a sender address: a cache of
    accounts compares it to see a change made here at once."""
    return _changes


def _note_changes(session: Session, _context: object, _instances: object) -> None:
    global _changes
    if any(isinstance(o, Account | SenderAddress)
           for o in (*session.new, *session.dirty, *session.deleted)):
        _changes += 1


event.listen(Session, "before_flush", _note_changes)
