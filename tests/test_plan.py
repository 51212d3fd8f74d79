"""The matrix: expansion, run ids, overrides, filters and skip reasons."""

from __future__ import annotations

import pytest

from harness.plan import RunSpec, make_plan, parse_overrides
from harness.spec import Budget, SuiteEntry, SuiteSpec


def test_suite_expands_to_the_full_matrix(test_catalog):
    plan = make_plan(test_catalog, suite="toy")
    assert len(plan.runs) == 2 * 2  # frameworks x seeds
    assert {(r.framework, r.seed) for r in plan.runs} == {("torch", 0), ("torch", 1), ("jax", 0), ("jax", 1)}
    assert all(r.task_params == {"d": 10, "kappa": 10.0} for r in plan.runs)
    assert len({r.run_id for r in plan.runs}) == 4


def test_run_id_is_a_content_hash():
    spec = dict(suite="a", task="t", method="m", framework="torch", hardware="cpu", seed=0, budget=Budget(steps=5))
    run = RunSpec(**spec)
    assert run.run_id == RunSpec(**spec).run_id and len(run.run_id) == 16
    assert run.run_id == RunSpec(**{**spec, "suite": "b"}).run_id  # the same experiment in another suite
    for change in ({"seed": 1}, {"hyperparameters": {"lr": 0.1}}, {"task_params": {"n": 3}}, {"budget": Budget(steps=6)}):
        assert RunSpec(**{**spec, **change}).run_id != run.run_id, change


def test_program_key_leaves_out_only_seed_budget_and_probes():
    spec = dict(suite="a", task="t", method="m", framework="jax", hardware="cpu", seed=0, budget=Budget(steps=5),
                code={"method/m.py": "abc"})
    key = RunSpec(**spec).program_key
    assert key != RunSpec(**spec).run_id
    for same in ({"seed": 7}, {"budget": Budget(steps=9, oracle_calls=3)}, {"suite": "b"}):
        assert RunSpec(**{**spec, **same}).program_key == key, same
    for change in ({"hyperparameters": {"lr": 0.1}}, {"task_params": {"n": 3}}, {"framework": "torch"},
                   {"hardware": "gpu"}, {"code": {"method/m.py": "abd"}}, {"declarations": {"method": "x"}}):
        assert RunSpec(**{**spec, **change}).program_key != key, change


def test_grid_seeds_and_filters(test_catalog):
    suite = SuiteSpec(id="g", frameworks=("torch", "jax"),
                      entries=(SuiteEntry(tasks=("quadratic",), methods=("sleepy-gd",), grid={"d": (2, 3, 4)}),))
    plan = make_plan(test_catalog, suite=suite, seeds=3, frameworks=["jax"])
    assert len(plan.runs) == 3 * 3
    assert {r.framework for r in plan.runs} == {"jax"}
    assert sorted({r.task_params["d"] for r in plan.runs}) == [2, 3, 4]


def test_overrides_apply_by_name_or_by_id(test_catalog):
    plan = make_plan(test_catalog, suite="toy", overrides=parse_overrides(["lr=0.05", "quadratic.d=4"]))
    assert {r.hyperparameters["lr"] for r in plan.runs} == {0.05}
    assert {r.task_params["d"] for r in plan.runs} == {4}
    with pytest.raises(ValueError, match="--set momentum: no task parameter or method hyperparameter"):
        make_plan(test_catalog, suite="toy", overrides={"momentum": 0.9})
    with pytest.raises(ValueError, match="has no hyperparameter 'momentum'"):
        make_plan(test_catalog, suite="toy", overrides={"sleepy-gd.momentum": 0.9})


def test_parse_overrides_reads_yaml_scalars():
    assert parse_overrides(["a=1", "b=1e-3", "c=true", "d=text", "e="]) == {"a": 1, "b": 1e-3, "c": True, "d": "text", "e": ""}
    with pytest.raises(ValueError, match="expected NAME=VALUE"):
        parse_overrides(["lr"])
    with pytest.raises(ValueError, match="must be a scalar"):
        parse_overrides(["lr=[1, 2]"])


def test_unknown_ids_fail_early(test_catalog):
    with pytest.raises(KeyError, match="unknown suite 'nope' \\(known: toy\\)"):
        make_plan(test_catalog, suite="nope")
    with pytest.raises(KeyError, match="unknown method 'adamw'"):
        make_plan(test_catalog, suite="toy", methods=["adamw"])


def with_method_and_suite(load_test_catalog, root, *, method: str, suite: str):
    """The toy catalog plus one method and one suite, written under ``root`` (YAML texts)."""
    for kind, text in (("methods", method), ("suites", suite)):
        (root / kind).mkdir(parents=True)
        spec_id = text.split("\n", 1)[0].removeprefix("id: ")
        (root / kind / f"{spec_id}.yaml").write_text(text)
    return load_test_catalog(root)


