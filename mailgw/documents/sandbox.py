"""Run untrusted-document work in a warm worker process with CPU, memory and wall-time limits.

PDF libraries have a history of infinite loops and memory bombs; a worker that is killed,
times out or answers garbage is the document's fault (code 93), never ours.

Starting a Python interpreter and importing pypdf for every document costs 115-170 ms, so
the isolation is kept warm: a small pool of worker processes (`python -m
mailgw.documents.tasks --worker`, pypdf imported once). A worker reads each document under
the document's own limits (RLIMIT_AS, a CPU allowance, a wall-clock timer the kernel
enforces, no file writes) and **retires** after any document that failed or was unusable,
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
"""

from __future__ import annotations

import atexit
import json
import os
import select
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mailgw.ops.config import LimitsSettings

from mailgw.documents.tasks import FAILED, OK, REQUEST, RESPONSE, RETIRING, killed_by

MAX_JOBS_PER_WORKER = 1000  # hygiene: a worker retires anyway after a bad document
SPAWN_TIMEOUT = 30.0  # seconds for a new worker to import pypdf and say it is ready
BACKSTOP = 10.0  # seconds the parent waits beyond the worker's own deadline
CLOSE_TIMEOUT = 2.0  # seconds a worker gets to exit after its stdin closes


@dataclass(frozen=True)
class Limits:
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


class SandboxUnavailable(RuntimeError):
    """Our own trouble (no worker could be started, the sandbox was shut down): temporary."""


class _WorkerBroken(Exception):
    """The worker itself stopped following the protocol; it is killed and replaced."""


