"""rastrigin and ackley: the formulas, the analytic optimum, the batched value oracle and its count."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _content import backend, load_task, make_oracle, make_problem  # noqa: E402

FAMILY = "global"
TASKS = ("rastrigin", "ackley")
FRAMEWORKS = ("torch", "jax")


def _by_hand(task: str, x: np.ndarray) -> float:
    """The textbook formulas, term by term (not the module's vectorized code)."""
    d = len(x)
    if task == "rastrigin":
        return sum(xi * xi - 10 * math.cos(2 * math.pi * xi) + 10 for xi in x) / d
    return (-20 * math.exp(-0.2 * math.sqrt(sum(xi * xi for xi in x) / d))
            - math.exp(sum(math.cos(2 * math.pi * xi) for xi in x) / d) + 20 + math.e)


@pytest.mark.parametrize("task", TASKS)
def test_declaration(task: str) -> None:
    spec, _ = load_task(FAMILY, task)
    assert spec.target.metric == "success" and spec.target.value == 1.0
    assert list(spec.parameters["d"].choices) == [2, 20] and set(spec.implementations) == set(FRAMEWORKS)


@pytest.mark.parametrize("framework", FRAMEWORKS)
@pytest.mark.parametrize("task", TASKS)
def test_values_match_the_formula_and_the_optimum_is_zero_at_the_origin(task: str, framework: str) -> None:
    problem = make_problem(FAMILY, task, framework)
    oracle = make_oracle(FAMILY, task, problem, framework)
    points = np.random.default_rng(1).normal(0, 2, size=(50, 20))
    points[0] = 0.0
    got = np.asarray(backend(framework).to_numpy(oracle.values(backend(framework).asarray(points))))
    expected = np.array([_by_hand(task, p) for p in points])
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)
    assert dict(oracle.counts) == {"value": 50}  # one batched call, one value per particle
    assert abs(got[0]) < 1e-12 and (got[1:] > 0).all()  # f* = 0 at 0, positive elsewhere
    single = float(backend(framework).to_numpy(oracle.value(backend(framework).asarray(points[3]))))
    assert single == pytest.approx(expected[3], rel=1e-12)
    assert problem.f_star == 0.0 and np.array_equal(problem.x_star, np.zeros(20))


@pytest.mark.parametrize("task", TASKS)
def test_local_minima_trap_the_lattice_and_success_marks_the_global_basin(task: str) -> None:
    import scipy.optimize

    problem = make_problem(FAMILY, task, "torch")
    # A local solve from the integer point (1, ..., 1) stays at a non-global minimum near it.
    fun = lambda x: _by_hand(task, x)  # noqa: E731
    local = scipy.optimize.minimize(fun, np.ones(20), method="L-BFGS-B", options={"gtol": 1e-10})
    assert local.fun > 0.5 and np.abs(local.x).max() > 0.5
    assert problem.evaluate(problem.backend.asarray(local.x))["success"] == 0.0
    assert problem.evaluate(problem.backend.asarray(np.full(20, 0.2)))["success"] == 1.0


def test_the_start_is_n_3_1_from_the_seed() -> None:
    problem = make_problem(FAMILY, "rastrigin", "jax")
    starts = np.array([np.asarray(problem.init_params(s)) for s in range(200)])
    assert abs(starts.mean() - 3.0) < 0.05 and abs(starts.std() - 1.0) < 0.05
    np.testing.assert_array_equal(np.asarray(problem.init_params(4)),
                                  np.asarray(make_problem(FAMILY, "rastrigin", "torch").init_params(4)))
