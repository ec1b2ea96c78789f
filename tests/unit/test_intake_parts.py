"""Intake's parts that need no store: the parse budget, the group commit, the idempotency
key, and how a verdict is kept for the commit (mailgw.intake.{budget,batching,model})."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime
from email.message import EmailMessage

import pytest

from mailgw.codes import Code, Detail
from mailgw.inbound.mail import parse_mail
from mailgw.intake.ack import reply_detail
from mailgw.intake.batching import GroupCommit
from mailgw.intake.budget import Budget
from mailgw.intake.model import Decision, idempotency_key
from mailgw.intake.verdict import Accept, Document, Found, Ignore, Plan, Refuse

NOW = datetime(2026, 6, 1, 10, 0, tzinfo=UTC)


def _mail(message_id: str | None = "<a@example.com>") -> bytes:
    msg = EmailMessage()
    msg["From"] = "client@example.com"
    msg["Subject"] = "secret:0170709901"
    if message_id:
        msg["Message-ID"] = message_id
    msg.set_content("hello\n")
    return msg.as_bytes()


def test_parse_budget_bounds_the_bytes_parsed_at_once() -> None:
    """Large mails are parsed one at a time (a mail over the budget counts as the whole
    budget); small ones share it. A property of the admissions, whatever the timing."""
    budget = Budget(10)
    lock = threading.Lock()
    inside = [0, 0]  # bytes being parsed now, the most seen

    def parse(size: int) -> None:
        with budget.hold(size):
            with lock:
                inside[0] += min(size, 10)
                inside[1] = max(inside[1], inside[0])
            with lock:
                inside[0] -= min(size, 10)

    threads = [threading.Thread(target=parse, args=(size,))
               for size in (20, 3, 3, 25, 5, 5, 1, 1, 12, 2) * 5]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert inside == [0, inside[1]] and 0 < inside[1] <= 10
    assert budget.used == 0 and budget.serving == budget.tickets == len(threads)


def test_group_commit_answers_each_caller_from_shared_batches() -> None:
    """While one batch commits, the callers that come queue up and share the next one."""
    batches: list[list[int]] = []

    def commit(items: list[int]) -> list[int]:
        if not batches:  # hold the first batch until every other caller waits
            deadline = time.monotonic() + 30
            while len(group.waiting) < 7 and time.monotonic() < deadline:
                time.sleep(0.001)
        batches.append(list(items))
        return [i * 10 for i in items]

    group: GroupCommit[int, int] = GroupCommit(commit)
    results: dict[int, int] = {}

    def call(i: int) -> None:
        results[i] = group.run(i)

    threads = [threading.Thread(target=call, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert results == {i: i * 10 for i in range(8)}
    assert [len(b) for b in batches] == [1, 7]


def test_group_commit_fails_only_the_failing_item() -> None:
    """A batch that raises is retried item by item: only the bad one fails, in its caller."""
    def commit(items: list[int]) -> list[int]:
        if 3 in items:
            raise ValueError("bad item")
        return items

    group: GroupCommit[int, int] = GroupCommit(commit)
    assert group.run(1) == 1
    with pytest.raises(ValueError, match="bad item"):
        group.run(3)
    group.commit = lambda items: [*items[:1], *[0] * (len(items) - 1)]  # a commit swapped in
    assert group.run(2) == 2


def test_idempotency_key() -> None:
    raw = _mail()
    mail = parse_mail(raw)
    fax = "fax@gw.example.org"
    assert idempotency_key(mail, raw, (fax,), fax) == "<a@example.com>"
    assert idempotency_key(mail, raw, (), fax) == "<a@example.com>"
    other = idempotency_key(mail, raw, ("voice@gw.example.org",), fax)
    assert other.startswith("<a@example.com> to:") and other != "<a@example.com>"
    assert idempotency_key(mail, raw, (" VOICE@gw.example.org",), fax) == other
    bare = _mail(None)
    assert idempotency_key(parse_mail(bare), bare).startswith("sha256:")


def _decision() -> Decision:
    return Decision(mail=parse_mail(_mail()), channel="fax", code=0, lang="en")


def test_a_decision_keeps_a_refusal_in_the_account_language() -> None:
    d = _decision()
    d.lang = "fr"
    d.take(Refuse(Code.OVER_LIMIT, Detail.of("too_many_pages", pages=12, limit=10),
                  Found(channel="voice", proven=True)))
    assert (d.code, d.detail, d.channel, d.proven) == (Code.OVER_LIMIT, "12 pages, au plus 10",
                                                       "voice", True)


def test_a_decision_keeps_a_plan_and_an_ignore() -> None:
    d = _decision()
    doc = Document(b"%PDF", "a.pdf", "application/pdf", pages=2)
    d.take(Accept(Plan("send", Code.SENDING, doc, {"quality": "high"},
                       notes=(Detail.of("option_line", line="x"),)), Found(pages=2)))
    assert (d.code, d.document, d.document_name, d.pages) == (Code.SENDING, b"%PDF", "a.pdf", 2)
    assert d.options == {"quality": "high"}
    assert d.detail == "options line not understood, ignored: x"
    dropped = _decision()
    dropped.take(Ignore("bounce", Found()))
    assert dropped.dropped == "bounce"


def test_the_reply_names_the_jobs_else_the_detail() -> None:
    d = _decision()
    d.detail = "why"
    assert reply_detail(d, [7]) == "job 7"
    assert reply_detail(d, [7, 8]) == "jobs 7, 8"
    assert reply_detail(d, []) == "why"
