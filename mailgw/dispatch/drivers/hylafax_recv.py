"""Faxes HylaFAX received (faxgetty answers, the TIFF lands in recvq/), picked up over the
client protocol: `LIST recvq` with RCVFMT, then `RETR recvq/faxNNNNN.tif` for each one
not yet taken, handed to the ReceivedFaxes port (which mails it and remembers it).

Nothing is deleted from recvq: the port's (source, file name) key makes a restart, or a
second mailgw host polling the same server, skip what was already mailed. The operator
keeps HylaFAX's own recvq clean-up (faxcron). Parsing is pure; `poll` blocks (a thread).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime

import structlog

from mailgw.dispatch.drivers.hylafax_client import HylafaxClient
from mailgw.dispatch.drivers.ports import ReceivedFax, ReceivedFaxes

log = structlog.get_logger("mailgw.dispatch.hylafax")

# file, in progress, pages, time on the line, resolution, caller ID, subaddress, time
# received, then the two free texts: the sender's TSI and the error (last: it may hold "|")
RCVFMT = "%f|%z|%p|%h|%r|%j|%a|%Y|%s|%e"
FIELDS = 10


@dataclass(frozen=True)
class RecvEntry:
    """One line of `LIST recvq`."""

    name: str
    receiving: bool  # faxgetty is still writing it
    pages: int
    duration: float
    resolution: int
    caller: str
    subaddress: str
    received_at: datetime
    csid: str
    error: str


def _int(text: str, default: int = 0) -> int:
    m = re.search(r"\d+", text)
    return int(m.group()) if m else default


def seconds(text: str) -> float:
    """HH:MM:SS or MM:SS → seconds."""
    total = 0
    for part in text.strip().split(":"):
        if not part.strip().isdigit():
            return 0.0
        total = total * 60 + int(part)
    return float(total)


def when(text: str) -> datetime:
    """%Y ("2026/12/07 21.01.50" from hfaxd 6.0, in UTC unless TZONE LOCAL was asked);
    now if unreadable."""
    for fmt in ("%Y/%m/%d %H.%M.%S", "%Y:%m:%d %H:%M:%S", "%Y-%m-%d %H:%M:%S"):
        try:
            return datetime.strptime(text.strip(), fmt).replace(tzinfo=UTC)
        except ValueError:
            continue
    return datetime.now(UTC)


def parse_line(line: str) -> RecvEntry | None:
    parts = line.split("|", FIELDS - 1)
    if len(parts) < FIELDS or not parts[0].strip().endswith(".tif"):
        return None
    name, busy, pages, dur, res, caller, sub, at, csid, error = (p.strip() for p in parts)
    return RecvEntry(name=name, receiving=busy == "*", pages=_int(pages),
                     duration=seconds(dur), resolution=_int(res, 196), caller=caller,
                     subaddress=sub, received_at=when(at), csid=csid, error=error)


def listing(client: HylafaxClient) -> list[RecvEntry]:
    with client.session() as ftp:
        ftp.sendcmd(f"RCVFMT {RCVFMT}")
        lines: list[str] = []
        ftp.retrlines("LIST recvq", lines.append)
    return [e for e in (parse_line(line) for line in lines) if e is not None]


def poll(client: HylafaxClient, port: ReceivedFaxes, source: str, number: str) -> int:
    """Hand every finished fax of recvq not yet taken to the port; how many were new.
    The called number is the T.30 subaddress when the sender gave one (DID routing behind
    a gateway), else `number` (the line's own number, [drivers.hylafax] receive_number)."""
    entries = [e for e in listing(client) if not e.receiving]
    done = port.taken(source, [e.name for e in entries])
    handed = 0
    for entry in entries:
        if entry.name in done:
            continue
        tiff = client.retr_bytes(f"recvq/{entry.name}")
        if tiff is None:
            log.warning("hylafax_recvq_unreadable", name=entry.name)
            continue
        fax = ReceivedFax(source=source, name=entry.name,
                          called=entry.subaddress or number, caller=entry.caller,
                          csid=entry.csid, pages=entry.pages, duration=entry.duration,
                          received_at=entry.received_at, resolution=entry.resolution,
                          tiff=tiff, partial=bool(entry.error), error=entry.error)
        if port.deliver(fax):
            handed += 1
    return handed