class _Worker:
    def __init__(self) -> None:
        self.jobs = 0
        self.retiring = False  # it said it exits after its last answer
        self.memfd = os.memfd_create("mailgw-sandbox-document", os.MFD_CLOEXEC)
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-P", "-m", "mailgw.documents.tasks", "--worker",
                 str(self.memfd)], pass_fds=(self.memfd,),
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                start_new_session=True, close_fds=True, bufsize=0, env=_child_env())
        except BaseException:
            os.close(self.memfd)
            raise
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.w = self.proc.stdin.fileno()
        self.r = self.proc.stdout.fileno()
        os.set_blocking(self.w, False)
        try:
            status, size = RESPONSE.unpack(self._read(RESPONSE.size,
                                                      time.monotonic() + SPAWN_TIMEOUT))
            if status != OK or size != 0:
                raise _WorkerBroken("bad greeting")
        except _WorkerBroken as exc:
            self.kill()
            raise SandboxUnavailable(f"the sandbox worker did not start ({exc})") from None

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def call(self, task: str, data: bytes, limits: Limits) -> tuple[int, bytes]:
        """(status, payload) from the worker; _WorkerBroken when the worker misbehaves."""
        name = task.encode("ascii")
        deadline = time.monotonic() + limits.wall + BACKSTOP
        head = REQUEST.pack(len(name), limits.cpu_seconds, limits.memory, limits.wall,
                            len(data), int(limits.fork_per_document))
        try:
            os.ftruncate(self.memfd, 0)
            view = memoryview(data)
            while view:
                view = view[os.pwrite(self.memfd, view, len(data) - len(view)):]
        except OSError as exc:  # no room in memory for the document: ours, temporary
            raise SandboxUnavailable(f"cannot hand the document over: {exc}") from None
        self._write(head + name, deadline)
        status, size = RESPONSE.unpack(self._read(RESPONSE.size, deadline))
        self.retiring = bool(status & RETIRING)
        status &= ~RETIRING
        if status not in (OK, FAILED):
            raise _WorkerBroken("unknown status")
        self.jobs += 1
        payload = self._read(size, deadline)
        if len(data) > 1 << 20:
            os.ftruncate(self.memfd, 0)  # give a large document's memory back now
        return status, payload

    def _write(self, data: bytes, deadline: float) -> None:
        view = memoryview(data)
        while view:
            _wait(self.w, select.POLLOUT, deadline)
            try:
                view = view[os.write(self.w, view):]
            except BlockingIOError:
                continue
            except OSError as exc:  # BrokenPipeError: the worker died
                raise _WorkerBroken(f"write: {exc.strerror}") from None

    def _read(self, size: int, deadline: float) -> bytes:
        chunks: list[bytes] = []
        while size:
            _wait(self.r, select.POLLIN, deadline)
            try:
                chunk = os.read(self.r, min(size, 1 << 20))
            except OSError as exc:
                raise _WorkerBroken(f"read: {exc.strerror}") from None
            if not chunk:
                raise _WorkerBroken("the worker died")
            chunks.append(chunk)
            size -= len(chunk)
        return b"".join(chunks)

    def close(self) -> None:
        """Ask the worker to exit (end of its stdin), kill it if it does not."""
        try:
            if self.proc.stdin is not None:
                self.proc.stdin.close()
        except OSError:
            pass
        try:
            self.proc.wait(CLOSE_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.kill()
            return
        self._close_pipes()

    def kill(self, *, close_pipes: bool = True) -> None:
        """Kill the worker and its process group (the fork working on a document), reap it.

        close_pipes=False when another thread may still be polling them (it cleans up).
        """
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        self.proc.wait()
        if close_pipes:
            self._close_pipes()

    def _close_pipes(self) -> None:
        if self.memfd >= 0:
            os.close(self.memfd)
            self.memfd = -1
        for pipe in (self.proc.stdin, self.proc.stdout):
            try:
                if pipe is not None:
                    pipe.close()
            except OSError:
                pass


def _death(returncode: int | None) -> str | None:
    """Why a worker that read a document in-process died; None for our own SIGKILL (the
    backstop, or the OOM killer) and anything that is not a signal."""
    if returncode is None or returncode >= 0 or -returncode == signal.SIGKILL:
        return None
    return killed_by(-returncode)


def _wait(fd: int, event: int, deadline: float) -> None:
    left = deadline - time.monotonic()
    if left <= 0:
        raise _WorkerBroken("no answer from the worker")
    poller = select.poll()
    poller.register(fd, event)
    if not poller.poll(left * 1000):
        raise _WorkerBroken("no answer from the worker")


class _Pool:
    def __init__(self, max_workers: int) -> None:
        self.max_workers = max_workers
        self.slots = threading.BoundedSemaphore(max_workers)
        self.lock = threading.Lock()
        self.idle: list[_Worker] = []
        self.busy: set[_Worker] = set()
        self.closed = False

    def run(self, task: str, data: bytes, limits: Limits) -> dict[str, object]:
        with self.slots:
            worker = self._take()
            broken = True
            try:
                status, payload = worker.call(task, data, limits)
                broken = False
            except _WorkerBroken as exc:
                if self.closed:
                    raise SandboxUnavailable("the sandbox was shut down") from None
                worker.kill()
                raise SandboxFailure(_death(worker.proc.returncode) or
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

    def _take(self) -> _Worker:
        with self.lock:
            if self.closed:
                raise SandboxUnavailable("the sandbox was shut down")
            while self.idle:
                worker = self.idle.pop()
                if worker.alive():
                    self.busy.add(worker)
                    return worker
                worker.kill()  # died while idle (OOM killer, an operator): just reap it
        worker = _Worker()
        with self.lock:
            if self.closed:
                worker.kill()
                raise SandboxUnavailable("the sandbox was shut down")
            self.busy.add(worker)
        return worker

    def _give_back(self, worker: _Worker, broken: bool) -> None:
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
        started: list[_Worker] = []
        errors: list[BaseException] = []

        def one() -> None:
            try:
                started.append(_Worker())
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

_env: dict[str, str] | None = None


def _child_env() -> dict[str, str]:
    global _env
    if _env is None:
        # One malloc arena: RLIMIT_AS counts reserved address space, and glibc reserves
        # 64 MB for each thread's arena (the worker has a watchdog thread).
        _env = {"PYTHONPATH": _package_root(), "PATH": os.environ.get("PATH", ""),
                "MALLOC_ARENA_MAX": "1"}
    return _env


def _package_root() -> str:
    """The parent's import path, so the child finds mailgw however it was installed."""
    import mailgw

    root = os.path.dirname(os.path.dirname(os.path.abspath(mailgw.__file__)))
    return os.pathsep.join([root, *(p for p in sys.path if p)])
