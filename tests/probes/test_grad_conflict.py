"""grad-conflict: pairwise cosines and magnitude similarities of task gradients, against numpy and on mtl-toy."""

from __future__ import annotations

import itertools
import math
import sys
from pathlib import Path

import numpy as np
import pytest

from harness.plan import make_plan
from harness.probes import PROBES, ProbeContext, make_probe, probe_output
from harness.probes.conflict import conflict
from harness.run import execute_run
from harness.spec import Budget, ProbeRef, SuiteEntry, SuiteSpec

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tasks"))
from _content import backend, load_entry, load_task, make_oracle, make_problem  # noqa: E402

FAMILY, TOY = "multitask", "mtl-toy"
PROBE = "grad-conflict"


def _toy_module():
    task, path = load_task(FAMILY, TOY)
    return sys.modules[load_entry(task.implementations["torch"], path).__module__]


def _expected(grads: np.ndarray) -> dict[str, float]:
    """The probe's values written out here: np.dot and np.linalg.norm per pair."""
    out = {}
    for i, j in itertools.combinations(range(len(grads)), 2):
        a, b = np.linalg.norm(grads[i]), np.linalg.norm(grads[j])
        out[f"cos.{i + 1}-{j + 1}"] = np.dot(grads[i], grads[j]) / (a * b) if a > 0 and b > 0 else math.nan
        out[f"similarity.{i + 1}-{j + 1}"] = 2 * a * b / (a * a + b * b) if a > 0 or b > 0 else 1.0
    return out


def _assert_matches(values: dict[str, float], grads: np.ndarray, tol: float = 1e-14) -> None:
    expected = _expected(grads)
    assert set(values) == set(expected) | {"cos_min", "similarity_min"}
    for name, value in expected.items():
        assert (math.isnan(values[name]) and math.isnan(value)) or values[name] == pytest.approx(value, abs=tol), name
    cosines = [v for k, v in expected.items() if k.startswith("cos.") and not math.isnan(v)]
    assert values["cos_min"] == pytest.approx(min(cosines), abs=tol) if cosines else math.isnan(values["cos_min"])
    assert values["similarity_min"] == pytest.approx(min(v for k, v in expected.items() if k.startswith("similarity.")),
                                                     abs=tol)


def _context(problem, oracle, params, framework: str) -> ProbeContext:
    return ProbeContext(step=0, params=params, previous_params=None, state=None, oracle=oracle, problem=problem,
                        method=None, backend=backend(framework), hyperparameters={})


def test_two_tasks_by_hand() -> None:
    rng = np.random.default_rng(0)
    for grads in (np.array([[3.0, 4.0], [-4.0, 3.0]]),  # orthogonal, equal norms
                  np.array([[1.0, 0.0], [-2.0, 2.0]]),  # conflicting, unequal norms
                  np.array([[1.0, 2.0], [2.0, 4.0]]),   # parallel
                  rng.standard_normal((2, 7))):
        values = conflict(grads)
        _assert_matches(values, grads)
        # Cosines ignore the scale of each gradient; similarities only see the ratio of the norms.
        scaled = conflict(grads * np.array([[3.0], [3.0]]))
        assert scaled["cos.1-2"] == pytest.approx(values["cos.1-2"], abs=1e-15)
        assert scaled["similarity.1-2"] == pytest.approx(values["similarity.1-2"], abs=1e-15)
        flipped = conflict(grads * np.array([[1.0], [-1.0]]))
        assert flipped["cos.1-2"] == pytest.approx(-values["cos.1-2"], abs=1e-15)
    parallel = conflict(np.array([[1.0, 2.0], [2.0, 4.0]]))
    assert parallel["cos.1-2"] == pytest.approx(1.0, abs=1e-15)
    assert parallel["similarity.1-2"] == pytest.approx(2 * 2 / (1 + 4), abs=1e-15)  # norms 1 : 2


def test_three_tasks_with_a_zero_gradient() -> None:
    grads = np.array([[1.0, 2.0, 0.0], [0.0, 0.0, 0.0], [-1.0, 1.0, 3.0]])
    values = conflict(grads)
    _assert_matches(values, grads)
    # A zero gradient has no direction (NaN cosines, left out of the minimum) and similarity 0.
    assert math.isnan(values["cos.1-2"]) and math.isnan(values["cos.2-3"])
    assert values["cos_min"] == values["cos.1-3"]
    assert values["similarity.1-2"] == values["similarity.2-3"] == values["similarity_min"] == 0.0
    rng = np.random.default_rng(1)
    four = rng.standard_normal((4, 5))
    _assert_matches(conflict(four), four)
    # Two zero gradients: no cosine at all, and equal (zero) magnitudes have similarity 1.
    both = conflict(np.zeros((2, 3)))
    assert math.isnan(both["cos.1-2"]) and math.isnan(both["cos_min"])
    assert both["similarity.1-2"] == both["similarity_min"] == 1.0
    assert conflict(np.ones((1, 3))) == {}  # one task: no pairs


def test_outputs_are_declared() -> None:
    assert PROBES[PROBE] == "harness.probes.conflict:GradConflict"
    for name in conflict(np.random.default_rng(2).standard_normal((3, 4))):
        assert probe_output(f"{PROBE}/{name}") is not None, name


class _Oracle:
    """A task_grads oracle of fixed gradients (torch tensors), for the slicing test."""

    def __init__(self, grads: np.ndarray) -> None:
        self.grads = grads

    def task_grads(self, params):
        import torch

        return torch.zeros(len(self.grads), dtype=torch.float64), torch.tensor(self.grads)


