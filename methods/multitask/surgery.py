"""Gradient-surgery rules for multi-task learning (equal weights, MGDA, PCGrad, CAGrad), for torch and jax.

Each step makes one ``task_grads`` call, combines the task gradients ``G`` (rows ``g_i``) on the
shared coordinates (``oracle.shared_dimension`` leading ones) by a direction rule, gives the
task-specific coordinates (heads) the sum of the rows there (each head its own task's gradient,
the plain gradient of the summed loss on the heads), and hands the direction to an inner
optimizer: hand-written Adam (bias-corrected, betas 0.9/0.999, eps 1e-8, as ``torch.optim.Adam``)
or plain SGD.

The direction rules are small pure functions over the array namespace (numpy, torch, jax):

- :func:`mean_direction`: ``mean_i g_i``.
- :func:`min_norm_weights` / :func:`mgda_direction`: the min-norm point of the convex hull of the
  ``g_i`` (MGDA), solved exactly for any number of tasks ``T`` by enumerating the ``2^T - 1``
  supports: on a support ``S`` the equality-constrained minimizer is ``w ∝ G_SS^{-1} 1``; each
  candidate is clipped to the simplex, the one of least norm kept, and its Frank-Wolfe gap
  ``w^T K w - min_i (K w)_i`` (``K`` the Gram matrix; an upper bound of the suboptimality) checked.
- :func:`pcgrad_direction`: PCGrad (Yu et al. 2020, the authors' TensorFlow code): in one random
  order of the tasks, each ``g_i`` is projected in turn onto the normal plane of every original
  ``g_k`` it conflicts with (``g_i . g_k < 0``); the direction is the mean of the projected rows
  (the paper sums them; the mean keeps the mean loss's scale, as CAGrad's ``toy.py`` does).
- :func:`cagrad_direction`: CAGrad (Liu et al. 2021): ``w`` minimizes
  ``g_w . g_0 + c ||g_0|| ||g_w||`` over the simplex (``g_0`` the mean, ``g_w = sum_i w_i g_i``) and
  the direction is ``(g_0 + c ||g_0|| / ||g_w|| g_w) / (1 + c)``, with ``toy.py``'s ``1e-4``
  smoothing terms. For two tasks the 1-D problem is solved in closed form (``toy.py`` uses
  ``scipy.optimize.minimize_scalar``); for more, by scipy SLSQP on the host (as the authors' NYUv2
  code; under jax through ``jax.pure_callback``), its Frank-Wolfe gap checked: a failed solve raises.
"""

from __future__ import annotations

import itertools
from typing import Any, NamedTuple

import numpy as np

from adam import adam_update
from checks import host_check
from heads import with_heads
from harness.arrays import eye, is_torch, like, namespace, to_host

__all__ = [
    "CAGrad",
    "EqualWeight",
    "MGDA",
    "PCGrad",
    "SurgeryState",
    "cagrad_direction",
    "mean_direction",
    "mgda_direction",
    "min_norm_weights",
    "pcgrad_direction",
]

#: Relative Frank-Wolfe gap (over ``max_i ||g_i||^2``) above which the MGDA solve counts as failed.
MGDA_GAP = 1e-8
#: Relative Frank-Wolfe gap (over ``max_i ||g_i||^2``) above which CAGrad's dual solve (``T > 2``) counts as failed.
CAGRAD_GAP = 1e-6
#: Smoothing terms of ``toy.py``'s ``cagrad``.
CAGRAD_EPS = 1e-4
#: Second word of PCGrad's order generator seed ``[run seed, _STREAM]``.
_STREAM = 0x9C6A


def _zeros_like(x: Any) -> Any:
    return _full(x, 0.0)


def _full(x: Any, value: float) -> Any:
    """``value`` in the shape, dtype and device of ``x`` (not ``0 * x + value``, which keeps a NaN of ``x``)."""
    return namespace(x).full_like(x, value)


def mean_direction(grads: Any) -> Any:
    """``mean_i g_i`` of the rows of ``grads`` ``(T, d)``."""
    return grads.mean(0)


def _supports(tasks: int) -> np.ndarray:
    """Every non-empty subset of ``range(tasks)`` as a 0/1 mask, ``(2^T - 1, T)``."""
    return np.array([m for m in itertools.product((0.0, 1.0), repeat=tasks) if any(m)])


