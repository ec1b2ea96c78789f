"""Sound in the sandbox: probe, check and convert with PyAV (FFmpeg's libraries, in its wheel).

Runs inside the sandbox worker only (mailgw.documents.tasks) under the document's CPU, memory and
wall-clock limits, so no system ffmpeg is needed. Nothing the file says is trusted: not the
container's duration, not the stream's. Decoding stops as soon as the decoded sound passes
the limit, so a small file that would decode to hours costs at most `max_seconds` of
decoding, and the PCM kept is bounded by the limit too. Every error from the libraries is a
refusal with a reason (93), never an exception that reaches the daemon.
"""

from __future__ import annotations

import array
import base64
import io
import json
import math
import sys
import wave
from typing import Any

import av

# libavformat's format name -> the name users know (the same names ffprobe prints)
ACCEPTED = {"wav": "wav", "mp3": "mp3", "mov,mp4,m4a,3gp,3g2,mj2": "m4a", "ogg": "ogg",
            "amr": "amr"}
SILENT_PEAK_DB = -50.0  # a peak below this is silence (or hiss), not a message
MIN_SOUND_SECONDS = 0.3
PADDING = 0.5  # encoders pad a few milliseconds: "45 s" may be 45.03 s
MAX_RATE = 192_000  # a sample rate above this is a hostile header, not a recording
MAX_CHANNELS = 8
MAX_BAD_PACKETS = 20  # damaged packets skipped (as ffmpeg does) before the sound is refused


def audio_info(data: bytes) -> dict[str, object]:
    """Probe, check and convert a sound. Input: one JSON line of parameters (`rate`,
    `max_seconds`, `convert`), then the file. Answer: usable, format, duration, peak_db
    and, when converted, the WAV (mono, 16-bit PCM, `rate` Hz) in base64."""
    line, _, sound = data.partition(b"\n")
    params = json.loads(line)
    rate, limit = int(params.get("rate", 8000)), float(params.get("max_seconds", 45))
    if not sound.strip(b"\0 \r\n\t"):
        return {"usable": False, "reason": "sound_empty", "error": "the file is empty"}
    try:
        return _examine(sound, rate, limit, bool(params.get("convert", True)))
    except MemoryError:
        raise  # the sandbox says "over the memory limit"
    except Exception as exc:  # noqa: BLE001 - whatever the library raises is the file's fault
        return {"usable": False, "reason": "broken_sound",
                "error": f"the sound could not be read ({_why(exc)})"}


def _examine(sound: bytes, rate: int, limit: float, convert: bool) -> dict[str, object]:
    av.logging.set_level(None)  # FFmpeg's own log lines go nowhere (the worker has no stderr)
    try:
        container = av.open(io.BytesIO(sound), "r", metadata_errors="ignore")
    except Exception as exc:  # noqa: BLE001 - any failure to open is "not a sound we read"
        return {"usable": False, "reason": "sound_not_audio",
                "error": f"not a sound file ({_why(exc)})"}
    with container:
        name = str(container.format.name)
        if not container.streams.audio:
            return {"usable": False, "reason": "sound_not_audio", "format_name": name,
                    "error": "not a sound file (no audio stream)"}
        stream = container.streams.audio[0]
        probe: dict[str, object] = {"usable": True, "format": ACCEPTED.get(name),
                                    "format_name": name, "codec": stream.codec_context.name}
        if probe["format"] is None:
            return {**probe, "usable": False, "reason": "sound_format",
                    "error": f"format not accepted ({name})"}
        if not convert:
            return probe
        decoded = _decode(container, stream, rate, limit)
        claimed = container.duration / 1e6 if container.duration else 0.0
    if isinstance(decoded, str):
        return {**probe, "usable": False, "reason": "broken_sound",
                "error": f"the sound could not be decoded: {decoded}"}
    pcm, too_long = decoded
    return _judge(probe, pcm, rate, limit, too_long, claimed)


