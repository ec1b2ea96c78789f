"""What `load` and `mailgw check-config` find wrong in well-typed settings, each problem
naming its key. Each driver checks its own `[drivers.<name>]` table (the registry)."""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from mailgw.dispatch.drivers import registry
from mailgw.dispatch.drivers.ports import CheckContext
from mailgw.ops.config_schema import ProofSettings, Settings
from mailgw.ops.config_types import ROLES, parse_hostport, parse_retry_overrides
from mailgw.vocab import LANGS


def validate(s: Settings, problems: list[str]) -> None:
    """Append every problem of a well-typed Settings (the builder caught the types)."""
    for role in s.serve.roles:
        if role not in ROLES:
            problems.append(f"serve.roles: unknown role {role!r} (roles: {', '.join(ROLES)})")
    for key, tz in (("accounts.default_tz", s.accounts.default_tz),):
        try:
            ZoneInfo(tz)
        except (ZoneInfoNotFoundError, ValueError):
            problems.append(f"{key}: unknown time zone {tz!r}")
    for key, lang in (("accounts.default_lang", s.accounts.default_lang),
                      ("notify.default_lang", s.notify.default_lang)):
        if lang not in LANGS:
            problems.append(f"{key}: unsupported language {lang!r} (one of {', '.join(LANGS)})")
    if s.notify.smarthost_tls not in ("none", "starttls", "tls"):
        problems.append("notify.smarthost_tls: expected none, starttls or tls")
    if s.notify.templates_dir and not Path(s.notify.templates_dir).is_dir():
        problems.append(f"notify.templates_dir: not a directory: {s.notify.templates_dir}")
    if s.notify.smarthost_password_file and not Path(s.notify.smarthost_password_file).is_file():
        problems.append("notify.smarthost_password_file: file not found")
    if s.notify.on not in ("all", "failures", "summary"):
        problems.append(f"notify.on: expected all, failures or summary, got {s.notify.on!r}")
    if s.dispatch.driver not in registry.names():
        problems.append(f"dispatch.driver: unknown driver {s.dispatch.driver!r} "
                        f"(drivers: {', '.join(registry.names())})")
    problems.extend(_store_url_problems(s.store.url))
    for key, address in (("gateway.fax_address", s.gateway.fax_address),
                         ("gateway.voice_address", s.gateway.voice_address)):
        if "@" not in address:
            problems.append(f"{key}: expected an address such as fax@example.org")
    for net in s.smtp.client_limit_exceptions:
        try:
            ipaddress.ip_network(net.strip(), strict=False)
        except ValueError:
            problems.append(f"smtp.client_limit_exceptions: not an address or network: {net!r}")
    if not 0 < s.smtp.stress_threshold <= 1:
        problems.append("smtp.stress_threshold: expected a fraction above 0, at most 1 (0.8)")
    if s.smtp.stress_timeout <= 0:
        problems.append("smtp.stress_timeout: expected a duration above 0, such as 10s")
    for relay in s.smtp.trusted_relays:
        try:
            ipaddress.ip_network(relay, strict=False)
        except ValueError:
            problems.append(f"smtp.trusted_relays: {relay!r} is not an address or a network "
                            "(such as 127.0.0.1 or 192.0.2.0/28)")
    if bool(s.smtp.tls_cert) != bool(s.smtp.tls_key):
        problems.append("smtp.tls_cert/smtp.tls_key: give both or neither")
    for key, path in (("smtp.tls_cert", s.smtp.tls_cert), ("smtp.tls_key", s.smtp.tls_key)):
        if path and not Path(path).is_file():
            problems.append(f"{key}: file not found: {path}")
    if s.dispatch.workers < 1:
        problems.append("dispatch.workers: must be at least 1")
    lim = s.limits
    for key, count in (("auth_failures", lim.auth_failures),
                       ("data_per_guessing_client", lim.data_per_guessing_client)):
        if count < 0:
            problems.append(f"limits.{key}: must be 0 or more")
    for key, count in (("password_checks", lim.password_checks),
                       ("password_checks_all", lim.password_checks_all)):
        if count < 1:
            problems.append(f"limits.{key}: must be at least 1 (a check a minute)")
    for key, seconds in (("auth_failure_window", lim.auth_failure_window),
                         ("known_client_ttl", lim.known_client_ttl)):
        if seconds <= 0:
            problems.append(f"limits.{key}: must be more than 0")
    if s.limits.max_sound_seconds <= 0:
        problems.append("limits.max_sound_seconds: must be more than 0")
    if s.dispatch.retry.max_attempts < 1:
        problems.append("dispatch.retry.max_attempts: must be at least 1")
    _validate_drivers(s, problems)
    for i, box in enumerate(s.imap.mailboxes):
        if box.tls not in ("implicit", "starttls", "none"):
            problems.append(f"imap.mailboxes[{i}].tls: expected implicit, starttls or none")
        if box.channel not in ("fax", "voice"):
            problems.append(f"imap.mailboxes[{i}].channel: expected fax or voice")
        if not box.user:
            problems.append(f"imap.mailboxes[{i}].user: required")
    if s.http.listen:
        try:
            parse_hostport(s.http.listen)
        except ValueError as exc:
            problems.append(f"http.listen: {exc} (or empty to turn the endpoint off)")
    for proxy in s.http.trusted_proxies:
        try:
            ipaddress.ip_network(proxy.strip(), strict=False)
        except ValueError:
            problems.append(f"http.trusted_proxies: {proxy!r} is not an address or a network")
    if s.http.max_connections < 1 or s.http.max_per_client < 1:
        problems.append("http.max_connections, http.max_per_client: at least 1")
    if s.http.token_rate < 0:
        problems.append("http.token_rate: must be 0 (no limit) or more")
    if s.http.token_burst < 1:
        problems.append("http.token_burst: must be at least 1")
    if s.log.format not in ("auto", "json", "console"):
        problems.append(f"log.format: expected auto, json or console, got {s.log.format!r}")
    _validate_proof(s.proof, problems)