def min_norm_weights(gram: Any) -> tuple[Any, Any]:
    """The simplex weights ``w`` of the min-norm point of the hull, and the solve's Frank-Wolfe gap.

    Exact: the minimizer has some support ``S``; on it ``w_S = K_SS^{-1} 1 / (1^T K_SS^{-1} 1)``.
    Every support is solved at once (a batched ``T x T`` solve with unit rows off ``S`` and a
    ``1e-12 tr K`` ridge on ``S``, so singular Gram matrices stay solvable); each candidate is
    clipped to the simplex, so all are feasible and the least ``w^T K w`` is the minimum.

    Parameters
    ----------
    gram
        ``K = G G^T`` ``(T, T)``.

    Returns
    -------
    w, gap
        ``(T,)`` weights and ``w^T K w - min_i (K w)_i >= 0`` (0 exactly at the optimum).
    """
    xp = namespace(gram)
    tasks = int(gram.shape[0])
    masks = like(_supports(tasks), gram)
    ridge = 1e-12 * (xp.abs(gram).max() + 1e-300)
    systems = (masks[:, :, None] * gram[None] * masks[:, None, :]
               + eye(tasks, like=gram)[None] * ((1 - masks) + ridge * masks)[:, None, :])
    u = xp.linalg.solve(systems, masks[:, :, None])[:, :, 0]
    u = xp.where(u > 0, u, _zeros_like(u)) * masks  # clipped to the simplex's orthant
    total = u.sum(1)[:, None]
    candidates = xp.where(total > 0, u / xp.where(total > 0, total, _full(total, 1.0)), masks / masks.sum(1)[:, None])
    values = ((candidates @ gram) * candidates).sum(1)
    values = xp.where(xp.isfinite(values), values, _full(values, float("inf")))
    w = candidates[xp.argmin(values)]
    kw = gram @ w
    return w, (w * kw).sum() - kw.min()


def mgda_direction(grads: Any) -> tuple[Any, Any]:
    """The min-norm point of the convex hull of the rows of ``grads``, and the relative gap of its solve."""
    gram = grads @ grads.T
    w, gap = min_norm_weights(gram)
    scale = gram.diagonal().max()
    return w @ grads, gap / (scale + 1e-300)


def pcgrad_direction(grads: Any, order: Any) -> Any:
    """PCGrad: each row projected, in ``order``, off every original row it conflicts with; their mean.

    Parameters
    ----------
    grads
        Task gradients ``(T, d)``.
    order
        A permutation of ``range(T)`` (ints or a framework integer array).
    """
    xp = namespace(grads)
    tasks = int(grads.shape[0])
    norms = (grads * grads).sum(1)
    rows = []
    for i in range(tasks):
        g = grads[i]
        for k in range(tasks):
            other, norm = grads[order[k]], norms[order[k]]
            coefficient = (g * other).sum() / xp.where(norm > 0, norm, _full(norm, 1.0))
            g = g - xp.where(coefficient < 0, coefficient, _zeros_like(coefficient)) * other
        rows.append(g)
    return xp.stack(rows).mean(0)


def _cagrad_weight_two(g11: Any, g12: Any, g22: Any, coef: Any) -> Any:
    """The minimizer on ``[0, 1]`` of ``toy.py``'s ``obj(x)``, in closed form.

    ``obj(x) = coef sqrt(Q(x)) + k x + const`` with ``Q = A x^2 + 2 B x + C`` (``A = g11 + g22 - 2 g12``,
    ``B = g12 - g22``, ``C = g22 + 1e-4``) and ``k = (g11 - g22) / 2``: convex. With ``u = A x + B``
    and ``D = A C - B^2 > 0`` the stationary point is ``u = -k sqrt(D / (A coef^2 - k^2))``; when
    ``A coef^2 <= k^2`` the derivative has the sign of ``k`` throughout and the minimizer is the end
    that ``u -> -k inf`` clips to.
    """
    xp = namespace(g11)
    a = g11 + g22 - 2 * g12
    b = g12 - g22
    k = (g11 - g22) / 2
    d = a * (g22 + CAGRAD_EPS) - b * b
    margin = a * coef * coef - k * k
    tiny = 1e-300
    stationary = (margin > tiny) & (a > tiny)  # else obj is monotone in x (or flat: a = 0 means g1 = g2)
    u = -k * xp.sqrt(xp.where(d > 0, d, _zeros_like(d)) / xp.where(stationary, margin, _full(margin, 1.0)))
    x = (u - b) / xp.where(stationary, a, _full(a, 1.0))
    end = xp.where(k > 0, _zeros_like(k), xp.where(k < 0, _full(k, 1.0), _full(k, 0.5)))
    x = xp.where(stationary, x, end)
    return xp.where(x < 0, _zeros_like(x), xp.where(x > 1, _full(x, 1.0), x))


