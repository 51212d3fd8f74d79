"""robust-logreg: the closed-form adversarial loss, its reference optimum, both frameworks."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import scipy.optimize

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _content import REPO, load_entry, load_task, make_method, make_oracle, make_problem, run_method  # noqa: E402


FRAMEWORKS = ("torch", "jax")


def default(name: str):
    """The YAML default of a task parameter (the task module has none of its own)."""
    return load_task("convex", "robust-logreg")[0].parameters[name].default


def numpy_args(problem) -> tuple:
    """``(X, y, eps, l2)`` of the module's numpy objective, gradient and Hessian at the declared defaults."""
    return problem.X_np, problem.y_np, default("eps"), default("l2")


def test_declaration() -> None:
    task, _ = load_task("convex", "robust-logreg")
    assert task.id == "robust-logreg" and task.paper.startswith("Federated Adversarial Learning")
    assert set(task.implementations) == {"torch", "jax"}
    assert {"stochastic_grad", "per_example_grads", "jvp_logits", "gauss_newton", "fisher"} <= set(task.provides)


def test_inner_max_is_the_worst_perturbation() -> None:
    """log(1 + exp(-y x.w + eps ||w||)) is the max over the eps-ball, attained at -eps y w/||w||."""
    problem = make_problem("convex", "robust-logreg", "torch")
    rng = np.random.default_rng(0)
    w = rng.standard_normal(problem.dim)
    x, y = problem.X_np[0], problem.y_np[0]
    eps = default("eps")
    closed = np.logaddexp(0.0, -y * x @ w + eps * np.linalg.norm(w))
    deltas = rng.standard_normal((20_000, problem.dim))
    deltas *= eps / np.linalg.norm(deltas, axis=1, keepdims=True)
    sampled = np.logaddexp(0.0, -y * (x + deltas) @ w)
    assert sampled.max() <= closed + 1e-15
    assert np.logaddexp(0.0, -y * (x - eps * y * w / np.linalg.norm(w)) @ w) == pytest.approx(closed, rel=1e-14)


@pytest.mark.parametrize("dataset", ["synthetic", "breast_cancer"])
def test_reference_optimum_is_stationary_and_beats_scipy_bfgs(dataset: str) -> None:
    problem = make_problem("convex", "robust-logreg", "torch", dataset=dataset)
    module = sys.modules[type(problem).__module__]
    args = numpy_args(problem)
    assert np.linalg.norm(module.gradient(problem.x_star, *args)) < 1e-10
    # The closed-form gradient matches finite differences, and another solver lands on the same value.
    w = np.random.default_rng(1).standard_normal(problem.dim)
    assert scipy.optimize.check_grad(module.objective, module.gradient, w, *args) < 1e-6
    other = scipy.optimize.minimize(module.objective, np.full(problem.dim, 0.1), args=args, jac=module.gradient,
                                    method="BFGS", options={"gtol": 1e-10})
    assert problem.f_star <= other.fun + 1e-12
    assert other.fun - problem.f_star < 1e-7


def test_eps_zero_is_the_logreg_task() -> None:
    logreg, logreg_path = load_task("convex", "logreg")
    cls = load_entry(logreg.implementations["torch"], logreg_path)
    plain = cls(backend=make_problem("convex", "robust-logreg", "torch").backend, **logreg.resolve_parameters())
    robust = make_problem("convex", "robust-logreg", "torch", eps=0.0)
    assert np.array_equal(plain.X_np, robust.X_np) and np.array_equal(plain.y_np, robust.y_np)
    assert robust.f_star == pytest.approx(plain.f_star, abs=1e-13)


def test_robust_optimum_costs_more_than_the_clean_one() -> None:
    clean = make_problem("convex", "robust-logreg", "torch", eps=0.0)
    robust = make_problem("convex", "robust-logreg", "torch")
    assert robust.f_star > clean.f_star + 1e-3
    metrics = robust.evaluate(robust.backend.asarray(robust.x_star))
    assert metrics["robust_accuracy"] <= metrics["train_accuracy"]


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_hessian_and_loss_agree_with_numpy(framework: str) -> None:
    problem = make_problem("convex", "robust-logreg", framework)
    module = sys.modules[type(problem).__module__]
    oracle = make_oracle("convex", "robust-logreg", problem, framework)
    w = problem.init_params(0)
    wn = np.asarray(problem.backend.to_numpy(w))
    args = numpy_args(problem)
    assert float(oracle.value(w)) == pytest.approx(module.objective(wn, *args), abs=1e-14)
    assert np.abs(np.asarray(oracle.hessian(w)) - module.hessian(wn, *args)).max() < 1e-13


def test_torch_and_jax_losses_agree() -> None:
    values = []
    for framework in FRAMEWORKS:
        problem = make_problem("convex", "robust-logreg", framework, dataset="breast_cancer")
        oracle = make_oracle("convex", "robust-logreg", problem, framework)
        values.append(np.asarray(oracle.grad(problem.init_params(3))))
    assert np.abs(values[0] - values[1]).max() < 1e-14


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_gd_reaches_the_target(framework: str) -> None:
    task, _ = load_task("convex", "robust-logreg")
    problem = make_problem("convex", "robust-logreg", framework)
    oracle = make_oracle("convex", "robust-logreg", problem, framework)
    run = run_method(make_method("baselines", "gd", framework), problem, oracle, framework, task.budget.steps,
                     stop_below=task.target.value)
    assert run["reached"] is not None


def test_shuffled_labels_keep_features_and_label_counts() -> None:
    real = make_problem("convex", "robust-logreg", "torch", dataset="breast_cancer")
    shuffled = make_problem("convex", "robust-logreg", "torch", dataset="breast_cancer", labels="shuffled")
    assert np.array_equal(real.X_np, shuffled.X_np)
    assert np.array_equal(np.sort(real.y_np), np.sort(shuffled.y_np)) and not np.array_equal(real.y_np, shuffled.y_np)
    assert shuffled.f_star > real.f_star + 0.3  # no linear rule fits random labels
    assert (REPO / "tasks" / "convex" / "robust_logreg.py").is_file()


def test_a_held_out_split_is_measured_with_the_adversarial_loss() -> None:
    """holdout > 0: trained on the training part (f* its optimum), as logreg's split with eps = 0 (the same examples)."""
    from harness.datasets import holdout_split
    from harness.robust import gradient, objective

    problem = make_problem("convex", "robust-logreg", "torch", holdout=0.4)
    whole = make_problem("convex", "robust-logreg", "torch")
    train, validation, test = holdout_split(1000, 0.4, 0)
    np.testing.assert_array_equal(problem.X_np, whole.X_np[train])
    assert np.linalg.norm(gradient(problem.x_star, problem.X_np, problem.y_np, 0.1, 5e-4)) < 1e-9
    assert problem.f_star > whole.f_star - 0.1 and not np.allclose(problem.x_star, whole.x_star)
    metrics = problem.evaluate(whole.backend.asarray(np.array(problem.x_star)))
    X, y = whole.X_np[test], whole.y_np[test]
    assert metrics["test_loss"] == pytest.approx(objective(problem.x_star, X, y, 0.1, 0.0), rel=1e-12)
    w = problem.x_star
    assert metrics["test_robust_accuracy"] == np.mean(y * (X @ w) - 0.1 * np.linalg.norm(w) > 0)
    clean = make_problem("convex", "logreg", "torch", holdout=0.4)
    np.testing.assert_array_equal(clean.X_np, problem.X_np)  # one split for the tasks on the same data
    assert "test_loss" not in whole.evaluate(whole.init_params(0))
