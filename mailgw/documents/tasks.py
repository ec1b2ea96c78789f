"""What runs inside the sandbox: the tasks, and the worker that runs them under limits.

`python -m mailgw.documents.tasks TASK` runs one task on stdin and answers one JSON object on
stdout (the original one-shot mode, kept for debugging). `python -m mailgw.documents.tasks
--worker FD` is what `mailgw.documents.sandbox` keeps warm: a long-lived process with pypdf, PyAV
(documents.audio), PDFium, Pillow and img2pdf (documents.render) already imported. Each request
says how to run its document:

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

Protocol on the worker's stdin/stdout (big-endian):
  request  = ">BIQdQB" (task-name length, cpu seconds, memory bytes, wall seconds,
             data length, 1 to fork), then the task name; the data is in the memfd given
             as `--worker FD`, written by the parent before the request;
  response = ">BQ" (status, payload length), then the payload: the task's JSON answer
             (status 0) or a short reason in UTF-8 (status 1: the task failed); status
             has RETIRING (0x80) added when the worker exits after this answer.
"""

from __future__ import annotations

import fcntl
import gc
import io
import json
import os
import select
import signal
import struct
import sys
import time
import wave
from collections.abc import Callable

from mailgw.documents import audio, render, render_pdf


def pdf_info(data: bytes) -> dict[str, object]:
    """Pages by walking the page tree (never trusting /Count); usable = opens without password."""
    try:
        pages = len(render_pdf.open_pdf(data).pages)
    except render.Refusal as refusal:
        return {"usable": False, "pages": None, "error": refusal.error}
    except Exception as exc:  # noqa: BLE001 - any parser failure means "broken"
        return {"usable": False, "pages": None, "error": f"broken PDF ({type(exc).__name__})"}
    if pages < 1:
        return {"usable": False, "pages": 0, "error": "the PDF has no page"}
    return {"usable": True, "pages": pages, "error": None}


def wav_info(data: bytes) -> dict[str, object]:
    try:
        with wave.open(io.BytesIO(data)) as w:
            frames, rate = w.getnframes(), w.getframerate()
    except (wave.Error, EOFError, ValueError) as exc:
        return {"usable": False, "duration": None, "error": f"not a readable WAV file ({exc})"}
    if rate <= 0 or frames <= 0:
        return {"usable": False, "duration": 0.0, "error": "the sound is empty"}
    return {"usable": True, "duration": frames / rate, "error": None}


def pdf_merge(data: bytes) -> dict[str, object]:
    """Several PDFs (each framed by a 4-byte big-endian length) → one, for one fax."""
    import base64
    import logging
    import struct

    from pypdf import PdfWriter

    logging.disable(logging.CRITICAL)
    writer = PdfWriter()
    offset = 0
    while offset < len(data):
        (size,) = struct.unpack(">I", data[offset:offset + 4])
        part = data[offset + 4:offset + 4 + size]
        offset += 4 + size
        writer.append(io.BytesIO(part))
    out = io.BytesIO()
    writer.write(out)
    return {"pdf": base64.b64encode(out.getvalue()).decode("ascii")}


# -- tasks for the sandbox's own tests: what a hostile document can make a parser do ----------

def _selftest_spin(data: bytes) -> dict[str, object]:
    """An infinite loop (pypdf has had several): stopped by RLIMIT_CPU."""
    while True:
        data = data[1:] + data[:1]


def _selftest_alloc(data: bytes) -> dict[str, object]:
    """Allocation without bound (a decompression bomb): stopped by RLIMIT_AS."""
    hoard = []
    while True:
        hoard.append(bytearray(16 << 20))


def _selftest_sleep(data: bytes) -> dict[str, object]:
    """Stuck without using CPU: stopped by the wall-clock deadline."""
    time.sleep(3600)
    return {}


def _selftest_garbage(data: bytes) -> object:
    """An answer that is not a JSON object."""
    return ["not", "an", "object"]


def _selftest_crash(data: bytes) -> dict[str, object]:
    """A parser that segfaults."""
    os.kill(os.getpid(), signal.SIGSEGV)
    return {}


def _selftest_pdfium(data: bytes) -> dict[str, object]:
    """A PDF handed to PDFium without mailgw.documents.render's checks (what the checks prevent)."""
    import pypdfium2

    pdf = pypdfium2.PdfDocument(data)
    pdf[0].render(scale=0.1)
    return {}


def _selftest_echo(data: bytes) -> dict[str, object]:
    """Answers with facts about its own process (for the tests of the limits)."""
    import resource

    return {"pid": os.getpid(), "ppid": os.getppid(), "size": len(data),
            "cpu_limit": list(resource.getrlimit(resource.RLIMIT_CPU)),
            "as_limit": list(resource.getrlimit(resource.RLIMIT_AS))}


TASKS: dict[str, Callable[[bytes], object]] = {
    "pdf": pdf_info, "wav": wav_info, "pdfmerge": pdf_merge, "audio": audio.audio_info,
    "render": render.render_task,
    "_selftest_spin": _selftest_spin, "_selftest_alloc": _selftest_alloc,
    "_selftest_sleep": _selftest_sleep, "_selftest_garbage": _selftest_garbage,
    "_selftest_crash": _selftest_crash, "_selftest_echo": _selftest_echo,
    "_selftest_pdfium": _selftest_pdfium,
}

