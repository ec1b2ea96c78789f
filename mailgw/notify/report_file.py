"""The summary's attachment: the job's CSV report, zipped when the job is a big campaign.

Why zipped: the outbox keeps a mail's bytes in one row, and a 100,000-line report is
about 8 MB of CSV, 11 MB once in base64, more than many mailboxes take. Above ZIP_FROM
lines the report's chunks (mailgw.jobs.reports, read in batches) go straight into a
DEFLATE zip, so only the compressed file (about a tenth) is ever held; below, the CSV is
attached as it always was.
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Iterable

ZIP_FROM = 10_000  # report lines from which the attachment is report-<job>.zip

Attachment = tuple[str, bytes, str, str]  # file name, data, type, subtype


def report_attachment(job_id: int, lines: int, chunks: Iterable[str]) -> Attachment:
    """`report-<job>.csv`, or `report-<job>.zip` holding it when `lines` ≥ ZIP_FROM."""
    name = f"report-{job_id}.csv"
    if lines < ZIP_FROM:
        return name, "".join(chunks).encode("utf-8"), "text", "csv"
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED, compresslevel=6) as archive, \
            archive.open(name, "w", force_zip64=True) as member:
        for chunk in chunks:
            member.write(chunk.encode("utf-8"))
    return f"report-{job_id}.zip", out.getvalue(), "application", "zip"
