"""Dispatcher claim path: claims/s with a no-op driver, against a bare claim loop.

Cells (each a fresh queue of deliveries, each worker its own process):

* bare      one claim per transaction: SELECT … ORDER BY due LIMIT 1 (FOR UPDATE SKIP
            LOCKED on PostgreSQL; BEGIN IMMEDIATE on SQLite), UPDATE to done, COMMIT.
            Raw DBAPI (sqlite3 / psycopg) on a table with only id, state, due, hits:
            no lease, no attempt row, no outcome. The baseline.
* per-call  mailgw's functions: `leases.claim(limit=1)` then `results.record` (attempt
            row, state rules, job row locked, credits, outcome): one claim, one record.
* batch     the same functions the way the dispatcher uses them: `leases.claim(limit=B)`,
            then `results.record_many` (one transaction for the B results).
* dispatcher the real `Dispatcher.run` with a no-op driver of B lines (asyncio, threads,
            heartbeat and reaper loops running, JSON log lines, the documents of each
            claimed batch read once), stopped when the queue is empty.

`on_final` is a no-op in every cell: the notice's rendering is measured by bench/notify.py.
Every mailgw cell then checks the store: each delivery delivered, exactly one attempt row,
`attempts == 1` (a second claim would add a second attempt: "double claims").

Then claim time: the median of single `leases.claim(limit=B)` calls with 1 k and 1 M
deliveries queued, and the query plans of the claim's SELECTs (index-driven or not).

    .venv/bin/python bench/dispatch.py                 # 3 rounds, median; ~15 min on 2 CPUs
    .venv/bin/python bench/dispatch.py --smoke         # seconds: proves it runs
    .venv/bin/python bench/dispatch.py --json out.json --skip claimtime

Markdown on stdout, progress on stderr. PostgreSQL: 127.0.0.1:5432 as user postgres
(`MAILGW_BENCH_PG` overrides); a database of its own is created and dropped.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import platform
import socket
import sqlite3
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sqlalchemy import event, text  # noqa: E402

from mailgw.dispatch.drivers.base import CallRequest, CallResult, Driver  # noqa: E402
from mailgw.ops import config  # noqa: E402
from mailgw.store import Account, Store  # noqa: E402
from mailgw.store import dispatch as leases  # noqa: E402
from mailgw.store import record as results  # noqa: E402

PG_ADMIN = os.environ.get("MAILGW_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
LEASE = 60.0
RESULT = CallResult("delivered", pages_sent=1, csid="BENCH", duration=0.0, provider_ref="noop")
FINAL_STATES = ("delivered", "partial", "failed", "cancelled", "expired")


def log(*parts: object) -> None:
    print(*parts, file=sys.stderr, flush=True)


def no_final(_s: Any, _job: Any, _d: Any) -> None:
    """on_final: nothing (notices are bench/notify.py's business)."""


# -- databases ------------------------------------------------------------------------------

def pg_available() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 5432), timeout=1):
            return True
    except OSError:
        return False


@contextmanager
def pg_database() -> Iterator[str]:
    import psycopg

    name = f"mailgw_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield PG_ADMIN.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


