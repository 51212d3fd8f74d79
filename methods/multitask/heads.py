"""The direction on a multi-task parameter vector: a rule's direction on the shared trunk, the heads' own gradients."""

from __future__ import annotations

from typing import Any

from harness.arrays import namespace

__all__ = ["with_heads"]


def with_heads(shared: Any, grads: Any, s: int) -> Any:
    """``shared`` (a rule's direction on the first ``s`` coordinates) followed by the heads' gradient.

    A task's row of ``grads`` ``(T, dim)`` is zero on the other tasks' heads, so the sum of the rows
    there is each head's own task gradient: the plain gradient of the summed loss.
    """
    return namespace(grads).concatenate([shared, grads[:, s:].sum(0)])
