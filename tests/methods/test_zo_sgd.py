"""zo-sgd: converges on logreg from function values alone; the run records its queries."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from harness.catalog import Catalog
from harness.plan import make_plan
from harness.run import execute_run
from harness.spec import SuiteEntry, SuiteSpec

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tasks"))
from _content import backend, load_method, make_method, make_problem  # noqa: E402



def test_declaration() -> None:
    method, _ = load_method("zeroth_order", "zo-sgd")
    assert method.requires == ("value",) and "Zeroth" in method.name


@pytest.mark.parametrize("framework", ["torch", "jax"])
def test_estimate_is_the_central_difference_formula(framework: str) -> None:
    problem = make_problem("convex", "logreg", framework)
    backend(framework).seed(0)  # the shared backend's run seed, which the oracle (and its seed fact) takes
    oracle = backend(framework).make_oracle(problem, capabilities=frozenset({"value"}))
    method = make_method("zeroth_order", "zo-sgd", framework, lr=0.5, directions=3, mu=1e-4)
    params = problem.init_params(0)
    state = method.init(params, oracle)
    directions = np.random.default_rng([0, 0x2E05]).standard_normal((3, problem.dim))  # the run-seed stream
    new, _ = method.step(params, state, oracle)
    x = np.asarray(backend(framework).to_numpy(params))
    f = lambda v: problem.evaluate(backend(framework).asarray(v))["objective"]  # noqa: E731
    estimate = sum((f(x + 1e-4 * u) - f(x - 1e-4 * u)) / 2e-4 * u for u in directions) / 3
    assert np.abs(np.asarray(backend(framework).to_numpy(new)) - (x - 0.5 * estimate)).max() < 1e-10
    assert oracle.counts == {"value": 6}


def test_converges_on_logreg_with_its_queries_recorded() -> None:
    catalog = Catalog.load()
    suite = SuiteSpec(id="zo", seeds=(0,), frameworks=("torch", "jax"),
                      entries=(SuiteEntry(tasks=("logreg",), methods=("zo-sgd",)),))
    q = catalog.methods["zo-sgd"].spec.hyperparameters["directions"]
    results = [execute_run(run, catalog) for run in make_plan(catalog, suite=suite).runs]
    for result in results:
        row = result.row
        assert row["status"] == "reached_target", row["error"]
        assert row["suboptimality"] < 1e-8
        # Two function values per direction per step, nothing else: no gradient was ever asked.
        assert row["calls_value"] == 2 * q * row["steps"] == row["oracle_calls"]
        assert [p.get("calls_value", 0) for p in result.trace] == [2 * q * p["step"] for p in result.trace]
    # The same run seed draws the same directions in both frameworks.
    assert results[0].row["steps"] == results[1].row["steps"]
