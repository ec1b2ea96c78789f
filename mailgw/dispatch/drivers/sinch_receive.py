"""Faxes Sinch received on our numbers: its INCOMING_FAX webhook, handed to the ReceivedFaxes
port (mailgw.notify.received mails the PDF to the account that owns the number).

Sinch posts an incoming fax to the URL set on the fax service (`incomingWebhookUrl`, in the
dashboard or its services API), not to a URL of ours per fax: so the URL is a fixed one,
`https://<callback_user>:<callback_password>@<public host>/callbacks/sinch/incoming`, and
the Basic credentials Sinch documents for its webhooks (`WebhookBasicAuth`) are the only
proof; the driver checks them before this module sees the request, and without a
`callback_password` incoming faxes are refused. Both documented bodies are read: JSON
(`event`, `eventTime`, `fax`, `file` base64, `fileType`) and multipart/form-data (`fax` as
JSON, the PDF as the `file` part). Sinch retries a webhook that fails (up to 16 times, ~3
days): the fax id is the port's key, so a retried or duplicated event is mailed once, and a
store that cannot take it answers 503 so that Sinch tries again.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import email.parser
import email.policy
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import structlog

from mailgw.dispatch.drivers.base import CallbackRequest, HttpReply
from mailgw.dispatch.drivers.ports import ReceivedFax, ReceivedFaxes

log = structlog.get_logger("mailgw.dispatch.sinch")

INCOMING = "incoming"  # POST /callbacks/sinch/incoming
SOURCE = "sinch"
# Sinch's `resolution` of a fax (STANDARD or FINE) in lines per inch; 0 = not said
RESOLUTION = {"STANDARD": 98, "FINE": 196, "SUPERFINE": 391}
TEXT = "text/plain; charset=utf-8"


@dataclass(frozen=True)
class Event:
    """One webhook body: the event's name, its fax object and the file it carried."""

    name: str
    fax: dict[str, Any]
    file: bytes | None  # the document (a PDF unless file_type says otherwise)
    file_type: str  # "PDF", "TIF" …; "" when not said


def _multipart(ctype: str, body: bytes) -> dict[str, Any] | None:
    data: dict[str, Any] = {}
    try:
        message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
            f"Content-Type: {ctype}\r\n\r\n".encode("latin-1") + body)
        for part in message.iter_parts():
            name = part.get_param("name", header="content-disposition")
            raw = part.get_payload(decode=True)
            if name == "file" and isinstance(raw, bytes):
                data["_file"] = raw
            elif name in ("fax", "event", "eventTime", "fileType") and isinstance(name, str):
                data[name] = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else ""
    except Exception:  # noqa: BLE001 - the stdlib's header parser raises IndexError … on
        return None  # malformed part headers (a fuzz finding: a 500, not a 400)
    if isinstance(data.get("fax"), str):
        try:
            data["fax"] = json.loads(data["fax"])
        except ValueError:
            return None
    event = data.get("event")
    if isinstance(event, str) and event.startswith('"'):  # the part is JSON: "INCOMING_FAX"
        try:
            data["event"] = json.loads(event)
        except ValueError:
            return None
    return data


def parse_event(headers: dict[str, str], body: bytes) -> Event | None:
    """A Sinch fax webhook (JSON or multipart/form-data), or None when it is not one."""
    ctype = headers.get("content-type", "")
    data: Any
    if ctype.startswith("multipart/form-data"):
        data = _multipart(ctype, body)
    else:
        try:
            data = json.loads(body)
        except ValueError:
            return None
    if not isinstance(data, dict) or not isinstance(data.get("fax"), dict):
        return None
    file = data.get("_file")
    if file is None and isinstance(data.get("file"), str):
        try:
            file = base64.b64decode(data["file"], validate=True)
        except (binascii.Error, ValueError):
            return None
    return Event(name=str(data.get("event") or ""), fax=data["fax"],
                 file=file or None, file_type=str(data.get("fileType") or "").upper())


def _time(value: object) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        at = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return at if at.tzinfo else at.replace(tzinfo=UTC)


def received_fax(event: Event) -> ReceivedFax | None:
    """The fax an INCOMING_FAX event reports, once it is over (COMPLETED or FAILURE)."""
    fax = event.fax
    fax_id, status = str(fax.get("id") or ""), fax.get("status")
    if not fax_id or status not in ("COMPLETED", "FAILURE"):
        return None
    started, ended = _time(fax.get("createTime")), _time(fax.get("completedTime"))
    duration = max((ended - started).total_seconds(), 0.0) if started and ended else 0.0
    document = event.file or b""
    tiff = event.file_type in ("TIF", "TIFF") or document.startswith((b"II*\x00", b"MM\x00*"))
    error = "" if status == "COMPLETED" else str(
        fax.get("errorMessage") or fax.get("errorType") or "FAILURE")[:300]
    try:
        pages = max(int(str(fax.get("numberOfPages") or 0)), 0)
    except ValueError:
        pages = 0
    return ReceivedFax(
        source=SOURCE, name=fax_id, called=str(fax.get("to") or ""),
        caller=str(fax.get("from") or ""), csid="", pages=pages, duration=duration,
        received_at=ended or started or datetime.now(UTC),
        resolution=RESOLUTION.get(str(fax.get("resolution") or "").upper(), 0),
        tiff=document if tiff else b"", pdf=b"" if tiff else document,
        partial=status != "COMPLETED", error=error)


class SinchReceiver:
    """POST /callbacks/sinch/incoming, already authenticated by the driver (Basic)."""

    def __init__(self, port: ReceivedFaxes, *, authenticated: bool):
        self.port = port
        self.authenticated = authenticated  # the driver has a callback password to check

    async def handle(self, request: CallbackRequest) -> HttpReply:
        if not self.authenticated:
            log.warning("callback_refused", driver=SOURCE, reason="incoming without password",
                        hint="set [drivers.sinch] callback_password to take incoming faxes")
            return 403, b"forbidden\n", TEXT, {}
        event = parse_event(request.headers, request.body)
        if event is None or event.name not in ("INCOMING_FAX", ""):
            return 400, b"not an incoming fax event\n", TEXT, {}
        if event.fax.get("direction") not in ("INBOUND", None):
            return 400, b"not an incoming fax event\n", TEXT, {}
        fax = received_fax(event)
        if fax is None:  # not over yet, or no id: nothing to mail
            return 200, b"", TEXT, {}
        if not event.file:
            log.warning("sinch_incoming_without_document", fax_id=fax.name,
                        status=event.fax.get("status"))
        try:
            new = await asyncio.to_thread(self.port.deliver, fax)
        except Exception as exc:  # noqa: BLE001 - the store is down: Sinch retries later
            log.warning("sinch_incoming_not_kept", fax_id=fax.name, error=str(exc)[:300])
            return 503, b"try again later\n", TEXT, {"Retry-After": "300"}
        log.info("sinch_incoming_fax", fax_id=fax.name, called=fax.called, caller=fax.caller,
                 pages=fax.pages, partial=fax.partial, duplicate=not new)
        return 200, b"", TEXT, {}
