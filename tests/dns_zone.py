"""DNS for the proof tests: DKIM keys and SPF/DMARC records made in the test, served by a
resolver the test gives mailgw (`ZoneResolver`) or by a small real DNS server on
127.0.0.1 (`DnsServer`) that mailgw's own resolver (dnspython) asks over UDP."""

from __future__ import annotations

import base64
import socket
import threading
from typing import Any

import dkim
import dns.flags
import dns.message
import dns.rcode
import dns.rdata
import dns.rdatatype
import dns.rrset
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from mailgw.intake.proof_dns import DnsError

Zone = dict[tuple[str, str], list[str]]  # (name, type) -> values in zone-file text


class Key:
    """An RSA key pair made in the test; `record` is its DKIM TXT value."""

    def __init__(self, bits: int = 2048):
        private = rsa.generate_private_key(public_exponent=65537, key_size=bits)
        self.pem = private.private_bytes(serialization.Encoding.PEM,
                                         serialization.PrivateFormat.TraditionalOpenSSL,
                                         serialization.NoEncryption())
        der = private.public_key().public_bytes(serialization.Encoding.DER,
                                                serialization.PublicFormat.SubjectPublicKeyInfo)
        self.record = "v=DKIM1; k=rsa; p=" + base64.b64encode(der).decode()

    def sign(self, raw: bytes, domain: str, selector: str = "sel", **kw: Any) -> bytes:
        """The mail with a DKIM-Signature of `domain` on top."""
        raw = raw.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
        signature = dkim.sign(raw, selector.encode(), domain.encode(), self.pem,
                              include_headers=[b"from", b"to", b"subject", b"message-id"], **kw)
        return bytes(signature) + raw


def txt(value: str) -> str:
    """A TXT value in zone-file text: quoted strings of at most 255 bytes."""
    return " ".join('"' + value[i:i + 255] + '"' for i in range(0, len(value), 255))


class ZoneResolver:
    """mailgw.intake.proof_dns.Resolver answering from a dict, as the real one would."""

    def __init__(self, zone: Zone, *, broken: bool = False):
        self.zone = {(n.lower().rstrip("."), t.upper()): v for (n, t), v in zone.items()}
        self.broken = broken
        self.asked: list[tuple[str, str]] = []
        self.timeouts: list[float | None] = []

    def lookup(self, name: str, qtype: str, timeout: float | None = None) -> list[Any]:
        self.asked.append((name, qtype))
        self.timeouts.append(timeout)
        if self.broken:
            raise DnsError(f"{qtype} {name}: Timeout")
        values = self.zone.get((name.lower().rstrip("."), qtype.upper()), [])
        if qtype.upper() == "TXT":
            return [b"".join(s.encode() for s in _strings(v)) for v in values]
        if qtype.upper() == "MX":
            return [(int(v.split()[0]), v.split()[1].rstrip(".")) for v in values]
        return list(values)


def _strings(value: str) -> list[str]:
    rdata = dns.rdata.from_text("IN", "TXT", value)
    return [s.decode() for s in rdata.strings]  # type: ignore[attr-defined]


class DnsServer:
    """An authoritative DNS server on 127.0.0.1 (UDP) for `zone`, in a thread."""

    def __init__(self, zone: Zone):
        self.zone = {(n.lower().rstrip("."), t.upper()): v for (n, t), v in zone.items()}
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = int(self.sock.getsockname()[1])
        self.queries = 0
        self.stopping = False
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            wire, peer = self.sock.recvfrom(4096)
            if self.stopping:
                return
            try:
                reply = self._answer(wire)
            except Exception:  # noqa: BLE001 - a query we cannot read: no answer
                continue
            self.sock.sendto(reply, peer)

    def _answer(self, wire: bytes) -> bytes:
        query = dns.message.from_wire(wire)
        response = dns.message.make_response(query)
        response.flags |= dns.flags.AA
        for question in query.question:
            self.queries += 1
            name = question.name.to_text(omit_final_dot=True).lower()
            rdtype = dns.rdatatype.to_text(question.rdtype)
            values = self.zone.get((name, rdtype))
            if values:
                response.answer.append(dns.rrset.from_text_list(question.name, 60, "IN",
                                                                rdtype, values))
            elif not any(n == name for n, _ in self.zone):
                response.set_rcode(dns.rcode.NXDOMAIN)
        return response.to_wire()

    def stop(self) -> None:
        self.stopping = True
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.sendto(b"", ("127.0.0.1", self.port))  # wakes the loop, which sees `stopping`
        self.thread.join(5)
        self.sock.close()
