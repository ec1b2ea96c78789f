"""Errors the operator must fix, not bugs of ours: a busy port, a store that cannot be
reached, a certificate that does not load. The command line prints their one line and
exits with their code, without a traceback; a traceback stays the sign of a bug."""

from __future__ import annotations

import errno
import os

EX_CONFIG = 2  # a wrong setting: the operator changes the configuration
EX_UNAVAILABLE = 69  # sysexits' EX_UNAVAILABLE: a port, a server or the store is not there


class OperatorError(Exception):
    """`str(self)` is the whole line: it names the thing (the key, the address, the file)."""

    def __init__(self, line: str, exit_code: int = EX_UNAVAILABLE):
        super().__init__(line)
        self.exit_code = exit_code


def listen_error(key: str, address: str, exc: OSError) -> OperatorError:
    """A listener that could not bind: in use is unavailable (69); a host that is not ours,
    a privileged port or an unknown name is the configuration's (2)."""
    number = exc.errno or 0  # asyncio wraps the OSError in a longer text; gaierror's is < 0
    reason = (os.strerror(number) if number > 0 else exc.strerror or str(exc)).lower()
    code = EX_UNAVAILABLE if exc.errno == errno.EADDRINUSE else EX_CONFIG
    return OperatorError(f"{key} {address}: cannot listen ({reason})", code)
