"""Binary logistic regression with an L2 penalty: one problem class for torch and jax.

.. math:: f(w) = \\frac{1}{n} \\sum_i \\log(1 + e^{-y_i x_i^\\top w}) + \\ell_2 \\lVert w \\rVert^2

The data, the metrics and the reference optimum are numpy code (cached per parameter set), so
a torch run and a jax run see the same data and the same ``f_star``. The differentiable hooks
are written once over the array namespace (``harness.arrays``, ``harness.losses``): the loss,
the logits and the closed-form Hessian, which the scipy reference evaluates on numpy arrays
and the oracle on the framework's (through the backend: jitted in jax, detached in torch).
The loss uses ``logaddexp(0, -m)``, exact for every margin ``m`` (torch's ``softplus``
switches to the identity above 20, an error of ~2e-9 that would show in a 1e-8 suboptimality).

Every task parameter comes from ``logreg.yaml``: no function here has a default for one.

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

from harness.arrays import eye, normal_init, take, to_float64
from harness.datasets import BINARY_DATASETS, binary_classification, binary_key, holdout_parts
from harness.losses import CrossEntropyTerms, binary_logits, logistic_loss, sigmoid
from harness.reference import Reference, optimum

__all__ = [
    "DATASETS",
    "LogReg",
    "Reference",
    "gradient",
    "hessian",
    "load_data",
    "objective",
    "reference",
    "train_reference",
]

DATASETS = BINARY_DATASETS

#: What defines the problem besides its parameters and data: part of the reference's cache key.
_SOURCES = (Path(__file__), Path(__file__).with_name("logreg.yaml"))


# ---------------------------------------------------------------------------------------------
# Data (numpy, cached: read-only arrays shared by every problem built with the same parameters)
# ---------------------------------------------------------------------------------------------


def load_data(*, dataset: str, n: int, d: int, data_seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Features ``X`` (n, d) and labels ``y`` in {-1, +1}, as read-only float64 arrays.

    The recipe is :func:`harness.datasets.binary_classification`: synthetic logistic data
    (``n``, ``d``, ``data_seed``), scikit-learn's breast_cancer (+1 = benign) or digits
    (+1 = even digit) with standardized features.
    """
    return binary_classification(dataset, n, d, data_seed)


# ---------------------------------------------------------------------------------------------
# The objective in numpy: the reference solver and the metrics use it
# ---------------------------------------------------------------------------------------------


def objective(w: np.ndarray, X: np.ndarray, y: np.ndarray, l2: float) -> float:
    """The regularized mean logistic loss."""
    margins = y * (X @ w)
    return float(np.mean(np.logaddexp(0.0, -margins)) + l2 * (w @ w))


def gradient(w: np.ndarray, X: np.ndarray, y: np.ndarray, l2: float) -> np.ndarray:
    """Gradient of :func:`objective`."""
    margins = y * (X @ w)
    return X.T @ (-y * scipy.special.expit(-margins)) / X.shape[0] + 2.0 * l2 * w


def hessian(w: Any, X: Any, l2: float) -> Any:
    """Hessian of :func:`objective`: ``X^T diag(p (1 - p)) X / n + 2 l2 I`` (it does not depend on ``y``).

    Written once over the array namespace of ``w`` and ``X``: numpy arrays for the reference
    (``sigmoid`` is then ``scipy.special.expit``), the framework's for the oracle.
    """
    margins = X @ w
    curvature = sigmoid(margins) * sigmoid(-margins)
    return (X.T * curvature) @ X / X.shape[0] + 2.0 * l2 * eye(X.shape[1], like=w)


def _solve(X: np.ndarray, y: np.ndarray, l2: float, params: dict[str, Any]) -> Reference:
    """The reference of the data ``(X, y)``, cached on disk under ``params``."""
    if not l2 > 0:
        raise ValueError(f"l2 must be positive (the optimum is then unique and finite); got {l2}")
    return optimum(
        lambda w: objective(w, X, y, l2),
        lambda w: gradient(w, X, y, l2),
        lambda w: hessian(w, X, l2),
        np.zeros(X.shape[1]),
        task="logreg",
        params=params,
        sources=_SOURCES,
        data=(X, y),
    )


@functools.cache
def _reference(dataset: str, n: int, d: int, data_seed: int, l2: float) -> Reference:
    X, y = binary_classification(dataset, n, d, data_seed)
    return _solve(X, y, l2, {"dataset": dataset, "n": n, "d": d, "data_seed": data_seed, "l2": l2})


@functools.cache
def _train_reference(key: tuple[Any, ...], l2: float, holdout: float, split_seed: int) -> Reference:
    (X, y), _ = holdout_parts(*binary_classification(*key), holdout, split_seed)
    return _solve(X, y, l2, {"key": list(key), "l2": l2, "holdout": holdout, "split_seed": split_seed})


def train_reference(*, dataset: str, n: int, d: int, l2: float, data_seed: int, holdout: float) -> Reference:
    """:func:`reference` of the training part: the whole set when ``holdout`` is 0 (the same solve and cache)."""
    if not holdout:
        return reference(dataset=dataset, n=n, d=d, l2=l2, data_seed=data_seed)
    # The split's seed is data_seed itself: a real data set's key drops it, its held-out split does not.
    return _train_reference(binary_key(dataset, n, d, data_seed), float(l2), float(holdout), int(data_seed))


