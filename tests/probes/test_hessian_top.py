"""hessian-top: Lanczos on Hessian-vector products against a dense eigendecomposition."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from harness.catalog import Catalog
from harness.plan import make_plan
from harness.probes import ProbeContext, make_probe
from harness.probes.hessian import lanczos
from harness.run import execute_run
from harness.spec import Budget, ProbeRef, SuiteEntry, SuiteSpec

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tasks"))
from _content import backend, make_oracle, make_problem  # noqa: E402



def context(problem, oracle, params, framework: str, **hyperparameters) -> ProbeContext:
    return ProbeContext(step=0, params=params, previous_params=None, state=None, oracle=oracle.uncounted(),
                        problem=problem, method=None, backend=backend(framework), hyperparameters=hyperparameters)


def test_lanczos_on_a_known_spectrum() -> None:
    rng = np.random.default_rng(0)
    Q, _ = np.linalg.qr(rng.standard_normal((40, 40)))
    eigenvalues = np.concatenate([[10.0, 7.0, 6.5], rng.uniform(-1, 1, 37)])
    H = (Q * eigenvalues) @ Q.T
    assert np.abs(lanczos(lambda v: H @ v, 40, iterations=40) - np.sort(eigenvalues)).max() < 1e-12
    assert lanczos(lambda v: H @ v, 40, iterations=25)[-1] == pytest.approx(10.0, abs=1e-10)


@pytest.mark.parametrize("framework", ["torch", "jax"])
@pytest.mark.parametrize("task", ["robust-logreg", "teacher-student"])
def test_top_eigenvalues_match_dense_eigh(framework: str, task: str) -> None:
    family = "convex" if task == "robust-logreg" else "dynamics"
    small = {} if task == "robust-logreg" else {"d": 6, "teacher_hidden": 2, "student_hidden": 4, "n": 100}
    problem = make_problem(family, task, framework, **small)
    oracle = make_oracle(family, task, problem, framework, seal=False)
    params = problem.init_params(1)
    dense = np.linalg.eigvalsh(np.asarray(backend(framework).to_numpy(
        torch.autograd.functional.hessian(problem.loss, params) if framework == "torch"
        else oracle.uncounted().hessian(params))))
    dim = dense.size
    exact = make_probe("hessian-top", {"k": 3, "iterations": dim})(context(problem, oracle, params, framework))
    for i in range(3):
        assert exact[f"lambda_{i + 1}"] == pytest.approx(dense[-1 - i], abs=1e-10 * max(1.0, abs(dense[-1])))
    # Fewer products than dimensions still pin the top eigenvalue to 1e-6.
    short = make_probe("hessian-top", {"k": 1, "iterations": max(3, dim * 3 // 4)})(
        context(problem, oracle, params, framework, lr=0.5))
    assert abs(short["lambda_1"] - dense[-1]) < 1e-6 * max(1.0, abs(dense[-1]))
    assert short["edge"] == pytest.approx(short["lambda_1"] * 0.5 / 2)
    assert oracle.counts == {}  # probes use the uncounted view


def test_probe_columns_in_the_trace_of_a_run() -> None:
    catalog = Catalog.load()
    suite = SuiteSpec(id="probe", entries=(SuiteEntry(
        tasks=("robust-logreg",), methods=("gd",), budget=Budget(steps=10),
        probes=(ProbeRef(id="hessian-top", options={"k": 2, "iterations": 20}),)),))
    (run,) = make_plan(catalog, suite=suite).runs
    result = execute_run(run, catalog)
    assert result.status == "completed", result.row["error"]
    lr = catalog.methods["gd"].spec.hyperparameters["lr"]
    for point in result.trace:
        assert point["hessian-top/lambda_1"] >= point["hessian-top/lambda_2"] > 0
        assert point["hessian-top/edge"] == pytest.approx(point["hessian-top/lambda_1"] * lr / 2)
    assert "calls_hvp" not in result.row  # probing is free
