"""The document sandbox: right answers, real limits, thread safety, nothing left behind."""

from __future__ import annotations

import dataclasses
import json
import os
import resource
import signal
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from mailgw.documents import sandbox
from mailgw.documents.samples import make_pdf
from mailgw.documents.sandbox import Limits, SandboxFailure
from tests import sandbox_selftest
from tests.conftest import wait_until
from tests.render_samples import raw_pdf

LIMITS = Limits(cpu_seconds=20, memory=512_000_000)
HOSTILE = Limits(cpu_seconds=1, memory=300_000_000, wall_seconds=3)
FORKED = dataclasses.replace(HOSTILE, fork_per_document=True)
MODES = pytest.mark.parametrize("hostile", [HOSTILE, FORKED], ids=["in-worker", "forked"])


@pytest.fixture(autouse=True)
def fresh_pool(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    sandbox_selftest.enable(monkeypatch)  # the hostile tasks, from a fresh pool
    yield
    sandbox.shutdown()
    sandbox.configure(os.cpu_count() or 2)


def expected_pdfs(corpus: Path) -> list[dict[str, object]]:
    return list(json.loads((corpus / "expected_pdfs.json").read_text()))


def children_of(pids: list[int]) -> list[int]:
    """Live (non-zombie) processes whose parent is one of `pids`."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[1]) in pids and fields[0] != "Z":
            found.append(int(entry.name))
    return found


def _sleeping(pid: int) -> bool:
    """The worker is in `_selftest_sleep` (its main thread waits in clock_nanosleep)."""
    try:
        return "nanosleep" in Path(f"/proc/{pid}/task/{pid}/wchan").read_text() or \
            "hrtimer" in Path(f"/proc/{pid}/task/{pid}/wchan").read_text()
    except OSError:
        return False


def running(pid: int) -> bool:
    """True while `pid` exists and is not a zombie waiting for a reaper that is not us."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def small_pdf() -> bytes:
    return make_pdf([["page one"], ["page two"]])


def _pdf(objects: list[bytes]) -> bytes:
    return raw_pdf(objects)  # a hand-made object list: the hostile trees below


def self_referencing_pdf() -> bytes:
    return _pdf([b"<< /Type /Catalog /Pages 2 0 R >>",
                 b"<< /Type /Pages /Kids [2 0 R] /Count 1 >>"])


def deeply_nested_pdf(depth: int = 20_000) -> bytes:
    objects = [b"<< /Type /Catalog /Pages 2 0 R >>"]
    objects += [b"<< /Type /Pages /Kids [%d 0 R] /Count 1 >>" % (n + 1)
                for n in range(2, depth + 2)]
    objects.append(b"<< /Type /Page /MediaBox [0 0 10 10] >>")
    return _pdf(objects)


# -- right answers ------------------------------------------------------------------------

def test_corpus_pdfs_give_the_expected_pages(corpus: Path) -> None:
    for fact in expected_pdfs(corpus):
        data = (corpus / "pdfs" / str(fact["file"])).read_bytes()
        answer = sandbox.run("pdf", data, LIMITS)
        assert answer["usable"] is fact["opens_without_password"], fact["file"]
        if fact["opens_without_password"]:
            assert answer["pages"] == fact["pages"], fact["file"]
            assert answer["error"] is None
        else:
            assert answer["error"], fact["file"]


def test_wav_and_merge_tasks() -> None:
    from mailgw.documents.samples import make_wav

    answer = sandbox.run("wav", make_wav(2.0), LIMITS)
    duration = answer["duration"]
    assert answer["usable"] is True and isinstance(duration, float)
    assert abs(duration - 2.0) < 0.01
    from mailgw.documents.checks import merge_pdfs

    merged = merge_pdfs([small_pdf(), make_pdf([["three"]])], LIMITS)
    assert merged is not None
    assert sandbox.run("pdf", merged, LIMITS)["pages"] == 3


def test_each_document_runs_in_a_fresh_limited_child() -> None:
    first = sandbox.run("_selftest_echo", b"abc", FORKED)
    second = sandbox.run("_selftest_echo", b"abcd", FORKED)
    assert first["size"] == 3 and second["size"] == 4
    assert first["pid"] != second["pid"]  # single-use children ...
    assert first["ppid"] == second["ppid"] in sandbox.worker_pids()  # ... of a warm worker
    assert first["pid"] != os.getpid() and first["ppid"] != os.getpid()
    assert first["cpu_limit"] == [1, 2]
    base = first["baseline"]  # the worker's own address space: the budget comes on top
    assert isinstance(base, int) and 0 < base < 2 << 30 and second["baseline"] == base
    assert first["as_limit"] == [base + 300_000_000, base + 300_000_000]


def test_by_default_a_warm_worker_reads_documents_under_each_ones_limits() -> None:
    sandbox.configure(1)
    first = sandbox.run("_selftest_echo", b"abc", HOSTILE)
    second = sandbox.run("_selftest_echo", b"abcd", LIMITS)
    assert first["size"] == 3 and second["size"] == 4
    assert first["pid"] == second["pid"] == sandbox.worker_pids()[0] != os.getpid()
    soft, hard = first["cpu_limit"]  # type: ignore[misc]
    assert 2 <= soft <= 5  # the CPU the worker used so far, + 1 s of allowance (+ rounding)
    assert hard == resource.RLIM_INFINITY  # never lowered: it could not be raised again
    base = first["baseline"]  # the worker's own address space: the budget comes on top
    assert isinstance(base, int) and 0 < base < 2 << 30 and second["baseline"] == base
    assert first["as_limit"][0] == base + 300_000_000  # type: ignore[index]
    assert second["as_limit"][0] == base + 512_000_000  # type: ignore[index]
    assert second["cpu_limit"][0] >= 20  # type: ignore[index]


def test_an_unusable_document_retires_its_worker() -> None:
    sandbox.configure(1)
    assert sandbox.run("pdf", small_pdf(), LIMITS)["pages"] == 2
    (worker,) = sandbox.worker_pids()
    assert sandbox.run("pdf", small_pdf(), LIMITS)["pages"] == 2
    assert sandbox.worker_pids() == [worker]  # good documents: the same warm worker
    assert sandbox.run("pdf", b"%PDF-1.4 broken", LIMITS)["usable"] is False
    wait_until(lambda: not running(worker), what="the worker to retire")
    assert sandbox.run("pdf", small_pdf(), LIMITS)["pages"] == 2
    assert sandbox.worker_pids() not in ([], [worker])  # the next one read it in a new one


# -- hostile documents --------------------------------------------------------------------

@MODES
@pytest.mark.parametrize("task, reason", [
    ("_selftest_spin", "CPU time limit"),
    ("_selftest_alloc", "memory limit"),
    ("_selftest_sleep", "took too long"),
    ("_selftest_garbage", "unreadable answer"),
    ("_selftest_crash", "SIGSEGV"),
])
def test_a_hostile_document_is_its_own_fault_and_the_next_one_works(task: str, reason: str,
                                                                     hostile: Limits) -> None:
    sandbox.configure(1)
    assert sandbox.run("pdf", small_pdf(), LIMITS)["pages"] == 2
    workers = sandbox.worker_pids()
    if task != "_selftest_sleep":  # the CPU or memory limit, not the wall clock of a busy
        hostile = dataclasses.replace(hostile, wall_seconds=60)  # machine, must stop it
    with pytest.raises(SandboxFailure, match=reason):
        sandbox.run(task, b"%PDF-1.4 hostile", hostile)
    assert sandbox.run("pdf", small_pdf(), LIMITS) == {"usable": True, "pages": 2,
                                                       "error": None}
    if hostile.fork_per_document:
        assert sandbox.worker_pids() == workers  # the worker survived its child
        assert children_of(workers) == []  # and the killed child was reaped
    elif task != "_selftest_garbage":  # the worker that read it is gone, and reaped
        assert sandbox.worker_pids() != workers and not running(workers[0])


@MODES
@pytest.mark.parametrize("make", [self_referencing_pdf, deeply_nested_pdf])
def test_hostile_page_trees_are_not_usable(make: object, hostile: Limits) -> None:
    data = make()  # type: ignore[operator]
    try:
        answer = sandbox.run("pdf", data, hostile)
    except SandboxFailure:
        pass  # killed is as good as refused: both are code 93
    else:
        assert answer["usable"] is False
    assert sandbox.run("pdf", small_pdf(), LIMITS)["pages"] == 2


def test_a_worker_that_dies_mid_job_is_replaced() -> None:
    sandbox.configure(1)
    sandbox.run("pdf", small_pdf(), LIMITS)
    (worker,) = sandbox.worker_pids()
    errors: list[BaseException] = []

    def hang() -> None:
        try:
            sandbox.run("_selftest_sleep", b"", Limits(1, 300_000_000, wall_seconds=30,
                                                         fork_per_document=True))
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    t = threading.Thread(target=hang)
    t.start()
    child = wait_until(lambda: children_of([worker]), what="the worker's child")[0]
    os.kill(worker, signal.SIGKILL)
    t.join(20)
    assert not t.is_alive()
    assert len(errors) == 1 and isinstance(errors[0], SandboxFailure)
    assert sandbox.run("pdf", small_pdf(), LIMITS)["pages"] == 2
    assert sandbox.worker_pids() != [worker]
    wait_until(lambda: not running(child), what="the orphaned child to be killed")


# -- concurrency --------------------------------------------------------------------------

def test_twenty_threads_get_their_own_answers(corpus: Path) -> None:
    sandbox.configure(3)
    facts = [f for f in expected_pdfs(corpus) if f["opens_without_password"]]
    docs = [((corpus / "pdfs" / str(f["file"])).read_bytes(), f["pages"]) for f in facts]
    results: dict[int, object] = {}
    most = [0]
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set():
            most[0] = max(most[0], len(sandbox.worker_pids()))
            stop.wait(0.001)

    def one(i: int) -> None:
        data, _ = docs[i % len(docs)]
        for _ in range(3):
            try:
                results[i] = sandbox.run("pdf", data, LIMITS)["pages"]
            except BaseException as exc:  # noqa: BLE001
                results[i] = exc
                return

    watcher = threading.Thread(target=watch)
    watcher.start()
    threads = [threading.Thread(target=one, args=(i,)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    stop.set()
    watcher.join()
    assert results == {i: docs[i % len(docs)][1] for i in range(20)}
    assert 1 <= most[0] <= 3  # never more workers than configured


# -- nothing left behind ------------------------------------------------------------------

def test_shutdown_leaves_no_process() -> None:
    sandbox.configure(2)
    assert sandbox.prestart() == 2
    workers = sandbox.worker_pids()
    assert len(workers) == 2 and all(running(p) for p in workers)
    sandbox.shutdown()
    assert sandbox.worker_pids() == []
    for pid in workers:
        assert not Path(f"/proc/{pid}").exists()  # exited and reaped
    assert sandbox.run("pdf", small_pdf(), LIMITS)["pages"] == 2  # starts afresh


def test_shutdown_kills_a_busy_worker_and_its_child() -> None:
    sandbox.configure(1)
    sandbox.run("pdf", small_pdf(), LIMITS)
    (worker,) = sandbox.worker_pids()
    errors: list[BaseException] = []

    def hang() -> None:
        try:
            sandbox.run("_selftest_sleep", b"", Limits(1, 300_000_000, wall_seconds=30,
                                                         fork_per_document=True))
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    t = threading.Thread(target=hang)
    t.start()
    child = wait_until(lambda: children_of([worker]), what="the worker's child")[0]
    sandbox.shutdown()
    t.join(20)
    assert [type(e) for e in errors] == [sandbox.SandboxUnavailable]  # ours, not the mail's
    assert not Path(f"/proc/{worker}").exists()
    wait_until(lambda: not running(child), what="the child to be killed")


SCRIPT = textwrap.dedent("""
    import sys
    from mailgw.documents import sandbox
    from mailgw.documents.samples import make_pdf
    sandbox.configure(2)
    sandbox.prestart()
    assert sandbox.run("pdf", make_pdf([["x"]]), sandbox.Limits())["pages"] == 1
    print(" ".join(map(str, sandbox.worker_pids())), flush=True)
    if sys.argv[1] == "hang":
        sandbox.run("_selftest_sleep", b"", sandbox.Limits(1, 300_000_000, wall_seconds=60,
                                                           fork_per_document=sys.argv[2] == "1"))
""")


def test_no_worker_outlives_a_parent_that_exits_normally() -> None:
    out = subprocess.run([sys.executable, "-c", SCRIPT, "exit"], capture_output=True,
                         text=True, timeout=60, check=True)
    workers = [int(p) for p in out.stdout.split()]
    assert len(workers) == 2
    for pid in workers:  # atexit shut them down before the parent went
        assert not running(pid)


@pytest.mark.parametrize("fork", [False, True], ids=["in-worker", "forked"])
def test_no_worker_outlives_a_parent_that_is_killed(fork: bool) -> None:
    """Even one busy with a 60 s document: the hang-up of its stdin ends it at once."""
    proc = subprocess.Popen([sys.executable, "-c", SCRIPT, "hang", str(int(fork))],
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        workers = [int(p) for p in proc.stdout.readline().split()]
        assert len(workers) == 2
        grandchildren = []
        if fork:
            grandchildren = wait_until(lambda: children_of(workers), what="a busy child")
        else:
            wait_until(lambda: any(_sleeping(p) for p in workers), what="a busy worker")
        proc.kill()
        proc.wait(10)
        for pid in [*workers, *grandchildren]:  # end of stdin: each worker kills its child
            wait_until(lambda pid=pid: not running(pid), what=f"process {pid} to end")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
