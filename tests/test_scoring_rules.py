"""Scoring rules on small hand-made tables; expected values computed apart (plain Python / numpy).

1. ECDF over a configuration's own runs, a sweep shown as its best setting (as the profiles).
2. Significance: none below MIN_SEEDS_FOR_SIGNIFICANCE; a test with a measured false-positive rate.
3. A problem whose runs were all skipped is left out of the performance profiles.
4. A higher-is-better target metric ranks configurations when no suboptimality is measured;
   convergence bands map non-finite values to the worst of the metric's direction.
5. A timeout keeps its measured suboptimality; only its time to target is infinite.
"""

from __future__ import annotations

import itertools
import json
import math

import numpy as np
import polars as pl
import pytest

from harness import score

INF = math.inf
SUB_METRICS = {"objective": {"lower_is_better": True, "unit": "nats"},
               "suboptimality": {"lower_is_better": True, "unit": "nats"}}
ACC_METRICS = {"test_accuracy": {"lower_is_better": False, "unit": "fraction"},
               "test_loss": {"lower_is_better": True, "unit": "nats"}}


def runs_frame(rows: list[dict]) -> pl.DataFrame:
    """Runs with the columns :func:`harness.score.prepare` reads; defaults for the rest."""
    base = {
        "task_params": "{}", "hardware": "cpu", "framework": "torch", "hyperparameters": "{}",
        "status": "reached_target", "time_to_target_s": None, "steps_to_target": None,
        "suboptimality": 1e-9, "target_metric": "suboptimality", "target_value": 1e-8, "seed": 0,
        "test_accuracy": None, "metrics": json.dumps(SUB_METRICS),
    }
    full = [{**base, "run_id": f"r{i}", **row} for i, row in enumerate(rows)]
    schema = {"run_id": pl.String, "task": pl.String, "method": pl.String, "task_params": pl.String,
              "hardware": pl.String, "framework": pl.String, "hyperparameters": pl.String, "status": pl.String,
              "time_to_target_s": pl.Float64, "steps_to_target": pl.Int64, "suboptimality": pl.Float64,
              "target_metric": pl.String, "target_value": pl.Float64, "seed": pl.Int64,
              "test_accuracy": pl.Float64, "metrics": pl.String}
    return pl.DataFrame(full, schema=schema)


def by_method(table: pl.DataFrame) -> dict[str, dict]:
    return {r["method"]: r for r in table.iter_rows(named=True)}


# -- 1. ECDF over a configuration's own runs --------------------------------------------------


def _reference_ecdf(traces: dict[str, list[tuple[float, float]]], runs_of: dict[str, list[list[str]]],
                    xs: list[float]) -> list[float]:
    """Mean over the solver's problems of the fraction of (own run, target) pairs met by time x; plain Python.

    Targets are on the suboptimality over the run's initial one (its first point), 10**-0.2 .. 1e-8;
    the mean is over the problems the solver ran (``runs_of``), not over all problems.
    """
    targets = [10.0 ** (-k / 5) for k in range(1, 41)]
    out = []
    for x in xs:
        total = 0.0
        for runs in runs_of.values():  # one problem: the solver's chosen configuration's runs
            met = 0
            for run in runs:
                initial = traces[run][0][1]
                best = min([v / initial for t, v in traces[run] if t <= x], default=INF)
                met += sum(1 for target in targets if best <= target)
            total += met / (len(runs) * len(targets))
        out.append(total / len(runs_of))
    return out


