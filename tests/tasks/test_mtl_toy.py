"""mtl-toy: the task's numpy references against autodiff and scipy, and the issue's must-show through the engine.

The references (hand-derived gradients, the mean loss's minimum, the Pareto set) are checked
against ``toy.py``'s formula transcribed here, torch autograd, ``jax.grad`` and scipy solves of
this file's own. The must-show runs every surgery method from the three standard starts through
the real engine, with the task's declared budget and the methods' declared hyperparameters.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import scipy.optimize

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from _content import backend, load_entry, load_method, load_task, make_oracle, make_problem  # noqa: E402
from _runs import run_single  # noqa: E402

FAMILY, TASK = "multitask", "mtl-toy"
METHODS = ("equal-weight", "mgda", "pcgrad", "cagrad")


def _module():
    task, path = load_task(FAMILY, TASK)
    return sys.modules[load_entry(task.implementations["torch"], path).__module__]


def _toy_losses(x, xp=np):
    """``Toy.forward`` of the authors' ``toy.py``, transcribed term by term (not the module's formula).

    ``xp`` is numpy or ``jax.numpy``; ``torch.clamp(t, LOWER)`` is ``maximum(t, LOWER)``.
    """
    x1, x2 = x[0], x[1]
    lower = 0.000005  # toy.py's LOWER
    f1 = xp.log(xp.maximum(xp.abs(0.5 * (-x1 - 7) - xp.tanh(-x2)), lower)) + 6
    f2 = xp.log(xp.maximum(xp.abs(0.5 * (-x1 + 3) + xp.tanh(-x2) + 2), lower)) + 6
    c1 = xp.maximum(xp.tanh(x2 * 0.5), 0)
    c2 = xp.maximum(xp.tanh(-x2 * 0.5), 0)
    f1_sq = ((-x1 + 7) ** 2 + 0.1 * (-x2 - 8) ** 2) / 10 - 20
    f2_sq = ((-x1 - 7) ** 2 + 0.1 * (-x2 - 8) ** 2) / 10 - 20
    return xp.stack([f1 * c1 + f1_sq * c2, f2 * c1 + f2_sq * c2])


def _points() -> np.ndarray:
    """Points of both regimes (valleys x2 > 0, bowls x2 < 0), plus points in the clamp |a_k| < 5e-6."""
    rng = np.random.default_rng(0)
    upper = np.column_stack([rng.uniform(-10, 10, 40), rng.uniform(0.05, 10, 40)])
    lower = np.column_stack([rng.uniform(-10, 10, 40), rng.uniform(-10, -0.05, 40)])
    # On a valley floor, inside the clamp: a1 = -x1/2 - 3.5 + tanh(x2) = 1e-7 and a2 = -1e-7.
    clamped = [(2 * (-3.5 + np.tanh(x2) - 1e-7), x2) for x2 in (0.7, 3.0)]
    clamped += [(2 * (3.5 - np.tanh(x2) + 1e-7), x2) for x2 in (0.7, 3.0)]
    return np.concatenate([upper, lower, np.array(clamped)])


def _jax():
    import jax

    jax.config.update("jax_enable_x64", True)
    return jax


# ---------------------------------------------------------------------------------------------
# The task's references.


def test_declaration() -> None:
    task, _ = load_task(FAMILY, TASK)
    module = _module()
    assert "task_grads" in task.provides and task.dtype == "float64"
    assert list(task.parameters["init"].choices) == sorted(module.INITS)
    problem = make_problem(FAMILY, TASK, "torch", init=1)
    assert problem.n_tasks == 2 and problem.shared_dimension == problem.dim == 2
    for init, start in module.INITS.items():
        p = make_problem(FAMILY, TASK, "jax", init=init)
        assert np.array_equal(backend("jax").to_numpy(p.init_params(0)), start)
        assert np.array_equal(backend("jax").to_numpy(p.init_params(7)), start)  # the seed is ignored


def test_losses_are_toy_py_and_gradients_match_autodiff() -> None:
    import torch

    jax = _jax()
    module = _module()
    jac_jax = jax.jit(jax.jacrev(module.task_losses))
    jac_own = jax.jit(jax.jacrev(lambda x: _toy_losses(x, jax.numpy)))
    for x in _points():
        hand = module.numpy_grads(x)
        assert np.abs(module.numpy_losses(x) - _toy_losses(x)).max() <= 1e-12 * max(1.0, np.abs(_toy_losses(x)).max())
        scale = max(1.0, np.abs(hand).max())
        t = torch.tensor(x, dtype=torch.float64)
        autograd = torch.autograd.functional.jacobian(module.task_losses, t).numpy()
        assert np.abs(hand - autograd).max() <= 1e-12 * scale, x
        assert np.abs(hand - np.asarray(jac_jax(x))).max() <= 1e-12 * scale, x
        assert np.abs(hand - np.asarray(jac_own(x))).max() <= 1e-12 * scale, x  # toy.py's formula, differentiated
    # In the clamp the log term is constant (zero gradient), as torch.clamp: only the c1' term of L1 is left.
    x = _points()[-4]
    x1, x2 = x
    assert abs(-x1 / 2 - 3.5 + np.tanh(x2)) < module.LOWER
    expected_d2 = (np.log(module.LOWER) + 6) * 0.5 * (1 - np.tanh(x2 / 2) ** 2)
    assert module.numpy_grads(x)[0] == pytest.approx([0.0, expected_d2], abs=1e-15)


@pytest.mark.parametrize("framework", ["torch", "jax"])
def test_oracle_task_grads_match_the_references(framework: str) -> None:
    module = _module()
    problem = make_problem(FAMILY, TASK, framework, init=1)
    to_numpy = backend(framework).to_numpy
    oracle = make_oracle(FAMILY, TASK, problem, framework)
    for x in _points()[::7]:
        losses, grads = (np.asarray(to_numpy(a)) for a in oracle.task_grads(backend(framework).asarray(x)))
        assert np.abs(losses - module.numpy_losses(x)).max() <= 1e-12 * max(1.0, np.abs(losses).max())
        hand = module.numpy_grads(x)
        assert np.abs(grads - hand).max() <= 1e-12 * max(1.0, np.abs(hand).max())
        value, grad = (np.asarray(to_numpy(a)) for a in oracle.value_and_grad(backend(framework).asarray(x)))
        assert float(value) == pytest.approx(module.numpy_losses(x).mean(), rel=1e-13, abs=1e-13)
        assert np.abs(grad - hand.mean(0)).max() <= 1e-12 * max(1.0, np.abs(hand).max())
    calls = len(_points()[::7])
    assert oracle.counts == {"task_grads": calls, "value_and_grad": calls}


def _stationary_point(fun, start: np.ndarray) -> np.ndarray:
    """Nelder-Mead from ``start`` on values, then MINPACK's hybrid root of ``jax.grad`` (exact Hessian).

    The values alone stall about 1e-7 from the minimizer (the mean loss is flat to float64 there);
    the root of the gradient is what pins x to 1e-10.
    """
    jax = _jax()
    grad = jax.jit(jax.grad(lambda x: fun(x, jax.numpy)))
    hessian = jax.jit(jax.hessian(lambda x: fun(x, jax.numpy)))
    coarse = scipy.optimize.minimize(lambda x: float(fun(x, np)), start, method="Nelder-Mead",
                                     options={"xatol": 1e-10, "fatol": 1e-14, "maxiter": 20_000})
    root = scipy.optimize.root(lambda x: np.asarray(grad(x)), coarse.x, jac=lambda x: np.asarray(hessian(x)),
                               method="hybr", options={"xtol": 1e-15})
    assert np.linalg.norm(np.asarray(grad(root.x))) <= 1e-12, root.message
    return root.x


def test_mean_minimum_against_an_independent_scipy_solve() -> None:
    module = _module()
    x_star, f_star = module.mean_minimum()
    mean = lambda x, xp: _toy_losses(x, xp).mean()  # noqa: E731
    # Nelder-Mead from a 4 x 4 grid (not the module's 5 x 5, and on toy.py's formula): the best value.
    starts = [np.array([a, b]) for a in np.linspace(-9, 9, 4) for b in np.linspace(-9, 9, 4)]
    coarse = [scipy.optimize.minimize(lambda x: float(mean(x, np)), s, method="Nelder-Mead",
                                      options={"xatol": 1e-10, "fatol": 1e-14, "maxiter": 20_000}) for s in starts]
    best = min(coarse, key=lambda r: r.fun)
    own = _stationary_point(mean, best.x)
    assert np.abs(own - x_star).max() <= 1e-10
    assert float(mean(own, np)) == pytest.approx(f_star, abs=1e-12)
    assert min(r.fun for r in coarse) >= f_star - 1e-12  # no start found lower
    problem = make_problem(FAMILY, TASK, "jax", init=1)
    assert problem.f_star == f_star and np.array_equal(problem.x_star, x_star)


def test_pareto_set_is_pareto_stationary_and_holds_the_mean_minimizer() -> None:
    module = _module()
    curve = module.pareto_set()
    assert curve.shape == (401, 2)
    for x in curve:
        g1, g2 = module.numpy_grads(x)
        # The min-norm point of the segment [g2, g1]: w = clip(g2 . (g2 - g1) / |g1 - g2|^2, 0, 1).
        diff = g1 - g2
        w = np.clip(g2 @ -diff / (diff @ diff), 0.0, 1.0) if diff @ diff > 0 else 0.5
        assert np.linalg.norm(w * g1 + (1 - w) * g2) <= 1e-9, x
    # Its ends are the single-task minimizers, solved here (L2's bowl is at x1 = -7, L1's at x1 = +7).
    for k, end in ((1, curve[0]), (0, curve[-1])):
        own = _stationary_point(lambda x, xp, k=k: _toy_losses(x, xp)[k], np.array([0.0, -5.0]))
        assert np.abs(own - end).max() <= 1e-9
    # Dense enough that the polyline is the curve: neighbours closer than the runs' tolerances below.
    assert np.linalg.norm(np.diff(curve, axis=0), axis=1).max() < 0.05
    # The mean minimizer (solved here) lies on it; a point pushed off it along the normal is that far.
    x_star = _stationary_point(lambda x, xp: _toy_losses(x, xp).mean(), np.array([-3.0, -3.0]))
    assert module.pareto_distance(x_star) <= 1e-9
    mid = len(curve) // 2
    tangent = curve[mid + 1] - curve[mid - 1]
    normal = np.array([-tangent[1], tangent[0]]) / np.linalg.norm(tangent)
    assert module.pareto_distance(curve[mid] + 0.3 * normal) == pytest.approx(0.3, rel=1e-3)
    problem = make_problem(FAMILY, TASK, "jax", init=2)
    metrics = problem.evaluate(backend("jax").asarray(x_star))
    assert metrics["distance"] <= 1e-10 and metrics["pareto_distance"] <= 1e-9


# ---------------------------------------------------------------------------------------------
# The must-show, through the engine.


#: MGDA's runs stop here, not at the declared 100000 steps: its jax step checks each solve on the
#: host (a ``jax.pure_callback``), about 0.1 ms a step, so a full run costs ~9 s. From every init its
#: iterate is on the Pareto set by step 30000 and stays (a Pareto-stationary point is where MGDA's
#: direction vanishes); its pareto_distance at 40000 is that of 100000 (both ~1e-7, measured).
MGDA_STEPS = 40_000


@pytest.fixture(scope="module")
def runs(builtin_catalog):
    """Every surgery method from every init, in jax (jit), with the declared hyperparameters and budget.

    MGDA's budget is :data:`MGDA_STEPS`.
    """
    from harness.spec import Budget

    declared = load_task(FAMILY, TASK)[0].budget
    mgda = Budget(steps=MGDA_STEPS, seconds=declared.seconds)
    return {(method, init): run_single(builtin_catalog, TASK, method, "jax", params={"init": init},
                                       budget=mgda if method == "mgda" else None)
            for method in METHODS for init in sorted(_module().INITS)}


def _valley_floor() -> float:
    """The least mean loss over the half-plane x2 >= 0 (where c2 = 0: the valleys, no bowls).

    On x2 >= 0 the mean is c1 ((log|a1| + log|a2|) / 2 + 6) with a2 - a1 = 7 - 2 tanh(x2) >= 5, so
    the bracket is at least (log 5e-6 + log 5) / 2 + 6 > 0 and the least value is 0, at x2 = 0 (c1 = 0):
    any point of the valley regime is at least -f* (about 15) above the minimum. Computed here on a
    grid and by bounded L-BFGS-B from the grid's best points.
    """
    grid = np.array([(a, b) for a in np.linspace(-10, 10, 201) for b in np.linspace(0, 10, 101)])
    values = np.array([_toy_losses(x).mean() for x in grid])
    mean = lambda x: float(_toy_losses(x).mean())  # noqa: E731
    polished = [scipy.optimize.minimize(mean, grid[i], method="L-BFGS-B", bounds=[(-10, 10), (0, 10)]).fun
                for i in np.argsort(values)[:5]]
    return min(values.min(), *polished)


def test_runs_complete_within_the_declared_budget(runs) -> None:
    task, _ = load_task(FAMILY, TASK)
    for (method, init), result in runs.items():
        assert result.status in ("completed", "reached_target"), (method, init, result.row["error"])
        assert result.row["steps"] <= task.budget.steps
        assert result.row["calls_task_grads"] == result.row["steps"]  # one task_grads call per step
        assert json.loads(result.row["hyperparameters"]) == load_method(FAMILY, method)[0].resolve_hyperparameters({})


def test_equal_weight_stalls_in_the_valley_for_inits_1_and_3(runs) -> None:
    task, _ = load_task(FAMILY, TASK)
    floor = _valley_floor()
    f_star = _module().mean_minimum()[1]
    assert floor >= 0.0 and floor - f_star > 100 * task.target.value
    for init in (1, 3):
        result = runs[("equal-weight", init)]
        assert result.status == "completed" and result.row["steps"] == task.budget.steps
        # After its first tenth it never gets below the valley regime's best value: it stalls there.
        tail = [p for p in result.trace if p["step"] >= task.budget.steps // 10]
        assert min(p["objective"] for p in tail) >= floor
        assert result.row["suboptimality"] >= floor - f_star
    # From init 2 (already in the bowls) it reaches the target: the stall is the valley's.
    assert runs[("equal-weight", 2)].status == "reached_target"


def test_cagrad_reaches_the_mean_minimum_from_all_three_inits(runs) -> None:
    task, _ = load_task(FAMILY, TASK)
    assert load_method(FAMILY, "cagrad")[0].hyperparameters["c"] == 0.5
    for init in (1, 2, 3):
        result = runs[("cagrad", init)]
        assert result.status == "reached_target", (init, result.row["suboptimality"])
        assert result.row["suboptimality"] <= task.target.value
        assert result.trace[-1]["suboptimality"] == result.row["suboptimality"]
    for init in (1, 3):
        assert runs[("cagrad", init)].row["suboptimality"] < runs[("equal-weight", init)].row["suboptimality"]


@pytest.mark.parametrize("method", ["mgda", "pcgrad"])
def test_mgda_and_pcgrad_end_on_the_pareto_set(runs, method: str) -> None:
    task, _ = load_task(FAMILY, TASK)
    lr = load_method(FAMILY, method)[0].hyperparameters["lr"]
    for init in (1, 2, 3):
        result = runs[(method, init)]
        steps = MGDA_STEPS if method == "mgda" else task.budget.steps
        assert result.status == "completed" and result.row["steps"] == steps
        # Adam moves each coordinate by about lr per step, so an iterate at a Pareto-stationary
        # point jitters within about lr of it: lr is the resolution of "on the Pareto set".
        assert result.row["pareto_distance"] <= lr, (init, result.row["pareto_distance"])
        # ... but not at the mean loss's minimum: they stop where the tasks' gradients first cancel.
        assert result.row["suboptimality"] > task.target.value


def test_torch_and_jax_runs_agree(builtin_catalog) -> None:
    """A short run of each method in both frameworks: the same iterates to round-off.

    Short: in the valley the iterates bounce across the floor, where |grad| ~ 1 / |a1| amplifies
    round-off, and the two frameworks' float64 trajectories part after about 600 steps.
    """
    from harness.spec import Budget

    for method, init in (("cagrad", 1), ("mgda", 3)):
        rows = [run_single(builtin_catalog, TASK, method, framework, params={"init": init},
                           budget=Budget(steps=200)).row for framework in ("torch", "jax")]
        for name in ("objective", "loss_1", "loss_2", "pareto_distance", "distance"):
            assert rows[0][name] == pytest.approx(rows[1][name], rel=1e-10, abs=1e-12), (method, name)
        assert rows[0]["steps"] == rows[1]["steps"] == 200
