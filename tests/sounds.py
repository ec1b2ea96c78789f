"""Sounds made on the spot with PyAV (the wheel's FFmpeg encoders) and the stdlib: no espeak-ng,
sox or ffmpeg, so the voice path is tested on a plain machine.

`voice()` is a speech-like signal (a few harmonics, a pitch that moves, syllables of ~200 ms
with pauses), loud enough that it is never "silent"; `encode()` writes it in any container.

AMR-NB is the exception: PyAV's wheels do not all carry its encoder (18.1.1's has none, only
the decoder mailgw needs), so `encode("amr", ...)` cuts the committed AMR_SAMPLE (8 s of
`voice()`, 5 KB) frame by frame to the length asked. `python -m tests.sounds` makes it again,
with a PyAV whose wheel has libopencore_amrnb.
"""

from __future__ import annotations

import array
import io
import math
import struct
import sys
from fractions import Fraction
from itertools import cycle, islice
from pathlib import Path

import av

# extension -> (PyAV container format, encoder, sample rate, channels): what phones and
# desktop recorders write, at their usual rates
FORMATS = {"wav": ("wav", "pcm_s16le", 16000, 1), "mp3": ("mp3", "libmp3lame", 44100, 2),
           "ogg": ("ogg", "libopus", 48000, 1), "vorbis.ogg": ("ogg", "vorbis", 44100, 2),
           "m4a": ("ipod", "aac", 44100, 1), "amr": ("amr", "libopencore_amrnb", 8000, 1),
           "flac": ("flac", "flac", 16000, 1)}
AMR_SAMPLE = Path(__file__).with_name("sound_samples") / "speech.amr"
AMR_SAMPLE_SECONDS = 8.0
AMR_MAGIC = b"#!AMR\n"
AMR_FRAME_BYTES = (12, 13, 15, 17, 19, 20, 26, 31, 5, 0, 0, 0, 0, 0, 0, 0)  # by frame type
AMR_FRAMES_PER_SECOND = 50  # 20 ms frames


def voice(seconds: float, rate: int, channels: int = 1, *, level: float = 0.6) -> bytes:
    """Interleaved signed 16-bit PCM of a speech-like sound (`level` 0 is silence)."""
    n = int(seconds * rate)
    out = array.array("h", bytes(2 * n * channels))
    if level:
        two_pi = 2 * math.pi
        phase = 0.0
        for i in range(n):
            t = i / rate
            syllable = (t * 5.0) % 1.0  # 5 syllables a second, each 70 % voiced
            envelope = math.sin(math.pi * syllable / 0.7) if syllable < 0.7 else 0.0
            phase += two_pi * (140.0 + 40.0 * math.sin(two_pi * 0.7 * t)) / rate
            value = (math.sin(phase) + 0.5 * math.sin(2 * phase) + 0.3 * math.sin(3 * phase)
                     ) / 1.8
            sample = int(32767 * level * envelope * value)
            for c in range(channels):
                out[i * channels + c] = sample
    if sys.byteorder == "big":
        out.byteswap()
    return out.tobytes()


def encode(ext: str, seconds: float, *, level: float = 0.6, rate: int | None = None,
           channels: int | None = None) -> bytes:
    """A sound of `seconds` in the format of FORMATS[ext] (rate/channels overridable)."""
    fmt, codec, default_rate, default_channels = FORMATS[ext]
    rate, channels = rate or default_rate, channels or default_channels
    if ext == "amr":
        if (rate, channels, level) != (default_rate, default_channels, 0.6):
            raise ValueError("the AMR sample is 8 kHz mono voice() at level 0.6")
        return amr(seconds)
    return encode_pcm(fmt, codec, voice(seconds, rate, channels, level=level), rate, channels)


