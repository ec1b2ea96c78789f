"""Sound checks with PyAV in the sandbox: every accepted format, and hostile sounds.

Every sound is made here with PyAV (tests/sounds.py) or the stdlib, AMR-NB cut from a committed
sample (not every PyAV wheel has its encoder); no system program.
A hostile sound must end as a refusal with a reason (93), never an exception, a dead
worker or a 451; decoding must stop at the limit whatever the headers claim.
"""

from __future__ import annotations

import dataclasses
import io
import random
import struct
import wave

import pytest

from mailgw.codes import DETAILS
from mailgw.documents import checks as documents
from mailgw.documents import sandbox
from mailgw.documents.checks import SoundCheck
from mailgw.documents.sandbox import Limits
from tests.sounds import FORMATS, encode, opus_bomb, wav_chunk

LIMITS = Limits(20, 512_000_000)
TIGHT = Limits(5, 256_000_000)  # what a hostile sound gets in the tests of the bounds


def wav_facts(data: bytes) -> tuple[int, int, int, float]:
    with wave.open(io.BytesIO(data)) as w:
        return (w.getframerate(), w.getnchannels(), w.getsampwidth(),
                w.getnframes() / w.getframerate())


def refused(check: SoundCheck, reason: str | None = None) -> None:
    """A clean refusal: not usable, no audio, a reason the user can read in 3 languages."""
    assert not check.usable and check.audio is None, check
    assert check.reason in DETAILS, check
    if reason is not None:
        assert check.reason == reason, check


# -- every accepted format ----------------------------------------------------------------

@pytest.mark.parametrize("ext, fmt, rate, channels", [
    ("wav", "wav", 8000, 1), ("wav", "wav", 44100, 2), ("mp3", "mp3", 44100, 2),
    ("mp3", "mp3", 8000, 1), ("ogg", "ogg", 48000, 1), ("vorbis.ogg", "ogg", 44100, 2),
    ("m4a", "m4a", 44100, 1), ("m4a", "m4a", 22050, 2), ("amr", "amr", 8000, 1)])
def test_each_format_becomes_8khz_mono_pcm_of_the_same_length(ext: str, fmt: str, rate: int,
                                                              channels: int) -> None:
    check = documents.check_sound(encode(ext, 5.0, rate=rate, channels=channels), LIMITS)
    assert check.usable, check.error
    assert check.format == fmt and check.audio is not None
    got_rate, got_channels, width, seconds = wav_facts(check.audio)
    assert (got_rate, got_channels, width) == (8000, 1, 2)
    assert seconds == pytest.approx(5.0, abs=0.1)  # codecs pad a few milliseconds
    assert check.duration == pytest.approx(seconds)
    assert check.peak_db is not None and check.peak_db > -20


def test_the_configured_limit_decides() -> None:
    assert documents.check_sound(encode("wav", 44.0, rate=8000), LIMITS).usable
    for ext in ("wav", "mp3"):
        check = documents.check_sound(encode(ext, 50.0, rate=8000, channels=1), LIMITS)
        refused(check, "sound_too_long")
        assert check.duration is not None and check.duration > 45
    sound = encode("ogg", 5.0)
    refused(documents.check_sound(sound, LIMITS, max_seconds=3), "sound_too_long")
    assert documents.check_sound(sound, LIMITS, max_seconds=6).usable


def test_other_formats_empty_and_silent_sounds_are_refused() -> None:
    refused(documents.check_sound(encode("flac", 3.0), LIMITS), "sound_format")
    refused(documents.check_sound(b"", LIMITS), "sound_empty")
    refused(documents.check_sound(b"\0" * 1000, LIMITS), "sound_empty")
    refused(documents.check_sound(encode("wav", 0.1, rate=8000), LIMITS), "sound_empty")
    refused(documents.check_sound(encode("mp3", 3.0, level=0.0), LIMITS), "sound_silent")
    refused(documents.check_sound(b"%PDF-1.4 not a sound", LIMITS), "sound_not_audio")


# -- hostile sounds ------------------------------------------------------------------------

