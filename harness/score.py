"""Scoring: per-task medians with bootstrap intervals, performance profiles and ECDFs.

Everything here works on polars frames as :mod:`harness.store` gives them (``read_runs``,
``scan_runs``, ``read_traces``); the leaderboard and ``harness report`` show the same numbers.

Vocabulary
----------
problem
    One ``(task, task_params, hardware)``: a task variant on one hardware profile.
solver
    One ``(method, framework)``.
configuration
    A solver on a problem with one hyperparameter setting; its runs differ by seed.

Rules
-----
- A run whose status is a failure (``diverged | error | timeout | oom``) counts as infinite
  suboptimality and infinite time-to-target; it is counted and shown, never dropped. A
  ``timeout`` keeps its measured (final, finite) suboptimality and target-metric value, as a
  ``completed`` run does (and as the ECDF reads its trace); only its time-to-target is infinite.
  A run that did not reach its target has infinite time-to-target. ``skipped`` runs (pairs
  the plan could not run) are counted apart and are no sample.
- Per configuration: the median over seeds, with a percentile-bootstrap interval (resampling
  the seeds). Within a problem, configurations are ranked by median time-to-target, then by
  median suboptimality; where the problem measures no suboptimality, by the median final
  value of its ``target_metric`` in the metric's declared direction (``lower_is_better``,
  e.g. higher accuracy first). A configuration is *significantly better* than another when a
  two-sided Mann-Whitney U test on their per-seed times-to-target rejects at
  :data:`SIGNIFICANCE_LEVEL` and its times are the lower ones, or, when neither reaches the
  target in median, the same test on suboptimality (or the oriented target metric) does.
  Intervals are shown, not tested: with 1, 2, 3 seeds, bootstrap intervals of identical
  distributions fail to overlap 100%, 35%, 10% of the time. A configuration with fewer than
  :data:`MIN_SEEDS_FOR_SIGNIFICANCE` seeds is not tested: no pair with it is called different
  or tied, and its ``significance`` column says why. Two tested configurations are *tied*
  when neither is significantly better. ``stat_rank`` is one plus the number of significantly better
  configurations.
- Performance profiles (Dolan and More, 2002): on each problem, a solver's ratio is its median
  time-to-target over the best solver's (its best hyperparameter setting counts); a solver
  absent from a problem, or failing it, has ratio infinity. ``rho(tau)`` is the fraction of
  problems with ratio <= tau, for tau in [1, 4]; the score is the normalized area
  ``1/(4 - 1) * integral_1^4 rho(tau) dtau`` (AlgoPerf's benchmark score), computed exactly.
  Problems without a target are left out of profiles, and so are problems whose runs were all
  skipped (no solver ran them, e.g. a GPU profile on a CPU host), as in the ECDF.
- The clock (issue 8): ``timed_s``, ``time_to_target_s`` and the traces' ``time_s`` hold
  everything the method does (``init``, every step, its ``output`` hook); compilation before the
  clock (``compile_s``) and a declared offline phase (``offline_s``, e.g. training a learned
  solver) are reported apart. A run whose clock caught compilations (``clock_compiles > 0``)
  is *flagged*: it stays in every score (the compilation time counts against the method) and
  the tables count such runs (``n_clock_compiled``, ``clock_compile_s``). A method's offline
  cost is shown beside its score (median and max of ``offline_s`` over its runs). A store
  migrated from before these columns existed reads as unflagged, without offline cost.
- ECDFs (COCO): 40 targets log-spaced from 10**-0.2 to 1e-8 on the *relative* suboptimality
  (a run's suboptimality over its own initial one, at step 0), so no target is met at the
  start; for each solver and problem, the fraction of (run, target) pairs whose target the
  run's best-so-far relative suboptimality has met, as a function of time (or step). A sweep
  shows as its best setting per problem (the profiles' choice), over that configuration's own
  runs. A solver's curve is the mean over the problems it ran (each weighing equally; its
  count ``n_problems`` is reported), not over all problems; per task with ``task=``. Failed
  runs count in the denominator.

Examples
--------
>>> from harness.store import read_runs, read_traces  # doctest: +SKIP
>>> tables = report(read_runs("harness-store"), traces=read_traces("harness-store"))  # doctest: +SKIP
>>> tables["scores"]  # doctest: +SKIP
"""

from __future__ import annotations

import functools
import itertools
import json
import math
import os
from collections.abc import Collection, Iterable, Mapping, Sequence
from typing import Literal

import numpy as np
import polars as pl

from harness.record import FAILED, NOT_RUN, RUN_COLUMNS, Status, column_kind

__all__ = [
    "AGREEMENT_FLOOR",
    "CLOCK_FLAG",
    "CLOCK_FLAG_HELP",
    "CONFIG_KEYS",
    "ECDF_TARGETS",
    "LABELS",
    "MIN_SEEDS_FOR_SIGNIFICANCE",
    "OFFLINE",
    "OFFLINE_HELP",
    "PROBLEM_KEYS",
    "SIGNIFICANCE_LEVEL",
    "SOLVER_KEYS",
    "TAU_MAX",
    "bootstrap_median_ci",
    "clock_flag_text",
    "column_dtype",
    "comparison_labels",
    "configuration_labels",
    "convergence_bands",
    "display_tables",
    "ecdf",
    "ecdf_summary",
    "framework_comparison",
    "hardware_speedups",
    "has_clock_flags",
    "has_offline",
    "interval_text",
    "medians",
    "metric_info",
    "offline_text",
    "overview_tables",
    "performance_profiles",
    "performance_ratios",
    "prepare",
    "probe_columns",
    "problem_label",
    "problem_labels",
    "problem_summary",
    "profile_scores",
    "profile_steps",
    "report",
    "report_store",
    "results_table",
    "setting_label",
    "setting_labels",
    "solver_costs",
    "task_table",
    "time_per_step",
    "variant_labels",
    "varying_parameters",
    "with_run_columns",
]

PROBLEM_KEYS: tuple[str, ...] = ("task", "task_params", "hardware")
SOLVER_KEYS: tuple[str, ...] = ("method", "framework")
CONFIG_KEYS: tuple[str, ...] = (*PROBLEM_KEYS, *SOLVER_KEYS, "hyperparameters")
#: Upper end of the performance profiles' tau range.
TAU_MAX = 4.0
#: Fewest seeds per configuration for a significance test. Bootstrap intervals of the median
#: with 1, 2 or 3 seeds fail to overlap for identical distributions 100%, 35% and 10% of the
#: time; and with 3 seeds against 3 the exact two-sided Mann-Whitney p-value is never below
#: 0.1, so no test at 5% can tell them apart. Below it a configuration ties with every other.
MIN_SEEDS_FOR_SIGNIFICANCE = 4
#: Level of the two-sided Mann-Whitney U test between two configurations' seeds.
SIGNIFICANCE_LEVEL = 0.05
#: COCO-style targets on the relative suboptimality (over the run's initial one): 40 values
#: ``10**(-k/5)``, k = 1..40, from 10**-0.2 down to 1e-8 (5 per decade), all strictly below 1.
ECDF_TARGETS: tuple[float, ...] = tuple(float(10.0 ** (-k / 5)) for k in range(1, 41))

#: Scale below which two frameworks' final values are compared absolutely (both zero to rounding).
AGREEMENT_FLOOR = 1e-12

#: Display labels of the result columns, with direction arrows (units: see ``metric_info``).
LABELS: dict[str, str] = {
    "rank": "rank",
    "stat_rank": "rank (CI)",
    "tied_with": "tied with",
    "significance": "significance",
    "median_target_metric": "target metric",
    "label": "method",
    "n_runs": "runs",
    "n_reached": "reached ↑",
    "n_failed": "failed ↓",
    "n_skipped": "skipped",
    "failures": "failures",
    "median_suboptimality": "suboptimality ↓",
    "suboptimality_lo": "subopt. CI low",
    "suboptimality_hi": "subopt. CI high",
    "median_time_to_target_s": "time to target ↓ [s]",
    "time_to_target_lo": "time CI low [s]",
    "time_to_target_hi": "time CI high [s]",
    "median_steps_to_target": "steps to target ↓",
    "score": "profile score ↑ [0-1]",
    "solved": "solved ↑ [fraction]",
    "wins": "fastest ↑ [fraction]",
    "n_problems": "problems",
    "ecdf_final": "targets reached ↑ [fraction]",
    "ecdf_area": "ECDF area ↑ [fraction]",
    "n_configurations": "configurations",
    "n_top": "rank (CI) 1",
    "best": "best",
}

#: Label of the flag of runs whose clock caught compilations.
CLOCK_FLAG = "⚠ compiled in clock"
#: What the flag means (captions and tooltips of the leaderboard, caption of ``harness report``).
CLOCK_FLAG_HELP = (
    "Compilation fell inside the timed region: its time counts against the method. "
    "Flagged runs stay in the scores."
)
#: Label of a method's offline cost.
OFFLINE = "offline [s]"
#: What the offline cost is.
OFFLINE_HELP = (
    "The method's declared offline phase (e.g. training a learned solver), amortized over problems and "
    "reported apart from the clock: median (max) of offline_s over its runs; — when it has none."
)

_INF = float("inf")


# -- preparation ------------------------------------------------------------------------------


#: The polars type of each :data:`harness.record.ColumnKind`.
_DTYPES: dict[str, pl.DataType] = {"str": pl.String(), "int": pl.Int64(), "float": pl.Float64(), "bool": pl.Boolean()}
#: The metric columns the scorer reads (a store whose tasks declare none of them lacks the column).
SCORED_METRICS: tuple[str, ...] = ("suboptimality",)


def column_dtype(name: str) -> pl.DataType:
    """The polars type of a run column: its :func:`harness.record.column_kind`.

    Examples
    --------
    >>> column_dtype("steps"), column_dtype("status"), column_dtype("suboptimality")
    (Int64, String, Float64)
    """
    return _DTYPES[column_kind(name)]


def with_run_columns(runs: pl.DataFrame | pl.LazyFrame, *, metrics: Iterable[str] = SCORED_METRICS) -> pl.LazyFrame:
    """``runs`` with every fixed column of the record (:data:`harness.record.RUN_COLUMNS`) and ``metrics``.

    A missing column is added as null of its kind (:func:`column_dtype`): a hand-built frame,
    a store none of whose tasks declares ``suboptimality``, or a store written before a
    column existed (no compilation on the clock, no offline phase). A column that is all
    null without a type (``pl.Null``) gets its kind's type; other columns are kept as they are.
    """
    lazy = runs.lazy()
    schema = lazy.collect_schema()
    wanted = [*RUN_COLUMNS, *(m for m in metrics if m not in RUN_COLUMNS)]
    filled = [
        pl.lit(None, column_dtype(name)).alias(name) if name not in schema else pl.col(name).cast(column_dtype(name))
        for name in wanted
        if name not in schema or schema[name] == pl.Null
    ]
    return lazy.with_columns(filled) if filled else lazy


def _statuses(group: Iterable[Status]) -> list[str]:
    """A status group of :mod:`harness.record` as plain strings, for ``is_in``."""
    return [str(status) for status in group]


