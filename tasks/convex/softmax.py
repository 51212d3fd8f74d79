"""Multinomial logistic (softmax) regression with an L2 penalty, in torch and in jax.

.. math:: f(W) = \\frac{1}{n} \\sum_i \\Big(\\log \\sum_c e^{x_i^\\top W_c} - x_i^\\top W_{y_i}\\Big)
          + \\ell_2 \\lVert W \\rVert_F^2

``W`` is ``(d, C)``; the parameters are ``W`` flattened in row-major order (index ``j * C + c``).
There is no bias. Without the penalty ``f`` is invariant to adding one vector to every column;
with it the problem is strongly convex (modulus ``2 l2``) and the optimum has columns summing to 0.

The data, the metrics and the reference optimum are numpy code shared by both frameworks
(cached per parameter set); the frameworks write the loss and its closed-form Hessian. Labels
enter as one-hot float rows, so no integer tensors are needed on either side.

This module is loaded by file path: it imports nothing from ``tasks/`` and imports torch or
jax only inside the class of that framework.
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

import numpy as np
import scipy.optimize
import scipy.special

__all__ = [
    "DATASETS",
    "Reference",
    "SoftmaxJax",
    "SoftmaxTorch",
    "gradient",
    "hessian",
    "load_data",
    "objective",
    "reference",
]

DATASETS = ("blobs", "digits")


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
        from sklearn.datasets import load_digits

        data, labels = load_digits(return_X_y=True)
        std = data.std(axis=0)
        std[std == 0.0] = 1.0  # always-blank border pixels: zeros, not NaN
        X = (data - data.mean(axis=0)) / std
    X = np.ascontiguousarray(X, dtype=np.float64)
    labels = np.ascontiguousarray(labels, dtype=np.int64)
    X.setflags(write=False)
    labels.setflags(write=False)
    return X, labels


def load_data(
    dataset: str = "blobs",
    n: int = 1000,
    d: int = 20,
    classes: int = 5,
    separation: float = 2.0,
    data_seed: int = 0,
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


def hessian(w: np.ndarray, X: np.ndarray, labels: np.ndarray, l2: float, classes: int) -> np.ndarray:
    """Hessian of :func:`objective`, ``(d C, d C)`` in the flattened index ``j * C + c``.

    ``H[(j,a),(k,b)] = sum_i x_ij x_ik (p_ia [a = b] - p_ia p_ib) / n + 2 l2 [(j,a) = (k,b)]``.
    """
    n, d = X.shape
    probs = scipy.special.softmax(X @ w.reshape(d, classes), axis=1)
    weighted = (X[:, :, None] * probs[:, None, :]).reshape(n, d * classes)  # x_ij p_ia
    diagonal = np.einsum("ij,ik,ia->jak", X, X, probs, optimize=True)  # sum_i x_ij x_ik p_ia
    blocks = (diagonal[:, :, :, None] * np.eye(classes)[None, :, None, :]).reshape(d * classes, d * classes)
    return (blocks - weighted.T @ weighted) / n + 2.0 * l2 * np.eye(d * classes)


class Reference(NamedTuple):
    """The reference optimum: minimizer and minimum."""

    x_star: np.ndarray
    f_star: float


def _minimize(fun: Any, grad: Any, hess: Any, x0: np.ndarray, polish_steps: int = 8) -> np.ndarray:
    """scipy L-BFGS to ``gtol`` 1e-12, then Newton steps while they shrink the gradient.

    L-BFGS alone stalls a few orders of magnitude above machine precision on ill-conditioned
    data (digits); from there Newton converges quadratically in one or two steps.
    """
    result = scipy.optimize.minimize(
        lambda x: (fun(x), grad(x)),
        x0,
        jac=True,
        method="L-BFGS-B",
        options={"gtol": 1e-12, "ftol": 0.0, "maxiter": 20_000, "maxcor": 30},
    )
    x = result.x
    g = grad(x)
    for _ in range(polish_steps):
        candidate = x - np.linalg.solve(hess(x), g)
        g_candidate = grad(candidate)
        if not np.linalg.norm(g_candidate) < np.linalg.norm(g):
            break
        x, g = candidate, g_candidate
    return x


def _classes(key: tuple[Any, ...], labels: np.ndarray) -> int:
    # Blobs declare C (a class may draw no sample); digits have 10.
    return key[3] if key[0] == "blobs" else int(labels.max()) + 1


@functools.cache
def _reference(key: tuple[Any, ...], l2: float) -> Reference:
    X, labels = _load(*key)
    classes = _classes(key, labels)
    x_star = _minimize(
        lambda w: objective(w, X, labels, l2, classes),
        lambda w: gradient(w, X, labels, l2, classes),
        lambda w: hessian(w, X, labels, l2, classes),
        np.zeros(X.shape[1] * classes),
    )
    x_star.setflags(write=False)
    return Reference(x_star, objective(x_star, X, labels, l2, classes))


def reference(
    dataset: str = "blobs",
    n: int = 1000,
    d: int = 20,
    classes: int = 5,
    separation: float = 2.0,
    l2: float = 5e-4,
    data_seed: int = 0,
) -> Reference:
    """The minimizer and minimum, computed in numpy/scipy independently of torch and jax."""
    if not l2 > 0:
        raise ValueError(f"l2 must be positive (the optimum is then unique and finite); got {l2}")
    return _reference(_canonical(dataset, n, d, classes, separation, data_seed), float(l2))


# ---------------------------------------------------------------------------------------------
# The problem, per framework
# ---------------------------------------------------------------------------------------------


class _Softmax:
    """What both frameworks share: data, ``f_star``, seeded init and numpy metrics.

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

    Finite-sum hooks (see :mod:`harness.oracle`): ``n_samples``, ``loss(params, indices)``,
    ``logits(params, indices)`` (``X W``), ``logit_hessian`` and ``regularizer``, for per-example
    gradients, logit JVPs (the ghost radius), Gauss-Newton and Fisher matrices.

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
        dataset: str = "blobs",
        n: int = 1000,
        d: int = 20,
        classes: int = 5,
        separation: float = 2.0,
        l2: float = 5e-4,
        data_seed: int = 0,
        batch_size: int = 0,
    ) -> None:
        key = _canonical(dataset, n, d, classes, separation, data_seed)
        self.backend = backend
        self.l2 = float(l2)
        self.X_np, self.labels_np = _load(*key)
        self.n_samples = self.X_np.shape[0]
        self.batch_size = int(batch_size)
        self.classes = _classes(key, self.labels_np)
        ref = reference(dataset, n, d, classes, separation, l2, data_seed)
        self.x_star: np.ndarray = ref.x_star
        self.f_star: float | None = ref.f_star
        self.features = self.X_np.shape[1]
        self.dim = self.features * self.classes
        self.layout: tuple[tuple[str, tuple[int, ...]], ...] = (("W", (self.features, self.classes)),)
        self.X = backend.asarray(np.array(self.X_np))  # a copy: torch.as_tensor would alias the cached array
        self.Y = backend.asarray(_one_hot(self.labels_np, self.classes))
        self.eye = backend.asarray(np.eye(self.dim))
        self.class_eye = backend.asarray(np.eye(self.classes))

    def init_params(self, seed: int) -> Any:
        """``W ~ N(0, I/d)`` from ``default_rng(seed)``: the same start in every framework."""
        rng = np.random.default_rng(seed)
        return self.backend.asarray(rng.standard_normal(self.dim) / np.sqrt(self.features))

    def evaluate(self, params: Any) -> dict[str, float]:
        """Objective, training accuracy and gradient norm, in float64 numpy."""
        w = np.asarray(self.backend.to_numpy(params), dtype=np.float64)
        predicted = np.argmax(self.X_np @ w.reshape(self.features, self.classes), axis=1)
        args = (self.X_np, self.labels_np, self.l2, self.classes)
        return {
            "objective": objective(w, *args),
            "train_accuracy": float(np.mean(predicted == self.labels_np)),
            "grad_norm": float(np.linalg.norm(gradient(w, *args))),
        }

    def logits(self, params: Any, indices: Any = None) -> Any:
        """``X W`` for the samples ``indices`` (all when ``None``), shape (m, C)."""
        X = self.X if indices is None else self.X[indices]
        return X @ params.reshape(self.features, self.classes)

    def regularizer(self, params: Any) -> Any:
        """The penalty ``l2 ||W||_F^2`` (shared by every term of the finite sum)."""
        return self.l2 * (params @ params)

    def _targets(self, indices: Any) -> Any:
        return self.Y if indices is None else self.Y[indices]

    def _hessian_expr(self, params: Any, softmax: Any, einsum: Any) -> Any:
        """The closed-form Hessian in framework ops (the framework's ``softmax`` over rows, ``einsum``)."""
        n, d, C = self.X.shape[0], self.features, self.classes
        probs = softmax(self.X @ params.reshape(d, C))
        weighted = (self.X[:, :, None] * probs[:, None, :]).reshape(n, d * C)  # x_ij p_ia
        diagonal = einsum("ij,ik,ia->jak", self.X, self.X, probs)  # sum_i x_ij x_ik p_ia
        blocks = (diagonal[:, :, :, None] * self.class_eye[None, :, None, :]).reshape(d * C, d * C)
        return (blocks - weighted.T @ weighted) / n + 2.0 * self.l2 * self.eye


