"""Generate docs/config-reference.md from the settings dataclasses (mailgw/ops/config_schema.py,
and each registered driver's own settings class) and the comments of the example
configuration (config/mailgw.toml).

    python tools/gen_config_reference.py          # rewrite docs/config-reference.md
    python tools/gen_config_reference.py --check  # exit 1 when the file is stale

tests/system/test_ops.py fails when the committed file differs from what this script writes.
"""

from __future__ import annotations

import dataclasses
import inspect
import re
import sys
import typing
from pathlib import Path
from typing import Annotated, Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mailgw.dispatch.drivers import registry  # noqa: E402
from mailgw.ops import config  # noqa: E402

OUTPUT = ROOT / "docs" / "config-reference.md"
EXAMPLE = ROOT / "config" / "mailgw.toml"

_KEY = re.compile(r"^#?\s*([a-z_][a-z0-9_]*)\s*=\s*(.*)$")
_TABLE = re.compile(r"^#?\s*\[(\[?)\s*([a-z0-9_.]+)\s*\]\]?\s*(?:#.*)?$")


def _split_comment(rest: str) -> str:
    """The comment after a TOML value ('' when none): the first # outside a string."""
    quote = ""
    for i, ch in enumerate(rest):
        if quote:
            if ch == quote:
                quote = ""
        elif ch in "\"'":
            quote = ch
        elif ch == "#":
            return rest[i + 1:].strip()
    return ""


def example_comments(path: Path = EXAMPLE) -> dict[str, str]:
    """`section.key` (`imap.mailboxes[].key` for array tables) → its comment in the file."""
    out: dict[str, str] = {}
    section: str | None = None
    for line in path.read_text(encoding="utf-8").splitlines():
        table = _TABLE.match(line.strip())
        if table:
            section = table.group(2) + ("[]" if table.group(1) else "")
            continue
        m = _KEY.match(line.strip())
        if m and section is not None:
            comment = _split_comment(m.group(2))
            out.setdefault(f"{section}.{m.group(1)}", comment)
    return out


def source_comments(cls: type) -> dict[str, str]:
    """Trailing `# …` comments on the dataclass's field lines, in its source file."""
    out = {}
    for line in inspect.getsource(cls).splitlines():
        m = re.match(r"^\s+(\w+):[^#]*#\s*(.+)$", line)
        if m:
            out[m.group(1)] = m.group(2).strip()
    return out


def type_name(tp: Any) -> str:
    if typing.get_origin(tp) is Annotated:
        tag = typing.get_args(tp)[1]
        return {"size": "size", "duration": "duration", "hostport": "host:port"}[tag]
    origin = typing.get_origin(tp)
    if origin is list:
        return f"list of {type_name(typing.get_args(tp)[0])}"
    if origin is not None:  # X | None
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return f"{type_name(args[0])} or unset"
    return {bool: "boolean", int: "integer", float: "number", str: "string"}.get(tp, str(tp))


def _unit(value: float, units: list[tuple[str, float]]) -> str:
    for name, size in units:
        if value >= size and value % size == 0:
            return f"{value / size:g}{name}"
    return f"{value:g}"


def default_text(tp: Any, value: Any) -> str:
    if value is None:
        return "unset"
    if typing.get_origin(tp) is Annotated:
        tag = typing.get_args(tp)[1]
        if tag == "duration":
            return f'"{_unit(value, [("d", 86400), ("h", 3600), ("m", 60), ("s", 1)])}"' \
                if value >= 1 else f'"{value * 1000:g}ms"'
        if tag == "size":
            return f'"{_unit(value, [("GB", 1e9), ("MB", 1e6), ("KB", 1e3)])}"' \
                if value >= 1000 else str(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, list):
        return "[" + ", ".join(f'"{v}"' if isinstance(v, str) else str(v)
                               for v in value) + "]"
    return f"{value:g}" if isinstance(value, float) else str(value)