def test_incompatible_pairs_are_skipped_with_a_reason(tmp_path, load_test_catalog):
    catalog = with_method_and_suite(
        load_test_catalog, tmp_path,
        method="id: cg\nname: CG\nfamily: toy\npaper: p\nrequires: [fisher]\n"
               "implementations:\n  torch: {entry: 'cg.py:CG'}\n",
        suite="id: mixed\nframeworks: [torch, jax]\nentries:\n  - tasks: [quadratic]\n    methods: [sleepy-gd, cg]\n",
    )
    plan = make_plan(catalog, suite="mixed")
    assert {(r.method, r.framework) for r in plan.runs} == {("sleepy-gd", "torch"), ("sleepy-gd", "jax")}
    assert [(s.method, s.framework, s.reason) for s in plan.skipped] == [
        ("cg", "torch", "the task does not provide fisher"),
        ("cg", "jax", "the task does not provide fisher"),
    ]


def test_a_hyperparameter_can_add_requirements(tmp_path, load_test_catalog):
    catalog = with_method_and_suite(
        load_test_catalog, tmp_path,
        method="id: newtonish\nname: N\nfamily: toy\npaper: p\nrequires: [grad]\nhyperparameters: {curvature: exact}\n"
               "requires_when:\n  curvature: {exact: [hessian], fisher: [fisher]}\n"
               "implementations:\n  torch: {entry: 'n.py:N'}\n",
        suite="id: curv\nentries:\n  - tasks: [quadratic]\n    methods: [newtonish]\n",
    )
    assert len(make_plan(catalog, suite="curv").runs) == 1  # the quadratic provides hessian
    plan = make_plan(catalog, suite="curv", overrides={"curvature": "fisher"})
    assert plan.runs == [] and [s.reason for s in plan.skipped] == ["the task does not provide fisher"]


def test_runs_carry_their_identity_through_a_worker_round_trip(test_catalog):
    run = make_plan(test_catalog, suite="toy").runs[0]
    assert set(run.declarations) == {"task", "method", "hardware"}
    assert set(run.code) == {"task/quadratic.py", "method/sleepy.py"}
    again = RunSpec.model_validate(run.model_dump(mode="json"))  # what a worker rebuilds
    assert again.run_id == run.run_id and again.code == run.code
    assert RunSpec(**{**run.model_dump(), "code": {}}).run_id != run.run_id


def test_an_adhoc_suite_pairs_tasks_and_methods_in_the_frameworks_both_implement(tmp_path, load_test_catalog):
    from harness.plan import ADHOC_SEEDS, adhoc_suite

    catalog = with_method_and_suite(
        load_test_catalog, tmp_path,
        method="id: torch-only\nname: T\nfamily: toy\npaper: p\nrequires: [grad]\n"
               "implementations:\n  torch: {optimizer: torch.optim.SGD}\n",
        suite="id: unused\nentries:\n  - tasks: [quadratic]\n    methods: [sleepy-gd]\n",
    )
    plan = make_plan(catalog, suite=adhoc_suite(catalog, tasks=["quadratic"], methods=["sleepy-gd", "torch-only"]))
    assert plan.suite == "ad-hoc" and not plan.skipped
    assert sorted({(r.method, r.framework) for r in plan.runs}) == [
        ("sleepy-gd", "jax"), ("sleepy-gd", "torch"), ("torch-only", "torch")]
    assert {r.seed for r in plan.runs} == set(range(ADHOC_SEEDS)) and {r.hardware for r in plan.runs} == {"cpu"}
    with pytest.raises(KeyError, match="unknown method 'nope'"):
        adhoc_suite(catalog, methods=["nope"])
    every = make_plan(catalog, suite=adhoc_suite(catalog, tasks=["quadratic"], seeds=1))  # every method of the catalog
    assert {r.method for r in every.runs} | {s.method for s in every.skipped} == set(catalog.methods)


def test_an_empty_plan_says_why(test_catalog):
    plan = make_plan(test_catalog, suite="toy", frameworks=["torch"], tasks=["quadratic"], methods=["sleepy-gd"])
    assert plan.runs and not plan.unmatched
    suite = SuiteSpec(id="two", entries=(SuiteEntry(tasks=("quadratic",), methods=("sleepy-gd",), frameworks=("jax",)),))
    empty = make_plan(test_catalog, suite=suite, frameworks=["torch"])
    assert empty.runs == [] and empty.why_empty() == "framework 'torch' is not in suite 'two' (it has: jax)"
