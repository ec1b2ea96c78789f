"""Twilio's side of a call, read without the network (pure): the request signature, the
call's statuses and TwiML steps as ranked events, the events as a call result, and the
short call options carried in the signed callback token."""

from __future__ import annotations

import base64
import hashlib
import hmac
import urllib.parse
from typing import Any

from mailgw.dispatch.drivers.base import (
    BUSY,
    CANCELLED,
    DELIVERED,
    LINE_DROPPED,
    NO_ANSWER,
    NOT_FAX,
    NOT_IN_SERVICE,
    PARTIAL,
    CallResult,
    HttpReply,
)
from mailgw.dispatch.drivers.ports import Event
from mailgw.dispatch.drivers.voice_outcomes import outcome_text

TEXT = "text/plain; charset=utf-8"
XML = "text/xml; charset=utf-8"
CALL_RANKS = {"queued": 5, "initiated": 10, "ringing": 20, "in-progress": 30}
FINAL_STATUSES = ("completed", "busy", "no-answer", "failed", "canceled")
# What the TwiML side of a call did, as events of the call (ranks under the final ones).
TWIML, WELCOME, PLAY, TRANSFER, PLAYED = "twiml", "welcome", "play", "transfer", "played"
HANGUP_FAX, HANGUP_HUMAN, HANGUP_MACHINE = "hangup:fax", "hangup:human", "hangup:machine"
STEP_RANKS = {TWIML: 31, WELCOME: 35, HANGUP_FAX: 36, HANGUP_HUMAN: 36, HANGUP_MACHINE: 36,
              PLAY: 40, TRANSFER: 45, PLAYED: 50}
KEEP = ("CallStatus", "CallDuration", "AnsweredBy", "SequenceNumber", "Timestamp",
        "CallbackSource", "Digits")


def signature(token: str, url: str, params: list[tuple[str, str]]) -> str:
    """X-Twilio-Signature: base64(HMAC-SHA1(auth token, URL + each name+value, sorted))."""
    data = url
    for name in sorted({k for k, _ in params}):
        for value in sorted(v for k, v in params if k == name):
            data += name + value
    mac = hmac.new(token.encode(), data.encode(), hashlib.sha1).digest()
    return base64.b64encode(mac).decode("ascii")


def url_variants(url: str) -> list[str]:
    """The URL as given, without its port and with the default port (as Twilio's helper
    libraries check: the port Twilio signs is not always the one in the URL)."""
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    userinfo = parts.netloc.rpartition("@")[0]
    prefix = f"{userinfo}@" if userinfo else ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    out = [url]
    for netloc in (prefix + host, f"{prefix}{host}:{port}"):
        out.append(urllib.parse.urlunsplit(parts._replace(netloc=netloc)))
    return list(dict.fromkeys(out))


def result_for(found: list[Event], sid: str, length: float,
               options: dict[str, str]) -> CallResult:
    """A finished call (its events, final first) as a call result, told with mailgw.accounts.voice's
    outcome sentences; `length` is the sound's, in seconds."""
    final = found[0]
    steps = {e.status: e.payload for e in found}
    answered_by = next((str(e.payload["AnsweredBy"]) for e in found
                        if e.payload.get("AnsweredBy")), "")
    duration = next((float(e.payload["CallDuration"]) for e in found
                     if str(e.payload.get("CallDuration", "")).isdigit()), 0.0)
    base: dict[str, Any] = {"duration": duration, "provider_ref": sid}
    full = round(length)

    def since_play(step: dict[str, Any]) -> int:
        start, end = steps.get(PLAY, {}).get("at"), step.get("at")
        if not isinstance(start, int | float) or not isinstance(end, int | float):
            return full
        return max(0, min(full, round(end - start)))

    status = final.status
    if status == "busy":
        return CallResult(BUSY, retryable=True, error_code="busy", error_text="busy", **base)
    if status == "no-answer":
        return CallResult(NO_ANSWER, retryable=True, error_code="no-answer",
                          error_text="no answer", **base)
    if status == "failed":
        return CallResult(NOT_IN_SERVICE, error_code="failed",
                          error_text="the call could not be completed as dialled", **base)
    if status == "canceled":
        return CallResult(CANCELLED, error_text="the call was cancelled", **base)
    machine = answered_by.startswith("machine")
    if HANGUP_FAX in steps:
        return CallResult(NOT_FAX, error_code="fax", error_text="a fax machine answered",
                          **base)
    if HANGUP_MACHINE in steps:
        return CallResult(NO_ANSWER, retryable=True, error_code="machine",
                          error_text=outcome_text("machine_not_left"), **base)
    if HANGUP_HUMAN in steps:
        return CallResult(NO_ANSWER, error_code="human",
                          error_text="a person answered: the message is for voicemail only",
                          **base)
    if TRANSFER in steps:
        return CallResult(DELIVERED, detail=outcome_text(
            "transferred", heard=since_play(steps[TRANSFER]), number=options.get("t", "")),
            **base)
    if PLAYED in steps:
        key = "machine_left" if machine else "played_star" if WELCOME in steps else "played"
        return CallResult(DELIVERED, detail=outcome_text(key, heard=full), **base)
    if PLAY in steps:
        heard = since_play(final.payload)
        return CallResult(PARTIAL, error_code="hangup", error_text=outcome_text(
            "heard_part", heard=heard, length=full), **base)
    if WELCOME in steps:
        if machine:
            return CallResult(NO_ANSWER, retryable=True, error_code="welcome",
                              error_text=outcome_text("machine_no_star"), **base)
        return CallResult(NO_ANSWER, error_code="welcome",
                          error_text=outcome_text("no_star"), **base)
    return CallResult(LINE_DROPPED, retryable=True, error_code="hangup",
                      error_text="call dropped before the message", **base)


def reply(status: int, body: str = "", ctype: str = TEXT) -> HttpReply:
    return status, body.encode(), ctype, {}


def twiml(*verbs: str) -> HttpReply:
    body = '<?xml version="1.0" encoding="UTF-8"?><Response>' + "".join(verbs) + "</Response>"
    return reply(200, body, XML)


def call_options(options: dict[str, str]) -> dict[str, str]:
    """The call options the TwiML needs (mailgw.accounts.voice's canonical ones), short, for the
    signed callback token: t = transfer number, w = welcome prompt, v = voicemail mode."""
    out: dict[str, str] = {}
    if options.get("transfer"):
        out["t"] = options["transfer"]
    if options.get("welcome") == "yes":
        out["w"] = "1"
    if options.get("voicemail") in ("no", "only"):
        out["v"] = options["voicemail"]
    return out
