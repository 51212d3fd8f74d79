"""quadratic-well: the formula term by term, its gradient, the exact optimum, the metrics and the start."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _content import backend, load_task, make_oracle, make_problem  # noqa: E402

FAMILY, TASK = "sampling", "quadratic-well"
FRAMEWORKS = ("torch", "jax")


def _h(d: int, h_min: float, h_max: float) -> list[float]:
    """Evenly spaced curvatures, written out (not numpy.linspace)."""
    return [h_min + (h_max - h_min) * i / (d - 1) for i in range(d)] if d > 1 else [h_min]


def _x_star(d: int, data_seed: int) -> np.ndarray:
    return np.random.default_rng(data_seed).standard_normal(d)


def _f(x, h, c) -> float:
    return sum(0.5 * hi * (xi - ci) ** 2 for xi, hi, ci in zip(x, h, c, strict=True))


def test_declaration() -> None:
    spec, _ = load_task(FAMILY, TASK)
    assert spec.family == "sampling" and set(spec.implementations) == set(FRAMEWORKS)
    assert spec.resolve_parameters() == {"d": 8, "h_min": 1.0, "h_max": 4.0, "data_seed": 0}
    assert {m.id for m in spec.metrics} == {"objective", "suboptimality", "sq_error", "energy"}
    assert spec.target is None and spec.evaluation.every == 10


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_value_grad_and_metrics_match_the_formula(framework: str) -> None:
    problem = make_problem(FAMILY, TASK, framework, d=5, h_min=0.5, h_max=2.5, data_seed=3)
    oracle = make_oracle(FAMILY, TASK, problem, framework)
    b = backend(framework)
    h, c = _h(5, 0.5, 2.5), _x_star(5, 3)
    np.testing.assert_array_equal(problem.x_star, c)
    np.testing.assert_allclose(problem.h_np, h, rtol=1e-15)
    for x in np.random.default_rng(1).normal(0, 2, size=(6, 5)):
        value = float(b.to_numpy(oracle.value(b.asarray(x))))
        grad = np.asarray(b.to_numpy(oracle.grad(b.asarray(x))))
        assert value == pytest.approx(_f(x, h, c), rel=1e-13)
        by_hand = [hi * (xi - ci) for xi, hi, ci in zip(x, h, c, strict=True)]
        np.testing.assert_allclose(grad, by_hand, rtol=1e-13)  # the closed-form hook
        _, autodiff = oracle.value_and_grad(b.asarray(x))  # autodiff of loss
        np.testing.assert_allclose(np.asarray(b.to_numpy(autodiff)), by_hand, rtol=1e-13)
        metrics = problem.evaluate(b.asarray(x))
        assert metrics["objective"] == pytest.approx(_f(x, h, c), rel=1e-13)
        assert metrics["energy"] == pytest.approx(2 * _f(x, h, c), rel=1e-13)
        assert metrics["sq_error"] == pytest.approx(sum((xi - ci) ** 2 for xi, ci in zip(x, c, strict=True)), rel=1e-13)
    assert dict(oracle.counts) == {"value": 6, "grad": 6, "value_and_grad": 6}
    # f* = 0 at x*, exactly, with a zero gradient; positive anywhere else.
    assert problem.f_star == 0.0
    at_star = problem.evaluate(b.asarray(c))
    assert at_star == {"objective": 0.0, "sq_error": 0.0, "energy": 0.0}
    assert np.abs(np.asarray(b.to_numpy(oracle.grad(b.asarray(c))))).max() == 0.0


def test_the_start_is_x_star_plus_a_standard_normal_from_the_seed() -> None:
    problem = make_problem(FAMILY, TASK, "jax")
    starts = np.array([np.asarray(problem.init_params(s)) for s in range(300)]) - problem.x_star
    assert abs(starts.mean()) < 0.05 and abs(starts.std() - 1.0) < 0.05
    np.testing.assert_array_equal(np.asarray(problem.init_params(4)),
                                  np.asarray(make_problem(FAMILY, TASK, "torch").init_params(4)))
    # x* is the data seed's, fixed across run seeds; another data seed moves it.
    np.testing.assert_array_equal(problem.x_star, _x_star(8, 0))
    assert not np.allclose(make_problem(FAMILY, TASK, "jax", data_seed=1).x_star, problem.x_star)


def test_bad_parameters_are_rejected() -> None:
    spec, path = load_task(FAMILY, TASK)
    from _content import load_entry

    cls = load_entry(spec.implementations["torch"], path)
    with pytest.raises(ValueError, match="h_min"):
        cls(backend=backend("torch"), d=4, h_min=2.0, h_max=1.0, data_seed=0)
