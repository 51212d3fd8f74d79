"""Scoring against hand-computed cases: medians, intervals, ties, profiles, scores, ECDFs."""

from __future__ import annotations

import math

import numpy as np
import polars as pl
import pytest

from harness import score

INF = math.inf


def runs_frame(rows: list[dict]) -> pl.DataFrame:
    """Runs with the columns scoring reads; defaults for the rest."""
    base = {
        "task_params": "{}", "hardware": "cpu", "framework": "torch", "hyperparameters": "{}",
        "status": "reached_target", "time_to_target_s": None, "steps_to_target": None,
        "suboptimality": 1e-9, "target_value": 1e-8, "seed": 0,
        "metrics": '{"objective": {"lower_is_better": true, "unit": "nats"},'
                   ' "suboptimality": {"lower_is_better": true, "unit": "nats"}}',
    }
    full = [{**base, "run_id": f"r{i}", **row} for i, row in enumerate(rows)]
    schema = {"run_id": pl.String, "task": pl.String, "method": pl.String, "task_params": pl.String,
              "hardware": pl.String, "framework": pl.String, "hyperparameters": pl.String, "status": pl.String,
              "time_to_target_s": pl.Float64, "steps_to_target": pl.Int64, "suboptimality": pl.Float64,
              "target_value": pl.Float64, "seed": pl.Int64, "metrics": pl.String}
    return pl.DataFrame(full, schema=schema)


def timed(task: str, method: str, seconds: float | None, **extra) -> dict:
    """A run that reached its target after ``seconds`` (``None``: it did not)."""
    status = "reached_target" if seconds is not None else "completed"
    return {"task": task, "method": method, "time_to_target_s": seconds, "status": status, **extra}


# -- medians and failures ---------------------------------------------------------------------


def test_failures_count_as_infinite_and_are_shown() -> None:
    runs = runs_frame([
        timed("t", "a", 1.0, seed=0, suboptimality=1e-9),
        timed("t", "a", 2.0, seed=1, suboptimality=2e-9),
        {"task": "t", "method": "a", "status": "error", "seed": 2, "suboptimality": None},
        {"task": "t", "method": "b", "status": "diverged", "seed": 0, "suboptimality": float("nan")},
        {"task": "t", "method": "b", "status": "error", "seed": 1, "suboptimality": None},
        timed("t", "b", 5.0, seed=2, suboptimality=3e-9),
        {"task": "t", "method": "c", "status": "skipped", "seed": 0, "suboptimality": None},
    ])
    table = score.medians(runs).sort("method")
    a, b, c = table.iter_rows(named=True)
    assert (a["n_runs"], a["n_reached"], a["n_failed"], a["n_skipped"]) == (3, 2, 1, 0)
    assert a["median_time_to_target_s"] == 2.0  # median of 1, 2, inf
    assert a["median_suboptimality"] == 2e-9  # median of 1e-9, 2e-9, inf
    assert a["failures"] == "error×1"
    assert b["median_time_to_target_s"] == INF and b["median_suboptimality"] == INF  # two of three failed
    assert b["failures"] == "diverged×1, error×1"
    assert (c["n_runs"], c["n_skipped"]) == (0, 1)
    assert c["median_time_to_target_s"] is None


def test_unreached_target_is_infinite_time_but_keeps_its_suboptimality() -> None:
    runs = runs_frame([timed("t", "a", None, suboptimality=1e-3), timed("t", "a", None, seed=1, suboptimality=3e-3)])
    row = score.medians(runs).row(0, named=True)
    assert row["median_time_to_target_s"] == INF
    assert row["median_suboptimality"] == pytest.approx(2e-3)
    assert row["n_failed"] == 0


# -- bootstrap intervals ----------------------------------------------------------------------


def test_bootstrap_interval_covers_the_true_median_about_95_percent() -> None:
    rng = np.random.default_rng(12345)
    true_median = math.log(2.0)  # of the unit exponential
    samples = [rng.exponential(size=21) for _ in range(400)]
    ci = score.bootstrap_median_ci(samples, n_boot=1000, level=0.95, seed=7)
    coverage = np.mean((ci[:, 0] <= true_median) & (true_median <= ci[:, 1]))
    assert 0.90 <= coverage <= 0.99, coverage
    assert np.all(ci[:, 0] <= ci[:, 1])


