"""Every input the fuzzers found (tests/fuzz_regressions/<target>/) replayed through the
same target function, without atheris: each must now end in a refusal or a normal result,
never in an exception the API does not allow (docs/fuzzing.md). The targets also run once
over their seeds here, so a harness that no longer fits the code fails in the normal suite.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from types import ModuleType

import pytest

from fuzz.targets import TARGETS

REGRESSIONS = Path(__file__).parents[1] / "fuzz_regressions"
CASES = sorted((target, path.name) for target in TARGETS
               for path in (REGRESSIONS / target).glob("*") if path.is_file())


def _target(name: str) -> ModuleType:
    return importlib.import_module(f"fuzz.targets.{name}")


def test_regression_folders_are_targets() -> None:
    folders = {p.name for p in REGRESSIONS.iterdir() if p.is_dir()} if REGRESSIONS.is_dir() \
        else set()
    assert folders <= set(TARGETS)


@pytest.mark.parametrize(("target", "name"), CASES, ids=[f"{t}/{n}" for t, n in CASES])
def test_finding_is_fixed(target: str, name: str) -> None:
    data = (REGRESSIONS / target / name).read_bytes()
    assert len(data) <= 64 * 1024, "keep regression files small"
    _target(target).one_input(data)


@pytest.mark.parametrize("target", sorted(TARGETS))
def test_target_accepts_its_seeds(target: str) -> None:
    module = _target(target)
    seeds = list(module.seeds())
    assert seeds
    for _name, data in seeds:
        module.one_input(data)
