"""Recovery in seconds: a process that starts hands back at once the leases of dead holders
on its own host (mailgw.ops.recovery), and only those; after `kill -9` of the only
`mailgw serve`, 20 mails in flight converge right after the restart, none lost or doubled."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import smtplib
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from mailgw.accounts import accounts
from mailgw.app import prepare_store
from mailgw.ops import config, recovery
from mailgw.ops.holders import Holder
from mailgw.store import Attempt, Delivery, Job, OutboxMail, Store, utcnow
from mailgw.store import dispatch as leases
from mailgw.store.leases import holders
from tests.conftest import PASSWORD, Sink, SinkHandler, fax_message, free_port, wait_until
from tests.integration.test_cli import mailgw


def _dead_pid() -> int:
    """A PID that just ended (waited for): no process has it now."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait(30)
    return child.pid


def _seed(store: Store, owners: list[str]) -> tuple[list[int], list[int]]:
    """One delivery in flight and one unsent outbox row leased per owner."""
    later = utcnow().replace(microsecond=0)
    with store.tx() as s:
        acc = accounts.add_account(s, "a@example.com", "pw", region="FR", lang="fr",
                                   tz="Europe/Paris", credits=None)
        job = Job(account_id=acc.id, channel="fax", sender="a@example.com", state="active",
                  outcome="in_progress")
        s.add(job)
        s.flush()
        ds = [Delivery(job_id=job.id, number=f"+3317070990{i}", state="sending",
                       next_attempt_at=later, attempts=1, pages_sent=0, pages_total=1,
                       lease_owner=o, lease_expires_at=later.replace(year=later.year + 1))
              for i, o in enumerate(owners)]
        ms = [OutboxMail(kind="ack", job_id=job.id, mail_from="", rcpt_to="a@example.com",
                         message_id=f"<m{i}@gw>", body=b"x", next_attempt_at=later,
                         lease_owner=o, lease_expires_at=later.replace(year=later.year + 1))
              for i, o in enumerate(owners)]
        s.add_all([*ds, *ms])
        s.flush()
        return [d.id for d in ds], [m.id for m in ms]


def test_start_releases_only_the_leases_of_dead_holders_here(store_url: str) -> None:
    settings = config.load(search=False, environ={}, overrides={"store": {"url": store_url}})
    store = prepare_store(settings)
    me = recovery.here()
    dead = Holder(me.host, me.machine, me.boot, me.pidns, _dead_pid(), 12345,
                  "dead01").encode()
    reused = Holder(me.host, me.machine, me.boot, me.pidns, os.getpid(), 1, "reuse1").encode()
    alive = recovery.owner_id()  # this very process
    elsewhere = Holder("another-host", me.machine, "0123456789abcdef", me.pidns,
                       _dead_pid(), 1, "far001").encode()
    container = Holder(me.host, me.machine, me.boot, "1", _dead_pid(), 1, "ns0001").encode()
    owners = [dead, reused, alive, elsewhere, container,
              "vm:4807:c5d715"]  # the last: the old form
    d_ids, m_ids = _seed(store, owners)  # numbers …9900 to …9905
    assert holders(store) == set(owners)
    assert recovery.release_dead_holders(store) == (2, 2)
    with store.read() as s:
        ds = {d.id: d for d in s.scalars(select(Delivery))}
        ms = {m.id: m for m in s.scalars(select(OutboxMail))}
    for i, owner in enumerate(owners):
        d, m = ds[d_ids[i]], ms[m_ids[i]]
        if owner in (dead, reused):  # back in the queue, the attempt not counted
            assert (d.state, d.lease_owner, d.attempts) == ("queued", None, 0)
            assert (m.lease_owner, m.lease_expires_at, m.sent_at) == (None, None, None)
        else:  # alive, another host's or namespace's, not in the form: they wait
            assert (d.state, d.lease_owner, d.attempts) == ("sending", owner, 1)
            assert m.lease_owner == owner and m.lease_expires_at is not None
    assert recovery.release_dead_holders(store) == (0, 0)  # nothing more to hand back
    # the released deliveries are claimable at once, as the same attempt
    claims = leases.claim(store, alive, 5, lease_seconds=60)
    assert sorted(c.delivery_id for c in claims) == d_ids[:2]
    assert all(c.attempt == 1 for c in claims)
    store.dispose()


class HoldingSink(SinkHandler):
    """A smarthost that, while `hold` is set, keeps each DATA waiting and never takes it:
    the sender's ack stays in flight under its lease."""

    def __init__(self) -> None:
        super().__init__()
        self.hold = threading.Event()
        self.held = 0

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.hold.is_set():
            self.held += 1
            while self.hold.is_set():
                await asyncio.sleep(0.05)
            return "451 4.3.0 held, not taken"
        return await super().handle_DATA(server, session, envelope)


def _events(log: Path) -> list[dict[str, Any]]:
    out = []
    for line in log.read_text().splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            continue
    return out


