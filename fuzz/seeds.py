"""Write a target's seeds into a directory: ``python -m fuzz.seeds TARGET DIR``.

Run in its own process by fuzz.run, so the modules under test are first imported later,
under atheris's instrumentation.
"""

from __future__ import annotations

import hashlib
import importlib
import sys
from pathlib import Path


def write(target: str, out: Path) -> int:
    module = importlib.import_module(f"fuzz.targets.{target}")
    out.mkdir(parents=True, exist_ok=True)
    for old in out.iterdir():
        old.unlink()
    count = 0
    for name, data in module.seeds():
        digest = hashlib.sha1(data).hexdigest()[:10]
        (out / f"{name[:40]}-{digest}").write_bytes(data)
        count += 1
    return count


if __name__ == "__main__":
    print(f"{write(sys.argv[1], Path(sys.argv[2]))} seeds for {sys.argv[1]}")
