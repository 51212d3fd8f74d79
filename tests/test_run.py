"""One run: timing rules, statuses, budgets, targets and the trace, on a closed-form task."""

from __future__ import annotations

import json

import numpy as np
import pytest

from harness.execute import failed_result
from harness.plan import make_plan
from harness.run import DIVERGENCE_FACTOR, execute_run
from harness.spec import Budget, SuiteEntry, SuiteSpec


def run_one(catalog, *, framework="torch", hardware="cpu", seed=0, budget=None, grid=None, task="quadratic",
            **hyperparameters):
    suite = SuiteSpec(
        id="t",
        seeds=(seed,),
        frameworks=(framework,),
        hardware=(hardware,),
        entries=(SuiteEntry(tasks=(task,), methods=("sleepy-gd",), grid=grid or {},
                            hyperparameters={"sleepy-gd": hyperparameters}, budget=budget),),
    )
    (run,) = make_plan(catalog, suite=suite).runs
    return execute_run(run, catalog)


def test_evaluation_time_is_not_timed(test_catalog):
    sleep = 0.05
    result = run_one(test_catalog, task="slow-quadratic", grid={"eval_sleep_s": (sleep,)})
    row, evaluations = result.row, len(result.trace)
    assert row["status"] == "reached_target"
    assert evaluations > 10
    slept = evaluations * sleep  # step 0 included
    assert row["eval_s"] >= slept
    assert row["timed_s"] < 0.5 * slept  # about 1% of it on a quiet machine
    assert result.trace[-1]["time_s"] == pytest.approx(row["timed_s"])


def test_init_every_step_and_output_are_on_the_clock(test_catalog):
    init_sleep, step_sleep, output_sleep = 0.05, 0.002, 0.01
    result = run_one(test_catalog, init_sleep_s=init_sleep, step_sleep_s=step_sleep, sleep_s=output_sleep,
                     budget=Budget(steps=30))
    row, trace = result.row, result.trace
    outputs = len(trace) - 1  # not at step 0, before init
    assert row["steps"] == 30
    assert row["init_s"] >= init_sleep and row["output_s"] >= outputs * output_sleep
    assert row["timed_s"] >= init_sleep + 30 * step_sleep + outputs * output_sleep  # step 1 included
    assert row["timed_s"] >= row["init_s"] + row["output_s"]
    assert trace[1]["time_s"] >= init_sleep + 5 * step_sleep + output_sleep  # the clock at step 5


def test_reached_target_records_time_and_steps_of_the_first_passing_evaluation(test_catalog):
    result = run_one(test_catalog)
    row, trace = result.row, result.trace
    first = next(p for p in trace if p["suboptimality"] <= row["target_value"])
    assert row["status"] == "reached_target" and first is trace[-1]
    assert (row["steps_to_target"], row["time_to_target_s"]) == (first["step"], first["time_s"])
    assert row["suboptimality"] == first["suboptimality"] <= 1e-10
    assert json.loads(row["metrics"])["suboptimality"] == {"unit": "1", "lower_is_better": True}


def test_suboptimality_is_objective_minus_the_closed_form_optimum(test_catalog):
    result = run_one(test_catalog, budget=Budget(steps=3))
    a = np.logspace(0.0, 1.0, 10)
    b = np.random.default_rng(1234).standard_normal(10)
    x0 = np.random.default_rng(0).standard_normal(10)
    f0 = 0.5 * a @ (x0 * x0) - b @ x0
    assert result.trace[0]["objective"] == pytest.approx(f0, rel=1e-12)
    assert result.trace[0]["suboptimality"] == pytest.approx(f0 + 0.5 * np.sum(b * b / a), rel=1e-12)


def test_divergence_stops_the_run(test_catalog):
    result = run_one(test_catalog, lr=0.5)  # lr * max curvature = 5 > 2: the iterates blow up
    row = result.row
    assert row["status"] == "diverged"
    assert f"exceeds {DIVERGENCE_FACTOR:g} x the initial" in row["error"]
    assert row["steps"] < 200 and row["time_to_target_s"] is None


def test_step_budget_ends_a_run_as_completed(test_catalog):
    result = run_one(test_catalog, budget=Budget(steps=12))
    assert result.row["status"] == "completed" and result.row["steps"] == 12
    assert [p["step"] for p in result.trace] == [0, 5, 10, 12]  # every 5 steps, and the last


def test_oracle_call_budget_counts_every_call(test_catalog):
    result = run_one(test_catalog, budget=Budget(steps=100, oracle_calls=7))
    row = result.row
    assert row["status"] == "completed"
    assert (row["steps"], row["oracle_calls"], row["calls_grad"]) == (7, 7, 7)
    assert result.trace[-1]["step"] == 7 and result.trace[-1]["oracle_calls"] == 7


def test_torch_and_jax_give_the_same_trace(test_catalog):
    torch_trace = run_one(test_catalog, framework="torch").trace
    jax_trace = run_one(test_catalog, framework="jax").trace
    assert [p["step"] for p in torch_trace] == [p["step"] for p in jax_trace]
    np.testing.assert_allclose(
        [p["objective"] for p in torch_trace], [p["objective"] for p in jax_trace], rtol=1e-12
    )


def test_unavailable_hardware_is_skipped_with_the_reason(test_catalog):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this host has a GPU")
    row = run_one(test_catalog, hardware="gpu").row
    assert row["status"] == "skipped"
    assert "needs 1 CUDA device(s)" in row["error"]