def prepare(runs: pl.DataFrame | pl.LazyFrame) -> pl.LazyFrame:
    """Add the scored columns to ``runs``.

    Added: the record's fixed columns and the scored metrics a frame lacks (null of their
    kind: :func:`with_run_columns`), ``clock_compiled`` (the clock caught a compilation),
    ``failed`` (a status of :data:`harness.record.FAILED`) and ``counted`` (not
    :data:`harness.record.NOT_RUN`), ``scored_suboptimality`` (infinite for a
    failure, except a ``timeout`` that measured a finite value, which keeps it; non-finite
    values infinite, null when a finished run measured none),
    ``scored_time_to_target_s`` and ``scored_steps_to_target`` (infinite unless reached).

    Parameters
    ----------
    runs
        Runs as the store gives them (any subset of columns that includes the keys,
        ``status`` and ``time_to_target_s``; ``suboptimality`` may be absent).
    """
    lazy = with_run_columns(runs)
    failed = pl.col("status").is_in(_statuses(FAILED))
    sub = pl.col("suboptimality").cast(pl.Float64)
    ttt = pl.col("time_to_target_s").cast(pl.Float64)
    stt = pl.col("steps_to_target").cast(pl.Float64)
    return lazy.with_columns(
        failed.alias("failed"),
        (pl.col("clock_compiles").fill_null(0) > 0).alias("clock_compiled"),
        (~pl.col("status").is_in(_statuses(NOT_RUN))).alias("counted"),
        pl.when(_kept_timeout(sub)).then(sub)
        .when(failed).then(_INF).when(sub.is_null()).then(None).when(sub.is_finite()).then(sub).otherwise(_INF)
        .alias("scored_suboptimality"),
        _reached_or_inf(ttt, failed).alias("scored_time_to_target_s"),
        _reached_or_inf(stt, failed).alias("scored_steps_to_target"),
    )


def _kept_timeout(value: pl.Expr) -> pl.Expr:
    """A ``timeout`` run's measured value (not null, finite) is kept as its result: only its time is infinite."""
    return (pl.col("status") == str(Status.TIMEOUT)) & value.is_not_null() & value.is_finite()


def _reached_or_inf(value: pl.Expr, failed: pl.Expr) -> pl.Expr:
    return pl.when(failed | value.is_null() | ~value.is_finite()).then(_INF).otherwise(value)


def metric_info(runs: pl.DataFrame | pl.LazyFrame) -> dict[str, dict[str, dict[str, object]]]:
    """The declared metrics of each task: ``{task: {metric: {"unit", "lower_is_better"}}}``.

    Read from the runs' ``metrics`` JSON column (one parse per distinct value).
    """
    lazy = runs.lazy()
    if "metrics" not in lazy.collect_schema().names():
        return {}
    pairs = lazy.select("task", "metrics").unique().drop_nulls().collect()
    info: dict[str, dict[str, dict[str, object]]] = {}
    for task, text in pairs.iter_rows():
        try:
            parsed = json.loads(text)
        except (TypeError, ValueError):
            continue
        if isinstance(parsed, dict):
            info.setdefault(task, {}).update({k: v for k, v in parsed.items() if isinstance(v, dict)})
    return info


def _unit(info: Mapping[str, Mapping[str, Mapping[str, object]]], task: str) -> str:
    metrics = info.get(task, {})
    for metric in ("suboptimality", "objective"):
        unit = metrics.get(metric, {}).get("unit")
        if unit is not None:
            return str(unit)
    return ""


def problem_label(
    task: str, task_params: str | None, hardware: str | None, *, show: Collection[str] | None = None
) -> str:
    """A short label of a problem: ``task[name=value,...]@hardware``; only ``show``'s parameters when given.

    Without ``hardware`` (``None``), the task variant's label: ``task[name=value,...]``.
    """
    try:
        params = json.loads(task_params) if task_params else {}
    except ValueError:
        params = {"params": task_params}
    if isinstance(params, dict) and show is not None:
        params = {k: v for k, v in params.items() if k in show}
    inner = ",".join(f"{k}={v}" for k, v in params.items()) if isinstance(params, dict) else str(params)
    return f"{task}{f'[{inner}]' if inner else ''}" + ("" if hardware is None else f"@{hardware}")


def problem_labels(frame: pl.DataFrame) -> pl.Series:
    """:func:`problem_label` of each row of ``frame``, naming only the parameters that vary in it."""
    rows = frame.select(PROBLEM_KEYS).rows()
    varying = varying_parameters((task, params) for task, params, _ in rows)
    return pl.Series("problem", [problem_label(*r, show=varying.get(r[0], set())) for r in rows], dtype=pl.String)


def variant_labels(frame: pl.DataFrame) -> pl.Series:
    """The task variant of each row of ``frame`` (``task[name=value,...]``), naming only the parameters that vary in it."""
    rows = frame.select("task", "task_params").rows()
    varying = varying_parameters(rows)
    return pl.Series("variant", [problem_label(t, p, None, show=varying.get(t, set())) for t, p in rows],
                     dtype=pl.String)


def setting_label(hyperparameters: str | None, *, show: Collection[str] | None = None) -> str:
    """A hyperparameter setting as ``name=value, ...`` (only ``show``'s names when given; ``""`` for none).

    Examples
    --------
    >>> setting_label('{"lr":3.0,"spike_every":50}')
    'lr=3, spike_every=50'
    >>> setting_label('{"lr":0.001,"b1":0.9}', show={"lr"})
    'lr=0.001'
    """
    try:
        params = json.loads(hyperparameters) if hyperparameters else {}
    except ValueError:
        return str(hyperparameters)
    if not isinstance(params, dict):
        return str(params)
    return ", ".join(f"{k}={_value_text(v)}" for k, v in params.items() if show is None or k in show)


def _value_text(value: object) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, str):
        return value
    return json.dumps(value, separators=(",", ":"))


def setting_labels(frame: pl.DataFrame) -> pl.Series:
    """:func:`setting_label` of each row of ``frame`` (``method``, ``hyperparameters``), naming only
    the hyperparameters that vary within the row's method."""
    rows = frame.select("method", "hyperparameters").rows()
    varying = varying_parameters(rows)
    return pl.Series("setting", [setting_label(h, show=varying.get(m, set())) for m, h in rows], dtype=pl.String)


def varying_parameters(rows: Iterable[tuple[str, str | None]]) -> dict[str, set[str]]:
    """Per task, the parameters that take more than one value among ``(task, task_params)`` rows.

    The same of any ``(key, JSON object)`` pairs: per method, the hyperparameters that vary
    among ``(method, hyperparameters)`` rows. A parameter absent from some rows varies.

    Examples
    --------
    >>> varying_parameters([("t", '{"n": 1, "d": 2}'), ("t", '{"n": 3, "d": 2}')])
    {'t': {'n'}}
    """
    pairs = set(rows)
    parsed = [(task, json.loads(params) if params else {}) for task, params in pairs]
    values: dict[str, dict[str, set[str]]] = {}
    for task, given in parsed:
        for name, value in given.items():
            values.setdefault(task, {}).setdefault(name, set()).add(json.dumps(value, sort_keys=True))
    for task, given in parsed:  # a parameter that a row does not set varies too
        for name, seen in values.get(task, {}).items():
            if name not in given:
                seen.add("\0absent")  # never the text of a JSON value
    return {task: {n for n, v in names.items() if len(v) > 1} for task, names in values.items()}


# -- per configuration ------------------------------------------------------------------------


def medians(runs: pl.DataFrame | pl.LazyFrame, *, keys: Sequence[str] = CONFIG_KEYS) -> pl.DataFrame:
    """Per configuration: run counts and medians over seeds (no intervals: cheap).

    Returns
    -------
    polars.DataFrame
        ``keys``, ``task_family``, ``method_family`` (when present), ``n_runs`` (not skipped),
        ``n_reached``, ``n_failed``, ``n_skipped``, ``failures`` (e.g. ``"diverged×2, error×1"``),
        ``has_target``, ``median_suboptimality``, ``median_time_to_target_s``,
        ``median_steps_to_target``, ``n_clock_compiled`` (runs whose clock caught a
        compilation), ``clock_compile_s`` (those compilations' seconds, summed),
        ``median_offline_s`` and ``max_offline_s`` (null when no run has an offline phase).
    """
    lazy = prepare(runs)
    names = lazy.collect_schema().names()
    counted = pl.col("counted")
    families = [pl.col(c).drop_nulls().first().alias(c) for c in ("task_family", "method_family") if c in names]
    table = lazy.group_by(*keys).agg(
        *families,
        counted.sum().cast(pl.Int64).alias("n_runs"),
        (counted & pl.col("scored_time_to_target_s").is_finite()).sum().cast(pl.Int64).alias("n_reached"),
        pl.col("failed").sum().cast(pl.Int64).alias("n_failed"),
        (~counted).sum().cast(pl.Int64).alias("n_skipped"),
        pl.col("target_value").is_not_null().any().alias("has_target"),
        pl.col("scored_suboptimality").filter(counted).median().alias("median_suboptimality"),
        pl.col("scored_time_to_target_s").filter(counted).median().alias("median_time_to_target_s"),
        pl.col("scored_steps_to_target").filter(counted).median().alias("median_steps_to_target"),
        *_cost_aggregates(),
    )
    failures = (
        lazy.filter(pl.col("failed"))
        .group_by(*keys, "status")
        .len()
        .sort("status")
        .group_by(*keys)
        .agg(pl.format("{}×{}", "status", "len").str.join(", ").alias("failures"))
    )
    joined = table.join(failures, on=list(keys), how="left", nulls_equal=True)
    return joined.with_columns(pl.col("failures").fill_null("")).sort(*keys, nulls_last=True).collect()


def _cost_aggregates() -> list[pl.Expr]:
    """Flagged-run counts and offline costs of a group of prepared runs (skipped ones left out)."""
    flagged = pl.col("counted") & pl.col("clock_compiled")
    offline = pl.col("offline_s").filter(pl.col("counted"))
    return [
        flagged.sum().cast(pl.Int64).alias("n_clock_compiled"),
        pl.col("clock_compile_s").filter(flagged).fill_null(0.0).sum().alias("clock_compile_s"),
        offline.median().alias("median_offline_s"),
        offline.max().alias("max_offline_s"),
    ]


def solver_costs(runs: pl.DataFrame | pl.LazyFrame) -> pl.DataFrame:
    """Per solver: its flagged runs and its offline cost, the numbers shown beside its score.

    Returns
    -------
    polars.DataFrame
        ``SOLVER_KEYS``, ``n_clock_compiled`` (runs whose clock caught a compilation),
        ``clock_compile_s`` (their compilation seconds, summed), ``median_offline_s`` and
        ``max_offline_s`` (over its runs; null when it has no offline phase).
    """
    return prepare(runs).group_by(*SOLVER_KEYS).agg(*_cost_aggregates()).sort(*SOLVER_KEYS).collect()


def clock_flag_text(runs: pl.Expr | str, seconds: pl.Expr | str, *, unit: str = "run") -> pl.Expr:
    """``"⚠ 3 runs, 0.42 s"`` where ``runs`` > 0, else ``""`` (``unit``: what is counted)."""
    count = pl.col(runs) if isinstance(runs, str) else runs
    secs = pl.col(seconds) if isinstance(seconds, str) else seconds
    count = count.fill_null(0)
    noun = pl.when(count == 1).then(pl.lit(unit)).otherwise(pl.lit(unit + "s"))
    # Only flagged rows reach Python (the formatter skips nulls): cheap on 100,000 runs.
    text = pl.format("⚠ {} {}, {} s", count, noun, _short(pl.when(count > 0).then(secs.fill_null(0.0))))
    return pl.when(count > 0).then(text).otherwise(pl.lit(""))


def offline_text(median: pl.Expr | str, maximum: pl.Expr | str) -> pl.Expr:
    """``"12 (max 14)"`` seconds, or ``"—"`` when there is no offline phase."""
    med = pl.col(median) if isinstance(median, str) else median
    top = pl.col(maximum) if isinstance(maximum, str) else maximum
    return pl.when(med.is_null()).then(pl.lit("—")).otherwise(pl.format("{} (max {})", _short(med), _short(top)))


def _short(value: pl.Expr) -> pl.Expr:
    """Seconds as text with 3 significant digits."""
    return value.map_elements(lambda v: f"{v:.3g}", return_dtype=pl.String)


