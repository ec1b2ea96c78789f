"""Where settings come from and how a TOML value becomes a field: the file, the
`MAILGW_<SECTION>__<KEY>` environment, and the typed builder that names every wrong key."""

from __future__ import annotations

import dataclasses
import difflib
import tomllib
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any

from mailgw.ops.config_types import parse_duration, parse_hostport, parse_size

SYSTEM_CONFIG = Path("/etc/mailgw/mailgw.toml")
ENV_PREFIX = "MAILGW_"


def env_overrides(environ: Mapping[str, str]) -> dict[str, Any]:
    """`MAILGW_SMTP__LISTEN=…` → {"smtp": {"listen": …}}; values read as TOML when they parse."""
    tree: dict[str, Any] = {}
    for name, raw in environ.items():
        if not name.startswith(ENV_PREFIX) or "__" not in name[len(ENV_PREFIX):]:
            continue
        path = [p.lower() for p in name[len(ENV_PREFIX):].split("__")]
        try:
            value: Any = tomllib.loads(f"v = {raw}")["v"]
        except tomllib.TOMLDecodeError:
            value = raw
        node = tree
        for part in path[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                break
        else:
            node[path[-1]] = value
    return tree


def merge(base: dict[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    """Nested tables merged key by key; `extra` wins."""
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def find_config(explicit: str | None, environ: Mapping[str, str]) -> Path | None:
    if explicit:
        return Path(explicit)
    if environ.get("MAILGW_CONFIG"):
        return Path(environ["MAILGW_CONFIG"])
    if SYSTEM_CONFIG.is_file():
        return SYSTEM_CONFIG
    return None


def read_toml(file: Path) -> tuple[dict[str, Any], str | None]:
    """The file's tables, or ({}, the problem) when it cannot be read as TOML."""
    try:
        return tomllib.loads(file.read_text(encoding="utf-8")), None
    except FileNotFoundError:
        return {}, f"{file}: file not found"
    except OSError as exc:
        return {}, f"{file}: cannot read ({exc.strerror})"
    except tomllib.TOMLDecodeError as exc:
        return {}, f"{file}: not valid TOML ({exc})"
    except UnicodeDecodeError as exc:
        return {}, f"{file}: not UTF-8 text (byte {exc.start})"


def coerce(tp: Any, value: Any, key: str) -> Any:
    """Convert a TOML (or env) value to the field's type, or raise ValueError."""
    if typing.get_origin(tp) is Annotated:
        base, tag = typing.get_args(tp)[:2]
        return {"size": parse_size, "duration": parse_duration,
                "hostport": parse_hostport}[tag](value)
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if value is None or value == "":
            return None
        return coerce(args[0], value, key)
    if origin is list:
        (item,) = typing.get_args(tp)
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, list):
            raise ValueError(f"expected a list, got {value!r}")
        return [coerce(item, v, key) for v in value]
    if tp is bool:
        if isinstance(value, bool):
            return value
        if str(value).lower() in ("true", "yes", "on", "1"):
            return True
        if str(value).lower() in ("false", "no", "off", "0"):
            return False
        raise ValueError(f"expected true or false, got {value!r}")
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int | str):
            raise ValueError(f"expected an integer, got {value!r}")
        try:
            return int(value)
        except ValueError:
            raise ValueError(f"expected an integer, got {value!r}") from None
    if tp is float:
        if isinstance(value, bool):
            raise ValueError(f"expected a number, got {value!r}")
        try:
            return float(value)
        except (TypeError, ValueError):
            raise ValueError(f"expected a number, got {value!r}") from None
    if tp is str:
        if isinstance(value, dict | list):
            raise ValueError(f"expected a string, got {value!r}")
        return str(value)
    raise ValueError(f"unsupported type for {key}")


def build(cls: type, data: Mapping[str, Any], prefix: str, problems: list[str]) -> Any:
    hints = typing.get_type_hints(cls, include_extras=True)
    names = [f.name for f in dataclasses.fields(cls) if f.name != "source"]
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        dotted = f"{prefix}{key}"
        if key not in names:
            close = difflib.get_close_matches(key, names, n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            what = "section" if isinstance(value, dict) else "key"
            problems.append(f"{dotted}: unknown {what}{hint}")
            continue
        tp = hints[key]
        if typing.get_origin(tp) is list and dataclasses.is_dataclass(typing.get_args(tp)[0]):
            item_cls = typing.get_args(tp)[0]
            if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
                problems.append(f"{dotted}: expected [[{dotted}]] tables")
                continue
            kwargs[key] = [build(item_cls, v, f"{dotted}[{i}].", problems)
                           for i, v in enumerate(value)]
            continue
        if dataclasses.is_dataclass(tp):
            if not isinstance(value, dict):
                problems.append(f"{dotted}: expected a table [{dotted}], got {value!r}")
                continue
            kwargs[key] = build(tp, value, dotted + ".", problems)  # type: ignore[arg-type]
            continue
        try:
            kwargs[key] = coerce(tp, value, dotted)
        except (ValueError, TypeError) as exc:
            problems.append(f"{dotted}: {exc}")
    return cls(**kwargs)
