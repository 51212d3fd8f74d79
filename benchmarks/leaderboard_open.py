"""How long the leaderboard's overview takes to open on a large store (default 100,000 runs).

Usage::

    python benchmarks/leaderboard_open.py [--runs 100000] [--points 20] [--store DIR] [--browser]

The store is generated (vectorized, seeded) straight into the compacted layout that
``harness.store.compact`` writes: ``runs/part-*.parquet`` and ``traces/part-*.parquet`` with
the columns ``Store.write_run`` writes (every run column, metrics, oracle counts, probes in the
traces), timed by the run loop's clock (init, every step and output on it; ``compile_s`` and
``offline_s`` apart; a few jax runs flagged with ``clock_compiles``). ``--loose K`` also
writes K runs through ``Store.write_run`` (per-run files, as a bench leaves them) and times
``compact`` on them.

Measured (seconds):

- ``cold``: the overview script run by ``streamlit.testing.v1.AppTest`` in a warm interpreter
  with every Streamlit cache cleared (the store read, aggregated and charted anew);
- ``warm``: the same with the caches kept (a reload, or a second visitor);
- ``browser_first`` / ``browser_reload`` / ``browser_after_write`` (with ``--browser``): from
  navigation to a drawn profile chart and ranking table in Debian's Chromium, on a freshly
  started server; reloaded; and after a new run changed the store's fingerprint. The
  ``tiny_*`` figures are the same on a 100-run store: the browser's own floor on this machine.

This module is a script: importing it (as asv does when it collects ``benchmarks/``) runs
nothing and defines no benchmark.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np
import polars as pl

from harness.record import FAILED, Status

ROOT = Path(__file__).resolve().parents[1]
APP = ROOT / "leaderboard" / "app.py"


# -- the store --------------------------------------------------------------------------------


def generate(store: Path, *, runs: int, points: int, parts: int, seed: int = 0) -> dict[str, float]:
    """Write ``runs`` simulated runs (``points`` evaluation points each) as ``parts`` part pairs."""
    rng = np.random.default_rng(seed)
    (store / "runs").mkdir(parents=True, exist_ok=True)
    (store / "traces").mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    index = np.arange(runs)
    bounds = np.linspace(0, runs, parts + 1).astype(int)
    n_points = n_rows = 0
    for p in range(parts):
        chunk = index[bounds[p] : bounds[p + 1]]
        frame, trace = _simulate(chunk, points=points, rng=rng)
        name = f"part-{time.time_ns():020d}-{p:08x}.parquet"
        trace.write_parquet(store / "traces" / name)
        frame.write_parquet(store / "runs" / name)
        n_rows += frame.height
        n_points += trace.height
    from harness.store import compact

    compact(store)  # the parts above are in the wide layout of store schema 1: migrated to the current one
    return {"runs": n_rows, "trace_points": n_points, "generate_s": time.perf_counter() - started}


def _simulate(ids: np.ndarray, *, points: int, rng: np.random.Generator) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Runs of a matrix: 100 tasks x 25 methods x 2 hardware x 2 frameworks x seeds."""
    n = ids.size
    task = ids % 100
    method = (ids // 100) % 25
    hardware = (ids // 2500) % 2
    framework = (ids // 5000) % 2
    seed = ids // 10000
    rate = 0.55 + 0.4 * (method / 25) + 0.03 * rng.standard_normal(n)
    rate = np.clip(rate + 0.05 * np.sin(task), 0.3, 0.995)
    per_step = 1e-3 * (1 + task % 7) * np.where(hardware == 1, 0.1, 1.0) * (1 + 0.1 * rng.random(n))
    start = 10.0 * (1 + rng.random(n))
    steps = np.arange(points) * 10
    sub = start[:, None] * rate[:, None] ** steps[None, :]
    target = np.where(task % 10 == 9, np.nan, 1e-6)
    failed = rng.random(n) < 0.03
    status_fail = np.asarray([str(s) for s in FAILED])[rng.integers(0, len(FAILED), n)]
    reached_at = np.argmax(sub <= target[:, None], axis=1)
    reached = (sub <= target[:, None]).any(axis=1) & ~failed
    last = np.where(reached, reached_at, points - 1)
    last = np.where(failed, rng.integers(0, points, n), last)
    # The clock (issue 8): init, every step and the output hook; compilations caught inside it
    # (about 2% of the jax runs) add their seconds from the first step on.
    init_s = 1e-3 * rng.random(n)
    output_s = 5e-4 * rng.random(n)
    clock_compiles = np.where((framework == 1) & (rng.random(n) < 0.02), rng.integers(1, 4, n), 0)
    clock_compile_s = 0.02 * clock_compiles * (1 + rng.random(n))
    time_s = init_s[:, None] + per_step[:, None] * steps[None, :] + np.where(steps[None, :] > 0,
                                                                             clock_compile_s[:, None], 0.0)
    keep = np.arange(points)[None, :] <= last[:, None]
    run_ids = np.char.add("r", np.char.zfill(ids.astype(str), 15))
    final_sub = sub[np.arange(n), last]
    status = np.where(failed, status_fail, np.where(reached, str(Status.REACHED_TARGET), str(Status.COMPLETED)))
    final_sub = np.where(failed & (status_fail == str(Status.DIVERGED)), np.inf, final_sub)
    metrics = json.dumps({"objective": {"unit": "nats", "lower_is_better": True},
                          "suboptimality": {"unit": "nats", "lower_is_better": True}}, sort_keys=True)
    families = np.asarray(["convex", "global", "multi-task", "game", "linear-system", "sampling", "bilevel", "rl"])
    ttt = np.where(reached, time_s[np.arange(n), last], np.nan)
    frame = pl.DataFrame({
        "schema_version": np.ones(n, dtype=np.int64),
        "run_id": run_ids,
        "suite": ["seeds"] * n,
        "task": np.char.add("task-", task.astype(str)),
        "task_family": families[task % 8],
        "task_params": np.where(task % 3 == 0, '{"d":20}', '{"d":50}'),
        "method": np.char.add("method-", method.astype(str)),
        "method_family": np.char.add("family-", (method % 5).astype(str)),
        "hyperparameters": np.char.add('{"lr":', np.char.add((0.1 * (1 + method % 3)).round(2).astype(str), "}")),
        "framework": np.where(framework == 1, "jax", "torch"),
        "hardware": np.where(hardware == 1, "gpu", "cpu"),
        "seed": seed.astype(np.int64),
        "status": status,
        "error": np.where(failed, np.char.add("Traceback (most recent call last):\n  ...\nRuntimeError: ", status_fail),
                          ""),
        "steps": steps[last].astype(np.int64),
        "oracle_calls": 2 * steps[last].astype(np.int64),
        "setup_s": 0.05 + 0.01 * rng.random(n),
        "compile_s": np.where(framework == 1, 0.3 * (1 + rng.random(n)), 0.0),
        "offline_s": np.where(method % 25 == 24, 60.0 * (1 + rng.random(n)), np.nan),  # one learned method
        "init_s": init_s, "output_s": output_s,
        "timed_s": time_s[np.arange(n), last] + output_s,
        "clock_compiles": clock_compiles.astype(np.int64), "clock_compile_s": clock_compile_s,
        "eval_s": 0.01 * rng.random(n), "wall_s": 0.2 + rng.random(n),
        "peak_memory_bytes": rng.integers(10**6, 10**9, n),
        "target_metric": np.where(np.isnan(target), "", "suboptimality"),
        "target_value": target,
        "time_to_target_s": ttt,
        "steps_to_target": np.where(reached, steps[last], -1),
        "metrics": [metrics] * n,
        "host": ["bench-host"] * n, "cpu": ["AMD EPYC 7R13"] * n, "gpu": np.where(hardware == 1, "NVIDIA H100", ""),
        "versions": ['{"jax":"0.4.30","numpy":"2.0","python":"3.11.9","torch":"2.5.1"}'] * n,
        "git_commit": ["0123456789abcdef0123456789abcdef01234567"] * n, "git_dirty": np.zeros(n, dtype=bool),
        "started_at": ["2025-01-01T00:00:00.000+00:00"] * n, "finished_at": ["2025-01-01T00:00:01.000+00:00"] * n,
        "calls_grad": steps[last].astype(np.int64), "calls_value": steps[last].astype(np.int64),
        "objective": 0.25 + final_sub, "suboptimality": final_sub,
    }, strict=False).with_columns(
        pl.col("error", "target_metric", "gpu").replace("", None),
        pl.col("target_value", "time_to_target_s", "offline_s").fill_nan(None),
        pl.when(pl.col("steps_to_target") >= 0).then(pl.col("steps_to_target")).alias("steps_to_target"),
    )
    rows, cols = np.nonzero(keep)
    trace = pl.DataFrame({
        "run_id": run_ids[rows],
        "step": steps[cols].astype(np.int64),
        "time_s": time_s[rows, cols],
        "oracle_calls": 2 * steps[cols].astype(np.int64),
        "calls_grad": steps[cols].astype(np.int64),
        "calls_value": steps[cols].astype(np.int64),
        "objective": 0.25 + sub[rows, cols],
        "suboptimality": sub[rows, cols],
        "hessian-top/lambda_max": 4.0 + 2.0 * np.exp(-steps[cols] / 50.0),
    })
    return frame, trace


def write_loose(store: Path, *, count: int, points: int = 20) -> float:
    """Write ``count`` simulated runs as per-run files through ``Store.write_run``; seconds in all."""
    from harness.store import Store

    frame, trace = _simulate(np.arange(10**7, 10**7 + count), points=points, rng=np.random.default_rng(1))
    target = Store(store)
    started = time.perf_counter()
    by_run = trace.partition_by("run_id", as_dict=True)
    for row in frame.drop("schema_version").iter_rows(named=True):
        found = by_run.get((row["run_id"],))
        target.write_run(row, [] if found is None else found.drop("run_id").to_dicts())
    return time.perf_counter() - started


def loose_runs(store: Path, *, count: int) -> dict[str, float]:
    """Write ``count`` runs through ``Store.write_run``, then time ``compact`` on them."""
    from harness.store import compact

    written = write_loose(store, count=count)
    started = time.perf_counter()
    merged = compact(store)
    return {"loose_runs": merged, "write_run_s": written, "compact_s": time.perf_counter() - started}


# -- measurements -----------------------------------------------------------------------------


def measure_apptest(store: Path, *, repeats: int) -> dict[str, float]:
    """Cold (caches cleared) and warm overview runs through AppTest, in this interpreter."""
    import streamlit as st
    from streamlit.testing.v1 import AppTest

    os.environ["HARNESS_STORE"] = str(store)
    with tempfile.TemporaryDirectory() as empty:
        os.environ["HARNESS_STORE"] = empty
        AppTest.from_file(str(APP), default_timeout=600).run()  # imports, outside the clock
    os.environ["HARNESS_STORE"] = str(store)
    cold, warm = [], []
    for _ in range(repeats):
        st.cache_data.clear()
        st.cache_resource.clear()
        at = AppTest.from_file(str(APP), default_timeout=600)
        started = time.perf_counter()
        at.run()
        cold.append(time.perf_counter() - started)
        assert not at.exception, [e.value for e in at.exception]
        assert at.get("vega_lite_chart"), "the overview drew no chart"
        again = AppTest.from_file(str(APP), default_timeout=600)
        started = time.perf_counter()
        again.run()
        warm.append(time.perf_counter() - started)
    return {"cold": statistics.median(cold), "cold_max": max(cold), "warm": statistics.median(warm)}


def measure_browser(store: Path) -> dict[str, float]:
    """Navigation to a drawn overview in Chromium: first, reload, after the store changed."""
    from playwright.sync_api import sync_playwright

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = subprocess.Popen([sys.executable, "-m", "harness.leaderboard", "--store", str(store), "--port", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait(url)
        args = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync"]
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", headless=True, args=args)
            results = {"browser_first": _open(browser, url), "browser_reload": _open(browser, url)}
            _touch(store)
            results["browser_after_write"] = _open(browser, url)
            browser.close()
        return results
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)


def _wait(url: str) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2):
                return
        except OSError:
            time.sleep(0.2)
    raise TimeoutError(url)


def _open(browser, url: str) -> float:
    page = browser.new_page(viewport={"width": 1400, "height": 1600})
    started = time.perf_counter()
    page.goto(url)
    page.wait_for_selector("[data-testid='stVegaLiteChart'] canvas, [data-testid='stVegaLiteChart'] svg.marks",
                           timeout=120_000)
    page.wait_for_selector("[data-testid='stDataFrame']", timeout=120_000)
    elapsed = time.perf_counter() - started
    page.close()
    return elapsed


def _touch(store: Path) -> None:
    """Add one run, so the store's fingerprint changes and the caches miss."""
    from harness.store import Store

    frame, trace = _simulate(np.asarray([10**8]), points=5, rng=np.random.default_rng(2))
    Store(store).write_run(frame.drop("schema_version").row(0, named=True), trace.drop("run_id").to_dicts())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=100_000)
    parser.add_argument("--points", type=int, default=20, help="Evaluation points per run (at most).")
    parser.add_argument("--parts", type=int, default=4, help="Part files (as after that many compactions).")
    parser.add_argument("--loose", type=int, default=0, help="Also write this many runs per-run and compact them.")
    parser.add_argument("--store", type=Path, help="Where to write the store (default: a temporary directory).")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--browser", action="store_true", help="Also time the overview in Debian's Chromium.")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    temporary = args.store is None
    store = Path(tempfile.mkdtemp(prefix="harness-bench-")) if temporary else args.store
    try:
        results: dict[str, float] = generate(store, runs=args.runs, points=args.points, parts=args.parts)
        if args.loose:
            results.update(loose_runs(store, count=args.loose))
        results.update(measure_apptest(store, repeats=args.repeats))
        if args.browser:
            results.update(measure_browser(store))
            with tempfile.TemporaryDirectory() as tiny:
                generate(Path(tiny), runs=100, points=args.points, parts=1)
                results.update({f"tiny_{k}": v for k, v in measure_browser(Path(tiny)).items()})
        print(json.dumps({k: round(v, 3) if isinstance(v, float) else v for k, v in results.items()}, indent=2))
    finally:
        if temporary:
            shutil.rmtree(store, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
