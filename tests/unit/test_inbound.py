"""inbound: raw bytes → InboundMail, checked against the test corpus and hand-built mails."""

from __future__ import annotations

import base64
import email
import email.policy
import json
import os
from pathlib import Path
from typing import Any

import pytest

from mailgw.inbound.mail import (
    Attachment,
    InboundMail,
    decode_header_text,
    parse_mail,
)

CORPUS = Path(os.environ.get("MAILGW_CORPUS") or Path(__file__).resolve().parents[1] / "corpus")
EXPECTED = CORPUS / "expected.json"
PDF_BYTES = b"%PDF-1.4\n1 0 obj\n<< /Type /Catalog >>\nendobj\ntrailer\n<< >>\n%%EOF\n"
PNG_BYTES = b"\x89PNG\r\n\x1a\n" + b"\x00" * 32


def _load_expected() -> list[dict[str, Any]]:
    try:
        return json.loads(EXPECTED.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []


def _corpus_params() -> list[Any]:
    entries = _load_expected()
    if not entries:
        return [pytest.param(None, id="corpus-missing")]
    return [pytest.param(e, id=e["file"]) for e in entries]


def _need_corpus(entry: dict[str, Any] | None) -> dict[str, Any]:
    """Skip when the corpus is absent, but fail in CI (MAILGW_REQUIRE_ALL=1)."""
    if entry is None:
        reason = f"mail corpus not found at {CORPUS} (set MAILGW_CORPUS)"
        if os.environ.get("MAILGW_REQUIRE_ALL") == "1":
            pytest.fail(reason)
        pytest.skip(reason)
    return entry


def _parse_corpus(entry: dict[str, Any]) -> InboundMail:
    return parse_mail((CORPUS / "emails" / entry["file"]).read_bytes())


def _rows(atts: Any) -> list[tuple[Any, ...]]:
    out = []
    for a in atts:
        if isinstance(a, Attachment):
            out.append((a.part, a.filename, a.content_type, a.size, a.disposition))
        else:
            out.append((a["part"], a["filename"], a["content_type"], a["size"], a["disposition"]))
    return out


def _strip(value: str | None) -> str | None:
    return None if value is None else value.strip()


# --------------------------------------------------------------------------- corpus


@pytest.mark.parametrize("entry", _corpus_params())
def test_corpus_mail(entry: dict[str, Any] | None) -> None:
    entry = _need_corpus(entry)
    mail = _parse_corpus(entry)
    assert mail.from_addr == entry["from_addr"]
    assert _strip(mail.subject) == _strip(entry["subject"])
    assert mail.is_auto_reply is entry["is_auto_reply"], mail.auto_reply_reason
    assert (mail.auto_reply_reason is not None) is entry["is_auto_reply"]
    assert _rows(mail.attachments) == _rows(entry["attachments"])
    assert _rows(mail.nested_attachments) == _rows(entry["nested_attachments"])
    assert all(a.size == len(a.data) for a in mail.attachments)
    assert all(a.nested for a in mail.nested_attachments)
    assert not any(a.nested for a in mail.attachments)


@pytest.mark.parametrize("entry", _corpus_params())
def test_corpus_mail_never_raises_when_truncated(entry: dict[str, Any] | None) -> None:
    entry = _need_corpus(entry)
    raw = (CORPUS / "emails" / entry["file"]).read_bytes()
    for cut in (1, 7, len(raw) // 3, len(raw) // 2, len(raw) - 1):
        assert isinstance(parse_mail(raw[:cut]), InboundMail)
    assert isinstance(parse_mail(raw.replace(b"\n", b"\r\n")), InboundMail)


def _corpus_mail(prefix: str) -> InboundMail:
    entry = _need_corpus(next((e for e in _load_expected() if e["file"].startswith(prefix)), None))
    return _parse_corpus(entry)


def test_corpus_kinds_and_flags() -> None:
    assert [a.kind for a in _corpus_mail("01-").attachments] == ["pdf"]
    # A .pdf that holds a PKCS#7 blob stays kind pdf so the document check refuses it clearly.
    assert [a.kind for a in _corpus_mail("04-").documents()] == ["pdf"]
    signed = _corpus_mail("06-")
    assert [a.kind for a in signed.attachments] == ["other", "pdf", "other"]
    assert signed.attachments[2].content_type == "application/pkcs7-signature"
    logo = _corpus_mail("22-").attachments[0]
    assert logo.kind == "image" and logo.inline_image
    assert [a.kind for a in _corpus_mail("26-").attachments] == ["image", "audio", "other"]
    assert _corpus_mail("25-").sounds()[0].content_type == "audio/basic"
    assert _corpus_mail("47-").partial
    assert not _corpus_mail("16-").partial
    assert _corpus_mail("02-").documents()[0].filename == "Invoice_302232133150612.pdf"


def test_corpus_message_id_and_text_body() -> None:
    mail = _corpus_mail("02-")
    assert mail.message_id == "<F21768750C2E4303B37CA8EDCD498C67@dm3.entee.co.uk>"
    assert _corpus_mail("01-").message_id is None
    assert "Salutations" not in _corpus_mail("27-").text_body  # the root part is the attachment
    assert _corpus_mail("15-").text_body.strip()


# --------------------------------------------------------------------------- hand-built


def _mime(
    parts: list[tuple[str, bytes]],
    *,
    subtype: str = "mixed",
    headers: str = "From: Alice <alice@example.org>\nSubject: FGB45L:0170709901\n",
    boundary: str = "b0",
) -> bytes:
    """A minimal multipart mail; each part is (header block, already-encoded body)."""
    sep = f"--{boundary}".encode()
    ctype = f'Content-Type: multipart/{subtype}; boundary="{boundary}"\n\n'
    out = [headers.encode() + ctype.encode()]
    for head, body in parts:
        out.append(sep + b"\n" + head.encode() + b"\n\n" + body + b"\n")
    out.append(sep + b"--\n")
    return b"".join(out)


def _b64(data: bytes) -> bytes:
    return base64.encodebytes(data)


def test_pdf_as_octet_stream_found_by_magic() -> None:
    raw = _mime(
        [
            ("Content-Type: text/plain", b"see attached"),
            (
                "Content-Type: application/octet-stream\nContent-Transfer-Encoding: base64\n"
                "Content-Disposition: attachment; filename=scan0001",
                _b64(PDF_BYTES),
            ),
        ]
    )
    mail = parse_mail(raw)
    assert mail.from_addr == "alice@example.org"
    assert mail.text_body.strip() == "see attached"
    (doc,) = mail.documents()
    assert doc.kind == "pdf" and doc.data == PDF_BYTES and doc.size == len(PDF_BYTES)
    assert doc.content_type == "application/octet-stream" and doc.part == "1.2"


def test_inline_png_logo_is_not_a_document() -> None:
    related = (
        b'Content-Type: multipart/related; boundary="r1"\n\n'
        b'--r1\nContent-Type: text/html\n\n<img src="cid:logo@x">\n'
        b"--r1\nContent-Type: image/png\nContent-ID: <logo@x>\n"
        b"Content-Transfer-Encoding: base64\n\n" + _b64(PNG_BYTES) + b"--r1--\n"
    )
    raw = (
        b"From: bob@example.org\nSubject: x\nMIME-Version: 1.0\n"
        b'Content-Type: multipart/mixed; boundary="m1"\n\n'
        b"--m1\n" + related + b'\n--m1\nContent-Type: application/pdf; name="a.pdf"\n'
        b"Content-Transfer-Encoding: base64\n\n" + _b64(PDF_BYTES) + b"--m1--\n"
    )
    mail = parse_mail(raw)
    logo = next(a for a in mail.attachments if a.content_type == "image/png")
    assert logo.inline_image and logo.kind == "image" and logo.part == "1.1.2"
    assert [d.filename for d in mail.documents()] == ["a.pdf"]


def test_forwarded_mail_carrying_the_pdf() -> None:
    inner = _mime(
        [
            ("Content-Type: text/plain", b"original"),
            (
                'Content-Type: application/pdf\nContent-Disposition: attachment; filename="f.pdf"'
                "\nContent-Transfer-Encoding: base64",
                _b64(PDF_BYTES),
            ),
        ],
        headers="From: carol@example.org\nSubject: invoice\n",
        boundary="inner",
    )
    raw = _mime(
        [
            ("Content-Type: text/plain", b"FYI"),
            ("Content-Type: message/rfc822\nContent-Disposition: inline", inner),
        ]
    )
    mail = parse_mail(raw)
    assert [a.content_type for a in mail.attachments] == ["message/rfc822"]
    assert mail.attachments[0].kind == "other"
    (doc,) = mail.documents()
    assert doc.nested and doc.filename == "f.pdf" and doc.data == PDF_BYTES
    assert doc.part == "1.2.m.2"
    assert mail.from_addr == "alice@example.org"  # the forwarder, not the inner sender


def test_own_pdf_wins_over_forwarded_one() -> None:
    inner = _mime(
        [("Content-Type: application/pdf; name=inner.pdf", PDF_BYTES)],
        headers="From: c@example.org\n",
        boundary="inner",
    )
    raw = _mime(
        [
            ("Content-Type: application/pdf; name=outer.pdf", PDF_BYTES),
            ("Content-Type: message/rfc822", inner),
        ]
    )
    mail = parse_mail(raw)
    assert [d.filename for d in mail.documents()] == ["outer.pdf"]
    assert [a.filename for a in mail.nested_attachments] == ["inner.pdf"]


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"\x00\xff\xfe garbage \x80\x81",
        bytes(range(256)) * 40,
        b"\n\n\n",
        b"Content-Type: multipart/mixed; boundary=x\n\n--x\n--x\n--x--",
        b"Subject: =?utf-8?B?\n\n",
        b"Content-Type: multipart/mixed; boundary=a\n\n" + b"--a\nContent-Type: multipart/mixed;"
        b" boundary=a\n\n" * 300,
        b'From: "\n' + b"Content-Type: text/plain; charset=x-nonsense\n\n\xff\xfe",
        b"Content-Type: application/pdf; name*0*=bogus%; name*1=x\n\n%PDF-",
        b"Content-Type: message/rfc822\n\n" * 50,
    ],
    ids=[
        "empty",
        "garbage",
        "binary",
        "blank",
        "empty-parts",
        "bad-word",
        "deep",
        "bad-charset",
        "bad-2231",
        "nested-messages",
    ],
)
def test_never_raises(raw: bytes) -> None:
    mail = parse_mail(raw)
    assert isinstance(mail, InboundMail)
    json.dumps(
        [mail.subject, mail.from_addr, mail.text_body, [a.filename for a in mail.attachments]]
    )  # everything is printable (no lone surrogates)


