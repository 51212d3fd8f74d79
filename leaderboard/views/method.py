"""Method page: declaration, paper, hyperparameters, where it wins and where it fails."""

from __future__ import annotations

import json

import lbkit
import polars as pl
import streamlit as st

from harness import score
from harness.record import FAILED, NOT_RUN

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

    st.subheader("Score")
    lbkit.clock_flag_notice(mine, where="of this method", methods=False)
    offline = mine.filter(~pl.col("status").is_in(NOT_RUN))["offline_s"].drop_nulls()
    if not offline.is_empty():
        st.text(f"Offline phase: median {offline.median():.3g} s, max {offline.max():.3g} s over "
                f"{offline.len()} runs (reported apart from the clock, amortized over problems).")
    scores = lbkit.overview(filters)["scores"].filter(pl.col("method") == method)
    if scores.is_empty():
        st.caption("No profile score: none of its problems in view declares a target.")
    else:
        scores, costs, cost_config = lbkit.cost_columns(scores)
        st.dataframe(
            scores.select("rank", "framework", "score", *costs, "solved", "wins", "n_problems", "n_runs", "n_failed"),
            hide_index=True, key="method_score",
            column_config={
                **cost_config,
                "rank": lbkit.number("rank (of all solvers)", fmt="%d"),
                "score": lbkit.number(score.LABELS["score"], fmt="%.3f",
                                      help="Normalized area under the performance profile over τ in [1, 4]."),
                "solved": lbkit.number(score.LABELS["solved"], fmt="%.2f"),
                "wins": lbkit.number(score.LABELS["wins"], fmt="%.2f"),
                "n_problems": lbkit.number("problems", fmt="%d"),
                "n_runs": lbkit.number("runs", fmt="%d"),
                "n_failed": lbkit.number(score.LABELS["n_failed"], fmt="%d"),
            },
        )
        lbkit.cost_notes(costs)

    st.subheader("Hyperparameters")
    settings = mine.group_by("hyperparameters").agg(
        pl.col("task").unique().sort().str.join(", ").alias("tasks"), pl.len().alias("runs")
    ).sort("runs", descending=True)
    st.dataframe(settings, hide_index=True, key="method_hyperparameters",
                 column_config={"hyperparameters": lbkit.text("hyperparameters (JSON)")})

    st.subheader("Where it wins")
    table = lbkit.method_table(filters, method)
    table = table.with_columns(score.problem_labels(table))
    table, costs, cost_config = lbkit.cost_columns(table)
    columns = ["problem", "label", "rank", "stat_rank", "configurations", "median_time_to_target_s", *costs,
               "median_suboptimality", "tied_with", "significance", "n_runs", "n_failed", "failures"]
    config = {
        **cost_config,
        "label": lbkit.text("configuration", help="Its framework where several, and the hyperparameters that vary "
                                                  "among the problem's configurations."),
        "n_runs": lbkit.number("runs", fmt="%d"),
        "n_failed": lbkit.number(score.LABELS["n_failed"], fmt="%d"),
        "stat_rank": lbkit.number(score.LABELS["stat_rank"], fmt="%d"),
        "median_time_to_target_s": lbkit.number(score.LABELS["median_time_to_target_s"], fmt="%.4g"),
        "median_suboptimality": lbkit.number(score.LABELS["median_suboptimality"], fmt="%.3e"),
        "tied_with": lbkit.text(score.LABELS["tied_with"]),
        "significance": lbkit.text(score.LABELS["significance"], help="Why a configuration was not tested."),
    }
    # Untested (too few seeds: everyone ties) counts as a win only when first by its median.
    tested = pl.col("significance").fill_null("") == ""
    wins = table.filter(pl.when(tested).then(pl.col("stat_rank") == 1).otherwise(pl.col("rank") == 1)).sort("problem")
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
    errors = mine.filter(pl.col("status").is_in(FAILED))
    if not errors.is_empty():
        st.caption("Failed runs and their errors")
        st.dataframe(errors.select("task", "hardware", "framework", "seed", "status", "error").sort("task", "seed"),
                     hide_index=True, key="method_errors")

    flagged = mine.filter(pl.col("clock_compiles").fill_null(0) > 0)
    if not flagged.is_empty():
        st.caption(f"Runs {score.CLOCK_FLAG}")
        st.dataframe(
            flagged.select("task", "hardware", "framework", "seed", "status", "clock_compiles", "clock_compile_s",
                           "timed_s").sort("task", "hardware", "framework", "seed"),
            hide_index=True, key="method_clock_compiled",
            column_config={
                "clock_compiles": lbkit.number("compilations in clock", fmt="%d", help=score.CLOCK_FLAG_HELP),
                "clock_compile_s": lbkit.number("their time [s]", fmt="%.3g"),
                "timed_s": lbkit.number("timed ↓ [s]", fmt="%.4g"),
            },
        )

    if declaration is not None:
        st.subheader("Declaration")
        st.text(declaration["path"])
        st.code(declaration["yaml"], language="yaml")
        if declaration["hyperparameters"]:
            st.code(json.dumps(declaration["hyperparameters"], indent=2, sort_keys=True), language="json")
