"""Sounds made on the spot with PyAV (the wheel's FFmpeg encoders) and the stdlib: no espeak-ng,
sox or ffmpeg, so the voice path is tested on a plain machine.

`voice()` is a speech-like signal (a few harmonics, a pitch that moves, syllables of ~200 ms
with pauses), loud enough that it is never "silent"; `encode()` writes it in any container.
"""

from __future__ import annotations

import array
import io
import math
import struct
import sys
from fractions import Fraction

import av

# extension -> (PyAV container format, encoder, sample rate, channels): what phones and
# desktop recorders write, at their usual rates
FORMATS = {"wav": ("wav", "pcm_s16le", 16000, 1), "mp3": ("mp3", "libmp3lame", 44100, 2),
           "ogg": ("ogg", "libopus", 48000, 1), "vorbis.ogg": ("ogg", "vorbis", 44100, 2),
           "m4a": ("ipod", "aac", 44100, 1), "amr": ("amr", "libopencore_amrnb", 8000, 1),
           "flac": ("flac", "flac", 16000, 1)}


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
