"""Outlook's winmail.dat (TNEF) -> the files it wraps (mailgw.inbound.tnef.tnef_attachments).

The reader promises that a broken blob "decodes to nothing, never to an exception"; a hang,
a memory blow-up or a file name the store cannot take is a finding.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterator
from pathlib import Path

import tnefparse.tnef  # noqa: F401  # imported here, not on first use, so atheris instruments it

from fuzz.targets import Finding, storable
from mailgw.inbound.model import Attachment
from mailgw.inbound.tnef import tnef_attachments

ALLOWED: tuple[type[BaseException], ...] = ()
MAGIC = struct.pack("<I", 0x223E9F78)


def _attr(level: int, name: int, typ: int, data: bytes) -> bytes:
    return (struct.pack("<BII", level, (typ << 16) | name, len(data)) + data
            + struct.pack("<H", sum(data) & 0xFFFF))


def make_tnef(files: list[tuple[str, bytes]]) -> bytes:
    """A minimal TNEF stream as Outlook writes it: version, then per file RendData, Title,
    Data (the same layout as tests/unit/test_tnef.py builds)."""
    out = MAGIC + struct.pack("<H", 0x0001)
    out += _attr(1, 0x9006, 0x0008, struct.pack("<I", 0x00010000))
    for name, data in files:
        out += _attr(2, 0x9002, 0x0006, b"\x01\x00\xff\xff\xff\xff" + b"\0" * 8)
        out += _attr(2, 0x8010, 0x0001, name.encode() + b"\0")
        out += _attr(2, 0x800F, 0x0006, data)
    return out


def one_input(data: bytes) -> None:
    """The bytes are the blob; the TNEF signature is put in front when missing, so the
    fuzzer does not spend its time on the one-line magic check."""
    blob = data if data[:4] == MAGIC else MAGIC + data
    att = Attachment(filename="winmail.dat", content_type="application/ms-tnef",
                     size=len(blob), kind="other", data=blob, part="2")
    for found in tnef_attachments(att):
        storable("TNEF file name", found.filename)
        if found.size != len(found.data) or not found.nested:
            raise Finding(f"TNEF file {found.part} is inconsistent")


def seeds() -> Iterator[tuple[str, bytes]]:
    yield "one-pdf.tnef", make_tnef([("scan.pdf", b"%PDF-1.4\n%%EOF\n")])
    yield "two-files.tnef", make_tnef([("a.pdf", b"%PDF-1.4 a"), ("n\xe9.txt", b"note")])
    yield "empty.tnef", make_tnef([])
    # tnefparse's own samples (LGPL, not in this repository), when given: TNEF_SAMPLES=dir.
    extra = os.environ.get("TNEF_SAMPLES")
    if extra and Path(extra).is_dir():
        for path in sorted(Path(extra).glob("*.tnef")):
            yield path.name, path.read_bytes()
