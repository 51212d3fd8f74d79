"""ghost-radius: the binary radius is the exact distance to the nearest complex zero of the
partition function; no multiclass zero lies within pi / Delta_a."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pytest

from harness.probes import ProbeContext, make_probe
from harness.probes.ghost import binary_radius, spread_radius

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tasks"))
from _content import backend, make_oracle, make_problem  # noqa: E402



def partition(z: np.ndarray, a: np.ndarray, t: np.ndarray) -> np.ndarray:
    """F(t) = sum_k exp(z_k + t a_k) at complex t."""
    return np.exp(z[None, :] + np.asarray(t)[..., None] * a[None, :]).sum(-1)


def nearest_zero(z: np.ndarray, a: np.ndarray, reach: float) -> float:
    """Smallest |t| of a zero of F found by complex Newton from a grid of starts (no closed form)."""
    grid = np.linspace(-reach, reach, 41)
    t = (grid[:, None] + 1j * grid[None, :]).ravel()
    with np.errstate(all="ignore"):  # starts that wander off overflow harmlessly to nan
        for _ in range(200):
            e = np.exp(z[None, :] + t[:, None] * a[None, :])
            t = t - e.sum(1) / (e * a[None, :]).sum(1)
        scale = np.exp(z[None, :] + t[:, None] * a[None, :])
        found = np.abs(scale.sum(1)) < 1e-10 * np.abs(scale).sum(1)
    return float(np.abs(t[found]).min())


def winding_number(z: np.ndarray, a: np.ndarray, radius: float, points: int = 20_000) -> int:
    """Zeros of F inside |t| = radius, by the argument principle."""
    t = radius * np.exp(2j * np.pi * np.arange(points + 1) / points)
    phase = np.unwrap(np.angle(partition(z, a, t)))
    return round((phase[-1] - phase[0]) / (2 * np.pi))


@pytest.mark.parametrize("seed", range(6))
def test_binary_radius_is_the_distance_to_the_nearest_zero(seed: int) -> None:
    rng = np.random.default_rng(seed)
    z, a = rng.normal(0, 3, 2), rng.normal(0, 2, 2)
    closed = binary_radius(z[None, :], a[None, :])
    assert nearest_zero(z, a, reach=3 * closed) == pytest.approx(closed, rel=1e-9)
    assert closed >= spread_radius(a[None, :]) * (1 - 1e-15)  # the bound pi / Delta_a holds
    # The closed form: sqrt(delta^2 + pi^2) / |Delta|.
    assert closed == pytest.approx(math.hypot(z[1] - z[0], math.pi) / abs(a[1] - a[0]), rel=1e-14)


@pytest.mark.parametrize("seed", range(8))
def test_no_multiclass_zero_inside_pi_over_delta(seed: int) -> None:
    rng = np.random.default_rng(100 + seed)
    classes = int(rng.integers(3, 9))
    z, a = rng.normal(0, 2, classes), rng.normal(0, 1.5, classes)
    rho = spread_radius(a[None, :])
    assert winding_number(z, a, rho * (1 - 1e-9)) == 0
    # Inside the disc every term of the centred sum has positive real part: |F| stays away from 0.
    r = rho * np.sqrt(np.random.default_rng(seed).uniform(0, 1, 4000)) * (1 - 1e-9)
    t = r * np.exp(2j * np.pi * np.random.default_rng(seed + 1).uniform(0, 1, 4000))
    assert np.min(np.abs(partition(z, a, t))) > 0
    # The bound is not vacuous: zeros do exist further out.
    nearest = nearest_zero(z, a, reach=6 * rho)
    assert rho <= nearest < 6 * rho
    assert winding_number(z, a, nearest * 1.001) >= 1


@pytest.mark.parametrize("framework", ["torch", "jax"])
def test_probe_on_binary_task_matches_numpy(framework: str) -> None:
    problem = make_problem("convex", "robust-logreg", framework, n=40)
    oracle = make_oracle("convex", "robust-logreg", problem, framework, seal=False)
    previous = problem.init_params(0)
    params = previous - 2.0 * oracle.grad(previous)
    context = ProbeContext(step=1, params=params, previous_params=previous, state=None, oracle=oracle.uncounted(),
                           problem=problem, method=None, backend=backend(framework), hyperparameters={"lr": 2.0})
    out = make_probe("ghost-radius", {})(context)
    w0 = np.asarray(backend(framework).to_numpy(previous))
    step = np.asarray(backend(framework).to_numpy(params)) - w0
    u = step / np.linalg.norm(step)
    # Logits [0, y x.w - eps ||w||]: margin and its derivative along u, in numpy.
    margin = problem.y_np * (problem.X_np @ w0) - problem.eps * np.linalg.norm(w0)
    slope = problem.y_np * (problem.X_np @ u) - problem.eps * (w0 @ u) / np.linalg.norm(w0)
    assert out["rho_a"] == pytest.approx(math.pi / np.abs(slope).max(), rel=1e-12)
    assert out["r"] == pytest.approx(np.linalg.norm(step) / out["rho_a"], rel=1e-12)
    nearest = min(nearest_zero(np.array([0.0, m]), np.array([0.0, s]), reach=3 * math.hypot(m, math.pi) / abs(s))
                  for m, s in zip(margin, slope))
    assert out["rho_exact"] == pytest.approx(nearest, rel=1e-9)
    assert out["rho_exact"] >= out["rho_a"]


@pytest.mark.parametrize("framework", ["torch", "jax"])
def test_no_step_taken_no_value_at_step_0(framework: str) -> None:
    """At step 0 no step was taken: the probe reports nothing (not the proposal -lr g, r = 3.85 on
    the ghost-spike softmax at lr 3), so the trace's columns are null there rather than NaN."""
    problem = make_problem("convex", "softmax", framework)
    oracle = make_oracle("convex", "softmax", problem, framework, seal=False)
    params = problem.init_params(0)
    context = ProbeContext(step=0, params=params, previous_params=None, state=None, oracle=oracle.uncounted(),
                           problem=problem, method=None, backend=backend(framework), hyperparameters={"lr": 3.0})
    assert make_probe("ghost-radius", {})(context) == {}
    # The proposal is still there on request, and it is the step nobody took: r = 3.85 > 1.
    proposed = make_probe("ghost-radius", {"direction": "grad"})(context)
    assert proposed["r"] == pytest.approx(3.85, abs=0.01)
    assert oracle.counts == {}
