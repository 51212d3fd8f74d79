"""Two-player quadratic games for Small-Gain Nash (SGN): one problem class for torch and jax.

Player ``i`` controls the block ``x_i`` and minimizes its own loss::

    f_1(x) = 1/2 x_1^T A_11 x_1 + x_1^T A_12 x_2
    f_2(x) = 1/2 x_2^T A_22 x_2 + x_2^T A_21 x_1

so the pseudo-gradient (the simultaneous gradient, ``player_grads``) is ``F(x) = J x`` with the
block Jacobian ``J = [[A_11, A_12], [A_21, A_22]]``. ``J`` is nonsingular here, so the unique Nash
equilibrium is ``x* = 0``.

``variant: scalar`` is the paper's 1-D example: ``A_11 = mu1``, ``A_22 = mu2``, ``A_12 = a``,
``A_21 = b`` (scalars). ``variant: lq64`` has 32 coordinates per player (two players, 64 in all):
``A_ii = Q_i diag(mu_i s_i) Q_i^T`` with ``s_i = (1, Uniform(1, 2)^31)`` (so ``lambda_min(A_ii) =
mu_i`` exactly), ``A_12 = a U_12``, ``A_21 = b U_21`` with Haar orthogonal ``Q_i``, ``U_ij`` (so
``||A_12|| = a``, ``||A_21|| = b`` exactly), drawn from ``default_rng(data_seed)`` in the order
``Q_1, s_1, Q_2, s_2, U_12, U_21``. Both variants have the same SGN block constants (own curvature
``mu_i``, cross-coupling ``L_12 = a``, ``L_21 = b``): with the defaults ``a b = 0.5 < mu1 mu2 = 1``
the small-gain condition holds, while the strong one-sided coupling makes ``sym(J)`` indefinite
(the Euclidean monotonicity certificate fails).

The scalar ``loss`` (what ``value``/``grad`` answer) is the Hamiltonian ``||F(x)||^2 / 2``: zero
exactly at the Nash point, its gradient ``J^T F`` is Hamiltonian gradient descent's direction. The
``objective`` metric is the squared distance to the Nash point, ``||x - x*||^2 = ||x||^2``, with
``f_star = 0`` exactly. Every task parameter comes from ``sgn-game.yaml``.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

from harness.arrays import immutable, namespace, to_float64

__all__ = ["PLAYER_DIM", "SGNGame", "game_matrix"]

#: Coordinates per player of the ``lq64`` variant (two players: 64 in all).
PLAYER_DIM = 32


def _haar(rng: np.random.Generator, n: int) -> np.ndarray:
    """A Haar-distributed orthogonal matrix (QR of a Gaussian, signs fixed by ``diag(R)``)."""
    q, r = np.linalg.qr(rng.standard_normal((n, n)))
    return q * np.sign(np.diag(r))


@functools.cache
def _game_matrix(variant: str, mu1: float, mu2: float, a: float, b: float, data_seed: int) -> np.ndarray:
    if variant == "scalar":
        return immutable(np.array([[mu1, a], [b, mu2]], dtype=np.float64))
    if variant != "lq64":
        raise ValueError(f"variant must be 'scalar' or 'lq64' (got {variant!r})")
    rng = np.random.default_rng(data_seed)
    n = PLAYER_DIM
    own = []
    for mu in (mu1, mu2):
        q = _haar(rng, n)
        s = np.concatenate([[1.0], rng.uniform(1.0, 2.0, n - 1)])
        own.append(q @ np.diag(mu * s) @ q.T)
    u12, u21 = _haar(rng, n), _haar(rng, n)
    J = np.block([[own[0], a * u12], [b * u21, own[1]]])
    # Exactly symmetric own blocks: the QR rounding leaves ~1e-16 asymmetry.
    J[:n, :n] = (own[0] + own[0].T) / 2
    J[n:, n:] = (own[1] + own[1].T) / 2
    return immutable(J)


def game_matrix(*, variant: str, mu1: float, mu2: float, a: float, b: float, data_seed: int) -> np.ndarray:
    """The pseudo-gradient's Jacobian ``J`` (dim, dim): ``F(x) = J x``; ``data_seed`` only matters for ``lq64``."""
    return _game_matrix(str(variant), float(mu1), float(mu2), float(a), float(b), int(data_seed))


class SGNGame:
    """The game's player losses and layout (any namespace), a seeded start and the metrics (numpy)."""

    def __init__(self, *, backend: Any, variant: str, mu1: float, mu2: float, a: float, b: float,
                 data_seed: int) -> None:
        self.backend = backend
        self.J_np = game_matrix(variant=variant, mu1=mu1, mu2=mu2, a=a, b=b, data_seed=data_seed)
        self.dim = int(self.J_np.shape[0])
        self.n1 = self.dim // 2
        self.layout: tuple[tuple[str, tuple[int, ...]], ...] = (("x1", (self.n1,)), ("x2", (self.dim - self.n1,)))
        self.x_star: np.ndarray = immutable(np.zeros(self.dim))
        self.f_star: float | None = 0.0  # ||x* - x*||^2: exact by definition
        # Copies: torch.as_tensor would alias the cached read-only arrays.
        self.J = backend.asarray(np.array(self.J_np))

    def init_params(self, seed: int) -> Any:
        """``x ~ N(0, I)`` from ``default_rng(seed)``: the same start in every framework."""
        return self.backend.asarray(np.random.default_rng(seed).standard_normal(self.dim))

    def player_losses(self, params: Any) -> Any:
        """``(f_1, f_2)``; player ``i``'s own-block gradient of ``f_i`` is row block ``i`` of ``J x``."""
        n, J = self.n1, self.J
        x1, x2 = params[:n], params[n:]
        f1 = 0.5 * x1 @ (J[:n, :n] @ x1) + x1 @ (J[:n, n:] @ x2)
        f2 = 0.5 * x2 @ (J[n:, n:] @ x2) + x2 @ (J[n:, :n] @ x1)
        return namespace(params).stack([f1, f2])

    def loss(self, params: Any) -> Any:
        """The Hamiltonian ``||F(x)||^2 / 2``, zero only at the Nash point."""
        field = self.J @ params
        return 0.5 * (field @ field)

    def evaluate(self, params: Any) -> dict[str, float]:
        x = to_float64(self.backend, params)
        return {
            "objective": float(x @ x),
            "grad_norm": float(np.linalg.norm(self.J_np @ x)),
        }

