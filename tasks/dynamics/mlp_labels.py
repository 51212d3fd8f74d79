"""A one-hidden-layer tanh MLP on digits, with real or shuffled labels: one problem class for torch and jax.

The setting of "On the Generalization Mystery in Deep Learning" (Chatterjee & Zielinski): the
same network and inputs trained on the real labels or on a random permutation of them. Real
labels give coherent per-example gradients (the m-coherence of the ``coherence`` probe is high),
shuffled ones incoherent gradients, early in training.

.. math:: f(\\theta) = \\frac{1}{n} \\sum_i \\Big(\\log \\sum_c e^{z_{ic}} - z_{i y_i}\\Big),
          \\qquad z_i = W_2 \\tanh(W_1 x_i + b_1) + b_2.

The inputs are scikit-learn's digits (1797 x 64, 10 classes, features standardized over all
1797); a permutation drawn from ``default_rng(data_seed)`` picks ``n`` training and ``n_test``
test images. ``labels="shuffled"`` permutes the training labels with ``default_rng([data_seed,
1])`` (the same permutation for every run seed); the test labels stay real, so the test accuracy
of a shuffled-label network is chance. No penalty: the objective is the training cross-entropy.

Parameters are one flat vector ``[W1 (H, 64), b1 (H,), W2 (10, H), b2 (10,)]``, row-major;
``layout`` names the blocks. The problem is a finite sum with the hooks of
:mod:`harness.oracle` (``n_samples``, ``loss(params, indices)``, ``logits``, ``logit_hessian``,
``regularizer``, ``batch_size``), written once over the array namespace. Every task parameter
comes from ``mlp-labels.yaml``: no function here has a default for one.
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

import numpy as np
import scipy.special

from harness.arrays import immutable, namespace, take, to_float64
from harness.datasets import sklearn_dataset
from harness.losses import CrossEntropyTerms

__all__ = ["LABELS", "Data", "MLPLabels", "load_data", "numpy_logits"]

LABELS = ("real", "shuffled")
CLASSES = 10


class Data(NamedTuple):
    """Training and test images and their labels (the training labels shuffled or not)."""

    X: np.ndarray
    labels: np.ndarray
    X_test: np.ndarray
    labels_test: np.ndarray


@functools.cache
def _load(labels: str, n: int, n_test: int, data_seed: int) -> Data:
    if labels not in LABELS:
        raise ValueError(f"unknown labels {labels!r}; choose one of {list(LABELS)}")
    X, target = sklearn_dataset("digits")
    if n < 1 or n_test < 1 or n + n_test > len(X):
        raise ValueError(f"need n >= 1, n_test >= 1 and n + n_test <= {len(X)} (got n={n}, n_test={n_test})")
    order = np.random.default_rng(data_seed).permutation(len(X))
    train, test = order[:n], order[n : n + n_test]
    y = np.asarray(target[train], dtype=np.int64)
    if labels == "shuffled":
        # A stream apart from the split's: the images are those of the real-label task.
        y = np.random.default_rng([data_seed, 1]).permutation(y)
    return Data(*(immutable(np.asarray(v)) for v in (X[train], y, X[test], target[test].astype(np.int64))))


def load_data(*, labels: str, n: int, n_test: int, data_seed: int) -> Data:
    """The training and test sets, from ``default_rng(data_seed).permutation(1797)``.

    The first ``n`` images of the permutation train, the next ``n_test`` test. ``labels=
    "shuffled"``: the training labels are permuted by ``default_rng([data_seed, 1])`` (same
    images, same label counts, no relation between them); the test labels are always real.
    """
    return _load(str(labels), int(n), int(n_test), int(data_seed))


def numpy_logits(W1: np.ndarray, b1: np.ndarray, W2: np.ndarray, b2: np.ndarray, X: np.ndarray) -> np.ndarray:
    """The network's logits ``tanh(X W1^T + b1) W2^T + b2`` in numpy, (m, 10)."""
    return np.tanh(X @ W1.T + b1) @ W2.T + b2


