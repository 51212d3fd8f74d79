"""Multinomial logistic (softmax) regression with an L2 penalty: one problem class for torch and jax.

.. math:: f(W) = \\frac{1}{n} \\sum_i \\Big(\\log \\sum_c e^{x_i^\\top W_c} - x_i^\\top W_{y_i}\\Big)
          + \\ell_2 \\lVert W \\rVert_F^2

``W`` is ``(d, C)``; the parameters are ``W`` flattened in row-major order (index ``j * C + c``).
There is no bias. Without the penalty ``f`` is invariant to adding one vector to every column;
with it the problem is strongly convex (modulus ``2 l2``) and the optimum has columns summing to 0.

The data, the metrics and the reference optimum are numpy code (cached per parameter set). The
differentiable hooks are written once over the array namespace: the logits and the closed-form
Hessian, which the scipy reference evaluates on numpy arrays and the oracle on the framework's
(through the backend: jitted in jax, detached in torch). Labels enter as one-hot float rows, so
no integer tensors are needed.

Every task parameter comes from ``softmax.yaml``: no function here has a default for one.

This module is loaded by file path: it imports nothing from ``tasks/`` (what tasks share lives
in ``harness.datasets``, ``harness.reference``, ``harness.arrays`` and ``harness.losses``) and
never imports torch or jax.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import numpy as np
import scipy.special

from harness.arrays import einsum, eye, immutable, normal_init, softmax, take, to_float64
from harness.datasets import holdout_parts, sklearn_dataset
from harness.losses import CrossEntropyTerms
from harness.reference import Reference, optimum

__all__ = [
    "DATASETS",
    "Reference",
    "Softmax",
    "gradient",
    "hessian",
    "load_data",
    "objective",
    "reference",
    "train_reference",
]

DATASETS = ("blobs", "digits")

#: What defines the problem besides its parameters and data: part of the reference's cache key.
_SOURCES = (Path(__file__), Path(__file__).with_name("softmax.yaml"))


# ---------------------------------------------------------------------------------------------
# Data (numpy, cached: read-only arrays shared by every problem built with the same parameters)
# ---------------------------------------------------------------------------------------------


def _canonical(dataset: str, n: int, d: int, classes: int, separation: float, data_seed: int) -> tuple[Any, ...]:
    """Cache key of a data set: only the blobs depend on the size, separation and seed."""
    if dataset not in DATASETS:
        raise ValueError(f"unknown dataset {dataset!r}; choose one of {list(DATASETS)}")
    if dataset == "blobs":
        if int(n) < 1 or int(d) < 1 or int(classes) < 2:
            raise ValueError(f"blobs need n >= 1, d >= 1 and classes >= 2 (got n={n}, d={d}, classes={classes})")
        return dataset, int(n), int(d), int(classes), float(separation), int(data_seed)
    return dataset, 0, 0, 0, 0.0, 0


@functools.cache
def _load(
    dataset: str, n: int, d: int, classes: int, separation: float, data_seed: int
) -> tuple[np.ndarray, np.ndarray]:
    if dataset == "blobs":
        rng = np.random.default_rng(data_seed)
        centers = rng.standard_normal((classes, d)) * separation / np.sqrt(d)
        labels = rng.integers(0, classes, size=n)
        X = centers[labels] + rng.standard_normal((n, d))
    else:
        X, labels = sklearn_dataset("digits")  # standardized; blank border pixels are zeros
    return immutable(np.asarray(X, dtype=np.float64)), immutable(np.asarray(labels, dtype=np.int64))


def load_data(
    *, dataset: str, n: int, d: int, classes: int, separation: float, data_seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Features ``X`` (n, d) and integer labels in ``0..C-1``, as read-only arrays.

    Parameters
    ----------
    dataset
        ``blobs``: ``rng = default_rng(data_seed)``; centers ``rng.standard_normal((C, d)) *
        separation / sqrt(d)``; labels ``rng.integers(0, C, n)``; ``X = centers[labels] +
        rng.standard_normal((n, d))`` (in this order). ``digits``: scikit-learn's 1797 x 64,
        C = 10, features standardized.
    n, d, classes, separation, data_seed
        The blobs' size, number of classes, center scale and seed; ignored for digits.
    """
    return _load(*_canonical(dataset, n, d, classes, separation, data_seed))


# ---------------------------------------------------------------------------------------------
# The objective in numpy: the reference solver and the metrics use it
# ---------------------------------------------------------------------------------------------


def _one_hot(labels: np.ndarray, classes: int) -> np.ndarray:
    return np.eye(classes)[labels]


