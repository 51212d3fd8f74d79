"""Order-4 spiked tensor PCA on the sphere: one problem class for torch and jax.

The observation is ``T = theta*^{(x)4} + G / sqrt(n)`` in ``(R^d)^{(x)4}``, with ``theta*`` a unit
vector drawn from ``default_rng(data_seed)`` (fixed across run seeds) and ``G`` the symmetric
Gaussian noise tensor ``G = sqrt(24) Sym(Z) = (1 / sqrt(24)) sum_pi Z^pi``: ``Z`` has iid
``N(0, 1)`` entries and ``Sym(Z) = (1/24) sum_pi Z^pi`` averages ``Z`` over the 24 permutations
of its four indices (the orthogonal projection onto symmetric tensors). ``G``'s entries with four
distinct indices are ``N(0, 1)``; ``n`` plays the number of samples (``T`` is the mean of ``n``
noisy copies of the spike).

The objective is to maximize ``<T, u^{(x)4}>`` over unit vectors ``u``. So that any unconstrained
method can run on it, the loss is scale-invariant::

    loss(theta) = -<T, (theta / ||theta||)^{(x)4}>,

contracted one index at a time (``T`` as a ``(d^3, d)`` matrix times ``u``, then ``(d^2, d)``,
...: ``O(d^4)`` a call). The metrics are computed in numpy with ``einsum`` from the cached
tensor: ``objective`` (the loss) and ``overlap`` ``|<theta / ||theta||, theta*>|``.
"""

from __future__ import annotations

import functools
import itertools
import math
from typing import Any

import numpy as np

from harness.arrays import immutable, namespace, to_float64

__all__ = ["TensorPCA", "instance", "symmetrize", "unfolding_estimate"]

#: The order of the tensor.
ORDER = 4

#: The start's stream, apart from the data's (``default_rng(data_seed)`` draws ``theta*`` first).
_START_STREAM = 0x57A


def symmetrize(Z: np.ndarray) -> np.ndarray:
    """``Sym(Z) = (1/24) sum_pi Z^pi``: the average of an order-4 tensor over its index permutations."""
    perms = list(itertools.permutations(range(ORDER)))
    return sum(Z.transpose(p) for p in perms) / len(perms)


@functools.cache
def _instance(d: int, n: int, data_seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(data_seed)
    theta = rng.standard_normal(d)  # drawn first, then Z: the order is part of the instance
    theta /= np.linalg.norm(theta)
    noise = math.sqrt(math.factorial(ORDER)) * symmetrize(rng.standard_normal((d,) * ORDER))
    spike = np.einsum("i,j,k,l->ijkl", theta, theta, theta, theta)
    return immutable(spike + noise / math.sqrt(n)), immutable(theta)


def instance(*, d: int, n: int, data_seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``(T, theta*)``: the observed tensor ``(d, d, d, d)`` and the planted unit vector (read-only)."""
    if d < 2 or n < 1:
        raise ValueError(f"need d >= 2 and n >= 1 (got d={d}, n={n})")
    return _instance(int(d), int(n), int(data_seed))


def unfolding_estimate(T: np.ndarray) -> np.ndarray:
    """The tensor-unfolding estimator: top eigenvector of ``T`` as ``d^2 x d^2``, reshaped ``d x d``, its top eigenvector.

    A spectral method that succeeds at ``n`` of order ``d^{k/2} = d^2`` (the reference the
    local methods are compared with).
    """
    d = T.shape[0]
    unfolded = T.reshape(d * d, d * d)
    _, vectors = np.linalg.eigh((unfolded + unfolded.T) / 2)
    matrix = vectors[:, -1].reshape(d, d)
    values, vectors = np.linalg.eigh((matrix + matrix.T) / 2)
    return vectors[:, int(np.argmax(np.abs(values)))]


class TensorPCA:
    """``loss(theta) = -<T, (theta / ||theta||)^{(x)4}>`` (any namespace), its seeded start and metrics.

    Parameters
    ----------
    backend
        The framework backend (``asarray``, ``to_numpy``).
    d
        Dimension.
    n
        Number of samples: the noise is ``G / sqrt(n)``.
    data_seed
        Seed of ``theta*`` and of the noise (fixed across run seeds).
    """

    def __init__(self, *, backend: Any, d: int, n: int, data_seed: int) -> None:
        self.backend = backend
        self.dim = int(d)
        self.tensor, self.theta_star = instance(d=d, n=n, data_seed=data_seed)
        self.x_star: np.ndarray = self.theta_star  # the planted direction (the maximizer only as n -> infinity)
        self.f_star: float | None = None  # the maximum of a noisy tensor on the sphere has no closed form
        # A copy: torch.as_tensor would alias the cached read-only array.
        self.matrix = backend.asarray(np.array(self.tensor.reshape(self.dim**3, self.dim)))

    def init_params(self, seed: int) -> Any:
        """A uniformly random unit vector from ``default_rng([seed, 0x57A])``: the same start in every framework.

        Its own stream: ``default_rng(seed)``'s first draw is ``theta*``'s when ``seed == data_seed``.
        """
        x = np.random.default_rng([seed, _START_STREAM]).standard_normal(self.dim)
        return self.backend.asarray(x / np.linalg.norm(x))

    def loss(self, params: Any) -> Any:
        xp = namespace(params)
        u = params / xp.sqrt((params * params).sum())
        d = self.dim
        # One index at a time: (d^3, d) u -> (d^2, d) u -> (d, d) u -> . u.
        return -((((self.matrix @ u).reshape(d * d, d) @ u).reshape(d, d) @ u) @ u)

    def evaluate(self, params: Any) -> dict[str, float]:
        x = to_float64(self.backend, params)
        u = x / np.linalg.norm(x)
        value = np.einsum("ijkl,i,j,k,l->", self.tensor, u, u, u, u, optimize=True)
        return {"objective": float(-value), "overlap": float(abs(u @ self.theta_star))}
