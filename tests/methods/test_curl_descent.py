"""curl-descent: no flipped neuron is gradient descent step by step; flips follow the rule."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tasks"))
from _content import backend, load_method, make_method, make_oracle, make_problem, run_method, sealed  # noqa: E402



def numpy_rule(problem, params: np.ndarray, lr: float, flipped: np.ndarray, layer: str) -> np.ndarray:
    """One step of dW_l = -lr D delta_l h_{l-1}^T by hand-written backpropagation in numpy."""
    W, a = problem.unflatten(params)
    X, y = problem.data.X, problem.data.y
    n = len(y)
    h = np.tanh(X @ W.T)  # (n, K) hidden activity
    delta_out = (h @ a[0] - y) / n  # error at the output
    delta_hidden = delta_out[:, None] * a * (1 - h**2)  # error at the hidden units
    dW = -lr * delta_hidden.T @ X  # (K, d): post x pre
    da = -lr * (delta_out @ h)[None, :]  # (1, K)
    signs = np.ones(problem.hidden)
    signs[flipped] = -1.0
    if layer == "hidden":
        dW = signs[:, None] * dW  # flipped neurons' incoming synapses
    else:
        da = da * signs[None, :]  # flipped neurons' outgoing synapses
    return np.concatenate([(W + dW).ravel(), (a + da).ravel()])


def test_declaration() -> None:
    method, _ = load_method("bio", "curl-descent")
    assert method.paper.startswith("Curl Descent") and method.hyperparameters["flip_fraction"] == 0.0


@pytest.mark.parametrize("framework", ["torch", "jax"])
def test_no_flipped_neuron_is_gradient_descent_step_by_step(framework: str) -> None:
    problem = make_problem("dynamics", "teacher-student", framework)
    lr = 0.5
    curl = run_method(make_method("bio", "curl-descent", framework, lr=lr), problem,
                      make_oracle("dynamics", "teacher-student", problem, framework), framework, 20)
    gd = run_method(make_method("baselines", "gd", framework, lr=lr), problem,
                    make_oracle("dynamics", "teacher-student", problem, framework), framework, 20)
    for step, (a, b) in enumerate(zip(curl["iterates"], gd["iterates"])):
        assert np.abs(a - b).max() <= 1e-14 * max(1.0, np.abs(b).max()), f"differ at step {step}"
    assert curl["objective"][-1] < 0.5 * curl["objective"][0]


@pytest.mark.parametrize("layer", ["hidden", "readout"])
def test_flipped_neurons_follow_the_sign_flipped_rule(layer: str) -> None:
    problem = make_problem("dynamics", "teacher-student", "torch")
    oracle = make_oracle("dynamics", "teacher-student", problem, "torch")
    method = make_method("bio", "curl-descent", "torch", lr=0.3, flip_fraction=0.2, flip_layer=layer, flip_seed=5)
    module = importlib.import_module(type(method).__module__)
    _, flipped = module.flip_mask(problem.layout, fraction=0.2, layer=layer, seed=5)
    assert len(flipped) == 10
    params = problem.init_params(1)
    state = method.init(params, oracle)
    for _ in range(3):
        expected = numpy_rule(problem, np.asarray(params), 0.3, flipped, layer)
        params, state = method.step(params, state, oracle)
        assert np.abs(np.asarray(params) - expected).max() < 1e-13


def test_the_flipped_field_is_not_a_gradient() -> None:
    """A gradient field has a symmetric Jacobian; with flipped neurons the update field has curl."""
    problem = make_problem("dynamics", "teacher-student", "torch", d=4, teacher_hidden=2, student_hidden=3, n=50)
    layout = problem.layout
    oracle = sealed(backend("torch").make_oracle(problem, capabilities=frozenset({"grad"})), problem, "torch")
    method = make_method("bio", "curl-descent", "torch", lr=1.0, flip_fraction=1 / 3, flip_layer="hidden", flip_seed=0)
    mask = method.init(problem.init_params(0), oracle)

    def field(p: torch.Tensor) -> torch.Tensor:
        return mask * torch.func.grad(problem.loss)(p)

    jac = torch.autograd.functional.jacobian(field, problem.init_params(0)).numpy()
    hessian = torch.autograd.functional.jacobian(torch.func.grad(problem.loss), problem.init_params(0)).numpy()
    assert np.abs(hessian - hessian.T).max() < 1e-12
    assert np.abs(jac - jac.T).max() > 1e-3
    assert sum(int(np.prod(s)) for _, s in layout) == problem.dim
