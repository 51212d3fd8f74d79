"""LV-HBA: the single-loop, Hessian-free bilevel method on the proximal Lagrangian value function, for torch and jax.

The bilevel problem ``min F(x, y)`` over ``y`` in ``argmin_y {f(x, y) : g(x, y) <= 0}`` is
reformulated with the proximal Lagrangian value function (``gamma = (gamma1, gamma2)``)::

    v(x, y, z) = min_theta max_{lam >= 0}  f(x, theta) + lam.g(x, theta)
                                           + ||theta - y||^2 / (2 gamma1) - ||lam - z||^2 / (2 gamma2),

for which ``f(x, y) - v(x, y, z) >= 0`` wherever ``g(x, y) <= 0`` and ``z >= 0`` (take
``theta = y``), with equality on the lower solution set. The single-level problem
``min F`` s.t. ``f - v <= 0``, ``(x, y)`` in ``C = {g <= 0}``, ``z >= 0`` is penalized to
``phi_k = F / c_k + f - v``, ``c_k = c (k + 1)^p``. Each step (Algorithm 1):

1. one projected gradient step of the inner saddle problem at ``(x^k, y^k, z^k)``, descent on
   ``theta`` and ascent on ``lam`` (projected onto ``lam >= 0``)::

       theta+ = theta - eta (grad_y f(x, theta) + grad_y g(x, theta)^T lam + (theta - y) / gamma1)
       lam+   = max(lam + eta (g(x, theta) - (lam - z) / gamma2), 0)

2. the gradient of ``phi_k`` with ``v``'s gradient by Danskin's theorem at ``(theta+, lam+)``::

       grad_x v = grad_x f(x, theta+) + grad_x g(x, theta+)^T lam+     (the constraint term: +)
       grad_y v = (y - theta+) / gamma1
       grad_z v = (lam+ - z) / gamma2

   so ``d = grad F(x, y) / c_k + grad f(x, y) - (grad_x v, grad_y v)`` and ``d_z = -grad_z v =
   (z - lam+) / gamma2``: ``z`` moves towards ``lam+``;
3. ``(x, y)+ = Proj_C((x, y) - alpha d)``, ``z+ = max(z - beta d_z, 0)``.

``Proj_C`` projects onto the halfspace of each constraint linearized at ``(x^k, y^k)``,
``g_j(w^k) + grad g_j(w^k).(w - w^k) <= 0``, one after the other: the exact projection for one
affine constraint (the catalog's case), a linearized one otherwise. Three counted
``bilevel_grads`` calls per step: at ``(x, theta)`` (step 1), at ``(x, theta+)`` (Danskin's
gradient, at the updated inner point as Algorithm 1 writes it) and at ``(x, y)`` (``F``, ``f``
and the linearized constraint); none of them can be reused at the next step, whose ``x``
differs. The step is pure, so jax compiles it whole.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from harness.arrays import like, namespace

__all__ = ["LVHBA", "LVHBAState", "project_linearized"]


def _relu(t: Any) -> Any:
    return (t + abs(t)) / 2  # max(t, 0) in every namespace


def project_linearized(point: Any, anchor: Any, values: Any, grads: Any) -> Any:
    """``point`` projected onto each halfspace ``values_j + grads_j.(w - anchor) <= 0`` in turn.

    ``values`` ``(m,)`` and ``grads`` ``(m, dim)`` are the constraints and their gradients at
    ``anchor``; a constraint with a zero gradient is left alone (it does not depend on ``w``).
    """
    for j in range(int(values.shape[0])):
        a = grads[j]
        norm2 = a @ a
        excess = _relu(values[j] + a @ (point - anchor))
        point = point - excess / (norm2 + 1.0 * (norm2 <= 0)) * a
    return point


class LVHBAState(NamedTuple):
    """The inner saddle point's estimates ``theta`` (lower variables) and ``lam`` (multipliers), ``z``, and ``k``."""

    theta: Any
    lam: Any
    z: Any
    k: Any


