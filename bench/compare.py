"""Before and after in the same run: bench/dispatch.py and bench/notify.py of this checkout
and of another one (`--baseline DIR`, e.g. a git worktree of an older commit), taking turns.

Each side runs its own copy of the benchmark against its own code (the module paths may differ
between the two), one round at a time, alternating which side goes first, so both see the
same machine. Each benchmark already measures its own bare baseline in every round (a raw
claim loop, a raw SMTP sender): the "vs bare" ratio is the figure that does not depend on how
busy the machine was; claims/s and notices/s are given beside it.

    git worktree add /tmp/mailgw-base <old commit>
    .venv/bin/python bench/compare.py --baseline /tmp/mailgw-base --rounds 3

bench/intake.py has the same option built in (`--baseline DIR`): its mailgw-base server runs
interleaved with the new one inside one run.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]

# What each benchmark is asked for in one turn (one round, the cells the issue names).
ARGS = {
    "dispatch": ["--rounds", "1", "--skip", "claimtime",
                 "--modes", "bare,per-call,batch,dispatcher"],
    "notify": ["--rounds", "1", "-n", "1000"],
}
SMOKE = {"dispatch": ["--smoke", "--skip", "claimtime,postgresql"], "notify": ["--smoke"]}


def log(*parts: object) -> None:
    print(*parts, file=sys.stderr, flush=True)


def metrics(bench: str, data: dict[str, Any]) -> dict[str, float]:
    """The figures worth comparing from one turn's JSON, by a stable name."""
    out: dict[str, float] = {}
    if bench == "dispatch":
        cells = data["throughput"]
        bare = {(c["backend"], c["workers"]): c["per_s"] for c in cells if c["mode"] == "bare"}
        for c in cells:
            name = f"{c['backend']} w={c['workers']} {c['mode']}"
            out[f"{name} claims/s"] = c["per_s"]
            base = bare.get((c["backend"], c["workers"]))
            if c["mode"] != "bare" and base:
                out[f"{name} vs bare"] = c["per_s"] / base
    elif bench == "notify":
        for r in data["rounds"]:
            for key in ("mailgw_per_s", "bare_per_s", "ratio", "render_per_s", "send_per_s"):
                out[f"notify {key}"] = r[key]
    return out


def turn(checkout: Path, bench: str, extra: list[str]) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="mailgw-compare-") as tmp:
        out = Path(tmp) / "out.json"
        cmd = [sys.executable, "-P", str(checkout / "bench" / f"{bench}.py"), *extra,
               "--json", str(out)]
        env = {**os.environ, "PYTHONPATH": str(checkout)}
        done = subprocess.run(cmd, cwd=checkout, env=env, capture_output=True, text=True,
                              check=False)
        if done.returncode != 0 or not out.exists():
            raise SystemExit(f"{bench} in {checkout} failed ({done.returncode}):\n"
                             f"{done.stderr[-2000:]}")
        return metrics(bench, json.loads(out.read_text()))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--baseline", type=Path, required=True, help="the older checkout")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--only", default="dispatch,notify")
    ap.add_argument("--smoke", action="store_true", help="one tiny turn each: proves it runs")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    base = args.baseline.resolve()
    if not (base / "mailgw").is_dir():
        print(f"compare: {base} is not a mailgw checkout", file=sys.stderr)
        return 2
    sides = {"before": base, "after": ROOT}
    results: dict[str, dict[str, dict[str, list[float]]]] = {}
    rounds = 1 if args.smoke else args.rounds
    for bench in args.only.split(","):
        extra = SMOKE[bench] if args.smoke else ARGS[bench]
        per_side: dict[str, dict[str, list[float]]] = {"before": {}, "after": {}}
        for r in range(rounds):
            order = ["before", "after"] if r % 2 == 0 else ["after", "before"]
            for side in order:
                log(f"{bench} round {r + 1}: {side}")
                for key, value in turn(sides[side], bench, extra).items():
                    per_side[side].setdefault(key, []).append(value)
        results[bench] = per_side
    print(f"# Before and after, same run ({rounds} rounds each, alternating; median)\n")
    print(f"before: `{base}`; after: `{ROOT}`\n")
    print("| figure | before | after | after / before |")
    print("|---|---|---|---|")
    for per_side in results.values():
        for key in per_side["after"]:
            if key not in per_side["before"]:
                continue
            b = statistics.median(per_side["before"][key])
            a = statistics.median(per_side["after"][key])
            fmt = "{:.2f}" if "vs bare" in key or key.endswith("ratio") else "{:.0f}"
            print(f"| {key} | {fmt.format(b)} | {fmt.format(a)} | {a / b:.2f} |"
                  if b else f"| {key} | {b} | {a} | — |")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