def test_bootstrap_interval_with_infinite_values_never_turns_nan() -> None:
    ci = score.bootstrap_median_ci([[1.0, 2.0, INF, INF, INF], [INF, INF], [3.0], [], [1.0, INF]], n_boot=500)
    assert ci[0, 1] == INF and math.isfinite(ci[0, 0])
    assert list(ci[1]) == [INF, INF]
    assert list(ci[2]) == [3.0, 3.0]  # one seed: the interval collapses to the value
    assert np.isnan(ci[3]).all()
    assert not np.isnan(ci[4]).any()


def test_bootstrap_is_reproducible_and_narrows_with_more_seeds() -> None:
    rng = np.random.default_rng(0)
    small, large = rng.normal(size=5), rng.normal(size=200)
    first = score.bootstrap_median_ci([small, large], seed=3)
    again = score.bootstrap_median_ci([small, large], seed=3)
    assert np.array_equal(first, again)
    assert first[1, 1] - first[1, 0] < first[0, 1] - first[0, 0]


# -- ranks and ties ---------------------------------------------------------------------------


def test_overlapping_intervals_are_ties_and_separated_ones_rank_apart() -> None:
    rows = []
    for seed, (a, b, c) in enumerate([(1.0, 1.05, 10.0), (1.1, 0.95, 11.0), (0.9, 1.0, 12.0), (1.0, 1.02, 10.5)]):
        rows += [timed("t", "a", a, seed=seed), timed("t", "b", b, seed=seed), timed("t", "c", c, seed=seed)]
    table = score.task_table(runs_frame(rows), n_boot=500)
    by = {r["method"]: r for r in table.iter_rows(named=True)}
    assert by["a"]["tied"] and by["b"]["tied"] and not by["c"]["tied"]
    assert by["a"]["tied_with"] == "b" and by["b"]["tied_with"] == "a"
    assert by["a"]["stat_rank"] == by["b"]["stat_rank"] == 1
    assert by["c"]["stat_rank"] == 3 and by["c"]["rank"] == 3
    assert {by["a"]["rank"], by["b"]["rank"]} == {1, 2}
    assert by["c"]["time_to_target_lo"] >= 10.0 and by["c"]["time_to_target_hi"] <= 12.0


def test_when_no_one_reaches_the_target_suboptimality_decides() -> None:
    rows = []
    for seed in range(4):
        rows += [timed("t", "good", None, seed=seed, suboptimality=1e-4 * (1 + seed / 10)),
                 timed("t", "bad", None, seed=seed, suboptimality=1e-1 * (1 + seed / 10)),
                 {"task": "t", "method": "broken", "status": "error", "seed": seed, "suboptimality": None}]
    by = {r["method"]: r for r in score.task_table(runs_frame(rows), n_boot=500).iter_rows(named=True)}
    assert [by[m]["rank"] for m in ("good", "bad", "broken")] == [1, 2, 3]
    assert [by[m]["stat_rank"] for m in ("good", "bad", "broken")] == [1, 2, 3]
    assert not any(by[m]["tied"] for m in by)
    assert by["broken"]["suboptimality_lo"] == INF and by["broken"]["n_failed"] == 4


def test_a_target_reached_ranks_first_but_one_seed_shows_no_significance() -> None:
    table = score.task_table(runs_frame([timed("t", "a", 3.0), {"task": "t", "method": "b", "status": "oom"}]))
    by = {r["method"]: r for r in table.iter_rows(named=True)}
    assert (by["a"]["rank"], by["b"]["rank"]) == (1, 2)
    assert (by["a"]["stat_rank"], by["b"]["stat_rank"]) == (1, 1)  # 1 seed < MIN_SEEDS_FOR_SIGNIFICANCE
    assert by["a"]["tied_with"] == "" and by["a"]["significance"].startswith("1 seed")
    assert by["b"]["failures"] == "oom×1" and by["b"]["median_time_to_target_s"] == INF


