"""``hessian-top``: the top Hessian eigenvalues by Lanczos on Hessian-vector products.

Lanczos with full reorthogonalization builds an orthonormal Krylov basis ``Q`` from a seeded
start vector using only ``oracle.hvp``; the eigenvalues of the tridiagonal ``T = Q^T H Q`` (the
Ritz values) approximate the extreme eigenvalues of ``H``, and equal them once the Krylov space
is invariant (``iterations >= dim`` always suffices). The vectors live in float64 numpy; each
product crosses to the framework and back, which is cheap at evaluation points and keeps the
probe independent of the framework.

With a learning rate (the option ``lr`` or the method's ``lr`` hyperparameter) the probe also
reports ``edge = lambda_1 / (2 / lr)``: gradient descent is stable on a quadratic iff ``edge < 1``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from harness.probes import ProbeContext

__all__ = ["HessianTop", "lanczos"]


def lanczos(matvec: Callable[[np.ndarray], np.ndarray], dim: int, *, iterations: int, seed: int = 0) -> np.ndarray:
    """Ritz values (ascending) of a symmetric operator after ``iterations`` Lanczos steps.

    Parameters
    ----------
    matvec
        ``v -> H v`` on float64 vectors of length ``dim``.
    iterations
        Krylov dimension (capped at ``dim``); stops early when the space becomes invariant.
    seed
        Seed of the Gaussian start vector.
    """
    m = max(1, min(int(iterations), dim))
    basis = np.zeros((m, dim))
    alphas, betas = [], []
    q = np.random.default_rng(seed).standard_normal(dim)
    q /= np.linalg.norm(q)
    scale = 0.0
    for j in range(m):
        basis[j] = q
        w = np.array(matvec(q), dtype=np.float64)  # a private copy: reorthogonalized in place
        alpha = float(w @ q)
        alphas.append(alpha)
        # Full reorthogonalization, twice ("twice is enough"): no ghost copies of eigenvalues.
        for _ in range(2):
            w -= basis[: j + 1].T @ (basis[: j + 1] @ w)
        beta = float(np.linalg.norm(w))
        scale = max(scale, abs(alpha), beta)
        if j == m - 1 or beta <= 1e-12 * max(scale, 1e-300):
            break
        betas.append(beta)
        q = w / beta
    k = len(alphas)
    T = np.diag(alphas) + np.diag(betas[: k - 1], 1) + np.diag(betas[: k - 1], -1)
    return np.linalg.eigvalsh(T)


class HessianTop:
    """Top-``k`` Hessian eigenvalues at the evaluated point: ``lambda_1 >= ... >= lambda_k``.

    Parameters
    ----------
    k
        How many eigenvalues to report (columns ``lambda_1`` .. ``lambda_k``).
    iterations
        Lanczos steps (Hessian-vector products) per evaluation; ``dim`` makes the result exact.
    seed
        Seed of the start vector (the same at every evaluation point).
    lr
        Learning rate for ``edge``; 0 takes the method's ``lr`` hyperparameter when it has one.
    """

    def __init__(self, *, k: int = 1, iterations: int = 30, seed: int = 0, lr: float = 0.0) -> None:
        if k < 1 or iterations < 1:
            raise ValueError(f"k and iterations must be >= 1 (got k={k}, iterations={iterations})")
        self.k, self.iterations, self.seed, self.lr = int(k), int(iterations), int(seed), float(lr)

    def __call__(self, context: ProbeContext) -> dict[str, float]:
        backend, oracle, params = context.backend, context.oracle, context.params
        dim = int(np.asarray(backend.to_numpy(params)).size)

        def matvec(v: np.ndarray) -> np.ndarray:
            return np.asarray(backend.to_numpy(oracle.hvp(params, backend.asarray(v))), dtype=np.float64)

        ritz = lanczos(matvec, dim, iterations=self.iterations, seed=self.seed)[::-1]
        out = {f"lambda_{i + 1}": float(ritz[i]) if i < len(ritz) else math.nan for i in range(self.k)}
        lr = self.lr or _float(context.hyperparameters.get("lr"))
        if lr:
            out["edge"] = float(ritz[0]) * lr / 2.0
        return out


def _float(value: Any) -> float:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else 0.0
