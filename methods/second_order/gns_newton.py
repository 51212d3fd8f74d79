"""GNS-Newton: the gradient-regularized Newton method with an adaptive gradient-normalized radius.

From "Gradient-Normalized Smoothness for Optimization with Approximate Hessians". One step at
``x`` with gradient ``g`` and curvature matrix ``H``::

    lambda = ||g|| / gamma
    d      = -(H + lambda I)^{-1} g
    accept x + d  if  f(x) - f(x + d) >= ||g(x + d)||^2 / (8 lambda)   then gamma <- 2 gamma
    else             gamma <- gamma / 2 and retry (at most ``max_retries`` times)

``gamma`` estimates the radius within which the curvature model linearizes the gradient well;
since ``lambda`` scales with ``||g||``, the regularization vanishes near the solution and the
step becomes Newton's (quadratic local convergence), while far away it is a damped step.

The curvature ``H`` is chosen by the ``hessian`` hyperparameter, an entry of :data:`CURVATURES`
(a function ``(params, oracle) -> matrix``): ``exact`` (the oracle's dense Hessian),
``gauss-newton`` (``J^T Lambda J / n`` plus the regularizer's Hessian, ``J`` the Jacobian of the
logits and ``Lambda`` the loss's Hessian in them) or ``fisher`` (the empirical Fisher
``sum_i grad l_i grad l_i^T / n`` plus the regularizer's Hessian), the paper's two approximations;
the latter two need a task that provides ``gauss_newton`` or ``fisher``.

The value and gradient at the accepted trial point are those of the next iterate, so a step
costs one Hessian and one value-and-gradient call per trial point. At machine precision every
trial fails on rounding noise; once the trial point rounds to the current one the step holds
its point without shrinking ``gamma`` further (and without another call). The retry loop is
Python (it branches on values); the linear algebra is the framework's, jitted in jax.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any, NamedTuple

__all__ = ["CURVATURES", "GNSNewtonJax", "GNSNewtonState", "GNSNewtonTorch"]


def _exact_hessian(params: Any, oracle: Any) -> Any:
    return oracle.hessian(params)


def _gauss_newton(params: Any, oracle: Any) -> Any:
    return oracle.gauss_newton(params)


def _empirical_fisher(params: Any, oracle: Any) -> Any:
    return oracle.fisher(params)


#: Curvature models by name: ``(params, oracle) -> (p, p) matrix`` in the run's framework.
CURVATURES: dict[str, Callable[[Any, Any], Any]] = {
    "exact": _exact_hessian,
    "gauss-newton": _gauss_newton,
    "fisher": _empirical_fisher,
}

#: Floor of ``gamma``, a guard that keeps ``lambda`` finite; the step stops shrinking gamma long
#: before (once the trial point rounds to the current one).
_GAMMA_MIN = 1e-150


class GNSNewtonState(NamedTuple):
    """The radius ``gamma``, the cached value and gradient at ``point``, and step counters."""

    gamma: float
    point: Any
    value: Any
    grad: Any
    accepted: int = 0
    rejected: int = 0


class _GNSNewton:
    """The framework-independent update; subclasses supply the norm, the shifted solve and equality.

    Parameters
    ----------
    hessian
        The curvature model, a key of :data:`CURVATURES`: ``exact``, ``gauss-newton`` or ``fisher``.
    gamma0
        The initial radius ``gamma`` (positive).
    max_retries
        Rejected trials allowed per step after the first; when all fail the point is kept
        and the next step starts from the reduced ``gamma``.
    """

    def __init__(self, *, hessian: str = "exact", gamma0: float = 1.0, max_retries: int = 10) -> None:
        if hessian not in CURVATURES:
            raise ValueError(f"gns-newton: hessian={hessian!r} is not implemented; choose one of {sorted(CURVATURES)}")
        positive = isinstance(gamma0, (int, float)) and not isinstance(gamma0, bool) and gamma0 > 0
        if not (positive and math.isfinite(gamma0)):
            raise ValueError(f"gns-newton: gamma0 must be a positive finite number, got {gamma0!r}")
        if isinstance(max_retries, bool) or not isinstance(max_retries, int) or max_retries < 0:
            raise ValueError(f"gns-newton: max_retries must be a non-negative integer, got {max_retries!r}")
        self.curvature = CURVATURES[hessian]
        self.gamma0 = float(gamma0)
        self.max_retries = max_retries

    # Framework operations.
    def _norm(self, vector: Any) -> float:
        """Euclidean norm, as a Python float."""
        raise NotImplementedError

    def _direction(self, matrix: Any, grad: Any, lam: float) -> Any:
        """``-(matrix + lam I)^{-1} grad``."""
        raise NotImplementedError

    def _equal(self, a: Any, b: Any) -> bool:
        """Whether two vectors are equal element for element."""
        raise NotImplementedError

    def init(self, params: Any, oracle: Any) -> GNSNewtonState:
        value, grad = oracle.value_and_grad(params)
        return GNSNewtonState(self.gamma0, params, value, grad)

    def step(self, params: Any, state: GNSNewtonState, oracle: Any) -> tuple[Any, GNSNewtonState]:
        if params is state.point:
            value, grad = state.value, state.grad
        else:  # moved by someone else (a restart, a projection): the cache is stale
            value, grad = oracle.value_and_grad(params)
        grad_norm = self._norm(grad)
        if not grad_norm > 0 or not math.isfinite(grad_norm):  # stationary, or nothing sane to do
            return params, state._replace(point=params, value=value, grad=grad)
        matrix = self.curvature(params, oracle)
        f = float(value)
        gamma, rejected = state.gamma, state.rejected
        for _ in range(self.max_retries + 1):
            lam = grad_norm / gamma
            trial = params + self._direction(matrix, grad, lam)
            if self._equal(trial, params):
                # The step is below rounding: at machine precision, where every trial fails on
                # noise. Shrinking gamma further cannot help; hold the point and keep gamma.
                break
            trial_value, trial_grad = oracle.value_and_grad(trial)
            # A NaN anywhere makes the comparison False: a rejection.
            if f - float(trial_value) >= self._norm(trial_grad) ** 2 / (8.0 * lam):
                return trial, GNSNewtonState(2.0 * gamma, trial, trial_value, trial_grad, state.accepted + 1, rejected)
            gamma = max(0.5 * gamma, _GAMMA_MIN)
            rejected += 1
        return params, GNSNewtonState(gamma, params, value, grad, state.accepted, rejected)


class GNSNewtonTorch(_GNSNewton):
    """GNS-Newton on torch tensors."""

    def _norm(self, vector: Any) -> float:
        import torch

        return float(torch.linalg.vector_norm(vector))

    def _direction(self, matrix: Any, grad: Any, lam: float) -> Any:
        import torch

        shifted = matrix.clone()
        shifted.diagonal().add_(lam)
        return -torch.linalg.solve(shifted, grad)

    def _equal(self, a: Any, b: Any) -> bool:
        import torch

        return torch.equal(a, b)


class GNSNewtonJax(_GNSNewton):
    """GNS-Newton on jax arrays; the shifted solve is jitted (``lam`` is traced, not static)."""

    def _norm(self, vector: Any) -> float:
        return float(_jax_kernels()[0](vector))

    def _direction(self, matrix: Any, grad: Any, lam: float) -> Any:
        return _jax_kernels()[1](matrix, grad, lam)

    def _equal(self, a: Any, b: Any) -> bool:
        return bool(_jax_kernels()[2](a, b))


@functools.cache
def _jax_kernels() -> tuple[Callable[..., Any], Callable[..., Any], Callable[..., Any]]:
    """The jitted norm, shifted solve and equality, built once per process (shared compilations)."""
    import jax
    import jax.numpy as jnp

    def direction(matrix: Any, grad: Any, lam: Any) -> Any:
        shifted = matrix + lam * jnp.eye(matrix.shape[0], dtype=matrix.dtype)
        return -jnp.linalg.solve(shifted, grad)

    return jax.jit(jnp.linalg.norm), jax.jit(direction), jax.jit(jnp.array_equal)
