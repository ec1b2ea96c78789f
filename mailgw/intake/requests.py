"""An HTTP request's facts as intake reads a mail's: pure, no store, no network.

http.php and /api/v1 do not write jobs themselves. They say what they were given (a sender,
the Subject's fields, body option lines such as `transfer: …` or `quality: best`, files)
and `Intake.handle_request` decides and commits it exactly as it does a mail: same
decision, same codes, same jobs service. `message_id` is the request's identity: derived
from an `Idempotency-Key` it makes a repeated request answer as the first did.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterable, Mapping, Sequence

from mailgw.inbound.model import Attachment, InboundMail
from mailgw.inbound.sniff import kind

SEPARATOR = ":"


def subject(password: str, numbers: str, ref: str = "", comment: str = "",
            when: str = "") -> str:
    """The Subject command these fields make: `password:numbers:ref:comment:when`. The
    comment may hold `:` (the grammar reads it between the third field and `when`)."""
    return SEPARATOR.join((password, numbers, ref, comment, when))


def options_body(options: Mapping[str, str]) -> str:
    """Body lines `name: value`, as a sender writes them under the Subject's command."""
    return "".join(f"{name}: {value}\n" for name, value in options.items()
                   if value.strip() and "\n" not in value and "\r" not in value)


def file(name: str | None, content_type: str, data: bytes, part: int = 1) -> Attachment:
    """An uploaded file as a mail attachment (its kind sniffed as a mail's would be)."""
    base = (content_type or "application/octet-stream").split(";", 1)[0].strip().lower()
    return Attachment(filename=name, content_type=base, size=len(data),
                      kind=kind(base, name, data), data=data, disposition="attachment",
                      part=str(part))


def message_id(scope: str, idempotency_key: str | None) -> str:
    """The request's identity: the same (scope, key) always gives the same id; no key, a
    new one each time. `scope` separates callers (an account, a token) and interfaces."""
    if idempotency_key is None:
        return f"<{uuid.uuid4().hex}@request.mailgw>"
    digest = hashlib.sha256(f"{scope}\n{idempotency_key}".encode()).hexdigest()[:40]
    return f"<{digest}@request.mailgw>"


def request_mail(*, sender: str | None, subject_line: str, message_id: str,
                 options: Mapping[str, str] | None = None,
                 files: Sequence[Attachment] | Iterable[Attachment] = ()) -> InboundMail:
    """The InboundMail intake decides on; never an automatic message."""
    return InboundMail(from_addr=sender, subject=subject_line, message_id=message_id,
                       is_auto_reply=False, auto_reply_reason=None,
                       attachments=tuple(files), nested_attachments=(),
                       text_body=options_body(options or {}))
