"""The scorer's views for the leaderboard's plots and comparisons, on hand-made tables.

- convergence bands: one line per configuration (a sweep's settings apart), a failed run's
  line ends at its last point, relative values, log-spaced grids;
- configuration and comparison labels name what varies;
- the framework comparison: median finals, relative differences and speed-ups computed by hand.
"""

from __future__ import annotations

import json
import math

import numpy as np
import polars as pl
import pytest
from test_scoring_rules import runs_frame

from harness import score


def _traces(points: dict[str, list[tuple[float, float]]]) -> pl.DataFrame:
    rows = [{"run_id": r, "step": int(x), "time_s": x, "suboptimality": v} for r, pts in points.items() for x, v in pts]
    return pl.DataFrame(rows)


def test_bands_keep_each_hyperparameter_setting_apart() -> None:
    spiked, control = json.dumps({"lr": 3.0, "spike": 1000.0}), json.dumps({"lr": 3.0, "spike": 1.0})
    runs = runs_frame([{"task": "t", "method": "gd", "hyperparameters": h, "seed": s}
                       for h in (spiked, control) for s in (0, 1)])
    traces = _traces({"r0": [(1, 1e8)], "r1": [(1, 1e6)], "r2": [(1, 1e-4)], "r3": [(1, 1e-2)]})
    bands = score.convergence_bands(traces, runs)
    by = {row["label"]: row for row in bands.iter_rows(named=True)}
    assert set(by) == {"gd [spike=1000]", "gd [spike=1]"}  # never one band from 1e-4 to 1e8
    assert by["gd [spike=1000]"]["median"] == pytest.approx(np.median([1e8, 1e6]))
    assert by["gd [spike=1]"]["median"] == pytest.approx(np.median([1e-4, 1e-2]))


def test_a_failed_runs_line_ends_where_it_failed_and_a_finished_one_holds() -> None:
    runs = runs_frame([{"task": "t", "method": "a", "status": "diverged"},
                       {"task": "t", "method": "b", "status": "completed"}])
    traces = _traces({"r0": [(0, 1.0), (1, 10.0)], "r1": [(0, 1.0), (1, 0.5), (2, 0.25), (3, 0.125)]})
    bands = score.convergence_bands(traces, runs, x="step")
    xs = {m: g["x"].to_list() for (m,), g in bands.group_by("method")}
    assert xs == {"a": [0.0, 1.0], "b": [0.0, 1.0, 2.0, 3.0]}


def test_relative_values_are_over_each_runs_first() -> None:
    runs = runs_frame([{"task": "t", "method": "a", "seed": s} for s in (0, 1)])
    traces = _traces({"r0": [(0, 4.0), (1, 1.0)], "r1": [(0, 100.0), (1, 1.0)]})
    bands = score.convergence_bands(traces, runs, x="step", relative=True).filter(pl.col("x") == 1.0).row(0, named=True)
    assert bands["lo"] == pytest.approx(0.01) and bands["hi"] == pytest.approx(0.25)
    assert bands["median"] == pytest.approx(np.median([0.25, 0.01]))


def test_a_log_grid_is_log_spaced_over_the_positive_runtimes() -> None:
    runs = runs_frame([{"task": "t", "method": "a"}])
    traces = _traces({"r0": [(x, 1.0 / (1 + x)) for x in np.linspace(0.0, 1000.0, 2001)]})
    xs = score.convergence_bands(traces, runs, points=20, grid="log")["x"].to_numpy()
    assert len(xs) == 20 and xs[0] == pytest.approx(0.5) and xs[-1] == pytest.approx(1000.0)
    assert np.allclose(np.diff(np.log(xs)), np.log(1000.0 / 0.5) / 19)


def test_configuration_labels_name_only_what_varies() -> None:
    frame = pl.DataFrame({"method": ["gd", "gd", "adam", "adam"], "framework": ["torch", "torch", "torch", "jax"],
                          "hyperparameters": ['{"lr":0.1,"b":1}', '{"lr":0.2,"b":1}', '{"lr":0.1}', '{"lr":0.1}']})
    assert score.configuration_labels(frame).to_list() == ["gd/torch [lr=0.1]", "gd/torch [lr=0.2]", "adam/torch",
                                                          "adam/jax"]
    compared = frame.with_columns(task=pl.lit("t"), task_params=pl.lit("{}"), hardware=pl.lit("cpu"))
    labels = score.comparison_labels(compared, group="framework")["label"].to_list()
    assert labels == ["gd [lr=0.1]", "gd [lr=0.2]", "adam", "adam"]  # the framework is the group, not the label


def test_framework_comparison_by_hand() -> None:
    rows = []
    # gd in both frameworks (2 seeds each); adam only in torch (no pair: left out); a failed jax run is not a final.
    for framework, objective, timed in (("torch", (1.0, 3.0), (2.0, 2.0)), ("jax", (1.0 + 1e-12, 3.0), (0.5, 1.5))):
        for seed in (0, 1):
            rows.append({"task": "t", "method": "gd", "framework": framework, "seed": seed, "status": "completed",
                         "objective": objective[seed], "timed_s": timed[seed], "init_s": 0.0, "output_s": 0.0,
                         "steps": 10})
    rows.append({"task": "t", "method": "gd", "framework": "jax", "seed": 2, "status": "diverged",
                 "objective": math.inf, "timed_s": 9.0, "init_s": 0.0, "output_s": 0.0, "steps": 3})
    rows.append({"task": "t", "method": "adam", "framework": "torch", "seed": 0, "status": "completed",
                 "objective": 1.0, "timed_s": 1.0, "init_s": 0.0, "output_s": 0.0, "steps": 10})
    base = runs_frame([{k: v for k, v in r.items() if k in ("task", "method", "framework", "seed", "status")}
                       for r in rows])
    extra = pl.DataFrame([{k: r[k] for k in ("objective", "timed_s", "init_s", "output_s", "steps")} for r in rows])
    runs = pl.concat([base, extra], how="horizontal")
    table = score.framework_comparison(runs, values=("objective",))
    assert table["method"].to_list() == ["gd", "gd"] and table["framework"].to_list() == ["torch", "jax"]
    torch_row, jax_row = table.row(0, named=True), table.row(1, named=True)
    assert (torch_row["median_objective"], torch_row["rel_diff_objective"], torch_row["speedup_per_step"]) == (2.0, 0.0,
                                                                                                           1.0)
    torch_final, jax_final = np.median([1.0, 3.0]), np.median([1.0 + 1e-12, 3.0])
    assert jax_row["median_objective"] == pytest.approx(jax_final)
    assert jax_row["rel_diff_objective"] == pytest.approx(abs(jax_final - torch_final) / max(jax_final, torch_final))
    # time per step: torch median 0.2 s, jax median over its finished runs of (0.05, 0.15) = 0.1 s: 2x faster
    assert jax_row["speedup_per_step"] == pytest.approx(0.2 / 0.1) and jax_row["n_runs"] == 3


def test_values_at_rounding_level_agree() -> None:
    rows = [{"task": "t", "method": "n", "framework": f, "status": "completed", "suboptimality": v}
            for f, v in (("torch", -1.1e-16), ("jax", -5.6e-17))]
    table = score.framework_comparison(runs_frame(rows), values=("suboptimality",))
    jax_row = table.filter(pl.col("framework") == "jax").row(0, named=True)
    # |a - b| over the floor, not over 1e-16: both are zero to rounding
    assert jax_row["rel_diff_suboptimality"] == pytest.approx(5.4e-17 / score.AGREEMENT_FLOOR)
    assert jax_row["rel_diff_suboptimality"] < 1e-4