@pytest.mark.filterwarnings("ignore:invalid value encountered")
def test_failures_are_recorded_not_raised(test_catalog):
    # A mistyped parameter ("ten") is rejected by the plan now; a negative size still crashes setup.
    crashed = run_one(test_catalog, grid={"d": (-1,)}, budget=Budget(steps=3)).row  # np.logspace raises ValueError
    assert crashed["status"] == "error" and "ValueError" in crashed["error"] and crashed["steps"] == 0
    nan = run_one(test_catalog, grid={"kappa": (-1.0,)}, budget=Budget(steps=3)).row  # log10(-1): NaN curvatures
    assert nan["status"] == "diverged" and nan["error"] == "objective is nan at step 0"


def test_rows_carry_ids_timings_and_fingerprint(test_catalog):
    row = run_one(test_catalog, budget=Budget(steps=5)).row
    for column in ("run_id", "task", "method", "framework", "hardware", "seed", "setup_s", "compile_s", "init_s",
                   "output_s", "timed_s", "eval_s", "wall_s", "clock_compiles", "clock_compile_s", "program", "host",
                   "cpu", "versions", "started_at", "finished_at"):
        assert row[column] is not None, column
    assert row["wall_s"] >= row["setup_s"] + row["timed_s"]
    assert json.loads(row["hyperparameters"]) == {"lr": 0.1, "sleep_s": 0.0, "step_sleep_s": 0.0, "init_sleep_s": 0.0}
    assert row["offline_s"] is None  # the method declares no offline phase
    # The run's own peak may be 0 for a run this small (nothing above the baseline); the baseline is never.
    assert row["peak_memory_bytes"] >= 0 and row["baseline_memory_bytes"] > 0


def test_each_trace_point_is_handed_on_as_it_is_recorded_and_a_failed_row_keeps_them(test_catalog):
    suite = SuiteSpec(id="t", seeds=(0,), frameworks=("torch",), hardware=("cpu",),
                      entries=(SuiteEntry(tasks=("quadratic",), methods=("sleepy-gd",), budget=Budget(steps=6)),))
    (run,) = make_plan(test_catalog, suite=suite).runs
    seen = []

    def on_point(point):
        seen.append((len(seen), dict(point)))  # called before the next point exists

    result = execute_run(run, test_catalog, on_point=on_point)
    assert [point for _, point in seen] == result.trace and len(seen) >= 2
    # What an executor records for a run that died after streaming the first points.
    streamed = [point for _, point in seen[:2]]
    failed = failed_result(run, test_catalog, status="error", error="killed", trace=streamed)
    assert failed.trace == streamed and failed.row["error"] == "killed"
    assert failed.row["steps"] == streamed[-1]["step"] > 0
    assert failed.row["oracle_calls"] == streamed[-1]["oracle_calls"] > 0
    assert failed.row["objective"] == streamed[-1]["objective"] and failed.row["timed_s"] == streamed[-1]["time_s"]
    assert failed_result(run, test_catalog, status="error", error="killed").row["steps"] == 0  # nothing streamed


def test_an_implementation_failing_at_run_time_names_its_declaration(test_catalog):
    row = run_one(test_catalog, grid={"d": (-1,)}, budget=Budget(steps=3)).row  # numpy refuses a negative size
    last = row["error"].strip().splitlines()[-1]
    assert row["status"] == "error"
    assert last.startswith("harness.run.DeclaredError: ") and "quadratic.yaml:" in last
    assert "implementations.torch: building the problem raised ValueError" in last


def test_peak_memory_is_the_runs_own_above_its_baseline(tmp_path, load_test_catalog):
    """A method that holds 200 MiB for one step: the run's peak is those bytes, the baseline apart."""
    methods = tmp_path / "methods"
    methods.mkdir()
    (methods / "hog.yaml").write_text(HOG_YAML)
    (methods / "hog.py").write_text(HOG_PY)
    catalog = load_test_catalog(tmp_path)
    suite = SuiteSpec(id="t", frameworks=("torch",), entries=(SuiteEntry(tasks=("quadratic",), methods=("hog",),
                                                                          budget=Budget(steps=3)),))
    (run,) = make_plan(catalog, suite=suite).runs
    row = execute_run(run, catalog).row
    assert row["status"] == "completed", row["error"]
    hog = 200 * 2**20
    # Within 5% below (pages of the baseline the process let go meanwhile) and 64 MiB above (the run's own
    # allocations); the process's whole high-water mark, baseline included, would be far above.
    assert 0.95 * hog <= row["peak_memory_bytes"] < hog + 64 * 2**20
    assert row["baseline_memory_bytes"] > 100 * 2**20  # this process: python, torch, pytest, the catalog


HOG_YAML = """\
id: hog
name: Gradient descent that holds 200 MiB for its first step
family: testing
paper: "test-only"
requires: [grad]
hyperparameters:
  lr: 0.1
implementations:
  torch:
    entry: "hog.py:Hog"
"""

HOG_PY = """\
import numpy as np


class Hog:
    def __init__(self, *, lr):
        self.lr = float(lr)

    def init(self, params, oracle):
        return 0

    def step(self, params, state, oracle):
        if state == 0:
            block = np.ones(200 * 2**20 // 8)  # written, so resident
            block.sum()
            del block
        return params - self.lr * oracle.grad(params), state + 1
"""
