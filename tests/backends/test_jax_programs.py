"""A library optimizer's compiled program is reused across runs that differ only in seed or budget.

Each assertion compares a run that reused a program with the same run compiled afresh (the
kept programs cleared first): the traces must be identical to the last bit, the oracle calls
the same, and the reusing run must compile nothing.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

pytest.importorskip("jax")

import harness.backends.jax as hj  # noqa: E402
from harness.catalog import Catalog  # noqa: E402
from harness.plan import make_plan  # noqa: E402
from harness.record import Status  # noqa: E402
from harness.run import execute_run  # noqa: E402
from harness.spec import Budget, SuiteEntry, SuiteSpec  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from _runs import run_single  # noqa: E402


@pytest.fixture(scope="module")
def catalog():
    return Catalog.load()


@pytest.fixture(autouse=True)
def _no_kept_programs():
    hj._PROGRAMS.clear()
    yield
    hj._PROGRAMS.clear()


def _timeless(result) -> list[dict]:
    return [{k: v for k, v in p.items() if not any(w in k for w in ("time", "wall", "clock", "memory", "_s"))}
            for p in result.trace]


def _compiles_of(call):
    before = hj.compile_counter()[0]
    result = call()
    return result, hj.compile_counter()[0] - before


def _fresh(call):
    hj._PROGRAMS.clear()
    return call()


@pytest.mark.parametrize(("task", "method", "params"), [
    ("logreg", "gd", {}),
    ("logreg", "adam", {}),
    ("logreg", "heavy-ball", {"batch_size": 32}),  # minibatches drawn outside, passed in: same draws
    ("softmax", "adam", {}),
])
def test_a_reused_program_gives_the_run_it_would_have_compiled(catalog, task, method, params):
    first = lambda: run_single(catalog, task, method, "jax", params=params, budget=Budget(steps=6), seed=0)  # noqa: E731
    second = lambda: run_single(catalog, task, method, "jax", params=params, budget=Budget(steps=6), seed=1)  # noqa: E731
    first()
    reused, compiles = _compiles_of(second)
    assert compiles == 0, "the second seed compiled again"
    assert len(hj._PROGRAMS) == 1
    fresh = _fresh(second)
    assert reused.row["status"] == fresh.row["status"] == Status.COMPLETED
    assert _timeless(reused) == _timeless(fresh)
    assert reused.row["oracle_calls"] == fresh.row["oracle_calls"]
    assert reused.row["compile_s"] < fresh.row["compile_s"]


def test_other_hyperparameters_or_task_parameters_compile_their_own(catalog):
    base = run_single(catalog, "logreg", "gd", "jax", budget=Budget(steps=4))
    other_lr, compiles = _compiles_of(lambda: run_single(catalog, "logreg", "gd", "jax", hyperparameters={"lr": 1.0},
                                                          budget=Budget(steps=4)))
    assert compiles > 0 and len(hj._PROGRAMS) == 2
    assert _timeless(other_lr) != _timeless(base)
    assert _timeless(other_lr) == _timeless(_fresh(lambda: run_single(
        catalog, "logreg", "gd", "jax", hyperparameters={"lr": 1.0}, budget=Budget(steps=4))))
    _, compiles = _compiles_of(lambda: run_single(catalog, "logreg", "gd", "jax", params={"l2": 0.5},
                                                  budget=Budget(steps=4)))
    assert compiles > 0


def test_a_budget_change_reuses_and_the_budget_still_holds(catalog):
    run_single(catalog, "logreg", "gd", "jax", budget=Budget(steps=10))
    capped, compiles = _compiles_of(lambda: run_single(catalog, "logreg", "gd", "jax",
                                                       budget=Budget(steps=10, oracle_calls=3)))
    assert compiles == 0
    assert capped.row["oracle_calls"] <= 3 and capped.row["steps"] <= 3


def test_a_module_method_is_compiled_for_every_run(catalog):
    """A module's method may depend on anything when built (the seeded global generators): never reused."""
    jitted = next(m for m in ("eg", "muon", "winsorized-gd", "curl-descent") if m in catalog.methods)
    spec = catalog.methods[jitted].spec
    assert spec.is_pure("jax") and spec.implementations["jax"].optimizer is None
    task = next(t for t in catalog.tasks if _pair_runs(catalog, t, jitted))
    run = _pair_runs(catalog, task, jitted)[0]
    execute_run(run, catalog)
    _, compiles = _compiles_of(lambda: execute_run(run, catalog))
    assert compiles > 0 and not hj._PROGRAMS


def test_kept_programs_are_bounded(catalog, monkeypatch):
    monkeypatch.setattr(hj, "PROGRAMS_KEPT", 2)
    for lr in (1.0, 2.0, 3.0):
        run_single(catalog, "logreg", "gd", "jax", hyperparameters={"lr": lr}, budget=Budget(steps=1))
    assert len(hj._PROGRAMS) == 2
    # the oldest (lr 1) went first: running it again compiles
    _, compiles = _compiles_of(lambda: run_single(catalog, "logreg", "gd", "jax", hyperparameters={"lr": 1.0},
                                                  budget=Budget(steps=1), seed=5))
    assert compiles > 0


def _pair_runs(catalog, task, method):
    entry = SuiteEntry(tasks=(task,), methods=(method,), grid={}, hyperparameters={}, budget=Budget(steps=3))
    suite = SuiteSpec(id="p", seeds=(0,), frameworks=("jax",), hardware=("cpu",), entries=(entry,))
    try:
        return make_plan(catalog, suite=suite).runs
    except Exception:  # noqa: BLE001 - a pair the catalog does not allow
        return []
