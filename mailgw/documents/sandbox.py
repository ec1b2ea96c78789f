"""Run untrusted-document work in a warm worker process with CPU, memory and wall-time limits.

PDF libraries have a history of infinite loops and memory bombs; a worker that is killed,
times out or answers garbage is the document's fault (code 93), never ours.

Starting a Python interpreter and importing pypdf for every document costs 115-170 ms, so
the isolation is kept warm: a small pool of worker processes (`python -m mailgw.documents
--worker`, mailgw.documents.worker; its libraries imported once). A worker reads each
document under the document's own limits (RLIMIT_AS, a CPU allowance, a wall-clock timer
the kernel enforces, no file writes) and **retires** after any document that failed or was unusable,
so a hostile document never shares a process with the next one. With
`Limits.fork_per_document` (`[limits] sandbox_fork_per_document`) the worker instead runs
every document in a fresh fork of itself: stronger still (not even a good document shares
a process with the next), ~3 ms more CPU per document. The parent keeps a backstop
deadline of its own and kills the worker's whole process group if it stops answering.

`run()` is thread-safe (intake calls it from `asyncio.to_thread`); at most `max_workers`
documents are parsed at once (default: the CPU count), the other callers wait their turn,
so fifty concurrent large mails cannot make fifty parsers. Workers are recycled after
`MAX_JOBS_PER_WORKER` documents, replaced when they retire or die, and all stopped by
`shutdown()`, which also runs at exit.

The memory limit (`Limits.memory`, `[limits] sandbox_memory`) is a budget above the
worker's baseline address space, measured by each worker once its libraries are loaded:
the libraries' own size (PyAV alone maps ~120 MB) differs between their versions, and a
document should get the same room whichever are installed.

Here: the pool and its API. mailgw.documents.process is the handle on one worker process,
mailgw.documents.protocol the wire, mailgw.documents.worker the other end.
"""

from __future__ import annotations

import atexit
import json
import os
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from mailgw.documents.process import SandboxUnavailable, WorkerBroken, WorkerProcess
from mailgw.documents.protocol import FAILED

if TYPE_CHECKING:
    from mailgw.ops.config import LimitsSettings

__all__ = ["Limits", "SandboxFailure", "SandboxUnavailable", "configure", "prestart", "run",
           "shutdown", "worker_pids"]

MAX_JOBS_PER_WORKER = 1000  # hygiene: a worker retires anyway after a bad document
BACKSTOP = 10.0  # seconds the parent waits beyond the worker's own deadline


@dataclass(frozen=True)
class Limits:
    """What one document may use. `memory` is a budget above the worker's baseline (its
    address space once its libraries are loaded, mailgw.documents.worker), not a total."""

    cpu_seconds: int = 20
    memory: int = 512_000_000
    wall_seconds: float | None = None  # None: twice the CPU limit plus 5 s
    fork_per_document: bool = False  # each document in a fresh fork of the worker
    max_pages: int = 200  # a document with more pages is counted, never rendered

    @classmethod
    def of(cls, limits: LimitsSettings) -> Limits:
        return cls(limits.sandbox_cpu_seconds, limits.sandbox_memory,
                   fork_per_document=limits.sandbox_fork_per_document,
                   max_pages=limits.max_pages)

    @property
    def wall(self) -> float:
        if self.wall_seconds is not None:
            return float(self.wall_seconds)
        return self.cpu_seconds * 2 + 5.0


class SandboxFailure(Exception):
    """The child died, was killed, or answered nothing readable: the document's fault."""


