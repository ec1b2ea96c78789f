"""Notices/s: rendered, written to the outbox and sent to Postfix `smtp-sink`, against a bare loop.

* bare    one Jinja2 template rendered (mailgw's en/notice.txt, plain Environment), an
          EmailMessage built, sent with aiosmtplib on one connection kept open. No store.
* mailgw  for N final deliveries (one attempt each, on a SQLite store): the real
          `notice_on_final` (attempts read, context, text + HTML parts rendered, the mail
          built, the outbox row added) in transactions of `--batch` deliveries, as the
          jobs service runs it (store.record.record_many); then `OutboxSender.send_due`
          until the outbox is empty (claim with a lease, SMTP to smtp-sink, one
          transaction of sent marks per batch, the SMTP session kept open from batch to
          batch).
          notices/s = N / (render time + send time).

The two paths take turns of `--slice` notices within a round (who goes first alternates), so a
load change on a shared machine hits both alike; each path keeps its own connection open for
the whole round. Both talk to the same `smtp-sink` on 127.0.0.1. Every mailgw round checks
that each notice is marked sent.

    .venv/bin/python bench/notify.py               # 3 rounds (median), about 2 minutes
    .venv/bin/python bench/notify.py --smoke       # seconds: proves it runs

Needs /usr/sbin/smtp-sink (apt-get install postfix, service kept stopped: see README.md).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import aiosmtplib  # noqa: E402
from jinja2 import Environment, FileSystemLoader  # noqa: E402
from sqlalchemy import func, select  # noqa: E402

from mailgw.notify import outbox  # noqa: E402
from mailgw.notify.messages import notice_on_final  # noqa: E402
from mailgw.notify.render import TEMPLATES, renderer_for  # noqa: E402
from mailgw.ops import config  # noqa: E402
from mailgw.store import Account, Attempt, Delivery, Job, OutboxMail, Store  # noqa: E402

SMTP_SINK = "/usr/sbin/smtp-sink"
SENDER = "bench@example.com"


def log(*parts: object) -> None:
    print(*parts, file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class SmtpSink:
    """Postfix smtp-sink on a free port; counts the mails it took from its -c output."""

    def __init__(self) -> None:
        self.port = free_port()
        user = ["-u", "nobody"] if os.geteuid() == 0 else []
        self.proc = subprocess.Popen([SMTP_SINK, *user, f"127.0.0.1:{self.port}", "256"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                    s.recv(512)
                    return
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError("smtp-sink did not start")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)


# -- the bare loop --------------------------------------------------------------------------

def bare_context(i: int) -> dict[str, Any]:
    return {"state": "delivered", "state_word": "Delivered", "channel": "fax",
            "channel_word": "Fax", "original_subject": "FGB45L:0170709901", "comment": None,
            "ref": None, "number": f"+33 1 70 {i % 100:02d} 99 01", "csid": "+33 1 70 70 99 01",
            "pages_sent": 1, "pages_total": 1, "submitted": "2026-11-23 10:00:00 CET",
            "sent": "2026-11-23 10:00:01 CET", "delivered_at": "2026-11-23 10:00:46 CET",
            "duration": "45 s", "job_id": i, "attempts": [
                {"started": "2026-11-23 10:00:01 CET", "reason": "delivered", "pages": "",
                 "result": "delivered"}],
            "failure": "", "detail": "", "link": ""}


class Bare:
    """The bare loop, run slice by slice on one connection kept open for the whole round."""

    def __init__(self, port: int) -> None:
        env = Environment(loader=FileSystemLoader(str(TEMPLATES)), keep_trailing_newline=True)
        self.template = env.get_template("en/notice.txt")
        self.client = aiosmtplib.SMTP(hostname="127.0.0.1", port=port, timeout=30)
        self.seconds = 0.0

    async def open(self) -> None:
        t0 = time.perf_counter()
        await self.client.connect()
        self.seconds += time.perf_counter() - t0

    async def run(self, start: int, n: int) -> None:
        t0 = time.perf_counter()
        for i in range(start, start + n):
            body = self.template.render(bare_context(i))
            msg = EmailMessage()
            msg["From"] = "fax@gw.example.org"
            msg["To"] = SENDER
            msg["Subject"] = f"Delivered: fax to +33 1 70 70 99 01 – job {i}"
            msg["Date"] = format_datetime(datetime.now().astimezone())
            msg["Message-ID"] = make_msgid(domain="gw.example.org")
            msg.set_content(body)
            await self.client.sendmail("", [SENDER], msg.as_bytes())
        self.seconds += time.perf_counter() - t0

    async def close(self) -> None:
        t0 = time.perf_counter()
        await self.client.quit()
        self.seconds += time.perf_counter() - t0


# -- mailgw's path --------------------------------------------------------------------------

def seed(store: Store, n: int) -> list[int]:
    """n jobs of one fax delivery each, delivered after one attempt (their notices not yet
    written)."""
    now = datetime.now(UTC) - timedelta(minutes=5)
    with store.tx() as s:
        account = Account(email=SENDER, password_hash="x", region="FR", lang="en",
                          tz="Europe/Paris", credits=None)
        s.add(account)
        s.flush()
        for i in range(n):
            job = Job(account_id=account.id, channel="fax", sender=SENDER,
                      message_id=f"<bench{i}@example.com>", state="done",
                      outcome="delivered_all", subject="FGB45L:0170709901", pages=1,
                      recipient_count=1, created_at=now)
            s.add(job)
            s.flush()
            d = Delivery(job_id=job.id, number=f"+331707{i:06d}", state="delivered",
                         next_attempt_at=now, attempts=1, pages_sent=1, pages_total=1,
                         csid="+33 1 70 70 99 01", first_attempt_at=now,
                         finished_at=now + timedelta(seconds=46))
            s.add(d)
            s.flush()
            s.add(Attempt(delivery_id=d.id, started_at=now, ended_at=now + timedelta(seconds=46),
                          driver="simulator", result="delivered", pages_sent=1, pages_total=1,
                          first_page=1, csid=d.csid, duration=45.0))
    with store.read() as s:
        return list(s.scalars(select(Delivery.id).order_by(Delivery.id)))


class Mailgw:
    """mailgw's path, slice by slice: notices written (render + outbox), then sent."""

    def __init__(self, store: Store, settings: config.Settings, batch: int, send_limit: int):
        self.store, self.batch, self.send_limit = store, batch, send_limit
        self.on_final = notice_on_final(settings, renderer_for(settings))
        self.sender = outbox.OutboxSender(store, settings.notify, owner="bench")
        self.render_s = self.send_s = 0.0

    def _write(self, chunk: list[int]) -> None:
        with self.store.tx() as s:
            rows = s.execute(select(Delivery, Job).join(Job, Job.id == Delivery.job_id)
                             .where(Delivery.id.in_(chunk)).order_by(Delivery.id)).all()
            for d, job in rows:
                self.on_final(s, job, d)

    async def run(self, ids: list[int]) -> None:
        t0 = time.perf_counter()
        for i in range(0, len(ids), self.batch):
            await asyncio.to_thread(self._write, ids[i:i + self.batch])
        t1 = time.perf_counter()
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            if not await self.sender.send_due(self.send_limit):
                break
        self.render_s += t1 - t0
        self.send_s += time.perf_counter() - t1

    async def close(self) -> None:
        t0 = time.perf_counter()
        close = getattr(self.sender, "close", None)  # a sender that keeps its session open
        if close is not None:
            await close()
        self.send_s += time.perf_counter() - t0