class MLPLabels(CrossEntropyTerms):
    """Data, layout, seeded init, numpy metrics and the differentiable hooks, for torch and jax."""

    def __init__(
        self,
        *,
        backend: Any,
        labels: str,
        n: int,
        n_test: int,
        hidden: int,
        data_seed: int,
        batch_size: int,
    ) -> None:
        if int(hidden) < 1:
            raise ValueError(f"hidden must be >= 1; got {hidden}")
        self.backend = backend
        self.data = load_data(labels=labels, n=n, n_test=n_test, data_seed=data_seed)
        self.d, self.hidden, self.classes = self.data.X.shape[1], int(hidden), CLASSES
        H, d, C = self.hidden, self.d, self.classes
        self.layout: tuple[tuple[str, tuple[int, ...]], ...] = (
            ("W1", (H, d)), ("b1", (H,)), ("W2", (C, H)), ("b2", (C,)))
        self.dim = H * d + H + C * H + C
        self.n_samples = int(n)
        self.batch_size = int(batch_size)
        self.l2 = 0.0  # no penalty (CrossEntropyTerms' regularizer is then 0)
        self.f_star: float | None = None  # non-convex: no reference optimum
        # Copies: torch.as_tensor would alias the cached read-only arrays.
        self.X = backend.asarray(np.array(self.data.X))
        self.Y = backend.asarray(np.eye(C)[self.data.labels])

    def unflatten(self, params: Any) -> tuple[Any, Any, Any, Any]:
        """``(W1, b1, W2, b2)`` views of the flat vector (numpy, torch or jax)."""
        blocks, offset = [], 0
        for _, shape in self.layout:
            size = int(np.prod(shape))
            blocks.append(params[offset : offset + size].reshape(shape))
            offset += size
        return tuple(blocks)  # type: ignore[return-value]

    def init_params(self, seed: int) -> Any:
        """``W1 ~ N(0, 1/64)``, ``W2 ~ N(0, 1/H)``, zero biases, from ``default_rng(seed)``."""
        rng = np.random.default_rng(seed)
        H, d, C = self.hidden, self.d, self.classes
        W1 = rng.standard_normal((H, d)) / np.sqrt(d)
        W2 = rng.standard_normal((C, H)) / np.sqrt(H)
        return self.backend.asarray(np.concatenate([W1.ravel(), np.zeros(H), W2.ravel(), np.zeros(C)]))

    def logits(self, params: Any, indices: Any = None) -> Any:
        """Logits of the training images ``indices`` (all when ``None``), shape (m, 10)."""
        W1, b1, W2, b2 = self.unflatten(params)
        return namespace(params).tanh(take(self.X, indices) @ W1.T + b1) @ W2.T + b2

    def evaluate(self, params: Any) -> dict[str, float]:
        """Training cross-entropy, training and test accuracy and gradient norm, in float64 numpy."""
        theta = to_float64(self.backend, params)
        W1, b1, W2, b2 = self.unflatten(theta)
        data = self.data
        hidden = np.tanh(data.X @ W1.T + b1)
        logits = hidden @ W2.T + b2
        rows = np.arange(len(data.labels))
        ce = scipy.special.logsumexp(logits, axis=1) - logits[rows, data.labels]
        # Backpropagation of the mean cross-entropy.
        delta = scipy.special.softmax(logits, axis=1)
        delta[rows, data.labels] -= 1.0
        delta /= len(rows)
        back = (delta @ W2) * (1.0 - hidden**2)
        grad = np.concatenate([(back.T @ data.X).ravel(), back.sum(0), (delta.T @ hidden).ravel(), delta.sum(0)])
        test_logits = numpy_logits(W1, b1, W2, b2, data.X_test)
        return {
            "objective": float(np.mean(ce)),
            "train_accuracy": float(np.mean(np.argmax(logits, axis=1) == data.labels)),
            "test_accuracy": float(np.mean(np.argmax(test_logits, axis=1) == data.labels_test)),
            "grad_norm": float(np.linalg.norm(grad)),
        }
