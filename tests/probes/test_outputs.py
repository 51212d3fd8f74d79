"""Every value a probe records has a declared reading (unit, axis, reference line): a table over the registry.

Each probe runs inside a real run (a few steps of gd, or a method of its task's kind), and every ``<probe>/<name>`` column of
its trace must resolve to a :class:`harness.probes.ProbeOutput`, so the leaderboard never
plots a probe without its unit. The reference values are the ones the papers read the probes
against.
"""

from __future__ import annotations

import pytest

from harness.catalog import Catalog
from harness.plan import make_plan
from harness.probes import OUTPUTS, PROBES, probe_output
from harness.run import execute_run
from harness.spec import Budget, ProbeRef, SuiteEntry, SuiteSpec

#: probe id -> (a task it runs on, a method, its options)
CASES = {
    "coherence": ("logreg", "gd", {"examples": 50}),
    "drift": ("logreg", "gd", {}),
    "ghost-radius": ("softmax", "gd", {}),
    "hessian-top": ("robust-logreg", "gd", {"k": 2, "iterations": 10}),
    "grad-conflict": ("mtl-toy", "equal-weight", {}),
    "jacobian-asym": ("sgn-game", "sim-gd", {}),
    "sgn-margin": ("sgn-game", "sim-gd", {}),
}


def test_every_registered_probe_has_declared_outputs_and_a_case() -> None:
    assert set(OUTPUTS) == set(PROBES) == set(CASES)


@pytest.mark.parametrize("probe_id", sorted(CASES))
def test_every_recorded_value_is_declared(probe_id: str) -> None:
    task, method, options = CASES[probe_id]
    suite = SuiteSpec(id="outputs", entries=(SuiteEntry(
        tasks=(task,), methods=(method,), budget=Budget(steps=4), probes=(ProbeRef(id=probe_id, options=options),)),))
    run = make_plan(Catalog.load(), suite=suite).runs[0]
    result = execute_run(run, Catalog.load())
    assert result.status == "completed", result.row["error"]
    columns = {name for point in result.trace for name in point if name.startswith(f"{probe_id}/")}
    assert columns
    undeclared = sorted(c for c in columns if probe_output(c) is None)
    assert not undeclared


def test_reference_lines_are_the_papers() -> None:
    assert probe_output("ghost-radius/r").reference_value({}) == 1.0
    assert probe_output("hessian-top/lambda_1").reference_value({"lr": 0.25}) == pytest.approx(2 / 0.25)
    assert probe_output("hessian-top/lambda_1").reference_value({}) is None  # no learning rate: no edge
    assert probe_output("hessian-top/edge").reference_value({"lr": 0.25}) == 1.0
    assert probe_output("coherence/m_coherence").reference_value({}) == 1.0
    assert probe_output("unknown/x") is None and probe_output("ghost-radius/nothing") is None
    assert all(isinstance(o.unit, str) and o.unit for outputs in OUTPUTS.values() for o in outputs.values())
    assert probe_output("drift/implicit_reg.W").reference_value({"lr": 0.5}) is None  # a group's column, no line
