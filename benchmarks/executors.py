"""Throughput and per-run overhead of the executors (a benchmark script, not a test).

The matrix: 40 short runs (built-in ``logreg`` on synthetic data, ``gd``, 20 steps, torch and
jax, 20 seeds), executed by

- ``inline``: in this process, after one warm-up run per framework (the floor: no isolation);
- ``pool -j 1`` and ``pool -j 2``: the local pool (fresh worker processes, started by the map);
- ``ray``: Ray tasks on a local instance started beforehand (its start-up is reported apart).

Reported per executor: wall time of the whole matrix, time to the first result (start-up),
runs per minute overall and in steady state (between the first and the last result), and the
per-run overhead against inline: ``(steady seconds per run x jobs - inline seconds per run)``,
what isolation costs a run once the workers are warm.

Usage: ``python benchmarks/executors.py [--runs 40] [--steps 20] [--only inline,pool1,pool2,ray]``.
Absolute times on a shared machine are noise; compare the rows of one invocation.

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
    return {"wall_s": wall, "first_s": stamps[0] - start, "last_s": stamps[-1] - start,
            "run_s": sum(r.row["wall_s"] for r in results) / len(results)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=40)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--only", default="inline,pool1,pool2,ray", help="Comma-separated executors to measure.")
    parser.add_argument("--json", default=None, help="Also write the numbers to this file.")
    args = parser.parse_args()
    only = args.only.split(",")
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


if __name__ == "__main__":
    main()
