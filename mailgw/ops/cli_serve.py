"""`mailgw serve`, `check-config`, `db upgrade|purge` and `postfix-config`: running the daemon
and keeping its store and its mail server in line with the configuration."""

from __future__ import annotations

import argparse
import asyncio
import sys
from datetime import UTC, datetime
from pathlib import Path

from mailgw.errors import OperatorError
from mailgw.ops import config, postfix_config, tools
from mailgw.ops.cli_common import EXIT_OK, EXIT_REFUSED, EXIT_USAGE, open_store
from mailgw.ops.progress import Progress


def cmd_check_config(args: argparse.Namespace, settings: config.Settings) -> int:
    lacking = tools.missing(settings, tools.configured_roles(settings))
    if lacking:
        print(f"error: {tools.describe(lacking)}", file=sys.stderr)
        return EXIT_USAGE
    print(f"configuration OK ({settings.source})")
    return EXIT_OK


def cmd_serve(args: argparse.Namespace, settings: config.Settings) -> int:
    from mailgw.app import serve  # late import: start-up speed (the whole daemon)

    roles = tools.configured_roles(settings)  # + imap when enabled, + http when listen set
    if args.roles:
        roles = tuple(r.strip() for r in args.roles.split(",") if r.strip())
        bad = [r for r in roles if r not in config.ROLES]
        if not roles or bad:
            print(f"mailgw: --roles: unknown role(s) {', '.join(bad) or '(none given)'}; "
                  f"choose from {', '.join(config.ROLES)}", file=sys.stderr)
            return EXIT_USAGE
    lacking = tools.missing(settings, roles)
    if lacking:  # the role refuses to start rather than fail every mail
        print(f"mailgw: not starting: {tools.describe(lacking)}", file=sys.stderr)
        return tools.EX_UNAVAILABLE
    return asyncio.run(serve(settings, roles))


def cmd_db(args: argparse.Namespace, settings: config.Settings) -> int:
    if args.db_command == "purge":
        return _purge(args, settings)
    store = open_store(settings, migrate=False)
    before = store.current_revision()
    with Progress("migrating the store") as progress:
        store.upgrade()
        progress.advance()
    after = store.current_revision()
    print(f"database at revision {after}" + ("" if before == after else f" (was {before})"))
    return EXIT_OK


def _purge(args: argparse.Namespace, settings: config.Settings) -> int:
    from mailgw.ops import retention  # late import: start-up speed (SQLAlchemy)

    try:
        days = config.parse_duration(args.older_than) / 86400
        documents = config.parse_duration(args.documents_older_than) / 86400
        retention.cutoffs(datetime.now(UTC), days, documents)
    except ValueError as exc:
        print(f"mailgw: {exc}", file=sys.stderr)
        return EXIT_USAGE
    store = open_store(settings)
    with Progress("purging finished jobs") as progress:
        report = retention.purge(store, days, documents, dry_run=args.dry_run,
                                 on_chunk=progress.advance)
    for line in report.lines():
        print(line)
    return EXIT_OK


def cmd_postfix_config(args: argparse.Namespace, settings: config.Settings) -> int:
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
