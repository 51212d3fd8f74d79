"""Few-seed aggregate statistics from ``rliable``: IQM, probability of improvement, score profiles.

Runs here have 2-5 seeds: too few for a per-problem median to mean much on its own. The
aggregates of Agarwal et al. (2021, "Deep RL at the edge of the statistical precipice", the
``rliable`` library) pool every run of a solver over its problems instead, with stratified
bootstrap confidence intervals (runs resampled within each problem). This module computes
them with ``rliable``'s own functions on a normalized score per run; it reimplements none.

Definition
----------
problems
    Those with a target, as in the performance profiles (:func:`harness.score.performance_ratios`):
    a problem whose runs were all skipped is left out.
best configuration
    For each solver ``(method, framework)`` on a problem, its hyperparameter setting with the
    least median time-to-target, then the least median suboptimality, then the first by name:
    the choice the profiles make. Only that setting's runs are scored.
score of a run
    ``s = t_best / t_run``, where ``t_best`` is the least median time-to-target over the
    solvers on the problem (the profiles' denominator) and ``t_run`` the run's scored
    time-to-target (:func:`harness.score.prepare`: infinite for a failed run or one that did
    not reach its target, so ``s = 0``). ``s = 1``: as fast as the best median; higher is
    better (a run faster than the best median scores above 1). Where no solver reached the
    target in median (``t_best`` infinite) every run scores 0, as every ratio of the profiles is
    infinite there; where ``t_best = 0``, a run at 0 s scores 1 and any other 0. Scores are
    capped at :data:`SCORE_CAP` (a run at 0 s where the best median is positive). Skipped runs
    (:data:`harness.record.NOT_RUN`) are no runs.
score matrix
    A solver's runs x the problems it ran (``rliable``'s ``(num_runs, num_tasks)``). Where its
    run counts differ across problems, each problem keeps its first runs by seed, as many as the
    smallest count (``n_runs``); ``n_runs_left_out`` counts the runs that were dropped.
aggregates
    Over the problems each solver ran (``n_problems``; a problem it did not run is not a zero,
    unlike the profiles): the interquartile mean (IQM, the 25% trimmed mean of all its scores),
    the median and the mean of its per-problem mean scores (``rliable.metrics``), each with a
    percentile stratified-bootstrap interval (``rliable.library.get_interval_estimates``).
probability of improvement
    ``P(X > Y)``: on each problem both solvers ran, the probability that a random run of X
    scores above a random run of Y (ties count half, the Mann-Whitney U statistic over
    ``n_x * n_y``), averaged over those problems; its interval resamples each solver's runs
    independently within problems.
score profiles
    The score distribution: for each ``tau``, the fraction of a solver's runs (over its problems)
    with ``s > tau`` (``rliable.library.create_performance_profile``), with its interval.

Randomness
----------
``rliable`` draws its bootstrap indices from NumPy's global random state (``np.random.choice``;
its ``random_state`` argument only reaches ``arch``, which does not draw them). Every function
here seeds that state with ``seed`` for each solver (or pair) and restores it afterwards, under a
lock, so the results are deterministic given ``seed`` and a solver's interval does not depend on
which other solvers are in view.

Examples
--------
>>> import polars as pl
>>> runs = pl.DataFrame({
...     "run_id": ["a0", "a1", "b0", "b1"], "task": "quad", "method": ["a", "a", "b", "b"],
...     "framework": "torch", "hardware": "cpu", "seed": [0, 1, 0, 1], "target_value": 1e-8,
...     "status": ["reached_target", "reached_target", "reached_target", "diverged"],
...     "time_to_target_s": [1.0, 3.0, 4.0, None],
... })
>>> run_scores(runs)["score"].to_list()  # best median: a's 2.0 s
[2.0, 0.6666666666666666, 0.5, 0.0]
>>> aggregates(runs, reps=200).select("method", "n_problems", "n_runs", "iqm", "mean").rows()
[('a', 1, 2, 1.3333333333333333, 1.3333333333333333), ('b', 1, 2, 0.25, 0.25)]
>>> probability_of_improvement(runs, ("a", "torch"), ("b", "torch"), reps=200)["value"].item()
1.0
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator, Sequence

import numpy as np
import polars as pl

from harness import score
from harness.score import CONFIG_KEYS, PROBLEM_KEYS, SOLVER_KEYS

__all__ = [
    "DEFAULT_TAUS",
    "SCORE_CAP",
    "aggregates",
    "description",
    "with_interval_texts",
    "probability_of_improvement",
    "run_scores",
    "score_profiles",
]

#: Largest score of a run (one at 0 s where the best median time is positive would score infinity).
SCORE_CAP = 100.0
#: Where :func:`score_profiles` reads the score distributions by default: 0 to 2 by 0.025.
DEFAULT_TAUS: tuple[float, ...] = tuple(float(t) for t in np.linspace(0.0, 2.0, 81))

#: ``rliable`` draws from NumPy's global random state: one seeded computation at a time.
_RNG_LOCK = threading.Lock()
_Solver = tuple[str, str]


@contextlib.contextmanager
def _seeded(seed: int) -> Iterator[None]:
    """NumPy's global random state seeded with ``seed`` inside, restored on leaving (one thread at a time)."""
    with _RNG_LOCK:
        state = np.random.get_state()
        np.random.seed(seed)
        try:
            yield
        finally:
            np.random.set_state(state)


