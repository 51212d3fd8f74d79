"""Game probes and the Small-Gain Nash (SGN) certificate, shared with ``methods/games`` (sgn-step).

The pseudo-gradient of an ``N``-player game is ``F(x) = (grad_{x_i} f_i(x))_i``; its Jacobian
``J`` has blocks ``J_ij = d F_i / d x_j``. The Euclidean (Rosen) certificate asks
``sym(J) = (J + J^T) / 2`` to be positive definite: ``euclidean_margin = lambda_min(sym J)``.

SGN certificate (block small gain). Block constants: the own curvature
``mu_i = lambda_min(sym J_ii)`` and the cross-coupling ``L_ij = ||J_ij||_2`` (``i != j``). In the
block-weighted metric ``<x, y>_W = sum_i w_i <x_i, y_i>`` (``w_i > 0``), for ``z_i = ||x_i||``::

    <x, J x>_W = sum_i w_i x_i^T J_ii x_i + sum_{i != j} w_i x_i^T J_ij x_j
              >= sum_i w_i mu_i z_i^2 - sum_{i != j} w_i L_ij z_i z_j = z^T M(w) z,

with ``M_ii = w_i mu_i`` and ``M_ij = -(w_i L_ij + w_j L_ji) / 2``, while ``||x||_W^2 = z^T D z``,
``D = diag(w)``. Hence ``<x, J x>_W >= alpha(w) ||x||_W^2`` with

    alpha(w) = lambda_min(D^{-1/2} M(w) D^{-1/2}),  entries  mu_i  and
               -(L_ij sqrt(w_i / w_j) + L_ji sqrt(w_j / w_i)) / 2,

which depends on the weights' ratios only. ``alpha* = max_w alpha(w)`` is found by scipy
(Nelder-Mead over the log-weights, ``log w_1 = 0``, from several starts); ``alpha* > 0`` certifies
that ``F`` is strongly monotone in the metric ``W`` (for two players, iff
``L_12 L_21 < mu_1 mu_2`` when ``mu_i > 0``: the small-gain condition).

Safe step. Simultaneous gradient descent ``x+ = x - h F(x)`` (one step size for all players) with
``F(x*) = 0`` and ``L_W = ||W^{1/2} J W^{-1/2}||_2`` (the Lipschitz constant of ``F`` in the
``W``-norm) satisfies::

    ||x+ - x*||_W^2 = ||e||_W^2 - 2 h <e, J e>_W + h^2 ||J e||_W^2 <= (1 - 2 h alpha* + h^2 L_W^2) ||e||_W^2,

``e = x - x*``: a contraction for every ``0 < h < 2 alpha* / L_W^2``; the bound is smallest at
``safe_step = alpha* / L_W^2``, with the certified rate ``sqrt(1 - alpha*^2 / L_W^2)`` per step.
For a quadratic game ``J`` is constant and the certificate is global; otherwise the constants
measured at one point are local. Without a certificate (``alpha* <= 0``) ``safe_step`` is 0.

``J`` is measured by central differences of ``player_grads`` along the basis directions
(``2 dim`` calls; exact for quadratic games up to rounding), or of ``grad`` (the Hessian) for a
task without ``player_grads``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import numpy as np

from harness.arrays import like, to_host
from harness.oracle import layout_blocks
from harness.probes import ProbeContext

__all__ = [
    "Certificate",
    "JacobianAsymmetry",
    "SGNMargin",
    "block_constants",
    "central_jacobian",
    "field_jacobian",
    "sgn_certificate",
    "sgn_margin",
    "weighted_lipschitz",
]

#: Bound on the log-weights the optimizer explores (weights between e^-30 and e^30 of player 1's).
_LOG_BOUND = 30.0


class Certificate(NamedTuple):
    """The SGN certificate of a Jacobian: margins, optimal weights (summing to 1) and the safe step."""

    euclidean_margin: float
    mu: np.ndarray  # (N,) own curvatures lambda_min(sym J_ii)
    coupling: np.ndarray  # (N, N) L_ij = ||J_ij||_2, zero diagonal
    weights: np.ndarray  # (N,) the optimal block weights, summing to 1
    alpha: float  # alpha*: the SGN margin at the weights
    lipschitz: float  # L_W = ||W^{1/2} J W^{-1/2}||_2
    safe_step: float  # alpha* / L_W^2 (0 when alpha* <= 0)


def central_jacobian(field: Callable[[np.ndarray], np.ndarray], x: np.ndarray, *, step: float) -> np.ndarray:
    """``d field / d x`` (dim, dim) by central differences along each basis direction (``2 dim`` calls).

    The difference is ``step * max(1, ||x||_inf)``: exact for an affine field up to rounding.
    """
    x = np.asarray(x, dtype=np.float64)
    h = float(step) * max(1.0, float(np.max(np.abs(x))) if x.size else 1.0)
    columns = []
    for k in range(x.size):
        e = np.zeros_like(x)
        e[k] = h
        columns.append((np.asarray(field(x + e), dtype=np.float64) - np.asarray(field(x - e), dtype=np.float64)) / (2 * h))
    return np.stack(columns, axis=1)


def field_jacobian(call: Callable[[Any], Any], params: Any, *, step: float) -> np.ndarray:
    """The Jacobian of an oracle call ``call(params) -> (dim,)`` (``player_grads``, ``grad``) at ``params``.

    Points cross to the framework of ``params`` (its dtype and device) and answers back to float64
    numpy; the call is made ``2 dim`` times.
    """
    return central_jacobian(lambda p: to_host(call(like(p, params))), to_host(params), step=step)


def block_constants(J: np.ndarray, blocks: Sequence[tuple[int, int]]) -> tuple[np.ndarray, np.ndarray]:
    """``mu_i = lambda_min(sym J_ii)`` (N,) and ``L_ij = ||J_ij||_2`` (N, N; zero diagonal)."""
    n = len(blocks)
    mu, coupling = np.zeros(n), np.zeros((n, n))
    for i, (a, b) in enumerate(blocks):
        own = J[a:b, a:b]
        mu[i] = np.linalg.eigvalsh((own + own.T) / 2)[0]
        for j, (c, d) in enumerate(blocks):
            if i != j:
                coupling[i, j] = np.linalg.norm(J[a:b, c:d], 2)
    return mu, coupling


def _margin_of_logs(u: np.ndarray, mu: np.ndarray, coupling: np.ndarray) -> float:
    """``alpha(w)`` at ``w = exp(u)``: stable in the ratios ``sqrt(w_i / w_j) = exp((u_i - u_j) / 2)``."""
    ratio = np.exp((u[:, None] - u[None, :]) / 2)  # sqrt(w_i / w_j)
    off = -(coupling * ratio + coupling.T * ratio.T) / 2
    matrix = np.diag(mu) + off - np.diag(np.diag(off))
    return float(np.linalg.eigvalsh(matrix)[0])


def sgn_margin(weights: np.ndarray, mu: np.ndarray, coupling: np.ndarray) -> float:
    """The SGN margin ``alpha(w) = lambda_min(D^{-1/2} M(w) D^{-1/2})`` at positive ``weights``."""
    return _margin_of_logs(np.log(np.asarray(weights, dtype=np.float64)), np.asarray(mu), np.asarray(coupling))


def _optimal_logs(mu: np.ndarray, coupling: np.ndarray) -> np.ndarray:
    """Log-weights (``u_1 = 0``) maximizing ``alpha``: scipy Nelder-Mead from several starts."""
    import scipy.optimize

    n = len(mu)
    if n == 1:
        return np.zeros(1)

    def negative(v: np.ndarray) -> float:
        return -_margin_of_logs(np.concatenate([[0.0], np.clip(v, -_LOG_BOUND, _LOG_BOUND)]), mu, coupling)

    # Starts: equal weights, and the two-player optimum w_j / w_1 = L_1j / L_j1 of each pair with player 1.
    pair = np.log(np.maximum(coupling[0, 1:], 1e-300) / np.maximum(coupling[1:, 0], 1e-300))
    starts = [np.zeros(n - 1), np.clip(pair, -_LOG_BOUND, _LOG_BOUND)]
    best = None
    for start in starts:
        result = scipy.optimize.minimize(negative, start, method="Nelder-Mead",
                                         options={"xatol": 1e-10, "fatol": 1e-14, "maxiter": 2000 * n})
        if best is None or result.fun < best.fun:
            best = result
    return np.concatenate([[0.0], np.clip(best.x, -_LOG_BOUND, _LOG_BOUND)])


def weighted_lipschitz(J: np.ndarray, blocks: Sequence[tuple[int, int]], weights: np.ndarray) -> float:
    """``L_W = ||W^{1/2} J W^{-1/2}||_2``: the Lipschitz constant of ``x -> J x`` in the ``W``-norm."""
    scale = np.concatenate([np.full(b - a, np.sqrt(w)) for (a, b), w in zip(blocks, weights)])
    return float(np.linalg.norm(scale[:, None] * J / scale[None, :], 2))


def sgn_certificate(J: np.ndarray, blocks: Sequence[tuple[int, int]]) -> Certificate:
    """The Euclidean margin, the SGN margin at its optimal block weights, and the certified step of ``J``."""
    J = np.asarray(J, dtype=np.float64)
    euclidean = float(np.linalg.eigvalsh((J + J.T) / 2)[0])
    mu, coupling = block_constants(J, blocks)
    logs = _optimal_logs(mu, coupling)
    alpha = _margin_of_logs(logs, mu, coupling)
    weights = np.exp(logs - logs.max())
    weights /= weights.sum()
    lipschitz = weighted_lipschitz(J, blocks, weights)
    safe = alpha / lipschitz**2 if alpha > 0 and lipschitz > 0 else 0.0
    return Certificate(euclidean, mu, coupling, weights, alpha, lipschitz, float(safe))


def _jacobian(context: ProbeContext, step: float) -> np.ndarray:
    """``J`` of ``player_grads`` at the evaluated point, or the Hessian (Jacobian of ``grad``) without it."""
    oracle = context.oracle
    call = oracle.player_grads if "player_grads" in oracle.capabilities else oracle.grad
    return field_jacobian(call, context.params, step=step)


def _blocks(context: ProbeContext, dim: int) -> list[tuple[int, int]]:
    layout = getattr(context.problem, "layout", None)
    return layout_blocks(layout) if layout else [(0, dim)]


class _JacobianProbe:
    """A probe of the field's Jacobian at the evaluated point, measured by central differences.

    Parameters
    ----------
    step
        Relative central-difference step (times ``max(1, ||x||_inf)``).
    """

    def __init__(self, *, step: float = 1e-4) -> None:
        if not step > 0:
            raise ValueError(f"step must be > 0; got {step}")
        self.step = float(step)


class JacobianAsymmetry(_JacobianProbe):
    """How far the pseudo-gradient is from a gradient: ``s / (s + a)`` for ``s = ||sym J||_F``, ``a = ||antisym J||_F``.

    ``ratio`` is 1 for a potential game (or a plain minimization: ``J`` is a Hessian), 0 for a
    pure rotation (a bilinear zero-sum game).

    Its option ``step`` is :class:`_JacobianProbe`'s.
    """

    def __call__(self, context: ProbeContext) -> dict[str, float]:
        J = _jacobian(context, self.step)
        s = float(np.linalg.norm((J + J.T) / 2))
        a = float(np.linalg.norm((J - J.T) / 2))
        return {"ratio": s / (s + a) if s + a > 0 else float("nan"), "sym_norm": s, "antisym_norm": a}


class SGNMargin(_JacobianProbe):
    """The Euclidean monotonicity margin, the SGN margin ``alpha*``, its block weights and the safe step.

    Blocks are the problem's ``layout`` (one per player); ``weight.<i>`` is player ``i``'s weight
    (1-based), the weights summing to 1.

    Its option ``step`` is :class:`_JacobianProbe`'s.
    """

    def __call__(self, context: ProbeContext) -> dict[str, float]:
        J = _jacobian(context, self.step)
        cert = sgn_certificate(J, _blocks(context, J.shape[0]))
        out = {"euclidean_margin": cert.euclidean_margin, "sgn_margin": cert.alpha, "safe_step": cert.safe_step}
        out.update({f"weight.{i + 1}": float(w) for i, w in enumerate(cert.weights)})
        return out