class Backend:
    """One database for the whole run; `reset` empties it between cells."""

    def __init__(self, kind: str, url: str, tmp: Path | None = None):
        self.kind = kind
        self.url = url  # mailgw's URL (sqlite:///… or postgresql://…)
        self.tmp = tmp

    @property
    def sqlite_path(self) -> str:
        assert self.url.startswith("sqlite:///")
        return self.url[len("sqlite:///"):]

    def fresh(self) -> Store:
        """An empty mailgw schema with one account (id 1), and an empty bare table."""
        if self.kind == "sqlite":
            for suffix in ("", "-wal", "-shm"):
                Path(self.sqlite_path + suffix).unlink(missing_ok=True)
            store = Store(self.url)
            store.upgrade()
        else:
            store = Store(self.url)
            if not store.has_tables():
                store.upgrade()
            with store.engine.begin() as c:
                c.execute(text("TRUNCATE attempt, outbox_mail, delivery, job, sender_address,"
                               " account RESTART IDENTITY CASCADE"))
        with store.tx() as s:
            s.add(Account(email="bench@example.com", password_hash="x", region="FR", lang="en",
                          tz="Europe/Paris", credits=None))
        with store.engine.begin() as c:
            c.execute(text("DROP TABLE IF EXISTS bench_bare"))
            due = "TIMESTAMPTZ" if self.kind == "postgresql" else "TEXT"
            c.execute(text(f"CREATE TABLE bench_bare (id INTEGER PRIMARY KEY, state TEXT NOT NULL,"
                           f" due {due} NOT NULL, hits INTEGER NOT NULL DEFAULT 0)"))
            c.execute(text("CREATE INDEX ix_bench_bare_due ON bench_bare (state, due)"))
        return store

    def seed(self, store: Store, n: int, per_job: int, bare: bool) -> None:
        """n queued deliveries (distinct numbers, due in the past, jobs of per_job)."""
        jobs = (n + per_job - 1) // per_job
        base = datetime.now(UTC) - timedelta(days=30)
        p = {"n": n, "jobs": jobs, "k": per_job, "created": base}
        with store.engine.begin() as c:
            if self.kind == "sqlite":
                epoch = int(base.timestamp())
                ts = (f"strftime('%Y-%m-%d %H:%M:%S', {epoch} + i / 1000, 'unixepoch')"
                      " || printf('.%06d', (i % 1000) * 1000)")
                gen = "WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < {})"
                p["created"] = base.replace(tzinfo=None)
                c.execute(text(
                    gen.format(":jobs") + " INSERT INTO job (id, account_id, channel, sender,"
                    " message_id, state, outcome, pages, created_at) SELECT i, 1, 'fax',"
                    " 'bench@example.com', '<b' || i || '@example.com>', 'active',"
                    " 'in_progress', 1, :created FROM c"), p)
                c.execute(text(
                    gen.format(":n") + " INSERT INTO delivery (id, job_id, number, state,"
                    " next_attempt_at, attempts, pages_sent, pages_total, credits_reserved,"
                    f" cancel_requested) SELECT i, (i - 1) / :k + 1, '+3317' || printf('%07d', i),"
                    f" 'queued', {ts}, 0, 0, 1, 0, 0 FROM c"), p)
                if bare:
                    c.execute(text(gen.format(":n") + " INSERT INTO bench_bare (id, state, due)"
                                   f" SELECT i, 'queued', {ts} FROM c"), p)
            else:
                ts = ":created + i * interval '1 millisecond'"
                c.execute(text(
                    "INSERT INTO job (id, account_id, channel, sender, message_id, state, outcome,"
                    " pages, created_at) SELECT i, 1, 'fax', 'bench@example.com',"
                    " '<b' || i || '@example.com>', 'active', 'in_progress', 1, :created"
                    " FROM generate_series(1, :jobs) i"), p)
                c.execute(text(
                    "INSERT INTO delivery (id, job_id, number, state, next_attempt_at, attempts,"
                    " pages_sent, pages_total, credits_reserved, cancel_requested)"
                    " SELECT i, (i - 1) / :k + 1, '+3317' || lpad(i::text, 7, '0'), 'queued',"
                    f" {ts}, 0, 0, 1, 0, false FROM generate_series(1, :n) i"), p)
                for table in ("job", "delivery"):
                    c.execute(text(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'),"
                                   f" (SELECT max(id) FROM {table}))"))
                if bare:
                    c.execute(text("INSERT INTO bench_bare (id, state, due) SELECT i, 'queued',"
                                   f" {ts} FROM generate_series(1, :n) i"), p)
        with store.engine.connect() as c:
            c = c.execution_options(isolation_level="AUTOCOMMIT")
            c.execute(text("ANALYZE"))


# -- workers (each its own process) -----------------------------------------------------------

def _bare_sqlite(path: str) -> tuple[Callable[[], bool], Callable[[], None]]:
    conn = sqlite3.connect(path, timeout=30, isolation_level=None)
    for pragma in ("journal_mode=WAL", "synchronous=FULL", "busy_timeout=30000"):
        conn.execute(f"PRAGMA {pragma}")

    def step() -> bool:
        now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
        conn.execute("BEGIN IMMEDIATE")
        row = conn.execute("SELECT id FROM bench_bare WHERE state = 'queued' AND due <= ?"
                           " ORDER BY due, id LIMIT 1", (now,)).fetchone()
        if row is not None:
            conn.execute("UPDATE bench_bare SET state = 'done', hits = hits + 1 WHERE id = ?",
                         row)
        conn.execute("COMMIT")
        return row is not None

    return step, conn.close


