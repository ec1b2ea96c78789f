"""Recovery in seconds after a crash: this process's holder facts, read from /proc, and the
start-up step that releases the leases of dead holders on this host.

Without it, the calls a killed `mailgw serve` had in flight wait for their lease
(`[dispatch] lease_seconds`) and its acks in flight for the outbox lease (twice
`[notify] smtp_timeout`). The decision is mailgw.ops.holders.is_dead (pure); the SQL is
mailgw.store.leases.
"""

from __future__ import annotations

import os
import socket
import uuid
from dataclasses import replace
from pathlib import Path

import structlog

from mailgw.ops.holders import (
    Holder,
    Process,
    boot_token,
    host_token,
    is_dead,
    machine_token,
    pidns_token,
)
from mailgw.ops.holders import parse as parse_owner
from mailgw.store import Store
from mailgw.store.leases import holders, release_owners

log = structlog.get_logger("mailgw.recovery")

PROC = Path("/proc")
BOOT_ID = PROC / "sys/kernel/random/boot_id"
MACHINE_ID = Path("/etc/machine-id")
OWNER_MAX = 100  # the width of lease_owner


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="ascii", errors="replace")
    except OSError:
        return ""


def process(pid: int, proc: Path = PROC) -> Process | None:
    """What this host says about `pid` now; None when no such process exists."""
    text = _read(proc / str(pid) / "stat")
    # "pid (comm) state ppid …": comm may hold spaces and parentheses, so split after the
    # last ')'; then state is field 3 and starttime field 22 of proc(5).
    fields = text.rpartition(")")[2].split()
    if len(fields) >= 20 and fields[19].isdigit():
        return Process(start=int(fields[19]), zombie=fields[0] in ("Z", "X"))
    if pid <= 0:
        return None
    # No readable entry: gone, or hidden (another user's process under hidepid, as
    # systemd's ProtectProc=invisible does). Signal 0 tells them apart without a signal.
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except OSError:
        pass  # EPERM: it exists, another user's
    return Process(start=None)


def _pidns() -> str | None:
    try:
        return pidns_token(os.readlink(PROC / "self/ns/pid"))
    except OSError:
        return None


def here(nonce: str = "") -> Holder:
    """This process, as its leases name it."""
    pid = os.getpid()
    me = process(pid)
    return Holder(host_token(socket.gethostname()), machine_token(_read(MACHINE_ID)),
                  boot_token(_read(BOOT_ID)), _pidns(), pid, me.start if me else None,
                  nonce)


def owner_id() -> str:
    """The lease owner of one App: this process's facts and a nonce of its own."""
    me = here(uuid.uuid4().hex[:6])
    if len(me.encode()) > OWNER_MAX:  # only an unusually wide namespace inode gets here
        me = replace(me, pidns=None)  # then never judged: the lease runs its time
    return me.encode()


def dead_owners(owners: set[str], me: Holder) -> set[str]:
    """Those of `owners` whose holder is certainly dead (on this host, gone)."""
    dead = set()
    for owner in owners:
        holder = parse_owner(owner)
        if holder is not None and holder.host == me.host and is_dead(
                holder, me, process(holder.pid)):
            dead.add(owner)
    return dead


def release_dead_holders(store: Store) -> tuple[int, int]:
    """At start-up, before this process claims anything: release at once the leases whose
    holder ran on this host and is dead. Other hosts' leases still wait their time.
    Returns (deliveries, outbox rows) released, and logs it."""
    me = here()
    owners = holders(store)
    dead = dead_owners(owners, me)
    released = release_owners(store, dead)
    if dead:
        log.info("dead_leases_released", holders=len(dead), deliveries=released[0],
                 outbox=released[1])
    if owners - dead:  # alive, elsewhere, or not judged: their leases run their time
        log.info("leases_held_elsewhere", holders=len(owners - dead))
    return released
