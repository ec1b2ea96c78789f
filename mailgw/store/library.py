"""The voice library: recorded messages, verified caller IDs, and what a voice job plays.

Every statement mailgw.accounts.voice runs. Refs arrive normalised (voice.normalize_ref),
numbers in E.164.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from mailgw.store.models import CallerId, Job, VoiceMessage, utcnow

# -- recorded messages -----------------------------------------------------------------------


def find_message(s: Session, account_id: int, key: str) -> VoiceMessage | None:
    return s.scalar(select(VoiceMessage).where(VoiceMessage.account_id == account_id,
                                               VoiceMessage.ref == key))


def put_message(s: Session, account_id: int, key: str, audio: bytes, duration: float,
                source_name: str | None) -> bool:
    """Store or replace message `key`; True when it replaced an earlier one."""
    row = find_message(s, account_id, key)
    if row is not None:
        row.audio, row.duration, row.source_name = audio, duration, source_name
        row.created_at = utcnow()
        return True
    s.add(VoiceMessage(account_id=account_id, ref=key, audio=audio, duration=duration,
                       source_name=source_name, created_at=utcnow()))
    s.flush()
    return False


def messages(s: Session, account_id: int) -> list[tuple[str, float, datetime, str | None]]:
    """(ref, duration, created_at, source_name), short refs first (1, 2 … 10)."""
    rows = s.execute(select(VoiceMessage.ref, VoiceMessage.duration, VoiceMessage.created_at,
                            VoiceMessage.source_name)
                     .where(VoiceMessage.account_id == account_id)
                     .order_by(func.length(VoiceMessage.ref), VoiceMessage.ref)).all()
    return [(ref, duration, created, source) for ref, duration, created, source in rows]


def delete_message(s: Session, account_id: int, key: str) -> bool:
    done = s.execute(delete(VoiceMessage).where(VoiceMessage.account_id == account_id,
                                                VoiceMessage.ref == key))
    return bool(_rowcount(done))


# -- verified caller IDs ---------------------------------------------------------------------


def caller_ids(s: Session, account_id: int) -> list[str]:
    return list(s.scalars(select(CallerId.number).where(CallerId.account_id == account_id)
                          .order_by(CallerId.number)))


def add_caller_id(s: Session, account_id: int, number: str) -> None:
    s.add(CallerId(account_id=account_id, number=number, created_at=utcnow()))
    s.flush()


def delete_caller_id(s: Session, account_id: int, number: str) -> bool:
    done = s.execute(delete(CallerId).where(CallerId.account_id == account_id,
                                            CallerId.number == number))
    return bool(_rowcount(done))


# -- what a voice job plays ------------------------------------------------------------------


def job_call(s: Session, job_id: int) -> tuple[bytes | None, str | None]:
    """A voice job's audio (WAV) and its call options as stored (JSON); Nones when the job
    is gone."""
    row = s.execute(select(Job.document, Job.options).where(Job.id == job_id)).first()
    return (row[0], row[1]) if row else (None, None)


def _rowcount(result: Any) -> int:
    return int(getattr(result, "rowcount", 0) or 0)
