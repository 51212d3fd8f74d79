"""The oracle's finite-sum capabilities: seeded minibatches, per-example gradients, logit JVPs,
Gauss-Newton and Fisher matrices, each against numpy closed forms on robust-logreg."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import scipy.special

from harness.catalog import Catalog
from harness.plan import make_plan
from harness.run import execute_run
from harness.spec import Budget, SuiteEntry, SuiteSpec

sys.path.insert(0, str(Path(__file__).resolve().parent / "tasks"))
from _content import backend, load_task, make_problem  # noqa: E402


FRAMEWORKS = ("torch", "jax")
# The task's declared defaults (the YAML is their one source: the task module has none).
EPS, L2 = (load_task("convex", "robust-logreg")[0].parameters[name].default for name in ("eps", "l2"))


def oracle_for(problem, framework: str, *, seed: int = 0, task: str = "robust-logreg"):
    spec, _ = load_task("convex", task)
    b = backend(framework)
    b.seed(seed)
    return b.make_oracle(problem, capabilities=frozenset(spec.provides))


def numpy_terms(problem, w: np.ndarray):
    """Per-example quantities of f_i = log(1 + exp(u_i)) + l2 ||w||^2, u_i = -y_i x_i.w + eps ||w||."""
    X, y = problem.X_np, problem.y_np
    norm = np.linalg.norm(w)
    u = -y * (X @ w) + EPS * norm
    du = -y[:, None] * X + EPS * w / norm  # (n, d): the gradient of u_i
    s = scipy.special.expit(u)
    return u, du, s, s[:, None] * du + 2 * L2 * w


def to_np(framework: str, value) -> np.ndarray:
    return np.asarray(backend(framework).to_numpy(value), dtype=np.float64)


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_full_batch_oracle_is_exact_and_counts_grad(framework: str) -> None:
    problem = make_problem("convex", "robust-logreg", framework)
    oracle = oracle_for(problem, framework)
    w = problem.init_params(0)
    _, _, _, per_example = numpy_terms(problem, to_np(framework, w))
    assert np.abs(to_np(framework, oracle.grad(w)) - per_example.mean(0)).max() < 1e-14
    assert not oracle.stochastic and oracle.counts == {"grad": 1}


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_minibatch_gradients_follow_the_seeded_sampler(framework: str) -> None:
    problem = make_problem("convex", "robust-logreg", framework, batch_size=64)
    w = problem.init_params(0)
    _, _, _, per_example = numpy_terms(problem, to_np(framework, w))
    oracle = oracle_for(problem, framework, seed=3)
    assert oracle.stochastic
    batches = []
    for _ in range(3):
        g = to_np(framework, oracle.grad(w))
        idx = oracle.last_indices
        assert len(idx) == 64 == len(set(idx.tolist()))
        assert np.abs(g - per_example[idx].mean(0)).max() < 1e-14  # the gradient of that very batch
        batches.append(idx)
    _, g = oracle.value_and_grad(w)
    assert np.abs(to_np(framework, g) - per_example[oracle.last_indices].mean(0)).max() < 1e-14
    assert oracle.counts == {"stochastic_grad": 4}
    assert oracle.value(w) == pytest.approx(problem.evaluate(w)["objective"], abs=1e-14)  # values stay exact
    # The same run seed replays the same batches; another seed draws others.
    again = oracle_for(problem, framework, seed=3)
    other = oracle_for(problem, framework, seed=4)
    for idx in batches:
        again.grad(w)
        other.grad(w)
        assert np.array_equal(again.last_indices, idx)
        assert not np.array_equal(other.last_indices, idx)


def test_torch_and_jax_draw_the_same_batches() -> None:
    runs = {}
    for framework in FRAMEWORKS:
        problem = make_problem("convex", "robust-logreg", framework, batch_size=32)
        oracle = oracle_for(problem, framework, seed=7)
        w = problem.init_params(1)
        runs[framework] = [to_np(framework, oracle.stochastic_grad(w)) for _ in range(5)]
    assert max(np.abs(a - b).max() for a, b in zip(runs["torch"], runs["jax"])) < 1e-13


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_minibatch_gradient_is_unbiased(framework: str) -> None:
    problem = make_problem("convex", "robust-logreg", framework, batch_size=100)
    oracle = oracle_for(problem, framework, seed=0)
    w = problem.init_params(0)
    full = to_np(framework, oracle.uncounted().grad(w))
    draws = np.stack([to_np(framework, oracle.grad(w)) for _ in range(400)])
    # Standard error of the mean of 400 draws of a 100-of-1000 batch: about spread / 200.
    spread = draws.std(axis=0).max()
    assert np.abs(draws.mean(0) - full).max() < 5 * spread / np.sqrt(len(draws))
    assert spread > 1e-3  # the draws really are noisy


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_uncounted_view_is_exact_and_leaves_the_sampler_alone(framework: str) -> None:
    problem = make_problem("convex", "robust-logreg", framework, batch_size=50)
    w = problem.init_params(0)
    plain = oracle_for(problem, framework, seed=5)
    probed = oracle_for(problem, framework, seed=5)
    _, _, _, per_example = numpy_terms(problem, to_np(framework, w))
    for _ in range(3):
        plain.grad(w)
        view = probed.uncounted()
        assert np.abs(to_np(framework, view.grad(w)) - per_example.mean(0)).max() < 1e-14
        view.per_example_grads(w)
        probed.grad(w)
        assert np.array_equal(plain.last_indices, probed.last_indices)
    assert probed.counts == {"stochastic_grad": 3}


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_per_example_grads_jvp_gauss_newton_and_fisher_match_numpy(framework: str) -> None:
    problem = make_problem("convex", "robust-logreg", framework)
    oracle = oracle_for(problem, framework)
    w_t = problem.init_params(2)
    w = to_np(framework, w_t)
    u, du, s, per_example = numpy_terms(problem, w)
    subset = np.array([3, 17, 999, 500])
    assert np.abs(to_np(framework, oracle.per_example_grads(w_t, subset)) - per_example[subset]).max() < 1e-14
    assert np.abs(to_np(framework, oracle.per_example_grads(w_t)) - per_example).max() < 1e-14
    # Logits [0, -u_i]; their derivative along v is [0, -du_i.v].
    v = np.random.default_rng(0).standard_normal(w.size)
    logits, slopes = oracle.jvp_logits(w_t, backend(framework).asarray(v))
    assert np.abs(to_np(framework, logits) - np.stack([0 * u, -u], 1)).max() < 1e-13
    assert np.abs(to_np(framework, slopes) - np.stack([0 * u, -du @ v], 1)).max() < 1e-13
    n, d = du.shape
    gauss_newton = (du.T * (s * (1 - s))) @ du / n + 2 * L2 * np.eye(d)
    assert np.abs(to_np(framework, oracle.gauss_newton(w_t)) - gauss_newton).max() < 1e-13
    data_grads = s[:, None] * du
    fisher = data_grads.T @ data_grads / n + 2 * L2 * np.eye(d)
    assert np.abs(to_np(framework, oracle.fisher(w_t)) - fisher).max() < 1e-13
    assert oracle.counts == {"per_example_grads": 2, "jvp_logits": 1, "gauss_newton": 1, "fisher": 1}


def test_full_batch_and_minibatch_runs_from_one_suite() -> None:
    catalog = Catalog.load()
    suite = SuiteSpec(
        id="stochastic",
        seeds=(0,),
        entries=(SuiteEntry(tasks=("robust-logreg",), methods=("gd",), grid={"batch_size": (0, 100)},
                            hyperparameters={"gd": {"lr": 1.0}}, budget=Budget(steps=40)),),
    )
    plan = make_plan(catalog, suite=suite)
    rows = {run.task_params["batch_size"]: execute_run(run, catalog).row for run in plan.runs}
    assert rows[0]["calls_grad"] == 40 and "calls_stochastic_grad" not in rows[0]
    assert rows[100]["calls_stochastic_grad"] == 40 and "calls_grad" not in rows[100]
    assert rows[0]["status"] == rows[100]["status"] == "completed"
    # Both make progress from the same start; the minibatch run is noisier, not broken.
    start = make_problem("convex", "robust-logreg", "torch").evaluate(make_problem("convex", "robust-logreg", "torch").init_params(0))
    assert rows[100]["objective"] < start["objective"] - 0.1 and rows[0]["objective"] < start["objective"] - 0.1
