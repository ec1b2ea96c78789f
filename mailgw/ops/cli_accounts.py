"""`mailgw account`, `group` and `voice`: the operator's side of accounts, contact groups and
the voice library (recorded messages, verified caller IDs, default call options)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from mailgw.codes import DETAILS, detail
from mailgw.ops import config
from mailgw.ops.cli_common import EXIT_OK, EXIT_REFUSED, open_store, read_password


def cmd_account(args: argparse.Namespace, settings: config.Settings) -> int:
    from mailgw.accounts import (  # late import: start-up speed (SQLAlchemy, argon2)
        accounts,
        inbound_numbers,
        operators,
    )

    store = open_store(settings)
    a = settings.accounts
    try:
        if args.account_command == "add":
            password = read_password()
            credits = args.credits if args.credits is not None else a.default_credits
            with store.tx() as s:
                view = accounts.add_account(
                    s, args.email, password, region=args.region or a.default_region,
                    lang=args.lang or a.default_lang, tz=args.tz or a.default_tz,
                    credits=credits, require=args.require, quality=args.quality)
                if args.admin:
                    operators.set_flags(s, operators.Operator.command_line(), view.email,
                                        admin=True)
            print(f"account {view.email} created (id {view.id}, region {view.region}, "
                  f"lang {view.lang}, tz {view.tz}, credits "
                  f"{'unlimited' if view.credits is None else view.credits}, "
                  f"require {view.require}, quality {view.quality}"
                  f"{', admin' if args.admin else ''})")
        elif args.account_command == "passwd":
            password = read_password()
            with store.tx() as s:
                accounts.set_password(s, args.email, password)
            print(f"password of {args.email} changed")
        elif args.account_command == "set":
            with store.tx() as s:
                if args.admin is not None or args.disabled is not None:
                    operators.set_flags(s, operators.Operator.command_line(), args.email,
                                        admin=_yes(args.admin), disabled=_yes(args.disabled))
                view = accounts.update_account(
                    s, args.email, region=args.region, lang=args.lang, tz=args.tz,
                    credits=args.credits, window=args.window,
                    notice_address=args.notice_address, webhook_url=args.webhook_url,
                    webhook_secret=read_password() if args.webhook_secret_stdin else None,
                    retry=args.retry, require=args.require, quality=args.quality,
                    cover=args.cover, header_line=args.header_line,
                    test_number=args.test_number)
                numbers = None
                if args.inbound_number or args.no_inbound_number:
                    numbers = inbound_numbers.change(
                        s, args.email, args.inbound_number or [],
                        args.no_inbound_number or [])
            print(f"account {view.email}: region {view.region}, lang {view.lang}, tz {view.tz},"
                  f" credits {'unlimited' if view.credits is None else view.credits},"
                  f" require {view.require}, quality {view.quality},"
                  f" cover {'yes' if view.cover else 'no'},"
                  f" header-line {'yes' if view.header_line else 'no'},"
                  f" test-number {view.test_number or 'none'}"
                  f"{', admin' if view.admin else ''}{', DISABLED' if view.disabled else ''}"
                  + (f", inbound numbers {','.join(numbers) or 'none'}"
                     if numbers is not None else ""))
        elif args.account_command == "invite":
            from mailgw.notify.invite import send_invite  # late import: start-up speed

            with store.tx() as s:
                to = send_invite(s, settings, args.email)
                found = accounts.find_by_email(s, args.email)
                assert found is not None  # send_invite found it
                operators.invited(s, operators.Operator.command_line(), found.id, to)
            print(f"invitation for {args.email} queued to {to} (the link works once, "
                  "for 7 days)")
        elif args.account_command == "allow":
            with store.tx() as s:
                accounts.allow_sender(s, args.email, args.other_sender)
            print(f"{args.other_sender} may now send for {args.email}")
        elif args.account_command == "list":
            with store.read() as s:
                views = accounts.list_accounts(s)
                inbound = inbound_numbers.numbers(s, [v.id for v in views])
            if args.json:
                print(json.dumps([v.__dict__ | {"senders": list(v.senders),
                                                "inbound_numbers": inbound[v.id]}
                                  for v in views],
                                 ensure_ascii=False, indent=2))
            else:
                for v in views:
                    credits = "unlimited" if v.credits is None else str(v.credits)
                    print(f"{v.id:>5}  {v.email:<32} {v.region}  {v.lang}  {v.tz:<20} "
                          f"credits={credits}  quality={v.quality}  "
                          f"senders={','.join(v.senders)}"
                          + ("  admin" if v.admin else "") + ("  DISABLED" if v.disabled else "")
                          + (f"  inbound={','.join(inbound[v.id])}" if inbound[v.id] else ""))
    except accounts.AccountError as exc:
        print(f"mailgw: {exc}", file=sys.stderr)
        return EXIT_REFUSED
    return EXIT_OK


def _yes(value: str | None) -> bool | None:
    return None if value is None else value == "yes"


def cmd_group(args: argparse.Namespace, settings: config.Settings) -> int:
    from mailgw.accounts import groups  # late import: start-up speed (SQLAlchemy, argon2)

    store = open_store(settings)
    try:
        if args.group_command == "list":
            with store.read() as s:
                if args.name:
                    rows = groups.members(s, args.account, args.name)
                    if args.json:
                        print(json.dumps([{"number": n, "columns": c} for n, c in rows],
                                         ensure_ascii=False, indent=2))
                    else:
                        for number, cols in rows:
                            extra = "  ".join(f"{k}={v}" for k, v in cols.items())
                            print(f"{number}  {extra}".rstrip())
                else:
                    summary = groups.list_groups(s, args.account)
                    if args.json:
                        print(json.dumps([{"name": n, "members": c} for n, c in summary]))
                    else:
                        for name, count in summary:
                            print(f"@{name}  {count} numbers")
            return EXIT_OK
        with store.tx() as s:
            if args.group_command == "add":
                report = groups.add_numbers(s, args.account, args.name, args.numbers)
            else:
                path = Path(args.file)
                report = groups.import_file(s, args.account, args.name, path.read_bytes(),
                                            path.name, replace=args.replace,
                                            max_lines=settings.limits.max_list_lines)
    except (groups.GroupError, OSError) as exc:
        print(f"mailgw: {exc}", file=sys.stderr)
        return EXIT_REFUSED
    print(f"@{args.name.lstrip('@')}: {report.added} added, {report.duplicates} duplicates, "
          f"{len(report.invalid)} not valid")
    for bad in report.invalid[:20]:
        print(f"  not valid: {bad}")
    return EXIT_OK if report.added or not report.invalid else EXIT_REFUSED


def cmd_voice(args: argparse.Namespace, settings: config.Settings) -> int:
    from mailgw.accounts import (  # late import: start-up speed (SQLAlchemy, argon2)
        accounts,
        call_options,
        voice,
    )

    store = open_store(settings)

    def account_of(s: Any) -> Any:
        account = accounts.find_by_email(s, args.account)
        if account is None:
            raise call_options.VoiceError(f"no account {args.account}")
        return account

    try:
        if args.voice_command == "add":
            return _voice_add(args, settings, store, account_of)
        if args.voice_command == "callerid":
            with store.tx() as s:
                account = account_of(s)
                if args.callerid_command == "add":
                    number = voice.add_caller_id(s, account, args.number)
                    print(f"{number} is now a verified caller ID of {account.email}")
                elif args.callerid_command == "remove":
                    if not voice.remove_caller_id(s, account, args.number):
                        raise call_options.VoiceError(f"{args.number} is not a caller ID of "
                                               f"{account.email}")
                    print(f"{args.number} removed")
                else:
                    for number in voice.caller_ids(s, account.id):
                        print(number)
            return EXIT_OK
        with store.tx() as s:
            account = account_of(s)
            if args.voice_command == "list":
                rows = voice.list_messages(s, account.id)
                if args.json:
                    print(json.dumps([{"ref": m.ref, "duration": round(m.duration, 2),
                                       "created_at": m.created_at.isoformat(),
                                       "source_name": m.source_name} for m in rows],
                                     ensure_ascii=False, indent=2))
                for m in rows if not args.json else []:
                    print(f"{m.ref:<20} {m.duration:5.1f} s  {m.created_at:%Y-%m-%d %H:%M}  "
                          f"{m.source_name or ''}".rstrip())
            elif args.voice_command == "remove":
                if not voice.delete_message(s, account.id, args.ref):
                    raise call_options.VoiceError(f"no message {args.ref!r} for {account.email}")
                print(f"message {args.ref} removed")
            else:
                options = (voice.set_defaults(s, account, args.pairs, clear=args.clear)
                           if args.pairs or args.clear else call_options.load_defaults(account))
                described = call_options.describe_options(options) or "no options"
                print(f"{account.email}: {described}")
    except call_options.VoiceError as exc:
        print(f"mailgw: {exc}", file=sys.stderr)
        return EXIT_REFUSED
    return EXIT_OK


def _voice_add(args: argparse.Namespace, settings: config.Settings, store: Any,
               account_of: Any) -> int:
    """Check and convert the file in the sandbox, then store it under REF."""
    from mailgw.accounts import call_options, voice  # late import: start-up speed (SQLAlchemy)
    from mailgw.documents import checks as documents  # late import: start-up speed (sandbox)
    from mailgw.documents.sandbox import Limits  # late import: start-up speed (sandbox)

    path = Path(args.file)
    if call_options.normalize_ref(args.ref) is None:
        raise call_options.VoiceError(detail("ref_name", "en", ref=args.ref))
    with store.read() as s:
        account_of(s)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise call_options.VoiceError(f"cannot read {args.file}: {exc.strerror}") from None
    limit = settings.limits.max_sound_seconds
    check = documents.check_sound(
        data, Limits.of(settings.limits),
        max_seconds=limit)
    if not check.usable or check.audio is None:
        reason = check.reason if check.reason in DETAILS else "sound_empty"
        raise call_options.VoiceError(detail(reason, "en", name=path.name, limit=f"{limit:g}",
                                      seconds=round(check.duration or 0)))
    with store.tx() as s:
        replaced = voice.store_message(s, account_of(s).id, args.ref, check.audio,
                                       check.duration or 0.0, path.name)
    print(f"message {call_options.normalize_ref(args.ref)} {'replaced' if replaced else 'stored'}, "
          f"{round(check.duration or 0)} s ({check.format}, peak {check.peak_db} dBFS)")
    return EXIT_OK