def _cagrad_dual_numpy(gram: np.ndarray, coef: float) -> np.ndarray:
    """The minimizer of CAGrad's dual on the simplex, by scipy SLSQP (as the authors' NYUv2 code), checked.

    ``phi(w) = w^T K 1 / T + coef sqrt(w^T K w + 1e-4)`` is convex, so its Frank-Wolfe gap
    ``grad phi(w) . w - min_i grad phi(w)_i`` bounds ``phi(w) - min phi``; a solve that stops with a
    relative gap (over ``max_i K_ii``) above :data:`CAGRAD_GAP` raises instead of returning a
    direction of an unsolved problem.
    """
    import scipy.optimize

    gram = np.asarray(gram, dtype=np.float64)
    coef = float(coef)
    tasks = len(gram)
    b = gram.mean(1)

    def value_and_gradient(w: np.ndarray) -> tuple[float, np.ndarray]:
        kw = gram @ w
        root = np.sqrt(w @ kw + CAGRAD_EPS)
        return float(w @ b + coef * root), b + coef * kw / root

    start = np.full(tasks, 1.0 / tasks)
    result = scipy.optimize.minimize(
        value_and_gradient, start, jac=True, method="SLSQP", bounds=[(0.0, 1.0)] * tasks,
        constraints=({"type": "eq", "fun": lambda w: w.sum() - 1.0, "jac": lambda w: np.ones_like(w)},),
        options={"ftol": 1e-15, "maxiter": 500},
    )
    w = np.clip(result.x, 0.0, None)
    w = w / w.sum()
    _, gradient = value_and_gradient(w)
    gap = float(gradient @ w - gradient.min())
    scale = float(gram.diagonal().max()) + 1e-300
    if not (np.isfinite(gap) and gap <= CAGRAD_GAP * scale):
        raise RuntimeError(f"CAGrad dual solve failed ({result.message}): relative Frank-Wolfe gap {gap / scale:.2e} "
                           f"> {CAGRAD_GAP}")
    return w


def _cagrad_weights_many(gram: Any, coef: Any) -> Any:
    """CAGrad's dual weights for any number of tasks: :func:`_cagrad_dual_numpy` on the host.

    torch (and numpy) call it directly; under jax (traced) it runs through ``jax.pure_callback``,
    so a failed solve raises from the compiled step and the run stops with status ``error``.
    """
    if isinstance(gram, np.ndarray) or is_torch(gram):
        return like(_cagrad_dual_numpy(to_host(gram), float(coef)), gram)
    import jax

    shape = jax.ShapeDtypeStruct(gram.shape[:1], gram.dtype)
    return jax.pure_callback(lambda k, c: _cagrad_dual_numpy(np.asarray(k), float(c)).astype(k.dtype), shape, gram, coef)


def cagrad_direction(grads: Any, c: float) -> Any:
    """CAGrad's direction ``(g_0 + coef / (||g_w|| + 1e-4) g_w) / (1 + c)``, ``coef = c ||g_0||``, as ``toy.py``.

    ``||g_0||`` is ``sqrt(||g_0||^2 + 1e-4 / T^2)`` and ``||g_w||`` is ``sqrt(||g_w||^2 + 1e-4)``, which
    for ``T = 2`` are ``toy.py``'s ``0.5 sqrt(g11 + g22 + 2 g12 + 1e-4)`` and its ``gw_norm``.
    """
    xp = namespace(grads)
    tasks = int(grads.shape[0])
    gram = grads @ grads.T
    g0 = grads.mean(0)
    coef = c * xp.sqrt(gram.sum() / tasks**2 + CAGRAD_EPS / tasks**2)
    if tasks == 2:
        x = _cagrad_weight_two(gram[0, 0], gram[0, 1], gram[1, 1], coef)
        w = xp.stack([x, 1 - x])
    else:
        w = _cagrad_weights_many(gram, coef)
    gw = w @ grads
    gw_norm = xp.sqrt((w * (gram @ w)).sum() + CAGRAD_EPS)
    return (g0 + coef / (gw_norm + CAGRAD_EPS) * gw) / (1 + c)


