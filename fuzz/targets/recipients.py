"""Recipient lists (mailgw.recipients): an attached .txt or .csv list, a Subject's number
field and one written number. Pure functions that report bad input in their result
(`invalid`, `error`, `too_long`, None): any exception is a finding."""

from __future__ import annotations

from collections.abc import Iterator

from fuzz.targets import Finding, corpus_dir, storable
from mailgw.recipients import normalize_number, parse_list, parse_number_list

ALLOWED: tuple[type[BaseException], ...] = ()
REGIONS = ("FR", "US", "DE", "GB", "RE", "JP", "BE", "CH")
NAMES = ("list.txt", "LISTE.CSV", None, "numbers.csv")


def _e164(number: str) -> None:
    if not (number.startswith("+") and number[1:].isdigit() and number.isascii()):
        raise Finding(f"{number!r} is not E.164")


def one_input(data: bytes) -> None:
    """Byte 0 picks the region and the reader; the rest is the list (or the text)."""
    if not data:
        return
    region, mode, body = REGIONS[data[0] & 7], (data[0] >> 3) & 7, data[1:]
    if mode < 4:
        listed = parse_list(body, NAMES[mode], region, max_lines=2000)
        for entry in listed.entries:
            _e164(entry.number)
            for name, value in entry.columns:
                storable("list column", name)
                storable("list cell", value)
        for bad in listed.invalid:
            storable("invalid list element", bad)
    elif mode < 6:
        numbers = parse_number_list(body.decode("utf-8", "replace"), region)
        for number in numbers.numbers:
            _e164(number)
    else:
        found = normalize_number(body.decode("utf-8", "replace"), region)
        if found is not None:
            _e164(found)


def seeds() -> Iterator[tuple[str, bytes]]:
    yield "txt", b"\x00" + b"01 70 70 99 01\n+33 1 70 70 99 02; 0033170709903,\r\nabc\n"
    yield "csv", b"\x08" + "Nom;Fax;Ville\nDupont;01 70 70 99 01;Paris\nÉric;x;\n".encode()
    yield "csv-comma", b"\x19" + b'name,"mobile"\n"A, B","+1 212 555 0100"\n'
    yield "csv-cp1252", b"\x08" + "Numéro;Société\n0170709901;Sàrl\n".encode("cp1252")
    yield "csv-bom", b"\x18" + "\ufeffTEL,Nom\r\n+4930123456,X\r\n".encode()
    yield "field", b"\x20" + b"01 70 70 99 01, @team ; +33170709902,, 0262 12 34 56"
    yield "one", b"\x30" + b"(0)1.70.70-99.01"
    corpus = corpus_dir()
    if corpus is not None and (corpus / "subjects.tsv").is_file():
        lines = (corpus / "subjects.tsv").read_text(encoding="utf-8").splitlines()
        for i, line in enumerate(lines):
            fields = line.split("\t", 1)[0].split(":")
            if not line.startswith("#") and len(fields) > 1 and fields[1].strip():
                yield f"tsv-{i}", b"\x20" + fields[1].encode("utf-8")
