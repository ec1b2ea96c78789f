"""The job page's pictures of the fax: each page drawn in the sandbox (task "firstpage",
mailgw.documents.thumbnail) and kept in a small cache in memory, so a page is drawn once
per process, not on every view. The cache holds pictures, never documents; it is bounded
in bytes, the least recently seen picture goes first, and the route checks that the job
still has its document before answering from it (a purged document takes its pictures)."""

from __future__ import annotations

import base64
import json
import threading
from collections import OrderedDict

from mailgw.documents.sandbox import Limits, SandboxFailure, SandboxUnavailable, run

WIDTH = 400  # pixels: a thumbnail sharp enough to recognise the page, 4 in a row on a screen
SHOWN = 12  # pages shown on the job page at most
MOST_BYTES = 32_000_000  # the cache's size


class Thumbs:
    def __init__(self, limits: Limits, most_bytes: int = MOST_BYTES):
        self.limits = limits
        self.most = most_bytes
        self.size = 0
        self.pictures: OrderedDict[tuple[int, int], bytes] = OrderedDict()
        self.lock = threading.Lock()

    def cached(self, job_id: int, page: int) -> bytes | None:
        with self.lock:
            png = self.pictures.get((job_id, page))
            if png is not None:
                self.pictures.move_to_end((job_id, page))
            return png

    def draw(self, job_id: int, page: int, fax: bytes) -> bytes | None:
        """The PNG of page `page` (1-based) drawn in the sandbox, kept; None when it cannot
        be drawn (a broken document, a page past the end)."""
        head = json.dumps({"width": WIDTH, "page": page - 1}).encode()
        try:
            answer = run("firstpage", head + b"\n" + fax, self.limits)
        except (SandboxFailure, SandboxUnavailable):
            return None
        if "png" not in answer:
            return None
        png = base64.b64decode(str(answer["png"]))
        with self.lock:
            if (job_id, page) not in self.pictures:
                self.pictures[(job_id, page)] = png
                self.size += len(png)
            while self.size > self.most and self.pictures:
                _, old = self.pictures.popitem(last=False)
                self.size -= len(old)
        return png

    def forget(self, job_id: int) -> None:
        with self.lock:
            for key in [k for k in self.pictures if k[0] == job_id]:
                self.size -= len(self.pictures.pop(key))
