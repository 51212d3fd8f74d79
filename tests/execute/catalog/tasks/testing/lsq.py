"""Finite-sum least squares that can shard itself over torch.distributed ranks (engine tests).

.. math:: f(w) = \\frac{1}{n} \\sum_i \\tfrac12 (x_i^\\top w - y_i)^2 + \\tfrac{\\ell_2}{2} \\lVert w \\rVert^2

One class serves torch and jax: the backend makes the arrays and both frameworks write the
loss the same way.
"""

from __future__ import annotations

import numpy as np


class LeastSquares:
    def __init__(self, *, backend, n: int = 63, d: int = 8, l2: float = 0.01, data_seed: int = 0) -> None:
        rng = np.random.default_rng(data_seed)
        X = rng.standard_normal((n, d))
        y = X @ rng.standard_normal(d) + 0.1 * rng.standard_normal(n)
        self.backend, self.n, self.d, self.l2 = backend, n, d, l2
        self._data(X, y)
        w = np.linalg.solve(X.T @ X / n + l2 * np.eye(d), X.T @ y / n)
        r = X @ w - y
        self.f_star = float(0.5 * np.mean(r * r) + 0.5 * l2 * w @ w)

    def _data(self, X: np.ndarray, y: np.ndarray) -> None:
        self.X_np, self.y_np = X, y
        self.X, self.y = self.backend.asarray(X), self.backend.asarray(y)

    def shard(self, rank: int, world_size: int):
        """This rank's rows (uneven shards on purpose) and their share of the sum."""
        rows = np.array_split(np.arange(self.n), world_size)[rank]
        local = object.__new__(type(self))
        local.__dict__.update(self.__dict__)
        local._data(self.X_np[rows], self.y_np[rows])
        return local, len(rows) / self.n

    def init_params(self, seed: int):
        return self.backend.asarray(np.random.default_rng(seed).standard_normal(self.d))

    def loss(self, w):
        r = self.X @ w - self.y
        return 0.5 * (r * r).mean() + 0.5 * self.l2 * (w * w).sum()

    def evaluate(self, w) -> dict[str, float]:
        return {"objective": float(self.loss(w))}