class LVHBA:
    """LV-HBA (Algorithm 1): single loop, first-order, on ``oracle.bilevel_grads``.

    Parameters
    ----------
    alpha
        Step of ``(x, y)`` on the penalized function ``F / c_k + f - v``.
    beta
        Step of ``z`` (projected onto ``z >= 0``).
    eta
        Step of the inner descent on ``theta`` and ascent on ``lam``.
    gamma1, gamma2
        Proximal parameters of ``theta`` (around ``y``) and of ``lam`` (around ``z``).
    c, p
        The penalty schedule ``c_k = c (k + 1)^p``: ``F`` enters with weight ``1 / c_k``.
    """

    def __init__(self, *, alpha: float, beta: float, eta: float, gamma1: float, gamma2: float, c: float,
                 p: float) -> None:
        for name, value in (("alpha", alpha), ("beta", beta), ("eta", eta), ("gamma1", gamma1),
                            ("gamma2", gamma2), ("c", c)):
            if not value > 0:
                raise ValueError(f"{name} must be > 0; got {value}")
        if not p >= 0:
            raise ValueError(f"p must be >= 0; got {p}")
        self.alpha, self.beta, self.eta = float(alpha), float(beta), float(eta)
        self.gamma1, self.gamma2, self.c, self.p = float(gamma1), float(gamma2), float(c), float(p)

    def init(self, params: Any, oracle: Any) -> LVHBAState:
        n, m = int(oracle.upper_dimension), int(oracle.n_constraints)
        zeros = like(np.zeros(m), params)
        # theta starts at y (the prox centre), the multipliers and z at 0.
        return LVHBAState(theta=params[n:] * 1, lam=zeros, z=zeros * 1, k=like(np.zeros(()), params))

    def value_function_grads(self, x_jac: Any, lam: Any, y: Any, theta: Any, z: Any) -> tuple[Any, Any, Any]:
        """Danskin's ``(grad_x v, grad_y v, grad_z v)`` at the inner point ``(theta, lam)``.

        ``x_jac`` is the x block ``(2 + m, n)`` of ``bilevel_grads`` at ``(x, theta)``.
        """
        grad_x = x_jac[1] + lam @ x_jac[2:]
        return grad_x, (y - theta) / self.gamma1, (lam - z) / self.gamma2

    def step(self, params: Any, state: LVHBAState, oracle: Any) -> tuple[Any, LVHBAState]:
        xp = namespace(params)
        n = int(oracle.upper_dimension)
        theta, lam, z, k = state
        x, y = params[:n], params[n:]
        # 1. One step of the inner saddle problem at (x^k, y^k, z^k): descent on theta, ascent on lam.
        values, jac = oracle.bilevel_grads(xp.concatenate([x, theta]))
        d_theta = jac[1, n:] + lam @ jac[2:, n:] + (theta - y) / self.gamma1
        d_lam = values[2:] - (lam - z) / self.gamma2
        theta = theta - self.eta * d_theta
        lam = _relu(lam + self.eta * d_lam)
        # 2. The penalized function's gradient, v's by Danskin at the updated (theta, lam).
        _, jac_inner = oracle.bilevel_grads(xp.concatenate([x, theta]))
        grad_x_v, grad_y_v, grad_z_v = self.value_function_grads(jac_inner[:, :n], lam, y, theta, z)
        values, jac = oracle.bilevel_grads(params)
        weight = 1.0 / (self.c * (k + 1.0) ** self.p)
        direction = weight * jac[0] + jac[1] - xp.concatenate([grad_x_v, grad_y_v])
        # 3. Projected steps: (x, y) onto the (linearized) feasible set, z onto z >= 0.
        moved = project_linearized(params - self.alpha * direction, params, values[2:], jac[2:])
        z = _relu(z + self.beta * grad_z_v)
        return moved, LVHBAState(theta=theta, lam=lam, z=z, k=k + 1.0)
