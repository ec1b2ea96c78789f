"""A private, real HylaFAX 6.0 (Debian's hylafax-server) for the driver's tests.

What runs (shared/notes/hylafax-testing.md lists the traps this avoids):
- a mount namespace (`unshare -m`) held by a small shell, in which a private copy of the
  spool is bind-mounted on /var/spool/hylafax (faxsend hard-codes that path) and /dev is a
  tmpfs of symlinks to the real /dev plus `/dev/log` (our syslog catcher) and
  `/dev/ttyMG…` (our modem's pty): nothing of the machine's own HylaFAX is touched;
- `faxq -D` and `hfaxd -d -l 127.0.0.1 -i PORT` inside it, both dropping to uucp;
- a modem on a pty: the fake Class 2.0 modem (tests/fakemodem.py) or the real T.30 far end
  (tests/t31modem/t31pty.c, a spandsp T.31 modem wired to a T.30 answering terminal),
  announced to faxq with `faxmodem`.
Every process is started here and stopped by its PID.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

SPOOL = Path("/var/spool/hylafax")
FAXQ, HFAXD = "/usr/sbin/faxq", "/usr/sbin/hfaxd"
LIBBIN = Path("/usr/lib/hylafax/bin")
HERE = Path(__file__).resolve().parent
CAPS = "(0,1),(0-5),(0-4),(0-2),0,0,0,(0-7)"

COMMON = """\
CountryCode: 1
AreaCode: 555
FAXNumber: +1.555.000.0000
LongDistancePrefix: 1
InternationalPrefix: 011
DialStringRules: etc/dialrules
ServerTracing: 0xFFFFF
SessionTracing: 0xFFFFF
LogFileMode: 0644
LocalIdentifier: "MAILGW TEST"
ModemRate: 19200
ModemFlowControl: rtscts
ModemDialCmd: ATDT%s
"""
CLASS2 = COMMON + """\
ModemType: Class2.0
Class2XmitWaitForXON: no
ModemResetDelay: 0
ModemSoftResetCmdDelay: 100
ModemPageDoneTimeout: 10000
"""
CLASS1 = COMMON + """\
ModemType: Class1
ModemResetCmds: ATH0
ModemReadyCmds: ATH0
Class1Cmd: AT+FCLASS=1
Class1PPMWaitCmd: AT+FTS=7
Class1TCFWaitCmd: AT+FTS=7
Class1EOPWaitCmd: AT+FTS=9
Class1SwitchingCmd: AT+FRS=7
Class1RecvAbortOK: 200
Class1FrameOverhead: 4
Class1RecvIdentTimer: 40000
Class1TCFMaxNonZero: 10
Class1TCFMinRun: 1000
Class1TMConnectDelay: 400
ModemResetDelay: 0
"""

RECEIVE = """\
RingsBeforeAnswer: 1
CallIDPattern: "NMBR="
RecvFileMode: 0644
"""

HOLDER = r"""
set -e
B="$1"
mount --make-rprivate /
mount --bind "$B/spool" /var/spool/hylafax
mkdir -p "$B/realdev"
mount --rbind /dev "$B/realdev"
mount -t tmpfs -o mode=755 mgwdev /dev
for f in "$B"/realdev/* "$B"/realdev/.[!.]*; do
  [ -e "$f" ] || [ -L "$f" ] || continue
  ln -s "$f" "/dev/${f##*/}"
done
# setuid programs reopen closed 0/1/2 on /dev/null and /dev/full with O_NOFOLLOW
for n in null zero full random urandom tty; do
  rm -f "/dev/$n"; touch "/dev/$n"; mount --bind "$B/realdev/$n" "/dev/$n"
