"""cbo: finds Rastrigin's global minimum in d = 20 from N(3, I) where gradient descent does not."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tasks"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from _content import load_entry, load_method  # noqa: E402
from _runs import run_single  # noqa: E402

SEEDS = range(6)


def _module():
    method, path = load_method("global", "cbo")
    return sys.modules[load_entry(method.implementations["torch"].entry, path).__module__]


def test_declaration_is_the_catalogs_setting() -> None:
    method, _ = load_method("global", "cbo")
    assert method.requires == ("value",) and method.implementations["jax"].jit
    assert method.resolve_hyperparameters() == {"particles": 200, "lam": 1.0, "sigma": 8.0, "alpha": 1e5, "dt": 0.01}


def test_consensus_is_the_gibbs_mean_and_the_shift_keeps_large_alpha_finite() -> None:
    consensus = _module().consensus
    rng = np.random.default_rng(0)
    X, f = rng.standard_normal((7, 3)), rng.random(7)
    w = np.exp(-2.0 * f)
    np.testing.assert_allclose(consensus(X, f, 2.0), (w[:, None] * X).sum(0) / w.sum(), rtol=1e-14)
    # At alpha = 1e5 the unshifted weights all underflow (0 / 0); the shifted mean is the best particle.
    assert np.exp(-1e5 * f).sum() == 0.0
    np.testing.assert_allclose(consensus(X, f, 1e5), X[np.argmin(f)], rtol=0, atol=1e-12)


@pytest.mark.parametrize("framework", ["torch", "jax"])
def test_cbo_finds_the_global_basin_where_gd_stops_at_a_local_minimum(full_catalog, framework: str) -> None:
    cbo = [run_single(full_catalog, "rastrigin", "cbo", framework, params={"d": 20}, seed=s).row for s in SEEDS]
    assert sum(r["success"] for r in cbo) >= 5, [(r["status"], r["distance"]) for r in cbo]
    assert all(r["calls_value"] == 200 * r["steps"] for r in cbo)  # every particle's value is counted
    # GD at a stable step: the Hessian of Rastrigin / d is diagonal, at most (2 + 40 pi^2) / d.
    lipschitz = (2 + 40 * math.pi**2) / 20
    lr = 1 / lipschitz
    gd = [run_single(full_catalog, "rastrigin", "gd", framework, params={"d": 20}, seed=s,
                     hyperparameters={"lr": lr}).row for s in SEEDS]
    assert all(r["status"] == "completed" for r in gd), [r["error"] for r in gd]
    assert sum(r["success"] for r in gd) == 0
    # It stopped at a local minimum: far from 0, where cbo's consensus ends near it.
    assert min(r["distance"] for r in gd) > 5 * max(r["distance"] for r in cbo if r["success"])
