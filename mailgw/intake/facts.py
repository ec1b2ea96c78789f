"""The facts the decision (mailgw.intake.decide) asks for, from the store and the sandbox.

`StoreLookups` serves intake (the live store) and `mailgw parse` with a configured store,
which parse opens read-only (`open_read_only`): parse must never write. `DefaultLookups`
serves `parse` on embedded defaults, where there is no account to ask: the password is
taken as right, named groups and library messages as present. Both run the same
document and sound checks (the sandbox) as intake.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from urllib.parse import quote

from sqlalchemy import Engine, create_engine, inspect
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from mailgw.accounts import accounts, groups, voice
from mailgw.documents import checks as documents
from mailgw.documents.checks import DocumentCheck, SoundCheck
from mailgw.documents.sandbox import Limits
from mailgw.intake.verdict import LibraryMessage
from mailgw.ops.config import Settings, StoreSettings
from mailgw.recipients import ListEntry
from mailgw.store.db import normalize_url

Reader = Callable[[], AbstractContextManager[Session]]
# Runs a password check (given whether the pair was verified before, and the check), or
# raises to defer it.
Gate = Callable[[bool, Callable[[], bool]], bool]


class SandboxChecks:
    """Documents and sounds, checked in the sandbox (as intake does). Documents are rendered
    to fax pages at `quality` (the page count is the pages rendered)."""

    def __init__(self, limits: Limits, quality: str = "high"):
        self.limits = limits
        self.quality = quality
        self.checked: dict[int, tuple[bytes, DocumentCheck]] = {}  # by id: the bytes kept

    def pdf(self, data: bytes) -> DocumentCheck:
        """Checked once per mail, though `parse` lists a PDF and the decision reads it."""
        return self._once(data, lambda: documents.check_pdf(data, self.limits))

    def picture(self, data: bytes, quality: str | None = None) -> DocumentCheck:
        """Rendered at the mail's quality (the lossless PDF sent holds pages of that dpi)."""
        return self._once(data, lambda: documents.check_picture(data, self.limits,
                                                                 quality or self.quality))

    def office(self, data: bytes, filename: str | None) -> DocumentCheck:
        return self._once(data, lambda: documents.check_office(data, filename, self.limits))

    def _once(self, data: bytes, check: Callable[[], DocumentCheck]) -> DocumentCheck:
        if id(data) not in self.checked:
            self.checked[id(data)] = (data, check())
        return self.checked[id(data)][1]

    def merge(self, parts: list[bytes]) -> bytes | None:
        return documents.merge_pdfs(parts, self.limits)

    def sound(self, data: bytes, max_seconds: float) -> SoundCheck:
        return documents.check_sound(data, self.limits, max_seconds=max_seconds)


class StoreLookups(SandboxChecks):
    """One account's groups, library, caller IDs and password, read from the store."""

    def __init__(self, read: Reader, account_id: int, password_hash: str, limits: Limits,
                 gate: Gate | None = None):
        super().__init__(limits)
        self.read = read
        self.account_id = account_id
        self.password_hash = password_hash
        self.gate = gate

    def password_ok(self, password: str) -> bool:
        """The argon2 check, through the gate that slows guessers (mailgw.intake.guessing) when
        there is one: it may hold the check back (a 4xx), never the verdict."""
        def verify() -> bool:
            return accounts.verify_password_cached(self.password_hash, password)

        if self.gate is None:
            return verify()
        return self.gate(accounts.password_verified(self.password_hash, password), verify)

    def groups(self, names: tuple[str, ...]) -> tuple[list[ListEntry], list[str]]:
        with self.read() as s:
            return groups.resolve(s, self.account_id, names)

    def library_message(self, ref: str) -> LibraryMessage | None:
        with self.read() as s:
            m = voice.find_message(s, self.account_id, ref)
            return None if m is None else LibraryMessage(m.ref, m.duration, m.audio)

    def caller_ids(self) -> list[str]:
        with self.read() as s:
            return voice.caller_ids(s, self.account_id)


class DefaultLookups(SandboxChecks):
    """No store: what the account would hold is assumed present (`parse` says so)."""

    def password_ok(self, password: str) -> bool:
        return True

    def groups(self, names: tuple[str, ...]) -> tuple[list[ListEntry], list[str]]:
        return [], []

    def library_message(self, ref: str) -> LibraryMessage | None:
        return LibraryMessage(ref, 0.0)

    def caller_ids(self) -> list[str]:
        return []


class ReadOnlyStore:
    """A configured store, opened so that nothing can be written (`mailgw parse`)."""

    def __init__(self, url: str):
        url = normalize_url(url)
        parsed = make_url(url)
        if parsed.get_backend_name() == "sqlite":
            path = parsed.database or ""
            if not path or path == ":memory:" or not Path(path).is_file():
                raise FileNotFoundError(f"{path or url}: no such database")
            uri = f"file:{quote(str(Path(path).resolve()))}?mode=ro"
            self.read_engine: Engine = create_engine(
                "sqlite://", creator=lambda: sqlite3.connect(uri, uri=True,
                                                             check_same_thread=False))
        else:
            self.read_engine = create_engine(
                url, connect_args={"options": "-c default_transaction_read_only=on"})
        self._sessions = sessionmaker(self.read_engine, expire_on_commit=False)

    @contextmanager
    def read(self) -> Iterator[Session]:
        with self._sessions() as session, session.begin():
            yield session

    def dispose(self) -> None:
        self.read_engine.dispose()


def open_read_only(settings: Settings) -> tuple[ReadOnlyStore | None, str]:
    """The configured store for reading, or None and why (then embedded defaults)."""
    url = settings.store.url
    if settings.source == "embedded defaults" and url == StoreSettings().url:
        return None, "no store configured"
    try:
        store = ReadOnlyStore(url)
        with store.read_engine.connect() as conn:
            if "account" not in inspect(conn).get_table_names():
                store.dispose()
                return None, f"the store at {make_url(url).render_as_string()} has no tables"
    except (OSError, SQLAlchemyError) as exc:
        return None, f"the store cannot be read ({type(exc).__name__}: {str(exc)[:200]})"
    return store, f"store {make_url(normalize_url(url)).render_as_string()} (read-only)"
