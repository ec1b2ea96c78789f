"""The shape docs/architecture.md promises, checked on the source: who may import whom, no
cycles, no hidden imports inside functions, no module over 400 lines.

The rules follow the pipeline. Drivers talk to the telephone world and know neither the store
nor mail; the parser and the decision are pure; the edges (SMTP, IMAP) hand mail to intake and
never write the store themselves. A rule is checked on the whole chain of module-level imports
(`a` imports `b` imports `sqlalchemy` counts), since a pure module that imports an impure one
is not pure. Imports under `if TYPE_CHECKING:` are for the type checker only and do not count.
"""

from __future__ import annotations

import ast
import importlib
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "mailgw"
MAX_LINES = 400
LATE_IMPORT = "# late import:"

# Libraries that do I/O: a pure module must not reach them, even through ours.
IO_LIBRARIES = ("sqlalchemy", "alembic", "psycopg", "aiosmtpd", "aioimaplib", "httpx", "socket",
                "asyncio", "subprocess", "smtplib", "urllib.request", "dns.resolver")

PURE = ("mailgw.subject_parser", "mailgw.recipients", "mailgw.codes", "mailgw.intake.decide",
        "mailgw.intake.verdict", "mailgw.intake.routes", "mailgw.vocab")
PARSER = ("mailgw.inbound",)
DRIVERS = ("mailgw.dispatch.drivers",)
EDGES = ("mailgw.smtp", "mailgw.imap")


@dataclass
class Module:
    name: str
    path: Path
    lines: int
    imports: set[str] = field(default_factory=set)  # module level, resolved
    late: list[tuple[int, str, bool]] = field(default_factory=list)  # (line, module, documented)


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _targets(node: ast.Import | ast.ImportFrom, here: str, known: set[str]) -> Iterator[str]:
    if isinstance(node, ast.Import):
        yield from (alias.name for alias in node.names)
        return
    base = node.module or ""
    if node.level:  # relative: from the module's package, one level up per extra dot
        package = here if here in _packages() else here.rpartition(".")[0]
        for _ in range(node.level - 1):
            package = package.rpartition(".")[0]
        base = f"{package}.{base}" if base else package
    for alias in node.names:
        sub = f"{base}.{alias.name}"
        yield sub if sub in known else base


@cache
def _packages() -> frozenset[str]:
    return frozenset(_module_name(p) for p in PACKAGE.rglob("__init__.py"))


@cache
def modules() -> dict[str, Module]:
    paths = [p for p in PACKAGE.rglob("*.py") if "migrations" not in p.parts]
    known = {_module_name(p) for p in paths}
    found: dict[str, Module] = {}
    for path in paths:
        name = _module_name(path)
        source = path.read_text(encoding="utf-8")
        lines = source.splitlines()
        module = Module(name, path, len(lines))
        tree = ast.parse(source)

        def visit(node: ast.AST, depth: int, lines: list[str] = lines,
                  module: Module = module, name: str = name) -> None:
            for child in ast.iter_child_nodes(node):
                if isinstance(child, ast.If) and _is_type_checking(child):
                    continue
                if isinstance(child, ast.Import | ast.ImportFrom):
                    targets = list(_targets(child, name, known))
                    if depth == 0:
                        module.imports.update(targets)
                    else:
                        text = " ".join(lines[child.lineno - 1: child.end_lineno or child.lineno])
                        above = lines[child.lineno - 2] if child.lineno > 1 else ""
                        documented = LATE_IMPORT in text or LATE_IMPORT in above
                        module.late.extend((child.lineno, t, documented) for t in targets)
                    continue
                inner = isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda)
                visit(child, depth + (1 if inner else 0))

        visit(tree, 0)
        found[name] = module
    return found


def _ours(target: str) -> str | None:
    """The mailgw module an import names (a package's __init__ included), or None."""
    mods = modules()
    while target:
        if target in mods:
            return target
        target = target.rpartition(".")[0]
    return None


def reach(name: str) -> dict[str, list[str]]:
    """Every module reachable from `name` by module-level imports, with one path to it."""
    paths: dict[str, list[str]] = {name: [name]}
    todo = [name]
    while todo:
        current = todo.pop()
        for target in sorted(modules()[current].imports):
            for step in {_ours(target) or target, *_parents(target)}:
                if step not in paths:
                    paths[step] = [*paths[current], step]
                    if step in modules():
                        todo.append(step)
    return paths


