"""Decentralized ridge regression on a graph of ``n`` nodes: one class for torch and jax.

Node ``i`` holds ``m`` rows ``(X_i, y_i)`` and its own copy ``x_i`` of the ``d`` weights; its loss is

.. math:: f_i(x) = \\frac{1}{2m} \\lVert X_i x - y_i \\rVert^2 + \\frac{\\mu}{2} \\lVert x \\rVert^2,

and the network minimizes ``F(x) = sum_i f_i(x)`` under consensus ``x_1 = ... = x_n``. The parameter
vector stacks the copies, ``(x_1, ..., x_n)`` (length ``n d``); the task's ``loss`` is
``sum_i f_i(x_i)`` (no consensus term), ``node_losses`` its terms and ``gossip`` the weighted graph
Laplacian ``(L_w x)_i = sum_{e = (i, j)} w_e (x_i - x_j)`` on the copies, through the edge-node
incidence matrix ``B``: ``L_w x = B^T diag(w) B x``. ``x* = argmin F`` is the closed form
``(sum_i H_i)^{-1} sum_i X_i^T y_i / m`` with ``H_i = X_i^T X_i / m + mu I`` (a numpy solve).

The columns of every ``X_i`` are scaled by log-spaced factors from ``FEATURE_SCALES[0]`` down to
``FEATURE_SCALES[1]``, so the smallest curvature comes from the ridge ``mu`` and the local condition
number ``L / mu`` is about 10^3 (where accelerated methods pay off). Node ``i``'s planted weights
are ``w + HETEROGENEITY z_i`` (a common ``w``, node-specific shifts), so the local minimizers
differ and consensus is not free.

Graphs: ``ring`` (``i ~ i + 1 mod n``) or ``geometric`` (``n`` points uniform in the unit
square, an edge between points at most ``GEOMETRIC_RADIUS`` apart; the points are redrawn from
the same generator until the graph is connected, checked by :func:`connected`).
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

from harness.arrays import block_shard, einsum, immutable, is_numpy, like, to_float64
from harness.graphs import ring_edges

__all__ = ["DecentralRidge", "FEATURE_SCALES", "GEOMETRIC_RADIUS", "HETEROGENEITY", "NOISE", "connected",
           "graph_edges", "node_data", "solution"]

#: Column scales of the features, log-spaced from the first to the second over the d columns.
FEATURE_SCALES = (3.0, 0.03)
#: Standard deviation of the node-specific shifts of the planted weights.
HETEROGENEITY = 0.5
#: Standard deviation of the label noise.
NOISE = 0.1
#: Connection radius of the random geometric graph in the unit square.
GEOMETRIC_RADIUS = 0.5


def connected(n: int, edges: np.ndarray) -> bool:
    """Whether the undirected graph on ``n`` nodes with ``edges`` ``(E, 2)`` is connected (scipy)."""
    import scipy.sparse as sp
    from scipy.sparse.csgraph import connected_components

    adjacency = sp.coo_matrix((np.ones(len(edges)), (edges[:, 0], edges[:, 1])), shape=(n, n))
    return connected_components(adjacency, directed=False)[0] == 1


@functools.cache
def graph_edges(graph: str, n: int, data_seed: int) -> np.ndarray:
    """The ``(E, 2)`` edges ``i < j`` of the ring or of the connected random geometric graph."""
    if graph == "ring":
        return immutable(ring_edges(n))
    if graph != "geometric":
        raise ValueError(f"graph must be 'ring' or 'geometric' (got {graph!r})")
    rng = np.random.default_rng([data_seed, 1])  # a stream of its own: the data stay those of the ring
    for _ in range(1000):
        points = rng.random((n, 2))
        distance = np.linalg.norm(points[:, None] - points[None], axis=-1)
        i, j = np.nonzero(np.triu(distance <= GEOMETRIC_RADIUS, k=1))
        edges = np.stack([i, j], axis=1).astype(np.int64)
        if connected(n, edges):
            return immutable(edges)
    raise RuntimeError(f"no connected geometric graph of radius {GEOMETRIC_RADIUS} in 1000 draws")


@functools.cache
def node_data(n: int, m: int, d: int, data_seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``X`` ``(n, m, d)`` and ``y`` ``(n, m)``: scaled Gaussian features, planted weights plus noise."""
    rng = np.random.default_rng([data_seed, 0])
    w = rng.standard_normal(d)
    scales = np.logspace(np.log10(FEATURE_SCALES[0]), np.log10(FEATURE_SCALES[1]), d)
    X = rng.standard_normal((n, m, d)) * scales
    planted = w + HETEROGENEITY * rng.standard_normal((n, d))
    y = np.einsum("nmd,nd->nm", X, planted) + NOISE * rng.standard_normal((n, m))
    return immutable(X), immutable(y)


