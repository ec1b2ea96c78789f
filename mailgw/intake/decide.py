"""The decision: one mail's facts in, `Accept(plan) | Refuse(code, detail) | Ignore(reason)` out.

Pure: no store, no sandbox, no clock. What it needs from outside (the password check,
contact groups, the voice library, caller IDs, the document and sound checks) comes
through `Lookups`, which intake backs with the store and the sandbox, `mailgw parse` with a
read-only store or the embedded defaults (mailgw.intake.facts), and unit tests with plain values.
Intake and `parse` call this one function, so they cannot disagree. The codes that only
the commit's transaction can know (83, 95/96) are decided by pure functions too, from what
the commit read (mailgw.intake.settle); the addresses by mailgw.intake.routes.

Every verdict carries `Found`: what was read on the way (the ack lists it), and `steps`,
the reasons in order, which `mailgw parse --explain` prints.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from datetime import datetime

from mailgw.accounts import call_options as voice
from mailgw.codes import DETAILS, Code, Detail, is_accepted
from mailgw.documents import cover_options
from mailgw.documents import quality as qualities
from mailgw.documents.fax_input import LIMIT_REASONS, fax_documents, fax_kind
from mailgw.inbound.mail import Attachment, InboundMail
from mailgw.intake import trial
from mailgw.intake.proof import missing as missing_proof
from mailgw.intake.routes import address_numbers, channel_of
from mailgw.intake.verdict import (
    Accept,
    AccountFacts,
    Channel,
    Document,
    Found,
    Ignore,
    Lookups,
    MailFacts,
    Plan,
    Policy,
    Refuse,
    Verdict,
)
from mailgw.recipients import ListEntry, parse_list
from mailgw.subject_parser import Command, parse_subject
from mailgw.subject_parser import decide as subject_code

SIGNATURES = ("application/pkcs7-signature", "application/x-pkcs7-signature")


def read_command(mail: MailFacts, account: AccountFacts, lookups: Lookups, now: datetime
                 ) -> tuple[Command, bool]:
    """The Subject read in the account's region and zone, and whether the sender proved to
    be the account (an SMTP AUTH login stands for the password). An account that requires
    more than the password (`require`) is not proven by a mail that lacks it, whatever the
    password: the password is then not even checked."""
    cmd = parse_subject(mail.mail.subject or "", region=account.region, tz=account.tz, now=now)
    enough = not missing_proof(account.require, mail.proof)
    if mail.auth_login:
        if not cmd.password_given:
            cmd = dataclasses.replace(cmd, password="(smtp-auth)")
        return cmd, enough
    return cmd, enough and cmd.password_given and lookups.password_ok(cmd.password)


def decide(mail: MailFacts, account: AccountFacts | None, lookups: Lookups | None,
           now: datetime, *, policy: Policy) -> Verdict:
    """The verdict on one mail, in the design's order: 87, 82 (no account), 94 (Subject),
    the recipients (94/84 for a list, told only to a proven sender: else 88/82), then the
    Subject's order (88, 89, 82, 84, 85), 86, the cancel, 94, 93 (partial), and the document
    or sound (92, 93, 94, 90, 91)."""
    m, f = mail.mail, Found()
    if m.is_auto_reply:
        f.steps.append(f"automatic message ({m.auto_reply_reason}): dropped, never answered")
        return Ignore(m.auto_reply_reason or "auto-reply", f)
    f.channel = _channel(mail.rcpts, policy, f)
    if not mail.auth_login and not m.from_addr:
        return _refuse(f, Code.NO_SENDER, "no From address and no SMTP AUTH login")
    if account is None or lookups is None:  # the lookups are the account's
        return _refuse(f, Code.BAD_PASSWORD, f"{mail.auth_login or m.from_addr} is the "
                       "address of no account")
    f.steps.append(f"account {account.id}: region {account.region}, time zone {account.tz}")
    subject = m.subject or ""
    lacking = missing_proof(account.require, mail.proof)
    if len(subject.encode("utf-8", "replace")) > policy.max_subject_bytes:
        f.proven = mail.auth_login is not None and not lacking
        return _refuse(f, Code.OVER_LIMIT, "the Subject is too long",
                       Detail.of("subject_too_long", limit=policy.max_subject_bytes))
    cmd, f.proven = read_command(mail, account, lookups, now)
    f.command = cmd
    f.steps.append(f"account requires {account.require}; the mail lacks "
                   f"{', '.join(sorted(lacking))}: refused as a wrong password"
                   if lacking and (mail.auth_login or cmd.password_given) else
                   "sender proven by SMTP AUTH" if mail.auth_login else
                   "password given and right" if f.proven else
                   "password given but wrong" if cmd.password_given else "no password")
    refusal, extra, extra_invalid = _recipients(f, mail, account, cmd, policy)
    if refusal is not None:
        if f.proven:
            return refusal
        f.steps.append("the list's fault is not told to a sender not proven")
        code = Code.NO_PASSWORD if not cmd.password_given else Code.BAD_PASSWORD
        return _refuse(f, code, _SUBJECT_RULES[code])
    target = voice.library_target(cmd.ref, cmd.comment)
    if f.channel == "voice" and target and not cmd.cancel and extra + extra_invalid == 0 and not (
            cmd.numbers or cmd.invalid_numbers or cmd.groups) and m.sounds():
        f.command = dataclasses.replace(cmd, ref=target[0], comment=target[1])
        return _library(f, m, lookups, policy)
    mode, trial_problems = trial.mode(m.text_body or "", cmd.preview) \
        if f.channel == "fax" else (None, ())
    asked = dataclasses.replace(cmd, preview=mode is not None)  # no number needed then
    code = subject_code(asked, password_ok=f.proven, extra_numbers=extra,
                        extra_invalid=extra_invalid)
    if not is_accepted(code):
        detail = Detail.of("invalid_numbers", numbers=", ".join(f.invalid)[:300]) \
            if code == Code.BAD_NUMBER else None
        return _refuse(f, code, _SUBJECT_RULES[code], detail)
    if mode == trial.TEST and not account.test_number:
        return _refuse(f, Code.NO_NUMBER, "test: the account has no test number",
                       Detail.of("test_number_missing"))
    if cmd.groups:
        members, missing = lookups.groups(cmd.groups)
        if missing:
            return _refuse(f, Code.BAD_GROUP, "a contact group is unknown or empty",
                           Detail.of("groups_unknown", names=", ".join("@" + g for g in missing)))
        _merge(f, members)
        f.from_list = True
        f.steps.append(f"groups {', '.join('@' + g for g in cmd.groups)}: "
                       f"{len(members)} numbers")
    if cmd.cancel:
        what = f"the numbers {', '.join(f.numbers)}" if f.recipients else f"the ref {cmd.ref}"
        f.steps.append(f"95/96: a cancel of the scheduled jobs at {cmd.when_local} with {what}"
                       " (matched in the commit: 95 when some match, else 96)")
        return Accept(Plan("cancel", Code.CANCELLED), f)
    if mode == trial.PREVIEW:
        trial.first_only(f)
        code = Code.SENDING  # nothing is scheduled either
    elif mode == trial.TEST and account.test_number:
        trial.to_test_number(f, account.test_number)
    if len(f.recipients) > policy.max_recipients:
        return _refuse(f, Code.OVER_LIMIT, "too many recipients",
                       Detail.of("too_many_recipients", count=len(f.recipients),
                                 limit=policy.max_recipients))
    if m.partial:
        return _refuse(f, Code.BAD_DOCUMENT, "a fragment (message/partial) cannot be used",
                       Detail.of("partial_message"))
    verdict = _fax(f, m, lookups, policy, code, account, (mode, trial_problems)) \
        if f.channel == "fax" else \
        _voice(f, m, account, lookups, policy, code)
    _note_ignored(f, m)
    return verdict


_SUBJECT_RULES: dict[int, str] = {
    Code.NO_PASSWORD: "the Subject's first field (the password) is empty",
    Code.NO_NUMBER: "no number: none in the Subject, the address or an attached list "
                    "(a cancel without numbers needs a ref)",
    Code.BAD_PASSWORD: "the password is not the account's (nothing else is said before it)",
    Code.BAD_NUMBER: "no valid number among those given",
    Code.BAD_WHEN: "the time is not a valid date, or more than 15 minutes in the past",
}


def _refuse(f: Found, code: Code, rule: str, detail: Detail | None = None) -> Refuse:
    f.steps.append(f"{int(code)}: {rule}")
    return Refuse(code, detail, f)


def _channel(rcpts: tuple[str, ...], policy: Policy, f: Found) -> Channel:
    for rcpt in rcpts:
        channel = channel_of(rcpt, policy)
        if channel is not None:
            f.steps.append(f"recipient {rcpt}: {channel}")
            return channel
    f.steps.append("no recipient of ours: fax")
    return "fax"


def _merge(f: Found, entries: Iterable[ListEntry]) -> None:
    seen = {r.number for r in f.recipients}
    for entry in entries:
        if entry.number in seen:
            f.duplicates += 1
        else:
            seen.add(entry.number)
            f.recipients.append(entry)


def _recipients(f: Found, mail: MailFacts, account: AccountFacts, cmd: Command,
                policy: Policy) -> tuple[Refuse | None, int, int]:
    """Subject, address and attached lists; with how many valid and invalid numbers came
    from outside the Subject (for 89 and 84). A list that is too long (94) or a CSV
    without a number column (84) is refused here."""
    f.recipients = [ListEntry(n) for n in cmd.numbers]
    f.invalid = list(cmd.invalid_numbers)
    f.duplicates = cmd.duplicates
    good, bad = address_numbers(mail.rcpts, account.region, policy)
    f.invalid += bad
    before = len(f.recipients)
    _merge(f, [ListEntry(n) for n in good])
    for number in good:
        f.steps.append(f"address: {number}")
    for local in bad:
        f.steps.append(f"address: {local} is not a valid number in {account.region}")
    for att in [a for a in mail.mail.attachments if a.kind == "list"]:
        parsed = parse_list(att.data, att.filename, account.region,
                            max_lines=policy.max_list_lines)
        name = att.filename or "list"
        if parsed.too_long:
            return _refuse(f, Code.OVER_LIMIT, f"{name} is longer than the limit",
                           Detail.of("list_too_long", name=name, limit=policy.max_list_lines)), 0, 0
        if parsed.error and (att.filename or "").lower().endswith(".csv"):
            return _refuse(f, Code.BAD_NUMBER, f"{name}: {parsed.error}",
                           Detail.of("list_no_column", name=name)), 0, 0
        if not parsed.entries:
            f.steps.append(f"{name}: no number in it, not a list")
            continue  # a .txt that is not a list (a signature, a note): ignored
        _merge(f, parsed.entries)
        f.from_list = True
        f.invalid += list(parsed.invalid)
        f.duplicates += parsed.duplicates
        f.used.append(name)
        f.used_parts.add(att.part)
        f.steps.append(f"list {name}: {len(parsed.entries)} numbers, {len(parsed.invalid)} "
                       f"not valid, {parsed.duplicates} given twice")
    return None, len(f.recipients) - before, len(bad)


def _note_ignored(f: Found, mail: InboundMail) -> None:
    """Attachments that were not used, so the ack can say so (not logos, signatures)."""
    for att in mail.attachments:
        if att.part in f.used_parts or att.inline_image or att.content_type in SIGNATURES:
            continue
        if f.used_nested and att.content_type.startswith("message/"):
            continue
        f.ignored.append(att.filename or att.content_type)


def _fax(f: Found, mail: InboundMail, lookups: Lookups, policy: Policy, code: Code,
         account: AccountFacts,
         trying: tuple[trial.Mode | None, tuple[voice.Problem, ...]] = (None, ())) -> Verdict:
    """The documents rendered to fax pages (mailgw.documents.fax_input says which); one PDF to send.
    An office file LibreOffice cannot convert here is left out when other documents come
    with it (the ack names it), refused (93) when it is the only one. The quality is the
    body's `quality:` line, else the account's (mailgw.documents.quality); pictures are rendered at
    it, and the job keeps it in its options for the driver. So are the cover page and the
    header line (mailgw.documents.cover_options); a cover page counts in the fax's pages.
    A preview (mailgw.intake.trial) is planned as such: checked the same, never dialled."""
    quality, problems = qualities.resolve(mail.text_body or "", account.quality)
    extras, more = cover_options.resolve(mail.text_body or "", account.cover, account.header_line)
    problems += more + trying[1]
    f.steps.append(f"quality {quality} ({qualities.dpi(quality)} dpi)")
    docs = fax_documents(mail)
    if not docs:
        return _refuse(f, Code.NO_DOCUMENT, "no PDF attached (nor TIFF, JPEG, PNG or office "
                       "file)")
    others = any(fax_kind(d) != "office" for d in docs)
    parts: list[bytes] = []
    pages = 0
    for doc in docs:
        kind = fax_kind(doc)
        name = doc.filename or ("PDF" if kind == "pdf" else "document")
        check = lookups.pdf(doc.data) if kind == "pdf" else lookups.picture(doc.data, quality) \
            if kind == "picture" else lookups.office(doc.data, doc.filename)
        if check.reason == "office_unavailable" and others:
            f.steps.append(f"{name}: {check.error}; faxed without it")
            continue
        if not check.usable:
            over = check.reason in LIMIT_REASONS
            return _refuse(f, Code.OVER_LIMIT if over else Code.BAD_DOCUMENT,
                           f"{name}: {check.error or 'not usable'}",
                           Detail.of(check.reason or "broken", name=name, **dict(check.params)))
        pages += check.pages or 0
        if pages > policy.max_pages:
            return _refuse(f, Code.OVER_LIMIT, f"{pages} pages, more than {policy.max_pages}",
                           Detail.of("too_many_pages", pages=pages, limit=policy.max_pages))
        parts.append(check.document or doc.data)
        f.used_parts.add(doc.part)
        f.used_nested = f.used_nested or doc.nested
        f.used.append(f"{name} ({check.pages} p.)")
    merged = lookups.merge(parts)
    if merged is None:
        return _refuse(f, Code.BAD_DOCUMENT, "the PDFs could not be joined",
                       Detail.of("merge_failed"))
    pages += 1 if cover_options.COVER in extras else 0
    f.pages = pages
    names = [d.filename for d in docs if d.part in f.used_parts]
    document = Document(merged, names[0] if len(names) == 1 else f"{len(names)} documents",
                        "application/pdf", pages=pages)
    notes = tuple(Detail.of(p.key, **p.params) for p in problems)
    notes += tuple(Detail.of({"cover": "cover_page", "header": "header_line"}[k])
                   for k in extras)
    if trying[0] == trial.TEST and f.recipients:
        notes += (Detail.of("test_only", number=f.recipients[0].number),)
    preview = trying[0] == trial.PREVIEW
    notes += (Detail.of("preview_only"),) if preview else ()
    return _accept(f, Plan("preview" if preview else "send", code, document,
                           {qualities.KEY: quality, **extras}, notes=notes))


def _accept(f: Found, plan: Plan) -> Accept:
    when = f" (deferred to {f.command.when_local})" if f.command and f.command.when_utc else ""
    f.steps.append(f"{int(plan.code)}: accepted, {len(f.recipients)} number(s){when}")
    return Accept(plan, f)


def _sound(f: Found, sound: Attachment, lookups: Lookups, policy: Policy
           ) -> Document | Refuse:
    """The attached sound, probed and converted (93 when it cannot be used)."""
    name = sound.filename or "sound"
    limit = policy.max_sound_seconds
    check = lookups.sound(sound.data, limit)
    if not check.usable or check.audio is None:
        reason = check.reason if check.reason in DETAILS else "sound_empty"
        return _refuse(f, Code.BAD_DOCUMENT, f"{name}: {check.error or reason}",
                       Detail.of(reason, name=name, seconds=round(check.duration or 0),
                                 limit=f"{limit:g}"))
    f.used.append(f"{name} ({check.duration or 0:.0f} s)")
    f.used_parts.add(sound.part)
    f.used_nested = sound.nested
    return Document(check.audio, sound.filename or "sound.wav", "audio/wav",
                    duration=check.duration)


def _voice(f: Found, mail: InboundMail, account: AccountFacts, lookups: Lookups,
           policy: Policy, code: Code) -> Verdict:
    """A voice job's sound: the one attached (for this job only), else message `ref` of
    the account's library (90 without either, 91 for an unknown ref); then the options."""
    sounds = mail.sounds()
    ref = f.command.ref if f.command else None
    if sounds:
        got = _sound(f, sounds[0], lookups, policy)
        if isinstance(got, Refuse):
            return got
        document = got
    elif not ref:
        return _refuse(f, Code.NO_REF, "a voice call needs a sound attached or a ref")
    else:
        message = lookups.library_message(ref)
        if message is None:
            return _refuse(f, Code.BAD_REF, f"no message {ref} in the account's library",
                           Detail.of("ref_unknown", ref=ref[:60]))
        document = Document(message.audio, f"message {message.ref}", "audio/wav",
                            duration=message.duration)
        f.used.append(f"message {message.ref} ({message.duration:.0f} s)")
    resolved = voice.resolve(mail.text_body or "", dict(account.voice_defaults),
                             account.region, lookups.caller_ids())
    notes: tuple[Detail, ...] = (Detail.of(
        "options_used", options=voice.describe_options(resolved.options)),
    ) if resolved.options else ()
    notes += tuple(Detail.of(p.key, **p.params) for p in resolved.problems)
    return _accept(f, Plan("send", code, document, resolved.options, notes=notes))


def _library(f: Found, mail: InboundMail, lookups: Lookups, policy: Policy) -> Verdict:
    """`password::REF:comment:` with a sound to the voice address: store (or replace)
    message REF in the account's library (80)."""
    cmd = f.command
    assert cmd is not None
    f.steps.append(f"a sound with only a ref ({cmd.ref}): a library message to store")
    if not cmd.password_given:
        return _refuse(f, Code.NO_PASSWORD, _SUBJECT_RULES[Code.NO_PASSWORD])
    if not f.proven:
        return _refuse(f, Code.BAD_PASSWORD, _SUBJECT_RULES[Code.BAD_PASSWORD])
    key = voice.normalize_ref(cmd.ref or "")
    if key is None:
        return _refuse(f, Code.BAD_REF, "this ref cannot name a message",
                       Detail.of("ref_name", ref=(cmd.ref or "")[:60]))
    if mail.partial:
        return _refuse(f, Code.BAD_DOCUMENT, "a fragment (message/partial) cannot be used",
                       Detail.of("partial_message"))
    got = _sound(f, mail.sounds()[0], lookups, policy)
    _note_ignored(f, mail)
    if isinstance(got, Refuse):
        return got
    return _accept(f, Plan("store", Code.SENDING, got, store_ref=key))
