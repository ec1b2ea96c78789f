"""One mail with a CSV of 100,000 numbers (issue 20, item 3): accepted, every delivery
written before the 250, and the report streamed in chunks with a line per number. The
listener runs alone (no dispatch), so the store holds exactly what intake wrote."""

from __future__ import annotations

import smtplib
from collections.abc import Iterator
from email.policy import SMTP

import pytest
from sqlalchemy import func, select

from mailgw.documents.samples import make_pdf
from mailgw.jobs import reports, views
from mailgw.store import Delivery, Job
from tests.conftest import PASSWORD, SENDER, RunningApp, Sink, fax_message, make_settings

COUNT = 100_000

def numbers() -> Iterator[str]:
    """100,000 distinct valid French numbers, written as people do (`01 70 00 00 01`)."""
    for i in range(COUNT):
        n = f"0{1 + i // 900_000}{70 + (i // 10_000) % 90:02d}{i % 10_000:04d}01"
        yield f"{n[:2]} {n[2:4]} {n[4:6]} {n[6:8]} {n[8:]}"


@pytest.fixture
def app(sink: Sink, store_url: str) -> Iterator[RunningApp]:
    running = RunningApp(make_settings(store_url, sink.port), roles=("smtp",)).start()
    running.add_account()
    yield running
    running.stop()


def test_a_list_of_100000_numbers_is_written_whole_before_the_250(app: RunningApp) -> None:
    lines = ["Nom;Téléphone;Ville"] + [f"Client {i};{n};Orléans"
                                         for i, n in enumerate(numbers())]
    msg = fax_message(f"{PASSWORD}::BIG-1", make_pdf([["x"]]))
    msg.add_attachment(("\r\n".join(lines) + "\r\n").encode("cp1252"), maintype="text",
                       subtype="csv", filename="clients.csv")
    with smtplib.SMTP("127.0.0.1", app.port, timeout=600) as client:
        client.ehlo("client.example.com")
        client.mail(SENDER)
        client.rcpt("fax@gw.example.org")
        code, reply = client.data(msg.as_bytes(policy=SMTP))
    assert code == 250 and reply.decode().startswith("2.0.0 [80]"), reply
    with app.store.read() as s:
        (job,) = s.scalars(select(Job)).all()
        assert job.recipient_count == COUNT and job.numbers_from_list
        written = s.execute(select(func.count(), func.count(func.distinct(Delivery.number)),
                                   func.min(Delivery.next_attempt_at))
                            .where(Delivery.job_id == job.id, Delivery.state == "queued")).one()
        assert tuple(written) == (COUNT, COUNT, job.created_at)  # one batch, one clock
        chunks = reports.job_csv_chunks(s, job.id)
        assert chunks is not None
        sizes, rows = [], []
        for chunk in chunks:
            sizes.append(len(chunk))
            rows += chunk.splitlines()
        assert len(sizes) > 10, "streamed a batch at a time, not built whole"
        assert len(rows) == COUNT + 1
        assert rows[0].lstrip("\ufeff").split(";")[-2:] == ["Nom", "Ville"]
        assert rows[1].split(";")[1:3] == ["1", "33170000001"]
        assert rows[1].split(";")[-2:] == ["Client 0", "Orléans"]
        assert rows[-1].split(";")[1] == str(COUNT)
        shown = views.list_jobs(s, deliveries=False)
        assert shown[0]["progress"] == {"final": 0, "total": COUNT}
        assert "deliveries" not in shown[0]
