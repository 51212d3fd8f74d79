"""Federated methods on a task's ``clients`` capability: FedAvg and federated adversarial training (FAL).

The vector stacks the clients' copies ``(w_1, ..., w_C)``. A step is one communication round: every
client runs ``oracle.local_epochs`` local epochs on its own examples from the server's model (one
epoch: one full-batch ``client_grads`` step, all clients at once since each answers at its own
copy), then ``oracle.aggregate`` sets every copy to the size-weighted mean (the server's
averaging and broadcast, two counted communications per client). Written over the array
namespace, for torch and jax (eager).

:class:`FedAvg` (McMahan et al. 2017) trains on clean inputs. :class:`FAL` (Li, Song, Zhuo
et al. 2022) trains adversarially: before each local epoch its inner loop finds every example's
perturbation by projected gradient ascent in the task's l2 ball (radius
``oracle.perturbation_radius``), steps of ``step_size`` along the normalized
``perturbation_grads`` (l2 PGD, Madry et al. 2018), and the local step is the gradient of the loss
at the perturbed inputs.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from harness.arrays import like, namespace

__all__ = ["FAL", "FedAvg", "project_rows"]

#: Floor of a gradient's norm in the normalized ascent step (a zero gradient leaves its row unmoved).
TINY = 1e-300


def project_rows(deltas: Any, radius: float) -> Any:
    """Each row of ``deltas`` projected onto the l2 ball of ``radius``."""
    xp = namespace(deltas)
    norms = xp.sqrt((deltas * deltas).sum(1, keepdims=True))
    return deltas * (radius / xp.maximum(norms, radius * xp.ones_like(norms)))


class FedAvg:
    """FedAvg: ``local_epochs`` full-batch local steps of ``lr`` per client, then the server's average.

    Parameters
    ----------
    lr
        The clients' local step size.
    """

    def __init__(self, *, lr: float) -> None:
        if not lr > 0:
            raise ValueError(f"need lr > 0 (got {lr})")
        self.lr = float(lr)

    def init(self, params: Any, oracle: Any) -> dict[str, Any]:
        return {}

    def perturbations(self, params: Any, state: dict[str, Any], oracle: Any) -> Any:
        """The inputs' perturbations of a local epoch: none."""
        return None

    def step(self, params: Any, state: dict[str, Any], oracle: Any) -> tuple[Any, dict[str, Any]]:
        local = params
        for _ in range(int(oracle.local_epochs)):
            local = local - self.lr * oracle.client_grads(local, self.perturbations(local, state, oracle))
        return oracle.aggregate(local), state


class FAL(FedAvg):
    """Federated adversarial learning: FedAvg whose local epochs train on l2-PGD adversarial inputs.

    Parameters
    ----------
    lr
        The clients' local step size.
    attack_steps
        PGD steps of the inner maximization per local epoch.
    attack_step
        The PGD step length; ``0``: ``2.5 radius / attack_steps`` (Madry et al.'s rule).
    """

    def __init__(self, *, lr: float, attack_steps: int = 3, attack_step: float = 0.0) -> None:
        super().__init__(lr=lr)
        if attack_steps < 1 or attack_step < 0:
            raise ValueError(f"need attack_steps >= 1 and attack_step >= 0 (got {attack_steps}, {attack_step})")
        self.attack_steps, self.attack_step = int(attack_steps), float(attack_step)

    def init(self, params: Any, oracle: Any) -> dict[str, Any]:
        features = int(oracle.dimension) // int(oracle.n_clients)
        examples = int(oracle.clients().sum())
        return {"shape": (examples, features)}

    def perturbations(self, params: Any, state: dict[str, Any], oracle: Any) -> Any:
        """The inner loop: l2 PGD from zero, each step along the normalized gradient, projected on the ball."""
        radius = float(oracle.perturbation_radius)
        step = self.attack_step or 2.5 * radius / self.attack_steps
        xp = namespace(params)
        deltas = like(np.zeros(state["shape"]), params)
        for _ in range(self.attack_steps):
            grads = oracle.perturbation_grads(params, deltas)
            norms = xp.sqrt((grads * grads).sum(1, keepdims=True))
            deltas = project_rows(deltas + step * grads / xp.maximum(norms, TINY * xp.ones_like(norms)), radius)
        return deltas
