"""RL with verifiable rewards on a tabular softmax policy (a contextual bandit): one class for torch and jax.

``P`` prompts, ``K`` answers each, one correct answer ``c_p`` per prompt drawn from
``default_rng(data_seed)`` (fixed across run seeds). The policy is a table of logits ``theta``
``(P, K)`` (the parameters, flattened row-major), ``pi(a | p) = softmax(theta_p)_a``, and the
verifiable reward is ``R(p, a) = 1[a = c_p]``. A run draws ``G`` rollouts per prompt through the
oracle's ``sample`` (seeded by the run seed) and never sees ``c_p``.

The harness's objective is the expected failure rate ``1 - (1/P) sum_p pi(c_p | p)``: minus the
expected reward, shifted by 1 so that it lies in ``[0, 1]``; its infimum ``f* = 0`` is approached,
never attained, as the correct logits grow without bound. ``value`` and ``grad`` of it are exact
(the oracle's autodiff of :meth:`RLVRBandit.loss`); the RL methods use ``sample``,
``logprobs`` and ``policy_grad`` only.

The reference is the exact policy gradient in closed form (:func:`expected_reward_gradient`):
``d pi(c | p) / d theta_p = pi(c | p) (e_c - pi(. | p))``, and zero on the other prompts' rows.

Metrics (numpy, from the logits and ``c``, not from ``loss``): ``pass_at_1 = (1/P) sum_p
pi(c_p | p)``, ``pass_at_8 = (1/P) sum_p 1 - (1 - pi(c_p | p))^8`` (at least one of 8 independent
answers correct), ``worst_pass_at_1 = min_p pi(c_p | p)`` and ``objective = 1 - pass_at_1``.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

from harness.arrays import immutable, softmax, to_float64

__all__ = ["PASS_K", "RLVRBandit", "correct_answers", "expected_reward_gradient", "pass_at", "policy"]

#: The ``k`` of the ``pass_at_k`` metric besides ``pass_at_1`` (the catalog's G = 8 rollouts).
PASS_K = 8


@functools.cache
def _correct(prompts: int, answers: int, data_seed: int) -> np.ndarray:
    return immutable(np.random.default_rng(data_seed).integers(answers, size=prompts).astype(np.int64))


def correct_answers(*, prompts: int, answers: int, data_seed: int) -> np.ndarray:
    """``c`` ``(P,)``: each prompt's correct answer, uniform over ``K`` from ``default_rng(data_seed)`` (read-only)."""
    if prompts < 1 or answers < 2:
        raise ValueError(f"need prompts >= 1 and answers >= 2 (got {prompts}, {answers})")
    return _correct(int(prompts), int(answers), int(data_seed))


def policy(logits: np.ndarray) -> np.ndarray:
    """``pi`` ``(P, K)``: the row softmax of ``logits`` in numpy, shifted by each row's maximum."""
    z = np.exp(logits - logits.max(axis=1, keepdims=True))
    return z / z.sum(axis=1, keepdims=True)


def pass_at(pi_correct: np.ndarray, k: int) -> float:
    """``(1/P) sum_p 1 - (1 - pi(c_p | p))^k``: the chance that one of ``k`` independent answers is correct."""
    return float(np.mean(1.0 - (1.0 - pi_correct) ** k))


def expected_reward_gradient(logits: np.ndarray, correct: np.ndarray) -> np.ndarray:
    """The exact policy gradient ``d/d theta sum_p pi(c_p | p)`` ``(P, K)``, in closed form (numpy).

    Row ``p`` is ``pi(c_p | p) (e_{c_p} - pi(. | p))``: the softmax Jacobian's column ``c_p``.
    It is ``E[sum_p R(p, a) grad log pi(a | p)]`` with ``a ~ pi(. | p)``, the quantity the RL
    methods estimate from rollouts.
    """
    pi = policy(logits)
    rows = np.arange(len(correct))
    pi_c = pi[rows, correct]
    grad = -pi_c[:, None] * pi
    grad[rows, correct] += pi_c
    return grad


class RLVRBandit:
    """A tabular softmax policy over ``answers`` answers to ``prompts`` prompts, reward ``1[a = c_p]``.

    Parameters
    ----------
    backend
        The framework backend (``asarray``, ``to_numpy``).
    prompts, answers
        ``P`` and ``K``; the parameters are the ``P K`` logits, row-major.
    group
        ``G``, the rollouts per prompt that the oracle's ``sample`` draws.
    data_seed
        Seed of the correct answers ``c``.
    """

    def __init__(self, *, backend: Any, prompts: int, answers: int, group: int, data_seed: int) -> None:
        if group < 2:
            raise ValueError(f"group must be >= 2 (the group baselines leave one rollout out); got {group}")
        self.backend = backend
        self.shape = (int(prompts), int(answers))
        self.dim = self.shape[0] * self.shape[1]
        self.group_size = int(group)
        self.correct: np.ndarray = correct_answers(prompts=prompts, answers=answers, data_seed=data_seed)
        one_hot = np.zeros(self.shape)
        one_hot[np.arange(self.shape[0]), self.correct] = 1.0
        self._one_hot = backend.asarray(one_hot)  # the loss picks pi(c_p | p) by a mask, no integer indexing
        self.f_star: float | None = 0.0  # the infimum, approached as the correct logits grow (not attained)

    def init_params(self, seed: int) -> Any:
        """All logits zero, whatever the seed: the uniform policy, ``pi(c | p) = 1 / K``.

        The sparse-reward start of RLVR (a group of ``G`` holds a correct answer with chance
        ``1 - (1 - 1/K)^G``, 12 % at the defaults); runs differ by their rollouts only.
        """
        return self.backend.asarray(np.zeros(self.dim))

    def policy_logits(self, params: Any) -> Any:
        """The logits table ``(P, K)`` of the flat parameters."""
        return params.reshape(self.shape)

    def rewards(self, prompts: np.ndarray, answers: np.ndarray) -> np.ndarray:
        """The verifiable reward ``1[a_i = c_{p_i}]`` of each rollout (numpy float)."""
        return (np.asarray(answers) == self.correct[np.asarray(prompts)]).astype(np.float64)

    def loss(self, params: Any) -> Any:
        """``1 - (1/P) sum_p pi(c_p | p)``: minus the expected reward, plus 1."""
        pi = softmax(self.policy_logits(params))
        return 1.0 - (pi * self._one_hot).sum() / self.shape[0]

    def evaluate(self, params: Any) -> dict[str, float]:
        pi = policy(to_float64(self.backend, params).reshape(self.shape))
        pi_correct = pi[np.arange(self.shape[0]), self.correct]
        pass_1 = float(pi_correct.mean())
        return {
            "objective": 1.0 - pass_1,
            "pass_at_1": pass_1,
            f"pass_at_{PASS_K}": pass_at(pi_correct, PASS_K),
            "worst_pass_at_1": float(pi_correct.min()),
        }
