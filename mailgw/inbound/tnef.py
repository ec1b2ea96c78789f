"""Outlook's winmail.dat (TNEF): the files it wraps, read as if forwarded.

tnefparse reads the blob, after a guard: tnefparse trusts the 32-bit counts in a blob, and a
50-byte winmail.dat that announces four billion MAPI properties (or recipient rows, or values
of one property) makes it loop, and log a warning, four billion times, or fill the memory with
empty values (fuzz findings). A real count never promises more items than there are bytes
left. :func:`plausible` follows the blob the way tnefparse will, before it does (the same
reads, with tnefparse's own value reader, so each list ends where tnefparse's does), and
checks every count against the bytes that follow.
"""

from __future__ import annotations

import struct

from tnefparse import TNEF
from tnefparse.codepage import Codepage
from tnefparse.mapi import IMESSAGE_SIG, TNEFMAPI_Attribute, parse_property
from tnefparse.util import guid

from mailgw.inbound.model import Attachment
from mailgw.inbound.sniff import TNEF_TYPES, kind

MAX_TNEF_BYTES = 50 * 1024 * 1024

LVL_ATTACHMENT = 0x02
ATT_MAPI_PROPS = 0x9003
ATT_RECIP_TABLE = 0x9004
ATT_ATTACHMENT = 0x9005
ATT_OEM_CODEPAGE = 0x9007
MAPI_ATTACH_DATA_OBJ = 0x3701  # may hold a whole TNEF message, which tnefparse reads too
MULTI_VALUE, NAMED = 0x1000, 0x8000
SHORTS = (0x0002, 0x000B)  # short, boolean: padded to 4 bytes
MAX_DEPTH = 8  # messages inside messages
_U16, _U32 = struct.Struct("<H"), struct.Struct("<I")


def is_tnef(att: Attachment) -> bool:
    name = (att.filename or "").lower()
    return att.content_type.split(";")[0].strip() in TNEF_TYPES or name == "winmail.dat"


def tnef_attachments(att: Attachment) -> list[Attachment]:
    """Outlook's winmail.dat: the files it wraps, as if forwarded (nested). A winmail.dat that
    is not TNEF (mail 79 holds a PNG) decodes to nothing, never to an exception."""
    if len(att.data) > MAX_TNEF_BYTES or att.data[:4] != b"\x78\x9f\x3e\x22":
        return []
    if not plausible(att.data):  # counts that would make tnefparse spin for hours
        return []
    try:
        files = list(TNEF(att.data).attachments)
    except Exception:  # noqa: BLE001 - a broken TNEF blob is the sender's problem
        return []
    out = []
    for i, f in enumerate(files, 1):
        try:
            data = bytes(f.data)
            raw_name = f.long_filename() or f.name
        except Exception:  # noqa: BLE001 - one broken entry must not lose the others
            continue
        if isinstance(raw_name, bytes):
            raw_name = raw_name.decode("latin-1")
        name = str(raw_name).strip("\x00 ") if raw_name else None
        guessed = "application/pdf" if (name or "").lower().endswith(".pdf") else \
            "application/octet-stream"
        out.append(Attachment(filename=name, content_type=guessed, size=len(data),
                              kind=kind(guessed, name, data), data=data,
                              disposition="attachment", part=f"{att.part}.t{i}", nested=True))
    return out


# --------------------------------------------------------------------------- the guard


class _Implausible(Exception):
    pass


def plausible(data: bytes, depth: int = 0) -> bool:
    """False when a count in the blob promises more items than the bytes can hold."""
    try:
        _walk(data, depth)
    except _Implausible:
        return False
    except Exception:  # noqa: BLE001 - tnefparse gives up on the blob at the same read
        return True
    return True


def _walk(data: bytes, depth: int) -> None:
    """TNEF.__init__'s loop over attributes: level, name, type, size, data, checksum."""
    if depth > MAX_DEPTH:
        raise _Implausible
    offset, codepage = 6, None
    while offset + 12 < len(data):
        level, name, kind = struct.unpack_from("<BHH", data, offset)
        end = offset + min(len(data) - offset, _U32.unpack_from(data, offset + 5)[0] + 11)
        body = data[offset + 9 : end - 2]
        offset = end
        if level == LVL_ATTACHMENT:
            if name == ATT_ATTACHMENT:
                _mapi(body, codepage, 0, depth)
        elif name == ATT_MAPI_PROPS:
            _mapi(body, codepage, 0, depth)
        elif name == ATT_OEM_CODEPAGE:
            codepage = Codepage(_U32.unpack_from(body)[0]).codepage()
        elif name == ATT_RECIP_TABLE and kind not in (0x1, 0x7):
            rows, at = _U32.unpack_from(body)[0], 4
            if rows > len(body) // 4:
                raise _Implausible
            for _ in range(rows):
                at = _mapi(body, codepage, at, depth)


def _mapi(data: bytes, codepage: str | None, offset: int, depth: int) -> int:
    """decode_mapi's walk: the offset where it stops (it stops on any error)."""
    count = _U32.unpack_from(data, offset)[0]  # outside tnefparse's try: an error ends all
    offset += 4
    if count > (len(data) - offset) // 4:  # a property takes 4 bytes at least
        raise _Implausible
    try:
        for _ in range(count):
            if offset >= len(data):
                continue
            attr_type, attr_name = (_U16.unpack_from(data, offset)[0],
                                    _U16.unpack_from(data, offset + 2)[0])
            offset += 4
            if attr_name >= NAMED:
                guid(data, offset)
                offset += 16
                named = _U32.unpack_from(data, offset)[0]
                offset += 4
                if named == 0:
                    _U32.unpack_from(data, offset)
                    offset += 4
                else:
                    size = _U32.unpack_from(data, offset)[0]
                    offset += 4
                    size += -size % 4
                    data[offset : offset + size].decode("utf-16")
                    offset += size
            values = None
            if attr_type & MULTI_VALUE:
                attr_type ^= MULTI_VALUE
                values = _U32.unpack_from(data, offset)[0]
                offset += 4
                if values > (len(data) - offset) // 2 + 1:  # a value takes 2 bytes at least
                    raise _Implausible
            for _ in range(values or 1):
                value, offset = parse_property(data, offset, attr_name, attr_type, codepage,
                                               values)
                if attr_name == MAPI_ATTACH_DATA_OBJ:
                    _inner(TNEFMAPI_Attribute(attr_type, attr_name, value, ""), depth)
            if (values or 1) % 2 and attr_type in SHORTS:
                offset += 2
    except _Implausible:
        raise
    except Exception:  # noqa: BLE001 - tnefparse logs it and returns what it has
        return offset
    return offset


def _inner(attr: TNEFMAPI_Attribute, depth: int) -> None:
    """A message inside the attachment: tnefparse reads it as a TNEF blob of its own."""
    try:
        data = attr.data
        inner = isinstance(data, bytes) and data.startswith(IMESSAGE_SIG)
    except Exception:  # noqa: BLE001 - tnefparse fails on it the same way
        return
    if not inner:
        return
    try:
        _walk(data[len(IMESSAGE_SIG):], depth + 1)
    except _Implausible:
        raise
    except Exception:  # noqa: BLE001 - tnefparse gives up on that inner blob alone
        return
