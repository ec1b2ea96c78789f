"""The command line as a user runs it: real processes, real exit codes."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import PASSWORD


def mailgw(*args: str, stdin: str | None = None, env: dict[str, str] | None = None,
           timeout: float = 120) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("MAILGW_")}
    full_env.update(env or {})
    return subprocess.run([sys.executable, "-m", "mailgw", *args], input=stdin, text=True,
                          capture_output=True, timeout=timeout, env=full_env, check=False)


@pytest.fixture
def cfg(tmp_path: Path) -> Path:
    path = tmp_path / "mailgw.toml"
    path.write_text(f'[store]\nurl = "sqlite:///{tmp_path / "db.sqlite"}"\n'
                    '[log]\nformat = "json"\n', encoding="utf-8")
    return path


def test_help_and_version() -> None:
    r = mailgw("--help")
    assert r.returncode == 0
    for command in ("demo", "serve", "parse", "account", "jobs", "db", "check-config"):
        assert command in r.stdout
    assert mailgw("--version").stdout.startswith("mailgw ")
    assert mailgw("no-such-command").returncode == 2


def test_account_add_and_list_never_show_the_password(cfg: Path) -> None:
    secret = "S3cret-Pw_42"
    r = mailgw("account", "add", "Bob@Example.com", "--password-stdin", "--region", "BE",
               "--lang", "en", "--tz", "Europe/Brussels", "--credits", "50", "--config",
               str(cfg), stdin=secret + "\n")
    assert r.returncode == 0, r.stderr
    assert "bob@example.com" in r.stdout
    # --config before the command works too
    r2 = mailgw("--config", str(cfg), "account", "list", "--json")
    assert r2.returncode == 0, r2.stderr
    (acc,) = json.loads(r2.stdout)
    assert acc["email"] == "bob@example.com" and acc["region"] == "BE"
    assert acc["credits"] == 50 and acc["tz"] == "Europe/Brussels"
    for out in (r.stdout, r.stderr, r2.stdout, r2.stderr):
        assert secret not in out
    # the store holds a hash, not the password
    raw = (cfg.parent / "db.sqlite").read_bytes()
    assert secret.encode() not in raw and b"$argon2id$" in raw
    # a second account on the same address is refused with exit 1
    r3 = mailgw("--config", str(cfg), "account", "add", "bob@example.com", "--password-stdin",
                stdin="x\n")
    assert r3.returncode == 1 and "already" in r3.stderr


def test_account_add_refuses_bad_values(cfg: Path) -> None:
    for extra, why in ((["--region", "XX"], "region"), (["--tz", "Mars/Base"], "time zone")):
        r = mailgw("--config", str(cfg), "account", "add", "c@example.com", "--password-stdin",
                   *extra, stdin="pw\n")
        assert r.returncode == 1 and why in r.stderr
    r = mailgw("--config", str(cfg), "account", "add", "c@example.com", "--password-stdin",
               stdin="pass:word\n")
    assert r.returncode == 1 and "':'" in r.stderr


def test_check_config_names_the_wrong_key_and_exits_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('[smtp]\nlisen = "0.0.0.0:25"\n[dispatch]\nworkers = "lots"\n')
    r = mailgw("check-config", "--config", str(bad))
    assert r.returncode == 2
    assert "smtp.lisen: unknown key (did you mean 'listen'?)" in r.stderr
    assert "dispatch.workers" in r.stderr
    example = Path(__file__).resolve().parents[2] / "config" / "mailgw.toml"
    ok = mailgw("check-config", env={"MAILGW_CONFIG": str(example)})
    assert ok.returncode == 0 and "configuration OK" in ok.stdout
    env_bad = mailgw("check-config", env={"MAILGW_SMTP__LISTEN": "nowhere"})
    assert env_bad.returncode == 2 and "smtp.listen" in env_bad.stderr


def test_db_upgrade_is_idempotent(cfg: Path) -> None:
    first = mailgw("db", "upgrade", "--config", str(cfg))
    assert first.returncode == 0 and "revision" in first.stdout
    assert mailgw("db", "upgrade", "--config", str(cfg)).returncode == 0


SYSTEM_TOOLS = ("ffmpeg", "ffprobe", "sox", "gs", "espeak-ng")


def python_only_path(tmp_path: Path) -> str:
    """A PATH with this venv's python and mailgw and nothing else: none of the system tools
    a plain machine lacks, whatever this machine has installed."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    venv_bin = Path(sys.executable).parent
    for name in ("python3", "python", "mailgw"):
        target = venv_bin / name if (venv_bin / name).exists() else Path(sys.executable)
        (bin_dir / name).symlink_to(target)
    for tool in SYSTEM_TOOLS:
        assert shutil.which(tool, path=str(bin_dir)) is None
    return str(bin_dir)


