"""Binary logistic regression with an L2 penalty, in torch and in jax.

.. math:: f(w) = \\frac{1}{n} \\sum_i \\log(1 + e^{-y_i x_i^\\top w}) + \\ell_2 \\lVert w \\rVert^2

The data, the metrics and the reference optimum are numpy code shared by both frameworks
(cached per parameter set), so a torch run and a jax run see the same data and the same
``f_star``; the frameworks only write the loss and its closed-form Hessian. The loss uses
``logaddexp(0, -m)``, exact for every margin ``m`` (torch's ``softplus`` switches to the
identity above 20, an error of ~2e-9 that would show in a 1e-8 suboptimality).

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
    "LogRegJax",
    "LogRegTorch",
    "Reference",
    "gradient",
    "hessian",
    "load_data",
    "objective",
    "reference",
]

DATASETS = ("synthetic", "breast_cancer", "digits")


# ---------------------------------------------------------------------------------------------
# Data (numpy, cached: read-only arrays shared by every problem built with the same parameters)
# ---------------------------------------------------------------------------------------------


def _standardize(X: np.ndarray) -> np.ndarray:
    """Zero mean, unit variance per column; a constant column becomes zeros (not NaN)."""
    std = X.std(axis=0)
    std[std == 0.0] = 1.0  # digits has always-blank border pixels
    return (X - X.mean(axis=0)) / std


def _canonical(dataset: str, n: int, d: int, data_seed: int) -> tuple[str, int, int, int]:
    """Cache key of a data set: ``n``, ``d`` and ``data_seed`` only matter for synthetic data."""
    if dataset not in DATASETS:
        raise ValueError(f"unknown dataset {dataset!r}; choose one of {list(DATASETS)}")
    if dataset == "synthetic":
        if int(n) < 1 or int(d) < 1:
            raise ValueError(f"synthetic data need n >= 1 and d >= 1 (got n={n}, d={d})")
        return dataset, int(n), int(d), int(data_seed)
    return dataset, 0, 0, 0


@functools.cache
def _load(dataset: str, n: int, d: int, data_seed: int) -> tuple[np.ndarray, np.ndarray]:
    if dataset == "synthetic":
        rng = np.random.default_rng(data_seed)
        X = rng.standard_normal((n, d))
        w0 = rng.standard_normal(d) * 3.0 / np.sqrt(d)
        y = np.where(rng.random(n) < scipy.special.expit(X @ w0), 1.0, -1.0)
    elif dataset == "breast_cancer":
        from sklearn.datasets import load_breast_cancer

        data, target = load_breast_cancer(return_X_y=True)
        X, y = _standardize(data), np.where(target == 1, 1.0, -1.0)  # +1: benign
    else:
        from sklearn.datasets import load_digits

        data, target = load_digits(return_X_y=True)
        X, y = _standardize(data), np.where(target % 2 == 0, 1.0, -1.0)  # +1: even digit
    X, y = np.ascontiguousarray(X, dtype=np.float64), np.ascontiguousarray(y, dtype=np.float64)
    X.setflags(write=False)
    y.setflags(write=False)
    return X, y


def load_data(
    dataset: str = "synthetic", n: int = 1000, d: int = 20, data_seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Features ``X`` (n, d) and labels ``y`` in {-1, +1}, as read-only float64 arrays.

    Parameters
    ----------
    dataset
        ``synthetic``: ``rng = default_rng(data_seed)``; ``X = rng.standard_normal((n, d))``;
        ``w0 = rng.standard_normal(d) * 3 / sqrt(d)``; ``y = +1 if rng.random(n) < sigmoid(X w0)
        else -1`` (in this order). ``breast_cancer``: scikit-learn's 569 x 30, +1 = benign.
        ``digits``: scikit-learn's 1797 x 64, +1 = even digit. Real features are standardized.
    n, d, data_seed
        Size and seed of the synthetic data; ignored for the real data sets.
    """
    return _load(*_canonical(dataset, n, d, data_seed))


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


def hessian(w: np.ndarray, X: np.ndarray, y: np.ndarray, l2: float) -> np.ndarray:
    """Hessian of :func:`objective`: ``X^T diag(p (1 - p)) X / n + 2 l2 I``."""
    margins = X @ w
    curvature = scipy.special.expit(margins) * scipy.special.expit(-margins)
    return (X.T * curvature) @ X / X.shape[0] + 2.0 * l2 * np.eye(X.shape[1])


class Reference(NamedTuple):
    """The reference optimum: minimizer and minimum."""

    x_star: np.ndarray
    f_star: float