# -- the worker ----------------------------------------------------------------------------

REQUEST = struct.Struct(">BIQdQB")
RESPONSE = struct.Struct(">BQ")
OK, FAILED = 0, 1
RETIRING = 0x80  # added to the status: the worker exits after this answer
RETIRE_RSS = 256 << 20  # a worker grown past this (a large document's heap) is replaced
PIPE_SIZE = 1 << 20  # the default /proc/sys/fs/pipe-max-size
MAX_ANSWER = 256 << 20  # a merged PDF comes back base64-encoded


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


def _warm_up() -> None:
    """Import what the tasks import lazily, so that no forked child pays for it."""
    import base64  # noqa: F401
    import logging

    import av  # noqa: F401 - FFmpeg's libraries, for the sound task
    import img2pdf  # noqa: F401 - the rendering task's libraries
    import pypdfium2  # noqa: F401
    from PIL import Image, TiffImagePlugin  # noqa: F401
    from pypdf import PdfReader, PdfWriter  # noqa: F401

    from mailgw.documents.samples import make_pdf, make_wav

    logging.disable(logging.CRITICAL)
    sample = make_pdf([["warm-up"], ["page 2"]])
    frame = struct.pack(">I", len(sample)) + sample
    try:
        pdf_info(sample)
        pdf_merge(frame + frame)
        audio.audio_info(b'{"rate": 8000}\n' + make_wav(0.5))
        render.render_task(b'{"kind": "pdf", "output": "pdf"}\n' + sample)
    except Exception:  # noqa: BLE001, S110 - only an optimisation; the forks import lazily
        pass


def _child(task: Callable[[bytes], object], data: bytes, cpu: int, memory: int,
           out: int) -> None:
    """In the forked child: limits first, then the untrusted work; never returns."""
    import resource

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


def killed_by(sig: int) -> str:
    """Why a process reading a document was ended by `sig`: the limit the kernel enforced
    (CPU, wall clock in the worker's own timer) or the signal's name."""
    if sig == signal.SIGXCPU:
        return "killed: over the CPU time limit"
    if sig == signal.SIGALRM:
        return "took too long"
    try:
        return f"killed by {signal.Signals(sig).name}"
    except ValueError:
        return f"killed by signal {sig}"


def _describe(status: int) -> str:
    if os.WIFSIGNALED(status):
        return killed_by(os.WTERMSIG(status))
    code = os.WEXITSTATUS(status)
    return {71: "the parser crashed", 72: "over the memory limit"}.get(code, f"exit {code}")


def _run_one(name: str, data: bytes, cpu: int, memory: int, wall: float,
             keep_out: tuple[int, ...]) -> tuple[int, bytes] | None:
    """Fork, watch, reap. None when the parent went away (the worker must exit)."""
    task = TASKS.get(name)
    if task is None:
        return FAILED, f"unknown task {name!r}".encode()
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


def serve(data_fd: int) -> None:
    """The worker loop: one request at a time until stdin closes.

    The document itself comes in `data_fd`, a memfd the parent writes before each request
    (one copy each way instead of a 10 MB trip through a pipe).
    """
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
    import resource
    import threading

    threading.Thread(target=_exit_with_parent, args=(control,), daemon=True).start()
    _warm_up()
    resource.setrlimit(resource.RLIMIT_FSIZE, (0, 0))  # no task ever writes a file
    gc.collect()
    gc.freeze()  # forked children then leave the shared heap pages alone
    _write_all(reply, RESPONSE.pack(OK, 0))  # ready
    while True:
        head = _read_exact(control, REQUEST.size)
        if head is None:
            return
        name_len, cpu, memory, wall, size, fork = REQUEST.unpack(head)
        name = _read_exact(control, name_len)
        data = _pread_exact(data_fd, size)
        if name is None or data is None:
            return
        task = name.decode("ascii", "replace")
        if fork:
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
            retire = not clean or _rss() > RETIRE_RSS
        _write_all(reply, RESPONSE.pack(status | (RETIRING if retire else 0), len(payload))
                   + payload)
        if retire:
            return


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


def _run_here(name: str, data: bytes, cpu: int, memory: int,
              wall: float) -> tuple[int, bytes, bool]:
    """Run the task in this process under the document's limits: (status, payload, clean).
    Over the CPU allowance (SIGXCPU) or the wall clock (SIGALRM) the kernel ends the worker,
    even inside C code; the parent reads the signal as the reason. Not clean (a failure, or
    a document found unusable: it may have been hostile) makes the worker retire."""
    import resource

    task = TASKS.get(name)
    if task is None:
        return FAILED, f"unknown task {name!r}".encode(), True
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
    import resource

    _, hard = resource.getrlimit(which)
    if hard != resource.RLIM_INFINITY and (value == resource.RLIM_INFINITY or value > hard):
        value = hard
    resource.setrlimit(which, (value, hard))


def _rss() -> int:
    try:
        with open("/proc/self/statm", "rb") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


def _main(argv: list[str]) -> None:
    import resource

    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    if argv[1] == "--worker":
        serve(int(argv[2]))
        return
    task = TASKS[argv[1]]
    json.dump(task(sys.stdin.buffer.read()), sys.stdout)


if __name__ == "__main__":
    _main(sys.argv)
