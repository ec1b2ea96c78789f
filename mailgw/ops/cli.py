"""`mailgw …`: the command line. Exit 0 on success, 1 on a refusal or failed check, 2 on a
usage or configuration error, 69 when a port, a server or the store is unavailable. Those
are one line on stderr; a traceback means a bug of ours.

This module parses (cli_parser), loads the configuration and hands over to one command
function: accounts, groups and voice in cli_accounts, jobs and the queue in cli_jobs, the
daemon and the store in cli_serve, mail and notice previews in cli_mail, API tokens in
cli_tokens."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from mailgw.errors import OperatorError
from mailgw.ops import cli_accounts, cli_jobs, cli_mail, cli_serve, cli_tokens, config, logs
from mailgw.ops.cli_common import EXIT_USAGE
from mailgw.ops.cli_parser import build_parser

Command = Callable[[argparse.Namespace, config.Settings], int]


def _settings(args: argparse.Namespace) -> config.Settings:
    return config.load(getattr(args, "config", None))


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "demo":
        from mailgw.ops import demo  # late import: start-up speed (the whole app)

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


COMMANDS: dict[str, Command] = {
    "check-config": cli_serve.cmd_check_config, "serve": cli_serve.cmd_serve,
    "db": cli_serve.cmd_db, "account": cli_accounts.cmd_account, "jobs": cli_jobs.cmd_jobs,
    "parse": cli_mail.cmd_parse, "group": cli_accounts.cmd_group,
    "notify": cli_mail.cmd_notify, "status": cli_jobs.cmd_status,
    "voice": cli_accounts.cmd_voice, "postfix-config": cli_serve.cmd_postfix_config,
    "token": cli_tokens.cmd_token,
}

if __name__ == "__main__":
    raise SystemExit(main())
