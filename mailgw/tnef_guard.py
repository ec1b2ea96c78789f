"""Turn away a winmail.dat whose counts would keep tnefparse busy for hours (a fuzz finding).

tnefparse trusts the 32-bit counts of MAPI property lists: a 50-byte blob that announces
four billion properties makes ``decode_mapi`` loop (and log a warning) four billion times,
and a multi-value count as large fills the memory with empty values. A real count never
promises more items than there are bytes left, so :func:`plausible` walks the blob the way
tnefparse will, before it does, and checks each count against what follows. Where tnefparse
would stop on an error (a short read, an unknown type), the walk stops too.
"""

from __future__ import annotations

import struct

ATT_MAPI_PROPS = 0x9003  # the message's MAPI properties
ATT_ATTACHMENT = 0x9005  # an attachment's MAPI properties
MAPI_ATTACH_DATA_OBJ = 0x3701  # may hold a whole TNEF message, read again by tnefparse
IMESSAGE_SIG = b"\x07\x03\x02\x00\x00\x00\x00\x00\xc0\x00\x00\x00\x00\x00\x00\x46"
MULTI_VALUE = 0x1000
NAMED = 0x8000
MAX_DEPTH = 8  # nested messages
_FIXED = {0x0002: 2, 0x000B: 2, 0x0003: 4, 0x0004: 4, 0x000A: 4, 0x0005: 8, 0x0006: 8,
          0x0007: 8, 0x0014: 8, 0x0040: 8, 0x0048: 16}  # MAPI type -> value size
_COUNTED = (0x001E, 0x001F, 0x000D, 0x0102, 0x0000)  # strings, binaries: length-prefixed
_U32 = struct.Struct("<I")


class _Implausible(Exception):
    pass


def plausible(data: bytes, depth: int = 0) -> bool:
    """False when a MAPI count in the blob promises more items than the bytes can hold."""
    if depth > MAX_DEPTH:
        return False
    offset = 6  # signature, key
    try:
        while offset + 12 < len(data):  # tnefparse's TNEFObject: level, name, type, size
            name, size = struct.unpack_from("<xHxxI", data, offset)
            length = min(len(data) - offset, size + 11)
            if name in (ATT_MAPI_PROPS, ATT_ATTACHMENT):
                _walk_mapi(data[offset + 9 : offset + length - 2], depth)
            offset += length
    except _Implausible:
        return False
    return True


def _walk_mapi(data: bytes, depth: int) -> None:
    size = len(data)
    try:
        (count,) = _U32.unpack_from(data, 0)
        if count > size // 4:  # each property takes 4 bytes at least
            raise _Implausible
        offset = 4
        for _ in range(count):
            if offset >= size:
                return
            attr_type, attr_name = struct.unpack_from("<HH", data, offset)
            offset += 4
            if attr_name >= NAMED:
                (kind,) = _U32.unpack_from(data, offset + 16)
                offset += 20
                if kind == 0:
                    offset += 4
                else:
                    (name_len,) = _U32.unpack_from(data, offset)
                    offset += 4 + name_len + (-name_len % 4)
            values = 0
            if attr_type & MULTI_VALUE:
                attr_type ^= MULTI_VALUE
                (values,) = _U32.unpack_from(data, offset)
                offset += 4
                if values > (size - offset) // 2 + 1:  # each value takes 2 bytes at least
                    raise _Implausible
            items: list[bytes] = []
            for _ in range(values or 1):
                offset = _value(data, offset, attr_type, bool(values), items)
            if (values or 1) % 2 and attr_type in (0x0002, 0x000B):
                offset += 2
            if attr_name == MAPI_ATTACH_DATA_OBJ:
                inner = b"".join(item.rstrip(b"\x00") for item in items)
                if inner.startswith(IMESSAGE_SIG) and not plausible(inner[16:], depth + 1):
                    raise _Implausible
    except (struct.error, ValueError):
        return  # tnefparse stops reading this list here too


def _value(data: bytes, offset: int, attr_type: int, multi: bool, items: list[bytes]) -> int:
    """The offset after one value, as tnefparse's parse_property moves it."""
    if attr_type in _FIXED:
        return offset + _FIXED[attr_type]
    if attr_type not in _COUNTED:
        raise ValueError(f"unknown MAPI type {attr_type:#06x}")
    count = 1
    if not multi:
        (count,) = _U32.unpack_from(data, offset)
        offset += 4
    for _ in range(count):  # ends with a short read once past the end: 4 bytes each
        (length,) = _U32.unpack_from(data, offset)
        offset += 4
        length += -length % 4
        items.append(data[offset : offset + length])
        offset += length
    return offset
