"""`mailgw …`: the command line. Exit 0 on success, 1 on a refusal or failed check, 2 on a
usage or configuration error, 69 when a port, a server or the store is unavailable. Those
are one line on stderr; a traceback means a bug of ours."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from mailgw import __version__
from mailgw.errors import EX_UNAVAILABLE, OperatorError
from mailgw.intake.proof import REQUIRES
from mailgw.ops import config, logs
from mailgw.vocab import CHANNELS, FINAL_STATES, LANGS

EXIT_OK, EXIT_REFUSED, EXIT_USAGE = 0, 1, 2
REQUIRE_CHOICES = tuple(REQUIRES)
REQUIRE_HELP = ("what proves the sender beyond the Subject's password: password (nothing "
                "more), password+dmarc (a DMARC-aligned DKIM or SPF pass for the From domain) "
                "or password+auth (SMTP AUTH); a mail without it gets 82")
QUALITY_CHOICES = ("normal", "high", "best")  # documents.quality.NAMES (not imported: cheap CLI)
QUALITY_HELP = ("fax quality: normal 204x98, high 204x196 (default), best 204x392 dpi; "
                "a mail's body line 'quality: …' overrides it")


def _common() -> argparse.ArgumentParser:
    # --config is accepted before or after the command; SUPPRESS keeps the earlier value.
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("--config", metavar="FILE", default=argparse.SUPPRESS,
                   help="configuration file (default: $MAILGW_CONFIG, /etc/mailgw/mailgw.toml,"
                        " else embedded defaults)")
    return p


def build_parser() -> argparse.ArgumentParser:
    common = _common()
    parser = argparse.ArgumentParser(
        prog="mailgw", parents=[common],
        description="Send faxes and voice messages by email; mail back delivery notices.",
        epilog=f"Exit status: 0 success, 1 refusal or failed check, 2 usage or config error, "
               f"{EX_UNAVAILABLE} port, server or store unavailable.")
    parser.add_argument("--version", action="version", version=f"mailgw {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    p = sub.add_parser("demo", parents=[common], help="run a fax and a voice mail end to end "
                       "on embedded defaults and print what the sender receives")
    p.add_argument("--lang", choices=LANGS, default="en",
                   help="language of the demo account (default en)")
    p.add_argument("--keep", action="store_true", help="keep the temporary store")

    p = sub.add_parser("serve", parents=[common], help="run the daemon")
    p.add_argument("--roles", help="comma-separated subset of smtp,imap,dispatch,notify "
                   "(default: [serve] roles from the config)")

    p = sub.add_parser("parse", parents=[common],
                       help="show what intake would see and decide for a mail (no side effects)")
    p.add_argument("file", metavar="FILE.eml")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--explain", action="store_true",
                   help="also say why, step by step, and the mail's diagnostics (MIME defects, "
                        "Received chain)")
    p.add_argument("--to", metavar="ADDRESS", help="the recipient, as in RCPT TO (default: the "
                   "fax address); decides the channel and the address form (+33…@domain)")

    acc = sub.add_parser("account", parents=[common], help="manage accounts")
    asub = acc.add_subparsers(dest="account_command", metavar="ACTION")
    asub.required = True
    p = asub.add_parser("add", parents=[common], help="create an account")
    p.add_argument("email")
    p.add_argument("--password-stdin", action="store_true", required=True,
                   help="read the gateway password from standard input (never from argv)")
    p.add_argument("--region", help="default region for national numbers (e.g. FR)")
    p.add_argument("--lang", choices=LANGS)
    p.add_argument("--tz", help="time zone (e.g. Europe/Paris)")
    p.add_argument("--credits", type=int, help="credits (default: no limit)")
    p.add_argument("--require", choices=REQUIRE_CHOICES, default="password",
                   help=REQUIRE_HELP)
    p.add_argument("--quality", choices=QUALITY_CHOICES, default="high", help=QUALITY_HELP)
    p = asub.add_parser("list", parents=[common], help="list accounts")
    p.add_argument("--json", action="store_true")
    p = asub.add_parser("passwd", parents=[common], help="change an account's password")
    p.add_argument("email")
    p.add_argument("--password-stdin", action="store_true", required=True)
    p = asub.add_parser("set", parents=[common], help="change an account's settings")
    p.add_argument("email")
    p.add_argument("--region")
    p.add_argument("--lang", choices=LANGS)
    p.add_argument("--tz")
    p.add_argument("--credits", help="a number, +N / -N to add or take, or 'unlimited'")
    p.add_argument("--window", help="sending window, e.g. '08:00-20:00 Mon-Sat' (or 'none')")
    p.add_argument("--notice-address", help="send notices and summaries here (or 'none')")
    p.add_argument("--webhook-url", help="POST signed JSON events here (or 'none')")
    p.add_argument("--webhook-secret-stdin", action="store_true",
                   help="read the webhook's HMAC secret from standard input")
    p.add_argument("--require", choices=REQUIRE_CHOICES, help=REQUIRE_HELP)
    p.add_argument("--quality", choices=QUALITY_CHOICES, help=QUALITY_HELP)
    p.add_argument("--retry", help="this account's retry policy over [dispatch.retry], e.g. "
                   "'busy=2m,no_answer=10m,max_attempts=3,kill_time=6h' (or 'default')")
    p = asub.add_parser("allow", parents=[common], help="let another address send for an "
                        "account")
    p.add_argument("email")
    p.add_argument("other_sender")

    grp = sub.add_parser("group", parents=[common], help="contact groups (@name in the Subject)")
    gsub = grp.add_subparsers(dest="group_command", metavar="ACTION")
    gsub.required = True
    p = gsub.add_parser("add", parents=[common], help="add numbers to a group (created if new)")
    p.add_argument("account")
    p.add_argument("name")
    p.add_argument("numbers", nargs="+", metavar="NUMBER")
    p = gsub.add_parser("list", parents=[common], help="an account's groups, or one group's "
                        "members")
    p.add_argument("account")
    p.add_argument("name", nargs="?")
    p.add_argument("--json", action="store_true")
    p = gsub.add_parser("import", parents=[common], help="add the numbers of a .csv or .txt "
                        "list to a group")
    p.add_argument("account")
    p.add_argument("name")
    p.add_argument("file", metavar="FILE.csv")
    p.add_argument("--replace", action="store_true", help="replace the group's members")

    vo = sub.add_parser("voice", parents=[common], help="voice: recorded messages (the ref in "
                        "the Subject), verified caller IDs, default call options")
    vsub = vo.add_subparsers(dest="voice_command", metavar="ACTION")
    vsub.required = True
    p = vsub.add_parser("add", parents=[common], help="store (or replace) message REF from a "
                        "WAV, MP3, M4A, OGG or AMR file")
    p.add_argument("account")
    p.add_argument("ref", help="a number or a name (letters, digits, - and _)")
    p.add_argument("file", metavar="FILE")
    p = vsub.add_parser("list", parents=[common], help="an account's recorded messages")
    p.add_argument("account")
    p.add_argument("--json", action="store_true")
    p = vsub.add_parser("remove", parents=[common], help="delete message REF")
    p.add_argument("account")
    p.add_argument("ref")
    cid = vsub.add_parser("callerid", parents=[common], help="numbers an account may show "
                          "(callerid: in a mail), once you checked it owns them")
    csub = cid.add_subparsers(dest="callerid_command", metavar="ACTION")
    csub.required = True
    for name, text in (("add", "add a verified number"), ("remove", "remove a number")):
        p = csub.add_parser(name, parents=[common], help=text)
        p.add_argument("account")
        p.add_argument("number")
    p = csub.add_parser("list", parents=[common], help="the account's verified numbers")
    p.add_argument("account")
    p = vsub.add_parser("options", parents=[common], help="show or set the account's default "
                        "call options (transfer, welcome, callerid, retries, voicemail)")
    p.add_argument("account")
    p.add_argument("pairs", nargs="*", metavar="KEY=VALUE",
                   help="e.g. transfer=0170709901 retries=2 voicemail=only (empty value: off)")
    p.add_argument("--clear", action="store_true", help="drop the defaults first")

    jobs = sub.add_parser("jobs", parents=[common], help="operator views of jobs")
    jsub = jobs.add_subparsers(dest="jobs_command", metavar="ACTION")
    jsub.required = True
    p = jsub.add_parser("list", parents=[common], help="list jobs (newest first)")
    p.add_argument("--state", help="only jobs in this state")
    p.add_argument("--json", action="store_true")
    p = jsub.add_parser("show", parents=[common], help="one job with its deliveries")
    p.add_argument("id", type=int)
    p.add_argument("--json", action="store_true")
    p = jsub.add_parser("cancel", parents=[common], help="cancel a job: what has not gone out "
                        "is cancelled, a call in flight is stopped as soon as the driver allows")
    p.add_argument("id", type=int)
    p = jsub.add_parser("retry", parents=[common], help="queue a job's failed and expired "
                        "deliveries again")
    p.add_argument("id", type=int)
    p = jsub.add_parser("report", parents=[common], help="a job's delivery report")
    p.add_argument("id", type=int)
    p.add_argument("--csv", action="store_true", help="CSV (the only format for now)")

    nt = sub.add_parser("notify", parents=[common], help="notification tools")
    nsub = nt.add_subparsers(dest="notify_command", metavar="ACTION")
    nsub.required = True
    p = nsub.add_parser("preview", parents=[common], help="render a sample notice, ack or "
                        "summary with the configured templates")
    p.add_argument("--lang", choices=LANGS, default="en")
    p.add_argument("--state", default="delivered", choices=FINAL_STATES)
    p.add_argument("--kind", choices=("notice", "ack", "summary"), default="notice")
    p.add_argument("--channel", choices=CHANNELS, default="fax")
    p.add_argument("--html", action="store_true", help="show the HTML part instead of the text")

    db = sub.add_parser("db", parents=[common], help="database maintenance")
    dsub = db.add_subparsers(dest="db_command", metavar="ACTION")
    dsub.required = True
    dsub.add_parser("upgrade", parents=[common], help="run the migrations")
    p = dsub.add_parser("purge", parents=[common], help="delete finished jobs, their documents "
                        "and old mail records (data retention)")
    p.add_argument("--older-than", default="90d", metavar="AGE",
                   help="finished jobs, sent notices, idempotency keys and provider events "
                   "older than this go (default 90d; e.g. 30d, 12h)")
    p.add_argument("--documents-older-than", default="7d", metavar="AGE",
                   help="the faxes and sounds of finished jobs go sooner (default 7d)")
    p.add_argument("--dry-run", action="store_true", help="count, change nothing")

    p = sub.add_parser("status", parents=[common], help="the queue and the outbox at a glance")
    p.add_argument("--json", action="store_true")

    sub.add_parser("check-config", parents=[common],
                   help="validate the configuration; name each wrong key")

    p = sub.add_parser("postfix-config", parents=[common],
                       help="print the Postfix main.cf lines and maps (transport, relay "
                            "recipients, size limit) that match this configuration")
    p.add_argument("--dir", default="/etc/postfix", metavar="DIR",
                   help="where the map files go (default /etc/postfix)")
    p.add_argument("--write", action="store_true",
                   help="write the map files into DIR and print only the main.cf lines")
    return parser


def _settings(args: argparse.Namespace) -> config.Settings:
    return config.load(getattr(args, "config", None))


def _read_password() -> str:
    data = sys.stdin.readline()
    return data.rstrip("\r\n")


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "demo":
        from mailgw.ops import demo

        return demo.main(lang=args.lang, keep=args.keep)
    try:
        settings = _settings(args)
    except config.ConfigError as exc:
        if args.command == "check-config":
            for problem in exc.problems:
                print(f"error: {problem}", file=sys.stderr)
        else:
            print(f"mailgw: configuration error: {'; '.join(exc.problems)}", file=sys.stderr)
        return EXIT_USAGE
    logs.setup(settings.log.level, settings.log.format)
    handler = COMMANDS[args.command]
    try:
        return handler(args, settings)
    except OperatorError as exc:
        print(f"mailgw: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130


def cmd_check_config(args: argparse.Namespace, settings: config.Settings) -> int:
    from mailgw.ops import tools

    lacking = tools.missing(settings, tools.configured_roles(settings))
    if lacking:
        print(f"error: {tools.describe(lacking)}", file=sys.stderr)
        return EXIT_USAGE
    print(f"configuration OK ({settings.source})")
    return EXIT_OK


def cmd_serve(args: argparse.Namespace, settings: config.Settings) -> int:
    from mailgw.app import serve

    roles = tuple(settings.serve.roles)
    if settings.imap.enabled and "imap" not in roles:
        roles += ("imap",)  # [imap] enabled = true adds the poller to the default roles
    if args.roles:
        roles = tuple(r.strip() for r in args.roles.split(",") if r.strip())
        bad = [r for r in roles if r not in config.ROLES]
        if not roles or bad:
            print(f"mailgw: --roles: unknown role(s) {', '.join(bad) or '(none given)'}; "
                  f"choose from {', '.join(config.ROLES)}", file=sys.stderr)
            return EXIT_USAGE
    from mailgw.ops import tools

    lacking = tools.missing(settings, roles)
    if lacking:  # the role refuses to start rather than fail every mail
        print(f"mailgw: not starting: {tools.describe(lacking)}", file=sys.stderr)
        return tools.EX_UNAVAILABLE
    return asyncio.run(serve(settings, roles))


def _store(settings: config.Settings, migrate: bool = True) -> Any:
    from mailgw.app import prepare_store

    return prepare_store(settings, migrate=migrate)


def cmd_db(args: argparse.Namespace, settings: config.Settings) -> int:
    from mailgw.ops.progress import Progress

    if args.db_command == "purge":
        return _purge(args, settings)
    store = _store(settings, migrate=False)
    before = store.current_revision()
    with Progress("migrating the store") as progress:
        store.upgrade()
        progress.advance()
    after = store.current_revision()
    print(f"database at revision {after}" + ("" if before == after else f" (was {before})"))
    return EXIT_OK


def _purge(args: argparse.Namespace, settings: config.Settings) -> int:
    from mailgw.ops import retention
    from mailgw.ops.progress import Progress

    try:
        days = config.parse_duration(args.older_than) / 86400
        documents = config.parse_duration(args.documents_older_than) / 86400
        retention.cutoffs(datetime.now(UTC), days, documents)
    except ValueError as exc:
        print(f"mailgw: {exc}", file=sys.stderr)
        return EXIT_USAGE
    store = _store(settings)
    with Progress("purging finished jobs") as progress:
        report = retention.purge(store, days, documents, dry_run=args.dry_run,
                                 on_chunk=progress.advance)
    for line in report.lines():
        print(line)
    return EXIT_OK


def cmd_account(args: argparse.Namespace, settings: config.Settings) -> int:
    from mailgw.accounts import accounts

    store = _store(settings)
    a = settings.accounts
    try:
        if args.account_command == "add":
            password = _read_password()
            credits = args.credits if args.credits is not None else a.default_credits
            with store.tx() as s:
                view = accounts.add_account(
                    s, args.email, password, region=args.region or a.default_region,
                    lang=args.lang or a.default_lang, tz=args.tz or a.default_tz,
                    credits=credits, require=args.require, quality=args.quality)
            print(f"account {view.email} created (id {view.id}, region {view.region}, "
                  f"lang {view.lang}, tz {view.tz}, credits "
                  f"{'unlimited' if view.credits is None else view.credits}, "
                  f"require {view.require}, quality {view.quality})")
        elif args.account_command == "passwd":
            password = _read_password()
            with store.tx() as s:
                accounts.set_password(s, args.email, password)
            print(f"password of {args.email} changed")
        elif args.account_command == "set":
            with store.tx() as s:
                view = accounts.update_account(
                    s, args.email, region=args.region, lang=args.lang, tz=args.tz,
                    credits=args.credits, window=args.window,
                    notice_address=args.notice_address, webhook_url=args.webhook_url,
                    webhook_secret=_read_password() if args.webhook_secret_stdin else None,
                    retry=args.retry, require=args.require, quality=args.quality)
            print(f"account {view.email}: region {view.region}, lang {view.lang}, tz {view.tz},"
                  f" credits {'unlimited' if view.credits is None else view.credits},"
                  f" require {view.require}, quality {view.quality}")
        elif args.account_command == "allow":
            with store.tx() as s:
                accounts.allow_sender(s, args.email, args.other_sender)
            print(f"{args.other_sender} may now send for {args.email}")
        elif args.account_command == "list":
            with store.read() as s:
                views = accounts.list_accounts(s)
            if args.json:
                print(json.dumps([v.__dict__ | {"senders": list(v.senders)} for v in views],
                                 ensure_ascii=False, indent=2))
            else:
                for v in views:
                    credits = "unlimited" if v.credits is None else str(v.credits)
                    print(f"{v.id:>5}  {v.email:<32} {v.region}  {v.lang}  {v.tz:<20} "
                          f"credits={credits}  quality={v.quality}  "
                          f"senders={','.join(v.senders)}")
    except accounts.AccountError as exc:
        print(f"mailgw: {exc}", file=sys.stderr)
        return EXIT_REFUSED
    return EXIT_OK


def cmd_group(args: argparse.Namespace, settings: config.Settings) -> int:
    from mailgw.accounts import groups

    store = _store(settings)
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


def cmd_jobs(args: argparse.Namespace, settings: config.Settings) -> int:
    from mailgw.dispatch import queries
    from mailgw.jobs import reports, views

    store = _store(settings)
    if args.jobs_command == "cancel":
        from mailgw.notify.messages import notice_on_final
        from mailgw.notify.render import renderer_for

        report = queries.cancel_job(store, args.id,
                                    notice_on_final(settings, renderer_for(settings)))
        if report is None:
            print(f"mailgw: no job {args.id}", file=sys.stderr)
            return EXIT_REFUSED
        print(f"job {args.id}: {report.cancelled} cancelled, {report.requested} calls in flight "
              f"asked to stop, {report.untouched} already final")
        return EXIT_OK if report.cancelled or report.requested else EXIT_REFUSED
    if args.jobs_command == "retry":
        if views.document_purged(store, args.id):
            print(f"mailgw: job {args.id}: its document was purged (db purge); send the mail "
                  "again", file=sys.stderr)
            return EXIT_REFUSED
        try:
            count = queries.retry_job(store, args.id)
        except queries.RetryRefused as exc:
            print(f"mailgw: job {args.id}: {exc}", file=sys.stderr)
            return EXIT_REFUSED
        if count is None:
            print(f"mailgw: no job {args.id}", file=sys.stderr)
            return EXIT_REFUSED
        print(f"job {args.id}: {count} deliveries queued again")
        return EXIT_OK if count else EXIT_REFUSED
    with store.read() as s:
        if args.jobs_command == "list":
            jobs = views.list_jobs(s, args.state)
            if args.json:
                print(json.dumps(jobs, ensure_ascii=False, indent=2))
            else:
                for j in jobs:
                    done = sum(1 for d in j["deliveries"] if d["state"] == "delivered")
                    print(f"{j['id']:>6}  {j['channel']:<5} {j['state']:<9} {j['outcome']:<14} "
                          f"{done}/{len(j['deliveries'])} delivered  {j['sender']}  "
                          f"{j['created_at']}")
            return EXIT_OK
        if args.jobs_command == "show":
            job = views.get_job(s, args.id)
            if job is None:
                print(f"mailgw: no job {args.id}", file=sys.stderr)
                return EXIT_REFUSED
            if args.json:
                print(json.dumps(job, ensure_ascii=False, indent=2))
            else:
                _print_job(job)
            return EXIT_OK
        csv_text = reports.job_csv(s, args.id)
        if csv_text is None:
            print(f"mailgw: no job {args.id}", file=sys.stderr)
            return EXIT_REFUSED
        sys.stdout.buffer.write(csv_text.encode("utf-8"))
        return EXIT_OK


def cmd_voice(args: argparse.Namespace, settings: config.Settings) -> int:
    from mailgw.accounts import accounts, voice

    store = _store(settings)

    def account_of(s: Any) -> Any:
        account = accounts.find_by_email(s, args.account)
        if account is None:
            raise voice.VoiceError(f"no account {args.account}")
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
                        raise voice.VoiceError(f"{args.number} is not a caller ID of "
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
                    raise voice.VoiceError(f"no message {args.ref!r} for {account.email}")
                print(f"message {args.ref} removed")
            else:
                options = (voice.set_defaults(s, account, args.pairs, clear=args.clear)
                           if args.pairs or args.clear else voice.load_defaults(account))
                print(f"{account.email}: " + (voice.describe_options(options) or "no options"))
    except voice.VoiceError as exc:
        print(f"mailgw: {exc}", file=sys.stderr)
        return EXIT_REFUSED
    return EXIT_OK


def _voice_add(args: argparse.Namespace, settings: config.Settings, store: Any,
               account_of: Any) -> int:
    """Check and convert the file in the sandbox, then store it under REF."""
    from mailgw.accounts import voice
    from mailgw.codes import DETAILS, detail
    from mailgw.documents import checks as documents
    from mailgw.documents.sandbox import Limits

    path = Path(args.file)
    if voice.normalize_ref(args.ref) is None:
        raise voice.VoiceError(detail("ref_name", "en", ref=args.ref))
    with store.read() as s:
        account_of(s)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise voice.VoiceError(f"cannot read {args.file}: {exc.strerror}") from None
    limit = settings.limits.max_sound_seconds
    check = documents.check_sound(
        data, Limits.of(settings.limits),
        max_seconds=limit)
    if not check.usable or check.audio is None:
        reason = check.reason if check.reason in DETAILS else "sound_empty"
        raise voice.VoiceError(detail(reason, "en", name=path.name, limit=f"{limit:g}",
                                      seconds=round(check.duration or 0)))
    with store.tx() as s:
        replaced = voice.store_message(s, account_of(s).id, args.ref, check.audio,
                                       check.duration or 0.0, path.name)
    print(f"message {voice.normalize_ref(args.ref)} {'replaced' if replaced else 'stored'}, "
          f"{round(check.duration or 0)} s ({check.format}, peak {check.peak_db} dBFS)")
    return EXIT_OK


def _print_job(job: dict[str, Any]) -> None:
    print(f"job {job['id']} ({job['channel']}) from {job['sender']}: {job['state']}, "
          f"{job['outcome']}")
    counts: dict[str, int] = {}
    for d in job["deliveries"]:
        counts[d["state"]] = counts.get(d["state"], 0) + 1
    final = sum(n for state, n in counts.items() if state in FINAL_STATES)
    print(f"  progress: {final}/{len(job['deliveries'])} final ("
          + ", ".join(f"{n} {state}" for state, n in sorted(counts.items())) + ")")
    for key in ("message_id", "created_at", "when", "ref", "comment", "pages"):
        if job[key] is not None:
            print(f"  {key}: {job[key]}")
    for d in job["deliveries"]:
        print(f"  {d['number']}: {d['state']}, pages {d['pages_sent']}/{d['pages_total']}, "
              f"CSID {d['csid'] or 'not reported'}")
        for a in d["attempts"]:
            print(f"    {a['started_at']} {a['result']} {a['error_text'] or ''}".rstrip())


def cmd_parse(args: argparse.Namespace, settings: config.Settings) -> int:
    from mailgw.intake.facts import open_read_only
    from mailgw.intake.parse_report import as_json, examine, text

    try:
        raw = Path(args.file).read_bytes()
    except OSError as exc:
        print(f"mailgw: cannot read {args.file}: {exc.strerror}", file=sys.stderr)
        return EXIT_REFUSED
    store, note = open_read_only(settings)
    try:
        seen = examine(raw, settings, now=datetime.now(UTC), to=args.to, store=store,
                       store_note=note)
    finally:
        if store is not None:
            store.dispose()
    if args.json:
        print(json.dumps(as_json(seen), ensure_ascii=False, indent=2))
    else:
        sys.stdout.write(text(seen, explain=args.explain))
    return EXIT_OK


def cmd_status(args: argparse.Namespace, settings: config.Settings) -> int:
    from mailgw.jobs import views

    store = _store(settings)
    with store.read() as s:
        st = views.status(s)
    if args.json:
        print(json.dumps(st, indent=2))
        return EXIT_OK
    states = ", ".join(f"{k} {v}" for k, v in sorted(st["deliveries"].items())) or "none"
    print(f"deliveries: {states}")
    print(f"due now: {st['due']} (oldest waiting {st['queue_lag_seconds']} s), "
          f"sending: {st['sending']}, next scheduled: {st['next_scheduled'] or '-'}")
    print(f"outbox: {st['outbox_unsent']} waiting (oldest {st['outbox_oldest_age_seconds']} s), "
          f"{st['outbox_dead']} dead")
    return EXIT_OK


def cmd_postfix_config(args: argparse.Namespace, settings: config.Settings) -> int:
    from mailgw.ops import postfix_config

    directory = Path(args.dir)
    cfg = postfix_config.render(settings, directory)
    if not args.write:
        sys.stdout.write(cfg.text(directory))
        return EXIT_OK
    try:
        written = postfix_config.write(cfg, directory)
    except OSError as exc:
        raise OperatorError(f"cannot write into {directory}: {exc.strerror}", EXIT_REFUSED
                            ) from None
    print("\n".join(cfg.main_cf))
    print(f"# wrote {', '.join(map(str, written))}; now run: "
          + "; ".join(f"postmap {directory / n}" for n in cfg.hashed))
    return EXIT_OK


def cmd_notify(args: argparse.Namespace, settings: config.Settings) -> int:
    from mailgw.notify.preview import preview

    sys.stdout.write(preview(settings, kind=args.kind, lang=args.lang, state=args.state,
                             channel=args.channel, html=args.html))
    return EXIT_OK


COMMANDS = {
    "check-config": cmd_check_config, "serve": cmd_serve, "db": cmd_db,
    "account": cmd_account, "jobs": cmd_jobs, "parse": cmd_parse, "group": cmd_group,
    "notify": cmd_notify, "status": cmd_status, "voice": cmd_voice,
    "postfix-config": cmd_postfix_config,
}

if __name__ == "__main__":
    raise SystemExit(main())
