"""Typed settings from one TOML file plus `MAILGW_<SECTION>__<KEY>` environment overrides.

Where the file comes from: `--config`, else `$MAILGW_CONFIG`, else `/etc/mailgw/mailgw.toml`,
else the embedded defaults below. Every problem names the key and says why, so
`mailgw check-config` can print it and exit 2.
"""

from __future__ import annotations

import dataclasses
import difflib
import ipaddress
import os
import re
import tomllib
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from mailgw.vocab import CHANNELS, LANGS

SYSTEM_CONFIG = Path("/etc/mailgw/mailgw.toml")
ENV_PREFIX = "MAILGW_"

Size = Annotated[int, "size"]  # bytes; accepts 25MB, 512KB, 1GB or a plain integer
Duration = Annotated[float, "duration"]  # seconds; accepts 500ms, 30s, 3m, 3h, 5d or a number
HostPort = Annotated[str, "hostport"]  # host:port


class ConfigError(Exception):
    """The configuration is wrong; `problems` names each key and why."""

    def __init__(self, problems: list[str]):
        super().__init__("; ".join(problems))
        self.problems = problems


@dataclass
class GatewaySettings:
    fax_address: str = "fax@localhost"
    voice_address: str = "voice@localhost"
    domain: str = "localhost"


@dataclass
class SmtpSettings:
    listen: HostPort = "127.0.0.1:2525"
    hostname: str = ""
    max_message_size: Size = 25_000_000
    tls_cert: str = ""
    tls_key: str = ""
    auth_required: bool = False
    allow_auth_without_tls: bool = False
    max_connections: int = 200
    idle_timeout: Duration = 60.0
    data_timeout: Duration = 300.0
    max_concurrent_data: int = 8  # DATA transfers held in memory at once; others wait, then 451
    max_connections_per_client: int = 20  # per client address (IPv6: per /64); 0 = no cap
    max_connection_rate: int = 60  # new connections per client address per minute; 0 = no cap
    client_limit_exceptions: list[str] = field(default_factory=list)  # exempt from the two
    stress_threshold: float = 0.8  # fraction of max_connections where stress begins
    stress_timeout: Duration = 10.0  # idle and slow sessions under stress are cut after this
    trusted_relays: list[str] = field(default_factory=list)  # MTAs in front (docs/operator.md)


@dataclass
class MailboxSettings:
    """One mailbox the IMAP poller reads (`[[imap.mailboxes]]`)."""

    host: str = "127.0.0.1"
    port: int = 993
    tls: str = "implicit"  # implicit | starttls | none (none: loopback tests only)
    user: str = ""
    password: str = ""
    password_file: str = ""
    mailbox: str = "INBOX"
    done_mailbox: str = "Done"
    rejected_mailbox: str = "Rejected"
    channel: str = "fax"  # fax | voice: what the mail in this box asks for
    poll_interval: Duration = 60.0  # when the server has no IDLE
    idle_renew: Duration = 25 * 60.0  # re-issue IDLE before the 29-minute limit
    timeout: Duration = 30.0  # every IMAP call


@dataclass
class ImapSettings:
    enabled: bool = False
    # One mailbox in short form (DESIGN's keys); more with [[imap.mailboxes]] tables.
    host: str = "127.0.0.1"
    port: int = 993
    user: str = ""
    password: str = ""
    mailbox: str = "INBOX"
    done_mailbox: str = "Done"
    rejected_mailbox: str = "Rejected"
    mailboxes: list[MailboxSettings] = field(default_factory=list)

    def all_mailboxes(self) -> list[MailboxSettings]:
        """The configured boxes: the [[imap.mailboxes]] tables, else the short form."""
        if self.mailboxes:
            return list(self.mailboxes)
        if self.user:
            return [MailboxSettings(host=self.host, port=self.port, user=self.user,
                                    password=self.password, mailbox=self.mailbox,
                                    done_mailbox=self.done_mailbox,
                                    rejected_mailbox=self.rejected_mailbox)]
        return []


@dataclass
class StoreSettings:
    url: str = "sqlite:///mailgw.db"
    busy_timeout: Duration = 30.0


@dataclass
class RetrySettings:
    busy: Duration = 180.0
    no_answer: Duration = 300.0
    line_dropped: Duration = 60.0
    provider_error: Duration = 30.0  # first delay; doubles on each further provider error
    max_attempts: int = 5
    kill_time: Duration = 3 * 3600.0


