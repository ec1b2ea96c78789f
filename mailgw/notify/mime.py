"""A notice or an ack as MIME: a multipart/alternative (text, HTML) mail, written directly.

`compose` writes it byte for byte as `compose_email` (the stdlib's EmailMessage with
policy=SMTP) does, at a fraction of the cost: the stdlib parses every header into a parse
tree and folds it again, which was most of the price of a notice. Plain ASCII headers are
written as they are, unstructured text with non-ASCII words (Subject) is folded by
`_fold_words` (the stdlib's algorithm for that case), and the rest (addresses, dates,
anything unusual) still goes through the stdlib's own folding, cached. Tests compare `fold`
with the stdlib and `compose` with `compose_email` byte for byte
(tests/integration/test_notify.py).
"""

from __future__ import annotations

import base64
import binascii
import random
import re
import sys
from collections.abc import Sequence
from email import quoprimime
from email.message import EmailMessage, MIMEPart
from email.policy import SMTP
from itertools import accumulate

_MAX_LINE: int = SMTP.max_line_length or 78  # 78 for policy.SMTP
_PLAIN = re.compile(r"[!-~]+(?: [!-~]+)*")  # printable ASCII words, single spaces
_PLAIN_MSGID = re.compile(r"<[A-Za-z0-9._+-]+@[A-Za-z0-9.-]+>")
_STRUCTURED = frozenset({"bcc", "cc", "content-disposition", "content-transfer-encoding",
                         "content-type", "date", "from", "mime-version", "orig-date",
                         "reply-to", "resent-bcc", "resent-cc", "resent-date", "resent-from",
                         "resent-sender", "resent-to", "sender", "to", "message-id"})
_FOLDED: dict[tuple[str, str], str] = {}  # the stdlib's folding of repeated headers
_NEWLINES = re.compile(r"\r\n|\r|\n")


def _stdlib_fold(name: str, value: str) -> str:
    """What EmailMessage(policy=SMTP) writes for `msg[name] = value` (same errors too)."""
    return str(SMTP.header_store_parse(name, value)[1].fold(policy=SMTP))


_Q_SAFE = frozenset(b"-!*+/ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789")
_WORDS = re.compile(r"[^\x00-\x20\x7f\x85\u2028\u2029]+(?: [^\x00-\x20\x7f\x85\u2028\u2029]+)*")


_Q_MAP = ["_" if c == 32 else chr(c) if c in _Q_SAFE else f"={c:02X}" for c in range(256)]
_Q_UNSAFE = bytes(c for c in range(256) if c != 32 and c not in _Q_SAFE)
_Q_KEEP = bytes(c for c in range(256) if c not in _Q_UNSAFE)


def _encoded_word(text: str) -> str:
    """An RFC 2047 word in UTF-8, Q or B, whichever the stdlib would pick."""
    raw = text.encode("utf-8")
    q_len = len(raw) + 2 * len(raw.translate(None, _Q_KEEP))  # unsafe bytes take 3
    groups, left = divmod(len(raw), 3)
    if q_len - (groups * 4 + (4 if left else 0)) < 5:
        return "=?utf-8?q?" + "".join([_Q_MAP[c] for c in raw]) + "?="
    return f"=?utf-8?b?{base64.b64encode(raw).decode('ascii')}?="


_CHAR_COST: dict[str, tuple[int, int]] = {}  # char -> (length in Q, UTF-8 bytes)


def _char_cost(ch: str) -> tuple[int, int]:
    raw = ch.encode("utf-8")
    cost = _CHAR_COST[ch] = (len(raw) + 2 * len(raw.translate(None, _Q_KEEP)), len(raw))
    return cost


def _chunk_length(text: str, room: int) -> int:
    """The longest prefix of `text` (at most `room` - 12 characters) whose encoded word fits
    in `room`: the stdlib's answer (it tries shorter and shorter prefixes), computed from
    running lengths instead of encoding each prefix."""
    n = min(room - 12, len(text))
    costs = [_CHAR_COST.get(ch) or _char_cost(ch) for ch in text[:n]]
    q_len = [0, *accumulate(c[0] for c in costs)]
    b_len = [0, *accumulate(c[1] for c in costs)]
    while n > 0:
        groups, left = divmod(b_len[n], 3)
        b = groups * 4 + (4 if left else 0)
        if (q_len[n] if q_len[n] - b < 5 else b) + 12 <= room:
            break
        n -= 1
    return n