def test_ecdf_is_over_the_solvers_own_runs_and_a_sweep_shows_its_best_setting() -> None:
    rows, traces = [], {}
    # Problem p: A swept over 3 settings x 2 seeds (lr=1 fastest), B one setting x 2 seeds.
    # Problem q: only A ran (B is absent: its curve is over p alone, the problem it ran).
    plan = [("p", "A", '{"lr": 0.1}', [8.0, 9.0]), ("p", "A", '{"lr": 1}', [2.0, 3.0]),
            ("p", "A", '{"lr": 10}', [None, None]), ("p", "B", "{}", [1.0, 4.0]), ("q", "A", '{"lr": 1}', [1.0])]
    ids: dict[tuple[str, str, str], list[str]] = {}
    for task, method, hyper, times in plan:
        for seed, ttt in enumerate(times):
            run_id = f"{task}-{method}-{hyper}-{seed}"
            rows.append({"run_id": run_id, "task": task, "method": method, "hyperparameters": hyper, "seed": seed,
                         "time_to_target_s": ttt, "status": "reached_target" if ttt else "completed",
                         "suboptimality": 1e-9 if ttt else 1.0})
            ids.setdefault((task, method, hyper), []).append(run_id)
            final = 1e-9 if ttt else 1.0
            end = ttt if ttt else 10.0
            traces[run_id] = [(0.0, 1e3), (end / 2, 1e-2 * (seed + 1)), (end, final)]
    runs = pl.DataFrame(rows).pipe(lambda f: runs_frame(f.to_dicts()))
    trace_frame = pl.DataFrame(
        [{"run_id": r, "time_s": t, "suboptimality": v} for r, points in traces.items() for t, v in points]
    )
    curve = score.ecdf(trace_frame, runs)

    # The profiles pick A's lr=1 on p (least median time to target): the ECDF shows the same one.
    ratios = score.performance_ratios(score.medians(runs))
    a_p = ratios.filter((pl.col("task") == "p") & (pl.col("method") == "A"))["value"].item()
    assert a_p == float(np.median([2.0, 3.0]))

    expected_runs = {
        "A": {"p": ids[("p", "A", '{"lr": 1}')], "q": ids[("q", "A", '{"lr": 1}')]},
        "B": {"p": ids[("p", "B", "{}")]},
    }
    for method, runs_of in expected_runs.items():
        got = curve.filter(pl.col("method") == method)
        want = _reference_ecdf(traces, runs_of, xs=got["x"].to_list())
        assert got["fraction"].to_list() == pytest.approx(want)
    # B met every target of p with both of its runs: 1 (padded to A's 6 runs on p it would have been
    # capped at 2/6). This was 1/2 while the ECDF averaged over all problems (q, which B did not
    # run, weighed the other half); the mean is now over the problems each solver ran.
    assert curve.filter(pl.col("method") == "B")["fraction"].max() == pytest.approx(1.0)
    assert dict(curve.select("method", "n_problems").unique().iter_rows()) == {"A": 2, "B": 1}
    assert curve.filter(pl.col("method") == "A")["fraction"].max() == pytest.approx(1.0)


# -- 2. significance --------------------------------------------------------------------------


def _pair_runs(samples: list[tuple[np.ndarray, np.ndarray]]) -> pl.DataFrame:
    """One problem per pair: methods a and b with the given per-seed times to target."""
    rows = []
    for k, (xa, xb) in enumerate(samples):
        for method, values in (("a", xa), ("b", xb)):
            rows += [{"task": f"t{k}", "method": method, "seed": s, "time_to_target_s": float(v)}
                     for s, v in enumerate(values)]
    return runs_frame(rows)


def _significant(table: pl.DataFrame) -> dict[str, bool]:
    """Per problem: whether a and b were found different (a stat_rank differs)."""
    ranks = table.group_by("task").agg(pl.col("stat_rank").n_unique().alias("n"))
    return {t: n > 1 for t, n in ranks.iter_rows()}


def test_below_the_minimum_seeds_no_pair_is_tested_and_each_says_why() -> None:
    n = score.MIN_SEEDS_FOR_SIGNIFICANCE - 1
    rows = [{"task": "t", "method": m, "seed": s, "time_to_target_s": base * (s + 1)}
            for m, base in (("fast", 1.0), ("mid", 100.0), ("slow", 1e4)) for s in range(n)]
    by = by_method(score.task_table(runs_frame(rows), n_boot=200))
    assert [by[m]["rank"] for m in ("fast", "mid", "slow")] == [1, 2, 3]
    assert {by[m]["stat_rank"] for m in by} == {1}
    # Untested pairs are neither different nor ties: nothing is claimed, the note says why.
    assert all(by[m]["tied_with"] == "" and not by[m]["tied"] for m in by)
    shown = score.display_tables({"tasks": score.task_table(runs_frame(rows), n_boot=200)})["tasks"]
    assert set(shown["tied with"].to_list()) == {f"{n} seeds < {score.MIN_SEEDS_FOR_SIGNIFICANCE}: untested"}
    assert all(str(score.MIN_SEEDS_FOR_SIGNIFICANCE) in by[m]["significance"] for m in by)


@pytest.mark.parametrize("seeds", [3, 5])
def test_false_positive_rate_on_identical_distributions_is_below_5_percent(seeds: int) -> None:
    rng = np.random.default_rng(seeds)
    samples = [(rng.lognormal(size=seeds), rng.lognormal(size=seeds)) for _ in range(400)]
    table = score.task_table(_pair_runs(samples), n_boot=50)
    rate = np.mean(list(_significant(table).values()))
    assert rate < 0.05, rate


def _exact_mann_whitney_p(x: list[float], y: list[float]) -> float:
    """Two-sided exact p-value of U by enumerating every split of the pooled values (no ties)."""
    pooled = x + y
    def u(chosen: tuple[int, ...]) -> float:
        xs = [pooled[i] for i in chosen]
        ys = [pooled[i] for i in range(len(pooled)) if i not in chosen]
        return sum(1.0 for a in xs for b in ys if a > b)
    observed = u(tuple(range(len(x))))
    centre = len(x) * len(y) / 2
    splits = list(itertools.combinations(range(len(pooled)), len(x)))
    extreme = sum(1 for c in splits if abs(u(c) - centre) >= abs(observed - centre))
    return extreme / len(splits)


