"""The convex tasks (logreg, softmax): declarations, reference optima, and torch/jax agreement.

The reference optimum of every data set is recomputed here from scratch: the data are
regenerated from the recipe written in the task's notes, the objective is written anew (with
``log_expit`` / ``log_softmax``, not the module's ``logaddexp`` / ``logsumexp``) and minimized
by a different scipy method (trust-region Newton-CG) than the module's (L-BFGS + Newton).
"""

from __future__ import annotations

import inspect
import sys
from pathlib import Path

import numpy as np
import pytest
import scipy.optimize
import scipy.special

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _content import backend, load_entry, load_task, make_oracle, make_problem  # noqa: E402

from harness.datasets import holdout_split  # noqa: E402
from harness.spec import is_split_metric  # noqa: E402

FRAMEWORKS = ("torch", "jax")
# (task id, dataset): every data set each task declares.
CASES = [
    ("logreg", "synthetic"),
    ("logreg", "breast_cancer"),
    ("logreg", "digits"),
    ("softmax", "blobs"),
    ("softmax", "digits"),
]
CASE_IDS = [f"{task}-{dataset}" for task, dataset in CASES]


# ---------------------------------------------------------------------------------------------
# An independent reference: data from the documented recipe, objective written anew, scipy
# ---------------------------------------------------------------------------------------------


def _standardized(X: np.ndarray) -> np.ndarray:
    scale = np.where(X.std(axis=0) > 0, X.std(axis=0), 1.0)
    return (X - X.mean(axis=0)) / scale


def _recipe_data(task: str, dataset: str) -> tuple[np.ndarray, np.ndarray]:
    """The default data as the YAML notes describe them: labels +-1 (logreg) or 0..C-1 (softmax)."""
    from sklearn.datasets import load_breast_cancer, load_digits

    if (task, dataset) == ("logreg", "synthetic"):
        rng = np.random.default_rng(0)
        X = rng.standard_normal((1000, 20))
        w0 = rng.standard_normal(20) * 3 / np.sqrt(20)
        return X, np.where(rng.random(1000) < scipy.special.expit(X @ w0), 1.0, -1.0)
    if (task, dataset) == ("logreg", "breast_cancer"):
        X, target = load_breast_cancer(return_X_y=True)
        return _standardized(X), np.where(target == 1, 1.0, -1.0)
    if (task, dataset) == ("logreg", "digits"):
        X, target = load_digits(return_X_y=True)
        return _standardized(X), np.where(target % 2 == 0, 1.0, -1.0)
    if (task, dataset) == ("softmax", "blobs"):
        rng = np.random.default_rng(0)
        centers = rng.standard_normal((5, 20)) * 2.0 / np.sqrt(20)
        labels = rng.integers(0, 5, size=1000)
        return centers[labels] + rng.standard_normal((1000, 20)), labels
    X, labels = load_digits(return_X_y=True)
    return _standardized(X), labels


def _recipe_objective(task: str, X: np.ndarray, y: np.ndarray, l2: float = 5e-4):
    """``(f, grad, hessp)`` of the task in plain numpy."""
    n, d = X.shape
    if task == "logreg":

        def f(w):
            return -np.mean(scipy.special.log_expit(y * (X @ w))) + l2 * np.sum(w**2)

        def grad(w):
            return -(X.T @ (y * scipy.special.expit(-y * (X @ w)))) / n + 2 * l2 * w

        def hessp(w, v):
            p = scipy.special.expit(X @ w)
            return X.T @ (p * (1 - p) * (X @ v)) / n + 2 * l2 * v

        return f, grad, hessp

    C = int(y.max()) + 1
    onehot = np.eye(C)[y]

    def f(w):
        log_p = scipy.special.log_softmax(X @ w.reshape(d, C), axis=1)
        return -np.mean(log_p[np.arange(n), y]) + l2 * np.sum(w**2)

    def grad(w):
        p = scipy.special.softmax(X @ w.reshape(d, C), axis=1)
        return (X.T @ (p - onehot) / n).ravel() + 2 * l2 * w

    def hessp(w, v):
        p = scipy.special.softmax(X @ w.reshape(d, C), axis=1)
        a = X @ v.reshape(d, C)
        return (X.T @ (p * (a - np.sum(p * a, axis=1, keepdims=True))) / n).ravel() + 2 * l2 * v

    return f, grad, hessp


