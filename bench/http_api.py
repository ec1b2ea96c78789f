"""A job created over HTTP against one created over SMTP, and against a bare endpoint.

Three targets, each its own process on 127.0.0.1, measured in turns in the same run:

* bare    bench/http_bare.py: Starlette on uvicorn, the same multipart request parsed and
          one row committed to SQLite (WAL, synchronous=FULL): the baseline;
* http    `mailgw serve --roles smtp,http` on a temporary SQLite store: POST /api/v1/jobs
          with a bearer token, a distinct Idempotency-Key, a 1-page PDF: token check, the
          decision, the page count in the sandbox, the job and its delivery committed;
* http-voice  the same, a JSON body: a voice job from the library (no document to render);
* smtp    the same mailgw process, the same fax sent as a mail (smtplib, one session per
          client, connections reused): the SMTP twin.

Reported per cell (10 and 100 concurrent clients): jobs/s, p50/p99 latency, and the figure
that does not depend on the load generator, server CPU per job (utime+stime of the target
and its sandbox workers, from /proc). The client's own CPU per request says when a cell is
client-bound (both run on the same 2 CPUs).

    .venv/bin/python bench/http_api.py --quick       # about two minutes
    .venv/bin/python bench/http_api.py --requests 2000
"""

from __future__ import annotations

import argparse
import asyncio
import re
import resource
import smtplib
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

import intake as ib  # noqa: E402  (bench/intake.py: processes, CPU from /proc, documents)

TOKEN_RE = re.compile(r"mgw_[A-Za-z0-9_\-]+")


class Bare(ib.Target):
    name = "bare"

    def command(self) -> list[str]:
        return [sys.executable, str(BENCH / "http_bare.py"), str(self.port),
                str(self.workdir / "bare.db")]

    def start(self) -> None:
        self.log = open(self.workdir / f"{self.name}.log", "wb")  # noqa: SIM115
        self.proc = subprocess.Popen(self.command(), stdout=self.log, stderr=self.log,
                                     cwd=self.workdir)
        wait_http(self.port, self.proc)


class MailgwHttp(ib.Mailgw):
    """mailgw with its SMTP listener and its HTTP face on one process and one store."""

    name = "mailgw"

    def __init__(self, workdir: Path) -> None:
        self.http_port = ib.free_port()
        super().__init__(workdir)
        with self.config.open("a") as f:
            f.write(f'[http]\nlisten = "127.0.0.1:{self.http_port}"\n'
                    'token_rate = 100000\ntoken_burst = 100000\n'
                    # the load generator is one address standing for many clients
                    'max_connections = 400\nmax_per_client = 400\n')
        text = self.config.read_text().replace('roles = ["smtp"]', 'roles = ["smtp", "http"]')
        self.config.write_text(text)
        out = subprocess.run(self.cli("token", "add", ib.SENDER, "--name", "bench",
                                      "--scope", "jobs:write,jobs:read,library"),
                             capture_output=True, text=True, check=False)
        found = TOKEN_RE.search(out.stdout)
        if out.returncode != 0 or not found:
            raise RuntimeError(f"mailgw token add failed: {out.stderr.strip()}")
        self.token = found.group(0)

    def command(self) -> list[str]:
        return self.cli("serve", "--roles", "smtp,http")


def wait_http(port: int, proc: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"target exited with {proc.returncode} before listening")
        try:
            httpx.get(f"http://127.0.0.1:{port}/", timeout=1)
            return
        except httpx.HTTPError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing answers HTTP on {port} after {timeout} s")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def http_load(port: int, token: str | None, pdf: bytes, total: int, clients: int
                    ) -> tuple[list[float], int]:
    """`total` POSTs from `clients` concurrent connections; latencies and failures."""
    latencies: list[float] = []
    failures = 0
    todo = iter(range(total))
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", limits=limits,
                                 timeout=120) as client:
        async def worker() -> None:
            nonlocal failures
            for i in todo:
                start = time.perf_counter()
                r = await client.post(
                    "/api/v1/jobs", headers={**headers, "Idempotency-Key": uuid.uuid4().hex},
                    data={"channel": "fax", "numbers": ib.NUMBER, "ref": f"B{i}"},
                    files={"documents": ("bench.pdf", pdf, "application/pdf")})
                latencies.append(time.perf_counter() - start)
                failures += r.status_code not in (200, 201)

        await asyncio.gather(*(worker() for _ in range(clients)))
    return latencies, failures


async def voice_load(port: int, token: str, total: int, clients: int
                     ) -> tuple[list[float], int]:
    """`total` JSON creates of a voice job from the library (no document to render)."""
    latencies: list[float] = []
    failures = 0
    todo = iter(range(total))
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", limits=limits,
                                 timeout=120) as client:
        async def worker() -> None:
            nonlocal failures
            for i in todo:
                start = time.perf_counter()
                r = await client.post(
                    "/api/v1/jobs", json={"channel": "voice", "numbers": [ib.NUMBER],
                                          "library_ref": "bench", "comment": f"B{i}"},
                    headers={"Authorization": f"Bearer {token}",
                             "Idempotency-Key": uuid.uuid4().hex})
                latencies.append(time.perf_counter() - start)
                failures += r.status_code not in (200, 201)

        await asyncio.gather(*(worker() for _ in range(clients)))
    return latencies, failures


def wav(seconds: float = 2.0, rate: int = 8000) -> bytes:
    """A short tone as 16-bit mono WAV (stdlib only), for the library."""
    import io  # late import: only the set-up needs it
    import math  # late import: only the set-up needs it
    import wave  # late import: only the set-up needs it

    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(b"".join(
            int(8000 * math.sin(2 * math.pi * 440 * i / rate)).to_bytes(2, "little", signed=True)
            for i in range(int(seconds * rate))))
    return buf.getvalue()


