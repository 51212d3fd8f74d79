"""Small, realistic stores for the leaderboard's tests, written through ``Store.write_run``.

Runs are simulated, not executed: suboptimality decays geometrically at a rate per method, the
clock advances per step (faster on the GPU profile), and a fixed set of runs fails in every
way the harness knows (diverged, error, timeout, oom) or is skipped. One task declares no
target and no suboptimality (a higher-is-better metric), as some catalog tasks do.

The clock follows the run loop's rule (issue 8): ``init``, every step and the ``output`` hook
are on it, compilation before it is ``compile_s`` (jax runs). A few runs caught compilations
inside the clock (:data:`CLOCK_COMPILES`, flagged), and ``heavy-ball`` declares an offline
phase (:func:`offline_s`). ``legacy=True`` writes the layout of an older store instead:
``warmup_s`` (the first step, off the clock) and none of the new timing columns.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from harness.store import Store

XSS = "<img src=x onerror=alert(1)>"


@dataclass(frozen=True)
class TaskSim:
    family: str
    target: float | None
    unit: str = "nats"
    suboptimality: bool = True
    cost: float = 1e-3
    probes: bool = False


TASKS: dict[str, TaskSim] = {
    "logreg": TaskSim("convex", 1e-6, probes=True),
    "softmax": TaskSim("convex", 1e-6, cost=2e-3),
    "rastrigin": TaskSim("global", 1e-2, unit="1", cost=5e-4),
    "tensor-pca": TaskSim("sampling", None, unit="fraction", suboptimality=False),
}

#: method -> (family, contraction per step, hyperparameters)
METHODS: dict[str, tuple[str, float, dict[str, Any]]] = {
    "gd": ("first-order", 0.90, {"lr": 0.1}),
    "adam": ("adaptive", 0.85, {"lr": 0.001, "b1": 0.9}),
    "heavy-ball": ("first-order", 0.80, {"lr": 0.1, "momentum": 0.9}),
    "lbfgs": ("quasi-newton", 0.50, {"history": 10}),
}

#: (task, method, hardware, seed) -> (status, error text)
FAILURES: dict[tuple[str, str, str, int], tuple[str, str]] = {
    ("softmax", "gd", "cpu", 2): ("diverged", "objective 3.1e+07 exceeds 1e+06 x the initial 2.3 at step 40"),
    ("rastrigin", "lbfgs", "cpu", 0): ("error", "Traceback (most recent call last):\nValueError: line search failed"),
    ("rastrigin", "lbfgs", "cpu", 1): ("error", "Traceback (most recent call last):\nValueError: line search failed"),
    ("rastrigin", "lbfgs", "cpu", 2): ("error", "Traceback (most recent call last):\nValueError: line search failed"),
    ("softmax", "heavy-ball", "cpu", 1): ("timeout", "time budget of 60 s exhausted after 90 steps"),
    ("logreg", "adam", "gpu", 0): ("oom", "CUDA out of memory. Tried to allocate 2.00 GiB"),
}

#: (task, method, hardware, framework, seed) -> (compilations inside the clock, their seconds)
CLOCK_COMPILES: dict[tuple[str, str, str, str, int], tuple[int, float]] = {
    ("logreg", "adam", "cpu", "jax", 1): (2, 0.04),
    ("logreg", "gd", "cpu", "jax", 0): (1, 0.02),
    ("softmax", "lbfgs", "cpu", "torch", 0): (3, 0.015),
}
#: Methods with a declared offline phase (e.g. a learned solver's training).
OFFLINE_METHODS = {"heavy-ball"}
INIT_S, OUTPUT_S = 0.001, 0.0005


def offline_s(method: str, seed: int) -> float | None:
    """The offline seconds of a run: 10, 12, 14 for seeds 0, 1, 2 of an offline method."""
    return 10.0 + 2.0 * seed if method in OFFLINE_METHODS else None


SKIPPED = {("tensor-pca", "lbfgs")}
STEPS, EVERY = 200, 10


def run_id(*key: Any) -> str:
    return hashlib.sha256(json.dumps(key).encode()).hexdigest()[:16]


def simulate(task: str, method: str, *, seed: int, hardware: str = "cpu", framework: str = "torch",
             status: str | None = None, error: str | None = None,
             legacy: bool = False) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """One run's row and trace (``legacy``: as an older store, with ``warmup_s``, holds them)."""
    sim = TASKS[task]
    family, rate, hyper = METHODS.get(method, ("test", 0.7, {"lr": 1.0}))
    rng = np.random.default_rng(int(run_id(task, method, seed, hardware, framework), 16) % 2**32)
    rate = min(0.99, rate * (1 + 0.02 * rng.standard_normal()))
    per_step = sim.cost * (0.1 if hardware == "gpu" else 1.0) * (1 + 0.1 * rng.random())
    start = 10.0 * (1 + 0.1 * rng.random())
    failure = (status, error) if status else FAILURES.get((task, method, hardware, seed), (None, None))
    trace: list[dict[str, Any]] = []
    reached = None
    final_status = failure[0] or "completed"
    compiles, compile_in_clock = (0, 0.0) if legacy else CLOCK_COMPILES.get((task, method, hardware, framework, seed),
                                                                             (0, 0.0))

    def clock(step: int) -> float:
        if legacy:  # the old rule: steps 2..N only
            return per_step * max(step - 1, 0)
        return INIT_S + (compile_in_clock if step >= 1 else 0.0) + per_step * step

    for step in range(0, STEPS + 1, EVERY):
        if failure[0] in ("error", "oom", "skipped"):
            break
        sub = start * (1.6**step if failure[0] == "diverged" else rate**step)
        if failure[0] == "diverged" and sub > 1e6 * start:
            sub = float("inf")
        point = _point(sim, step=step, time=clock(step), sub=sub, rng=rng)
        trace.append(point)
        if failure[0] == "diverged" and not np.isfinite(sub):
            break
        if failure[0] == "timeout" and step >= 90:
            break
        if sim.target is not None and sim.suboptimality and sub <= sim.target and not failure[0]:
            reached = (point["time_s"], step)
            final_status = "reached_target"
            break
    last = trace[-1] if trace else {}
    row = _row(task, method, family, hyper, seed=seed, hardware=hardware, framework=framework,
               status=final_status, error=failure[1], last=last, reached=reached, per_step=per_step)
    steps = row["steps"]
    if legacy:
        row.update(warmup_s=0.02, timed_s=clock(steps))
    else:
        ran = final_status != "skipped"
        row.update(
            compile_s=(0.3 if framework == "jax" else 0.0) if ran else None,
            offline_s=offline_s(method, seed) if ran else None,
            init_s=INIT_S if ran else None,
            output_s=OUTPUT_S if ran else None,
            timed_s=clock(steps) + OUTPUT_S if ran else None,
            clock_compiles=compiles if ran else None,
            clock_compile_s=compile_in_clock if ran else None,
        )
    return row, trace