def objective(w: np.ndarray, X: np.ndarray, labels: np.ndarray, l2: float, classes: int) -> float:
    """The regularized mean cross-entropy; ``w`` is ``W`` (d, C) flattened row-major."""
    logits = X @ w.reshape(X.shape[1], classes)
    picked = np.take_along_axis(logits, labels[:, None], axis=1)[:, 0]
    return float(np.mean(scipy.special.logsumexp(logits, axis=1) - picked) + l2 * (w @ w))


def gradient(w: np.ndarray, X: np.ndarray, labels: np.ndarray, l2: float, classes: int) -> np.ndarray:
    """Gradient of :func:`objective`: ``X^T (softmax(X W) - Y) / n + 2 l2 W``, flattened."""
    probs = scipy.special.softmax(X @ w.reshape(X.shape[1], classes), axis=1)
    return (X.T @ (probs - _one_hot(labels, classes)) / X.shape[0]).ravel() + 2.0 * l2 * w


def hessian(w: Any, X: Any, l2: float, classes: int) -> Any:
    """Hessian of :func:`objective`, ``(d C, d C)`` in the flattened index ``j * C + c`` (it does not depend on the labels).

    ``H[(j,a),(k,b)] = sum_i x_ij x_ik (p_ia [a = b] - p_ia p_ib) / n + 2 l2 [(j,a) = (k,b)]``.
    Written once over the array namespace of ``w`` and ``X``: numpy arrays for the reference
    (scipy's softmax, numpy's optimized einsum), the framework's for the oracle.
    """
    n, d = X.shape
    probs = softmax(X @ w.reshape(d, classes))
    weighted = (X[:, :, None] * probs[:, None, :]).reshape(n, d * classes)  # x_ij p_ia
    diagonal = einsum("ij,ik,ia->jak", X, X, probs)  # sum_i x_ij x_ik p_ia
    blocks = (diagonal[:, :, :, None] * eye(classes, like=probs)[None, :, None, :]).reshape(d * classes, d * classes)
    return (blocks - weighted.T @ weighted) / n + 2.0 * l2 * eye(d * classes, like=probs)


def _classes(key: tuple[Any, ...], labels: np.ndarray) -> int:
    # Blobs declare C (a class may draw no sample); digits have 10.
    return key[3] if key[0] == "blobs" else int(labels.max()) + 1


def _solve(X: np.ndarray, labels: np.ndarray, l2: float, classes: int, params: dict[str, Any]) -> Reference:
    """The reference of the data ``(X, labels)``, cached on disk under ``params``."""
    if not l2 > 0:
        raise ValueError(f"l2 must be positive (the optimum is then unique and finite); got {l2}")
    return optimum(
        lambda w: objective(w, X, labels, l2, classes),
        lambda w: gradient(w, X, labels, l2, classes),
        lambda w: hessian(w, X, l2, classes),
        np.zeros(X.shape[1] * classes),
        task="softmax",
        params=params,
        sources=_SOURCES,
        data=(X, labels),
    )


@functools.cache
def _reference(key: tuple[Any, ...], l2: float) -> Reference:
    X, labels = _load(*key)
    return _solve(X, labels, l2, _classes(key, labels), {"key": list(key), "l2": l2})


@functools.cache
def _train_reference(key: tuple[Any, ...], l2: float, holdout: float, split_seed: int) -> Reference:
    full = _load(*key)
    (X, labels), _ = holdout_parts(*full, holdout, split_seed)
    return _solve(X, labels, l2, _classes(key, full[1]),
                  {"key": list(key), "l2": l2, "holdout": holdout, "split_seed": split_seed})


def train_reference(*, dataset: str, n: int, d: int, classes: int, separation: float, l2: float, data_seed: int,
                    holdout: float) -> Reference:
    """:func:`reference` of the training part: the whole set when ``holdout`` is 0 (the same solve and cache)."""
    if not holdout:
        return reference(dataset=dataset, n=n, d=d, classes=classes, separation=separation, l2=l2, data_seed=data_seed)
    # The split's seed is data_seed itself: a real data set's key drops it, its held-out split does not.
    return _train_reference(_canonical(dataset, n, d, classes, separation, data_seed), float(l2), float(holdout),
                            int(data_seed))


def reference(
    *, dataset: str, n: int, d: int, classes: int, separation: float, l2: float, data_seed: int
) -> Reference:
    """The minimizer and minimum, computed in numpy/scipy independently of torch and jax.

    scipy L-BFGS-B to ``gtol`` 1e-12, then Newton polish (:func:`harness.reference.minimize`):
    L-BFGS alone stalls above machine precision on ill-conditioned data (digits).
    The minimizer is cached on disk and checked when read (:func:`harness.reference.optimum`).
    """
    return _reference(_canonical(dataset, n, d, classes, separation, data_seed), float(l2))


