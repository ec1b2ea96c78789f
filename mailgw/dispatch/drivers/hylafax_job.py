"""What a HylaFAX job says, read without a server (pure): the doneq qfile, the session
log's time on the line, a failure's status text as a result, and the job's VRES."""

from __future__ import annotations

import contextlib
import math
import re
from dataclasses import dataclass
from datetime import datetime

from mailgw.dispatch.drivers.base import (
    BUSY,
    CANCELLED,
    LINE_DROPPED,
    NO_ANSWER,
    NOT_FAX,
    NOT_IN_SERVICE,
    PROVIDER_ERROR,
    TIMEOUT,
)

FINISHED = ("DONE", "FAILED")
ADOPT_WINDOW = 6 * 3600.0  # a finished job older than this is never taken for ours
READY_POKE = 20.0  # seconds a job may stay READY before faxq is nudged (see _follow)
STATE_DONE, STATE_FAILED = 7, 8
ABORTED = "job aborted by request"
# JobFmt %a letters: undefined, suspended, pending, sleeping, blocked, ready, active, done, failed
SUSPENDED_LETTER, DONE_LETTER = "T", "D"
JOBFMT = '"%j|%a|%J"'


class HylafaxError(Exception):
    """The server could not be reached or refused a command."""


@dataclass(frozen=True)
class JobFacts:
    """What a finished HylaFAX job says (its doneq qfile)."""

    jobid: int
    state: int
    status: str
    statuscode: str
    npages: int
    nskip: int
    totpages: int
    csi: str
    commid: str
    tts: int = 0  # when it was (last) due to be sent, Unix time

    @property
    def pages_sent(self) -> int:
        return max(self.npages - self.nskip, 0)


def parse_qfile(jobid: int, text: str) -> JobFacts:
    values: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep and key not in values:
            values[key] = value.strip()

    def num(key: str) -> int:
        try:
            return int(values.get(key, "0") or 0)
        except ValueError:
            return 0

    return JobFacts(jobid, num("state"), values.get("status", ""),
                    values.get("statuscode", ""), num("npages"), num("nskip"),
                    num("totpages"), _csid(values.get("csi", "")), values.get("commid", ""),
                    num("tts"))


def lasttime(seconds: float) -> str:
    """JPARM LASTTIME is a relative DDHHMM."""
    minutes = max(int(math.ceil(seconds / 60)), 1)
    days, rest = divmod(minutes, 1440)
    return f"{min(days, 99):02d}{rest // 60:02d}{rest % 60:02d}"


def _csid(value: str) -> str:
    """HylaFAX writes `<UNSPECIFIED>` when the far end sent no CSI: that is "not reported"."""
    value = value.strip()
    return "" if value.upper() in ("<UNSPECIFIED>", "UNSPECIFIED") else value


def classify(reason: str, pages: int, csid: str) -> tuple[str, bool]:
    """A failed job's status text → (result, retryable in principle)."""
    r = reason.lower()
    if ABORTED in r:
        return CANCELLED, False
    if "busy" in r:
        return BUSY, True
    if "kill time expired" in r:
        return TIMEOUT, True
    if "dialtone" in r:
        return PROVIDER_ERROR, True  # our own line is dead, not the recipient's fault
    if "no answer" in r or "no carrier" in r or "ring" in r:
        return NO_ANSWER, True
    if pages > 0:
        return LINE_DROPPED, True
    if any(w in r for w in ("voice", "t.4 receiver", "not a fax", "data modem")):
        return NOT_FAX, False
    if any(w in r for w in ("rejected by", "blacklist", "not in service", "invalid number")):
        return NOT_IN_SERVICE, False
    if csid or any(w in r for w in ("mps", "eop", "eom", "dcs", "tcf", "train", "disconnect",
                                    "hangup", "phase", "response", "rtn", "ppr", "carrier")):
        return LINE_DROPPED, True
    if any(w in r for w in ("convert", "conversion", "document", "format", "image")):
        return PROVIDER_ERROR, False
    return PROVIDER_ERROR, True


_LOG_TIME = re.compile(r"^(\w{3} +\d+ \d\d:\d\d:\d\d(?:\.\d+)?): ")


def line_seconds(session_log: str) -> float | None:
    """Time on the line from a session log (log/c<commid>): the dial to the last line."""
    stamps: list[datetime] = []
    dialled = False
    for line in session_log.splitlines():
        m = _LOG_TIME.match(line)
        if not m:
            continue
        if not dialled and "ATD" not in line:
            continue
        dialled = True
        text = m.group(1)
        with contextlib.suppress(ValueError):
            fmt = "%b %d %H:%M:%S.%f" if "." in text else "%b %d %H:%M:%S"
            stamps.append(datetime.strptime("2000 " + " ".join(text.split()), "%Y " + fmt))
    if len(stamps) < 2:
        return None
    seconds = (stamps[-1] - stamps[0]).total_seconds()
    return seconds if seconds >= 0 else seconds + 86400 * 366  # across a new year: rare


# The job's VRES for each quality (mailgw.documents.quality): lines per inch as HylaFAX counts them
# (superfine is 391, T.30's "R8 × 15.4 l/mm"). `vres` in the settings caps it.
VRES = {"normal": 98, "high": 196, "best": 391}


def vres_for(quality: str, cap: int) -> int:
    """The VRES a job is sent at: its quality's, at most the server's `vres` (pure)."""
    return min(VRES.get(quality, VRES["high"]), cap)
