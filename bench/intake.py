"""Intake throughput, CPU per message, sandbox overhead and memory, in one run.

Postfix's `smtp-source` sends the same prepared mail (From bench@example.com, Subject
`<password>:0170709901`, a 1-page PDF attached) to three targets, each its own process
on 127.0.0.1:

* raw     bench/raw_aiosmtpd.py: aiosmtpd built as mailgw builds it, answering 250;
* mailgw  `mailgw serve --roles smtp` on a temporary SQLite store: full intake (MIME parse,
          password check, page count in the sandbox, the job + ack committed);
* sink    Postfix `smtp-sink` (C, for scale).

Server CPU is utime+stime of the target and all its descendants (sandbox workers and
their forks) from /proc, before and after. Results are ratios against `raw` measured in the
same run. Then: the sandbox's added milliseconds per PDF (vs. parsing in-process, and vs.
the old one-interpreter-per-document design), peak RSS with 50 concurrent 10 MB mails (also
with `max_concurrent_data = 4`), and where intake's time goes (in-process, per step).

    .venv/bin/python bench/intake.py --quick        # a few minutes
    .venv/bin/python bench/intake.py                # more messages, 3 rounds (median)
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from email.message import EmailMessage
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import smtp_load  # noqa: E402
from mailgw.documents import sandbox  # noqa: E402
from mailgw.documents import tasks as sandbox_tasks  # noqa: E402
from mailgw.documents.samples import make_pdf  # noqa: E402

SMTP_SOURCE = "/usr/sbin/smtp-source"
SMTP_SINK = "/usr/sbin/smtp-sink"
SENDER = "bench@example.com"
RCPT = "fax@localhost"
PASSWORD = "Bench42pw"
NUMBER = "0170709901"
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")
CORPUS = Path(os.environ.get("MAILGW_CORPUS") or ROOT / "tests" / "corpus")


def log(*parts: object) -> None:
    print(*parts, file=sys.stderr, flush=True)


# -- documents and mails ----------------------------------------------------------------------

def pdf_of_size(size: int) -> bytes:
    """A valid 1-page PDF of about `size` bytes (its text stream makes up the rest)."""
    base = len(make_pdf([["mailgw bench"]]))
    line = "The quick brown fox jumps over the lazy dog 0123456789 " * 2
    lines = ["mailgw bench"] + [line] * max(0, (size - base) // (len(line) + 6))
    return make_pdf([lines])


def mail_bytes(pdf: bytes, message_id: str | None = None) -> bytes:
    msg = EmailMessage()
    msg["From"] = SENDER
    msg["To"] = RCPT
    msg["Subject"] = f"{PASSWORD}:{NUMBER}"
    if message_id:
        msg["Message-ID"] = message_id
    msg.set_content("Please fax the attached document.\n")
    msg.add_attachment(pdf, maintype="application", subtype="pdf", filename="bench.pdf")
    return msg.as_bytes()  # LF line ends: smtp-source sends each line with CRLF


def mail_of_size(size: int, message_id: str | None = None) -> bytes:
    """A fax mail of about `size` bytes in total (base64 makes the PDF 4/3 larger)."""
    overhead = len(mail_bytes(make_pdf([["x"]]), message_id)) - len(make_pdf([["x"]])) * 4 // 3
    return mail_bytes(pdf_of_size(max(300, (size - overhead) * 3 // 4)), message_id)


# -- processes ------------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, proc: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"target exited with {proc.returncode} before listening")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                s.recv(512)  # the greeting
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port} after {timeout} s")


def _proc_stat(pid: int) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text.rsplit(")", 1)[1].split()  # fields from 3 (state) on


def descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            stat = _proc_stat(int(entry.name))
            if stat is not None:
                children.setdefault(int(stat[1]), []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def tree_cpu(pid: int) -> float:
    """CPU seconds of a process and its descendants (reaped ones are in cutime/cstime)."""
    total = 0
    for p in [pid, *descendants(pid)]:
        stat = _proc_stat(p)
        if stat is not None:
            total += sum(int(v) for v in stat[11:15])  # utime stime cutime cstime
    return total / CLK_TCK


def rss(pid: int) -> int:
    try:
        return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE
    except OSError:
        return 0


class Target:
    name = ""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def command(self) -> list[str]:
        raise NotImplementedError

    def env(self) -> dict[str, str] | None:
        return None

    def start(self) -> None:
        self.log = open(self.workdir / f"{self.name}.log", "wb")  # noqa: SIM115
        self.proc = subprocess.Popen(self.command(), stdout=self.log, stderr=self.log,
                                     cwd=self.workdir, env=self.env())
        wait_port(self.port, self.proc)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()

    def jobs(self) -> int | None:
        return None


class Raw(Target):
    name = "raw"

    def command(self) -> list[str]:
        return [sys.executable, str(ROOT / "bench" / "raw_aiosmtpd.py"), str(self.port)]


class Sink(Target):
    name = "sink"

    def command(self) -> list[str]:
        user = ["-u", "nobody"] if os.geteuid() == 0 else []
        return [SMTP_SINK, *user, f"127.0.0.1:{self.port}", "256"]


class Mailgw(Target):
    name = "mailgw"
    smtp_extra = ""  # more [smtp] lines
    # The load generator is one address standing for many clients: exempt it from the
    # per-client connection caps (a checkout older than those caps does not know the key).
    exempt = 'client_limit_exceptions = ["127.0.0.1"]\n'

    def __init__(self, workdir: Path) -> None:
        super().__init__(workdir)
        self.db = workdir / f"{self.name}.db"
        self.config = workdir / f"{self.name}.toml"
        self.config.write_text(
            f'[smtp]\nlisten = "127.0.0.1:{self.port}"\nhostname = "bench.invalid"\n'
            f'{self.smtp_extra}{self.exempt}'
            f'[store]\nurl = "sqlite:///{self.db}"\n'
            f'[notify]\nsmarthost = "127.0.0.1:9"\n'
            f'[serve]\nroles = ["smtp"]\n[log]\nlevel = "info"\nformat = "json"\n')
        add = subprocess.run(self.cli("account", "add", SENDER, "--password-stdin"),
                             input=PASSWORD + "\n", capture_output=True, text=True,
                             env=self.env(), check=False)
        if add.returncode != 0:
            raise RuntimeError(f"mailgw account add failed: {add.stderr.strip()}")

    def cli(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "mailgw", "--config", str(self.config), *args]

    def command(self) -> list[str]:
        return self.cli("serve", "--roles", "smtp")

    def jobs(self) -> int:
        with sqlite3.connect(self.db) as db:
            return int(db.execute("select count(*) from job").fetchone()[0])


class MailgwBase(Mailgw):
    """mailgw from another checkout (`--baseline DIR`), measured in the same run."""

    name = "mailgw-base"
    checkout = ""
    exempt = ""  # set by main() when the baseline knows the key (older ones had no limits)

    def env(self) -> dict[str, str]:
        return {**os.environ, "PYTHONPATH": self.checkout}

    def cli(self, *args: str) -> list[str]:
        return [sys.executable, "-P", "-m", "mailgw", "--config", str(self.config), *args]


class MailgwData4(Mailgw):
    """mailgw with `[smtp] max_concurrent_data = 4` (default 8): memory phase only."""

    name = "mailgw-data4"
    smtp_extra = "max_concurrent_data = 4\n"


# -- the load -------------------------------------------------------------------------------

def smtp_source(port: int, mail_file: Path, count: int, sessions: int) -> float:
    """Send `count` mails over `sessions` parallel sessions; the elapsed seconds."""
    start = time.perf_counter()
    run = subprocess.run(
        [SMTP_SOURCE, "-m", str(count), "-s", str(sessions), "-f", SENDER, "-t", RCPT,
         "-M", "bench.invalid", "-F", str(mail_file), f"127.0.0.1:{port}"],
        capture_output=True, text=True, timeout=1800, check=False)
    elapsed = time.perf_counter() - start
    if run.returncode != 0:  # smtp-source stops at the first reply that is not 2xx
        raise RuntimeError(f"smtp-source failed: {run.stderr.strip()[:500]}")
    return elapsed


def smtp_source_each(port: int, files: list[Path], sessions: int,
                     deferred: list[str] | None = None) -> float:
    """One `smtp-source -m 1` per file, `sessions` at a time; the elapsed seconds.

    smtp-source sends its -F file unchanged every time, and mailgw rightly answers a
    repeated mail from its idempotency row (Message-ID, else a hash of the bytes) without
    committing again. Distinct mails need one file each, hence one smtp-source each: the
    server sees exactly what `smtp-source -m N -s S` shows it (a connection per mail).
    With `deferred`, a 4xx answer (the sending MTA would retry) is noted there, not fatal.
    """
    lock = threading.Lock()
    todo = list(reversed(files))
    errors: list[str] = []

    def session() -> None:
        while True:
            with lock:
                if not todo or errors:
                    return
                mail_file = todo.pop()
            run = subprocess.run(
                [SMTP_SOURCE, "-m", "1", "-s", "1", "-f", SENDER, "-t", RCPT,
                 "-M", "bench.invalid", "-F", str(mail_file), f"127.0.0.1:{port}"],
                capture_output=True, text=True, timeout=600, check=False)
            if run.returncode != 0:
                with lock:
                    if deferred is not None and ": 4" in run.stderr:
                        deferred.append(run.stderr.strip()[:500])
                    else:
                        errors.append(run.stderr.strip()[:500])

    threads = [threading.Thread(target=session) for _ in range(sessions)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - start
    if errors:
        raise RuntimeError(f"smtp-source failed: {errors[0]}")
    return elapsed


class Mails:
    """Prepared mail files: one repeated file, or as many distinct ones as wanted."""

    def __init__(self, workdir: Path, size: int) -> None:
        self.workdir = workdir
        self.size = size
        self.same = workdir / f"same-{size}.eml"
        self.same.write_bytes(mail_of_size(size))
        self.template = mail_of_size(size, "<" + "#" * 24 + "@bench.invalid>")
        self.serial = 0

    def distinct(self, count: int) -> list[Path]:
        files = []
        for _ in range(count):
            self.serial += 1
            path = self.workdir / f"each-{self.size}-{self.serial}.eml"
            unique = f"{self.size:010d}{self.serial:014d}"  # sizes share one account
            path.write_bytes(self.template.replace(b"#" * 24, unique.encode()))
            files.append(path)
        return files

    def clean(self, files: list[Path]) -> None:
        for path in files:
            path.unlink()


def children_cpu() -> float:
    """CPU seconds of this process's reaped children (the smtp-source processes)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def measure(target: Target, mails: Mails, count: int, sessions: int, method: str,
            reuse: int = 1) -> dict[str, float]:
    """One cell. `distinct`: one smtp-source per new mail; `same`: one `smtp-source -m`
    repeating one file; `load`: bench/smtp_load.py, new mails built before the clock,
    `reuse` mails per connection."""
    files = mails.distinct(count) if method == "distinct" else []
    prepared = smtp_load.distinct(mails.same.read_bytes(), count, f"{target.name}{mails.size}") \
        if method == "load" else []
    jobs_before = target.jobs()
    cpu_before, client_before = tree_cpu(target.pid), children_cpu()
    if method == "distinct":
        elapsed = smtp_source_each(target.port, files, sessions)
    elif method == "load":
        sent = smtp_load.run("127.0.0.1", target.port, prepared, sessions, reuse,
                             sender=SENDER, rcpt=RCPT, helo="bench.invalid")
        if sent.accepted != count:
            raise RuntimeError(f"smtp_load: {sent.accepted} of {count} accepted by "
                               f"{target.name}: {sent.errors}")
        elapsed = sent.seconds
    else:
        elapsed = smtp_source(target.port, mails.same, count, sessions)
    cpu = tree_cpu(target.pid) - cpu_before
    client = sent.client_cpu if method == "load" else children_cpu() - client_before
    jobs_after = target.jobs()
    mails.clean(files)
    result = {"msgs_per_s": count / elapsed, "cpu_ms_per_msg": cpu * 1000 / count,
              "client_cpu_ms_per_msg": client * 1000 / count}
    if method == "load" and target.name == "raw":  # the generator's check, interleaved:
        client_before = children_cpu()  # raw fed by one `smtp-source -m` right after
        result["raw_m_msgs_per_s"] = count / smtp_source(target.port, mails.same, count,
                                                         sessions)
        result["raw_m_client_cpu_ms_per_msg"] = (children_cpu() - client_before) * 1000 / count
    if method != "same" and jobs_before is not None and jobs_after is not None:
        result["jobs"] = jobs_after - jobs_before
        if result["jobs"] != count:  # every mail was answered 2xx: where did it go?
            log(f"  WARNING {target.name}: {result['jobs']} jobs for {count} new mails "
                f"(see {target.workdir / (target.name + '.log')})")
    return result