def test_five_seeds_find_clearly_different_distributions_and_match_the_exact_test() -> None:
    rng = np.random.default_rng(7)
    clear = [(rng.lognormal(size=5), 20.0 * rng.lognormal(size=5)) for _ in range(50)]
    found = _significant(score.task_table(_pair_runs(clear), n_boot=50))
    assert np.mean(list(found.values())) > 0.9
    table = score.task_table(_pair_runs(clear[:1]), n_boot=50)
    assert by_method(table)["a"]["stat_rank"] == 1 and by_method(table)["b"]["stat_rank"] == 2
    # Against an exact test computed by enumeration, on pairs of every degree of difference.
    mixed = [(rng.lognormal(size=5), shift * rng.lognormal(size=5)) for shift in (1.0, 2.0, 4.0, 8.0) * 5]
    got = _significant(score.task_table(_pair_runs(mixed), n_boot=50))
    want = {f"t{k}": _exact_mann_whitney_p(list(a), list(b)) < 0.05 for k, (a, b) in enumerate(mixed)}
    assert got == want


# -- 3. all-skipped problems leave the profiles ------------------------------------------------


def test_a_problem_whose_runs_were_all_skipped_is_left_out_of_the_profiles() -> None:
    runs = runs_frame([
        {"task": "p", "method": "A", "time_to_target_s": 1.0}, {"task": "p", "method": "B", "time_to_target_s": 2.0},
        {"task": "p", "method": "A", "hardware": "gpu", "status": "skipped", "suboptimality": None},
        {"task": "p", "method": "B", "hardware": "gpu", "status": "skipped", "suboptimality": None},
    ])
    ratios = score.performance_ratios(score.medians(runs))
    assert ratios["hardware"].unique().to_list() == ["cpu"]
    scores = {m: s for m, s in score.profile_scores(ratios).select("method", "score").iter_rows()}
    # One problem: A's ratio 1 scores 1; B's ratio 2 scores (4 - 2) / (4 - 1).
    assert scores == pytest.approx({"A": 1.0, "B": (4.0 - 2.0) / (4.0 - 1.0)})
    assert score.profile_scores(ratios)["n_problems"].to_list() == [1, 1]


# -- 4. a higher-is-better target metric -----------------------------------------------------


def _accuracy_run(method: str, seed: int, accuracy: float | None, status: str = "completed") -> dict:
    return {"task": "acc", "method": method, "seed": seed, "status": status, "suboptimality": None,
            "target_metric": "test_accuracy", "target_value": 0.99, "test_accuracy": accuracy,
            "metrics": json.dumps(ACC_METRICS)}


def test_accuracy_target_ranks_by_final_accuracy_when_nobody_reaches_it() -> None:
    accuracy = {"a_low": [0.50, 0.52, 0.51, 0.49], "m_mid": [0.70, 0.71, 0.69, 0.72], "z_high": [0.90, 0.91, 0.92, 0.89]}
    rows = [_accuracy_run(m, s, v) for m, values in accuracy.items() for s, v in enumerate(values)]
    rows += [_accuracy_run("broken", s, float("nan"), status="diverged") for s in range(4)]
    by = by_method(score.task_table(runs_frame(rows), n_boot=200))
    medians = {m: float(np.median(v)) for m, v in accuracy.items()}
    order = sorted(medians, key=medians.get, reverse=True) + ["broken"]  # higher accuracy first, failures last
    assert sorted(by, key=lambda m: by[m]["rank"]) == order
    for m, value in medians.items():
        assert by[m]["median_target_metric"] == pytest.approx(value)
    assert by["broken"]["median_target_metric"] == -INF  # the worst accuracy
    # 4 seeds, fully separated: each is significantly better than those below it.
    assert [by[m]["stat_rank"] for m in order] == [1, 2, 3, 4]


def test_convergence_bands_map_non_finite_values_to_the_metrics_worst() -> None:
    runs = runs_frame([_accuracy_run("a", 0, None, status="diverged"), _accuracy_run("a", 1, 0.8),
                       {"task": "sub", "method": "s", "status": "diverged"}])
    traces = pl.DataFrame({"run_id": ["r0", "r0", "r1", "r1", "r2", "r2"], "time_s": [1.0, 2.0, 1.0, 2.0, 1.0, 2.0],
                           "test_accuracy": [0.4, float("nan"), 0.6, 0.8, None, None],
                           "suboptimality": [None, None, None, None, 1.0, float("nan")]})
    acc = score.convergence_bands(traces, runs, value="test_accuracy").filter(pl.col("x") == 2.0).row(0, named=True)
    # The diverged run is the worst accuracy (-inf), not the best: the lower band is -inf, the upper 0.8.
    assert (acc["lo"], acc["hi"], acc["n"]) == (-INF, 0.8, 2)
    sub = score.convergence_bands(traces, runs, value="suboptimality").filter(pl.col("x") == 2.0)
    assert sub["median"].to_list() == [INF]  # lower is better: the worst is +inf


