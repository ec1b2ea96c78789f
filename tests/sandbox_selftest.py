"""Tasks for the sandbox's own tests: what a hostile document can make a parser do.

Not in mailgw: the worker serves them only when the environment variable
`mailgw.documents.protocol.EXTRA_TASKS_ENV` names this module when it starts (it imports the
module and adds its TASKS). `enable(monkeypatch)` sets it and stops the workers already
running, so the next ones start with these tasks; monkeypatch takes it away after the test.
"""

from __future__ import annotations

import os
import resource
import signal
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import pypdfium2

from mailgw.documents import sandbox, worker
from mailgw.documents.protocol import EXTRA_TASKS_ENV

if TYPE_CHECKING:  # the worker imports this module: no pytest in it
    import pytest


def enable(monkeypatch: pytest.MonkeyPatch) -> None:
    """Workers started from now on (until the test ends) also serve these tasks."""
    sandbox.shutdown()
    monkeypatch.setenv(EXTRA_TASKS_ENV, __name__)


def spin(data: bytes) -> dict[str, object]:
    """An infinite loop (pypdf has had several): stopped by RLIMIT_CPU."""
    while True:
        data = data[1:] + data[:1]


def alloc(data: bytes) -> dict[str, object]:
    """Allocation without bound (a decompression bomb): stopped by RLIMIT_AS."""
    hoard = []
    while True:
        hoard.append(bytearray(16 << 20))


def sleep(data: bytes) -> dict[str, object]:
    """Stuck without using CPU: stopped by the wall-clock deadline."""
    time.sleep(3600)
    return {}


def garbage(data: bytes) -> object:
    """An answer that is not a JSON object."""
    return ["not", "an", "object"]


def crash(data: bytes) -> dict[str, object]:
    """A parser that segfaults."""
    os.kill(os.getpid(), signal.SIGSEGV)
    return {}


def pdfium(data: bytes) -> dict[str, object]:
    """A PDF handed to PDFium without mailgw.documents.render's checks (what they prevent)."""
    pdf = pypdfium2.PdfDocument(data)
    pdf[0].render(scale=0.1)
    return {}


def echo(data: bytes) -> dict[str, object]:
    """Facts about its own process (for the tests of the limits)."""
    return {"pid": os.getpid(), "ppid": os.getppid(), "size": len(data),
            "cpu_limit": list(resource.getrlimit(resource.RLIMIT_CPU)),
            "as_limit": list(resource.getrlimit(resource.RLIMIT_AS)),
            "baseline": worker.baseline()}


TASKS: dict[str, Callable[[bytes], object]] = {
    "_selftest_spin": spin, "_selftest_alloc": alloc, "_selftest_sleep": sleep,
    "_selftest_garbage": garbage, "_selftest_crash": crash, "_selftest_pdfium": pdfium,
    "_selftest_echo": echo,
}
