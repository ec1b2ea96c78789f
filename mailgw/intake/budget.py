"""Memory at intake: how many bytes of mail are parsed at once, and glibc's malloc tuning.

Parsing a mail takes about three times its size (mailgw.inbound; 28 MB at peak for a
10.4 MB mail), so concurrent large mails add up; and glibc keeps freed heap memory, so RSS
would ratchet up to the worst burst of large mails and stay there.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import threading
from collections.abc import Iterator
from contextlib import contextmanager


class Budget:
    """At most `limit` bytes of mail parsed at once. A mail larger than the whole budget
    runs alone. First come, first served, so a large mail is not starved by small ones."""

    def __init__(self, limit: int):
        self.limit = max(limit, 1)
        self.used = 0
        self.tickets = 0  # handed out
        self.serving = 0  # the ticket that may enter next
        self.cond = threading.Condition()

    @contextmanager
    def hold(self, size: int) -> Iterator[None]:
        size = min(size, self.limit)
        with self.cond:
            ticket, self.tickets = self.tickets, self.tickets + 1
            self.cond.wait_for(lambda: self.serving == ticket and self.used + size <= self.limit)
            self.serving += 1
            self.used += size
            self.cond.notify_all()
        try:
            yield
        finally:
            with self.cond:
                self.used -= size
                self.cond.notify_all()


def give_back_freed_memory() -> None:
    """glibc raises its mmap threshold each time a large buffer is freed, so the next large
    mails are carved from the heap, whose memory is kept: RSS ratchets up to the worst burst
    of large mails and stays there. A fixed threshold keeps buffers of 1 MB and more in
    their own mappings, given back to the system when freed (measured after 50 mails of
    10 MB: about 65 MB less at rest, and less at peak)."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.mallopt(-3, 1 << 20)  # M_MMAP_THRESHOLD
    except (OSError, AttributeError):
        pass  # not glibc: nothing to tune
