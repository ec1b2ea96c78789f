"""Voice: sound checks and conversion (PyAV in the sandbox), the message library, call
options, the simulator's voice outcomes, notices, the CSV report, pacing, the CLI.

Sounds are made on the spot with PyAV (tests/sounds.py); hostile sounds are in
tests/integration/test_sound.py.
"""

from __future__ import annotations

import io
import json
import smtplib
import wave
from collections.abc import Callable
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from mailgw.accounts import call_options, voice
from mailgw.codes import DETAILS
from mailgw.dispatch.drivers.base import CallRequest
from mailgw.dispatch.drivers.rate import TokenBucket
from mailgw.dispatch.drivers.simulator import outcome
from mailgw.dispatch.drivers.voice_outcomes import OUTCOMES
from mailgw.documents import checks as documents
from mailgw.documents.sandbox import Limits
from mailgw.inbound.mail import parse_mail
from mailgw.notify.words import WORDS
from mailgw.ops import cli, cli_jobs
from mailgw.store import Job
from mailgw.store.models import VoiceMessage
from tests.conftest import PASSWORD, SENDER
from tests.integration.test_end_to_end import send
from tests.sounds import encode

LIMITS = Limits(20, 512_000_000)
VOICE = "voice@gw.example.org"
SPEECH_SECONDS = 8.0