def test_shared_dimension_is_respected_on_a_synthetic_problem() -> None:
    # Shared coordinates (the first two) conflict; each task's head (coordinates 2 and 3) is its own.
    grads = np.array([[1.0, 0.5, 4.0, 0.0], [-1.0, 0.2, 0.0, 3.0]])

    class WithHeads:
        shared_dimension = 2

    class NoLayout:  # no shared_dimension: every coordinate is shared
        pass

    probe = make_probe(PROBE, {})
    sliced = probe(_context(WithHeads(), _Oracle(grads), None, "torch"))
    _assert_matches(sliced, grads[:, :2])
    assert sliced["cos.1-2"] < 0 < conflict(grads[:, 2:])["similarity.1-2"]
    assert sliced["cos.1-2"] != pytest.approx(conflict(grads)["cos.1-2"])
    _assert_matches(probe(_context(NoLayout(), _Oracle(grads), None, "torch")), grads)


def test_shared_dimension_is_respected_on_mtl_digits() -> None:
    problem = make_problem(FAMILY, "mtl-digits", "jax")
    oracle = make_oracle(FAMILY, "mtl-digits", problem, "jax", seal=False)
    params = problem.init_params(0)
    _, grads = oracle.uncounted().task_grads(params)
    grads = np.asarray(backend("jax").to_numpy(grads), dtype=np.float64)
    shared = problem.shared_dimension
    assert shared < grads.shape[1]
    values = make_probe(PROBE, {})(_context(problem, oracle.uncounted(), params, "jax"))
    _assert_matches(values, grads[:, :shared], tol=1e-12)
    whole = conflict(grads)
    assert any(abs(values[k] - whole[k]) > 1e-6 for k in whole if k.startswith("cos."))
    assert oracle.counts == {}


@pytest.mark.parametrize("framework", ["torch", "jax"])
def test_on_mtl_toy_the_valley_conflicts_and_the_far_bowl_does_not(framework: str) -> None:
    module = _toy_module()
    problem = make_problem(FAMILY, TOY, framework, init=1)
    oracle = make_oracle(FAMILY, TOY, problem, framework, seal=False).uncounted()
    probe = make_probe(PROBE, {})

    def values(x):
        out = probe(_context(problem, oracle, backend(framework).asarray(np.asarray(x, dtype=np.float64)), framework))
        _assert_matches(out, module.numpy_grads(np.asarray(x)), tol=1e-12)  # the hand-derived gradients
        return out

    # The valley at init 1's height and above: between the two valley floors a_1 = 0 and a_2 = 0
    # (x1 = 2 (-3.5 + tanh x2) and 2 (3.5 - tanh x2)) each task pulls x1 towards its own floor.
    for x2 in (6.0, module.INITS[1][1], 9.0):
        left, right = 2 * (-3.5 + np.tanh(x2)), 2 * (3.5 - np.tanh(x2))
        for fraction in np.linspace(0.05, 0.95, 7):
            assert values([left + fraction * (right - left), x2])["cos.1-2"] < 0
    # init 1 itself lies outside the floors, where both tasks push x1 the same way.
    assert values(module.INITS[1])["cos.1-2"] > 0
    # The bowls' centre region far above the Pareto set (x2 in [-2, -1]): both pull x2 down.
    for x in itertools.product(np.linspace(-4, 4, 5), (-2.0, -1.5, -1.0)):
        assert module.pareto_distance(np.array(x)) > 5
        assert values(x)["cos.1-2"] > 0
    assert values(module.INITS[2])["cos.1-2"] > 0
    # On the Pareto set's interior the two gradients are anti-parallel.
    curve = module.pareto_set()
    for x in curve[1:-1:40]:
        assert values(x)["cos.1-2"] <= -1 + 1e-9


def _run_with_probe(catalog, method: str, init: int, steps: int | None = None):
    budget = None if steps is None else Budget(steps=steps)
    suite = SuiteSpec(id="probe", frameworks=("jax",), entries=(SuiteEntry(
        tasks=(TOY,), methods=(method,), grid={"init": (init,)}, budget=budget,
        probes=(ProbeRef(id=PROBE, options={}),)),))
    (run,) = make_plan(catalog, suite=suite).runs
    return execute_run(run, catalog)


def test_probe_columns_in_a_run_on_mtl_toy(builtin_catalog) -> None:
    """Equal weights from init 1 (jax): the probe's columns at every evaluation, free, and the valley's conflict."""
    module = _toy_module()
    names = {f"{PROBE}/{k}" for k in conflict(np.eye(2))}
    result = _run_with_probe(builtin_catalog, "equal-weight", 1, steps=20_000)
    assert result.status == "completed", result.row["error"]
    assert result.row["calls_task_grads"] == result.row["steps"]  # probing is free
    assert len(result.trace) > 10 and all(names <= set(point) for point in result.trace)
    start = {k.partition("/")[2]: v for k, v in result.trace[0].items() if k in names}
    _assert_matches(start, module.numpy_grads(np.array(module.INITS[1])), tol=1e-12)
    assert start["cos.1-2"] > 0  # outside the valley floors both tasks push x1 the same way
    # Once in the valley (its mean loss stays >= 0 there: see tests/tasks/test_mtl_toy.py) the
    # iterate bounces across the floor a_1 = 0; on its inner side the tasks conflict.
    stalled = [p for p in result.trace[1:] if p["objective"] >= 0]
    assert len(stalled) == len(result.trace) - 1
    assert min(p[f"{PROBE}/cos.1-2"] for p in stalled) < 0
    for point in result.trace:
        assert -1 <= point[f"{PROBE}/cos.1-2"] <= 1 and 0 <= point[f"{PROBE}/similarity.1-2"] <= 1
