"""uvicorn's h11 protocol with the listener's limits, which uvicorn itself does not set.

uvicorn arms no timer before a connection's first request (a slowloris trickling headers
holds its connection forever), counts no connections per client, and lets h11 take a
complete request head of any size (h11_max_incomplete_event_size bounds only a head still
arriving). Here, each connection:

* is refused at once (503, Retry-After) beyond the listener's total or beyond its share for
  one client address (IPv6: the /64); a trusted reverse proxy counts only in the total,
  since every client behind it shares its address;
* must send its whole request head within MAX_HEAD bytes (431) and HEAD_TIMEOUT seconds
  of connecting (408): a trickle is cut as surely as silence;
* is aborted when a write stalls WRITE_TIMEOUT seconds (a client that does not read).

Every answer says `Connection: close` (mailgw.http.server sets it), so a connection is one
request and the caps count requests in flight.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, ClassVar

from uvicorn.protocols.http.h11_impl import H11Protocol

from mailgw.smtp.flood import client_key

MAX_HEAD = 8192  # bytes of request line + headers
HEAD_TIMEOUT = 5.0  # seconds from the connection to the end of the request head
WRITE_TIMEOUT = 10.0  # seconds a write may stall
RETRY_AFTER = 5  # seconds, in a 503 for a full listener
LINGER = 2.0  # seconds a refused connection is read (and dropped) before it is closed
_HEAD_END = re.compile(rb"\r?\n\r?\n")

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_networks(items: list[str]) -> tuple[Network, ...]:
    """Addresses and CIDRs ("10.0.0.1", "fd00::/8"); ValueError names a bad one."""
    out = []
    for item in items:
        try:
            out.append(ipaddress.ip_network(item.strip(), strict=False))
        except ValueError:
            raise ValueError(f"expected an address or a CIDR, got {item!r}") from None
    return tuple(out)


def in_networks(ip: str | None, networks: tuple[Network, ...]) -> bool:
    if not ip or not networks:
        return False
    try:
        addr = ipaddress.ip_address(ip.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped
    return any(addr in net for net in networks)


@dataclass
class Guard:
    """One listener's connection counts (the event loop's thread only)."""

    max_connections: int
    max_per_client: int
    trusted: tuple[Network, ...] = ()
    open: int = 0
    per_client: Counter[str] = field(default_factory=Counter)

    def admit(self, ip: str | None) -> str | None:
        """The key the connection counts under, or None when it is refused."""
        key = "" if in_networks(ip, self.trusted) else client_key(ip)
        if self.open >= self.max_connections or (
                key and self.per_client[key] >= self.max_per_client):
            return None
        self.open += 1
        if key:
            self.per_client[key] += 1
        return key

    def release(self, key: str) -> None:
        self.open -= 1
        if key:
            self.per_client[key] -= 1
            if self.per_client[key] <= 0:
                del self.per_client[key]


def answer(status: int, reason: str, text: str, *extra: str) -> bytes:
    """A whole response written past h11 (the connection closes right after it)."""
    body = (text + "\n").encode()
    lines = [f"HTTP/1.1 {status} {reason}", "Content-Type: text/plain; charset=utf-8",
             f"Content-Length: {len(body)}", "Connection: close", "Cache-Control: no-store",
             *extra]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


class GuardedH11Protocol(H11Protocol):
    """One connection; mailgw.http.server makes a subclass per listener with its Guard."""

    guard: ClassVar[Guard]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._key: str | None = None
        self._refused = False
        self._head = bytearray()  # the request head so far, up to MAX_HEAD bytes
        self._timers: dict[str, asyncio.TimerHandle] = {}

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        peer = transport.get_extra_info("peername")
        self._key = self.guard.admit(str(peer[0]) if isinstance(peer, tuple) and peer
                                     else None)
        if self._key is None:
            self.transport = transport
            self._refuse(answer(503, "Service Unavailable", "too many connections",
                                f"Retry-After: {RETRY_AFTER}"))
            return
        super().connection_made(transport)
        self._timers["head"] = self.loop.call_later(HEAD_TIMEOUT, self._head_timeout)

    def connection_lost(self, exc: Exception | None) -> None:
        for timer in self._timers.values():
            timer.cancel()
        if self._key is None:  # not admitted: uvicorn never knew it
            return
        self.guard.release(self._key)
        self._key = None
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._refused:  # answered already: what the client still sends is dropped
            return
        if self.cycle is None and "head" in self._timers:  # the head is still arriving
            self._head += data[:MAX_HEAD - len(self._head) + 4]
            end = _HEAD_END.search(self._head)
            if end is not None and end.end() <= MAX_HEAD:
                self._timers.pop("head").cancel()
            elif len(self._head) >= MAX_HEAD:
                self._refuse(answer(431, "Request Header Fields Too Large",
                                    f"request head over {MAX_HEAD} bytes"))
                return
        super().data_received(data)

    def _head_timeout(self) -> None:
        self._timers.pop("head", None)
        if self.cycle is None:
            self._refuse(answer(408, "Request Timeout", "request head not received in time"))

    def _refuse(self, response: bytes) -> None:
        """Answer, then close gently: a close with the client's bytes unread would reset
        the connection, and the client could lose the answer. So the write side ends
        (FIN), what still comes is dropped, and the connection closes at the client's end
        of it or after LINGER."""
        if self._refused or self.transport.is_closing():
            return
        self._refused = True
        self.transport.write(response)
        if self.transport.can_write_eof():
            self.transport.write_eof()
        self._timers["linger"] = self.loop.call_later(LINGER, self.transport.close)

    def eof_received(self) -> None:
        if self._refused:
            self.transport.close()

    def pause_writing(self) -> None:
        if self.flow is None:  # not admitted: its few bytes never fill the buffer
            return
        super().pause_writing()
        self._timers["write"] = self.loop.call_later(WRITE_TIMEOUT, self.transport.abort)

    def resume_writing(self) -> None:
        timer = self._timers.pop("write", None)
        if timer is not None:
            timer.cancel()
        if self.flow is not None:
            super().resume_writing()
