"""A separable quadratic well for noisy (Langevin) dynamics: one problem class for torch and jax.

``f(x) = 1/2 sum_i h_i (x_i - x*_i)^2`` in dimension ``d``, with curvatures ``h_i`` spread evenly
over ``[h_min, h_max]`` (``numpy.linspace``) and the minimizer ``x* ~ N(0, I)`` drawn from
``default_rng(data_seed)`` (fixed across run seeds). The start is ``x* + N(0, I)`` from the run
seed: away from ``x*``, because the harness judges divergence against the initial objective
(a start at ``x*``, objective 0, would read as diverging at the first noisy step).

Metrics (numpy, from ``h`` and ``x*``, not from ``loss``): ``objective`` ``f(x)``, ``sq_error``
``||x - x*||^2`` and ``energy`` ``sum_i h_i (x_i - x*_i)^2 = 2 f(x)``. For the overdamped
Langevin dynamics ``dx = -grad f dt + s dW`` coordinate ``i`` is an Ornstein-Uhlenbeck process
of stationary variance ``s^2 / (2 h_i)``, so ``E[energy] = d s^2 / 2`` whatever the ``h_i``: the
energy measures the noise per unit curvature. The mean of ``N`` replicas driven by independent
noise has ``s^2 / N`` in place of ``s^2`` (``E[energy] = d s^2 / (2 N)``), whatever coupling
by a graph Laplacian they have (its columns sum to zero). ``f* = 0`` at ``x*`` exactly.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

from harness.arrays import immutable, to_float64

__all__ = ["QuadraticWell", "curvatures", "minimizer"]


@functools.cache
def _curvatures(d: int, h_min: float, h_max: float) -> np.ndarray:
    return immutable(np.linspace(h_min, h_max, d))


def curvatures(*, d: int, h_min: float, h_max: float) -> np.ndarray:
    """``h`` (d,): ``d`` curvatures evenly spaced over ``[h_min, h_max]`` (read-only)."""
    if d < 1 or not 0 < h_min <= h_max:
        raise ValueError(f"need d >= 1 and 0 < h_min <= h_max (got d={d}, h_min={h_min}, h_max={h_max})")
    return _curvatures(int(d), float(h_min), float(h_max))


@functools.cache
def _minimizer(d: int, data_seed: int) -> np.ndarray:
    return immutable(np.random.default_rng(data_seed).standard_normal(d))


def minimizer(*, d: int, data_seed: int) -> np.ndarray:
    """``x* ~ N(0, I)`` (d,) from ``default_rng(data_seed)`` (read-only)."""
    return _minimizer(int(d), int(data_seed))


class QuadraticWell:
    """``f(x) = 1/2 sum_i h_i (x_i - x*_i)^2`` (any namespace), its seeded start and metrics (numpy).

    Parameters
    ----------
    backend
        The framework backend (``asarray``, ``to_numpy``).
    d
        Dimension.
    h_min, h_max
        The smallest and largest curvature; the ``d`` curvatures are evenly spaced between them.
    data_seed
        Seed of ``x*``.
    """

    def __init__(self, *, backend: Any, d: int, h_min: float, h_max: float, data_seed: int) -> None:
        self.backend = backend
        self.dim = int(d)
        self.h_np = curvatures(d=d, h_min=h_min, h_max=h_max)
        self.x_star: np.ndarray = minimizer(d=d, data_seed=data_seed)
        self.f_star: float | None = 0.0  # f(x*) = 0 exactly: every term vanishes there
        # Copies: torch.as_tensor would alias the cached read-only arrays.
        self.h = backend.asarray(np.array(self.h_np))
        self.center = backend.asarray(np.array(self.x_star))

    def init_params(self, seed: int) -> Any:
        """``x* + N(0, I)`` from ``default_rng(seed)``: the same start in every framework."""
        return self.backend.asarray(self.x_star + np.random.default_rng(seed).standard_normal(self.dim))

    def loss(self, params: Any) -> Any:
        gap = params - self.center
        return 0.5 * (self.h * gap * gap).sum()

    def grad(self, params: Any) -> Any:
        """``h * (x - x*)`` in closed form (the oracle prefers it to autodiff: cheaper per replica)."""
        return self.h * (params - self.center)

    def evaluate(self, params: Any) -> dict[str, float]:
        gap = to_float64(self.backend, params) - self.x_star
        energy = float(self.h_np @ (gap * gap))
        return {"objective": 0.5 * energy, "sq_error": float(gap @ gap), "energy": energy}
