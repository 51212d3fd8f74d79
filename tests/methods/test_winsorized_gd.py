"""winsorized-gd: coordinate-wise percentile clipping of per-example gradients, against numpy."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import scipy.special

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tasks"))
from _content import backend, load_method, load_task, make_method, make_oracle, make_problem, run_method  # noqa: E402



def numpy_per_example(problem, w: np.ndarray) -> np.ndarray:
    """Gradients of f_i = log(1 + exp(-y_i x_i.w + eps ||w||)) + l2 ||w||^2 (robust-logreg)."""
    X, y, eps, l2 = problem.X_np, problem.y_np, problem.eps, problem.l2
    u = -y * (X @ w) + eps * np.linalg.norm(w)
    return scipy.special.expit(u)[:, None] * (-y[:, None] * X + eps * w / np.linalg.norm(w)) + 2 * l2 * w


def test_declaration() -> None:
    method, _ = load_method("robust", "winsorized-gd")
    assert method.paper == "On the Generalization Mystery in Deep Learning"
    assert method.requires == ("per_example_grads",)


@pytest.mark.parametrize("framework", ["torch", "jax"])
@pytest.mark.parametrize("percentile", [0.0, 5.0, 20.0])
def test_step_matches_numpy_winsorized_mean(framework: str, percentile: float) -> None:
    problem = make_problem("convex", "robust-logreg", framework, dataset="breast_cancer")
    oracle = make_oracle("convex", "robust-logreg", problem, framework)
    method = make_method("robust", "winsorized-gd", framework, lr=0.5, percentile=percentile)
    params = problem.init_params(0)
    new, _ = method.step(params, method.init(params, oracle), oracle)
    w = np.asarray(backend(framework).to_numpy(params))
    G = numpy_per_example(problem, w)
    low, high = np.percentile(G, [percentile, 100 - percentile], axis=0)
    expected = w - 0.5 * np.clip(G, low, high).mean(0)
    assert np.abs(np.asarray(backend(framework).to_numpy(new)) - expected).max() < 1e-13
    if percentile == 0.0:  # no clipping: a gradient-descent step
        assert np.abs(expected - (w - 0.5 * G.mean(0))).max() < 1e-15
    assert oracle.counts == {"per_example_grads": 1}


def test_converges_near_the_optimum_and_clipping_biases_it() -> None:
    task, _ = load_task("convex", "robust-logreg")
    problem = make_problem("convex", "robust-logreg", "torch")
    plain = run_method(make_method("robust", "winsorized-gd", "torch", percentile=0.0), problem,
                       make_oracle("convex", "robust-logreg", problem, "torch"), "torch", task.budget.steps,
                       stop_below=task.target.value)
    assert plain["reached"] is not None
    clipped = run_method(make_method("robust", "winsorized-gd", "torch"), problem,
                         make_oracle("convex", "robust-logreg", problem, "torch"), "torch", 150)
    gap = clipped["objective"][-1] - problem.f_star
    # Winsorizing changes the fixed point slightly (a robust, biased estimate), not the progress.
    assert 0 < gap < 1e-2 and clipped["objective"][-1] < clipped["objective"][0] - 0.1
