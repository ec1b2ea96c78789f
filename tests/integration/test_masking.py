"""The password never survives masking, whatever the Subject's form.

`masked_subject` is what intake stores (job.subject), renders (acks, notices, summaries)
and sends. The rule: the first field after reply/forward prefixes is the password
position and is always masked (`•••`), with or without a ':' after it, right password or
wrong; a password of 4 characters or more is masked wherever else it appears too.
"""

from __future__ import annotations

import base64
import re
from datetime import UTC, datetime
from email.header import Header

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from sqlalchemy import select, text

from mailgw.accounts import accounts
from mailgw.accounts.accounts import AccountError, check_password_rules
from mailgw.inbound.mail import parse_mail
from mailgw.store import Account, Job, Store
from mailgw.subject_parser import (
    MASK,
    MASK_EVERYWHERE_FROM,
    PREFIXES,
    masked_subject,
    parse_subject,
)

NOW = datetime(2026, 6, 1, 10, 0, tzinfo=UTC)
PW = "Zq7xK9pw"
SENDER = "zoe@example.com"


@pytest.mark.parametrize(("subject", "masked"), [
    (PW, MASK),  # the address form: the Subject is the password alone
    (f"{PW}:0170709901", f"{MASK}:0170709901"),
    (f"{PW}::INV-7", f"{MASK}::INV-7"),
    (f"Re: {PW}", f"Re: {MASK}"),
    (f"TR: Fwd:{PW}:0170709901", f"TR: Fwd:{MASK}:0170709901"),
    (f"RE[2]: AW: {PW}:0170709901", f"RE[2]: AW: {MASK}:0170709901"),
    (f"Ответ: {PW}:0170709901", f"Ответ: {MASK}:0170709901"),
    (f"  {PW}  :  0170709901 ", f"  {MASK}  :  0170709901 "),
    (f"{PW}\t:\t0170709901", f"{MASK} : 0170709901"),  # tabs read as spaces, like the parser
    (f"{PW}\r\n :0170709901", f"{MASK}   :0170709901"),  # a fold left in: CR LF read as spaces
    (f"{PW}：0170709901", MASK),  # a full-width colon is no separator: all one field
    (f"{PW}:0170709901:INV-7:{PW} again", f"{MASK}:0170709901:INV-7:{MASK} again"),
    ("WRONG1:0170709901", f"{MASK}:0170709901"),  # a wrong password is masked too
    ("Hello", MASK),  # a Subject that is no command: its first field is still masked
    (":0170709901", ":0170709901"),  # 88: no password, nothing to mask
    ("", ""),
    (None, None),
    (PW.encode(), MASK),
])  # fmt: skip
def test_forms(subject: str | bytes | None, masked: str | None) -> None:
    assert masked_subject(subject) == masked


def test_short_passwords_are_masked_only_in_their_position() -> None:
    """`12` is masked where the password goes, not inside the numbers."""
    assert masked_subject("12:0170709912") == f"{MASK}:0170709912"
    assert masked_subject("1234:0170701234") == f"{MASK}:017070{MASK}"


def test_password_rules_refuse_what_the_parser_would_read_as_a_prefix() -> None:
    for password in ("Re", "TR", "fwd", "Antw", "Re[2]", "AW ", "Ответ", "RE：x"):
        with pytest.raises(AccountError):
            check_password_rules(password)
    for password in ("Rex", "TRUC", PW, "Réponse", "Fwd2"):
        check_password_rules(password)


# -- properties --------------------------------------------------------------------------

def _valid(password: str) -> bool:
    try:
        check_password_rules(password)
    except AccountError:
        return False
    return True


# Passwords as accounts may have them (printable: the parser reads controls as spaces).
PASSWORDS = st.text(
    st.characters(blacklist_categories=("Cc", "Cs", "Zl", "Zp"), blacklist_characters=":"),
    min_size=MASK_EVERYWHERE_FROM, max_size=24).filter(_valid)
SPACES = st.text(st.sampled_from(" \t"), max_size=3)
PREFIX = st.builds(
    lambda word, upper, counter, before, colon: (
        f"{word.upper() if upper else word}{counter}{before}{colon} "),
    st.sampled_from(PREFIXES), st.booleans(),
    st.sampled_from(["", "[2]", " [12]"]), st.sampled_from(["", " "]), st.sampled_from(":："))
FIELD = st.one_of(
    st.sampled_from(["0170709901", "01 70 70 99 01", "+33170709901", "@team", "INV-7",
                     "relance client", "153012092027", "153012092027s", ""]),
    st.text(max_size=20))


@st.composite
def subjects(draw: st.DrawFn) -> tuple[str, str]:
    """(password, Subject): prefixes, the password with spaces around it, then nothing (the
    address form) or ':' and fields, some of which may hold the password again."""
    password = draw(PASSWORDS)
    prefixes = "".join(draw(st.lists(PREFIX, max_size=3)))
    tail = ""
    if draw(st.booleans()):
        fields = draw(st.lists(st.one_of(FIELD, st.just(password)), max_size=5))
        tail = ":" + ":".join(fields)
    subject = f"{prefixes}{draw(SPACES)}{password}{draw(SPACES)}{tail}"
    return password, subject


