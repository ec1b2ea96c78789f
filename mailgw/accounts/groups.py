"""Contact groups: named number lists an account sends to as `@name` in the Subject."""

from __future__ import annotations

import re
from dataclasses import dataclass

from sqlalchemy.orm import Session

from mailgw.ops.progress import Progress
from mailgw.recipients import ListEntry, normalize_number, parse_list
from mailgw.store import Account, ContactGroup
from mailgw.store import accounts as account_rows
from mailgw.store import groups as rows

_NAME = re.compile(r"[\w.\-]{1,100}")


class GroupError(ValueError):
    """A refused group operation; the message says why."""


@dataclass(frozen=True)
class ImportReport:
    added: int
    duplicates: int
    invalid: tuple[str, ...]


def valid_name(name: str) -> bool:
    """A group's name: letters, digits, '.', '-' and '_' (at most 100), `@` in front or not."""
    return _NAME.fullmatch(name.lstrip("@")) is not None


def _account(s: Session, email: str) -> Account:
    account = account_rows.by_email(s, email.strip().lower())
    if account is None:
        raise GroupError(f"no account {email}")
    return account


def _group(s: Session, account: Account, name: str, create: bool) -> ContactGroup | None:
    name = name.lstrip("@")
    if not _NAME.fullmatch(name):
        raise GroupError(f"not a group name: {name!r} (letters, digits, '.', '-', '_')")
    group = rows.find(s, account.id, name)
    if group is None and create:
        group = rows.create(s, account.id, name)
    return group


def _add(s: Session, group: ContactGroup, entries: list[ListEntry]) -> tuple[int, int]:
    existing = rows.numbers(s, group.id)
    new: list[rows.Member] = []
    dup = 0
    progress = Progress(f"@{group.name}", len(entries))
    for entry in entries:
        progress.advance()
        if entry.number in existing:
            dup += 1
            continue
        existing.add(entry.number)
        new.append((entry.number, dict(entry.columns)))
    rows.add_members(s, group.id, new)
    progress.finish()
    return len(new), dup


def _entries(numbers: list[str], region: str,
             kept: dict[str, dict[str, str]] | None = None) -> tuple[list[ListEntry], list[str]]:
    """The typed numbers as entries (with the columns `kept` has for them), and the invalid."""
    entries, invalid = [], []
    for raw in numbers:
        e164 = normalize_number(raw, region)
        if e164 is None:
            invalid.append(raw)
        else:
            entries.append(ListEntry(e164, tuple((kept or {}).get(e164, {}).items())))
    return entries, invalid


def add_numbers(s: Session, email: str, name: str, numbers: list[str]) -> ImportReport:
    account = _account(s, email)
    group = _group(s, account, name, create=True)
    assert group is not None
    entries, invalid = _entries(numbers, account.region)
    added, dup = _add(s, group, entries)
    return ImportReport(added, dup, tuple(invalid))


def replace_numbers(s: Session, email: str, name: str, numbers: list[str]) -> ImportReport:
    """The group's numbers set anew (the web space's edit): a number that stays keeps the
    columns its list brought (names …), a number typed in has none, the others go."""
    account = _account(s, email)
    group = _group(s, account, name, create=False)
    if group is None:
        raise GroupError(f"no group @{name.lstrip('@')} for {email}")
    kept = rows.columns(s, group.id)
    rows.clear(s, group.id)
    entries, invalid = _entries(numbers, account.region, kept)
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
        rows.clear(s, group.id)
    added, dup = _add(s, group, list(parsed.entries))
    return ImportReport(added, dup + parsed.duplicates, parsed.invalid)


def list_groups(s: Session, email: str) -> list[tuple[str, int]]:
    account = _account(s, email)
    return rows.counts(s, account.id)


def members(s: Session, email: str, name: str) -> list[tuple[str, dict[str, str]]]:
    account = _account(s, email)
    group = _group(s, account, name, create=False)
    if group is None:
        raise GroupError(f"no group @{name.lstrip('@')} for {email}")
    return rows.members(group)


def resolve(s: Session, account_id: int, names: tuple[str, ...]
            ) -> tuple[list[ListEntry], list[str]]:
    """The members of the named groups, and the names that are unknown or empty."""
    found: list[ListEntry] = []
    missing: list[str] = []
    for name in names:
        group = rows.find(s, account_id, name)
        listed = rows.members(group) if group is not None else []
        if not listed:
            missing.append(name)
            continue
        found += [ListEntry(number, tuple(cols.items())) for number, cols in listed]
    return found, missing
