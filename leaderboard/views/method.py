"""Method page: declaration, paper, hyperparameters, where it wins and where it fails."""

from __future__ import annotations

import json

import lbkit
import polars as pl
import streamlit as st

from harness import score

filters = lbkit.current_filters()
runs = lbkit.filtered_runs(filters)
st.title("Method")

if not lbkit.empty_notice(runs):
    method = lbkit.pick("Method", sorted(runs["method"].unique().to_list()), key="method_choice", param="method")
    mine = runs.filter(pl.col("method") == method)
    declaration = lbkit.declarations().get(method)
    lbkit.heading(f"{method}")
    if declaration is not None:
        st.text(f"Name: {declaration['name']}")
        st.text(f"Family: {declaration['family']}")
        st.text(f"Paper: {declaration['paper']}")
        if declaration["description"]:
            st.text(declaration["description"])
    else:
        st.text(f"Family: {mine['method_family'].drop_nulls().first() or '-'}")
        st.caption("No declaration of this method in the catalog; showing what the store holds.")

    st.subheader("Hyperparameters")
    settings = mine.group_by("hyperparameters").agg(
        pl.col("task").unique().sort().str.join(", ").alias("tasks"), pl.len().alias("runs")
    ).sort("runs", descending=True)
    st.dataframe(settings, hide_index=True, key="method_hyperparameters",
                 column_config={"hyperparameters": lbkit.text("hyperparameters (JSON)")})

    st.subheader("Where it wins")
    table = lbkit.method_table(filters, method)
    table = table.with_columns(score.problem_labels(table))
    columns = ["problem", "framework", "rank", "stat_rank", "configurations", "median_time_to_target_s",
               "median_suboptimality", "tied_with", "n_runs", "n_failed", "failures"]
    config = {
        "stat_rank": lbkit.number(score.LABELS["stat_rank"], fmt="%d"),
        "median_time_to_target_s": lbkit.number(score.LABELS["median_time_to_target_s"], fmt="%.4g"),
        "median_suboptimality": lbkit.number(score.LABELS["median_suboptimality"], fmt="%.3e"),
        "tied_with": lbkit.text(score.LABELS["tied_with"]),
    }
    wins = table.filter(pl.col("stat_rank") == 1).sort("problem")
    if wins.is_empty():
        st.caption("First (or tied for first) on no problem in view.")
    else:
        st.dataframe(wins.select(columns), hide_index=True, key="method_wins", column_config=config)

    st.subheader("Where it fails")
    failing = table.filter((pl.col("n_failed") > 0) | (pl.col("n_reached") < pl.col("n_runs")) & pl.col("has_target"))
    if failing.is_empty():
        st.caption("No failed run and every target reached.")
    else:
        st.dataframe(failing.sort("problem").select(columns), hide_index=True, key="method_fails", column_config=config)
    errors = mine.filter(pl.col("status").is_in(score.FAILED_STATUSES))
    if not errors.is_empty():
        st.caption("Failed runs and their errors")
        st.dataframe(errors.select("task", "hardware", "framework", "seed", "status", "error").sort("task", "seed"),
                     hide_index=True, key="method_errors")

    if declaration is not None:
        st.subheader("Declaration")
        st.text(declaration["path"])
        st.code(declaration["yaml"], language="yaml")
        if declaration["hyperparameters"]:
            st.code(json.dumps(declaration["hyperparameters"], indent=2, sort_keys=True), language="json")