def _point(sim: TaskSim, *, step: int, time: float, sub: float, rng: np.random.Generator) -> dict[str, Any]:
    point: dict[str, Any] = {"step": step, "time_s": time, "oracle_calls": 2 * step, "calls_grad": step,
                             "calls_value": step}
    if sim.suboptimality:
        point.update(objective=0.25 + sub, suboptimality=sub)
    else:
        point.update(objective=-min(1.0, 0.1 + step / STEPS), overlap=min(1.0, 0.1 + step / STEPS))
    if sim.probes:
        point["hessian-top/lambda_max"] = 4.0 + 2.0 * np.exp(-step / 50) + 0.1 * rng.standard_normal()
        point["ghost-radius/r"] = 0.5 * np.exp(-step / 80)
    return point


def _row(task: str, method: str, family: str, hyper: dict[str, Any], *, seed: int, hardware: str, framework: str,
         status: str, error: str | None, last: dict[str, Any], reached: tuple[float, int] | None,
         per_step: float) -> dict[str, Any]:
    sim = TASKS[task]
    metrics = {"objective": {"unit": sim.unit, "lower_is_better": True}}
    if sim.suboptimality:
        metrics["suboptimality"] = {"unit": sim.unit, "lower_is_better": True}
    else:
        metrics["overlap"] = {"unit": "fraction", "lower_is_better": False}
    steps = int(last.get("step", 0))
    finals = {m: last.get(m) for m in metrics}
    return {
        "run_id": run_id(task, method, seed, hardware, framework),
        "suite": "quick", "task": task, "task_family": sim.family, "task_params": json.dumps({"d": 20}),
        "method": method, "method_family": family, "hyperparameters": json.dumps(hyper, sort_keys=True),
        "framework": framework, "hardware": hardware, "seed": seed, "status": status, "error": error,
        "steps": steps, "oracle_calls": 2 * steps, "calls_grad": steps, "calls_value": steps,
        "setup_s": 0.05, "init_s": INIT_S, "eval_s": 0.01, "wall_s": 0.1 + per_step * steps,
        "peak_memory_bytes": 10_000_000,
        "target_metric": "suboptimality" if sim.target is not None else None, "target_value": sim.target,
        "time_to_target_s": reached[0] if reached else None, "steps_to_target": reached[1] if reached else None,
        "metrics": json.dumps(metrics, sort_keys=True), **finals,
        "host": "testhost", "cpu": "Test CPU", "gpu": "Test GPU" if hardware == "gpu" else None,
        "versions": json.dumps({"python": "3.11", "torch": "2.5"}), "git_commit": "0123456789abcdef",
        "git_dirty": False, "started_at": "2025-01-01T00:00:00.000+00:00",
        "finished_at": "2025-01-01T00:00:01.000+00:00",
    }


