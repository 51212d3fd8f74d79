"""Consensus-based optimization (CBO), anisotropic, on the oracle's batched ``values``: for torch and jax.

Particles ``X`` ``(N, d)``; each step evaluates ``f`` at every particle (one ``values`` call, ``N``
counted values), forms the consensus point ``v = sum_i w_i X_i / sum_i w_i`` with Gibbs weights
``w_i = exp(-alpha (f(X_i) - min_j f(X_j)))`` (the shift by the minimum is exact and keeps
``alpha = 1e5`` from underflowing every weight), and moves every particle by the Euler-Maruyama step
of the anisotropic CBO dynamics (Carrillo, Jin, Li and Zhu 2021)::

    X <- X - lam dt (X - v) + sigma sqrt(dt) (X - v) * xi,   xi ~ N(0, I) elementwise.

The iterate the harness evaluates is the consensus point ``v``. The particles start at the
start point plus ``N(0, I)`` noise. Randomness comes from the method's own generator seeded by the
run seed: numpy ``default_rng([seed, 0xCB0])`` in torch, ``jax.random`` from
``fold_in(PRNGKey(seed), 0xCB0)``, split each step and carried in the state, in jax (so the two
frameworks draw different noise).
"""

from __future__ import annotations

from typing import Any, NamedTuple

from harness.arrays import namespace, noise_key, standard_normal

__all__ = ["CBO", "CBOState", "consensus"]

_STREAM = 0xCB0


def consensus(particles: Any, values: Any, alpha: float) -> Any:
    """The Gibbs-weighted mean ``sum_i w_i X_i / sum_i w_i``, ``w_i = exp(-alpha (f_i - min f))``."""
    xp = namespace(particles)
    weights = xp.exp(-alpha * (values - values.min()))
    return (weights[:, None] * particles).sum(0) / weights.sum()


class CBOState(NamedTuple):
    """The particles ``(N, d)`` and the noise generator (numpy ``Generator`` or a jax key)."""

    particles: Any
    key: Any


class CBO:
    """Anisotropic consensus-based optimization.

    Parameters
    ----------
    particles
        Number of particles ``N``.
    lam, sigma
        Drift towards the consensus and noise strength.
    alpha
        Inverse temperature of the Gibbs weights.
    dt
        Time step.
    """

    def __init__(self, *, particles: int, lam: float, sigma: float, alpha: float, dt: float) -> None:
        if particles < 1 or not (dt > 0 and alpha > 0):
            raise ValueError(f"need particles >= 1, dt > 0, alpha > 0 (got {particles}, {dt}, {alpha})")
        self.n, self.lam, self.sigma, self.alpha, self.dt = int(particles), float(lam), float(sigma), float(alpha), float(dt)

    def init(self, params: Any, oracle: Any) -> CBOState:
        noise, key = standard_normal(noise_key(params, oracle.seed, _STREAM), (self.n, int(params.shape[0])), params)
        return CBOState(params[None, :] + noise, key)

    def step(self, params: Any, state: CBOState, oracle: Any) -> tuple[Any, CBOState]:
        particles = state.particles
        v = consensus(particles, oracle.values(particles), self.alpha)
        xi, key = standard_normal(state.key, tuple(particles.shape), params)
        gap = particles - v[None, :]
        particles = particles - self.lam * self.dt * gap + self.sigma * self.dt**0.5 * gap * xi
        return v, CBOState(particles, key)