def smtp_load(port: int, pdf: bytes, total: int, clients: int) -> tuple[list[float], int]:
    latencies: list[float] = []
    failures = 0
    lock = threading.Lock()
    counter = iter(range(total))

    def worker() -> None:
        nonlocal failures
        with smtplib.SMTP("127.0.0.1", port, timeout=120) as s:
            while True:
                with lock:
                    i = next(counter, None)
                if i is None:
                    return
                raw = ib.mail_bytes(pdf, f"<{uuid.uuid4().hex}@bench>").replace(b"\n", b"\r\n")
                start = time.perf_counter()
                try:
                    s.sendmail(ib.SENDER, [ib.RCPT], raw)
                except smtplib.SMTPException:
                    failures += 1
                latencies.append(time.perf_counter() - start)

    threads = [threading.Thread(target=worker) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return latencies, failures


def client_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def measure(name: str, pid: int, run: Any, total: int) -> dict[str, Any]:
    cpu0, client0, wall0 = ib.tree_cpu(pid), client_cpu(), time.perf_counter()
    latencies, failures = run()
    wall = time.perf_counter() - wall0
    server = ib.tree_cpu(pid) - cpu0
    client = client_cpu() - client0
    cell = {"target": name, "requests": total, "failures": failures,
            "jobs_per_s": total / wall, "p50_ms": percentile(latencies, 0.50) * 1000,
            "p99_ms": percentile(latencies, 0.99) * 1000,
            "server_cpu_ms": server / total * 1000, "client_cpu_ms": client / total * 1000}
    ib.log(f"  {name}: {cell['jobs_per_s']:.0f}/s p50 {cell['p50_ms']:.1f} ms "
           f"p99 {cell['p99_ms']:.1f} ms server {cell['server_cpu_ms']:.2f} ms/job "
           f"client {cell['client_cpu_ms']:.2f} ms/req failures {failures}")
    return cell


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="fewer requests per cell")
    p.add_argument("--requests", type=int, default=0, help="requests per cell")
    p.add_argument("--rounds", type=int, default=2, help="turns per cell (median reported)")
    args = p.parse_args()
    total = args.requests or (300 if args.quick else 1000)
    pdf = ib.pdf_of_size(1000)
    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="mailgw-http-bench-") as tmp:
        work = Path(tmp)
        bare, mailgw = Bare(work), MailgwHttp(work)
        bare.start()
        mailgw.start()
        wait_http(mailgw.http_port, mailgw.proc)  # type: ignore[arg-type]
        try:
            stored = httpx.post(f"http://127.0.0.1:{mailgw.http_port}/api/v1/library",
                                headers={"Authorization": f"Bearer {mailgw.token}"},
                                data={"ref": "bench"},
                                files={"sound": ("bench.wav", wav(), "audio/wav")}, timeout=60)
            if stored.status_code >= 300:
                raise RuntimeError(f"library upload: {stored.status_code} {stored.text}")
            # warm-up: sandbox workers, argon2 once, connection pools
            asyncio.run(http_load(mailgw.http_port, mailgw.token, pdf, 20, 4))
            smtp_load(mailgw.port, pdf, 20, 4)
            asyncio.run(http_load(bare.port, None, pdf, 20, 4))
            asyncio.run(voice_load(mailgw.http_port, mailgw.token, 20, 4))
            for clients in (10, 100):
                for rnd in range(args.rounds):
                    ib.log(f"{clients} clients, round {rnd + 1}")
                    for name, pid, run in (
                        ("bare", bare.pid, lambda c=clients: asyncio.run(
                            http_load(bare.port, None, pdf, total, c))),
                        ("http", mailgw.pid, lambda c=clients: asyncio.run(
                            http_load(mailgw.http_port, mailgw.token, pdf, total, c))),
                        ("http-voice", mailgw.pid, lambda c=clients: asyncio.run(
                            voice_load(mailgw.http_port, mailgw.token, total, c))),
                        ("smtp", mailgw.pid, lambda c=clients: smtp_load(
                            mailgw.port, pdf, total, min(c, 100)))):
                        cell = measure(name, pid, run, total)
                        cell.update(clients=clients, round=rnd)
                        results.append(cell)
        finally:
            mailgw.stop()
            bare.stop()
    print(report(results))
    return 0


def report(results: list[dict[str, Any]]) -> str:
    def med(target: str, clients: int, key: str) -> float:
        return statistics.median(r[key] for r in results
                                 if r["target"] == target and r["clients"] == clients)

    lines = ["| clients | target | jobs/s | vs bare | p50 ms | p99 ms | server CPU ms/job | "
             "client CPU ms/req | failures |", "|---|---|---|---|---|---|---|---|---|"]
    for clients in (10, 100):
        base = med("bare", clients, "jobs_per_s")
        for target in ("bare", "http", "http-voice", "smtp"):
            fails = sum(r["failures"] for r in results
                        if r["target"] == target and r["clients"] == clients)
            rate = med(target, clients, "jobs_per_s")
            lines.append(
                f"| {clients} | {target} | {rate:.0f} | {rate / base:.2f} | "
                f"{med(target, clients, 'p50_ms'):.1f} | {med(target, clients, 'p99_ms'):.1f} | "
                f"{med(target, clients, 'server_cpu_ms'):.2f} | "
                f"{med(target, clients, 'client_cpu_ms'):.2f} | {fails} |")
        http_cpu = med("http", clients, "server_cpu_ms")
        smtp_cpu = med("smtp", clients, "server_cpu_ms")
        lines.append(f"\n{clients} clients: server CPU per job, HTTP / SMTP = "
                     f"{http_cpu / smtp_cpu:.2f}\n")
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
