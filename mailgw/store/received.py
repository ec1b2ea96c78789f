"""Received faxes: the numbers (DIDs) mapped to accounts, and the faxes already mailed.

Every statement mailgw.accounts.inbound_numbers and mailgw.notify.received run.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from mailgw.store.models import Account, InboundNumber, ReceivedFax


def owner_of(s: Session, number: str) -> Account | None:
    """The account a number is mapped to."""
    return s.scalar(select(Account).join(InboundNumber, InboundNumber.account_id == Account.id)
                    .where(InboundNumber.number == number))


def numbers_of(s: Session, account_ids: Iterable[int]) -> dict[int, list[str]]:
    """Each account's numbers, sorted."""
    ids = list(account_ids)
    out: dict[int, list[str]] = {i: [] for i in ids}
    if not ids:
        return out
    for account_id, number in s.execute(
            select(InboundNumber.account_id, InboundNumber.number)
            .where(InboundNumber.account_id.in_(ids)).order_by(InboundNumber.number)):
        out[account_id].append(number)
    return out


def add_number(s: Session, account_id: int, number: str) -> None:
    s.add(InboundNumber(account_id=account_id, number=number))
    s.flush()


def remove_number(s: Session, account_id: int, number: str) -> bool:
    """False when the account had no such number."""
    result = s.execute(delete(InboundNumber).where(InboundNumber.account_id == account_id,
                                                   InboundNumber.number == number))
    return bool(getattr(result, "rowcount", 0))


def taken(s: Session, source: str, names: Iterable[str]) -> set[str]:
    """Which of these received faxes of one source were already mailed."""
    wanted = list(names)
    if not wanted:
        return set()
    return set(s.scalars(select(ReceivedFax.name).where(ReceivedFax.source == source,
                                                        ReceivedFax.name.in_(wanted))))


def mark_taken(s: Session, *, source: str, name: str, called: str, caller: str, csid: str,
               pages: int, account_id: int | None, rcpt_to: str,
               received_at: datetime) -> None:
    """Remember a received fax (unique by source and name: a second insert fails)."""
    s.add(ReceivedFax(source=source, name=name, called=called[:40], caller=caller[:40],
                      csid=csid[:40], pages=pages, account_id=account_id, rcpt_to=rcpt_to,
                      received_at=received_at))
    s.flush()
