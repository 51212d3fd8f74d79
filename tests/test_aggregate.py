"""Few-seed aggregates (harness.aggregate, rliable) on small hand-made tables; expected values computed apart.

Scores by hand (plain Python medians and ratios), the IQM by ``scipy.stats.trim_mean``, the
probability of improvement by counting pairs, the score profiles by counting runs.
"""

from __future__ import annotations

import json
import math
import statistics
import sys
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import scipy.stats

from harness import aggregate

INF = math.inf
METRICS = json.dumps({"suboptimality": {"lower_is_better": True, "unit": "nats"}})


def runs_frame(rows: list[dict]) -> pl.DataFrame:
    """Runs with the columns :func:`harness.score.prepare` reads; defaults for the rest."""
    base = {
        "task_params": "{}", "hardware": "cpu", "framework": "torch", "hyperparameters": "{}",
        "status": "reached_target", "time_to_target_s": None, "suboptimality": 1e-9,
        "target_metric": "suboptimality", "target_value": 1e-8, "seed": 0, "metrics": METRICS,
    }
    full = [{**base, "run_id": f"r{i:03d}", **row} for i, row in enumerate(rows)]
    schema = {"run_id": pl.String, "task": pl.String, "method": pl.String, "task_params": pl.String,
              "hardware": pl.String, "framework": pl.String, "hyperparameters": pl.String, "status": pl.String,
              "time_to_target_s": pl.Float64, "suboptimality": pl.Float64, "target_metric": pl.String,
              "target_value": pl.Float64, "seed": pl.Int64, "metrics": pl.String}
    return pl.DataFrame(full, schema=schema)


def runs_of(task: str, method: str, times: list[float | str | None], **extra) -> list[dict]:
    """One run per seed: a time to target, ``None`` (completed, target not reached) or a failure status."""
    rows = []
    for seed, value in enumerate(times):
        if isinstance(value, str):
            row = {"status": value, "suboptimality": None if value != "timeout" else 0.5}
        elif value is None:
            row = {"status": "completed", "suboptimality": 0.1}
        else:
            row = {"time_to_target_s": value}
        rows.append({"task": task, "method": method, "seed": seed, **row, **extra})
    return rows


# Two problems, two solvers, three seeds; a worse setting of "a" on p1 and a skipped run of "b".
TIMES = {
    ("p1", "a"): [1.0, 2.0, 3.0],
    ("p1", "b"): [4.0, 5.0, "diverged"],
    ("p2", "a"): [10.0, 20.0, None],
    ("p2", "b"): [5.0, 6.0, 7.0],
}


def two_problem_runs() -> pl.DataFrame:
    rows = [r for (task, method), times in TIMES.items() for r in runs_of(task, method, times)]
    rows += runs_of("p1", "a", [0.5, 9.0, 9.0], hyperparameters='{"lr": 1}')  # median 9: not its best setting
    rows.append({"task": "p2", "method": "b", "seed": 3, "status": "skipped"})  # no run
    rows += runs_of("untargeted", "a", [1.0], target_value=None)  # no target: no problem
    return runs_frame(rows)


def hand_scores() -> dict[tuple[str, str], list[float]]:
    """s = least median time over solvers / run time (0 for failed or unreached), by seed."""
    def time(v):
        return v if isinstance(v, float) else INF

    out = {}
    for task in ("p1", "p2"):
        best = min(statistics.median([time(v) for v in TIMES[(task, m)]]) for m in ("a", "b"))
        for m in ("a", "b"):
            out[(task, m)] = [best / time(v) for v in TIMES[(task, m)]]
    return out


def matrix_of(scores: dict[tuple[str, str], list[float]], method: str) -> np.ndarray:
    return np.array([scores[("p1", method)], scores[("p2", method)]]).T  # (runs, problems)


