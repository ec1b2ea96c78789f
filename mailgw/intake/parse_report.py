"""`mailgw parse`: what intake would see and decide for one mail, with no side effects.

It calls the decision intake calls (mailgw.intake.decide) with the same facts: the recipient
(`--to`, by default the fax address), the attached lists, the documents checked in the
same sandbox. With a configured store (opened read-only) it reads the sender's account,
checks the password, resolves groups and library messages and matches a cancel as the
commit would (95/96). Without one it uses the embedded defaults: the account's region,
zone and language are the defaults, the password is taken as right, named groups and
library messages as present.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from typing import Any

from mailgw.accounts import accounts
from mailgw.codes import Code, sentence
from mailgw.documents.fax_input import fax_documents, fax_kind
from mailgw.documents.sandbox import Limits
from mailgw.inbound.mail import InboundMail, parse_mail
from mailgw.intake import gather
from mailgw.intake.commit import as_scheduled, scheduled_jobs
from mailgw.intake.decide import decide
from mailgw.intake.explain import diagnostics, dial_steps, subject_steps
from mailgw.intake.facts import DefaultLookups, ReadOnlyStore, StoreLookups
from mailgw.intake.proof_dns import Prover
from mailgw.intake.settle import cancel_code, cancel_matches
from mailgw.intake.verdict import (
    Accept,
    AccountFacts,
    Found,
    Ignore,
    Lookups,
    MailFacts,
    Policy,
    Refuse,
    Verdict,
)
from mailgw.ops.config import Settings
from mailgw.subject_parser import Command, masked_subject, parse_subject


@dataclass
class Examined:
    """One mail as `parse` saw it: the verdict, the final code and what was assumed."""

    raw: bytes
    mail: InboundMail
    rcpt: str
    verdict: Verdict
    code: int | None  # None: dropped (automatic message)
    lang: str
    account: AccountFacts
    documents: list[dict[str, Any]]
    notes: list[str] = field(default_factory=list)  # what could not be known, and why
    command: Command | None = None  # the Subject as read (also for a dropped mail)
    cancelled: list[int] = field(default_factory=list)  # the jobs a cancel would cancel

    @property
    def found(self) -> Found:
        return self.verdict.found


def examine(raw: bytes, settings: Settings, *, now: datetime, to: str | None = None,
            store: ReadOnlyStore | None = None, store_note: str = "no store configured"
            ) -> Examined:
    mail = parse_mail(raw)
    rcpt = to or settings.gateway.fax_address
    limits = Limits.of(settings.limits)
    defaults = settings.accounts
    shown = AccountFacts(0, defaults.default_region, defaults.default_tz, defaults.default_lang)
    account: AccountFacts | None = shown
    notes = [store_note]
    inner: StoreLookups | DefaultLookups | None
    if store is not None:
        row, _ = gather.find_account(partial(accounts.find_for_mail, store.read_engine),
                                     mail, None)
        account = AccountFacts.of(row) if row is not None else None
        inner = StoreLookups(store.read, row.id, row.password_hash, limits) if row else None
    else:
        inner = DefaultLookups(limits)
        notes.append(f"embedded defaults: region {defaults.default_region}, time zone "
                     f"{defaults.default_tz}; the password is taken as right; named groups "
                     "and library messages as present")
    proofs: frozenset[str] = frozenset()
    if account is not None and account.require != "password":
        proofs = gather.prove(Prover.of(settings.proof), raw, mail)
        notes.append(f"the account requires {account.require}; DMARC-aligned pass: "
                     f"{'yes' if proofs else 'no'} (SPF is not checked here: no client "
                     "address; SMTP AUTH cannot be)")
    verdict = decide(MailFacts(mail, (rcpt,), proof=proofs), account, inner, now,
                     policy=Policy.of(settings))
    account = account or shown
    out = Examined(raw, mail, rcpt, verdict, verdict.code, account.lang, account,
                   _documents(mail, inner or DefaultLookups(limits)), notes)
    out.command = verdict.found.command or parse_subject(
        mail.subject, region=account.region, tz=account.tz, now=now)
    if isinstance(verdict, Accept) and verdict.plan.action == "cancel":
        cmd = verdict.found.command
        if store is not None and cmd is not None:
            if cmd.when_utc is not None:
                with store.read() as s:
                    jobs = scheduled_jobs(s, account.id, cmd.when_utc)
                    out.cancelled = cancel_matches(map(as_scheduled, jobs),
                                                   verdict.found.numbers, cmd.ref)
            out.code = cancel_code(out.cancelled)
        else:
            notes.append("a cancel: 95 when a scheduled job matches, else 96 (no store to "
                         "look in)")
    return out


def _documents(mail: InboundMail, lookups: Lookups) -> list[dict[str, Any]]:
    """Each document intake would fax (PDF, TIFF, JPEG, PNG, office file), checked and
    rendered, and the mail's other PDFs (a forwarded mail's when intake would use them)."""
    listed = []
    used = {id(d) for d in fax_documents(mail)}
    for att in [*mail.attachments, *mail.nested_attachments]:
        kind = fax_kind(att)
        if kind is None or (id(att) not in used and (kind != "pdf" or att.nested)):
            continue
        check = lookups.pdf(att.data) if kind == "pdf" else lookups.picture(att.data) \
            if kind == "picture" else lookups.office(att.data, att.filename)
        entry = {"filename": att.filename, "kind": kind, "pages": check.pages,
                 "usable": check.usable, "error": check.error}
        if att.nested:
            entry["nested"] = True
        listed.append(entry)
    return listed


def report(raw: bytes, settings: Settings, *, now: datetime, to: str | None = None,
           store: ReadOnlyStore | None = None, store_note: str = "no store configured"
           ) -> dict[str, Any]:
    """The `--json` object (DESIGN, "Interfaces"); the password is never in it (the
    Subject is masked as everywhere else)."""
    return as_json(examine(raw, settings, now=now, to=to, store=store, store_note=store_note))


def as_json(e: Examined) -> dict[str, Any]:
    mail = e.mail
    out: dict[str, Any] = {
        "from_addr": mail.from_addr, "subject": masked_subject(mail.subject),
        "message_id": mail.message_id,
        "is_auto_reply": mail.is_auto_reply, "auto_reply_reason": mail.auto_reply_reason,
        "attachments": [{"filename": a.filename, "content_type": a.content_type,
                         "size": a.size, "kind": a.kind} for a in mail.attachments],
        # DESIGN's `documents`: the PDFs, with DESIGN's keys (pictures and office files
        # intake would fax are in the text view and in the verdict's pages).
        "documents": [{k: v for k, v in d.items() if k != "kind"}
                      for d in e.documents if d["kind"] == "pdf"],
    }
    v = e.verdict
    if isinstance(v, Refuse) or (e.code is not None and e.code == Code.NOTHING_TO_CANCEL):
        detail = v.explain(e.lang) if isinstance(v, Refuse) else ""
        assert e.code is not None
        out["refusal"] = {"code": e.code, "text": sentence(e.code, e.lang), "detail": detail}
        return out
    cmd = e.command
    assert cmd is not None
    found = v.found if isinstance(v, Accept) else None
    out["command"] = {
        "password_given": cmd.password_given,
        "numbers": found.numbers if found else list(cmd.numbers),
        "invalid_numbers": list(found.invalid) if found else list(cmd.invalid_numbers),
        "groups": list(cmd.groups), "ref": cmd.ref, "comment": cmd.comment,
        "when": cmd.when_utc.isoformat() if cmd.when_utc else None, "cancel": cmd.cancel,
        "code": e.code,
    }
    return out


def text(e: Examined, *, explain: bool = False) -> str:
    """The same verdict for a person; `explain` adds why, step by step, and the mail's
    diagnostics."""
    r = as_json(e)
    lines = [f"From:        {r['from_addr'] or '(none)'}",
             f"To:          {e.rcpt} ({e.found.channel})",
             f"Subject:     {r['subject'] if r['subject'] is not None else '(none)'}",
             f"Message-ID:  {r['message_id'] or '(none)'}"]
    if r["is_auto_reply"]:
        lines.append(f"Automatic:   yes ({r['auto_reply_reason']}) - dropped, never answered")
    lines.append(f"Attachments: {len(r['attachments'])}")
    for a in r["attachments"]:
        lines.append(f"  - {a['filename'] or '(no name)'}  {a['content_type']}  "
                     f"{a['size']} bytes  [{a['kind']}]")
    for d in e.documents:
        state = f"{d['pages']} page(s)" if d["usable"] else f"not usable: {d['error']}"
        nested = " (in a forwarded mail)" if d.get("nested") else ""
        lines.append(f"Document:    {d['filename'] or '(no name)'}{nested}: {state}")
    lines += _verdict_lines(e, r)
    if explain:
        lines += _explain_lines(e)
    return "\n".join(lines) + "\n"


def _verdict_lines(e: Examined, r: dict[str, Any]) -> list[str]:
    if isinstance(e.verdict, Ignore):
        return ["Verdict:     dropped (an automatic message is never answered)"]
    if "refusal" in r:
        f = r["refusal"]
        detail = f" ({f['detail']})" if f["detail"] else ""
        return [f"Verdict:     refused [{f['code']}] {f['text']}{detail}"]
    c = r["command"]
    lines = [f"Verdict:     accepted [{c['code']}] {sentence(c['code'], e.lang)}"]
    lines.append(f"  numbers:   {', '.join(c['numbers']) or '(none)'}")
    if c["invalid_numbers"]:
        lines.append(f"  invalid:   {', '.join(c['invalid_numbers'])}")
    if c["groups"]:
        lines.append(f"  groups:    {', '.join('@' + g for g in c['groups'])}")
    for key in ("ref", "comment", "when"):
        if c[key]:
            lines.append(f"  {key + ':':<10} {c[key]}")
    if c["cancel"]:
        jobs = ", ".join(map(str, e.cancelled)) or "none known"
        lines.append(f"  cancel:    yes (the scheduled jobs at that time; matching now: {jobs})")
    return lines


def _explain_lines(e: Examined) -> list[str]:
    lines = ["", "Why, step by step:"]
    lines += [f"  - {n}" for n in e.notes]
    found = e.found
    steps = list(found.steps)
    if found.command is not None:
        # the Subject's reading goes after the account step, before the password's
        at = next((i for i, s in enumerate(steps) if s.startswith("account ")), 0) + 1
        steps[at:at] = subject_steps(e.mail.subject, found.command, e.account.region)
    if e.code is not None and e.verdict.code != e.code:
        steps.append(f"{e.code}: {len(e.cancelled)} scheduled job(s) match")
    n = 0
    for step in steps:
        if step.startswith("  "):  # a detail of the step above
            lines.append(f"    {step}")
        else:
            n += 1
            lines.append(f"  {n}. {step}")
    if found.recipients or found.invalid:
        lines += [f"  {d}" for d in dial_steps(found.numbers, found.invalid)]
    lines += ["", "Diagnostics (mail-parser):"]
    lines += [f"  {d}" for d in diagnostics(e.raw)]
    return lines
