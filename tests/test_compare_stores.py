"""scripts/compare_stores.py: runs matched by configuration, outcomes and traces compared, differences named."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
from _runs import run_single

from harness.spec import Budget
from harness.store import Store

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "compare_stores.py"


@pytest.fixture(scope="module")
def compare_stores():
    spec = importlib.util.spec_from_file_location("compare_stores", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.modules.pop(spec.name, None)


@pytest.fixture(scope="module")
def results(full_catalog):
    """Two runs of logreg (gd, adam in torch), 20 steps each."""
    return [run_single(full_catalog, "logreg", method, "torch", budget=Budget(steps=20, seconds=60))
            for method in ("gd", "adam")]


def write(root: Path, results, *, change=None) -> Path:
    store = Store(root)
    for result in results:
        row, trace = dict(result.row), [dict(p) for p in result.trace]
        if change is not None:
            change(row, trace)
        store.write_run(row, trace)
    return root


def test_the_same_runs_under_other_ids_compare_identical(compare_stores, results, tmp_path) -> None:
    before = write(tmp_path / "a", results)
    after = write(tmp_path / "b", results, change=lambda row, trace: row.update(run_id=row["run_id"][::-1]))
    found = compare_stores.compare(compare_stores.load(before), compare_stores.load(after))
    assert found.identical and found.matched == 2
    assert compare_stores.main([str(before), str(after)]) == 0


def test_a_changed_value_a_changed_trace_point_and_a_missing_run_are_named(compare_stores, results, tmp_path) -> None:
    before = write(tmp_path / "a", results)

    def change(row, trace):
        if row["method"] == "gd":
            row["objective"] = row["objective"] * (1 + 1e-9)
            trace[3]["grad_norm"] = trace[3]["grad_norm"] + 1.0

    after = write(tmp_path / "b", results[:1], change=change)
    found = compare_stores.compare(compare_stores.load(before), compare_stores.load(after))
    assert found.matched == 1 and len(found.only_before) == 1 and found.only_before[0][2] == "adam"
    assert any(": objective " in line for line in found.differences)
    assert any("trace step 15 grad_norm" in line for line in found.differences), found.differences
    assert found.max_relative["objective"] == pytest.approx(1e-9, rel=1e-3)
    # Within a tolerance above the objective's change, only the trace point and the missing run remain.
    loose = compare_stores.compare(compare_stores.load(before), compare_stores.load(after), rtol=1e-6)
    assert not any(": objective " in line for line in loose.differences)
    assert compare_stores.main([str(before), str(after)]) == 1
