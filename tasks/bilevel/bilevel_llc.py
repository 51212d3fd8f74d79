"""A bilevel problem whose lower level has a constraint coupling both levels (LV-HBA's toy): torch and jax.

With ``x`` in R^n and ``y = (y1, y2)`` in R^{2n}, the parameter vector is ``(x, y1, y2)`` (3n)::

    min_{x, y}  F(x, y) = 1/2 ||x - y2||^2 + 1/2 ||y1 - 1||^2
    s.t.        y in argmin_{y'} { f(x, y') = 1/2 ||y1'||^2 - x.y1' + 1.y2' : g(x, y') <= 0 },
                g(x, y) = -(1.x + 1.y1 + 1.y2)   (the coupled constraint 1.x + 1.y1 + 1.y2 >= 0).

The lower problem is convex in ``y`` with an affine constraint, so its KKT conditions
characterize its solutions. ``f`` is linear in ``y2``: the constraint is active, and the y2
stationarity ``1 - mu = 0`` pins the multiplier ``mu = 1``; then ``y1 = x + 1`` and
``1.y2 = -2 (1.x) - n``, and only the sum of ``y2`` is pinned: the lower solution set is not a
singleton. Its optimal value is ``phi(x) = -1/2 ||x||^2 - 2 (1.x) - n/2``. The (optimistic)
bilevel problem picks the best ``y2`` for ``F``: ``y2 = x + ((s - 1.x) / n) 1`` with
``s = -2 (1.x) - n``, which leaves ``F = (3 (1.x) + n)^2 / (2n) + 1/2 ||x||^2``, strictly convex
with minimizer ``x* = -0.3 1``; then ``y1* = 0.7 1``, ``y2* = -0.4 1`` and ``F* = n / 20``.

``loss`` is the upper objective ``F``; ``bilevel_terms`` answers ``[F, f, g]``. The metrics are
numpy, written apart from the loss code.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from harness.arrays import namespace, to_float64

__all__ = ["BilevelLLC", "lower_value", "solution"]


def solution(n: int) -> np.ndarray:
    """The bilevel solution ``(x*, y1*, y2*) = (-0.3 1, 0.7 1, -0.4 1)`` (closed form, module docstring)."""
    return np.concatenate([np.full(n, -0.3), np.full(n, 0.7), np.full(n, -0.4)])


def lower_value(x: np.ndarray) -> float:
    """``min_y {f(x, y) : g(x, y) <= 0} = -1/2 ||x||^2 - 2 (1.x) - n/2``, attained at ``y1 = x + 1``, ``1.y2 = -2 (1.x) - n``."""
    return float(-0.5 * x @ x - 2.0 * x.sum() - 0.5 * x.size)


class BilevelLLC:
    """``(x, y1, y2)`` in R^{3n}; ``loss`` = ``F``; ``bilevel_terms`` = ``[F, f, g]``; numpy metrics."""

    n_constraints = 1

    def __init__(self, *, backend: Any, n: int) -> None:
        if n < 1:
            raise ValueError(f"need n >= 1, got {n}")
        self.backend = backend
        self.n = int(n)
        self.dim = 3 * self.n
        self.upper_dimension = self.n
        self.solution = solution(self.n)
        self.x_star = self.solution
        # F is not reported against an optimum: off the lower solution set F can fall below F* = n / 20.
        self.f_star: float | None = None

    def init_params(self, seed: int) -> Any:
        """``(x, y1, y2) ~ N(0, I_{3n})`` from ``default_rng(seed)`` (infeasible about half the time)."""
        return self.backend.asarray(np.random.default_rng(seed).standard_normal(self.dim))

    def bilevel_terms(self, params: Any) -> Any:
        xp = namespace(params)
        n = self.n
        x, y1, y2 = params[:n], params[n:2 * n], params[2 * n:]
        upper = 0.5 * ((x - y2) ** 2).sum() + 0.5 * ((y1 - 1.0) ** 2).sum()
        lower = 0.5 * (y1 * y1).sum() - (x * y1).sum() + y2.sum()
        constraint = -params.sum()
        return xp.stack([upper, lower, constraint])

    def loss(self, params: Any) -> Any:
        n = self.n
        x, y1, y2 = params[:n], params[n:2 * n], params[2 * n:]
        return 0.5 * ((x - y2) ** 2).sum() + 0.5 * ((y1 - 1.0) ** 2).sum()

    def evaluate(self, params: Any) -> dict[str, float]:
        w = to_float64(self.backend, params)
        n = self.n
        x, y1, y2 = w[:n], w[n:2 * n], w[2 * n:]
        x_star = self.solution[:n]
        lower = 0.5 * float(np.dot(y1, y1)) - float(np.dot(x, y1)) + float(np.sum(y2))
        return {
            "objective": 0.5 * float(np.sum((x - y2) ** 2)) + 0.5 * float(np.sum((y1 - 1.0) ** 2)),
            "relative_error": float(np.linalg.norm(x - x_star) / np.linalg.norm(x_star)),
            "y_relative_error": float(np.linalg.norm(w[n:] - self.solution[n:]) / np.linalg.norm(self.solution[n:])),
            "lower_gap": lower - lower_value(x),
            "constraint_violation": max(-float(np.sum(w)), 0.0),
        }