def build_store(root: Path, *, seeds: tuple[int, ...] = (0, 1, 2), extra_methods: tuple[str, ...] = (),
                only_failures: bool = False, legacy: bool = False) -> list[dict[str, Any]]:
    """Write the standard small store to ``root``; return its rows.

    The matrix: every task x every method on the CPU (torch); logreg also on the GPU and
    with jax for gd and adam. ``extra_methods`` join on logreg (CPU, torch). With
    ``only_failures`` every run errors or diverges. With ``legacy`` the runs are written as
    an older store's files (``warmup_s``, none of the new timing columns), bypassing
    ``Store.write_run`` so that today's columns are not added.
    """
    store = Store(root)
    cells = [(t, m, "cpu", "torch") for t in TASKS for m in (*METHODS, *extra_methods)
             if m in METHODS or t == "logreg"]
    cells += [("logreg", m, "gpu", "torch") for m in METHODS]
    cells += [("logreg", m, "cpu", "jax") for m in ("gd", "adam")]
    rows = []
    for task, method, hardware, framework in cells:
        for seed in seeds:
            status = error = None
            if (task, method) in SKIPPED:
                status, error = "skipped", "method requires value_and_grad; the task does not provide it"
            if only_failures:
                status, error = ("error", f"RuntimeError: {method} failed") if seed % 2 else ("diverged", "nan")
            row, trace = simulate(task, method, seed=seed, hardware=hardware, framework=framework,
                                  status=status, error=error, legacy=legacy)
            if legacy:
                _write_legacy(root, row, trace)
            else:
                store.write_run(row, trace)
            rows.append(row)
    return rows


def _write_legacy(root: Path, row: dict[str, Any], trace: list[dict[str, Any]]) -> None:
    """One run's files as an older harness wrote them: its own columns only, no new ones."""
    import polars as pl

    run_id = row["run_id"]
    points = [{"run_id": run_id, **p} for p in trace]
    frame = pl.DataFrame(points) if points else pl.DataFrame(schema={"run_id": pl.String, "step": pl.Int64,
                                                                     "time_s": pl.Float64, "oracle_calls": pl.Int64})
    frame.write_parquet(root / "traces" / f"{run_id}.parquet")
    pl.DataFrame([{"schema_version": 1, **row}], infer_schema_length=None).write_parquet(
        root / "runs" / f"{run_id}.parquet")


def write_method_yaml(catalog_root: Path, method_id: str, *, name: str, family: str = "test") -> Path:
    """A valid method declaration (an optax/torch baseline) named ``name``."""
    path = catalog_root / "methods" / family / f"{method_id}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        f"id: {method_id}\n"
        f"name: {json.dumps(name)}\n"
        f"family: {family}\n"
        f"paper: {json.dumps('baseline: ' + name)}\n"
        f"description: {json.dumps('A method whose texts are markup: ' + name)}\n"
        "requires: [grad]\n"
        "hyperparameters: {lr: 1.0}\n"
        "implementations:\n"
        "  torch: {optimizer: torch.optim.SGD, args: {lr: lr}}\n",
        encoding="utf-8",
    )
    return path
