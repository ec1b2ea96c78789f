"""Shared fixtures: real peers on 127.0.0.1 (our SMTP listener, an SMTP sink, PostgreSQL)."""

from __future__ import annotations

import asyncio
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
import structlog
from aiosmtpd.controller import Controller

from mailgw.accounts import accounts
from mailgw.app import App, prepare_store
from mailgw.ops import config
from mailgw.store import Store

REQUIRE_ALL = os.environ.get("MAILGW_REQUIRE_ALL") == "1"
# The public test corpus ships in tests/corpus/ (its README names each file's source and
# licence); MAILGW_CORPUS points the tests at another copy.
CORPUS = Path(os.environ.get("MAILGW_CORPUS") or Path(__file__).resolve().parent / "corpus")
PG_ADMIN = os.environ.get("MAILGW_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
PASSWORD = "FGB45L"
SENDER = "alice@example.com"


def need(condition: bool, reason: str) -> None:
    """Skip with a clear reason when a system service is absent; fail under MAILGW_REQUIRE_ALL."""
    if not condition:
        if REQUIRE_ALL:
            pytest.fail(f"required by MAILGW_REQUIRE_ALL=1: {reason}")
        pytest.skip(reason)


def wait_until(predicate: Callable[[], Any], timeout: float = 20.0, what: str = "condition"
               ) -> Any:
    """Poll a condition with a deadline (never a bare sleep as synchronisation)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.02)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def serve_config(tmp_path: Path, port: int, sink_port: int) -> Path:
    """A config file for a real `mailgw serve` subprocess: both gateway addresses, a SQLite
    store in tmp_path, the sink as smarthost, fast polling and simulator, JSON logs."""
    cfg = tmp_path / "serve.toml"
    cfg.write_text(f'''
[gateway]
fax_address = "fax@gw.example.org"
voice_address = "voice@gw.example.org"
domain = "gw.example.org"
[smtp]
listen = "127.0.0.1:{port}"
[store]
url = "sqlite:///{tmp_path / 'serve.db'}"
[notify]
smarthost = "127.0.0.1:{sink_port}"
poll_interval = "100ms"
[dispatch]
poll_interval = "100ms"
[drivers.simulator]
time_scale = 0.002
[log]
level = "debug"
format = "json"
''')
    return cfg


@pytest.fixture(autouse=True)
def _structlog_restored() -> Iterator[None]:
    """A test that runs the daemon or the CLI calls logs.setup(), which configures structlog
    for the whole process (its level, its stream). Each test gets the configuration it found,
    so a later test that captures log events (test_imap's) does not depend on test order."""
    saved = structlog.get_config()
    yield
    structlog.configure(**saved)


@pytest.fixture(scope="session")
def corpus() -> Path:
    need(CORPUS.is_dir(), f"corpus not found at {CORPUS} (set MAILGW_CORPUS)")
    return CORPUS


# -- SMTP sink (the smarthost) ----------------------------------------------------------------

class SinkHandler:
    def __init__(self) -> None:
        self.mails: list[tuple[str, list[str], bytes]] = []
        self.cond = threading.Condition()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        with self.cond:
            self.mails.append((envelope.mail_from, list(envelope.rcpt_tos),
                               envelope.original_content))
            self.cond.notify_all()
        return "250 2.0.0 OK"


class Sink:
    def __init__(self, port: int | None = None):
        self.handler = SinkHandler()
        self.port = port or free_port()
        self.controller = Controller(self.handler, hostname="127.0.0.1", port=self.port)

    def start(self) -> Sink:
        self.controller.start()
        self.running = True
        return self

    def stop(self) -> None:
        if getattr(self, "running", False):
            self.controller.stop()
            self.running = False

    @property
    def messages(self) -> list[EmailMessage]:
        with self.handler.cond:
            return [message_from_bytes(raw, policy=policy.default)  # type: ignore[misc]
                    for _, _, raw in self.handler.mails]

    @property
    def envelopes(self) -> list[tuple[str, list[str]]]:
        with self.handler.cond:
            return [(f, t) for f, t, _ in self.handler.mails]

    def wait_for(self, predicate: Callable[[list[EmailMessage]], bool], timeout: float = 20.0,
                 what: str = "mails") -> list[EmailMessage]:
        return wait_until(lambda: predicate(self.messages) and self.messages, timeout, what)

    def kinds(self, kind: str) -> list[EmailMessage]:
        return [m for m in self.messages if m.get("X-Mailgw-Kind") == kind]


@pytest.fixture
def sink() -> Iterator[Sink]:
    s = Sink().start()
    yield s
    s.stop()


# -- stores ---------------------------------------------------------------------------------

def _pg_available() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 5432), timeout=1):
            return True
    except OSError:
        return False


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A PostgreSQL database of its own, created and dropped by the fixture."""
    need(_pg_available(), "PostgreSQL is not running on 127.0.0.1:5432")
    import psycopg

    name = f"mailgw_test_{uuid.uuid4().hex[:10]}"
    admin = PG_ADMIN.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = PG_ADMIN.rsplit("/", 1)[0] + f"/{name}"
    yield url
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'mailgw.db'}"
    return str(request.getfixturevalue("pg_url"))


# -- the app, running on its own loop in a thread ------------------------------------------

def make_settings(store_url: str, sink_port: int, **sections: dict[str, Any]) -> config.Settings:
    overrides: dict[str, Any] = {
        "store": {"url": store_url},
        "smtp": {"listen": "127.0.0.1:0"},
        "gateway": {"fax_address": "fax@gw.example.org", "voice_address": "voice@gw.example.org",
                    "domain": "gw.example.org"},
        "notify": {"smarthost": f"127.0.0.1:{sink_port}", "poll_interval": "100ms",
                   "from_address": "fax@gw.example.org", "retry_first": "200ms"},
        "dispatch": {"poll_interval": "100ms", "lease_seconds": "5s",
                     "retry": {"busy": "100ms", "no_answer": "100ms", "line_dropped": "100ms",
                               "provider_error": "100ms", "max_attempts": 3}},
        "drivers": {"simulator": {"time_scale": 0.002}},
    }
    return config.load(search=False, environ={}, overrides=config.merge(overrides, sections))


class RunningApp:
    def __init__(self, settings: config.Settings, roles: tuple[str, ...] | None = None):
        self.settings = settings
        self.store: Store = prepare_store(settings)
        # serve's defaults: http joins when [http] listen is set
        self.roles = roles or ("smtp", "dispatch", "notify",
                               *(("http",) if settings.http.listen else ()))
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.app: App | None = None

    def start(self) -> RunningApp:
        self.thread.start()

        async def _start() -> App:
            app = App(self.settings, self.store, self.roles)
            await app.start()
            return app

        self.app = asyncio.run_coroutine_threadsafe(_start(), self.loop).result(30)
        return self

    @property
    def port(self) -> int:
        assert self.app is not None and self.app.smtp_address is not None
        return self.app.smtp_address[1]

    def stop(self) -> None:
        if getattr(self, "stopped", False):  # a test may stop it before the fixture does
            return
        self.stopped = True
        if self.app is not None:
            asyncio.run_coroutine_threadsafe(self.app.stop(), self.loop).result(30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.store.dispose()

    def add_account(self, email: str = SENDER, password: str = PASSWORD, **kw: Any) -> None:
        params = {"region": "FR", "lang": "en", "tz": "Europe/Paris", "credits": None, **kw}
        with self.store.tx() as s:
            accounts.add_account(s, email, password, **params)


@pytest.fixture
def make_app(sink: Sink, store_url: str) -> Iterator[Callable[..., RunningApp]]:
    started: list[RunningApp] = []

    def factory(**sections: dict[str, Any]) -> RunningApp:
        app = RunningApp(make_settings(store_url, sink.port, **sections)).start()
        started.append(app)
        return app

    yield factory
    for app in started:
        app.stop()


def fax_message(subject: str, pdf: bytes | None, *, sender: str = SENDER,
                to: str = "fax@gw.example.org", message_id: str | None = None) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = to
    msg["Subject"] = subject
    msg["Message-ID"] = message_id or f"<{uuid.uuid4().hex}@example.com>"
    msg.set_content("Please fax the attachment.\n")
    if pdf is not None:
        msg.add_attachment(pdf, maintype="application", subtype="pdf", filename="document.pdf")
    return msg


# -- the run's last word: what was skipped, and why ------------------------------------------

def skip_reasons(reports: list[Any]) -> list[tuple[int, str]]:
    """Skipped tests counted by reason, most frequent first (pytest's -ra lists them one by
    one; this says in a few lines which missing package costs how many tests)."""
    counts: dict[str, int] = {}
    for rep in reports:
        longrepr = getattr(rep, "longrepr", None)
        reason = longrepr[2] if isinstance(longrepr, tuple) and len(longrepr) == 3 else "?"
        reason = str(reason).removeprefix("Skipped: ")
        counts[reason] = counts.get(reason, 0) + 1
    return sorted(((n, r) for r, n in counts.items()), key=lambda x: (-x[0], x[1]))


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_terminal_summary(terminalreporter: Any, exitstatus: int,
                            config: Any) -> Iterator[None]:
    """After pytest's own summary (a wrapper, so -ra's list comes first), before the
    final count line."""
    yield
    skipped = terminalreporter.stats.get("skipped", [])
    if not skipped:
        return
    terminalreporter.write_sep("=", f"{len(skipped)} skipped, by reason")
    for count, reason in skip_reasons(skipped):
        terminalreporter.write_line(f"{count:5d}  {reason}")