def _sibling(comments: dict[str, str], key: str) -> str:
    """`imap.mailboxes[].mailbox` and `imap.mailbox` mean the same: share the comment."""
    if "[]." in key:
        table, _, name = key.partition("[].")
        return comments.get(f"{table.rsplit('.', 1)[0]}.{name}", "")
    section, _, name = key.rpartition(".")
    for other, text in comments.items():
        if other.startswith(f"{section}.") and other.endswith(f"[].{name}") and text:
            return text
    return ""


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def _rows(cls: type, prefix: str, env_prefix: str | None, comments: dict[str, str],
          sections: list[tuple[str, list[str]]]) -> list[str]:
    hints = typing.get_type_hints(cls, include_extras=True)
    instance = cls()
    from_source = source_comments(cls)
    rows: list[str] = []
    for f in dataclasses.fields(cls):
        if f.name == "source":
            continue
        tp = hints[f.name]
        key = f"{prefix}{f.name}"
        if tp is config.DriversSettings:  # one table per registered driver, its own class
            sections.append((key, []))
            for entry in registry.entries():
                table: list[str] = []
                name = f"{key}.{entry.name}"
                sections.append((name, table))
                table.extend(_rows(entry.settings, name + ".",
                                   f"{env_prefix or ''}{f.name.upper()}__{entry.name.upper()}__",
                                   comments, sections))
            continue
        if dataclasses.is_dataclass(tp):
            sub: list[str] = []
            sections.append((key, sub))
            env = f"{env_prefix}{f.name.upper()}__" if env_prefix is not None else None
            sub.extend(_rows(tp, key + ".", env, comments, sections))  # type: ignore[arg-type]
            continue
        if typing.get_origin(tp) is list and dataclasses.is_dataclass(typing.get_args(tp)[0]):
            item = typing.get_args(tp)[0]
            rows.append(f"| `{key}` | array of tables | none | — | "
                        f"{_cell(comments.get(key) or from_source.get(f.name, ''))} |")
            sub = []
            sections.append((f"[{key}]", sub))
            sub.extend(_rows(item, key + "[].", None, comments, sections))
            continue
        env = f"`MAILGW_{env_prefix}{f.name.upper()}`" if env_prefix is not None else "—"
        desc = comments.get(key) or _sibling(comments, key) or from_source.get(f.name, "")
        rows.append(f"| `{key}` | {type_name(tp)} | `{default_text(tp, getattr(instance, f.name))}`"
                    f" | {env} | {_cell(desc)} |")
    return rows


HEADER = """# Configuration reference

<!-- Generated by tools/gen_config_reference.py from the settings classes (mailgw/ops/
config_schema.py, and each driver's file by the driver registry) and the comments of
config/mailgw.toml. Do not edit by hand: run `python tools/gen_config_reference.py`. -->

mailgw reads one TOML file: `mailgw --config FILE`, else `$MAILGW_CONFIG`, else
`/etc/mailgw/mailgw.toml`, else the embedded defaults listed here. Every key can be
overridden from the environment as `MAILGW_<SECTION>__<KEY>` (nested tables add a `__`
per level; values are read as TOML when they parse, e.g. `MAILGW_SERVE__ROLES='["smtp"]'`
or `MAILGW_SERVE__ROLES=smtp,dispatch`). `mailgw check-config` names every wrong key and
exits 2. [`config/mailgw.toml`](../config/mailgw.toml) is the same list as a file to copy.

Types: a **size** accepts `25MB`, `512KB`, `1MiB` or a number of bytes; a **duration**
accepts `500ms`, `30s`, `3m`, `3h`, `5d` or a number of seconds; **host:port** is
`127.0.0.1:2525` or `[::1]:2525`.
"""


def render() -> str:
    comments = example_comments()
    sections: list[tuple[str, list[str]]] = []
    _rows(config.Settings, "", "", comments, sections)
    parts = [HEADER]
    for name, rows in sections:
        if not rows:
            continue
        parts.append(f"\n## `[{name}]`\n\n| key | type | default | environment | what it does |"
                     "\n|---|---|---|---|---|\n" + "\n".join(rows) + "\n")
    return "".join(parts)


def main(argv: list[str]) -> int:
    text = render()
    if "--check" in argv:
        current = OUTPUT.read_text(encoding="utf-8") if OUTPUT.exists() else ""
        if current != text:
            print(f"{OUTPUT.relative_to(ROOT)} is stale: run python tools/gen_config_reference.py",
                  file=sys.stderr)
            return 1
        return 0
    OUTPUT.parent.mkdir(parents=True, exist_ok=True)
    OUTPUT.write_text(text, encoding="utf-8")
    print(f"wrote {OUTPUT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
