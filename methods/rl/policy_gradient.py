"""Group-sampled policy gradients for RL with verifiable rewards: leave-one-out REINFORCE, GRPO and PACS.

One step draws ``G`` rollouts per prompt from the current policy (``oracle.sample``, counted as
``P G`` samples; ``pi_old`` below is that sampling policy) and makes ``epochs`` ascent steps
``theta <- theta + lr d`` on them. Every direction ``d`` is a weighted sum of the rollouts' score
functions, ``d = sum_i w_i grad log pi(a_i | p_i)``: one ``oracle.policy_grad`` call with the
weights ``w``; the epochs after the first read the current ``log pi`` by one ``oracle.logprobs``
call each (for the ratio ``rho_i = pi / pi_old`` and PACS's score), and the first reads
``log pi_old`` when there are later epochs. The weights are computed on the host in numpy (a
group of ``G`` scalars per prompt) and the methods never read the problem: they see only the
rollouts, their rewards and the log-probabilities.

Objectives are summed over prompts and averaged over each prompt's group (``1/G``), so the step
size does not depend on ``P``: on a tabular policy each prompt's logits see only its own group.
With ``loo(x)_i = (sum_{j in group} x_j - x_i) / (G - 1)``, the mean of the rest of the group:

- ``reinforce-loo``: ``w_i = (R_i - loo(R)_i) / G``. The baseline does not depend on ``a_i``, so
  ``E[d] = sum_p grad E_{a ~ pi(. | p)} R(p, a)``: unbiased for the exact policy gradient.
- ``grpo``: ``A_i = (R_i - mean R) / (std R + eps)`` over the group (``std`` with Bessel's
  correction and ``eps = 1e-6``, as in verl and the PACS authors' code; an all-equal group has
  ``A = 0``); the clipped surrogate ``(1/G) sum_i min(rho_i A_i, clip(rho_i, 1 - c, 1 + c) A_i)``
  has gradient weights ``w_i = rho_i A_i / G`` where the unclipped term is the minimum and ``0``
  where the clipped one is (``A_i > 0, rho_i > 1 + c`` or ``A_i < 0, rho_i < 1 - c``).
- ``pacs``: the score ``psi_i = r_i - loo(r)_i`` of ``r_i = beta (log pi(a_i) - log pi_old(a_i))``
  is trained as a logit of the reward by ``L = (1/G) sum_i BCE(sigmoid(psi_i), R_i)``. Its
  gradient is the paper's identity ``grad L = -(1/G) sum_i (R_i - sigmoid(psi_i)) grad psi_i``
  with ``grad psi_i = beta (grad log pi_i - loo(grad log pi)_i)``; moving the leave-one-out mean
  onto the residuals ``e_i = R_i - sigmoid(psi_i)`` makes it the weights
  ``w_i = beta (e_i - loo(e)_i) / G`` of ``d = -grad L``. At ``pi = pi_old`` (the first epoch)
  ``psi = 0``, ``e = R - 1/2`` and ``w = beta (R_i - loo(R)_i) / G``: leave-one-out REINFORCE;
  in later epochs ``sigmoid(psi)`` is a critic's estimate of the reward and the residual shrinks
  as it fits. ``balanced`` weighs each rollout's BCE term by scikit-learn's "balanced" class
  weight within its group (``G / (2 n_class)`` where both rewards occur, 1 otherwise), the
  authors' ``use_weight=True, weight_mode=question``; it multiplies ``e_i``.

The update is plain gradient ascent (no momentum, no Adam): the three methods differ by their
weights only. No randomness of the methods' own: the rollouts come from the oracle's sampler,
seeded by the run seed.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from harness.arrays import like, to_host

__all__ = ["GRPO", "PACS", "ReinforceLOO", "grpo_weights", "leave_one_out_mean", "pacs_weights", "rloo_weights"]


def leave_one_out_mean(x: np.ndarray) -> np.ndarray:
    """``loo(x)_{p i} = (sum_j x_{p j} - x_{p i}) / (G - 1)`` over the rows (groups) of ``x`` ``(P, G)``."""
    return (x.sum(axis=1, keepdims=True) - x) / (x.shape[1] - 1)


def rloo_weights(rewards: np.ndarray) -> np.ndarray:
    """Leave-one-out REINFORCE: ``(R_i - loo(R)_i) / G`` ``(P, G)``."""
    return (rewards - leave_one_out_mean(rewards)) / rewards.shape[1]


def grpo_weights(rewards: np.ndarray, ratio: np.ndarray, *, clip: float, eps: float) -> np.ndarray:
    """The gradient weights of GRPO's clipped surrogate ``(P, G)``: ``rho A / G``, zero where the clip binds."""
    advantage = (rewards - rewards.mean(axis=1, keepdims=True)) / (rewards.std(axis=1, ddof=1, keepdims=True) + eps)
    clipped = ((advantage > 0) & (ratio > 1 + clip)) | ((advantage < 0) & (ratio < 1 - clip))
    return np.where(clipped, 0.0, ratio * advantage) / rewards.shape[1]