def _why(exc: BaseException) -> str:
    text = str(getattr(exc, "strerror", None) or exc).strip()
    return f"{type(exc).__name__}: {text[:120]}" if text else type(exc).__name__


def _decode(container: Any, stream: Any, rate: int, limit: float
            ) -> tuple[bytes, bool] | str:
    """(mono s16 PCM at `rate`, stopped over the limit), or why it could not be decoded.

    The bound is the decoded time (input samples / input rate) and the output's size, both
    counted as frames come: never the headers' durations.
    """
    ctx = stream.codec_context
    ctx.thread_count = 1  # no decoder threads inside the limits
    cap = int((limit + PADDING) * rate) * 2
    pcm = bytearray()
    seconds = 0.0
    bad = 0
    state: dict[str, Any] = {"key": None, "resampler": None}

    def resample(frame: Any) -> None:
        key = (frame.format.name, frame.layout.name, frame.sample_rate)
        if key != state["key"]:  # a stream may change rate or layout midway
            flush()
            state["key"] = key
            state["resampler"] = av.AudioResampler(format="s16", layout="mono", rate=rate)
        for out in state["resampler"].resample(frame):
            pcm.extend(bytes(out.planes[0])[: out.samples * 2])

    def flush() -> None:
        if state["resampler"] is not None:
            for out in state["resampler"].resample(None):
                pcm.extend(bytes(out.planes[0])[: out.samples * 2])
            state["resampler"] = None

    try:
        for packet in container.demux(stream):
            try:
                frames = packet.decode()
            except av.FFmpegError:  # a damaged packet: skipped, as ffmpeg does
                bad += 1
                if bad > MAX_BAD_PACKETS:
                    return f"more than {MAX_BAD_PACKETS} damaged packets"
                continue
            for frame in frames:
                if not 0 < frame.sample_rate <= MAX_RATE or not (
                        0 < len(frame.layout.channels) <= MAX_CHANNELS):
                    return (f"{frame.sample_rate} Hz, {len(frame.layout.channels)} channels"
                            " is not a sound we play")
                seconds += frame.samples / frame.sample_rate
                resample(frame)
                if seconds > limit + PADDING or len(pcm) > cap:
                    return bytes(pcm[:cap]), True
        flush()
    except Exception as exc:  # noqa: BLE001 - the demuxer or the resampler gave up
        if not pcm:
            return _why(exc)
    return bytes(pcm[: len(pcm) // 2 * 2]), len(pcm) > cap


def _judge(probe: dict[str, object], pcm: bytes, rate: int, limit: float, too_long: bool,
           claimed: float) -> dict[str, object]:
    """Too long, too short, silent, or the 8 kHz mono WAV the drivers play. `claimed` (the
    header's duration) only tells the sender how much too long, never decides."""
    duration = len(pcm) / 2 / rate
    if too_long or duration > limit + PADDING:
        shown = max(duration, min(claimed, 1e6))
        return {**probe, "usable": False, "duration": round(shown, 1),
                "reason": "sound_too_long", "error": f"the sound lasts more than {limit:g} s"}
    if duration < MIN_SOUND_SECONDS:
        return {**probe, "usable": False, "duration": duration, "reason": "sound_empty",
                "error": "the sound is empty"}
    samples = array.array("h", pcm)
    if sys.byteorder == "big":
        samples.byteswap()
    peak = max(max(samples), -min(samples))
    peak_db = 20 * math.log10(peak / 32768) if peak else -120.0
    levels = {"duration": duration, "peak_db": round(peak_db, 1)}
    if peak_db < SILENT_PEAK_DB:
        return {**probe, **levels, "usable": False, "reason": "sound_silent",
                "error": f"the sound is silent (peak {peak_db:.0f} dBFS)"}
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm)
    return {**probe, **levels, "usable": True, "rate": rate,
            "wav": base64.b64encode(out.getvalue()).decode("ascii")}
