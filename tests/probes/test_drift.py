"""drift: implicit gradient regularization against an ODE solver; the Noether increment of
scale-invariant weights under gradient descent."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.integrate
import torch

from harness.backends import make_backend
from harness.catalog import Catalog
from harness.plan import make_plan
from harness.probes import ProbeContext, make_probe
from harness.run import execute_run
from harness.spec import Budget, ProbeRef, SuiteEntry, SuiteSpec



class ScaleInvariant:
    """f(u, v) = 1/2 ||A u / ||u|| - b||^2 + 1/2 ||v - c||^2: u is scale-invariant, v is not."""

    def __init__(self, *, backend) -> None:
        rng = np.random.default_rng(0)
        self.backend = backend
        self.A = backend.asarray(rng.standard_normal((6, 5)))
        self.b = backend.asarray(rng.standard_normal(6))
        self.c = backend.asarray(rng.standard_normal(3))
        self.layout = (("u", (5,)), ("v", (3,)))

    def loss(self, x):
        u, v = x[:5], x[5:]
        r = self.A @ (u / torch.sqrt(u @ u)) - self.b
        return 0.5 * (r @ r) + 0.5 * ((v - self.c) @ (v - self.c))


def context(problem, oracle, params, previous, lr: float) -> ProbeContext:
    return ProbeContext(step=1, params=params, previous_params=previous, state=None, oracle=oracle.uncounted(),
                        problem=problem, method=None, backend=problem.backend, hyperparameters={"lr": lr})


@pytest.fixture(scope="module")
def setup():
    backend = make_backend("torch")
    problem = ScaleInvariant(backend=backend)
    oracle = backend.make_oracle(problem, capabilities=frozenset({"value", "grad", "value_and_grad", "hvp"}))
    return problem, oracle


def test_noether_increment_of_the_scale_invariant_block(setup) -> None:
    problem, oracle = setup
    lr = 0.3
    probe = make_probe("drift", {"groups": "u,v"})
    x = problem.backend.asarray(np.random.default_rng(1).standard_normal(8))
    for _ in range(5):
        previous, x = x, x - lr * oracle.grad(x)
        out = probe(context(problem, oracle, x, previous, lr))
        # g is orthogonal to u, so ||u+||^2 = ||u||^2 + lr^2 ||g_u||^2 exactly.
        assert out["norm_sq_increment.u"] == pytest.approx(out["lr2_grad_sq.u"], rel=1e-12)
        assert out["norm_sq_increment.u"] > 0
        # v is not scale-invariant: there the identity fails.
        assert abs(out["norm_sq_increment.v"] - out["lr2_grad_sq.v"]) > 1e-6
        assert out["lr2_grad_sq"] == pytest.approx(out["lr2_grad_sq.u"] + out["lr2_grad_sq.v"], rel=1e-12)


@pytest.mark.parametrize("h", [0.02, 0.01, 0.005])
def test_step_drift_is_the_distance_between_a_gd_step_and_the_gradient_flow(setup, h: float) -> None:
    problem, oracle = setup
    x0 = np.random.default_rng(2).standard_normal(8)
    grad = lambda x: np.asarray(oracle.uncounted().grad(problem.backend.asarray(x)))  # noqa: E731
    flow = scipy.integrate.solve_ivp(lambda t, x: -grad(x), (0, h), x0, rtol=1e-12, atol=1e-14, method="DOP853")
    gd_step = x0 - h * grad(x0)
    distance = np.linalg.norm(flow.y[:, -1] - gd_step)
    params = problem.backend.asarray(x0)
    out = make_probe("drift", {"lr": h})(context(problem, oracle, params, None, 0.0))
    # Leading order (h^2/2) ||H g||: agreement improves linearly with h.
    assert out["step_drift"] == pytest.approx(distance, rel=12 * h)
    value = float(oracle.uncounted().value(params))
    assert out["implicit_reg"] == pytest.approx(h / 4 * np.sum(grad(x0) ** 2), rel=1e-14)
    assert out["modified_objective"] == pytest.approx(value + out["implicit_reg"], rel=1e-14)
    assert "norm_sq_increment" not in out and "step_sq" not in out  # no step at the start: nothing of it


def test_modified_flow_tracks_gd_better_than_the_plain_flow(setup) -> None:
    """Gradient descent follows the flow of f + (h/4)||grad f||^2 to O(h^3), the plain flow to O(h^2)."""
    problem, oracle = setup
    h = 0.02
    view = oracle.uncounted()
    x0 = np.random.default_rng(3).standard_normal(8)

    def grad(x):
        return np.asarray(view.grad(problem.backend.asarray(x)))

    def modified(x):
        g = view.grad(problem.backend.asarray(x))
        return grad(x) + h / 2 * np.asarray(view.hvp(problem.backend.asarray(x), g))

    gd_step = x0 - h * grad(x0)
    plain = scipy.integrate.solve_ivp(lambda t, x: -grad(x), (0, h), x0, rtol=1e-12, atol=1e-14).y[:, -1]
    drifted = scipy.integrate.solve_ivp(lambda t, x: -modified(x), (0, h), x0, rtol=1e-12, atol=1e-14).y[:, -1]
    assert np.linalg.norm(drifted - gd_step) < 0.1 * np.linalg.norm(plain - gd_step)


GD_ONLY = ("lr2_grad_sq", "lr2_grad_sq.W", "lr2_grad_sq.v", "h", "implicit_reg", "modified_objective", "step_drift")


def run_on_normalized_layer(method: str, framework: str, lr: float, steps: int = 200):
    catalog = Catalog.load()
    suite = SuiteSpec(id="drift", frameworks=(framework,), entries=(SuiteEntry(
        tasks=("normalized-layer",), methods=(method,), hyperparameters={method: {"lr": lr}},
        budget=Budget(steps=steps, seconds=120), probes=(ProbeRef(id="drift", options={"groups": "W,v"}),)),))
    (run,) = make_plan(catalog, suite=suite).runs
    result = execute_run(run, catalog)
    assert result.status in ("completed", "reached_target"), result.row["error"]
    return result


@pytest.mark.parametrize("framework", ["torch", "jax"])
def test_noether_identity_of_the_scale_invariant_layer_under_gd(framework: str) -> None:
    """A real gd run on normalized-layer: at every evaluation point after the start the measured
    step is a gradient step of the method's lr, and ||W_t||^2 - ||W_(t-1)||^2 = lr^2 ||g_W||^2
    to 1e-10 relative; the readout v (not scale-invariant) breaks it."""
    lr = 0.5
    result = run_on_normalized_layer("gd", framework, lr)
    first, *points = result.trace
    assert first["step"] == 0 and not any(name.startswith("drift/") for name in first)  # no step, no value
    assert len(points) >= 20
    for p in points:
        assert p["drift/h"] == pytest.approx(lr, rel=1e-12)
        increment, noether = p["drift/norm_sq_increment.W"], p["drift/lr2_grad_sq.W"]
        assert increment > 0 and abs(increment - noether) <= 1e-10 * noether, (p["step"], increment, noether)
        assert p["drift/step_sq.W"] == pytest.approx(noether, rel=1e-10)
        assert abs(p["drift/norm_sq_increment.v"] - p["drift/lr2_grad_sq.v"]) > 1e-3 * p["drift/lr2_grad_sq.v"]
        assert p["drift/implicit_reg"] > 0 and p["drift/step_drift"] > 0
    # The W norm grows monotonically (the effective step on the sphere shrinks).
    norms = [p["weight_norm_sq"] for p in result.trace]
    assert all(b > a for a, b in zip(norms, norms[1:]))


@pytest.mark.parametrize("framework", ["torch", "jax"])
def test_adam_steps_report_no_gradient_descent_identity(framework: str) -> None:
    """Adam's steps are not gradient steps: no h, no lr^2 ||g||^2, no implicit regularizer; the
    step's own norm increment and ||step||^2 are reported, and they visibly disagree (the step
    is not orthogonal to W)."""
    result = run_on_normalized_layer("adam", framework, 0.01, steps=100)
    columns = {name for p in result.trace for name in p if name.startswith("drift/")}
    assert not columns & {f"drift/{name}" for name in GD_ONLY}
    points = result.trace[1:]
    assert points and all("drift/norm_sq_increment.W" in p and "drift/step_sq.W" in p for p in points)
    gaps = [abs(p["drift/norm_sq_increment.W"] - p["drift/step_sq.W"]) / p["drift/step_sq.W"] for p in points]
    assert max(gaps) > 0.1
