"""gns-newton with hessian = exact | gauss-newton | fisher: the curvature matrices against numpy,
and convergence of each kind to the scipy f* (1e-8) on logreg and softmax."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import scipy.special

from harness.catalog import Catalog
from harness.plan import make_plan
from harness.spec import SuiteEntry, SuiteSpec

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tasks"))
from _content import backend, load_task, make_method, make_oracle, make_problem, run_method  # noqa: E402


KINDS = {"exact": "hessian", "gauss-newton": "gauss_newton", "fisher": "fisher"}


def numpy_data_grads(task: str, problem, w: np.ndarray) -> np.ndarray:
    """Per-example gradients of the data terms (no penalty), closed form."""
    if task == "logreg":
        margins = problem.y_np * (problem.X_np @ w)
        return (-problem.y_np * scipy.special.expit(-margins))[:, None] * problem.X_np
    logits = problem.X_np @ w.reshape(problem.features, problem.classes)
    residual = scipy.special.softmax(logits, axis=1) - np.eye(problem.classes)[problem.labels_np]
    return (problem.X_np[:, :, None] * residual[:, None, :]).reshape(len(residual), -1)


@pytest.mark.parametrize("framework", ["torch", "jax"])
@pytest.mark.parametrize("task", ["logreg", "softmax"])
def test_curvature_matrices_match_numpy(task: str, framework: str) -> None:
    problem = make_problem("convex", task, framework)
    oracle = make_oracle("convex", task, problem, framework)
    module = sys.modules[type(problem).__module__]
    params = problem.init_params(1)
    w = np.asarray(backend(framework).to_numpy(params))
    extra = (problem.classes,) if task == "softmax" else ()
    hessian = module.hessian(w, problem.X_np, problem.l2, *extra)  # the reference's (numpy) closed form
    # Logits linear in the parameters: the Gauss-Newton matrix is the Hessian.
    assert np.abs(np.asarray(oracle.gauss_newton(params)) - hessian).max() < 1e-13
    G = numpy_data_grads(task, problem, w)
    fisher = G.T @ G / len(G) + 2 * problem.l2 * np.eye(problem.dim)
    assert np.abs(np.asarray(oracle.fisher(params)) - fisher).max() < 1e-13
    assert np.abs(fisher - hessian).max() > 1e-3  # a genuine approximation


@pytest.mark.parametrize("kind", sorted(KINDS))
@pytest.mark.parametrize("task", ["logreg", "softmax"])
def test_each_kind_reaches_the_scipy_optimum(task: str, kind: str) -> None:
    spec, _ = load_task("convex", task)
    problem = make_problem("convex", task, "torch")
    oracle = make_oracle("convex", task, problem, "torch")
    run = run_method(make_method("second_order", "gns-newton", "torch", hessian=kind), problem, oracle, "torch",
                     spec.budget.steps, stop_below=1e-8)
    assert run["reached"] is not None, f"{kind} on {task}: {run['objective'][-1] - problem.f_star:.3g}"
    assert 0 <= run["objective"][-1] - problem.f_star < 1e-8
    assert oracle.counts[KINDS[kind]] == run["reached"]  # one curvature matrix per step
    assert set(oracle.counts) == {"value_and_grad", KINDS[kind]}


@pytest.mark.parametrize("task, kind", [("logreg", "fisher"), ("softmax", "gauss-newton")])
def test_jax_kinds_reach_the_optimum(task: str, kind: str) -> None:
    spec, _ = load_task("convex", task)
    problem = make_problem("convex", task, "jax")
    oracle = make_oracle("convex", task, problem, "jax")
    run = run_method(make_method("second_order", "gns-newton", "jax", hessian=kind), problem, oracle, "jax",
                     spec.budget.steps, stop_below=1e-8)
    assert run["reached"] is not None


def test_kind_needs_the_task_to_provide_it() -> None:
    catalog = Catalog.load()
    suite = SuiteSpec(id="gn", entries=(SuiteEntry(tasks=("nnls",), methods=("gns-newton",),
                                                   hyperparameters={"gns-newton": {"hessian": "fisher"}}),))
    plan = make_plan(catalog, suite=suite)  # the plan pairs a kind only with tasks providing its call
    assert plan.runs == []
    assert {s.reason for s in plan.skipped} == {"the task does not provide fisher"}
