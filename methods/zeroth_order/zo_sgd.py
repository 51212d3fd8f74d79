"""Zeroth-order SGD: gradient estimates from central differences along random directions.

``g = (1/q) sum_j (f(x + mu u_j) - f(x - mu u_j)) / (2 mu) u_j`` with ``u_j ~ N(0, I)``, then
``x <- x - lr g``. Only function values are queried (``2 q`` per step), each counted by the
oracle as a ``value`` call. ``E[u u^T] = I`` makes ``g`` an unbiased estimate of the gradient of
the Gaussian smoothing of ``f``, which equals ``grad f`` up to ``O(mu^2)``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from harness.arrays import like

__all__ = ["ZOSGD"]

#: Second word of the direction generator's seed ``[run seed, _STREAM]``.
_STREAM = 0x2E05


class ZOSGD:
    """Two-point zeroth-order SGD with ``q`` Gaussian directions per step.

    Parameters
    ----------
    lr
        Step size.
    mu
        Finite-difference radius.
    directions
        ``q``, the number of directions averaged per step.
    """

    def __init__(self, *, lr: float, mu: float, directions: int) -> None:
        if directions < 1 or not mu > 0:
            raise ValueError(f"need directions >= 1 and mu > 0 (got {directions}, {mu})")
        self.lr, self.mu, self.directions = float(lr), float(mu), int(directions)

    def init(self, params: Any, oracle: Any) -> np.random.Generator:
        # Directions come from a generator of the method's own, seeded by the run seed.
        return np.random.default_rng([int(getattr(oracle, "seed", 0)), _STREAM])

    def step(self, params: Any, state: np.random.Generator, oracle: Any) -> tuple[Any, np.random.Generator]:
        directions = state.standard_normal((self.directions, int(params.shape[0])))
        estimate = np.zeros(directions.shape[1])
        for u in directions:
            shift = like(self.mu * u, params)
            difference = float(oracle.value(params + shift)) - float(oracle.value(params - shift))
            estimate += difference / (2.0 * self.mu) * u
        return params - like(self.lr / self.directions * estimate, params), state