def test_demo_runs_both_halves_on_python_alone(tmp_path: Path) -> None:
    """`mailgw demo` as a new user runs it, on a PATH without ffmpeg, sox, gs or espeak-ng:
    a fax and a voice mail, each with its ack and its notice, exit 0."""
    from mailgw.dispatch.drivers.simulator import CONNECT, RING, SECONDS_PER_PAGE
    from mailgw.ops.demo import TIME_SCALE

    path = python_only_path(tmp_path)
    exe = str(Path(path) / "mailgw")
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAILGW_")}
    env["PATH"] = path
    r = subprocess.run([exe, "demo"], capture_output=True, text=True, timeout=120, env=env,
                       cwd=tmp_path, check=False)
    out = r.stdout
    assert r.returncode == 0, out[-3000:] + r.stderr[-3000:]
    assert "Traceback" not in r.stderr, r.stderr[-3000:]
    assert ">>> fax mail to" in out and ">>> voice mail to" in out
    assert out.count("<<< SMTP reply: 250 2.0.0 [80] Accepted, sending now") == 2, out
    assert out.count("X-Mailgw-Kind: ack") == 2
    assert out.count("X-Mailgw-Kind: notice") == 2
    assert out.count("X-Mailgw-State: delivered") == 2
    assert "CSID: (+33 1 70 70 99 01)" in out and "Pages: 2/2" in out
    assert "The sender received 4 mails" in out
    # the notices say how long the calls really took: the simulated time, scaled
    fax_seconds = round((CONNECT + 2 * SECONDS_PER_PAGE) * TIME_SCALE)
    voice_seconds = round((RING + 4.0) * TIME_SCALE)  # the demo's sound lasts 4 s
    shown = [line for line in out.splitlines() if line.startswith("Duration:")]
    assert shown == [f"Duration: {s} s" for s in (fax_seconds, voice_seconds) if s], shown


def test_parse_json(corpus: Path) -> None:
    r = mailgw("parse", str(corpus / "emails" / "01-curl-application-pdf-attachment.eml"),
               "--json")
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)
    for key in ("from_addr", "subject", "message_id", "is_auto_reply", "auto_reply_reason",
                "attachments", "documents"):
        assert key in data
    assert "command" in data or "refusal" in data
    assert data["documents"] and data["documents"][0]["pages"] == 1
    assert mailgw("parse", "/nonexistent.eml", "--json").returncode == 1


def test_jobs_commands_on_an_empty_store(cfg: Path) -> None:
    r = mailgw("jobs", "list", "--json", "--config", str(cfg))
    assert r.returncode == 0 and json.loads(r.stdout) == []
    assert mailgw("jobs", "show", "7", "--config", str(cfg)).returncode == 1


