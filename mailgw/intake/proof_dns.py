"""The sender's proof, checked: trusted Authentication-Results, and DKIM (dkimpy) and SPF
(pyspf) verified by mailgw itself when `[proof] verify` asks, through one resolver.

The resolver is dnspython's on the configured name servers (or the system's); tests give
their own (`Resolver`), so a key made in a test is served to dkimpy and an SPF record to
pyspf without any network. Every failure of DNS or of a library is "no proof", never an
exception: the mail is then judged on its password alone, which is what it claims.
"""

from __future__ import annotations

import contextvars
import time
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any, Protocol

import dkim
import dns.exception
import dns.nameserver
import dns.resolver
import spf
import structlog

from mailgw.intake import proof
from mailgw.intake.proof import AuthResult, Policy

log = structlog.get_logger("mailgw.intake.proof")

MAX_SIGNATURES = 4  # DKIM signatures verified per mail (each may cost a DNS query)
QTYPES = ("A", "AAAA", "MX", "PTR", "TXT")


class DnsError(Exception):
    """The answer could not be had (time-out, no server): a temporary failure."""


class Resolver(Protocol):
    """DNS as the checks need it: the records of one type at one name, [] when there are
    none. TXT records come as bytes (their strings joined), A/AAAA as address text, MX as
    (preference, host), PTR as a host. Raises DnsError when DNS cannot answer."""

    def lookup(self, name: str, qtype: str, timeout: float | None = None) -> list[Any]: ...


class DnsResolver:
    """dnspython's stub resolver: the configured servers (`host` or `host:port`), else
    /etc/resolv.conf, with one time limit per query."""

    def __init__(self, nameservers: Collection[str] = (), timeout: float = 5.0):
        self.nameservers = list(nameservers)
        self.timeout = timeout
        self._resolver: dns.resolver.Resolver | None = None

    def _get(self) -> dns.resolver.Resolver:
        if self._resolver is None:
            if self.nameservers:
                r = dns.resolver.Resolver(configure=False)
                r.nameservers = [_nameserver(n) for n in self.nameservers]
            else:
                try:
                    r = dns.resolver.Resolver()
                except dns.resolver.NoResolverConfiguration as exc:
                    raise DnsError(f"no name server configured ({exc})") from None
            r.lifetime = self.timeout
            self._resolver = r
        return self._resolver

    def lookup(self, name: str, qtype: str, timeout: float | None = None) -> list[Any]:
        try:
            answer = self._get().resolve(name, qtype, raise_on_no_answer=False, search=False,
                                         lifetime=timeout or self.timeout)
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
            return []
        except (dns.exception.Timeout, dns.resolver.NoNameservers) as exc:
            raise DnsError(f"{qtype} {name}: {type(exc).__name__}") from None
        except dns.exception.DNSException as exc:  # a malformed name, a bad answer
            raise DnsError(f"{qtype} {name}: {type(exc).__name__}") from None
        out: list[Any] = []
        for rdata in answer.rrset or ():
            if qtype == "TXT":
                out.append(b"".join(rdata.strings))
            elif qtype in ("A", "AAAA"):
                out.append(rdata.address)
            elif qtype == "MX":
                out.append((rdata.preference, rdata.exchange.to_text(omit_final_dot=True)))
            elif qtype == "PTR":
                out.append(rdata.target.to_text(omit_final_dot=True))
        return out


class Deadline:
    """One mail's DNS within one time budget, whatever the libraries ask: a black-holed
    server then costs each mail `total` seconds at most, not one time-out per query (a
    DKIM key, up to ten SPF lookups, two DMARC records) in every intake thread."""

    def __init__(self, inner: Resolver, total: float, clock: Any = time.monotonic):
        self.inner = inner
        self.clock = clock
        self.until = clock() + total

    def lookup(self, name: str, qtype: str, timeout: float | None = None) -> list[Any]:
        left = self.until - self.clock()
        if left <= 0:
            raise DnsError(f"{qtype} {name}: the mail's DNS time is spent")
        return self.inner.lookup(name, qtype, min(left, timeout or left))


