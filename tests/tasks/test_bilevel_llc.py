"""bilevel-llc: the closed-form solution against scipy SLSQP on the KKT reformulation, the terms and their Jacobian.

The reference is computed here: the lower problem is convex in ``y`` with one affine constraint,
so its KKT conditions (stationarity in ``y``, primal and dual feasibility, complementarity)
replace it, and SLSQP solves the single-level problem ``min F`` over ``(x, y, mu)``. The
terms are checked against the formulas written out, the Jacobian rows against central
differences, and torch against jax.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import scipy.optimize

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _content import load_task, make_oracle, make_problem  # noqa: E402

FAMILY, TASK = "bilevel", "bilevel-llc"
FRAMEWORKS = ("torch", "jax")


def kkt_reference(n: int) -> np.ndarray:
    """``(x, y1, y2, mu)`` solving ``min F`` s.t. the lower problem's KKT conditions, by SLSQP.

    Stationarity ``y1 - x - mu 1 = 0`` (y1) and ``1 - mu = 0`` (y2), feasibility
    ``s = 1.x + 1.y1 + 1.y2 >= 0``, ``mu >= 0`` and complementarity ``mu s <= 0`` (with the two
    signs, ``mu s = 0``); the start is all ones.
    """
    dim = 3 * n

    def upper(v: np.ndarray) -> float:
        x, y1, y2 = v[:n], v[n:2 * n], v[2 * n:dim]
        return 0.5 * float(np.sum((x - y2) ** 2) + np.sum((y1 - 1) ** 2))

    def upper_grad(v: np.ndarray) -> np.ndarray:
        x, y1, y2 = v[:n], v[n:2 * n], v[2 * n:dim]
        return np.concatenate([x - y2, y1 - 1, y2 - x, [0.0]])

    eye, zero = np.eye(n), np.zeros((n, n))
    stationarity = np.vstack([np.hstack([-eye, eye, zero, -np.ones((n, 1))]), np.r_[np.zeros(dim), -1.0][None]])
    rhs = np.r_[np.zeros(n), -1.0]
    total = lambda v: v[:dim].sum()  # noqa: E731
    constraints = [
        {"type": "eq", "fun": lambda v: stationarity @ v - rhs, "jac": lambda v: stationarity},
        {"type": "ineq", "fun": lambda v: np.array([total(v), v[dim], -v[dim] * total(v)]),
         "jac": lambda v: np.vstack([np.r_[np.ones(dim), 0.0], np.r_[np.zeros(dim), 1.0],
                                     -np.r_[np.full(dim, v[dim]), total(v)]])},
    ]
    result = scipy.optimize.minimize(upper, np.ones(dim + 1), jac=upper_grad, constraints=constraints,
                                     method="SLSQP", options={"ftol": 1e-14, "maxiter": 1000})
    assert result.success, result.message
    return result.x


def hand_terms(w: np.ndarray, n: int) -> np.ndarray:
    """``[F, f, g]`` written out from the task's definition (numpy)."""
    x, y1, y2 = w[:n], w[n:2 * n], w[2 * n:]
    return np.array([
        0.5 * np.dot(x - y2, x - y2) + 0.5 * np.dot(y1 - 1, y1 - 1),
        0.5 * np.dot(y1, y1) - np.dot(x, y1) + np.sum(y2),
        -(np.sum(x) + np.sum(y1) + np.sum(y2)),
    ])


def test_declaration() -> None:
    task, _ = load_task(FAMILY, TASK)
    assert task.paper.startswith("Constrained Bi-Level Optimization") and set(task.implementations) == set(FRAMEWORKS)
    assert "bilevel_grads" in task.provides and task.target.metric == "relative_error" and task.target.value <= 0.05