def _param_dim(task: str, X: np.ndarray, y: np.ndarray) -> int:
    return X.shape[1] * (1 if task == "logreg" else int(y.max()) + 1)


# ---------------------------------------------------------------------------------------------
# Declarations
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("task_id", ["logreg", "softmax"])
def test_declaration_matches_implementation(task_id: str) -> None:
    task, path = load_task("convex", task_id)
    assert task.family == "convex" and task.dtype == "float64"
    assert "Gradient-Normalized Smoothness" in task.paper
    assert set(task.provides) == {
        "value", "grad", "value_and_grad", "hvp", "hessian",
        # finite-sum and logit structure (harness.oracle): minibatches, probes, curvature models
        "stochastic_grad", "per_example_grads", "jvp_logits", "gauss_newton", "fisher",
    }
    metrics = {m.id: (m.unit, m.lower_is_better) for m in task.metrics}
    held_out = {f"{split}_{name}": (unit, lower) for split in ("validation", "test")
                for name, unit, lower in (("loss", "nats", True), ("accuracy", "fraction", False))}
    assert metrics == {
        "objective": ("nats", True),
        "suboptimality": ("nats", True),
        "train_accuracy": ("fraction", False),
        "grad_norm": ("1", True),
    } | held_out
    assert task.target is not None and (task.target.metric, task.target.value) == ("suboptimality", 1e-8)
    assert set(task.implementations) == set(FRAMEWORKS)
    # One class for both frameworks.
    assert len({load_entry(task.implementations[fw], path) for fw in FRAMEWORKS}) == 1
    cls = load_entry(task.implementations["torch"], path)
    # The YAML parameters are exactly the constructor's keywords, keyword-only and without defaults.
    parameters = dict(inspect.signature(cls).parameters)
    assert parameters.pop("backend").kind is inspect.Parameter.KEYWORD_ONLY
    assert set(parameters) == set(task.parameters)
    assert all(p.kind is inspect.Parameter.KEYWORD_ONLY and p.default is inspect.Parameter.empty
               for p in parameters.values())


@pytest.mark.parametrize("task_id, dataset", CASES, ids=CASE_IDS)
def test_f_star_matches_independent_scipy(task_id: str, dataset: str) -> None:
    problem = make_problem("convex", task_id, "torch", dataset=dataset)
    X, y = _recipe_data(task_id, dataset)
    assert np.array_equal(X, problem.X_np)  # the data follow the documented recipe exactly
    f, grad, hessp = _recipe_objective(task_id, X, y)
    result = scipy.optimize.minimize(
        f,
        np.zeros(_param_dim(task_id, X, y)),
        jac=grad,
        hessp=hessp,
        method="trust-ncg",
        options={"gtol": 1e-13, "maxiter": 200},
    )
    assert abs(result.fun - problem.f_star) < 1e-10
    assert np.linalg.norm(grad(problem.x_star)) < 1e-10  # the module's minimizer, our gradient
    assert abs(f(problem.x_star) - problem.f_star) < 1e-12


@pytest.mark.parametrize("task_id, dataset", CASES, ids=CASE_IDS)
@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_autodiff_gradient_vanishes_at_optimum(task_id: str, dataset: str, framework: str) -> None:
    problem = make_problem("convex", task_id, framework, dataset=dataset)
    oracle = make_oracle("convex", task_id, problem, framework)
    value, grad = oracle.value_and_grad(backend(framework).asarray(np.array(problem.x_star)))
    assert abs(float(value) - problem.f_star) < 1e-13
    assert np.linalg.norm(backend(framework).to_numpy(grad)) < 1e-10