def _nameserver(text: str) -> dns.nameserver.Nameserver:
    host, port = text.strip(), 53
    if host.startswith("["):  # [::1]:5353
        host, _, rest = host[1:].partition("]")
        port = int(rest[1:]) if rest.startswith(":") else 53
    elif host.count(":") == 1:
        host, _, p = host.partition(":")
        port = int(p)
    return dns.nameserver.Do53Nameserver(host, port)


# -- DKIM (dkimpy) --------------------------------------------------------------------------

def dkim_results(raw: bytes, resolver: Resolver, timeout: float = 5.0) -> list[AuthResult]:
    """Each DKIM signature verified (the first MAX_SIGNATURES): `dkim=pass` with its d=, or
    fail. A signature with l= is not taken: whatever follows its length is unsigned."""

    def txt(name: bytes, timeout: float = timeout) -> bytes | None:
        records = resolver.lookup(name.decode("ascii", "replace").rstrip("."), "TXT", timeout)
        return records[0] if records else None

    count = min(proof.read_header(raw).dkim_signatures, MAX_SIGNATURES)
    if not count:
        return []
    try:
        d = dkim.DKIM(raw, logger=_QUIET, timeout=int(max(timeout, 1)))
    except Exception as exc:  # noqa: BLE001 - a mail dkimpy cannot read proves nothing
        log.info("dkim_unreadable", reason=type(exc).__name__)
        return [AuthResult("dkim", "fail")] * count
    return [_verify(d, idx, txt) for idx in range(count)]


def _verify(d: dkim.DKIM, idx: int, dnsfunc: Any) -> AuthResult:
    d.signature_fields = {}
    try:
        ok = bool(d.verify(idx=idx, dnsfunc=dnsfunc))
    except (dkim.DKIMException, DnsError) as exc:
        log.info("dkim_unverified", reason=type(exc).__name__)
        ok = False
    except Exception as exc:  # noqa: BLE001 - a library's bug is no proof, not a crash
        log.warning("dkim_error", error_type=type(exc).__name__)
        ok = False
    fields = getattr(d, "signature_fields", None) or {}
    if b"l" in fields:
        ok = False
    return AuthResult("dkim", "pass" if ok else "fail",
                      {"header.d": _text(fields.get(b"d", b""))})


def _text(value: bytes) -> str:
    return value.decode("ascii", "replace").strip()


class _Quiet:
    """dkimpy logs every failed signature at error level: keep that to our own log."""

    def debug(self, *args: Any, **kwargs: Any) -> None: ...
    def info(self, *args: Any, **kwargs: Any) -> None: ...
    def warning(self, *args: Any, **kwargs: Any) -> None: ...
    def error(self, *args: Any, **kwargs: Any) -> None: ...


_QUIET = _Quiet()


# -- SPF (pyspf) ----------------------------------------------------------------------------

_spf_resolver: contextvars.ContextVar[Resolver | None] = contextvars.ContextVar(
    "mailgw_spf_resolver", default=None)
_spf_lookup_default = spf.DNSLookup


def _spf_lookup(name: str, qtype: str, strict: Any = True, timeout: Any = 30) -> list[Any]:
    """pyspf's DNS hook (a module global it calls for every query): our resolver while
    `spf_result` runs in this thread or task, pyspf's own otherwise."""
    resolver = _spf_resolver.get()
    if resolver is None:
        return list(_spf_lookup_default(name, qtype, strict, timeout))
    if qtype not in QTYPES and qtype != "SPF":
        return []
    try:
        records = resolver.lookup(name, "TXT" if qtype == "SPF" else qtype)
    except DnsError as exc:
        raise spf.TempError(f"DNS {exc}") from None
    if qtype in ("TXT", "SPF"):
        return [((name, qtype), (r,)) for r in records]
    return [((name, qtype), r) for r in records]