def _minimize(fun: Any, grad: Any, hess: Any, x0: np.ndarray, polish_steps: int = 8) -> np.ndarray:
    """scipy L-BFGS to ``gtol`` 1e-12, then Newton steps while they shrink the gradient.

    L-BFGS alone stalls a few orders of magnitude above machine precision on ill-conditioned
    data (breast_cancer); from there Newton converges quadratically in one or two steps.
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


@functools.cache
def _reference(dataset: str, n: int, d: int, data_seed: int, l2: float) -> Reference:
    X, y = _load(dataset, n, d, data_seed)
    x_star = _minimize(
        lambda w: objective(w, X, y, l2),
        lambda w: gradient(w, X, y, l2),
        lambda w: hessian(w, X, y, l2),
        np.zeros(X.shape[1]),
    )
    x_star.setflags(write=False)
    return Reference(x_star, objective(x_star, X, y, l2))


def reference(
    dataset: str = "synthetic", n: int = 1000, d: int = 20, l2: float = 5e-4, data_seed: int = 0
) -> Reference:
    """The minimizer and minimum, computed in numpy/scipy independently of torch and jax."""
    if not l2 > 0:
        raise ValueError(f"l2 must be positive (the optimum is then unique and finite); got {l2}")
    return _reference(*_canonical(dataset, n, d, data_seed), float(l2))


# ---------------------------------------------------------------------------------------------
# The problem, per framework
# ---------------------------------------------------------------------------------------------


class _LogReg:
    """What both frameworks share: data, ``f_star``, seeded init and numpy metrics.

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

    Finite-sum hooks (see :mod:`harness.oracle`): ``n_samples``, ``loss(params, indices)``, and the
    cross-entropy view with logits ``[0, y_i x_i.w]`` (class 1 correct), ``logit_hessian`` and
    ``regularizer``, for per-example gradients, logit JVPs, Gauss-Newton and Fisher matrices.

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
        self,
        *,
        backend: Any,
        dataset: str = "synthetic",
        n: int = 1000,
        d: int = 20,
        l2: float = 5e-4,
        data_seed: int = 0,
        batch_size: int = 0,
    ) -> None:
        self.backend = backend
        self.l2 = float(l2)
        self.X_np, self.y_np = load_data(dataset, n, d, data_seed)
        self.n_samples = self.X_np.shape[0]
        self.batch_size = int(batch_size)
        ref = reference(dataset, n, d, l2, data_seed)
        self.x_star: np.ndarray = ref.x_star
        self.f_star: float | None = ref.f_star
        self.dim = self.X_np.shape[1]
        self.layout: tuple[tuple[str, tuple[int, ...]], ...] = (("w", (self.dim,)),)
        # Labels folded into the features: the margins are one matrix-vector product.
        self.yX = backend.asarray(self.y_np[:, None] * self.X_np)
        self.X = backend.asarray(np.array(self.X_np))  # a copy: torch.as_tensor would alias the cached array
        self.eye = backend.asarray(np.eye(self.dim))

    def init_params(self, seed: int) -> Any:
        """``w ~ N(0, I/d)`` from ``default_rng(seed)``: the same start in every framework."""
        rng = np.random.default_rng(seed)
        return self.backend.asarray(rng.standard_normal(self.dim) / np.sqrt(self.dim))

    def evaluate(self, params: Any) -> dict[str, float]:
        """Objective, training accuracy and gradient norm, in float64 numpy."""
        w = np.asarray(self.backend.to_numpy(params), dtype=np.float64)
        return {
            "objective": objective(w, self.X_np, self.y_np, self.l2),
            "train_accuracy": float(np.mean(self.y_np * (self.X_np @ w) > 0)),
            "grad_norm": float(np.linalg.norm(gradient(w, self.X_np, self.y_np, self.l2))),
        }


    def regularizer(self, params: Any) -> Any:
        """The penalty ``l2 ||w||^2`` (shared by every term of the finite sum)."""
        return self.l2 * (params @ params)

    def _margins(self, params: Any, indices: Any) -> Any:
        return (self.yX if indices is None else self.yX[indices]) @ params


class LogRegTorch(_LogReg):
    """Logistic regression in torch; ``hessian`` is closed-form (the oracle prefers it to autograd)."""

    def loss(self, params: Any, indices: Any = None) -> Any:
        """The objective; with ``indices``, the mean over those samples (plus the penalty)."""
        import torch

        margins = self._margins(params, indices)
        return torch.logaddexp(torch.zeros_like(margins), -margins).mean() + self.l2 * (params @ params)

    def logits(self, params: Any, indices: Any = None) -> Any:
        """``[0, y_i x_i.w]`` per sample: the loss is the cross-entropy with class 1 correct."""
        import torch

        margins = self._margins(params, indices)
        return torch.stack([torch.zeros_like(margins), margins], dim=1)

    def logit_hessian(self, logits: Any) -> Any:
        """``diag(p) - p p^T`` per sample, ``p = softmax(logits)``."""
        import torch

        p = torch.softmax(logits, dim=1)
        return torch.diag_embed(p) - p[:, :, None] * p[:, None, :]

    def hessian(self, params: Any) -> Any:
        import torch

        margins = self.X @ params.detach()
        curvature = torch.sigmoid(margins) * torch.sigmoid(-margins)
        return (self.X.T * curvature) @ self.X / self.X.shape[0] + 2.0 * self.l2 * self.eye


class LogRegJax(_LogReg):
    """Logistic regression in jax (jittable ``loss``); ``hessian`` is closed-form and jitted."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        import jax

        self._hessian = jax.jit(self._hessian_expr)

    def loss(self, params: Any, indices: Any = None) -> Any:
        """The objective; with ``indices``, the mean over those samples (plus the penalty)."""
        import jax.numpy as jnp

        margins = self._margins(params, indices)
        return jnp.mean(jnp.logaddexp(0.0, -margins)) + self.l2 * (params @ params)

    def logits(self, params: Any, indices: Any = None) -> Any:
        """``[0, y_i x_i.w]`` per sample: the loss is the cross-entropy with class 1 correct."""
        import jax.numpy as jnp

        margins = self._margins(params, indices)
        return jnp.stack([jnp.zeros_like(margins), margins], axis=1)

    def logit_hessian(self, logits: Any) -> Any:
        """``diag(p) - p p^T`` per sample, ``p = softmax(logits)``."""
        import jax
        import jax.numpy as jnp

        p = jax.nn.softmax(logits, axis=1)
        return jax.vmap(jnp.diag)(p) - p[:, :, None] * p[:, None, :]

    def _hessian_expr(self, params: Any) -> Any:
        import jax

        margins = self.X @ params
        curvature = jax.nn.sigmoid(margins) * jax.nn.sigmoid(-margins)
        return (self.X.T * curvature) @ self.X / self.X.shape[0] + 2.0 * self.l2 * self.eye

    def hessian(self, params: Any) -> Any:
        return self._hessian(params)