# ---------------------------------------------------------------------------------------------
# torch and jax implement the same function
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("task_id, dataset", CASES, ids=CASE_IDS)
def test_torch_and_jax_agree(task_id: str, dataset: str) -> None:
    problems = {fw: make_problem("convex", task_id, fw, dataset=dataset) for fw in FRAMEWORKS}
    oracles = {fw: make_oracle("convex", task_id, problems[fw], fw) for fw in FRAMEWORKS}
    dim = problems["torch"].dim
    rng = np.random.default_rng(123)
    for _ in range(2):
        x, v = rng.standard_normal(dim) * 0.5, rng.standard_normal(dim)
        out = {}
        for fw in FRAMEWORKS:
            b, oracle = backend(fw), oracles[fw]
            xb, vb = b.asarray(x), b.asarray(v)
            value, grad = oracle.value_and_grad(xb)
            out[fw] = (
                float(value),
                b.to_numpy(grad),
                b.to_numpy(oracle.hvp(xb, vb)),
                b.to_numpy(oracle.hessian(xb)) @ v,
            )
        for a, b_ in zip(out["torch"], out["jax"], strict=True):
            np.testing.assert_allclose(a, b_, rtol=0, atol=1e-10)
    # The same start in both frameworks; another seed, another start; the data stay put.
    for seed in (0, 1):
        np.testing.assert_array_equal(
            backend("torch").to_numpy(problems["torch"].init_params(seed)),
            backend("jax").to_numpy(problems["jax"].init_params(seed)),
        )
    assert not np.allclose(
        backend("torch").to_numpy(problems["torch"].init_params(0)),
        backend("torch").to_numpy(problems["torch"].init_params(1)),
    )


@pytest.mark.parametrize("task_id, dataset", CASES, ids=CASE_IDS)
@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_derivatives_match_finite_differences(task_id: str, dataset: str, framework: str) -> None:
    problem = make_problem("convex", task_id, framework, dataset=dataset)
    oracle = make_oracle("convex", task_id, problem, framework)
    b = backend(framework)
    rng = np.random.default_rng(7)
    x = rng.standard_normal(problem.dim) * 0.5
    grad = b.to_numpy(oracle.grad(b.asarray(x)))
    hessian = b.to_numpy(oracle.hessian(b.asarray(x)))
    np.testing.assert_allclose(hessian, hessian.T, rtol=0, atol=1e-13)
    h = 1e-5
    for _ in range(3):
        v = rng.standard_normal(problem.dim)
        v /= np.linalg.norm(v)
        plus, minus = float(oracle.value(b.asarray(x + h * v))), float(oracle.value(b.asarray(x - h * v)))
        # Central differences: error ~ h^2 |f'''| plus rounding ~ eps |f| / h.
        assert abs((plus - minus) / (2 * h) - grad @ v) < 1e-8
        g_plus, g_minus = b.to_numpy(oracle.grad(b.asarray(x + h * v))), b.to_numpy(oracle.grad(b.asarray(x - h * v)))
        fd_hv = (g_plus - g_minus) / (2 * h)
        np.testing.assert_allclose(b.to_numpy(oracle.hvp(b.asarray(x), b.asarray(v))), fd_hv, rtol=0, atol=1e-8)
        # The closed-form Hessian the oracle serves equals autodiff's Hessian-vector product.
        np.testing.assert_allclose(hessian @ v, b.to_numpy(oracle.hvp(b.asarray(x), b.asarray(v))), rtol=0, atol=1e-12)
    assert oracle.counts["hessian"] == 1 and oracle.counts["hvp"] == 6


# ---------------------------------------------------------------------------------------------
# Metrics and parameters
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("task_id, dataset", CASES, ids=CASE_IDS)
@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_evaluate_reports_declared_metrics(task_id: str, dataset: str, framework: str) -> None:
    task, _ = load_task("convex", task_id)
    problem = make_problem("convex", task_id, framework, dataset=dataset)
    oracle = make_oracle("convex", task_id, problem, framework)
    b = backend(framework)
    params = problem.init_params(3)
    metrics = problem.evaluate(params)
    # Nothing is held out by default: no validation or test metric.
    assert set(metrics) == {m.id for m in task.metrics if not is_split_metric(m.id)} - {"suboptimality"}
    assert all(type(value) is float for value in metrics.values())
    value, grad = oracle.value_and_grad(params)
    assert abs(metrics["objective"] - float(value)) < 1e-12
    assert abs(metrics["grad_norm"] - np.linalg.norm(b.to_numpy(grad))) < 1e-12
    assert metrics["objective"] > problem.f_star
    optimum = problem.evaluate(b.asarray(np.array(problem.x_star)))
    assert optimum["objective"] == pytest.approx(problem.f_star, abs=1e-15)
    assert optimum["grad_norm"] < 1e-10
    assert metrics["train_accuracy"] < optimum["train_accuracy"] <= 1.0


