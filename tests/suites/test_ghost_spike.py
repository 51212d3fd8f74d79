"""The ghost-spike scenario from its YAML: real runs, assertions on their statuses and traces."""

from __future__ import annotations

import pytest

from harness.catalog import Catalog
from harness.plan import make_plan
from harness.run import execute_run



@pytest.fixture(scope="module")
def results():
    catalog = Catalog.load()
    plan = make_plan(catalog, suite="ghost-spike", seeds=1)
    assert not plan.skipped
    out = {}
    for run in plan.runs:
        spiked = run.hyperparameters["spike_factor"] != 1.0
        out[(run.method, run.framework, spiked)] = execute_run(run, catalog)
    return out


@pytest.mark.parametrize("framework", ["torch", "jax"])
def test_ghost_step_survives_the_spike_that_makes_gd_diverge(results, framework: str) -> None:
    ghost, gd = results[("ghost-step", framework, True)], results[("gd-spike", framework, True)]
    assert gd.status == "diverged", gd.row["error"]
    assert gd.row["steps"] < 60  # it blew up during the spike (steps 20..39)
    assert ghost.status in ("completed", "reached_target"), ghost.row["error"]
    assert ghost.row["steps"] == 200
    # Survived, not merely finite: as close to f* as the unspiked runs.
    calm = results[("gd-spike", framework, False)]
    assert calm.status == "completed"
    assert ghost.row["suboptimality"] <= 1.5 * calm.row["suboptimality"] < 1e-3


@pytest.mark.parametrize("framework", ["torch", "jax"])
def test_ghost_radius_probe_sees_the_cap(results, framework: str) -> None:
    ghost, gd = results[("ghost-step", framework, True)], results[("gd-spike", framework, True)]
    spiked = [p for p in ghost.trace if 20 <= p["step"] < 40]
    assert spiked and all(p["ghost-radius/r"] <= 1 + 1e-9 for p in spiked)
    assert max(p["ghost-radius/r"] for p in spiked) == pytest.approx(1.0, rel=1e-9)  # the cap binds
    assert max(p["ghost-radius/r"] for p in gd.trace if 20 <= p["step"] < 40) > 100
    calm = results[("ghost-step", framework, False)]
    assert all(p["ghost-radius/r"] < 1 for p in calm.trace[1:])  # at lr 3 the cap never binds


@pytest.mark.parametrize("framework", ["torch", "jax"])
def test_ghost_radius_measures_the_step_taken(results, framework: str) -> None:
    """r is the step the method took over rho_a: at step 0 none was taken (no value, not the
    proposal -lr g with r = 3.85); after it ghost-step's every step is within the radius, while
    gd-spike's spiked steps leave it."""
    for key in [(m, framework, s) for m in ("ghost-step", "gd-spike") for s in (True, False)]:
        first = results[key].trace[0]
        assert first["step"] == 0 and not any(name.startswith("ghost-radius/") for name in first)
    ghost, gd = results[("ghost-step", framework, True)], results[("gd-spike", framework, True)]
    measured = [p for p in ghost.trace if "ghost-radius/r" in p]
    assert len(measured) == len(ghost.trace) - 1 and measured[0]["step"] > 0
    assert max(p["ghost-radius/r"] for p in measured) <= 1 + 1e-9
    spiked = [p["ghost-radius/r"] for p in gd.trace if 20 <= p["step"] < 40 and "ghost-radius/r" in p]
    assert spiked and all(r > 1 for r in spiked)
