"""Table-driven over the built-in registry: every method x a small compatible task x each framework.

A method is smoke-run for a few steps on the first built-in task that provides what it requires
(with the task's ``small`` parameters when it declares them); it must finish without error and
lower the objective. The deep, reference-checked tests live beside each task and method.
"""

from __future__ import annotations

import pytest

from _runs import quick_hyperparameters

from harness.catalog import Catalog
from harness.plan import RunSpec
from harness.run import execute_run
from harness.spec import Budget

CATALOG = Catalog.load()

# Small instances keep this table fast; parameters absent from a task are ignored.
SMALL = {"n": 200, "d": 5}
# Steps per task where 20 do not show descent: sgn-game's distance to the Nash point first grows
# (J is far from normal: the coupling a = 10 pushes x_1 while the slow mode decays at 0.97 a step).
STEPS = {"sgn-game": 400}


def _cases() -> list[tuple[str, str, str]]:
    cases = []
    for method_id, method in sorted(CATALOG.methods.items()):
        for framework in method.spec.implementations:
            task = next(  # logreg first (the baseline every gradient method runs on), then by id
                (t for t_id, t in sorted(CATALOG.tasks.items(), key=lambda item: (item[0] != "logreg", item[0]))
                 if set(method.spec.requires) <= set(t.spec.provides) and framework in t.spec.implementations),
                None,
            )
            if task is not None:
                cases.append((method_id, framework, task.spec.id))
    return cases


CASES = _cases()


def test_every_method_has_a_compatible_task():
    covered = {m for m, _, _ in CASES}
    assert covered == set(CATALOG.methods), f"methods with no task to run on: {set(CATALOG.methods) - covered}"


@pytest.mark.parametrize(("method", "framework", "task"), CASES, ids=[f"{m}-{f}-{t}" for m, f, t in CASES])
def test_method_runs_and_descends(method, framework, task):
    spec = CATALOG.tasks[task].spec
    params = spec.resolve_parameters({k: v for k, v in SMALL.items() if k in spec.parameters})
    run = RunSpec(suite="registry", task=task, task_params=params, method=method,
                  hyperparameters=quick_hyperparameters(CATALOG.methods[method].spec),
                  framework=framework, hardware="cpu", seed=0, budget=Budget(steps=STEPS.get(task, 20), seconds=120))
    result = execute_run(run, CATALOG)
    assert result.status in ("completed", "reached_target"), result.row["error"]
    assert result.trace[-1]["objective"] < result.trace[0]["objective"]
