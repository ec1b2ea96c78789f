"""`mailgw token add|list|revoke`: an account's API tokens. The secret is printed once, by
`add`, alone on standard output (so `TOKEN=$(mailgw token add …)` works); lists show its
prefix only."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime, timedelta

from mailgw.ops import config
from mailgw.ops.cli_common import EXIT_OK, EXIT_REFUSED, EXIT_USAGE, open_store
from mailgw.ops.config_types import parse_duration


def _when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M") if value is not None else "never"


def cmd_token(args: argparse.Namespace, settings: config.Settings) -> int:
    from mailgw.accounts import tokens  # late import: start-up speed (SQLAlchemy)

    expires_at = None
    if args.token_command == "add" and args.expires:
        try:
            seconds = parse_duration(args.expires)
        except ValueError as exc:
            print(f"mailgw: --expires: {exc}", file=sys.stderr)
            return EXIT_USAGE
        expires_at = datetime.now(UTC) + timedelta(seconds=seconds)
    store = open_store(settings)
    try:
        if args.token_command == "add":
            with store.tx() as s:
                token_id, token = tokens.issue(s, args.email, args.name, args.scope,
                                               expires_at=expires_at)
            print(token)
            print(f"token {token_id} {args.name!r} for {args.email} (scopes {args.scope}, "
                  f"expires {_when(expires_at)}); it is not shown again: store it now",
                  file=sys.stderr)
        elif args.token_command == "list":
            with store.read() as s:
                views = tokens.list_tokens(s, args.email)
            now = datetime.now(UTC)
            if args.json:
                print(json.dumps([{"id": v.id, "account": v.account_email, "name": v.name,
                                   "prefix": v.prefix, "scopes": list(v.scopes),
                                   "state": v.state(now),
                                   "created_at": v.created_at.isoformat(),
                                   "last_used_at": v.last_used_at and v.last_used_at.isoformat(),
                                   "expires_at": v.expires_at and v.expires_at.isoformat(),
                                   "revoked_at": v.revoked_at and v.revoked_at.isoformat()}
                                  for v in views], ensure_ascii=False, indent=2))
            else:
                for v in views:
                    print(f"{v.id:>5}  {v.account_email:<32} {v.name:<20} {v.prefix}…  "
                          f"{','.join(v.scopes):<20} last used {_when(v.last_used_at)}  "
                          f"expires {_when(v.expires_at)}  {v.state(now)}")
        else:
            with store.tx() as s:
                done = tokens.revoke(s, args.id)
            if not done:
                print(f"mailgw: no active token {args.id}", file=sys.stderr)
                return EXIT_REFUSED
            print(f"token {args.id} revoked")
    except tokens.TokenError as exc:
        print(f"mailgw: {exc}", file=sys.stderr)
        return EXIT_REFUSED
    return EXIT_OK
