"""One mail with a CSV of 100,000 numbers: time to the 250, peak RSS, dispatch, report.

Builds a fax mail (a 1-page PDF and a `;` CSV of N French numbers with two more columns),
starts `mailgw serve --roles smtp,dispatch,notify,http` (simulator, `time_scale` 0, Postfix
`smtp-sink` as the smarthost) on a temporary SQLite store or a temporary PostgreSQL database
(127.0.0.1:5432, user postgres, trust auth), sends the mail once and measures:

* time to 250: from the first byte of DATA to the reply (the commit comes before it);
* peak RSS of the serve process (VmHWM in /proc), after the 250 and at the end;
* dispatch: from the 250 until every delivery is final, and until the summary mail (the
  CSV report attached) is sent;
* `mailgw jobs list`, `jobs show`, `jobs report` (wall time and the child's peak RSS), and
  the API's `GET /api/v1/jobs/{id}/report.csv` (wall time, rows).

    .venv/bin/python bench/campaign.py                      # both stores, 100,000 numbers
    .venv/bin/python bench/campaign.py --store sqlite -n 2000
    .venv/bin/python bench/campaign.py --py-spy out.txt     # profile serve during intake

Markdown on stdout, progress on stderr. Needs /usr/sbin/smtp-sink (see README.md).
"""

from __future__ import annotations

import argparse
import email.policy
import json
import os
import platform
import shutil
import signal
import smtplib
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from email.message import EmailMessage
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mailgw.documents.samples import make_pdf  # noqa: E402

SMTP_SINK = "/usr/sbin/smtp-sink"
PG_ADMIN = os.environ.get("MAILGW_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
SENDER = "bench@example.com"
PASSWORD = "FGB45L"


def log(*parts: object) -> None:
    print(*parts, file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, proc: subprocess.Popen[bytes] | None, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"the process on port {port} exited ({proc.returncode})")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port}")