# -- scores -----------------------------------------------------------------------------------


def run_scores(runs: pl.DataFrame | pl.LazyFrame) -> pl.DataFrame:
    """The normalized score of every run of a solver's best configuration on a problem with a target.

    Parameters
    ----------
    runs
        Runs as the store gives them (``read_runs``; any frame :func:`harness.score.prepare` reads).

    Returns
    -------
    polars.DataFrame
        ``CONFIG_KEYS``, ``seed``, ``run_id``, ``status``, ``time_to_target_s`` (scored: infinite
        unless reached), ``best_time_s`` (the problem's least median time-to-target over
        solvers), ``score`` (see the module's definition), ``run_index`` (0, 1, ... by seed
        within the solver's runs on the problem). Sorted by problem, solver, seed.
    """
    problem, solver = list(PROBLEM_KEYS), list(SOLVER_KEYS)
    lazy = score.prepare(runs)
    table = score.medians(lazy)
    # The profiles' problems and choice (score.performance_ratios, score._best_settings).
    eligible = table.filter(pl.col("has_target") & (pl.col("n_runs") > 0))
    best = (
        eligible.sort(*problem, *solver, "median_time_to_target_s", "median_suboptimality", "hyperparameters",
                      nulls_last=True)
        .unique(subset=[*problem, *solver], keep="first", maintain_order=True)
        .with_columns(pl.col("median_time_to_target_s").fill_null(float("inf")).min().over(problem)
                      .alias("best_time_s"))
        .select(*CONFIG_KEYS, "best_time_s")
    )
    t, b = pl.col("time_to_target_s"), pl.col("best_time_s")
    value = (
        pl.when(~b.is_finite() | ~t.is_finite()).then(0.0)
        .when(t == b).then(1.0)
        .otherwise((b / t).clip(upper_bound=SCORE_CAP))
    )
    scored = (
        lazy.filter(pl.col("counted"))
        .join(best.lazy(), on=list(CONFIG_KEYS), how="inner", nulls_equal=True)
        .select(*CONFIG_KEYS, "seed", "run_id", "status", pl.col("scored_time_to_target_s").alias("time_to_target_s"),
                "best_time_s")
        .with_columns(value.alias("score"))
        .sort(*problem, *solver, "seed", "run_id", nulls_last=True)
        .collect()
    )
    return scored.with_columns(pl.int_range(pl.len()).over([*problem, *solver]).cast(pl.Int64).alias("run_index"))


def _by_solver(scores: pl.DataFrame) -> dict[_Solver, dict[int, np.ndarray]]:
    """Each solver's scores per problem (problems numbered in sorted order), runs ordered by seed."""
    problem, solver = list(PROBLEM_KEYS), list(SOLVER_KEYS)
    ids = scores.select(problem).unique().sort(problem, nulls_last=True).with_row_index("_pid")
    grouped = (
        scores.join(ids, on=problem, how="left", nulls_equal=True)
        .group_by(*solver, "_pid")
        .agg(pl.col("score").sort_by("run_index"))
        .sort(*solver, "_pid", nulls_last=True)
    )
    out: dict[_Solver, dict[int, np.ndarray]] = {}
    for method, framework, pid, values in grouped.iter_rows():
        out.setdefault((method, framework), {})[pid] = np.asarray(values, dtype=float)
    return out


def _matrix(columns: dict[int, np.ndarray], problems: Sequence[int]) -> np.ndarray:
    """``(n_runs, len(problems))``: each problem's first runs by seed, as many as the smallest count."""
    n = min(columns[p].size for p in problems)
    return np.stack([columns[p][:n] for p in problems], axis=1)


# -- aggregates -------------------------------------------------------------------------------