_STDLIB_BREAKERS = ['"', "<", "a@", '"a" <', "g:<", "a@[", 'Alice <alice@example.org>, "']


@pytest.mark.parametrize("header", _STDLIB_BREAKERS)
def test_from_header_that_breaks_the_stdlib(header: str) -> None:
    raw = f"From: {header}\nSubject: hi\n\nbody\n".encode()
    stdlib = email.message_from_bytes(raw, policy=email.policy.default)
    with pytest.raises((IndexError, AttributeError, ValueError)):
        _ = [a.addr_spec for a in stdlib["from"].addresses]
    mail = parse_mail(raw)
    assert mail.from_addr is None or isinstance(mail.from_addr, str)
    assert mail.subject == "hi" and mail.text_body == "body\n"


def test_from_fallback_recovers_the_address() -> None:
    raw = b'From: Alice <alice@example.org>, "\nSubject: hi\n\n'
    assert parse_mail(raw).from_addr == "alice@example.org"
    assert parse_mail(b'From: "\n\n').from_addr is None


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("Alice <alice@example.org>", "alice@example.org"),
        ("=?utf-8?q?Ren=C3=A9?= <Rene@Example.FR>", "Rene@Example.FR"),
        ("Group: bob@example.org, carol@example.org;", "bob@example.org"),
        ("Doe, John <john@example.org>", "john@example.org"),
        ("=?utf-8?q?Doe,_John?= <john@example.org>", "john@example.org"),
        ("<>", None),
        ("", None),
    ],
)
def test_from_addr(header: str, expected: str | None) -> None:
    assert parse_mail(f"From: {header}\n\n".encode()).from_addr == expected


