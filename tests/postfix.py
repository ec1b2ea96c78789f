"""A private Postfix instance for tests, in front of mailgw the way most sites run it.

Its own config_directory, queue_directory and data_directory in a short 0755 temp folder,
smtpd on a free loopback port, every mail that is not for the gateway relayed to a sink
(`relayhost`), the log in a file (postlogd). Started with `postfix -c DIR start` and
stopped with `postfix -c DIR stop`, then SIGKILL to the master's process group if it
lingers: only the processes this instance started. Needs root (Postfix drops to the
`postfix` user), as tests have here and in CI; the system instance is never touched.

Traps met on the way: `maillog_file` must lie under `maillog_file_prefixes` (else the
`postfix` command dies at once, logging only to the absent syslog); `data_directory` must
belong to `postfix`; Debian's master.cf chroots most services, so this one is written here.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import smtplib
import subprocess
import tempfile
from collections.abc import Iterable
from pathlib import Path

from tests.conftest import free_port, need, wait_until

POSTFIX = Path("/usr/sbin/postfix")
POSTMAP = Path("/usr/sbin/postmap")
POSTQUEUE = Path("/usr/sbin/postqueue")
POSTSUPER = Path("/usr/sbin/postsuper")
MYHOSTNAME = "mx.test.example"

_MAIN = """\
compatibility_level = 3.6
queue_directory = {d}/queue
data_directory = {d}/data
mail_owner = postfix
setgid_group = postdrop
myhostname = {myhostname}
mydomain = test.example
myorigin = test.example
mydestination =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
maillog_file = {d}/maillog
maillog_file_prefixes = {d}
relayhost = [127.0.0.1]:{relay_port}
local_transport = error:local delivery is disabled
smtputf8_enable = yes
smtp_connect_timeout = 5s
queue_run_delay = 1h
minimal_backoff_time = 1h
maximal_backoff_time = 2h
"""

# The services of Debian's master.cf that a relay needs, none chrooted.
_MASTER = """\
127.0.0.1:{port} inet n - n - - smtpd
pickup unix n - n 60 1 pickup
cleanup unix n - n - 0 cleanup
qmgr unix n - n 300 1 qmgr
rewrite unix - - n - - trivial-rewrite
bounce unix - - n - 0 bounce
defer unix - - n - 0 bounce
trace unix - - n - 0 bounce
verify unix - - n - 1 verify
flush unix n - n 1000? 0 flush
proxymap unix - - n - - proxymap
smtp unix - - n - - smtp
relay unix - - n - - smtp
showq unix n - n - - showq
error unix - - n - - error
retry unix - - n - - error
discard unix - - n - - discard
anvil unix - - n - 1 anvil
scache unix - - n - 1 scache
postlog unix-dgram n - n - 1 postlogd
"""


def postfix_or_skip() -> None:
    need(all(p.exists() for p in (POSTFIX, POSTMAP, POSTQUEUE, POSTSUPER)),
         f"{POSTFIX} not found (apt-get install postfix)")
    need(os.geteuid() == 0, "a private Postfix needs root (it drops to the postfix user)")


class Postfix:
    """A private Postfix: configure, `start()`, send through it, `flush()`, `stop()`."""

    def __init__(self, *, relay_port: int, myhostname: str = MYHOSTNAME) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="pf-"))  # short: unix socket paths
        os.chmod(self.dir, 0o755)
        self.conf = self.dir / "conf"
        for sub in ("conf", "queue", "data"):
            (self.dir / sub).mkdir()
        shutil.chown(self.dir / "data", "postfix")
        self.port = free_port()
        (self.conf / "main.cf").write_text(_MAIN.format(
            d=self.dir, myhostname=myhostname, relay_port=relay_port))
        (self.conf / "master.cf").write_text(_MASTER.format(port=self.port))
        self.master_pid: int | None = None

    # -- configuration -----------------------------------------------------------------------

    def add_main(self, lines: Iterable[str]) -> None:
        with (self.conf / "main.cf").open("a") as f:
            for line in lines:
                f.write(line + "\n")

    def run(self, *argv: str | Path, check: bool = True) -> subprocess.CompletedProcess[str]:
        """A Postfix command on this instance (`-c` is added after the program)."""
        cmd = [str(argv[0]), "-c", str(self.conf), *map(str, argv[1:])]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
        if check and done.returncode != 0:
            raise AssertionError(f"{' '.join(cmd)} exited {done.returncode}: "
                                 f"{done.stderr}{self.log()[-2000:]}")
        return done

    def postmap(self, path: Path) -> None:
        self.run(POSTMAP, path)

    # -- life cycle --------------------------------------------------------------------------

    def start(self, timeout: float = 30.0) -> Postfix:
        self.run(POSTFIX, "start")
        self.master_pid = int((self.dir / "queue" / "pid" / "master.pid").read_text().split()[0])

        def ready() -> bool:
            try:
                with smtplib.SMTP("127.0.0.1", self.port, timeout=5) as c:
                    return c.noop()[0] == 250
            except (OSError, smtplib.SMTPException):
                return False

        wait_until(ready, timeout, "postfix to greet")
        return self

    def stop(self) -> None:
        pid, self.master_pid = self.master_pid, None
        if pid is None:
            return
        self.run(POSTFIX, "stop", check=False)
        try:
            wait_until(lambda: not _alive(pid), 15, "the postfix master to exit")
        except AssertionError:
            os.killpg(pid, signal.SIGKILL)  # the master leads its own process group

    def cleanup(self) -> None:
        try:
            self.stop()
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)

    # -- the queue and the log ---------------------------------------------------------------

    def flush(self) -> None:
        """Deliver the deferred mail now (no waiting for the queue run timers)."""
        self.run(POSTQUEUE, "-f")

    def queue(self) -> list[dict[str, object]]:
        """The queued mails (`postqueue -j`), one dict each."""
        out = self.run(POSTQUEUE, "-j").stdout
        return [json.loads(line) for line in out.splitlines() if line.strip()]

    def clear_queue(self) -> None:
        self.run(POSTSUPER, "-d", "ALL", check=False)

    def log(self) -> str:
        path = self.dir / "maillog"
        return path.read_text(errors="replace") if path.exists() else ""

    def statuses(self, since: int = 0) -> list[tuple[str, str, str, str]]:
        """(queue id, to, status, the rest) of each delivery attempt logged after `since`."""
        out = []
        for m in _STATUS.finditer(self.log()[since:]):
            out.append((m.group("id"), m.group("to"), m.group("status"), m.group("rest")))
        return out

    def wait_status(self, to: str, status: str, since: int = 0, count: int = 1,
                    timeout: float = 30.0) -> list[tuple[str, str, str, str]]:
        def found() -> list[tuple[str, str, str, str]]:
            hits = [s for s in self.statuses(since) if s[1] == to and s[2] == status]
            return hits if len(hits) >= count else []

        return wait_until(found, timeout, f"postfix: {to} {status} x{count}")  # type: ignore

    def send(self, raw: bytes, mail_from: str, rcpts: list[str], *, source: str = "127.0.0.1",
             smtputf8: bool = False) -> str:
        """Submit a mail to this Postfix from `source` (any 127.x address: the client
        address Postfix writes into its Received header); returns its queue id."""
        with smtplib.SMTP("127.0.0.1", self.port, timeout=30,
                          source_address=(source, 0)) as c:
            c.ehlo("client.test.example")
            options = ["SMTPUTF8", "BODY=8BITMIME"] if smtputf8 else []
            c.mail(mail_from, options)
            for rcpt in rcpts:
                code, text = c.rcpt(rcpt)
                assert code == 250, (rcpt, code, text)
            code, text = c.data(raw)
            assert code == 250, (code, text)
        m = re.search(rb"queued as ([0-9A-Za-z]+)", text)
        assert m, text
        return m.group(1).decode()


_STATUS = re.compile(r"postfix/\w+\[\d+\]: (?P<id>[0-9A-Za-z]+): to=<(?P<to>[^>]*)>,.*?"
                     r"status=(?P<status>\w+) (?P<rest>.*)")


def _alive(pid: int) -> bool:
    """Running, not a zombie (the master's parent may be an init that never reaps)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def wait_drained(postfix: Postfix, timeout: float = 30.0) -> None:
    wait_until(lambda: not postfix.queue(), timeout, "the postfix queue to drain")