@pytest.mark.parametrize(
    "task_id, overrides, dim",
    [
        ("logreg", {"n": 200, "d": 7, "data_seed": 3}, 7),
        ("logreg", {"dataset": "breast_cancer", "n": 5, "d": 5}, 30),  # n, d: synthetic only
        ("softmax", {"n": 300, "d": 4, "classes": 3, "data_seed": 1}, 12),
        ("softmax", {"dataset": "digits", "classes": 3}, 640),  # classes: blobs only
    ],
)
def test_parameters_shape_the_problem(task_id: str, overrides: dict, dim: int) -> None:
    task, path = load_task("convex", task_id)
    cls = load_entry(task.implementations["torch"], path)
    problem = cls(backend=backend("torch"), **task.resolve_parameters(overrides))
    assert problem.dim == dim == problem.init_params(0).shape[0]
    assert sum(int(np.prod(shape)) for _, shape in problem.layout) == dim
    assert problem.evaluate(backend("torch").asarray(np.array(problem.x_star)))["grad_norm"] < 1e-10


@pytest.mark.parametrize("task_id", ["logreg", "softmax"])
@pytest.mark.parametrize("bad", [{"dataset": "mnist"}, {"l2": 0.0}, {"n": 0}])
def test_bad_parameters_raise(task_id: str, bad: dict) -> None:
    task, path = load_task("convex", task_id)
    cls = load_entry(task.implementations["torch"], path)
    with pytest.raises(ValueError):
        cls(backend=backend("torch"), **(task.resolve_parameters() | bad))


def test_softmax_holds_out_its_parts_too() -> None:
    whole = make_problem("convex", "softmax", "torch", dataset="digits")
    problem = make_problem("convex", "softmax", "torch", dataset="digits", holdout=0.4, data_seed=2)
    train, validation, test = holdout_split(1797, 0.4, 2)  # the real data's split follows data_seed
    np.testing.assert_array_equal(problem.X_np, whole.X_np[train])
    softmax = sys.modules[type(problem).__module__]
    assert np.linalg.norm(softmax.gradient(problem.x_star, problem.X_np, problem.labels_np, 5e-4, 10)) < 1e-9
    metrics = problem.evaluate(backend("torch").asarray(np.array(problem.x_star)))
    X, labels = whole.X_np[test], whole.labels_np[test]
    assert metrics["test_loss"] == pytest.approx(softmax.objective(problem.x_star, X, labels, 0.0, 10), rel=1e-12)
    assert 0.8 < metrics["test_accuracy"] <= 1.0 and set(whole.evaluate(whole.init_params(0))).isdisjoint(
        {"validation_loss", "test_loss"})


def test_logreg_holds_out_validation_and_test_parts_it_never_trains_on() -> None:
    from harness.datasets import binary_classification

    whole = make_problem("convex", "logreg", "torch")
    X, y = binary_classification("synthetic", 1000, 20, 0)
    assert whole.X_np is X and whole.held_out == {}  # holdout 0: the cached set itself, as before
    problem = make_problem("convex", "logreg", "torch", holdout=0.4)
    train, validation, test = holdout_split(1000, 0.4, 0)
    assert (len(train), len(validation), len(test)) == (600, 200, 200)
    assert len(set(train) | set(validation) | set(test)) == 1000
    np.testing.assert_array_equal(problem.X_np, X[train])
    # f* is the training part's optimum: its gradient vanishes there, not on the whole set.
    logreg = sys.modules[type(problem).__module__]
    assert np.linalg.norm(logreg.gradient(problem.x_star, X[train], y[train], 5e-4)) < 1e-10
    assert np.linalg.norm(logreg.gradient(problem.x_star, X, y, 5e-4)) > 1e-4
    assert problem.f_star == logreg.objective(problem.x_star, X[train], y[train], 5e-4)
    w = np.random.default_rng(2).standard_normal(20)
    metrics = problem.evaluate(backend("torch").asarray(w))
    for name, part in (("validation", validation), ("test", test)):
        margins = y[part] * (X[part] @ w)
        assert metrics[f"{name}_loss"] == pytest.approx(np.mean(np.log1p(np.exp(-margins))), rel=1e-12)
        assert metrics[f"{name}_accuracy"] == np.mean(margins > 0)
    with pytest.raises(ValueError, match="holdout"):
        make_problem("convex", "logreg", "torch", holdout=1.5)
