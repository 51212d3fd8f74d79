"""Decentralized first-order methods on a graph's ``node_grads`` and ``gossip``: for torch and jax (eager).

The vector stacks the nodes' copies ``(x_1, ..., x_n)``; ``oracle.node_grads`` gives each node's
gradient at its own copy (counted per node) and ``oracle.gossip(v, w)`` the weighted Laplacian
``L_w v`` (counted as two communications per edge of nonzero weight).

:class:`GossipGD` is EXTRA (Shi, Ling, Wu and Yin 2015), the exact form of decentralized gradient
descent with gossip averaging: with the mixing matrix ``W = I - gamma L`` and ``W~ = (I + W) / 2``,

    x^1 = W x^0 - alpha grad(x^0),
    x^{k+2} = x^{k+1} + W x^{k+1} - W~ x^k - alpha (grad(x^{k+1}) - grad(x^k)),

one full gossip round (every edge) and one gradient per node per step; ``W x^k`` is kept from the
previous step, so each step gossips once. It converges linearly to the consensual minimizer (plain
``x <- W x - alpha grad`` stops at an ``O(alpha)`` neighbourhood of it).

:class:`DADAO` is Nabli and Oyallon's decoupled accelerated asynchronous method (ICML 2023), as
the authors' code (github.com/AdelNabli/DADAO, ``DADAO_optimizer``) implements it: every node holds
six variables ``(x, x~, y, y~, z, z~)`` that follow a node-local linear ODE between events; local
gradient events (a Poisson clock of rate ``grad_rate`` per node) and communication events (a
Poisson clock of total rate ``lambda = sqrt(2 chi_1 chi_2)``, each event on an edge drawn
uniformly) make jumps. ``chi_1`` is the inverse smallest positive eigenvalue and ``chi_2`` the
largest edge resistance ``max_(ij) (e_i - e_j)^T L^+ (e_i - e_j) / 2`` of the edge-probability
Laplacian ``L / E``. Each step plays the events of ``horizon`` units of time.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from harness.arrays import einsum, like
from harness.graphs import laplacian

__all__ = ["DADAO", "GossipGD", "dadao_constants", "laplacian", "spectral_constants"]

_STREAM = 0xDADA0


def spectral_constants(n: int, edges: np.ndarray) -> tuple[float, float]:
    """``(chi_1, chi_2)`` of the Laplacian ``L / E`` of uniform edge probabilities (DADAO's code)."""
    lap = laplacian(n, edges) / len(edges)
    chi_1 = 1.0 / np.linalg.eigvalsh(lap)[1]
    pinv = np.linalg.pinv(lap)
    chi_2 = max(0.5 * (pinv[i, i] + pinv[j, j] - 2 * pinv[i, j]) for i, j in edges)
    return float(chi_1), float(chi_2)


def dadao_constants(smoothness: float, strong_convexity: float, chi_1_star: float) -> dict[str, Any]:
    """The ODE matrix ``(6, 6)`` over ``(x, x~, y, y~, z, z~)`` and the jump sizes of DADAO's theory.

    ``nu = mu / 2``; ``chi_1_star`` is ``chi_1`` of the rate-weighted Laplacian ``lambda L / E``.
    """
    L, nu = float(smoothness), float(strong_convexity) / 2
    s = np.sqrt(nu / L)
    alpha, alpha_t, eta, theta = s / 4, s / 8, s / 8, 1 / (2 * s)
    ode = np.zeros((6, 6))
    ode[0, 0], ode[0, 1] = -eta, eta  # x  -> x~
    ode[1, 0], ode[1, 1] = eta, -eta  # x~ -> x
    ode[2, 2], ode[2, 3] = -alpha, alpha  # y -> y~
    ode[3, 1], ode[3, 2], ode[3, 4] = -theta * nu, -theta, -theta  # y~ <- -theta (nu x~ + y + z)
    ode[4, 4], ode[4, 5] = -alpha, alpha  # z -> z~
    ode[5, 4], ode[5, 5] = alpha_t, -alpha_t  # z~ -> z
    gamma, gamma_t, delta, beta, beta_t = 1 / (4 * L), 1 / (4 * np.sqrt(L * nu)), s / 4 + 1.0, 0.5, 2 * chi_1_star / s
    # Jump of each variable per unit of the gradient residual v and of the gossip p (variable -= jump * v).
    return {"nu": nu, "ode": ode, "grad_jumps": np.array([gamma, gamma_t, 0, -delta, 0, 0]),
            "comm_jumps": np.array([0, 0, 0, 0, beta, beta_t])}


class GossipGD:
    """EXTRA: exact decentralized gradient descent with one full gossip round per step.

    Parameters
    ----------
    lr
        The gradient step ``alpha``.
    mixing
        ``gamma`` of ``W = I - gamma L``; ``0``: ``1 / (1 + max degree)`` (``W`` stays positive
        semidefinite enough for EXTRA's ``W~``).
    """

    def __init__(self, *, lr: float, mixing: float = 0.0) -> None:
        if not (lr > 0 and mixing >= 0):
            raise ValueError(f"need lr > 0 and mixing >= 0 (got {lr}, {mixing})")
        self.lr, self.mixing = float(lr), float(mixing)

    def init(self, params: Any, oracle: Any) -> dict[str, Any]:
        edges = oracle.graph()
        degree = np.bincount(edges.reshape(-1), minlength=int(oracle.n_nodes)).max()
        gamma = 1.0 / (1.0 + degree) if self.mixing == 0 else self.mixing
        return {"weights": like(np.full(len(edges), gamma), params), "previous": None}

    def _mix(self, x: Any, state: dict[str, Any], oracle: Any) -> Any:
        return x - oracle.gossip(x, state["weights"])  # W x = x - gamma L x

    def step(self, params: Any, state: dict[str, Any], oracle: Any) -> tuple[Any, dict[str, Any]]:
        grad, mixed = oracle.node_grads(params), self._mix(params, state, oracle)
        if state["previous"] is None:
            new = mixed - self.lr * grad
        else:
            x_old, mixed_old, grad_old = state["previous"]
            new = params + mixed - 0.5 * (x_old + mixed_old) - self.lr * (grad - grad_old)
        return new, {**state, "previous": (params, mixed, grad)}


class DADAO:
    """DADAO: decoupled Poisson clocks for local gradients and edge gossips, accelerated primal updates.

    Parameters
    ----------
    smoothness, strong_convexity
        ``L`` and ``mu`` of every local ``f_i`` (the theory's constants).
    horizon
        Time played per step (``grad_rate * n * horizon`` gradient events expected).
    grad_rate
        Rate of each node's gradient clock (1 in the paper: ``n`` gradients per unit of time).
    comm_rate
        Total rate of the communication clock; ``0``: the theory's ``sqrt(2 chi_1 chi_2)``.
    """

    def __init__(self, *, smoothness: float, strong_convexity: float, horizon: float = 1.0,
                 grad_rate: float = 1.0, comm_rate: float = 0.0) -> None:
        if not (smoothness >= strong_convexity > 0 and horizon > 0 and grad_rate > 0 and comm_rate >= 0):
            raise ValueError("need smoothness >= strong_convexity > 0, horizon > 0, grad_rate > 0, comm_rate >= 0")
        self.L, self.mu, self.horizon = float(smoothness), float(strong_convexity), float(horizon)
        self.grad_rate, self.comm_rate = float(grad_rate), float(comm_rate)

    def init(self, params: Any, oracle: Any) -> dict[str, Any]:
        edges = np.array(oracle.graph())
        n = int(oracle.n_nodes)
        chi_1, chi_2 = spectral_constants(n, edges)
        comm_rate = np.sqrt(2 * chi_1 * chi_2) if self.comm_rate == 0 else self.comm_rate
        constants = dadao_constants(self.L, self.mu, chi_1 / comm_rate)
        return {
            "n": n, "edges": edges, "grad_rate": self.grad_rate * n, "comm_rate": comm_rate,
            "expm": _Exponential(constants.pop("ode")), "nu": constants["nu"],
            "edge_index": {(int(i), int(j)): e for e, (i, j) in enumerate(edges)},
            # Jumps as (6, 1, 1) framework arrays, made once.
            **{k: like(constants[k], params)[:, None, None] for k in ("grad_jumps", "comm_jumps")},
            "rng": np.random.default_rng([int(oracle.seed), _STREAM]),
            # (x, x~, y, y~, z, z~) stacked (6, n, d); every node's clock last stopped at 'last'.
            "vars": like(np.eye(6)[0], params)[:, None, None] * params.reshape(1, n, -1),  # x = the start, others 0
            "time": 0.0, "last": np.zeros(n),
        }

    def _events(self, state: dict[str, Any]) -> list[tuple[float, int, int]]:
        """The events of ``(time, time + horizon]``: ``(t, node, -1)`` gradients, ``(t, i, j)`` gossips."""
        rng, total = state["rng"], state["grad_rate"] + state["comm_rate"]
        end, t, events = state["time"] + self.horizon, state["time"], []
        while True:
            t += rng.exponential(1 / total)
            if t > end:  # memoryless: the next step's clock restarts at 'end'
                return events
            if rng.random() < state["grad_rate"] / total:
                events.append((t, int(rng.integers(state["n"])), -1))
            else:
                i, j = state["edges"][rng.integers(len(state["edges"]))]
                events.append((t, int(i), int(j)))

    def _flow(self, state: dict[str, Any], times: np.ndarray) -> None:
        """Each node's ODE from its last event to ``times[node]`` (exactly: the flow is linear and node-local)."""
        flows = like(state["expm"](times - state["last"]), state["vars"])  # (n, 6, 6)
        state["vars"] = einsum("nab,bnd->and", flows, state["vars"])
        state["last"] = times.copy()

    def _play(self, state: dict[str, Any], group: list[tuple[float, int, int]], oracle: Any) -> None:
        """Events on distinct nodes: they commute, so one node_grads and one gossip call play them all."""
        times = state["last"].copy()
        grads = [node for _, node, other in group if other < 0]
        weights = np.zeros(len(state["edges"]))
        for t, i, j in group:
            times[i] = t
            if j >= 0:
                times[j] = t
                weights[state["edge_index"][i, j]] = 1.0
        self._flow(state, times)
        S, n = state["vars"], state["n"]
        if grads:
            mask = np.zeros((n, 1))
            mask[grads] = 1.0
            g = oracle.node_grads(S[0].reshape(-1), nodes=grads).reshape(n, -1)
            v = g - like(mask, S) * (state["nu"] * S[0] + S[3])  # zero at the nodes without an event
            S = S - state["grad_jumps"] * v[None]  # x, x~ down; y~ up
        if weights.any():
            p = oracle.gossip((S[2] + S[4]).reshape(-1), like(weights, S)).reshape(n, -1)  # sum_e (e_i - e_j)(e_i - e_j)^T (y + z)
            S = S - state["comm_jumps"] * p[None]  # z, z~
        state["vars"] = S

    def step(self, params: Any, state: dict[str, Any], oracle: Any) -> tuple[Any, dict[str, Any]]:
        state = dict(state)
        group: list[tuple[float, int, int]] = []
        busy: set[int] = set()
        for event in self._events(state):
            nodes = {event[1]} if event[2] < 0 else {event[1], event[2]}
            if busy & nodes:  # in time order: a node's next event waits for the group of its last
                self._play(state, group, oracle)
                group, busy = [], set()
            group.append(event)
            busy |= nodes
        if group:
            self._play(state, group, oracle)
        state["time"] += self.horizon
        self._flow(state, np.full(state["n"], state["time"]))  # every node at the step's end (no call)
        return state["vars"][0].reshape(-1), state


class _Exponential:
    """``t -> expm(M t)`` for a batch of times, from one eigendecomposition of ``M`` (checked against scipy)."""

    def __init__(self, matrix: np.ndarray) -> None:
        import scipy.linalg

        self.values, self.vectors = np.linalg.eig(matrix)
        self.inverse = np.linalg.inv(self.vectors)
        for t in (0.1, 1.0, 10.0):
            if not np.allclose(self(np.array([t]))[0], scipy.linalg.expm(matrix * t), rtol=1e-10, atol=1e-12):
                raise ValueError("the DADAO ODE matrix is too far from diagonalizable for its eigendecomposition")

    def __call__(self, times: np.ndarray) -> np.ndarray:
        scaled = np.exp(self.values[None, :] * times[:, None])  # (n, 6)
        return np.einsum("ab,nb,bc->nac", self.vectors, scaled, self.inverse).real

