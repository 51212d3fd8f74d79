"""teacher-student: data, the closed-form optimum f* = 0, hooks against a numpy network."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from _content import load_task, make_oracle, make_problem  # noqa: E402
from _runs import run_single  # noqa: E402



def test_declaration_and_layout() -> None:
    task, _ = load_task("dynamics", "teacher-student")
    assert "Curl Descent" in task.paper
    problem = make_problem("dynamics", "teacher-student", "torch")
    assert problem.layout == (("W", (50, 50)), ("a", (1, 50)))
    assert problem.dim == sum(int(np.prod(s)) for _, s in problem.layout) == problem.init_params(0).shape[0]


@pytest.mark.parametrize("framework", ["torch", "jax"])
def test_the_embedded_teacher_attains_f_star_zero(framework: str) -> None:
    problem = make_problem("dynamics", "teacher-student", framework)
    oracle = make_oracle("dynamics", "teacher-student", problem, framework)
    data = problem.data
    W = np.zeros((50, 50))
    a = np.zeros(50)
    W[:10], a[:10] = data.teacher_W, data.teacher_a  # the other 40 units have zero readout
    params = problem.backend.asarray(np.concatenate([W.ravel(), a]))
    assert problem.f_star == 0.0
    # Zero up to the rounding of tanh in each framework.
    assert abs(float(oracle.value(params))) < 1e-28
    metrics = problem.evaluate(params)
    assert metrics["objective"] < 1e-28 and metrics["test_error"] < 1e-28 and metrics["grad_norm"] < 1e-14


@pytest.mark.parametrize("framework", ["torch", "jax"])
def test_loss_and_gradient_match_numpy_backprop(framework: str) -> None:
    problem = make_problem("dynamics", "teacher-student", framework)
    oracle = make_oracle("dynamics", "teacher-student", problem, framework)
    params = problem.init_params(4)
    W, a = problem.unflatten(np.asarray(problem.backend.to_numpy(params)))
    X, y = problem.data.X, problem.data.y
    h = np.tanh(X @ W.T)
    r = h @ a[0] - y
    grad = np.concatenate([(((r[:, None] * a) * (1 - h**2)).T @ X / len(y)).ravel(), h.T @ r / len(y)])
    assert float(oracle.value(params)) == pytest.approx(0.5 * np.mean(r**2), rel=1e-13)
    assert np.abs(np.asarray(oracle.grad(params)) - grad).max() < 1e-14


def test_data_are_seeded_and_inputs_have_variance_one_half() -> None:
    data = make_problem("dynamics", "teacher-student", "torch").data
    assert data.X.shape == (1000, 50) and data.X_test.shape == (2000, 50)
    assert np.var(data.X_test) == pytest.approx(0.5, rel=0.02)
    other = make_problem("dynamics", "teacher-student", "torch", data_seed=1).data
    assert not np.array_equal(data.teacher_W, other.teacher_W)
    noisy = make_problem("dynamics", "teacher-student", "torch", noise=0.1)
    assert noisy.f_star is None and np.array_equal(noisy.data.X, data.X)


def test_a_noisy_variant_has_no_reference_and_completes_without_suboptimality(full_catalog) -> None:
    """With label noise f* is unknown: the run completes, its suboptimality null, its target unreachable."""
    from harness.spec import Budget

    result = run_single(full_catalog, "teacher-student", "gd", "torch", params={"noise": 0.1}, hyperparameters={"lr": 0.05},
                        budget=Budget(steps=10, seconds=60))
    assert result.status == "completed", result.row["error"]
    assert result.row["suboptimality"] is None and result.row["objective"] > 0
    assert all(point["suboptimality"] is None for point in result.trace)
