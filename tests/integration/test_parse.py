"""`mailgw parse`: the recipient and attached lists count, a configured store is read (never
written), and `--explain` says why step by step, with mail-parser's diagnostics."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from zoneinfo import ZoneInfo

from mailgw.accounts import accounts
from mailgw.app import prepare_store
from mailgw.documents.samples import make_pdf
from mailgw.intake.parse_report import as_json, examine, text
from mailgw.intake.service import Envelope, Intake
from mailgw.notify.render import Renderer
from mailgw.ops.config import Settings
from tests.conftest import PASSWORD, SENDER, fax_message, free_port, make_settings
from tests.integration.test_cli import mailgw

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=ZoneInfo("Europe/Paris"))
PDF = make_pdf([["x"]])


def write(tmp_path: Path, msg: EmailMessage, name: str = "mail.eml") -> Path:
    path = tmp_path / name
    path.write_bytes(msg.as_bytes())
    return path


def test_the_address_form_and_the_fax_address(tmp_path: Path) -> None:
    path = write(tmp_path, fax_message(f"{PASSWORD}::INV-7", PDF, to="+33170709901@localhost"))
    r = mailgw("parse", str(path), "--json", "--to", "+33170709901@localhost")
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)  # stdout is only the JSON
    assert data["command"]["numbers"] == ["+33170709901"] and data["command"]["code"] == 80
    assert PASSWORD not in r.stdout and data["subject"] == "•••::INV-7"
    r = mailgw("parse", str(path), "--json")  # to the fax address: no number anywhere
    assert json.loads(r.stdout)["refusal"]["code"] == 89


def test_an_attached_list_gives_the_numbers() -> None:
    msg = fax_message(f"Re: {PASSWORD}", PDF)
    msg.add_attachment(b"NOM;FAX\nDupont;01 70 70 99 02\nX;abc\n", maintype="text",
                       subtype="csv", filename="numbers.csv")
    seen = examine(msg.as_bytes(), Settings(), now=NOW)
    command = as_json(seen)["command"]
    assert command["numbers"] == ["+33170709902"] and command["invalid_numbers"] == ["abc"]
    assert seen.code == 80 and "numbers.csv" in seen.found.used


def test_explain_says_why_step_by_step() -> None:
    msg = fax_message(f"TR: Re: {PASSWORD}:0170709901; 0262 12 34 56, abc, @clients:INV-7", None)
    out = text(examine(msg.as_bytes(), Settings(), now=NOW, to="fax@localhost"), explain=True)
    steps = out[out.index("Why, step by step:"):]
    assert "prefix dropped: 'TR: Re:'" in steps
    assert "'0170709901' → +33170709901 (national, region FR)" in steps
    assert "'0262 12 34 56' → +262262123456 (national: not valid in FR, valid in RE" in steps
    assert "'abc' → not valid" in steps and "'@clients' → contact group 'clients'" in steps
    assert "ref: 'INV-7'" in steps and "password given and right" in steps
    assert "92: no PDF attached" in steps  # the rule that gave the code
    assert steps.index("prefix dropped") < steps.index("92: no PDF")
    assert "Received chain: none" in out and "MIME defects: none" in out
    assert "FGB45L" not in out


def test_explain_shows_mime_defects_and_the_received_chain(corpus: Path) -> None:
    r = mailgw("parse", str(corpus / "emails" / "08-msword-utf8-q-filename-french.eml"),
               "--explain")
    assert r.returncode == 0, r.stderr
    assert "Diagnostics (mail-parser):" in r.stdout
    assert "Received chain: 4 hop(s)" in r.stdout
    assert "1. from wwinf1h05 ([10.232.41.32]) by mwinf5d28 with ME" in r.stdout
    assert "89: no number" in r.stdout
    seen = examine((corpus / "emails" / "42-multipart-without-boundary-param.eml").read_bytes(),
                   Settings(), now=NOW)
    assert "StartBoundaryNotFoundDefect" in text(seen, explain=True)
    assert "StartBoundaryNotFoundDefect" not in text(seen)  # only with --explain


def test_explain_on_an_automatic_message(corpus: Path) -> None:
    seen = examine((corpus / "emails" / "70-vacation-automatic-reply.eml").read_bytes(),
                   Settings(), now=NOW)
    out = text(seen, explain=True)
    assert seen.code is None and "Verdict:     dropped" in out
    assert "dropped, never answered" in out and "Received chain: 2 hop(s)" in out
    data = as_json(seen)
    assert data["is_auto_reply"] and data["command"]["code"] is None


def test_a_configured_store_is_read_and_never_written(tmp_path: Path) -> None:
    db = tmp_path / "mailgw.db"
    settings = make_settings(f"sqlite:///{db}", free_port())
    store = prepare_store(settings)
    try:
        with store.tx() as s:
            accounts.add_account(s, SENDER, PASSWORD, region="FR", lang="en",
                                 tz="Europe/Paris", credits=None)
        when = (datetime.now(ZoneInfo("Europe/Paris")) + timedelta(days=3)).strftime(
            "%H%M%d%m%Y")
        intake = Intake(store, settings, Renderer(from_address="fax@gw.example.org",
                                                  domain="gw.example.org"))
        deferred = fax_message(f"{PASSWORD}:0170709901:INV-7::{when}", PDF)
        job = intake.handle(deferred.as_bytes(), Envelope(SENDER, ("fax@gw.example.org",)))
        assert job.code == 81
    finally:
        store.dispose()
    cfg = tmp_path / "mailgw.toml"
    cfg.write_text(f'[store]\nurl = "sqlite:///{db}"\n', encoding="utf-8")
    files = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in tmp_path.iterdir()}

    cancel = write(tmp_path, fax_message(f"{PASSWORD}::INV-7::{when}s", None), "cancel.eml")
    r = mailgw("parse", str(cancel), "--config", str(cfg), "--explain")
    assert r.returncode == 0, r.stderr
    assert "Verdict:     accepted [95]" in r.stdout
    assert f"matching now: {job.job_ids[0]}" in r.stdout and "(read-only)" in r.stdout
    other = write(tmp_path, fax_message(f"{PASSWORD}::INV-8::{when}s", None), "other.eml")
    r = mailgw("parse", str(other), "--config", str(cfg), "--json")
    assert json.loads(r.stdout)["refusal"]["code"] == 96
    wrong = write(tmp_path, fax_message(f"Wrong-pass9:0170709901::{when}", PDF), "wrong.eml")
    r = mailgw("parse", str(wrong), "--config", str(cfg), "--json")
    assert json.loads(r.stdout)["refusal"]["code"] == 82
    stranger = write(tmp_path, fax_message(f"{PASSWORD}:0170709901", PDF,
                                           sender="eve@example.com"), "eve.eml")
    r = mailgw("parse", str(stranger), "--config", str(cfg), "--json")
    assert json.loads(r.stdout)["refusal"]["code"] == 82
    for name, digest in files.items():
        assert hashlib.sha256((tmp_path / name).read_bytes()).hexdigest() == digest, name
    new = {p.name for p in tmp_path.iterdir()} - set(files)
    # SQLite's WAL index may appear for a reader; its log stays empty: nothing was written
    assert new - {"mailgw.db-wal", "mailgw.db-shm"} == {
        "cancel.eml", "other.eml", "wrong.eml", "eve.eml"}
    assert not (tmp_path / "mailgw.db-wal").exists() or not (
        tmp_path / "mailgw.db-wal").stat().st_size


def test_a_missing_store_falls_back_to_the_defaults(tmp_path: Path) -> None:
    cfg = tmp_path / "mailgw.toml"
    cfg.write_text(f'[store]\nurl = "sqlite:///{tmp_path / "none.db"}"\n', encoding="utf-8")
    path = write(tmp_path, fax_message(f"{PASSWORD}:0170709901", PDF))
    r = mailgw("parse", str(path), "--config", str(cfg), "--explain")
    assert r.returncode == 0 and "accepted [80]" in r.stdout, r.stdout + r.stderr
    assert "the store cannot be read" in r.stdout and "embedded defaults" in r.stdout
    assert not (tmp_path / "none.db").exists()