class SurgeryState(NamedTuple):
    """Adam's moments and step count (zeros under SGD), and PCGrad's order generator (``None`` otherwise)."""

    m: Any
    v: Any
    t: Any
    key: Any = None


class _Surgery:
    """A direction rule on the shared coordinates, the heads' summed gradient, then Adam or SGD.

    Parameters
    ----------
    optimizer
        ``adam`` or ``sgd``.
    lr
        Step size of the inner optimizer.
    """

    def __init__(self, *, optimizer: str, lr: float) -> None:
        if optimizer not in ("adam", "sgd"):
            raise ValueError(f"optimizer must be adam or sgd (got {optimizer!r})")
        self.optimizer, self.lr = optimizer, float(lr)

    def _key(self, params: Any, oracle: Any) -> Any:
        return None

    def _combine(self, grads: Any, key: Any) -> tuple[Any, Any]:
        raise NotImplementedError

    def init(self, params: Any, oracle: Any) -> SurgeryState:
        zeros = params * 0
        return SurgeryState(zeros, zeros, zeros.sum(), self._key(params, oracle))

    def step(self, params: Any, state: SurgeryState, oracle: Any) -> tuple[Any, SurgeryState]:
        _, grads = oracle.task_grads(params)
        shared = int(oracle.shared_dimension)
        combined, key = self._combine(grads[:, :shared], state.key)
        combined = with_heads(combined, grads, shared)
        if self.optimizer == "sgd":
            return params - self.lr * combined, SurgeryState(state.m, state.v, state.t + 1, key)
        t = state.t + 1
        params, m, v = adam_update(params, combined, state.m, state.v, t, self.lr)
        return params, SurgeryState(m, v, t, key)


class EqualWeight(_Surgery):
    """The mean of the task gradients (the gradient of the mean loss on the shared coordinates)."""

    def _combine(self, grads: Any, key: Any) -> tuple[Any, Any]:
        return mean_direction(grads), key


class MGDA(_Surgery):
    """The min-norm point of the task gradients' convex hull (Désidéri 2012; Sener and Koltun 2018).

    A solve whose relative Frank-Wolfe gap exceeds :data:`MGDA_GAP` raises (in jax from the
    compiled step, :func:`checks.host_check`), so the run stops with status ``error``.
    """

    def _combine(self, grads: Any, key: Any) -> tuple[Any, Any]:
        direction, gap = mgda_direction(grads)
        limit = MGDA_GAP
        gap = host_check(gap, gap <= limit,
                         lambda g: f"MGDA min-norm solve failed: relative Frank-Wolfe gap {float(g):.2e} > {limit}")
        # The checked gap feeds the direction, so a compiled step cannot drop the check.
        return namespace(grads).where(gap <= limit, direction, _full(direction, float("nan"))), key


class PCGrad(_Surgery):
    """PCGrad with a fresh random task order each step, from a generator of the method's own.

    torch: numpy ``default_rng([seed, 0x9C6A])``'s ``permutation``; jax: ``jax.random.permutation``
    with a key ``PRNGKey(seed)`` folded with ``0x9C6A``, split each step and carried in the state.
    """

    def _key(self, params: Any, oracle: Any) -> Any:
        seed = int(getattr(oracle, "seed", 0))
        if is_torch(params):
            return np.random.default_rng([seed, _STREAM])
        import jax

        return jax.random.fold_in(jax.random.PRNGKey(seed), _STREAM)

    def _combine(self, grads: Any, key: Any) -> tuple[Any, Any]:
        tasks = int(grads.shape[0])
        if isinstance(key, np.random.Generator):
            return pcgrad_direction(grads, [int(i) for i in key.permutation(tasks)]), key
        import jax

        key, sub = jax.random.split(key)
        return pcgrad_direction(grads, jax.random.permutation(sub, tasks)), key


class CAGrad(_Surgery):
    """CAGrad with conflict radius ``c`` (``c = 0``: the mean; larger ``c``: closer to MGDA).

    Parameters
    ----------
    c
        The radius ``c`` of the ball ``||d - g_0|| <= c ||g_0||`` over which the worst task's
        improvement is maximized (the paper's default 0.5).
    """

    def __init__(self, *, optimizer: str, lr: float, c: float) -> None:
        super().__init__(optimizer=optimizer, lr=lr)
        if not c >= 0:
            raise ValueError(f"c must be >= 0 (got {c!r})")
        self.c = float(c)

    def _combine(self, grads: Any, key: Any) -> tuple[Any, Any]:
        return cagrad_direction(grads, self.c), key
