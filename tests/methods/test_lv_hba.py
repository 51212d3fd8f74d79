"""lv-hba on bilevel-llc: it reaches the target against the scipy reference, torch and jax agree, signs matter.

The reference solution is computed here by SLSQP on the KKT reformulation (the task's test
module's :func:`kkt_reference`); the runs go through the real engine (``tests/_runs.py``). A
full run costs about 1 s in jax (compiled) but about 20 s in torch (the oracle's Jacobian by
``torch.func.jacrev`` takes about 3 ms a call, three calls a step), so torch is held to jax's
trajectory step by step over a short run and jax runs to the target.
"""

from __future__ import annotations

import functools
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tasks"))
from _content import backend, load_entry, load_method, load_task, make_method, make_oracle, make_problem, run_method  # noqa: E402
from _runs import run_single  # noqa: E402
from test_bilevel_llc import kkt_reference  # noqa: E402

from harness.catalog import Catalog, builtin_root  # noqa: E402

FAMILY, TASK, METHOD = "bilevel", "bilevel-llc", "lv-hba"
N = 100


@functools.cache
def catalog() -> Catalog:
    files = [builtin_root() / "tasks" / FAMILY / f"{TASK}.yaml", builtin_root() / "methods" / FAMILY / f"{METHOD}.yaml"]
    return Catalog.load(files=files + sorted((builtin_root() / "hardware").glob("*.yaml")), builtin=False)


@functools.cache
def reference_x() -> np.ndarray:
    return kkt_reference(N)[:N]


def test_declaration() -> None:
    method, _ = load_method(FAMILY, METHOD)
    assert method.requires == ("bilevel_grads",) and method.paper.startswith("Constrained Bi-Level Optimization")
    assert set(method.hyperparameters) == {"alpha", "beta", "eta", "gamma1", "gamma2", "c", "p"}


@pytest.mark.parametrize("seed", [0, 1])
def test_reaches_the_reference_within_the_budget(seed: int) -> None:
    """Relative error of x below 0.05 against SLSQP's x*, on the lower level's feasible set, three calls a step."""
    task, _ = load_task(FAMILY, TASK)
    result = run_single(catalog(), TASK, METHOD, "jax", seed=seed)
    row = result.row
    assert row["status"] == "reached_target", row
    assert row["steps"] < task.budget.steps and row["calls_bilevel_grads"] == 3 * row["steps"]
    # The harness measures against the closed form; the same point against scipy's reference:
    x_star = reference_x()
    assert np.abs(x_star + 0.3).max() < 1e-8
    assert row["relative_error"] < 0.05 and row["constraint_violation"] < 1e-9
    assert 0 <= row["lower_gap"] < 0.1  # near the lower solution set, on the feasible side
    first = result.trace[0]
    assert first["relative_error"] > 1.0 and result.trace[-1]["objective"] < first["objective"]


def _trajectory(framework: str, steps: int, method=None) -> tuple[list[np.ndarray], list[float]]:
    problem = make_problem(FAMILY, TASK, framework)
    oracle = make_oracle(FAMILY, TASK, problem, framework)
    method = method or make_method(FAMILY, METHOD, framework)
    out = run_method(method, problem, oracle, framework, steps, seed=0)
    assert oracle.counts["bilevel_grads"] == 3 * steps
    errors = [problem.evaluate(backend(framework).asarray(w))["relative_error"] for w in out["iterates"]]
    return out["iterates"], errors


def test_torch_follows_jax() -> None:
    torch_iterates, _ = _trajectory("torch", 20)
    jax_iterates, _ = _trajectory("jax", 20)
    for a, b in zip(torch_iterates, jax_iterates):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-10)


def test_constraint_term_sign_matters() -> None:
    """With ``- grad_x g^T lam`` in Danskin's gradient the run walks away from x*; the derived ``+`` approaches it."""
    spec, path = load_method(FAMILY, METHOD)
    base = load_entry(spec.implementations["torch"].entry, path)

    class WrongSign(base):
        def value_function_grads(self, x_jac, lam, y, theta, z):
            grad_x, grad_y, grad_z = super().value_function_grads(x_jac, lam, y, theta, z)
            return grad_x - 2 * (lam @ x_jac[2:]), grad_y, grad_z

    hyper = spec.resolve_hyperparameters({})
    steps = 100
    _, right = _trajectory("torch", steps)
    _, wrong = _trajectory("torch", steps, WrongSign(**hyper))
    # Over the second 50 steps the derived sign keeps approaching x*, the wrong one moves away.
    assert right[-1] < 0.5 * right[0] and right[-1] < right[50]
    assert wrong[-1] > wrong[50] and wrong[-1] > 2 * right[-1]