def vm_hwm(pid: int) -> int:
    """Peak resident set size of `pid` in bytes (VmHWM)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0


def campaign_mail(count: int) -> bytes:
    """A fax mail with a `;` CSV of `count` distinct French numbers (01 and 02 ranges)."""
    lines = ["Nom;Téléphone;Ville"]
    for i in range(count):
        n = f"0{1 + i // 900_000}{70 + (i // 10_000) % 90:02d}{i % 10_000:04d}01"
        lines.append(f"Client {i};{n[:2]} {n[2:4]} {n[4:6]} {n[6:8]} {n[8:]};Orléans")
    msg = EmailMessage()
    msg["From"] = SENDER
    msg["To"] = "fax@gw.example.org"
    msg["Subject"] = f"{PASSWORD}::CAMPAIGN-1"
    msg["Message-ID"] = f"<{uuid.uuid4().hex}@example.com>"
    msg.set_content("Please fax the attachment to the list.\n")
    msg.add_attachment(make_pdf([["Campaign"]]), maintype="application", subtype="pdf",
                       filename="document.pdf")
    msg.add_attachment(("\r\n".join(lines) + "\r\n").encode("cp1252"), maintype="text",
                       subtype="csv", filename="clients.csv")
    return msg.as_bytes(policy=email.policy.SMTP)


class Database:
    """A SQLite file in the work directory, or a fresh PostgreSQL database dropped at the end."""

    def __init__(self, kind: str, workdir: Path) -> None:
        self.kind = kind
        self.name = f"mailgw_campaign_{uuid.uuid4().hex[:10]}"
        if kind == "sqlite":
            self.url = f"sqlite:///{workdir / 'campaign.db'}"
            return
        import psycopg  # late import: PostgreSQL only

        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{self.name}"')
        base = PG_ADMIN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://")
        self.url = f"{base}/{self.name}"

    def scalar(self, sql: str) -> Any:
        if self.kind == "sqlite":
            import sqlite3  # late import: one store at a time

            with sqlite3.connect(self.url.removeprefix("sqlite:///")) as db:
                return db.execute(sql).fetchone()[0]
        import psycopg  # late import: PostgreSQL only

        with psycopg.connect(self.url.replace("postgresql+psycopg://", "postgresql://")) as c:
            row = c.execute(sql).fetchone()
            return row[0] if row else None

    def drop(self) -> None:
        if self.kind == "sqlite":
            return
        import psycopg  # late import: PostgreSQL only

        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')


def timed_cli(cli: list[str], *args: str) -> tuple[float, int, int]:
    """(seconds, peak RSS of the command in bytes, bytes written on stdout). The RSS comes
    from /usr/bin/time: a child's own ru_maxrss would count this process's memory at fork."""
    started = time.monotonic()
    with tempfile.TemporaryFile() as out, tempfile.NamedTemporaryFile("r") as rss:
        done = subprocess.run(["/usr/bin/time", "-f", "%M", "-o", rss.name, *cli, *args],
                              stdout=out, stderr=subprocess.PIPE, check=False)
        took = time.monotonic() - started
        if done.returncode != 0:
            raise RuntimeError(f"{args}: {done.stderr.decode()[-500:]}")
        return took, int(rss.read().split()[-1]) * 1024, out.seek(0, os.SEEK_END)


def run(kind: str, count: int, pyspy: str | None, timeout: float,
        roles: str = "smtp,dispatch,notify,http") -> dict[str, Any]:
    workdir = Path(tempfile.mkdtemp(prefix="mailgw-campaign-"))
    db = Database(kind, workdir)
    sink_port, smtp_port, http_port = free_port(), free_port(), free_port()
    user = ["-u", "nobody"] if os.geteuid() == 0 else []
    sink = subprocess.Popen([SMTP_SINK, *user, f"127.0.0.1:{sink_port}", "64"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    serve: subprocess.Popen[bytes] | None = None
    spy: subprocess.Popen[bytes] | None = None
    try:
        config = workdir / "mailgw.toml"
        config.write_text(
            f'[gateway]\ndomain = "gw.example.org"\nfax_address = "fax@gw.example.org"\n'
            f'[smtp]\nlisten = "127.0.0.1:{smtp_port}"\nhostname = "bench.invalid"\n'
            f'[store]\nurl = "{db.url}"\n'
            f'[dispatch]\nworkers = 32\n'
            f'[drivers.simulator]\ntime_scale = 0.0\nlines = 32\n'
            f'[notify]\nsmarthost = "127.0.0.1:{sink_port}"\n'
            f'[limits]\nmax_recipients = {max(count, 10_000)}\n'
            f'[http]\nlisten = "127.0.0.1:{http_port}"\n'
            f'[log]\nlevel = "warning"\nformat = "json"\n', encoding="utf-8")
        cli = [sys.executable, "-m", "mailgw", "--config", str(config)]
        for args, stdin in ((("db", "upgrade"), None),
                            (("account", "add", SENDER, "--password-stdin"), PASSWORD + "\n")):
            done = subprocess.run([*cli, *args], input=stdin, capture_output=True, text=True,
                                  check=False)
            if done.returncode != 0:
                raise RuntimeError(f"mailgw {' '.join(args)}: {done.stderr.strip()}")
        token = subprocess.run([*cli, "token", "add", SENDER, "--name", "bench", "--scope",
                                "jobs:read"], capture_output=True, text=True,
                               check=True).stdout.split()[0]
        mail = campaign_mail(count)
        log(f"[{kind}] mail of {len(mail) / 1e6:.1f} MB, {count} numbers")
        serve = subprocess.Popen([*cli, "serve", "--roles", roles],
                                 stderr=open(workdir / "serve.log", "wb"))  # noqa: SIM115
        wait_port(smtp_port, serve)
        if "http" in roles:
            wait_port(http_port, serve)
        wait_port(sink_port, None)
        rss_idle = vm_hwm(serve.pid)
        if pyspy:
            spy = subprocess.Popen([str(Path(sys.executable).with_name("py-spy")), "record",
                                    "--pid", str(serve.pid), "--threads", "--format", "raw",
                                    "--output", pyspy, "--rate", "50"],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(1.5)
        with smtplib.SMTP("127.0.0.1", smtp_port, timeout=600) as client:
            client.ehlo("bench.example.com")
            for step in (client.mail(SENDER), client.rcpt("fax@gw.example.org")):
                if step[0] != 250:
                    raise RuntimeError(f"refused: {step}")
            started = time.monotonic()
            code, reply = client.data(mail)
            to_250 = time.monotonic() - started
        accepted = time.monotonic()
        if spy is not None:
            spy.send_signal(signal.SIGINT)  # py-spy writes its file on SIGINT
            spy.wait(60)
        text = reply.decode(errors="replace")
        log(f"[{kind}] {code} {text[:80]} after {to_250:.2f} s")
        if code != 250:
            raise RuntimeError(f"refused: {code} {text}")
        rss_accept = vm_hwm(serve.pid)
        written = int(db.scalar("select count(*) from delivery"))
        job_id = int(db.scalar("select max(id) from job"))
        final_sql = ("select count(*) from delivery where state in "
                     "('delivered','failed','partial','cancelled','expired')")
        summary_sql = ("select count(*) from outbox_mail where kind = 'summary' "
                       "and sent_at is not null")
        all_final = summary_sent = None
        deadline = accepted + (timeout if "dispatch" in roles else 0)
        while time.monotonic() < deadline:
            now = time.monotonic()
            if all_final is None and int(db.scalar(final_sql)) >= written:
                all_final = now - accepted
                log(f"[{kind}] all final after {all_final:.1f} s")
            if all_final is not None and int(db.scalar(summary_sql)):
                summary_sent = now - accepted
                break
            time.sleep(0.5)
        rss_end = vm_hwm(serve.pid)
        timings = {name: timed_cli(cli, *args) for name, args in (
            ("status", ("status",)),  # the command line's start-up, for scale
            ("jobs list", ("jobs", "list")), ("jobs show", ("jobs", "show", str(job_id))),
            ("jobs report", ("jobs", "report", str(job_id))))}
        started = time.monotonic()
        if "http" not in roles:
            return {"store": kind, "numbers": count, "to_250": to_250,
                    "rss_accept_mb": rss_accept / 1e6, "written": written}
        request = urllib.request.Request(
            f"http://127.0.0.1:{http_port}/api/v1/jobs/{job_id}/report.csv",
            headers={"Authorization": f"Bearer {token}"})
        rows = 0
        with urllib.request.urlopen(request, timeout=600) as answer:
            for _ in answer:
                rows += 1
        api_report = time.monotonic() - started
        summary_size = db.scalar("select max(length(body)) from outbox_mail "
                                 "where kind = 'summary'")
        return {"store": kind, "numbers": count, "mail_mb": len(mail) / 1e6,
                "written": written, "to_250": to_250, "rss_idle_mb": rss_idle / 1e6,
                "rss_accept_mb": rss_accept / 1e6, "rss_end_mb": rss_end / 1e6,
                "all_final": all_final, "summary_sent": summary_sent,
                "summary_mb": (summary_size or 0) / 1e6,
                "cli": {k: {"seconds": v[0], "rss_mb": v[1] / 1e6, "out_mb": v[2] / 1e6}
                        for k, v in timings.items()},
                "api_report": api_report, "api_rows": rows}
    finally:
        for proc in (spy, serve):
            if proc is not None and proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(30)
                except subprocess.TimeoutExpired:
                    proc.kill()
        sink.terminate()
        sink.wait(10)
        db.drop()
        shutil.rmtree(workdir, ignore_errors=True)


def fmt(value: float | None, unit: str = " s", digits: int = 1) -> str:
    return "—" if value is None else f"{value:.{digits}f}{unit}"


def report(results: list[dict[str, Any]]) -> str:
    out = [f"Machine: {platform.node()}, {os.cpu_count()} CPUs, Python "
           f"{platform.python_version()}, load {os.getloadavg()[0]:.1f} at the end.", "",
           "| store | numbers | mail | time to 250 | RSS idle → after 250 → end | all final "
           "| summary sent | summary mail | status (start-up) | jobs list | jobs show "
           "| jobs report (RSS) | API report.csv |", "|" + "---|" * 13]
    for r in results:
        cli = r["cli"]
        out.append(
            f"| {r['store']} | {r['written']:,} | {r['mail_mb']:.1f} MB "
            f"| {fmt(r['to_250'], ' s', 2)} "
            f"| {r['rss_idle_mb']:.0f} → {r['rss_accept_mb']:.0f} → {r['rss_end_mb']:.0f} MB "
            f"| {fmt(r['all_final'])} | {fmt(r['summary_sent'])} | {r['summary_mb']:.1f} MB "
            f"| {fmt(cli['status']['seconds'], ' s', 2)} "
            f"| {fmt(cli['jobs list']['seconds'], ' s', 2)} "
            f"| {fmt(cli['jobs show']['seconds'], ' s', 2)} "
            f"| {fmt(cli['jobs report']['seconds'], ' s', 2)} "
            f"({cli['jobs report']['rss_mb']:.0f} MB) "
            f"| {fmt(r['api_report'], ' s', 2)} ({r['api_rows']:,} lines) |")
    return "\n".join(out)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("-n", "--numbers", type=int, default=100_000)
    ap.add_argument("--store", choices=["sqlite", "postgresql", "both"], default="both")
    ap.add_argument("--py-spy", metavar="FILE", help="profile serve while it takes the mail")
    ap.add_argument("--timeout", type=float, default=1800, help="seconds to wait for dispatch")
    ap.add_argument("--json", metavar="FILE")
    ap.add_argument("--roles", default="smtp,dispatch,notify,http",
                    help="serve's roles; without dispatch and http: intake only (with --py-spy)")
    args = ap.parse_args()
    kinds = ["sqlite", "postgresql"] if args.store == "both" else [args.store]
    results = [run(kind, args.numbers, args.py_spy, args.timeout, args.roles) for kind in kinds]
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    if "http" not in args.roles:
        print(json.dumps(results, indent=2))
        return 0
    print(report(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