@settings(max_examples=600, deadline=None)
@given(subjects())
@example((PW, f"Re: {PW}"))
@example(("Ответ1", "Ответ: Ответ1:0170709901"))
def test_masked_subject_never_contains_the_password(case: tuple[str, str]) -> None:
    password, subject = case
    # the shape is a real command: the parser reads this password, so it is the one masked
    assert parse_subject(subject, region="FR", tz="Europe/Paris", now=NOW).password == password
    masked = masked_subject(subject)
    assert masked is not None and password not in masked
    assert masked_subject(masked) == masked  # idempotent: masking a stored Subject again


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200))
def test_whatever_the_parser_reads_as_the_password_is_masked(subject: str) -> None:
    password = parse_subject(subject, region="FR", tz="Europe/Paris", now=NOW).password
    masked = masked_subject(subject) or ""
    if len(password) >= MASK_EVERYWHERE_FROM:
        assert password not in masked
    assert masked_subject(masked) == masked


def _folded(subject: str, width: int) -> str:
    """The Subject as a sender may write it: folded (CRLF + space) before each space run."""
    words = re.split(r"(?=[ \t])", subject)
    lines, line = [], ""
    for word in words:
        if line and len(line) + len(word) > width:
            lines.append(line)
            line = word if word[:1] in (" ", "\t") else " " + word
        else:
            line += word
    return "\r\n".join([*lines, line])


@settings(max_examples=300, deadline=None)
@given(subjects(), st.sampled_from(["plain", "folded", "b", "q", "header"]),
       st.integers(min_value=8, max_value=60))
def test_mail_headers_in_every_encoding_are_masked(case: tuple[str, str], form: str,
                                                   width: int) -> None:
    """Through a real mail: the Subject as it is, folded, or RFC 2047 encoded (B, Q, or
    split into several encoded words by email.header), read by inbound, then masked."""
    password, subject = case  # plain and folded: 8-bit UTF-8 when not ASCII
    if form == "plain":
        header = subject
    elif form == "folded":
        header = _folded(subject, width)
    elif form == "b":
        header = "=?utf-8?b?" + base64.b64encode(subject.encode()).decode() + "?="
    elif form == "q":
        header = "=?utf-8?q?" + "".join(
            c if c.isascii() and c.isalnum() else "".join(f"={b:02X}" for b in c.encode())
            for c in subject) + "?="
    else:
        header = Header(subject, "utf-8", maxlinelen=width + 20).encode()
    raw = (f"From: alice@example.com\r\nTo: fax@gw.example.org\r\nSubject: {header}\r\n"
           "Message-ID: <m@example.com>\r\n\r\nbody\r\n").encode()
    mail = parse_mail(raw, envelope_from="alice@example.com")
    cmd = parse_subject(mail.subject, region="FR", tz="Europe/Paris", now=NOW)
    assert cmd.password == password, (header, mail.subject)
    masked = masked_subject(mail.subject)
    assert masked is not None and password not in masked


def test_upgrade_masks_the_subjects_stored_in_clear(store_url: str) -> None:
    """Subjects stored before the fix (the address form kept its password) are masked by
    migration 0008; those already masked stay as they were. (A password typed twice and
    masked once by the old rule cannot be found again: nothing tells which word it was.)"""
    store = Store(store_url)
    try:
        store.upgrade("0007")
        with store.tx() as s:  # the columns of revision 0007's account table, no more
            s.execute(text("INSERT INTO account (email, password_hash, region, lang, tz, "
                           "created_at) VALUES (:e, :h, 'FR', 'en', 'Europe/Paris', :now)"),
                      {"e": SENDER, "h": accounts.hash_password(PW),
                       "now": datetime.now(UTC).replace(tzinfo=None)})
        with store.tx() as s:
            account_id = s.scalar(select(Account.id))
            assert account_id is not None
            for subject in (PW, f"TR: Re: {PW}", f"{PW}:0170709901:{PW}", "•••:0170709901",
                            None):  # the columns of revision 0007's job table, no more
                s.execute(text("INSERT INTO job (account_id, channel, sender, state, outcome,"
                               " subject, created_at) VALUES (:a, 'fax', :s, 'done',"
                               " 'in_progress', :subject, :now)"),
                          {"a": account_id, "s": SENDER, "subject": subject,
                           "now": datetime.now(UTC).replace(tzinfo=None)})
        store.upgrade()
        assert store.current_revision() == store.head_revision()
        with store.read() as s:
            subjects = list(s.scalars(select(Job.subject).order_by(Job.id)))
        assert subjects == ["•••", "TR: Re: •••", "•••:0170709901:•••", "•••:0170709901", None]
    finally:
        store.dispose()
