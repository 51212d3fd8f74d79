"""``drift``: the discretisation drift of gradient descent and the Noether increment.

Gradient descent with step ``h`` follows, to second order, the flow of the modified loss
``f + (h/4) ||grad f||^2`` rather than the gradient flow of ``f`` (implicit gradient
regularization): one step ``x - h g`` differs from the flow's position at time ``h`` by
``(h^2/2) H g + O(h^3)``. The probe reports

- ``implicit_reg = (h/4) ||g||^2`` and ``modified_objective = f + implicit_reg``;
- ``step_drift = (h^2/2) ||H g||``, the leading term of the one-step distance to the flow;
- ``norm_sq_increment = ||x_t||^2 - ||x_{t-1}||^2`` and ``lr2_grad_sq = h^2 ||g(x_{t-1})||^2``
  for the last step: for scale-invariant weights (``g`` orthogonal to ``x``) gradient descent
  gives exactly ``||x_{t+1}||^2 = ||x_t||^2 + h^2 ||g_t||^2`` (the discrete Noether charge), so
  the two agree. Option ``groups`` restricts both to named layout blocks (``.<name>`` columns).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from harness.probes import ProbeContext

__all__ = ["Drift"]


class Drift:
    """Implicit regularization and norm dynamics at the evaluated point.

    Parameters
    ----------
    lr
        The step ``h``; 0 takes the method's ``lr`` hyperparameter.
    groups
        Comma-separated names of layout blocks with their own increment columns; empty: none.
    """

    def __init__(self, *, lr: float = 0.0, groups: str = "") -> None:
        self.lr = float(lr)
        self.groups = tuple(g.strip() for g in groups.split(",") if g.strip())

    def __call__(self, context: ProbeContext) -> dict[str, float]:
        backend, oracle = context.backend, context.oracle
        h = self.lr or _float(context.hyperparameters.get("lr"))
        if not h:
            raise ValueError("the drift probe needs a learning rate: give the option lr, or a method with an lr")

        def numpy(value: Any) -> np.ndarray:
            return np.asarray(backend.to_numpy(value), dtype=np.float64)

        x = numpy(context.params)
        value, grad = oracle.value_and_grad(context.params)
        g = numpy(grad)
        implicit = h / 4.0 * float(g @ g)
        out = {"implicit_reg": implicit, "modified_objective": float(numpy(value)) + implicit}
        if "hvp" in oracle.capabilities:
            out["step_drift"] = h * h / 2.0 * float(np.linalg.norm(numpy(oracle.hvp(context.params, grad))))
        slices = self._slices(context.problem, x.size)
        if context.previous_params is None:
            out |= {f"{key}{suffix}": math.nan for suffix in slices for key in ("norm_sq_increment", "lr2_grad_sq")}
            return out
        x_prev = numpy(context.previous_params)
        g_prev = numpy(oracle.grad(context.previous_params))
        for suffix, part in slices.items():
            out[f"norm_sq_increment{suffix}"] = float(x[part] @ x[part] - x_prev[part] @ x_prev[part])
            out[f"lr2_grad_sq{suffix}"] = h * h * float(g_prev[part] @ g_prev[part])
        return out

    def _slices(self, problem: Any, dim: int) -> dict[str, slice]:
        slices = {"": slice(0, dim)}
        if not self.groups:
            return slices
        layout = getattr(problem, "layout", None)
        if layout is None:
            raise ValueError(f"drift groups {list(self.groups)} need a problem with a layout")
        offset, blocks = 0, {}
        for name, shape in layout:
            size = int(np.prod(shape))
            blocks[name] = slice(offset, offset + size)
            offset += size
        for name in self.groups:
            if name not in blocks:
                raise ValueError(f"drift group {name!r} is not in the layout {list(blocks)}")
            slices[f".{name}"] = blocks[name]
        return slices


def _float(value: Any) -> float:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else 0.0
