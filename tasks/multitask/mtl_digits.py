"""Three tasks on scikit-learn's digits through one shared tanh MLP trunk: one problem class for torch and jax.

A trunk ``h(x) = tanh(W2 tanh(W1 x + b1) + b2)`` (64-128-128, tanh) feeds three linear heads:

(a) ``digit``: the digit class, 10 logits, mean cross-entropy;
(b) ``parity``: even or odd, 2 logits, mean cross-entropy;
(c) ``centroid``: the pixel-mass centroid (row, col) of the raw 8x8 image, 2 outputs, mean
    squared error over images and both coordinates (the targets standardized over all 1797 images).

``task_losses`` are these three training losses; ``loss`` is their sum (no penalty). The flat
parameter vector is ``[W1, b1, W2, b2 | digit W, b | parity W, b | centroid W, b]``, row-major,
the shared trunk first: ``shared_dimension`` is the trunk's size and a task's gradient is zero on
the other tasks' heads. ``layout`` names the ten blocks.

The metric ``delta_m`` is Delta-m% against single-task baselines: the same architecture (trunk and
that task's head) trained on each task alone by a fixed numpy recipe (:func:`single_task_baselines`:
full-batch Adam from ``init_params(0)``), computed once per process. Every task parameter comes
from ``mtl-digits.yaml``: no function here has a default for one.
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

import numpy as np
import scipy.special

from harness.arrays import immutable, namespace, to_float64
from harness.datasets import sklearn_raw, sklearn_dataset
from harness.losses import cross_entropy

__all__ = [
    "HEADS",
    "TASKS",
    "Data",
    "MTLDigits",
    "delta_m",
    "load_data",
    "numpy_task_grad",
    "numpy_task_losses",
    "single_task_baselines",
    "test_metrics",
]

#: The tasks in order, with their head widths.
TASKS = ("digit", "parity", "centroid")
HEADS = {"digit": 10, "parity": 2, "centroid": 2}
#: Each task's test metric and whether higher is better (the sign of its Delta-m term).
TEST_METRICS = (("test_accuracy_digit", True), ("test_accuracy_parity", True), ("test_mse_centroid", False))
INPUT = 64


class Data(NamedTuple):
    """Standardized images, digit labels, parity labels and standardized centroids, train and test."""

    X: np.ndarray
    digit: np.ndarray
    parity: np.ndarray
    centroid: np.ndarray
    X_test: np.ndarray
    digit_test: np.ndarray
    parity_test: np.ndarray
    centroid_test: np.ndarray


def centroids(raw: np.ndarray) -> np.ndarray:
    """The pixel-mass centroid ``(row, col)`` of each raw 8x8 image (rows of 64 intensities), (n, 2)."""
    index = np.arange(INPUT)
    mass = raw.sum(axis=1)
    return np.stack([raw @ (index // 8), raw @ (index % 8)], axis=1) / mass[:, None]


@functools.cache
def _load(n: int, n_test: int, data_seed: int) -> Data:
    X, target = sklearn_dataset("digits")
    raw, _ = sklearn_raw("digits")  # the raw intensities 0..16, for the centroid
    if n < 1 or n_test < 1 or n + n_test > len(X):
        raise ValueError(f"need n >= 1, n_test >= 1 and n + n_test <= {len(X)} (got n={n}, n_test={n_test})")
    c = centroids(raw)
    c = (c - c.mean(axis=0)) / c.std(axis=0)
    order = np.random.default_rng(data_seed).permutation(len(X))
    parts = []
    for rows in (order[:n], order[n : n + n_test]):
        parts += [X[rows], target[rows].astype(np.int64), (target[rows] % 2).astype(np.int64), c[rows]]
    return Data(*(immutable(np.asarray(v)) for v in parts))


def load_data(*, n: int, n_test: int, data_seed: int) -> Data:
    """Train and test sets: ``default_rng(data_seed).permutation(1797)``, the first ``n`` train, the next ``n_test`` test."""
    return _load(int(n), int(n_test), int(data_seed))


def make_layout(hidden: int) -> tuple[tuple[str, tuple[int, ...]], ...]:
    """The ``(name, shape)`` blocks of the flat vector: trunk first, then the heads in :data:`TASKS` order."""
    H = int(hidden)
    blocks: list[tuple[str, tuple[int, ...]]] = [("W1", (H, INPUT)), ("b1", (H,)), ("W2", (H, H)), ("b2", (H,))]
    for task in TASKS:
        blocks += [(f"{task}_W", (HEADS[task], H)), (f"{task}_b", (HEADS[task],))]
    return tuple(blocks)


def unflatten(params: Any, layout: tuple[tuple[str, tuple[int, ...]], ...]) -> list[Any]:
    """Views of the flat vector's blocks (numpy, torch or jax), in layout order."""
    blocks, offset = [], 0
    for _, shape in layout:
        size = int(np.prod(shape))
        blocks.append(params[offset : offset + size].reshape(shape))
        offset += size
    return blocks


