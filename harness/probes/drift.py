"""``drift``: the discretisation drift of gradient descent and the Noether increment, on the step taken.

Gradient descent with step ``h`` follows, to second order, the flow of the modified loss
``f + (h/4) ||grad f||^2`` rather than the gradient flow of ``f`` (implicit gradient
regularization): one step ``x - h g`` differs from the flow's position at time ``h`` by
``(h^2/2) H g + O(h^3)``. For scale-invariant weights (``f(c x) = f(x)``, so ``g`` is orthogonal
to ``x``) a gradient step gives exactly ``||x_{t+1}||^2 = ||x_t||^2 + h^2 ||g_t||^2`` (the discrete
Noether charge).

The probe measures the step the method took, ``s = x_t - x_{t-1}`` (``previous_params ->
params``), and reports for every method (and each layout block of option ``groups``, as
``.<name>`` columns):

- ``norm_sq_increment = ||x_t||^2 - ||x_{t-1}||^2`` (computed as ``s . (x_t + x_{t-1})``) and
  ``step_sq = ||s||^2``: they agree wherever the step is orthogonal to ``x_{t-1}``, whatever the
  method (``norm_sq_increment - step_sq = 2 x_{t-1} . s``).

The gradient-descent quantities hold only for a gradient step, so they are reported only where
the step *is* one: ``s = -h g(x_{t-1})`` to rounding, i.e. ``h = -s . g / ||g||^2 > 0`` and
``||s + h g|| <= sqrt(eps) ||s|| + 4 eps (||x_t|| + ||x_{t-1}||)`` (``eps`` of the parameters'
dtype). There ``h`` is the measured step size (reported as ``h``; it follows a schedule or a
spike as the method does), and

- ``lr2_grad_sq = h^2 ||g(x_{t-1})||^2`` (per group): the Noether increment, which equals
  ``norm_sq_increment`` on scale-invariant blocks;
- ``implicit_reg = (h/4) ||g(x_t)||^2``, ``modified_objective = f + implicit_reg`` and
  ``step_drift = (h^2/2) ||H g||`` (with ``hvp``) at ``x_t``.

Where the step is not a gradient step (adam, muon, curl descent with flipped neurons, momentum,
minibatch gradients) these are left out: a GD step of size ``h`` was never taken, and only the
step's own ``norm_sq_increment`` and ``step_sq`` are reported. Where no step was measured (step
0, or a point evaluated without its previous iterate) nothing of the step is reported, and the
GD quantities only with an explicit option ``lr`` (the caller's ``h``). Values that do not apply
are left out, not NaN: the trace's columns are null there, which the leaderboard's bands skip.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from harness.probes import ProbeContext

__all__ = ["Drift", "gradient_step_size"]


def gradient_step_size(step: np.ndarray, grad: np.ndarray, *, scale: float, eps: float) -> float | None:
    """``h`` if ``step`` is the gradient step ``-h grad`` (``h > 0``) to rounding, else None.

    ``scale`` is ``||x_t|| + ||x_{t-1}||`` (the rounding of ``x - h g`` is relative to ``x``) and
    ``eps`` the parameters' machine epsilon.
    """
    gg = float(grad @ grad)
    if not gg > 0 or not np.all(np.isfinite(step)):
        return None
    h = -float(step @ grad) / gg
    if not h > 0:
        return None
    residual = float(np.linalg.norm(step + h * grad))
    return h if residual <= math.sqrt(eps) * float(np.linalg.norm(step)) + 4 * eps * scale else None


class Drift:
    """Implicit regularization and norm dynamics at the evaluated point, on the step taken.

    Parameters
    ----------
    lr
        The step ``h`` of the gradient-descent quantities where no step was measured (step 0);
        0: none there. A measured step always decides: its own ``h`` if it is a gradient step,
        no gradient-descent quantities if it is not.
    groups
        Comma-separated names of layout blocks with their own increment columns; empty: none.
    """

    def __init__(self, *, lr: float = 0.0, groups: str = "") -> None:
        self.lr = float(lr)
        self.groups = tuple(g.strip() for g in groups.split(",") if g.strip())

    def __call__(self, context: ProbeContext) -> dict[str, float]:
        backend, oracle = context.backend, context.oracle

        def numpy(value: Any) -> np.ndarray:
            return np.asarray(backend.to_numpy(value), dtype=np.float64)

        raw = np.asarray(backend.to_numpy(context.params))
        eps = float(np.finfo(raw.dtype).eps) if np.issubdtype(raw.dtype, np.floating) else float(np.finfo(float).eps)
        x = raw.astype(np.float64)
        slices = self._slices(context.problem, x.size)
        out: dict[str, float] = {}
        h: float | None = self.lr or None
        if context.previous_params is not None:
            x_prev = numpy(context.previous_params)
            step = x - x_prev
            g_prev = numpy(oracle.grad(context.previous_params))
            h = gradient_step_size(step, g_prev, scale=float(np.linalg.norm(x) + np.linalg.norm(x_prev)), eps=eps)
            for suffix, part in slices.items():
                out[f"norm_sq_increment{suffix}"] = float(step[part] @ (x[part] + x_prev[part]))
                out[f"step_sq{suffix}"] = float(step[part] @ step[part])
                if h is not None:
                    out[f"lr2_grad_sq{suffix}"] = h * h * float(g_prev[part] @ g_prev[part])
            if h is not None:
                out["h"] = h
        if h is None:
            return out  # not a gradient step (or no step and no declared h): no GD quantities
        value, grad = oracle.value_and_grad(context.params)
        g = numpy(grad)
        implicit = h / 4.0 * float(g @ g)
        out |= {"implicit_reg": implicit, "modified_objective": float(numpy(value)) + implicit}
        if "hvp" in oracle.capabilities:
            out["step_drift"] = h * h / 2.0 * float(np.linalg.norm(numpy(oracle.hvp(context.params, grad))))
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
