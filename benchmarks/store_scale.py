"""What a bench costs on a big store: a no-op ``harness bench`` beside 100,000 stored runs (a script, not asv).

The plan is small and real (logreg x gd, torch, 3 seeds, run once into the store); the store
also holds ``--runs`` simulated runs in parts (:func:`benchmarks.leaderboard_open.generate`)
and, in the second layout, ``--loose`` more as per-run files (what a bench leaves below the
automatic compaction's threshold, :data:`harness.store.AUTO_COMPACT_FILES`). Each layout is
timed with this checkout's code and with a baseline checkout (``--baseline DIR``, e.g. a
``git worktree add /tmp/base HEAD~3``; its code is put first on ``PYTHONPATH``), interleaved,
and the median wall time of a fresh ``harness bench`` process is reported with their ratio.

Also reported: the per-claim cost (``Store.claim`` of a run not stored, which lists
``runs/``) with ``--loose`` files waiting, against 10x as many, as the store would hold
without the automatic compaction.

Usage: ``python benchmarks/store_scale.py [--runs 100000] [--loose 999] [--repeats 5] [--baseline DIR]``.
Absolute times on a shared machine are noise; compare the rows of one invocation.

This module is a script: importing it (as asv does when it collects ``benchmarks/``) runs
nothing and defines no benchmark.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

__all__: list[str] = []

ROOT = Path(__file__).resolve().parents[1]
PLAN = ("--task", "logreg", "--method", "gd", "--framework", "torch", "--seeds", "3", "-j", "1")


def bench(store: Path, *, code: Path | None) -> float:
    """Wall seconds of one ``harness bench`` process on ``store`` (``code``: a baseline checkout first on the path)."""
    env = dict(os.environ)
    if code is not None:
        env["PYTHONPATH"] = str(code) + os.pathsep + env.get("PYTHONPATH", "")
    started = time.perf_counter()
    # Run from the store's parent: ``-m`` puts the working directory first on the path, ahead of PYTHONPATH.
    done = subprocess.run([sys.executable, "-m", "harness", "bench", *PLAN, "--store", str(store)],
                          env=env, capture_output=True, text=True, check=False, cwd=store.parent)
    wall = time.perf_counter() - started
    if done.returncode != 0 or "0 to run" not in done.stdout:
        raise RuntimeError(f"the bench was not a no-op (exit {done.returncode}):\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
    return wall


def build(store: Path, *, runs: int, loose: int) -> dict[str, Any]:
    """The plan's real runs, ``runs`` simulated runs in parts, then ``loose`` simulated per-run files."""
    from benchmarks import leaderboard_open
    from harness.store import Store

    made = leaderboard_open.generate(store, runs=runs, points=10, parts=4) if runs else {"runs": 0}
    subprocess.run([sys.executable, "-m", "harness", "bench", *PLAN, "--store", str(store)],
                   check=True, capture_output=True)
    if loose:
        made["write_run_s_per_run"] = leaderboard_open.write_loose(store, count=loose, points=10) / loose
    made["loose_files"] = Store(store).loose_count()
    return made


def claim_seconds(store: Path, *, claims: int = 50) -> float:
    """Seconds per ``Store.claim`` of a run that is not stored (each lists ``runs/``)."""
    from harness.store import Store

    target = Store(store)
    started = time.perf_counter()
    for index in range(claims):
        if not target.claim(f"not-stored-{index}"):
            raise RuntimeError("a run that is not stored was refused")
        target.release(f"not-stored-{index}")
    return (time.perf_counter() - started) / claims


def measure_layouts(*, runs: int, loose: int, repeats: int, baseline: Path | None) -> dict[str, Any]:
    report: dict[str, Any] = {"runs": runs, "loose": loose}
    with tempfile.TemporaryDirectory() as tmp:
        layouts = {"plan_only": (Path(tmp) / "plan-only", 0), "compacted": (Path(tmp) / "compacted", 0),
                   "with_loose": (Path(tmp) / "loose", loose)}
        for name, (store, count) in layouts.items():
            report[f"{name}_built"] = build(store, runs=0 if name == "plan_only" else runs, loose=count)
        codes = {"now": None, **({"baseline": baseline} if baseline else {})}
        for name, (store, _) in layouts.items():
            times: dict[str, list[float]] = {label: [] for label in codes}
            for label, code in codes.items():
                bench(store, code=code)  # warm the page cache and each checkout's bytecode
            for _ in range(repeats):
                for label, code in codes.items():  # interleaved
                    times[label].append(bench(store, code=code))
            for label in codes:
                report[f"{name}_noop_s_{label}"] = statistics.median(times[label])
            if baseline:
                report[f"{name}_noop_ratio_baseline_over_now"] = (
                    report[f"{name}_noop_s_baseline"] / report[f"{name}_noop_s_now"])
        for name in ("compacted", "with_loose"):  # what the store's size adds to a bench: ~1 when proportional to the plan
            report[f"{name}_noop_ratio_over_plan_only"] = report[f"{name}_noop_s_now"] / report["plan_only_noop_s_now"]
        report["claim_s_with_loose"] = claim_seconds(layouts["with_loose"][0])
        many = Path(tmp) / "many"
        shutil.copytree(layouts["with_loose"][0], many)
        for index in range(9 * loose):  # names only: what a listing costs, without 9x the write time
            (many / "runs" / f"filler{index:08d}.parquet").touch()
        report["claim_s_with_10x_loose"] = claim_seconds(many)
        report["claim_ratio_10x_over_bounded"] = report["claim_s_with_10x_loose"] / report["claim_s_with_loose"]
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=100_000)
    parser.add_argument("--loose", type=int, default=999)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--baseline", type=Path, default=None, help="a checkout of the code to compare with")
    args = parser.parse_args(argv)
    report = measure_layouts(runs=args.runs, loose=args.loose, repeats=args.repeats, baseline=args.baseline)
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    raise SystemExit(main())
