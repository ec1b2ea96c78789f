"""What a driver may ask of the rest of mailgw, as small ports implemented outside drivers/.

A driver never imports the store: the events its provider reports and the sounds it
serves reach it through these, implemented by mailgw.store.provider_events and handed to
the driver's factory (mailgw.dispatch.setup). Tests and the fuzz harness pass in-memory
ones. All methods block (they may touch a database): call them in a thread.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol


@dataclass(frozen=True)
class Event:
    """What a provider said about one call (a callback, or a status look-up)."""

    status: str
    rank: int  # the final answer is the highest rank, whatever order events came in
    payload: dict[str, Any]


class ProviderEvents(Protocol):
    """Durable, deduplicated provider events, shared by every host of one store."""

    def record(self, driver: str, ref: str, status: str, rank: int,
               payload: Mapping[str, Any]) -> bool:
        """Keep one event; False when the same (driver, ref, status) is already kept."""
        ...

    def events(self, driver: str, ref: str) -> list[Event]:
        """Every event kept for this call, highest rank first (earliest first among equals)."""
        ...


class MediaSource(Protocol):
    """The sound of a voice delivery, for a provider that fetches it by URL later (and
    perhaps from another host than the one that placed the call)."""

    def sound(self, delivery_id: int) -> bytes | None: ...


@dataclass(frozen=True)
class ReceivedFax:
    """A fax someone sent to one of our numbers, as a driver found it."""

    source: str  # where it came from, e.g. "hylafax:127.0.0.1:4559" or "sinch"
    name: str  # unique within the source: "fax00001.tif", a provider's fax id
    called: str  # our number that was called (E.164 when known; "" = unknown)
    caller: str  # the caller's number (caller ID), "" when not given
    csid: str  # the remote fax's identity (TSI/CSID), "" when not sent
    pages: int
    duration: float  # seconds on the line
    received_at: datetime
    resolution: int  # vertical lines per inch: 98, 196 or 391; 0 = not known
    tiff: bytes = field(default=b"", repr=False)  # the fax as the modem wrote it (HylaFAX)
    pdf: bytes = field(default=b"", repr=False)  # or as a PDF (Sinch): mailed as it came
    partial: bool = False  # the call ended before the sender said it was done
    error: str = ""  # why, for a partial reception


class ReceivedFaxes(Protocol):
    """Where a driver hands received faxes; mailgw.notify.received mails them."""

    def taken(self, source: str, names: Sequence[str]) -> set[str]:
        """Which of these were already handed over (and need not be fetched again)."""
        ...

    def deliver(self, fax: ReceivedFax) -> bool:
        """Queue its mail durably; False when it was already taken (idempotent)."""
        ...


class NoReceivedFaxes:
    """Received faxes dropped: for a driver built without the mailer (tests, `check-config`)."""

    def taken(self, source: str, names: Sequence[str]) -> set[str]:
        return set(names)

    def deliver(self, fax: ReceivedFax) -> bool:
        return False


@dataclass(frozen=True)
class Ports:
    """Everything a driver's factory may be given besides its settings."""

    events: ProviderEvents
    media: MediaSource
    received: ReceivedFaxes = field(default_factory=NoReceivedFaxes)


@dataclass(frozen=True)
class CheckContext:
    """What a driver's settings check may know of the rest of the configuration."""

    chosen: bool  # dispatch.driver names this driver: its required keys must be set
    http_listen: str  # [http] listen ("" = off), where providers call back