def test_run_scores_equal_hand_computation() -> None:
    scores = aggregate.run_scores(two_problem_runs())
    expected = hand_scores()
    assert set(scores["task"]) == {"p1", "p2"}
    assert set(scores["hyperparameters"]) == {"{}"}  # only the best setting is scored
    for (task, method), values in expected.items():
        got = scores.filter((pl.col("task") == task) & (pl.col("method") == method)).sort("seed")
        assert got["score"].to_list() == pytest.approx(values)
        assert got["run_index"].to_list() == list(range(3))
    assert scores.filter(pl.col("task") == "p1")["best_time_s"].unique().to_list() == [2.0]
    assert scores.filter(pl.col("task") == "p2")["best_time_s"].unique().to_list() == [6.0]
    assert "skipped" not in set(scores["status"])


@pytest.mark.parametrize("status", ["diverged", "error", "timeout", "oom"])
def test_a_failure_or_an_unreached_target_scores_zero(status: str) -> None:
    runs = runs_frame(runs_of("p", "a", [1.0, 2.0, 3.0]) + runs_of("p", "b", [status, None, 2.0]))
    scores = aggregate.run_scores(runs).filter(pl.col("method") == "b").sort("seed")
    assert scores["score"].to_list() == [0.0, 0.0, 1.0]


def test_no_solver_reaching_the_target_in_median_scores_zero_and_zero_times_score_one() -> None:
    runs = runs_frame(runs_of("p", "a", [1.0, None, None]) + runs_of("q", "a", [0.0, 0.0, 1.0])
                      + runs_of("q", "b", [0.0, 2.0, 2.0]))
    scores = aggregate.run_scores(runs)
    assert scores.filter(pl.col("task") == "p")["score"].to_list() == [0.0, 0.0, 0.0]
    q = scores.filter(pl.col("task") == "q").sort("method", "seed")["score"].to_list()
    assert q == [1.0, 1.0, 0.0, 1.0, 0.0, 0.0]  # best median 0 s: only runs at 0 s match it


def test_iqm_median_mean_and_their_intervals() -> None:
    table = aggregate.aggregates(two_problem_runs(), reps=500, seed=1)
    assert sorted(table["method"].to_list()) == ["a", "b"]
    scores = hand_scores()
    for row in table.iter_rows(named=True):
        matrix = matrix_of(scores, row["method"])
        assert (row["n_problems"], row["n_runs"], row["n_runs_left_out"]) == (2, 3, 0)
        assert row["iqm"] == pytest.approx(scipy.stats.trim_mean(matrix.ravel(), 0.25))
        assert row["median"] == pytest.approx(statistics.median(matrix.mean(axis=0)))
        assert row["mean"] == pytest.approx(matrix.mean())
        for name in ("iqm", "median", "mean"):
            assert row[f"{name}_lo"] <= row[name] <= row[f"{name}_hi"]
        assert row["iqm_lo"] < row["iqm_hi"]  # the runs differ: a real interval
    assert table["iqm"].to_list() == sorted(table["iqm"].to_list(), reverse=True)


def test_intervals_are_deterministic_for_a_seed_and_leave_the_global_state_alone() -> None:
    runs = two_problem_runs()
    np.random.seed(123)
    state = np.random.get_state()
    first = aggregate.aggregates(runs, reps=300, seed=7)
    after = np.random.get_state()
    assert after[0] == state[0] and np.array_equal(after[1], state[1]) and after[2:] == state[2:]
    assert aggregate.aggregates(runs, reps=300, seed=7).equals(first)
    assert aggregate.score_profiles(runs, taus=[0.5], reps=300, seed=7).equals(
        aggregate.score_profiles(runs, taus=[0.5], reps=300, seed=7))
    assert aggregate.probability_of_improvement(runs, ("a", "torch"), ("b", "torch"), reps=300, seed=7).equals(
        aggregate.probability_of_improvement(runs, ("a", "torch"), ("b", "torch"), reps=300, seed=7))
    other = aggregate.aggregates(runs, reps=300, seed=8)
    assert not other.equals(first)  # the seed is what fixes the draws