class _Pool:
    def __init__(self, max_workers: int) -> None:
        self.max_workers = max_workers
        self.slots = threading.BoundedSemaphore(max_workers)
        self.lock = threading.Lock()
        self.idle: list[WorkerProcess] = []
        self.busy: set[WorkerProcess] = set()
        self.closed = False

    def run(self, task: str, data: bytes, limits: Limits) -> dict[str, object]:
        with self.slots:
            worker = self._take()
            broken = True
            try:
                status, payload = worker.call(
                    task, data, cpu=limits.cpu_seconds, memory=limits.memory,
                    wall=limits.wall, fork=limits.fork_per_document,
                    deadline=time.monotonic() + limits.wall + BACKSTOP)
                broken = False
            except WorkerBroken as exc:
                if self.closed:
                    raise SandboxUnavailable("the sandbox was shut down") from None
                worker.kill()
                raise SandboxFailure(worker.death() or
                                     f"the check failed ({exc})") from None
            finally:
                self._give_back(worker, broken)
        if status == FAILED:
            reason = payload.decode("utf-8", "replace")
            raise SandboxFailure(reason if reason == "took too long"
                                 else f"the check failed ({reason})")
        try:
            answer = json.loads(payload)
        except ValueError:
            raise SandboxFailure("unreadable answer") from None
        if not isinstance(answer, dict):
            raise SandboxFailure("unreadable answer")
        return answer

    def _take(self) -> WorkerProcess:
        with self.lock:
            if self.closed:
                raise SandboxUnavailable("the sandbox was shut down")
            while self.idle:
                worker = self.idle.pop()
                if worker.alive():
                    self.busy.add(worker)
                    return worker
                worker.kill()  # died while idle (OOM killer, an operator): just reap it
        worker = WorkerProcess()
        with self.lock:
            if self.closed:
                worker.kill()
                raise SandboxUnavailable("the sandbox was shut down")
            self.busy.add(worker)
        return worker

    def _give_back(self, worker: WorkerProcess, broken: bool) -> None:
        with self.lock:
            self.busy.discard(worker)
            keep = not (broken or self.closed or worker.retiring
                        or worker.jobs >= MAX_JOBS_PER_WORKER)
            if keep:
                self.idle.append(worker)
        if broken:
            worker.kill()
        elif not keep:
            worker.close()

    def prestart(self, count: int) -> int:
        """Start idle workers up to `count` (at most max_workers), in parallel."""
        with self.lock:
            missing = min(count, self.max_workers) - len(self.idle) - len(self.busy)
        started: list[WorkerProcess] = []
        errors: list[BaseException] = []

        def one() -> None:
            try:
                started.append(WorkerProcess())
            except BaseException as exc:  # noqa: BLE001 - reported below
                errors.append(exc)

        threads = [threading.Thread(target=one, daemon=True) for _ in range(max(missing, 0))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        with self.lock:
            if self.closed:
                leftover, started = started, []
            else:
                leftover = []
                self.idle.extend(started)
        for w in leftover:
            w.kill()
        if errors and not started:
            raise errors[0]
        return len(started)

    def close(self, *, kill_busy: bool) -> None:
        with self.lock:
            self.closed = True
            idle, self.idle = self.idle, []
            busy = list(self.busy)
        for worker in idle:
            worker.close()
        if kill_busy:
            for worker in busy:
                worker.kill(close_pipes=False)

    def pids(self) -> list[int]:
        with self.lock:
            return [w.pid for w in (*self.idle, *self.busy)]


_state_lock = threading.Lock()
_pool: _Pool | None = None
_max_workers = os.cpu_count() or 2


def _current() -> _Pool:
    global _pool
    with _state_lock:
        if _pool is None:
            _pool = _Pool(_max_workers)
        return _pool


def run(task: str, data: bytes, limits: Limits) -> dict[str, object]:
    """Run sandbox task `task` on `data` in a fresh, limited child; return its JSON answer.

    Raises SandboxFailure when the child is killed, times out or answers garbage (the
    document's fault), SandboxUnavailable when we cannot run it (ours, temporary).
    """
    return _current().run(task, data, limits)


def configure(max_workers: int) -> None:
    """At most `max_workers` documents parsed at once. Running checks finish on the old pool."""
    global _pool, _max_workers
    if max_workers < 1:
        raise ValueError("max_workers must be at least 1")
    with _state_lock:
        _max_workers = max_workers
        old, _pool = _pool, None
    if old is not None:
        old.close(kill_busy=False)


def prestart(count: int | None = None) -> int:
    """Start idle workers now (default: max_workers) so the first mails pay no start-up."""
    pool = _current()
    return pool.prestart(pool.max_workers if count is None else count)


def worker_pids() -> list[int]:
    """The worker processes alive now (for tests and diagnostics)."""
    with _state_lock:
        pool = _pool
    return pool.pids() if pool is not None else []


def shutdown() -> None:
    """Stop every worker (busy ones are killed) and reap them; `run` starts afresh later."""
    global _pool
    with _state_lock:
        old, _pool = _pool, None
    if old is not None:
        old.close(kill_busy=True)


def _forget_after_fork() -> None:
    """A forked copy of the parent must not touch (or kill) the parent's workers."""
    global _pool, _state_lock
    _pool = None
    _state_lock = threading.Lock()


atexit.register(shutdown)
os.register_at_fork(after_in_child=_forget_after_fork)