def _bare_pg(url: str) -> tuple[Callable[[], bool], Callable[[], None]]:
    import psycopg

    conn = psycopg.connect(url)

    def step() -> bool:
        with conn.transaction():
            row = conn.execute("SELECT id FROM bench_bare WHERE state = 'queued' AND due <= now()"
                               " ORDER BY due, id LIMIT 1 FOR UPDATE SKIP LOCKED").fetchone()
            if row is not None:
                conn.execute("UPDATE bench_bare SET state = 'done', hits = hits + 1"
                             " WHERE id = %s", row)
        return row is not None

    return step, conn.close


def _mailgw_steps(url: str, owner: str, batch: int, many: bool
                  ) -> tuple[Callable[[], int], Callable[[], None]]:
    store = Store(url)
    policy = config.RetrySettings()

    def step() -> int:
        claims = leases.claim(store, owner, batch, LEASE)
        if not claims:
            return 0
        now = datetime.now(UTC)
        if many:
            results.record_many(store, owner, [
                results.Finished(c, RESULT, now, datetime.now(UTC), policy) for c in claims],
                "noop", no_final)
        else:
            for c in claims:
                results.record(store, owner, c, RESULT, "noop", now, datetime.now(UTC), policy,
                               no_final)
        return len(claims)

    return step, store.dispose


def worker(mode: str, url: str, kind: str, batch: int, owner: str, start: Any,
           out: Any, deadline: float) -> None:
    """Run one worker until the queue is empty (or the deadline); report (done, t0, t1)."""
    if mode == "dispatcher":
        out.put(_dispatcher_worker(url, batch, owner, start, deadline))
        return
    if mode == "bare":
        step_bool = (_bare_sqlite(url[len("sqlite:///"):]) if kind == "sqlite"
                     else _bare_pg(url.replace("postgresql+psycopg://", "postgresql://")))
        step, close = (lambda: int(step_bool[0]())), step_bool[1]
    else:
        step, close = _mailgw_steps(url, owner, batch, mode == "batch")
    start.wait()
    t0 = t1 = time.perf_counter()
    done = empty = 0
    while time.perf_counter() < deadline and empty < 3:
        got = step()
        if got:
            done += got
            empty = 0
            t1 = time.perf_counter()
        else:
            empty += 1  # rows held by another worker, or none left
            time.sleep(0.002)
    close()
    out.put((done, t0, t1))


class NoopDriver(Driver):
    name = "noop"
    channels = frozenset({"fax", "voice"})

    def __init__(self, lines: int):
        self.lines = lines

    async def place_call(self, request: CallRequest) -> CallResult:
        return RESULT


def _dispatcher_worker(url: str, lines: int, owner: str, start: Any, deadline: float
                       ) -> tuple[int, float, float]:
    from mailgw.dispatch.dispatcher import Dispatcher
    from mailgw.jobs.service import Jobs
    from mailgw.notify.render import renderer_for
    from mailgw.ops import logs

    # JSON lines as in production, written to /dev/null: formatted, not shown
    logs.setup("info", "json", open(os.devnull, "w"))  # noqa: SIM115

    settings = config.load(search=False, environ={}, overrides={
        "store": {"url": url}, "dispatch": {"workers": lines, "lease_seconds": "60s",
                                            "poll_interval": "20ms"}})
    store = Store(url)
    finals = 0
    last = time.perf_counter()

    def counting_final(_s: Any, _job: Any, _d: Any) -> None:
        nonlocal finals, last
        finals += 1
        last = time.perf_counter()

    async def main() -> float:
        # the notice hook counts, in the transaction (it may count a rolled-back one)
        jobs = Jobs(store, settings, renderer_for(settings), notices=counting_final)
        d = Dispatcher(store, settings, NoopDriver(lines), jobs, owner=owner)
        stop = asyncio.Event()
        await asyncio.to_thread(start.wait)
        t0 = time.perf_counter()
        runner = asyncio.create_task(d.run(stop))
        while time.perf_counter() < deadline:
            await asyncio.sleep(0.05)
            left = await asyncio.to_thread(_left, store)
            if left == 0:
                break
        stop.set()
        await d.drain(5.0)
        await asyncio.wait_for(runner, 10)
        return t0

    t0 = asyncio.run(main())
    store.dispose()
    return finals, t0, last


