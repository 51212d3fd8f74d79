"""suites/seeds.yaml covers the whole catalog; every probe and stochastic variant it declares plans."""

from __future__ import annotations

from harness.catalog import Catalog
from harness.plan import make_plan
from harness.probes import PROBES


def test_seeds_suite_covers_every_task_method_and_probe() -> None:
    catalog = Catalog.load()
    plan = make_plan(catalog, suite="seeds")
    assert {r.task for r in plan.runs} == set(catalog.tasks)
    assert {r.method for r in plan.runs} == set(catalog.methods)
    assert {p.id for r in plan.runs for p in r.probes} == set(PROBES)
    assert {r.seed for r in plan.runs} == {0, 1, 2, 3, 4}
    # The only skips are single-framework methods, each with its reason.
    assert {(s.method, s.framework) for s in plan.skipped} <= {("lbfgs", "jax"), ("dcdm", "jax")}
    # Full batch and mini-batch of the same method on the same task.
    batch = {(r.task, r.method, r.task_params.get("batch_size")) for r in plan.runs}
    assert ("logreg", "gd", 0) in batch and ("logreg", "gd", 100) in batch
    # Every GNS-Newton curvature model, and every entry's paper is cited.
    assert {r.hyperparameters["hessian"] for r in plan.runs if r.method == "gns-newton"} == {
        "exact", "gauss-newton", "fisher"}
    for entry in list(catalog.tasks.values()) + list(catalog.methods.values()):
        assert entry.spec.paper.strip()


def test_ghost_spike_suite_plans_the_scenario() -> None:
    catalog = Catalog.load()
    plan = make_plan(catalog, suite="ghost-spike")
    assert {r.method for r in plan.runs} == {"ghost-step", "gd-spike"} and not plan.skipped
    spiked = [r for r in plan.runs if r.hyperparameters["spike_factor"] == 1000.0]
    assert len(spiked) == len(plan.runs) // 2 and all(r.probes[0].id == "ghost-radius" for r in plan.runs)