METHODS = ("distinct", "same", "load")


def warm_rate(target: Target, prepared: Mails, sessions: int, method: str, reuse: int
              ) -> float:
    """A few new mails, sent the cell's way: sandbox workers started, caches filled; the
    rate, to size the cell."""
    if method == "load":
        mails = smtp_load.distinct(prepared.same.read_bytes(), max(20, sessions * 4), "warm")
        sent = smtp_load.run("127.0.0.1", target.port, mails, sessions, reuse,
                             sender=SENDER, rcpt=RCPT, helo="bench.invalid")
        return sent.msgs_per_s
    warm = prepared.distinct(max(10, sessions * 2))
    rate = len(warm) / smtp_source_each(target.port, warm, sessions)
    prepared.clean(warm)
    return rate


def throughput(targets: list[Target], mails: dict[str, Mails], counts: dict[str, int],
               sessions_list: list[int], rounds: int, seconds: float,
               methods: tuple[str, ...] = METHODS, reuse: int = 1) -> list[dict[str, Any]]:
    """Each cell sends counts[size] mails, or fewer for a slow target (about `seconds`)."""
    rows = []
    for method in methods:
        for size, prepared in mails.items():
            for sessions in sessions_list:
                count = {}
                for target in targets:
                    rate = warm_rate(target, prepared, sessions, method, reuse)
                    count[target.name] = min(counts[size], max(20, int(rate * seconds)))
                samples: dict[str, list[dict[str, float]]] = {t.name: [] for t in targets}
                for _ in range(rounds):
                    for target in targets:  # interleaved, so drift hits every target alike
                        samples[target.name].append(measure(
                            target, prepared, count[target.name], sessions, method, reuse))
                for target in targets:
                    got = samples[target.name]
                    row = {"method": method, "size": size, "sessions": sessions,
                           "target": target.name, "count": count[target.name],
                           "rounds": rounds, "reuse": reuse if method == "load" else 1}
                    for key in ("msgs_per_s", "cpu_ms_per_msg", "client_cpu_ms_per_msg",
                                "raw_m_msgs_per_s", "raw_m_client_cpu_ms_per_msg"):
                        if key in got[0]:
                            row[key] = statistics.median(s[key] for s in got)
                    rows.append(row)
                    log(f"  {method:<8} {size:>6} s={sessions:<2} {target.name:<7} "
                        f"{row['msgs_per_s']:8.1f} msg/s "
                        f"{row['cpu_ms_per_msg']:7.2f} ms CPU/msg "
                        f"(client {row['client_cpu_ms_per_msg']:.2f})")
    return rows


