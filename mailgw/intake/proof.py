"""Proof of the sender beyond the password: a DMARC-aligned DKIM or SPF pass (RFC 7489).

A From address is free to forge, so an account may require more than the password
(`require`): "password+dmarc" wants the mail's From domain to be vouched for by a DKIM
signature or an SPF pass of the same (organisational) domain; "password+auth" wants SMTP
AUTH. Pure: this module reads `Authentication-Results` (RFC 8601) and decides alignment;
mailgw.intake.proof_dns runs the DKIM and SPF checks itself when configured.

`Authentication-Results` is believed only from the `authserv-id`s the operator trusts (the
MTA in front, which must strip copies of its own id from incoming mail, RFC 8601 §5):
anyone else's, forged by the sender or added by a stranger on the way, is ignored.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from email.parser import BytesHeaderParser
from email.policy import compat32
from email.utils import getaddresses
from functools import lru_cache
from typing import Any

from publicsuffixlist import PublicSuffixList

# What each `require` setting asks beyond the password, as MailFacts.proof names it.
REQUIRES: dict[str, frozenset[str]] = {
    "password": frozenset(),
    "password+dmarc": frozenset({"dmarc"}),
    "password+auth": frozenset({"auth"}),
}


def missing(require: str, proof: Collection[str]) -> frozenset[str]:
    """The proofs `require` asks for that the mail lacks (an unknown setting asks for
    something no mail has: fail closed)."""
    needed = REQUIRES.get(require, frozenset({require}))
    return frozenset(p for p in needed if p not in proof)


# -- Authentication-Results (RFC 8601) ----------------------------------------------------

@dataclass(frozen=True)
class AuthResult:
    """One `method=result` of an Authentication-Results field, with its properties
    (`header.d`, `smtp.mailfrom`, … lower-cased keys)."""

    method: str  # dkim | spf | dmarc | … (lower case)
    result: str  # pass | fail | none | … (lower case)
    props: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class AuthResults:
    authserv_id: str  # lower case
    results: tuple[AuthResult, ...]


_KEYWORD = r"[A-Za-z0-9_-]+"
_METHOD = re.compile(rf"\s*({_KEYWORD})\s*(?:/\s*\d+\s*)?=\s*({_KEYWORD})")
_PROP = re.compile(rf"\s*({_KEYWORD})\s*(?:\.\s*({_KEYWORD}))?\s*=\s*"
                   r"(\"(?:[^\"\\]|\\.)*\"|[^\s;\"]+)")
_ID = re.compile(r"\s*(\"(?:[^\"\\]|\\.)*\"|[^\s;\"]+)(?:\s+(\d+))?\s*$")


def _without_comments(text: str) -> str | None:
    """The field with its (nested) comments blanked out; None when they do not close."""
    out: list[str] = []
    depth, quoted, escaped = 0, False, False
    for ch in text:
        if escaped:
            escaped = False
            if not depth:
                out.append(ch)
            continue
        if ch == "\\" and (quoted or depth):
            escaped = True
            if not depth:
                out.append(ch)
            continue
        if quoted:
            quoted = ch != '"'
            out.append(ch)
        elif ch == "(":
            depth += 1
        elif ch == ")" and depth:
            depth -= 1
            if not depth:
                out.append(" ")
        elif not depth:
            quoted = ch == '"'
            out.append(ch)
    return None if depth or quoted else "".join(out)


def _split(text: str) -> list[str]:
    """Split on `;` outside quoted strings (comments are already gone)."""
    parts, start, quoted, escaped = [], 0, False, False
    for i, ch in enumerate(text):
        if escaped:
            escaped = False
        elif ch == "\\" and quoted:
            escaped = True
        elif ch == '"':
            quoted = not quoted
        elif ch == ";" and not quoted:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return parts


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] == '"':
        return re.sub(r"\\(.)", r"\1", value[1:-1])
    return value


def parse_authentication_results(value: str) -> AuthResults | None:
    """One field's value, or None when it cannot be read (or is of a version other
    than 1, RFC 8601 §2.2): such a field is ignored, never half-believed."""
    text = _without_comments(value.replace("\r", " ").replace("\n", " "))
    if text is None:
        return None
    head, *rest = _split(text)
    m = _ID.match(head)
    if m is None or (m.group(2) is not None and m.group(2) != "1"):
        return None
    if not " ".join(value.split()).startswith(m.group(1)):
        return None  # a comment before the id: never written by an MTA, and it slips past
        # the filters that strip copies of that id (docs/operator.md)
    results: list[AuthResult] = []
    for part in rest:
        if not part.strip() or part.strip().lower() == "none":
            continue
        mm = _METHOD.match(part)
        if mm is None:
            return None
        props: dict[str, str] = {}
        pos = mm.end()
        while pos < len(part) and part[pos:].strip():
            pm = _PROP.match(part, pos)
            if pm is None:
                return None
            key = pm.group(1).lower() + ("." + pm.group(2).lower() if pm.group(2) else "")
            props.setdefault(key, _unquote(pm.group(3)))
            pos = pm.end()
        results.append(AuthResult(mm.group(1).lower(), mm.group(2).lower(), props))
    return AuthResults(_unquote(m.group(1)).lower().rstrip("."), tuple(results))


def trusted_results(fields: Iterable[str], trusted: Collection[str]) -> list[AuthResult]:
    """The results of the fields whose authserv-id is trusted; every other field is
    ignored (a sender can write any Authentication-Results it likes)."""
    ids = {t.strip().lower().rstrip(".") for t in trusted if t.strip()}
    out: list[AuthResult] = []
    for value in fields:
        parsed = parse_authentication_results(value)
        if parsed is not None and parsed.authserv_id in ids:
            out.extend(parsed.results)
    return out


# -- DMARC identifier alignment (RFC 7489 §3.1) ------------------------------------------

@lru_cache(maxsize=1)
def _psl() -> Any:
    """The list publicsuffixlist ships (nothing fetched), read once on first use."""
    return PublicSuffixList()


def normalize_domain(domain: str) -> str:
    """Lower case, no trailing dot, A-labels (so `bücher.example` meets `xn--…`)."""
    domain = domain.strip().lower().rstrip(".")
    try:
        return domain.encode("idna").decode("ascii")
    except UnicodeError:
        return domain


@lru_cache(maxsize=4096)
def org_domain(domain: str) -> str:
    """The Organizational Domain (RFC 7489 §3.2): the public suffix and one label more,
    from the Public Suffix List (ICANN and private parts); a public suffix is its own."""
    domain = normalize_domain(domain)
    return _psl().privatesuffix(domain) or domain


def aligned(from_domain: str, other: str, mode: str = "r") -> bool:
    """`other` (DKIM d=, SPF MAIL FROM domain) aligned with the From domain: the same name
    in strict mode ("s"), the same Organizational Domain in relaxed mode ("r")."""
    a, b = normalize_domain(from_domain), normalize_domain(other)
    if not a or not b:
        return False
    if a == b:
        return True
    return mode != "s" and org_domain(a) == org_domain(b)


def domain_of(address: str) -> str:
    """The domain of `local@domain` (or of a bare domain), '' when there is none."""
    return normalize_domain(address.rpartition("@")[2]) if address else ""


@dataclass(frozen=True)
class Policy:
    """The alignment modes the From domain's DMARC record asks (relaxed by default)."""

    adkim: str = "r"
    aspf: str = "r"


