"""Group commit: concurrent callers share one transaction, so they share one fsync.

The deciding (parse, password, page count, recipients) runs in each caller's thread; the
first caller to find nobody writing writes every item waiting at that moment in one
transaction. Each caller gets its answer only once its batch is durable. Nothing here
knows what an item is: intake hands it a commit function (mailgw.intake.writer).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from typing import Generic, TypeVar

import structlog

log = structlog.get_logger("mailgw.intake.batching")

Item = TypeVar("Item")
Result = TypeVar("Result")


class GroupCommit(Generic[Item, Result]):
    """Leader and followers: a caller whose item is decided puts it in the queue; if nobody
    is writing, it becomes the writer and commits every item waiting (at most `most`) in
    one transaction for everyone, then answers each caller; otherwise it waits for the
    writer to answer it (or to hand it the next batch). While a batch commits the next
    items queue up, so batches grow with the load, and a lone item waits for nobody and
    is written by its own thread (no hand-over).

    Callers say when they start deciding an item (`deciding()`): a writer that finds other
    items still being decided gives them up to `gather` seconds to join its batch, rather
    than pay a transaction's fixed cost for a batch of one.
    """

    def __init__(self, commit: Callable[[list[Item]], list[Result]], *, most: int = 64,
                 gather: float = 0.002):
        self.commit = commit
        self.most = most
        self.gather = gather
        self.cond = threading.Condition()
        self.waiting: list[tuple[Item, Future[Result]]] = []
        self.writing = False  # a caller's thread is committing a batch
        self.busy = 0  # items being decided now

    @contextmanager
    def deciding(self) -> Iterator[None]:
        with self.cond:
            self.busy += 1
        try:
            yield
        finally:
            with self.cond:
                self.busy -= 1
                self.cond.notify_all()

    def run(self, item: Item) -> Result:
        """Commit `item` (with the others waiting) and give its answer; raises what its
        commit raised."""
        future: Future[Result] = Future()
        with self.cond:
            self.waiting.append((item, future))
            self.cond.notify_all()  # a writer gathering its batch may wait for this one
            while not future.done():
                if self.writing:
                    self.cond.wait()
                    continue
                self.writing = True
                try:
                    until = time.monotonic() + self.gather
                    while self.busy and len(self.waiting) < self.most:
                        left = until - time.monotonic()
                        if left <= 0:
                            break
                        self.cond.wait(left)
                    batch, self.waiting = self.waiting[:self.most], self.waiting[self.most:]
                    self.cond.release()
                    try:
                        self._commit(batch)
                    except BaseException as exc:  # never leave a caller waiting
                        for _, waiting in batch:
                            if not waiting.done():
                                waiting.set_exception(exc)
                        raise
                    finally:
                        self.cond.acquire()
                finally:
                    self.writing = False
                    self.cond.notify_all()
        return future.result()

    def _commit(self, batch: list[tuple[Item, Future[Result]]]) -> None:
        items = [item for item, _ in batch]
        outcomes: list[Result | BaseException]
        try:
            outcomes = list(self.commit(items))
        except Exception as exc:  # noqa: BLE001 - one bad item must not fail the others
            if len(items) == 1:
                outcomes = [exc]
            else:  # one at a time: only the failing one fails
                log.warning("group_commit_split", size=len(items), error_type=type(exc).__name__)
                outcomes = []
                for item in items:
                    try:
                        outcomes += self.commit([item])
                    except Exception as one:  # noqa: BLE001 - raised in its caller's thread
                        outcomes.append(one)
        for (_, future), outcome in zip(batch, outcomes, strict=True):
            if isinstance(outcome, BaseException):
                future.set_exception(outcome)
            else:
                future.set_result(outcome)