# -- 5. a timeout keeps its value --------------------------------------------------------------


def test_a_timeout_keeps_its_measured_suboptimality_but_not_its_time() -> None:
    rows = [{"task": "t", "method": "slow", "seed": s, "status": "timeout", "suboptimality": v}
            for s, v in enumerate([1e-3, 2e-3, 4e-3])]
    rows += [{"task": "t", "method": "mixed", "seed": 0, "status": "timeout", "suboptimality": None},
             {"task": "t", "method": "mixed", "seed": 1, "status": "timeout", "suboptimality": float("nan")},
             {"task": "t", "method": "mixed", "seed": 2, "status": "diverged", "suboptimality": 1e-6},
             {"task": "t", "method": "mixed", "seed": 3, "status": "error", "suboptimality": 1e-6},
             {"task": "t", "method": "mixed", "seed": 4, "status": "oom", "suboptimality": 1e-6}]
    prepared = score.prepare(runs_frame(rows)).collect()
    assert prepared["scored_suboptimality"].to_list() == [1e-3, 2e-3, 4e-3, INF, INF, INF, INF, INF]
    assert prepared["scored_time_to_target_s"].to_list() == [INF] * 8
    by = by_method(score.medians(runs_frame(rows)))
    assert by["slow"]["median_suboptimality"] == pytest.approx(float(np.median([1e-3, 2e-3, 4e-3])))
    assert by["slow"]["median_time_to_target_s"] == INF and by["slow"]["n_failed"] == 3
    assert by["slow"]["failures"] == "timeout×3"
    assert by["mixed"]["median_suboptimality"] == INF


def test_a_timeout_keeps_its_target_metric_value() -> None:
    rows = [_accuracy_run("t", s, v, status="timeout") for s, v in enumerate([0.6, 0.7, 0.8])]
    rows += [_accuracy_run("d", s, 0.95, status="diverged") for s in range(3)]
    by = by_method(score.task_table(runs_frame(rows), n_boot=100))
    assert by["t"]["median_target_metric"] == pytest.approx(0.7)
    assert by["d"]["median_target_metric"] == -INF
    assert (by["t"]["rank"], by["d"]["rank"]) == (1, 2)


def test_the_rank_test_agrees_with_scipy_mann_whitney_with_ties_and_failures() -> None:
    from scipy.stats import mannwhitneyu

    rng = np.random.default_rng(3)
    for _ in range(300):
        m, n = (int(v) for v in rng.integers(2, 12, size=2))
        x, y = np.round(rng.lognormal(size=m), 1), np.round(rng.choice([1.0, 3.0]) * rng.lognormal(size=n), 1)
        x[: int(rng.integers(0, m))] = INF  # failures: the largest values, tied among themselves
        finite_x, finite_y = np.where(np.isinf(x), 1e9, x), np.where(np.isinf(y), 1e9, y)
        if np.all(np.concatenate([finite_x, finite_y]) == finite_x[0]):
            want = 0
        else:
            result = mannwhitneyu(finite_x, finite_y, alternative="two-sided", method="auto")
            want = 0 if not result.pvalue < score.SIGNIFICANCE_LEVEL else (1 if result.statistic < m * n / 2 else -1)
        assert score._compare(x, y) == want, (x, y)


def test_every_pair_at_once_decides_as_the_test_of_each_pair() -> None:
    # Continuous, rounded (ties), constant and failed (inf) samples, of 0..13 seeds, NaN dropped:
    # the exact and the normal branches, with and without tie corrections.
    rng = np.random.default_rng(0)
    decided = 0
    for _ in range(300):
        samples = []
        for _ in range(int(rng.integers(1, 12))):
            m, kind = int(rng.integers(0, 14)), int(rng.integers(0, 4))
            x = [rng.lognormal(size=m), np.round(rng.lognormal(size=m), 1), np.ones(m),
                 np.round(rng.choice([1.0, 3.0]) * rng.lognormal(size=m))][kind]
            x[: int(rng.integers(0, m + 1)) // 2] = INF
            if m and rng.random() < 0.2:
                x[-1] = np.nan
            samples.append(x)
        want = np.asarray([[score._compare(a, b) for b in samples] for a in samples])
        got = score._compare_all(samples)
        assert np.array_equal(got, want), samples
        decided += int(np.count_nonzero(want))
    assert decided > 500  # many significant pairs, not only ties (808 with this seed)
