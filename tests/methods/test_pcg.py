"""pcg: scipy's preconditioned cg iteration counts on poisson2d, and IC(0) against a dense reference."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
import scipy.sparse.linalg as spla

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tasks"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from _content import load_entry, load_method, load_task  # noqa: E402
from _runs import run_single  # noqa: E402


def _module(name: str):
    """The poisson2d task's module, or (any other name) the preconditioners module pcg loads."""
    if name == "poisson2d":
        task, path = load_task("linear", "poisson2d")
        return sys.modules[load_entry(task.implementations["torch"], path).__module__]
    method, path = load_method("linear", "pcg")
    krylov = sys.modules[load_entry(method.implementations["torch"].entry, path).__module__]
    return sys.modules[krylov.PRECONDITIONERS["ic0"].__module__]  # the sibling module krylov imports


def _dense_ic0(A: np.ndarray) -> np.ndarray:
    """IC(0) the textbook way, on a dense array: the right-looking Cholesky with fill outside A's pattern dropped."""
    n = len(A)
    pattern = A != 0
    work = np.tril(A).astype(float)
    for k in range(n):
        work[k, k] = np.sqrt(work[k, k])
        for i in range(k + 1, n):
            if pattern[i, k]:
                work[i, k] /= work[k, k]
        for j in range(k + 1, n):
            for i in range(j, n):
                if pattern[i, j]:
                    work[i, j] -= work[i, k] * work[j, k]
    return np.tril(work)


def _scipy_iterations(n: int, preconditioner: str) -> int:
    poisson, pre = _module("poisson2d"), _module("preconditioners")
    A, b = poisson.laplacian(n), poisson.rhs(n, 0)
    if preconditioner == "jacobi":
        M = sp.diags(1.0 / A.diagonal())
    else:
        L = pre.ic0_factor(A)
        M = spla.LinearOperator(A.shape, matvec=lambda r: spla.spsolve_triangular(
            L.T.tocsr(), spla.spsolve_triangular(L, r, lower=True), lower=False))
    iterations = []
    x, info = spla.cg(A, b, rtol=1e-6, M=M, callback=lambda xk: iterations.append(1))
    assert info == 0 and np.linalg.norm(b - A @ x) <= 1e-6 * np.linalg.norm(b)
    return len(iterations)


def test_ic0_matches_a_dense_reference_and_reproduces_a_on_its_pattern() -> None:
    A = _module("poisson2d").laplacian(5)  # 25 unknowns: the 5-point pattern, fill dropped
    L = _module("preconditioners").ic0_factor(A).toarray()
    np.testing.assert_allclose(L, _dense_ic0(A.toarray()), rtol=1e-13, atol=1e-14)
    dense = A.toarray()
    pattern = dense != 0
    assert np.array_equal(L != 0, np.tril(pattern))  # no fill-in
    np.testing.assert_allclose((L @ L.T)[pattern], dense[pattern], rtol=1e-13)
    assert np.abs((L @ L.T - dense)[~pattern]).max() > 0.01  # it is incomplete: the dropped fill shows


def test_ic0_breakdown_is_reported() -> None:
    A = sp.csr_matrix(np.array([[1.0, 2.0], [2.0, 1.0]]))  # symmetric, indefinite
    with pytest.raises(ValueError, match="broke down at row 1"):
        _module("preconditioners").ic0_factor(A)


# jax runs pcg op by op (the host's triangular solves keep it from compiling whole): one size there.
@pytest.mark.parametrize(("framework", "n"), [("torch", 32), ("torch", 64), ("jax", 32)])
def test_iterations_match_scipy_cg_with_the_same_preconditioner(full_catalog, framework: str, n: int) -> None:
    rows = {}
    for preconditioner in ("jacobi", "ic0"):
        expected = _scipy_iterations(n, preconditioner)
        row = run_single(full_catalog, "poisson2d", "pcg", framework, params={"side": n},
                         hyperparameters={"preconditioner": preconditioner}).row
        assert row["status"] == "reached_target", row["error"]
        assert row["steps_to_target"] == row["steps"] == expected
        # One matrix call builds the preconditioner, one grad gives r_0, then one product a step.
        assert (row["calls_matrix"], row["calls_grad"], row["calls_matvec"]) == (1, 1, expected)
        rows[preconditioner] = row
    cg = run_single(full_catalog, "poisson2d", "cg", framework, params={"side": n}).row
    # diag(A) = 4: Jacobi is CG itself; IC(0) needs about a third of CG's iterations.
    assert rows["jacobi"]["steps"] == cg["steps"]
    assert rows["ic0"]["steps"] < 0.4 * cg["steps"]
