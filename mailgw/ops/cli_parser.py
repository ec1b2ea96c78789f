"""The `mailgw` argument parser: every command, flag and help text (main() is in cli.py)."""

from __future__ import annotations

import argparse

from mailgw import __version__
from mailgw.errors import EX_UNAVAILABLE
from mailgw.intake.proof import REQUIRES
from mailgw.vocab import CHANNELS, FINAL_STATES, LANGS

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
    p.add_argument("--roles", help="comma-separated subset of smtp,imap,dispatch,notify,"
                   "http (default: [serve] roles from the config, with imap when [imap] is "
                   "enabled and http when [http] listen is set)")

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
    p.add_argument("--admin", action="store_true", help="an operator: the web space's admin "
                   "pages (accounts, queue, outbox, audit)")
    p = asub.add_parser("list", parents=[common], help="list accounts")
    p.add_argument("--json", action="store_true")
    p = asub.add_parser("invite", parents=[common], help="mail the account a one-time link "
                        "to set its web password (the web space; [notify] base_url)")
    p.add_argument("email")
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
    p.add_argument("--cover", choices=("yes", "no"), help="a cover page on every fax "
                   "(template <lang>/cover.html); a mail's body line 'cover: …' overrides it")
    p.add_argument("--header-line", choices=("yes", "no"), help="a header line (date, sender, "
                   "page x/y) on every page; a mail's body line 'header: …' overrides it")
    p.add_argument("--test-number", help="the account's own fax number, the only one a mail "
                   "with 'test: yes' in its body dials (or 'none')")
    p.add_argument("--inbound-number", action="append", metavar="NUMBER",
                   help="mail faxes received on this number (DID, E.164) to the account; "
                   "repeat for several; a number belongs to one account")
    p.add_argument("--no-inbound-number", action="append", metavar="NUMBER",
                   help="stop mailing faxes received on this number to the account")
    p.add_argument("--retry", help="this account's retry policy over [dispatch.retry], e.g. "
                   "'busy=2m,no_answer=10m,max_attempts=3,kill_time=6h' (or 'default')")
    p.add_argument("--admin", choices=("yes", "no"), help="an operator or not (journaled)")
    p.add_argument("--disabled", choices=("yes", "no"), help="refuse the account's mail (82), "
                   "API tokens and web sign-in, or let it back (journaled)")
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

    tok = sub.add_parser("token", parents=[common], help="API tokens (Authorization: Bearer)")
    tsub = tok.add_subparsers(dest="token_command", metavar="ACTION")
    tsub.required = True
    p = tsub.add_parser("add", parents=[common], help="issue a token for an account; it is "
                        "printed once, only its hash is kept")
    p.add_argument("email")
    p.add_argument("--name", required=True, help="unique per account, e.g. the client's name")
    p.add_argument("--scope", required=True, metavar="SCOPES", help="comma-separated: "
                   "jobs:write, jobs:read, library, admin")
    p.add_argument("--expires", metavar="AGE", help="expire after this long, e.g. 90d or 12h "
                   "(default: never)")
    p = tsub.add_parser("list", parents=[common], help="tokens (never the secret): prefix, "
                        "scopes, last use, state")
    p.add_argument("email", nargs="?", help="only this account's tokens")
    p.add_argument("--json", action="store_true")
    p = tsub.add_parser("revoke", parents=[common], help="revoke a token at once")
    p.add_argument("id", type=int)

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
