"""adam/jax against gd/jax on the quick suite: time to target, before and after a change.

Issue 8 found optax's adam compiling a second time at its second step, inside the timed region,
so adam/jax ranked last on the overview. This script runs the quick suite's adam and gd jax runs
with two harness source trees (by default the commit before the fix and the working tree),
interleaved, and prints per problem the median time-to-target ratio adam / gd (both reached),
the ratio of their clocks per step (every problem), and how many compilations fell on the clock. Ratios, not times: the machine is shared.

Usage: ``python benchmarks/clock.py [--before DIR] [--after DIR] [--rounds 2]``; a DIR is a
harness source tree (``git worktree add /tmp/before 1f367ff`` gives the one before the fix).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import polars as pl

from harness.record import Status

ROOT = Path(__file__).resolve().parent.parent


def bench(source: Path, store: Path) -> pl.DataFrame:
    """adam and gd, jax, on the quick suite, run by the harness of ``source``; their runs table."""
    env = {**os.environ, "PYTHONPATH": str(source)}
    code = "import sys; from harness.cli import main; sys.argv[0] = 'harness'; main()"
    cmd = [sys.executable, "-c", code, "bench", "--suite", "quick", "--method", "adam", "--method", "gd",
           "--framework", "jax", "--store", str(store), "-j", "1"]
    subprocess.run(cmd, env=env, check=False, capture_output=True, cwd=source, timeout=1800)
    files = sorted((store / "runs").glob("*.parquet"))
    runs = pl.concat([pl.read_parquet(f) for f in files], how="diagonal_relaxed")  # two schema versions
    if "clock_compiles" not in runs.columns:  # a harness before issue 8 did not count them
        runs = runs.with_columns(pl.lit(None, pl.Int64).alias("clock_compiles"))
    return runs.select("task", "task_params", "method", "seed", "status", "time_to_target_s", "timed_s", "steps",
                       "clock_compiles")


def ratios(runs: pl.DataFrame) -> pl.DataFrame:
    """Per problem: median time-to-target of adam and gd over seeds, their ratio, clock compilations."""
    per = runs.group_by("task", "task_params", "method").agg(
        pl.col("time_to_target_s").median().alias("ttt"),
        (pl.col("timed_s") / pl.col("steps")).median().alias("per_step"),
        (pl.col("status") == Status.REACHED_TARGET).sum().alias("reached"),
        pl.when(pl.col("clock_compiles").is_null().all()).then(None)
        .otherwise(pl.col("clock_compiles").sum()).alias("clock_compiles"),  # null: not recorded
    )
    adam = per.filter(pl.col("method") == "adam").drop("method")
    gd = per.filter(pl.col("method") == "gd").drop("method")
    both = adam.join(gd, on=["task", "task_params"], suffix="_gd")
    label = pl.col("task") + pl.col("task_params").map_elements(
        lambda p: "[" + json.loads(p).get("dataset", "") + "]", return_dtype=pl.String)
    return both.select(label.alias("problem"), (pl.col("ttt") / pl.col("ttt_gd")).alias("adam/gd"),
                       (pl.col("per_step") / pl.col("per_step_gd")).alias("clock per step adam/gd"),
                       "reached", "reached_gd", pl.col("clock_compiles").alias("adam clock compiles"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", type=Path, required=True, help="harness source tree before the change")
    parser.add_argument("--after", type=Path, default=ROOT, help="harness source tree after it (default: this one)")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    frames: dict[str, list[pl.DataFrame]] = {"before": [], "after": []}
    with tempfile.TemporaryDirectory() as tmp:
        for round_ in range(args.rounds):  # interleaved: both see the same machine load
            for name in ("before", "after"):
                frames[name].append(bench(getattr(args, name), Path(tmp) / f"{name}-{round_}"))
    for name, parts in frames.items():
        print(f"\n{name}: median time to target, adam/jax over gd/jax (< 1: adam faster), {args.rounds} rounds x 3 seeds")
        with pl.Config(tbl_rows=20, tbl_width_chars=120, tbl_hide_dataframe_shape=True):
            print(ratios(pl.concat(parts, how="diagonal_relaxed")).sort("problem"))


if __name__ == "__main__":
    main()
