"""Muon: orthogonalized momentum for matrix parameters, AdamW for the rest, in torch and jax.

For each matrix block of the problem's ``layout`` the (Nesterov) momentum of the gradient is
replaced by an approximation of its orthogonal polar factor ``U V^T`` by 5 steps of the quintic
Newton-Schulz iteration ``X <- a X + (b A + c A^2) X``, ``A = X X^T``, with Keller Jordan's
coefficients ``(3.4445, -4.7750, 2.0315)``; the step is scaled by ``sqrt(max(1, rows / cols))``
and weight decay is decoupled (``torch.optim.Muon``'s conventions). Vectors and problems without a
layout get AdamW. Newton-Schulz runs in the parameters' dtype (torch's Muon uses bfloat16).
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

from harness.arrays import namespace

__all__ = ["NS_COEFFICIENTS", "Muon", "MuonState", "newton_schulz"]

NS_COEFFICIENTS = (3.4445, -4.7750, 2.0315)


def newton_schulz(G: Any, steps: int = 5, coefficients: tuple[float, float, float] = NS_COEFFICIENTS, eps: float = 1e-7) -> Any:
    """Approximate orthogonalization ``U S' V^T`` of ``G = U S V^T`` (``S'`` near 1).

    An odd matrix polynomial in ``G``: the singular vectors are exactly ``G``'s, each singular
    value ``s / ||G||_F`` goes through the scalar map ``s <- a s + b s^3 + c s^5`` ``steps`` times.
    """
    xp = namespace(G)
    a, b, c = coefficients
    transposed = G.shape[0] > G.shape[1]
    X = G.T if transposed else G
    norm = xp.linalg.norm(X)
    X = X / xp.where(norm > eps, norm, eps)  # Frobenius norm >= spectral norm: s <= 1; traceable (no float())
    for _ in range(steps):
        A = X @ X.T
        X = a * X + (b * A + c * (A @ A)) @ X
    return X.T if transposed else X


class MuonState(NamedTuple):
    """Momentum buffer, AdamW moments (flat, like the parameters) and the step count."""

    momentum: Any
    first: Any
    second: Any
    steps: int


class Muon:
    """Muon on the layout's matrices, AdamW elsewhere.

    Parameters
    ----------
    lr, momentum, nesterov, weight_decay, ns_steps
        Muon's step, momentum, Nesterov switch, decoupled weight decay and Newton-Schulz steps.
    adam_lr, b1, b2, eps
        AdamW's step and moments for the non-matrix blocks (same weight decay).
    """

    def __init__(
        self,
        *,
        lr: float,
        momentum: float,
        nesterov: bool,
        weight_decay: float,
        ns_steps: int,
        adam_lr: float,
        b1: float,
        b2: float,
        eps: float,
    ) -> None:
        self.lr, self.momentum, self.nesterov = float(lr), float(momentum), bool(nesterov)
        self.weight_decay, self.ns_steps = float(weight_decay), int(ns_steps)
        self.adam_lr, self.b1, self.b2, self.eps = float(adam_lr), float(b1), float(b2), float(eps)
        self.blocks: list[tuple[slice, tuple[int, ...], bool]] = []

    def init(self, params: Any, oracle: Any) -> MuonState:
        layout = oracle.layout or (("params", (int(params.shape[0]),)),)
        offset, self.blocks = 0, []
        for _, shape in layout:
            size = math.prod(shape)
            is_matrix = len(shape) == 2 and min(shape) > 1
            self.blocks.append((slice(offset, offset + size), tuple(shape), is_matrix))
            offset += size
        if offset != int(params.shape[0]):
            raise ValueError(f"the layout covers {offset} parameters, the vector has {int(params.shape[0])}")
        zeros = params * 0.0
        return MuonState(zeros, zeros, zeros, 0)

    def step(self, params: Any, state: MuonState, oracle: Any) -> tuple[Any, MuonState]:
        xp = namespace(params)
        grad = oracle.grad(params)
        buf = state.momentum + (1.0 - self.momentum) * (grad - state.momentum)  # lerp towards g
        update = grad + self.momentum * (buf - grad) if self.nesterov else buf
        t = state.steps + 1
        first = self.b1 * state.first + (1.0 - self.b1) * grad
        second = self.b2 * state.second + (1.0 - self.b2) * grad * grad
        adam = (first / (1.0 - self.b1**t)) / (xp.sqrt(second / (1.0 - self.b2**t)) + self.eps)
        pieces = []
        for part, shape, is_matrix in self.blocks:
            p = params[part]
            if is_matrix:
                ortho = newton_schulz(update[part].reshape(shape), self.ns_steps).reshape(-1)
                scale = math.sqrt(max(1.0, shape[0] / shape[1]))
                pieces.append(p * (1.0 - self.lr * self.weight_decay) - self.lr * scale * ortho)
            else:
                pieces.append(p * (1.0 - self.adam_lr * self.weight_decay) - self.adam_lr * adam[part])
        return xp.concatenate(pieces), MuonState(buf, first, second, t)
