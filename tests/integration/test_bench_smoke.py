"""The benchmarks run (tiny `--smoke` mode): no timing is asserted here, only that each bench
finishes, finds no double claim and no lost notice (exit 0), and prints its tables."""

from __future__ import annotations

import os
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
