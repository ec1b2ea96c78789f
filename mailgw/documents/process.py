"""The parent's handle on one sandbox worker process (mailgw.documents.worker): start it,
hand it a document, read its answer, close or kill it. The pool (mailgw.documents.sandbox)
decides which worker reads which document and when one is replaced.

The document goes through a memfd the worker inherits (one copy each way instead of a
10 MB trip through a pipe); the request and the answer go through its stdin and stdout
(mailgw.documents.protocol). The worker runs in a session of its own, so killing its
process group also ends the fork it may be running a document in.
"""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import time

import mailgw
from mailgw.documents.protocol import (
    EXTRA_TASKS_ENV,
    FAILED,
    OK,
    REQUEST,
    RESPONSE,
    RETIRING,
    killed_by,
)

SPAWN_TIMEOUT = 30.0  # seconds for a new worker to import its libraries and say it is ready
CLOSE_TIMEOUT = 2.0  # seconds a worker gets to exit after its stdin closes


class SandboxUnavailable(RuntimeError):
    """Our own trouble (no worker could be started, the sandbox was shut down): temporary."""


class WorkerBroken(Exception):
    """The worker itself stopped following the protocol; it is killed and replaced."""


class WorkerProcess:
    def __init__(self) -> None:
        self.jobs = 0
        self.retiring = False  # it said it exits after its last answer
        self.memfd = os.memfd_create("mailgw-sandbox-document", os.MFD_CLOEXEC)
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-P", "-m", "mailgw.documents", "--worker", str(self.memfd)],
                pass_fds=(self.memfd,), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL, start_new_session=True, close_fds=True, bufsize=0,
                env=child_env())
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
                raise WorkerBroken("bad greeting")
        except WorkerBroken as exc:
            self.kill()
            raise SandboxUnavailable(f"the sandbox worker did not start ({exc})") from None

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def call(self, task: str, data: bytes, *, cpu: int, memory: int, wall: float, fork: bool,
             deadline: float) -> tuple[int, bytes]:
        """(status, payload) from the worker; WorkerBroken when the worker misbehaves or
        has not answered by `deadline` (time.monotonic)."""
        name = task.encode("ascii")
        head = REQUEST.pack(len(name), cpu, memory, wall, len(data), int(fork))
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
            raise WorkerBroken("unknown status")
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
                raise WorkerBroken(f"write: {exc.strerror}") from None

    def _read(self, size: int, deadline: float) -> bytes:
        chunks: list[bytes] = []
        while size:
            _wait(self.r, select.POLLIN, deadline)
            try:
                chunk = os.read(self.r, min(size, 1 << 20))
            except OSError as exc:
                raise WorkerBroken(f"read: {exc.strerror}") from None
            if not chunk:
                raise WorkerBroken("the worker died")
            chunks.append(chunk)
            size -= len(chunk)
        return b"".join(chunks)

    def death(self) -> str | None:
        """Why the worker died while it read a document in-process; None for our own
        SIGKILL (the backstop, or the OOM killer) and anything that is not a signal."""
        returncode = self.proc.returncode
        if returncode is None or returncode >= 0 or -returncode == signal.SIGKILL:
            return None
        return killed_by(-returncode)

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


def _wait(fd: int, event: int, deadline: float) -> None:
    left = deadline - time.monotonic()
    if left <= 0:
        raise WorkerBroken("no answer from the worker")
    poller = select.poll()
    poller.register(fd, event)
    if not poller.poll(left * 1000):
        raise WorkerBroken("no answer from the worker")


_env: dict[str, str] | None = None


def child_env() -> dict[str, str]:
    """A worker's whole environment: where to find mailgw, PATH, one malloc arena, and
    the tests' extra tasks when they ask for them (read at each start, never cached)."""
    global _env
    if _env is None:
        # One malloc arena: RLIMIT_AS counts reserved address space, and glibc reserves
        # 64 MB for each thread's arena (the worker has a watchdog thread).
        _env = {"PYTHONPATH": _package_root(), "PATH": os.environ.get("PATH", ""),
                "MALLOC_ARENA_MAX": "1"}
    extra = os.environ.get(EXTRA_TASKS_ENV)
    return {**_env, EXTRA_TASKS_ENV: extra} if extra else _env


def _package_root() -> str:
    """The parent's import path, so the child finds mailgw however it was installed."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(mailgw.__file__)))
    return os.pathsep.join([root, *(p for p in sys.path if p)])