def test_null_envelope_sender_is_auto_reply() -> None:
    raw = b"From: alice@example.org\nSubject: FGB45L:0170709901\n\nhello\n"
    assert not parse_mail(raw).is_auto_reply
    assert not parse_mail(raw, envelope_from="alice@example.org").is_auto_reply
    mail = parse_mail(raw, envelope_from="")
    assert mail.is_auto_reply and mail.auto_reply_reason == "null envelope sender"
    assert parse_mail(raw, envelope_from="<>").is_auto_reply


@pytest.mark.parametrize(
    "extra",
    [
        "Auto-Submitted: auto-replied\n",
        "Precedence: bulk\n",
        "Precedence: list\n",
        "List-Id: <x.example.org>\n",
        "X-Mailgw-Loop: gw.example.org\n",
        "X-Auto-Response-Suppress: All\n",
        "Return-Path: <>\n",
        "Subject: Réponse automatique : absent\n",
        "Subject: =?utf-8?b?0JDQstGC0L7QvtGC0LLQtdGCOiDQv9GA0LjQstC10YI=?=\n",
        "Subject: Undelivered Mail Returned to Sender\n",
        "Subject: Lu : facture\n",
        "Subject: Out of Office: hello\n",
        "Subject: Auto: hello\n",
    ],
)
def test_auto_reply_signals(extra: str) -> None:
    head = "From: alice@example.org\n"
    if not extra.startswith("Subject:"):
        head += "Subject: FGB45L:0170709901\n"
    mail = parse_mail((head + extra + "\nbody\n").encode())
    assert mail.is_auto_reply, extra
    assert mail.auto_reply_reason