@dataclass
class DispatchSettings:
    driver: str = "simulator"
    workers: int = 4
    lease_seconds: Duration = 60.0
    poll_interval: Duration = 1.0
    retry: RetrySettings = field(default_factory=RetrySettings)


@dataclass
class SimulatorSettings:
    time_scale: float = 1.0
    lines: int = 4
    calls_per_second: float = 0.0  # the rate calls are started at; 0 = no limit
    retry: str = ""  # this driver's overrides of [dispatch.retry], e.g. "busy=5m"


@dataclass
class HylafaxSettings:
    """A HylaFAX server (hfaxd) spoken to over its client protocol (docs/drivers.md)."""

    host: str = "127.0.0.1"
    port: int = 4559
    user: str = "mailgw"
    password: str = ""  # empty: hosts.hfaxd lets this user in without one
    password_file: str = ""  # read the password from this file instead (first line)
    lines: int = 1  # calls placed at once: the number of modems HylaFAX may use for us
    poll_interval: Duration = 2.0  # how often a job in progress is looked at
    timeout: Duration = 30.0  # every connection and command
    max_call_time: Duration = 7200.0  # a job not done by then is killed (also LASTTIME)
    modem: str = "any"  # JPARM MODEM: a device, a modem class or "any"
    dialstring: str = "{e164}"  # {e164} (+33…, HylaFAX's dial rules localise it) or {digits}
    vres: int = 196  # the highest VRES sent (391 lets `best` go superfine: docs/drivers.md)
    retry_owner: str = "mailgw"  # mailgw: one dial per attempt | hylafax: HylaFAX retries
    max_dials: int = 3  # only with retry_owner = "hylafax"
    max_tries: int = 3  # only with retry_owner = "hylafax"
    tag_prefix: str = "mailgw"  # the job tag (JOBINFO) that finds our jobs after a crash
    retry: str = ""  # this driver's overrides of [dispatch.retry], e.g. "busy=5m"


@dataclass
class SinchSettings:
    """Sinch Fax API v3 (formerly Phaxio), docs/drivers-cloud.md."""

    api_url: str = "https://fax.api.sinch.com"
    project_id: str = ""
    key_id: str = ""  # an access key of the project (HTTP Basic user)
    key_secret: str = ""
    key_secret_file: str = ""  # read the key secret from this file instead (first line)
    service_id: str = ""  # empty: the project's default fax service
    from_number: str = ""  # empty: the service's default number
    public_url: str = ""  # https://… where Sinch reaches [http] listen; empty = polling only
    callback_user: str = "mailgw"  # Basic credentials put in the callback URL
    callback_password: str = ""
    callback_password_file: str = ""
    lines: int = 4
    poll_interval: Duration = 60.0  # status API look-up while no callback came
    max_call_time: Duration = 3600.0
    timeout: Duration = 30.0  # every API request
    api_retries: int = 4  # 429, 5xx and timeouts are tried again this many times

    def secret(self) -> str:
        return _secret(self.key_secret, self.key_secret_file)

    def callback_secret(self) -> str:
        return _secret(self.callback_password, self.callback_password_file)
    retry: str = ""  # this driver's overrides of [dispatch.retry], e.g. "busy=5m"


@dataclass
class TwilioSettings:
    """Twilio Programmable Voice (REST API 2010-04-01), docs/drivers-cloud.md."""

    api_url: str = "https://api.twilio.com"
    account_sid: str = ""
    auth_token: str = ""
    auth_token_file: str = ""  # read the auth token from this file instead (first line)
    from_number: str = ""  # caller ID: a Twilio number or a verified caller ID
    public_url: str = ""  # https://… where Twilio reaches [http] listen (required)
    lines: int = 4
    calls_per_second: float = 1.0  # the account's CPS (Twilio's default is 1), per process
    machine_detection: str = "DetectMessageEnd"  # DetectMessageEnd | Enable | off
    ring_timeout: int = 30  # seconds Twilio lets the phone ring
    welcome_text: str = "Press star to hear your message."
    media_ttl: Duration = 7200.0  # how long a signed sound URL stays valid
    poll_interval: Duration = 60.0
    max_call_time: Duration = 3600.0
    timeout: Duration = 30.0
    api_retries: int = 4

    def secret(self) -> str:
        return _secret(self.auth_token, self.auth_token_file)
    retry: str = ""  # this driver's overrides of [dispatch.retry], e.g. "busy=5m"


