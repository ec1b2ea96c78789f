"""Run the fuzz targets under atheris (libFuzzer) for a set time.

    python -m fuzz.run TARGET [--seconds N] [-- libFuzzer flags]   # one target, in-process
    python -m fuzz.run --all [--seconds N] [--keep-going]          # each target in turn

A finding is a crash (an exception the target does not allow), a run over 2 s or over
256 MB (``-timeout=2 -rss_limit_mb=256``); libFuzzer writes it to fuzz/artifacts/<target>/.
The corpus grows in fuzz/corpus/<target>/; logs go to fuzz/logs/. All three are ignored by
git: keep a finding, made small, in tests/fuzz_regressions/<target>/ (docs/fuzzing.md).
"""

from __future__ import annotations

import argparse
import importlib
import re
import subprocess
import sys
import time
from pathlib import Path

from fuzz.targets import ROOT, TARGETS

HERE = ROOT / "fuzz"
LIMITS = ["-timeout=2", "-rss_limit_mb=256"]
# libFuzzer takes the largest seed as its input size limit; the corpus holds 200 KB mails
# and tnefparse's samples reach 1.5 MB, which slows every mutation for little gain.
FLAGS = {"mime": ["-max_len=65536"], "tnef": ["-max_len=65536"]}
_STATUS = re.compile(r"^#(\d+)\s+\w+\s+cov: (\d+) ft: (\d+) corp: (\d+)/(\S+)")


def _silence_logs() -> None:
    """The handlers log every refused request; millions of lines help nobody here."""
    import logging

    import structlog

    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.CRITICAL))
    logging.disable(logging.CRITICAL)


def _instrumented(target: str) -> object:
    import atheris

    with atheris.instrument_imports(include=list(TARGETS[target])):
        module = importlib.import_module(f"fuzz.targets.{target}")
    _silence_logs()
    return module


def minimize(target: str, finding: Path) -> None:
    """libFuzzer's crash minimiser: the smallest input that still fails, to finding.min."""
    import atheris

    module = _instrumented(target)
    atheris.Setup([sys.argv[0], *LIMITS, "-minimize_crash=1", "-runs=20000",
                   f"-exact_artifact_path={finding}.min", str(finding)],
                  module.one_input)  # type: ignore[attr-defined]
    atheris.Fuzz()


def fuzz_one(target: str, seconds: int, extra: list[str]) -> None:
    """Seed, instrument, then hand over to libFuzzer (which exits the process)."""
    import atheris

    seeds = HERE / "build" / "seeds" / target
    subprocess.run([sys.executable, "-m", "fuzz.seeds", target, str(seeds)], check=True,
                   cwd=ROOT)
    corpus = HERE / "corpus" / target
    artifacts = HERE / "artifacts" / target
    corpus.mkdir(parents=True, exist_ok=True)
    artifacts.mkdir(parents=True, exist_ok=True)
    dirs = [str(corpus), str(seeds)]
    regressions = ROOT / "tests" / "fuzz_regressions" / target
    if regressions.is_dir():
        dirs.append(str(regressions))
    module = _instrumented(target)
    args = [sys.argv[0], *LIMITS, *FLAGS.get(target, []), f"-max_total_time={seconds}",
            "-print_final_stats=1", f"-artifact_prefix={artifacts}/", *extra, *dirs]
    atheris.Setup(args, module.one_input)  # type: ignore[attr-defined]
    atheris.Fuzz()


def summary(log: Path) -> dict[str, str]:
    """The last libFuzzer status line and final stats of a log, for docs/fuzzing.md."""
    out: dict[str, str] = {}
    for line in log.read_text(errors="replace").splitlines():
        m = _STATUS.match(line)
        if m:
            out.update(execs=m.group(1), cov=m.group(2), ft=m.group(3), corpus=m.group(4),
                       corpus_size=m.group(5))
        elif line.startswith("stat::number_of_executed_units:"):
            out["execs"] = line.split(":")[-1].strip()
    return out


def run_all(names: list[str], seconds: int, keep_going: bool, extra: list[str],
            logs: Path) -> int:
    """Each target in its own process (libFuzzer exits when done); a summary per target."""
    logs.mkdir(parents=True, exist_ok=True)
    started = time.time()
    failed = []
    for name in names:
        log = logs / f"{name}.log"
        deadline = time.monotonic() + seconds
        runs, execs, code = 0, 0, 0
        with log.open("w") as sink:
            while True:
                left = int(deadline - time.monotonic())
                if runs and (left < 5 or runs > 5):
                    break
                runs += 1
                code = subprocess.run([sys.executable, "-m", "fuzz.run", name, "--seconds",
                                       str(max(left, 1)), "--", *extra], cwd=ROOT, stdout=sink,
                                      stderr=subprocess.STDOUT).returncode
                sink.flush()
                execs += int(summary(log).get("execs", 0) or 0)
                if code == 0 or not keep_going:
                    break
        found = sorted(p.name for p in (HERE / "artifacts" / name).glob("*-*")
                       if p.stat().st_mtime >= started)
        stats = summary(log)
        print(f"{name}: exit {code}, runs {runs}, execs {execs if runs > 1 else stats.get('execs')}"
              f", cov {stats.get('cov')}, ft {stats.get('ft')}, corpus {stats.get('corpus')}"
              f" ({stats.get('corpus_size')}), artifacts {len(found)} {found[:5]}", flush=True)
        if code != 0:
            failed.append(name)
    if failed:
        print(f"findings in: {', '.join(failed)} (see fuzz/logs/, fuzz/artifacts/)")
    return 1 if failed else 0


def main(argv: list[str]) -> int:
    extra: list[str] = []
    if "--" in argv:
        at = argv.index("--")
        argv, extra = argv[:at], argv[at + 1:]
    parser = argparse.ArgumentParser(prog="python -m fuzz.run", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("target", nargs="?", choices=sorted(TARGETS))
    parser.add_argument("--all", action="store_true", help="every target, one after another")
    parser.add_argument("--only", default="", help="with --all: a comma-separated subset")
    parser.add_argument("--seconds", type=int, default=60, help="per target (default 60)")
    parser.add_argument("--keep-going", action="store_true",
                        help="with --all: restart a target after a finding (up to 5 times)")
    parser.add_argument("--logs", type=Path, default=HERE / "logs", help="with --all")
    parser.add_argument("--minimize", type=Path, metavar="FINDING",
                        help="shrink a finding of TARGET (written next to it as .min)")
    args = parser.parse_args(argv)
    if args.all:
        names = [n for n in TARGETS if not args.only or n in args.only.split(",")]
        return run_all(names, args.seconds, args.keep_going, extra, args.logs)
    if not args.target:
        parser.error("name a target or use --all")
    if args.minimize:
        minimize(args.target, args.minimize)
    fuzz_one(args.target, args.seconds, extra)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
