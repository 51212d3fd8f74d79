"""Multi-task balancing rules on the oracle's task gradients: GradNorm, SAM-GS and GCond, for torch and jax.

Each step calls ``oracle.task_grads`` once. The rule acts on the shared coordinates (the first
``oracle.shared_dimension``); on the heads every method uses the plain gradient of the summed
loss there (a task's row is zero on the other heads, so that is the sum of the rows). Every
branch is an array ``where`` (no Python control flow on values), so the jax side compiles whole.
"""

from __future__ import annotations

from typing import Any


from adam import adam_update
from checks import host_check
from heads import with_heads
from harness.arrays import eye, namespace
from harness.oracle import layout_blocks

__all__ = ["GCond", "GradNorm", "SamGS", "gcond_resolve", "gradnorm_weights", "samgs_direction"]

_TINY = 1e-30  # keeps a zero gradient's normalization finite (0 / tiny = 0)


def _norms(G: Any) -> Any:
    return namespace(G).sqrt((G * G).sum(axis=1))


def gradnorm_weights(weights: Any, losses: Any, initial: Any, norms: Any, *, alpha: float, lr: float,
                     floor: float) -> Any:
    """One GradNorm update of the task weights (Chen et al. 2018), renormalized to sum to ``T``.

    ``L_grad = sum_i | w_i ||g_i|| - mean_j(w_j ||g_j||) r_i^alpha |`` with the inverse training
    rates ``r_i = (L_i / L_i(0)) / mean_j (L_j / L_j(0))``; the target is a constant (as in the
    paper), so ``dL_grad / dw_i = sign(w_i ||g_i|| - target_i) ||g_i||``. A gradient step of
    ``lr`` on ``w``, a floor keeping each weight positive, then ``w <- T w / sum w``.
    """
    xp = namespace(weights)
    weighted = weights * norms
    rates = losses / initial
    target = weighted.mean() * (rates / rates.mean()) ** alpha
    weights = xp.maximum(weights - lr * xp.sign(weighted - target) * norms, floor * xp.ones_like(weights))
    return weights * (weights.shape[0] / weights.sum())


class GradNorm:
    """GradNorm (alpha 1.5) on the trunk, the direction ``sum_i w_i g_i`` stepped by Adam (adam.py).

    Parameters
    ----------
    lr, b1, b2, eps
        Adam's step on the parameters.
    alpha
        GradNorm's asymmetry (1.5 in the paper's NYUv2 runs).
    weight_lr
        The gradient step on the task weights.
    """

    def __init__(self, *, lr: float, b1: float, b2: float, eps: float, alpha: float, weight_lr: float) -> None:
        self.lr, self.b1, self.b2, self.eps = float(lr), float(b1), float(b2), float(eps)
        self.alpha, self.weight_lr = float(alpha), float(weight_lr)

    def init(self, params: Any, oracle: Any) -> dict[str, Any]:
        xp = namespace(params)
        ones = xp.ones_like(params[: oracle.n_tasks])
        # initial = 0 until the first step records L(0); t counts the steps taken.
        return {"weights": ones, "initial": ones * 0.0, "m": params * 0.0, "v": params * 0.0, "t": params[0] * 0.0}

    def step(self, params: Any, state: dict[str, Any], oracle: Any) -> tuple[Any, dict[str, Any]]:
        xp = namespace(params)
        s = oracle.shared_dimension
        losses, grads = oracle.task_grads(params)
        losses = host_check(losses, (losses > 0).all(),  # the rates L_i / L_i(0) need positive losses
                            lambda v: f"GradNorm needs positive task losses (its training rates L_i / L_i(0)); got {v.tolist()}")
        initial = xp.where(state["t"] == 0, losses, state["initial"])
        weights = state["weights"]
        G = grads[:, :s]
        direction = with_heads((weights[:, None] * G).sum(axis=0), grads, s)
        t = state["t"] + 1.0
        params, m, v = adam_update(params, direction, state["m"], state["v"], t, self.lr, self.b1, self.b2, self.eps)
        weights = gradnorm_weights(weights, losses, initial, _norms(G), alpha=self.alpha, lr=self.weight_lr,
                                   floor=1e-3)
        return params, {"weights": weights, "initial": initial, "m": m, "v": v, "t": t}


def samgs_direction(G: Any, M: Any, threshold: float) -> tuple[Any, Any]:
    """SAM-GS's shared direction from the task gradients ``G`` (T, s) and per-task momenta ``M`` (T, s).

    ``S_ij = 2 ||g_i|| ||g_j|| / (||g_i||^2 + ||g_j||^2)``. If some ``S_ij < threshold``
    (magnitudes disagree): gradient equalization ``sum_i g_i / ||g_i|| * mean_i ||g_i||``; else
    momentum equalization ``sum_i m_i / ||m_i|| * mean_i ||m_i||``. Returns the direction and
    whether the gradient branch was taken (a 0-d boolean array).
    """
    xp = namespace(G)
    n = _norms(G)
    S = 2.0 * n[:, None] * n[None, :] / (n[:, None] ** 2 + n[None, :] ** 2 + _TINY)
    conflict = S.min() < threshold  # the diagonal is 1 (0 for an all-zero gradient: equalized, a no-op)
    equalized = (G / (n + _TINY)[:, None]).sum(axis=0) * n.mean()
    nm = _norms(M)
    momentum = (M / (nm + _TINY)[:, None]).sum(axis=0) * nm.mean()
    return xp.where(conflict, equalized, momentum), conflict


