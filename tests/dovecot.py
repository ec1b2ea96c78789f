"""A private Dovecot IMAP server for tests (see /work/shared/notes/dovecot-testing.md).

One server per test: its own config, passwd-file users and maildirs in a short 0755 temp
folder, a free port on 127.0.0.1, started as a child in its own session (so the whole
process group can be killed at once, like a crashed host) and stopped by its PID.
"""

from __future__ import annotations

import imaplib
import os
import pwd
import re
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import free_port, need, wait_until

DOVECOT = Path("/usr/sbin/dovecot")
MAIL_USER = "fax"
MAIL_PASSWORD = "fax-imap-pw"

_CONF = """\
base_dir = {d}/run
state_dir = {d}/state
log_path = {d}/dovecot.log
listen = 127.0.0.1
protocols = imap
{ssl}
disable_plaintext_auth = no
auth_mechanisms = plain login
auth_verbose = yes
auth_failure_delay = 0
first_valid_uid = 1
{internal}
passdb {{
  driver = passwd-file
  args = {d}/users
}}
userdb {{
  driver = static
  args = uid={uid} gid={gid} home={d}/mail/%u
}}
mail_location = maildir:~/Maildir
{capability}
service imap-login {{
  {login_chroot}
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    {imaps}
  }}
}}
{anvil}
namespace inbox {{
  inbox = yes
  separator = /
  mailbox Done {{
    auto = create
  }}
  mailbox Rejected {{
    auto = create
  }}
}}
"""


