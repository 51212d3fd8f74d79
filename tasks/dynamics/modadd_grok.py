"""Modular addition with a quadratic-activation two-layer network (grokking): one class for torch and jax.

Inputs are the pairs ``(a, b)`` of ``Z_M``, one-hot encoded and concatenated (``2M`` inputs);
the label is ``(a + b) mod M``. The network ``logits = W2 (W1 x)^2`` has ``K`` hidden units
with the square activation of the Li_2 analysis; the objective is the training cross-entropy
plus ``l2 ||theta||^2``. A random ``train_fraction`` of the ``M^2`` pairs is the training set,
the rest the test set. Since ``x`` is two one-hots, ``W1 x = W1[:, a] + W1[:, M + b]``: a gather,
not a matrix product.

Parameters are ``[W1 (K, 2M), W2 (M, K)]`` flattened row-major; ``layout`` names them. The problem
is a finite sum with the hooks of :mod:`harness.oracle`, written once over the array namespace
(``harness.arrays``, ``harness.losses``); the backend makes the integer index arrays
(``backend.asarray_int``). Every task parameter comes from ``modadd-grok.yaml``: no function
here has a default for one.
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

import numpy as np
import scipy.special

from harness.arrays import immutable, take, to_float64
from harness.losses import CrossEntropyTerms

__all__ = ["ModAdd", "Split", "split"]


class Split(NamedTuple):
    """Operand pairs and labels of the training and test sets."""

    train_pairs: np.ndarray
    train_labels: np.ndarray
    test_pairs: np.ndarray
    test_labels: np.ndarray


@functools.cache
def _split(modulus: int, train_fraction: float, data_seed: int) -> Split:
    if modulus < 2:
        raise ValueError(f"modulus must be >= 2; got {modulus}")
    if not 0.0 < train_fraction < 1.0:
        raise ValueError(f"train_fraction must be in (0, 1); got {train_fraction}")
    a, b = np.meshgrid(np.arange(modulus), np.arange(modulus), indexing="ij")
    pairs = np.stack([a.ravel(), b.ravel()], axis=1)
    labels = (pairs[:, 0] + pairs[:, 1]) % modulus
    order = np.random.default_rng(data_seed).permutation(len(pairs))
    n_train = round(train_fraction * len(pairs))
    train, test = np.sort(order[:n_train]), np.sort(order[n_train:])
    return Split(*(immutable(v) for v in (pairs[train], labels[train], pairs[test], labels[test])))


def split(*, modulus: int, train_fraction: float, data_seed: int) -> Split:
    """The training pairs: the first ``round(train_fraction M^2)`` of ``default_rng(data_seed).permutation``."""
    return _split(int(modulus), float(train_fraction), int(data_seed))


def _numpy_logits(W1: np.ndarray, W2: np.ndarray, pairs: np.ndarray, modulus: int) -> np.ndarray:
    hidden = W1[:, pairs[:, 0]] + W1[:, modulus + pairs[:, 1]]  # (K, m)
    return (hidden**2).T @ W2.T


class ModAdd(CrossEntropyTerms):
    """Split, layout, seeded init, numpy metrics and the differentiable hooks, for torch and jax."""

    def __init__(
        self,
        *,
        backend: Any,
        modulus: int,
        hidden: int,
        train_fraction: float,
        l2: float,
        init_scale: float,
        data_seed: int,
        batch_size: int,
    ) -> None:
        self.backend = backend
        self.modulus, self.hidden = int(modulus), int(hidden)
        self.l2, self.init_scale = float(l2), float(init_scale)
        self.data = split(modulus=modulus, train_fraction=train_fraction, data_seed=data_seed)
        M, K = self.modulus, self.hidden
        self.layout: tuple[tuple[str, tuple[int, ...]], ...] = (("W1", (K, 2 * M)), ("W2", (M, K)))
        self.dim = K * 2 * M + M * K
        self.n_samples = len(self.data.train_labels)
        self.batch_size = int(batch_size)
        self.f_star: float | None = None  # non-convex: no reference optimum
        pairs = self.data.train_pairs
        # Integer rows of W1^T as index arrays of the framework (torch.long on the device, jax int64).
        self.first, self.second = backend.asarray_int(pairs[:, 0]), backend.asarray_int(M + pairs[:, 1])
        self.Y = backend.asarray(np.eye(M)[self.data.train_labels])

    def unflatten(self, params: Any) -> tuple[Any, Any]:
        """``(W1, W2)`` views of the flat vector (numpy, torch or jax)."""
        M, K = self.modulus, self.hidden
        split_at = K * 2 * M
        return params[:split_at].reshape(K, 2 * M), params[split_at:].reshape(M, K)

    def init_params(self, seed: int) -> Any:
        """``W1 ~ N(0, s^2 / (2M))``, ``W2 ~ N(0, s^2 / K)`` from ``default_rng(seed)``, ``s = init_scale``."""
        rng = np.random.default_rng(seed)
        M, K, s = self.modulus, self.hidden, self.init_scale
        W1 = rng.standard_normal((K, 2 * M)) * s / np.sqrt(2 * M)
        W2 = rng.standard_normal((M, K)) * s / np.sqrt(K)
        return self.backend.asarray(np.concatenate([W1.ravel(), W2.ravel()]))

    def logits(self, params: Any, indices: Any = None) -> Any:
        """Logits ``W2 (W1 x)^2`` of the training pairs ``indices`` (all when ``None``), (m, M)."""
        W1, W2 = self.unflatten(params)
        hidden = W1.T[take(self.first, indices)] + W1.T[take(self.second, indices)]  # rows of W1^T: (m, K)
        return (hidden * hidden) @ W2.T

    def evaluate(self, params: Any) -> dict[str, float]:
        """Objective, training and test accuracy and test cross-entropy, in float64 numpy."""
        theta = to_float64(self.backend, params)
        W1, W2 = self.unflatten(theta)
        out: dict[str, float] = {}
        for name, pairs, labels in (
            ("train", self.data.train_pairs, self.data.train_labels),
            ("test", self.data.test_pairs, self.data.test_labels),
        ):
            logits = _numpy_logits(W1, W2, pairs, self.modulus)
            ce = scipy.special.logsumexp(logits, axis=1) - logits[np.arange(len(labels)), labels]
            out[f"{name}_loss"] = float(np.mean(ce))
            out[f"{name}_accuracy"] = float(np.mean(np.argmax(logits, axis=1) == labels))
        out["objective"] = out["train_loss"] + self.l2 * float(theta @ theta)
        return out
