"""Non-negative least squares, ``min ||A x - b||^2`` subject to ``x >= 0``: one class for torch and jax.

The iterate is a point of R^d; methods that keep it non-negative by construction (exponentiated
gradient) or by projection solve the constrained problem. Metrics are measured at the
projection ``max(x, 0)`` of the iterate, so an infeasible iterate cannot score below ``f*``;
``infeasibility`` reports how far the iterate itself is from the orthant. ``kkt_residual`` is the
natural residual ``||p - max(p - grad f(p), 0)||`` at ``p = max(x, 0)``, continuous in the iterate.

``f_star`` comes from :func:`scipy.optimize.nnls` (active-set, exact up to rounding). The loss is
written once over the array namespace; every task parameter comes from ``nnls.yaml`` (no
function here has a default for one).
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

from harness.arrays import immutable, to_float64
from harness.reference import Reference

__all__ = ["NNLS", "Reference", "load_data", "reference"]


@functools.cache
def _load(m: int, d: int, noise: float, data_seed: int) -> tuple[np.ndarray, np.ndarray]:
    if m < 1 or d < 1:
        raise ValueError(f"need m >= 1 and d >= 1 (got m={m}, d={d})")
    rng = np.random.default_rng(data_seed)
    A = rng.standard_normal((m, d)) / np.sqrt(m)  # unit-norm columns on average
    x_true = rng.standard_normal(d)  # about half negative: the constraint is active there
    b = A @ x_true + noise * rng.standard_normal(m)
    return immutable(A), immutable(b)


def load_data(*, m: int, d: int, noise: float, data_seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``A`` (m, d) with N(0, 1/m) entries and ``b = A x_true + noise N(0, I)``, ``x_true ~ N(0, I)``.

    Drawn from ``default_rng(data_seed)`` in this order: A, x_true, the noise.
    """
    return _load(int(m), int(d), float(noise), int(data_seed))


@functools.cache
def _reference(m: int, d: int, noise: float, data_seed: int) -> Reference:
    import scipy.optimize

    A, b = _load(m, d, noise, data_seed)
    x_star, residual = scipy.optimize.nnls(A, b)
    return Reference(immutable(x_star), float(residual**2))


def reference(*, m: int, d: int, noise: float, data_seed: int) -> Reference:
    """``scipy.optimize.nnls``: the minimizer and ``||A x* - b||^2``."""
    return _reference(int(m), int(d), float(noise), int(data_seed))


class NNLS:
    """Data, ``f_star``, a positive seeded start and the metrics (numpy); the loss, for torch and jax."""

    def __init__(self, *, backend: Any, m: int, d: int, noise: float, data_seed: int) -> None:
        self.backend = backend
        self.A_np, self.b_np = load_data(m=m, d=d, noise=noise, data_seed=data_seed)
        ref = reference(m=m, d=d, noise=noise, data_seed=data_seed)
        self.x_star: np.ndarray = ref.x_star
        self.f_star: float | None = ref.f_star
        self.dim = self.A_np.shape[1]
        # Copies: torch.as_tensor would alias the cached read-only arrays.
        self.A = backend.asarray(np.array(self.A_np))
        self.b = backend.asarray(np.array(self.b_np))

    def init_params(self, seed: int) -> Any:
        """``x ~ Uniform(0.5, 1.5)^d`` from ``default_rng(seed)``: strictly feasible, as EG needs."""
        return self.backend.asarray(np.random.default_rng(seed).uniform(0.5, 1.5, self.dim))

    def loss(self, params: Any) -> Any:
        residual = self.A @ params - self.b
        return residual @ residual

    def evaluate(self, params: Any) -> dict[str, float]:
        x = to_float64(self.backend, params)
        feasible = np.maximum(x, 0.0)
        residual = self.A_np @ feasible - self.b_np
        gradient = 2.0 * self.A_np.T @ residual
        # Natural residual ||p - max(p - grad f(p), 0)|| at p = max(x, 0): zero exactly at a KKT point,
        # and continuous in x (the projected gradient switches at p_i = 0, so a subnormal p_i, which
        # torch keeps and XLA flushes, reported the multiplier g_i instead of about 0).
        natural = feasible - np.maximum(feasible - gradient, 0.0)
        return {
            "objective": float(residual @ residual),
            "infeasibility": float(np.linalg.norm(np.minimum(x, 0.0))),
            "distance": float(np.linalg.norm(feasible - self.x_star) / max(np.linalg.norm(self.x_star), 1e-300)),
            "kkt_residual": float(np.linalg.norm(natural)),
        }