def test_only_skipped_configurations_get_no_rank() -> None:
    table = score.task_table(runs_frame([timed("t", "a", 1.0), {"task": "t", "method": "s", "status": "skipped"}]))
    skipped = table.filter(pl.col("method") == "s").row(0, named=True)
    assert skipped["rank"] is None and skipped["tied"] is False and skipped["n_skipped"] == 1


def test_labels_name_the_framework_when_a_problem_has_several() -> None:
    rows = [timed("t", "a", 1.0, framework="torch"), timed("t", "a", 1.0, framework="jax")]
    assert sorted(score.task_table(runs_frame(rows))["label"].to_list()) == ["a/jax", "a/torch"]


# -- performance profiles ---------------------------------------------------------------------


def profile_runs() -> pl.DataFrame:
    """Three problems, two solvers; ratios A: 1, 3, inf and B: 2, 1, 1."""
    return runs_frame([
        timed("p1", "A", 1.0), timed("p1", "B", 2.0),
        timed("p2", "A", 6.0), timed("p2", "B", 2.0),
        {"task": "p3", "method": "A", "status": "diverged"}, timed("p3", "B", 4.0),
        timed("no-target", "A", None, target_value=None), timed("no-target", "B", None, target_value=None),
    ])


def test_profile_ratios_values_and_score_match_hand_computation() -> None:
    ratios = score.performance_ratios(score.medians(profile_runs()))
    got = {(r["task"], r["method"]): r["ratio"] for r in ratios.iter_rows(named=True)}
    assert got == {("p1", "A"): 1.0, ("p1", "B"): 2.0, ("p2", "A"): 3.0, ("p2", "B"): 1.0,
                   ("p3", "A"): INF, ("p3", "B"): 1.0}  # the task without a target is left out
    profiles = score.performance_profiles(ratios, taus=[1.0, 1.99, 2.0, 3.0, 4.0])
    rho = {(r["method"], r["tau"]): r["rho"] for r in profiles.iter_rows(named=True)}
    assert [rho[("A", t)] for t in (1.0, 1.99, 2.0, 3.0, 4.0)] == pytest.approx([1 / 3, 1 / 3, 1 / 3, 2 / 3, 2 / 3])
    assert [rho[("B", t)] for t in (1.0, 1.99, 2.0, 3.0, 4.0)] == pytest.approx([2 / 3, 2 / 3, 1, 1, 1])
    scores = score.profile_scores(ratios)
    assert scores["method"].to_list() == ["B", "A"]
    # A: (1/3) * [(4-1)/3 + (4-3)/3 + 0] = 4/9;  B: (1/3) * [(4-2)/3 + 1 + 1] = 8/9
    assert scores["score"].to_list() == pytest.approx([8 / 9, 4 / 9])
    assert scores["solved"].to_list() == pytest.approx([1.0, 2 / 3])
    assert scores["wins"].to_list() == pytest.approx([2 / 3, 1 / 3])
    assert scores["rank"].to_list() == [1, 2]


def test_score_is_the_normalized_area_under_the_profile() -> None:
    ratios = score.performance_ratios(score.medians(profile_runs()))
    dense = score.performance_profiles(ratios, taus=np.linspace(1.0, 4.0, 30001))
    for method, exact in score.profile_scores(ratios).select("method", "score").iter_rows():
        curve = dense.filter(pl.col("method") == method)
        area = np.trapezoid(curve["rho"].to_numpy(), curve["tau"].to_numpy()) / 3.0
        assert area == pytest.approx(exact, abs=1e-3)


