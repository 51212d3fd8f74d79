"""The two-task 2-D toy of CAGrad (Liu et al. 2021, the authors' ``toy.py``): one problem class for torch and jax.

With ``a1 = -x1/2 - 3.5 + tanh(x2)``, ``a2 = -x1/2 + 3.5 - tanh(x2)``, ``c1 = max(tanh(x2/2), 0)``
and ``c2 = max(tanh(-x2/2), 0)``::

    L1 = (log max(|a1|, 5e-6) + 6) c1 + (((x1 - 7)^2 + 0.1 (x2 + 8)^2) / 10 - 20) c2
    L2 = (log max(|a2|, 5e-6) + 6) c1 + (((x1 + 7)^2 + 0.1 (x2 + 8)^2) / 10 - 20) c2

exactly as ``Toy.forward`` writes them (``0.5 (-x1 - 7) - tanh(-x2)`` is ``a1``, ``0.5 (-x1 + 3) +
tanh(-x2) + 2`` is ``a2``). The objective is the mean ``(L1 + L2) / 2`` (the third panel of the
authors' plot). For ``x2 > 0`` the losses are logarithmic valleys along ``a_k = 0``; for ``x2 < 0``
they are quadratic bowls centred at ``x1 = +-7``. The Pareto set is a curve near ``x2 = -8.355``
from ``x1 = -7`` to ``x1 = 7``; the mean loss is minimal at its middle.

The references are numpy/scipy, written apart from the framework code: :func:`numpy_grads` is the
hand-derived gradient, :func:`mean_minimum` the multi-start minimum of the mean loss and
:func:`pareto_set` the Pareto curve from weighted-sum minimizations, both cached per process
(the toy is deterministic).
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

from harness.arrays import namespace, to_float64

__all__ = [
    "INITS",
    "LOWER",
    "MTLToy",
    "mean_minimum",
    "numpy_grads",
    "numpy_losses",
    "pareto_distance",
    "pareto_set",
    "task_losses",
]

#: ``toy.py``'s clamp of ``|a_k|`` below the logarithm.
LOWER = 5e-6
#: ``toy.py``'s three starts (``run_all``'s ``inits``), selected by the task parameter ``init``.
INITS = {1: (-8.5, 7.5), 2: (-8.5, -5.0), 3: (9.0, 9.0)}
#: Gradient-norm tolerance of the scipy references.
GTOL = 1e-10


def _relu(t: Any) -> Any:
    return (t + abs(t)) / 2  # max(t, 0) in every namespace


def task_losses(x: Any) -> Any:
    """``(L1, L2)`` at ``x = (x1, x2)``, in the namespace of ``x`` (numpy, torch or jax)."""
    xp = namespace(x)
    x1, x2 = x[0], x[1]
    tanh = xp.tanh(x2)
    c1, c2 = _relu(xp.tanh(x2 / 2)), _relu(xp.tanh(-x2 / 2))
    bowl = 0.1 * (x2 + 8) ** 2
    losses = []
    for a, centre in ((-x1 / 2 - 3.5 + tanh, 7.0), (-x1 / 2 + 3.5 - tanh, -7.0)):
        magnitude = abs(a)
        # torch.clamp(|a|, LOWER): below LOWER the value is constant (zero gradient), as in toy.py.
        clamped = xp.where(magnitude > LOWER, magnitude, LOWER + 0 * magnitude)
        losses.append((xp.log(clamped) + 6) * c1 + (((x1 - centre) ** 2 + bowl) / 10 - 20) * c2)
    return xp.stack(losses)


def numpy_losses(x: np.ndarray) -> np.ndarray:
    """``(L1, L2)`` at a float64 point (the references' formula)."""
    return np.asarray(task_losses(np.asarray(x, dtype=np.float64)))


def numpy_grads(x: np.ndarray) -> np.ndarray:
    """The gradients of ``(L1, L2)``, rows ``(2, 2)``, derived by hand (no autodiff)."""
    x1, x2 = float(x[0]), float(x[1])
    tanh, half = np.tanh(x2), np.tanh(x2 / 2)
    dtanh, dhalf = 1 - tanh**2, 0.5 * (1 - half**2)
    c1, dc1 = (half, dhalf) if half > 0 else (0.0, 0.0)
    c2, dc2 = (-half, -dhalf) if half < 0 else (0.0, 0.0)
    rows = []
    for sign, centre in ((1.0, 7.0), (-1.0, -7.0)):
        a = -x1 / 2 - sign * 3.5 + sign * tanh
        inverse = 1 / a if abs(a) > LOWER else 0.0
        log_part = np.log(max(abs(a), LOWER)) + 6
        bowl = ((x1 - centre) ** 2 + 0.1 * (x2 + 8) ** 2) / 10 - 20
        rows.append([-0.5 * inverse * c1 + 0.2 * (x1 - centre) * c2,
                     sign * dtanh * inverse * c1 + log_part * dc1 + 0.02 * (x2 + 8) * c2 + bowl * dc2])
    return np.array(rows)


def _polish(fun: Any, grad: Any, x: np.ndarray) -> np.ndarray:
    """Newton steps on ``grad`` (central-difference Jacobian of the exact gradient) to ``GTOL``."""
    for _ in range(50):
        g = grad(x)
        if np.linalg.norm(g) <= GTOL:
            return x
        h = 1e-6
        hessian = np.stack([(grad(x + h * e) - grad(x - h * e)) / (2 * h) for e in np.eye(2)], axis=1)
        hessian = (hessian + hessian.T) / 2
        if not np.linalg.eigvalsh(hessian)[0] > 0:
            break  # not near a strict local minimum: no Newton step to take
        x = x - np.linalg.solve(hessian, g)
    raise RuntimeError(f"Newton polish did not reach |grad| <= {GTOL} (|grad| = {np.linalg.norm(grad(x)):.1e})")


def _weighted_minimum(w: float, start: np.ndarray) -> np.ndarray:
    import scipy.optimize

    fun = lambda x: float(numpy_losses(x) @ (w, 1 - w))  # noqa: E731
    grad = lambda x: numpy_grads(x).T @ (w, 1 - w)  # noqa: E731
    result = scipy.optimize.minimize(fun, start, jac=grad, method="BFGS", options={"gtol": 1e-12, "maxiter": 10_000})
    return _polish(fun, grad, result.x)


@functools.cache
def mean_minimum() -> tuple[np.ndarray, float]:
    """The minimizer and minimum of the mean loss: BFGS from a grid of starts, polished to ``|grad| <= 1e-10``."""
    best = None
    for x1 in np.linspace(-10, 10, 5):
        for x2 in np.linspace(-10, 10, 5):
            try:
                x = _weighted_minimum(0.5, np.array([x1, x2]))
            except RuntimeError:
                continue  # a start in a flat or clamped region: the others find the minimum
            value = float(numpy_losses(x).mean())
            if best is None or value < best[1]:
                best = (x, value)
    if best is None:
        raise RuntimeError("no start reached the mean loss's minimum")
    return best[0].copy(), best[1]


@functools.cache
def pareto_set(points: int = 401) -> np.ndarray:
    """The Pareto curve, ``(points, 2)``: minimizers of ``w L1 + (1 - w) L2`` over ``w`` in ``[0, 1]``.

    Each is polished to ``|grad| <= 1e-10``, warm-started from its neighbour; at each the task
    gradients are anti-parallel or one is zero (asserted here, so the curve is Pareto
    stationary and not an artefact of the weights).
    """
    curve = []
    start = mean_minimum()[0]
    weights = np.linspace(0.5, 1.0, points // 2 + 1)
    for half in (weights, 1.0 - weights):
        x = start
        for w in half:
            x = _weighted_minimum(float(w), x)
            curve.append((float(w), x))
    curve.sort(key=lambda item: item[0])
    unique = np.array([x for i, (w, x) in enumerate(curve) if i == 0 or w != curve[i - 1][0]])
    for x in unique:
        g1, g2 = numpy_grads(x)
        n1, n2 = np.linalg.norm(g1), np.linalg.norm(g2)
        if min(n1, n2) > 1e-8 and g1 @ g2 / (n1 * n2) > -1 + 1e-8:
            raise RuntimeError(f"weighted minimizer {x} is not Pareto stationary (cos = {g1 @ g2 / (n1 * n2)})")
    return unique


def pareto_distance(x: np.ndarray) -> float:
    """Euclidean distance from ``x`` to the polyline through :func:`pareto_set`'s points."""
    curve = pareto_set()
    a, b = curve[:-1], curve[1:]
    ab = b - a
    t = np.clip(((x - a) * ab).sum(1) / np.maximum((ab * ab).sum(1), 1e-300), 0.0, 1.0)
    return float(np.sqrt((((a + t[:, None] * ab) - x) ** 2).sum(1)).min())


class MTLToy:
    """The toy's two task losses (any namespace), its fixed start and the metrics (numpy)."""

    n_tasks = 2
    shared_dimension = 2  # both coordinates are shared: no task heads
    layout = (("x", (2,)),)

    def __init__(self, *, backend: Any, init: int) -> None:
        if init not in INITS:
            raise ValueError(f"init must be one of {sorted(INITS)} (got {init!r})")
        self.backend, self.init, self.dim = backend, int(init), 2
        self.x_star, self.f_star = mean_minimum()

    def init_params(self, seed: int) -> Any:
        """The start ``INITS[init]``; the toy is deterministic, so the seed is ignored."""
        return self.backend.asarray(np.array(INITS[self.init], dtype=np.float64))

    def task_losses(self, params: Any) -> Any:
        return task_losses(params)

    def loss(self, params: Any) -> Any:
        return task_losses(params).mean()

    def evaluate(self, params: Any) -> dict[str, float]:
        x = to_float64(self.backend, params)
        losses = numpy_losses(x)
        return {
            "objective": float(losses.mean()),
            "loss_1": float(losses[0]),
            "loss_2": float(losses[1]),
            "pareto_distance": pareto_distance(x),
            "distance": float(np.linalg.norm(x - self.x_star)),
        }