spf.DNSLookup = _spf_lookup


def spf_result(ip: str, mail_from: str, helo: str, resolver: Resolver,
               timeout: float = 5.0) -> AuthResult:
    """SPF (RFC 7208) for the MAIL FROM identity: pass, fail, softfail, neutral, none,
    temperror or permerror; with smtp.mailfrom for alignment."""
    token = _spf_resolver.set(resolver)
    try:
        q = spf.query(i=ip, s=mail_from, h=helo or "unknown", querytime=max(timeout, 1.0))
        result, _code, _why = q.check()
    except Exception as exc:  # noqa: BLE001 - pyspf on a strange address or record
        log.warning("spf_error", error_type=type(exc).__name__)
        result = "temperror"
    finally:
        _spf_resolver.reset(token)
    return AuthResult("spf", str(result), {"smtp.mailfrom": mail_from})


# -- DMARC policy (its alignment modes) -------------------------------------------------

def dmarc_policy(from_domain: str, resolver: Resolver) -> Policy:
    """The modes of `_dmarc.<From domain>`, else of its Organizational Domain; relaxed when
    neither publishes a record, strict when DNS cannot say (the safe side)."""
    names = [from_domain]
    org = proof.org_domain(from_domain)
    if org != from_domain:
        names.append(org)
    try:
        for name in names:
            records = [proof.parse_dmarc_record(t.decode("utf-8", "replace"))
                       for t in resolver.lookup(f"_dmarc.{name}", "TXT")]
            found = [p for p in records if p is not None]
            if len(found) == 1:
                return found[0]
    except DnsError:
        return proof.STRICT
    return Policy()


# -- the whole proof ------------------------------------------------------------------------

VERIFY = ("headers", "own", "both")


@dataclass
class Prover:
    """`[proof]` applied to one mail: trusted headers, own checks, or both."""

    trusted: tuple[str, ...] = ()
    verify: str = "headers"
    resolver: Resolver | None = None
    timeout: float = 5.0

    @classmethod
    def of(cls, settings: Any, resolver: Resolver | None = None) -> Prover:
        own = settings.verify in ("own", "both")
        if own and resolver is None:
            resolver = DnsResolver(settings.nameservers, settings.dns_timeout)
        return cls(tuple(settings.trusted_authserv_ids), settings.verify, resolver,
                   settings.dns_timeout)

    def dmarc(self, raw: bytes, from_addr: str | None, *, mail_from: str | None = None,
              client_ip: str | None = None) -> bool:
        """Whether the mail carries a DMARC-aligned pass for its From domain, which must be
        the domain of `from_addr` (the address its account was found by)."""
        if self.verify == "headers" and not self.trusted:
            return False  # nothing configured: no header to read, no DNS
        try:
            header = proof.read_header(raw)
        except Exception:  # noqa: BLE001 - a header the parser chokes on proves nothing
            return False
        domain = header.from_domain
        if not domain or not from_addr or proof.domain_of(from_addr) != domain:
            return False
        if self.verify in ("headers", "both") and self.trusted:
            results = proof.trusted_results(header.authentication_results, self.trusted)
            if proof.dmarc_aligned(domain, results):
                return True
        if self.verify in ("own", "both") and self.resolver is not None:
            return self._own(raw, domain, mail_from, client_ip)
        return False

    def _own(self, raw: bytes, domain: str, mail_from: str | None,
             client_ip: str | None) -> bool:
        assert self.resolver is not None
        resolver = Deadline(self.resolver, self.timeout)
        results = [r for r in dkim_results(raw, resolver, self.timeout) if r.result == "pass"]
        if mail_from and client_ip and "@" in mail_from:
            results.append(spf_result(client_ip, mail_from, proof.domain_of(mail_from),
                                      resolver, self.timeout))
        if not any(r.result == "pass" for r in results):
            return False
        return proof.dmarc_aligned(domain, results, dmarc_policy(domain, resolver))