def test_password_never_in_logs_of_a_full_run(tmp_path: Path, corpus: Path) -> None:
    """Serve, send a fax with the password, and grep everything the process wrote."""
    import signal
    import smtplib
    import time

    from tests.conftest import Sink, fax_message, free_port, serve_config, wait_until

    sink = Sink().start()
    port = free_port()
    cfg = serve_config(tmp_path, port, sink.port)
    add = mailgw("account", "add", "alice@example.com", "--password-stdin", "--config",
                 str(cfg), stdin=PASSWORD + "\n")
    assert add.returncode == 0, add.stderr
    log_path = tmp_path / "serve.log"
    with open(log_path, "w") as log_file:
        proc = subprocess.Popen([sys.executable, "-m", "mailgw", "serve", "--config", str(cfg)],
                                stdout=log_file, stderr=subprocess.STDOUT, text=True)
    try:
        wait_until(lambda: '"event": "ready"' in log_path.read_text(), 30, "ready")
        pdf = (corpus / "pdfs" / "one-page-crazyones.pdf").read_bytes()
        msg = fax_message(f"{PASSWORD}:0170709901:R:c", pdf)
        with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
            client.send_message(msg)
        with pytest.raises(smtplib.SMTPDataError):
            with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
                client.send_message(fax_message("Wrong-Pw-1234:0170709901", pdf))
        sink.wait_for(lambda ms: any(m["X-Mailgw-Kind"] == "notice" for m in ms), 30)
        start = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
        assert time.monotonic() - start < 15
    finally:
        if proc.poll() is None:
            proc.kill()
        sink.stop()
    logs = log_path.read_text()
    assert '"event": "stopped"' in logs
    assert PASSWORD not in logs and "Wrong-Pw-1234" not in logs
    # Every line of the accepted mail's life carries its job_id, and its message_id.
    events = [json.loads(line) for line in logs.splitlines() if line.startswith("{")]
    life = [e for e in events if e.get("job_id") == 1]
    names = {e["event"] for e in life}
    assert {"mail_decided", "call_started", "call_ended", "outbox_sent"} <= names, names
    for e in life:
        if e["event"] != "outbox_sent":
            assert e["message_id"] == msg["Message-ID"], e
    for m in sink.messages:
        assert PASSWORD not in m.as_string()


def test_groups_from_the_command_line(cfg: Path, tmp_path: Path) -> None:
    assert mailgw("account", "add", "a@example.com", "--password-stdin", "--config", str(cfg),
                  stdin="pw\n").returncode == 0
    r = mailgw("group", "add", "a@example.com", "clients", "0170709901", "01 70 70 99 01",
               "bad", "--config", str(cfg))
    assert r.returncode == 0 and "1 added, 1 duplicates, 1 not valid" in r.stdout
    csv_file = tmp_path / "list.csv"
    csv_file.write_text("NOM;MOBILE\nDupont;06 12 34 56 78\nDurand;0170709901\n")
    r = mailgw("group", "import", "a@example.com", "clients", str(csv_file), "--config",
               str(cfg))
    assert r.returncode == 0 and "1 added, 1 duplicates" in r.stdout, r.stdout
    r = mailgw("group", "list", "a@example.com", "clients", "--json", "--config", str(cfg))
    members = json.loads(r.stdout)
    assert {m["number"] for m in members} == {"+33170709901", "+33612345678"}
    assert {"NOM": "Dupont"} in [m["columns"] for m in members]
    r = mailgw("group", "list", "a@example.com", "--config", str(cfg))
    assert "@clients  2 numbers" in r.stdout
    bad = tmp_path / "bad.csv"
    bad.write_text("NAME;CITY\nx;y\n")
    r = mailgw("group", "import", "a@example.com", "clients", str(bad), "--config", str(cfg))
    assert r.returncode == 1 and "no number column" in r.stderr


def test_parse_explain(corpus: Path) -> None:
    r = mailgw("parse", str(corpus / "emails" / "70-vacation-automatic-reply.eml"), "--explain")
    assert r.returncode == 0 and "Automatic:   yes" in r.stdout
    r = mailgw("parse", str(corpus / "emails" / "01-curl-application-pdf-attachment.eml"))
    assert "Document:    test.pdf: 1 page(s)" in r.stdout and "[87]" in r.stdout


def test_parse_json_has_exactly_the_design_keys(corpus: Path) -> None:
    for path in sorted((corpus / "emails").glob("*.eml"))[:12]:
        data = json.loads(mailgw("parse", str(path), "--json").stdout)
        assert set(data) - {"command", "refusal"} == {
            "from_addr", "subject", "message_id", "is_auto_reply", "auto_reply_reason",
            "attachments", "documents"}
        assert ("command" in data) != ("refusal" in data)
        for a in data["attachments"]:
            assert set(a) == {"filename", "content_type", "size", "kind"}
            assert a["kind"] in ("pdf", "tiff", "image", "audio", "list", "other")


def test_status(cfg: Path) -> None:
    r = mailgw("status", "--json", "--config", str(cfg))
    assert r.returncode == 0
    st = json.loads(r.stdout)
    assert st["due"] == 0 and st["outbox_unsent"] == 0 and st["deliveries"] == {}
    r = mailgw("status", "--config", str(cfg))
    assert "outbox: 0 waiting" in r.stdout
