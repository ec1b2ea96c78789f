"""The Subject grammar (mailgw.subject_parser): parse_subject, decide and masked_subject.

parse_subject "never raises on any Subject" (ValueError is only for a bad time zone or a
naive `now`, which this target never passes); decide must give one of the design's codes.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

from fuzz.targets import Finding, corpus_dir, storable
from mailgw.subject_parser import decide, masked_subject, parse_subject

ALLOWED: tuple[type[BaseException], ...] = ()
REGIONS = ("FR", "US", "DE", "GB", "RE", "JP", "BE", "CH")
ZONES = ("Europe/Paris", "America/New_York", "UTC", "Australia/Lord_Howe")
NOW = datetime(2025, 3, 30, 0, 30, tzinfo=UTC)  # the night Paris skips 02:00-03:00
CODES = frozenset({80, 81, 82, 84, 85, 88, 89, 95, 96})


def one_input(data: bytes) -> None:
    """Byte 0 picks the region and the zone; the rest is the decoded Subject (UTF-8; stray
    bytes kept as lone surrogates, as a careless decoder would hand them over)."""
    if not data:
        return
    region, zone = REGIONS[data[0] & 7], ZONES[(data[0] >> 3) & 3]
    subject = data[1:].decode("utf-8", "surrogateescape")
    cmd = parse_subject(subject, region=region, tz=zone, now=NOW)
    for text in (cmd.password, cmd.ref, cmd.comment, *cmd.numbers, *cmd.invalid_numbers,
                 *cmd.groups):
        storable("Subject field", text)
    for password_ok in (False, True):
        for extra in (0, 1):
            code = decide(cmd, password_ok=password_ok, extra_numbers=extra,
                          cancel_matches=bool(extra))
            if code not in CODES:
                raise Finding(f"decide gave {code}, not a reply code")
    masked = masked_subject(subject)
    if masked is None:
        raise Finding("masked_subject lost a Subject")
    storable("masked Subject", masked)


def seeds() -> Iterator[tuple[str, bytes]]:
    corpus = corpus_dir()
    if corpus is not None and (corpus / "subjects.tsv").is_file():
        lines = (corpus / "subjects.tsv").read_text(encoding="utf-8").splitlines()
        for i, line in enumerate(lines):
            if line and not line.startswith("#"):
                yield f"tsv-{i}", b"\x00" + line.split("\t", 1)[0].encode("utf-8")
    yield "full", b"\x00Re: FGB45L : 01 70 70 99 01, @team ; +33170709902 : ref : c : 120029032025"
    yield "cancel", b"\x09Fwd: pw:+12125550100:r::093015042025s"
