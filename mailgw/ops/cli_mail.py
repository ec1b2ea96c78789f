"""`mailgw parse` and `mailgw notify preview`: what a mail would become and what a notice
looks like, with no side effects."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from pathlib import Path

from mailgw.ops import config
from mailgw.ops.cli_common import EXIT_OK, EXIT_REFUSED


def cmd_parse(args: argparse.Namespace, settings: config.Settings) -> int:
    from mailgw.intake.facts import open_read_only  # late import: start-up speed (the store)
    from mailgw.intake.parse_report import as_json, examine, text  # late import: idem

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


def cmd_notify(args: argparse.Namespace, settings: config.Settings) -> int:
    from mailgw.notify.preview import preview  # late import: start-up speed (Jinja2)

    sys.stdout.write(preview(settings, kind=args.kind, lang=args.lang, state=args.state,
                             channel=args.channel, html=args.html))
    return EXIT_OK