@pytest.fixture(params=["sqlite"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'voice.db'}"


@pytest.fixture(scope="module")
def sounds() -> dict[str, bytes]:
    """Speech-like sound in every accepted format, plus silence and a sound over 45 s, made
    with PyAV (tests/sounds.py): no system program needed."""
    made = {f"speech.{ext}": encode(ext, SPEECH_SECONDS) for ext in ("wav", "mp3", "ogg", "m4a",
                                                                      "amr")}
    made["silent.wav"] = encode("wav", 3.0, level=0.0, rate=8000)
    made["long.wav"] = encode("wav", 80.0, rate=8000)
    made["long.mp3"] = encode("mp3", 80.0, rate=8000, channels=1)
    return made


def wav_facts(data: bytes) -> tuple[int, int, int, float]:
    with wave.open(io.BytesIO(data)) as w:
        return (w.getframerate(), w.getnchannels(), w.getsampwidth(),
                w.getnframes() / w.getframerate())


# -- sound checks and conversion -------------------------------------------------------------

@pytest.mark.parametrize("name, fmt", [("speech.wav", "wav"), ("speech.mp3", "mp3"),
                                       ("speech.ogg", "ogg"), ("speech.m4a", "m4a"),
                                       ("speech.amr", "amr")])
def test_every_accepted_format_becomes_8khz_mono_pcm(sounds: dict[str, bytes], name: str,
                                                     fmt: str) -> None:
    check = documents.check_sound(sounds[name], LIMITS)
    assert check.usable, check.error
    assert check.format == fmt and check.audio is not None
    rate, channels, width, seconds = wav_facts(check.audio)
    assert (rate, channels, width) == (8000, 1, 2)
    reference = wav_facts(documents.check_sound(sounds["speech.wav"], LIMITS).audio or b"")[3]
    assert seconds == pytest.approx(reference, abs=0.1)  # codecs pad a little
    assert check.duration == pytest.approx(seconds)
    assert check.peak_db is not None and check.peak_db > -20


@pytest.mark.parametrize("name, reason", [("silent.wav", "sound_silent"),
                                          ("long.wav", "sound_too_long"),
                                          ("long.mp3", "sound_too_long")])
def test_silent_and_long_sounds_are_refused(sounds: dict[str, bytes], name: str,
                                            reason: str) -> None:
    check = documents.check_sound(sounds[name], LIMITS)
    assert (check.usable, check.reason, check.audio) == (False, reason, None)
    if reason == "sound_too_long":
        assert check.duration is not None and check.duration > 45


def test_limit_is_configurable_and_bad_input_is_refused_cleanly(sounds: dict[str, bytes],
                                                                corpus: Path) -> None:
    assert documents.check_sound(sounds["speech.mp3"], LIMITS, max_seconds=2).reason == (
        "sound_too_long")
    assert documents.check_sound(b"", LIMITS).reason == "sound_empty"
    assert documents.check_sound(b"%PDF-1.4 not a sound", LIMITS).reason == "sound_not_audio"
    assert documents.check_sound(sounds["speech.m4a"][:600], LIMITS).usable is False
    assert documents.check_sound(encode("flac", 3.0), LIMITS).reason == "sound_format"
    # the corpus' audio parts: RFC 2046's placeholder audio/basic, and a 1-byte audio/mp3
    for prefix in ("25-", "26-"):
        (path,) = (corpus / "emails").glob(prefix + "*.eml")
        (sound,) = parse_mail(path.read_bytes()).sounds()[:1]
        check = documents.check_sound(sound.data, LIMITS)
        assert not check.usable and check.reason in ("sound_not_audio", "sound_empty"), check


def test_m4a_with_its_index_after_the_samples_is_read(sounds: dict[str, bytes]) -> None:
    """What phones and FFmpeg's muxer write by default: `moov` after `mdat` (the sound is
    read from memory, seekable, so no reordering is needed)."""
    data = sounds["speech.m4a"]
    assert data.index(b"moov") > data.index(b"mdat")
    check = documents.check_sound(data, LIMITS)
    assert check.usable and check.format == "m4a", check.error


# -- options (pure) -----------------------------------------------------------------------------

def test_options_block_aliases_and_reports() -> None:
    body = ("Bonjour,\n\nTransfert: 01 70 70 99 01\nretries: 2\ncolour: blue\nwelcome: oui\n"
            "voicemail: only\n\nMerci.\ncallerid: 0170709900\n-- \nAlice\nTel: 0612345678\n")
    block = call_options.parse_block(body)
    assert block.values == {"transfer": "01 70 70 99 01", "retries": "2", "welcome": "oui",
                            "voicemail": "only"}
    assert [p.key for p in block.problems] == ["option_unknown"]
    assert block.problems[0].params["option"] == "colour"
    resolved = call_options.resolve(body, {"retries": "4", "callerid": "+33170709900"}, "FR", [])
    assert resolved.options == {"transfer": "+33170709901", "welcome": "yes",
                                "callerid": "+33170709900", "retries": "2",
                                "voicemail": "only"}
    # a signature or quoted text is never read; no block, no options
    assert call_options.parse_block("-- \ntransfer: 0170709901\n").values == {}
    assert call_options.parse_block("> retries: 3\n").values == {}
    assert call_options.parse_block("depot: 1").values == {"voicemail": "only"}


def test_option_values_that_cannot_be_used_are_reported() -> None:
    options, problems = call_options.validate(
        {"transfer": "abc", "callerid": "0170709955", "retries": "99", "voicemail": "maybe",
         "welcome": "perhaps"}, "FR", ["+33170709900"])
    assert options == {"callerid": ""}  # unverified: the number is hidden
    assert sorted(p.key for p in problems) == ["callerid_unverified", "option_number",
                                               "option_value", "option_value", "option_value"]
    for p in problems:
        for lang in ("fr", "en", "ru"):
            assert DETAILS[p.key][lang].format(**p.params)
    # "none" switches a default off
    resolved = call_options.resolve("transfer: none\n", {"transfer": "+33170709901"}, "FR", [])
    assert resolved.options == {} and resolved.problems == ()
    assert voice.retry_policy(voice.RetrySettings(max_attempts=5), {"retries": "0"}
                              ).max_attempts == 1


# -- the simulator's voice outcomes (pure) ---------------------------------------------------

def vcall(last: str, attempt: int = 1, **options: str) -> Any:
    return outcome(CallRequest(1, attempt, "voice", f"+336123456{last}", "k",
                               sound_seconds=20.0, options=options))


@pytest.mark.parametrize("last, options, attempt, result, retryable, told", [
    ("00", {}, 1, "delivered", False, "played"),
    ("00", {"welcome": "yes"}, 1, "delivered", False, "played_star"),
    ("88", {"transfer": "+33170709901"}, 1, "delivered", False, "transferred"),
    ("88", {}, 1, "delivered", False, "played"),
    ("89", {"welcome": "yes"}, 1, "no_answer", False, "no_star"),
    ("90", {}, 1, "busy", True, None),
    ("90", {}, 2, "delivered", False, "played"),
    ("91", {}, 2, "no_answer", True, None),
    ("92", {}, 1, "line_dropped", True, None),
    ("93", {}, 1, "delivered", False, "machine_left"),
    ("93", {"voicemail": "no"}, 1, "no_answer", True, "machine_not_left"),
    ("93", {"welcome": "yes"}, 1, "no_answer", True, "machine_no_star"),
    ("94", {"voicemail": "only"}, 1, "delivered", False, "dropped"),
    ("95", {"voicemail": "only"}, 1, "no_answer", False, "no_voicemail"),
    ("96", {}, 1, "partial", False, "heard_part"),
    ("97", {}, 1, "not_in_service", False, None),
    ("99", {}, 1, "provider_error", True, None),
])
def test_simulator_voice_table(last: str, options: dict[str, str], attempt: int, result: str,
                               retryable: bool, told: str | None) -> None:
    r = vcall(last, attempt, **options)
    assert (r.result, r.retryable) == (result, retryable)
    parsed = voice.parse_outcome(r.detail or r.error_text)
    assert (parsed[0] if parsed else None) == told
    if told == "heard_part":
        assert parsed is not None and parsed[1] == {"heard": "10", "length": "20"}


def test_every_outcome_reads_in_every_language() -> None:
    for key, text in OUTCOMES.items():
        sentence = text.format(heard=7, length=20, number="+33170709901")
        for lang, words in WORDS.items():
            told = voice.describe(sentence, words)
            assert told and "{" not in told, (lang, key)
    assert voice.describe("busy", WORDS["fr"]) is None


def test_token_bucket_spreads_calls() -> None:
    bucket = TokenBucket(2.0, now=0.0)  # two calls a second
    assert bucket.allowed(4, 0.0) == 1
    bucket.take(1, 0.0)
    assert bucket.allowed(4, 0.1) == 0 and bucket.delay(0.1) == pytest.approx(0.4)
    assert bucket.allowed(4, 0.5) == 1
    bucket.take(1, 0.5)
    assert bucket.allowed(4, 10.0) == 1  # no burst after a quiet spell
    assert TokenBucket(0).allowed(7, 0.0) == 7


# -- through the real SMTP listener ----------------------------------------------------------

def voice_mail(subject: str, sound: bytes | None = None, body: str = "", *,
               filename: str = "message.mp3", subtype: str = "mpeg") -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = SENDER
    msg["To"] = VOICE
    msg["Subject"] = subject
    msg.set_content(body or "Voice message.\n")
    if sound is not None:
        msg.add_attachment(sound, maintype="audio", subtype=subtype, filename=filename)
    return msg


def text(msg: EmailMessage) -> str:
    return msg.get_body(preferencelist=("plain",)).get_content()  # type: ignore[union-attr]


def refused(port: int, msg: EmailMessage) -> bytes:
    with pytest.raises(smtplib.SMTPDataError) as err:
        send(port, msg)
    return err.value.smtp_error


def test_library_store_use_and_refusals(make_app: Callable[..., Any], sink: Any,
                                        sounds: dict[str, bytes]) -> None:
    app = make_app()
    app.add_account(lang="fr")
    reply = send(app.port, voice_mail(f"{PASSWORD}:::Promo:printemps:", sounds["speech.mp3"]))
    assert reply.startswith("250 2.0.0 [80]") and "message promo enregistre" in reply
    ack = sink.wait_for(lambda ms: len(ms) >= 1, what="ack")[0]
    assert ack["X-Mailgw-Code"] == "80" and ack["X-Mailgw-Job"] is None
    assert "message promo enregistré" in text(ack) and "avis pour chaque" not in text(ack)
    again = send(app.port, voice_mail(f"{PASSWORD}:::promo", sounds["speech.ogg"],
                                      filename="v2.ogg", subtype="ogg"))
    assert "message promo remplace" in again
    with app.store.read() as s:
        (row,) = s.scalars(select(VoiceMessage))
        assert row.ref == "promo" and row.source_name == "v2.ogg"
        assert wav_facts(row.audio)[:3] == (8000, 1, 2)
    # a job naming the ref, with options in the body
    body = "transfer: 01 70 70 99 01\nretries: 1\ncolour: blue\n"
    assert send(app.port, voice_mail(f"{PASSWORD}:0612345600:PROMO", None, body)).startswith(
        "250 2.0.0 [80]")
    ack = sink.wait_for(lambda ms: len([m for m in ms if m["X-Mailgw-Kind"] == "ack"]) >= 3,
                        what="3 acks")[2]
    assert "transfer +33170709901, retries 1" in text(ack)
    assert "option inconnue ignorée : colour" in text(ack)
    with app.store.read() as s:
        job = s.scalar(select(Job).where(Job.ref == "PROMO"))
        assert job is not None and json.loads(job.options or "") == {
            "retries": "1", "transfer": "+33170709901"}
        assert job.document == row.audio and job.duration == pytest.approx(row.duration)
    # 90 without ref or sound, 91 for an unknown ref, 93 for silence, 82 for a wrong password
    assert b"[90]" in refused(app.port, voice_mail(f"{PASSWORD}:0612345600", None))
    err = refused(app.port, voice_mail(f"{PASSWORD}:0612345600:nope", None))
    assert b"[91]" in err and b"nope" in err
    err = refused(app.port, voice_mail(f"{PASSWORD}:0612345600", sounds["silent.wav"],
                                       filename="blanc.wav", subtype="wav"))
    assert b"[93]" in err and b"blanc.wav est silencieux" in err
    err = refused(app.port, voice_mail(f"{PASSWORD}:0612345600", sounds["long.mp3"]))
    assert b"[93]" in err and b"au plus 45 s" in err
    assert b"[82]" in refused(app.port, voice_mail("wrong:::promo", sounds["speech.mp3"]))
    assert b"[91]" in refused(app.port, voice_mail(f"{PASSWORD}::bad ref!",
                                                   sounds["speech.mp3"]))


def test_corpus_audio_attachments_are_refused_cleanly(make_app: Callable[..., Any], sink: Any,
                                                      corpus: Path) -> None:
    app = make_app()
    app.add_account()
    for prefix in ("25-", "26-"):
        (path,) = (corpus / "emails").glob(prefix + "*.eml")
        sound = parse_mail(path.read_bytes()).sounds()[0]
        err = refused(app.port, voice_mail(f"{PASSWORD}:0612345600", sound.data,
                                           filename=sound.filename or "sound.au",
                                           subtype=sound.content_type.split("/")[1]))
        assert b"[93]" in err and (b"not a sound file" in err or b"empty" in err), err


def test_voice_outcomes_reach_notices_and_the_report(make_app: Callable[..., Any], sink: Any,
                                                     sounds: dict[str, bytes]) -> None:
    app = make_app(drivers={"simulator": {"time_scale": 0.001, "calls_per_second": 50}})
    app.add_account()
    numbers = ["0612345600", "0612345688", "0612345693", "0612345696", "0612345697"]
    body = "Hello,\n\ntransfer: 0170709901\nretries: 0\n"
    assert send(app.port, voice_mail(f"{PASSWORD}:{','.join(numbers)}:32:relance",
                                     sounds["speech.wav"], body, filename="relance.wav",
                                     subtype="wav")).startswith("250 2.0.0 [80]")
    notices = sink.wait_for(lambda ms: len([m for m in ms if m["X-Mailgw-Kind"] == "notice"])
                            >= len(numbers), what="5 notices", timeout=60)
    by_number = {m["Subject"].split(" to ")[1].split(" – ")[0]: m
                 for m in notices if m["X-Mailgw-Kind"] == "notice"}
    played = text(by_number["+33 6 12 34 56 00"])
    assert "Outcome: answered, message played in full" in played
    assert "transferred to +33 1 70 70 99 01" in text(by_number["+33 6 12 34 56 88"])
    assert "answering machine: message left" in text(by_number["+33 6 12 34 56 93"])
    partial = by_number["+33 6 12 34 56 96"]
    assert partial["X-Mailgw-State"] == "partial" and "hung up after" in text(partial)
    assert by_number["+33 6 12 34 56 97"]["X-Mailgw-State"] == "failed"
    with app.store.read() as s:
        job = s.scalar(select(Job))
        assert job is not None
        from mailgw.jobs.reports import job_csv

        report = job_csv(s, job.id) or ""
    rows = {line.split(";")[2]: line.split(";") for line in report.splitlines()[1:]}
    assert rows["33612345600"][3:5] == ["21", "delivered: message played"]
    assert rows["33612345688"][3:5] == ["21", "delivered: transferred (9 pressed)"]
    assert rows["33612345693"][3:5] == ["21", "delivered: answering machine"]
    assert rows["33612345696"][3:5] == ["22", "partially delivered: hung up during the message"]
    assert rows["33612345697"][3:5] == ["117", "not delivered: not in service"]


def test_cli_library_caller_ids_and_defaults(tmp_path: Path, sounds: dict[str, bytes],
                                             capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "mailgw.toml"
    cfg.write_text(f'[store]\nurl = "sqlite:///{tmp_path / "db.sqlite"}"\n'
                   '[log]\nlevel = "error"\n', encoding="utf-8")
    (tmp_path / "m.ogg").write_bytes(sounds["speech.ogg"])
    (tmp_path / "silent.wav").write_bytes(sounds["silent.wav"])
    c = ["--config", str(cfg)]

    def run(*args: str, stdin: str = "") -> tuple[int, str]:
        import sys

        old = sys.stdin
        sys.stdin = io.StringIO(stdin)
        try:
            code = cli.main([*args, *c])
        finally:
            sys.stdin = old
        out = capsys.readouterr()
        return code, out.out + out.err

    assert run("account", "add", "bob@example.com", "--password-stdin",
               stdin="S3cret-Pw_42\n")[0] == 0
    code, out = run("voice", "add", "bob@example.com", "32", str(tmp_path / "m.ogg"))
    assert code == 0 and "message 32 stored" in out
    code, out = run("voice", "add", "bob@example.com", "33", str(tmp_path / "silent.wav"))
    assert code == 1 and "silent" in out
    code, out = run("voice", "list", "bob@example.com", "--json")
    assert [m["ref"] for m in json.loads(out)] == ["32"]
    code, out = run("voice", "options", "bob@example.com", "callerid=0170709900")
    assert code == 1 and "not a verified number" in out
    assert run("voice", "callerid", "add", "bob@example.com", "01 70 70 99 00")[0] == 0
    code, out = run("voice", "options", "bob@example.com", "callerid=0170709900", "retries=2")
    assert code == 0 and "callerid +33170709900, retries 2" in out
    assert run("voice", "remove", "bob@example.com", "32")[0] == 0
    assert run("voice", "list", "bob@example.com", "--json")[1].strip() == "[]"


def test_call_rate_retries_option_and_progress(make_app: Callable[..., Any], sink: Any,
                                               sounds: dict[str, bytes],
                                               capsys: pytest.CaptureFixture[str]) -> None:
    from mailgw.jobs import views
    from mailgw.store import Attempt

    app = make_app(drivers={"simulator": {"time_scale": 0.001, "calls_per_second": 5}})
    app.add_account()
    numbers = ["0612345600", "0612345601", "0612345694"]  # 94: busy on every call
    assert send(app.port, voice_mail(f"{PASSWORD}:{','.join(numbers)}", sounds["speech.wav"],
                                     "retries: 0\n", filename="m.wav", subtype="wav")
                ).startswith("250 2.0.0 [80]")
    sink.wait_for(lambda ms: len([m for m in ms if m["X-Mailgw-Kind"] == "notice"]) >= 3,
                  what="3 notices", timeout=60)
    with app.store.read() as s:
        starts = sorted(a.started_at for a in s.scalars(select(Attempt)))
        job = views.get_job(s, 1)
    assert len(starts) == 3  # retries: 0 → the busy number is called once (tests allow 3)
    gaps = [(b - a).total_seconds() for a, b in zip(starts, starts[1:], strict=False)]
    assert min(gaps) >= 0.15, gaps  # 5 calls a second: 0.2 s apart (a lower bound only)
    assert job is not None
    cli_jobs.print_job(job)
    assert "progress: 3/3 final (2 delivered, 1 failed)" in capsys.readouterr().out