def _point_and_interval(data: np.ndarray | list[np.ndarray], func, *, reps: int, seed: int,
                        level: float) -> tuple[np.ndarray, np.ndarray]:
    """``rliable.library.get_interval_estimates`` of one score matrix (or a list of them), seeded."""
    from rliable import library

    if isinstance(data, np.ndarray) and data.size and np.all(data == data.flat[0]):
        # Every resample of a constant matrix is that matrix: the interval is the point itself. Most solvers
        # of a store that never reach a target score 0 everywhere; their bootstrap would take seconds each.
        point = np.atleast_1d(np.asarray(func(data), dtype=float))
        return point, np.stack([point, point])
    with _seeded(seed):
        points, intervals = library.get_interval_estimates(
            {"scores": data}, func, reps=reps, confidence_interval_size=level)
    return np.atleast_1d(np.asarray(points["scores"], dtype=float)), np.asarray(intervals["scores"], dtype=float)


def _iqm_median_mean(matrix: np.ndarray) -> np.ndarray:
    from rliable import metrics

    return np.array([metrics.aggregate_iqm(matrix), metrics.aggregate_median(matrix), metrics.aggregate_mean(matrix)])


def aggregates(
    runs: pl.DataFrame | pl.LazyFrame,
    *,
    reps: int = 2000,
    seed: int = 0,
    level: float = 0.95,
    intervals: bool = True,
) -> pl.DataFrame:
    """Per solver: IQM, median and mean of its run scores, with stratified bootstrap intervals.

    Parameters
    ----------
    runs
        Runs as the store gives them.
    reps
        Bootstrap resamples.
    intervals
        ``False``: the point estimates only (``rliable.metrics`` on each score matrix, the
        points the bootstrap reports), the ``_lo`` and ``_hi`` columns null. The bootstrap is
        nearly all of the cost: about 0.4 s per solver at 200 problems and 1,000 resamples.
    seed
        Seed of the resampling (each solver's draws start from it: results are reproducible).
    level
        Coverage of the intervals.

    Returns
    -------
    polars.DataFrame
        ``method``, ``framework``, ``n_problems`` (the problems it ran), ``n_runs`` (runs per
        problem in its score matrix), ``n_runs_left_out`` (runs dropped to equalize its run
        counts across problems), ``iqm``, ``iqm_lo``, ``iqm_hi``, ``median``, ``median_lo``,
        ``median_hi``, ``mean``, ``mean_lo``, ``mean_hi``. Best IQM first.
    """
    stats = ("iqm", "median", "mean")
    rows = []
    for (method, framework), columns in _by_solver(run_scores(runs)).items():
        problems = sorted(columns)
        matrix = _matrix(columns, problems)
        if intervals:
            points, bounds = _point_and_interval(matrix, _iqm_median_mean, reps=reps, seed=seed, level=level)
        else:
            points, bounds = _iqm_median_mean(matrix), np.full((2, len(stats)), np.nan)
        row: dict[str, object] = {
            "method": method, "framework": framework, "n_problems": len(problems), "n_runs": matrix.shape[0],
            "n_runs_left_out": sum(c.size for c in columns.values()) - matrix.size,
        }
        for i, name in enumerate(stats):
            row.update({name: float(points[i]), f"{name}_lo": float(bounds[0, i]), f"{name}_hi": float(bounds[1, i])})
        rows.append(row)
    schema = {"method": pl.String, "framework": pl.String, "n_problems": pl.Int64, "n_runs": pl.Int64,
              "n_runs_left_out": pl.Int64,
              **{f"{name}{end}": pl.Float64 for name in stats for end in ("", "_lo", "_hi")}}
    return pl.DataFrame(rows, schema=schema, orient="row").fill_nan(None).sort(
        ["iqm", "mean", "method", "framework"], descending=[True, True, False, False], nulls_last=True)