class _Unusual(Exception):
    """A case `_fold_words` leaves to the stdlib."""


def _steal_space(lines: list[str]) -> str:
    if lines[-1] and lines[-1][-1] == " ":
        lines[-1] = lines[-1][:-1]
        return " "
    return ""


def _fold_words(name: str, value: str) -> str:
    """The stdlib's folding (`_refold_parse_tree` for an unstructured header with policy=SMTP)
    of words separated by single spaces, as `header_text` returns them: ASCII words kept, a
    run of non-ASCII words as UTF-8 encoded words. Raises `_Unusual` for the corner cases it
    does not follow (the caller then asks the stdlib)."""
    maxlen = _MAX_LINE
    lines = [f"{name}: "]
    if value.isascii():  # the whole value on the first line, or alone on the second
        if len(value) <= maxlen - len(lines[0]):
            return f"{name}: {value}\r\n"
        if len(value) + 1 <= maxlen:
            return f"{name}:\r\n {value}\r\n"
    tokens: list[str] = []
    for word in value.split(" "):
        tokens += [" ", word] if tokens else [word]
    last_ew: int | None = None  # where the last encoded word starts on the last line
    ew: tuple[int, int, int, str] | None = None  # (line, start, end, decoded) of that word
    encode_next = False
    i = 0
    while i < len(tokens):
        token = tokens[i]
        if encode_next or not token.isascii():
            encode_next = False
            to_encode = token
            if last_ew is not None:  # joined with the previous encoded word
                if ew is None or ew[0] != len(lines) - 1 or ew[1] != last_ew:
                    raise _Unusual
                to_encode = ew[3] + lines[-1][ew[2]:] + to_encode
                lines[-1] = lines[-1][:last_ew]
            if to_encode[0] == " " or to_encode[-1] == " ":
                raise _Unusual
            new_last_ew = len(lines[-1]) if last_ew is None else last_ew
            while to_encode:
                remaining = maxlen - len(lines[-1])
                if remaining - 12 <= 0:  # 12: the chrome of "=?utf-8?q??="
                    lines.append(" ")  # (the stdlib keeps new_last_ew: joining then fails)
                    continue
                chunk = to_encode[:_chunk_length(to_encode, remaining)]
                if not chunk:
                    raise _Unusual
                encoded = _encoded_word(chunk)
                if len(encoded) > remaining:
                    raise _Unusual
                lines[-1] += encoded
                ew = (len(lines) - 1, len(lines[-1]) - len(encoded), len(lines[-1]), chunk)
                to_encode = to_encode[len(chunk):]
                if to_encode:
                    lines.append(" ")
                    new_last_ew = len(lines[-1])
            last_ew = new_last_ew
            i += 1
            continue
        if len(token) <= maxlen - len(lines[-1]):
            lines[-1] += token
            i += 1
            continue
        if len(token) + 1 <= maxlen:
            newline = _steal_space(lines)
            if newline or token == " ":
                lines.append(newline + token)
                last_ew = None
                i += 1
                continue
        encode_next = True  # an ASCII word too long for any line: encoded, so it can wrap
    return "\r\n".join(lines) + "\r\n"


def fold(name: str, value: str) -> str:
    """One header field, CRLF-terminated, as the stdlib's generator writes it."""
    lower = name.lower()
    if "=?" not in value and lower not in _STRUCTURED:
        if len(name) + len(value) + 2 <= _MAX_LINE and _PLAIN.fullmatch(value):
            return f"{name}: {value}\r\n"
        if len(name) < 40 and _WORDS.fullmatch(value) and value.split() == value.split(" "):
            try:
                value.encode("utf-8")  # no lone surrogates
                return _fold_words(name, value)
            except (_Unusual, UnicodeEncodeError):
                pass
    elif (lower == "message-id" and len(name) + len(value) + 2 <= _MAX_LINE
          and _PLAIN_MSGID.fullmatch(value)):
        return f"{name}: {value}\r\n"
    key = (name, value)  # From, To, Date: the same few values, mail after mail
    folded = _FOLDED.get(key)
    if folded is None:
        if len(_FOLDED) >= 4096:
            _FOLDED.clear()
        folded = _FOLDED[key] = _stdlib_fold(name, value)
    return folded


