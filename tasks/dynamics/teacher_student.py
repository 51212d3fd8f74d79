"""Two-layer tanh teacher-student regression: one problem class for torch and jax.

A teacher ``y = a*. tanh(W* x)`` (50-10-1) labels Gaussian inputs ``x ~ N(0, I/2)``; a wider
student ``y_hat = a . tanh(W x)`` (50-50-1) fits them by the mean squared error

.. math:: f(W, a) = \\frac{1}{2n} \\sum_i (a^\\top \\tanh(W x_i) - y_i)^2.

The student contains the teacher (its first 10 units copy the teacher's, the rest have zero
readout), so without label noise the global minimum is ``f* = 0`` in closed form.

Parameters are one flat vector ``[W (K, d) row-major, a (1, K)]``; ``layout`` names the blocks, so
methods that act on matrices or on neurons (muon, curl descent) can view them. The problem is a
finite sum with the hooks of :mod:`harness.oracle` (``n_samples``, ``loss(params, indices)``,
``logits`` = the scalar outputs, ``logit_hessian`` = 1, ``regularizer`` = 0, ``batch_size``),
written once over the array namespace: the framework is read off the arrays (``harness.arrays``).
Every task parameter comes from ``teacher-student.yaml``: no function here has a default for one.
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

import numpy as np

from harness.arrays import immutable, namespace, take, to_float64

__all__ = ["Data", "TeacherStudent", "forward", "load_data"]


class Data(NamedTuple):
    """Training and test sets and the teacher that labelled them."""

    X: np.ndarray
    y: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    teacher_W: np.ndarray
    teacher_a: np.ndarray


def forward(W: np.ndarray, a: np.ndarray, X: np.ndarray) -> np.ndarray:
    """Network outputs ``tanh(X W^T) a`` in numpy, ``a`` of shape (K,) or (1, K)."""
    return np.tanh(X @ W.T) @ np.asarray(a).reshape(-1)


@functools.cache
def _load(n: int, n_test: int, d: int, teacher_hidden: int, noise: float, data_seed: int) -> Data:
    if min(n, n_test, d, teacher_hidden) < 1:
        raise ValueError(f"n, n_test, d and teacher_hidden must be >= 1 (got {n}, {n_test}, {d}, {teacher_hidden})")
    rng = np.random.default_rng(data_seed)
    # Weights N(0, 2/d) on inputs of variance 1/2: unit-variance preactivations, tanh unsaturated.
    teacher_W = rng.standard_normal((teacher_hidden, d)) * np.sqrt(2.0 / d)
    teacher_a = rng.standard_normal(teacher_hidden) / np.sqrt(teacher_hidden)
    X = rng.standard_normal((n, d)) * np.sqrt(0.5)
    X_test = rng.standard_normal((n_test, d)) * np.sqrt(0.5)
    y = forward(teacher_W, teacher_a, X) + noise * rng.standard_normal(n)
    y_test = forward(teacher_W, teacher_a, X_test)
    return Data(*(immutable(v) for v in (X, y, X_test, y_test, teacher_W, teacher_a)))


def load_data(*, n: int, n_test: int, d: int, teacher_hidden: int, noise: float, data_seed: int) -> Data:
    """The teacher and its data, from ``default_rng(data_seed)``.

    Drawn in this order: teacher ``W* ~ N(0, 2/d)`` (k, d), ``a* ~ N(0, 1/k)``; training inputs
    (n, d) and test inputs (n_test, d), both ``N(0, I/2)``; label noise ``noise * N(0, 1)`` on the
    training labels only.
    """
    return _load(int(n), int(n_test), int(d), int(teacher_hidden), float(noise), int(data_seed))


class TeacherStudent:
    """Data, layout, seeded init, numpy metrics and the differentiable hooks, for torch and jax."""

    def __init__(
        self,
        *,
        backend: Any,
        n: int,
        n_test: int,
        d: int,
        teacher_hidden: int,
        student_hidden: int,
        noise: float,
        data_seed: int,
        batch_size: int,
    ) -> None:
        if student_hidden < teacher_hidden:
            raise ValueError("the student needs at least as many hidden units as the teacher (f* = 0 then)")
        self.backend = backend
        self.data = load_data(n=n, n_test=n_test, d=d, teacher_hidden=teacher_hidden, noise=noise, data_seed=data_seed)
        self.d, self.hidden = int(d), int(student_hidden)
        self.layout: tuple[tuple[str, tuple[int, ...]], ...] = (("W", (self.hidden, self.d)), ("a", (1, self.hidden)))
        self.dim = self.hidden * self.d + self.hidden
        self.n_samples = int(n)
        self.batch_size = int(batch_size)
        # The student realizes the teacher exactly only without label noise.
        self.f_star: float | None = 0.0 if noise == 0 else None
        # Copies: torch.as_tensor would alias the cached read-only arrays.
        self.X = backend.asarray(np.array(self.data.X))
        self.y = backend.asarray(np.array(self.data.y))

    def unflatten(self, params: Any) -> tuple[Any, Any]:
        """``(W, a)`` views of the flat vector (works on numpy, torch and jax arrays)."""
        split = self.hidden * self.d
        return params[:split].reshape(self.hidden, self.d), params[split:].reshape(1, self.hidden)

    def init_params(self, seed: int) -> Any:
        """``W ~ N(0, 2/d)``, ``a ~ N(0, 1/K)`` from ``default_rng(seed)``."""
        rng = np.random.default_rng(seed)
        W = rng.standard_normal((self.hidden, self.d)) * np.sqrt(2.0 / self.d)
        a = rng.standard_normal(self.hidden) / np.sqrt(self.hidden)
        return self.backend.asarray(np.concatenate([W.ravel(), a]))

    def logits(self, params: Any, indices: Any = None) -> Any:
        """The student's outputs, shape (m, 1)."""
        W, a = self.unflatten(params)
        return namespace(params).tanh(take(self.X, indices) @ W.T) @ a.T

    def logit_hessian(self, logits: Any) -> Any:
        """The squared error's second derivative in the output: 1 for every example."""
        return namespace(logits).ones_like(logits)[:, :, None]

    def regularizer(self, params: Any) -> Any:
        return 0.0 * (params @ params)

    def loss(self, params: Any, indices: Any = None) -> Any:
        residual = self.logits(params, indices)[:, 0] - take(self.y, indices)
        return 0.5 * namespace(residual).mean(residual * residual)

    def evaluate(self, params: Any) -> dict[str, float]:
        """Training objective, test error (same 1/2 mean squared form) and gradient norm, numpy."""
        W, a = self.unflatten(to_float64(self.backend, params))
        data = self.data
        hidden = np.tanh(data.X @ W.T)
        residual = hidden @ a[0] - data.y
        grad_a = hidden.T @ residual / len(residual)
        grad_W = ((residual[:, None] * a) * (1.0 - hidden**2)).T @ data.X / len(residual)
        test_residual = forward(W, a, data.X_test) - data.y_test
        return {
            "objective": float(0.5 * np.mean(residual**2)),
            "test_error": float(0.5 * np.mean(test_residual**2)),
            "grad_norm": float(np.sqrt(np.sum(grad_a**2) + np.sum(grad_W**2))),
        }
