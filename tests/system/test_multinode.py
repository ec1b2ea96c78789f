"""Several `mailgw serve --roles dispatch` processes on one PostgreSQL: every delivery is
attempted, none twice at once, one node killed mid-run loses nothing; PostgreSQL restarted
during dispatch, the workers reconnect and finish."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from sqlalchemy import func, insert, select

from mailgw.accounts import accounts
from mailgw.app import prepare_store
from mailgw.ops import config
from mailgw.store import Attempt, Delivery, Job, utcnow
from tests.conftest import need, wait_until

pytestmark = pytest.mark.slow


def seed(store, n: int) -> int:  # type: ignore[no-untyped-def]
    """One job with n deliveries to distinct numbers the simulator delivers (00-89)."""
    with store.tx() as s:
        acc = accounts.add_account(s, "bulk@example.com", "pw", region="FR", lang="en",
                                   tz="Europe/Paris", credits=None)
        job = Job(account_id=acc.id, channel="fax", sender="bulk@example.com", state="active",
                  outcome="in_progress", pages=1)
        s.add(job)
        s.flush()
        now = utcnow()
        numbers = [f"+3317070{i // 90:02d}{i % 90:02d}" for i in range(n)]
        s.execute(insert(Delivery), [
            {"job_id": job.id, "number": num, "state": "queued", "next_attempt_at": now,
             "attempts": 0, "pages_sent": 0, "pages_total": 1, "credits_reserved": 0,
             "cancel_requested": False} for num in numbers])
        return job.id


def write_config(path: Path, url: str) -> Path:
    path.write_text(f'''
[store]
url = "{url}"
[dispatch]
workers = 8
poll_interval = "200ms"
lease_seconds = "3s"
[drivers.simulator]
time_scale = 0.0005
lines = 8
[serve]
roles = ["dispatch"]
grace_seconds = "5s"
[log]
format = "json"
level = "warning"
''')
    return path


def start(cfg: Path, log: Path, notify: str | None = None) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAILGW_")}
    if notify:  # the node says READY=1 there, as to systemd
        env["NOTIFY_SOCKET"] = notify
    with open(log, "ab") as f:
        return subprocess.Popen([sys.executable, "-m", "mailgw", "serve", "--roles", "dispatch",
                                 "--config", str(cfg)], stdout=f, stderr=subprocess.STDOUT,
                                env=env)


def counts(store) -> dict[str, int]:  # type: ignore[no-untyped-def]
    with store.read() as s:
        return dict(s.execute(select(Delivery.state, func.count()).group_by(Delivery.state)).all())


def test_four_dispatchers_2000_deliveries_one_killed(pg_url: str, tmp_path: Path) -> None:
    settings = config.load(search=False, environ={}, overrides={"store": {"url": pg_url}})
    store = prepare_store(settings)
    n = 2000
    job_id = seed(store, n)
    cfg = write_config(tmp_path / "node.toml", pg_url)
    procs = [start(cfg, tmp_path / f"node{i}.log") for i in range(4)]
    try:
        wait_until(lambda: counts(store).get("delivered", 0) >= n // 4, 120, "a quarter done")
        procs[0].send_signal(signal.SIGKILL)  # calls in flight die with it
        procs[0].wait(10)
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as ready:
            path = tempfile.mkdtemp(prefix="mgw-") + "/notify"  # short: AF_UNIX paths are
            ready.bind(path)  # limited to 108 bytes
            ready.settimeout(120)
            procs[0] = start(cfg, tmp_path / "node0-restarted.log", notify=path)
            wait_until(lambda: counts(store).get("delivered", 0) == n, 240, "all delivered")
            # The others may finish before the restarted node has even imported its code
            # (seconds on a loaded machine): SIGTERM it once it is up, which is the case
            # this test is about, not a stop in the middle of its start-up.
            while ready.recv(64) != b"READY=1":
                pass
        for p in procs:
            p.send_signal(signal.SIGTERM)
        assert all(p.wait(30) == 0 for p in procs)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    with store.read() as s:
        assert counts(store) == {"delivered": n}
        per_delivery = dict(s.execute(
            select(Attempt.delivery_id, func.count()).where(Attempt.result == "delivered")
            .group_by(Attempt.delivery_id)).all())
        assert len(per_delivery) == n and set(per_delivery.values()) == {1}  # never twice
        total_attempts = s.scalar(select(func.count()).select_from(Attempt))
        # deliveries whose call died with node 0 were attempted again: claims >= attempts
        claims = s.scalar(select(func.sum(Delivery.attempts)))
        assert total_attempts == n and claims is not None and claims >= n
        job = s.get(Job, job_id)
        assert job is not None and job.outcome == "delivered_all"
    print(f"claims={claims} attempts={total_attempts} reclaimed={claims - n}")
    store.dispose()


def test_postgresql_restart_during_dispatch(pg_url: str, tmp_path: Path) -> None:
    need(shutil.which("pg_ctlcluster") is not None and os.geteuid() == 0,
         "pg_ctlcluster as root is needed to restart PostgreSQL")
    versions = sorted(os.listdir("/etc/postgresql"))
    settings = config.load(search=False, environ={}, overrides={"store": {"url": pg_url}})
    store = prepare_store(settings)
    n = 600
    seed(store, n)
    cfg = write_config(tmp_path / "node.toml", pg_url)
    procs = [start(cfg, tmp_path / f"node{i}.log") for i in range(2)]
    try:
        wait_until(lambda: counts(store).get("delivered", 0) >= 50, 120, "dispatch under way")
        store.dispose()
        subprocess.run(["pg_ctlcluster", "--skip-systemctl-redirect", versions[-1], "main",
                        "restart"], check=True, timeout=120)
        wait_until(lambda: _quiet(lambda: counts(store).get("delivered", 0) == n), 240,
                   "all delivered after the restart")
        assert all(p.poll() is None for p in procs)  # they kept running
        for p in procs:
            p.send_signal(signal.SIGTERM)
        assert all(p.wait(30) == 0 for p in procs)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    with store.read() as s:
        assert s.scalar(select(func.count()).select_from(Attempt)
                        .where(Attempt.result == "delivered")) == n
    store.dispose()


def _quiet(check):  # type: ignore[no-untyped-def]
    try:
        return check()
    except Exception:  # noqa: BLE001 - the database is coming back
        return False