def encode_text(text: str) -> tuple[str, bytes]:
    """(Content-Transfer-Encoding, body with CRLF line ends) for a UTF-8 text part: the
    stdlib's `contentmanager` heuristics for policy=SMTP (7bit, 8bit, quoted-printable or
    base64), as its generator writes them."""
    lines = text.encode("utf-8").splitlines()
    if max((len(x) for x in lines), default=0) <= _MAX_LINE:
        body = b"\r\n".join(lines) + b"\r\n"
        return ("7bit" if body.isascii() else "8bit"), body
    embedded = b"\r\n".join(lines[:10]) + b"\r\n"
    sniff_qp = quoprimime.body_encode(embedded.decode("latin-1"), _MAX_LINE)
    if len(sniff_qp) > len(binascii.b2a_base64(embedded)):
        whole = b"\r\n".join(lines) + b"\r\n"
        step = _MAX_LINE // 4 * 3
        data = "".join(binascii.b2a_base64(whole[i:i + step]).decode("ascii")
                       for i in range(0, len(whole), step))
        return "base64", _NEWLINES.sub("\r\n", data).encode("ascii")
    if len(lines) <= 10:
        data = sniff_qp
    else:
        data = quoprimime.body_encode((b"\n".join(lines) + b"\n").decode("latin-1"), _MAX_LINE)
    return "quoted-printable", _NEWLINES.sub("\r\n", data).encode("ascii")


def _boundary(parts: Sequence[bytes]) -> str:
    """The stdlib generator's boundary: 15 '=', 19 random digits, '=='; never in the body."""
    base = "=" * 15 + f"{random.randrange(sys.maxsize):019d}" + "=="
    candidate, counter = base, 0
    while any(f"--{candidate}".encode() in p for p in parts):
        candidate = f"{base}.{counter}"
        counter += 1
    return candidate


def compose(headers: Sequence[tuple[str, str]], text: str, html: str, *,
            boundary: str | None = None) -> bytes:
    """A multipart/alternative mail (text, then HTML, both UTF-8), headers in this order."""
    text_cte, text_body = encode_text(text)
    html_cte, html_body = encode_text(html)
    text_part = (b'Content-Type: text/plain; charset="utf-8"\r\n'
                 b"Content-Transfer-Encoding: " + text_cte.encode() + b"\r\n\r\n" + text_body)
    html_part = (b'Content-Type: text/html; charset="utf-8"\r\n'
                 b"Content-Transfer-Encoding: " + html_cte.encode() + b"\r\n"
                 b"MIME-Version: 1.0\r\n\r\n" + html_body)
    b = boundary or _boundary((text_part, html_part))
    content_type = (f'Content-Type: multipart/alternative;\r\n boundary="{b}"\r\n'
                    if len(b) <= 60 else
                    _stdlib_fold("Content-Type", f'multipart/alternative; boundary="{b}"'))
    head = "".join([*(fold(n, v) for n, v in headers), "MIME-Version: 1.0\r\n", content_type])
    sep = f"\r\n--{b}\r\n".encode()
    return b"".join((head.encode("ascii"), b"\r\n--", b.encode(), b"\r\n", text_part, sep,
                     html_part, f"\r\n--{b}--\r\n".encode()))


def compose_email(headers: Sequence[tuple[str, str]], text: str, html: str,
                  attachments: Sequence[tuple[str, bytes, str, str]] = (),
                  inline: Sequence[tuple[str, bytes, str, str, str]] = ()) -> bytes:
    """The same mail through the stdlib's EmailMessage (and any attachments after the
    alternative part): the reference `compose` is tested against, and the summary's path.
    `inline` parts (Content-ID without <>, data, type, subtype, file name) are related to
    the HTML part (multipart/related), which shows them as `cid:…` (a preview's page)."""
    msg = EmailMessage(policy=SMTP)
    for name, value in headers:
        msg[name] = value
    msg.set_content(text)
    msg.add_alternative(html, subtype="html")
    if inline:
        html_part = next(p for p in msg.iter_parts() if p.get_content_type() == "text/html")
        assert isinstance(html_part, MIMEPart)
        for cid, data, maintype, subtype, filename in inline:
            html_part.add_related(data, maintype=maintype, subtype=subtype, cid=f"<{cid}>",
                                  filename=filename, disposition="inline")
    for filename, data, maintype, subtype in attachments:
        params = {"charset": "utf-8"} if maintype == "text" else {}
        msg.add_attachment(data, maintype=maintype, subtype=subtype, filename=filename,
                           params=params)
    return msg.as_bytes()
