"""Exponentiated gradient (sign-preserving multiplicative updates), for torch and jax.

``w <- w * exp(-eta * sign(w) * grad f(w))``: mirror descent with the entropy of ``|w|``, i.e.
gradient descent on ``log |w|`` in the geometry where each weight keeps its sign (Dale's law).
For a positive start this is ``w <- w * exp(-eta grad)``; a weight never crosses zero.
"""

from __future__ import annotations

from typing import Any

from harness.arrays import namespace

__all__ = ["ExponentiatedGradient"]


class ExponentiatedGradient:
    """Multiplicative update with learning rate ``lr``; zero weights stay zero.

    Parameters
    ----------
    lr
        The step ``eta`` in the exponent.
    """

    def __init__(self, *, lr: float) -> None:
        self.lr = float(lr)

    def init(self, params: Any, oracle: Any) -> None:
        return None

    def step(self, params: Any, state: None, oracle: Any) -> tuple[Any, None]:
        xp = namespace(params)
        grad = oracle.grad(params)
        return params * xp.exp(-self.lr * xp.sign(params) * grad), state
