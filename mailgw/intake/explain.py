"""`mailgw parse --explain`: how the Subject was read, and what the mail itself looks like.

The verdict's own reasons come from the decision (`Found.steps`); this adds what the
decision does not keep: the prefix dropped, each element of the numbers field and how it
was read, and the mail's diagnostics (MIME defects, the Received chain) from mail-parser,
which the design gives that job. The password is never shown.
"""

from __future__ import annotations

import logging
import re
from typing import Any

import mailparser
import phonenumbers

from mailgw.recipients import normalize_number
from mailgw.subject_parser import Command, strip_prefixes

_SPLIT = re.compile(r"[,;]")
MAX_SHOWN = 50  # elements of a long numbers field shown one by one


def subject_steps(subject: str | None, cmd: Command, region: str) -> list[str]:
    """How `subject` became `cmd` (read in `region`)."""
    if not subject:
        return ["Subject: none"]
    rest = strip_prefixes(subject)
    out = []
    dropped = subject[: len(subject) - len(rest)]
    if dropped.strip():
        out.append(f"prefix dropped: {dropped.strip()!r}")
    fields = rest.split(":")
    out.append(f"{len(fields)} field(s) split on ':'; password: "
               + ("given (not shown)" if cmd.password_given else "empty"))
    if len(fields) > 1:
        out += _number_steps(fields[1], region)
    else:
        out.append("no numbers field (no ':' after the password)")
    if cmd.ref:
        out.append(f"ref: {cmd.ref!r}")
    if cmd.comment:
        out.append(f"comment: {cmd.comment!r}")
    if cmd.when_error:
        out.append("when: present but not a valid time (12 digits HHMMDDMMYYYY, not more "
                   "than 15 minutes past)")
    elif cmd.when_local is not None:
        at = cmd.when_utc.isoformat() if cmd.when_utc else "now (up to 15 minutes past)"
        out.append(f"when: {cmd.when_local:%Y-%m-%d %H:%M} local, {at}"
                   + ("; trailing 's': a cancel" if cmd.cancel else ""))
    return out


def _number_steps(text: str, region: str) -> list[str]:
    elements = [e.strip() for e in _SPLIT.split(text) if e.strip()]
    if not elements:
        return ["numbers field: empty"]
    out = []
    for element in elements[:MAX_SHOWN]:
        out.append(f"  {element!r} → {read_number(element, region)}")
    if len(elements) > MAX_SHOWN:
        out.append(f"  … and {len(elements) - MAX_SHOWN} more")
    return [f"numbers field: {len(elements)} element(s)", *out]


def read_number(element: str, region: str) -> str:
    """One element of a numbers field, as the parser reads it, in words."""
    if element.startswith("@"):
        name = element[1:].strip()
        return f"contact group {name!r}" if name else "not valid (a group with no name)"
    e164 = normalize_number(element, region)
    if e164 is None:
        return (f"not valid (6-17 digits, only spaces . - ( ) +; a valid number in {region} "
                "or with its country code)")
    where = phonenumbers.region_code_for_number(phonenumbers.parse(e164))
    compact = re.sub(r"[\s().\-]", "", element)
    if compact.startswith(("+", "00")):
        return f"{e164} (international, {where})"
    if where == region:
        return f"{e164} (national, region {region})"
    return f"{e164} (national: not valid in {region}, valid in {where}, which shares its " \
           "dialling plan)"


def dial_steps(numbers: list[str], invalid: list[str]) -> list[str]:
    """The numbers that would be dialled, each with its country (from any source)."""
    out = [f"numbers to dial: {len(numbers)}"]
    for number in numbers[:MAX_SHOWN]:
        where = phonenumbers.region_code_for_number(phonenumbers.parse(number))
        out.append(f"  {number} ({where})")
    if len(numbers) > MAX_SHOWN:
        out.append(f"  … and {len(numbers) - MAX_SHOWN} more")
    if invalid:
        out.append(f"not valid, left out: {', '.join(invalid[:MAX_SHOWN])}")
    return out


def diagnostics(raw: bytes) -> list[str]:
    """MIME defects and the Received chain, as mail-parser reads them."""
    logging.getLogger("mailparser").setLevel(logging.ERROR)  # its notes go to stderr
    try:
        parsed = mailparser.parse_from_bytes(raw)
        defects: list[dict[str, list[str]]] = list(parsed.defects or [])
        received: list[dict[str, Any]] = list(parsed.received or [])
    except Exception as exc:  # noqa: BLE001 - hostile mail: say so, never crash parse
        return [f"mail-parser could not read the mail: {type(exc).__name__}: {exc}"]
    out = [f"MIME defects: {sum(len(v) for d in defects for v in d.values()) or 'none'}"]
    for entry in defects:
        for where, items in entry.items():
            out += [f"  {where}: {item}" for item in items]
    out.append(f"Received chain: {len(received)} hop(s), hop 1 nearest the sender"
               if received else "Received chain: none (no Received header)")
    for hop in received:
        parts = [f"{key} {_flat(hop[key])}" for key in ("from", "by", "with", "for")
                 if hop.get(key)]
        when = _flat(hop.get("date_utc") or hop.get("date") or "")
        delay = hop.get("delay")
        out.append(f"  {hop.get('hop', '?')}. {' '.join(parts) or '(empty)'}"
                   + (f" at {when}" if when else "")
                   + (f" ({delay:+g} s)" if isinstance(delay, int | float) and delay else ""))
    return out


def _flat(value: object) -> str:
    return " ".join(str(value).split())[:200]