done
ln -sf "$B/log.sock" /dev/log
echo ready
read -r _ignored || true
"""


def missing() -> str | None:
    """Why this machine cannot run the real-HylaFAX tests, or None."""
    for path in (FAXQ, HFAXD, str(LIBBIN / "faxsend"), str(LIBBIN / "faxmodem"),
                 "/etc/hylafax/config", str(SPOOL)):
        if not os.path.exists(path):
            return f"HylaFAX is not installed ({path} missing: apt-get install hylafax-server)"
    if shutil.which("gs") is None:
        return "ghostscript (gs) is missing: HylaFAX converts PDFs with it"
    if os.geteuid() != 0:
        return "the HylaFAX fixture needs root (mount namespace, uucp-owned spool)"
    if shutil.which("unshare") is None or shutil.which("nsenter") is None:
        return "util-linux unshare/nsenter are missing"
    probe = subprocess.run(["unshare", "-m", "true"], capture_output=True)
    if probe.returncode != 0:
        return f"cannot create a mount namespace: {probe.stderr.decode().strip()}"
    return None


def wait_for(predicate: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.05)


class Syslog:
    """An AF_UNIX datagram listener standing in for syslogd, so faxq's lines can be waited on."""

    def __init__(self, path: Path):
        self.path = path
        self.lines: list[str] = []
        self.cond = threading.Condition()
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        os.chmod(path, 0o666)
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while True:
            try:
                data = self.sock.recv(65536)
            except OSError:
                return
            line = data.decode("utf-8", "replace").rstrip("\n\x00")
            with contextlib.suppress(OSError), open(self.path.with_name("syslog.txt"), "a") as f:
                f.write(line + "\n")
            with self.cond:
                self.lines.append(line)
                self.cond.notify_all()

    def wait(self, text: str, timeout: float = 30.0, start: int = 0) -> str:
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                for line in self.lines[start:]:
                    if text in line:
                        return line
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"timed out after {timeout} s waiting for syslog "
                                         f"{text!r}; last lines:\n" +
                                         "\n".join(self.lines[-30:]))
                self.cond.wait(left)

    def mark(self) -> int:
        with self.cond:
            return len(self.lines)

    def close(self) -> None:
        self.sock.close()


class Modem:
    """A modem on a pty: the fake Class 2.0 one, or the spandsp Class 1 (T.31) far end."""

    def __init__(self, base: Path, kind: str, t31_binary: Path | None = None):
        self.kind = kind
        self.modes_path = base / "modes.json"
        self.events_path = base / "events.jsonl"
        self.set_modes({})
        self.events_path.touch()
        self.rxdir = base / "rx"
        self.rxdir.mkdir(exist_ok=True)
        if kind == "class2":
            argv = [sys.executable, str(HERE / "fakemodem.py"), str(self.modes_path),
                    str(self.events_path)]
        else:
            assert t31_binary is not None
            argv = [str(t31_binary), str(self.modes_path.with_suffix(".txt")),
                    str(self.events_path), str(self.rxdir)]
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=open(base / f"{kind}.stderr", "wb"))
        assert self.proc.stdout is not None
        self.pty = self.proc.stdout.readline().decode().strip()
        if not self.pty.startswith("/dev/"):
            raise RuntimeError(f"the {kind} modem did not start (see {base}/{kind}.stderr)")

    def set_modes(self, numbers: dict[str, dict[str, Any]],
                  default: dict[str, Any] | None = None) -> None:
        data = {"default": default or {"mode": "ok", "csid": "+1 555 0100 REMOTE"},
                "numbers": numbers, "serial": time.time_ns()}  # new modes: counts restart
        tmp = self.modes_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data))
        tmp.replace(self.modes_path)
        # the same for the C helper: ENDING<TAB>MODE<TAB>AFTER<TAB>CSID, "*" = default
        rows = [("*", data["default"])] + list(numbers.items())
        tmp.write_text("".join(f"{key}\t{m.get('mode', 'ok')}\t{m.get('after', 1)}\t"
                               f"{m.get('csid', 'T31 FAR END')}\n" for key, m in rows))
        tmp.replace(self.modes_path.with_suffix(".txt"))

    def events(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.events_path.read_text().splitlines()
                if line.strip()]

    def stop(self) -> None:
        with contextlib.suppress(Exception):
            assert self.proc.stdin is not None
            self.proc.stdin.close()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)


