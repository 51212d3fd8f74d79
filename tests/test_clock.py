"""The method's clock holds all of its work (init, every step, output); compilation is kept off it.

Compilation is read from the framework's own compile events (``clock_compiles``), never timed.
"""

from __future__ import annotations

import numpy as np
import pytest
from _runs import run_single

from harness.spec import Budget, MethodSpec


@pytest.mark.parametrize("framework", ["torch", "jax"])
def test_work_done_in_init_is_on_the_clock(full_catalog, framework):
    row = run_single(full_catalog, "quadratic", "solve-in-init", framework).row
    assert row["status"] == "reached_target" and row["steps_to_target"] == 5  # the first evaluation
    assert row["calls_grad"] == 400  # every call counted, none in the warm-up
    assert row["init_s"] > 0 and row["time_to_target_s"] >= row["init_s"]


@pytest.mark.parametrize("framework", ["torch", "jax"])
def test_work_done_in_output_is_on_the_clock(full_catalog, framework):
    row = run_single(full_catalog, "quadratic", "solve-in-output", framework).row
    assert row["status"] == "reached_target" and row["steps_to_target"] == 5
    assert row["calls_grad"] == 400
    assert row["output_s"] > 0 and row["time_to_target_s"] >= row["output_s"]


@pytest.mark.parametrize("framework", ["torch", "jax"])
def test_a_target_reached_at_the_first_step_takes_time(full_catalog, framework):
    result = run_single(full_catalog, "quadratic", "newton-once", framework, budget=Budget(steps=1))
    row = result.row
    assert row["status"] == "reached_target" and row["steps_to_target"] == 1
    assert row["time_to_target_s"] > 0 and row["time_to_target_s"] == result.trace[-1]["time_s"]


@pytest.mark.parametrize(
    ("method", "task", "program"),
    [
        ("gd", "logreg", "jit"),  # optax.sgd
        ("heavy-ball", "logreg", "jit"),
        ("adam", "logreg", "jit"),  # compiled twice at step 2 before AOT compilation (committed state)
        ("nadam", "logreg", "jit"),
        ("eg", "nnls", "jit"),  # module-written, declared jit: true
        ("muon", "teacher-student", "jit"),  # module-written; its state's step count changes type once
        ("gns-newton", "logreg", "eager"),  # module-written, value-dependent control flow: warm-up
    ],
)
def test_no_compilation_inside_the_timed_region(full_catalog, method, task, program):
    row = run_single(full_catalog, task, method, "jax", budget=Budget(steps=12)).row
    assert row["status"] in ("completed", "reached_target"), row["error"]
    assert row["program"] == program and row["program_fallback"] is None
    assert row["clock_compiles"] == 0 and row["clock_compile_s"] == 0.0
    assert row["compile_s"] > 0


def test_compilation_on_the_clock_is_counted_and_flagged(full_catalog):
    row = run_single(full_catalog, "quadratic", "compiles-every-step", "jax", budget=Budget(steps=6)).row
    assert row["status"] == "completed"
    assert row["clock_compiles"] >= 6 and row["clock_compile_s"] > 0


def test_a_method_declared_pure_that_cannot_be_traced_runs_eagerly_and_says_why(full_catalog):
    row = run_single(full_catalog, "quadratic", "not-traceable", "jax", budget=Budget(steps=5)).row
    assert row["status"] == "completed" and row["program"] == "eager"
    assert "ConcretizationTypeError" in row["program_fallback"]


def _eager_and_jit(monkeypatch, catalog, task, method, **options):
    jit = run_single(catalog, task, method, "jax", **options)
    with monkeypatch.context() as patch:
        patch.setattr(MethodSpec, "is_pure", lambda self, framework: False)
        eager = run_single(catalog, task, method, "jax", **options)
    assert (jit.row["program"], eager.row["program"]) == ("jit", "eager")
    return jit, eager


@pytest.mark.parametrize(("method", "task", "params"), [("adam", "logreg", {}), ("adam", "logreg", {"batch_size": 100}),
                                                         ("eg", "nnls", {}), ("winsorized-gd", "logreg", {"batch_size": 100})])
def test_a_compiled_program_runs_the_eager_method_exactly(full_catalog, monkeypatch, method, task, params):
    """Same iterates, same counts, same minibatches (drawn outside the compiled step, in eager order)."""
    jit, eager = _eager_and_jit(monkeypatch, full_catalog, task, method, params=params, budget=Budget(steps=25))
    assert [p["step"] for p in jit.trace] == [p["step"] for p in eager.trace]
    np.testing.assert_allclose([p["objective"] for p in jit.trace], [p["objective"] for p in eager.trace], rtol=1e-12)
    calls = [c for c in jit.row if c.startswith("calls_")]
    assert {c: jit.row[c] for c in calls} == {c: eager.row.get(c) for c in calls}


def test_a_compiled_program_keeps_the_call_budget(full_catalog):
    row = run_single(full_catalog, "logreg", "adam", "jax", budget=Budget(steps=100, oracle_calls=7)).row
    assert row["status"] == "completed" and (row["steps"], row["oracle_calls"], row["calls_grad"]) == (7, 7, 7)


@pytest.mark.parametrize("framework", ["torch", "jax"])
def test_an_offline_phase_is_reported_apart(full_catalog, framework):
    row = run_single(full_catalog, "quadratic", "pretrained", framework, budget=Budget(steps=5)).row
    assert row["status"] == "completed", row["error"]
    assert row["offline_s"] >= 0.2 and row["timed_s"] < 0.2


def test_the_time_budget_leaves_the_offline_phase_out(full_catalog):
    # Training for 3 s against a 2 s budget: the run still takes its 5 steps (its own time is far below 2 s).
    row = run_single(full_catalog, "quadratic", "pretrained", "torch", budget=Budget(steps=5, seconds=2),
                     hyperparameters={"offline_sleep_s": 3.0}).row
    assert row["status"] == "completed" and row["steps"] == 5, row["error"]
    assert row["offline_s"] >= 3.0 > 2.0 and row["wall_s"] > 3.0