def _secret(value: str, file: str) -> str:
    if file:
        lines = Path(file).read_text(encoding="utf-8").splitlines()
        return lines[0].strip() if lines else ""
    return value


@dataclass
class DriversSettings:
    simulator: SimulatorSettings = field(default_factory=SimulatorSettings)
    hylafax: HylafaxSettings = field(default_factory=HylafaxSettings)
    sinch: SinchSettings = field(default_factory=SinchSettings)
    twilio: TwilioSettings = field(default_factory=TwilioSettings)


@dataclass
class NotifySettings:
    smarthost: HostPort = "127.0.0.1:25"
    from_address: str = "fax@localhost"
    return_path: str = ""  # empty = the null sender <>, as RFC 3834 advises
    default_lang: str = "fr"
    on: str = "all"  # all | failures | summary
    give_up: Duration = 5 * 86400.0
    retry_first: Duration = 5.0  # first outbox back-off; doubles up to 60 s in the first hour
    base_url: str = ""
    poll_interval: Duration = 1.0
    smtp_timeout: Duration = 30.0
    smarthost_tls: str = "none"  # none | starttls | tls
    smarthost_user: str = ""
    smarthost_password: str = ""
    smarthost_password_file: str = ""
    templates_dir: str = ""  # an operator's templates, looked up before the built-in ones
    summary_from: int = 10  # such jobs, and lists and groups, get a summary (0: never)
    progress_at_half: bool = False  # such jobs also get a progress summary at 50 %
    webhook_timeout: Duration = 10.0

    def smarthost_secret(self) -> str:
        if self.smarthost_password_file:
            return Path(self.smarthost_password_file).read_text(encoding="utf-8").strip()
        return self.smarthost_password


@dataclass
class LimitsSettings:
    max_pages: int = 200
    max_recipients: int = 10_000
    max_subject_bytes: Size = 32_000
    max_list_lines: int = 100_000
    sandbox_cpu_seconds: int = 20
    sandbox_memory: Size = 512_000_000
    sandbox_fork_per_document: bool = False  # each document in its own fork (+~3 ms CPU)
    auth_failures: int = 5  # wrong passwords per account, client address or network
    auth_failure_window: Duration = 600.0
    auth_delay: Duration = 1.0  # the first slowed reply to a wrong guess; then doubles
    auth_delay_max: Duration = 30.0
    password_checks: int = 30  # argon2 checks a minute per account, mail without proof
    password_checks_all: int = 120  # the same for all accounts together
    data_per_guessing_client: int = 2  # DATA at once from an address with wrong guesses
    known_client_ttl: Duration = 30 * 86400.0  # how long an address that proved stays known
    max_sound_seconds: Duration = 45.0  # voice: longest sound accepted (MediasFlow's 45 s)
    parse_memory: Size = 16_000_000  # bytes of mail parsed at once (a parse takes ~3x)


@dataclass
class AccountsSettings:
    default_region: str = "FR"
    default_lang: str = "fr"
    default_tz: str = "Europe/Paris"
    default_credits: int | None = None


@dataclass
class ServeSettings:
    roles: list[str] = field(default_factory=lambda: ["smtp", "dispatch", "notify"])
    grace_seconds: Duration = 10.0


@dataclass
class LogSettings:
    level: str = "info"
    format: str = "auto"  # auto | json | console


@dataclass
class HttpSettings:
    listen: str = ""  # host:port of the /metrics and /healthz endpoint; empty = off
    health_outbox_age: Duration = 900.0  # /healthz fails when unsent mail is older than this


@dataclass
class ProofSettings:
    """The sender's proof beyond the password (accounts with `require`; mailgw.intake.proof)."""

    trusted_authserv_ids: list[str] = field(default_factory=list)  # whose A-R is believed
    verify: str = "headers"  # headers | own | both: where a DMARC-aligned pass may come from
    nameservers: list[str] = field(default_factory=list)  # own checks; empty = resolv.conf
    dns_timeout: Duration = 5.0


