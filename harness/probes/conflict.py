"""Gradient conflict between tasks: pairwise cosines and magnitude similarities of the task gradients.

From ``context.oracle.task_grads`` at the evaluation point, on the shared coordinates (the
``shared_dimension`` leading ones; heads are task-specific, so they cannot conflict), for every pair
``i < j`` of tasks (1-based in the names): ``cos.i-j = g_i . g_j / (|g_i| |g_j|)`` (negative: the
tasks conflict, PCGrad's test) and ``similarity.i-j = 2 |g_i| |g_j| / (|g_i|^2 + |g_j|^2)`` (1 for
equal magnitudes, SAM-GS's measure), plus their minima ``cos_min`` and ``similarity_min``. A zero
gradient has no direction: its cosines are NaN, and its similarities 0 (1 when both are zero).
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["GradConflict", "conflict"]


def conflict(grads: np.ndarray) -> dict[str, float]:
    """The probe's values for task gradients ``grads`` ``(T, d)`` (numpy)."""
    norms = np.linalg.norm(grads, axis=1)
    out: dict[str, float] = {}
    cosines, similarities = [], []
    for i in range(len(grads)):
        for j in range(i + 1, len(grads)):
            product = norms[i] * norms[j]
            cos = float(grads[i] @ grads[j] / product) if product > 0 else float("nan")
            squares = norms[i] ** 2 + norms[j] ** 2
            similarity = float(2 * product / squares) if squares > 0 else 1.0
            out[f"cos.{i + 1}-{j + 1}"], out[f"similarity.{i + 1}-{j + 1}"] = cos, similarity
            cosines.append(cos)
            similarities.append(similarity)
    if cosines:
        out["cos_min"] = float(np.nanmin(cosines)) if not np.all(np.isnan(cosines)) else float("nan")
        out["similarity_min"] = float(min(similarities))
    return out


class GradConflict:
    """The ``grad-conflict`` probe (no options)."""

    def __call__(self, context: Any) -> dict[str, float]:
        _, grads = context.oracle.task_grads(context.params)
        grads = np.asarray(context.backend.to_numpy(grads), dtype=np.float64)
        problem = context.problem
        shared = getattr(problem, "shared_dimension", None)
        shared = grads.shape[1] if shared is None else int(shared)
        return conflict(grads[:, :shared])
