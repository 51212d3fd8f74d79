"""GNS-Newton: the update rule against a numpy transcription, convergence, and its checks."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tasks"))
from _content import (  # noqa: E402
    backend,
    load_entry,
    load_method,
    load_task,
    make_method,
    make_oracle,
    make_problem,
    rel_diff,
    run_method,
)

FRAMEWORKS = ("torch", "jax")


def test_declaration() -> None:
    method, path = load_method("second_order", "gns-newton")
    assert method.family == "second_order"
    assert method.paper.startswith("Gradient-Normalized Smoothness")
    assert set(method.requires) == {"value_and_grad"}
    curvature_calls = {"exact": "hessian", "gauss-newton": "gauss_newton", "fisher": "fisher"}
    for kind, call in curvature_calls.items():
        assert method.requirements({"hessian": kind}) == {"value_and_grad", call}
    assert method.hyperparameters == {"hessian": "exact", "gamma0": 1.0, "max_retries": 10}
    assert set(method.implementations) == set(FRAMEWORKS)
    assert load_entry("gns_newton.py:CURVATURES", path).keys() == {"exact", "gauss-newton", "fisher"}


@pytest.mark.parametrize(
    "overrides, match",
    [
        ({"hessian": "bfgs"}, "'bfgs' is not one of \\['exact', 'gauss-newton', 'fisher'\\]"),  # the declared choices
        ({"gamma0": 0.0}, "gamma0"),
        ({"gamma0": math.inf}, "gamma0"),
        ({"max_retries": -1}, "max_retries"),
        ({"max_retries": 2.5}, "max_retries"),
    ],
)
@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_bad_hyperparameters_raise(framework: str, overrides: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        make_method("second_order", "gns-newton", framework, **overrides)


def _numpy_gns(problem, x: np.ndarray, gamma: float, steps: int, max_retries: int):
    """The rule of the paper, transcribed in numpy on the task's numpy objective."""
    _, path = load_task("convex", "logreg")
    f, g, H = (load_entry(f"logreg.py:{name}", path) for name in ("objective", "gradient", "hessian"))
    data = (problem.X_np, problem.y_np, problem.l2)
    iterates, accepted, rejected = [x], 0, 0
    for _ in range(steps):
        grad, curvature, value = g(x, *data), H(x, problem.X_np, problem.l2), f(x, *data)  # H does not depend on y
        for _ in range(max_retries + 1):
            lam = np.linalg.norm(grad) / gamma
            trial = x - np.linalg.solve(curvature + lam * np.eye(x.size), grad)
            if np.array_equal(trial, x):
                break
            if value - f(trial, *data) >= np.linalg.norm(g(trial, *data)) ** 2 / (8 * lam):
                x, gamma, accepted = trial, 2 * gamma, accepted + 1
                break
            gamma, rejected = gamma / 2, rejected + 1
        iterates.append(x)
    return iterates, gamma, accepted, rejected


@pytest.mark.parametrize("framework", FRAMEWORKS)
@pytest.mark.parametrize(
    "gamma0, max_retries",
    [(1.0, 10), (1e6, 3)],  # the second rejects every trial of its first steps
)
def test_follows_the_rule(framework: str, gamma0: float, max_retries: int) -> None:
    problem = make_problem("convex", "logreg", framework)
    oracle = make_oracle("convex", "logreg", problem, framework)
    method = make_method("second_order", "gns-newton", framework, gamma0=gamma0, max_retries=max_retries)
    steps = 5
    run = run_method(method, problem, oracle, framework, steps)
    x0 = backend(framework).to_numpy(problem.init_params(0))
    expected, gamma, accepted, rejected = _numpy_gns(problem, x0, gamma0, steps, max_retries)
    for a, b in zip(run["iterates"], expected, strict=True):
        assert rel_diff(a, b) < 1e-9
    state = run["state"]
    assert (state.gamma, state.accepted, state.rejected) == (gamma, accepted, rejected)
    # Per step: one Hessian; per trial: one value_and_grad (plus one at init).
    assert dict(oracle.counts) == {"hessian": steps, "value_and_grad": 1 + accepted + rejected}
    if max_retries == 3:
        assert accepted < steps  # some step kept its point after max_retries + 1 rejections


@pytest.mark.parametrize(
    "task_id, dataset",
    [("logreg", "synthetic"), ("logreg", "breast_cancer"), ("logreg", "digits"), ("softmax", "blobs")],
)
@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_reaches_target(task_id: str, dataset: str, framework: str) -> None:
    task, _ = load_task("convex", task_id)
    problem = make_problem("convex", task_id, framework, dataset=dataset)
    oracle = make_oracle("convex", task_id, problem, framework)
    method = make_method("second_order", "gns-newton", framework)
    run = run_method(method, problem, oracle, framework, task.budget.steps, stop_below=task.target.value)
    assert run["reached"] is not None, f"stalled at f - f* = {run['objective'][-1] - problem.f_star:.3g}"
    assert run["reached"] <= 15  # a Newton method: a handful of steps, not hundreds
    assert np.all(np.diff(run["objective"]) < 0)  # only accepted (decreasing) steps move the point


def test_restarted_point_is_re_evaluated() -> None:
    """Params not returned by the previous step (a restart, say) invalidate the cached gradient."""
    problem = make_problem("convex", "logreg", "torch")
    oracle = make_oracle("convex", "logreg", problem, "torch")
    method = make_method("second_order", "gns-newton", "torch")
    params = problem.init_params(0)
    state = method.init(params, oracle)
    params, state = method.step(params.clone(), state, oracle)
    assert oracle.counts["value_and_grad"] == 2 + state.rejected + state.accepted
    assert problem.evaluate(params)["objective"] < problem.evaluate(problem.init_params(0))["objective"]


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_holds_the_optimum_past_machine_precision(framework: str) -> None:
    """Run on after convergence: no NaN, no drift, and gamma does not collapse on rounding noise."""
    problem = make_problem("convex", "logreg", framework)
    oracle = make_oracle("convex", "logreg", problem, framework)
    method = make_method("second_order", "gns-newton", framework)
    steps = 40
    run = run_method(method, problem, oracle, framework, steps)
    suboptimality = run["objective"] - problem.f_star
    assert np.all(np.isfinite(suboptimality))
    assert np.all(np.abs(suboptimality[15:]) < 1e-14)
    assert run["state"].gamma > 1e-30
    # Once the trial rounds to the iterate, a step makes no value_and_grad call.
    assert oracle.counts["value_and_grad"] < 2 * steps
