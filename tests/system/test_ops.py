"""Operations: systemd units, sd_notify and the watchdog, /metrics and /healthz, the
generated config reference, the docs, and the wheel as an operator installs it."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import smtplib
import socket
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
import zipfile
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from mailgw.codes import CODES
from mailgw.documents.samples import make_pdf
from mailgw.ops import metrics
from tests.conftest import PASSWORD, fax_message, need, wait_until

ROOT = Path(__file__).resolve().parents[2]
UNITS = ROOT / "systemd"
BIN = Path(sys.executable).parent


# -- systemd ----------------------------------------------------------------------------------

def _units_for_test(tmp_path: Path) -> Path:
    """The units with ExecStart pointing at this venv's mailgw (verify checks it exists)."""
    mailgw = BIN / "mailgw"
    need(mailgw.is_file(), f"{mailgw} not installed (pip install -e .)")
    for name in ("mailgw.service", "mailgw@.service", "mailgw-purge.service",
                 "mailgw-purge.timer"):
        text = (UNITS / name).read_text(encoding="utf-8")
        (tmp_path / name).write_text(text.replace("/opt/mailgw/venv/bin/mailgw", str(mailgw)),
                                     encoding="utf-8")
    return tmp_path


def _directives(name: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for line in (UNITS / name).read_text(encoding="utf-8").splitlines():
        if "=" in line and not line.startswith(("#", ";", "[")):
            key, _, value = line.partition("=")
            out.setdefault(key.strip(), []).append(value.strip())
    return out


@pytest.mark.parametrize("name", ["mailgw.service", "mailgw@.service"])
def test_units_are_hardened_and_wait_for_the_grace(name: str) -> None:
    from mailgw.ops.config import ServeSettings, parse_duration

    d = _directives(name)
    assert d["Type"] == ["notify"]
    assert d["User"] == ["mailgw"] and d["StateDirectory"] == ["mailgw"]
    assert d["ConfigurationDirectory"] == ["mailgw"]
    for key, value in [("ProtectSystem", "strict"), ("ProtectHome", "yes"),
                       ("PrivateTmp", "yes"), ("NoNewPrivileges", "yes"),
                       ("CapabilityBoundingSet", "CAP_NET_BIND_SERVICE"),
                       ("AmbientCapabilities", "CAP_NET_BIND_SERVICE"),
                       ("SystemCallFilter", "@system-service")]:
        assert value in d[key], key
    for key in ("RestrictAddressFamilies", "MemoryMax", "LimitNOFILE", "WatchdogSec"):
        assert d.get(key), key
    assert parse_duration(d["TimeoutStopSec"][0]) >= ServeSettings().grace_seconds + 10
    assert parse_duration(d["WatchdogSec"][0]) >= 10
    exec_start = d["ExecStart"][0]
    assert exec_start.endswith("mailgw serve --roles %i" if "@" in name else "mailgw serve")


def test_systemd_analyze_verify(tmp_path: Path) -> None:
    tool = shutil.which("systemd-analyze")
    need(tool is not None, "systemd-analyze not installed (apt-get install systemd)")
    units = _units_for_test(tmp_path)
    for unit in ("mailgw.service", "mailgw@smtp.service", "mailgw@dispatch.service",
                 "mailgw-purge.service", "mailgw-purge.timer"):
        run = subprocess.run([str(tool), "verify", "--man=no", f"./{unit}"], cwd=units,
                             capture_output=True, text=True, timeout=60)
        # verify exits 0 on unknown keys too: any line about our file is a finding.
        findings = [line for line in (run.stdout + run.stderr).splitlines() if "mailgw" in line]
        assert run.returncode == 0 and not findings, (unit, run.stdout, run.stderr)


def test_systemd_analyze_security_score(tmp_path: Path) -> None:
    tool = shutil.which("systemd-analyze")
    need(tool is not None, "systemd-analyze not installed (apt-get install systemd)")
    units = _units_for_test(tmp_path)
    run = subprocess.run([str(tool), "security", "--offline=yes", "--no-pager",
                          "./mailgw.service"], cwd=units, capture_output=True, text=True,
                         timeout=60)
    m = re.search(r"Overall exposure level for mailgw\.service: (\d+\.\d)", run.stdout)
    need(m is not None, f"systemd-analyze security --offline=yes did not run here: "
                        f"{run.stderr.strip()[:200]}")
    assert m is not None
    score = float(m.group(1))
    assert score <= 2.0, run.stdout
    operator = (ROOT / "docs" / "operator.md").read_text(encoding="utf-8")
    assert f"exposure level {score}" in operator, "docs/operator.md states another score"


def test_serve_tells_systemd_ready_watchdog_and_stopping(tmp_path: Path) -> None:
    """`mailgw serve` under a fake NOTIFY_SOCKET: READY=1, WATCHDOG=1 pings, STOPPING=1."""
    path = str(tmp_path / "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(30)
    env = {**os.environ, "NOTIFY_SOCKET": path, "WATCHDOG_USEC": "200000",
           "MAILGW_CONFIG": "", "MAILGW_STORE__URL": f"sqlite:///{tmp_path / 'gw.db'}",
           "MAILGW_SMTP__LISTEN": "127.0.0.1:0", "MAILGW_LOG__FORMAT": "json"}
    proc = subprocess.Popen([str(BIN / "mailgw"), "serve", "--roles", "smtp,dispatch"],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        seen: list[str] = []
        while seen.count("WATCHDOG=1") < 2:
            seen.append(sock.recv(256).decode())
        assert seen[0] == "READY=1", seen
        proc.send_signal(signal.SIGTERM)
        while "STOPPING=1" not in seen:
            seen.append(sock.recv(256).decode())
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        sock.close()
        assert proc.stderr is not None
        proc.stderr.close()


def test_no_watchdog_task_without_systemd(monkeypatch: pytest.MonkeyPatch) -> None:
    from mailgw import app

    monkeypatch.delenv("WATCHDOG_USEC", raising=False)
    assert app._watchdog_interval() is None
    monkeypatch.setenv("WATCHDOG_USEC", "30000000")
    monkeypatch.setenv("WATCHDOG_PID", "1")  # another process's watchdog
    assert app._watchdog_interval() is None
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    assert app._watchdog_interval() == 15.0


# -- /metrics and /healthz ---------------------------------------------------------------------

def _get(address: tuple[str, int], path: str) -> tuple[int, str, dict[str, str]]:
    url = f"http://{address[0]}:{address[1]}{path}"
    try:
        with urllib.request.urlopen(url, timeout=20) as resp:
            return resp.status, resp.read().decode(), dict(resp.headers)
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode(), dict(err.headers)


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def _raw(address: tuple[str, int], data: bytes) -> bytes:
    with socket.create_connection(address, timeout=20) as conn:
        conn.sendall(data)
        chunks = []
        while chunk := conn.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def test_hooks_feed_the_counters() -> None:
    def value(name: str, **labels: str) -> float:
        samples = _samples(metrics.generate_latest(metrics.REGISTRY).decode())
        return samples.get((name, tuple(sorted(labels.items()))), 0.0)

    before = {"80": value("mailgw_mails_received_total", code="80"),
              "82": value("mailgw_mails_refused_total", code="82"),
              "ign": value("mailgw_mails_received_total", code="ignored"),
              "del": value("mailgw_deliveries_total", outcome="delivered"),
              "busy": value("mailgw_attempt_duration_seconds_count", result="busy"),
              "reap": value("mailgw_lease_reaps_total"),
              "sent": value("mailgw_outbox_mails_total", result="sent")}
    metrics.mail_decided(80)
    metrics.mail_decided(82)
    metrics.mail_decided(None, ignored=True)
    metrics.delivery_final("delivered")
    metrics.attempt_ended("busy", 12.5)
    metrics.leases_reaped(3)
    metrics.leases_reaped(0)
    metrics.outbox_result("sent", 2)
    assert value("mailgw_mails_received_total", code="80") == before["80"] + 1
    assert value("mailgw_mails_refused_total", code="80") == 0  # 80 is no refusal
    assert value("mailgw_mails_refused_total", code="82") == before["82"] + 1
    assert value("mailgw_mails_received_total", code="ignored") == before["ign"] + 1
    assert value("mailgw_deliveries_total", outcome="delivered") == before["del"] + 1
    assert value("mailgw_attempt_duration_seconds_count", result="busy") == before["busy"] + 1
    assert value("mailgw_attempt_duration_seconds_bucket", result="busy", le="15.0") >= 1
    assert value("mailgw_lease_reaps_total") == before["reap"] + 3
    assert value("mailgw_outbox_mails_total", result="sent") == before["sent"] + 2


def _send_fax(port: int, subject: str) -> str:
    msg = fax_message(subject, make_pdf([["page one"], ["page two"]]))
    raw = msg.as_bytes().replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
        client.ehlo("client.example.com")
        client.mail(str(msg["From"]))
        client.rcpt("fax@gw.example.org")
        code, text = client.data(raw)
    return f"{code} {text.decode()}"


def test_metrics_and_healthz_follow_the_store(make_app: Any, sink: Any) -> None:
    running = make_app(http={"listen": "127.0.0.1:0", "health_outbox_age": "1s"})
    running.add_account()
    app = running.app
    address = app.http_address
    assert address is not None and address[1] > 0

    assert _send_fax(running.port, f"{PASSWORD}:0170709901").startswith("250")
    sink.wait_for(lambda ms: any(m["X-Mailgw-Kind"] == "notice" for m in ms), what="notice")
    wait_until(lambda: _samples(_get(address, "/metrics")[1])[("mailgw_outbox_depth", ())] == 0,
               what="the outbox to be marked sent")
    status, body, headers = _get(address, "/healthz")
    report = json.loads(body)
    assert status == 200 and report["status"] == "ok", report
    assert headers["Content-Type"] == "application/json"
    assert set(report["checks"]) == {"store", "outbox", "listeners"}
    assert report["checks"]["listeners"]["smtp"] == f"127.0.0.1:{running.port}"

    status, body, headers = _get(address, "/metrics")
    assert status == 200 and headers["Content-Type"].startswith("text/plain; version=0.0.4")
    samples = _samples(body)
    assert samples[("mailgw_store_up", ())] == 1
    assert samples[("mailgw_jobs", (("state", "done"),))] == 1
    assert samples[("mailgw_deliveries_by_state", (("state", "delivered"),))] == 1
    assert samples[("mailgw_outbox_depth", ())] == 0
    assert samples[("mailgw_queue_lag_seconds", ())] == 0
    for name in ("mailgw_mails_received_total", "mailgw_deliveries_total",
                 "mailgw_lease_reaps_total", "mailgw_outbox_oldest_unsent_age_seconds",
                 "process_resident_memory_bytes"):
        assert any(key[0] == name for key in samples), name

    # The smarthost goes away: the ack of the next mail waits, ages, and /healthz says so.
    sink.stop()
    assert _send_fax(running.port, f"{PASSWORD}:0170709902").startswith("250")

    def unhealthy() -> dict[str, Any] | None:
        status, body, _ = _get(address, "/healthz")
        return json.loads(body) if status == 503 else None

    report = wait_until(unhealthy, timeout=20, what="/healthz to fail on the outbox")
    assert report["failing"] == ["outbox"], report
    assert report["checks"]["outbox"]["oldest_unsent_age_seconds"] >= 1
    samples = _samples(_get(address, "/metrics")[1])
    assert samples[("mailgw_outbox_depth", ())] >= 1
    assert samples[("mailgw_outbox_oldest_unsent_age_seconds", ())] >= 1

    # Small and strict: GET and HEAD only, bounded request heads, nothing else served.
    assert _get(address, "/nope")[0] == 404
    assert _raw(address, b"POST /metrics HTTP/1.1\r\nHost: x\r\n\r\n").startswith(
        b"HTTP/1.1 405 ")
    assert _raw(address, b"GET /metrics HTTP/1.1\r\nX: " + b"a" * 9000 + b"\r\n\r\n"
                ).startswith(b"HTTP/1.1 431 ")
    assert _raw(address, b"garbage\r\n\r\n").startswith(b"HTTP/1.1 400 ")
    head = _raw(address, b"HEAD /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 503 ") and head.endswith(b"\r\n\r\n")


def test_healthz_names_an_unbound_listener(make_app: Any) -> None:
    running = make_app(http={"listen": "127.0.0.1:0"})
    app = running.app
    app.smtp_server.close()  # as if the listener had died
    wait_until(lambda: not app.smtp_server.is_serving(), what="listener closed")
    status, body, _ = _get(app.http_address, "/healthz")
    assert status == 503 and json.loads(body)["failing"] == ["listeners"], body


def test_http_listen_is_checked() -> None:
    from mailgw.ops import config

    with pytest.raises(config.ConfigError, match="http.listen"):
        config.load(search=False, environ={}, overrides={"http": {"listen": "9725"}})
    assert config.load(search=False, environ={}).http.listen == ""


# -- docs ---------------------------------------------------------------------------------------

def test_config_reference_is_generated_and_fresh() -> None:
    sys.path.insert(0, str(ROOT / "tools"))
    try:
        import gen_config_reference
    finally:
        sys.path.remove(str(ROOT / "tools"))
    expected = gen_config_reference.render()
    current = (ROOT / "docs" / "config-reference.md").read_text(encoding="utf-8")
    assert current == expected, ("docs/config-reference.md is stale: run "
                                 "python tools/gen_config_reference.py")
    for key in ("smtp.listen", "dispatch.retry.busy", "http.health_outbox_age",
                "imap.mailboxes[].channel"):
        assert f"`{key}`" in current, key


@pytest.mark.parametrize("lang", ["en", "fr", "ru"])
def test_user_guide_explains_every_code(lang: str) -> None:
    text = (ROOT / "docs" / f"user-guide.{lang}.md").read_text(encoding="utf-8")
    for code, rc in CODES.items():
        assert re.search(rf"\b{code}\b", text), (lang, code)
        assert rc.text[lang] in text, (lang, code, rc.text[lang])
    for needle in ("@", ".csv", ".txt", "153012092036s", "CSID"):
        assert needle in text, (lang, needle)


def test_docs_link_to_files_that_exist() -> None:
    for doc in ["operator.md", "architecture.md", "user-guide.en.md", "user-guide.fr.md",
                "user-guide.ru.md"]:
        text = (ROOT / "docs" / doc).read_text(encoding="utf-8")
        for target in re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", text):
            if target == "imap.md":
                continue  # written by another engineer, may land later
            assert (ROOT / "docs" / target).resolve().exists(), (doc, target)
    arch = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    for name in re.findall(r"`(mailgw/[\w/]+\.py)`", arch):
        assert (ROOT / name).is_file(), name


# -- the wheel, as an operator installs it -------------------------------------------------------

def test_wheel_installs_and_runs_in_a_fresh_venv() -> None:
    """Build the wheel, check its package data, install it (dependencies from the registry)
    in a new venv without the system's packages, and run `mailgw --version` and the demo."""
    need(os.environ.get("MAILGW_SKIP_WHEEL") != "1", "MAILGW_SKIP_WHEEL=1")
    with tempfile.TemporaryDirectory(prefix="mailgw-wheel-") as tmp:
        out = Path(tmp)
        build = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q",
                                "-w", str(out / "dist"), str(ROOT)],
                               capture_output=True, text=True, timeout=600)
        assert build.returncode == 0, build.stderr[-2000:]
        (wheel,) = (out / "dist").glob("mailgw-*.whl")
        names = set(zipfile.ZipFile(wheel).namelist())
        for lang in ("en", "fr", "ru"):
            for template in ("ack.txt", "ack.html", "notice.txt", "notice.html"):
                assert f"mailgw/notify/templates/{lang}/{template}" in names
        assert "mailgw/store/migrations/script.py.mako" in names
        assert "mailgw/store/migrations/env.py" in names
        versions = {n for n in names if n.startswith("mailgw/store/migrations/versions/")
                    and n.endswith(".py")}
        assert len(versions) == len(list((ROOT / "mailgw/store/migrations/versions")
                                         .glob("*.py")))
        assert "mailgw/py.typed" in names
        assert any(n.endswith("entry_points.txt") for n in names)

        venv = out / "venv"
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
        pip = subprocess.run([str(venv / "bin" / "pip"), "install", "-q",
                              "--disable-pip-version-check", str(wheel)],
                             capture_output=True, text=True, timeout=900)
        assert pip.returncode == 0, pip.stderr[-2000:]
        env = {k: v for k, v in os.environ.items() if not k.startswith("MAILGW_")}
        env["PYTHONPATH"] = ""
        version = subprocess.run([str(venv / "bin" / "mailgw"), "--version"], cwd=tmp,
                                 capture_output=True, text=True, timeout=60, env=env)
        assert version.returncode == 0 and version.stdout.startswith("mailgw "), version
        demo = subprocess.run([str(venv / "bin" / "mailgw"), "demo"], cwd=tmp,
                              capture_output=True, text=True, timeout=300, env=env)
        assert demo.returncode == 0, (demo.stdout[-2000:], demo.stderr[-2000:])
        assert "X-Mailgw-Kind: notice" in demo.stdout, demo.stdout[-2000:]


def test_the_thread_pool_fits_every_role_at_once() -> None:
    """Mails held in intake threads must not queue the dispatcher's heartbeats: the pool has
    a thread for every DATA slot, mailbox and line, plus room, whatever the CPU count."""
    import asyncio
    import threading

    from mailgw.app import _threads_for_every_role
    from mailgw.ops import config

    settings = config.load(search=False, environ={}, overrides={
        "smtp": {"max_concurrent_data": 40}, "dispatch": {"workers": 8}})

    async def blocked_then_free() -> bool:
        _threads_for_every_role(settings)
        loop = asyncio.get_running_loop()
        gate = threading.Event()
        held = [loop.run_in_executor(None, gate.wait, 30) for _ in range(40)]  # 40 mails
        beat = await asyncio.wait_for(loop.run_in_executor(None, lambda: True), 10)
        gate.set()
        await asyncio.gather(*held)
        return beat

    assert asyncio.run(blocked_then_free())
