"""Runs explorer: every run, failures included, with status, error, environment and commit."""

from __future__ import annotations

import json

import lbkit
import polars as pl
import streamlit as st

COLUMNS = ["run_id", "task", "method", "framework", "hardware", "seed", "status", "error", "steps", "timed_s",
           "time_to_target_s", "suboptimality", "peak_memory_bytes", "host", "cpu", "gpu", "git_commit",
           "git_dirty", "started_at"]
ENVIRONMENT = ["host", "cpu", "gpu", "versions", "git_commit", "git_dirty", "started_at", "finished_at", "suite",
               "task_params", "hyperparameters", "setup_s", "init_s", "warmup_s", "timed_s", "eval_s", "wall_s"]

filters = lbkit.current_filters()
runs = lbkit.filtered_runs(filters)
st.title("Runs")

if not lbkit.empty_notice(runs):
    cols = st.columns(4)
    statuses = cols[0].multiselect("Status", sorted(runs["status"].drop_nulls().unique().to_list()),
                                   key="runs_status", placeholder="all")
    tasks = cols[1].multiselect("Task", sorted(runs["task"].unique().to_list()), key="runs_task", placeholder="all")
    methods = cols[2].multiselect("Method", sorted(runs["method"].unique().to_list()), key="runs_method",
                                  placeholder="all")
    needle = cols[3].text_input("Search run id or error text", key="runs_search")
    shown = runs
    for column, values in (("status", statuses), ("task", tasks), ("method", methods)):
        if values:
            shown = shown.filter(pl.col(column).is_in(values))
    if needle:
        shown = shown.filter(pl.col("run_id").str.contains(needle, literal=True)
                             | pl.col("error").fill_null("").str.contains(needle, literal=True))
    shown = shown.sort("task", "method", "framework", "hardware", "seed")
    st.caption(f"{shown.height} of {runs.height} runs" + (f"; the first {lbkit.MAX_ROWS} are listed"
                                                           if shown.height > lbkit.MAX_ROWS else ""))
    present = [c for c in COLUMNS if c in shown.columns]
    st.dataframe(
        shown.head(lbkit.MAX_ROWS).select(present), hide_index=True, key="runs_table",
        column_config={
            "timed_s": lbkit.number("timed ↓ [s]", fmt="%.4g"),
            "time_to_target_s": lbkit.number("time to target ↓ [s]", fmt="%.4g"),
            "suboptimality": lbkit.number("suboptimality ↓", fmt="%.3e"),
            "peak_memory_bytes": lbkit.number("peak memory ↓ [bytes]", fmt="%d"),
        },
    )

    st.subheader("Run details")
    ids = shown.head(lbkit.MAX_ROWS)["run_id"].to_list()
    chosen = st.selectbox("Run", ids, key="runs_detail") if ids else None
    if chosen is not None:
        row = shown.filter(pl.col("run_id") == chosen).row(0, named=True)
        st.text(f"{row['task']} / {row['method']} / {row['framework']} / {row['hardware']} / seed {row['seed']}: "
                f"{row['status']}")
        if row.get("error"):
            st.caption("Error")
            st.code(row["error"], language=None)
        environment = {k: row.get(k) for k in ENVIRONMENT if k in row}
        for key in ("versions", "task_params", "hyperparameters"):
            try:
                environment[key] = json.loads(environment[key]) if environment.get(key) else None
            except (TypeError, ValueError):
                pass
        st.caption("Environment, commit and parameters")
        st.code(json.dumps(environment, indent=2, default=str), language="json")
