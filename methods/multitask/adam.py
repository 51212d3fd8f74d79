"""The inner optimizer every multi-task rule here steps with: Adam along a given direction, for torch and jax.

Written by hand (not ``torch.optim``/``optax``) because the direction is not a gradient the
library could take: each rule builds it from the task gradients, and the same update must run
in both frameworks and inside one jitted step.
"""

from __future__ import annotations

from typing import Any

from harness.arrays import namespace

__all__ = ["adam_update"]


def adam_update(params: Any, direction: Any, m: Any, v: Any, t: Any, lr: float, b1: float = 0.9, b2: float = 0.999,
                eps: float = 1e-8) -> tuple[Any, Any, Any]:
    """One bias-corrected Adam step along ``direction`` (``t`` the new step count, from 1).

    The arithmetic of ``torch.optim.Adam`` (``lr / (1 - b1^t) m / (sqrt(v) / sqrt(1 - b2^t) + eps)``),
    so a fixed direction sequence gives its iterates to rounding.
    """
    xp = namespace(params)
    m = b1 * m + (1 - b1) * direction
    v = b2 * v + (1 - b2) * direction * direction
    denominator = xp.sqrt(v) / xp.sqrt(1 - b2**t) + eps
    return params - (lr / (1 - b1**t)) * m / denominator, m, v
