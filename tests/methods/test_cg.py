"""cg: scipy.sparse.linalg.cg's iteration counts on poisson2d, and the method's structure on small systems."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse.linalg as spla

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tasks"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from _content import load_entry, load_method, load_task  # noqa: E402
from _runs import run_single  # noqa: E402


def _task_module():
    task, path = load_task("linear", "poisson2d")
    return sys.modules[load_entry(task.implementations["torch"], path).__module__]


def _method_module():
    method, path = load_method("linear", "cg")
    return sys.modules[load_entry(method.implementations["torch"].entry, path).__module__]


class MatrixOracle:
    """grad and matvec of ``x^T A x / 2 - b^T x`` for a dense numpy ``A``, counting the products."""

    def __init__(self, A: np.ndarray, b: np.ndarray) -> None:
        self.A, self.b, self.products = A, b, 0

    def grad(self, x: np.ndarray) -> np.ndarray:
        return self.A @ x - self.b

    def matvec(self, v: np.ndarray) -> np.ndarray:
        self.products += 1
        return self.A @ v


def _scipy_iterations(n: int) -> int:
    module = _task_module()
    A, b = module.laplacian(n), module.rhs(n, 0)
    iterations = []
    x, info = spla.cg(A, b, rtol=1e-6, callback=lambda xk: iterations.append(1))
    assert info == 0 and np.linalg.norm(b - A @ x) <= 1e-6 * np.linalg.norm(b)
    return len(iterations)


@pytest.mark.parametrize("framework", ["torch", "jax"])
@pytest.mark.parametrize("n", [32, 64])
def test_iterations_to_1e_minus_6_match_scipy_cg(full_catalog, framework: str, n: int) -> None:
    expected = _scipy_iterations(n)
    row = run_single(full_catalog, "poisson2d", "cg", framework, params={"side": n}).row
    assert row["status"] == "reached_target", row["error"]
    assert row["steps_to_target"] == row["steps"] == expected
    assert row["calls_matvec"] == expected and row["calls_grad"] == 1  # r_0 = -grad(x_0), then one product a step
    assert row["clock_compiles"] == 0


def test_cg_iterations_grow_like_the_grid_side() -> None:
    # kappa(A) ~ (2(N+1)/pi)^2, so CG's iterations to a fixed tolerance grow about linearly in N.
    small, large = _scipy_iterations(32), _scipy_iterations(64)
    assert 1.6 < large / small < 2.4


def test_cg_solves_an_n_by_n_system_in_n_steps_with_a_conjugate_basis() -> None:
    rng = np.random.default_rng(0)
    M = rng.standard_normal((6, 6))
    A, b = M @ M.T + 6 * np.eye(6), rng.standard_normal(6)
    method, oracle = _method_module().ConjugateGradient(), MatrixOracle(A, b)
    x = np.zeros(6)
    state = method.init(x, oracle)
    directions = [state.direction]
    for _ in range(6):
        x, state = method.step(x, state, oracle)
        directions.append(state.direction)
    np.testing.assert_allclose(x, np.linalg.solve(A, b), rtol=1e-10, atol=1e-12)
    P = np.array(directions[:6])
    conjugacy = P @ A @ P.T
    off = conjugacy - np.diag(np.diag(conjugacy))
    assert np.abs(off).max() < 1e-9 * np.abs(np.diag(conjugacy)).max()  # p_i^T A p_j = 0 for i != j
    assert oracle.products == 6
    # A converged residual stays put: zero step sizes, no 0 / 0.
    x_again, state_again = method.step(x, state._replace(residual=0 * state.residual, direction=0 * state.direction,
                                                          rr=0.0), oracle)
    assert np.array_equal(x_again, x) and np.isfinite(state_again.direction).all()
