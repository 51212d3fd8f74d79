"""The library baselines (gd, heavy-ball, adam, lbfgs): torch and optax agree, and they converge.

Each test drives ``init`` / ``step`` itself on the convex tasks, so it checks the method
declarations and the backends' library wrappers without the run loop.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tasks"))
from _content import load_method, load_task, make_method, make_oracle, make_problem, rel_diff, run_method  # noqa: E402

BASELINES = ("gd", "heavy-ball", "adam", "lbfgs")


@pytest.mark.parametrize("method_id", BASELINES)
def test_declaration(method_id: str) -> None:
    method, _ = load_method("baselines", method_id)
    assert method.id == method_id and method.family == "baselines"
    assert method.paper.startswith("baseline")
    expected = {"lbfgs": {"torch"}}.get(method_id, {"torch", "jax"})
    assert set(method.implementations) == expected
    for framework in method.implementations:
        make_method("baselines", method_id, framework)  # the optimizer resolves, its kwargs are accepted


def _trace(method_id: str, framework: str, steps: int, **overrides) -> dict:
    problem = make_problem("convex", "logreg", framework, **overrides)
    oracle = make_oracle("convex", "logreg", problem, framework)
    return run_method(make_method("baselines", method_id, framework), problem, oracle, framework, steps)


def test_gd_same_trace_in_torch_and_jax() -> None:
    torch_run, jax_run = _trace("gd", "torch", 50), _trace("gd", "jax", 50)
    assert rel_diff(torch_run["objective"], jax_run["objective"]) < 1e-6
    # Not a trivial agreement: the 50 steps make real progress.
    assert torch_run["objective"][-1] < torch_run["objective"][0] - 0.2


@pytest.mark.parametrize("method_id", ["heavy-ball", "adam"])
def test_torch_and_optax_agree_step_by_step(method_id: str) -> None:
    torch_run, jax_run = _trace(method_id, "torch", 30), _trace(method_id, "jax", 30)
    for step, (a, b) in enumerate(zip(torch_run["iterates"], jax_run["iterates"], strict=True)):
        assert rel_diff(a, b) < 1e-8, f"{method_id}: iterates differ at step {step}"
    assert rel_diff(torch_run["objective"], jax_run["objective"]) < 1e-8


@pytest.mark.parametrize("framework", ["torch", "jax"])
def test_gd_reaches_target_on_default_logreg(framework: str) -> None:
    task, _ = load_task("convex", "logreg")
    problem = make_problem("convex", "logreg", framework)
    oracle = make_oracle("convex", "logreg", problem, framework)
    method = make_method("baselines", "gd", framework)
    run = run_method(method, problem, oracle, framework, task.budget.steps, stop_below=task.target.value)
    assert run["reached"] is not None and run["reached"] <= task.budget.steps
    assert oracle.counts == {"grad": run["reached"]}  # one gradient per step, nothing else


@pytest.mark.parametrize(
    "task_id, dataset",
    [("logreg", "synthetic"), ("logreg", "breast_cancer"), ("logreg", "digits"), ("softmax", "blobs")],
)
def test_lbfgs_reaches_target(task_id: str, dataset: str) -> None:
    task, _ = load_task("convex", task_id)
    problem = make_problem("convex", task_id, "torch", dataset=dataset)
    oracle = make_oracle("convex", task_id, problem, "torch")
    method = make_method("baselines", "lbfgs", "torch")
    run = run_method(method, problem, oracle, "torch", task.budget.steps, stop_below=task.target.value)
    assert run["reached"] is not None, f"lbfgs stalled at f - f* = {run['objective'][-1] - problem.f_star:.3g}"
    assert set(oracle.counts) == {"value_and_grad"}  # the closure, line search included, goes through the oracle
    assert np.all(np.diff(run["objective"]) <= 1e-15)  # the strong-Wolfe line search only descends