def test_absent_solver_fails_the_problem_and_unsolved_problems_score_zero() -> None:
    runs = runs_frame([
        timed("p1", "A", 1.0), timed("p1", "B", 1.0), timed("p2", "A", 1.0),
        {"task": "p3", "method": "A", "status": "error"}, {"task": "p3", "method": "B", "status": "timeout"},
    ])
    ratios = score.performance_ratios(score.medians(runs))
    assert ratios.filter((pl.col("task") == "p2") & (pl.col("method") == "B"))["ratio"].item() == INF
    assert ratios.filter(pl.col("task") == "p3")["ratio"].to_list() == [INF, INF]
    scores = {m: s for m, s in score.profile_scores(ratios).select("method", "score").iter_rows()}
    assert scores == pytest.approx({"A": 2 / 3, "B": 1 / 3})


def test_best_hyperparameter_setting_counts_for_a_solver() -> None:
    runs = runs_frame([
        timed("p", "A", 8.0, hyperparameters='{"lr": 0.1}'), timed("p", "A", 2.0, hyperparameters='{"lr": 1}'),
        timed("p", "B", 4.0),
    ])
    ratios = score.performance_ratios(score.medians(runs))
    assert dict(ratios.select("method", "ratio").iter_rows()) == {"A": 1.0, "B": 2.0}


def test_steps_can_be_the_measure() -> None:
    runs = runs_frame([timed("p", "A", 1.0, steps_to_target=30), timed("p", "B", 9.0, steps_to_target=10)])
    ratios = score.performance_ratios(score.medians(runs), measure="median_steps_to_target")
    assert dict(ratios.select("method", "ratio").iter_rows()) == {"A": 3.0, "B": 1.0}


# -- ECDF -------------------------------------------------------------------------------------


def test_ecdf_counts_targets_met_by_best_so_far() -> None:
    runs = runs_frame([
        {"task": "p", "method": "A", "status": "completed", "seed": 0},
        {"task": "p", "method": "A", "status": "error", "seed": 1, "suboptimality": None},
        {"task": "p", "method": "B", "status": "completed", "seed": 0},
        {"task": "q", "method": "A", "status": "completed", "seed": 0, "suboptimality": None},
    ])
    traces = pl.DataFrame({
        "run_id": ["r0", "r0", "r0", "r0", "r2", "r2", "r3"],
        "time_s": [0.0, 1.0, 2.0, 3.0, 0.0, 5.0, 1.0],
        "step": [0, 10, 20, 30, 0, 50, 10],
        "suboptimality": [1e3, 10.0, 1e-8, 5.0, 1e3, 1e-1, None],
    })
    curve = score.ecdf(traces, runs)
    a = curve.filter(pl.col("method") == "A")
    # Targets are relative to each run's initial suboptimality (here 1e3) since the ECDF stopped
    # using absolute ones; each curve now starts at its first point (t=0) with nothing met.
    # Problem q measured no suboptimality: left out. A's pairs on p: its 2 runs x 40 targets.
    # r0 meets 10**-0.2..1e-2 relative (10 targets) at t=1 and all 40 at t=2; the error run r1 meets none.
    assert a["x"].to_list() == [0.0, 1.0, 2.0]
    assert a["fraction"].to_list() == pytest.approx([0.0, 10 / 80, 40 / 80])
    assert a["n_problems"].unique().to_list() == [1]  # q (unmeasured) is not one of A's problems
    b = curve.filter(pl.col("method") == "B")
    # B meets 10**-0.2..1e-4 relative (20 targets) at t=5, out of its own 1 run x 40 targets.
    assert b["fraction"].to_list() == pytest.approx([0.0, 20 / 40])
    by_step = score.ecdf(traces, runs, x="step").filter(pl.col("method") == "A")
    assert by_step["x"].to_list() == [0.0, 10.0, 20.0]


def test_ecdf_targets_are_40_log_spaced_below_1_down_to_1e_minus_8() -> None:
    # Was 51 absolute targets 1e2..1e-8; now relative to the initial suboptimality, all below 1.
    targets = np.asarray(score.ECDF_TARGETS)
    assert targets.size == 40 and targets[0] == pytest.approx(10 ** -0.2) and targets[-1] == pytest.approx(1e-8)
    assert np.allclose(np.diff(np.log10(targets)), -0.2)