@dataclass
class Settings:
    gateway: GatewaySettings = field(default_factory=GatewaySettings)
    smtp: SmtpSettings = field(default_factory=SmtpSettings)
    imap: ImapSettings = field(default_factory=ImapSettings)
    store: StoreSettings = field(default_factory=StoreSettings)
    dispatch: DispatchSettings = field(default_factory=DispatchSettings)
    drivers: DriversSettings = field(default_factory=DriversSettings)
    notify: NotifySettings = field(default_factory=NotifySettings)
    limits: LimitsSettings = field(default_factory=LimitsSettings)
    accounts: AccountsSettings = field(default_factory=AccountsSettings)
    serve: ServeSettings = field(default_factory=ServeSettings)
    log: LogSettings = field(default_factory=LogSettings)
    http: HttpSettings = field(default_factory=HttpSettings)
    proof: ProofSettings = field(default_factory=ProofSettings)
    source: str = "embedded defaults"  # where the settings came from (not a TOML key)


ROLES = ("smtp", "imap", "dispatch", "notify")

_SIZE_UNITS = {"": 1, "b": 1, "kb": 1000, "mb": 1000**2, "gb": 1000**3,
               "kib": 1024, "mib": 1024**2, "gib": 1024**3}
_DURATION_UNITS = {"": 1.0, "ms": 0.001, "s": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0,
                   "d": 86400.0}


def parse_size(value: object) -> int:
    if isinstance(value, bool):
        raise ValueError("expected a size such as 25MB")
    if isinstance(value, int) and value >= 0:
        return value
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([A-Za-z]*)\s*", str(value))
    if not m or m.group(2).lower() not in _SIZE_UNITS:
        raise ValueError(f"expected a size such as 25MB or a number of bytes, got {value!r}")
    return int(float(m.group(1)) * _SIZE_UNITS[m.group(2).lower()])


def parse_duration(value: object) -> float:
    if isinstance(value, bool):
        raise ValueError("expected a duration such as 3m")
    if isinstance(value, int | float) and value >= 0:
        return float(value)
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([A-Za-z]*)\s*", str(value))
    if not m or m.group(2).lower() not in _DURATION_UNITS:
        raise ValueError(f"expected a duration such as 30s, 3m or 3h, got {value!r}")
    return float(m.group(1)) * _DURATION_UNITS[m.group(2).lower()]


def parse_hostport(value: object) -> str:
    text = str(value)
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"expected host:port, got {value!r}")
    return text


def split_hostport(value: str) -> tuple[str, int]:
    host, _, port = value.rpartition(":")
    return host.strip("[]"), int(port)


def _coerce(tp: Any, value: Any, key: str) -> Any:
    """Convert a TOML (or env) value to the field's type, or raise ValueError."""
    if typing.get_origin(tp) is Annotated:
        base, tag = typing.get_args(tp)[:2]
        return {"size": parse_size, "duration": parse_duration,
                "hostport": parse_hostport}[tag](value)
    origin = typing.get_origin(tp)
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if value is None or value == "":
            return None
        return _coerce(args[0], value, key)
    if origin is list:
        (item,) = typing.get_args(tp)
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, list):
            raise ValueError(f"expected a list, got {value!r}")
        return [_coerce(item, v, key) for v in value]
    if tp is bool:
        if isinstance(value, bool):
            return value
        if str(value).lower() in ("true", "yes", "on", "1"):
            return True
        if str(value).lower() in ("false", "no", "off", "0"):
            return False
        raise ValueError(f"expected true or false, got {value!r}")
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int | str):
            raise ValueError(f"expected an integer, got {value!r}")
        try:
            return int(value)
        except ValueError:
            raise ValueError(f"expected an integer, got {value!r}") from None
    if tp is float:
        if isinstance(value, bool):
            raise ValueError(f"expected a number, got {value!r}")
        try:
            return float(value)
        except (TypeError, ValueError):
            raise ValueError(f"expected a number, got {value!r}") from None
    if tp is str:
        if isinstance(value, dict | list):
            raise ValueError(f"expected a string, got {value!r}")
        return str(value)
    raise ValueError(f"unsupported type for {key}")


