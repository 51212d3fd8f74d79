"""nnls: data, the scipy.optimize.nnls reference, feasibility-aware metrics."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import scipy.optimize

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _content import load_task, make_oracle, make_problem  # noqa: E402


def test_declaration() -> None:
    task, _ = load_task("constrained", "nnls")
    assert task.paper.startswith("Dale meets Langevin") and set(task.implementations) == {"torch", "jax"}
    assert task.target is not None and task.target.metric == "suboptimality"


def test_reference_is_a_kkt_point() -> None:
    problem = make_problem("constrained", "nnls", "torch")
    A, b, x = problem.A_np, problem.b_np, problem.x_star
    assert A.shape == (200, 50) and np.all(x >= 0)
    g = 2 * A.T @ (A @ x - b)
    assert np.abs(g[x > 0]).max() < 1e-10  # stationary on the free coordinates
    assert g[x == 0].min() > -1e-10  # non-negative multipliers on the active ones
    assert 10 <= int(np.sum(x == 0)) <= 40  # the constraint matters
    # A different solver of the same problem (bounded least squares) agrees.
    other = scipy.optimize.lsq_linear(A, b, bounds=(0, np.inf), tol=1e-14, method="bvls")
    assert np.linalg.norm(other.x - x) < 1e-10 and problem.f_star == pytest.approx(2 * other.cost, abs=1e-12)


@pytest.mark.parametrize("framework", ["torch", "jax"])
def test_metrics_use_the_projection(framework: str) -> None:
    problem = make_problem("constrained", "nnls", framework)
    oracle = make_oracle("constrained", "nnls", problem, framework)
    unconstrained = np.linalg.lstsq(problem.A_np, problem.b_np, rcond=None)[0]
    metrics = problem.evaluate(problem.backend.asarray(unconstrained))
    # The unconstrained minimizer has a lower ||Ax - b||^2 but scores at its projection, above f*.
    assert float(oracle.value(problem.backend.asarray(unconstrained))) < problem.f_star
    assert metrics["objective"] >= problem.f_star and metrics["infeasibility"] > 0.1
    at_star = problem.evaluate(problem.backend.asarray(problem.x_star))
    assert at_star["objective"] == pytest.approx(problem.f_star, abs=1e-12)
    assert at_star["infeasibility"] == 0 and at_star["distance"] == 0 and at_star["kkt_residual"] < 1e-10


def test_start_is_strictly_feasible_and_seeded() -> None:
    problem = make_problem("constrained", "nnls", "torch")
    a, b = np.asarray(problem.init_params(0)), np.asarray(problem.init_params(1))
    assert a.min() >= 0.5 and not np.array_equal(a, b)