def _left(store: Store) -> int:
    with store.read() as s:
        return int(s.scalar(text("SELECT count(*) FROM delivery WHERE state IN"
                                 " ('queued', 'scheduled', 'sending')")) or 0)


def run_cell(backend: Backend, mode: str, workers: int, n: int, batch: int) -> dict[str, Any]:
    store = backend.fresh()
    backend.seed(store, n, per_job=1, bare=mode == "bare")
    store.dispose()
    ctx = mp.get_context("spawn")
    start, out = ctx.Event(), ctx.Queue()
    deadline_wall = 180.0
    procs = []
    for i in range(workers):
        # perf_counter is CLOCK_MONOTONIC: comparable across processes; the deadline too
        deadline = time.perf_counter() + deadline_wall
        p = ctx.Process(target=worker, args=(mode, backend.url, backend.kind, batch,
                                             f"bench-{i}", start, out, deadline))
        p.start()
        procs.append(p)
    time.sleep(1.5 if mode == "dispatcher" else 1.0)  # let them import and connect
    start.set()
    results = [out.get(timeout=deadline_wall + 30) for _ in procs]
    for p in procs:
        p.join(30)
    done = sum(r[0] for r in results)
    elapsed = max(r[2] for r in results) - min(r[1] for r in results)
    cell: dict[str, Any] = {"mode": mode, "backend": backend.kind, "workers": workers,
                            "batch": batch, "queued": n, "done": done, "seconds": elapsed,
                            "per_s": done / elapsed if elapsed > 0 else 0.0}
    cell.update(check(backend, mode, n))
    return cell


def check(backend: Backend, mode: str, n: int) -> dict[str, Any]:
    """Double claims and lost deliveries, read from the store after the run."""
    store = Store(backend.url)
    with store.engine.connect() as c:
        if mode == "bare":
            twice = c.scalar(text("SELECT count(*) FROM bench_bare WHERE hits > 1"))
            left = c.scalar(text("SELECT count(*) FROM bench_bare WHERE state <> 'done'"))
        else:
            twice = c.scalar(text(
                "SELECT count(*) FROM delivery d WHERE d.attempts <> 1 OR (SELECT count(*)"
                " FROM attempt a WHERE a.delivery_id = d.id) <> 1"))
            left = c.scalar(text("SELECT count(*) FROM delivery WHERE state <> 'delivered'"))
    store.dispose()
    return {"double_claims": int(twice or 0), "not_done": int(left or 0)}


# -- claim time at 1 k and 1 M queued --------------------------------------------------------

def claim_time(backend: Backend, n: int, batch: int, calls: int) -> dict[str, Any]:
    store = backend.fresh()
    t = time.perf_counter()
    backend.seed(store, n, per_job=100, bare=False)
    log(f"  seeded {n} in {time.perf_counter() - t:.1f} s")
    statements: list[tuple[str, Any]] = []

    def capture(_conn: Any, _cur: Any, statement: str, params: Any, _ctx: Any, _many: Any
                ) -> None:
        if statement.lstrip().upper().startswith(("SELECT", "WITH")):
            statements.append((statement, params))

    leases.claim(store, "warm", batch, LEASE)  # warm the caches and the statement cache
    event.listen(store.engine, "before_cursor_execute", capture)
    leases.claim(store, "plan", batch, LEASE)
    event.remove(store.engine, "before_cursor_execute", capture)
    times = []
    for i in range(calls):
        t = time.perf_counter()
        got = leases.claim(store, f"c{i}", batch, LEASE)
        times.append((time.perf_counter() - t) * 1000)
        assert len(got) == batch, got
    plans = []
    seen = set()
    with store.engine.connect() as c:
        for statement, params in statements:
            if statement in seen:
                continue
            seen.add(statement)
            prefix = "EXPLAIN QUERY PLAN " if backend.kind == "sqlite" else "EXPLAIN "
            rows = c.exec_driver_sql(prefix + statement, params).all()
            plan = "\n".join(str(r[-1]) for r in rows)
            plans.append({"sql": " ".join(statement.split())[:300], "plan": plan})
    store.dispose()
    return {"backend": backend.kind, "queued": n, "batch": batch, "calls": calls,
            "median_ms": statistics.median(times), "p90_ms": sorted(times)[int(calls * 0.9)],
            "plans": plans}