def bootstrap_median_ci(
    samples: Sequence[np.ndarray | Sequence[float]],
    *,
    n_boot: int = 2000,
    level: float = 0.95,
    seed: int = 0,
) -> np.ndarray:
    """Percentile-bootstrap intervals of the median, one per sample.

    Infinite values are allowed (a failure); bounds are read from the sorted bootstrap medians
    without interpolation, so ``inf`` never turns into ``nan``.

    Parameters
    ----------
    samples
        One 1-D array per group (its seeds' values); an empty one gives ``nan`` bounds.
    n_boot
        Bootstrap resamples.
    level
        Coverage of the interval.
    seed
        Seed of the resampling (results are reproducible).

    Returns
    -------
    numpy.ndarray
        Shape ``(len(samples), 2)``: lower and upper bounds.
    """
    out = np.full((len(samples), 2), np.nan)
    arrays = [np.sort(np.asarray(s, dtype=float)) for s in samples]
    by_size: dict[int, list[int]] = {}
    for i, values in enumerate(arrays):
        by_size.setdefault(values.size, []).append(i)
    alpha = (1.0 - level) / 2.0
    ranks = np.asarray([int(np.floor(alpha * n_boot)), min(n_boot - 1, int(np.ceil((1.0 - alpha) * n_boot)) - 1)])
    rng = np.random.default_rng(seed)
    for size, members in sorted(by_size.items()):
        if size == 0:
            continue
        stacked = np.stack([arrays[i] for i in members])
        out[members] = _bootstrap_bounds(stacked, rng.integers(0, size, size=(n_boot, size)), ranks)
    return out


