"""poisson2d: the stencil against a scipy sparse Laplacian, the spsolve reference, the matvec oracle."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse.linalg as spla

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _content import backend, load_entry, load_task, make_oracle, make_problem  # noqa: E402

FAMILY, TASK = "linear", "poisson2d"
FRAMEWORKS = ("torch", "jax")


def _module():
    task, path = load_task(FAMILY, TASK)
    return sys.modules[load_entry(task.implementations["torch"], path).__module__]


def test_declaration() -> None:
    task, _ = load_task(FAMILY, TASK)
    assert set(task.implementations) == set(FRAMEWORKS) and {"matvec", "matrix"} <= set(task.provides)
    assert task.target is not None and task.target.metric == "relative_residual" and task.target.value == 1e-6
    assert list(task.parameters["side"].choices) == [32, 64] and task.evaluation.every == 1


@pytest.mark.parametrize("n", [3, 32])
def test_the_laplacian_is_the_five_point_stencil_with_its_known_spectrum(n: int) -> None:
    module = _module()
    A = module.laplacian(n).toarray()
    # Row of an interior point: 4 on the diagonal, -1 at the four neighbours of the row-major grid.
    if n == 3:
        centre = 4
        expected = np.zeros(9)
        expected[[1, 3, 5, 7]], expected[centre] = -1, 4
        np.testing.assert_array_equal(A[centre], expected)
        np.testing.assert_array_equal(A[0][[0, 1, 3]], [4, -1, -1])  # a corner has two neighbours
        assert np.count_nonzero(A[0]) == 3
    k = np.arange(1, n + 1)
    one = 4 * np.sin(np.pi * k / (2 * (n + 1))) ** 2
    closed = np.sort((one[:, None] + one[None, :]).ravel())
    np.testing.assert_allclose(np.linalg.eigvalsh(A), closed, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("framework", FRAMEWORKS)
@pytest.mark.parametrize("n", [32, 64])
def test_stencil_matvec_equals_the_sparse_matrix(framework: str, n: int) -> None:
    module = _module()
    v = np.random.default_rng(n).standard_normal(n * n)
    expected = module.laplacian(n) @ v
    np.testing.assert_allclose(module.stencil(v, n), expected, rtol=0, atol=1e-12)
    problem = make_problem(FAMILY, TASK, framework, side=n)
    oracle = make_oracle(FAMILY, TASK, problem, framework)
    got = np.asarray(backend(framework).to_numpy(oracle.matvec(backend(framework).asarray(v))))
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)
    assert dict(oracle.counts) == {"matvec": 1}
    # grad is the negative residual A x - b; the objective's minimum is f* = -b^T x* / 2.
    g = np.asarray(backend(framework).to_numpy(oracle.grad(backend(framework).asarray(v))))
    np.testing.assert_allclose(g, expected - module.rhs(n, 0), rtol=0, atol=1e-12)


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_the_matrix_call_gives_the_stencils_nonzeros(framework: str) -> None:
    n = 32
    # The stencil applied to each unit vector: A's columns, independent of the scipy matrix.
    dense = np.stack([_module().stencil(e, n) for e in np.eye(n * n)], axis=1)
    problem = make_problem(FAMILY, TASK, framework, side=n)
    oracle = make_oracle(FAMILY, TASK, problem, framework)
    rows, cols, values = (np.asarray(backend(framework).to_numpy(a)) for a in oracle.matrix())
    assert dict(oracle.counts) == {"matrix": 1}
    assert rows.dtype == cols.dtype == np.int64 and len(values) == 5 * n * n - 4 * n  # no stored zeros
    rebuilt = np.zeros((n * n, n * n))
    np.add.at(rebuilt, (rows, cols), values)
    np.testing.assert_array_equal(rebuilt, dense)


@pytest.mark.parametrize("n", [32, 64])
def test_the_reference_solves_the_system(n: int) -> None:
    problem = make_problem(FAMILY, TASK, "torch", side=n)
    module = _module()
    A, b = module.laplacian(n), module.rhs(n, 0)
    assert np.linalg.norm(A @ problem.x_star - b) / np.linalg.norm(b) < 1e-13
    # An independent iterative solve to a tight tolerance agrees with the direct one.
    other, info = spla.minres(A, b, rtol=1e-14, maxiter=20_000)
    assert info == 0 and np.linalg.norm(other - problem.x_star) / np.linalg.norm(problem.x_star) < 1e-9
    at_star = problem.evaluate(problem.backend.asarray(problem.x_star))
    assert at_star["objective"] == pytest.approx(problem.f_star, rel=1e-13)
    assert at_star["relative_residual"] < 1e-13 and at_star["relative_error"] == 0.0
    start = problem.evaluate(problem.init_params(0))
    assert start["relative_residual"] == 1.0 and start["objective"] == 0.0 and start["relative_error"] == 1.0


def test_the_seed_does_not_change_the_start_and_data_seed_changes_b() -> None:
    module = _module()
    problem = make_problem(FAMILY, TASK, "jax")
    assert np.array_equal(np.asarray(problem.init_params(0)), np.asarray(problem.init_params(3)))
    assert not np.array_equal(module.rhs(32, 0), module.rhs(32, 1))