def _build(cls: type, data: Mapping[str, Any], prefix: str, problems: list[str]) -> Any:
    hints = typing.get_type_hints(cls, include_extras=True)
    names = [f.name for f in dataclasses.fields(cls) if f.name != "source"]
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        dotted = f"{prefix}{key}"
        if key not in names:
            close = difflib.get_close_matches(key, names, n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            what = "section" if isinstance(value, dict) else "key"
            problems.append(f"{dotted}: unknown {what}{hint}")
            continue
        tp = hints[key]
        if typing.get_origin(tp) is list and dataclasses.is_dataclass(typing.get_args(tp)[0]):
            item_cls = typing.get_args(tp)[0]
            if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
                problems.append(f"{dotted}: expected [[{dotted}]] tables")
                continue
            kwargs[key] = [_build(item_cls, v, f"{dotted}[{i}].", problems)
                           for i, v in enumerate(value)]
            continue
        if dataclasses.is_dataclass(tp):
            if not isinstance(value, dict):
                problems.append(f"{dotted}: expected a table [{dotted}], got {value!r}")
                continue
            kwargs[key] = _build(tp, value, dotted + ".", problems)  # type: ignore[arg-type]
            continue
        try:
            kwargs[key] = _coerce(tp, value, dotted)
        except (ValueError, TypeError) as exc:
            problems.append(f"{dotted}: {exc}")
    return cls(**kwargs)


def _validate(s: Settings, problems: list[str]) -> None:
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
    if s.dispatch.driver not in {f.name for f in dataclasses.fields(DriversSettings)}:
        problems.append(f"dispatch.driver: unknown driver {s.dispatch.driver!r}")
    problems.extend(_store_url_problems(s.store.url))
    for key in ("gateway.fax_address", "gateway.voice_address"):
        section, name = key.split(".")
        if "@" not in getattr(getattr(s, section), name):
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
    for key in ("smtp.tls_cert", "smtp.tls_key"):
        path = getattr(s.smtp, key.split(".")[1])
        if path and not Path(path).is_file():
            problems.append(f"{key}: file not found: {path}")
    if s.dispatch.workers < 1:
        problems.append("dispatch.workers: must be at least 1")
    for key in ("auth_failures", "data_per_guessing_client"):
        if getattr(s.limits, key) < 0:
            problems.append(f"limits.{key}: must be 0 or more")
    for key in ("password_checks", "password_checks_all"):
        if getattr(s.limits, key) < 1:
            problems.append(f"limits.{key}: must be at least 1 (a check a minute)")
    for key in ("auth_failure_window", "known_client_ttl"):
        if getattr(s.limits, key) <= 0:
            problems.append(f"limits.{key}: must be more than 0")
    if s.limits.max_sound_seconds <= 0:
        problems.append("limits.max_sound_seconds: must be more than 0")
    if s.drivers.simulator.calls_per_second < 0:
        problems.append("drivers.simulator.calls_per_second: must be 0 (no limit) or more")
    if s.dispatch.retry.max_attempts < 1:
        problems.append("dispatch.retry.max_attempts: must be at least 1")
    from mailgw.dispatch.states import parse_retry_overrides

    for name in ("simulator", "hylafax", "sinch", "twilio"):
        try:
            parse_retry_overrides(getattr(s.drivers, name).retry)
        except ValueError as exc:
            problems.append(f"drivers.{name}.retry: {exc}")
    for i, box in enumerate(s.imap.mailboxes):
        if box.tls not in ("implicit", "starttls", "none"):
            problems.append(f"imap.mailboxes[{i}].tls: expected implicit, starttls or none")
        if box.channel not in CHANNELS:
            problems.append(f"imap.mailboxes[{i}].channel: expected fax or voice")
        if not box.user:
            problems.append(f"imap.mailboxes[{i}].user: required")
    if s.http.listen:
        try:
            parse_hostport(s.http.listen)
        except ValueError as exc:
            problems.append(f"http.listen: {exc} (or empty to turn the endpoint off)")
    hf = s.drivers.hylafax
    if hf.retry_owner not in ("mailgw", "hylafax"):
        problems.append(f"drivers.hylafax.retry_owner: expected mailgw or hylafax, "
                        f"got {hf.retry_owner!r}")
    if "{e164}" not in hf.dialstring and "{digits}" not in hf.dialstring:
        problems.append("drivers.hylafax.dialstring: must contain {e164} or {digits}")
    _validate_cloud(s, problems)
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
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

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


def _validate_cloud(s: Settings, problems: list[str]) -> None:
    """[drivers.sinch] and [drivers.twilio]: checked fully only when chosen."""
    sn, tw = s.drivers.sinch, s.drivers.twilio
    for key, path in (("drivers.sinch.key_secret_file", sn.key_secret_file),
                      ("drivers.sinch.callback_password_file", sn.callback_password_file),
                      ("drivers.twilio.auth_token_file", tw.auth_token_file)):
        if path and not Path(path).is_file():
            problems.append(f"{key}: file not found")
    for key, url in (("drivers.sinch.public_url", sn.public_url),
                     ("drivers.twilio.public_url", tw.public_url),
                     ("drivers.sinch.api_url", sn.api_url),
                     ("drivers.twilio.api_url", tw.api_url)):
        if url and not re.match(r"^https?://[^/@\s]+(/\S*)?$", url):
            problems.append(f"{key}: expected https://host[:port][/path]")
    if tw.machine_detection not in ("DetectMessageEnd", "Enable", "off"):
        problems.append("drivers.twilio.machine_detection: expected DetectMessageEnd, Enable "
                        "or off")
    if tw.calls_per_second < 0:
        problems.append("drivers.twilio.calls_per_second: must be 0 (no limit) or more")
    if s.dispatch.driver == "sinch":
        for name in ("project_id", "key_id"):
            if not getattr(sn, name):
                problems.append(f"drivers.sinch.{name}: required by dispatch.driver = sinch")
        if not (sn.key_secret or sn.key_secret_file):
            problems.append("drivers.sinch.key_secret: required (or key_secret_file)")
        if sn.public_url and not (sn.callback_password or sn.callback_password_file):
            problems.append("drivers.sinch.callback_password: required with public_url "
                            "(callbacks are authenticated with it)")
    if s.dispatch.driver == "twilio":
        for name in ("account_sid", "from_number", "public_url"):
            if not getattr(tw, name):
                problems.append(f"drivers.twilio.{name}: required by dispatch.driver = twilio")
        if not (tw.auth_token or tw.auth_token_file):
            problems.append("drivers.twilio.auth_token: required (or auth_token_file)")
        if tw.public_url and not s.http.listen:
            problems.append("http.listen: required by dispatch.driver = twilio (callbacks and "
                            "the sound are served there)")


def env_overrides(environ: Mapping[str, str]) -> dict[str, Any]:
    """`MAILGW_SMTP__LISTEN=…` → {"smtp": {"listen": …}}; values read as TOML when they parse."""
    tree: dict[str, Any] = {}
    for name, raw in environ.items():
        if not name.startswith(ENV_PREFIX) or "__" not in name[len(ENV_PREFIX):]:
            continue
        path = [p.lower() for p in name[len(ENV_PREFIX):].split("__")]
        try:
            value: Any = tomllib.loads(f"v = {raw}")["v"]
        except tomllib.TOMLDecodeError:
            value = raw
        node = tree
        for part in path[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                break
        else:
            node[path[-1]] = value
    return tree


def merge(base: dict[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    """Nested tables merged key by key; `extra` wins."""
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def find_config(explicit: str | None, environ: Mapping[str, str]) -> Path | None:
    if explicit:
        return Path(explicit)
    if environ.get("MAILGW_CONFIG"):
        return Path(environ["MAILGW_CONFIG"])
    if SYSTEM_CONFIG.is_file():
        return SYSTEM_CONFIG
    return None


def load(path: str | Path | None = None, *, environ: Mapping[str, str] | None = None,
         overrides: Mapping[str, Any] | None = None, search: bool = True) -> Settings:
    """Load settings; raise ConfigError listing every wrong key.

    `overrides` (a nested dict) wins over the file and the environment: `demo` and tests use it.
    """
    environ = os.environ if environ is None else environ
    file = find_config(str(path) if path else None, environ) if search else (
        Path(path) if path else None)
    data: dict[str, Any] = {}
    if file is not None:
        try:
            data = tomllib.loads(file.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError([f"{file}: file not found"]) from None
        except OSError as exc:
            raise ConfigError([f"{file}: cannot read ({exc.strerror})"]) from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError([f"{file}: not valid TOML ({exc})"]) from None
        except UnicodeDecodeError as exc:
            raise ConfigError([f"{file}: not UTF-8 text (byte {exc.start})"]) from None
    data = merge(data, env_overrides(environ))
    if overrides:
        data = merge(data, overrides)
    problems: list[str] = []
    settings: Settings = _build(Settings, data, "", problems)
    if not problems:
        _validate(settings, problems)
    if problems:
        raise ConfigError(problems)
    settings.source = str(file) if file else "embedded defaults"
    return settings