@functools.cache
def solution(n: int, m: int, d: int, mu: float, data_seed: int) -> np.ndarray:
    """``x* = argmin_x sum_i f_i(x)``: ``(sum_i X_i^T X_i / m + n mu I)^{-1} sum_i X_i^T y_i / m``."""
    X, y = node_data(n, m, d, data_seed)
    hessian = np.einsum("nmd,nme->de", X, X) / m + n * mu * np.eye(d)
    return immutable(np.linalg.solve(hessian, np.einsum("nmd,nm->d", X, y) / m))


class DecentralRidge:
    """``sum_i f_i(x_i)`` over the nodes of a graph, with each node's copy ``x_i`` stacked in the vector.

    Parameters
    ----------
    backend
        The framework backend (its ``asarray`` makes the data arrays).
    graph
        ``"ring"`` or ``"geometric"``.
    nodes, rows, dim
        ``n`` nodes, ``m`` rows per node, ``d`` weights.
    mu
        The ridge coefficient of every ``f_i``.
    data_seed
        Seed of the data and of the geometric graph; fixed across run seeds.
    """

    def __init__(self, *, backend: Any, graph: str, nodes: int, rows: int, dim: int, mu: float,
                 data_seed: int) -> None:
        if nodes < 2 or rows < 1 or dim < 1 or not mu > 0:
            raise ValueError(f"need nodes >= 2, rows >= 1, dim >= 1, mu > 0 (got {nodes}, {rows}, {dim}, {mu})")
        self.backend = backend
        self.n_nodes, self.m, self.d, self.mu = int(nodes), int(rows), int(dim), float(mu)
        self.dim = self.n_nodes * self.d
        self.edges = graph_edges(graph, self.n_nodes, int(data_seed))
        self._X, self._y = node_data(self.n_nodes, self.m, self.d, int(data_seed))
        self.solution = solution(self.n_nodes, self.m, self.d, self.mu, int(data_seed))  # x*, shape (d,)
        self.x_star = np.tile(self.solution, self.n_nodes)  # the optimum in the stacked parameters: every copy at x*
        self.f_star = self._objective(self.solution)
        incidence = np.zeros((len(self.edges), self.n_nodes))
        incidence[np.arange(len(self.edges)), self.edges[:, 0]] = 1.0
        incidence[np.arange(len(self.edges)), self.edges[:, 1]] = -1.0
        self._incidence = incidence
        self._arrays(np.ones(self.n_nodes))

    def _arrays(self, own: np.ndarray) -> None:
        """The framework arrays; ``own`` (n,) is 1 at the nodes this instance answers for, 0 elsewhere."""
        self._own = own
        self.X, self.y = self.backend.asarray(self._X), self.backend.asarray(self._y)
        self.B = self.backend.asarray(self._incidence)
        self.own = self.backend.asarray(own)

    def shard(self, rank: int, world_size: int) -> tuple[DecentralRidge, float]:
        """Rank ``rank``'s contiguous block of nodes: losses and gossip rows zero elsewhere; weight 1 (a sum)."""
        return block_shard(self, self.n_nodes, rank, world_size)

    def init_params(self, seed: int) -> Any:
        """Every copy at 0, for every seed (the seeds differ only by a method's own draws)."""
        return self.backend.asarray(np.zeros(self.dim))

    def node_losses(self, params: Any) -> Any:
        """``f_i(x_i)`` for every node, shape ``(n,)`` (0 at the nodes of other shards)."""
        x = params.reshape(self.n_nodes, self.d)
        residual = einsum("nmd,nd->nm", self.X, x) - self.y
        return (0.5 * (residual * residual).mean(1) + 0.5 * self.mu * (x * x).sum(1)) * self.own

    def loss(self, params: Any) -> Any:
        return self.node_losses(params).sum()

    def gossip(self, params: Any, edge_weights: Any) -> Any:
        """``L_w x = B^T diag(w) B x`` on the stacked copies (rows of other shards' nodes are 0)."""
        x = params.reshape(self.n_nodes, self.d)
        weights = like(edge_weights, params) if is_numpy(edge_weights) else edge_weights
        flow = weights[:, None] * (self.B @ x)
        return ((self.B.T @ flow) * self.own[:, None]).reshape(self.dim)

    def _objective(self, x: np.ndarray) -> float:
        """``F(x) = sum_i f_i(x)`` in numpy, from the residuals."""
        residual = np.einsum("nmd,d->nm", self._X, x) - self._y
        return float(0.5 * (residual**2).mean(1).sum() + 0.5 * self.n_nodes * self.mu * x @ x)

    def evaluate(self, params: Any) -> dict[str, float]:
        x = to_float64(self.backend, params).reshape(self.n_nodes, self.d)
        mean = x.mean(0)
        node_error = float(((x - self.solution) ** 2).sum(1).mean())
        return {
            "objective": self._objective(mean),
            "node_error": node_error,
            "relative_node_error": node_error / float(self.solution @ self.solution),
            "consensus_error": float(((x - mean) ** 2).sum(1).mean()),
        }
