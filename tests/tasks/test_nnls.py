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


def _natural_residual(A: np.ndarray, b: np.ndarray, x: np.ndarray) -> float:
    """Plain numpy, written out coordinate by coordinate: ||p - max(p - grad f(p), 0)|| at p = max(x, 0)."""
    p = np.array([max(v, 0.0) for v in x])
    g = 2.0 * A.T @ (A @ p - b)
    return float(np.sqrt(sum((p_i - max(p_i - g_i, 0.0)) ** 2 for p_i, g_i in zip(p, g))))


def _projected_gradient(A: np.ndarray, b: np.ndarray, x: np.ndarray) -> float:
    """The former kkt_residual: the projected gradient at max(x, 0), which switches at x_i = 0."""
    p = np.maximum(x, 0.0)
    g = 2.0 * A.T @ (A @ p - b)
    return float(np.linalg.norm(np.where(p > 0.0, g, np.minimum(g, 0.0))))


def _projected_iterate(framework: str, problem, x: np.ndarray):
    """``max(x, 0)`` computed by the framework, as a projected method would: torch keeps a
    subnormal coordinate, XLA flushes it to zero."""
    a = problem.backend.asarray(x)
    if framework == "torch":
        import torch

        return torch.clamp(a, min=0.0)
    import jax.numpy as jnp

    return jnp.maximum(a, 0.0)


def test_kkt_residual_agrees_across_frameworks_on_a_subnormal_iterate() -> None:
    problems = {fw: make_problem("constrained", "nnls", fw) for fw in ("torch", "jax")}
    A, b, x_star = problems["torch"].A_np, problems["torch"].b_np, problems["torch"].x_star
    active = np.flatnonzero(x_star == 0)
    g = 2 * A.T @ (A @ x_star - b)
    i = int(active[np.argmax(g[active])])  # the active coordinate with the largest multiplier
    x = np.array(x_star)
    x[i] = 5e-324  # the smallest subnormal: the iterate from the issue, a hair inside the orthant
    iterates = {fw: _projected_iterate(fw, p, x) for fw, p in problems.items()}
    seen = {fw: np.asarray(p.backend.to_numpy(iterates[fw]), dtype=np.float64) for fw, p in problems.items()}
    assert seen["torch"][i] == 5e-324 and seen["jax"][i] == 0.0  # the frameworks' iterates differ there
    reported = {fw: p.evaluate(iterates[fw])["kkt_residual"] for fw, p in problems.items()}
    assert reported["torch"] == pytest.approx(reported["jax"], rel=1e-9, abs=1e-300)
    assert reported["torch"] < 1e-10  # both are, to rounding, at the KKT point x*
    # The former definition reported the multiplier g_i for torch and about 0 for XLA.
    old = {fw: _projected_gradient(A, b, seen[fw]) for fw in seen}
    assert old["torch"] == pytest.approx(g[i], rel=1e-6) and old["torch"] > 1.0 and old["jax"] < 1e-10


@pytest.mark.parametrize("framework", ["torch", "jax"])
def test_kkt_residual_is_the_natural_residual(framework: str) -> None:
    problem = make_problem("constrained", "nnls", framework)
    A, b = problem.A_np, problem.b_np
    rng = np.random.default_rng(3)
    points = [
        problem.x_star,
        np.asarray(problem.init_params(0)),  # strictly feasible start
        np.linalg.lstsq(A, b, rcond=None)[0],  # infeasible: measured at its projection
        problem.x_star + 1e-3 * rng.standard_normal(problem.dim),  # near x*, on both sides of the boundary
    ]
    for x in points:
        got = problem.evaluate(problem.backend.asarray(np.array(x)))["kkt_residual"]
        assert got == pytest.approx(_natural_residual(A, b, np.asarray(x)), rel=1e-12, abs=1e-13)
    assert problem.evaluate(problem.backend.asarray(np.array(points[1])))["kkt_residual"] > 1.0
