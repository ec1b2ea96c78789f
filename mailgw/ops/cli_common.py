"""What every `mailgw` command shares: the exit codes, opening the store, reading a secret.

Commands import the store lazily: `mailgw --help` and `check-config` must start without
SQLAlchemy."""

from __future__ import annotations

import sys
from typing import Any

from mailgw.ops import config

EXIT_OK, EXIT_REFUSED, EXIT_USAGE = 0, 1, 2


def open_store(settings: config.Settings, migrate: bool = True) -> Any:
    """The store, migrated unless `migrate` is false (`db upgrade` reports the revisions)."""
    from mailgw.app import prepare_store  # late import: start-up speed (SQLAlchemy, the app)

    return prepare_store(settings, migrate=migrate)


def read_password() -> str:
    """One line of standard input: secrets never come from argv."""
    data = sys.stdin.readline()
    return data.rstrip("\r\n")
