"""A diagonal quadratic with a closed-form optimum, for the engine's tests."""

from __future__ import annotations

import numpy as np


class Quadratic:
    def __init__(self, *, backend, d: int = 10, kappa: float = 10.0) -> None:
        self.backend = backend
        self.a_np = np.logspace(0.0, np.log10(kappa), d)
        self.b_np = np.random.default_rng(1234).standard_normal(d)
        self.a = backend.asarray(self.a_np)
        self.b = backend.asarray(self.b_np)
        self.f_star = float(-0.5 * np.sum(self.b_np**2 / self.a_np))  # at x* = b / a

    def init_params(self, seed: int):
        return self.backend.asarray(np.random.default_rng(seed).standard_normal(self.a_np.size))

    def loss(self, x):
        return 0.5 * (self.a * x * x).sum() - (self.b * x).sum()

    def evaluate(self, x) -> dict[str, float]:
        return {"objective": float(self.loss(x))}


class QuadraticTorch(Quadratic):
    pass


class QuadraticJax(Quadratic):
    pass


class SlowQuadratic(Quadratic):
    """The quadratic, whose evaluation sleeps: evaluation must stay off the method's clock."""

    def __init__(self, *, backend, d: int = 10, kappa: float = 10.0, eval_sleep_s: float = 0.0) -> None:
        super().__init__(backend=backend, d=d, kappa=kappa)
        self.eval_sleep_s = eval_sleep_s

    def evaluate(self, x) -> dict[str, float]:
        import time

        time.sleep(self.eval_sleep_s)
        return super().evaluate(x)
