"""Deep conjugate directions (DCDM) for a symmetric positive definite ``A x = b`` on a square grid, in torch.

The iteration (:class:`ConjugateDirections`, for any direction map ``f``): ``r_0 = b - A x_0 =
-grad(x_0)`` (one ``grad`` call); each step makes one ``matvec`` call::

    q = f(r / ||r||),  p = q - sum_i (q.Ap_i / p_i.Ap_i) p_i,  Ap = Aq - sum_i (q.Ap_i / p_i.Ap_i) Ap_i,
    alpha = p.r / p.Ap,  x <- x + alpha p,  r <- r - alpha Ap,

the sum over the last two directions ``p_i``, kept with their products ``A p_i`` (so ``A p`` costs
no second product). With ``f`` the identity it is conjugate gradient (``r_k`` is already
A-orthogonal to ``p_{k-2}``); with ``f = A^{-1}`` one step solves the system.

:class:`DeepConjugateDirections` is the method: ``f`` a small fully convolutional network on the
``N x N`` grid (:class:`ConvolutionalInverse`), trained in the offline phase, off the clock, on the
task's operator alone (:func:`train`): right-hand sides are random combinations of Lanczos Ritz
vectors of ``A`` (:func:`ritz_vectors`), weighted towards the low end of the spectrum, and the loss
is the scale-invariant ``||r - c A f(r)||^2`` with the best ``c = r.Af / Af.Af``. The network sees
only the grid, so weights trained on one ``N`` apply to any other.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F

from harness.arrays import namespace
from krylov import safe_ratio

__all__ = ["ConjugateDirections", "ConvolutionalInverse", "DCDMState", "DeepConjugateDirections",
           "grid_side", "ritz_vectors", "train"]


class DCDMState(NamedTuple):
    """The recursive residual and the last two directions with their ``A p`` and ``p.Ap`` (0: none yet)."""

    residual: Any
    direction: Any
    product: Any
    curvature: Any
    previous_direction: Any
    previous_product: Any
    previous_curvature: Any


class ConjugateDirections:
    """The DCDM iteration for a given direction map: one ``matvec`` and one ``f`` per step.

    Parameters
    ----------
    direction
        ``f``: maps the normalized residual ``r / ||r||`` (an array of the run's kind) to a search
        direction of the same shape, before the A-orthogonalization.
    """

    def __init__(self, *, direction: Callable[[Any], Any]) -> None:
        self.direction = direction

    def init(self, params: Any, oracle: Any) -> DCDMState:
        residual = -oracle.grad(params)  # b - A x_0
        zero = (0 * residual).sum()
        return DCDMState(residual, 0 * residual, 0 * residual, zero, 0 * residual, 0 * residual, zero)

    def step(self, params: Any, state: DCDMState, oracle: Any) -> tuple[Any, DCDMState]:
        residual, p1, ap1, c1, p2, ap2, c2 = state
        xp = namespace(residual)
        norm = xp.sqrt((residual * residual).sum())
        q = self.direction(residual * safe_ratio(1.0, norm))  # a zero residual goes in as 0, not 0 / 0
        product = oracle.matvec(q)
        # Gram-Schmidt in the A inner product against the last two directions (the paper's choice):
        # A p follows from A q without a second product.
        k1, k2 = safe_ratio((q * ap1).sum(), c1), safe_ratio((q * ap2).sum(), c2)
        direction = q - k1 * p1 - k2 * p2
        product = product - k1 * ap1 - k2 * ap2
        curvature = (direction * product).sum()
        alpha = safe_ratio((direction * residual).sum(), curvature)
        params = params + alpha * direction
        residual = residual - alpha * product
        return params, DCDMState(residual, direction, product, curvature, p1, ap1, c1)


def grid_side(dimension: int) -> int:
    """``N`` with ``N^2 = dimension`` (the unknowns of an ``N x N`` grid, row-major); a ValueError otherwise."""
    side = math.isqrt(int(dimension))
    if side * side != dimension:
        raise ValueError(f"dcdm needs the unknowns of a square grid (got dimension {dimension})")
    return side


class ConvolutionalInverse(torch.nn.Module):
    """``f``: a small fully convolutional network, ``(B, 1, N, N) -> (B, 1, N, N)``, for any ``N``.

    A 3x3 convolution lifts the grid to ``width`` channels; on each of ``levels + 1`` resolutions
    (halved by 2x2 average pooling) a residual block ``h + conv(relu(conv(h)))`` acts; on the way
    back each coarse result is upsampled (nearest) onto its level's skip, convolved and passed
    through a ReLU; a last 3x3 convolution gives one channel. The coarse levels carry the smooth
    (low eigenvalue) part of ``A^{-1}`` that 3x3 convolutions alone cannot reach; no layer knows
    ``N``.
    """

    def __init__(self, *, width: int, levels: int) -> None:
        super().__init__()

        def conv(inputs: int, outputs: int) -> torch.nn.Conv2d:
            return torch.nn.Conv2d(inputs, outputs, 3, padding=1, bias=False)

        self.lift, self.project = conv(1, width), conv(width, 1)
        self.blocks = torch.nn.ModuleList(
            torch.nn.ModuleList([conv(width, width), conv(width, width)]) for _ in range(levels + 1))
        self.merges = torch.nn.ModuleList(conv(width, width) for _ in range(levels))

    def forward(self, grid: torch.Tensor) -> torch.Tensor:
        hidden = torch.relu(self.lift(grid))
        skips = []
        for level, (first, second) in enumerate(self.blocks):
            hidden = hidden + second(torch.relu(first(hidden)))
            if level < len(self.merges):
                skips.append(hidden)
                hidden = F.avg_pool2d(hidden, 2, ceil_mode=True)  # ceil: any N, odd sizes too
        for merge, skip in zip(reversed(self.merges), reversed(skips)):
            hidden = torch.relu(merge(F.interpolate(hidden, size=skip.shape[-2:], mode="nearest") + skip))
        return self.project(hidden)


def ritz_vectors(matvec: Callable[[np.ndarray], np.ndarray], dimension: int, count: int,
                 rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Lanczos with full reorthogonalization: ``count`` Ritz values (ascending) and vectors (rows).

    Parameters
    ----------
    matvec
        ``v -> A v`` on numpy float64 vectors, ``A`` symmetric.
    dimension
        The length of the vectors.
    count
        Lanczos steps (at most ``dimension``; fewer when the Krylov space closes).
    rng
        Draws the start vector.
    """
    count = min(int(count), int(dimension))
    basis = np.zeros((count + 1, dimension))
    start = rng.standard_normal(dimension)
    basis[0] = start / np.linalg.norm(start)
    alphas, betas = [], []
    for j in range(count):
        w = matvec(basis[j])
        alphas.append(float(w @ basis[j]))
        for _ in range(2):  # classical Gram-Schmidt twice: orthogonal to rounding
            w = w - basis[: j + 1].T @ (basis[: j + 1] @ w)
        beta = float(np.linalg.norm(w))
        if beta <= 1e-10 * max(abs(alphas[-1]), 1.0) or j + 1 == count:
            break  # an invariant subspace: its Ritz pairs are exact eigenpairs
        betas.append(beta)
        basis[j + 1] = w / beta
    m = len(alphas)
    tridiagonal = np.diag(alphas) + np.diag(betas[: m - 1], 1) + np.diag(betas[: m - 1], -1)
    values, vectors = np.linalg.eigh(tridiagonal)
    return values, vectors.T @ basis[:m]


class _SymmetricOperator(torch.autograd.Function):
    """``A`` on a batch of grids through the task's ``matvec``; its adjoint is ``A`` (``A`` symmetric)."""

    @staticmethod
    def forward(ctx: Any, grids: torch.Tensor, apply: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
        ctx.operator = apply  # not ctx.apply: that is the node's own method
        return apply(grids)

    @staticmethod
    def backward(ctx: Any, upstream: torch.Tensor) -> tuple[torch.Tensor, None]:
        return ctx.operator(upstream), None


def train(network: torch.nn.Module, matvec: Callable[[torch.Tensor], torch.Tensor], side: int, *,
          lanczos_vectors: int, low_weight: float, steps: int, batch: int, lr: float,
          seed: int) -> list[float]:
    """Fit ``network`` to ``A^{-1}`` up to scale by the scale-invariant loss; returns the loss per step.

    Parameters
    ----------
    network
        ``f``, float32, trained in place.
    matvec
        ``v -> A v`` on float64 torch vectors of length ``side^2`` (the offline operator's; uncounted).
    side
        ``N``.
    lanczos_vectors
        Lanczos steps on ``A`` (from a random start); their Ritz vectors span the training data.
    low_weight
        Weight of the Ritz vectors of the lower half of the spectrum (the upper half weighs 1):
        the smooth modes, the ones a Krylov method is slowest on.
    steps, batch, lr
        Adam steps, right-hand sides per step (fresh each step), learning rate.
    seed
        Seeds the Lanczos start and the right-hand sides (numpy ``default_rng``).
    """
    rng = np.random.default_rng(seed)
    dimension = side * side

    def numpy_matvec(v: np.ndarray) -> np.ndarray:
        return matvec(torch.as_tensor(v, dtype=torch.float64)).detach().cpu().numpy()

    _, ritz = ritz_vectors(numpy_matvec, dimension, lanczos_vectors, rng)
    scales = np.where(np.arange(len(ritz)) < len(ritz) // 2, low_weight, 1.0)
    ritz = torch.as_tensor(scales[:, None] * ritz, dtype=torch.float32)

    def apply(grids: torch.Tensor) -> torch.Tensor:
        rows = [matvec(row.to(torch.float64)) for row in grids.reshape(len(grids), dimension)]
        return torch.stack(rows).to(grids.dtype).reshape(grids.shape)

    weights = list(network.parameters())
    # Adam by hand (beta 0.9, 0.999, eps 1e-8, as torch's): torch.optim's first use imports
    # torch._dynamo, seconds that would land in offline_s.
    first = [torch.zeros_like(w) for w in weights]
    second = [torch.zeros_like(w) for w in weights]
    losses = []
    for t in range(1, steps + 1):
        rhs = torch.as_tensor(rng.standard_normal((batch, len(ritz))), dtype=torch.float32) @ ritz
        rhs = (rhs / rhs.norm(dim=1, keepdim=True)).reshape(batch, 1, side, side)
        image = _SymmetricOperator.apply(network(rhs), apply)
        # min_c ||r - c A f(r)||^2 at c = r.Af / Af.Af, so the network learns A^{-1} up to a scale.
        fit = (rhs * image).sum((1, 2, 3)) ** 2 / (image * image).sum((1, 2, 3))
        loss = (1.0 - fit).mean()  # ||r|| = 1
        grads = torch.autograd.grad(loss, weights)
        with torch.no_grad():
            for w, g, m, v in zip(weights, grads, first, second):
                m.mul_(0.9).add_(g, alpha=0.1)
                v.mul_(0.999).addcmul_(g, g, value=0.001)
                w.addcdiv_(m, (v / (1 - 0.999**t)).sqrt_().add_(1e-8), value=-lr / (1 - 0.9**t))
        losses.append(loss.item())
    return losses


class DeepConjugateDirections(ConjugateDirections):
    """DCDM: the conjugate-direction iteration with ``f`` a network trained offline on the task's ``A``.

    Parameters
    ----------
    width, levels
        The network's channels and its coarse resolutions (:class:`ConvolutionalInverse`).
    lanczos_vectors, low_weight, train_steps, batch, lr
        The offline training (:func:`train`).
    """

    def __init__(self, *, width: int, levels: int, lanczos_vectors: int, low_weight: float, train_steps: int,
                 batch: int, lr: float) -> None:
        super().__init__(direction=self._apply)
        self.width, self.levels = int(width), int(levels)
        self.recipe = dict(lanczos_vectors=int(lanczos_vectors), low_weight=float(low_weight),
                           steps=int(train_steps), batch=int(batch), lr=float(lr))
        self.network: ConvolutionalInverse | None = None
        self.losses: list[float] = []

    def offline(self, facts: Any, operator: Any) -> None:
        """Train ``f`` on ``operator.matvec`` (uncounted, off the clock), seeded by the run seed."""
        if operator is None:
            raise ValueError("dcdm trains on the task's operator: the task must provide matvec")
        side = grid_side(operator.dimension)
        with torch.random.fork_rng(devices=[]):  # the initial weights from the run seed, global state untouched
            torch.manual_seed(facts.seed)
            network = ConvolutionalInverse(width=self.width, levels=self.levels)
        self.losses = train(network, operator.matvec, side, seed=facts.seed, **self.recipe)
        for weight in network.parameters():
            weight.requires_grad_(False)
        self.network = network  # fully convolutional: it applies to a grid of any N, not only this one

    def init(self, params: torch.Tensor, oracle: Any) -> DCDMState:
        if self.network is not None:
            self.network.to(params.device)  # inference beside the iterate (a no-op on the cpu)
        return super().init(params, oracle)

    def _apply(self, residual: torch.Tensor) -> torch.Tensor:
        if self.network is None:
            raise RuntimeError("dcdm's network is untrained: the harness runs offline() before the clock")
        side = grid_side(residual.shape[0])
        weight = next(self.network.parameters())
        with torch.no_grad():  # float32 inference: f only picks a direction, the iteration stays float64
            grid = residual.to(device=weight.device, dtype=weight.dtype).reshape(1, 1, side, side)
            return self.network(grid).reshape(-1).to(device=residual.device, dtype=residual.dtype)
