"""Property: no Subject, however hostile, makes the parser raise or the decision fail."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from mailgw.codes import CODES
from mailgw.subject_parser import decide, masked_subject, parse_subject, strip_prefixes

NOW = datetime(2026, 6, 1, 10, 0, tzinfo=UTC)
FIELDS = st.text(alphabet=st.sampled_from(list("0123456789 +()-.,;:@sSReFwdTR\r\n\x00é☕Ω")),
                 max_size=40)


@settings(max_examples=400, deadline=None)
@given(st.one_of(st.text(max_size=300), st.lists(FIELDS, max_size=8).map(":".join)))
def test_parser_never_raises_and_always_decides(subject: str) -> None:
    cmd = parse_subject(subject, region="FR", tz="Europe/Paris", now=NOW)
    for ok in (True, False):
        assert decide(cmd, password_ok=ok) in CODES
    assert all(n.startswith("+") and n[1:].isdigit() for n in cmd.numbers)
    masked = masked_subject(subject)
    if cmd.password_given and ":" in strip_prefixes(subject):
        assert strip_prefixes(masked or "").lstrip().startswith("•••")


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=200))
def test_bytes_and_odd_types_are_safe(raw: bytes) -> None:
    cmd = parse_subject(raw.decode("utf-8", "surrogateescape"), region="FR",
                        tz="Europe/Paris", now=NOW)
    assert decide(cmd, password_ok=True) in CODES
