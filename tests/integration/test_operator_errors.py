"""What the operator sees when the setup is wrong: the real `mailgw` command, one line on
stderr naming the thing, exit 2 (configuration) or 69 (unavailable), never a traceback."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme

from mailgw.ops import cli
from tests.conftest import _pg_available, free_port, need

SECRET = "S3cretPw"  # a store password: it must never be printed


def run(*args: str, env: dict[str, str] | None = None, unprivileged: bool = False,
        timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """`mailgw ARGS` as an operator runs it (no MAILGW_* from the test's environment);
    `unprivileged`: as a user file permissions apply to, even when the tests run as root."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("MAILGW_")}
    full_env.update(env or {})
    prefix: list[str] = []
    if unprivileged and os.geteuid() == 0:
        need(shutil.which("setpriv") is not None, "setpriv (util-linux) not found")
        drop = "-dac_override,-dac_read_search"
        prefix = ["setpriv", f"--inh-caps={drop}", f"--bounding-set={drop}"]
    return subprocess.run([*prefix, sys.executable, "-m", "mailgw", *args], text=True,
                          capture_output=True, timeout=timeout, env=full_env, check=False)


def one_line(r: subprocess.CompletedProcess[str], code: int, *names: str) -> str:
    assert "Traceback" not in r.stderr, r.stderr
    lines = r.stderr.splitlines()
    assert len(lines) == 1, r.stderr
    assert r.returncode == code, (r.returncode, r.stderr)
    assert lines[0].startswith("mailgw: "), lines[0]
    for name in names:
        assert name in lines[0], (name, lines[0])
    return lines[0]


@pytest.fixture
def cfg(tmp_path: Path) -> Path:
    path = tmp_path / "mailgw.toml"
    path.write_text(f'[store]\nurl = "sqlite:///{tmp_path / "gw.db"}"\n'
                    f'[smtp]\nlisten = "127.0.0.1:{free_port()}"\n'
                    '[log]\nformat = "json"\n', encoding="utf-8")
    return path


# -- ports --------------------------------------------------------------------------------------

@pytest.fixture
def first_serve(cfg: Path) -> Iterator[subprocess.Popen[str]]:
    """A `mailgw serve` that holds the port, once it has said "ready"."""
    proc = subprocess.Popen([sys.executable, "-m", "mailgw", "serve", "--config", str(cfg)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            env={k: v for k, v in os.environ.items()
                                 if not k.startswith("MAILGW_")})
    assert proc.stderr is not None
    for line in proc.stderr:  # ends (and fails below) if the process dies first
        if '"event": "ready"' in line:
            break
    else:
        pytest.fail(f"the first serve did not start (exit {proc.wait(30)})")
    yield proc
    proc.terminate()
    assert proc.wait(30) == 0
    proc.stderr.close()


def test_a_second_serve_on_a_busy_port(cfg: Path, first_serve: subprocess.Popen[str]) -> None:
    listen = cfg.read_text(encoding="utf-8").split('listen = "')[1].split('"')[0]
    r = run("serve", "--config", str(cfg))
    one_line(r, 69, f"smtp.listen {listen}", "address already in use")


def test_a_busy_http_port(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        r = run("serve", env={"MAILGW_STORE__URL": f"sqlite:///{tmp_path / 'gw.db'}",
                              "MAILGW_SMTP__LISTEN": "127.0.0.1:0",
                              "MAILGW_HTTP__LISTEN": f"127.0.0.1:{port}"})
    one_line(r, 69, f"http.listen 127.0.0.1:{port}", "address already in use")


def test_an_address_that_is_not_ours_is_a_configuration_error(tmp_path: Path) -> None:
    r = run("serve", env={"MAILGW_STORE__URL": f"sqlite:///{tmp_path / 'gw.db'}",
                          "MAILGW_SMTP__LISTEN": "192.0.2.1:2525"})  # TEST-NET-1
    one_line(r, 2, "smtp.listen 192.0.2.1:2525", "cannot assign requested address")


# -- the configuration file --------------------------------------------------------------------

def test_missing_config_file(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.toml"
    one_line(run("serve", "--config", str(missing)), 2, str(missing), "file not found")
    one_line(run("status", env={"MAILGW_CONFIG": str(missing)}), 2, str(missing),
             "file not found")


def test_unreadable_config_file(cfg: Path) -> None:
    cfg.chmod(0)
    one_line(run("serve", "--config", str(cfg), unprivileged=True), 2, str(cfg),
             "Permission denied")
    one_line(run("serve", "--config", str(cfg.parent)), 2, str(cfg.parent), "Is a directory")


@pytest.mark.parametrize("content,why", [
    (b'[store\nurl = "sqlite:///x.db"\n', "not valid TOML"),
    (b'[log]\nlevel = "d\xe9bug"\n', "not UTF-8"),  # saved as Latin-1
    (b'[smtp]\nlisten = 2525\n', "smtp.listen: expected host:port"),
])
def test_bad_config_file(tmp_path: Path, content: bytes, why: str) -> None:
    path = tmp_path / "mailgw.toml"
    path.write_bytes(content)
    one_line(run("serve", "--config", str(path)), 2, str(path) if "TOML" in why or "UTF" in why
             else "smtp.listen", why)


# -- the store ------------------------------------------------------------------------------

@pytest.mark.parametrize("command", [["serve"], ["status"], ["db", "upgrade"]])
def test_postgresql_down(command: list[str]) -> None:
    port = free_port()  # nothing listens there
    r = run(*command, env={"MAILGW_STORE__URL":
                           f"postgresql+psycopg://mailgw:{SECRET}@127.0.0.1:{port}/mailgw"})
    line = one_line(r, 69, f"store.url postgresql+psycopg://mailgw@127.0.0.1:{port}/mailgw",
                    "cannot connect", "Connection refused")
    assert SECRET not in r.stderr + r.stdout, line


def test_postgresql_wrong_host_and_wrong_database() -> None:
    r = run("serve", env={"MAILGW_STORE__URL":
                          f"postgresql://mailgw:{SECRET}@no-such-host.invalid/mailgw"})
    one_line(r, 69, "store.url postgresql+psycopg://mailgw@no-such-host.invalid/mailgw",
             "no-such-host.invalid")
    assert SECRET not in r.stderr
    need(_pg_available(), "PostgreSQL is not running on 127.0.0.1:5432")
    r = run("serve", env={"MAILGW_STORE__URL":
                          f"postgresql+psycopg://postgres:{SECRET}@127.0.0.1:5432/mailgw_none"})
    one_line(r, 69, "store.url postgresql+psycopg://postgres@127.0.0.1:5432/mailgw_none",
             'database "mailgw_none" does not exist')
    assert SECRET not in r.stderr


@pytest.mark.parametrize("url,why", [
    (f"postgresql+psycopg://mailgw:{SECRET}@db:5432x/mailgw", "the port is not a number"),
    (f"postgresql+psycopg2://mailgw:{SECRET}@db/mailgw",
     "driver 'postgresql+psycopg2' is not installed"),
    ("sqlite://", "SQLite needs a file"),
])
def test_a_store_url_that_cannot_work_is_a_configuration_error(url: str, why: str) -> None:
    r = run("serve", env={"MAILGW_STORE__URL": url})
    one_line(r, 2, "store.url", why)
    assert SECRET not in r.stderr


def test_sqlite_in_a_missing_directory_is_not_created(tmp_path: Path) -> None:
    where = tmp_path / "typo" / "gw.db"
    r = run("serve", env={"MAILGW_STORE__URL": f"sqlite:///{where}"})
    one_line(r, 69, f"store.url sqlite:///{where}", f"directory {where.parent} does not exist")
    assert not where.parent.exists()


def test_sqlite_in_a_read_only_directory(tmp_path: Path) -> None:
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        r = run("account", "list", env={"MAILGW_STORE__URL": f"sqlite:///{ro / 'gw.db'}"},
                unprivileged=True)
    finally:
        ro.chmod(0o755)
    one_line(r, 69, f"store.url sqlite:///{ro / 'gw.db'}", f"directory {ro} is not writable")


# -- TLS files --------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def pem(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("pem")
    ca = trustme.CA()
    files = {}
    for name, host in (("a", "localhost"), ("b", "other.example")):
        cert = ca.issue_cert(host)
        files[f"{name}.crt"], files[f"{name}.key"] = d / f"{name}.crt", d / f"{name}.key"
        cert.cert_chain_pems[0].write_to_path(str(files[f"{name}.crt"]))
        cert.private_key_pem.write_to_path(str(files[f"{name}.key"]))
    files["junk"] = d / "junk.pem"
    files["junk"].write_text("not a certificate\n", encoding="utf-8")
    files["missing"] = d / "missing.pem"
    return files


@pytest.mark.parametrize("cert,key,code,names", [
    ("missing", "a.key", 2, ["smtp.tls_cert", "file not found", "missing.pem"]),
    ("a.crt", "missing", 2, ["smtp.tls_key", "file not found", "missing.pem"]),
    ("junk", "a.key", 2, ["smtp.tls_cert/smtp.tls_key", "junk.pem", "not a PEM"]),
    ("a.crt", "b.key", 2, ["smtp.tls_cert/smtp.tls_key", "b.key", "not the certificate's"]),
])
def test_tls_files(tmp_path: Path, pem: dict[str, Path], cert: str, key: str, code: int,
                   names: list[str]) -> None:
    r = run("serve", env={"MAILGW_STORE__URL": f"sqlite:///{tmp_path / 'gw.db'}",
                          "MAILGW_SMTP__LISTEN": "127.0.0.1:0",
                          "MAILGW_SMTP__TLS_CERT": str(pem[cert]),
                          "MAILGW_SMTP__TLS_KEY": str(pem[key])})
    one_line(r, code, *names)


def test_the_pair_that_matches_starts(tmp_path: Path, pem: dict[str, Path]) -> None:
    """The same files the test above refuses, paired right, pass check-config and load."""
    from mailgw.ops.config import SmtpSettings
    from mailgw.smtp.server import tls_context

    env = {"MAILGW_STORE__URL": f"sqlite:///{tmp_path / 'gw.db'}",
           "MAILGW_SMTP__TLS_CERT": str(pem["a.crt"]), "MAILGW_SMTP__TLS_KEY": str(pem["a.key"])}
    assert run("check-config", env=env).returncode == 0
    assert tls_context(SmtpSettings(tls_cert=str(pem["a.crt"]),
                                    tls_key=str(pem["a.key"]))) is not None


# -- our own bugs ---------------------------------------------------------------------------

def test_a_bug_of_ours_keeps_its_traceback(monkeypatch: pytest.MonkeyPatch,
                                           tmp_path: Path) -> None:
    """Only the operator's errors are shortened: anything else propagates to the
    interpreter, which prints the traceback and exits 1."""
    def broken(*_: object) -> int:
        raise KeyError("a bug")

    monkeypatch.setitem(cli.COMMANDS, "status", broken)
    monkeypatch.setenv("MAILGW_STORE__URL", f"sqlite:///{tmp_path / 'gw.db'}")
    with pytest.raises(KeyError):
        cli.main(["status"])
