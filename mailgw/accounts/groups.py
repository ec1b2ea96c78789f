"""Contact groups: named number lists an account sends to as `@name` in the Subject."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from mailgw.recipients import ListEntry, normalize_number, parse_list
from mailgw.store import Account, ContactGroup, GroupMember

_NAME = re.compile(r"[\w.\-]{1,100}")


class GroupError(ValueError):
    """A refused group operation; the message says why."""


@dataclass(frozen=True)
class ImportReport:
    added: int
    duplicates: int
    invalid: tuple[str, ...]


def _account(s: Session, email: str) -> Account:
    account = s.scalar(select(Account).where(Account.email == email.strip().lower()))
    if account is None:
        raise GroupError(f"no account {email}")
    return account


def _group(s: Session, account: Account, name: str, create: bool) -> ContactGroup | None:
    name = name.lstrip("@")
    if not _NAME.fullmatch(name):
        raise GroupError(f"not a group name: {name!r} (letters, digits, '.', '-', '_')")
    group = s.scalar(select(ContactGroup).where(ContactGroup.account_id == account.id,
                                                ContactGroup.name == name))
    if group is None and create:
        group = ContactGroup(account_id=account.id, name=name)
        s.add(group)
        s.flush()
    return group


def _add(s: Session, group: ContactGroup, entries: list[ListEntry]) -> tuple[int, int]:
    from mailgw.ops.progress import Progress

    existing = set(s.scalars(select(GroupMember.number).where(GroupMember.group_id == group.id)))
    added = dup = 0
    progress = Progress(f"@{group.name}", len(entries))
    for entry in entries:
        progress.advance()
        if entry.number in existing:
            dup += 1
            continue
        existing.add(entry.number)
        s.add(GroupMember(group_id=group.id, number=entry.number,
                          columns=json.dumps(dict(entry.columns), ensure_ascii=False)
                          if entry.columns else None))
        added += 1
    progress.finish()
    return added, dup


def add_numbers(s: Session, email: str, name: str, numbers: list[str]) -> ImportReport:
    account = _account(s, email)
    group = _group(s, account, name, create=True)
    assert group is not None
    entries, invalid = [], []
    for raw in numbers:
        e164 = normalize_number(raw, account.region)
        if e164 is None:
            invalid.append(raw)
        else:
            entries.append(ListEntry(e164))
    added, dup = _add(s, group, entries)
    return ImportReport(added, dup, tuple(invalid))


def import_file(s: Session, email: str, name: str, data: bytes, filename: str, *,
                replace: bool = False, max_lines: int = 100_000) -> ImportReport:
    account = _account(s, email)
    parsed = parse_list(data, filename, account.region, max_lines=max_lines)
    if parsed.too_long:
        raise GroupError(f"{filename}: more than {max_lines} lines")
    if parsed.error:
        raise GroupError(f"{filename}: {parsed.error}")
    group = _group(s, account, name, create=True)
    assert group is not None
    if replace:
        s.execute(delete(GroupMember).where(GroupMember.group_id == group.id))
    added, dup = _add(s, group, list(parsed.entries))
    return ImportReport(added, dup + parsed.duplicates, parsed.invalid)


def list_groups(s: Session, email: str) -> list[tuple[str, int]]:
    account = _account(s, email)
    rows = s.execute(select(ContactGroup.name, func.count(GroupMember.id))
                     .join(GroupMember, isouter=True)
                     .where(ContactGroup.account_id == account.id)
                     .group_by(ContactGroup.id, ContactGroup.name).order_by(ContactGroup.name))
    return [(name, count) for name, count in rows]


def members(s: Session, email: str, name: str) -> list[tuple[str, dict[str, str]]]:
    account = _account(s, email)
    group = _group(s, account, name, create=False)
    if group is None:
        raise GroupError(f"no group @{name.lstrip('@')} for {email}")
    return [(m.number, json.loads(m.columns) if m.columns else {}) for m in group.members]


def resolve(s: Session, account_id: int, names: tuple[str, ...]
            ) -> tuple[list[ListEntry], list[str]]:
    """The members of the named groups, and the names that are unknown or empty."""
    found: list[ListEntry] = []
    missing: list[str] = []
    for name in names:
        group = s.scalar(select(ContactGroup).where(ContactGroup.account_id == account_id,
                                                    ContactGroup.name == name))
        if group is None or not group.members:
            missing.append(name)
            continue
        for m in group.members:
            cols = tuple(json.loads(m.columns).items()) if m.columns else ()
            found.append(ListEntry(m.number, cols))
    return found, missing
