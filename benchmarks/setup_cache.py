"""The reference cache and the pool's start-up: quick-suite runs/min at ``-j 1`` and ``-j 2`` (a script, not asv).

Two measurements, each configuration in fresh processes, interleaved round by round so that
the noise of a shared machine hits every configuration alike:

- ``reference``: a fresh process imports the logreg and softmax task modules, loads the quick
  suite's three data sets (untimed), then times their three ``reference(...)`` calls, with
  ``HARNESS_CACHE_DIR=off``, on an empty folder (cold) and on the folder a cold process
  filled (warm). Reported: seconds (wall and CPU) of the three calls, and cold/warm ratios.
- ``bench``: ``python -m harness bench --suite quick -j N --store <empty>``, with the cache
  off, cold (an empty folder per round) and warm (a folder filled beforehand), and, with
  ``--baseline DIR`` (a checkout of the code before, e.g. ``git archive HEAD | tar -x -C DIR``,
  put first on ``PYTHONPATH``), the baseline at ``-j 1`` and ``-j 2``. Reported per
  configuration (medians over rounds): wall seconds, runs/min, the CPU seconds of the whole
  process tree (driver, keepers, servers: sampled every 0.1 s), the stored runs' summed
  ``setup_s`` and ``compile_s``; then the ``-j 2``/``-j 1`` runs/min ratios. The stored
  results (status, steps, objective, suboptimality of each run, by task, parameters,
  method, framework and seed) of every configuration are compared with the first's: they
  must be identical (``results identical``).

On 2 cores the ``-j 2`` speed-up is bounded by the CPU seconds: ``2 x cpu(j1) / cpu(j2)``
at best (per-worker start-up: framework imports, scikit-learn, the catalog, is paid once per
worker), and by whatever else the machine runs. ``HARNESS_JAX_CACHE_DIR`` is left as the
caller has it (jax's compilation cache, warm after the first bench).

Usage: ``python benchmarks/setup_cache.py [--rounds 2] [--baseline DIR] [--skip-bench]``.
Absolute times on a shared machine are noise; compare the ratios of one invocation.

This module is a script: importing it (as asv does when it collects ``benchmarks/``) runs
nothing and defines no benchmark.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

__all__: list[str] = []

ROOT = Path(__file__).resolve().parents[1]

_REFERENCE_CHILD = r"""
import json, sys, time
from harness.catalog import Catalog
catalog = Catalog.load()
def module(task):
    entry = catalog.tasks[task]
    return sys.modules[entry.resolve(entry.spec.implementations["torch"]).__module__]
logreg, softmax = module("logreg"), module("softmax")
cases = [(logreg, dict(dataset="synthetic", n=1000, d=20, data_seed=0), dict(l2=5e-4)),
         (logreg, dict(dataset="breast_cancer", n=1000, d=20, data_seed=0), dict(l2=5e-4)),
         (softmax, dict(dataset="blobs", n=1000, d=20, classes=5, separation=2.0, data_seed=0), dict(l2=5e-4))]
for mod, data, extra in cases:
    mod.load_data(**data)
