"""Lion (evolved sign momentum) for torch, the update rule of ``optax.lion``.

``c = b1 m + (1 - b1) g``; ``x <- x - lr (sign(c) + weight_decay x)``; ``m <- b2 m + (1 - b2) g``.
torch.optim has no Lion; this module follows optax's recursion term by term, so the two
frameworks run the same method.
"""

from __future__ import annotations

from typing import Any

__all__ = ["Lion"]


class Lion:
    """Lion on the oracle's gradient; the state is the momentum ``m`` (zeros at the start).

    Parameters
    ----------
    lr, b1, b2, weight_decay
        As in ``optax.lion``.
    """

    def __init__(self, *, lr: float, b1: float, b2: float, weight_decay: float) -> None:
        self.lr, self.b1, self.b2, self.weight_decay = float(lr), float(b1), float(b2), float(weight_decay)

    def init(self, params: Any, oracle: Any) -> Any:
        return params * 0.0

    def step(self, params: Any, state: Any, oracle: Any) -> tuple[Any, Any]:
        grad = oracle.grad(params)
        direction = (self.b1 * state + (1.0 - self.b1) * grad).sign()
        params = params - self.lr * (direction + self.weight_decay * params)
        return params, self.b2 * state + (1.0 - self.b2) * grad
