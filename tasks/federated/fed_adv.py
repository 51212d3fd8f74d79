"""Federated adversarial logistic regression: ``C`` label-skewed clients, one class for torch and jax.

Client ``k`` holds its own block of the examples of the ``robust-logreg`` data and its own copy
``w_k`` of the model; the parameter vector stacks the copies ``(w_1, ..., w_C)``. Its local loss on
inputs shifted by perturbations ``delta`` is the plain logistic loss

.. math:: f_k(w_k; \\delta) = \\frac{1}{n_k} \\sum_{i \\in k} \\log\\big(1 + e^{-y_i (x_i + \\delta_i)^\\top w_k}\\big)
          + \\ell_2 \\lVert w_k \\rVert^2,

so a client trains naturally with ``delta = 0`` (FedAvg) or adversarially with the perturbations
its own attack finds in the l2 ball of radius ``eps`` (FAL's inner loop). What is measured is the
global robust loss of the server's model ``w = sum_k n_k w_k / n``, the inner maximization in
closed form (:mod:`harness.robust`), against the centralized robust optimum of the same data:
``sum_k (n_k / n) max_delta f_k = `` the ``robust-logreg`` objective.

Label skew: with ``q_k`` spread evenly over ``[1/2 - skew/2, 1/2 + skew/2]``, client ``k`` receives
the share ``q_k / sum q`` of the positive examples and ``(1 - q_k) / sum (1 - q)`` of the negative
ones (:func:`label_skewed_split`), so its positive fraction is about ``q_k`` and every client holds
about ``n / C`` examples. The examples are stored client by client (``client_sizes``).
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import numpy as np

from harness.arrays import block_shard, immutable, namespace, to_float64
from harness.datasets import BINARY_DATASETS, binary_classification, binary_key
from harness.reference import Reference
from harness.robust import objective, robust_optimum

__all__ = ["DATASETS", "FedAdv", "label_skewed_split", "reference"]

DATASETS = BINARY_DATASETS

#: What defines the problem besides its parameters and data: part of the reference's cache key.
_SOURCES = (Path(__file__), Path(__file__).with_name("fed-adv.yaml"))


def label_skewed_split(y: np.ndarray, clients: int, skew: float, data_seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The example order, client by client, and the clients' sizes ``(C,)``.

    Positives and negatives are each permuted by ``default_rng([data_seed, 2])`` (a stream apart
    from the data's) and cut in the clients' shares; a client's examples keep their data order.
    """
    if clients < 2 or not 0.0 <= skew < 1.0:
        raise ValueError(f"need clients >= 2 and 0 <= skew < 1 (got {clients}, {skew})")
    q = 0.5 + skew * (np.arange(clients) / (clients - 1) - 0.5)
    rng = np.random.default_rng([data_seed, 2])
    blocks: list[list[np.ndarray]] = [[] for _ in range(clients)]
    for label, share in ((1.0, q), (-1.0, 1.0 - q)):
        members = rng.permutation(np.flatnonzero(y == label))
        cuts = np.round(np.cumsum(share / share.sum()) * len(members)).astype(int)[:-1]
        for k, part in enumerate(np.split(members, cuts)):
            blocks[k].append(part)
    parts = [np.sort(np.concatenate(b)) for b in blocks]
    if min(len(p) for p in parts) == 0:
        raise ValueError("a client holds no example: fewer clients or more data")
    return immutable(np.concatenate(parts)), immutable(np.array([len(p) for p in parts], dtype=np.int64))


@functools.cache
def _reference(key: tuple[Any, ...], eps: float, l2: float) -> Reference:
    X, y = binary_classification(*key)
    return robust_optimum(X, y, eps, l2, task="fed-adv", params={"key": list(key), "eps": eps, "l2": l2},
                          sources=_SOURCES)


def reference(*, dataset: str, n: int, d: int, eps: float, l2: float, data_seed: int) -> Reference:
    """The centralized robust optimum: the ``robust-logreg`` objective of all the clients' data, minimized."""
    return _reference(binary_key(dataset, n, d, data_seed), float(eps), float(l2))


