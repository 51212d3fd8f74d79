"""The adversarially robust logistic loss in numpy: value, derivatives and reference optimum.

For labels ``y in {-1, +1}`` and perturbations of each input in an l2 ball of radius ``eps``,
the inner maximization has a closed form (the worst perturbation is ``-eps y w / ||w||``):

.. math:: f(w) = \\frac{1}{n} \\sum_i \\log\\big(1 + e^{-y_i x_i^\\top w + \\epsilon \\lVert w \\rVert}\\big)
          + \\ell_2 \\lVert w \\rVert^2.

One owner for the tasks built on it (``robust-logreg``, and ``fed-adv``'s centralized optimum):
their metrics and references use these functions; their differentiable code stays in the tasks.

Examples
--------
>>> import numpy as np
>>> X, y = np.eye(2), np.array([1.0, -1.0])
>>> round(objective(np.array([1.0, -1.0]), X, y, 0.0, 0.0), 6)  # log(1 + e^-1)
0.313262
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import scipy.special

from harness.reference import Reference, optimum

__all__ = ["gradient", "hessian", "objective", "robust_optimum"]


def _exponents(w: np.ndarray, X: np.ndarray, y: np.ndarray, eps: float) -> np.ndarray:
    return -y * (X @ w) + eps * np.linalg.norm(w)


def objective(w: np.ndarray, X: np.ndarray, y: np.ndarray, eps: float, l2: float) -> float:
    """The regularized mean adversarial logistic loss."""
    return float(np.mean(np.logaddexp(0.0, _exponents(w, X, y, eps))) + l2 * (w @ w))


def gradient(w: np.ndarray, X: np.ndarray, y: np.ndarray, eps: float, l2: float) -> np.ndarray:
    """Gradient of :func:`objective` (``w != 0``)."""
    s = scipy.special.expit(_exponents(w, X, y, eps))
    unit = w / np.linalg.norm(w)
    return X.T @ (-y * s) / X.shape[0] + eps * np.mean(s) * unit + 2.0 * l2 * w


def hessian(w: np.ndarray, X: np.ndarray, y: np.ndarray, eps: float, l2: float) -> np.ndarray:
    """Hessian of :func:`objective` (``w != 0``).

    With ``u_i = -y_i x_i.w + eps ||w||`` and ``s_i = sigmoid(u_i)``:
    ``mean_i [s_i (1 - s_i) du_i du_i^T + s_i eps (I - w w^T / ||w||^2) / ||w||] + 2 l2 I``.
    """
    n, d = X.shape
    norm = np.linalg.norm(w)
    s = scipy.special.expit(_exponents(w, X, y, eps))
    du = -y[:, None] * X + eps * w / norm
    curvature = (du.T * (s * (1.0 - s))) @ du / n
    ball = eps * np.mean(s) * (np.eye(d) - np.outer(w, w) / norm**2) / norm
    return curvature + ball + 2.0 * l2 * np.eye(d)


def robust_optimum(X: np.ndarray, y: np.ndarray, eps: float, l2: float, *, task: str, params: Mapping[str, Any],
                   sources: Iterable[Path]) -> Reference:
    """The minimizer and minimum of :func:`objective` by scipy L-BFGS-B (gtol 1e-6) and Newton polish.

    Cached on disk under ``task``, ``params`` and ``sources`` and checked when read
    (:func:`harness.reference.optimum`).
    """
    if not l2 > 0:
        raise ValueError(f"l2 must be positive; got {l2}")
    if not eps >= 0:
        raise ValueError(f"eps must be >= 0; got {eps}")
    args = (X, y, float(eps), float(l2))
    # Start from the clean least-squares direction: ||w|| is not differentiable at 0.
    x0 = np.linalg.lstsq(X, y, rcond=None)[0] * 0.1
    # Newton polish from gtol 1e-6 converges quadratically, where L-BFGS would crawl
    # (ill-conditioned real data) and stall above machine precision.
    return optimum(
        lambda w: objective(w, *args),
        lambda w: gradient(w, *args),
        lambda w: hessian(w, *args),
        x0,
        task=task,
        params=dict(params),
        sources=sources,
        data=(X, y),
        gtol=1e-6,
        polish_steps=20,
    )