@pytest.mark.parametrize("n", [10, 100])
def test_closed_form_is_the_kkt_reference(n: int) -> None:
    problem = make_problem(FAMILY, TASK, "torch", n=n)
    reference = kkt_reference(n)
    assert np.abs(reference[:3 * n] - problem.solution).max() < 1e-8
    assert reference[3 * n] == pytest.approx(1.0, abs=1e-8)  # mu = 1
    assert np.abs(problem.solution[:n] + 0.3).max() == 0  # x* = -0.3 1
    at_star = problem.evaluate(problem.backend.asarray(np.array(reference[:3 * n])))
    assert at_star["relative_error"] < 1e-8 and abs(at_star["lower_gap"]) < 1e-8
    assert at_star["constraint_violation"] < 1e-8 and at_star["objective"] == pytest.approx(n / 20, rel=1e-8)


def test_lower_gap_is_the_gap_to_a_numerical_lower_solution() -> None:
    """``lower_gap`` against SLSQP on the lower problem itself at a random ``x``."""
    n = 10
    problem = make_problem(FAMILY, TASK, "torch", n=n)
    rng = np.random.default_rng(5)
    x, y = rng.standard_normal(n), rng.standard_normal(2 * n) + 1.0
    lower = lambda v: 0.5 * v[:n] @ v[:n] - x @ v[:n] + v[n:].sum()  # noqa: E731
    best = scipy.optimize.minimize(lower, np.ones(2 * n), method="SLSQP", options={"ftol": 1e-14},
                                   constraints=[{"type": "ineq", "fun": lambda v: x.sum() + v.sum()}])
    w = np.concatenate([x, y])
    gap = problem.evaluate(problem.backend.asarray(w))["lower_gap"]
    assert gap == pytest.approx(lower(y) - best.fun, abs=1e-7) and gap > 0


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_terms_and_jacobian(framework: str) -> None:
    n = 10
    problem = make_problem(FAMILY, TASK, framework, n=n)
    oracle = make_oracle(FAMILY, TASK, problem, framework)
    assert (oracle.upper_dimension, oracle.n_constraints, oracle.dimension) == (n, 1, 3 * n)
    to_numpy = problem.backend.to_numpy
    for seed in range(2):
        w = np.random.default_rng(seed).standard_normal(3 * n)
        values, jac = oracle.bilevel_grads(problem.backend.asarray(w))
        values, jac = np.asarray(to_numpy(values)), np.asarray(to_numpy(jac))
        np.testing.assert_allclose(values, hand_terms(w, n), rtol=1e-12, atol=1e-12)
        assert float(problem.loss(problem.backend.asarray(w))) == pytest.approx(values[0], rel=1e-13)
        h = 1e-5
        fd = np.stack([(hand_terms(w + h * e, n) - hand_terms(w - h * e, n)) / (2 * h) for e in np.eye(3 * n)], axis=1)
        np.testing.assert_allclose(jac, fd, atol=1e-7)
    assert oracle.counts["bilevel_grads"] == 2


def test_torch_equals_jax_and_the_start() -> None:
    problems = {fw: make_problem(FAMILY, TASK, fw) for fw in FRAMEWORKS}
    starts = {fw: np.asarray(p.backend.to_numpy(p.init_params(3))) for fw, p in problems.items()}
    np.testing.assert_array_equal(starts["torch"], starts["jax"])
    np.testing.assert_array_equal(starts["torch"], np.random.default_rng(3).standard_normal(300))
    assert not np.array_equal(starts["torch"], np.asarray(problems["torch"].backend.to_numpy(problems["torch"].init_params(4))))
    metrics = {fw: p.evaluate(p.init_params(3)) for fw, p in problems.items()}
    assert metrics["torch"] == metrics["jax"]
    terms = {fw: np.asarray(p.backend.to_numpy(p.bilevel_terms(p.init_params(3)))) for fw, p in problems.items()}
    np.testing.assert_allclose(terms["torch"], terms["jax"], rtol=1e-13)
    # an infeasible point: the violation is max(g, 0) and its lower gap may be negative
    w = -np.ones(300)
    m = problems["torch"].evaluate(problems["torch"].backend.asarray(w))
    assert m["constraint_violation"] == pytest.approx(300.0) and m["lower_gap"] < 0
