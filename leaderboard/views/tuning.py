"""Tuning page: each tuning study's selected setting against the default, with its cost, and DeepOBS'
sensitivity plot (a metric of every trial against one hyperparameter)."""

from __future__ import annotations

import json

import lbkit
import polars as pl
import streamlit as st

from harness import charts
from harness.leaderboard import number_text
from harness.record import Status
from harness.score import problem_label, varying_parameters
from harness.spec import STEPS_TO_TARGET
from harness.tuning import tuned_against_default

st.title("Tuning")
if lbkit.empty_notice(lbkit.filtered_runs(lbkit.current_filters())):
    st.stop()
records = [r for r in lbkit.studies() if all(not values or r.get(column) in values
                                             for column, values in lbkit.current_filters() if column in r)]
if not records:
    st.info("No tuning study in view: a suite with a tuning protocol (`harness bench --suite tuning`) makes them.")
    st.stop()


_VARIANTS = [(r["task"], json.dumps(r["task_params"], sort_keys=True)) for r in records]
_VARYING = varying_parameters(_VARIANTS)  # name only the task parameters that differ between studies


def _label(record: dict) -> str:
    task, params = record["task"], json.dumps(record["task_params"], sort_keys=True)
    variant = problem_label(task, params, None, show=_VARYING.get(task, set()))
    return f"{variant} / {record['method']} / {record['framework']} / {record['hardware']}"


rows = [*lbkit.runs().to_dicts(), *lbkit.trial_runs().to_dicts()]
table = tuned_against_default(records, rows)
summary = pl.DataFrame(table).with_columns(
    pl.Series("study", [_label(r) for r in records]),
    pl.Series("selected", [", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                                     for k, v in (r["selected_params"] or {}).items()) or "-" for r in records]),
    pl.Series("search", [f"{s['trials'] - s['failed_trials']}/{s['trials']} {s['sampler']}" for s in table]),
    pl.Series("tuned reached", [f"{s['tuned_reached']}/{s['tuned_runs']}" for s in table]),
    pl.Series("default reached", [f"{s['default_reached']}/{s['default_runs']}" for s in table]),
    pl.Series("on test", ["-" if s["test_metric"] is None else
                          f"{number_text(s['tuned_test'])} / {number_text(s['default_test'])}" for s in table]),
)
st.caption("Tuned: the selected setting rerun on fresh seeds; default: the entry's hyperparameters on the suite's "
           "seeds. The tuning cost stands beside the result it bought: trials and the seconds they took on the "
           "methods' clocks (the trials are the search: the other pages rank results only).")
shown = [c for c in ("study", "search", "tuning_s", "selected", "tuned reached", "tuned_target",
                     "tuned_steps_to_target", "default reached", "default_target")
         if summary[c].null_count() < summary.height]  # no steps where no rerun reached the target
shown += ["on test"] if summary["tuned_test"].null_count() < summary.height else []  # selected on validation
st.dataframe(
    summary.select(shown),
    hide_index=True, key="tuning_summary",
    column_config={
        "study": lbkit.text("study", width=190),
        "search": lbkit.text("trials", help="Trials that finished (not diverged, not failed) / trials asked, and the sampler."),
        "tuning_s": lbkit.number("tuning [s]", help="The trials' clocks, summed: what the search cost."),
        "tuned_target": lbkit.number("tuned target ↓", help="Median over the reruns of the task's target metric."),
        "tuned_steps_to_target": lbkit.number("tuned steps", fmt="%.0f", help="Median steps to target of the reruns."),
        "default_target": lbkit.number("default target ↓"),
        "on test": lbkit.text("on test", help="Selected on validation, reported on test: the median test metric "
                                              "of the reruns / of the default runs."),
    },
)

lbkit.heading("Sensitivity")
labels = [_label(r) for r in records]
choice = lbkit.pick("Study", labels, key="tuning_study", param="study")
record = records[labels.index(choice)] if choice in labels else records[0]
names = list(record["space"])
name = lbkit.pick("Hyperparameter", names, key="tuning_hp", param="hp") if len(names) > 1 else names[0]
trial_rows = {row["run_id"]: row for row in lbkit.trial_runs().to_dicts()}
target = next((row["target_metric"] for t in record["trials"] if (row := trial_rows.get(t["run_id"]))), None)
metric = target if record["column"] == STEPS_TO_TARGET else record["column"]  # steps: show how close each came
points = []
for trial in record["trials"]:
    row = trial_rows.get(trial["run_id"], {})
    status = row.get("status")
    failed = trial["value"] is None
    outcome = "failed" if failed else "reached target" if status == Status.REACHED_TARGET else "did not reach it"
    points.append({"trial": trial["number"], "value": float(trial["params"][name]),
                   "y": None if failed or row.get(metric) is None else float(row[metric]), "outcome": outcome,
                   "selected": trial["number"] == record["selected"]})
frame = pl.DataFrame(points, schema={"trial": pl.Int64, "value": pl.Float64, "y": pl.Float64, "outcome": pl.String,
                                     "selected": pl.Boolean})
kind = record["space"][name]["kind"]
log_y = charts.log_axis(frame["y"].drop_nulls(), lower_is_better=record["lower_is_better"])
st.caption(lbkit.escape_markdown(
    f"Each trial's final {metric} against {name} ({kind} in the search space); the protocol selected on "
    f"{record['column']} ({record['protocol']['sampler']}, {len(record['trials'])} trials on seed "
    f"{record['protocol']['trial_seed']}). Failed trials (diverged, no result) sit on the top edge as crosses."))
lbkit.show_chart(charts.sensitivity_chart(frame, x_title=f"{name}{' (log)' if kind == 'log_uniform' else ''}",
                                          y_title=f"final {metric}{' (log)' if log_y else ''}",
                                          log_x=kind == "log_uniform", log_y=log_y), key="tuning_chart")