class FedAdv:
    """Label-skewed clients with stacked model copies; the server's model is the size-weighted mean.

    Parameters
    ----------
    backend
        The run's framework backend.
    dataset, n, d, data_seed
        The data (``robust-logreg``'s recipe, :func:`harness.datasets.binary_classification`).
    eps, l2
        Radius of the l2 ball of input perturbations (the threat model) and weight of ``l2 ||w||^2``.
    clients, skew
        Number of clients and the spread of their positive fractions (:func:`label_skewed_split`).
    local_epochs
        Local epochs between two aggregations (one epoch: one pass over the client's examples).
    """

    def __init__(self, *, backend: Any, dataset: str, n: int, d: int, eps: float, l2: float, data_seed: int,
                 clients: int, skew: float, local_epochs: int) -> None:
        if local_epochs < 1:
            raise ValueError(f"local_epochs must be >= 1; got {local_epochs}")
        self.backend = backend
        X, y = binary_classification(dataset, n, d, data_seed)
        order, self.client_sizes = label_skewed_split(y, int(clients), float(skew), int(data_seed))
        self.X_np, self.y_np = immutable(X[order]), immutable(y[order])
        self.owner = immutable(np.repeat(np.arange(int(clients)), self.client_sizes))  # example -> client
        self.n_clients, self.local_epochs = int(clients), int(local_epochs)
        self.perturbation_radius, self.l2 = float(eps), float(l2)
        self.n_features = X.shape[1]
        self.dim = self.n_clients * self.n_features
        ref = reference(dataset=dataset, n=n, d=d, eps=eps, l2=l2, data_seed=data_seed)
        self.solution: np.ndarray = ref.x_star  # the centralized robust optimum, (features,)
        self.x_star = np.tile(self.solution, self.n_clients)  # every copy at it
        self.f_star = ref.f_star
        self._weights = self.client_sizes / self.client_sizes.sum()
        self._arrays(np.ones(self.n_clients))

    def _arrays(self, own: np.ndarray) -> None:
        """The framework arrays; ``own`` (C,) is 1 at the clients this instance answers for, 0 elsewhere."""
        membership = np.eye(self.n_clients)[self.owner]  # (n, C) one-hot
        self.X, self.y = self.backend.asarray(self.X_np), self.backend.asarray(self.y_np)
        self.membership = self.backend.asarray(membership)
        self.own = self.backend.asarray(own)
        self.mean_rows = self.backend.asarray(membership.T / self.client_sizes[:, None])  # (C, n): client means
        self.server_weights = self.backend.asarray(own * self._weights)  # n_k / n at own clients
        self.weights = self.backend.asarray(self._weights)
        self.copies = self.backend.asarray(np.ones((self.n_clients, 1)))  # broadcasts the server model to every copy
        self.clean = self.backend.asarray(np.zeros_like(self.X_np))  # no perturbation

    def shard(self, rank: int, world_size: int) -> tuple[FedAdv, float]:
        """Rank ``rank``'s contiguous block of clients: their losses and shares of the mean; weight 1 (a sum)."""
        return block_shard(self, self.n_clients, rank, world_size)

    def init_params(self, seed: int) -> Any:
        """``w ~ N(0, I/d)`` from ``default_rng(seed)`` (``robust-logreg``'s start), broadcast to every client."""
        w = np.random.default_rng(seed).standard_normal(self.n_features) / np.sqrt(self.n_features)
        return self.backend.asarray(np.tile(w, self.n_clients))

    def client_losses(self, params: Any, perturbations: Any) -> Any:
        """``f_k(w_k; delta)`` for every client, shape ``(C,)`` (0 at the clients of other shards)."""
        copies = params.reshape(self.n_clients, self.n_features)
        margins = self.y * ((self.X + perturbations) * (self.membership @ copies)).sum(1)
        xp = namespace(params)
        terms = xp.logaddexp(xp.zeros_like(margins), -margins)
        return (self.mean_rows @ terms + self.l2 * (copies * copies).sum(1)) * self.own

    def loss(self, params: Any) -> Any:
        """The size-weighted clean loss ``sum_k (n_k / n) f_k(w_k; 0)``."""
        return (self.client_losses(params, self.clean) * self.weights).sum()

    def aggregate(self, params: Any) -> Any:
        """Every copy set to ``sum_k (n_k / n) w_k`` (the own clients' share of it on a shard)."""
        mean = self.server_weights @ params.reshape(self.n_clients, self.n_features)
        return (self.copies * mean[None, :]).reshape(self.dim)

    def server_model(self, params: Any) -> np.ndarray:
        """The size-weighted mean of the copies, in float64 numpy."""
        return self._weights @ to_float64(self.backend, params).reshape(self.n_clients, self.n_features)

    def evaluate(self, params: Any) -> dict[str, float]:
        """The server model's robust objective, its distance to the optimum and accuracies, in float64 numpy."""
        w = self.server_model(params)
        margins = self.y_np * (self.X_np @ w)
        return {
            "objective": objective(w, self.X_np, self.y_np, self.perturbation_radius, self.l2),
            "relative_error": float(np.linalg.norm(w - self.solution) / np.linalg.norm(self.solution)),
            "train_accuracy": float(np.mean(margins > 0)),
            "robust_accuracy": float(np.mean(margins - self.perturbation_radius * np.linalg.norm(w) > 0)),
            "client_spread": float(np.sqrt(self._weights @ ((to_float64(self.backend, params).reshape(
                self.n_clients, self.n_features) - w) ** 2).sum(1))),
        }
