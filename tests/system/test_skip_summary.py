"""`make test` ends with the skipped tests counted by reason (tests/conftest.py's hook)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_run_ends_with_skips_counted_by_reason(tmp_path: Path) -> None:
    (tmp_path / "test_some_skips.py").write_text(
        "import pytest\n"
        "@pytest.mark.parametrize('n', range(3))\n"
        "def test_a(n):\n    pytest.skip('sox is not installed')\n"
        "def test_b():\n    pytest.skip('dovecot is not installed')\n"
        "def test_c():\n    pass\n", encoding="utf-8")
    r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-ra", "-p", "no:cacheprovider",
                        "-p", "tests.conftest", "--rootdir", str(tmp_path),
                        str(tmp_path / "test_some_skips.py")],
                       cwd=ROOT, capture_output=True, text=True, timeout=120, check=False)
    assert r.returncode == 0, r.stdout + r.stderr
    lines = r.stdout.splitlines()
    head = next(i for i, line in enumerate(lines) if "4 skipped, by reason" in line)
    assert lines[head + 1].split() == ["3", "sox", "is", "not", "installed"]
    assert lines[head + 2].split() == ["1", "dovecot", "is", "not", "installed"]
    # after pytest's own per-test list, just before the final count
    assert any(line.startswith("SKIPPED") for line in lines[:head])
    assert "1 passed, 4 skipped" in lines[head + 3]