class SamGS:
    """Similarity-Aware Momentum Gradient Surgery on the trunk, then a plain step ``params -= lr d``.

    Parameters
    ----------
    lr
        The step.
    beta
        The per-task momentum ``m_i <- beta m_i + (1 - beta) g_i``, updated at every step.
    threshold
        The magnitude similarity below which gradients are equalized (0.9).
    """

    def __init__(self, *, lr: float, beta: float, threshold: float) -> None:
        self.lr, self.beta, self.threshold = float(lr), float(beta), float(threshold)

    def init(self, params: Any, oracle: Any) -> Any:
        xp = namespace(params)
        return xp.stack([params[: oracle.shared_dimension] * 0.0] * oracle.n_tasks)  # one momentum per task

    def step(self, params: Any, state: Any, oracle: Any) -> tuple[Any, Any]:
        s = oracle.shared_dimension
        _, grads = oracle.task_grads(params)
        G = grads[:, :s]
        M = self.beta * state + (1.0 - self.beta) * G
        shared, _ = samgs_direction(G, M, self.threshold)
        return params - self.lr * with_heads(shared, grads, s), M


def gcond_resolve(A: Any) -> Any:
    """GCond's arbitration of the task gradients ``A`` (T, s): the most conflicting pair resolved, then summed.

    The pair ``(i, j)``, ``i != j``, of least cosine. Winner: the larger norm, loser the smaller.
    cos < -0.75: the loser is dropped; [-0.75, -0.5): the loser is projected on the winner's
    normal plane; [-0.5, 0): each onto the other's normal plane (from the originals); cos >= 0:
    nothing changes. Returns the sum of the rows after the change.
    """
    xp = namespace(A)
    T = A.shape[0]
    n = _norms(A)
    cos = (A @ A.T) / ((n + _TINY)[:, None] * (n + _TINY)[None, :])
    cos = xp.where(eye(T, like=A) > 0.5, 2.0 * xp.ones_like(cos), cos)  # a row is no pair with itself
    flat = xp.argmin(cos.reshape(-1))
    i, j = flat // T, flat % T
    c = cos.reshape(-1)[flat]
    gi, gj = A[i], A[j]
    ni, nj = n[i], n[j]
    i_wins = ni >= nj
    winner, loser = xp.where(i_wins, gi, gj), xp.where(i_wins, gj, gi)
    wn2 = xp.where(i_wins, ni, nj) ** 2 + _TINY
    ln2 = xp.where(i_wins, nj, ni) ** 2 + _TINY
    dot = (gi * gj).sum()
    dropped = 0.0 * loser
    projected = loser - dot / wn2 * winner
    loser_new = xp.where(c < -0.75, dropped, xp.where(c < 0.0, projected, loser))
    winner_new = xp.where((c >= -0.5) & (c < 0.0), winner - dot / ln2 * loser, winner)
    gi_new, gj_new = xp.where(i_wins, winner_new, loser_new), xp.where(i_wins, loser_new, winner_new)
    return A.sum(axis=0) + (gi_new - gi) + (gj_new - gj)


class GCond:
    """GCond: accumulated task gradients, conflict arbitration, EMA, sign update scaled by a trust ratio.

    Parameters
    ----------
    lr
        The relative step: each layout block moves by ``lr ||p_B||`` (its trust ratio
        ``||p_B|| / ||u_B||`` times ``lr`` times the sign vector ``u_B``); a block with zero
        norm (a zero-initialized bias) gets ratio 1, as LAMB does.
    beta
        The EMA of the arbitrated direction (0.85).
    accumulation
        Steps whose task gradients are summed before one arbitration and update (1: every step).
    """

    def __init__(self, *, lr: float, beta: float, accumulation: int) -> None:
        self.lr, self.beta, self.accumulation = float(lr), float(beta), int(accumulation)
        if self.accumulation < 1:
            raise ValueError(f"accumulation must be >= 1; got {accumulation}")

    def init(self, params: Any, oracle: Any) -> dict[str, Any]:
        xp = namespace(params)
        return {"ema": params * 0.0, "acc": xp.stack([params * 0.0] * oracle.n_tasks), "count": params[0] * 0.0}

    def step(self, params: Any, state: dict[str, Any], oracle: Any) -> tuple[Any, dict[str, Any]]:
        xp = namespace(params)
        s = oracle.shared_dimension
        _, grads = oracle.task_grads(params)
        acc = state["acc"] + grads
        count = state["count"] + 1.0
        ready = count >= self.accumulation
        direction = with_heads(gcond_resolve(acc[:, :s]), acc, s) / self.accumulation
        ema = self.beta * state["ema"] + (1.0 - self.beta) * direction
        update = xp.sign(ema)
        concat = xp.cat if hasattr(xp, "cat") else xp.concatenate
        scaled = []
        for start, stop in layout_blocks(oracle.layout or (("params", (oracle.dimension,)),)):
            p, u = params[start:stop], update[start:stop]
            pn, un = xp.sqrt((p * p).sum()), xp.sqrt((u * u).sum())
            ratio = xp.where((pn > 0) & (un > 0), pn / (un + _TINY), xp.ones_like(pn))
            scaled.append(ratio * u)
        moved = params - self.lr * concat(scaled)
        return xp.where(ready, moved, params), {
            "ema": xp.where(ready, ema, state["ema"]),
            "acc": xp.where(ready, 0.0 * acc, acc),
            "count": xp.where(ready, 0.0 * count, count),
        }
