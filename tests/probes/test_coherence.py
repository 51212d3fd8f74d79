"""coherence: m-coherence of per-example gradients, real versus shuffled labels at initialization."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import scipy.special

from harness.backends import make_backend
from harness.catalog import Catalog
from harness.plan import make_plan
from harness.probes import ProbeContext, make_probe
from harness.probes.coherence import m_coherence
from harness.run import execute_run
from harness.spec import Budget, ProbeRef, SuiteEntry, SuiteSpec

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tasks"))
from _content import make_problem  # noqa: E402



def test_m_coherence_extremes() -> None:
    g = np.random.default_rng(0).standard_normal(7)
    assert m_coherence(np.tile(g, (50, 1))) == pytest.approx(50)  # identical gradients: m
    assert m_coherence(np.eye(30)) == pytest.approx(1)  # orthogonal, equal norms: 1
    assert m_coherence(np.stack([g, -g])) == pytest.approx(0)  # cancelling: 0


@pytest.mark.parametrize("framework", ["torch", "jax"])
def test_real_and_shuffled_labels_differ_by_an_order_of_magnitude_at_init(framework: str) -> None:
    catalog = Catalog.load()
    suite = SuiteSpec(id="coherence", frameworks=(framework,), entries=(SuiteEntry(
        tasks=("robust-logreg",), methods=("gd",), budget=Budget(steps=1),
        grid={"dataset": ("breast_cancer",), "labels": ("real", "shuffled")},
        probes=(ProbeRef(id="coherence"),)),))
    at_init = {}
    for run in make_plan(catalog, suite=suite).runs:
        result = execute_run(run, catalog)
        assert result.status == "completed", result.row["error"]
        start = result.trace[0]
        assert start["step"] == 0 and start["coherence/examples"] == 569
        at_init[run.task_params["labels"]] = start["coherence/m_coherence"]
    assert at_init["real"] > 10 * at_init["shuffled"]
    assert at_init["real"] > 30 and 0.1 < at_init["shuffled"] < 10  # random labels: about 1


def test_value_matches_numpy_per_example_gradients() -> None:
    problem = make_problem("convex", "robust-logreg", "torch", dataset="breast_cancer")
    w = np.asarray(problem.init_params(0))
    X, y = problem.X_np, problem.y_np
    u = -y * (X @ w) + 0.1 * np.linalg.norm(w)
    grads = scipy.special.expit(u)[:, None] * (-y[:, None] * X + 0.1 * w / np.linalg.norm(w)) + 2 * 5e-4 * w
    b = make_backend("torch")
    oracle = b.make_oracle(problem, capabilities=frozenset({"per_example_grads"}))
    probe = make_probe("coherence", {"examples": 200, "seed": 3})
    out = probe(ProbeContext(0, problem.init_params(0), None, None, oracle.uncounted(), problem, None, b, {}))
    subset = np.sort(np.random.default_rng(3).choice(569, 200, replace=False))
    assert out["m_coherence"] == pytest.approx(m_coherence(grads[subset]), rel=1e-12)
    assert out["alpha"] == pytest.approx(out["m_coherence"] / 200)