def class_balance(rewards: np.ndarray) -> np.ndarray:
    """scikit-learn's "balanced" class weights within each group ``(P, G)``: ``G / (2 n_class)``, 1 in a one-class group."""
    positives = (rewards > 0.5).sum(axis=1, keepdims=True)
    counts = np.where(rewards > 0.5, positives, rewards.shape[1] - positives)
    mixed = (positives > 0) & (positives < rewards.shape[1])
    return np.where(mixed, rewards.shape[1] / (2.0 * np.maximum(counts, 1)), 1.0)


def pacs_weights(rewards: np.ndarray, log_ratio: np.ndarray, *, beta: float, balanced: bool) -> np.ndarray:
    """Minus PACS's BCE gradient as weights on the score functions ``(P, G)``: ``beta (e - loo(e)) / G``.

    ``log_ratio`` is ``log pi - log pi_old`` of each rollout; ``e_i = c_i (R_i - sigmoid(psi_i))``
    with ``psi = r - loo(r)``, ``r = beta log_ratio`` and ``c`` the class weights (1 unless
    ``balanced``).
    """
    r = beta * log_ratio
    psi = r - leave_one_out_mean(r)
    residual = rewards - 0.5 * (1.0 + np.tanh(0.5 * psi))  # sigmoid without overflow
    if balanced:
        residual = class_balance(rewards) * residual
    return beta * (residual - leave_one_out_mean(residual)) / rewards.shape[1]


class _GroupPolicyGradient:
    """Sample ``G`` rollouts per prompt, then ``epochs`` ascent steps along weighted score functions."""

    epochs = 1

    def __init__(self, *, lr: float) -> None:
        if not lr > 0:
            raise ValueError(f"lr must be > 0 (got {lr})")
        self.lr = float(lr)

    def weights(self, rewards: np.ndarray, log_ratio: np.ndarray) -> np.ndarray:
        """The weights ``(P, G)`` of the rollouts' score functions, given ``log pi - log pi_old`` (zero at first)."""
        raise NotImplementedError

    def init(self, params: Any, oracle: Any) -> None:
        return None

    def step(self, params: Any, state: None, oracle: Any) -> tuple[Any, None]:
        prompts, answers, rewards = oracle.sample(params)
        group = int(oracle.group_size)
        by_prompt = np.asarray(prompts).reshape(-1, group)
        if not (by_prompt == by_prompt[:, :1]).all():
            raise ValueError("sample did not return the rollouts grouped by prompt")
        rewards = to_host(rewards).reshape(-1, group)
        old = to_host(oracle.logprobs(params, prompts, answers)) if self.epochs > 1 else None
        log_ratio = np.zeros_like(rewards)  # pi = pi_old exactly at the first epoch
        for epoch in range(self.epochs):
            if epoch > 0:
                log_ratio = (to_host(oracle.logprobs(params, prompts, answers)) - old).reshape(rewards.shape)
            w = like(self.weights(rewards, log_ratio).reshape(-1), params)
            params = params + self.lr * oracle.policy_grad(params, prompts, answers, w)
        return params, state


class ReinforceLOO(_GroupPolicyGradient):
    """REINFORCE with the leave-one-out baseline of the prompt's group (RLOO), one update per batch.

    Parameters
    ----------
    lr
        Ascent step size.
    """

    def weights(self, rewards: np.ndarray, log_ratio: np.ndarray) -> np.ndarray:
        return rloo_weights(rewards)


class GRPO(_GroupPolicyGradient):
    """GRPO: std-normalized group advantages and the clipped ratio surrogate, ``epochs`` updates per batch.

    Parameters
    ----------
    lr
        Ascent step size.
    epochs
        Updates per batch of rollouts (the first at ``rho = 1``).
    clip
        The ratio's clip range ``[1 - clip, 1 + clip]``.
    eps
        Added to the group's reward std.
    """

    def __init__(self, *, lr: float, epochs: int, clip: float, eps: float) -> None:
        super().__init__(lr=lr)
        if epochs < 1 or not clip > 0 or eps < 0:
            raise ValueError(f"need epochs >= 1, clip > 0, eps >= 0 (got {epochs}, {clip}, {eps})")
        self.epochs, self.clip, self.eps = int(epochs), float(clip), float(eps)

    def weights(self, rewards: np.ndarray, log_ratio: np.ndarray) -> np.ndarray:
        return grpo_weights(rewards, np.exp(log_ratio), clip=self.clip, eps=self.eps)


class PACS(_GroupPolicyGradient):
    """PACS: the reward as a label of the score ``psi = r - loo(r)``, ``r = beta log(pi / pi_old)``, by BCE.

    Parameters
    ----------
    lr
        Step size of the descent on the BCE loss (ascent along ``-grad L``).
    epochs
        Updates per batch of rollouts (the first at ``psi = 0``).
    beta
        Scale of the log-ratio reward ``r``.
    balanced
        Weigh the BCE terms by the classes' balance within each group (the authors' scripts).
    """

    def __init__(self, *, lr: float, epochs: int, beta: float, balanced: bool) -> None:
        super().__init__(lr=lr)
        if epochs < 1 or not beta > 0:
            raise ValueError(f"need epochs >= 1 and beta > 0 (got {epochs}, {beta})")
        self.epochs, self.beta, self.balanced = int(epochs), float(beta), bool(balanced)

    def weights(self, rewards: np.ndarray, log_ratio: np.ndarray) -> np.ndarray:
        return pacs_weights(rewards, log_ratio, beta=self.beta, balanced=self.balanced)
