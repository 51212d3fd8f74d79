"""Preconditioners of a sparse symmetric positive definite ``A``, built from its nonzeros on the host.

``A`` arrives as the oracle's ``matrix()`` answer, coordinate-format ``(rows, cols, values)``
framework arrays. Each preconditioner is built once (in the method's ``init``, on its clock) and
applies ``M^{-1} r`` in the framework of ``r``:

- :func:`jacobi`: ``M = diag(A)``; the product stays in the framework (one elementwise product).
- :func:`incomplete_cholesky`: IC(0), ``M = L L^T`` with ``L`` lower triangular on the sparsity
  pattern of ``tril(A)`` (no fill-in). It is written here because scipy has no incomplete
  Cholesky (``spilu`` is a thresholded ILU with pivoting, not IC(0)); the two triangular solves of
  ``M^{-1} r`` are scipy's ``spsolve_triangular`` on the host (torch and jax have no sparse
  triangular solve), so on an accelerator each application copies ``r`` to the host and back,
  on the clock.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla

from harness.arrays import like, to_host

__all__ = ["PRECONDITIONERS", "ic0_factor", "incomplete_cholesky", "jacobi", "to_csr"]


def to_csr(rows: Any, cols: Any, values: Any) -> sp.csr_matrix:
    """The oracle's coordinate-format answer as a scipy CSR matrix on the host (duplicates summed, zeros dropped)."""
    r, c, v = (np.asarray(to_host(a)) for a in (rows, cols, values))
    n = int(max(r.max(), c.max())) + 1
    matrix = sp.coo_matrix((v, (r.astype(np.int64), c.astype(np.int64))), shape=(n, n)).tocsr()
    matrix.eliminate_zeros()  # IC(0)'s pattern is A's nonzeros, not the zeros a format happens to store
    return matrix


def ic0_factor(A: sp.csr_matrix) -> sp.csr_matrix:
    """IC(0): lower-triangular ``L`` with the pattern of ``tril(A)`` and ``(L L^T)_ij = A_ij`` on that pattern.

    Row by row (the "IKJ" order): ``L_ik = (A_ik - sum_{j < k} L_ij L_kj) / L_kk`` over the pattern,
    then ``L_ii = sqrt(A_ii - sum_{j < i} L_ij^2)``. A non-positive pivot (IC(0) can break down on an
    SPD matrix that is not an M-matrix) raises ``ValueError``.

    Examples
    --------
    On a tridiagonal matrix IC(0) has no fill to drop: it is the exact Cholesky factor.

    >>> import numpy as np, scipy.sparse as sp
    >>> A = sp.diags([-np.ones(4), 2 * np.ones(5), -np.ones(4)], [-1, 0, 1]).tocsr()
    >>> L = ic0_factor(A)
    >>> bool(np.allclose(L.toarray(), np.linalg.cholesky(A.toarray())))
    True
    """
    lower = sp.tril(A, format="csr")
    lower.eliminate_zeros()
    lower.sort_indices()
    n = lower.shape[0]
    factor_rows: list[dict[int, float]] = []
    for i in range(n):
        start, stop = lower.indptr[i], lower.indptr[i + 1]
        row: dict[int, float] = {}
        diagonal = 0.0
        for k, a_ik in zip(lower.indices[start:stop].tolist(), lower.data[start:stop].tolist()):
            if k == i:
                diagonal = a_ik
                continue
            row_k = factor_rows[k]
            row[k] = (a_ik - sum(l_ij * row_k[j] for j, l_ij in row.items() if j in row_k)) / row_k[k]
        pivot = diagonal - sum(l * l for l in row.values())
        if pivot <= 0:
            raise ValueError(f"IC(0) broke down at row {i} (pivot {pivot:.3g} <= 0)")
        row[i] = float(np.sqrt(pivot))
        factor_rows.append(row)
    indptr = np.cumsum([0] + [len(row) for row in factor_rows])
    indices = np.fromiter((j for row in factor_rows for j in sorted(row)), dtype=np.int64, count=int(indptr[-1]))
    data = np.fromiter((row[j] for row in factor_rows for j in sorted(row)), dtype=np.float64, count=int(indptr[-1]))
    return sp.csr_matrix((data, indices, indptr), shape=(n, n))


def jacobi(rows: Any, cols: Any, values: Any) -> Callable[[Any], Any]:
    """``r -> r / diag(A)``, in the framework of ``r``."""
    inverse_diagonal = 1.0 / to_csr(rows, cols, values).diagonal()
    if not np.all(np.isfinite(inverse_diagonal)):
        raise ValueError("Jacobi needs a nonzero diagonal")
    scale = like(inverse_diagonal, values)
    return lambda r: r * scale


def incomplete_cholesky(rows: Any, cols: Any, values: Any) -> Callable[[Any], Any]:
    """``r -> (L L^T)^{-1} r`` for the IC(0) factor ``L`` (two sparse triangular solves on the host)."""
    lower = ic0_factor(to_csr(rows, cols, values))
    upper = lower.T.tocsr()

    def apply(r: Any) -> Any:
        y = spla.spsolve_triangular(lower, to_host(r), lower=True)
        return like(spla.spsolve_triangular(upper, y, lower=False), r)

    return apply


#: The ``preconditioner`` choices of ``pcg``: name -> builder from the matrix's nonzeros.
PRECONDITIONERS: dict[str, Callable[[Any, Any, Any], Callable[[Any], Any]]] = {
    "jacobi": jacobi,
    "ic0": incomplete_cholesky,
}