class SoftmaxTorch(_Softmax):
    """Softmax regression in torch; ``hessian`` is closed-form (the oracle prefers it to autograd)."""

    def loss(self, params: Any, indices: Any = None) -> Any:
        """The objective; with ``indices``, the mean over those samples (plus the penalty)."""
        import torch

        logits = self.logits(params, indices)
        picked = (self._targets(indices) * logits).sum(dim=1)
        return (torch.logsumexp(logits, dim=1) - picked).mean() + self.l2 * (params @ params)

    def logit_hessian(self, logits: Any) -> Any:
        """``diag(p) - p p^T`` per sample, ``p = softmax(logits)``."""
        import torch

        p = torch.softmax(logits, dim=1)
        return torch.diag_embed(p) - p[:, :, None] * p[:, None, :]

    def hessian(self, params: Any) -> Any:
        import torch

        return self._hessian_expr(params.detach(), lambda z: torch.softmax(z, dim=1), torch.einsum)


class SoftmaxJax(_Softmax):
    """Softmax regression in jax (jittable ``loss``); ``hessian`` is closed-form and jitted."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        import jax
        import jax.numpy as jnp

        self._hessian = jax.jit(lambda w: self._hessian_expr(w, lambda z: jax.nn.softmax(z, axis=1), jnp.einsum))

    def loss(self, params: Any, indices: Any = None) -> Any:
        """The objective; with ``indices``, the mean over those samples (plus the penalty)."""
        import jax.numpy as jnp
        from jax.scipy.special import logsumexp

        logits = self.logits(params, indices)
        picked = jnp.sum(self._targets(indices) * logits, axis=1)
        return jnp.mean(logsumexp(logits, axis=1) - picked) + self.l2 * (params @ params)

    def logit_hessian(self, logits: Any) -> Any:
        """``diag(p) - p p^T`` per sample, ``p = softmax(logits)``."""
        import jax
        import jax.numpy as jnp

        p = jax.nn.softmax(logits, axis=1)
        return jax.vmap(jnp.diag)(p) - p[:, :, None] * p[:, None, :]

    def hessian(self, params: Any) -> Any:
        return self._hessian(params)
