"""Mail relayed by a trusted MTA (`[smtp] trusted_relays`): whose it is, and what to answer.

Behind Postfix every mail comes from the relay's own address, so limits per client address
would put every sender in one bucket. The relay writes the address it received the mail
from in the Received header it adds on top; mailgw reads it there, and only there: a
Received header is believed only when the host that sent it to us (or that the header
below it came through) is listed as trusted. Anyone can write Received headers into a mail.

A refusal (5xx) given to a relay comes back to the envelope sender as the relay's bounce,
which quotes the mail's headers, the Subject and its password included; and for a forged
sender it is backscatter. So a relay is told 250 for every mail mailgw has decided: a
proven sender learns the refusal from mailgw's own ack, and mail from nobody proven is
dropped with a log line (docs/operator.md, "Behind your MTA").
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Iterable

import structlog

log = structlog.get_logger("mailgw.smtp")

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

MAX_HEADER_BYTES = 256 * 1024  # a header section is read this far, never further
MAX_HOPS = 10  # trusted relays walked through, at most

_HEADER_END = re.compile(rb"\r?\n\r?\n")
_RECEIVED = re.compile(rb"^received[ \t]*:(.*(?:\r?\n[ \t].*)*)", re.IGNORECASE | re.MULTILINE)
_LITERAL = re.compile(r"(?<!helo=)\[(?:ipv6:)?([0-9a-f.:]+)\]", re.IGNORECASE)
_BY = re.compile(r"\sby\s", re.IGNORECASE)
_TOKEN = re.compile(r"[()]|[^()]+")


class TrustedRelays:
    """The MTAs in front of mailgw, by address or network."""

    def __init__(self, networks: Iterable[Network] = ()):
        self.networks = tuple(networks)

    @classmethod
    def of(cls, values: Iterable[str]) -> TrustedRelays:
        """From `[smtp] trusted_relays` (checked by config: each is an address or network)."""
        return cls(ipaddress.ip_network(v.strip(), strict=False) for v in values)

    def __bool__(self) -> bool:
        return bool(self.networks)

    def __contains__(self, ip: object) -> bool:
        address = _address(ip) if isinstance(ip, str) else None
        return address is not None and any(address in net for net in self.networks
                                           if net.version == address.version)

    def client_ip(self, peer: str | None, raw: bytes) -> str | None:
        """The address that handed the mail to the first trusted hop: the SMTP peer's own
        when it is not trusted; else the address in the Received header it added, walking
        down while that address is itself a trusted relay (a content filter re-injecting,
        a second MTA). A hop that names no client (local submission) ends the walk at the
        last address known."""
        if peer not in self:
            return peer
        client = peer
        for value in received_headers(raw)[:MAX_HOPS]:
            found = received_from_ip(value)
            if found is None:
                return client
            client = found
            if found not in self:
                return found
        return client


def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        address = ipaddress.ip_address(text.strip().split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped  # ::ffff:192.0.2.1 is 192.0.2.1
    return address


def received_headers(raw: bytes) -> list[str]:
    """The mail's Received headers, topmost (the last hop's) first, unfolded."""
    head = raw[:MAX_HEADER_BYTES]
    end = _HEADER_END.search(head)
    if end is not None:
        head = head[:end.start()]
    return [" ".join(m.group(1).decode("utf-8", "replace").split())
            for m in _RECEIVED.finditer(head)]


def received_from_ip(value: str) -> str | None:
    """The client address in a Received header's `from` clause, or None.

    Postfix writes `from HELO (NAME [ADDR]) by HOST (Postfix) with … for <…>; DATE`
    (`[IPv6:ADDR]`, maybe `:PORT` after it), as does Sendmail. The HELO is the client's
    choice and may hold anything, parentheses and brackets included, so the clause ends at
    the last ` by ` and the last address in parentheses wins: the one the relay saw. Exim
    writes `from NAME ([ADDR] helo=…)` and `from [ADDR] (helo=…)`: an address after
    `helo=` is the client's word and is skipped.
    """
    text = value.strip()
    if not text[:5].lower() == "from ":
        return None  # `by host (Postfix, from userid 0)`: submitted locally
    clause = text[5:].rpartition(";")[0] or text[5:]  # the date comes after the last ';'
    ends = list(_BY.finditer(clause))
    if ends:
        clause = clause[:ends[-1].start()]
    comments, outside = _split_comments(clause)
    for part in (*reversed(comments), outside):
        for m in reversed(list(_LITERAL.finditer(part))):
            address = _address(m.group(1))
            if address is not None:
                return str(address)
    return None


def _split_comments(clause: str) -> tuple[list[str], str]:
    """The parenthesised parts (outermost, in order) and the text outside them."""
    comments: list[str] = []
    outside: list[str] = []
    depth = 0
    for m in _TOKEN.finditer(clause):
        token = m.group(0)
        if token == "(":
            if depth == 0:
                comments.append("")
            depth += 1
        elif token == ")" and depth:
            depth -= 1
        elif depth:
            comments[-1] += token
        else:
            outside.append(token)
    return comments, "".join(outside)


def told_to_relay(reply: str, code: int | None, proven: bool, client_ip: str | None) -> str:
    """What a trusted relay is told: a refusal becomes 250, since the relay's bounce would
    quote the headers (the password) to the sender, forged or not. The code stays in the
    text for the relay's log; the sentence says who was told."""
    if not reply.startswith("5"):
        return reply
    log.info("relayed_refusal", code=code, proven=proven, client=client_ip,
             answered_by="ack" if proven else "nobody (dropped)")
    tag = f" [{code}]" if code is not None else ""
    if proven:
        return f"250 2.0.0{tag} Refused; the sender is told by mailgw's own reply mail"
    return f"250 2.0.0{tag} Not taken: sender not proven, dropped without a reply"


def greeting_name(hostname: str, domain: str) -> str:
    """The name in the greeting and the EHLO reply: `[smtp] hostname`, else the gateway
    domain, else this host's FQDN. Never `localhost` by default: a Postfix whose myhostname
    is the name it is greeted with refuses to deliver ("mail for … loops back to myself"),
    and `localhost` is many a machine's FQDN."""
    if hostname:
        return hostname
    if domain and domain.lower() != "localhost":
        return domain
    return socket.getfqdn()