def plan_flags(plan: str) -> str:
    """'scan' when the plan reads table delivery whole (a sort then sorts the whole queue),
    'index' when it reads delivery through an index."""
    lines = plan.upper().splitlines()
    scan = any("SEQ SCAN ON DELIVERY" in ln or (ln.strip().startswith("SCAN DELIVERY")
                                                and "USING" not in ln) for ln in lines)
    return "scan" if scan else "index"


# -- report ----------------------------------------------------------------------------------

def machine() -> dict[str, str]:
    import psycopg
    import sqlalchemy

    cpu = next((line.split(":", 1)[1].strip() for line in
                Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    pg = "absent"
    if pg_available():
        with psycopg.connect(PG_ADMIN) as conn:
            row = conn.execute("SHOW server_version").fetchone()
            pg = str(row[0]) if row else "?"
    return {"nproc": str(os.cpu_count()), "cpu": cpu, "python": platform.python_version(),
            "sqlite": sqlite3.sqlite_version, "postgresql": pg,
            "sqlalchemy": sqlalchemy.__version__, "psycopg": psycopg.__version__}


def median_cell(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    ordered = sorted(rounds, key=lambda r: r["per_s"])
    med = dict(ordered[len(ordered) // 2])
    med["rounds"] = [round(r["per_s"], 1) for r in rounds]
    med["double_claims"] = sum(r["double_claims"] for r in rounds)
    med["not_done"] = sum(r["not_done"] for r in rounds)
    return med


def report(info: dict[str, str], cells: list[dict[str, Any]], ctimes: list[dict[str, Any]],
           args: argparse.Namespace) -> str:
    out = ["# Dispatch claim path", "",
           f"{info['nproc']} CPUs ({info['cpu']}); Python {info['python']}, SQLite "
           f"{info['sqlite']}, PostgreSQL {info['postgresql']}, SQLAlchemy "
           f"{info['sqlalchemy']}, psycopg {info['psycopg']}. Rounds: {args.rounds} "
           "(median shown, every round in brackets).", "",
           "vs bare = the median of each round's ratio to the bare loop of the same round "
           "(the paths run interleaved, round after round).", "",
           "| store | workers | path | batch | deliveries | claims/s | vs bare | rounds "
           "| ratio per round | double claims | not done |",
           "|---|---|---|---|---|---|---|---|---|---|---|"]
    bare = {(c["backend"], c["workers"]): c["per_s"] for c in cells if c["mode"] == "bare"}
    for c in cells:
        base = bare.get((c["backend"], c["workers"]))
        ratios = c.get("ratios")
        if ratios:
            ratio = f"{statistics.median(ratios) * 100:.0f} %"
            per_round = ", ".join(f"{x * 100:.0f} %" for x in ratios)
        else:
            ratio = f"{c['per_s'] / base * 100:.0f} %" if base else "—"
            per_round = "—"
        out.append(f"| {c['backend']} | {c['workers']} | {c['mode']} | {c['batch']} | "
                   f"{c['done']} | {c['per_s']:.0f} | {ratio} | {c['rounds']} | "
                   f"{per_round} | {c['double_claims']} | {c['not_done']} |")
    if ctimes:
        out += ["", "| store | queued | claim batch | median ms | p90 ms | vs 1 k | delivery "
                "read by |", "|---|---|---|---|---|---|---|"]
        small = {c["backend"]: c["median_ms"] for c in ctimes if c["queued"] == min(
            x["queued"] for x in ctimes)}
        for c in ctimes:
            flags = ", ".join(sorted({plan_flags(p["plan"]) for p in c["plans"]
                                      if "DELIVERY" in p["sql"].upper()}))
            out.append(f"| {c['backend']} | {c['queued']} | {c['batch']} | "
                       f"{c['median_ms']:.2f} | {c['p90_ms']:.2f} | "
                       f"{c['median_ms'] / small[c['backend']] * 100:.0f} % | "
                       f"{flags} |")
        for c in ctimes:
            if c["queued"] == max(x["queued"] for x in ctimes):
                out += ["", f"Plans ({c['backend']}, {c['queued']} queued):", ""]
                for p in c["plans"]:
                    out += ["```", p["sql"], p["plan"], "```"]
    return "\n".join(out) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--smoke", action="store_true",
                    help="tiny queues, one round, SQLite 1 and PostgreSQL 2 workers")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--batch", type=int, default=32, help="claims per transaction (batch cells)")
    ap.add_argument("--skip", default="", help="comma list: throughput, claimtime, postgresql")
    ap.add_argument("--modes", default="bare,per-call,batch,dispatcher")
    ap.add_argument("--big", type=int, default=1_000_000, help="the large queue")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    skip = set(filter(None, args.skip.split(",")))
    if args.smoke:
        args.rounds, args.big = 1, 5000
    modes = args.modes.split(",")
    info = machine()
    log("machine:", info)
    layouts: list[tuple[str, int]] = [("sqlite", 1)]
    if "postgresql" not in skip:
        if pg_available():
            layouts += ([("postgresql", 2)] if args.smoke else
                        [("postgresql", 1), ("postgresql", 2), ("postgresql", 4)])
        else:
            log("PostgreSQL absent on 127.0.0.1:5432: its cells are skipped")
    cells: list[dict[str, Any]] = []
    ctimes: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="mailgw-bench-") as tmp, \
            (pg_database() if pg_available() and "postgresql" not in skip
             else _none()) as pg_url:
        backends = {"sqlite": Backend("sqlite", f"sqlite:///{tmp}/bench.db", Path(tmp))}
        if pg_url:
            backends["postgresql"] = Backend("postgresql", pg_url)
        if "throughput" not in skip:
            for kind, workers in layouts:
                n = (200 if args.smoke else 2500) * (workers if kind == "postgresql" else 1)
                # Rounds interleave the paths (bare, per-call, batch, dispatcher, then again):
                # the machine's load drifts, and each path is compared with the bare loop of
                # its own round.
                by_mode: dict[str, list[dict[str, Any]]] = {mode: [] for mode in modes}
                for r in range(args.rounds):
                    for mode in modes:
                        batch = 1 if mode in ("bare", "per-call") else args.batch
                        cell = run_cell(backends[kind], mode, workers, n, batch)
                        log(f"{kind} w={workers} {mode} b={batch} round {r + 1}: "
                            f"{cell['per_s']:.0f}/s double={cell['double_claims']} "
                            f"not_done={cell['not_done']}")
                        by_mode[mode].append(cell)
                bare_rounds = by_mode.get("bare", [])
                for mode in modes:
                    med = median_cell(by_mode[mode])
                    if len(bare_rounds) == len(by_mode[mode]):
                        med["ratios"] = [c["per_s"] / b["per_s"] if b["per_s"] else 0.0
                                         for c, b in zip(by_mode[mode], bare_rounds,
                                                         strict=True)]
                    cells.append(med)
        if "claimtime" not in skip:
            for kind in backends:
                for n in (1000, args.big):
                    # the same number of calls at both sizes, each taking fresh rows
                    calls = max(min(1000 // args.batch - 2, 10 if args.smoke else 25), 1)
                    ct = claim_time(backends[kind], n, args.batch, calls)
                    log(f"claim time {kind} {n}: {ct['median_ms']:.2f} ms")
                    ctimes.append(ct)
    text_report = report(info, cells, ctimes, args)
    print(text_report)
    if args.json:
        args.json.write_text(json.dumps({"machine": info, "throughput": cells,
                                         "claim_time": ctimes}, indent=2, default=str))
    bad = sum(c["double_claims"] + c["not_done"] for c in cells)
    return 1 if bad else 0


@contextmanager
def _none() -> Iterator[None]:
    yield None


if __name__ == "__main__":
    sys.exit(main())
