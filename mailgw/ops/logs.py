"""structlog set-up: JSON lines in production, readable lines on a terminal; secrets redacted."""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import MutableMapping
from typing import Any, TextIO

import structlog

SECRET_KEYS = re.compile(r"pass(word)?|secret|token|auth_data|credential", re.I)
REDACTED = "[redacted]"


def redact(_logger: Any, _name: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """Drop the values of secret-looking keys, whatever the caller passed."""
    for key in list(event):
        if SECRET_KEYS.search(key):
            event[key] = REDACTED
    return event


class _Stderr:
    """Whatever sys.stderr is when a line is written (not when logging was set up), so a
    replaced or closed stream (tests, daemons re-opening their output) never breaks logging."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()

    def isatty(self) -> bool:
        return sys.stderr.isatty()


def setup(level: str = "info", fmt: str = "auto", stream: TextIO | None = None) -> None:
    out: TextIO = stream or _Stderr()  # type: ignore[assignment]
    console = fmt == "console" or (fmt == "auto" and out.isatty())
    renderer: Any = (structlog.dev.ConsoleRenderer(colors=out.isatty()) if console
                     else structlog.processors.JSONRenderer(ensure_ascii=False))
    numeric = logging.getLevelName(level.upper())
    if not isinstance(numeric, int):
        numeric = logging.INFO
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        redact,
    ]
    structlog.configure(
        processors=[*shared, structlog.processors.format_exc_info, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(out),
        cache_logger_on_first_use=False,
    )
    # Libraries (aiosmtpd, alembic, sqlalchemy) log through stdlib logging: same stream, quieter.
    logging.basicConfig(stream=out, level=max(numeric, logging.WARNING),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", force=True)
    logging.getLogger("mail.log").setLevel(max(numeric, logging.WARNING))
