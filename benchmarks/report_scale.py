"""What `harness report` and the leaderboard's first open cost on a 100,000-run store, before and after.

Usage::

    python benchmarks/report_scale.py [--runs 100000] [--loose 1000] [--repeats 3] [--baseline DIR]

Two stores are generated (:func:`benchmarks.leaderboard_open.generate`: 100 tasks x 25 methods x
2 hardware x 2 frameworks x seeds, 20 trace points a run): ``compacted`` (every run in parts)
and ``loose`` (``--runs - --loose`` runs in parts, ``--loose`` more as per-run files, as a bench
leaves them before its automatic compaction). On each, in fresh processes, interleaved between
this checkout and ``--baseline`` (a checkout of an earlier commit, e.g. ``git worktree add``):

- ``report``: ``python -m harness report --store S`` (its default output), start-up included;
- ``report_all``: the same with ``--all`` (every configuration's ranking), this checkout only
  when the baseline has no ``--all`` (it printed every ranking by default: its ``report``);
- ``open``: the leaderboard's overview script under ``streamlit.testing.v1.AppTest`` with every
  cache cleared (the store read, scored and charted anew), after a first page drawn on a
  100-run store (imports outside the clock, as on a server that has served before).

Medians of ``--repeats``, seconds, and each ratio baseline / this. A JSON object is printed.

This module is a script: importing it (as asv does when it collects ``benchmarks/``) runs nothing.
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

ROOT = Path(__file__).resolve().parents[1]

#: The overview under AppTest in a fresh interpreter of one checkout: argv = [store, app, tiny store];
#: prints seconds. The page is first drawn on a 100-run store (imports and first-use costs outside
#: the clock, as on a server that has served a page), then on the store with every cache cleared.
_OPEN = """
import os, sys, time
from streamlit.testing.v1 import AppTest
import streamlit as st
store, app, tiny = sys.argv[1], sys.argv[2], sys.argv[3]
os.environ["HARNESS_STORE"] = tiny
AppTest.from_file(app, default_timeout=900).run()
os.environ["HARNESS_STORE"] = store
st.cache_data.clear()
st.cache_resource.clear()
at = AppTest.from_file(app, default_timeout=900)
started = time.perf_counter()
at.run()
elapsed = time.perf_counter() - started
assert not at.exception, [e.value for e in at.exception]
assert at.get("vega_lite_chart"), "the overview drew no chart"
print(elapsed)
"""


def _env(code: Path) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(code), "HARNESS_CATALOG": ""}


def measure_report(code: Path, store: Path, *extra: str) -> float:
    """Seconds of one ``python -m harness report`` process of checkout ``code`` (output discarded)."""
    started = time.perf_counter()
    # cwd: the store's parent, never a checkout (``-m`` puts the cwd first on sys.path).
    subprocess.run([sys.executable, "-m", "harness", "report", "--store", str(store), *extra], check=True,
                   cwd=store.parent, env=_env(code), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - started


def measure_open(code: Path, store: Path, tiny: Path) -> float:
    """Seconds of one cold overview run (AppTest) of checkout ``code``'s leaderboard (warmed on ``tiny``)."""
    out = subprocess.run([sys.executable, "-c", _OPEN, str(store), str(code / "leaderboard" / "app.py"), str(tiny)],
                         check=True, cwd=store.parent, env=_env(code), capture_output=True, text=True)
    return float(out.stdout.strip().splitlines()[-1])


def _has_all(code: Path) -> bool:
    return "--all" in (code / "harness" / "cli.py").read_text()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=100_000)
    parser.add_argument("--loose", type=int, default=1000, help="Per-run files of the loose store.")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--baseline", type=Path, help="A checkout of an earlier commit, timed interleaved.")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    from benchmarks.leaderboard_open import generate, write_loose

    work = Path(tempfile.mkdtemp(prefix="harness-report-scale-"))
    try:
        stores = {"compacted": work / "compacted", "loose": work / "loose"}
        generate(stores["compacted"], runs=args.runs, points=20, parts=4)
        generate(stores["loose"], runs=args.runs - args.loose, points=20, parts=4)
        write_loose(stores["loose"], count=args.loose)
        generate(work / "tiny", runs=100, points=20, parts=1)
        codes = {"this": ROOT, **({"baseline": args.baseline.resolve()} if args.baseline else {})}
        times: dict[str, list[float]] = {}
        for _ in range(args.repeats):
            for layout, store in stores.items():
                for name, code in codes.items():  # interleaved: a busy machine slows both alike
                    times.setdefault(f"{layout}/report/{name}", []).append(measure_report(code, store))
                    if _has_all(code):
                        times.setdefault(f"{layout}/report_all/{name}", []).append(measure_report(code, store, "--all"))
                    times.setdefault(f"{layout}/open/{name}", []).append(measure_open(code, store, work / "tiny"))
        results: dict[str, float] = {key: round(statistics.median(v), 3) for key, v in times.items()}
        for key in list(results):
            if key.endswith("/this") and key.replace("/this", "/baseline") in results:
                results[key.replace("/this", "/ratio")] = round(results[key.replace("/this", "/baseline")]
                                                               / results[key], 2)
        print(json.dumps(results, indent=2))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
