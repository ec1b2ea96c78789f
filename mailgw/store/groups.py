"""Contact groups and their members: every statement mailgw.accounts.groups runs.

Members are E.164 numbers with the list's own columns as JSON (an attached CSV's names …).
"""

from __future__ import annotations

import json
from collections.abc import Iterable

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from mailgw.store.models import ContactGroup, GroupMember

Member = tuple[str, dict[str, str]]  # (E.164 number, the list's own columns)


def find(s: Session, account_id: int, name: str) -> ContactGroup | None:
    return s.scalar(select(ContactGroup).where(ContactGroup.account_id == account_id,
                                               ContactGroup.name == name))


def create(s: Session, account_id: int, name: str) -> ContactGroup:
    group = ContactGroup(account_id=account_id, name=name)
    s.add(group)
    s.flush()
    return group


def numbers(s: Session, group_id: int) -> set[str]:
    return set(s.scalars(select(GroupMember.number).where(GroupMember.group_id == group_id)))


def add_members(s: Session, group_id: int, members: Iterable[Member]) -> None:
    for number, columns in members:
        s.add(GroupMember(group_id=group_id, number=number,
                          columns=json.dumps(columns, ensure_ascii=False) if columns else None))


def columns(s: Session, group_id: int) -> dict[str, dict[str, str]]:
    """The list's own columns of each member that has some, by number."""
    found = s.execute(select(GroupMember.number, GroupMember.columns)
                      .where(GroupMember.group_id == group_id, GroupMember.columns.is_not(None)))
    return {number: json.loads(cols) for number, cols in found if cols}


def clear(s: Session, group_id: int) -> None:
    s.execute(delete(GroupMember).where(GroupMember.group_id == group_id))


def counts(s: Session, account_id: int) -> list[tuple[str, int]]:
    """(name, members) of the account's groups, by name."""
    rows = s.execute(select(ContactGroup.name, func.count(GroupMember.id))
                     .join(GroupMember, isouter=True)
                     .where(ContactGroup.account_id == account_id)
                     .group_by(ContactGroup.id, ContactGroup.name).order_by(ContactGroup.name))
    return [(name, count) for name, count in rows]


def members(group: ContactGroup) -> list[Member]:
    """The group's members in the order they were added."""
    return [(m.number, json.loads(m.columns) if m.columns else {}) for m in group.members]
