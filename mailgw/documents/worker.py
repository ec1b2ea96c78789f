"""The sandbox worker: the child side of mailgw.documents.sandbox, which runs the tasks
(mailgw.documents.tasks) on untrusted documents under limits.

`python -m mailgw.documents --worker FD` is what the sandbox keeps warm: a long-lived process
with pypdf, PyAV, PDFium, Pillow and img2pdf already imported (and each task run once). It
speaks mailgw.documents.protocol on its stdin/stdout; each request says how to run its
document:

- in the worker itself (the default): RLIMIT_AS and a CPU soft limit (the CPU used so far
  plus the document's allowance) are set before the task, a wall-clock timer after which
  the kernel ends the worker (SIGALRM, default action). A task that fails in any way, or a
  worker grown large, answers and then **retires**: it exits and the parent starts a fresh
  one, so a hostile document never shares a process with the next. Costs ~0.2 ms of CPU.
- in a fresh fork (`[limits] sandbox_fork_per_document`): the worker forks a single-use
  child, sets the child's limits (a fresh fork starts at zero CPU seconds, so the limit is
  exact), enforces the deadline, reaps it and reports its answer or its death. Not even a
  good document shares a process with the next; costs ~3 ms of CPU per document (the
  fork's copy-on-write faults), measured in docs/benchmarks.md.

The memory a request gives (`[limits] sandbox_memory`) is a budget **above the worker's
baseline**: the address space it has once its libraries are loaded and warmed up, measured
once at its start (`baseline()`). RLIMIT_AS counts every mapping, and the libraries alone
take a few hundred MB of it (PyAV ~120 MB) that vary from one wheel to the next; a budget
on top of them means the same document gets the same room whatever the versions.

`python -m mailgw.documents TASK` runs one task on stdin and answers one JSON object on
stdout, without limits (for debugging). The modules named in the environment variable
`protocol.EXTRA_TASKS_ENV` add their TASKS (the tests' hook, tests/sandbox_selftest.py).
"""

from __future__ import annotations

import fcntl
import gc
import importlib
import json
import os
import resource
import select
import signal
import sys
import threading
import time

from mailgw.documents import tasks
from mailgw.documents.protocol import (
    EXTRA_TASKS_ENV,
    FAILED,
    MAX_ANSWER,
    OK,
    REQUEST,
    RESPONSE,
    RETIRING,
    killed_by,
)
from mailgw.documents.tasks import Task

RETIRE_RSS = 256 << 20  # a worker grown past this (a large document's heap) is replaced
PIPE_SIZE = 1 << 20  # the default /proc/sys/fs/pipe-max-size

_baseline = 0  # bytes of address space once warmed up: the memory budget starts there


def baseline() -> int:
    """The worker's address space measured at its start (0 outside a worker)."""
    return _baseline


def load_tasks(extra: str) -> dict[str, Task]:
    """The production tasks, plus the TASKS of each module named in `extra` (comma-separated)."""
    found = dict(tasks.TASKS)
    for name in filter(None, (part.strip() for part in extra.split(","))):
        found.update(importlib.import_module(name).TASKS)
    return found


def _read_exact(fd: int, size: int) -> bytes | None:
    """`size` bytes from fd, or None at end of file."""
    buf = bytearray(size)
    view = memoryview(buf)
    got = 0
    while got < size:
        n = os.readv(fd, [view[got:]])
        if not n:
            return None
        got += n
    return bytes(buf)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _pread_exact(fd: int, size: int) -> bytes | None:
    chunks = []
    offset = 0
    while offset < size:
        chunk = os.pread(fd, size - offset, offset)
        if not chunk:
            return None
        chunks.append(chunk)
        offset += len(chunk)
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def _child(task: Task, data: bytes, cpu: int, memory: int, out: int) -> None:
    """In the forked child: limits first, then the untrusted work; never returns."""
    code = 70
    try:
        resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
        resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        resource.setrlimit(resource.RLIMIT_FSIZE, (0, 0))
        gc.enable()
        answer = json.dumps(task(data)).encode()
        _write_all(out, answer)
        code = 0
    except MemoryError:
        code = 72
    except BaseException:  # noqa: BLE001 - any escape is a failed check, told by the exit code
        code = 71
    finally:
        os._exit(code)


def _describe(status: int) -> str:
    if os.WIFSIGNALED(status):
        return killed_by(os.WTERMSIG(status))
    code = os.WEXITSTATUS(status)
    return {71: "the parser crashed", 72: "over the memory limit"}.get(code, f"exit {code}")