def test_a_solver_interval_is_the_same_whoever_else_is_in_view() -> None:
    runs = two_problem_runs()
    extra = runs_frame(runs_of("p1", "c", [50.0, 60.0, 70.0]) + runs_of("p2", "c", [50.0, 60.0, 70.0]))
    both = pl.concat([runs, extra.select(runs.columns)])  # "c" is slower everywhere: same best medians
    table = aggregate.aggregates(runs, reps=300, seed=2).filter(pl.col("method") == "a")
    with_c = aggregate.aggregates(both, reps=300, seed=2).filter(pl.col("method") == "a")
    assert with_c.equals(table)


def _pairs(xs: list[float], ys: list[float]) -> float:
    """P(X > Y) + 0.5 P(X = Y) over every pair of runs."""
    return sum((x > y) + 0.5 * (x == y) for x in xs for y in ys) / (len(xs) * len(ys))


def test_probability_of_improvement_counts_pairs_over_common_problems() -> None:
    runs = two_problem_runs()
    scores = hand_scores()
    expected = statistics.mean(_pairs(scores[(t, "a")], scores[(t, "b")]) for t in ("p1", "p2"))
    got = aggregate.probability_of_improvement(runs, ("a", "torch"), ("b", "torch"), reps=500).row(0, named=True)
    assert got["value"] == pytest.approx(expected)
    assert (got["n_problems"], got["n_runs_x"], got["n_runs_y"]) == (2, 3, 3)
    assert got["lo"] <= got["value"] <= got["hi"]
    back = aggregate.probability_of_improvement(runs, ("b", "torch"), ("a", "torch"), reps=500)["value"].item()
    assert back == pytest.approx(1.0 - expected)


def test_probability_of_improvement_is_one_when_every_run_wins_and_half_for_identical_scores() -> None:
    fast = runs_of("p1", "x", [1.0, 1.1, 1.2]) + runs_of("p2", "x", [1.0, 1.5, 2.0])
    slow = runs_of("p1", "y", [3.0, 4.0, "error"]) + runs_of("p2", "y", [2.5, 3.0, 4.0])
    twin = runs_of("p1", "z", [1.0, 1.1, 1.2]) + runs_of("p2", "z", [1.0, 1.5, 2.0])  # x's times
    only_x = runs_of("p3", "x", [1.0, 2.0])  # a problem y never ran: left out
    runs = runs_frame(fast + slow + twin + only_x)
    win = aggregate.probability_of_improvement(runs, ("x", "torch"), ("y", "torch"), reps=300).row(0, named=True)
    assert (win["value"], win["lo"], win["hi"], win["n_problems"]) == (1.0, 1.0, 1.0, 2)
    tie = aggregate.probability_of_improvement(runs, ("x", "torch"), ("z", "torch"), reps=300).row(0, named=True)
    assert tie["value"] == 0.5 and tie["lo"] <= 0.5 <= tie["hi"]
    none = aggregate.probability_of_improvement(runs, ("x", "torch"), ("nobody", "torch"), reps=300)
    assert none.row(0, named=True)["value"] is None and none["n_problems"].item() == 0


def test_score_profile_is_the_fraction_of_runs_above_tau() -> None:
    taus = [0.0, 0.3, 0.5, 1.0, 1.5]
    profiles = aggregate.score_profiles(two_problem_runs(), taus=taus, reps=300)
    scores = hand_scores()
    for method in ("a", "b"):
        flat = matrix_of(scores, method).ravel()
        got = profiles.filter(pl.col("method") == method).sort("tau")
        assert got["tau"].to_list() == taus
        assert got["fraction"].to_list() == pytest.approx([float(np.mean(flat > t)) for t in taus])
        assert (got["lo"] <= got["fraction"]).all() and (got["fraction"] <= got["hi"]).all()