@pytest.mark.parametrize(
    "extra",
    [
        "Auto-Submitted: no\n",
        "Precedence: first-class\n",
        "Subject: FGB45L:0170709901:Absences du mois\n",
        "Subject: RE: Automatic reply: hello\n",
    ],
)
def test_not_auto_reply(extra: str) -> None:
    mail = parse_mail(("From: alice@example.org\n" + extra + "\nbody\n").encode())
    assert not mail.is_auto_reply, mail.auto_reply_reason


@pytest.mark.parametrize(
    ("encoded", "decoded"),
    [
        ("=?iso-8859-8-i?b?4fTj?=", "בפד"),
        ("=?iso-2022-jp?B?GyRCLWIbKEI=?=", "№"),
        ("=?NONE?B?VEVTVA=?=", "TEST"),
        ("=?utf-8?q?caf=C3=A9?= =?utf-8?q?_cr=C3=A8me?=", "café crème"),
        ("=?utf-8?b?w6k=?==?utf-8?b?w6k=?=", "éé"),
        ("=?utf-8?b?4oI=?= =?utf-8?b?rA==?=", "€"),  # a character split across two words
        ("=?x-unknown?q?caf=E9?=", "café"),
        ("=?utf-8?q?bad=FF?=", "bad\ufffd"),
    ],
)
def test_decode_header_text(encoded: str, decoded: str) -> None:
    assert decode_header_text(encoded) == decoded


