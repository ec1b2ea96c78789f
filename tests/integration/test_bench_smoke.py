"""The benchmarks run (tiny `--smoke` mode): no timing is asserted here, only that each bench
finishes, finds no double claim and no lost notice (exit 0), and prints its tables."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

from tests.conftest import _pg_available, need

ROOT = Path(__file__).resolve().parents[2]


def run_bench(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=600, check=False)


def test_dispatch_bench_smoke() -> None:
    skip = [] if _pg_available() else ["--skip", "postgresql"]
    done = run_bench("bench/dispatch.py", "--smoke", *skip)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "| sqlite | 1 | bare |" in done.stdout
    assert "| sqlite | 1 | dispatcher |" in done.stdout
    assert "double claims" in done.stdout


def test_notify_bench_smoke() -> None:
    need(Path("/usr/sbin/smtp-sink").exists(), "Postfix smtp-sink is not installed")
    done = run_bench("bench/notify.py", "--smoke")
    assert done.returncode == 0, done.stderr[-3000:]
    assert "| mailgw |" in done.stdout


def test_render_bench_smoke() -> None:
    done = run_bench("bench/render.py", "--smoke")
    assert done.returncode == 0, done.stderr[-3000:]
    assert "| text PDF |" in done.stdout and "| photo JPEG (12 MP) |" in done.stdout


def test_smtp_load_builds_distinct_wire_ready_mails() -> None:
    from bench import smtp_load  # late import: bench/ is not a package of mailgw

    template = b"Message-ID: <old@x>\nSubject: s\n\n.dot first\nplain\n"
    mails = smtp_load.distinct(template, 3)
    ids = {m.split(b"\r\n", 1)[0] for m in mails}
    assert len(ids) == 3 and all(i.startswith(b"Message-ID: <load.") for i in ids)
    assert all(b"<old@x>" not in m for m in mails)
    assert mails[0].endswith(b"\r\n\r\n..dot first\r\nplain\r\n.\r\n")


def test_smtp_load_sends_every_mail_to_raw_aiosmtpd() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen([sys.executable, "bench/raw_aiosmtpd.py", str(port)], cwd=ROOT,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None and server.stdout.readline().strip() == "ready"
        done = run_bench("bench/smtp_load.py", f"127.0.0.1:{port}", "--count", "30",
                         "--sessions", "3", "--reuse", "2", "--json", "-")
        assert done.returncode == 0, done.stderr[-3000:]
        result = json.loads(done.stdout)
        assert result["accepted"] == 30 and result["deferred"] == result["refused"] == 0
        assert 15 <= result["connections"] <= 18  # two mails a connection, 3 sessions
        assert result["client_cpu_ms_per_msg"] > 0
    finally:
        server.terminate()
        server.wait(10)
