"""Reference optima for the task modules, computed in numpy/scipy independently of torch and jax.

A task's ``f_star`` must not come from the frameworks it benchmarks. :func:`minimize` runs scipy's
L-BFGS-B to a tight gradient tolerance, then polishes with Newton steps on the task's closed-form
Hessian while they shrink the gradient: L-BFGS alone stalls a few orders of magnitude above
machine precision on ill-conditioned data, and from there Newton converges quadratically in one
or two steps. :func:`optimum` wraps the result as a read-only :class:`Reference`.

numpy only at import; scipy is imported when a reference is computed.

Examples
--------
>>> import numpy as np
>>> A = np.array([[2.0, 0.0], [0.0, 4.0]])
>>> ref = optimum(lambda x: 0.5 * x @ A @ x - x.sum(), lambda x: A @ x - 1.0, lambda x: A, np.zeros(2))
>>> np.allclose(ref.x_star, [0.5, 0.25]), round(ref.f_star, 12)
(True, -0.375)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import numpy as np

from harness.arrays import immutable

__all__ = ["Reference", "minimize", "optimum"]

Function = Callable[[np.ndarray], float]
Gradient = Callable[[np.ndarray], np.ndarray]


class Reference(NamedTuple):
    """The reference optimum: minimizer and minimum."""

    x_star: np.ndarray
    f_star: float


def minimize(
    fun: Function,
    grad: Gradient,
    hess: Gradient,
    x0: np.ndarray,
    *,
    gtol: float = 1e-12,
    polish_steps: int = 8,
    maxiter: int = 20_000,
    maxcor: int = 30,
) -> np.ndarray:
    """scipy L-BFGS-B to ``gtol``, then Newton steps while they shrink the gradient norm.

    Parameters
    ----------
    fun, grad, hess
        The objective, its gradient and its (dense) Hessian, as numpy functions of ``x``.
    x0
        The starting point.
    gtol
        L-BFGS-B's projected-gradient tolerance (``ftol`` is 0: only ``gtol`` or ``maxiter``
        stop it). A looser one (1e-6) leaves more of the work to Newton, which is cheaper on
        ill-conditioned problems.
    polish_steps
        The most Newton steps ``x <- x - H(x)^{-1} g(x)``; the polish stops at the first step
        that does not shrink ``||g||``, which is then discarded.
    maxiter, maxcor
        L-BFGS-B's iteration limit and number of stored corrections.

    Returns
    -------
    numpy.ndarray
        The minimizer.
    """
    import scipy.optimize

    result = scipy.optimize.minimize(
        lambda x: (fun(x), grad(x)),
        x0,
        jac=True,
        method="L-BFGS-B",
        options={"gtol": gtol, "ftol": 0.0, "maxiter": maxiter, "maxcor": maxcor},
    )
    x = result.x
    g = grad(x)
    for _ in range(polish_steps):
        candidate = x - np.linalg.solve(hess(x), g)
        g_candidate = grad(candidate)
        if not np.linalg.norm(g_candidate) < np.linalg.norm(g):
            break
        x, g = candidate, g_candidate
    return x


def optimum(fun: Function, grad: Gradient, hess: Gradient, x0: np.ndarray, **options: float) -> Reference:
    """:func:`minimize` (``options`` are its keywords), as a :class:`Reference` with a read-only ``x_star``."""
    x_star = immutable(minimize(fun, grad, hess, x0, **options))
    return Reference(x_star, float(fun(x_star)))