def _run_one(task: Task, data: bytes, cpu: int, memory: int, wall: float,
             keep_out: tuple[int, ...]) -> tuple[int, bytes] | None:
    """Fork, watch, reap. None when the parent went away (the worker must exit)."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        os.close(r)
        for fd in keep_out:  # the child must not hold the parent's pipes (the parent
            os.close(fd)  # sees the worker's death as an end of file) nor the document file
        _child(task, data, cpu, memory, w)
    os.close(w)
    del data
    deadline = time.monotonic() + wall
    chunks: list[bytes] = []
    size = 0
    verdict: bytes | None = None
    poller = select.poll()
    poller.register(r, select.POLLIN)
    control = keep_out[0]
    poller.register(control, select.POLLIN)
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                verdict = b"took too long"
                break
            events = dict(poller.poll(left * 1000))
            if control in events:  # the parent closed our stdin or died: stop everything
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                return None
            if r in events:
                chunk = os.read(r, 1 << 20)
                if not chunk:
                    break
                size += len(chunk)
                if size > MAX_ANSWER:
                    verdict = b"answer too large"
                    break
                chunks.append(chunk)
    finally:
        os.close(r)
    if verdict is not None:
        os.kill(pid, signal.SIGKILL)
    _, status = os.waitpid(pid, 0)
    if verdict is not None:
        return FAILED, verdict
    if status != 0:
        return FAILED, _describe(status).encode()
    return OK, b"".join(chunks)


def _run_here(task: Task, data: bytes, cpu: int, memory: int,
              wall: float) -> tuple[int, bytes, bool]:
    """Run the task in this process under the document's limits: (status, payload, clean).
    Over the CPU allowance (SIGXCPU) or the wall clock (SIGALRM) the kernel ends the worker,
    even inside C code; the parent reads the signal as the reason. Not clean (a failure, or
    a document found unusable: it may have been hostile) makes the worker retire."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    _soft_limit(resource.RLIMIT_CPU, int(usage.ru_utime + usage.ru_stime) + 1 + cpu)
    _soft_limit(resource.RLIMIT_AS, memory)
    signal.setitimer(signal.ITIMER_REAL, max(wall, 0.001))
    try:
        result = task(data)
        answer = json.dumps(result).encode()
    except MemoryError:
        return FAILED, b"over the memory limit", False
    except Exception:  # noqa: BLE001 - any escape is a failed check
        return FAILED, b"the parser crashed", False
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        _soft_limit(resource.RLIMIT_AS, resource.RLIM_INFINITY)
        _soft_limit(resource.RLIMIT_CPU, resource.RLIM_INFINITY)
    if len(answer) > MAX_ANSWER:
        return FAILED, b"answer too large", False
    return OK, answer, not (isinstance(result, dict) and result.get("usable") is False)


def _soft_limit(which: int, value: int) -> None:
    """Set a soft limit, never above the hard one (lowering the hard one is forever)."""
    _, hard = resource.getrlimit(which)
    if hard != resource.RLIM_INFINITY and (value == resource.RLIM_INFINITY or value > hard):
        value = hard
    resource.setrlimit(which, (value, hard))


def _statm(field: int) -> int:
    """One field of /proc/self/statm in bytes (0: the address space, 1: the resident set)."""
    try:
        with open("/proc/self/statm", "rb") as f:
            return int(f.read().split()[field]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


def _exit_with_parent(control: int) -> None:
    """Our stdin closed (the parent is done with us, or died): end now, with whatever we
    run (a fork), even in the middle of a document. Polling for no event reports
    only the hang-up, never the next request."""
    poller = select.poll()
    poller.register(control, 0)
    while True:
        for _, event in poller.poll():
            if event & (select.POLLHUP | select.POLLERR | select.POLLNVAL):
                if os.getpgid(0) == os.getpid():  # our own group (start_new_session)
                    os.killpg(0, signal.SIGKILL)
                os._exit(0)


def serve(data_fd: int, registry: dict[str, Task]) -> None:
    """The worker loop: one request at a time until stdin closes.

    The document itself comes in `data_fd`, a memfd the parent writes before each request
    (one copy each way instead of a 10 MB trip through a pipe).
    """
    global _baseline
    control = os.dup(0)
    reply = os.dup(1)
    for fd in (control, reply):  # fewer round trips for a 10 MB document
        try:
            fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, PIPE_SIZE)
        except OSError:
            pass
    devnull = os.open(os.devnull, os.O_RDWR)
    os.dup2(devnull, 0)
    os.dup2(devnull, 1)  # a stray print can never corrupt the protocol
    os.close(devnull)
    threading.Thread(target=_exit_with_parent, args=(control,), daemon=True).start()
    tasks.warm_up()
    resource.setrlimit(resource.RLIMIT_FSIZE, (0, 0))  # no task ever writes a file
    gc.collect()
    gc.freeze()  # forked children then leave the shared heap pages alone
    _baseline = _statm(0)
    _write_all(reply, RESPONSE.pack(OK, 0))  # ready
    while True:
        head = _read_exact(control, REQUEST.size)
        if head is None:
            return
        name_len, cpu, budget, wall, size, fork = REQUEST.unpack(head)
        name = _read_exact(control, name_len)
        data = _pread_exact(data_fd, size)
        if name is None or data is None:
            return
        task_name = name.decode("ascii", "replace")
        task = registry.get(task_name)
        memory = _baseline + budget
        if task is None:
            status, payload, retire = FAILED, f"unknown task {task_name!r}".encode(), False
        elif fork:
            outcome = _run_one(task, data, cpu, memory, wall, (control, reply, data_fd))
            del data
            if outcome is None:
                return
            (status, payload), retire = outcome, False
        else:
            status, payload, clean = _run_here(task, data, cpu, memory, wall)
            del data
            if size > 1 << 16:  # a PdfReader is a reference cycle: it would keep its document
                gc.collect()
            retire = not clean or _statm(1) > RETIRE_RSS
        _write_all(reply, RESPONSE.pack(status | (RETIRING if retire else 0), len(payload))
                   + payload)
        if retire:
            return


def main(argv: list[str]) -> None:
    """`--worker FD`: serve the sandbox; `TASK`: run one task on stdin, answer on stdout."""
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    registry = load_tasks(os.environ.get(EXTRA_TASKS_ENV, ""))
    if argv[1] == "--worker":
        serve(int(argv[2]), registry)
        return
    json.dump(registry[argv[1]](sys.stdin.buffer.read()), sys.stdout)
