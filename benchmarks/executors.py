"""Throughput and per-run overhead of the executors (a benchmark script, not a test).

The matrix: 40 short runs (built-in ``logreg`` on synthetic data, ``gd``, 20 steps, torch and
jax, 20 seeds), executed by

- ``inline``: in this process, after one warm-up run per framework (the floor: no isolation);
- ``pool -j 1`` and ``pool -j 2``: the local pool (fresh worker processes, started by the map);
- ``ray``: Ray actors on a local instance started beforehand (its start-up is reported apart).

Reported per executor: wall time of the whole matrix, time to the first result (start-up),
runs per minute overall and in steady state (between the first and the last result), and the
per-run overhead against inline: ``(steady seconds per run x jobs - inline seconds per run)``,
what isolation costs a run once the workers are warm.

With ``--sizes N1,N2`` each executor runs two plans (N1 and N2 runs) instead, and the
difference separates its fixed cost (start-up, each worker's imports and first compilations)
from its cost per run: ``per run = (wall(N2) - wall(N1)) / (N2 - N1)``, ``fixed = wall(N1) -
N1 x per run``; the overhead per run is ``(per run x jobs - inline's per run)``, the fixed
cost is reported over inline's. On a loaded machine start-up times vary by seconds, which
that difference can hide; ``by gap`` is steadier: the median time between two results of
the larger plan x jobs, less inline's median.

Usage: ``python benchmarks/executors.py [--runs 40] [--steps 20] [--only inline,pool1,pool2,ray]
[--sizes 20,60]``. Absolute times on a shared machine are noise; compare the rows of one invocation.

This module is a script: importing it (as asv does when it collects ``benchmarks/``) runs
nothing and defines no benchmark.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from typing import Any

__all__: list[str] = []


def matrix(runs: int, steps: int) -> tuple[Any, list[Any]]:
    """The built-in catalog and ``runs`` runs of logreg x gd (half torch, half jax)."""
    from harness.catalog import Catalog
    from harness.plan import make_plan
    from harness.spec import Budget, SuiteEntry, SuiteSpec

    catalog = Catalog.load()
    suite = SuiteSpec(
        id="executors-bench", seeds=tuple(range((runs + 1) // 2)), frameworks=("torch", "jax"), hardware=("cpu",),
        entries=(SuiteEntry(tasks=("logreg",), methods=("gd",), budget=Budget(steps=steps, seconds=60)),),
    )
    return catalog, make_plan(catalog, suite=suite).runs[:runs]


def measure(executor: Any, runs: list[Any]) -> dict[str, float]:
    """Drive ``runs`` through ``executor`` into a scratch store; wall, first and last result times."""
    from harness.execute import drive
    from harness.store import Store

    stamps: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        results = drive(runs, Store(tmp), executor, on_result=lambda _: stamps.append(time.perf_counter()))
        wall = time.perf_counter() - start
    from harness.record import FINISHED

    bad = [r.row["error"] for r in results if r.status not in FINISHED]
    if bad:
        raise RuntimeError(f"{len(bad)} runs failed; first: {bad[0]}")
    gaps = sorted(b - a for a, b in zip(stamps, stamps[1:]))
    return {"wall_s": wall, "first_s": stamps[0] - start, "last_s": stamps[-1] - start,
            "run_s": sum(r.row["wall_s"] for r in results) / len(results),
            "median_gap_s": gaps[len(gaps) // 2] if gaps else wall}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=40)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--only", default="inline,pool1,pool2,ray", help="Comma-separated executors to measure.")
    parser.add_argument("--json", default=None, help="Also write the numbers to this file.")
    parser.add_argument("--sizes", default=None,
                        help="Two plan sizes, e.g. 20,60: fixed cost and cost per run of each executor.")
    args = parser.parse_args()
    only = args.only.split(",")
    if args.sizes:
        sizes(tuple(int(n) for n in args.sizes.split(",")), args.steps, only, args.json)
        return
    catalog, runs = matrix(args.runs, args.steps)
    from harness.execute import make_executor
    from harness.execute.inline import InlineExecutor
    from harness.execute.pool import PoolExecutor
    from harness.execute.worker import CatalogSource

    source = CatalogSource.of()
    rows: dict[str, dict[str, float]] = {}
    if "inline" in only:
        from harness.run import execute_run

        for framework in ("torch", "jax"):  # imports and first compilations are not the executor's
            execute_run(next(r for r in runs if r.framework == framework), catalog)
        rows["inline"] = {**measure(InlineExecutor(catalog), runs), "jobs": 1}
    for name, jobs in (("pool1", 1), ("pool2", 2)):
        if name in only:
            rows[f"pool -j {jobs}"] = {**measure(PoolExecutor(source, jobs=jobs), runs), "jobs": jobs}
    if "ray" in only:
        import ray

        jobs = min(2, os.cpu_count() or 1)
        start = time.perf_counter()
        ray.init(num_cpus=jobs, include_dashboard=False, log_to_driver=False, logging_level="warning")
        init_s = time.perf_counter() - start
        try:
            rows["ray"] = {**measure(make_executor("ray"), runs), "jobs": jobs, "ray_init_s": init_s}
        finally:
            ray.shutdown()

    inline_run = rows["inline"]["wall_s"] / len(runs) if "inline" in rows else None
    print(f"{len(runs)} runs of logreg x gd, {args.steps} steps, torch + jax, on {os.cpu_count()} cores")
    header = f"{'executor':<12}{'wall s':>9}{'first s':>9}{'runs/min':>10}{'steady/min':>12}{'overhead ms/run':>17}"
    print(header)
    for name, row in rows.items():
        steady = (len(runs) - 1) / max(row["last_s"] - row["first_s"], 1e-9) * 60
        row["runs_per_min"] = len(runs) / row["wall_s"] * 60
        row["steady_runs_per_min"] = steady
        overhead = None if inline_run is None else (60 / steady * row["jobs"] - inline_run) * 1e3
        row["overhead_ms_per_run"] = overhead
        shown = "-" if overhead is None or name == "inline" else f"{overhead:.0f}"
        print(f"{name:<12}{row['wall_s']:>9.2f}{row['first_s']:>9.2f}{row['runs_per_min']:>10.0f}{steady:>12.0f}"
              f"{shown:>17}")
    if "ray" in rows:
        print(f"(ray: local instance started in {rows['ray']['ray_init_s']:.1f} s, not counted above)")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(rows, handle, indent=2)


def sizes(counts: tuple[int, ...], steps: int, only: list[str], json_path: str | None) -> None:
    """Each executor over plans of ``counts`` runs: fixed cost and cost per run from their walls."""
    import harness
    from harness.execute import make_executor
    from harness.execute.inline import InlineExecutor
    from harness.execute.pool import PoolExecutor
    from harness.execute.worker import CatalogSource
    from harness.run import execute_run

    small, large = counts
    catalog, runs = matrix(large, steps)
    plans = {small: matrix(small, steps)[1], large: runs}  # each half torch, half jax
    source = CatalogSource.of()
    walls: dict[str, dict[int, dict[str, float]]] = {}
    jobs_of: dict[str, int] = {}
    for name in only:
        if name == "inline":
            for framework in ("torch", "jax"):
                execute_run(next(r for r in runs if r.framework == framework), catalog)
            walls[name] = {n: measure(InlineExecutor(catalog), plan) for n, plan in plans.items()}
            jobs_of[name] = 1
        elif name in ("pool1", "pool2"):
            jobs = int(name[-1])
            walls[name] = {n: measure(PoolExecutor(source, jobs=jobs), plan) for n, plan in plans.items()}
            jobs_of[name] = jobs
        elif name == "ray":
            import ray

            jobs = min(2, os.cpu_count() or 1)
            walls[name] = {}
            for n, plan in plans.items():  # a fresh instance each: no Ray worker is warm from the other plan
                ray.init(num_cpus=jobs, include_dashboard=False, log_to_driver=False, logging_level="warning")
                try:
                    walls[name][n] = measure(make_executor("ray"), plan)
                finally:
                    ray.shutdown()
            jobs_of[name] = jobs
    print(f"plans of {small} and {large} runs of logreg x gd, {steps} steps, on {os.cpu_count()} cores "
          f"(harness from {os.path.dirname(harness.__file__)})")
    print(f"{'executor':<10}{'wall ' + str(small):>9}{'wall ' + str(large):>9}{'fixed s':>9}{'ms/run':>8}"
          f"{'median gap ms':>15} | over inline:{'fixed s':>8}{'ms/run':>8}{'by gap':>8}")
    rows = {}
    for name, measured in walls.items():
        wall = {n: m["wall_s"] for n, m in measured.items()}
        per_run = (wall[large] - wall[small]) / (large - small)
        fixed = wall[small] - small * per_run
        rows[name] = {"walls": wall, "per_run_s": per_run, "fixed_s": fixed, "jobs": jobs_of[name],
                      "median_gap_s": measured[large]["median_gap_s"]}
    base = rows.get("inline")
    for name, row in rows.items():
        line = (f"{name:<10}{row['walls'][small]:>9.2f}{row['walls'][large]:>9.2f}{row['fixed_s']:>9.2f}"
                f"{row['per_run_s'] * 1e3:>8.0f}{row['median_gap_s'] * 1e3:>15.0f} |")
        if base is not None and name != "inline":
            row["overhead_ms_per_run"] = (row["per_run_s"] * row["jobs"] - base["per_run_s"]) * 1e3
            row["overhead_ms_per_run_by_gap"] = (row["median_gap_s"] * row["jobs"] - base["median_gap_s"]) * 1e3
            line += (f"{'':12}{row['fixed_s'] - base['fixed_s']:>8.2f}{row['overhead_ms_per_run']:>8.0f}"
                     f"{row['overhead_ms_per_run_by_gap']:>8.0f}")
        print(line)
    if json_path:
        with open(json_path, "w") as handle:
            json.dump(rows, handle, indent=2)


if __name__ == "__main__":
    main()
