"""Winsorized gradient descent: per-example gradients clipped coordinate-wise at percentiles.

For per-example gradients ``G`` (m, dim) each coordinate ``j`` is clipped to
``[P_c(G[:, j]), P_{100-c}(G[:, j])]`` (percentiles over the examples, linear interpolation),
then averaged: ``x <- x - lr mean_i clip(G_i)``. Coordinates where a few examples dominate (the
memorization signal of the Generalization Mystery paper) are attenuated; coherent directions,
supported by many examples, pass. ``percentile = 0`` is gradient descent.
"""

from __future__ import annotations

from typing import Any

from harness.arrays import namespace

__all__ = ["WinsorizedGD"]


class WinsorizedGD:
    """Gradient descent on the coordinate-wise winsorized mean of per-example gradients.

    Parameters
    ----------
    lr
        Learning rate.
    percentile
        ``c`` in [0, 50): clip each coordinate to its ``c``-th and ``(100 - c)``-th percentiles.
    """

    def __init__(self, *, lr: float, percentile: float) -> None:
        if not 0.0 <= percentile < 50.0:
            raise ValueError(f"percentile must be in [0, 50); got {percentile}")
        self.lr, self.percentile = float(lr), float(percentile)

    def init(self, params: Any, oracle: Any) -> None:
        return None

    def step(self, params: Any, state: None, oracle: Any) -> tuple[Any, None]:
        grads = oracle.per_example_grads(params)  # the minibatch on a stochastic oracle
        return params - self.lr * winsorized_mean(grads, self.percentile), state


def winsorized_mean(grads: Any, percentile: float) -> Any:
    """Mean over rows of ``grads`` after clipping each column to its percentile band."""
    if percentile == 0.0:
        return grads.mean(0)
    xp = namespace(grads)
    fractions = [percentile / 100.0, 1.0 - percentile / 100.0]
    if xp.__name__ == "torch":
        low, high = xp.quantile(grads, xp.as_tensor(fractions, dtype=grads.dtype, device=grads.device), dim=0)
    else:
        low, high = xp.quantile(grads, xp.asarray(fractions, dtype=grads.dtype), axis=0)
    return xp.clip(grads, low, high).mean(0)