# ---------------------------------------------------------------------------------------------
# The problem: one class, written once over the array namespace
# ---------------------------------------------------------------------------------------------


class Softmax(CrossEntropyTerms):
    """Data, ``f_star``, seeded init, numpy metrics and the differentiable hooks, for torch and jax.

    Parameters
    ----------
    backend
        The run's framework backend (``harness.backends.make_backend``).
    dataset, n, d, classes, separation, data_seed
        The data, see :func:`load_data`.
    l2
        Weight of the penalty ``l2 ||W||_F^2``.
    batch_size
        Minibatch size of the oracle's ``grad`` and ``value_and_grad``; 0 is the full batch.
    holdout
        Fraction of the examples held out of training (:func:`harness.datasets.holdout_split`),
        half for validation, half for test: their loss and accuracy are measured, never trained on.

    Finite-sum hooks (see :mod:`harness.oracle`): ``n_samples``, ``loss(params, indices)``,
    ``logits(params, indices)`` (``X W``), ``logit_hessian`` and ``regularizer``, for per-example
    gradients, logit JVPs (the ghost radius), Gauss-Newton and Fisher matrices. Closed form:
    ``hessian`` (:func:`hessian`), which the oracle prefers to autodiff.

    Attributes
    ----------
    f_star : float
        The reference minimum (:func:`reference`).
    x_star : numpy.ndarray
        The reference minimizer, ``W`` flattened row-major (read-only).
    features, classes, dim : int
        ``d``, ``C`` and the number of parameters ``d * C``.
    layout : tuple
        ``(("W", (d, C)),)``: the parameter blocks as ``(name, shape)``, so a method for
        matrices (Muon, say) sees ``W``.
    X_np, labels_np : numpy.ndarray
        The data (read-only).
    """

    def __init__(
        self,
        *,
        backend: Any,
        dataset: str,
        n: int,
        d: int,
        classes: int,
        separation: float,
        l2: float,
        data_seed: int,
        batch_size: int,
        holdout: float,
    ) -> None:
        key = _canonical(dataset, n, d, classes, separation, data_seed)
        self.backend = backend
        self.l2 = float(l2)
        full = _load(*key)
        self.classes = _classes(key, full[1])
        # The training part is the problem (the whole cached set when nothing is held out); the others are measured.
        (self.X_np, self.labels_np), self.held_out = holdout_parts(*full, float(holdout), int(data_seed))
        self.n_samples = self.X_np.shape[0]
        self.batch_size = int(batch_size)
        ref = train_reference(dataset=dataset, n=n, d=d, classes=classes, separation=separation, l2=l2,
                              data_seed=data_seed, holdout=float(holdout))
        self.x_star: np.ndarray = ref.x_star
        self.f_star: float | None = ref.f_star
        self.features = self.X_np.shape[1]
        self.dim = self.features * self.classes
        self.layout: tuple[tuple[str, tuple[int, ...]], ...] = (("W", (self.features, self.classes)),)
        self.X = backend.asarray(np.array(self.X_np))  # a copy: torch.as_tensor would alias the cached array
        self.Y = backend.asarray(_one_hot(self.labels_np, self.classes))

    def init_params(self, seed: int) -> Any:
        """``W ~ N(0, I/d)`` from ``default_rng(seed)``: the same start in every framework."""
        return normal_init(self.backend, seed, self.dim, self.features)

    def evaluate(self, params: Any) -> dict[str, float]:
        """Objective, training accuracy and gradient norm, and the held-out parts' loss and accuracy, in float64 numpy."""
        w = to_float64(self.backend, params)
        W = w.reshape(self.features, self.classes)
        args = (self.X_np, self.labels_np, self.l2, self.classes)
        metrics = {
            "objective": objective(w, *args),
            "train_accuracy": float(np.mean(np.argmax(self.X_np @ W, axis=1) == self.labels_np)),
            "grad_norm": float(np.linalg.norm(gradient(w, *args))),
        }
        for name, (X, labels) in self.held_out.items():  # the mean cross-entropy, no penalty: what generalizes
            metrics[f"{name}_loss"] = objective(w, X, labels, 0.0, self.classes)
            metrics[f"{name}_accuracy"] = float(np.mean(np.argmax(X @ W, axis=1) == labels))
        return metrics

    def logits(self, params: Any, indices: Any = None) -> Any:
        """``X W`` for the samples ``indices`` (all when ``None``), shape (m, C)."""
        return take(self.X, indices) @ params.reshape(self.features, self.classes)

    def hessian(self, params: Any) -> Any:
        """The closed-form Hessian (:func:`hessian`) at ``params``, in the framework of ``params``."""
        return hessian(params, self.X, self.l2, self.classes)