def test_unequal_run_counts_use_the_smallest_count_first_by_seed() -> None:
    # "a": 4 runs on p1 (given out of seed order), 2 on p2; "b" sets the best medians.
    a_p1 = [{"task": "p1", "method": "a", "seed": s, "time_to_target_s": t}
            for s, t in [(3, 8.0), (1, 2.0), (0, 1.0), (2, 4.0)]]
    runs = runs_frame(a_p1 + runs_of("p2", "a", [3.0, 6.0]) + runs_of("p1", "b", [2.0, 2.0, 2.0])
                      + runs_of("p2", "b", [3.0, 3.0, 3.0]))
    table = aggregate.aggregates(runs, reps=300).filter(pl.col("method") == "a").row(0, named=True)
    assert (table["n_problems"], table["n_runs"], table["n_runs_left_out"]) == (2, 2, 2)
    best_p1 = min(statistics.median([1.0, 2.0, 4.0, 8.0]), 2.0)  # 2.0 (b's median; a's is 3.0)
    best_p2 = min(statistics.median([3.0, 6.0]), 3.0)
    kept = [best_p1 / 1.0, best_p1 / 2.0, best_p2 / 3.0, best_p2 / 6.0]  # seeds 0 and 1 on p1
    assert table["iqm"] == pytest.approx(scipy.stats.trim_mean(kept, 0.25))
    assert table["mean"] == pytest.approx(statistics.mean(kept))
    profile = aggregate.score_profiles(runs, taus=[0.9], reps=100).filter(pl.col("method") == "a")
    assert profile["fraction"].item() == pytest.approx(np.mean(np.array(kept) > 0.9))


def test_problems_without_target_or_only_skipped_are_left_out_and_empty_is_empty() -> None:
    runs = runs_frame(runs_of("p", "a", [1.0]) + runs_of("gpu", "a", ["skipped", "skipped"])
                      + runs_of("free", "a", [1.0], target_value=None))
    table = aggregate.aggregates(runs, reps=100)
    assert table.select("method", "n_problems", "n_runs").rows() == [("a", 1, 1)]
    empty = runs.filter(pl.col("task") == "free")
    assert aggregate.aggregates(empty, reps=100).is_empty()
    assert aggregate.score_profiles(empty, reps=100).is_empty()
    assert "iqm_lo" in aggregate.aggregates(empty, reps=100).columns


# -- the overview page ------------------------------------------------------------------------


LEADERBOARD = Path(__file__).resolve().parents[1] / "leaderboard"


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    sys.path.insert(0, str(Path(__file__).parent / "leaderboard"))
    try:
        import storegen
    finally:
        sys.path.remove(str(Path(__file__).parent / "leaderboard"))
    root = tmp_path_factory.mktemp("aggregate-store")
    storegen.build_store(root)
    return root


