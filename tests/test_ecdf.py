"""The ECDF's rules on small hand-made runs + traces; expected values from plain-Python loops.

1. Targets are relative to each run's initial suboptimality (step 0): nothing is met at the
   start, and a run scaled by a constant has the same curve.
2. A solver's curve is the mean over the problems it ran: running fewer problems costs nothing.
3. Per task: ``task=`` equals filtering the runs first.
4. The summary reports the problems each solver ran.
"""

from __future__ import annotations

import math
import statistics

import numpy as np
import polars as pl
import pytest

from harness import score

INF = math.inf
TARGETS = [10.0 ** (-k / 5) for k in range(1, 41)]

#: A trace: (step, time_s, suboptimality) points.
Trace = list[tuple[int, float, float | None]]


def runs_frame(rows: list[dict]) -> pl.DataFrame:
    """Runs with the columns the scorer reads; defaults for the rest."""
    base = {
        "task_params": "{}", "hardware": "cpu", "framework": "torch", "hyperparameters": "{}",
        "status": "completed", "time_to_target_s": None, "steps_to_target": None, "suboptimality": 1e-3,
        "target_value": 1e-8, "seed": 0,
        "metrics": '{"suboptimality": {"lower_is_better": true, "unit": "nats"}}',
    }
    schema = {"run_id": pl.String, "task": pl.String, "method": pl.String, "task_params": pl.String,
              "hardware": pl.String, "framework": pl.String, "hyperparameters": pl.String, "status": pl.String,
              "time_to_target_s": pl.Float64, "steps_to_target": pl.Int64, "suboptimality": pl.Float64,
              "target_value": pl.Float64, "seed": pl.Int64, "metrics": pl.String}
    return pl.DataFrame([{**base, **row} for row in rows], schema=schema)


def traces_frame(traces: dict[str, Trace]) -> pl.DataFrame:
    return pl.DataFrame(
        [{"run_id": r, "step": s, "time_s": t, "suboptimality": v} for r, points in traces.items()
         for s, t, v in points],
        schema={"run_id": pl.String, "step": pl.Int64, "time_s": pl.Float64, "suboptimality": pl.Float64},
    )


def _valid(value: float | None) -> bool:
    return value is not None and math.isfinite(value) and value > 0


def reference(traces: dict[str, Trace], problems: dict[str, list[str]], x: float) -> float:
    """A solver's fraction at time ``x``: the mean over ``problems`` (its problems -> its runs there) of
    the fraction of (run, target) pairs met by the best-so-far suboptimality over the initial one.

    A run's initial value is its step-0 value; where it is not positive and finite, the median of the
    valid initial values of ``problem_runs`` (every run of the problem in the ECDF); none: unmet.
    """
    fractions = []
    for runs in problems.values():
        met = 0
        for run in runs:
            s0 = min(traces[run])[2]
            if not _valid(s0):
                others = [min(traces[r])[2] for r in PROBLEM_RUNS[run] if _valid(min(traces[r])[2])]
                s0 = statistics.median(others) if others else None
            if s0 is None:
                continue
            values = [INF if v is None or math.isnan(v) else v / s0 for _, t, v in traces[run] if t <= x]
            best = min(values, default=INF)
            met += sum(1 for target in TARGETS if best <= target)
        fractions.append(met / (len(runs) * len(TARGETS)))
    return sum(fractions) / len(fractions)


#: run -> the runs of its problem in the ECDF (set by each test, for the fallback initial value).
PROBLEM_RUNS: dict[str, list[str]] = {}


def curve_of(curve: pl.DataFrame, method: str) -> tuple[list[float], list[float]]:
    rows = curve.filter(pl.col("method") == method)
    return rows["x"].to_list(), rows["fraction"].to_list()


# -- 1. relative targets ----------------------------------------------------------------------


def test_targets_are_40_log_spaced_strictly_below_one() -> None:
    targets = np.asarray(score.ECDF_TARGETS)
    assert targets.size == 40 and targets.max() < 1.0
    assert targets[0] == pytest.approx(10 ** -0.2) and targets[-1] == pytest.approx(1e-8)
    assert np.allclose(np.diff(np.log10(targets)), -0.2)


