"""The value types of the configuration and their parsers (leaf module: stdlib only).

Settings dataclasses anywhere (mailgw/ops/config_schema.py, each driver's file) annotate
their fields with these, so that the loader, `check-config` and the generated reference
read a `Duration` the same way wherever it is declared.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated

Size = Annotated[int, "size"]  # bytes; accepts 25MB, 512KB, 1GB or a plain integer
Duration = Annotated[float, "duration"]  # seconds; accepts 500ms, 30s, 3m, 3h, 5d or a number
HostPort = Annotated[str, "hostport"]  # host:port

ROLES = ("smtp", "imap", "dispatch", "notify", "http")

_SIZE_UNITS = {"": 1, "b": 1, "kb": 1000, "mb": 1000**2, "gb": 1000**3,
               "kib": 1024, "mib": 1024**2, "gib": 1024**3}
_DURATION_UNITS = {"": 1.0, "ms": 0.001, "s": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0,
                   "d": 86400.0}


def parse_size(value: object) -> int:
    if isinstance(value, bool):
        raise ValueError("expected a size such as 25MB")
    if isinstance(value, int) and value >= 0:
        return value
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([A-Za-z]*)\s*", str(value))
    if not m or m.group(2).lower() not in _SIZE_UNITS:
        raise ValueError(f"expected a size such as 25MB or a number of bytes, got {value!r}")
    return int(float(m.group(1)) * _SIZE_UNITS[m.group(2).lower()])


def parse_duration(value: object) -> float:
    if isinstance(value, bool):
        raise ValueError("expected a duration such as 3m")
    if isinstance(value, int | float) and value >= 0:
        return float(value)
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([A-Za-z]*)\s*", str(value))
    if not m or m.group(2).lower() not in _DURATION_UNITS:
        raise ValueError(f"expected a duration such as 30s, 3m or 3h, got {value!r}")
    return float(m.group(1)) * _DURATION_UNITS[m.group(2).lower()]


def parse_hostport(value: object) -> str:
    text = str(value)
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"expected host:port, got {value!r}")
    return text


def split_hostport(value: str) -> tuple[str, int]:
    host, _, port = value.rpartition(":")
    return host.strip("[]"), int(port)


def read_secret(value: str, file: str) -> str:
    """A credential given in the file (first line) or, when no file is named, as is."""
    if file:
        lines = Path(file).read_text(encoding="utf-8").splitlines()
        return lines[0].strip() if lines else ""
    return value


RETRY_KEYS = ("busy", "no_answer", "line_dropped", "provider_error", "max_attempts",
              "kill_time")


def parse_retry_overrides(text: str) -> dict[str, float]:
    """`busy=2m,max_attempts=3` → {"busy": 120.0, "max_attempts": 3}; ValueError names the
    bad part. Durations as in the config (30s, 3m, 3h)."""
    out: dict[str, float] = {}
    for part in (p.strip() for p in text.split(",") if p.strip()):
        key, sep, value = part.partition("=")
        key = key.strip()
        if not sep or key not in RETRY_KEYS:
            raise ValueError(f"{part!r}: expected KEY=VALUE with KEY one of "
                             f"{', '.join(RETRY_KEYS)}")
        if key == "max_attempts":
            if not value.strip().isdigit() or int(value) < 1:
                raise ValueError("max_attempts must be a whole number of at least 1")
            out[key] = int(value)
        else:
            out[key] = parse_duration(value.strip())
    return out