class HylafaxEnv:
    """faxq + hfaxd on 127.0.0.1:`port` with one modem, in a private spool and namespace."""

    USER = "mailgw"
    SECURE_USER, SECURE_PASSWORD = "mgwsecure", "s3cret-pw"

    def __init__(self, modem_kind: str = "class2", t31_binary: Path | None = None):
        self.base = Path(tempfile.mkdtemp(prefix="mgw-hylafax-"))
        os.chmod(self.base, 0o755)
        self.spool = self.base / "spool"
        self.device = "ttyMG" + secrets.token_hex(3)
        self.modem_kind = modem_kind
        self.t31_binary = t31_binary
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.port = 0
        self.syslog: Syslog | None = None
        self.modem: Modem | None = None

    # -- setup ---------------------------------------------------------------------------
    def _spool(self) -> None:
        subprocess.run(["cp", "-a", str(SPOOL), str(self.spool)], check=True)
        subprocess.run(["cp", "-a", "/etc/hylafax/.", str(self.spool / "etc")], check=True)
        for sub in ("sendq", "doneq", "docq", "log", "tmp", "info", "status", "archive",
                    "pollq", "recvq", "client"):
            d = self.spool / sub
            d.mkdir(exist_ok=True)
            for f in d.iterdir():
                if f.is_file() or f.is_symlink():
                    f.unlink()
        etc = self.spool / "etc"
        hashed = subprocess.run(["openssl", "passwd", "-6", self.SECURE_PASSWORD],
                                capture_output=True, text=True, check=True).stdout.strip()
        hosts = etc / "hosts.hfaxd"
        hosts.write_text(f"^{self.SECURE_USER}@127\\.0\\.0\\.1$:21:{hashed}:\n"
                         "^.*@127\\.0\\.0\\.1$:21::\nlocalhost:21::\n127.0.0.1:21::\n")
        with open(etc / "config", "a") as f:
            f.write("\nSendFaxCmd: /usr/lib/hylafax/bin/faxsend\n"
                    "CountryCode: 1\nAreaCode: 555\nLongDistancePrefix: 1\n"
                    "InternationalPrefix: 011\nServerTracing: 0xFFFFF\n"
                    "LogFacility: daemon\n")
        template = CLASS2 if self.modem_kind == "class2" else CLASS1
        (etc / f"config.{self.device}").write_text(template)
        subprocess.run(["chown", "-R", "uucp:uucp", str(self.spool)], check=True)
        os.chmod(hosts, 0o600)

    def _ns(self, argv: list[str], name: str) -> subprocess.Popen[bytes]:
        holder = self.procs["holder"].pid
        out = open(self.base / f"{name}.out", "ab")
        proc = subprocess.Popen(["nsenter", "-t", str(holder), "-m", "--", *argv],
                                stdin=subprocess.DEVNULL, stdout=out, stderr=out)
        self.procs[name] = proc
        return proc

    def run_in_ns(self, argv: list[str], timeout: float = 30.0) -> subprocess.CompletedProcess[str]:
        holder = self.procs["holder"].pid
        return subprocess.run(["nsenter", "-t", str(holder), "-m", "--", *argv],
                              capture_output=True, text=True, timeout=timeout)

    def start(self) -> HylafaxEnv:
        self._spool()
        self.syslog = Syslog(self.base / "log.sock")
        holder = subprocess.Popen(["unshare", "-m", "sh", "-c", HOLDER, "holder",
                                   str(self.base)], stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE,
                                  stderr=open(self.base / "holder.err", "wb"))
        self.procs["holder"] = holder
        assert holder.stdout is not None
        if holder.stdout.readline().strip() != b"ready":
            raise RuntimeError("mount namespace set-up failed: "
                               + (self.base / "holder.err").read_text())
        self.modem = Modem(self.base, self.modem_kind, self.t31_binary)
        link = self.run_in_ns(["ln", "-sf", self.modem.pty, f"/dev/{self.device}"])
        if link.returncode:
            raise RuntimeError(f"cannot link the modem: {link.stderr}")
        self.start_faxq()
        self.port = _free_port()
        self._ns([HFAXD, "-d", "-l", "127.0.0.1", "-i", str(self.port)], "hfaxd")
        wait_for(self._port_open, 20, "hfaxd to listen")
        return self

    def start_faxq(self) -> None:
        assert self.syslog is not None
        # after a crash: let the orphaned faxsend finish, and drop the modem lock the dead
        # faxq held (else the new faxq schedules nothing until some other event)
        wait_for(lambda: not self.faxsend_pids(), 60, "the orphaned faxsend to end")
        lock = Path(f"/run/lock/LCK..{self.device}")
        with contextlib.suppress(OSError, ValueError):
            if not Path(f"/proc/{int(lock.read_text().split()[0])}").exists():
                lock.unlink()
        mark = self.syslog.mark()
        self._ns([FAXQ, "-D"], "faxq")
        wait_for(lambda: (self.spool / "FIFO").exists(), 20, "faxq's FIFO")
        # tell faxq the (send-only) modem is ready; faxq answers in syslog
        deadline = time.monotonic() + 30
        while True:
            self.run_in_ns([str(LIBBIN / "faxmodem"), "-c", CAPS, self.device])
            try:
                self.syslog.wait(f"MODEM {self.device}: READY", 2.0, start=mark)
                return
            except AssertionError:
                if time.monotonic() > deadline:
                    raise

    def start_faxgetty(self) -> None:
        """faxgetty on our modem, answering on the first ring (the T.31 helper calls in
        when its RXDIR/call.txt appears), leaving received faxes readable in recvq/."""
        with open(self.spool / "etc" / f"config.{self.device}", "a") as f:
            f.write(RECEIVE)
        assert self.syslog is not None
        mark = self.syslog.mark()
        self._ns(["/usr/sbin/faxgetty", self.device], "faxgetty")
        # a ring during its modem set-up makes it start over: call in once it waits
        self.syslog.wait("-> RUNNING", 60, start=mark)

    def stop_faxq(self) -> None:
        proc = self.procs.pop("faxq", None)
        if proc is not None:
            _stop(proc)

    def crash_faxq(self) -> None:
        """SIGKILL faxq, as a crash would: its faxsend keeps the call going on its own."""
        proc = self.procs.pop("faxq", None)
        if proc is not None:
            proc.kill()
            proc.wait(10)

    def _port_open(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                return True
        except OSError:
            return False

    # -- looking inside --------------------------------------------------------------------
    def qfile(self, queue: str, jobid: int) -> dict[str, str]:
        path = self.spool / queue / f"q{jobid}"
        out: dict[str, str] = {}
        if path.exists():
            for line in path.read_text(errors="replace").splitlines():
                key, _, value = line.partition(":")
                out.setdefault(key, value)
        return out

    def xferfaxlog(self) -> list[list[str]]:
        path = self.spool / "log" / "xferfaxlog"
        if not path.exists():
            return []
        return [line.split("\t") for line in path.read_text(errors="replace").splitlines()]

    def faxsend_pids(self) -> list[int]:
        """faxsend processes in our namespace (children of our faxq)."""
        return [pid for pid in self._ns_pids() if _comm(pid) == "faxsend"]

    def _ns_pids(self) -> list[int]:
        holder = self.procs.get("holder")
        if holder is None:
            return []
        try:
            ns = os.readlink(f"/proc/{holder.pid}/ns/mnt")
        except OSError:
            return []
        pids = []
        for entry in os.listdir("/proc"):
            if entry.isdigit() and int(entry) != holder.pid:
                with contextlib.suppress(OSError):
                    if os.readlink(f"/proc/{entry}/ns/mnt") == ns:
                        pids.append(int(entry))
        return pids

    def diagnostics(self) -> str:
        parts = []
        if self.syslog is not None:
            parts.append("syslog:\n" + "\n".join(self.syslog.lines[-60:]))
        logs = sorted((self.spool / "log").glob("c*"))
        if logs:
            parts.append(f"{logs[-1].name}:\n" + logs[-1].read_text(errors="replace")[-4000:])
        return "\n\n".join(parts)

    # -- teardown --------------------------------------------------------------------------
    def stop(self) -> None:
        for name in ("faxgetty", "hfaxd", "faxq"):
            proc = self.procs.pop(name, None)
            if proc is not None:
                _stop(proc)
        # faxsend (and hfaxd's per-connection children) that our daemons left behind
        for pid in self._ns_pids():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, 15)
        if self.modem is not None:
            self.modem.stop()
        holder = self.procs.pop("holder", None)
        if holder is not None:
            with contextlib.suppress(Exception):
                assert holder.stdin is not None
                holder.stdin.close()
            _stop(holder)
        if self.syslog is not None:
            self.syslog.close()
        with contextlib.suppress(OSError):
            os.unlink(f"/run/lock/LCK..{self.device}")
        if not os.environ.get("MAILGW_KEEP_HYLAFAX"):
            shutil.rmtree(self.base, ignore_errors=True)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def make_pdf(pages: int, label: str = "mailgw test") -> bytes:
    """A small valid PDF with one line of text and a frame on each page."""
    kids = " ".join(f"{3 + 2 * i} 0 R" for i in range(pages))
    font = 3 + 2 * pages
    objs = [b"<< /Type /Catalog /Pages 2 0 R >>",
            f"<< /Type /Pages /Kids [{kids}] /Count {pages} >>".encode()]
    for i in range(pages):
        objs.append(f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Contents "
                    f"{4 + 2 * i} 0 R /Resources << /Font << /F1 {font} 0 R >> >> >>".encode())
        text = (f"BT /F1 30 Tf 72 700 Td ({label} page {i + 1} of {pages}) Tj ET "
                "72 100 450 500 re S").encode()
        objs.append(b"<< /Length %d >>\nstream\n" % len(text) + text + b"\nendstream")
    objs.append(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>")
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for n, body in enumerate(objs, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % n + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objs) + 1)
    for off in offsets:
        out += b"%010d 00000 n \n" % off
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objs) + 1,
                                                                              xref)
    return bytes(out)
