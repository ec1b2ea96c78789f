"""The job page's media over the real ASGI app of a running daemon: a fax's pages drawn in
the sandbox as pictures (each drawn once, then served from the cache; page after the last,
another account's job and a purged document give 404), and a voice job's sound for the
`<audio>` player. Plus `mailgw account add --admin` / `set --disabled` as a real process,
journaled, and the migration matching the model."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from PIL import Image
from sqlalchemy import select, update

from mailgw.documents.samples import make_pdf
from mailgw.http.web import thumbs
from mailgw.store import Base, Job, Store
from mailgw.store.models_admin import AdminAction
from tests.conftest import PASSWORD, SENDER, RunningApp, wait_until
from tests.integration.test_cli import mailgw
from tests.integration.test_end_to_end import send
from tests.integration.test_voice import voice_mail
from tests.integration.test_web_admin import web  # noqa: F401 - the fixture
from tests.integration.test_web_security import BOB, job_ids, ready
from tests.sounds import encode
from tests.webspace import send_fax


def new_job(app: RunningApp, before: list[int]) -> int:
    return int(wait_until(lambda: sorted(set(job_ids(app)) - set(before)), what="the job")[0])


def test_the_fax_pages_are_drawn_once_and_only_for_their_owner(
        web, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    app, sink = web
    draws: list[int] = []
    real = thumbs.run

    def counted(task: str, data: bytes, limits: Any) -> dict[str, object]:
        draws.append(len(data))
        return real(task, data, limits)
    monkeypatch.setattr(thumbs, "run", counted)
    before = job_ids(app)
    send_fax(app.port, f"{PASSWORD}:0170709901", make_pdf([["page one"], ["page two"]]))
    job_id = new_job(app, before)
    client = ready(app, sink)
    page = client.get(f"/jobs/{job_id}")
    assert f'src="/jobs/{job_id}/pages/1.png"' in page.text
    assert f'src="/jobs/{job_id}/pages/2.png"' in page.text
    assert 'alt="Page 2 of the fax"' in page.text and "<audio" not in page.text
    first = client.get(f"/jobs/{job_id}/pages/1.png")
    assert first.status_code == 200 and first.headers["content-type"] == "image/png"
    assert "default-src 'none'" in first.headers["content-security-policy"]
    picture = Image.open(io.BytesIO(first.content))
    assert picture.width == thumbs.WIDTH and picture.height > picture.width  # a portrait page
    second = client.get(f"/jobs/{job_id}/pages/2.png")
    assert second.status_code == 200 and second.content != first.content
    assert client.get(f"/jobs/{job_id}/pages/1.png").content == first.content
    assert len(draws) == 2  # the third view came from the cache
    assert client.get(f"/jobs/{job_id}/pages/3.png").status_code == 404
    assert client.get(f"/jobs/{job_id}/sound").status_code == 404  # a fax has no sound
    bob = ready(app, sink, BOB)
    assert bob.get(f"/jobs/{job_id}/pages/1.png").status_code == 404
    with app.store.tx() as s:  # the retention purge drops the document: its pictures go
        s.execute(update(Job).where(Job.id == job_id).values(document=None))
    assert client.get(f"/jobs/{job_id}/pages/1.png").status_code == 404
    assert "/pages/1.png" not in client.get(f"/jobs/{job_id}").text


def test_a_voice_job_has_a_player_for_its_sound(web) -> None:  # noqa: F811
    app, sink = web
    before = job_ids(app)
    reply = send(app.port, voice_mail(f"{PASSWORD}:0170709901", encode("mp3", 3.0)))
    assert reply.startswith("250"), reply
    job_id = new_job(app, before)
    client = ready(app, sink)
    page = client.get(f"/jobs/{job_id}")
    assert f'<audio controls preload="metadata" src="/jobs/{job_id}/sound"' in page.text
    assert "media-src 'self'" in page.headers["content-security-policy"]
    assert "/pages/1.png" not in page.text
    sound = client.get(f"/jobs/{job_id}/sound")
    assert sound.status_code == 200 and sound.headers["content-type"] == "audio/wav"
    assert sound.content[:4] == b"RIFF" and sound.content[8:12] == b"WAVE"
    assert ready(app, sink, BOB).get(f"/jobs/{job_id}/sound").status_code == 404


def test_admin_and_disabled_flags_from_the_command_line(tmp_path: Path) -> None:
    cfg = tmp_path / "mailgw.toml"
    db = tmp_path / "db.sqlite"
    cfg.write_text(f'[store]\nurl = "sqlite:///{db}"\n[log]\nformat = "json"\n',
                   encoding="utf-8")
    c = ["--config", str(cfg)]
    added = mailgw("account", "add", "ops@example.com", "--password-stdin", "--admin", *c,
                   stdin=PASSWORD + "\n")
    assert added.returncode == 0 and ", admin)" in added.stdout, added.stderr
    assert mailgw("account", "add", SENDER, "--password-stdin", *c,
                  stdin=PASSWORD + "\n").returncode == 0
    off = mailgw("account", "set", SENDER, "--disabled", "yes", *c)
    assert off.returncode == 0 and "DISABLED" in off.stdout, off.stderr
    listed = mailgw("account", "list", "--json", *c)
    rows = {a["email"]: a for a in json.loads(listed.stdout)}
    assert rows["ops@example.com"]["admin"] and not rows["ops@example.com"]["disabled"]
    assert rows[SENDER]["disabled"] and not rows[SENDER]["admin"]
    on = mailgw("account", "set", SENDER, "--disabled", "no", "--admin", "yes", *c)
    assert on.returncode == 0 and "DISABLED" not in on.stdout and ", admin" in on.stdout
    store = Store(f"sqlite:///{db}")
    try:
        with store.read() as s:
            done = [(a.action, a.target) for a in s.scalars(select(AdminAction)
                                                             .order_by(AdminAction.id))]
            actors = set(s.scalars(select(AdminAction.actor)))
    finally:
        store.dispose()
    assert done == [("admin_on", "ops@example.com"), ("account_disable", SENDER),
                    ("admin_on", SENDER), ("account_enable", SENDER)]
    assert all(a.startswith("cli:") for a in actors)


def test_the_migration_matches_the_model(store_url: str) -> None:
    store = Store(store_url)
    store.upgrade()
    with store.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    mine = [d for d in diff if "admin_action" in repr(d) or "'admin'" in repr(d)
            or "'disabled'" in repr(d)]
    assert mine == []
    with store.read() as s:  # the table is there and empty
        assert s.scalars(select(AdminAction)).all() == []
    store.dispose()
