"""Undirected graphs on ``n`` nodes as edge lists, and their Laplacians (numpy).

One owner for the tasks and methods that work on a graph: decentralized optimization (a task's
communication graph, a method's mixing) and coupled replicas (the coupling of Langevin chains).

Examples
--------
>>> ring_edges(4).tolist()
[[0, 1], [0, 3], [1, 2], [2, 3]]
>>> laplacian(3, complete_edges(3)).astype(int).tolist()
[[2, -1, -1], [-1, 2, -1], [-1, -1, 2]]
"""

from __future__ import annotations

import numpy as np

__all__ = ["complete_edges", "laplacian", "ring_edges"]


def ring_edges(n: int) -> np.ndarray:
    """The ring's edges ``(i, i + 1 mod n)`` as sorted pairs ``i < j``, ``(E, 2)`` int64 (two nodes: one edge)."""
    pairs = {(min(i, (i + 1) % n), max(i, (i + 1) % n)) for i in range(n) if n > 1}
    return np.array(sorted(pairs), dtype=np.int64).reshape(-1, 2)


def complete_edges(n: int) -> np.ndarray:
    """Every pair ``i < j``, ``(n (n - 1) / 2, 2)`` int64."""
    i, j = np.triu_indices(n, k=1)
    return np.stack([i, j], axis=1).astype(np.int64)


def laplacian(n: int, edges: np.ndarray) -> np.ndarray:
    """The unweighted graph Laplacian ``D - A`` ``(n, n)`` of ``edges`` ``(E, 2)`` (each edge counted once)."""
    lap = np.zeros((n, n))
    for i, j in np.asarray(edges, dtype=np.int64).reshape(-1, 2):
        lap[i, i] += 1.0
        lap[j, j] += 1.0
        lap[i, j] -= 1.0
        lap[j, i] -= 1.0
    return lap