def test_a_run_at_its_initial_point_meets_no_target_and_halving_meets_one() -> None:
    # "far" starts 100x farther from the optimum than "near" and follows the same relative path.
    path = [(0, 0.0, 1.0), (1, 1.0, 0.5), (2, 2.0, 0.39), (3, 3.0, 1e-3), (4, 4.0, 2e-3)]
    traces = {"near": path, "far": [(s, t, 100.0 * v) for s, t, v in path], "still": [(0, 0.0, 11.0)]}
    runs = runs_frame([
        {"run_id": "near", "task": "p", "method": "A"},
        {"run_id": "far", "task": "q", "method": "B"},
        {"run_id": "still", "task": "p", "method": "C"},
    ])
    PROBLEM_RUNS.update({"near": ["near", "still"], "far": ["far"], "still": ["near", "still"]})
    curve = score.ecdf(traces_frame(traces), runs)
    for method, run in (("A", "near"), ("B", "far")):
        xs, fractions = curve_of(curve, method)
        assert xs == [0.0, 1.0, 2.0, 3.0]  # starts at its first point; grows at 1 (halved), 2 and 3
        assert fractions == pytest.approx([reference(traces, {"p": [run]}, x) for x in xs])
        assert fractions[:2] == pytest.approx([0.0, 1 / 40])  # 0.5 meets only 10**-0.2 ~ 0.63
    # Never left its initial point: it meets nothing (with absolute targets 1e2..1e-8 it met 5 at t=0).
    assert curve_of(curve, "C") == ([0.0], [0.0])
    absolute = score.ecdf(traces_frame(traces), runs, relative=False, targets=[10.0 ** (2 - j / 5) for j in range(51)])
    assert curve_of(absolute, "C")[1] == pytest.approx([5 / 51])


def test_a_run_without_a_positive_initial_value_uses_the_problems_median() -> None:
    traces = {
        "a": [(0, 0.0, 2.0), (1, 1.0, 0.1)],
        "b": [(0, 0.0, 8.0), (1, 1.0, 4.0)],
        "c": [(0, 0.0, 4.0), (1, 1.0, 1.0)],
        "z": [(0, 0.0, None), (1, 1.0, 0.039)],  # no initial value: s0 = median(2, 8, 4) = 4 -> 0.00975
        "alone": [(0, 0.0, 0.0), (1, 1.0, 0.0)],  # its problem has no positive initial value: unmet
    }
    runs = runs_frame([
        {"run_id": "a", "task": "p", "method": "A"}, {"run_id": "b", "task": "p", "method": "B"},
        {"run_id": "c", "task": "p", "method": "C"}, {"run_id": "z", "task": "p", "method": "Z"},
        {"run_id": "alone", "task": "q", "method": "Z"},
    ])
    PROBLEM_RUNS.update({r: ["a", "b", "c", "z"] for r in "abcz"} | {"alone": ["alone"]})
    curve = score.ecdf(traces_frame(traces), runs)
    xs, fractions = curve_of(curve, "Z")
    assert fractions == pytest.approx([reference(traces, {"p": ["z"], "q": ["alone"]}, x) for x in xs])
    assert fractions[-1] == pytest.approx((10 / 40 + 0.0) / 2)  # 0.00975 meets 10**-0.2 .. 10**-2


# -- 2. the mean over the problems each solver ran --------------------------------------------