def numpy_init(seed: int, hidden: int) -> np.ndarray:
    """Every weight ``N(0, 1/fan_in)`` and zero biases, drawn block by block from ``default_rng(seed)``."""
    rng = np.random.default_rng(seed)
    parts = []
    for name, shape in make_layout(hidden):
        parts.append(rng.standard_normal(shape).ravel() / np.sqrt(shape[1]) if len(shape) == 2 else np.zeros(shape))
    return np.concatenate(parts)


def _forward(theta: np.ndarray, X: np.ndarray, hidden: int) -> tuple[list[np.ndarray], np.ndarray, np.ndarray, list[np.ndarray]]:
    blocks = unflatten(theta, make_layout(hidden))
    W1, b1, W2, b2 = blocks[:4]
    h1 = np.tanh(X @ W1.T + b1)
    h2 = np.tanh(h1 @ W2.T + b2)
    outputs = [h2 @ blocks[4 + 2 * k].T + blocks[5 + 2 * k] for k in range(len(TASKS))]
    return blocks, h1, h2, outputs


def _output_loss(k: int, z: np.ndarray, data: Data, test: bool) -> tuple[float, np.ndarray]:
    """Task ``k``'s loss at outputs ``z`` and its derivative in ``z``."""
    if TASKS[k] == "centroid":
        residual = z - (data.centroid_test if test else data.centroid)
        return float(np.mean(residual**2)), 2.0 * residual / residual.size
    labels = (data.digit_test if test else data.digit) if k == 0 else (data.parity_test if test else data.parity)
    rows = np.arange(len(labels))
    ce = scipy.special.logsumexp(z, axis=1) - z[rows, labels]
    delta = scipy.special.softmax(z, axis=1)
    delta[rows, labels] -= 1.0
    return float(np.mean(ce)), delta / len(rows)


def numpy_task_losses(theta: np.ndarray, data: Data, hidden: int) -> np.ndarray:
    """The three training losses at ``theta``, in numpy (the metrics' and the baselines' formula)."""
    *_, outputs = _forward(theta, data.X, hidden)
    return np.array([_output_loss(k, outputs[k], data, False)[0] for k in range(len(TASKS))])


def numpy_task_grad(theta: np.ndarray, data: Data, hidden: int, k: int) -> tuple[float, np.ndarray]:
    """Training loss ``k`` and its gradient in the whole vector (zero on the other heads), by backpropagation."""
    blocks, h1, h2, outputs = _forward(theta, data.X, hidden)
    loss, dz = _output_loss(k, outputs[k], data, False)
    grads = [np.zeros_like(b) for b in blocks]
    grads[4 + 2 * k], grads[5 + 2 * k] = dz.T @ h2, dz.sum(axis=0)
    da2 = (dz @ blocks[4 + 2 * k]) * (1.0 - h2**2)
    da1 = (da2 @ blocks[2]) * (1.0 - h1**2)
    grads[0], grads[1], grads[2], grads[3] = da1.T @ data.X, da1.sum(axis=0), da2.T @ h1, da2.sum(axis=0)
    return loss, np.concatenate([g.ravel() for g in grads])


def test_metrics(theta: np.ndarray, data: Data, hidden: int) -> dict[str, float]:
    """Test accuracy of the digit and parity heads and test MSE of the centroid head, at ``theta``."""
    *_, outputs = _forward(theta, data.X_test, hidden)
    return {
        "test_accuracy_digit": float(np.mean(np.argmax(outputs[0], axis=1) == data.digit_test)),
        "test_accuracy_parity": float(np.mean(np.argmax(outputs[1], axis=1) == data.parity_test)),
        "test_mse_centroid": _output_loss(2, outputs[2], data, True)[0],
    }


def delta_m(metrics: dict[str, float], baselines: dict[str, float]) -> float:
    """Delta-m%: the mean over tasks of ``(-1)^{higher_is_better} (M_k - B_k) / B_k * 100`` (lower is better)."""
    terms = [(-1.0 if higher else 1.0) * (metrics[name] - baselines[name]) / baselines[name] * 100.0
             for name, higher in TEST_METRICS]
    return float(np.mean(terms))