def test_ecdf_summary_area_over_log_runtime() -> None:
    curve = pl.DataFrame({"method": ["A"] * 3, "framework": ["torch"] * 3, "x": [1.0, 10.0, 100.0],
                          "fraction": [0.2, 0.6, 1.0]})
    row = score.ecdf_summary(curve).row(0, named=True)
    assert row["ecdf_final"] == 1.0
    assert row["ecdf_area"] == pytest.approx((0.2 + 0.6) / 2)


# -- the report -------------------------------------------------------------------------------


def test_report_tables() -> None:
    runs = profile_runs()
    traces = pl.DataFrame({"run_id": ["r0", "r1"], "time_s": [1.0, 2.0], "step": [1, 2],
                           "suboptimality": [1e-9, 1e-9]})
    tables = score.report(runs, traces=traces, n_boot=200)
    assert set(tables) == {"tasks", "problems", "scores", "profiles", "ecdf"}
    assert tables["tasks"].height == 8
    problems = tables["problems"]  # one row per problem, its rank-1 configuration
    assert problems.height == tables["tasks"].select(score.PROBLEM_KEYS).unique().height
    assert problems["n_configurations"].sum() == 8 and problems["n_runs"].sum() == tables["tasks"]["n_runs"].sum()
    firsts = tables["tasks"].filter(pl.col("rank") == 1).sort(score.PROBLEM_KEYS)
    assert problems["best"].to_list() == firsts["label"].to_list()
    assert problems["median_time_to_target_s"].to_list() == firsts["median_time_to_target_s"].to_list()
    assert tables["profiles"].columns == ["method", "framework", "rho@1", "rho@1.5", "rho@2", "rho@3", "rho@4"]
    assert tables["profiles"].filter(pl.col("method") == "A")["rho@3"].item() == pytest.approx(2 / 3)
    assert tables["tasks"]["unit"].unique().to_list() == ["nats"]
    assert set(score.LABELS) >= {"score", "median_suboptimality", "median_time_to_target_s"}


def test_report_of_an_empty_store() -> None:
    tables = score.report(runs_frame([]).clear())
    assert all(t.is_empty() for t in tables.values())


def test_profile_steps_are_the_profile_at_its_breakpoints() -> None:
    ratios = score.performance_ratios(score.medians(profile_runs()))
    steps = score.profile_steps(ratios)
    got = {m: (g["tau"].to_list(), g["rho"].to_list()) for (m,), g in steps.group_by("method", maintain_order=True)}
    assert got["A"][0] == [1.0, 3.0, 4.0] and got["A"][1] == pytest.approx([1 / 3, 2 / 3, 2 / 3])
    assert got["B"][0] == [1.0, 2.0, 4.0] and got["B"][1] == pytest.approx([2 / 3, 1.0, 1.0])
    full = score.performance_profiles(ratios, taus=steps["tau"].unique())
    assert steps.join(full, on=["method", "framework", "tau"])["rho"].to_list() == pytest.approx(
        steps.join(full, on=["method", "framework", "tau"])["rho_right"].to_list()
    )


@pytest.mark.parametrize("size", [1, 2, 5, 6, 11])
def test_bootstrap_bounds_equal_brute_force_resampling(size: int) -> None:
    rng = np.random.default_rng(size)
    samples = rng.lognormal(size=(30, size))
    samples[::7, -1] = INF  # failures
    got = score.bootstrap_median_ci(list(samples), n_boot=400, level=0.9, seed=5)
    draws = np.random.default_rng(5).integers(0, size, size=(400, size))
    for row, (lo, hi) in zip(samples, got):
        boot = np.sort(np.median(np.sort(row)[draws], axis=1))
        assert (lo, hi) == (boot[int(np.floor(0.05 * 400))], boot[int(np.ceil(0.95 * 400)) - 1])


def test_ecdf_summary_lists_solvers_that_met_nothing() -> None:
    curve = pl.DataFrame({"method": ["A"], "framework": ["torch"], "x": [1.0], "fraction": [0.5]})
    solvers = pl.DataFrame({"method": ["A", "Z"], "framework": ["torch", "torch"]})
    table = score.ecdf_summary(curve, solvers=solvers)
    assert table["method"].to_list() == ["A", "Z"] and table["ecdf_final"].to_list() == [0.5, 0.0]


