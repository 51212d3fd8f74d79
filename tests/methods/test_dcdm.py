"""dcdm: the iteration's structure (exact inverse: one step; identity: CG), and the trained network against CG.

CG's iteration counts on poisson2d come from scipy.sparse.linalg.cg, as in test_cg.py. The network
is trained once for this module (a reduced offline budget, `QUICK`, enough to show the claims);
the harness run trains its own with the same budget.
"""

from __future__ import annotations

import sys
import types
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse.linalg as spla
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tasks"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from _content import load_entry, load_method, load_task  # noqa: E402
from _runs import run_single  # noqa: E402

#: The offline budget of these tests: half the default steps (about 5 s at N = 32).
QUICK = {"train_steps": 150}


def _poisson():
    task, path = load_task("linear", "poisson2d")
    return sys.modules[load_entry(task.implementations["torch"], path).__module__]


def _method_module(method_id: str):
    method, path = load_method("linear", method_id)
    return sys.modules[load_entry(method.implementations["torch"].entry, path).__module__]


class MatrixOracle:
    """grad and matvec of ``x^T A x / 2 - b^T x`` for a numpy or scipy ``A`` on numpy or torch vectors."""

    def __init__(self, A, b: np.ndarray) -> None:
        self.A, self.b, self.products = A, np.array(b), 0

    def _apply(self, v):
        if isinstance(v, torch.Tensor):
            return torch.as_tensor(self.A @ v.numpy())
        return self.A @ v

    def grad(self, x):
        return self._apply(x) - (torch.as_tensor(self.b) if isinstance(x, torch.Tensor) else self.b)

    def matvec(self, v):
        self.products += 1
        return self._apply(v)


def _scipy_cg_iterations(n: int) -> int:
    poisson = _poisson()
    A, b = poisson.laplacian(n), poisson.rhs(n, 0)
    iterations = []
    x, info = spla.cg(A, b, rtol=1e-6, callback=lambda xk: iterations.append(1))
    assert info == 0
    return len(iterations)


def _iterations_to_target(method, n: int, *, torch_vectors: bool = False, limit: int = 400) -> tuple[int, list]:
    """Steps until the true relative residual is <= 1e-6 on poisson2d (data_seed 0), and the iterates."""
    poisson = _poisson()
    A, b = poisson.laplacian(n), poisson.rhs(n, 0)
    oracle = MatrixOracle(A, b)
    x = torch.zeros(n * n, dtype=torch.float64) if torch_vectors else np.zeros(n * n)
    state, iterates = method.init(x, oracle), []
    for k in range(1, limit + 1):
        x, state = method.step(x, state, oracle)
        iterates.append(np.asarray(x))
        if np.linalg.norm(b - A @ np.asarray(x)) <= 1e-6 * np.linalg.norm(b):
            assert oracle.products == k  # one product a step
            return k, iterates
    return limit + 1, iterates


@pytest.fixture(scope="module")
def network_at_32():
    """The network dcdm's offline phase trains on poisson2d N = 32 (seed 0, the QUICK budget)."""
    module = _method_module("dcdm")
    method, _ = load_method("linear", "dcdm")
    solver = module.DeepConjugateDirections(**{**method.resolve_hyperparameters(), **QUICK})
    operator = types.SimpleNamespace(dimension=32 * 32, matvec=lambda v: _poisson().stencil(v, 32))
    solver.offline(types.SimpleNamespace(seed=0), operator)
    return solver


def test_the_exact_inverse_as_network_solves_in_one_step() -> None:
    poisson = _poisson()
    A, b = poisson.laplacian(8).toarray(), poisson.rhs(8, 0)
    method = _method_module("dcdm").ConjugateDirections(direction=lambda r: np.linalg.solve(A, r))
    oracle = MatrixOracle(A, b)
    x = np.zeros(64)
    x, state = method.step(x, method.init(x, oracle), oracle)
    assert np.linalg.norm(b - A @ x) <= 1e-12 * np.linalg.norm(b)
    assert np.linalg.norm(state.residual) <= 1e-12 * np.linalg.norm(b)  # the recursive residual too
    assert oracle.products == 1
    # A converged residual stays put: zero steps, no 0 / 0 (the network sees r / ||r|| = 0).
    x_again, state_again = method.step(x, state._replace(residual=0 * state.residual), oracle)
    assert np.array_equal(x_again, x) and np.isfinite(state_again.direction).all()


def test_the_identity_as_network_is_conjugate_gradient() -> None:
    cg_iterations, cg_iterates = _iterations_to_target(_method_module("cg").ConjugateGradient(), 32)
    identity = _method_module("dcdm").ConjugateDirections(direction=lambda r: r)
    iterations, iterates = _iterations_to_target(identity, 32)
    assert iterations == cg_iterations == _scipy_cg_iterations(32) == 86
    # CG in exact arithmetic (r_k is A-orthogonal to p_{k-2} already): the iterates agree to rounding.
    gaps = [np.linalg.norm(x - y) / np.linalg.norm(y) for x, y in zip(iterates, cg_iterates)]
    assert max(gaps) < 1e-12


def test_lanczos_ritz_values_reach_both_ends_of_the_spectrum() -> None:
    poisson = _poisson()
    A, n = poisson.laplacian(32), 32
    values, vectors = _method_module("dcdm").ritz_vectors(lambda v: A @ v, n * n, 200, np.random.default_rng(0))
    theta = np.pi * np.arange(1, n + 1) / (2 * (n + 1))
    exact = np.sort((4 * np.sin(theta)[:, None] ** 2 + 4 * np.sin(theta)[None, :] ** 2).ravel())
    assert abs(values[0] - exact[0]) < 1e-9 and abs(values[-1] - exact[-1]) < 1e-9  # 8 sin^2(pi / 66), 8 cos^2
    np.testing.assert_allclose(vectors @ vectors.T, np.eye(len(values)), atol=1e-10)
    assert np.linalg.norm(A @ vectors[0] - values[0] * vectors[0]) < 1e-6  # the smoothest mode has converged


def test_trained_dcdm_beats_cg_through_the_harness(full_catalog) -> None:
    row = run_single(full_catalog, "poisson2d", "dcdm", "torch", params={"side": 32}, hyperparameters=QUICK).row
    assert row["status"] == "reached_target", row["error"]
    assert row["steps_to_target"] == row["steps"] == row["calls_matvec"] and row["calls_grad"] == 1
    assert row["steps_to_target"] <= _scipy_cg_iterations(32) / 2  # 86 for CG
    # Training is the offline phase, reported apart: the clock (init and the steps, with the
    # network's inference) holds none of it.
    assert row["offline_s"] > 1.0 and row["timed_s"] < row["offline_s"] / 5
    assert 0 < row["time_to_target_s"] <= row["timed_s"]


def test_weights_trained_at_32_generalize_to_64(network_at_32) -> None:
    at_32, _ = _iterations_to_target(network_at_32, 32, torch_vectors=True)
    at_64, _ = _iterations_to_target(network_at_32, 64, torch_vectors=True)
    cg_32, cg_64 = _scipy_cg_iterations(32), _scipy_cg_iterations(64)  # 86, 168
    assert at_32 <= cg_32 / 2 and at_64 <= cg_64 / 3
    # The paper: iterations nearly independent of the size; CG's double with N.
    assert at_64 - at_32 <= (cg_64 - cg_32) / 4
    assert at_64 / at_32 < cg_64 / cg_32