@functools.cache
def _baselines(n: int, n_test: int, hidden: int, data_seed: int, steps: int, lr: float) -> tuple[tuple[float, ...], tuple[np.ndarray, ...]]:
    data = load_data(n=n, n_test=n_test, data_seed=data_seed)
    results, thetas = [], []
    for k, (name, _) in enumerate(TEST_METRICS):
        # Full-batch Adam (b1 0.9, b2 0.999, eps 1e-8) on task k alone; other heads keep zero gradient.
        theta, m, v = numpy_init(0, hidden), 0.0, 0.0
        for t in range(1, steps + 1):
            _, g = numpy_task_grad(theta, data, hidden, k)
            m = 0.9 * m + 0.1 * g
            v = 0.999 * v + 0.001 * g * g
            theta = theta - lr * (m / (1 - 0.9**t)) / (np.sqrt(v / (1 - 0.999**t)) + 1e-8)
        results.append(test_metrics(theta, data, hidden)[name])
        thetas.append(immutable(theta))
    return tuple(results), tuple(thetas)


def single_task_baselines(*, n: int, n_test: int, hidden: int, data_seed: int, steps: int, lr: float) -> tuple[dict[str, float], tuple[np.ndarray, ...]]:
    """Each task's test metric after training on it alone, and the three trained vectors (cached per process).

    The recipe: the same network from ``numpy_init(0, hidden)``, full-batch Adam (lr ``lr``,
    betas 0.9 and 0.999, eps 1e-8) for ``steps`` steps on that task's training loss only (the
    trunk and its own head move; the other heads get zero gradient and stay put), in numpy.
    """
    values, thetas = _baselines(int(n), int(n_test), int(hidden), int(data_seed), int(steps), float(lr))
    return {name: value for (name, _), value in zip(TEST_METRICS, values)}, thetas


class MTLDigits:
    """Data, layout, seeded init, the three task losses and numpy metrics, for torch and jax."""

    n_tasks = len(TASKS)

    def __init__(self, *, backend: Any, n: int, n_test: int, hidden: int, data_seed: int,
                 baseline_steps: int, baseline_lr: float) -> None:
        if int(hidden) < 1:
            raise ValueError(f"hidden must be >= 1; got {hidden}")
        self.backend = backend
        self.hidden, self.data_seed = int(hidden), int(data_seed)
        self.data = load_data(n=n, n_test=n_test, data_seed=data_seed)
        self.baseline_options = {"n": int(n), "n_test": int(n_test), "hidden": self.hidden,
                                 "data_seed": self.data_seed, "steps": int(baseline_steps), "lr": float(baseline_lr)}
        self.layout = make_layout(self.hidden)
        sizes = [int(np.prod(shape)) for _, shape in self.layout]
        self.dim = sum(sizes)
        self.shared_dimension = sum(sizes[:4])
        self.f_star: float | None = None  # non-convex: no reference optimum
        # Copies: torch.as_tensor would alias the cached read-only arrays.
        self.X = backend.asarray(np.array(self.data.X))
        self.Y_digit = backend.asarray(np.eye(10)[self.data.digit])
        self.Y_parity = backend.asarray(np.eye(2)[self.data.parity])
        self.C = backend.asarray(np.array(self.data.centroid))

    def init_params(self, seed: int) -> Any:
        """Weights ``N(0, 1/fan_in)``, zero biases, block by block from ``default_rng(seed)``."""
        return self.backend.asarray(numpy_init(seed, self.hidden))

    def task_losses(self, params: Any) -> Any:
        """``[cross-entropy(digit), cross-entropy(parity), MSE(centroid)]`` on the training images, shape (3,)."""
        xp = namespace(params)
        blocks = unflatten(params, self.layout)
        W1, b1, W2, b2 = blocks[:4]
        h = xp.tanh(xp.tanh(self.X @ W1.T + b1) @ W2.T + b2)
        z = [h @ blocks[4 + 2 * k].T + blocks[5 + 2 * k] for k in range(len(TASKS))]
        return xp.stack([cross_entropy(z[0], self.Y_digit), cross_entropy(z[1], self.Y_parity),
                         xp.mean((z[2] - self.C) ** 2)])

    def loss(self, params: Any) -> Any:
        """The sum of the three training losses."""
        return self.task_losses(params).sum()

    def evaluate(self, params: Any) -> dict[str, float]:
        """Training losses and their sum, test metrics and Delta-m% against the single-task baselines, in float64 numpy."""
        theta = to_float64(self.backend, params)
        losses = numpy_task_losses(theta, self.data, self.hidden)
        metrics = test_metrics(theta, self.data, self.hidden)
        baselines, _ = single_task_baselines(**self.baseline_options)
        return {
            "objective": float(losses.sum()),
            **{f"train_loss_{task}": float(value) for task, value in zip(TASKS, losses)},
            **metrics,
            "delta_m": delta_m(metrics, baselines),
        }
