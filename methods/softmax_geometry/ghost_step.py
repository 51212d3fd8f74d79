"""Ghost step: cap a step at the radius set by the complex zeros of the softmax partition function.

Along a direction ``v`` the logits move as ``z + t a`` with ``a = J_z v / ||v||`` (one JVP); no
zero of any partition function ``sum_k exp(z_ik + t a_ik)`` lies within
``rho_a = pi / max_i (max_k a_ik - min_k a_ik)``, so the loss's Taylor model is valid there. The
controller takes ``tau = min(lr ||v||, rho_a)`` along ``v / ||v||``; here ``v = -grad f`` (a
gradient-descent base). ``SpikedGD`` is the same loop without the cap: plain gradient descent under
the same learning-rate schedule, the control of a spike scenario.

The schedule multiplies ``lr`` by ``spike_factor`` for steps ``spike_start .. spike_start +
spike_steps - 1`` (1-based), a learning-rate spike.
"""

from __future__ import annotations

import math
from typing import Any

from harness.arrays import namespace

__all__ = ["GhostStep", "SpikedGD"]


class SpikedGD:
    """Gradient descent whose learning rate spikes by ``spike_factor`` for ``spike_steps`` steps.

    Parameters
    ----------
    lr
        Base learning rate.
    spike_factor, spike_start, spike_steps
        The spike: ``lr * spike_factor`` on steps ``spike_start <= t < spike_start + spike_steps``.
    """

    cap = False

    def __init__(self, *, lr: float, spike_factor: float, spike_start: int, spike_steps: int) -> None:
        self.lr, self.spike_factor = float(lr), float(spike_factor)
        self.spike_start, self.spike_steps = int(spike_start), int(spike_steps)

    def learning_rate(self, t: int) -> float:
        """The learning rate of step ``t`` (1-based)."""
        spiking = self.spike_start <= t < self.spike_start + self.spike_steps
        return self.lr * self.spike_factor if spiking else self.lr

    def init(self, params: Any, oracle: Any) -> int:
        return 0  # steps taken

    def step(self, params: Any, state: int, oracle: Any) -> tuple[Any, int]:
        t = state + 1
        grad = oracle.grad(params)
        norm = float(namespace(params).linalg.norm(grad))
        if not norm > 0:
            return params, t
        tau = self.learning_rate(t) * norm
        if self.cap:
            tau = min(tau, self.radius(params, -grad / norm, oracle))
        return params - (tau / norm) * grad, t

    def radius(self, params: Any, direction: Any, oracle: Any) -> float:
        """``rho_a = pi / Delta_a`` along the unit ``direction``, on the examples of the last gradient."""
        indices = oracle.last_indices if getattr(oracle, "stochastic", False) else None
        _, slopes = oracle.jvp_logits(params, direction, indices)
        xp = namespace(slopes)
        spread = float(xp.max(xp.amax(slopes, axis=1) - xp.amin(slopes, axis=1)))
        return math.pi / spread if spread > 0 else math.inf


class GhostStep(SpikedGD):
    """:class:`SpikedGD` with every step capped at ``rho_a``: ``tau = min(lr ||g||, rho_a)``."""

    cap = True
