"""The 2-D Poisson equation on an ``N x N`` grid (5-point Dirichlet Laplacian): one class for torch and jax.

``A`` is ``4`` on the diagonal and ``-1`` for each of a grid point's (up to four) neighbours,
row-major over the grid, so ``A = kron(I, T) + kron(T, I)`` with ``T = tridiag(-1, 2, -1)``: symmetric
positive definite, eigenvalues ``4 sin^2(pi i / (2(N+1))) + 4 sin^2(pi j / (2(N+1)))``. The task is
``min_x x^T A x / 2 - b^T x``, whose minimizer solves ``A x = b``; ``matvec`` applies the stencil
without forming ``A``, and ``matrix`` gives its nonzeros (for preconditioners). The metrics are numpy over a scipy sparse ``A`` built apart from the stencil,
and ``x*`` is :func:`scipy.sparse.linalg.spsolve`'s solution (a direct sparse LU).
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

from harness.arrays import immutable, namespace, to_float64

__all__ = ["Poisson2D", "laplacian", "rhs", "solution", "stencil"]


def stencil(v: Any, n: int) -> Any:
    """``A v`` for the ``n x n`` 5-point Dirichlet Laplacian, in the namespace of ``v`` (numpy, torch, jax)."""
    xp = namespace(v)
    grid = v.reshape(n, n)
    row = xp.zeros_like(grid[:1])
    column = xp.zeros_like(grid[:, :1])
    up = xp.concatenate([row, grid[:-1]], 0)  # neighbour above (zero outside: Dirichlet)
    down = xp.concatenate([grid[1:], row], 0)
    left = xp.concatenate([column, grid[:, :-1]], 1)
    right = xp.concatenate([grid[:, 1:], column], 1)
    return (4 * grid - up - down - left - right).reshape(n * n)


@functools.cache
def laplacian(n: int) -> Any:
    """``A`` as a scipy CSR matrix, from Kronecker products (independent of :func:`stencil`)."""
    import scipy.sparse as sp

    t = sp.diags([-np.ones(n - 1), 2 * np.ones(n), -np.ones(n - 1)], [-1, 0, 1])
    eye = sp.identity(n)
    matrix = (sp.kron(eye, t) + sp.kron(t, eye)).tocsr()
    matrix.eliminate_zeros()  # kron stores the zeros of its blocks: 5 N^2 - 4 N nonzeros remain
    return matrix


@functools.cache
def rhs(n: int, data_seed: int) -> np.ndarray:
    """``b ~ N(0, I)`` of size ``n^2`` from ``default_rng(data_seed)``."""
    return immutable(np.random.default_rng(data_seed).standard_normal(n * n))


@functools.cache
def solution(n: int, data_seed: int) -> np.ndarray:
    """``x* = A^{-1} b`` by scipy's sparse direct solver."""
    import scipy.sparse.linalg as spla

    return immutable(spla.spsolve(laplacian(n).tocsc(), rhs(n, data_seed)))


class Poisson2D:
    """``x^T A x / 2 - b^T x`` with ``A`` the 5-point Laplacian; the stencil for torch and jax, metrics in numpy."""

    def __init__(self, *, backend: Any, side: int, data_seed: int) -> None:
        if side < 2:
            raise ValueError(f"side must be >= 2 (got {side})")
        self.backend, self.n, self.dim = backend, int(side), int(side) ** 2
        self._b_numpy = rhs(self.n, int(data_seed))
        self.b = backend.asarray(self._b_numpy)
        self.x_star = solution(self.n, int(data_seed))
        self.f_star = float(-0.5 * self._b_numpy @ self.x_star)

    def init_params(self, seed: int) -> Any:
        """``x_0 = 0`` (so ``r_0 = b``, as scipy's solvers start); the seed does not change the run."""
        return self.backend.asarray(np.zeros(self.dim))

    def matvec(self, vector: Any) -> Any:
        return stencil(vector, self.n)

    def matrix(self) -> tuple[Any, Any, Any]:
        """``A``'s nonzeros ``(rows, cols, values)``, row-major, from the scipy matrix (fresh arrays)."""
        coo = laplacian(self.n).tocoo()
        return (self.backend.asarray_int(coo.row), self.backend.asarray_int(coo.col),
                self.backend.asarray(coo.data))

    def loss(self, params: Any) -> Any:
        return 0.5 * (params * stencil(params, self.n)).sum() - (self.b * params).sum()

    def evaluate(self, params: Any) -> dict[str, float]:
        x = to_float64(self.backend, params)
        b = self._b_numpy
        residual = b - laplacian(self.n) @ x
        return {
            "objective": float(0.5 * x @ (laplacian(self.n) @ x) - b @ x),
            "relative_residual": float(np.linalg.norm(residual) / np.linalg.norm(b)),
            "relative_error": float(np.linalg.norm(x - self.x_star) / np.linalg.norm(self.x_star)),
        }