STRICT = Policy("s", "s")


def parse_dmarc_record(txt: str) -> Policy | None:
    """A `_dmarc` TXT record's alignment modes, None when it is not a DMARC record."""
    if not re.match(r"\s*v\s*=\s*DMARC1\s*(;|$)", txt, re.IGNORECASE):
        return None
    tags = {}
    for part in txt.split(";")[1:]:
        key, eq, val = part.partition("=")
        if eq:
            tags[key.strip().lower()] = val.strip().lower()
    return Policy("s" if tags.get("adkim") == "s" else "r",
                  "s" if tags.get("aspf") == "s" else "r")


def dmarc_aligned(from_domain: str, results: Iterable[AuthResult],
                  policy: Policy = Policy()) -> bool:
    """An aligned pass (RFC 7489 §4.2): a `dmarc=pass` for this From domain, a `dkim=pass`
    whose signing domain is aligned, or an `spf=pass` whose MAIL FROM domain is."""
    if not from_domain:
        return False
    for r in results:
        if r.result != "pass":
            continue
        if r.method == "dmarc":
            said = r.props.get("header.from")
            if said is None or normalize_domain(said) == normalize_domain(from_domain):
                return True
        elif r.method == "dkim":
            d = r.props.get("header.d") or domain_of(r.props.get("header.i", ""))
            if d and aligned(from_domain, d, policy.adkim):
                return True
        elif r.method == "spf":
            mfrom = domain_of(r.props.get("smtp.mailfrom", ""))
            if mfrom and aligned(from_domain, mfrom, policy.aspf):
                return True
    return False


# -- the header of a mail --------------------------------------------------------------

@dataclass(frozen=True)
class Header:
    """What the proof reads from a mail's header."""

    from_domain: str  # '' unless exactly one From field with exactly one address
    authentication_results: tuple[str, ...]
    dkim_signatures: int


def read_header(raw: bytes) -> Header:
    """The From domain (RFC 7489 §6.6.1: several From fields or addresses prove nothing),
    the Authentication-Results fields and how many DKIM signatures there are."""
    msg = BytesHeaderParser(policy=compat32).parsebytes(_head(raw), headersonly=True)
    froms = msg.get_all("From") or []
    addresses = getaddresses([str(v) for v in froms])
    from_domain = ""
    if len(froms) == 1 and len(addresses) == 1 and "@" in addresses[0][1]:
        from_domain = domain_of(addresses[0][1])
    return Header(from_domain,
                  tuple(str(v) for v in msg.get_all("Authentication-Results") or []),
                  len(msg.get_all("DKIM-Signature") or []))


def _head(raw: bytes) -> bytes:
    """The header block alone: a 25 MB mail is not decoded for a few header fields."""
    ends = [i for i in (raw.find(b"\r\n\r\n"), raw.find(b"\n\n")) if i >= 0]
    return raw[:min(ends) + 2] if ends else raw
