"""`mailgw jobs list|show|cancel|retry|report` and `mailgw status`: the operator's view of
jobs and of the queue. Cancelling and retrying go through the jobs service, which owns the
notices they cause."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from mailgw.ops import config
from mailgw.ops.cli_common import EXIT_OK, EXIT_REFUSED, open_store
from mailgw.vocab import FINAL_STATES


def cmd_jobs(args: argparse.Namespace, settings: config.Settings) -> int:
    from mailgw.jobs import reports, views  # late import: start-up speed (SQLAlchemy)

    store = open_store(settings)
    if args.jobs_command in ("cancel", "retry"):
        return _change(args, settings, store)
    with store.read() as s:
        if args.jobs_command == "list":
            jobs = views.list_jobs(s, args.state, deliveries=args.json)  # text: counts only
            if args.json:
                print(json.dumps(jobs, ensure_ascii=False, indent=2))
            else:
                for j in jobs:
                    done = j["states"].get("delivered", 0)
                    print(f"{j['id']:>6}  {j['channel']:<5} {j['state']:<9} {j['outcome']:<14} "
                          f"{done}/{j['progress']['total']} delivered  {j['sender']}  "
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
                print_job(job)
            return EXIT_OK
        chunks = reports.job_csv_chunks(s, args.id)  # streamed: a campaign has 100,000 lines
        if chunks is None:
            print(f"mailgw: no job {args.id}", file=sys.stderr)
            return EXIT_REFUSED
        for chunk in chunks:
            sys.stdout.buffer.write(chunk.encode("utf-8"))
        return EXIT_OK


def _change(args: argparse.Namespace, settings: config.Settings, store: Any) -> int:
    """`jobs cancel` and `jobs retry`, through the jobs service (it writes the notices)."""
    from mailgw.jobs.service import Jobs, RetryRefused  # late import: start-up speed
    from mailgw.notify.render import renderer_for  # late import: start-up speed (Jinja2)

    jobs = Jobs(store, settings, renderer_for(settings))
    if args.jobs_command == "cancel":
        report = jobs.cancel(args.id)
        if report is None:
            print(f"mailgw: no job {args.id}", file=sys.stderr)
            return EXIT_REFUSED
        print(f"job {args.id}: {report.cancelled} cancelled, {report.requested} calls in flight "
              f"asked to stop, {report.untouched} already final")
        return EXIT_OK if report.cancelled or report.requested else EXIT_REFUSED
    try:
        count = jobs.retry(args.id)
    except RetryRefused as exc:
        print(f"mailgw: job {args.id}: {exc}", file=sys.stderr)
        return EXIT_REFUSED
    if count is None:
        print(f"mailgw: no job {args.id}", file=sys.stderr)
        return EXIT_REFUSED
    print(f"job {args.id}: {count} deliveries queued again")
    return EXIT_OK if count else EXIT_REFUSED


def print_job(job: dict[str, Any]) -> None:
    """`jobs show` without --json: the job, its progress, each delivery and its attempts."""
    print(f"job {job['id']} ({job['channel']}) from {job['sender']}: {job['state']}, "
          f"{job['outcome']}")
    counts: dict[str, int] = job["states"]
    final = sum(n for state, n in counts.items() if state in FINAL_STATES)
    print(f"  progress: {final}/{job['progress']['total']} final ("
          + ", ".join(f"{n} {state}" for state, n in sorted(counts.items())) + ")")
    for key in ("message_id", "created_at", "when", "ref", "comment", "pages"):
        if job[key] is not None:
            print(f"  {key}: {job[key]}")
    lines = []
    for d in job["deliveries"]:
        lines.append(f"  {d['number']}: {d['state']}, pages {d['pages_sent']}/"
                     f"{d['pages_total']}, CSID {d['csid'] or 'not reported'}")
        lines += [f"    {a['started_at']} {a['result']} {a['error_text'] or ''}".rstrip()
                  for a in d["attempts"]]
    if lines:
        print("\n".join(lines))


def cmd_status(args: argparse.Namespace, settings: config.Settings) -> int:
    from mailgw.jobs import views  # late import: start-up speed (SQLAlchemy)

    store = open_store(settings)
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
