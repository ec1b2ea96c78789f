"""The pytest fixtures both HylaFAX test modules share (tests/system/test_hylafax.py sends,
tests/system/test_hylafax_receive.py receives): one real hylafax-server per module with a
fake Class 2.0 modem, the spandsp T.31 modem compiled once, and a server started with its
diagnostics printed when it fails to come up. The environment itself is tests/hylafax_env.py.
A test module imports the fixtures it uses by name."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import hylafax_env
from tests.conftest import need
from tests.hylafax_env import HylafaxEnv

T31_SOURCE = Path(__file__).resolve().parent / "t31modem" / "t31pty.c"


def running(env: HylafaxEnv, *, faxgetty: bool = False) -> Iterator[HylafaxEnv]:
    """`env` started (and faxgetty answering, if asked) for a fixture to yield; its
    diagnostics printed when it does not come up; stopped afterwards."""
    try:
        env.start()
        if faxgetty:
            env.start_faxgetty()
    except BaseException:
        print(env.diagnostics())
        env.stop()
        raise
    yield env
    env.stop()


@pytest.fixture(scope="module")
def hylafax() -> Iterator[HylafaxEnv]:
    """hfaxd + faxq on 127.0.0.1 with the fast fake Class 2.0 modem (tests/fakemodem.py)."""
    need(hylafax_env.missing() is None, str(hylafax_env.missing()))
    yield from running(HylafaxEnv("class2"))


@pytest.fixture(scope="module")
def t31_binary(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """tests/t31modem/t31pty.c compiled: a spandsp Class 1 modem with a T.30 terminal."""
    need(hylafax_env.missing() is None, str(hylafax_env.missing()))
    need(shutil.which("gcc") is not None, "gcc is missing (apt-get install gcc)")
    flags = subprocess.run(["pkg-config", "--cflags", "--libs", "spandsp"],
                           capture_output=True, text=True)
    need(flags.returncode == 0, "spandsp is missing (apt-get install pkg-config libspandsp-dev "
                                "libtiff-dev)")
    out = tmp_path_factory.mktemp("t31") / "t31pty"
    build = subprocess.run(["gcc", "-O2", "-Wall", "-Werror", "-o", str(out), str(T31_SOURCE),
                            *flags.stdout.split()], capture_output=True, text=True)
    assert build.returncode == 0, build.stderr
    return out
