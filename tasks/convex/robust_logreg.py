"""Adversarially robust binary logistic regression (l2 ball, closed-form inner max): one class for torch and jax.

.. math:: f(w) = \\frac{1}{n} \\sum_i \\log\\big(1 + e^{-y_i x_i^\\top w + \\epsilon \\lVert w \\rVert}\\big)
          + \\ell_2 \\lVert w \\rVert^2

The inner maximization of the adversarial loss over perturbations ``||delta|| <= eps`` of
``x_i`` has the closed form ``-y x.(w) + eps ||w||`` inside the logistic loss, so the min-max
problem is one convex minimization. ``eps = 0`` gives plain logistic regression on the same data.

The problem is a finite sum over examples and a cross-entropy on logits
``z_i = [0, y_i x_i.w - eps ||w||]`` (class 1 correct), so it exposes the hooks of
:mod:`harness.oracle`: ``n_samples``, ``loss(params, indices)``, ``logits``, ``logit_hessian``,
``regularizer`` and ``batch_size`` (minibatch gradients), written once over the array namespace.
Data, metrics and the reference optimum are numpy (:mod:`harness.robust`, whose closed-form Hessian
the reference's Newton polish uses: the oracle differentiates the loss, whose curvature includes
that of ``eps ||w||``). Every task
parameter comes from ``robust-logreg.yaml``: no function here has a default for one. This module
never imports torch or jax, and shares code with other tasks only through ``harness`` (it is
loaded by file path).
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import numpy as np

from harness.arrays import immutable, namespace, normal_init, take, to_float64
from harness.datasets import BINARY_DATASETS, binary_classification, binary_key, holdout_parts
from harness.losses import CrossEntropyTerms, binary_logits, logistic_loss
from harness.reference import Reference
from harness.robust import gradient, hessian, objective, robust_optimum

__all__ = [
    "DATASETS",
    "LABELS",
    "Reference",
    "RobustLogReg",
    "gradient",
    "hessian",
    "load_data",
    "objective",
    "reference",
    "train_reference",
]

DATASETS = BINARY_DATASETS

#: What defines the problem besides its parameters and data: part of the reference's cache key.
_SOURCES = (Path(__file__), Path(__file__).with_name("robust-logreg.yaml"))

LABELS = ("real", "shuffled")


# ---------------------------------------------------------------------------------------------
# Data (numpy, cached, read-only); synthetic data follow the logreg task's recipe exactly
# ---------------------------------------------------------------------------------------------


def _canonical(dataset: str, n: int, d: int, data_seed: int, labels: str) -> tuple[str, int, int, int, str]:
    dataset, n, d, seed = binary_key(dataset, n, d, data_seed)
    if labels not in LABELS:
        raise ValueError(f"unknown labels {labels!r}; choose one of {list(LABELS)}")
    # Real data ignore n and d; data_seed only draws the permutation of shuffled labels.
    if dataset != "synthetic" and labels == "shuffled":
        seed = int(data_seed)
    return dataset, n, d, seed, labels


@functools.cache
def _load(dataset: str, n: int, d: int, data_seed: int, labels: str) -> tuple[np.ndarray, np.ndarray]:
    X, y = binary_classification(dataset, n, d, data_seed)
    if labels == "shuffled":
        # A stream apart from the data's: the features stay those of the real-label task.
        y = immutable(np.random.default_rng([data_seed, 1]).permutation(y))
    return X, y


def load_data(*, dataset: str, n: int, d: int, data_seed: int, labels: str) -> tuple[np.ndarray, np.ndarray]:
    """Features ``X`` (n, d) and labels in {-1, +1}; the recipe of the ``logreg`` task.

    ``labels="shuffled"`` permutes the labels with ``default_rng([data_seed, 1])``: the same
    features and label counts, no relation between them.
    """
    return _load(*_canonical(dataset, n, d, data_seed, labels))


@functools.cache
def _reference(key: tuple[Any, ...], eps: float, l2: float) -> Reference:
    return robust_optimum(*_load(*key), eps, l2, task="robust-logreg", params={"key": list(key), "eps": eps, "l2": l2},
                          sources=_SOURCES)


@functools.cache
def _train_reference(key: tuple[Any, ...], eps: float, l2: float, holdout: float, split_seed: int) -> Reference:
    (X, y), _ = holdout_parts(*_load(*key), holdout, split_seed)
    return robust_optimum(X, y, eps, l2, task="robust-logreg", sources=_SOURCES,
                          params={"key": list(key), "eps": eps, "l2": l2, "holdout": holdout, "split_seed": split_seed})


def train_reference(*, dataset: str, n: int, d: int, eps: float, l2: float, data_seed: int, labels: str,
                    holdout: float) -> Reference:
    """:func:`reference` of the training part: the whole set when ``holdout`` is 0 (the same solve and cache)."""
    if not holdout:
        return reference(dataset=dataset, n=n, d=d, eps=eps, l2=l2, data_seed=data_seed, labels=labels)
    # The split's seed is data_seed itself: a real data set's key drops it, its held-out split does not.
    return _train_reference(_canonical(dataset, n, d, data_seed, labels), float(eps), float(l2), float(holdout),
                            int(data_seed))


def reference(*, dataset: str, n: int, d: int, eps: float, l2: float, data_seed: int, labels: str) -> Reference:
    """The minimizer and minimum by scipy L-BFGS-B (gtol 1e-6) and Newton polish, in numpy.

    The minimizer is cached on disk and checked when read (:func:`harness.robust.robust_optimum`).
    """
    return _reference(_canonical(dataset, n, d, data_seed, labels), float(eps), float(l2))


# ---------------------------------------------------------------------------------------------
# The problem: one class, written once over the array namespace
# ---------------------------------------------------------------------------------------------


class RobustLogReg(CrossEntropyTerms):
    """Data, ``f_star``, seeded init, numpy metrics and the differentiable hooks, for torch and jax.

    Parameters
    ----------
    backend
        The run's framework backend.
    dataset, n, d, data_seed, labels
        The data, see :func:`load_data`.
    eps, l2
        Radius of the perturbation ball and weight of the penalty ``l2 ||w||^2``.
    batch_size
        Minibatch size of the oracle's ``grad`` and ``value_and_grad``; 0 is the full batch.
    holdout
        Fraction of the examples held out of training (:func:`harness.datasets.holdout_split`),
        half for validation, half for test: their adversarial loss and robust accuracy are measured.
    """

    def __init__(
        self,
        *,
        backend: Any,
        dataset: str,
        n: int,
        d: int,
        eps: float,
        l2: float,
        data_seed: int,
        labels: str,
        batch_size: int,
        holdout: float,
    ) -> None:
        self.backend = backend
        self.eps, self.l2 = float(eps), float(l2)
        # The training part is the problem (the whole cached set when nothing is held out); the others are measured.
        (self.X_np, self.y_np), self.held_out = holdout_parts(
            *load_data(dataset=dataset, n=n, d=d, data_seed=data_seed, labels=labels), float(holdout), int(data_seed))
        ref = train_reference(dataset=dataset, n=n, d=d, eps=eps, l2=l2, data_seed=data_seed, labels=labels,
                              holdout=float(holdout))
        self.x_star: np.ndarray = ref.x_star
        self.f_star: float | None = ref.f_star
        self.n_samples, self.dim = self.X_np.shape
        self.batch_size = int(batch_size)
        self.yX = backend.asarray(self.y_np[:, None] * self.X_np)  # margins in one product

    def init_params(self, seed: int) -> Any:
        """``w ~ N(0, I/d)`` from ``default_rng(seed)``: the same start in every framework."""
        return normal_init(self.backend, seed, self.dim, self.dim)

    def evaluate(self, params: Any) -> dict[str, float]:
        """Objective, clean and robust training accuracy and gradient norm, in float64 numpy."""
        w = to_float64(self.backend, params)
        margins = self.y_np * (self.X_np @ w)
        args = (self.X_np, self.y_np, self.eps, self.l2)
        metrics = {
            "objective": objective(w, *args),
            "train_accuracy": float(np.mean(margins > 0)),
            "robust_accuracy": float(np.mean(margins - self.eps * np.linalg.norm(w) > 0)),
            "grad_norm": float(np.linalg.norm(gradient(w, *args))),
        }
        for name, (X, y) in self.held_out.items():  # the adversarial loss, no penalty; robust accuracy
            metrics[f"{name}_loss"] = objective(w, X, y, self.eps, 0.0)
            metrics[f"{name}_robust_accuracy"] = float(np.mean(y * (X @ w) - self.eps * np.linalg.norm(w) > 0))
        return metrics

    # Written once over the array namespace: operators, and functions that read the framework off the array.
    def _margins(self, params: Any, indices: Any) -> Any:
        """``y_i x_i.w - eps ||w||`` for the samples ``indices`` (all when ``None``)."""
        return take(self.yX, indices) @ params - self.eps * namespace(params).sqrt(params @ params)

    def logits(self, params: Any, indices: Any = None) -> Any:
        """``z_i = [0, y_i x_i.w - eps ||w||]`` (m, 2); class 1 is the correct one."""
        return binary_logits(self._margins(params, indices))

    def loss(self, params: Any, indices: Any = None) -> Any:
        """Mean over ``indices`` (all when ``None``) of ``log(1 + exp(-margin))``, plus the penalty."""
        return logistic_loss(self._margins(params, indices)) + self.regularizer(params)
