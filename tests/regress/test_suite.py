"""The asv benchmarks generated from a suite: names, parameters, versions, and what they read."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from harness.catalog import Catalog, builtin_root
from harness.regress import suite as regress_suite

KINDS = ("tasks", "methods", "hardware", "suites")


@pytest.fixture
def catalog_copy(tmp_path: Path) -> Path:
    """A copy of the built-in catalog, to edit."""
    for kind in KINDS:
        shutil.copytree(builtin_root() / kind, tmp_path / kind)
    return tmp_path


def _versions(root: Path) -> dict[str, str]:
    catalog = Catalog.load([root], builtin=False)
    return {g.class_name: g.version for g in regress_suite.groups(catalog)}


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new, 1))


def test_the_asv_suite_has_a_class_per_pair_over_variant_and_framework(builtin_catalog: Catalog) -> None:
    groups = regress_suite.groups(builtin_catalog)
    names = [g.class_name for g in groups]
    assert names == ["logreg__gd", "logreg__heavy_ball", "logreg__adam", "logreg__lbfgs", "logreg__gns_newton",
                     "softmax__lbfgs", "softmax__gns_newton"]
    by_name = {g.class_name: g for g in groups}
    assert by_name["logreg__gns_newton"].variants == ("dataset=synthetic", "dataset=breast_cancer")
    assert by_name["logreg__gns_newton"].frameworks == ("torch", "jax")
    assert by_name["logreg__lbfgs"].frameworks == ("torch",)  # L-BFGS has no jax implementation
    assert by_name["softmax__lbfgs"].variants == ("default",)
    assert all(re.fullmatch(r"[0-9a-f]{16}", g.version) for g in groups)
    assert len({g.version for g in groups}) == len(groups)
    # The tracked metric is the target's, with its unit.
    assert {g.metric.id for g in groups} == {"suboptimality"}


def test_generated_classes_carry_asv_attributes(builtin_catalog: Catalog) -> None:
    classes = regress_suite.benchmark_classes(builtin_catalog, module="benchmarks.suite")
    cls = classes["logreg__gns_newton"]
    assert cls.__module__ == "benchmarks.suite"
    assert cls.params == [["dataset=synthetic", "dataset=breast_cancer"], ["torch", "jax"]]
    assert cls.param_names == ["variant", "framework"]
    assert cls.version == regress_suite.groups(builtin_catalog)[4].version
    assert cls.track_final_suboptimality.unit == "nats"
    assert cls.track_time_to_target.unit == "seconds"
    assert cls.track_final_suboptimality.pretty_name == "logreg / gns-newton: final suboptimality (nats)"
    assert {name for name in vars(cls) if name.split("_")[0] in ("time", "track", "peakmem")} == {
        "time_step", "peakmem_run", "track_final_suboptimality", "track_seconds_per_step", "track_time_to_target"}


def test_editing_a_task_yaml_changes_only_its_benchmarks_versions(catalog_copy: Path) -> None:
    before = _versions(catalog_copy)
    _edit(catalog_copy / "tasks" / "convex" / "logreg.yaml", "  value: 1.0e-8", "  value: 1.0e-9")
    after = _versions(catalog_copy)
    changed = {name for name in before if before[name] != after[name]}
    assert changed == {name for name in before if name.startswith("logreg__")}
    # The softmax benchmarks depend on nothing that changed.
    assert all(before[n] == after[n] for n in before if n.startswith("softmax__"))


def test_editing_a_method_yaml_changes_only_its_benchmarks_versions(catalog_copy: Path) -> None:
    before = _versions(catalog_copy)
    _edit(catalog_copy / "methods" / "baselines" / "lbfgs.yaml", "history_size: 10", "history_size: 11")
    after = _versions(catalog_copy)
    assert {n for n in before if before[n] != after[n]} == {"logreg__lbfgs", "softmax__lbfgs"}


def test_cosmetic_edits_and_code_edits_keep_the_versions(catalog_copy: Path) -> None:
    # A description is not what a benchmark measures; a module's code is what asv compares across commits.
    before = _versions(catalog_copy)
    _edit(catalog_copy / "tasks" / "convex" / "logreg.yaml", "description: >-", "description: >-\n  Edited.")
    with (catalog_copy / "tasks" / "convex" / "logreg.py").open("a") as module:
        module.write("\n# an edit of the code\n")
    assert _versions(catalog_copy) == before


def test_editing_the_suite_rebaselines_what_it_changes(catalog_copy: Path) -> None:
    before = _versions(catalog_copy)
    _edit(catalog_copy / "suites" / "asv.yaml", "seeds: [0, 1, 2]", "seeds: [0, 1, 2, 3]")
    after = _versions(catalog_copy)
    assert all(before[n] != after[n] for n in before)


def test_summary_of_a_series() -> None:
    row = {"status": "reached_target", "steps": 10, "timed_s": 0.5, "time_to_target_s": 0.4, "suboptimality": 3e-9,
           "seed": 0, "error": None}
    rows = [row, {**row, "seed": 1, "timed_s": 1.0, "time_to_target_s": 0.8, "suboptimality": 1e-9},
            {**row, "seed": 2, "timed_s": 2.0, "time_to_target_s": 1.6, "suboptimality": 2e-9}]
    summary = regress_suite.summarize(rows, "suboptimality")
    assert summary == {"failed": None, "final": 2e-9, "per_step": 0.1, "to_target": 0.8, "missed": []}
    # Round-off reads as the floor: a ratio of two round-offs is no regression.
    tiny = regress_suite.summarize([{**row, "suboptimality": -7e-18}], "suboptimality")
    assert tiny["final"] == regress_suite.METRIC_FLOOR
    missed = regress_suite.summarize([row, {**row, "seed": 1, "time_to_target_s": None, "status": "completed"}],
                                     "suboptimality")
    assert missed["missed"] == [1] and missed["to_target"] is None
    failed = regress_suite.summarize([row, {**row, "seed": 1, "status": "diverged", "error": "objective is nan"}],
                                     "suboptimality")
    assert failed == {"failed": "seed 1: diverged: objective is nan"}


def test_a_higher_is_better_target_tracks_suboptimality(builtin_catalog: Catalog) -> None:
    from harness.spec import Target

    logreg = builtin_catalog.tasks["logreg"].spec
    assert regress_suite.tracked_metric(logreg).id == "suboptimality"
    by_accuracy = logreg.model_copy(update={"target": Target(metric="train_accuracy", value=0.8)})
    assert regress_suite.tracked_metric(by_accuracy).id == "suboptimality"
    no_suboptimality = by_accuracy.model_copy(
        update={"metrics": tuple(m for m in logreg.metrics if m.id != "suboptimality")})
    with pytest.raises(ValueError, match="not lower-is-better and it has no 'suboptimality'"):
        regress_suite.tracked_metric(no_suboptimality)


@pytest.mark.slow
def test_asv_check_finds_the_project_benchmarks() -> None:
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run([sys.executable, "-m", "asv", "check", "--python=same"], cwd=root, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "No problems found" in done.stdout


def test_stepper_takes_the_runs_steps(builtin_catalog: Catalog) -> None:
    from harness.plan import make_plan
    from harness.run import Stepper, execute_run

    run = next(r for r in make_plan(builtin_catalog, suite="asv").runs if r.method == "gd" and r.framework == "torch")
    three = run.model_copy(update={"budget": run.budget.model_copy(update={"steps": 3})})
    stepper = Stepper(three, builtin_catalog)
    for _ in range(3):
        stepper.step()
    # Three steps of the stepper land where a three-step run ends, through the run's counted oracle.
    reached = float(stepper.made.backend.to_numpy(stepper.made.oracle.value(stepper.params)))
    assert reached == pytest.approx(execute_run(three, builtin_catalog).row["objective"], rel=1e-12)
    assert stepper.made.oracle.counts["grad"] >= 3
