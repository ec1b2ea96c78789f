"""The README's claims that are not examples (those are in test_doc_examples.py): its links
stay inside the repository and lead to files that exist, every document in docs/ is linked,
and every `mailgw …` command it shows exists with the options it shows."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def _links(text: str) -> list[str]:
    return re.findall(r"\]\(([^)\s]+)\)", text)


def test_links_stay_in_the_repository_and_resolve() -> None:
    links = _links(README)
    assert links
    for link in links:
        assert "://" not in link and not link.startswith(("/", "..")), link
        assert (ROOT / link.split("#")[0]).exists(), f"README links {link}, which is missing"


def test_every_document_is_linked() -> None:
    linked = {Path(link.split("#")[0]).as_posix() for link in _links(README)}
    for doc in sorted((ROOT / "docs").glob("*.md")):
        assert f"docs/{doc.name}" in linked, f"README does not link docs/{doc.name}"


def test_no_document_links_outside_the_repository() -> None:
    for doc in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        for link in _links(doc.read_text(encoding="utf-8")):
            if "://" in link or link.startswith("#"):
                continue
            target = (doc.parent / link.split("#")[0]).resolve()
            assert target.is_relative_to(ROOT), f"{doc.name} links {link}, outside the repository"
            assert target.exists(), f"{doc.name} links {link}, which is missing"


def _code() -> str:
    """The README's code: fenced blocks and inline code spans, one per line."""
    blocks = re.findall(r"```[a-z]*\n(.*?)```", README, flags=re.S)
    spans = re.findall(r"`([^`\n]+)`", re.sub(r"```.*?```", "", README, flags=re.S))
    return "\n".join(blocks + spans)


def _commands() -> list[list[str]]:
    """`mailgw …` invocations shown in the README's code."""
    return [m.group(1).split() for m in
            re.finditer(r"(?:^|\s|/)mailgw ((?:[a-z][a-z-]*)(?: [a-z][a-z-]*)?)", _code(), re.M)]


@pytest.mark.parametrize("words", _commands(), ids=" ".join)
def test_every_command_shown_exists(words: list[str]) -> None:
    for n in (len(words), 1):  # "account add" or, when the second word is an argument, "demo"
        done = subprocess.run([sys.executable, "-m", "mailgw", *words[:n], "--help"],
                              capture_output=True, text=True, timeout=60)
        if done.returncode == 0:
            break
    assert done.returncode == 0, (words, done.stderr)
    assert "Traceback" not in done.stderr


def _options() -> list[tuple[str, str]]:
    found = set()
    for line in _code().splitlines():
        m = re.search(r"mailgw ([a-z][a-z-]*(?: [a-z][a-z-]*)?)(.*)", line)
        if m:
            found.update((m.group(1), opt) for opt in re.findall(r"--[a-z][a-z-]*", m.group(2)))
    return sorted(found)


@pytest.mark.parametrize(("command", "option"), _options())
def test_every_option_shown_is_accepted(command: str, option: str) -> None:
    words = command.split()
    for n in (len(words), 1):
        done = subprocess.run([sys.executable, "-m", "mailgw", *words[:n], "--help"],
                              capture_output=True, text=True, timeout=60)
        if done.returncode == 0:
            break
    assert option in done.stdout, (command, option)


def test_no_document_points_outside_the_repository_in_words_either() -> None:
    for doc in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        assert "../shared" not in doc.read_text(encoding="utf-8"), doc.name


def test_the_test_tiers_the_readme_names_are_make_targets() -> None:
    """`make test-unit` (README) runs the unit tier; each tier has its target."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    assert "make test-unit" in readme
    for tier in ("unit", "integration", "system"):
        assert f"test-{tier}: install-test\n\t$(BIN)/python -m pytest -q tests/{tier}\n" in makefile
        assert (ROOT / "tests" / tier / "__init__.py").is_file()