@pytest.mark.parametrize("ext", ["wav", "mp3", "ogg", "m4a", "amr"])
def test_truncated_sounds_are_refused_or_read_for_what_they_hold(ext: str) -> None:
    """Cut anywhere: inside the header it is refused; later, what decodes is what plays
    (the ack says how long), never more than the whole."""
    whole = encode(ext, 4.0)
    for cut in (1, 8, 30, 200, len(whole) // 3, len(whole) // 2, len(whole) - 7):
        check = documents.check_sound(whole[:cut], LIMITS)
        if check.usable:
            assert check.audio is not None and check.duration is not None
            assert check.duration <= 4.1
        else:
            refused(check)
    for cut in (1, 8, 30):
        refused(documents.check_sound(whole[:cut], LIMITS))


def test_garbage_is_refused_and_the_next_sound_is_read() -> None:
    rng = random.Random(14)
    noise = bytes(rng.getrandbits(8) for _ in range(20_000))
    wav = encode("wav", 2.0, rate=8000)
    data_at = wav_chunk(wav, b"data")
    hostile = [
        noise,
        b"RIFF\xff\xff\xff\xffWAVE" + noise,  # a WAV signature, then noise
        wav[:data_at + 8] + noise,  # a real WAV header over noise: decodes, as noise
        b"ID3\x04\x00\x00\x00\x00\x00\x10" + noise,  # an ID3 tag, no MP3 frame
        b"OggS" + noise,
        b"\x00\x00\x00\x18ftypM4A \x00\x00\x00\x00" + noise,
        b"#!AMR\n" + noise,
        b"#!AMR\n" + b"\x7c" * 3000,  # 60 s of AMR "no data" frames
        encode("mp3", 3.0)[:2000] + noise,
    ]
    for data in hostile:
        check = documents.check_sound(data, LIMITS)
        if check.usable:  # noise inside a valid container is a (loud) sound: fine
            assert check.duration is not None and check.duration < 45
        else:
            refused(check)
    assert documents.check_sound(encode("mp3", 3.0), LIMITS).usable


@pytest.mark.parametrize("limits", [TIGHT, dataclasses.replace(TIGHT, fork_per_document=True)],
                         ids=["in-worker", "forked"])
def test_a_small_file_that_decodes_to_hours_stops_at_the_limit(limits: Limits) -> None:
    """~540 KB of Ogg Opus that would decode to an hour of 48 kHz stereo (1.4 GB of
    samples): decoding stops past 45 s, well inside a small memory and CPU allowance."""
    bomb = opus_bomb(1.0)
    assert len(bomb) < 1_000_000
    check = documents.check_sound(bomb, limits)
    refused(check, "sound_too_long")  # not "unreadable": the sandbox never had to step in
    assert check.duration is not None and check.duration > 45


def test_headers_that_lie_about_the_duration_are_not_trusted() -> None:
    # an MP3 whose Info header claims 2**24 frames (~6.5 h) but holds 3 s: read as 3 s
    mp3 = bytearray(encode("mp3", 3.0, rate=8000, channels=1))
    at = mp3.index(b"Info") + 8  # "Info", the flags, then the number of frames
    struct.pack_into(">I", mp3, at, 1 << 24)
    check = documents.check_sound(bytes(mp3), TIGHT)
    assert check.usable and check.duration == pytest.approx(3.0, abs=0.1), check
    # and the other way round: 80 s of frames under a header that claims 44 frames (3 s)
    long_mp3 = bytearray(encode("mp3", 80.0, rate=8000, channels=1))
    at = long_mp3.index(b"Info") + 8
    struct.pack_into(">I", long_mp3, at, 44)
    refused(documents.check_sound(bytes(long_mp3), TIGHT), "sound_too_long")
    # a WAV whose data chunk claims 2 GB: FFmpeg reads what is there
    wav = bytearray(encode("wav", 3.0, rate=8000))
    struct.pack_into("<I", wav, wav_chunk(bytes(wav), b"data") + 4, 0x7FFFFFF0)
    check = documents.check_sound(bytes(wav), TIGHT)
    assert check.usable and check.duration == pytest.approx(3.0, abs=0.01), check


@pytest.mark.parametrize("field, value, reason", [
    (12, 1, "sound_too_long"),  # 1 Hz: 3 s of 8 kHz samples are 6.7 hours
    (12, 10_000_000, "broken_sound"),  # 10 MHz
    (12, 0, None), (12, 0xFFFFFFFF, None),
    (10, 0, None), (10, 9, "broken_sound"), (10, 0xFFFF, None),  # channels
    (22, 0, None), (22, 0xFFFF, None)])  # bits per sample
def test_hostile_wav_format_fields_are_refused(field: int, value: int,
                                               reason: str | None) -> None:
    wav = bytearray(encode("wav", 3.0, rate=8000))
    at = wav_chunk(bytes(wav), b"fmt ") + field  # from the chunk's name
    struct.pack_into("<I" if field == 12 else "<H", wav, at, value)
    check = documents.check_sound(bytes(wav), TIGHT)
    refused(check, reason)


def test_no_worker_is_left_behind_by_hostile_sounds() -> None:
    """Each refused sound retires its worker; none is left running."""
    sandbox.shutdown()
    for data in (opus_bomb(0.5), b"#!AMR\n" + b"\x7c" * 3000, b"OggS" + b"\x01" * 5000):
        refused(documents.check_sound(data, TIGHT))
    assert len(sandbox.worker_pids()) <= 1
    assert documents.check_sound(encode("wav", 1.0, rate=8000), TIGHT).usable


def test_formats_table_is_complete() -> None:
    """The five accepted formats can each be made here: with an encoder in PyAV's wheel, AMR-NB
    from the committed sample (18.1.1's wheel has no AMR-NB encoder)."""
    for ext in ("wav", "mp3", "ogg", "m4a", "amr"):
        assert ext in FORMATS
        assert encode(ext, 0.5)


def test_a_tag_in_broken_utf8_is_no_reason_to_refuse() -> None:
    mp3 = encode("mp3", 2.0, rate=8000, channels=1)
    assert mp3[:3] == b"ID3"
    size = (mp3[6] << 21) | (mp3[7] << 14) | (mp3[8] << 7) | mp3[9]
    title = b"\x03\xff\xfe\xc3(bad"  # "UTF-8", then bytes that are not
    frame = b"TIT2" + struct.pack(">I", len(title)) + b"\0\0" + title
    tagged = b"ID3\x04\0\0" + bytes([0, 0, 0, len(frame)]) + frame + mp3[10 + size:]
    check = documents.check_sound(tagged, LIMITS)
    assert check.usable and check.duration == pytest.approx(2.0, abs=0.1), check