def test_subject_undecodable_bytes_are_not_dropped() -> None:
    mail = parse_mail(b"Subject: =?utf-8?q?abc=FF=FEdef?=\n\n")
    assert mail.subject is not None
    assert mail.subject.startswith("abc") and mail.subject.endswith("def")
    assert "\ufffd" in mail.subject
    raw8 = parse_mail("Subject: Facture réglée\n\n".encode("latin-1"))
    assert raw8.subject == "Facture réglée"


def test_subject_unfolded_and_message_id_kept() -> None:
    raw = b"Subject: FGB45L:0170709901\n :ref 12\nMessage-ID: <abc@example.org>\n\n"
    mail = parse_mail(raw)
    assert mail.subject == "FGB45L:0170709901 :ref 12"
    assert mail.message_id == "<abc@example.org>"


def test_unquoted_encoded_word_and_rfc2231_filenames() -> None:
    raw = _mime(
        [
            ("Content-Type: application/pdf; name==?utf-8?B?w6l0w6kucGRm?=", PDF_BYTES),
            ("Content-Type: audio/x-wav; name*=utf-8''m%C3%A9mo.wav", b"RIFF\0\0\0\0WAVEfmt "),
            ('Content-Type: text/csv; name="numbers.csv"', b"0170709901\n"),
            ("Content-Type: image/tiff", b"II*\x00rest"),
        ]
    )
    mail = parse_mail(raw)
    assert [(a.filename, a.kind) for a in mail.attachments] == [
        ("été.pdf", "pdf"),
        ("mémo.wav", "audio"),
        ("numbers.csv", "list"),
        (None, "tiff"),
    ]
    assert [a.filename for a in mail.sounds()] == ["mémo.wav"]


def test_header_section_over_limit_still_parses() -> None:
    raw = b"From: a@example.org\nSubject: hello\nX-Pad: " + b"x" * 5000 + b"\n\nbody\n"
    mail = parse_mail(raw, max_header_bytes=1000)
    assert mail.from_addr == "a@example.org" and mail.subject == "hello"
    assert "HeaderSectionTooLarge" in mail.defects
    assert mail.text_body == "body\n"


def test_content_type_that_overflows_the_registry_keeps_the_attachments() -> None:
    # Nested comments make the stdlib's header parser recurse past the stack limit.
    raw = (
        b"From: a@example.org\nContent-Type: multipart/mixed; boundary=zz; x="
        + b"(" * 5000
        + b"\n\n--zz\nContent-Type: application/pdf\n\n%PDF-1.4\n--zz--\n"
    )
    mail = parse_mail(raw)
    assert mail.from_addr == "a@example.org"
    assert [(a.part, a.kind) for a in mail.attachments] == [("1.1", "pdf")]


def test_quote_bomb_from_header() -> None:
    mail = parse_mail(b"From: " + b'"' * 20000 + b"\nSubject: hi\n\n")
    assert mail.from_addr is None and mail.subject == "hi"


def test_long_rfc2231_filename_and_raw_latin1_name() -> None:
    chunk = "%C3%A9t%C3%A9" * 20
    params = "; ".join(
        f"filename*{i}*={'utf-8' + chr(39) * 2 if i == 0 else ''}{chunk}" for i in range(4)
    )
    raw = _mime(
        [
            (f"Content-Type: application/pdf\nContent-Disposition: attachment; {params}", b""),
            ("Content-Type: text/plain\nContent-Disposition: attachment; filename=", b"x"),
        ]
    ).replace(b"filename=\n", 'filename="résumé.txt"\n'.encode("latin-1"))
    mail = parse_mail(raw)
    assert [a.filename for a in mail.attachments] == ["été" * 80, "résumé.txt"]
    assert [a.kind for a in mail.attachments] == ["pdf", "list"]
