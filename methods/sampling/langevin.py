"""Spherical Langevin dynamics with iterate averaging (stochastic weight averaging on the sphere).

The iterate ``theta`` lives on the unit sphere. Each step moves it along the tangent part of the
gradient, adds isotropic Gaussian noise and projects back::

    theta <- normalize(theta - eta (I - theta theta^T) grad f(theta) + sqrt(2 eta / beta) xi),

``xi ~ N(0, I)``: the projected Euler-Maruyama discretization of Langevin dynamics at inverse
temperature ``beta`` (``beta = inf`` is projected gradient descent). After ``burn_in`` steps the
method accumulates ``theta theta^T``; the point it reports (``output``) is the top eigenvector of
their mean, signed to agree with the current iterate (for an even-order objective ``theta`` and
``-theta`` are the same estimate, so the mean of ``theta`` itself would cancel). With
``average=False`` it reports the last iterate: the no-averaging baseline on the same noise path.
The paper's point: noise plus averaging emulates running on a smoothed landscape, so the averaged
iterate recovers a planted direction from fewer samples than the last iterate.

One counted ``grad`` call a step. The start is normalized. Randomness comes from the method's own
generator seeded by the run seed: numpy ``default_rng([seed, 0x1A6])`` in torch, ``jax.random``
from ``fold_in(PRNGKey(seed), 0x1A6)``, split each step and carried in the state, in jax (so the
two frameworks draw different noise).
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import numpy as np

from harness.arrays import is_torch, like, namespace, noise_key, standard_normal

__all__ = ["LangevinAverage", "LangevinState", "top_eigenvector"]

_STREAM = 0x1A6


def _normalize(x: Any) -> Any:
    return x / namespace(x).sqrt((x * x).sum())


def top_eigenvector(matrix: Any, reference: Any) -> Any:
    """The unit eigenvector of the symmetric ``matrix``'s largest eigenvalue, signed so that ``<v, reference> >= 0``."""
    xp = namespace(matrix)
    vector = xp.linalg.eigh(matrix)[1][:, -1]
    sign = xp.sign((vector * reference).sum())
    return vector * (sign + (sign == 0))  # a sign of 0 (orthogonal) keeps the vector as it is


class LangevinState(NamedTuple):
    """Steps taken, the sum of ``theta theta^T`` after the burn-in and how many, the noise generator."""

    t: Any
    second_moment: Any
    count: Any
    key: Any


class LangevinAverage:
    """Projected Langevin dynamics on the unit sphere, reporting the averaged iterate.

    Parameters
    ----------
    eta
        Step size.
    beta
        Inverse temperature: the noise is ``sqrt(2 eta / beta) xi`` a step (``inf``: none).
    burn_in
        Steps before the averaging starts.
    average
        ``True``: report the top eigenvector of the mean of ``theta theta^T`` after the burn-in
        (the last iterate until then); ``False``: the last iterate.
    """

    def __init__(self, *, eta: float, beta: float, burn_in: int, average: bool) -> None:
        if not (eta > 0 and beta > 0 and burn_in >= 0):
            raise ValueError(f"need eta > 0, beta > 0, burn_in >= 0 (got {eta}, {beta}, {burn_in})")
        self.eta, self.beta, self.burn_in, self.average = float(eta), float(beta), int(burn_in), bool(average)
        self.scale = math.sqrt(2 * self.eta / self.beta)  # 0 at beta = inf

    def init(self, params: Any, oracle: Any) -> LangevinState:
        d = int(params.shape[0])
        key = noise_key(params, oracle.seed, _STREAM)
        if is_torch(params):
            return LangevinState(0, like(np.zeros((d, d)), params), 0, key)
        import jax.numpy as jnp

        zero = jnp.zeros((), dtype=jnp.int32)
        return LangevinState(zero, jnp.zeros((d, d), dtype=params.dtype), zero, key)

    def step(self, params: Any, state: LangevinState, oracle: Any) -> tuple[Any, LangevinState]:
        theta = _normalize(params)
        grad = oracle.grad(theta)  # the one counted call of the step
        tangent = grad - theta * (theta * grad).sum()
        xi, key = standard_normal(state.key, tuple(theta.shape), theta)
        theta = _normalize(theta - self.eta * tangent + self.scale * xi)
        on = state.t >= self.burn_in  # a python bool in torch, a traced one in jax
        second_moment = state.second_moment + on * (theta[:, None] * theta[None, :])
        return theta, LangevinState(state.t + 1, second_moment, state.count + on, key)

    def output(self, params: Any, state: LangevinState) -> Any:
        if not self.average:
            return params
        # Before the burn-in ends the sum is 0 and the outer product of the iterate leads: the last iterate.
        moment = state.second_moment + (state.count == 0) * (params[:, None] * params[None, :])
        return top_eigenvector(moment, params)