# -- the sandbox alone ----------------------------------------------------------------------

def _oneshot(task: str, data: bytes, limits: sandbox.Limits) -> dict[str, object]:
    """The previous design: a new interpreter per document (kept here for comparison)."""

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_CPU, (limits.cpu_seconds, limits.cpu_seconds + 1))
        resource.setrlimit(resource.RLIMIT_AS, (limits.memory, limits.memory))
        os.setsid()

    proc = subprocess.run([sys.executable, "-P", "-m", "mailgw.documents", task],
                          input=data, capture_output=True, preexec_fn=limit, check=True,
                          env={"PYTHONPATH": str(ROOT)}, timeout=60)
    return dict(json.loads(proc.stdout))


def _median_ms(fn: Callable[[], object], n: int) -> float:
    times = []
    for _ in range(n):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def _cpu_ms(fn: Callable[[], object], n: int) -> float:
    """CPU milliseconds per call of this process and its children (the sandbox workers)."""
    before = tree_cpu(os.getpid())
    for _ in range(n):
        fn()
    return (tree_cpu(os.getpid()) - before) * 1000 / n


def isolation(n: int) -> list[dict[str, Any]]:
    """Per PDF: in-process, the warm worker reading it (the default), a fresh fork of the
    worker per document (`sandbox_fork_per_document`), and a new interpreter (old design)."""
    limits = sandbox.Limits()
    forked = sandbox.Limits(fork_per_document=True)
    docs = {"1-page PDF, 1 KB": pdf_of_size(700), "1-page PDF, 100 KB": pdf_of_size(75_000),
            "1-page PDF, 7.5 MB": pdf_of_size(7_500_000)}
    corpus_pdf = CORPUS / "pdfs" / "multipage-4-pages-pdflatex-outline.pdf"
    if corpus_pdf.exists():
        docs["corpus 4-page pdfLaTeX, 48 KB"] = corpus_pdf.read_bytes()
    sandbox.configure(os.cpu_count() or 2)
    sandbox.prestart()
    rows = []
    for name, data in docs.items():
        expected = sandbox_tasks.pdf_info(data)
        assert sandbox.run("pdf", data, limits) == expected == _oneshot("pdf", data, limits)
        assert sandbox.run("pdf", data, forked) == expected
        inproc = _median_ms(lambda d=data: sandbox_tasks.pdf_info(d), n)
        warm = _median_ms(lambda d=data: sandbox.run("pdf", d, limits), n)
        fork = _median_ms(lambda d=data: sandbox.run("pdf", d, forked), n)
        old = _median_ms(lambda d=data: _oneshot("pdf", d, limits), max(5, n // 4))
        rows.append({"document": name, "in_process_ms": inproc, "sandbox_ms": warm,
                     "fork_ms": fork, "oneshot_ms": old, "added_ms": warm - inproc,
                     "added_fork_ms": fork - inproc, "added_before_ms": old - inproc,
                     "cpu_ms": _cpu_ms(lambda d=data: sandbox.run("pdf", d, limits), 10 * n),
                     "cpu_fork_ms": _cpu_ms(lambda d=data: sandbox.run("pdf", d, forked),
                                            10 * n)})
        log(f"  {name:<32} in-process {inproc:7.2f} ms  worker {warm:7.2f} ms  "
            f"fork {fork:7.2f} ms  old one-shot {old:7.2f} ms")
    sandbox.shutdown()
    return rows


# -- memory under 50 concurrent large mails ---------------------------------------------------

@contextmanager
def peak_rss(pid: int) -> Iterator[dict[str, int]]:
    peak = {"server": rss(pid), "tree": 0, "before": rss(pid)}
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            own = rss(pid)
            tree = own + sum(rss(p) for p in descendants(pid))
            peak["server"] = max(peak["server"], own)
            peak["tree"] = max(peak["tree"], tree)
            stop.wait(0.02)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    try:
        yield peak
    finally:
        stop.set()
        thread.join()


def memory(targets: list[Target], mails: Mails, concurrent: int) -> list[dict[str, Any]]:
    rows = []
    for target in targets:
        files = mails.distinct(concurrent)
        deferred: list[str] = []
        jobs_before = target.jobs()
        with peak_rss(target.pid) as peak:
            elapsed = smtp_source_each(target.port, files, concurrent, deferred)
        mails.clean(files)
        jobs_after = target.jobs()
        row = {"target": target.name, "mails": concurrent, "deferred": len(deferred),
               "jobs": None if jobs_before is None or jobs_after is None
               else jobs_after - jobs_before,
               "mail_bytes": mails.same.stat().st_size, "seconds": elapsed,
               "rss_before_mb": peak["before"] / 1e6, "peak_rss_mb": peak["server"] / 1e6,
               "peak_tree_rss_mb": peak["tree"] / 1e6}
        rows.append(row)
        log(f"  {target.name:<7} {concurrent} x {row['mail_bytes'] / 1e6:.1f} MB: "
            f"peak RSS {row['peak_rss_mb']:.0f} MB (with children {row['peak_tree_rss_mb']:.0f}"
            f" MB), {elapsed:.1f} s, {len(deferred)} deferred (4xx), jobs {row['jobs']}")
    return rows


# -- where intake's time goes ---------------------------------------------------------------

def profile(workdir: Path, mails: Mails, n: int) -> dict[str, float]:
    """Intake in-process on a fresh SQLite store: milliseconds per step (median of n)."""
    import logging

    import structlog

    from mailgw.accounts import accounts
    from mailgw.app import prepare_store
    from mailgw.documents import checks as documents
    from mailgw.inbound.mail import parse_mail
    from mailgw.intake.service import Envelope, Intake
    from mailgw.notify.render import Renderer
    from mailgw.ops import config

    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    os.environ["MAILGW_STORE__URL"] = f"sqlite:///{workdir / 'profile.db'}"
    try:
        settings = config.load(None)
    finally:
        del os.environ["MAILGW_STORE__URL"]
    store = prepare_store(settings)
    with store.tx() as s:
        accounts.add_account(s, SENDER, PASSWORD, region="FR", lang="fr",
                             tz="Europe/Paris", credits=None)
    with store.read() as s:
        password_hash = accounts.find_by_sender(s, SENDER).password_hash  # type: ignore[union-attr]
    intake = Intake(store, settings, Renderer(from_address=settings.notify.from_address,
                                              domain=settings.gateway.domain))
    env = Envelope(mail_from=SENDER, rcpt_tos=(RCPT,))
    mail = mails.same.read_bytes()
    pdf = parse_mail(mail).documents()[0].data
    serial = iter(range(10**9))

    def new_mail() -> bytes:  # a distinct Message-ID each time: a new job, a real commit
        return mails.template.replace(b"#" * 24, f"p{next(serial):023d}".encode())

    def same_mail() -> object:  # the second time on: answered from memory (password checked)
        result = intake.handle(mail, env)
        assert result.code == 80, result
        return result

    def handle_new() -> object:
        result = intake.handle(new_mail(), env)
        assert result.code == 80 and not result.duplicate, result
        return result

    sandbox.prestart()
    steps = {
        "parse MIME (inbound.parse_mail)": lambda: parse_mail(mail, envelope_from=SENDER),
        "password check (argon2 verify)": lambda: accounts.verify_password(password_hash,
                                                                          PASSWORD),
        "page count in the sandbox": lambda: documents.check_pdf(pdf, intake.limits),
        "intake.handle, a mail seen before (no commit)": same_mail,
        "intake.handle, a new mail (job + ack committed)": handle_new,
    }
    out: dict[str, Any] = {}

    def run_steps(steps: dict[str, Callable[[], object]]) -> None:
        for name, fn in steps.items():
            fn()
            cpu0 = time.process_time()
            out[name] = _median_ms(fn, n)
            out[name + " [parent CPU]"] = (time.process_time() - cpu0) * 1000 / n
            log(f"  {name:<52} {out[name]:7.2f} ms")

    run_steps(steps)
    from argon2 import PasswordHasher

    from mailgw.store import Account

    light = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1).hash(PASSWORD)
    with store.tx() as s:
        for account in s.query(Account):
            account.password_hash = light
    run_steps({
        "password check, light argon2 hash": lambda: accounts.verify_password(light, PASSWORD),
        "intake.handle, seen before, light hash (no commit)": same_mail,
        "intake.handle, new mail, light hash (commit)": handle_new,
    })
    out["top"] = _top_functions(handle_new, n)
    sandbox.shutdown()
    store.dispose()
    return out


def _top_functions(fn: Callable[[], object], n: int, limit: int = 14) -> list[str]:
    """cProfile of `fn` run n times: the functions with the most cumulative time."""
    import cProfile
    import pstats

    prof = cProfile.Profile()
    prof.enable()
    for _ in range(n):
        fn()
    prof.disable()
    stats = pstats.Stats(prof)
    rows = []
    table: dict[Any, Any] = stats.stats  # type: ignore[attr-defined]
    for (file, line, func), (_, calls, _, cum, _) in table.items():
        where = f"{Path(file).parent.name}/{Path(file).name}:{line}({func})"
        rows.append((cum, f"{cum * 1000 / n:7.2f} ms/mail  {calls // n:>5} calls  {where}"))
    rows.sort(reverse=True)
    return [text for _, text in rows[:limit]]


# -- report ---------------------------------------------------------------------------------

def both_ways(by: dict[tuple[str, str, int, str], dict[str, Any]]) -> list[str]:
    """Intake fed by smtp-source and by smtp_load, and the generator's own check (raw fed
    by smtp_load against raw fed by one `smtp-source -m`)."""
    lines = ["", "## Intake both ways (new mails; mailgw against raw, same run)", "",
             "| mail | sessions | fed by | raw msgs/s | mailgw msgs/s | throughput ratio "
             "| raw CPU ms/msg | mailgw CPU ms/msg | server-CPU ratio |",
             "|---|---|---|---|---|---|---|---|---|"]
    check = []
    for (method, size, sessions, target), raw in by.items():
        if target != "raw" or method == "same":
            continue
        gw = by.get((method, size, sessions, "mailgw"))
        if gw is not None:
            fed = "smtp_load" if method == "load" else "smtp-source each"
            lines.append(f"| {size} | {sessions} | {fed} | {raw['msgs_per_s']:.1f} | "
                         f"{gw['msgs_per_s']:.1f} | {gw['msgs_per_s'] / raw['msgs_per_s']:.2f}"
                         f" | {raw['cpu_ms_per_msg']:.2f} | {gw['cpu_ms_per_msg']:.2f} | "
                         f"{raw['cpu_ms_per_msg'] / max(gw['cpu_ms_per_msg'], 1e-9):.2f} |")
        if method == "load" and "raw_m_msgs_per_s" in raw:
            check.append(f"| {size} | {sessions} | {raw['msgs_per_s']:.1f} | "
                         f"{raw['raw_m_msgs_per_s']:.1f} | "
                         f"{raw['msgs_per_s'] / raw['raw_m_msgs_per_s']:.2f} | "
                         f"{raw['client_cpu_ms_per_msg']:.2f} | "
                         f"{raw['raw_m_client_cpu_ms_per_msg']:.2f} |")
    if check:
        lines += ["", "Raw aiosmtpd fed by smtp_load vs by one `smtp-source -m` of as many mails"
                  " right after it (each round; medians):", "",
                  "| mail | sessions | smtp_load msgs/s | smtp-source -m msgs/s | ratio "
                  "| smtp_load client CPU ms/msg | smtp-source client CPU ms/msg |",
                  "|---|---|---|---|---|---|---|", *check]
    return lines


def report(results: dict[str, Any]) -> str:
    lines = ["## Throughput (same run)", "",
             "`distinct`: every mail new, one smtp-source per mail; `same`: `smtp-source -m N`"
             " repeating one file (mailgw answers repeats from memory, password checked); "
             "`load`: every mail new, sent by bench/smtp_load.py (built before the clock). "
             "`vs raw` compares with raw fed the same way; `vs raw -m` with raw fed by one "
             "`smtp-source -m N` (its best, so the stricter ratio). `CPU ratio`: raw's "
             "server CPU per mail / this target's, fed the same way. Client CPU: the "
             "smtp-source processes, or smtp_load's event loop thread.", "",
             "| mails | mail | sessions | target | n | msgs/s | server CPU ms/msg | client CPU "
             "ms/msg | vs raw | vs raw -m | CPU ratio |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    by = {(r["method"], r["size"], r["sessions"], r["target"]): r
          for r in results["throughput"]}
    for r in results["throughput"]:
        raw = by[(r["method"], r["size"], r["sessions"], "raw")]
        base = raw["msgs_per_s"]
        best = by.get(("same", r["size"], r["sessions"], "raw"), {}).get("msgs_per_s", base)
        lines.append(f"| {r['method']} | {r['size']} | {r['sessions']} | {r['target']} | "
                     f"{r['count']} | {r['msgs_per_s']:.1f} | {r['cpu_ms_per_msg']:.2f} | "
                     f"{r.get('client_cpu_ms_per_msg', 0):.2f} | "
                     f"{100 * r['msgs_per_s'] / base:.0f} % | "
                     f"{100 * r['msgs_per_s'] / best:.0f} % | "
                     f"{raw['cpu_ms_per_msg'] / max(r['cpu_ms_per_msg'], 1e-9):.2f} |")
    lines += both_ways(by)
    lines += ["", "## Sandbox: milliseconds per PDF (wall, median; CPU incl. the workers)", "",
              "| document | in-process | warm worker | added | CPU | fork per document "
              "| added | CPU | old one-shot | added |",
              "|---|---|---|---|---|---|---|---|---|---|"]
    for r in results["isolation"]:
        lines.append(f"| {r['document']} | {r['in_process_ms']:.2f} | {r['sandbox_ms']:.2f} | "
                     f"{r['added_ms']:.2f} | {r['cpu_ms']:.2f} | {r['fork_ms']:.2f} | "
                     f"{r['added_fork_ms']:.2f} | {r['cpu_fork_ms']:.2f} | "
                     f"{r['oneshot_ms']:.1f} | {r['added_before_ms']:.1f} |")
    lines += ["", "## Memory: concurrent large mails", "",
              "| target | mails x size | RSS before | peak RSS (server) | peak RSS (with "
              "children) | s | deferred (4xx) | jobs |",
              "|---|---|---|---|---|---|---|---|"]
    for r in results["memory"]:
        lines.append(f"| {r['target']} | {r['mails']} x {r['mail_bytes'] / 1e6:.1f} MB | "
                     f"{r['rss_before_mb']:.0f} MB | "
                     f"{r['peak_rss_mb']:.0f} MB | {r['peak_tree_rss_mb']:.0f} MB | "
                     f"{r['seconds']:.1f} | {r['deferred']} | "
                     f"{'-' if r['jobs'] is None else r['jobs']} |")
    if results.get("profile"):
        lines += ["", "## Intake in-process, per step (median ms)", "",
                  "| step | wall ms | parent CPU ms |", "|---|---|---|"]
        prof = results["profile"]
        for name, value in prof.items():
            if not name.endswith("[parent CPU]") and name != "top":
                lines.append(f"| {name} | {value:.2f} | {prof[name + ' [parent CPU]']:.2f} |")
        lines += ["", "cProfile of a new mail's `Intake.handle` (light hash), cumulative:", "",
                  "```", *prof.get("top", []), "```"]
    return "\n".join(lines) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer messages, one round")
    ap.add_argument("--rounds", type=int, help="rounds per cell (median); default 1 / 3")
    ap.add_argument("--json", type=Path, help="also write the raw results here")
    ap.add_argument("--keep", action="store_true", help="keep the work directory (logs)")
    ap.add_argument("--baseline", type=Path, help="another checkout of mailgw (e.g. a git "
                    "worktree of an older commit), measured too, as target mailgw-base")
    ap.add_argument("--methods", default=",".join(METHODS), help="throughput cells: "
                    "distinct (one smtp-source per mail), same (one smtp-source -m), load "
                    "(bench/smtp_load.py)")
    ap.add_argument("--sessions", default="1,10", help="comma list of session counts")
    ap.add_argument("--load-reuse", type=int, default=1, help="mails per connection in the "
                    "load cells (1: a connection per mail, as smtp-source)")
    ap.add_argument("--skip", default="", help="comma list of phases to skip: "
                    "throughput,isolation,memory,profile")
    args = ap.parse_args()
    for tool in (SMTP_SOURCE, SMTP_SINK):
        if not os.access(tool, os.X_OK):
            print(f"{tool} not found: apt-get install postfix (keep its service stopped)",
                  file=sys.stderr)
            return 2
    skip = set(filter(None, args.skip.split(",")))
    rounds = args.rounds or (1 if args.quick else 3)
    counts = {"1 KB": 300, "100 KB": 150} if args.quick else {"1 KB": 1000, "100 KB": 400}
    results: dict[str, Any] = {"quick": args.quick, "cpus": os.cpu_count(),
                               "python": sys.version.split()[0]}
    tmp = tempfile.mkdtemp(prefix="mailgw-bench-")
    try:
        work = Path(tmp)
        log(f"work directory: {work}")
        os.chmod(work, 0o755)
        mails = {"1 KB": Mails(work, 1024), "100 KB": Mails(work, 100 * 1024)}
        large = Mails(work, 10_000_000)
        log(f"mails: {', '.join(f'{k}: {v.same.stat().st_size} B' for k, v in mails.items())}"
            f", large: {large.same.stat().st_size} B")
        targets: list[Target] = []
        try:
            if args.baseline:
                MailgwBase.checkout = str(args.baseline.resolve())
                if any("client_limit_exceptions" in p.read_text(encoding="utf-8")
                       for p in args.baseline.resolve().glob("mailgw/**/config*.py")):
                    MailgwBase.exempt = Mailgw.exempt
            for cls in (Raw, Mailgw, *([MailgwBase] if args.baseline else []), Sink):
                target = cls(work)
                target.start()
                targets.append(target)
            if "throughput" not in skip:
                log("throughput:")
                methods = tuple(m for m in args.methods.split(",") if m)
                sessions = [int(n) for n in args.sessions.split(",") if n]
                results["throughput"] = throughput(targets, mails, counts, sessions, rounds,
                                                   8 if args.quick else 20, methods,
                                                   args.load_reuse)
            if "memory" not in skip:
                log("memory:")
                data4 = MailgwData4(work)
                data4.start()
                targets.append(data4)
                results["memory"] = memory([t for t in targets if t.name != "sink"], large, 50)
        finally:
            for target in targets:
                target.stop()
        if "isolation" not in skip:
            log("sandbox:")
            results["isolation"] = isolation(10 if args.quick else 40)
        if "profile" not in skip:
            log("intake steps:")
            try:
                results["profile"] = profile(work, mails["1 KB"], 20 if args.quick else 60)
            except Exception as exc:  # noqa: BLE001 - intake's API moves; the rest still counts
                log(f"  skipped: {type(exc).__name__}: {exc}")
    finally:
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
    results.setdefault("throughput", [])
    results.setdefault("isolation", [])
    results.setdefault("memory", [])
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    print(report(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
