"""`mailgw parse`: what intake would see and decide for one mail, with no side effects.

There is no account here, so the password cannot be checked: the verdict assumes it right
and only says whether one was given.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from mailgw import documents
from mailgw.codes import is_accepted, sentence
from mailgw.config import Settings
from mailgw.inbound import parse_mail
from mailgw.sandbox import Limits
from mailgw.subject_parser import decide, parse_subject


def report(raw: bytes, settings: Settings, *, now: datetime) -> dict[str, Any]:
    mail = parse_mail(raw)
    limits = Limits.of(settings.limits)
    lang = settings.accounts.default_lang
    out: dict[str, Any] = {
        "from_addr": mail.from_addr, "subject": mail.subject, "message_id": mail.message_id,
        "is_auto_reply": mail.is_auto_reply, "auto_reply_reason": mail.auto_reply_reason,
        "attachments": [{"filename": a.filename, "content_type": a.content_type,
                         "size": a.size, "kind": a.kind} for a in mail.attachments],
        "documents": [],
    }
    used = {id(d) for d in mail.documents()}
    for att in [*mail.attachments, *mail.nested_attachments]:
        if att.kind != "pdf" or (att.nested and id(att) not in used):
            continue
        check = documents.check_pdf(att.data, limits)
        entry = {"filename": att.filename, "pages": check.pages, "usable": check.usable,
                 "error": check.error}
        if att.nested:
            entry["nested"] = True
        out["documents"].append(entry)
    refusal: int | None = None
    if not mail.from_addr:
        refusal = 87
    cmd = parse_subject(mail.subject, region=settings.accounts.default_region,
                        tz=settings.accounts.default_tz, now=now)
    code = decide(cmd, password_ok=True)
    if refusal is None and not is_accepted(code):
        refusal = code
    if refusal is None and not cmd.cancel:
        docs = out["documents"]
        if mail.partial:
            refusal = 93
        elif not docs:
            refusal = 92
        elif not all(d["usable"] for d in docs):
            refusal = 93
        elif sum(d["pages"] or 0 for d in docs) > settings.limits.max_pages:
            refusal = 94
    if refusal is not None:
        out["refusal"] = {"code": refusal, "text": sentence(refusal, lang)}
    else:
        out["command"] = {
            "password_given": cmd.password_given, "numbers": list(cmd.numbers),
            "invalid_numbers": list(cmd.invalid_numbers), "groups": list(cmd.groups),
            "ref": cmd.ref, "comment": cmd.comment,
            "when": cmd.when_utc.isoformat() if cmd.when_utc else None, "cancel": cmd.cancel,
        }
    return out


def explain(r: dict[str, Any]) -> str:
    """The same verdict for a person: what was seen, then what mailgw would do and why."""
    lines = [f"From:        {r['from_addr'] or '(none)'}",
             f"Subject:     {r['subject'] if r['subject'] is not None else '(none)'}",
             f"Message-ID:  {r['message_id'] or '(none)'}"]
    if r["is_auto_reply"]:
        lines.append(f"Automatic:   yes ({r['auto_reply_reason']}) - dropped, never answered")
    lines.append(f"Attachments: {len(r['attachments'])}")
    for a in r["attachments"]:
        lines.append(f"  - {a['filename'] or '(no name)'}  {a['content_type']}  "
                     f"{a['size']} bytes  [{a['kind']}]")
    for d in r["documents"]:
        state = f"{d['pages']} page(s)" if d["usable"] else f"not usable: {d['error']}"
        nested = " (in a forwarded mail)" if d.get("nested") else ""
        lines.append(f"Document:    {d['filename'] or '(no name)'}{nested}: {state}")
    if "refusal" in r:
        lines.append(f"Verdict:     refused [{r['refusal']['code']}] {r['refusal']['text']}")
    else:
        c = r["command"]
        lines.append("Verdict:     accepted (if the password is right)"
                     if c["password_given"] else "Verdict:     no password given")
        lines.append(f"  numbers:   {', '.join(c['numbers']) or '(none)'}")
        if c["invalid_numbers"]:
            lines.append(f"  invalid:   {', '.join(c['invalid_numbers'])}")
        if c["groups"]:
            lines.append(f"  groups:    {', '.join('@' + g for g in c['groups'])}")
        for key in ("ref", "comment", "when"):
            if c[key]:
                lines.append(f"  {key + ':':<10} {c[key]}")
        if c["cancel"]:
            lines.append("  cancel:    yes (the deferred send with this time)")
    return "\n".join(lines) + "\n"
