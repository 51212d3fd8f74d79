"""``ghost-radius``: the Taylor radius of cross-entropy along a step, set by complex zeros.

Along a step direction ``u`` (unit vector) the logits move as ``z(t) = z + t a`` to first order,
``a = J_z u`` (one JVP). The partition function ``F_i(t) = sum_k exp(z_ik + t a_ik)`` of example
``i`` has complex zeros, logarithmic singularities of the loss, that cap the radius of
convergence of its Taylor series in ``t``:

- multiclass: no zero lies within ``rho_a = pi / Delta_a``, ``Delta_a = max_i (max_k a_ik -
  min_k a_ik)``, since centring the exponents makes every term's phase lie in (-pi/2, pi/2);
- binary: ``F_i(t) = 0`` iff ``delta_i + t Delta_i = i pi (2 j + 1)`` with the margin
  ``delta_i = z_i1 - z_i0`` and ``Delta_i = a_i1 - a_i0``, so the nearest zero is exactly at
  ``|t| = sqrt(delta_i^2 + pi^2) / |Delta_i|``; the loss's radius is the minimum over examples.

The probe reports ``rho_a``, ``r = ||step|| / rho_a`` (the paper finds no failure for r < 1) and,
for two logits, the exact radius ``rho_exact`` and ``r_exact``.

By default it measures the step the method took, ``params - previous_params``, linearized at
``previous_params``. Where no step was taken (step 0, or a point evaluated without its previous
iterate) it reports nothing: the values are left out, not NaN, so the trace's columns are null
there (the store keeps nulls as missing, and the leaderboard's bands drop them, whereas a NaN
would be read as a failed run's worst value). A proposed gradient step ``-lr g``, a step nobody
took, is measured only on request (``direction: grad``).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from harness.probes import ProbeContext

__all__ = ["GhostRadius", "binary_radius", "spread_radius"]


def spread_radius(slopes: np.ndarray) -> float:
    """``pi / Delta_a`` for directional logit derivatives ``slopes`` (m, C); ``inf`` if all spreads are 0."""
    spread = float(np.max(np.ptp(np.atleast_2d(slopes), axis=1)))
    return math.pi / spread if spread > 0 else math.inf


def binary_radius(logits: np.ndarray, slopes: np.ndarray) -> float:
    """Distance to the nearest complex zero of any ``F_i`` for two logits per example (m, 2)."""
    margin = logits[:, 1] - logits[:, 0]
    spread = np.abs(slopes[:, 1] - slopes[:, 0])
    with np.errstate(divide="ignore"):
        radii = np.where(spread > 0, np.sqrt(margin**2 + math.pi**2) / spread, np.inf)
    return float(np.min(radii))


class GhostRadius:
    """``rho_a`` and ``r`` for the step at the evaluation point.

    Parameters
    ----------
    direction
        ``step``: the step just taken (``params - previous_params``), linearized at
        ``previous_params``; nothing is reported where there is none (step 0). ``grad``: the
        gradient step ``-lr grad`` proposed at ``params`` (not a step the method took).
    lr
        Learning rate of the proposed gradient step (``grad``); 0 takes the method's ``lr``
        hyperparameter.
    """

    def __init__(self, *, direction: str = "step", lr: float = 0.0) -> None:
        if direction not in ("step", "grad"):
            raise ValueError(f"direction must be 'step' or 'grad'; got {direction!r}")
        self.direction, self.lr = direction, float(lr)

    def __call__(self, context: ProbeContext) -> dict[str, float]:
        backend, oracle = context.backend, context.oracle
        to_numpy = backend.to_numpy
        length_known = True
        if self.direction == "step":
            if context.previous_params is None:
                return {}  # no step was taken: nothing to measure (null columns, not NaN)
            base = context.previous_params
            step = np.asarray(to_numpy(context.params), np.float64) - np.asarray(to_numpy(base), np.float64)
        else:
            base = context.params
            lr = self.lr or _float(context.hyperparameters.get("lr"))
            gradient = np.asarray(to_numpy(oracle.grad(base)), np.float64)
            step = -(lr or 1.0) * gradient
            length_known = bool(lr)  # without a learning rate only the direction is known
        norm = float(np.linalg.norm(step))
        if not norm > 0:
            return {"rho_a": math.inf, "r": 0.0, "step_norm": 0.0}
        logits, slopes = oracle.jvp_logits(base, backend.asarray(step / norm))
        logits, slopes = np.asarray(to_numpy(logits), np.float64), np.asarray(to_numpy(slopes), np.float64)
        length = norm if length_known else math.nan
        rho_a = spread_radius(slopes)
        out = {"rho_a": rho_a, "r": length / rho_a, "step_norm": length}
        if logits.shape[1] == 2:
            rho = binary_radius(logits, slopes)
            out["rho_exact"] = rho
            out["r_exact"] = length / rho
        return out


def _float(value: Any) -> float:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else 0.0
