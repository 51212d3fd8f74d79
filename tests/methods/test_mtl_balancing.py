"""gradnorm, sam-gs and gcond: their rules on hand-built task gradients, and 30-step runs through the harness."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tasks"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from _content import backend, load_entry, load_method  # noqa: E402
from _runs import run_single  # noqa: E402

from harness.spec import Budget  # noqa: E402

METHODS = ("gradnorm", "sam-gs", "gcond")


def _module():
    method, path = load_method("multitask", "gradnorm")
    return sys.modules[load_entry(method.implementations["torch"].entry, path).__module__]


def _arrays(framework: str, *values: np.ndarray):
    return [backend(framework).asarray(np.asarray(v, dtype=np.float64)) for v in values]


def _np(framework: str, value) -> np.ndarray:
    return np.asarray(backend(framework).to_numpy(value))


class FixedOracle:
    """Answers task_grads with the next of a fixed sequence; the multi-task facts of a sealed oracle."""

    def __init__(self, framework: str, answers, shared: int) -> None:
        self.answers = [tuple(_arrays(framework, *a)) for a in answers]
        self.n_tasks, self.dimension = len(answers[0][0]), len(answers[0][1][0])
        self.shared_dimension, self.layout, self.calls = shared, None, 0

    def task_grads(self, params):
        self.calls += 1
        return self.answers[min(self.calls - 1, len(self.answers) - 1)]


def test_declarations() -> None:
    for method_id in METHODS:
        method, _ = load_method("multitask", method_id)
        assert method.requires == ("task_grads",)
        assert method.implementations["jax"].jit


def test_adam_matches_torch_optim_adam() -> None:
    import torch

    adam_update = _module().adam_update
    rng = np.random.default_rng(0)
    directions = rng.standard_normal((20, 5)) * np.array([1e-3, 1.0, 10.0, 0.0, 1e-6])
    p = torch.tensor(rng.standard_normal(5), requires_grad=True)
    reference = torch.optim.Adam([p], lr=0.01, betas=(0.8, 0.99), eps=1e-7)
    x, m, v = p.detach().clone(), torch.zeros(5, dtype=torch.float64), torch.zeros(5, dtype=torch.float64)
    for t, d in enumerate(directions, start=1):
        p.grad = torch.tensor(d)
        reference.step()
        x, m, v = adam_update(x, torch.tensor(d), m, v, torch.tensor(float(t), dtype=torch.float64), 0.01, 0.8, 0.99, 1e-7)
        assert torch.abs(x - p.detach()).max() < 1e-15


def _samgs_numpy(G: np.ndarray, M: np.ndarray, threshold: float) -> np.ndarray:
    n = np.linalg.norm(G, axis=1)
    T = len(n)
    similar = all(2 * n[i] * n[j] / (n[i] ** 2 + n[j] ** 2) >= threshold for i in range(T) for j in range(T) if i != j)
    if not similar:
        return sum(G[i] / n[i] for i in range(T)) * n.mean()
    nm = np.linalg.norm(M, axis=1)
    return sum(M[i] / nm[i] for i in range(T)) * nm.mean()


@pytest.mark.parametrize("framework", ["torch", "jax"])
def test_samgs_both_branches(framework: str) -> None:
    direction = _module().samgs_direction
    rng = np.random.default_rng(2)
    M = rng.standard_normal((3, 4))
    # Norms 1, 3, 1.05: S_12 = 0.6 < 0.9, gradient equalization.
    base = rng.standard_normal((3, 4))
    base /= np.linalg.norm(base, axis=1, keepdims=True)
    for scales, conflict in (((1.0, 3.0, 1.05), True), ((1.0, 1.1, 1.05), False)):
        G = base * np.array(scales)[:, None]
        got, branch = direction(*_arrays(framework, G, M), 0.9)
        assert bool(_np(framework, branch)) is conflict
        assert np.abs(_np(framework, got) - _samgs_numpy(G, M, 0.9)).max() < 1e-14
    G = base * np.array([1.0, 3.0, 1.05])[:, None]
    equalized = _samgs_numpy(G, M, 0.9)
    # The equalized direction gives every task the same weight and the mean norm.
    assert np.allclose(equalized, base.sum(0) * np.mean([1.0, 3.0, 1.05]))


def _pair(cosine: float, n1: float, n2: float) -> np.ndarray:
    e1, e2 = np.eye(3)[0], np.eye(3)[1]
    return np.stack([n1 * e1, n2 * (cosine * e1 + np.sqrt(1 - cosine**2) * e2)])


@pytest.mark.parametrize("framework", ["torch", "jax"])
def test_gcond_bands(framework: str) -> None:
    resolve = _module().gcond_resolve

    def proj(a, b):  # a on the normal plane of b
        return a - (a @ b) / (b @ b) * b

    for cosine in (-0.9, -0.6, -0.3, 0.4):
        A = _pair(cosine, 2.0, 1.0)  # row 0 wins (larger norm)
        w, l = A
        expected = {-0.9: w, -0.6: w + proj(l, w), -0.3: proj(w, l) + proj(l, w), 0.4: w + l}[cosine]
        got = _np(framework, resolve(*_arrays(framework, A)))
        assert np.abs(got - expected).max() < 1e-14, cosine
        swapped = _np(framework, resolve(*_arrays(framework, A[::-1].copy())))
        assert np.abs(swapped - expected).max() < 1e-14, cosine
    # Three tasks: only the least-cosine pair (rows 0 and 2, cosine -0.9) is resolved; row 1 stays.
    A = np.array([[2.0, 0.0, 0.0], [0.0, 0.0, 1.0], [-0.9, np.sqrt(1 - 0.81), 0.0]])
    assert np.abs(_np(framework, resolve(*_arrays(framework, A))) - (A[0] + A[1])).max() < 1e-14


@pytest.mark.parametrize("framework", ["torch", "jax"])
def test_gradnorm_gives_the_slower_task_more_weight(framework: str) -> None:
    module = _module()
    method = module.GradNorm(lr=1e-3, b1=0.9, b2=0.999, eps=1e-8, alpha=1.5, weight_lr=0.05)
    G = np.array([[1.0, 0.0, 0.5], [0.0, 1.0, -0.5]])  # equal norms on the shared first two coordinates
    # Task 0 makes no progress (L/L0 = 1), task 1 halves its loss.
    oracle = FixedOracle(framework, [([1.0, 1.0], G), ([1.0, 0.5], G)], shared=2)
    params = backend(framework).asarray(np.zeros(3))
    state = method.init(params, oracle)
    params, state = method.step(params, state, oracle)  # records L(0); rates equal, weights stay at 1
    assert np.allclose(_np(framework, state["weights"]), [1.0, 1.0])
    params, state = method.step(params, state, oracle)
    w = _np(framework, state["weights"])
    # Hand-computed: r = (1, 0.5) / 0.75, target = 1 * r^1.5; dL/dw = sign(1 - target) * 1 = (-1, +1).
    assert np.allclose(w, [1.05, 0.95], atol=1e-14) and w.sum() == pytest.approx(2.0)


@pytest.fixture(scope="module")
def runs(full_catalog):
    return {(m, fw): run_single(full_catalog, "mtl-digits", m, fw, budget=Budget(steps=30, seconds=120))
            for m in METHODS for fw in ("torch", "jax")}


@pytest.mark.parametrize("method_id", METHODS)
def test_runs_decrease_the_losses_and_frameworks_agree(runs, method_id: str) -> None:
    traces = {}
    for fw in ("torch", "jax"):
        result = runs[method_id, fw]
        assert result.row["status"] == "completed", result.row.get("error")
        assert result.row["steps"] == 30
        first, last = result.trace[0], result.trace[-1]
        for key in ("objective", "train_loss_digit", "train_loss_parity", "train_loss_centroid", "delta_m"):
            assert last[key] < first[key], (fw, key)
        traces[fw] = np.array([[p[k] for k in ("objective", "delta_m")] for p in result.trace])
    # Same start, same rule, float64 in both: the traces agree to rounding.
    assert traces["torch"].shape == traces["jax"].shape
    assert np.abs(traces["torch"] - traces["jax"]).max() <= 1e-8 * np.abs(traces["torch"]).max()


@pytest.mark.parametrize("framework", ["torch", "jax"])
def test_gradnorm_fails_loudly_when_a_loss_turns_negative(full_catalog, framework: str) -> None:
    """mtl-toy's losses go negative (its bowls sit at -20): GradNorm's rates L_i / L_i(0) would be NaN powers."""
    result = run_single(full_catalog, "mtl-toy", "gradnorm", framework, params={"init": 1},
                        budget=Budget(steps=4000, seconds=120))
    assert result.status == "error"  # not "diverged": the method says why it cannot go on
    assert "GradNorm needs positive task losses" in result.row["error"]
    negative = [p for p in result.trace if min(p["loss_1"], p["loss_2"]) <= 0]
    assert not negative  # it stopped at the first step that saw a loss <= 0, before an evaluation recorded one
    assert result.trace[-1]["step"] < 4000