async def interleaved(port: int, store: Store, settings: config.Settings, ids: list[int],
                      batch: int, send_limit: int, slice_n: int) -> tuple[float, float, float]:
    """Both paths in turns of `slice_n` notices (who goes first alternates), so that a load
    change on the shared machine hits both alike. Returns (bare, render, send) seconds."""
    bare = Bare(port)
    gw = Mailgw(store, settings, batch, send_limit)
    await bare.open()
    for k, start in enumerate(range(0, len(ids), slice_n)):
        chunk = ids[start:start + slice_n]
        if k % 2 == 0:
            await bare.run(start, len(chunk))
            await gw.run(chunk)
        else:
            await gw.run(chunk)
            await bare.run(start, len(chunk))
    await bare.close()
    await gw.close()
    return bare.seconds, gw.render_s, gw.send_s


def check(store: Store, n: int) -> dict[str, int]:
    with store.read() as s:
        rows = s.scalar(select(func.count()).select_from(OutboxMail)) or 0
        sent = s.scalar(select(func.count()).select_from(OutboxMail)
                        .where(OutboxMail.sent_at.is_not(None))) or 0
    return {"outbox_rows": int(rows), "sent": int(sent), "missing": n - int(sent)}


def run_round(tmp: Path, port: int, n: int, batch: int, send_limit: int, slice_n: int, r: int
              ) -> dict[str, Any]:
    url = f"sqlite:///{tmp}/notify-{r}.db"
    settings = config.load(search=False, environ={}, overrides={
        "store": {"url": url}, "gateway": {"domain": "gw.example.org"},
        "notify": {"smarthost": f"127.0.0.1:{port}", "from_address": "fax@gw.example.org"}})
    store = Store(url)
    store.upgrade()
    ids = seed(store, n)
    bare_s, render_s, send_s = asyncio.run(interleaved(port, store, settings, ids, batch,
                                                       send_limit, slice_n))
    result = {"n": n, "bare_per_s": n / bare_s, "render_s": render_s, "send_s": send_s,
              "mailgw_per_s": n / (render_s + send_s), "render_per_s": n / render_s,
              "send_per_s": n / send_s, **check(store, n)}
    result["ratio"] = result["mailgw_per_s"] / result["bare_per_s"]
    store.dispose()
    return result


