"""The settings' schema: one dataclass per TOML table, with the embedded defaults.

The `[drivers.<name>]` tables are not here: each driver's file declares its own settings
class, and DriversSettings holds one object of it per registered driver.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mailgw.dispatch.drivers import registry
from mailgw.ops.config_types import Duration, HostPort, Size


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


class DriversSettings:
    """The `[drivers.<name>]` tables: one settings object per registered driver, of the class
    its driver file declares (a table not given has that class's defaults).
    `settings.drivers.hylafax` and `settings.drivers["hylafax"]` are the same object."""

    def __init__(self, tables: Mapping[str, Any] | None = None):
        self._tables: dict[str, Any] = dict(tables or {})

    def __getitem__(self, name: str) -> Any:
        if name not in self._tables:
            self._tables[name] = registry.entry(name).settings()  # KeyError: no such driver
        return self._tables[name]

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        try:
            return self[name]
        except KeyError:
            raise AttributeError(f"no driver named {name!r}") from None

    def __contains__(self, name: object) -> bool:
        return name in registry.names()

    def __iter__(self) -> Iterator[str]:
        return iter(registry.names())

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, DriversSettings):
            return NotImplemented
        return all(self[n] == other[n] for n in registry.names())

    def __repr__(self) -> str:
        return f"DriversSettings({ {n: self[n] for n in registry.names()}!r})"


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
    # received faxes to a number no account owns: "postmaster" = postmaster@<gateway domain>,
    # an address, or "" = no mail (logged, the fax stays on the fax server)
    received_unmapped_to: str = "postmaster"

    def smarthost_secret(self) -> str:
        if self.smarthost_password_file:
            return Path(self.smarthost_password_file).read_text(encoding="utf-8").strip()
        return self.smarthost_password


@dataclass
class LimitsSettings:
    max_pages: int = 200
    max_recipients: int = 100_000
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
    listen: str = ""  # host:port of the HTTP endpoint (role http); empty = off
    health_outbox_age: Duration = 900.0  # /healthz fails when unsent mail is older than this
    trusted_proxies: list[str] = field(default_factory=list)  # X-Forwarded-For from these only
    max_connections: int = 32  # connections at once; beyond, 503 + Retry-After
    max_per_client: int = 8  # of them from one client address (IPv6: its /64)
    body_timeout: Duration = 30.0  # a request's whole body must arrive within this
    token_rate: float = 10.0  # API requests a second per token; 0 = no limit
    token_burst: int = 40  # API requests a token may make at once after a quiet spell


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
