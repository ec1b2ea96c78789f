"""What the host must provide (mailgw.ops.tools), and a voice mail on a host with no sound tools.

The processes here run with a PATH that holds none of ffmpeg, ffprobe, sox, espeak-ng or gs:
a directory of our own, with at most a stub of the one program a case needs.
"""

from __future__ import annotations

import json
import os
import signal
import smtplib
import subprocess
import sys
from email.message import EmailMessage
from pathlib import Path

import pytest

from mailgw.documents.samples import make_wav
from mailgw.ops import config, tools
from tests.conftest import PASSWORD, Sink, free_port, serve_config, wait_until


def bare_path(tmp_path: Path, *programs: str) -> str:
    """A PATH of one directory holding only stubs of `programs`."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(parents=True, exist_ok=True)
    for name in programs:
        stub = bin_dir / name
        stub.write_text("#!/bin/sh\nexit 0\n")
        stub.chmod(0o755)
    return str(bin_dir)


def mailgw(args: list[str], path: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAILGW_")}
    env["PATH"] = path
    return subprocess.run([sys.executable, "-m", "mailgw", *args], capture_output=True,
                          text=True, env=env, timeout=timeout, check=False)


def hylafax_config(tmp_path: Path, host: str = "127.0.0.1") -> Path:
    cfg = tmp_path / "hylafax.toml"
    cfg.write_text(f'[store]\nurl = "sqlite:///{tmp_path / "db.sqlite"}"\n'
                   f'[dispatch]\ndriver = "hylafax"\n[drivers.hylafax]\nhost = "{host}"\n'
                   '[log]\nformat = "json"\n', encoding="utf-8")
    return cfg


# -- the list (pure, but for PATH lookups in a directory of ours) --------------------------

def test_needs_per_role_and_driver(tmp_path: Path) -> None:
    settings = config.Settings()
    assert tools.needs(settings, ["smtp"]) == [tools.SOUND]
    assert tools.needs(settings, ["notify", "dispatch"]) == []  # the simulator needs nothing
    settings.dispatch.driver = "hylafax"
    with_faxq, empty = bare_path(tmp_path / "a", "faxq"), bare_path(tmp_path / "b")
    assert tools.needs(settings, ["dispatch"], with_faxq) == [tools.GHOSTSCRIPT]
    assert tools.needs(settings, ["dispatch"], empty) == []  # HylaFAX is on another host
    assert tools.needs(settings, ["smtp", "notify"], with_faxq) == [tools.SOUND]
    settings.drivers.hylafax.host = "fax.example.org"
    assert tools.needs(settings, ["dispatch"], with_faxq) == []
    for host in ("localhost", "::1", "[::1]", "127.0.0.2"):
        settings.drivers.hylafax.host = host
        assert tools.needs(settings, ["dispatch"], with_faxq) == [tools.GHOSTSCRIPT], host
    assert tools.missing(settings, ["dispatch"], with_faxq) == [tools.GHOSTSCRIPT]
    assert tools.missing(settings, ["dispatch"], bare_path(tmp_path / "a", "gs")) == []
    assert tools.missing(settings, ["smtp", "imap"]) == []  # PyAV is a dependency
    gone = tools.Need("no_such_module_mailgw", "python3-nothing", "tests", module=True)
    assert "Python module no_such_module_mailgw is missing (Debian package python3-nothing)" in (
        tools.describe([gone]))


def test_configured_roles_add_imap_when_enabled() -> None:
    settings = config.Settings()
    assert tools.configured_roles(settings) == tuple(settings.serve.roles)
    settings.imap.enabled = True
    assert tools.configured_roles(settings)[-1] == "imap"


# -- check-config and serve with a program missing ------------------------------------------

def test_check_config_names_the_missing_program_and_its_package(tmp_path: Path) -> None:
    cfg = hylafax_config(tmp_path)
    r = mailgw(["check-config", "--config", str(cfg)], bare_path(tmp_path, "faxq"))
    assert r.returncode == 2
    assert r.stdout == "" and len(r.stderr.splitlines()) == 1, r.stderr
    assert "program gs is missing (Debian package ghostscript)" in r.stderr
    assert "Traceback" not in r.stderr
    ok = mailgw(["check-config", "--config", str(cfg)], bare_path(tmp_path, "faxq", "gs"))
    assert ok.returncode == 0 and "configuration OK" in ok.stdout, ok.stderr
    (tmp_path / "remote").mkdir()
    remote = hylafax_config(tmp_path / "remote", host="fax.example.org")
    assert mailgw(["check-config", "--config", str(remote)],
                  bare_path(tmp_path, "faxq")).returncode == 0


def test_serve_refuses_to_start_a_role_whose_program_is_missing(tmp_path: Path) -> None:
    cfg = hylafax_config(tmp_path)
    r = mailgw(["serve", "--roles", "dispatch", "--config", str(cfg)],
               bare_path(tmp_path, "faxq"))
    assert r.returncode == 69  # EX_UNAVAILABLE
    assert len(r.stderr.splitlines()) == 1 and "Traceback" not in r.stderr, r.stderr
    assert r.stderr.startswith("mailgw: not starting: program gs is missing "
                               "(Debian package ghostscript)")
    assert r.stdout == "" and not (tmp_path / "db.sqlite").exists()  # nothing was started


# -- a voice mail on a host without ffmpeg, sox or espeak-ng ---------------------------------

def test_a_voice_mail_is_accepted_over_smtp_without_any_sound_tool(tmp_path: Path) -> None:
    """`serve` with a PATH of nothing: an 8 kHz mono WAV is accepted (250) and called."""
    sink = Sink().start()
    port = free_port()
    cfg = serve_config(tmp_path, port, sink.port)
    path = bare_path(tmp_path)
    add = subprocess.run([sys.executable, "-m", "mailgw", "account", "add", "alice@example.com",
                          "--password-stdin", "--config", str(cfg)], input=PASSWORD + "\n",
                         text=True, capture_output=True, env={"PATH": path}, check=False)
    assert add.returncode == 0, add.stderr
    log_path = tmp_path / "serve.log"
    with open(log_path, "w") as log_file:
        proc = subprocess.Popen([sys.executable, "-m", "mailgw", "serve", "--config", str(cfg)],
                                stdout=log_file, stderr=subprocess.STDOUT, env={"PATH": path})
    try:
        wait_until(lambda: '"event": "ready"' in log_path.read_text(), 60, "ready")
        msg = EmailMessage()
        msg["From"], msg["To"] = "alice@example.com", "voice@gw.example.org"
        msg["Subject"] = f"{PASSWORD}:0612345678::rappel"
        msg["Message-ID"] = "<voice-plain-host@example.com>"
        msg.set_content("Bonjour\n")
        msg.add_attachment(make_wav(4.0), maintype="audio", subtype="wav", filename="r.wav")
        with smtplib.SMTP("127.0.0.1", port, timeout=60) as client:
            refused = client.send_message(msg)
        assert refused == {}
        notices = sink.wait_for(lambda ms: any(m["X-Mailgw-Kind"] == "notice" for m in ms), 60,
                                what="the notice")
        notice = next(m for m in notices if m["X-Mailgw-Kind"] == "notice")
        assert notice["X-Mailgw-State"] == "delivered"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        sink.stop()
    events = [json.loads(line) for line in log_path.read_text().splitlines()
              if line.startswith("{")]
    decided = [e for e in events if e.get("event") == "mail_decided"]
    assert decided and decided[0].get("code") == 80, decided


@pytest.mark.parametrize("program", ["ffmpeg", "ffprobe", "sox", "espeak-ng"])
def test_the_sound_path_names_no_system_program(program: str) -> None:
    """No module of the daemon refers to a sound program any more."""
    root = Path(tools.__file__).parent
    for source in root.rglob("*.py"):
        text = source.read_text(encoding="utf-8")
        assert f'"{program}"' not in text and f"'{program}'" not in text, source