def test_display_tables_are_text_with_labels() -> None:
    shown = score.display_tables(score.report(profile_runs(), n_boot=100))
    assert set(shown) == {"scores", "profiles", "tasks", "problems"}
    p3 = shown["problems"].filter(pl.col("problem") == "p3@cpu").row(0, named=True)
    assert p3["configurations"] == "2" and p3["failed ↓"] == "1" and p3["best"] == "B"
    assert shown["scores"].columns[:4] == ["rank", "method", "framework", "profile score ↑ [0-1]"]
    assert shown["scores"]["profile score ↑ [0-1]"].to_list() == ["0.8889", "0.4444"]
    tasks = shown["tasks"]
    assert all(dtype == pl.String for dtype in tasks.dtypes)
    p3a = tasks.filter((pl.col("problem") == "p3@cpu") & (pl.col("method") == "A")).row(0, named=True)
    assert p3a["time to target ↓ [s]"] == "inf" and p3a["time CI [s]"] == "[inf, inf]"
    assert p3a["failures"] == "diverged×1"


def test_a_zero_best_time_gives_no_nan_ratio() -> None:
    runs = runs_frame([timed("p", "A", 0.0), timed("p", "B", 0.0), timed("p", "C", 2.0)])
    ratios = score.performance_ratios(score.medians(runs))
    assert dict(ratios.select("method", "ratio").iter_rows()) == {"A": 1.0, "B": 1.0, "C": INF}


def test_problem_labels_name_only_the_parameters_that_vary() -> None:
    frame = pl.DataFrame({
        "task": ["logreg", "logreg", "softmax"],
        "task_params": ['{"dataset": "digits", "n": 1000}', '{"dataset": "synthetic", "n": 1000}', '{"n": 1000}'],
        "hardware": ["cpu", "gpu", "cpu"],
    })
    assert score.problem_labels(frame).to_list() == [
        "logreg[dataset=digits]@cpu", "logreg[dataset=synthetic]@gpu", "softmax@cpu",
    ]
    assert score.varying_parameters([("t", '{"n": 1, "d": 2}'), ("t", '{"n": 3, "d": 2}')]) == {"t": {"n"}}


def test_prepare_fills_the_records_columns_with_their_kinds() -> None:
    runs = runs_frame([timed("t", "a", 1.0)]).drop("suboptimality", "steps_to_target")
    prepared = score.prepare(runs).collect()
    from harness.record import RUN_COLUMNS

    assert set(RUN_COLUMNS) | {"suboptimality"} <= set(prepared.columns)
    assert prepared.schema["suboptimality"] == pl.Float64 and prepared.schema["clock_compiles"] == pl.Int64
    assert prepared["scored_suboptimality"].to_list() == [None] and prepared["counted"].to_list() == [True]


def test_a_parameter_missing_from_some_rows_varies() -> None:
    assert score.varying_parameters(iter([("m", '{"lr": 1}'), ("m", '{"lr": 1, "b": 2}')])) == {"m": {"b"}}
    frame = pl.DataFrame({"method": ["m", "m", "n"], "hyperparameters": ['{"lr":3.0,"s":50}', '{"lr":3.0,"s":0}', '{"lr":1}']})
    assert score.setting_labels(frame).to_list() == ["s=50", "s=0", ""]


def test_probe_columns_are_the_measured_ones_of_a_collected_frame() -> None:
    # A compacted part holds every merged task's columns: another task's metric is all null here.
    traces = pl.DataFrame({"step": [0, 1], "objective": [2.0, 1.0], "hessian-top/lambda_1": [3.0, 2.5],
                           "overlap": [None, None]}, schema_overrides={"overlap": pl.Float64})
    assert score.probe_columns(traces) == ["hessian-top/lambda_1"]
    assert score.probe_columns(traces.lazy()) == ["hessian-top/lambda_1", "overlap"]  # a schema alone cannot tell
