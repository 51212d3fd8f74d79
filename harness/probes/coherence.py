"""``coherence``: how aligned the per-example gradients are (the m-coherence).

For per-example gradients ``g_1 .. g_m`` the m-coherence is
``alpha_m = m ||mean_i g_i||^2 / mean_i ||g_i||^2``: ``m`` when all gradients are equal, about 1
when they are mutually orthogonal (or random), 0 when they cancel. Coherent gradients make
gradient descent algorithmically stable: real labels give coherent gradients, random labels
incoherent ones, an order of magnitude apart and more.
"""

from __future__ import annotations

import numpy as np

from harness.probes import ProbeContext

__all__ = ["Coherence", "m_coherence"]


def m_coherence(grads: np.ndarray) -> float:
    """``m ||mean g||^2 / mean ||g||^2`` over the rows of ``grads`` (m, dim)."""
    grads = np.asarray(grads, dtype=np.float64)
    mean = grads.mean(axis=0)
    energy = float(np.mean(np.sum(grads * grads, axis=1)))
    return float(len(grads) * (mean @ mean) / energy) if energy > 0 else float("nan")


class Coherence:
    """m-coherence of the per-example gradients ``grad f_i`` at the evaluated point.

    ``f_i`` is the problem's term ``i`` (its loss plus the shared regularizer, whose gradient is
    common to all rows and tiny at the usual penalty weights).

    Parameters
    ----------
    examples
        How many examples (a subset fixed by ``seed``, the same at every evaluation point);
        0 takes them all.
    seed
        Seed of the subset.
    """

    def __init__(self, *, examples: int = 0, seed: int = 0) -> None:
        if examples < 0:
            raise ValueError(f"examples must be >= 0; got {examples}")
        self.examples, self.seed = int(examples), int(seed)

    def __call__(self, context: ProbeContext) -> dict[str, float]:
        n = int(context.problem.n_samples)
        if self.examples and self.examples < n:
            indices = np.sort(np.random.default_rng(self.seed).choice(n, self.examples, replace=False))
        else:
            indices = np.arange(n)
        grads = np.asarray(context.backend.to_numpy(context.oracle.per_example_grads(context.params, indices)))
        alpha = m_coherence(grads)
        return {"m_coherence": alpha, "alpha": alpha / len(indices), "examples": float(len(indices))}
