"""Krylov solvers of a linear system ``A x = b`` on the oracle's ``matvec``, for torch and jax.

:class:`ConjugateGradient` is Hestenes and Stiefel's CG (the recurrences of
``scipy.sparse.linalg.cg``): ``r_0 = b - A x_0 = -grad(x_0)`` (one ``grad`` call), ``p_0 = r_0``;
each step makes one ``matvec`` call::

    alpha = r.r / p.Ap,  x <- x + alpha p,  r <- r - alpha Ap,  beta = r'.r' / r.r,  p <- r' + beta p.

:class:`PreconditionedCG` is the same recursion on ``z = M^{-1} r`` (scipy's ``cg`` with ``M``), for
the preconditioners of :mod:`preconditioners` built from the oracle's ``matrix``.

Every branch is an array ``where`` (a converged ``r = 0`` gives ``alpha = beta = 0``, not 0 / 0), so
the jax step compiles whole.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from harness.arrays import namespace
from preconditioners import PRECONDITIONERS

__all__ = ["CGState", "ConjugateGradient", "PCGState", "PreconditionedCG", "safe_ratio"]


class CGState(NamedTuple):
    """The recursive residual ``r``, the search direction ``p`` and ``r.r``."""

    residual: Any
    direction: Any
    rr: Any


def safe_ratio(numerator: Any, denominator: Any) -> Any:
    """``numerator / denominator``, and 0 where the denominator is 0 (a converged residual, no direction yet)."""
    xp = namespace(denominator)
    nonzero = denominator != 0
    return xp.where(nonzero, numerator / xp.where(nonzero, denominator, xp.ones_like(denominator)),
                    xp.zeros_like(denominator))


class ConjugateGradient:
    """Conjugate gradient on a symmetric positive definite system: one ``matvec`` per step (no options)."""

    def init(self, params: Any, oracle: Any) -> CGState:
        residual = -oracle.grad(params)  # b - A x_0
        return CGState(residual, residual, (residual * residual).sum())

    def step(self, params: Any, state: CGState, oracle: Any) -> tuple[Any, CGState]:
        residual, direction, rr = state
        product = oracle.matvec(direction)
        alpha = safe_ratio(rr, (direction * product).sum())
        params = params + alpha * direction
        residual = residual - alpha * product
        rr_next = (residual * residual).sum()
        direction = residual + safe_ratio(rr_next, rr) * direction
        return params, CGState(residual, direction, rr_next)


class PCGState(NamedTuple):
    """The recursive residual ``r``, the search direction ``p``, ``r.z`` (``z = M^{-1} r``) and the preconditioner."""

    residual: Any
    direction: Any
    rz: Any
    precondition: Any


class PreconditionedCG:
    """Preconditioned conjugate gradient (scipy's ``cg`` with ``M``): one ``matvec`` and one ``M^{-1}`` per step.

    Parameters
    ----------
    preconditioner
        ``"jacobi"`` (``M = diag(A)``) or ``"ic0"`` (incomplete Cholesky without fill,
        ``M = L L^T``), built in ``init`` from one ``matrix`` call (on the clock).
    """

    def __init__(self, *, preconditioner: str) -> None:
        self.build = PRECONDITIONERS[preconditioner]

    def init(self, params: Any, oracle: Any) -> PCGState:
        precondition = self.build(*oracle.matrix())
        residual = -oracle.grad(params)  # b - A x_0
        z = precondition(residual)
        return PCGState(residual, z, (residual * z).sum(), precondition)

    def step(self, params: Any, state: PCGState, oracle: Any) -> tuple[Any, PCGState]:
        residual, direction, rz, precondition = state
        product = oracle.matvec(direction)
        alpha = safe_ratio(rz, (direction * product).sum())
        params = params + alpha * direction
        residual = residual - alpha * product
        z = precondition(residual)
        rz_next = (residual * z).sum()
        direction = z + safe_ratio(rz_next, rz) * direction
        return params, PCGState(residual, direction, rz_next, precondition)
