"""Numerically stable losses on logits, written once for torch and jax.

The task modules' differentiable code: the logistic loss ``log(1 + e^{-m})`` by ``logaddexp``
(exact for every margin ``m``; torch's ``softplus`` switches to the identity above 20, an error
of ~2e-9 that would show in a 1e-8 suboptimality), the cross-entropy by ``logsumexp``, and the
cross-entropy's Hessian in the logits that the oracle's Gauss-Newton and Fisher matrices use
(the finite-sum hooks of :mod:`harness.oracle`). The framework is read off the array
(:func:`harness.arrays.namespace`); torch and jax are imported inside the functions.

Examples
--------
>>> import torch  # doctest: +SKIP
>>> logistic_loss(torch.tensor([0.0, 100.0]))  # doctest: +SKIP
tensor(0.3466)
"""

from __future__ import annotations

from typing import Any

from harness.arrays import eye, is_numpy, is_torch, namespace, softmax, take

__all__ = [
    "CrossEntropyTerms",
    "binary_logits",
    "cross_entropy",
    "cross_entropy_hessian",
    "logistic_loss",
    "logsumexp",
    "sigmoid",
]


def sigmoid(x: Any) -> Any:
    """The logistic function ``1 / (1 + e^{-x})``, elementwise (numpy: ``scipy.special.expit``)."""
    if is_numpy(x):
        import scipy.special

        return scipy.special.expit(x)
    if is_torch(x):
        import torch

        return torch.sigmoid(x)
    import jax

    return jax.nn.sigmoid(x)


def logsumexp(logits: Any) -> Any:
    """``log sum_c exp(logits[:, c])`` per row of ``logits`` (m, C)."""
    if is_torch(logits):
        import torch

        return torch.logsumexp(logits, dim=1)
    from jax.scipy.special import logsumexp as jax_logsumexp

    return jax_logsumexp(logits, axis=1)


def logistic_loss(margins: Any) -> Any:
    """The mean of ``log(1 + e^{-m})`` over the margins ``m``, as ``logaddexp(0, -m)``."""
    xp = namespace(margins)
    return xp.mean(xp.logaddexp(xp.zeros_like(margins), -margins))


def binary_logits(margins: Any) -> Any:
    """``[0, m_i]`` per sample (m, 2): the logistic loss is the cross-entropy with class 1 correct."""
    xp = namespace(margins)
    return xp.stack([xp.zeros_like(margins), margins], axis=1)


def cross_entropy(logits: Any, targets: Any) -> Any:
    """The mean cross-entropy of ``logits`` (m, C) against one-hot float ``targets`` (m, C)."""
    xp = namespace(logits)
    return xp.mean(logsumexp(logits) - xp.sum(targets * logits, axis=1))


def cross_entropy_hessian(logits: Any) -> Any:
    """The cross-entropy's Hessian in the logits, ``diag(p) - p p^T`` per sample (m, C, C), ``p = softmax(logits)``."""
    p = softmax(logits)
    return p[:, :, None] * eye(p.shape[1], like=p) - p[:, :, None] * p[:, None, :]


class CrossEntropyTerms:
    """The finite-sum hooks of an L2-penalized cross-entropy task, from its ``logits(params, indices)``.

    A problem class mixes this in and defines ``logits``, ``l2`` and one-hot targets ``Y``; it
    gets ``loss`` (mean cross-entropy over ``indices``, all when ``None``, plus the penalty),
    ``regularizer`` and ``logit_hessian`` (for the oracle's Gauss-Newton and Fisher matrices).
    Binary tasks override ``loss`` with the exact :func:`logistic_loss` of their margins.
    """

    l2: float
    Y: Any
    logits: Any  # (params, indices=None) -> (m, C) logits of the samples ``indices``

    def regularizer(self, params: Any) -> Any:
        """The penalty ``l2 ||params||^2`` (shared by every term of the finite sum)."""
        return self.l2 * (params @ params)

    def loss(self, params: Any, indices: Any = None) -> Any:
        """The objective; with ``indices``, the mean over those samples (plus the penalty)."""
        return cross_entropy(self.logits(params, indices), take(self.Y, indices)) + self.regularizer(params)

    def logit_hessian(self, logits: Any) -> Any:
        """``diag(p) - p p^T`` per sample, ``p = softmax(logits)``: the cross-entropy's Hessian in the logits."""
        return cross_entropy_hessian(logits)