def _validate_proof(p: ProofSettings, problems: list[str]) -> None:
    if p.verify not in ("headers", "own", "both"):
        problems.append(f"proof.verify: expected headers, own or both, got {p.verify!r}")
    for server in p.nameservers:
        if not _nameserver_ok(server):
            problems.append(f"proof.nameservers: expected an IP address, IP:port or "
                            f"[IPv6]:port, got {server!r}")
    if p.dns_timeout <= 0:
        problems.append("proof.dns_timeout: must be more than 0")


def _nameserver_ok(text: str) -> bool:
    host, port = text.strip(), "53"
    if host.startswith("["):
        host, _, rest = host[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else ("53" if not rest else "")
    elif host.count(":") == 1:
        host, _, port = host.partition(":")
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return port.isdigit() and 0 < int(port) < 65536


def _store_url_problems(url: str) -> list[str]:
    """What a store URL lacks, said without echoing it (it may hold a password)."""
    expected = "expected sqlite:///PATH or postgresql+psycopg://USER@HOST/DB"
    if not re.match(r"^(sqlite|postgres|postgresql)(\+\w+)?://", url):
        return [f"store.url: {expected}"]
    try:
        parsed = make_url(url)
    except ArgumentError:
        return [f"store.url: not a valid URL; {expected}"]
    except ValueError:  # int() of the port
        return [f"store.url: the port is not a number; {expected}"]
    if parsed.drivername not in ("sqlite", "sqlite+pysqlite", "postgres", "postgresql",
                                 "postgresql+psycopg"):
        return [f"store.url: driver {parsed.drivername!r} is not installed with mailgw; "
                f"{expected}"]
    if parsed.get_backend_name() == "sqlite" and parsed.database in (None, "", ":memory:"):
        return ["store.url: SQLite needs a file (sqlite:///PATH); a store in memory would "
                "be lost at exit"]
    return []


def _validate_drivers(s: Settings, problems: list[str]) -> None:
    """Every registered driver's table: its `retry` overrides, then its own checks (the
    chosen one's required keys too)."""
    for entry in registry.entries():
        table = s.drivers[entry.name]
        try:
            parse_retry_overrides(table.retry)
        except ValueError as exc:
            problems.append(f"drivers.{entry.name}.retry: {exc}")
        ctx = CheckContext(chosen=s.dispatch.driver == entry.name, http_listen=s.http.listen)
        problems.extend(table.problems(ctx))