class Dovecot:
    """A running private Dovecot; `kill()` and `start()` again keep the port and the mail."""

    def __init__(self, *, users: dict[str, str] | None = None, capability: str | None = None,
                 tls: bool = False) -> None:
        self.users = users or {MAIL_USER: MAIL_PASSWORD}
        self.dir = Path(tempfile.mkdtemp(prefix="dovecot-"))  # short path: socket names
        os.chmod(self.dir, 0o755)  # the auth process (user dovecot) must read `users`
        self.port = free_port()
        self.tls_port = free_port() if tls else 0
        self.cert = self.dir / "cert.pem" if tls else None
        self.proc: subprocess.Popen[bytes] | None = None
        self._watchers: dict[str, imaplib.IMAP4] = {}
        for sub in ("run", "state", "mail"):
            (self.dir / sub).mkdir()
        if os.geteuid() == 0:
            account = pwd.getpwnam("dovecot")  # mail may not run as root (trap 3)
            internal = login_chroot = anvil = ""
        else:  # trap 8: a non-root run uses its own user everywhere, without chroot
            account = pwd.getpwuid(os.geteuid())
            internal = (f"default_internal_user = {account.pw_name}\n"
                        f"default_internal_group = {account.pw_name}\n"
                        f"default_login_user = {account.pw_name}")
            login_chroot = "chroot ="
            anvil = "service anvil {\n  chroot =\n}"
        os.chown(self.dir / "mail", account.pw_uid, account.pw_gid)
        self.uid = account.pw_uid
        (self.dir / "users").write_text(
            "".join(f"{u}:{{PLAIN}}{p}::::::\n" for u, p in self.users.items()))
        ssl = "ssl = no"
        imaps = "port = 0"
        if tls:
            assert self.cert is not None
            key = self.dir / "key.pem"
            subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
                            "-keyout", str(key), "-out", str(self.cert), "-days", "2",
                            "-subj", "/CN=localhost",
                            "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"],
                           check=True, capture_output=True)
            ssl = f"ssl = yes\nssl_cert = <{self.cert}\nssl_key = <{key}"
            imaps = f"address = 127.0.0.1\n    port = {self.tls_port}\n    ssl = yes"
        self.conf = self.dir / "dovecot.conf"
        self.conf.write_text(_CONF.format(
            d=self.dir, port=self.port, uid=account.pw_uid, gid=account.pw_gid, ssl=ssl,
            imaps=imaps, internal=internal, login_chroot=login_chroot, anvil=anvil,
            capability=f"imap_capability = {capability}" if capability else ""))

    # -- life cycle --------------------------------------------------------------------------

    def start(self, timeout: float = 15.0) -> Dovecot:
        self.proc = subprocess.Popen([str(DOVECOT), "-F", "-c", str(self.conf)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        user, password = next(iter(self.users.items()))
        proc = self.proc

        def ready() -> bool:  # a real LOGIN: the greeting comes even with broken auth
            if proc.poll() is not None:
                raise RuntimeError(f"dovecot exited with {proc.returncode}: "
                                   f"{self.log()[-2000:]}")
            try:
                with imaplib.IMAP4("127.0.0.1", self.port, timeout=5) as c:
                    c.login(user, password)
                    c.logout()
                return True
            except (OSError, imaplib.IMAP4.error):
                return False

        wait_until(ready, timeout, "dovecot to accept a LOGIN")
        return self

    def kill(self) -> None:
        """A crash: SIGKILL to the whole process group, connections drop at once."""
        self._signal(signal.SIGKILL)

    def stop(self) -> None:
        self._signal(signal.SIGTERM)

    def _signal(self, sig: signal.Signals) -> None:
        for c in self._watchers.values():
            try:
                c.shutdown()
            except OSError:
                pass
        self._watchers.clear()
        if self.proc is not None and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
                pass
            self.proc.wait(15)
        self.proc = None

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def log(self) -> str:
        path = self.dir / "dovecot.log"
        return path.read_text(errors="replace") if path.exists() else ""

    # -- mail, seen from another client ------------------------------------------------------

    def client(self, user: str = MAIL_USER) -> imaplib.IMAP4:
        c = imaplib.IMAP4("127.0.0.1", self.port, timeout=10)
        c.login(user, self.users[user])
        return c

    def append(self, raw: bytes, mailbox: str = "INBOX", user: str = MAIL_USER) -> int:
        """APPEND one mail; returns its UID (from APPENDUID)."""
        with self.client(user) as c:
            typ, data = c.append(mailbox, None, None, raw)
            assert typ == "OK", data
            m = re.search(rb"APPENDUID \d+ (\d+)", data[0] or b"")
            c.logout()
        return int(m.group(1)) if m else 0

    def append_many(self, raws: list[bytes], mailbox: str = "INBOX",
                    user: str = MAIL_USER) -> None:
        with self.client(user) as c:
            for raw in raws:
                typ, data = c.append(mailbox, None, None, raw)
                assert typ == "OK", data
            c.logout()

    def count(self, mailbox: str = "INBOX", user: str = MAIL_USER) -> int:
        """Messages in a mailbox that are not flagged \\Deleted (nothing is fetched).

        Tests poll this: it keeps one connection per user instead of a LOGIN each time."""
        for attempt in (1, 2):
            c = self._watchers.get(user)
            try:
                if c is None:
                    c = self._watchers[user] = self.client(user)
                typ, _ = c.select(mailbox, readonly=True)
                assert typ == "OK", mailbox
                _, data = c.uid("SEARCH", None, "UNDELETED")
                return len((data[0] or b"").split())
            except (OSError, imaplib.IMAP4.abort):
                self._watchers.pop(user, None)  # the server was restarted: log in again
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def total(self, mailbox: str = "INBOX", user: str = MAIL_USER) -> int:
        """Every message, \\Deleted or not (STATUS MESSAGES)."""
        with self.client(user) as c:
            _, data = c.status(mailbox, "(MESSAGES)")
            c.logout()
        m = re.search(rb"MESSAGES (\d+)", data[0] or b"")
        assert m, data
        return int(m.group(1))

    def messages(self, mailbox: str = "INBOX", user: str = MAIL_USER) -> list[bytes]:
        with self.client(user) as c:
            typ, _ = c.select(mailbox, readonly=True)
            assert typ == "OK", mailbox
            _, data = c.uid("SEARCH", None, "UNDELETED")
            out: list[bytes] = []
            for uid in (data[0] or b"").split():
                _, fetched = c.uid("FETCH", uid, "(BODY.PEEK[])")
                out += [part[1] for part in fetched if isinstance(part, tuple)]
            c.logout()
        return out

    def folder(self, mailbox: str, user: str = MAIL_USER) -> Path:
        """The maildir folder of a mailbox (Maildir++ layout: `.Done`)."""
        root = self.dir / "mail" / user / "Maildir"
        return root if mailbox == "INBOX" else root / ("." + mailbox.replace("/", "."))


def dovecot_or_skip() -> None:
    need(DOVECOT.exists() and os.access(DOVECOT, os.X_OK),
         f"{DOVECOT} not found (apt-get install dovecot-imapd)")


@pytest.fixture
def dovecot() -> Iterator[Dovecot]:
    dovecot_or_skip()
    server = Dovecot().start()
    try:
        yield server
    finally:
        server.cleanup()
