"""Gradient methods for games on the simultaneous gradient ``F`` (``oracle.player_grads``), for torch and jax.

* :class:`SimultaneousGD`: ``x <- x - h F(x)``, every player steps on its own gradient at once.
* :class:`Extragradient`: ``x_half = x - h F(x)``, ``x <- x - h F(x_half)`` (Korpelevich): two calls.
* :class:`SGNStep`: simultaneous GD at the step the Small-Gain Nash certificate makes safe.

SGN step, derivation (the certificate itself is :func:`harness.probes.games.sgn_certificate`,
shared with the ``sgn-margin`` probe). At ``init`` the method measures the Jacobian ``J`` of
``F`` at the start by central differences of ``player_grads`` along every basis direction
(``2 dim`` counted calls: the certificate's honest cost), reads the block constants
``mu_i = lambda_min(sym J_ii)`` and ``L_ij = ||J_ij||``, and maximizes over block weights ``w``
the margin ``alpha(w) = lambda_min(D^{-1/2} M(w) D^{-1/2})``, ``M_ii = w_i mu_i``,
``M_ij = -(w_i L_ij + w_j L_ji) / 2``, for which ``<e, J e>_W >= alpha(w) ||e||_W^2`` in the metric
``||e||_W^2 = sum_i w_i ||e_i||^2``. With ``L_W = ||W^{1/2} J W^{-1/2}||`` one step
``e+ = e - h J e`` (``e = x - x*``, ``F(x*) = 0``) gives
``||e+||_W^2 <= (1 - 2 h alpha* + h^2 L_W^2) ||e||_W^2``: it contracts for ``0 < h < 2 alpha* / L_W^2``
and the bound is least at ``h = alpha* / L_W^2`` (rate ``sqrt(1 - alpha*^2 / L_W^2)``). The method
steps with ``h = scale * alpha* / L_W^2``; ``scale`` in ``(0, 2)`` stays certified. Exact for a
quadratic game (``J`` constant); on a nonlinear game the constants are those at the start. Where
``alpha* <= 0`` there is no certificate and ``init`` raises.

The certificate is numpy/scipy, so sgn-step runs eagerly in jax; its step is one call.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from harness.oracle import layout_blocks
from harness.probes.games import field_jacobian, sgn_certificate

__all__ = ["Extragradient", "SGNState", "SGNStep", "SimultaneousGD"]


class SimultaneousGD:
    """``x <- x - lr F(x)``, one ``player_grads`` call per step.

    Parameters
    ----------
    lr
        The common step size ``h``.
    """

    def __init__(self, *, lr: float) -> None:
        self.lr = float(lr)

    def init(self, params: Any, oracle: Any) -> None:
        return None

    def step(self, params: Any, state: None, oracle: Any) -> tuple[Any, None]:
        return params - self.lr * oracle.player_grads(params), state


class Extragradient:
    """``x_half = x - lr F(x)``, ``x <- x - lr F(x_half)``: two ``player_grads`` calls per step.

    Parameters
    ----------
    lr
        The step size of both the extrapolation and the update.
    """

    def __init__(self, *, lr: float) -> None:
        self.lr = float(lr)

    def init(self, params: Any, oracle: Any) -> None:
        return None

    def step(self, params: Any, state: None, oracle: Any) -> tuple[Any, None]:
        half = params - self.lr * oracle.player_grads(params)
        return params - self.lr * oracle.player_grads(half), state


class SGNState(NamedTuple):
    """The certified step ``h`` and the margin ``alpha*`` it came from (fixed after ``init``)."""

    lr: float
    alpha: float


class SGNStep:
    """Simultaneous GD at ``h = scale * alpha* / L_W^2``, the step the SGN certificate makes safe.

    Parameters
    ----------
    scale
        Multiple of the bound-minimizing step ``alpha* / L_W^2``; in ``(0, 2)`` the step is certified.
    fd_step
        Relative central-difference step of the Jacobian measurement.
    """

    def __init__(self, *, scale: float, fd_step: float) -> None:
        if not 0 < scale < 2:
            raise ValueError(f"scale must be in (0, 2), where the step stays certified; got {scale}")
        if not fd_step > 0:
            raise ValueError(f"fd_step must be > 0; got {fd_step}")
        self.scale, self.fd_step = float(scale), float(fd_step)

    def init(self, params: Any, oracle: Any) -> SGNState:
        J = field_jacobian(oracle.player_grads, params, step=self.fd_step)
        cert = sgn_certificate(J, layout_blocks(oracle.layout))
        # The warm-up's decoy answers noise, which certifies nothing: step on (at h = 0) so the
        # warm-up still compiles the step's operations before the clock.
        if not cert.alpha > 0 and not oracle.warmup:
            raise ValueError(f"no SGN certificate at the start: the best block-weighted margin alpha* = "
                             f"{cert.alpha:.4g} is not positive (own curvatures {cert.mu.tolist()})")
        return SGNState(lr=self.scale * cert.safe_step, alpha=cert.alpha)

    def step(self, params: Any, state: SGNState, oracle: Any) -> tuple[Any, SGNState]:
        return params - state.lr * oracle.player_grads(params), state
