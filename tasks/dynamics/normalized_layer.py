"""A linear layer followed by a normalization (scale-invariant weights): one problem class for torch and jax.

A teacher ``y = v* . N(W* x)`` labels Gaussian inputs ``x ~ N(0, I)``, where ``N`` normalizes
each example's hidden vector to root-mean-square 1 (an RMS/layer norm without centring or
gain): ``N(h) = sqrt(K) h / ||h||``. A student of the same shape fits them by the mean squared
error

.. math:: f(W, v) = \\frac{1}{2n} \\sum_i (v^\\top N(W x_i) - y_i)^2.

``f(c W, v) = f(W, v)`` for every ``c > 0``: the layer's weights ``W`` are scale-invariant, so
the gradient in ``W`` is orthogonal to ``W`` (``<grad_W f, W> = 0``) and gradient descent with
step ``h`` grows their norm by exactly ``h^2 ||grad_W f||^2`` a step (the discrete Noether
charge the ``drift`` probe measures). The readout ``v`` is not scale-invariant. The student
contains the teacher, so without label noise ``f* = 0``, attained at ``x_star = [W*, v*]``.

Parameters are one flat vector ``[W (K, d) row-major, v (1, K)]``; ``layout`` names the blocks
(``W`` the scale-invariant one). The problem is a finite sum with the hooks of
:mod:`harness.oracle` (``n_samples``, ``loss(params, indices)``, ``logits`` = the scalar outputs,
``logit_hessian`` = 1, ``regularizer`` = 0, ``batch_size``), written once over the array
namespace. Every task parameter comes from ``normalized-layer.yaml``: no function here has a
default for one.
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

import numpy as np

from harness.arrays import immutable, namespace, take, to_float64

__all__ = ["Data", "NormalizedLayer", "forward", "load_data"]


class Data(NamedTuple):
    """Training and test sets and the teacher that labelled them."""

    X: np.ndarray
    y: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    teacher_W: np.ndarray
    teacher_v: np.ndarray


def normalize(hidden: Any) -> Any:
    """Each row of ``hidden`` (m, K) scaled to root-mean-square 1 (numpy, torch or jax)."""
    xp = namespace(hidden)
    return hidden * (np.sqrt(hidden.shape[1]) / xp.sqrt((hidden * hidden).sum(1)))[:, None]


def forward(W: Any, v: Any, X: Any) -> Any:
    """Network outputs ``N(X W^T) v``, ``v`` of shape (K,) or (1, K); shape (m,)."""
    return normalize(X @ W.T) @ v.reshape(-1)


@functools.cache
def _load(n: int, n_test: int, d: int, hidden: int, noise: float, data_seed: int) -> Data:
    if min(n, n_test, d, hidden) < 1:
        raise ValueError(f"n, n_test, d and hidden must be >= 1 (got {n}, {n_test}, {d}, {hidden})")
    rng = np.random.default_rng([data_seed, 1])  # not default_rng(data_seed): that is the start of run seed data_seed
    teacher_W = rng.standard_normal((hidden, d)) / np.sqrt(d)
    teacher_v = rng.standard_normal(hidden) / np.sqrt(hidden)
    X = rng.standard_normal((n, d))
    X_test = rng.standard_normal((n_test, d))
    y = forward(teacher_W, teacher_v, X) + noise * rng.standard_normal(n)
    y_test = forward(teacher_W, teacher_v, X_test)
    return Data(*(immutable(a) for a in (X, y, X_test, y_test, teacher_W, teacher_v)))


def load_data(*, n: int, n_test: int, d: int, hidden: int, noise: float, data_seed: int) -> Data:
    """The teacher and its data, from ``default_rng([data_seed, 1])``.

    Drawn in this order: teacher ``W* ~ N(0, 1/d)`` (K, d), ``v* ~ N(0, 1/K)``; training inputs
    (n, d) and test inputs (n_test, d), both ``N(0, I)``; label noise ``noise * N(0, 1)`` on the
    training labels only.
    """
    return _load(int(n), int(n_test), int(d), int(hidden), float(noise), int(data_seed))


class NormalizedLayer:
    """Data, layout, seeded init, numpy metrics and the differentiable hooks, for torch and jax."""

    def __init__(self, *, backend: Any, n: int, n_test: int, d: int, hidden: int, noise: float, data_seed: int,
                 batch_size: int) -> None:
        self.backend = backend
        self.data = load_data(n=n, n_test=n_test, d=d, hidden=hidden, noise=noise, data_seed=data_seed)
        self.d, self.hidden = int(d), int(hidden)
        self.layout: tuple[tuple[str, tuple[int, ...]], ...] = (("W", (self.hidden, self.d)), ("v", (1, self.hidden)))
        self.dim = self.hidden * self.d + self.hidden
        self.n_samples = int(n)
        self.batch_size = int(batch_size)
        # The student is the teacher's shape: it realizes it exactly, without label noise.
        self.f_star: float | None = 0.0 if noise == 0 else None
        self.x_star: np.ndarray | None = (
            np.concatenate([self.data.teacher_W.ravel(), self.data.teacher_v]) if noise == 0 else None)
        # Copies: torch.as_tensor would alias the cached read-only arrays.
        self.X = backend.asarray(np.array(self.data.X))
        self.y = backend.asarray(np.array(self.data.y))

    def unflatten(self, params: Any) -> tuple[Any, Any]:
        """``(W, v)`` views of the flat vector (works on numpy, torch and jax arrays)."""
        split = self.hidden * self.d
        return params[:split].reshape(self.hidden, self.d), params[split:].reshape(1, self.hidden)

    def init_params(self, seed: int) -> Any:
        """``W ~ N(0, 1/d)``, ``v ~ N(0, 1/K)`` from ``default_rng(seed)``."""
        rng = np.random.default_rng(seed)
        W = rng.standard_normal((self.hidden, self.d)) / np.sqrt(self.d)
        v = rng.standard_normal(self.hidden) / np.sqrt(self.hidden)
        return self.backend.asarray(np.concatenate([W.ravel(), v]))

    def logits(self, params: Any, indices: Any = None) -> Any:
        """The network's outputs, shape (m, 1)."""
        W, v = self.unflatten(params)
        return normalize(take(self.X, indices) @ W.T) @ v.T

    def logit_hessian(self, logits: Any) -> Any:
        """The squared error's second derivative in the output: 1 for every example."""
        return namespace(logits).ones_like(logits)[:, :, None]

    def regularizer(self, params: Any) -> Any:
        return 0.0 * (params @ params)

    def loss(self, params: Any, indices: Any = None) -> Any:
        residual = self.logits(params, indices)[:, 0] - take(self.y, indices)
        return 0.5 * namespace(residual).mean(residual * residual)

    def evaluate(self, params: Any) -> dict[str, float]:
        """Training objective, test error (same 1/2 mean squared form), ``||W||^2`` and ``|cos(W, grad_W f)|``."""
        W, v = self.unflatten(to_float64(self.backend, params))
        data = self.data
        pre = data.X @ W.T
        scale = np.sqrt(self.hidden) / np.sqrt((pre * pre).sum(1))
        hidden = pre * scale[:, None]
        residual = hidden @ v[0] - data.y
        # d f / d pre_i = (r_i / n) J_N(pre_i)^T v, J_N(h) = s (I - h h^T / ||h||^2) with s = sqrt(K) / ||h||.
        upstream = (residual / len(residual))[:, None] * scale[:, None] * (
            v - (hidden @ v[0])[:, None] * hidden / self.hidden)
        grad_W = upstream.T @ data.X
        test_residual = forward(W, v, data.X_test) - data.y_test
        norm = float(np.linalg.norm(W) * np.linalg.norm(grad_W))
        return {
            "objective": float(0.5 * np.mean(residual**2)),
            "test_error": float(0.5 * np.mean(test_residual**2)),
            "weight_norm_sq": float(np.sum(W * W)),
            "grad_w_cosine": float(abs(np.sum(W * grad_W)) / norm) if norm > 0 else 0.0,
        }