def machine() -> dict[str, str]:
    import jinja2
    import sqlalchemy

    cpu = next((line.split(":", 1)[1].strip() for line in
                Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    import sqlite3

    return {"nproc": str(os.cpu_count()), "cpu": cpu, "python": platform.python_version(),
            "sqlite": sqlite3.sqlite_version, "sqlalchemy": sqlalchemy.__version__,
            "jinja2": jinja2.__version__, "aiosmtplib": aiosmtplib.__version__}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--smoke", action="store_true", help="50 notices, one round")
    ap.add_argument("-n", type=int, default=2000, help="notices per round")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--batch", type=int, default=32, help="notices written per transaction")
    ap.add_argument("--send-limit", type=int, default=50, help="OutboxSender.send_due limit")
    ap.add_argument("--slice", type=int, default=100,
                    help="notices per turn: the two paths take turns in the same round")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    if args.smoke:
        args.n, args.rounds, args.slice = 50, 1, 25
    if not Path(SMTP_SINK).exists():
        log(f"{SMTP_SINK} is missing: apt-get install postfix (see bench/README.md)")
        return 2
    info = machine()
    log("machine:", info)
    from mailgw.ops import logs

    # JSON lines as in production, written to /dev/null: formatted, not shown
    logs.setup("info", "json", open(os.devnull, "w"))  # noqa: SIM115
    rounds = []
    sink = SmtpSink()
    try:
        with tempfile.TemporaryDirectory(prefix="mailgw-bench-notify-") as tmp:
            for r in range(args.rounds):
                res = run_round(Path(tmp), sink.port, args.n, args.batch, args.send_limit,
                                args.slice, r)
                log(f"round {r + 1}: bare {res['bare_per_s']:.0f}/s, mailgw "
                    f"{res['mailgw_per_s']:.0f}/s ({res['ratio'] * 100:.0f} %), render "
                    f"{res['render_per_s']:.0f}/s, send {res['send_per_s']:.0f}/s, "
                    f"missing {res['missing']}")
                rounds.append(res)
    finally:
        sink.stop()
    med = sorted(rounds, key=lambda x: x["ratio"])[len(rounds) // 2]
    print("# Notices\n")
    print(f"{info['nproc']} CPUs ({info['cpu']}); Python {info['python']}, SQLite "
          f"{info['sqlite']}, SQLAlchemy {info['sqlalchemy']}, Jinja2 {info['jinja2']}, "
          f"aiosmtplib {info['aiosmtplib']}. {args.n} notices a round in turns of {args.slice}, "
          f"{args.rounds} rounds (the round with the median ratio; every round's ratio in "
          f"brackets); 1 connection per path.\n")
    print("| path | notices/s | vs bare | render + outbox /s | send /s | rounds (ratio) "
          "| not sent |")
    print("|---|---|---|---|---|---|---|")
    print(f"| bare | {med['bare_per_s']:.0f} | 100 % | — | — | — | 0 |")
    ratios = [f"{x['ratio'] * 100:.0f} %" for x in rounds]
    print(f"| mailgw | {med['mailgw_per_s']:.0f} | {med['ratio'] * 100:.0f} % | "
          f"{med['render_per_s']:.0f} | {med['send_per_s']:.0f} | {', '.join(ratios)} | "
          f"{sum(x['missing'] for x in rounds)} |")
    print(f"\nmedian ratio of all rounds: "
          f"{statistics.median(x['ratio'] for x in rounds) * 100:.0f} %")
    if args.json:
        args.json.write_text(json.dumps({"machine": info, "rounds": rounds}, indent=2))
    return 1 if any(x["missing"] for x in rounds) else 0


if __name__ == "__main__":
    sys.exit(main())
