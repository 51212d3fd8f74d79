"""Coupled Langevin replicas: redundant noisy gradient learners synchronized through a graph Laplacian.

``N`` replicas ``X`` ``(N, d)`` of the parameters follow, by Euler-Maruyama with step ``dt``, the
coupled Langevin dynamics of Bouvrie and Slotine's redundant learners::

    dx_i = -grad f(x_i) dt - k sum_j L_ij x_j dt + sigma dW_i
    x_i <- x_i - dt grad f(x_i) - dt k (L X)_i + sigma sqrt(dt) xi_i,   xi_i ~ N(0, I),

with ``L = D - A`` the Laplacian of the replicas' graph (``complete`` or ``ring``) and coupling
strength ``k >= 0``. ``L``'s rows and columns sum to zero, so the coupling pulls the replicas
together without moving their mean: the mean feels the noise of ``N`` independent learners
averaged (``sigma^2 / N``), whatever ``k``; each replica's spread around the mean shrinks with
``k lambda_2(L)`` (``lambda_2 = N`` on the complete graph, ``2 - 2 cos(2 pi / N)`` on the ring).

Every replica starts at the start point. Each step makes one counted ``grad`` call per replica
(``N`` a step). The iterate the harness evaluates (``readout``) is the replicas' mean (``mean``,
the redundant system's decision) or replica 0 (``replica``, one learner's own solution).
Randomness comes from the method's own generator seeded by the run seed: numpy
``default_rng([seed, 0x5C1])`` in torch, ``jax.random`` from ``fold_in(PRNGKey(seed), 0x5C1)``,
split each step and carried in the state, in jax (so the two frameworks draw different noise).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from harness.arrays import like, namespace, noise_key, standard_normal
from harness.graphs import complete_edges, ring_edges
from harness.graphs import laplacian as graph_laplacian

__all__ = ["GRAPHS", "READOUTS", "CoupledLangevin", "CoupledLangevinState", "laplacian"]

GRAPHS = ("complete", "ring")
READOUTS = ("mean", "replica")

_STREAM = 0x5C1


def laplacian(graph: str, n: int) -> np.ndarray:
    """The graph Laplacian ``D - A`` (n, n) of the ``complete`` graph or the ``ring`` on ``n`` nodes.

    >>> laplacian("ring", 4).astype(int).tolist()
    [[2, -1, 0, -1], [-1, 2, -1, 0], [0, -1, 2, -1], [-1, 0, -1, 2]]
    >>> laplacian("complete", 3).astype(int).tolist()
    [[2, -1, -1], [-1, 2, -1], [-1, -1, 2]]
    """
    if graph not in GRAPHS:
        raise ValueError(f"graph must be one of {list(GRAPHS)} (got {graph!r})")
    return graph_laplacian(n, complete_edges(n) if graph == "complete" else ring_edges(n))


class CoupledLangevinState(NamedTuple):
    """The replicas ``(N, d)`` and the noise generator (numpy ``Generator`` or a jax key)."""

    replicas: Any
    key: Any


class CoupledLangevin:
    """Euler-Maruyama on ``N`` Langevin replicas coupled by a graph Laplacian.

    Parameters
    ----------
    replicas
        Number of replicas ``N``.
    graph
        ``complete`` or ``ring``: the coupling graph (its Laplacian ``L`` is built here).
    coupling
        Coupling strength ``k >= 0`` (0: independent replicas).
    sigma
        Noise amplitude of each replica's Wiener process.
    dt
        Time step (stable when ``dt (h_max + k lambda_max(L)) < 2`` on a quadratic of largest
        curvature ``h_max``).
    readout
        ``mean``: the harness evaluates the replicas' mean; ``replica``: replica 0.
    """

    def __init__(self, *, replicas: int, graph: str, coupling: float, sigma: float, dt: float, readout: str) -> None:
        if replicas < 1 or not (dt > 0 and coupling >= 0 and sigma >= 0):
            raise ValueError(f"need replicas >= 1, dt > 0, coupling >= 0, sigma >= 0 "
                             f"(got {replicas}, {dt}, {coupling}, {sigma})")
        if readout not in READOUTS:
            raise ValueError(f"readout must be one of {list(READOUTS)} (got {readout!r})")
        self.n, self.graph, self.readout = int(replicas), str(graph), str(readout)
        self.coupling, self.sigma, self.dt = float(coupling), float(sigma), float(dt)
        self.laplacian = laplacian(self.graph, self.n)

    def _read(self, replicas: Any) -> Any:
        return replicas.mean(0) if self.readout == "mean" else replicas[0]

    def init(self, params: Any, oracle: Any) -> CoupledLangevinState:
        return CoupledLangevinState(namespace(params).stack([params] * self.n), noise_key(params, oracle.seed, _STREAM))

    def step(self, params: Any, state: CoupledLangevinState, oracle: Any) -> tuple[Any, CoupledLangevinState]:
        X = state.replicas
        grads = namespace(X).stack([oracle.grad(X[i]) for i in range(self.n)])  # one counted call per replica
        xi, key = standard_normal(state.key, tuple(X.shape), params)
        drift = grads + self.coupling * (like(self.laplacian, X) @ X)
        X = X - self.dt * drift + self.sigma * self.dt**0.5 * xi
        return self._read(X), CoupledLangevinState(X, key)