def encode_pcm(fmt: str, codec: str, pcm: bytes, rate: int, channels: int,
               options: dict[str, str] | None = None) -> bytes:
    layout = "mono" if channels == 1 else "stereo"
    buf = io.BytesIO()
    with av.open(buf, "w", format=fmt) as out:
        stream = out.add_stream(codec, rate=rate, layout=layout)
        stream.options = {"strict": "-2", **(options or {})}  # FFmpeg's vorbis is "experimental"
        step = 1024 * 2 * channels
        for start in range(0, len(pcm), step):
            chunk = pcm[start:start + step]
            frame = av.AudioFrame(format="s16", layout=layout, samples=len(chunk) // 2 // channels)
            frame.planes[0].update(chunk)
            frame.sample_rate = rate
            frame.pts = start // 2 // channels
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return buf.getvalue()


def amr_frames(data: bytes) -> list[bytes]:
    """The frames of an AMR-NB file (RFC 4867 storage format: the magic, then frames whose
    first byte says their type, hence their size)."""
    if not data.startswith(AMR_MAGIC):
        raise ValueError("not an AMR-NB file")
    frames, offset = [], len(AMR_MAGIC)
    while offset < len(data):
        size = 1 + AMR_FRAME_BYTES[(data[offset] >> 3) & 0x0F]
        frames.append(data[offset:offset + size])
        offset += size
    return frames


def amr(seconds: float) -> bytes:
    """`seconds` of the committed AMR sample (repeated when longer than its 8 s)."""
    frames = amr_frames(AMR_SAMPLE.read_bytes())
    count = round(seconds * AMR_FRAMES_PER_SECOND)
    return AMR_MAGIC + b"".join(islice(cycle(frames), count))


def make_amr_sample() -> bytes:
    """What AMR_SAMPLE holds: AMR_SAMPLE_SECONDS of voice(), cut to whole seconds of frames
    (the encoder's last, flushed frame dropped). Needs libopencore_amrnb in PyAV's wheel."""
    encoded = encode_pcm("amr", "libopencore_amrnb", voice(AMR_SAMPLE_SECONDS, 8000), 8000, 1)
    frames = amr_frames(encoded)[:round(AMR_SAMPLE_SECONDS * AMR_FRAMES_PER_SECOND)]
    return AMR_MAGIC + b"".join(frames)


def opus_bomb(hours: float) -> bytes:
    """A small Ogg Opus file (~150 KB an hour) that decodes to `hours` of 48 kHz stereo
    silence: 1.4 GB of float samples an hour. One silent 120 ms packet, repeated."""
    pcm = bytes(2 * 2 * 48000 * 2)  # 2 s of stereo silence, so the encoder settles
    sample = encode_pcm("ogg", "libopus", pcm, 48000, 2,
                        {"frame_duration": "120", "application": "voip"})
    with av.open(io.BytesIO(sample)) as source:
        template = source.streams.audio[0]
        packets = [bytes(p) for p in source.demux(template) if p.size]
        silent = packets[len(packets) // 2]
        buf = io.BytesIO()
        with av.open(buf, "w", format="ogg") as out:
            stream = out.add_stream_from_template(template)
            for i in range(int(hours * 3600 / 0.12)):
                packet = av.Packet(silent)
                packet.stream = stream
                packet.time_base = Fraction(1, 48000)
                packet.pts = packet.dts = i * 5760
                packet.duration = 5760
                out.mux(packet)
    return buf.getvalue()


def wav_chunk(data: bytes, name: bytes) -> int:
    """Offset of a RIFF chunk's header (its 4-byte name) in a WAV file."""
    offset = 12
    while offset + 8 <= len(data):
        kind, size = struct.unpack("<4sI", data[offset:offset + 8])
        if kind == name:
            return offset
        offset += 8 + size + (size & 1)
    raise ValueError(f"no {name!r} chunk")


if __name__ == "__main__":
    AMR_SAMPLE.parent.mkdir(exist_ok=True)
    AMR_SAMPLE.write_bytes(make_amr_sample())
    print(f"{AMR_SAMPLE}: {AMR_SAMPLE.stat().st_size} bytes")
