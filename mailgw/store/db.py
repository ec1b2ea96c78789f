"""Engine, sessions and migrations: SQLite (WAL, FULL sync, BEGIN IMMEDIATE) or PostgreSQL.

Writers on SQLite take the write lock at BEGIN (SQLAlchemy's documented pysqlite recipe),
so two writers never deadlock on a lock upgrade; readers use a plain deferred BEGIN.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, inspect
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker

from mailgw.errors import OperatorError

MIGRATIONS = Path(__file__).with_name("migrations")
PG_CONNECT_TIMEOUT = 10  # seconds: a wrong host answers in one line, not after TCP's minutes


def normalize_url(url: str) -> str:
    """`postgresql://` means psycopg 3 here, not psycopg2."""
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


def public_url(url: str) -> str:
    """The store's URL as it may be printed: without its password."""
    return make_url(url)._replace(password=None).render_as_string(hide_password=False)


def _check_sqlite_path(url: str, database: str) -> None:
    """SQLite's own error for a missing or read-only directory is "unable to open database
    file"; name the directory instead. A missing one is not created: a typo in the path
    would otherwise start an empty store, without the accounts."""
    file = Path(database)
    where = f"store.url {public_url(url)}"
    if not file.parent.is_dir():
        raise OperatorError(f"{where}: directory {file.parent} does not exist")
    if not os.access(file.parent, os.W_OK | os.X_OK):
        raise OperatorError(f"{where}: directory {file.parent} is not writable")
    if file.exists() and not os.access(file, os.R_OK | os.W_OK):
        raise OperatorError(f"{where}: {file} is not readable and writable")


def _sqlite_engine(url: str, busy_timeout: float, immediate: bool) -> Engine:
    engine = create_engine(url, connect_args={"timeout": busy_timeout,
                                              "check_same_thread": False})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # let SQLAlchemy's BEGIN below be the only one
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=FULL")  # we acknowledge mail: a commit must survive
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute(f"PRAGMA busy_timeout={int(busy_timeout * 1000)}")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine


class Store:
    """The one handle on the database; every role gets the same one."""

    def __init__(self, url: str, *, busy_timeout: float = 30.0):
        self.url = normalize_url(url)
        parsed = make_url(self.url)
        self.dialect = parsed.get_backend_name()
        if self.dialect == "sqlite":
            if parsed.database and parsed.database != ":memory:":
                _check_sqlite_path(self.url, parsed.database)
            self.engine = _sqlite_engine(self.url, busy_timeout, immediate=True)
            self.read_engine = _sqlite_engine(self.url, busy_timeout, immediate=False)
        else:
            connect_args = ({} if "connect_timeout" in parsed.query
                            else {"connect_timeout": PG_CONNECT_TIMEOUT})
            self.engine = create_engine(self.url, pool_pre_ping=True, pool_size=10,
                                        max_overflow=10, connect_args=connect_args)
            self.read_engine = self.engine
        self._writer = sessionmaker(self.engine, expire_on_commit=False)
        self._reader = sessionmaker(self.read_engine, expire_on_commit=False)

    @property
    def is_postgres(self) -> bool:
        return self.dialect == "postgresql"

    @contextmanager
    def tx(self) -> Iterator[Session]:
        """One write transaction: commits on success, rolls back on any exception."""
        with self._writer() as session, session.begin():
            yield session

    @contextmanager
    def read(self) -> Iterator[Session]:
        with self._reader() as session, session.begin():
            yield session

    def probe(self) -> None:
        """Connect once, so a store that cannot be reached (a server down, a wrong host or
        password) is one line naming it rather than a traceback at the first query."""
        try:
            with self.read_engine.connect() as conn:
                conn.exec_driver_sql("SELECT 1")
        except DBAPIError as exc:
            text = str(exc.orig if exc.orig is not None else exc).strip()
            reason = text.splitlines()[0] if text else type(exc.orig).__name__
            password = make_url(self.url).password
            if password:
                reason = reason.replace(str(password), "***")
            raise OperatorError(f"store.url {public_url(self.url)}: cannot connect "
                                f"({reason})") from None

    def upgrade(self, revision: str = "head") -> None:
        """Run the Alembic migrations up to `revision`."""
        # late import: alembic (~23 ms) is only for migrations
        from alembic import command

        with self.engine.begin() as conn:
            command.upgrade(self._alembic_config(conn), revision)

    def current_revision(self) -> str | None:
        # late import: alembic (~23 ms) is only for migrations
        from alembic.runtime.migration import MigrationContext

        with self.read_engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()

    def head_revision(self) -> str | None:
        # late import: alembic (~23 ms) is only for migrations
        from alembic.script import ScriptDirectory

        return ScriptDirectory.from_config(self._alembic_config(None)).get_current_head()

    def has_tables(self) -> bool:
        with self.read_engine.connect() as conn:
            return bool(inspect(conn).get_table_names())

    def _alembic_config(self, conn: Any) -> Any:
        # late import: alembic (~23 ms) is only for migrations
        from alembic.config import Config

        cfg = Config()
        cfg.set_main_option("script_location", str(MIGRATIONS))
        cfg.attributes["connection"] = conn
        return cfg

    def dispose(self) -> None:
        self.engine.dispose()
        if self.read_engine is not self.engine:
            self.read_engine.dispose()
