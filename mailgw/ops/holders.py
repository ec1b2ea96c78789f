"""Who holds a lease, written into the lease itself, and whether that holder is dead.

A lease (`lease_owner` on deliveries and outbox rows) names its holder with the facts a
process on the same host needs to tell that it is gone without waiting for the lease to
run out: the host (its name and a hash of /etc/machine-id), the boot id of its kernel, its
PID namespace, its PID and that PID's start time (a PID reused by another process has
another start time).

The owner string, at most 100 characters (the column's width, no migration needed):

    host|machine|boot|pidns|pid|start|nonce

`machine` (8 hex), `boot` (16 hex), `pidns` (the namespace's inode, hex) and `start` are
`-` where they could not be read; the nonce keeps two `App`s of one process apart. The PID
namespace matters in containers: a process in another one (a container sharing the host's
name, as with host networking) is invisible here, so its absence proves nothing. An owner
that does not parse (the old `host:pid:random`, a test's "w1") is never judged: its lease
waits its time.

Pure: the caller reads /proc (mailgw.ops.recovery) and hands the facts in.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from hashlib import sha256

HOST_MAX = 32  # a longer name is cut and keeps a hash of the whole: 'cut~1a2b3c4d'
_HEX = re.compile(r"[0-9a-f]+")
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


@dataclass(frozen=True)
class Holder:
    """A process that may hold leases, as its owner string records it."""

    host: str  # the host token (host_token), compared as written
    machine: str | None  # 8 hex of sha256(/etc/machine-id), None where unknown
    boot: str | None  # the first 16 hex of the kernel's boot id, None where unknown
    pidns: str | None  # the inode of its PID namespace, in hex, None where unknown
    pid: int
    start: int | None  # /proc/<pid>/stat field 22 (clock ticks after boot), None unknown
    nonce: str = ""

    def encode(self) -> str:
        return "|".join([self.host, self.machine or "-", self.boot or "-", self.pidns or "-",
                         str(self.pid),
                         "-" if self.start is None else str(self.start), self.nonce])


@dataclass(frozen=True)
class Process:
    """What this host says now about a PID: its start time (None: the process exists but
    its /proc entry is hidden, e.g. another user's under ProtectProc=invisible) and
    whether it is a zombie."""

    start: int | None
    zombie: bool = False  # killed, not yet waited for by its parent: it holds nothing


def host_token(name: str) -> str:
    """The host's name as the owner string carries it: no separator, at most HOST_MAX."""
    clean = _UNSAFE.sub("_", name) or "_"
    if len(clean) <= HOST_MAX:
        return clean
    return f"{clean[:HOST_MAX - 9]}~{sha256(name.encode()).hexdigest()[:8]}"


def machine_token(machine_id: str) -> str | None:
    text = machine_id.strip()
    return sha256(text.encode()).hexdigest()[:8] if text else None


def boot_token(boot_id: str) -> str | None:
    text = boot_id.strip().replace("-", "").lower()[:16]
    return text if len(text) == 16 and _HEX.fullmatch(text) else None


def pidns_token(link: str) -> str | None:
    """'pid:[4026531836]' (readlink /proc/self/ns/pid) → 'f0000004'."""
    inode = link.strip().removeprefix("pid:[").removesuffix("]")
    return format(int(inode), "x") if inode.isdigit() else None


def parse(owner: str | None) -> Holder | None:
    """The holder an owner string names, or None if it is not in this form."""
    parts = (owner or "").split("|")
    if len(parts) != 7:
        return None
    host, machine, boot, pidns, pid, start, nonce = parts
    if not host or not pid.isdigit() or not (start == "-" or start.isdigit()):
        return None
    if machine != "-" and not (len(machine) == 8 and _HEX.fullmatch(machine)):
        return None
    if boot != "-" and not (len(boot) == 16 and _HEX.fullmatch(boot)):
        return None
    if pidns != "-" and not (len(pidns) <= 16 and _HEX.fullmatch(pidns)):
        return None
    return Holder(host, None if machine == "-" else machine, None if boot == "-" else boot,
                  None if pidns == "-" else pidns, int(pid),
                  None if start == "-" else int(start), nonce)


def is_dead(holder: Holder, here: Holder, process: Process | None) -> bool:
    """True only when `holder` certainly runs no more: it is on this host (`here`: our own
    facts) and either the host booted since, or, in our own PID namespace, no process has
    its PID, or the process with its PID started at another time (the PID was reused) or
    is a zombie.

    `process` is what this host reports now for holder.pid (None: no such process). Any
    doubt answers False, and the lease then waits its time: another host, a machine id,
    boot id or PID namespace unknown on either side, another PID namespace of this boot
    (its processes are invisible from ours), a start time the holder could not record.
    """
    if holder.host != here.host or holder.machine != here.machine:
        return False  # another host: only its lease's end tells
    if holder.boot is None or here.boot is None:
        return False  # no boot id (not Linux): a PID alone proves nothing
    if holder.boot != here.boot:
        return True  # the host restarted since: every process of that boot is gone
    if holder.pidns is None or holder.pidns != here.pidns:
        return False  # another namespace (another container): its PIDs are not ours to see
    if process is None:
        return True
    if process.zombie:
        return True
    if holder.start is None or process.start is None:
        return False  # a live PID, and nothing to tell a reuse from the holder
    return process.start != holder.start
