"""`mailgw parse` and intake give the same code for the same mail: every row of the corpus's
subjects.tsv, and random Subjects with address-form recipients and attached lists.

Both run against one real store (SQLite): parse reads it read-only just before intake
decides and commits the same bytes, so a cancel sees the jobs the rows before it made.
"""

from __future__ import annotations

import json
import random
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from argon2 import PasswordHasher
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from mailgw.accounts import accounts, groups, voice
from mailgw.app import prepare_store
from mailgw.documents.samples import make_pdf
from mailgw.intake.facts import ReadOnlyStore
from mailgw.intake.parse_report import examine
from mailgw.intake.service import Envelope, Intake
from mailgw.notify.render import Renderer
from mailgw.ops.config import Settings
from mailgw.store import Account, Store
from tests.conftest import CORPUS, PASSWORD, SENDER, free_port, make_settings

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=ZoneInfo("Europe/Paris"))  # the table's clock
FAX, VOICE = "fax@gw.example.org", "voice@gw.example.org"
PDF = make_pdf([["x"]])


@dataclass
class Pair:
    settings: Settings
    store: Store
    intake: Intake
    reader: ReadOnlyStore

    def codes(self, msg: EmailMessage, rcpt: str = FAX) -> tuple[int | None, int | None]:
        """(parse's code, intake's code) for the same bytes sent to `rcpt`."""
        raw = msg.as_bytes()
        seen = examine(raw, self.settings, now=NOW, to=rcpt, store=self.reader)
        result = self.intake.handle(raw, Envelope(mail_from=SENDER, rcpt_tos=(rcpt,)))
        return seen.code, result.code


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pair]:
    url = f"sqlite:///{tmp_path_factory.mktemp('agree') / 'mailgw.db'}"
    # Parse and intake must agree on the verdict: the guard's argon2 budget (a 4xx for
    # mail without proof once an account meets many wrong guesses) is lifted here.
    cfg = make_settings(url, free_port(), limits={"password_checks": 100_000,
                                                  "password_checks_all": 100_000})
    store = prepare_store(cfg)
    with store.tx() as s:
        accounts.add_account(s, SENDER, PASSWORD, region="FR", lang="en", tz="Europe/Paris",
                             credits=None)
        account = s.scalars(select(Account)).one()
        # the same password, hashed with argon2's cheapest parameters: a wrong one costs
        # milliseconds instead of a third of a second, and every example checks it twice
        account.password_hash = PasswordHasher(time_cost=1, memory_cost=8,
                                               parallelism=1).hash(PASSWORD)
        groups.add_numbers(s, SENDER, "clients", ["0170709911", "0170709912"])
        groups.add_numbers(s, SENDER, "fournisseurs", ["0170709913"])  # the table's groups
        voice.store_message(s, account.id, "promo", b"RIFF-not-played", 3.0)
    renderer = Renderer(from_address=cfg.notify.from_address, domain=cfg.gateway.domain)
    pair = Pair(cfg, store, Intake(store, cfg, renderer, clock=lambda: NOW),
                ReadOnlyStore(url))
    yield pair
    pair.reader.dispose()
    store.dispose()


def message(subject: str, *, pdf: bool = True,
            attach: tuple[str, bytes] | None = None) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = SENDER
    msg["To"] = FAX
    msg["Subject"] = subject
    msg["Message-ID"] = f"<{uuid.uuid4().hex}@example.com>"
    msg.set_content("Please fax the attachment.\n")
    if pdf:
        msg.add_attachment(PDF, maintype="application", subtype="pdf", filename="doc.pdf")
    if attach is not None:
        name, data = attach
        sub = "csv" if name.endswith(".csv") else "plain"
        msg.add_attachment(data, maintype="text", subtype=sub, filename=name)
    return msg


def _rows() -> list[Any]:
    path = CORPUS / "subjects.tsv"
    if not path.is_file():
        return [pytest.param(None, None, id="corpus-missing")]
    rows = []
    for lineno, line in enumerate(path.read_text(encoding="utf-8").split("\n"), start=1):
        subject, _, expected = line.rpartition("\t")
        if line and not line.startswith("#") and expected != "expected_json":
            rows.append(pytest.param(subject, json.loads(expected), id=str(lineno)))
    return rows


@pytest.mark.parametrize(("subject", "expected"), _rows())
def test_every_corpus_row(pair: Pair, corpus: Path, subject: str, expected: dict[str, Any]
                          ) -> None:
    msg = message(subject)
    parsed, served = pair.codes(msg)
    assert parsed == served, (subject, parsed, served)
    if not expected["cancel"] and str(msg["Subject"]).strip() == subject.strip():
        assert served == expected["code"], (subject, served)


def test_cancel_rows_cancel_the_jobs_the_rows_before_made(pair: Pair) -> None:
    when = "153012092031"
    assert pair.codes(message(f"{PASSWORD}:0170709921:INV-9::{when}")) == (81, 81)
    assert pair.codes(message(f"{PASSWORD}::INV-9::{when}s", pdf=False)) == (95, 95)
    assert pair.codes(message(f"{PASSWORD}::INV-9::{when}s", pdf=False)) == (96, 96)


LISTS = [None, ("numbers.csv", b"NOM;FAX\nDupont;01 70 70 99 31\nX;abc\n"),
         ("numbers.txt", b"0170709932\n0170709933;0170709932\n"),
         ("bad.csv", b"NAME;CITY\nx;y\n"), ("tel.csv", "Nom;Téléphone\nA;0170709934\n".encode()),
         ("note.txt", b"best regards")]
ELEMENTS = ["0170709901", "01 70 70 99 02", "+44 20 7946 0958", "0262 12 34 56", "0033170709903",
            "abc", "12", "@clients", "@nobody", ""]
WHENS = ["", "153012092026", "153012092026s", "120001062026", "110001062026", "1530120920",
         "990012092026", "153012092026S"]


@st.composite
def subjects(draw: st.DrawFn) -> str:
    fields = [draw(st.sampled_from([PASSWORD] * 4 + ["", "Wrong99"])),
              draw(st.sampled_from([",", ";", " , "])).join(
                  draw(st.lists(st.sampled_from(ELEMENTS), max_size=3))),
              draw(st.sampled_from(["", "INV-7", "32", "promo", "Promo"])),
              draw(st.sampled_from(["", "relance", "a: b"])),
              draw(st.sampled_from(WHENS))]
    kept = fields[:draw(st.integers(1, 5))]
    return draw(st.sampled_from(["", "Re: ", "TR: Fwd: ", "Ответ: "])) + ":".join(kept)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(subject=subjects(),
       rcpt=st.sampled_from([FAX, VOICE, "+33170709901@gw.example.org",
                             "0170709904@gw.example.org", "123456@gw.example.org"]),
       attach=st.sampled_from(LISTS), pdf=st.booleans())
def test_random_subjects(pair: Pair, subject: str, rcpt: str,
                         attach: tuple[str, bytes] | None, pdf: bool) -> None:
    random.seed()  # hypothesis seeds `random` the same for every example: the acks'
    # Message-IDs (email.utils.make_msgid) would repeat within the same 10 ms
    parsed, served = pair.codes(message(subject, pdf=pdf, attach=attach), rcpt)
    assert parsed == served, (subject, rcpt, attach, pdf, parsed, served)