def _parents(target: str) -> list[str]:
    """Importing a.b.c runs a/__init__ and a/b/__init__ first."""
    parts = target.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts)) if ".".join(parts[:i]) in modules()]


def _under(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def _violations(sources: tuple[str, ...], forbidden: tuple[str, ...]) -> list[str]:
    found = []
    for name in sorted(modules()):
        if not _under(name, sources):
            continue
        for target, path in sorted(reach(name).items()):
            if target != name and _under(target, forbidden) and not _under(target, sources):
                found.append(" → ".join(path))
    return found


RULES = {
    "drivers never reach the store, mail or the other edges": (
        DRIVERS, ("mailgw.store", "mailgw.smtp", "mailgw.imap", "mailgw.http", "mailgw.intake",
                  "mailgw.notify", "mailgw.jobs", "sqlalchemy")),
    "the parser never reaches the store": (PARSER, ("mailgw.store", "sqlalchemy")),
    "the edges never reach the store directly": (EDGES, ("mailgw.store",)),
    "the core does no I/O": (PURE, ("mailgw.store", "mailgw.documents.sandbox", *IO_LIBRARIES)),
}


@pytest.mark.parametrize("rule", sorted(RULES))
def test_import_rule(rule: str) -> None:
    sources, forbidden = RULES[rule]
    assert [m for m in modules() if _under(m, sources)], f"no module matches {sources}"
    found = _violations(sources, forbidden)
    if rule == "the edges never reach the store directly":
        # An edge may reach the store only through a service it calls, not by its own import.
        found = [v for v in found if v.split(" → ")[1].startswith("mailgw.store")]
    assert not found, "\n".join(found)


def test_no_import_cycles() -> None:
    graph = {n: {t for t in (_ours(i) for i in m.imports) if t and t != n}
             for n, m in modules().items()}
    cycles: list[list[str]] = []
    state: dict[str, int] = {}
    stack: list[str] = []

    def walk(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycles.append([*stack[stack.index(nxt):], nxt])
            elif nxt not in state:
                walk(nxt)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            walk(node)
    assert not cycles, "\n".join(" → ".join(c) for c in cycles)


def test_no_undocumented_import_inside_a_function() -> None:
    hidden = [f"{m.path.relative_to(ROOT)}:{line} imports {target}"
              for m in modules().values() for line, target, documented in m.late
              if not documented]
    assert not hidden, (f"say why with `{LATE_IMPORT} <reason>` or move it to the top:\n"
                        + "\n".join(hidden))


def test_no_module_over_the_limit() -> None:
    large = [f"{m.path.relative_to(ROOT)}: {m.lines} lines" for m in modules().values()
             if m.lines > MAX_LINES]
    assert not large, "\n".join(large)


def test_the_rules_catch_a_forbidden_import(tmp_path: Path) -> None:
    """The checker itself: a driver importing the store is found through a chain."""
    assert any("mailgw.store" in step for step in reach("mailgw.app"))
    assert _under("mailgw.dispatch.drivers.simulator", DRIVERS)
    assert not _under("mailgw.dispatchers", ("mailgw.dispatch",))


def test_the_architecture_page_names_code_that_exists() -> None:
    """docs/architecture.md walks one mail in function names: each `package.module.name` it
    gives must still exist, so the page cannot drift from the code unnoticed."""
    text = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    tops = {p.stem if p.is_file() else p.name for p in PACKAGE.iterdir()
            if not p.name.startswith("_") and (p.suffix == ".py" or p.is_dir())}
    missing = []
    for token in sorted(set(re.findall(r"`([a-z_]+(?:\.[A-Za-z_]+)+)", text))):
        if token.split(".")[0] not in tops or token.endswith(".py"):
            continue
        parts = token.split(".")
        for cut in range(len(parts), 0, -1):
            try:
                obj: object = importlib.import_module(".".join(["mailgw", *parts[:cut]]))
            except ImportError:
                continue
            try:
                for attr in parts[cut:]:
                    obj = getattr(obj, attr)
            except AttributeError:
                missing.append(token)
            break
        else:
            missing.append(token)
    assert not missing, f"docs/architecture.md names what does not exist: {missing}"