def _improvement(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    from rliable import metrics

    return np.array([metrics.probability_of_improvement(x, y)])


def probability_of_improvement(
    runs: pl.DataFrame | pl.LazyFrame,
    x: tuple[str, str],
    y: tuple[str, str],
    *,
    reps: int = 2000,
    seed: int = 0,
    level: float = 0.95,
) -> pl.DataFrame:
    """``P(X > Y)`` over the problems both solvers ran, with its stratified bootstrap interval.

    Parameters
    ----------
    runs
        Runs as the store gives them.
    x, y
        The two solvers, as ``(method, framework)``.
    reps
        Bootstrap resamples (each solver's runs resampled independently within problems).
    seed
        Seed of the resampling.
    level
        Coverage of the interval.

    Returns
    -------
    polars.DataFrame
        One row: ``method_x``, ``framework_x``, ``method_y``, ``framework_y``, ``n_problems``
        (both ran), ``n_runs_x`` and ``n_runs_y`` (runs per problem in each matrix), ``value``,
        ``lo``, ``hi`` (null when they share no problem).
    """
    solvers = _by_solver(run_scores(runs))
    cols_x, cols_y = solvers.get(tuple(x), {}), solvers.get(tuple(y), {})
    common = sorted(set(cols_x) & set(cols_y))
    row: dict[str, object] = {"method_x": x[0], "framework_x": x[1], "method_y": y[0], "framework_y": y[1],
                              "n_problems": len(common), "n_runs_x": None, "n_runs_y": None,
                              "value": None, "lo": None, "hi": None}
    if common:
        mx, my = _matrix(cols_x, common), _matrix(cols_y, common)
        points, intervals = _point_and_interval([mx, my], _improvement, reps=reps, seed=seed, level=level)
        row.update(n_runs_x=mx.shape[0], n_runs_y=my.shape[0], value=float(points[0]),
                   lo=float(intervals[0, 0]), hi=float(intervals[1, 0]))
    schema = {"method_x": pl.String, "framework_x": pl.String, "method_y": pl.String, "framework_y": pl.String,
              "n_problems": pl.Int64, "n_runs_x": pl.Int64, "n_runs_y": pl.Int64,
              "value": pl.Float64, "lo": pl.Float64, "hi": pl.Float64}
    return pl.DataFrame([row], schema=schema, orient="row")


def score_profiles(
    runs: pl.DataFrame | pl.LazyFrame,
    *,
    taus: Sequence[float] = DEFAULT_TAUS,
    reps: int = 2000,
    seed: int = 0,
    level: float = 0.95,
) -> pl.DataFrame:
    """Per solver: the fraction of its runs with score ``> tau``, with stratified bootstrap intervals.

    Parameters
    ----------
    runs
        Runs as the store gives them.
    taus
        Where to read the profiles (score thresholds; 0: runs that reached the target where
        some solver did in median, 1: runs faster than the best median).
    reps
        Bootstrap resamples.
    seed
        Seed of the resampling (each solver's draws start from it).
    level
        Coverage of the intervals.

    Returns
    -------
    polars.DataFrame
        ``method``, ``framework``, ``tau``, ``fraction``, ``lo``, ``hi``; sorted by solver, tau.
    """
    from rliable import library

    grid = np.asarray(list(taus), dtype=float)
    frames = []
    for (method, framework), columns in _by_solver(run_scores(runs)).items():
        matrix = _matrix(columns, sorted(columns))
        with _seeded(seed):
            profiles, intervals = library.create_performance_profile(
                {"scores": matrix}, grid, reps=reps, confidence_interval_size=level)
        ci = np.asarray(intervals["scores"], dtype=float)
        frames.append(pl.DataFrame({
            "method": [method] * grid.size, "framework": [framework] * grid.size, "tau": grid,
            "fraction": np.asarray(profiles["scores"], dtype=float), "lo": ci[0], "hi": ci[1],
        }, schema={"method": pl.String, "framework": pl.String, "tau": pl.Float64, "fraction": pl.Float64,
                   "lo": pl.Float64, "hi": pl.Float64}))
    if not frames:
        return pl.DataFrame(schema={"method": pl.String, "framework": pl.String, "tau": pl.Float64,
                                    "fraction": pl.Float64, "lo": pl.Float64, "hi": pl.Float64})
    return pl.concat(frames).sort("method", "framework", "tau", nulls_last=True)


def description(reps: int) -> str:
    """What the aggregates table shows, in a sentence or three (the leaderboard's and the report's caption)."""
    return (
        "Score of a run: s = t_best / t_run, where t_best is the least median time-to-target over the methods "
        "on the problem (the profiles' denominator) and t_run the run's time-to-target; a failed run, or one "
        "that missed the target, scores 0. s = 1: as fast as the best median; higher is better. Each method "
        "counts with its best hyperparameter setting per problem (as in the profiles), over the problems it "
        "ran (a problem it did not run is left out, not a zero); where its run counts differ, its first runs "
        "by seed, as many as its smallest count. IQM: mean of the middle 50% of all its run scores; median "
        "and mean: of its per-problem mean scores. Intervals: stratified bootstrap 95% (rliable, "
        f"{reps} resamples of the runs within each problem)."
    )


def with_interval_texts(table: pl.DataFrame) -> pl.DataFrame:
    """:func:`aggregates`' table with ``iqm_ci``, ``median_ci`` and ``mean_ci``: each interval as ``[lo, hi]`` text
    (``—`` where it was not computed)."""
    return table.with_columns(
        pl.format("[{}, {}]", *(pl.col(f"{name}_{end}").map_elements(lambda v: f"{v:.3f}", return_dtype=pl.String)
                                for end in ("lo", "hi")))
        .fill_null("—")
        .alias(f"{name}_ci")
        for name in ("iqm", "median", "mean")
    )