def reference(*, dataset: str, n: int, d: int, l2: float, data_seed: int) -> Reference:
    """The minimizer and minimum, computed in numpy/scipy independently of torch and jax.

    scipy L-BFGS-B to ``gtol`` 1e-12, then Newton polish (:func:`harness.reference.minimize`):
    L-BFGS alone stalls above machine precision on ill-conditioned data (breast_cancer).
    The minimizer is cached on disk and checked when read (:func:`harness.reference.optimum`).
    """
    return _reference(*binary_key(dataset, n, d, data_seed), float(l2))


# ---------------------------------------------------------------------------------------------
# The problem: one class, written once over the array namespace
# ---------------------------------------------------------------------------------------------


class LogReg(CrossEntropyTerms):
    """Data, ``f_star``, seeded init, numpy metrics and the differentiable hooks, for torch and jax.

    Parameters
    ----------
    backend
        The run's framework backend (``harness.backends.make_backend``).
    dataset, n, d, data_seed
        The data, see :func:`load_data`.
    l2
        Weight of the penalty ``l2 ||w||^2``.
    batch_size
        Minibatch size of the oracle's ``grad`` and ``value_and_grad``; 0 is the full batch.
    holdout
        Fraction of the examples held out of training (:func:`harness.datasets.holdout_split`),
        half for validation, half for test: their loss and accuracy are measured, never trained on.

    Finite-sum hooks (see :mod:`harness.oracle`): ``n_samples``, ``loss(params, indices)``, and the
    cross-entropy view with logits ``[0, y_i x_i.w]`` (class 1 correct), ``logit_hessian`` and
    ``regularizer``, for per-example gradients, logit JVPs, Gauss-Newton and Fisher matrices.
    Closed form: ``hessian`` (:func:`hessian`), which the oracle prefers to autodiff.

    Attributes
    ----------
    f_star : float
        The reference minimum (:func:`reference`).
    x_star : numpy.ndarray
        The reference minimizer (read-only).
    dim : int
        Number of parameters, ``d``.
    layout : tuple
        ``(("w", (d,)),)``: the parameter blocks as ``(name, shape)`` (one vector here).
    X_np, y_np : numpy.ndarray
        The data (read-only).
    """

    def __init__(
        self, *, backend: Any, dataset: str, n: int, d: int, l2: float, data_seed: int, batch_size: int,
        holdout: float,
    ) -> None:
        self.backend = backend
        self.l2 = float(l2)
        # The training part is the problem (the whole cached set when nothing is held out); the others are measured.
        (self.X_np, self.y_np), self.held_out = holdout_parts(
            *load_data(dataset=dataset, n=n, d=d, data_seed=data_seed), float(holdout), int(data_seed))
        self.n_samples = self.X_np.shape[0]
        self.batch_size = int(batch_size)
        ref = train_reference(dataset=dataset, n=n, d=d, l2=l2, data_seed=data_seed, holdout=float(holdout))
        self.x_star: np.ndarray = ref.x_star
        self.f_star: float | None = ref.f_star
        self.dim = self.X_np.shape[1]
        self.layout: tuple[tuple[str, tuple[int, ...]], ...] = (("w", (self.dim,)),)
        # Labels folded into the features: the margins are one matrix-vector product.
        self.yX = backend.asarray(self.y_np[:, None] * self.X_np)
        self.X = backend.asarray(np.array(self.X_np))  # a copy: torch.as_tensor would alias the cached array

    def init_params(self, seed: int) -> Any:
        """``w ~ N(0, I/d)`` from ``default_rng(seed)``: the same start in every framework."""
        return normal_init(self.backend, seed, self.dim, self.dim)

    def evaluate(self, params: Any) -> dict[str, float]:
        """Objective, training accuracy and gradient norm, and the held-out parts' loss and accuracy, in float64 numpy."""
        w = to_float64(self.backend, params)
        metrics = {
            "objective": objective(w, self.X_np, self.y_np, self.l2),
            "train_accuracy": float(np.mean(self.y_np * (self.X_np @ w) > 0)),
            "grad_norm": float(np.linalg.norm(gradient(w, self.X_np, self.y_np, self.l2))),
        }
        for name, (X, y) in self.held_out.items():  # the mean logistic loss, no penalty: what generalizes
            margins = y * (X @ w)
            metrics[f"{name}_loss"] = float(np.mean(np.logaddexp(0.0, -margins)))
            metrics[f"{name}_accuracy"] = float(np.mean(margins > 0))
        return metrics

    def _margins(self, params: Any, indices: Any) -> Any:
        return take(self.yX, indices) @ params

    def loss(self, params: Any, indices: Any = None) -> Any:
        """The objective; with ``indices``, the mean over those samples (plus the penalty)."""
        return logistic_loss(self._margins(params, indices)) + self.regularizer(params)

    def logits(self, params: Any, indices: Any = None) -> Any:
        """``[0, y_i x_i.w]`` per sample: the loss is the cross-entropy with class 1 correct."""
        return binary_logits(self._margins(params, indices))

    def hessian(self, params: Any) -> Any:
        """The closed-form Hessian (:func:`hessian`) at ``params``, in the framework of ``params``."""
        return hessian(params, self.X, self.l2)