t, c = time.perf_counter(), time.process_time()
f_stars = [mod.reference(**data, **extra).f_star.hex() for mod, data, extra in cases]
print("JSON" + json.dumps({"wall_s": time.perf_counter() - t, "cpu_s": time.process_time() - c, "f_stars": f_stars}))
"""


def _env(cache: str, pythonpath: str | None = None) -> dict[str, str]:
    env = dict(os.environ, HARNESS_CACHE_DIR=cache)
    if pythonpath:
        env["PYTHONPATH"] = os.pathsep.join(p for p in (pythonpath, os.environ.get("PYTHONPATH")) if p)
    return env


def measure_reference(cache: str) -> dict[str, Any]:
    """One fresh process: the three quick-suite references with ``HARNESS_CACHE_DIR=cache``."""
    done = subprocess.run([sys.executable, "-c", _REFERENCE_CHILD], env=_env(cache), capture_output=True, text=True,
                          check=False, cwd=ROOT)
    if done.returncode != 0:
        raise RuntimeError(done.stderr[-3000:])
    return json.loads(next(line for line in done.stdout.splitlines() if line.startswith("JSON"))[4:])


def _tree_cpu(popen: subprocess.Popen[bytes]) -> float:
    """Run ``popen`` to its end, summing the CPU seconds of its process tree (sampled every 0.1 s)."""
    import psutil

    seen: dict[tuple[int, float], float] = {}
    root = psutil.Process(popen.pid)
    while popen.poll() is None:
        try:
            tree = [root, *root.children(recursive=True)]
        except psutil.Error:
            tree = []
        for process in tree:
            try:
                times = process.cpu_times()
                seen[(process.pid, process.create_time())] = times.user + times.system
            except psutil.Error:
                continue
        time.sleep(0.1)
    return sum(seen.values())


def measure_bench(jobs: int, cache: str, pythonpath: str | None = None) -> dict[str, Any]:
    """``harness bench --suite quick -j jobs`` into an empty store: wall, runs/min, tree CPU, summed setup/compile."""
    with tempfile.TemporaryDirectory() as folder:
        store = os.path.join(folder, "store")
        started = time.perf_counter()
        popen = subprocess.Popen([sys.executable, "-m", "harness", "bench", "--suite", "quick", "-j", str(jobs),
                                  "--store", store], env=_env(cache, pythonpath), cwd=folder,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        cpu = _tree_cpu(popen)
        wall = time.perf_counter() - started
        stderr = popen.stderr.read().decode(errors="replace") if popen.stderr else ""
        if popen.returncode not in (0, 1):
            raise RuntimeError(f"bench exited {popen.returncode}: {stderr[-3000:]}")
        from harness.store import read_runs

        runs = read_runs(store)
        results = {
            json.dumps([r["task"], r["task_params"], r["method"], r["framework"], r["seed"]]):
                json.dumps([r["status"], r["steps"], r["objective"], r["suboptimality"]])  # NaN == NaN
            for r in runs.iter_rows(named=True)
        }
        return {"wall_s": wall, "runs": runs.height, "runs_per_min": 60.0 * runs.height / wall, "cpu_s": cpu,
                "setup_s": float(runs["setup_s"].sum()), "compile_s": float(runs["compile_s"].sum()),
                "results": results}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--baseline", default=None, help="A checkout of the code before (put first on PYTHONPATH).")
    parser.add_argument("--skip-bench", action="store_true", help="Only the reference measurement.")
    args = parser.parse_args()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as folder:
        warm = os.path.join(folder, "warm")
        measure_reference(warm)  # fills it
        ref_rows: dict[str, list[dict[str, Any]]] = {"off": [], "cold": [], "warm": []}
        for i in range(args.rounds):
            ref_rows["off"].append(measure_reference("off"))
            ref_rows["cold"].append(measure_reference(os.path.join(folder, f"cold-ref-{i}")))
            ref_rows["warm"].append(measure_reference(warm))
        f_stars = {k: {tuple(r["f_stars"]) for r in v} for k, v in ref_rows.items()}
        ref = {k: {m: statistics.median(r[m] for r in v) for m in ("wall_s", "cpu_s")} for k, v in ref_rows.items()}
        report: dict[str, Any] = {
            "reference": ref,
            "reference cold/warm (wall)": ref["cold"]["wall_s"] / ref["warm"]["wall_s"],
            "reference off/warm (wall)": ref["off"]["wall_s"] / ref["warm"]["wall_s"],
            "reference f* identical off/cold/warm": len(set().union(*f_stars.values())) == 1,
        }
        if not args.skip_bench:
            configs: dict[str, tuple[int, str | None, str | None]] = {}  # name -> (jobs, cache, pythonpath)
            if args.baseline:
                for jobs in (1, 2):
                    configs[f"baseline j{jobs}"] = (jobs, "off", str(Path(args.baseline).resolve()))
            for jobs in (1, 2):
                configs[f"off j{jobs}"] = (jobs, "off", None)
                configs[f"cold j{jobs}"] = (jobs, None, None)
                configs[f"warm j{jobs}"] = (jobs, warm, None)
            measure_bench(1, warm)  # fills the warm folder with the suite's references, and jax's cache
            rows: dict[str, list[dict[str, Any]]] = {name: [] for name in configs}
            for i in range(args.rounds):
                for name, (jobs, cache, pythonpath) in configs.items():
                    cache = cache or os.path.join(folder, f"cold-{name}-{i}")
                    rows[name].append(measure_bench(jobs, cache, pythonpath))
            first = next(iter(rows.values()))[0]["results"]
            identical = all(r["results"] == first for v in rows.values() for r in v)
            metrics = ("wall_s", "runs_per_min", "cpu_s", "setup_s", "compile_s")
            med = {name: {m: statistics.median(r[m] for r in v) for m in metrics} | {"runs": v[0]["runs"]}
                   for name, v in rows.items()}
            report["bench"] = med
            prefixes = ["off", "cold", "warm"] + (["baseline"] if args.baseline else [])
            report["runs/min j2/j1"] = {p: med[f"{p} j2"]["runs_per_min"] / med[f"{p} j1"]["runs_per_min"]
                                        for p in prefixes}
            report["cpu_s j2/j1"] = {p: med[f"{p} j2"]["cpu_s"] / med[f"{p} j1"]["cpu_s"] for p in prefixes}
            if args.baseline:
                report["runs/min j2 warm / baseline j1"] = (med["warm j2"]["runs_per_min"]
                                                            / med["baseline j1"]["runs_per_min"])
            report["results identical"] = identical
        report["rounds"] = args.rounds
        report["wall_s"] = time.perf_counter() - started
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
