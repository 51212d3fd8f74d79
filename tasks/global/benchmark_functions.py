"""Multimodal test functions of global optimization (Rastrigin, Ackley): one class each for torch and jax.

Both have their global minimum ``f* = 0`` at ``x* = 0`` and a lattice of local minima near the
integer points, which trap gradient descent. The start is ``x ~ N(3, I)`` from the run seed (the
CBO paper's initialization, far from the origin). ``success`` is ``||x||_inf < 0.25``: the iterate is
in the global minimum's basin, not at a neighbouring local minimum (the nearest sit at about 1).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from harness.arrays import namespace, to_float64

__all__ = ["Ackley", "Rastrigin", "SUCCESS_RADIUS", "ackley", "rastrigin"]

#: ``success`` is ``||x||_inf`` below this.
SUCCESS_RADIUS = 0.25


def rastrigin(x: Any) -> Any:
    """``(1/d) sum_i (x_i^2 - 10 cos(2 pi x_i) + 10)``, in the namespace of ``x``."""
    xp = namespace(x)
    return (x * x - 10 * xp.cos(2 * math.pi * x) + 10).mean()


def ackley(x: Any) -> Any:
    """``-20 exp(-0.2 sqrt(mean x_i^2)) - exp(mean cos(2 pi x_i)) + 20 + e``, in the namespace of ``x``."""
    xp = namespace(x)
    return -20 * xp.exp(-0.2 * xp.sqrt((x * x).mean())) - xp.exp(xp.cos(2 * math.pi * x).mean()) + 20 + math.e


class _GlobalFunction:
    """A test function of ``d`` variables, its seeded start and its metrics (numpy)."""

    function: Any = None

    def __init__(self, *, backend: Any, d: int) -> None:
        if d < 1:
            raise ValueError(f"d must be >= 1 (got {d})")
        self.backend, self.dim = backend, int(d)
        self.x_star, self.f_star = np.zeros(self.dim), 0.0

    def init_params(self, seed: int) -> Any:
        """``x ~ N(3, I)`` from ``default_rng(seed)``."""
        return self.backend.asarray(3.0 + np.random.default_rng(seed).standard_normal(self.dim))

    def loss(self, params: Any) -> Any:
        return type(self).function(params)

    def evaluate(self, params: Any) -> dict[str, float]:
        x = to_float64(self.backend, params)
        return {
            "objective": float(type(self).function(x)),
            "distance": float(np.linalg.norm(x)),
            "success": float(np.abs(x).max() < SUCCESS_RADIUS),
        }


class Rastrigin(_GlobalFunction):
    """The Rastrigin function, scaled by ``1/d``."""

    function = staticmethod(rastrigin)


class Ackley(_GlobalFunction):
    """The Ackley function."""

    function = staticmethod(ackley)