def test_kill_9_with_20_mails_in_flight_converges_right_after_restart(
        tmp_path: Path, corpus: Path) -> None:
    """20 calls in flight and an ack held by the smarthost when the only `serve` is killed;
    the leases are the defaults (60 s for a call, 60 s for an outbox row). After the
    restart every ack, call and notice completes once. The seconds are printed (no timing
    assertion: the bound is generous, the figure goes to docs and the report)."""
    n = 20
    handler = HoldingSink()
    sink = Sink()
    sink.handler = handler
    sink.controller.handler = handler
    sink.start()
    port = free_port()
    cfg = tmp_path / "kill.toml"
    base = f'''
[gateway]
fax_address = "fax@gw.example.org"
domain = "gw.example.org"
[smtp]
listen = "127.0.0.1:{port}"
[store]
url = "sqlite:///{tmp_path / 'kill.db'}"
[notify]
smarthost = "127.0.0.1:{sink.port}"
[dispatch]
workers = {n}
[log]
format = "json"
'''
    # 98 = slow: ten times 30 s a page, x 0.2 = about a minute a call; then 0.3 s a call
    cfg.write_text(base + f"[drivers.simulator]\ntime_scale = 0.2\nlines = {n}\n")
    cfg2 = tmp_path / "restart.toml"
    cfg2.write_text(base + f"[drivers.simulator]\ntime_scale = 0.001\nlines = {n}\n")
    assert mailgw("account", "add", "alice@example.com", "--password-stdin", "--config",
                  str(cfg), stdin=PASSWORD + "\n").returncode == 0
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAILGW_")}

    def start(conf: Path, log: Path) -> subprocess.Popen[bytes]:
        with open(log, "w") as f:
            return subprocess.Popen([sys.executable, "-m", "mailgw", "serve", "--config",
                                     str(conf)], stdout=f, stderr=subprocess.STDOUT, env=env)

    log1, log2 = tmp_path / "first.log", tmp_path / "second.log"
    first, second = start(cfg, log1), None
    store = prepare_store(config.load(cfg, environ={}), migrate=False)
    try:
        wait_until(lambda: '"event": "ready"' in log1.read_text(), 60, "ready")
        handler.hold.set()
        pdf = (corpus / "pdfs" / "one-page-crazyones.pdf").read_bytes()
        with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
            for i in range(n):
                client.send_message(fax_message(f"{PASSWORD}:017070{i:02d}98", pdf))

        def in_flight() -> bool:
            with store.read() as s:
                sending = s.scalar(select(func.count()).select_from(Delivery)
                                   .where(Delivery.state == "sending"))
                acks = s.scalar(select(func.count()).select_from(OutboxMail).where(
                    OutboxMail.lease_owner.is_not(None), OutboxMail.sent_at.is_(None)))
            return sending == n and bool(acks) and handler.held >= 1

        wait_until(in_flight, 60, f"{n} calls in flight and an ack held by the smarthost")
        first.send_signal(signal.SIGKILL)
        first.wait(10)
        handler.hold.clear()  # the smarthost takes mail again
        t0 = time.monotonic()
        second = start(cfg2, log2)
        seen: dict[str, float] = {}

        def converged() -> bool:
            now = time.monotonic() - t0
            text = log2.read_text()
            if "released" not in seen and '"event": "dead_leases_released"' in text:
                seen["released"] = now
            if "resumed" not in seen and text.count('"event": "call_started"') >= n:
                seen["resumed"] = now  # every call placed again
            if "ready" not in seen and '"event": "ready"' in text:
                seen["ready"] = now
            if "acks" not in seen and len(sink.kinds("ack")) >= n:
                seen["acks"] = now
            with store.read() as s:
                delivered = s.scalar(select(func.count()).select_from(Delivery)
                                     .where(Delivery.state == "delivered"))
            if "calls" not in seen and delivered == n:
                seen["calls"] = now
            if "notices" not in seen and len(sink.kinds("notice")) >= n:
                seen["notices"] = now
            return {"acks", "resumed", "calls", "notices"} <= seen.keys()

        wait_until(converged, 180, "every ack, call and notice after the restart")
        print("\nrecovery after kill -9, seconds from the restart: "
              + ", ".join(f"{k} {v:.2f}" for k, v in seen.items()))
        second.send_signal(signal.SIGTERM)
        assert second.wait(30) == 0
        released = [e for e in _events(log2) if e.get("event") == "dead_leases_released"]
        assert len(released) == 1 and released[0]["deliveries"] == n
        assert released[0]["outbox"] >= 1
        with store.read() as s:
            assert s.scalar(select(func.count()).select_from(Attempt)) == n  # one call each
            ds = s.scalars(select(Delivery)).all()
            assert len(ds) == n and all(d.state == "delivered" and d.attempts == 1 for d in ds)
            assert len({d.number for d in ds}) == n
            assert all(m.sent_at is not None for m in s.scalars(select(OutboxMail)))
        acks, notices = sink.kinds("ack"), sink.kinds("notice")
        assert len(acks) == n and len({m["In-Reply-To"] for m in acks}) == n  # none twice
        assert len(notices) == n and len({m["Message-ID"] for m in notices}) == n
    finally:
        handler.hold.clear()
        for p in (first, second):
            if p is not None and p.poll() is None:
                p.kill()
        store.dispose()
        sink.stop()
