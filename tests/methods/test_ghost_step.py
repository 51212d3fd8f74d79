"""ghost-step: tau = min(lr ||g||, pi / Delta_a) with a = J_z g/||g||, against numpy on softmax."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pytest
import scipy.special

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tasks"))
from _content import backend, load_method, make_method, make_oracle, make_problem  # noqa: E402



def numpy_gradient(problem, W: np.ndarray, rows: np.ndarray | None = None) -> np.ndarray:
    X = problem.X_np if rows is None else problem.X_np[rows]
    labels = problem.labels_np if rows is None else problem.labels_np[rows]
    residual = scipy.special.softmax(X @ W, axis=1) - np.eye(problem.classes)[labels]
    return X.T @ residual / len(X) + 2 * problem.l2 * W


def test_declarations() -> None:
    ghost, _ = load_method("softmax_geometry", "ghost-step")
    control, _ = load_method("softmax_geometry", "gd-spike")
    assert ghost.paper == control.paper and ghost.paper.startswith("Ghosts of Softmax")
    assert set(ghost.requires) == {"grad", "jvp_logits"} and control.requires == ("grad",)
    assert ghost.hyperparameters == control.hyperparameters


@pytest.mark.parametrize("framework", ["torch", "jax"])
@pytest.mark.parametrize("lr", [0.1, 3000.0])
def test_step_is_capped_at_the_ghost_radius(framework: str, lr: float) -> None:
    problem = make_problem("convex", "softmax", framework)
    oracle = make_oracle("convex", "softmax", problem, framework)
    method = make_method("softmax_geometry", "ghost-step", framework, lr=lr)
    params = problem.init_params(0)
    new, state = method.step(params, method.init(params, oracle), oracle)
    W = np.asarray(backend(framework).to_numpy(params)).reshape(problem.features, problem.classes)
    g = numpy_gradient(problem, W)
    u = -g / np.linalg.norm(g)
    slopes = problem.X_np @ u  # logits X W move along u at rate X U
    rho = math.pi / np.ptp(slopes, axis=1).max()
    tau = min(lr * np.linalg.norm(g), rho)
    expected = W + tau * u
    assert np.abs(np.asarray(backend(framework).to_numpy(new)).reshape(W.shape) - expected).max() < 1e-12
    assert (tau == rho) == (lr == 3000.0)  # the cap binds only for the huge step
    assert state == 1 and oracle.counts == {"grad": 1, "jvp_logits": 1}


def test_spike_schedule() -> None:
    method = make_method("softmax_geometry", "gd-spike", "torch", lr=2.0, spike_factor=10.0, spike_start=3, spike_steps=2)
    assert [method.learning_rate(t) for t in range(1, 7)] == [2.0, 2.0, 20.0, 20.0, 2.0, 2.0]


def test_stochastic_oracle_measures_the_radius_on_the_minibatch() -> None:
    problem = make_problem("convex", "softmax", "torch", batch_size=50)
    oracle = make_oracle("convex", "softmax", problem, "torch")
    method = make_method("softmax_geometry", "ghost-step", "torch", lr=3000.0)
    params = problem.init_params(0)
    new, _ = method.step(params, method.init(params, oracle), oracle)
    rows = oracle.last_indices
    W = np.asarray(params).reshape(problem.features, problem.classes)
    g = numpy_gradient(problem, W, rows)
    u = -g / np.linalg.norm(g)
    rho = math.pi / np.ptp(problem.X_np[rows] @ u, axis=1).max()
    assert np.abs(np.asarray(new).reshape(W.shape) - (W + rho * u)).max() < 1e-12
    assert oracle.counts == {"stochastic_grad": 1, "jvp_logits": 1}