def test_overview_shows_the_aggregates_improvement_and_score_profiles(store: Path, monkeypatch) -> None:
    from streamlit.testing.v1 import AppTest

    from harness.leaderboard import CATALOG_ENV, STORE_ENV
    from harness.store import read_runs

    monkeypatch.syspath_prepend(str(LEADERBOARD))
    monkeypatch.setenv(STORE_ENV, str(store))
    monkeypatch.setenv(CATALOG_ENV, "")
    at = AppTest.from_file(str(LEADERBOARD / "app.py"), default_timeout=120)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert "Few-seed aggregates (rliable)" in [s.value for s in at.subheader]
    (shown,) = [d.value for d in at.dataframe if "iqm" in d.value.columns]
    expected = aggregate.aggregates(read_runs(store), reps=10)  # point estimates do not depend on reps
    assert shown["method"].tolist() == expected["method"].to_list()
    assert shown["iqm"].tolist() == pytest.approx(expected["iqm"].to_list())
    assert (shown["iqm_ci"].str.startswith("[")).all()
    captions = " ".join(c.value for c in at.caption)
    assert "stratified bootstrap 95%" in captions and "problems it ran" in captions
    x, y = at.selectbox(key="aggregate_x"), at.selectbox(key="aggregate_y")
    assert x.value == expected["method"][0] + "/" + expected["framework"][0] and y.value is None
    assert "P(X > Y): pick X and Y." in [t.value for t in at.text]
    x.set_value("adam/jax").run()  # one problem (logreg@cpu): a quick bootstrap
    at.selectbox(key="aggregate_y").set_value("adam/jax").run()
    assert not at.exception, [e.value for e in at.exception]
    (line,) = [t.value for t in at.text if t.value.startswith("P(adam/jax > adam/jax)")]
    assert line.startswith("P(adam/jax > adam/jax) = 0.500  (95% CI [") and "over the 1 problem both ran" in line
    assert len(at.get("vega_lite_chart")) == 1  # the score profiles are drawn on demand
    at.sidebar.multiselect(key="filter_framework").select("jax").run()  # two methods: a quick bootstrap
    at.toggle(key="aggregate_profiles").set_value(True).run()
    assert not at.exception, [e.value for e in at.exception]
    specs = [json.loads(c.proto.spec) for c in at.get("vega_lite_chart")]
    assert len(specs) == 2
    layers = specs[1]["layer"]
    assert layers[0]["mark"]["type"] == "area" and layers[0]["encoding"]["y2"]["field"] == "hi"
    assert layers[1]["encoding"]["y"]["field"] == "fraction"


def test_a_constant_score_matrix_skips_the_bootstrap_with_rliables_own_answer() -> None:
    from rliable import library

    from harness.aggregate import _iqm_median_mean, _point_and_interval

    matrix = np.zeros((3, 4))
    point, interval = _point_and_interval(matrix, _iqm_median_mean, reps=50, seed=0, level=0.95)
    points, intervals = library.get_interval_estimates({"s": matrix}, _iqm_median_mean, reps=50)
    assert np.array_equal(point, points["s"]) and np.array_equal(interval, intervals["s"])


def test_past_a_run_count_the_overview_computes_the_intervals_on_demand(store: Path, monkeypatch) -> None:
    from streamlit.testing.v1 import AppTest

    from harness.leaderboard import CATALOG_ENV, STORE_ENV
    from harness.store import read_runs

    monkeypatch.syspath_prepend(str(LEADERBOARD))
    monkeypatch.setenv(STORE_ENV, str(store))
    monkeypatch.setenv(CATALOG_ENV, "")
    import lbkit

    monkeypatch.setattr(lbkit, "AUTO_INTERVAL_RUNS", 10)  # the store holds more
    at = AppTest.from_file(str(LEADERBOARD / "app.py"), default_timeout=120)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    (shown,) = [d.value for d in at.dataframe if "iqm" in d.value.columns]
    expected = aggregate.aggregates(read_runs(store), reps=1000)
    assert shown["iqm"].tolist() == pytest.approx(expected["iqm"].to_list())  # the points, at once
    assert set(shown["iqm_ci"]) == {"—"} and at.toggle(key="aggregate_intervals").value is False
    at.toggle(key="aggregate_intervals").set_value(True).run()
    assert not at.exception, [e.value for e in at.exception]
    (shown,) = [d.value for d in at.dataframe if "iqm" in d.value.columns]
    texts = aggregate.with_interval_texts(expected)["iqm_ci"].to_list()
    assert shown["iqm_ci"].tolist() == texts and all(t.startswith("[") for t in texts)


def test_point_estimates_alone_are_the_bootstraps_points(store: Path) -> None:
    from harness.store import read_runs

    runs = read_runs(store)
    points, full = aggregate.aggregates(runs, intervals=False), aggregate.aggregates(runs, reps=50)
    assert points.select("method", "framework", "iqm", "median", "mean").equals(
        full.select("method", "framework", "iqm", "median", "mean"))
    assert points.select(pl.col("^.*_(lo|hi)$").is_null().all()).row(0) == (True,) * 6
