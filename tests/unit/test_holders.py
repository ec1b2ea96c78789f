"""A lease's holder: the owner string round-trips, and a holder is judged dead only when
this host can prove it (mailgw.ops.holders, pure; /proc read by mailgw.ops.recovery)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from mailgw.ops import recovery
from mailgw.ops.holders import (
    HOST_MAX,
    Holder,
    Process,
    boot_token,
    host_token,
    is_dead,
    machine_token,
    parse,
    pidns_token,
)

HERE = Holder("gw1", "0035969e", "5e04e49d890b44b4", "effffffc", 4000, 1000, "")
ME_ALIVE = Process(start=1000)


def holder(**changes: object) -> Holder:
    fields = {"host": "gw1", "machine": "0035969e", "boot": "5e04e49d890b44b4",
              "pidns": "effffffc", "pid": 4242, "start": 5000, "nonce": "abc123", **changes}
    return Holder(**fields)  # type: ignore[arg-type]


@pytest.mark.parametrize("h, process, dead", [
    (holder(), Process(start=5000), False),  # alive: same PID, same start time
    (holder(), None, True),  # no process with that PID any more
    (holder(), Process(start=7777), True),  # the PID was reused by another process
    (holder(), Process(start=5000, zombie=True), True),  # killed, not yet waited for
    (holder(boot="ffffffffffffffff"), Process(start=5000), True),  # the host rebooted
    (holder(boot="ffffffffffffffff"), None, True),
    (holder(host="gw2"), None, False),  # another host: its lease runs its time
    (holder(host="gw2", boot="ffffffffffffffff"), None, False),
    (holder(machine="deadbeef"), None, False),  # same name, another machine
    (holder(machine=None), None, False),  # a machine id on one side only
    (holder(boot=None), None, False),  # no boot id: a PID alone proves nothing
    (holder(pidns="effffffb"), None, False),  # another container's PIDs are not ours to see
    (holder(pidns="effffffb"), Process(start=7777), False),
    (holder(pidns="effffffb", boot="ffffffffffffffff"), None, True),  # but a reboot is
    (holder(pidns=None), None, False),
    (holder(start=None), Process(start=5000), False),  # a live PID, no start to compare
    (holder(), Process(start=None), False),  # a live PID whose /proc entry is hidden
    (holder(start=None), None, True),  # …but no process at all is proof enough
])
def test_is_dead(h: Holder, process: Process | None, dead: bool) -> None:
    assert is_dead(h, HERE, process) is dead


def test_no_boot_id_here_proves_nothing() -> None:
    assert is_dead(holder(), Holder("gw1", "0035969e", None, "effffffc", 1, None),
                   None) is False


def test_machine_id_unknown_on_both_sides_compares_the_name() -> None:
    here = Holder("gw1", None, "5e04e49d890b44b4", "effffffc", 1, 1)
    assert is_dead(holder(machine=None), here, None) is True
    assert is_dead(holder(machine=None, host="gw2"), here, None) is False


def test_owner_string_round_trips_and_fits_the_column() -> None:
    h = Holder(host_token("h" * 64), "0035969e", "5e04e49d890b44b4", "ffffffff", 4194304,
               99_999_999_999, "abcdef")
    text = h.encode()
    assert parse(text) == h and len(text) <= 100
    unknown = Holder("gw1", None, None, None, 12, None, "n")
    assert unknown.encode() == "gw1|-|-|-|12|-|n" and parse(unknown.encode()) == unknown


@pytest.mark.parametrize("owner", [
    None, "", "w1", "another-node", "vm:4807:c5d715",  # the former host:pid:random
    "gw1|-|-|12|-|n",  # the six fields of no version
    "gw1|-|-|-|12|-", "gw1|-|-|-|x|-|n", "|-|-|-|12|-|n", "gw1|zz|-|-|12|-|n",
    "gw1|-|5e04e49d|-|12|-|n", "gw1|-|-|-|12|1.5|n", "gw1|-|-|pid:[1]|12|-|n",
])
def test_owners_not_in_the_form_are_never_judged(owner: str | None) -> None:
    assert parse(owner) is None


def test_tokens() -> None:
    assert host_token("gw-1.example.org") == "gw-1.example.org"
    assert host_token("a|b:c d") == "a_b_c_d"  # never the separator
    long = host_token("x" * 80)
    assert len(long) == HOST_MAX and long != host_token("x" * 79)  # the hash tells them apart
    assert boot_token("5e04e49d-890b-44b4-a1b7-0123456789ab\n") == "5e04e49d890b44b4"
    assert boot_token("") is None and boot_token("not a boot id at all") is None
    assert machine_token("") is None and machine_token("abc\n") == machine_token("abc")
    assert pidns_token("pid:[4026531836]") == "effffffc" and pidns_token("") is None


def test_proc_stat_with_a_hostile_command_name(tmp_path: Path) -> None:
    (tmp_path / "77").mkdir()
    rest = " ".join(["1"] * 18 + ["424242"] + ["0"] * 10)
    (tmp_path / "77" / "stat").write_text(f"77 (evil) S (x)) S {rest}\n")
    assert recovery.process(77, tmp_path) == Process(start=424242, zombie=False)
    (tmp_path / "77" / "stat").write_text(f"77 (mailgw) Z {rest}\n")
    assert recovery.process(77, tmp_path) == Process(start=424242, zombie=True)
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait(30)
    assert recovery.process(gone.pid, tmp_path) is None  # no entry, and kill(0) says gone
    # no entry here, but the process exists (as a hidden one would): alive, start unknown
    assert recovery.process(os.getpid(), tmp_path) == Process(start=None)


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="no /proc here")
def test_this_host_judges_real_processes() -> None:
    me = recovery.here()
    assert me.pid == os.getpid() and me.start is not None
    assert parse(recovery.owner_id()) is not None
    assert recovery.dead_owners({me.encode()}, me) == set()  # ourselves: alive
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        theirs = Holder(me.host, me.machine, me.boot, me.pidns, child.pid,
                        recovery.process(child.pid).start, "n")  # type: ignore[union-attr]
        assert recovery.dead_owners({theirs.encode()}, me) == set()
        child.kill()
        child.wait(10)
        elsewhere = Holder("other-host", me.machine, me.boot, me.pidns, child.pid,
                           theirs.start, "n")
        reused = Holder(me.host, me.machine, me.boot, me.pidns, os.getpid(), 1, "n")
        assert recovery.dead_owners({theirs.encode(), elsewhere.encode(), reused.encode(),
                                     "vm:1:abc"}, me) == {theirs.encode(), reused.encode()}
    finally:
        if child.poll() is None:
            child.kill()
