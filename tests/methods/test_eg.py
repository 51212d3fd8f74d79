"""eg: the exponentiated-gradient update reaches the scipy.optimize.nnls solution."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tasks"))
from _content import backend, load_method, load_task, make_method, make_oracle, make_problem, run_method  # noqa: E402



def test_declaration() -> None:
    method, _ = load_method("multiplicative", "eg")
    assert method.paper.startswith("Dale meets Langevin") and method.requires == ("grad",)


@pytest.mark.parametrize("framework", ["torch", "jax"])
def test_update_is_sign_preserving_and_multiplicative(framework: str) -> None:
    problem = make_problem("constrained", "nnls", framework)
    oracle = make_oracle("constrained", "nnls", problem, framework)
    rng = np.random.default_rng(0)
    w = rng.standard_normal(problem.dim)  # mixed signs
    params = backend(framework).asarray(w)
    method = make_method("multiplicative", "eg", framework, lr=0.05)
    new, _ = method.step(params, method.init(params, oracle), oracle)
    g = 2 * problem.A_np.T @ (problem.A_np @ w - problem.b_np)
    expected = w * np.exp(-0.05 * np.sign(w) * g)
    assert np.abs(np.asarray(backend(framework).to_numpy(new)) - expected).max() < 1e-14
    assert np.array_equal(np.sign(expected), np.sign(w))


def test_reaches_the_nnls_solution_within_the_budget() -> None:
    task, _ = load_task("constrained", "nnls")
    problem = make_problem("constrained", "nnls", "torch")
    oracle = make_oracle("constrained", "nnls", problem, "torch")
    run = run_method(make_method("multiplicative", "eg", "torch"), problem, oracle, "torch", task.budget.steps,
                     stop_below=task.target.value)
    assert run["reached"] is not None
    x = run["iterates"][-1]
    assert x.min() >= 0  # feasible throughout, no projection (active weights decay to underflow)
    assert np.linalg.norm(x - problem.x_star) / np.linalg.norm(problem.x_star) < 1e-5
    # The coordinates scipy holds at zero are on their way there.
    assert np.abs(x[problem.x_star == 0]).max() < 1e-3
    assert oracle.counts == {"grad": run["reached"]}


def test_torch_and_jax_agree() -> None:
    runs = []
    for framework in ("torch", "jax"):
        problem = make_problem("constrained", "nnls", framework)
        oracle = make_oracle("constrained", "nnls", problem, framework)
        runs.append(run_method(make_method("multiplicative", "eg", framework), problem, oracle, framework, 200)["iterates"][-1])
    assert np.abs(runs[0] - runs[1]).max() < 1e-12