def _two_problems() -> tuple[pl.DataFrame, dict[str, Trace], dict[str, dict[str, list[str]]]]:
    """A ran p (2 seeds, one an error) and q; B ran only p (q: skipped); S ran nothing but skipped runs."""
    traces = {
        "a-p-0": [(0, 0.0, 3.0), (1, 1.0, 0.3), (2, 4.0, 2.9e-5)],
        "a-p-1": [(0, 0.0, 3.0), (1, 2.0, 1.0)],  # an error after one step: what it met counts, no more
        "a-q-0": [(0, 0.0, 10.0), (1, 3.0, 1e-9)],
        "b-p-0": [(0, 0.0, 3.0), (1, 0.5, 0.03), (2, 5.0, 2.9e-7)],
    }
    runs = runs_frame([
        {"run_id": "a-p-0", "task": "p", "method": "A"},
        {"run_id": "a-p-1", "task": "p", "method": "A", "seed": 1, "status": "error", "suboptimality": None},
        {"run_id": "a-q-0", "task": "q", "method": "A", "hardware": "gpu"},
        {"run_id": "b-p-0", "task": "p", "method": "B"},
        {"run_id": "b-q-0", "task": "q", "method": "B", "hardware": "gpu", "status": "skipped",
         "suboptimality": None},
        {"run_id": "s-p-0", "task": "p", "method": "S", "status": "skipped", "suboptimality": None},
    ])
    own = {"A": {"p": ["a-p-0", "a-p-1"], "q": ["a-q-0"]}, "B": {"p": ["b-p-0"]}}
    PROBLEM_RUNS.update({r: [*own["A"]["p"], *own["B"]["p"]] for r in (*own["A"]["p"], *own["B"]["p"])})
    PROBLEM_RUNS["a-q-0"] = ["a-q-0"]
    return runs, traces, own


def test_a_solver_that_ran_one_of_two_problems_is_not_penalized_for_the_other() -> None:
    runs, traces, own = _two_problems()
    curve = score.ecdf(traces_frame(traces), runs)
    for method, problems in own.items():
        xs, fractions = curve_of(curve, method)
        assert fractions == pytest.approx([reference(traces, problems, x) for x in xs])
    # B's final fraction is its own problem's: 2.9e-7 over 3 meets 10**-0.2 .. 10**-7 (35 targets).
    assert curve_of(curve, "B")[1][-1] == pytest.approx(35 / 40)
    # A: on p, seed 0 meets 25 targets and the error 2; on q all 40; the mean of the two problems.
    assert curve_of(curve, "A")[1][-1] == pytest.approx(((25 + 2) / 80 + 1.0) / 2)
    assert dict(curve.select("method", "n_problems").unique().iter_rows()) == {"A": 2, "B": 1}


# -- 3. per task ------------------------------------------------------------------------------


def test_per_task_is_the_ecdf_of_that_tasks_runs() -> None:
    runs, traces, own = _two_problems()
    frame = traces_frame(traces)
    for task in ("p", "q"):
        got = score.ecdf(frame, runs, task=task)
        assert got.equals(score.ecdf(frame, runs.filter(pl.col("task") == task)))
        for method, problems in own.items():
            if task not in problems:
                assert got.filter(pl.col("method") == method).is_empty()
                continue
            xs, fractions = curve_of(got, method)
            assert fractions == pytest.approx([reference(traces, {task: problems[task]}, x) for x in xs])
        assert set(got["n_problems"]) == {1}
    assert score.ecdf(frame, runs, task=["p", "q"]).equals(score.ecdf(frame, runs))


# -- 4. the summary ---------------------------------------------------------------------------


def test_summary_reports_the_problems_each_solver_ran() -> None:
    runs, traces, own = _two_problems()
    curve = score.ecdf(traces_frame(traces), runs)
    solvers = runs.filter(pl.col("status") != "skipped").select(score.SOLVER_KEYS).unique()
    solvers = pl.concat([solvers, pl.DataFrame({"method": ["S"], "framework": ["torch"]})])
    summary = {r["method"]: r for r in score.ecdf_summary(curve, solvers=solvers).iter_rows(named=True)}
    assert {m: r["n_problems"] for m, r in summary.items()} == {"A": 2, "B": 1, "S": 0}
    assert summary["B"]["ecdf_final"] == pytest.approx(35 / 40) and summary["S"]["ecdf_final"] == 0.0
    tables = score.report(runs, traces=traces_frame(traces), n_boot=10)
    assert tables["ecdf"].columns == ["method", "framework", "n_problems", "ecdf_final", "ecdf_area"]
    assert score.display_tables(tables)["ecdf"].columns[2] == score.LABELS["n_problems"]
    per_task = score.ecdf_summary(score.ecdf(traces_frame(traces), runs, task="q"), solvers=solvers)
    assert dict(per_task.select("method", "n_problems").iter_rows()) == {"A": 1, "B": 0, "S": 0}