def _bootstrap_bounds(stacked: np.ndarray, index: np.ndarray, ranks: np.ndarray) -> np.ndarray:
    """The ``ranks``-th smallest bootstrap medians of each row of ``stacked`` (rows sorted).

    A resample's sorted values are the sorted sample at its sorted indices, so its median is
    the mean of the sample at two index order statistics. The resamples share the index
    draws, hence a few distinct index pairs with counts: each row sorts those values only.
    """
    size = index.shape[1]
    index = np.sort(index, axis=1)
    pairs, counts = np.unique(index[:, [(size - 1) // 2, size // 2]], axis=0, return_counts=True)
    values = (stacked[:, pairs[:, 0]] + stacked[:, pairs[:, 1]]) / 2.0
    order = np.argsort(values, axis=1, kind="stable")
    cumulative = np.cumsum(counts[order], axis=1)
    bounds = np.empty((stacked.shape[0], ranks.size))
    for j, rank in enumerate(ranks):
        position = (cumulative <= rank).sum(axis=1, keepdims=True)
        bounds[:, j] = np.take_along_axis(values, np.take_along_axis(order, position, axis=1), axis=1)[:, 0]
    return bounds


def task_table(
    runs: pl.DataFrame | pl.LazyFrame,
    *,
    n_boot: int = 2000,
    level: float = 0.95,
    seed: int = 0,
) -> pl.DataFrame:
    """Per configuration: medians over seeds with bootstrap intervals, ranks and ties.

    Returns
    -------
    polars.DataFrame
        The columns of :func:`medians`, plus ``unit`` (of suboptimality), ``suboptimality_lo``,
        ``suboptimality_hi``, ``time_to_target_lo``, ``time_to_target_hi``, ``rank`` (by median
        time-to-target, then median suboptimality or, where the problem measures none, the
        target metric in its direction, within the problem), ``median_target_metric`` (median
        final value of the run's ``target_metric``; failures count as its worst value),
        ``stat_rank``, ``tied`` and ``tied_with`` (labels of the configurations not
        significantly different: see the module's rules), ``significance`` (why a
        configuration was not tested, ``""`` when it was),
        ``label`` (method, with framework and hyperparameters where the problem needs them to
        tell configurations apart). Sorted by problem, then rank.
    """
    lazy = prepare(runs)
    table = medians(lazy)
    if table.is_empty():
        return _empty_task_table(table)
    info = metric_info(lazy)
    oriented, sign = _target_metric(lazy, info)
    values = (
        lazy.filter(pl.col("counted"))
        .with_columns(oriented.alias("_tgt_value"), sign.alias("_tgt_sign"))
        .group_by(*CONFIG_KEYS)
        .agg(
            pl.col("scored_suboptimality").drop_nulls().alias("_sub"),
            pl.col("scored_time_to_target_s").alias("_ttt"),
            pl.col("_tgt_value").drop_nulls().alias("_tgt"),
            pl.col("_tgt_value").median().alias("_tgt_median"),
            pl.col("_tgt_sign").drop_nulls().first().alias("_tgt_sign"),
            pl.col("suboptimality").is_not_null().any().alias("_measured"),
        )
        .collect()
    )
    table = table.join(values, on=list(CONFIG_KEYS), how="left", nulls_equal=True)
    # A problem where no run measured suboptimality is judged on its target metric instead.
    measured = pl.col("_measured").fill_null(False).any().over(PROBLEM_KEYS)
    table = table.with_columns(
        (pl.col("_tgt_median") * pl.col("_tgt_sign")).alias("median_target_metric"),
        pl.when(measured).then(pl.col("median_suboptimality")).otherwise(pl.col("_tgt_median")).alias("_q_median"),
        pl.when(measured).then(pl.col("_sub")).otherwise(pl.col("_tgt")).alias("_q"),
    )
    sub_ci = bootstrap_median_ci(_arrays(table["_sub"]), n_boot=n_boot, level=level, seed=seed)
    ttt_ci = bootstrap_median_ci(_arrays(table["_ttt"]), n_boot=n_boot, level=level, seed=seed + 1)
    table = table.drop("_sub", "_tgt", "_tgt_median", "_tgt_sign", "_measured").with_columns(
        pl.Series("suboptimality_lo", sub_ci[:, 0]).fill_nan(None),
        pl.Series("suboptimality_hi", sub_ci[:, 1]).fill_nan(None),
        pl.Series("time_to_target_lo", ttt_ci[:, 0]).fill_nan(None),
        pl.Series("time_to_target_hi", ttt_ci[:, 1]).fill_nan(None),
        pl.col("task").replace_strict({t: _unit(info, t) for t in info}, default="", return_dtype=pl.String)
        .alias("unit"),
    )
    return _rank(table).drop("_q", "_q_median", "_ttt")


def _target_metric(lazy: pl.LazyFrame, info: Mapping[str, Mapping[str, Mapping[str, object]]]) -> tuple[pl.Expr, pl.Expr]:
    """Each run's final value of its ``target_metric``, oriented so that lower is better, and the sign used.

    The value is negated where the metric declares ``lower_is_better: false`` (e.g. an
    accuracy). A failure (``diverged | error | oom``, and a ``timeout`` without a finite
    value) and a non-finite value score as the worst value, ``+inf`` once oriented; a run
    without one is null. The sign (``1.0`` or ``-1.0``) turns an oriented median back.
    """
    names = set(lazy.collect_schema().names())
    if "target_metric" not in names:
        return pl.lit(None, pl.Float64), pl.lit(None, pl.Float64)
    pairs = lazy.select("task", "target_metric").unique().drop_nulls().collect().rows()
    value: pl.Expr = pl.lit(None, pl.Float64)
    sign: pl.Expr = pl.lit(None, pl.Float64)
    for task, metric in pairs:
        if metric not in names:
            continue
        lower = info.get(task, {}).get(metric, {}).get("lower_is_better", True)
        factor = 1.0 if lower is not False else -1.0
        here = (pl.col("task") == task) & (pl.col("target_metric") == metric)
        raw = pl.col(metric).cast(pl.Float64)
        scored = (
            pl.when(_kept_timeout(raw)).then(raw * factor)
            .when(pl.col("failed")).then(_INF)
            .when(raw.is_null()).then(None)
            .when(raw.is_finite()).then(raw * factor)
            .otherwise(_INF)
        )
        value = pl.when(here).then(scored).otherwise(value)
        sign = pl.when(here).then(pl.lit(factor)).otherwise(sign)
    return value, sign


def _arrays(column: pl.Series) -> list[np.ndarray]:
    """Each list of a list column as a float array (null elements NaN; a null list empty).

    One flat read split by the lengths: a conversion per list cost 0.25 s at 10,000 configurations.
    """
    lengths = column.list.len().fill_null(0)
    # Only non-empty lists are exploded: what an empty or null list leaves differs across polars versions.
    flat = column.filter(lengths > 0).explode().cast(pl.Float64).fill_null(float("nan")).to_numpy()
    return np.split(flat, np.cumsum(lengths.to_numpy())[:-1]) if len(column) else []


def _empty_task_table(table: pl.DataFrame) -> pl.DataFrame:
    extra = {
        "suboptimality_lo": pl.Float64, "suboptimality_hi": pl.Float64,
        "time_to_target_lo": pl.Float64, "time_to_target_hi": pl.Float64, "unit": pl.String,
        "median_target_metric": pl.Float64,
        "rank": pl.Int64, "stat_rank": pl.Int64, "tied": pl.Boolean, "tied_with": pl.String,
        "significance": pl.String, "label": pl.String,
    }
    return table.with_columns([pl.lit(None, dtype).alias(name) for name, dtype in extra.items()])


def _rank(table: pl.DataFrame) -> pl.DataFrame:
    """Ranks, statistical ranks, ties and labels of the configurations, problem by problem.

    ``table`` holds the per-seed samples ``_ttt`` (time-to-target) and ``_q`` (suboptimality,
    or the oriented target metric where the problem measures no suboptimality) and the
    median ``_q_median``. Configurations without a sample (only skipped runs) get no rank and
    tie with none. A pair is tested (:func:`_compare`) only when both configurations have at
    least :data:`MIN_SEEDS_FOR_SIGNIFICANCE` seeds; otherwise it is tied, and the
    configuration with too few seeds says why in ``significance``.
    """
    table = table.sort(*PROBLEM_KEYS, "median_time_to_target_s", "_q_median", *SOLVER_KEYS, "hyperparameters",
                       nulls_last=True)
    starts = np.flatnonzero(table.select(pl.struct(PROBLEM_KEYS).is_first_distinct()).to_series().to_numpy())
    bounds = np.append(starts, table.height)
    n_runs = table["n_runs"].to_numpy()
    sampled = n_runs > 0
    ttt, quality = _arrays(table["_ttt"]), _arrays(table["_q"])
    median_ttt = _column(table, "median_time_to_target_s")
    keys = table.select("method", "framework", "hyperparameters").rows()
    rank = np.full(table.height, -1, dtype=np.int64)
    stat_rank = np.full(table.height, -1, dtype=np.int64)
    tied = np.zeros(table.height, dtype=bool)
    tied_with = [""] * table.height
    notes = [""] * table.height
    labels: list[str] = []
    for begin, end in itertools.pairwise(bounds):
        labels += _config_labels(keys[begin:end])
        rows = begin + np.flatnonzero(sampled[begin:end])
        if rows.size == 0:
            continue
        enough = n_runs[rows] >= MIN_SEEDS_FOR_SIGNIFICANCE
        # Every pair at once (:func:`_compare_all`); a pair where both never reached the target
        # and time cannot tell them apart is judged on quality.
        never = median_ttt[rows] == _INF
        outcome = _compare_all([ttt[r] for r in rows])
        undecided = (outcome == 0) & never[:, None] & never[None, :]
        if undecided.any():
            outcome = np.where(undecided, _compare_all([quality[r] for r in rows]), outcome)
        better = (outcome > 0) & enough[:, None] & enough[None, :]  # better[i, j]: i beats j
        # A tie is a tested pair found not different; an untested pair is neither (its note says why).
        tie = enough[:, None] & enough[None, :] & ~better & ~better.T
        np.fill_diagonal(tie, False)
        rank[rows] = np.arange(1, rows.size + 1)
        stat_rank[rows] = 1 + better.sum(axis=0)
        tied[rows] = tie.any(axis=1)
        for i, row in enumerate(tie):
            tied_with[rows[i]] = ", ".join(labels[rows[j]] for j in np.flatnonzero(row))
            if not enough[i] and rows.size > 1:
                count = int(n_runs[rows[i]])
                notes[rows[i]] = f"{count} seed{'s' if count != 1 else ''} < {MIN_SEEDS_FOR_SIGNIFICANCE}: untested"
    return table.with_columns(
        pl.Series("rank", rank).replace(-1, None),
        pl.Series("stat_rank", stat_rank).replace(-1, None),
        pl.Series("tied", tied, dtype=pl.Boolean),
        pl.Series("tied_with", tied_with, dtype=pl.String),
        pl.Series("significance", notes, dtype=pl.String),
        pl.Series("label", labels, dtype=pl.String),
    )


def _compare(x: np.ndarray, y: np.ndarray, *, level: float = SIGNIFICANCE_LEVEL) -> int:
    """``1`` when sample ``x`` is significantly lower than ``y``, ``-1`` when higher, else ``0``.

    A two-sided Mann-Whitney U test on the per-seed values (rank-based: infinite values, the
    failures, are the largest and tie among themselves) at ``level``, as
    ``scipy.stats.mannwhitneyu(x, y, method="auto")``: the exact null distribution when a
    sample has at most 8 values and there are no ties, else the normal approximation with tie and
    continuity corrections. The direction is the side of ``U_x`` (pairs with ``x > y``, ties
    half) from ``n_x n_y / 2``: below, ``x`` is lower.
    """
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    x, y = x[~np.isnan(x)], y[~np.isnan(y)]
    m, n = x.size, y.size
    if m == 0 or n == 0:
        return 0
    both = np.concatenate([x, y])
    _, inverse, counts = np.unique(both, return_inverse=True, return_counts=True)
    if counts.size == 1:
        return 0
    ranks = (np.cumsum(counts) - (counts - 1) / 2.0)[inverse]  # mid-ranks; inf compares as the largest
    u = float(ranks[:m].sum() - m * (m + 1) / 2.0)
    centre = m * n / 2.0
    if u == centre:
        return 0
    ties = bool((counts > 1).any())
    if not ties and min(m, n) <= 8:
        table = _exact_u_counts(m, n)
        high = max(u, m * n - u)
        pvalue = min(1.0, 2.0 * float(table[int(round(high)):].sum()) / float(table.sum()))
    else:
        size = m + n
        var = m * n / 12.0 * ((size + 1) - float((counts**3 - counts).sum()) / (size * (size - 1)))
        if var <= 0:
            return 0
        z = max(abs(u - centre) - 0.5, 0.0) / math.sqrt(var)
        pvalue = math.erfc(z / math.sqrt(2.0))
    if not pvalue < level:
        return 0
    return 1 if u < centre else -1


def _compare_all(samples: Sequence[np.ndarray], *, level: float = SIGNIFICANCE_LEVEL) -> np.ndarray:
    """:func:`_compare` of every pair of ``samples``: ``out[i, j] = _compare(samples[i], samples[j])``.

    The same test, decided the same way (the statistic, the tie term and the variance are the
    same integers and floats), for a problem's configurations at once, where a Python call per
    pair cost ~40 us (10 s for the 250,000 pairs of a 100,000-run store). With ``C[i, v]`` the
    count of the ``v``-th smallest distinct value in sample ``i``, every pair's ``U``, ties and
    pooled tie term ``sum(t^3 - t)`` are sums over ``v``: a few gathers of ``C`` and segment sums.
    """
    kept = [np.asarray(x, dtype=float) for x in samples]
    kept = [x[~np.isnan(x)] for x in kept]
    k = len(kept)
    sizes = np.asarray([x.size for x in kept], dtype=np.int64)
    distinct, codes = np.unique(np.concatenate([np.empty(0), *kept]), return_inverse=True)
    owner = np.repeat(np.arange(k), sizes)
    counts = np.zeros((k, distinct.size), dtype=np.int64)
    np.add.at(counts, (owner, codes), 1)
    below = np.cumsum(counts, axis=1) - counts  # below[j, v]: values of j smaller than the v-th
    filled = np.flatnonzero(sizes)
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])[filled]

    def over_values(per_value: np.ndarray) -> np.ndarray:
        """``out[i, j] = sum over the values x of sample i of per_value[j, code(x)]`` (a gather, no BLAS:
        integers stay exact and a busy machine's BLAS threads cannot slow it)."""
        out = np.zeros((k, k), dtype=np.int64)
        if filled.size:
            out[filled] = np.add.reduceat(per_value[:, codes], starts, axis=1).T
        return out

    greater, equal = over_values(below), over_values(counts)
    # Pooled counts t_v = a_v + b_v: sum(t^3 - t) = sum a^3 + sum b^3 + 3 sum a^2 b + 3 sum a b^2 - (m + n),
    # where sum_v a_v b_v^2 sums b's count squared over x's values.
    cubes = (counts**3).sum(axis=1)
    squared = over_values(counts**2)
    cross = squared + squared.T
    m, n = sizes[:, None], sizes[None, :]
    tie_term = cubes[:, None] + cubes[None, :] + 3 * cross - (m + n)
    u = greater + 0.5 * equal
    centre = m * n / 2.0
    tested = (m > 0) & (n > 0) & (u != centre)
    exact = tested & (tie_term == 0) & (np.minimum(m, n) <= 8)
    normal = tested & ~exact
    pvalue = np.ones((k, k))
    high = np.rint(np.maximum(u, m * n - u)).astype(np.int64)  # U is whole without ties
    pair_sizes = np.stack(np.broadcast_arrays(m, n), axis=-1)
    for mi, nj in {tuple(p) for p in pair_sizes[exact].tolist()}:  # few distinct sizes: one lookup each
        here = exact & (m == mi) & (n == nj)
        pvalue[here] = _exact_tails(mi, nj)[high[here]]
    size = (m + n)[normal]
    var = (m * n)[normal] / 12.0 * ((size + 1) - tie_term[normal].astype(float) / (size * (size - 1)))
    z = np.maximum(np.abs(u[normal] - centre[normal]) - 0.5, 0.0) / np.sqrt(np.where(var > 0, var, 1.0))
    # math.erfc, as the scalar test: scipy's may differ in the last bit at the threshold.
    pvalue[normal] = np.where(var > 0, _ERFC(z / math.sqrt(2.0)).astype(float), 1.0)
    significant = tested & (pvalue < level)
    return np.where(significant, np.where(u < centre, 1, -1), 0).astype(np.int64)


_ERFC = np.frompyfunc(math.erfc, 1, 1)


@functools.lru_cache(maxsize=256)
def _exact_tails(m: int, n: int) -> np.ndarray:
    """Two-sided exact p-values by the larger ``U`` (0..m n), as :func:`_compare` computes each."""
    table = _exact_u_counts(m, n)
    total = float(table.sum())
    return np.asarray([min(1.0, 2.0 * float(table[h:].sum()) / total) for h in range(table.size)])


@functools.lru_cache(maxsize=256)
def _exact_u_counts(m: int, n: int) -> np.ndarray:
    """How many of the ``C(m + n, m)`` splits give each U (0..m n): the Gaussian binomial's coefficients.

    ``sum_u count(u) q^u = prod_{k=1}^{m} (1 - q^(n+k)) / (1 - q^k)``, computed on power series
    truncated past degree ``m n`` (the product is a polynomial of that degree).
    """
    m, n = min(m, n), max(m, n)
    size = m * n + 1
    poly = np.zeros(size)
    poly[0] = 1.0
    for k in range(1, m + 1):
        if n + k < size:
            poly[n + k:] -= poly[: size - n - k].copy()
        padded = np.zeros(-(-size // k) * k)
        padded[:size] = poly
        poly = np.cumsum(padded.reshape(-1, k), axis=0).ravel()[:size]  # divided by (1 - q^k)
    return poly


def _column(frame: pl.DataFrame, name: str) -> np.ndarray:
    return frame[name].cast(pl.Float64).fill_null(float("nan")).to_numpy()


def configuration_labels(frame: pl.DataFrame) -> pl.Series:
    """A readable label of each configuration (row of ``method``, ``framework``, ``hyperparameters``).

    The method, plus ``/framework`` when ``frame`` holds several frameworks, plus the
    hyperparameters that vary among the method's settings in ``frame``, in brackets.

    Examples
    --------
    >>> frame = pl.DataFrame({"method": ["gd", "gd", "adam"], "framework": ["torch"] * 3,
    ...                       "hyperparameters": ['{"lr":3.0,"spike_factor":1000.0}', '{"lr":3.0}', '{"lr":0.1}']})
    >>> configuration_labels(frame).to_list()
    ['gd [spike_factor=1000]', 'gd', 'adam']
    """
    return pl.Series("label", _config_labels(frame.select("method", "framework", "hyperparameters").rows()),
                     dtype=pl.String)


def comparison_labels(frame: pl.DataFrame, *, group: Literal["hardware", "framework"]) -> pl.DataFrame:
    """``frame`` with ``label`` (its configuration, without the compared ``group``) and ``variant``
    (:func:`variant_labels`); the label starts with the variant where ``frame`` holds several.

    For the hardware and framework comparisons: one label per compared configuration, its
    bars or rows one per profile (framework).
    """
    keyed = frame.with_columns(pl.lit("").alias("framework")) if group == "framework" else frame
    labelled = frame.with_columns(configuration_labels(keyed), variant_labels(frame))
    if frame.select("task", "task_params").unique().height > 1:
        labelled = labelled.with_columns(pl.format("{} · {}", "variant", "label").alias("label"))
    if group == "framework" and frame["hardware"].n_unique() > 1:
        labelled = labelled.with_columns(pl.format("{}@{}", "label", "hardware").alias("label"))
    return labelled


def _config_labels(keys: Sequence[tuple[str, str, str | None]]) -> list[str]:
    """Labels of configurations: the method, plus the framework when there are several, plus
    the hyperparameters that vary among a method's settings."""
    multi_framework = len({framework for _, framework, _ in keys}) > 1
    varying = _varying_settings(frozenset((method, hyper) for method, _, hyper in keys))
    return [_config_label(method, framework, hyper, multi_framework, varying.get(method, frozenset()))
            for method, framework, hyper in keys]


# The problems of a store share their methods' settings: a report of 10,000 configurations over 200
# problems parsed the same JSON 20,000 times (0.5 s); these are pure, so each answer is kept.
@functools.lru_cache(maxsize=1024)
def _varying_settings(pairs: frozenset[tuple[str, str | None]]) -> dict[str, frozenset[str]]:
    return {method: frozenset(names) for method, names in varying_parameters(pairs).items()}


@functools.lru_cache(maxsize=1 << 16)
def _config_label(method: str, framework: str, hyper: str | None, multi_framework: bool, show: frozenset[str]) -> str:
    label = f"{method}/{framework}" if multi_framework else str(method)
    shown = setting_label(hyper, show=show)
    return f"{label} [{shown}]" if shown else label


# -- the bench's table ------------------------------------------------------------------------


def results_table(runs: pl.DataFrame | pl.LazyFrame) -> pl.DataFrame:
    """Per configuration: what ``harness bench`` prints at its end (no intervals: cheap).

    One row per configuration (task variant, method, hyperparameters, framework, hardware):
    configurations are never pooled. The numbers are the scorer's (:func:`medians`):
    skipped runs are counted apart (``n_skipped``) and are no sample, failed runs count as
    infinite suboptimality and time to target.

    Returns
    -------
    polars.DataFrame
        ``CONFIG_KEYS``; ``variant`` (:func:`variant_labels`), ``setting`` (the
        hyperparameters that vary within the method: :func:`setting_labels`, ``""`` when none
        do); ``n_runs`` (not skipped), ``n_reached``, ``n_failed``, ``n_skipped``,
        ``failures``, ``has_target``; ``median_suboptimality`` (failed runs infinite; null
        when no run measured it), ``median_time_to_target_s`` (infinite unless reached; null
        without a target), ``median_steps`` (steps taken, over the runs that ran),
        ``median_time_per_step_s`` (:func:`time_per_step`, over the runs that did not fail;
        null when none has a step). Sorted by problem, then median time to target, median
        suboptimality, method, framework, hyperparameters.
    """
    lazy = prepare(runs)
    names = lazy.collect_schema().names()
    table = medians(lazy)
    if table.is_empty():
        extra = {"variant": pl.String, "setting": pl.String, "median_steps": pl.Float64,
                 "median_time_per_step_s": pl.Float64}
        return table.with_columns([pl.lit(None, dtype).alias(name) for name, dtype in extra.items()])
    steps = (
        lazy.filter(pl.col("counted"))
        .group_by(*CONFIG_KEYS)
        .agg(
            pl.col("steps").cast(pl.Float64).median().alias("median_steps"),
            time_per_step(names).median().alias("median_time_per_step_s"),
        )
        .collect()
    )
    table = table.join(steps, on=list(CONFIG_KEYS), how="left", nulls_equal=True).with_columns(
        pl.when(pl.col("has_target")).then(pl.col("median_time_to_target_s")).alias("median_time_to_target_s"),
    )
    table = table.sort(*PROBLEM_KEYS, "median_time_to_target_s", "median_suboptimality", *SOLVER_KEYS,
                       "hyperparameters", nulls_last=True)
    return table.with_columns(variant_labels(table), setting_labels(table))


# -- across tasks -----------------------------------------------------------------------------


def performance_ratios(
    table: pl.DataFrame,
    *,
    measure: Literal["median_time_to_target_s", "median_steps_to_target"] = "median_time_to_target_s",
) -> pl.DataFrame:
    """Performance ratios of every solver on every problem that has a target.

    Parameters
    ----------
    table
        Per-configuration medians (:func:`medians` or :func:`task_table`).
    measure
        The median to compare.

    Returns
    -------
    polars.DataFrame
        One row per (problem, solver): ``PROBLEM_KEYS``, ``SOLVER_KEYS``, ``value`` (the
        solver's best median over its hyperparameter settings; infinite when absent or
        failed; a configuration whose runs were all skipped is absent, and a problem whose
        runs were all skipped, e.g. a GPU profile on a CPU host, is left out, as in the ECDF) and ``ratio`` (``value`` over the problem's best; infinite when no solver
        reached the target).
    """
    problem, solver = list(PROBLEM_KEYS), list(SOLVER_KEYS)
    scored = table.filter(pl.col("has_target"))
    if "n_runs" in scored.columns:  # only skipped runs: no sample (a problem all skipped is left out)
        scored = scored.filter(pl.col("n_runs") > 0)
    best = scored.group_by(*problem, *solver).agg(pl.col(measure).fill_null(_INF).min().alias("value"))
    grid = best.select(problem).unique().join(best.select(solver).unique(), how="cross")
    full = grid.join(best, on=[*problem, *solver], how="left", nulls_equal=True)
    full = full.with_columns(pl.col("value").fill_null(_INF))
    top = pl.col("value").min().over(problem)
    # A zero best time (target met before the clock ran) makes only equal times ratio 1.
    ratio = pl.when(~top.is_finite()).then(_INF).when(pl.col("value") == top).then(1.0).otherwise(pl.col("value") / top)
    return full.with_columns(ratio.alias("ratio")).sort(*problem, *solver, nulls_last=True)


def performance_profiles(
    ratios: pl.DataFrame,
    *,
    taus: Iterable[float] | None = None,
    tau_max: float = TAU_MAX,
) -> pl.DataFrame:
    """Dolan-More profiles: for each solver, the fraction of problems with ratio <= tau.

    Parameters
    ----------
    ratios
        :func:`performance_ratios`.
    taus
        Where to evaluate; default: 301 points evenly over ``[1, tau_max]`` plus every ratio
        in that range (the profile's breakpoints, so a step plot is exact).
    tau_max
        Upper end of the default grid.

    Returns
    -------
    polars.DataFrame
        ``SOLVER_KEYS``, ``tau``, ``rho`` (long format, sorted).
    """
    solver = list(SOLVER_KEYS)
    if taus is None:
        finite = ratios.filter(pl.col("ratio") <= tau_max)["ratio"].to_numpy()
        grid = np.unique(np.concatenate([np.linspace(1.0, tau_max, 301), finite]))
    else:
        grid = np.unique(np.asarray(list(taus), dtype=float))
    n_problems = ratios.select(PROBLEM_KEYS).unique().height
    frames = []
    for key, group in ratios.group_by(*solver, maintain_order=True):
        values = np.sort(group["ratio"].to_numpy())
        rho = np.searchsorted(values, grid, side="right") / max(n_problems, 1)
        frames.append(
            pl.DataFrame({**{k: [v] * grid.size for k, v in zip(solver, key)}, "tau": grid, "rho": rho})
        )
    if not frames:
        return pl.DataFrame(schema={**{k: pl.String for k in solver}, "tau": pl.Float64, "rho": pl.Float64})
    return pl.concat(frames).sort(*solver, "tau")


def profile_steps(ratios: pl.DataFrame, *, tau_max: float = TAU_MAX) -> pl.DataFrame:
    """Each solver's profile at its own breakpoints only: the compact form to draw it.

    ``rho`` holds from each ``tau`` to the next (a step-after line); every solver starts at
    ``tau = 1`` and ends at ``tau_max``. The values equal :func:`performance_profiles` there.

    Returns
    -------
    polars.DataFrame
        ``SOLVER_KEYS``, ``tau``, ``rho``, sorted.
    """
    solver = list(SOLVER_KEYS)
    n_problems = max(ratios.select(PROBLEM_KEYS).unique().height, 1)
    solvers = ratios.select(solver).unique()
    hits = (
        ratios.filter(pl.col("ratio") <= tau_max)
        .group_by(*solver, pl.col("ratio").alias("tau"))
        .len()
        .sort(*solver, "tau")
        .with_columns((pl.col("len").cum_sum().over(solver) / n_problems).alias("rho"))
        .select(*solver, "tau", "rho")
    )
    start = solvers.with_columns(pl.lit(1.0).alias("tau"), pl.lit(0.0).alias("rho"))
    end = solvers.join(hits.group_by(solver).agg(pl.col("rho").last()), on=solver, how="left").select(
        *solver, pl.lit(tau_max).alias("tau"), pl.col("rho").fill_null(0.0)
    )
    start = start.join(hits.filter(pl.col("tau") == 1.0), on=solver, how="anti")
    return pl.concat([start, hits, end]).unique(subset=[*solver, "tau"], keep="first").sort(*solver, "tau")


def profile_scores(ratios: pl.DataFrame, *, tau_max: float = TAU_MAX) -> pl.DataFrame:
    """Each solver's normalized profile area over ``[1, tau_max]`` (AlgoPerf's score).

    A ratio ``r`` adds ``(tau_max - r) / (tau_max - 1)`` (clipped to [0, 1]) divided by the
    number of problems: the exact integral of the step profile.

    Returns
    -------
    polars.DataFrame
        ``rank``, ``SOLVER_KEYS``, ``score``, ``solved`` (fraction of problems with a finite
        ratio), ``wins`` (fraction with ratio 1), ``n_problems``; best first.
    """
    solver = list(SOLVER_KEYS)
    area = ((tau_max - pl.col("ratio")) / (tau_max - 1.0)).clip(0.0, 1.0)
    scores = ratios.group_by(*solver).agg(
        area.fill_nan(0.0).mean().alias("score"),
        pl.col("ratio").is_finite().mean().alias("solved"),
        (pl.col("ratio") == 1.0).mean().alias("wins"),
        pl.len().cast(pl.Int64).alias("n_problems"),
    )
    scores = scores.sort(["score", "solved", *solver], descending=[True, True, False, False], nulls_last=True)
    return scores.with_row_index("rank", offset=1).with_columns(pl.col("rank").cast(pl.Int64))


def overview_tables(runs: pl.DataFrame | pl.LazyFrame) -> dict[str, pl.DataFrame]:
    """The overview's tables (no traces, no bootstrap): what the leaderboard and ``harness export`` show first.

    Returns
    -------
    dict
        ``medians`` (:func:`medians`), ``ratios`` (:func:`performance_ratios`), ``scores``
        (:func:`profile_scores` with each solver's family, run, failure and skip counts and its
        costs, :func:`solver_costs`) and ``profiles`` (:func:`profile_steps`).
    """
    table = medians(runs)
    ratios = performance_ratios(table)
    per_solver = table.group_by(*SOLVER_KEYS).agg(
        pl.col("method_family").drop_nulls().first() if "method_family" in table.columns
        else pl.lit(None, pl.String).alias("method_family"),
        pl.col("n_runs").sum(), pl.col("n_failed").sum(), pl.col("n_skipped").sum(),
    )
    scores = profile_scores(ratios).join(per_solver, on=list(SOLVER_KEYS), how="left")
    scores = scores.join(solver_costs(runs), on=list(SOLVER_KEYS), how="left", nulls_equal=True)
    return {"medians": table, "ratios": ratios, "scores": scores, "profiles": profile_steps(ratios)}


def ecdf(
    traces: pl.DataFrame | pl.LazyFrame,
    runs: pl.DataFrame | pl.LazyFrame,
    *,
    x: Literal["time_s", "step", "oracle_calls"] = "time_s",
    targets: Sequence[float] = ECDF_TARGETS,
    relative: bool = True,
    task: str | Sequence[str] | None = None,
) -> pl.DataFrame:
    """COCO-style runtime ECDF of each solver over suboptimality targets, relative to the start.

    A run's *relative suboptimality* at a point is its suboptimality over its initial
    suboptimality ``s0``: the value at its first evaluation point (least ``step``, else least
    ``x``; step 0 is the task's shared initial point). Where that value is not positive and
    finite (zero, negative, infinite, missing), ``s0`` is the median of the positive finite
    initial values of the problem's other runs in the ECDF; where the problem has none, the
    run meets no target (it still counts, as unmet). A run meets a target at the first
    evaluation point where its best-so-far relative suboptimality is at or below it; the
    default :data:`ECDF_TARGETS` all lie strictly below 1, so no run meets one at its start.
    Problems where no run measured suboptimality are left out.

    A hyperparameter sweep is shown as its best configuration, the choice the performance
    profiles make (:func:`performance_ratios`: a solver's best median over its settings): on
    each problem, the solver's configuration with the least median time-to-target, then the
    least median suboptimality (then the first setting by name). Its ECDF is over that
    configuration's own runs (failures included: a failed run counts as unmet for every target
    its trace did not meet before it failed; skipped runs excluded), as in COCO and IOHanalyzer:
    on a problem, the fraction of its ``runs x len(targets)`` pairs met; other solvers' run counts (or settings) never enter it.
    A solver's curve is the mean of these fractions over *the problems it ran* (a counted run
    there), each weighing equally: a solver run on fewer problems is not penalized for the
    others (compare ``n_problems``). With as many runs everywhere, this is the fraction of
    its (run, target) pairs.

    Parameters
    ----------
    traces
        Evaluation points with ``run_id``, ``x`` and ``suboptimality`` (and ``step``, when
        there, to find each run's initial point).
    runs
        The runs (keys and status) the traces belong to.
    x
        The runtime axis.
    targets
        Targets on the relative suboptimality (on the suboptimality itself when not ``relative``).
    relative
        Divide each run's suboptimality by its initial one (default); ``False``: absolute targets.
    task
        Only this task (or these tasks): all their variants and hardware profiles.

    Returns
    -------
    polars.DataFrame
        ``SOLVER_KEYS``, ``x`` (the runtime), ``fraction`` (mean over the solver's problems of
        the fraction of pairs met by then), ``n_problems`` (the problems it ran); sorted. Each
        solver with a counted run starts at its first evaluation point (at ``x = 0`` when its
        runs left no point), so a solver that met nothing shows as zero.
    """
    solver = list(SOLVER_KEYS)
    if task is not None:
        runs = runs.lazy().filter(pl.col("task").is_in([task] if isinstance(task, str) else list(task)))
    eligible = _ecdf_runs(runs)
    eligible = (
        eligible.join(_best_settings(runs, eligible), on=list(CONFIG_KEYS), how="semi", nulls_equal=True)
        .with_columns(
            pl.len().over([*PROBLEM_KEYS, *solver]).alias("_n"),
            pl.struct(PROBLEM_KEYS).n_unique().over(solver).alias("n_problems"),
            pl.struct(PROBLEM_KEYS).rank("dense").alias("_pid"),
        )
        .sort("run_id")
        .with_row_index("_rid")
    )
    # One run's share of its solver's curve: 1 / (own runs on the problem x targets x problems it ran).
    weight = 1.0 / (
        eligible["_n"].to_numpy().astype(float) * max(len(targets), 1) * eligible["n_problems"].to_numpy()
    )
    points = _ecdf_points(traces, eligible, x=x, relative=relative)
    rid, gain = _target_gains(points["_rid"].to_numpy(), points["relative"].to_numpy(), targets)
    keep = gain > 0
    solvers = eligible.select(solver).unique().sort(solver).with_row_index("_sid")
    sid_of_run = eligible.join(solvers, on=solver, how="left", nulls_equal=True).sort("_rid")["_sid"].to_numpy()
    # Every solver starts at its first point with no gain (a solver without points at x = 0).
    starts = (
        solvers.join(
            points.lazy().join(eligible.lazy().select("_rid", *solver), on="_rid").group_by(solver)
            .agg(pl.col("x").min()).collect(),
            on=solver, how="left", nulls_equal=True,
        )
        .sort("_sid")
    )
    sid = np.concatenate([sid_of_run[rid[keep]], starts["_sid"].to_numpy()]).astype(np.int64)
    xs = np.concatenate([points["x"].to_numpy()[keep], starts["x"].fill_null(0.0).to_numpy()])
    gain = np.concatenate([gain[keep] * weight[rid[keep]], np.zeros(starts.height)])
    order = np.lexsort((xs, sid))
    sid, xs, gain = sid[order], xs[order], gain[order]
    total = np.cumsum(gain)
    first = np.concatenate([[True], sid[1:] != sid[:-1]]) if sid.size else np.zeros(0, dtype=bool)
    before = np.concatenate([[0], total[:-1]])[first]
    total = total - np.repeat(before, np.diff(np.append(np.flatnonzero(first), sid.size)))
    last = np.concatenate([(sid[1:] != sid[:-1]) | (xs[1:] != xs[:-1]), [True]]) if sid.size else first
    counts = solvers.join(eligible.group_by(solver).agg(pl.col("n_problems").first()), on=solver, how="left",
                          nulls_equal=True).sort("_sid")
    labels = counts[sid[last]] if sid.size else counts.clear()
    fraction = np.clip(total[last], 0.0, 1.0)  # sums of shares: no rounding above 1
    return labels.select(
        *solver, pl.Series("x", xs[last], dtype=pl.Float64), pl.Series("fraction", fraction, dtype=pl.Float64),
        pl.col("n_problems").cast(pl.Int64),
    )


def _ecdf_points(
    traces: pl.DataFrame | pl.LazyFrame, eligible: pl.DataFrame, *, x: str, relative: bool
) -> pl.DataFrame:
    """The evaluation points of ``eligible``'s runs, sorted by (run, runtime): ``_rid``, ``x``,
    ``relative`` (the suboptimality over the run's initial one, see :func:`ecdf`; with
    ``relative=False`` the suboptimality itself; non-finite or missing: infinite)."""
    lazy = traces.lazy()
    names = lazy.collect_schema().names()
    if "suboptimality" not in names:
        lazy = lazy.with_columns(pl.lit(None, pl.Float64).alias("suboptimality"))
    order = pl.col("step").cast(pl.Float64) if "step" in names else pl.col(x).cast(pl.Float64)
    base = lazy.select(
        "run_id", pl.col(x).cast(pl.Float64).alias("x"), order.alias("_order"),
        pl.col("suboptimality").cast(pl.Float64),
    ).join(eligible.lazy().select("run_id", "_rid", "_pid"), on="run_id", how="inner")
    value = pl.col("suboptimality").fill_nan(_INF).fill_null(_INF)
    if not relative:
        return base.drop_nulls("x").select("_rid", "x", value.alias("relative")).sort("_rid", "x").collect()
    initial = (
        base.group_by("_rid", "_pid")
        .agg(pl.col("suboptimality").sort_by("_order", nulls_last=True).first().alias("_s0"))
        .with_columns(pl.when(pl.col("_s0").is_finite() & (pl.col("_s0") > 0)).then(pl.col("_s0")).alias("_s0"))
        .with_columns(pl.col("_s0").fill_null(pl.col("_s0").median().over("_pid")))
        .select("_rid", "_s0")
    )
    # No reference (no positive finite initial value on the problem): the run meets no target.
    ratio = pl.when(pl.col("_s0").is_not_null()).then(value / pl.col("_s0")).otherwise(_INF)
    return (
        base.drop_nulls("x").join(initial, on="_rid", how="left")
        .select("_rid", "x", ratio.fill_nan(_INF).alias("relative"))
        .sort("_rid", "x")
        .collect()
    )


def _best_settings(runs: pl.DataFrame | pl.LazyFrame, eligible: pl.DataFrame) -> pl.DataFrame:
    """Per (problem, solver) of ``eligible``'s problems: the ``CONFIG_KEYS`` of its best setting.

    Best as in :func:`performance_ratios`: least median time-to-target, then least median
    suboptimality, then the first hyperparameters by name; only settings with a counted run.
    """
    problems = eligible.select(PROBLEM_KEYS).unique()
    lazy = prepare(runs).join(problems.lazy(), on=list(PROBLEM_KEYS), how="semi", nulls_equal=True)
    table = medians(lazy).filter(pl.col("n_runs") > 0)
    return (
        table.sort(*PROBLEM_KEYS, *SOLVER_KEYS, "median_time_to_target_s", "median_suboptimality", "hyperparameters",
                   nulls_last=True)
        .unique(subset=[*PROBLEM_KEYS, *SOLVER_KEYS], keep="first", maintain_order=True)
        .select(CONFIG_KEYS)
    )


def _target_gains(rid: np.ndarray, values: np.ndarray, targets: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """Targets newly met at each point of runs sorted by (run, runtime): best-so-far counts."""
    ascending = np.sort(np.asarray(targets, dtype=float))
    met = ascending.size - np.searchsorted(ascending, values, side="left")
    if met.size == 0:
        return rid, met
    # A running maximum restarted at each run: offsetting runs by more than any count makes
    # one global accumulate do it (runs are sorted, so offsets only grow).
    offset = rid.astype(np.int64) * (ascending.size + 1)
    best = np.maximum.accumulate(met + offset) - offset
    previous = np.concatenate([[0], best[:-1]])
    previous[np.concatenate([[True], rid[1:] != rid[:-1]])] = 0
    return rid, best - previous


def _ecdf_runs(runs: pl.DataFrame | pl.LazyFrame) -> pl.DataFrame:
    """Counted runs of problems where some run measured suboptimality."""
    lazy = prepare(runs).filter(pl.col("counted"))
    measured = (
        lazy.group_by(*PROBLEM_KEYS).agg(pl.col("suboptimality").is_not_null().any().alias("_measured"))
        .filter(pl.col("_measured"))
        .drop("_measured")
    )
    return lazy.join(measured, on=list(PROBLEM_KEYS), how="semi", nulls_equal=True).select(
        "run_id", *CONFIG_KEYS
    ).collect()


def ecdf_summary(curve: pl.DataFrame, *, solvers: pl.DataFrame | None = None) -> pl.DataFrame:
    """Per solver: the problems it ran, the fraction of target pairs met at the end, and the area under the ECDF.

    The area is taken over log10 of the runtime, from the smallest positive runtime in
    ``curve`` to the largest, normalized to [0, 1] (COCO's aggregated area). Both are means
    over the solver's own problems (:func:`ecdf`), whose count is ``n_problems`` (from the
    curve's column; null for a hand-made curve without it). ``solvers`` (``SOLVER_KEYS``
    columns) adds the solvers absent from ``curve`` with zeros: they ran no problem of the ECDF
    (``n_problems`` 0).

    Returns
    -------
    polars.DataFrame
        ``SOLVER_KEYS``, ``n_problems``, ``ecdf_final``, ``ecdf_area``; best area first.
    """
    solver = list(SOLVER_KEYS)
    positive = curve.filter(pl.col("x") > 0)
    lo = np.log10(positive["x"].min()) if not positive.is_empty() else 0.0
    hi = np.log10(positive["x"].max()) if not positive.is_empty() else 0.0
    counted = "n_problems" in curve.columns
    rows = []
    for key, group in curve.group_by(*solver, maintain_order=True):
        xs, fs = group["x"].to_numpy(), group["fraction"].to_numpy()
        final = float(fs[-1]) if fs.size else 0.0
        n = int(group["n_problems"][0]) if counted and group["n_problems"][0] is not None else None
        rows.append({**dict(zip(solver, key)), "n_problems": n, "ecdf_final": final,
                     "ecdf_area": _log_area(xs, fs, lo, hi)})
    schema = {**{k: pl.String for k in solver}, "n_problems": pl.Int64, "ecdf_final": pl.Float64,
              "ecdf_area": pl.Float64}
    table = pl.DataFrame(rows, schema=schema)
    if solvers is not None:
        missing = solvers.select(solver).unique().join(table, on=solver, how="anti", nulls_equal=True)
        zeros = missing.select(
            *(pl.col(k).cast(pl.String) for k in solver), pl.lit(0, pl.Int64).alias("n_problems"),
            pl.lit(0.0).alias("ecdf_final"), pl.lit(0.0).alias("ecdf_area"),
        )
        table = pl.concat([table, zeros])
    return table.sort(["ecdf_area", "ecdf_final", *solver], descending=[True, True, False, False], nulls_last=True)


def _log_area(xs: np.ndarray, fs: np.ndarray, lo: float, hi: float) -> float | None:
    if hi <= lo:
        return float(fs[-1]) if fs.size else 0.0
    logs = np.log10(np.clip(xs, 10.0**lo, None))
    edges = np.append(logs, hi)
    widths = np.clip(np.diff(edges), 0.0, None)
    return float(np.sum(widths * fs) / (hi - lo))


# -- the report -------------------------------------------------------------------------------


def report(
    runs: pl.DataFrame | pl.LazyFrame,
    *,
    traces: pl.DataFrame | pl.LazyFrame | None = None,
    n_boot: int = 2000,
    taus: Sequence[float] = (1.0, 1.5, 2.0, 3.0, 4.0),
) -> dict[str, pl.DataFrame]:
    """Every table of the scoring, as ``harness report`` prints them and the leaderboard shows.

    Parameters
    ----------
    runs
        The store's runs (``read_runs`` or ``scan_runs``).
    traces
        Their traces; when given, the ECDF summary is included.
    n_boot
        Bootstrap resamples of the intervals.
    taus
        Where the ``profiles`` table reads the profiles.

    Returns
    -------
    dict[str, polars.DataFrame]
        ``"tasks"``: :func:`task_table` (one row per configuration, ranked within problems);
        ``"problems"``: :func:`problem_summary` (one row per problem: its best configuration);
        ``"scores"``: :func:`profile_scores` (one row per solver, best first) with the
        :func:`solver_costs` columns (flagged runs, offline cost);
        ``"profiles"``: rho at each of ``taus``, one column per tau (``rho@1.5``...);
        ``"ecdf"`` (with ``traces``): :func:`ecdf_summary`. Column labels: :data:`LABELS`.
    """
    from concurrent.futures import ThreadPoolExecutor

    def ecdf_table() -> pl.DataFrame:
        solvers = prepare(runs).filter(pl.col("counted")).select(SOLVER_KEYS).unique().collect()
        return ecdf_summary(ecdf(traces, runs), solvers=solvers)

    def rankings() -> dict[str, pl.DataFrame]:
        tasks = task_table(runs, n_boot=n_boot)
        ratios = performance_ratios(tasks)
        scores = profile_scores(ratios).join(solver_costs(runs), on=list(SOLVER_KEYS), how="left", nulls_equal=True)
        wide = _wide_profiles(performance_profiles(ratios, taus=taus), taus)
        return {"tasks": tasks, "problems": problem_summary(tasks), "scores": scores, "profiles": wide}

    if traces is None:
        return rankings()
    # The ECDF (polars on every trace point, which releases the GIL) runs beside the rankings (mostly
    # numpy and Python): on 100,000 runs the two took 0.9 s and 0.7 s one after the other.
    with ThreadPoolExecutor(max_workers=1) as beside:
        summary = beside.submit(ecdf_table)
        tables = rankings()
        tables["ecdf"] = summary.result()
    return tables


def _wide_profiles(profiles: pl.DataFrame, taus: Sequence[float]) -> pl.DataFrame:
    solver = list(SOLVER_KEYS)
    if profiles.is_empty():
        return pl.DataFrame(schema={**{k: pl.String for k in solver}, **{f"rho@{t:g}": pl.Float64 for t in taus}})
    columns = [
        pl.col("rho").filter(pl.col("tau") == float(t)).first().alias(f"rho@{t:g}") for t in taus
    ]
    return profiles.group_by(*solver, maintain_order=True).agg(columns).sort(solver)


def problem_summary(tasks: pl.DataFrame) -> pl.DataFrame:
    """One row per problem of a :func:`task_table`: its best configuration and how many it has.

    ``n_configurations``, ``best`` (the label of rank 1) with its ``median_time_to_target_s``,
    time interval and ``median_suboptimality``, ``n_top`` (configurations of statistical rank 1:
    the best and those no test tells from it), and the problem's ``n_runs`` and ``n_failed``.
    The summary ``harness report`` prints in place of the per-configuration table.

    Examples
    --------
    >>> tasks = pl.DataFrame({"task": ["q", "q"], "task_params": ["{}", "{}"], "hardware": ["cpu", "cpu"],
    ...     "rank": [1, 2], "stat_rank": [1, 1], "label": ["adam", "gd"], "median_time_to_target_s": [0.5, 0.7],
    ...     "time_to_target_lo": [0.4, 0.6], "time_to_target_hi": [0.6, 0.9], "median_suboptimality": [1e-9, 2e-9],
    ...     "n_runs": [5, 5], "n_failed": [0, 1]})
    >>> problem_summary(tasks).select("best", "n_configurations", "n_top", "n_failed").row(0)
    ('adam', 2, 2, 1)
    """
    best = pl.col("rank") == 1
    return (
        tasks.group_by(*PROBLEM_KEYS, maintain_order=True)
        .agg(
            pl.len().cast(pl.Int64).alias("n_configurations"),
            *(pl.col(c).filter(best).first().alias(n) for c, n in (
                ("label", "best"), ("median_time_to_target_s", "median_time_to_target_s"),
                ("time_to_target_lo", "time_to_target_lo"), ("time_to_target_hi", "time_to_target_hi"),
                ("median_suboptimality", "median_suboptimality"))),
            (pl.col("stat_rank") == 1).sum().cast(pl.Int64).alias("n_top"),
            pl.col("n_runs").sum().cast(pl.Int64),
            pl.col("n_failed").sum().cast(pl.Int64),
        )
        .sort(PROBLEM_KEYS)
    )


# -- views for plots --------------------------------------------------------------------------


def convergence_bands(
    traces: pl.DataFrame | pl.LazyFrame,
    runs: pl.DataFrame | pl.LazyFrame,
    *,
    value: str = "suboptimality",
    x: Literal["time_s", "step", "oracle_calls"] = "time_s",
    points: int = 80,
    quantiles: tuple[float, float] = (0.1, 0.9),
    relative: bool = False,
    grid: Literal["linear", "log"] = "linear",
) -> pl.DataFrame:
    """Per configuration: the median and a quantile band over its runs of ``value`` along ``x``.

    A configuration is a method, framework and hyperparameter setting: a sweep's settings (a
    spiked and a control run, four flip fractions) are separate lines, never one band. Each
    run's value is read on a common grid (the distinct ``x`` values when there are at most
    ``2 * points`` of them, else ``points`` evenly spaced ones, or log-spaced over the positive
    ``x`` with ``grid="log"``) as its last evaluation at or before the grid point (a run that
    stopped keeps its last value; one that failed keeps its non-finite value, which counts as the
    worst value of ``value``'s direction in the quantiles: ``+inf`` where lower is better,
    ``-inf`` where the task declares ``lower_is_better: false``, e.g. an accuracy; the runs'
    ``metrics`` column says which, lower is better without it), up to its last point: past it,
    the failed run leaves the band (its line ends where it failed). With ``relative``, each run's
    value is divided by its value at its first evaluation point (the relative suboptimality).

    Returns
    -------
    polars.DataFrame
        ``SOLVER_KEYS``, ``hyperparameters``, ``label`` (:func:`configuration_labels`), ``x``,
        ``median``, ``lo``, ``hi``, ``n`` (runs with a value there).
    """
    config = [*SOLVER_KEYS, "hyperparameters"]
    empty = pl.DataFrame(schema={**{k: pl.String for k in (*config, "label")}, "x": pl.Float64, "median": pl.Float64,
                                 "lo": pl.Float64, "hi": pl.Float64, "n": pl.UInt32})
    lazy = traces.lazy()
    if value not in lazy.collect_schema().names():
        return empty
    run_lazy = with_run_columns(runs, metrics=()).select("run_id", *config, "task", "metrics", "status")
    higher = [task for task, metrics in metric_info(run_lazy).items()
              if metrics.get(value, {}).get("lower_is_better", True) is False]
    worst = pl.when(pl.col("task").is_in(higher)).then(-_INF).otherwise(_INF) if higher else pl.lit(_INF)
    v = pl.col("v")
    points_frame = (
        lazy.select("run_id", pl.col(x).cast(pl.Float64).alias("x"), pl.col(value).cast(pl.Float64).alias("v"))
        .drop_nulls("x")
        .join(run_lazy.select("run_id", *config, "task"), on="run_id", how="inner")
        .sort("run_id", "x")
    )
    if relative:  # a run's value over its first one (no scale where that is zero or not finite)
        first = v.drop_nulls().first().over("run_id")
        points_frame = points_frame.with_columns(pl.when(first.is_finite() & (first != 0)).then(v / first).alias("v"))
    points_frame = (
        points_frame.with_columns(pl.when(v.is_not_null() & ~v.is_finite()).then(worst).otherwise(v).alias("v"))
        .select("run_id", *config, "x", "v")
        .sort("x")
        .collect()
    )
    if points_frame.is_empty():
        return empty
    distinct = points_frame["x"].unique().sort()
    positive = distinct.filter(distinct > 0)
    if grid == "log" and positive.len() > 2 * points:
        axis = pl.DataFrame({"x": np.geomspace(positive.min(), positive.max(), points)})
    elif distinct.len() <= 2 * points:
        axis = pl.DataFrame({"x": distinct})
    else:
        axis = pl.DataFrame({"x": np.linspace(distinct.min(), distinct.max(), points)})
    # A failed run's line ends at its last point (a diverged run does not hold its last value to the end).
    ends = points_frame.group_by("run_id").agg(pl.col("x").max().alias("_end")).join(
        run_lazy.select("run_id", "status").collect(), on="run_id", how="left")
    ends = ends.with_columns(pl.when(pl.col("status").is_in(_statuses(FAILED))).then("_end").otherwise(_INF)
                             .alias("_end"))
    left = (points_frame.select("run_id", *config).unique().join(axis, how="cross")
            .join(ends.select("run_id", "_end"), on="run_id", how="left")
            .filter(pl.col("x") <= pl.col("_end")).drop("_end").sort("x"))
    sampled = left.join_asof(
        points_frame.select("run_id", "x", "v"), on="x", by="run_id", strategy="backward", check_sortedness=False
    )
    low, high = quantiles
    bands = (
        sampled.drop_nulls("v")
        .group_by(*config, "x")
        .agg(
            pl.col("v").median().alias("median"),
            pl.col("v").quantile(low, "lower").alias("lo"),
            pl.col("v").quantile(high, "higher").alias("hi"),
            pl.len().alias("n"),
        )
    )
    configs = bands.select(config).unique().sort(config, nulls_last=True)
    labelled = configs.with_columns(configuration_labels(configs))
    return bands.join(labelled, on=config, how="left", nulls_equal=True).select(
        *config, "label", "x", "median", "lo", "hi", "n"
    ).sort(*config, "x", nulls_last=True)


def probe_columns(traces: pl.DataFrame | pl.LazyFrame, metrics: Iterable[str] = ()) -> list[str]:
    """The numeric trace columns that are neither standard, oracle counts nor metrics: probes.

    Of a collected frame, only the columns it measured: a compacted part holds the columns of
    every task it merged, null in the runs of the others.
    """
    from harness.store import TRACE_COLUMNS

    schema = traces.lazy().collect_schema()
    skip = set(TRACE_COLUMNS) | set(metrics) | {"suboptimality", "objective"}
    measured = (lambda name: traces[name].null_count() < traces.height) if isinstance(traces, pl.DataFrame) else (
        lambda name: True)
    return [
        name for name, dtype in schema.items()
        if name not in skip and not name.startswith("calls_") and dtype.is_numeric() and measured(name)
    ]


def hardware_speedups(runs: pl.DataFrame | pl.LazyFrame, *, baseline: str | None = None) -> pl.DataFrame:
    """Per configuration and hardware profile: median times, and speedups over ``baseline``.

    Parameters
    ----------
    runs
        Runs of one or more tasks.
    baseline
        The reference profile; default ``"cpu"`` when present, else a profile whose runs name
        no GPU, else the first by name.

    Returns
    -------
    polars.DataFrame
        ``task``, ``task_params``, ``SOLVER_KEYS``, ``hyperparameters``, ``hardware``,
        ``median_time_to_target_s``, ``median_time_per_step_s`` (of :func:`time_per_step`:
        the clock less ``init_s`` and ``output_s``, over the steps, of runs that did not fail),
        ``speedup_time_to_target`` and ``speedup_per_step``
        (baseline's median over this profile's; null where either is missing). Empty when the
        runs hold fewer than two profiles.
    """
    lazy = prepare(runs).filter(pl.col("counted"))
    names = lazy.collect_schema().names()
    profiles = lazy.select("hardware").unique().collect()["hardware"].drop_nulls().sort().to_list()
    keys = ["task", "task_params", *SOLVER_KEYS, "hyperparameters"]
    if len(profiles) < 2:
        return pl.DataFrame(schema={k: pl.String for k in (*keys, "hardware")})
    if baseline is None:
        baseline = _baseline_profile(lazy, profiles, has_gpu="gpu" in names)
    per_step = time_per_step(names)
    table = lazy.group_by(*keys, "hardware").agg(
        pl.col("scored_time_to_target_s").median().alias("median_time_to_target_s"),
        per_step.median().alias("median_time_per_step_s"),
    ).collect()
    base = table.filter(pl.col("hardware") == baseline).select(
        *keys,
        pl.col("median_time_to_target_s").alias("_base_ttt"),
        pl.col("median_time_per_step_s").alias("_base_step"),
    )
    ttt = pl.col("median_time_to_target_s")
    joined = table.join(base, on=keys, how="left", nulls_equal=True).with_columns(
        pl.when(pl.col("_base_ttt").is_finite() & ttt.is_finite()).then(pl.col("_base_ttt") / ttt)
        .alias("speedup_time_to_target"),
        (pl.col("_base_step") / pl.col("median_time_per_step_s")).alias("speedup_per_step"),
    )
    return joined.drop("_base_ttt", "_base_step").sort(*keys, "hardware", nulls_last=True)


def framework_comparison(
    runs: pl.DataFrame | pl.LazyFrame, *, baseline: str = "torch", values: Sequence[str] = ("objective", "suboptimality")
) -> pl.DataFrame:
    """Per configuration run in several frameworks: do they agree, and which is faster?

    For each problem, method and hyperparameter setting with runs in ``baseline`` and another
    framework: the median final ``values`` of each framework's runs that did not fail, their
    relative difference to the baseline's (``|v - v_base| / max(|v|, |v_base|, AGREEMENT_FLOOR)``:
    the same algorithm on the same data should agree to rounding; values at rounding level, such as
    a suboptimality of -1e-16, are compared on the floor's scale), the median time per
    step (:func:`time_per_step`) and the speed-up per step over the baseline (its median over
    this framework's). The baseline's own rows are included (difference 0, speed-up 1).

    Returns
    -------
    polars.DataFrame
        ``PROBLEM_KEYS``, ``method``, ``hyperparameters``, ``framework``, ``n_runs``, for each of
        ``values`` present ``median_<v>`` and ``rel_diff_<v>``, ``median_time_per_step_s``,
        ``speedup_per_step``; empty without two frameworks.
    """
    lazy = prepare(runs).filter(pl.col("counted"))
    names = lazy.collect_schema().names()
    present = [v for v in values if v in names]
    keys = [*PROBLEM_KEYS, "method", "hyperparameters"]
    schema = {**{k: pl.String for k in (*keys, "framework")}, "n_runs": pl.UInt32,
              **{f"{p}_{v}": pl.Float64 for v in present for p in ("median", "rel_diff")},
              "median_time_per_step_s": pl.Float64, "speedup_per_step": pl.Float64}
    ok = ~pl.col("failed")
    table = lazy.group_by(*keys, "framework").agg(
        pl.len().alias("n_runs"),
        *[pl.col(v).cast(pl.Float64).filter(ok).median().alias(f"median_{v}") for v in present],
        time_per_step(names).median().alias("median_time_per_step_s"),
    ).collect()
    base = table.filter(pl.col("framework") == baseline).select(
        *keys, *[pl.col(f"median_{v}").alias(f"_base_{v}") for v in present],
        pl.col("median_time_per_step_s").alias("_base_step"),
    )
    paired = table.join(base, on=keys, how="inner", nulls_equal=True)
    several = paired.group_by(keys).agg(pl.col("framework").n_unique().alias("_k")).filter(pl.col("_k") > 1)
    paired = paired.join(several.drop("_k"), on=keys, how="semi", nulls_equal=True)
    if paired.is_empty():
        return pl.DataFrame(schema=schema)

    def rel_diff(v: str) -> pl.Expr:
        a, b = pl.col(f"median_{v}"), pl.col(f"_base_{v}")
        # Values at rounding level (a suboptimality of -1e-16 against 6e-17) agree: their scale is the floor.
        scale = pl.max_horizontal(a.abs(), b.abs(), pl.lit(AGREEMENT_FLOOR))
        return ((a - b).abs() / scale).alias(f"rel_diff_{v}")

    return (
        paired.with_columns(*[rel_diff(v) for v in present],
                            (pl.col("_base_step") / pl.col("median_time_per_step_s")).alias("speedup_per_step"))
        .select(list(schema))
        .sort(*keys, pl.col("framework") != baseline, "framework", nulls_last=True)
    )


def _old_clock(names: Sequence[str]) -> pl.Expr:
    """Runs stored under the old clock: ``timed_s`` held steps 2..N, the first step in ``warmup_s``."""
    return pl.col("warmup_s").is_not_null() if "warmup_s" in names else pl.lit(False)


def time_per_step(names: Sequence[str]) -> pl.Expr:
    """Seconds per step of each prepared run (:func:`prepare`): the one definition of the scorer.

    The clock (``timed_s``) holds ``init``, every step and the ``output`` calls (see
    :mod:`harness.run`); a step's time is the clock less ``init_s`` and ``output_s``, over
    ``steps``. Null for a run without a step, or that failed (its last steps may be cut
    short). A run of an older store, with ``warmup_s`` (the first step off the clock):
    ``timed_s`` over steps 2..N, null below two steps.

    Parameters
    ----------
    names
        The prepared frame's columns (``warmup_s`` marks the old clock).
    """
    steps = pl.col("steps").cast(pl.Float64)
    new = (pl.col("timed_s") - pl.col("init_s").fill_null(0.0) - pl.col("output_s").fill_null(0.0)) / steps
    old = _old_clock(names)
    minimum = pl.when(old).then(pl.lit(2)).otherwise(pl.lit(1))
    measured = (pl.col("steps").fill_null(0) >= minimum) & ~pl.col("failed")
    return pl.when(~measured).then(None).when(old).then(pl.col("timed_s") / (steps - 1.0)).otherwise(new)


def _baseline_profile(lazy: pl.LazyFrame, profiles: list[str], *, has_gpu: bool) -> str:
    if "cpu" in profiles:
        return "cpu"
    if has_gpu:
        without = lazy.group_by("hardware").agg(pl.col("gpu").is_null().all()).filter(pl.col("gpu")).collect()
        candidates = sorted(without["hardware"].drop_nulls().to_list())
        if candidates:
            return candidates[0]
    return profiles[0]


def report_store(
    store: str | os.PathLike[str], *, traces: bool = True, n_boot: int = 2000
) -> dict[str, pl.DataFrame]:
    """:func:`report` of a store directory, read lazily (parts scanned, only needed columns).

    Parameters
    ----------
    store
        The store directory.
    traces
        Include the ECDF summary (reads the traces' ``run_id``, ``time_s`` and
        ``suboptimality`` columns).
    n_boot
        Bootstrap resamples of the intervals.
    """
    from harness.store import read_studies, scan_runs, scan_traces

    from harness.tuning import without_trials

    runs = without_trials(scan_runs(store), read_studies(store)).collect()  # the tuning table shows the searches
    return report(runs, traces=scan_traces(store) if traces else None, n_boot=n_boot)


def display_tables(tables: Mapping[str, pl.DataFrame]) -> dict[str, pl.DataFrame]:
    """:func:`report`'s tables as text, ready to print: labelled columns, intervals as ``[lo, hi]``.

    Every value is a string (``inf`` for infinite, ``-`` for missing); column names carry the
    direction arrows and units of :data:`LABELS`. ``harness report`` prints these with rich.
    """
    shown: dict[str, pl.DataFrame] = {}
    if "scores" in tables:
        scores = tables["scores"]
        scores, extra = _cost_texts(scores)  # beside the score
        shown["scores"] = _texts(scores, ["rank", "method", "framework", "score", *extra, "solved", "wins",
                                          "n_problems"])
    if "profiles" in tables:
        shown["profiles"] = _texts(tables["profiles"], tables["profiles"].columns)
    if "tasks" in tables:
        tasks = tables["tasks"]
        tasks = tasks.with_columns(
            problem_labels(tasks),
            interval_text("time_to_target_lo", "time_to_target_hi").alias("time CI [s]"),
            interval_text("suboptimality_lo", "suboptimality_hi").alias("subopt. CI"),
            # An untested configuration says why in place of its ties.
            pl.when(pl.col("significance") != "").then(pl.col("significance")).otherwise(pl.col("tied_with"))
            .alias("tied_with"),
        )
        tasks, extra = _cost_texts(tasks)
        shown["tasks"] = _texts(tasks, ["problem", "rank", "stat_rank", "label", "median_time_to_target_s",
                                        "time CI [s]", "median_suboptimality", "subopt. CI", "unit", "tied_with",
                                        "n_runs", "n_failed", "failures", "n_skipped", *extra])
    if "problems" in tables:
        problems = tables["problems"]
        problems = problems.with_columns(
            problem_labels(problems),
            interval_text("time_to_target_lo", "time_to_target_hi").alias("time CI [s]"),
        )
        shown["problems"] = _texts(problems, ["problem", "n_configurations", "best", "median_time_to_target_s",
                                              "time CI [s]", "median_suboptimality", "n_top", "n_runs", "n_failed"])
    if "ecdf" in tables:
        shown["ecdf"] = _texts(tables["ecdf"], ["method", "framework", "n_problems", "ecdf_final", "ecdf_area"])
    return shown


def has_clock_flags(frame: pl.DataFrame) -> bool:
    """Whether a table with ``n_clock_compiled`` counts any flagged run."""
    return "n_clock_compiled" in frame.columns and bool((frame["n_clock_compiled"].fill_null(0) > 0).any())


def has_offline(frame: pl.DataFrame) -> bool:
    """Whether a table with ``median_offline_s`` holds any offline cost."""
    return "median_offline_s" in frame.columns and frame["median_offline_s"].is_not_null().any()


def _cost_texts(frame: pl.DataFrame) -> tuple[pl.DataFrame, list[str]]:
    """The flag and offline-cost text columns of ``frame``, each only when some row has one."""
    extra = []
    if has_clock_flags(frame):
        frame = frame.with_columns(clock_flag_text("n_clock_compiled", "clock_compile_s").alias(CLOCK_FLAG))
        extra.append(CLOCK_FLAG)
    if has_offline(frame):
        frame = frame.with_columns(offline_text("median_offline_s", "max_offline_s").alias(OFFLINE))
        extra.append(OFFLINE)
    return frame, extra


def _texts(frame: pl.DataFrame, columns: Sequence[str]) -> pl.DataFrame:
    out = {}
    for name in columns:
        column = frame[name]
        values = [_text(v) for v in column.to_list()]
        out[LABELS.get(name, name)] = pl.Series(values, dtype=pl.String)
    return pl.DataFrame(out)


def _text(value: object) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return "-"
    if isinstance(value, float):
        return "inf" if np.isinf(value) else f"{value:.4g}"
    return str(value)


def interval_text(lo: str, hi: str) -> pl.Expr:
    """An interval's columns ``lo`` and ``hi`` as text: ``[0.0123, 0.0456]`` (``inf``; ``-`` when missing).

    One narrow column instead of two: a table of intervals fits a laptop's screen.
    """
    def text(column: str) -> pl.Expr:
        value = pl.col(column)
        return (
            pl.when(value.is_null()).then(pl.lit("-"))
            .when(value.is_infinite()).then(pl.lit("inf"))
            .otherwise(value.map_elements(lambda v: f"{v:.3g}", return_dtype=pl.String))
        )

    return pl.format("[{}, {}]", text(lo), text(hi))
