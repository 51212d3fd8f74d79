"""Overview: solvers ranked by performance-profile score, the profiles, and the ratios."""

from __future__ import annotations

import lbkit
import polars as pl
import streamlit as st

from harness import score

st.title("harness leaderboard")
filters = lbkit.current_filters()
runs = lbkit.filtered_runs(filters)
store, _ = lbkit.settings()
st.text(f"store: {store}")
loose = lbkit.loose_files()
if loose > lbkit.COMPACT_HINT:
    st.warning(f"{loose} runs are stored one file each, which is slow to read. Compact the store "
               "(harness compact, or harness.store.compact) to open it fast; the leaderboard only reads it.")

if not lbkit.empty_notice(runs):
    tables = lbkit.overview(filters)
    medians, ratios, scores = tables["medians"], tables["ratios"], tables["scores"]
    failed = int(medians["n_failed"].sum())
    cols = st.columns(5)
    cols[0].metric("Runs", f"{int(medians['n_runs'].sum())}")
    cols[1].metric("Failed runs", f"{failed}")
    cols[2].metric("Tasks", f"{runs['task'].n_unique()}")
    cols[3].metric("Methods", f"{runs['method'].n_unique()}")
    cols[4].metric("Problems with a target", f"{ratios.select(score.PROBLEM_KEYS).unique().height}")
    lbkit.clock_flag_notice(runs)

    st.subheader("Ranking by performance-profile score")
    if scores.is_empty():
        st.info("No task in view declares a target, so there is no time-to-target to profile. "
                "The Task pages rank by final suboptimality.")
    else:
        names = lbkit.declarations()
        shown = scores.with_columns(
            pl.col("method").replace_strict({m: d["name"] for m, d in names.items()}, default="").alias("name")
        )
        shown, costs, cost_config = lbkit.cost_columns(shown)
        st.dataframe(
            shown.select("rank", "method", "name", "framework", "method_family", "score", *costs, "solved", "wins",
                         "n_problems", "n_runs", "n_failed", "n_skipped"),
            hide_index=True,
            key="overview_ranking",
            column_config={
                **cost_config,
                "rank": lbkit.number("rank", fmt="%d"),
                "method": lbkit.text("method"),
                "name": lbkit.text("name", help="The method's name in its declaration."),
                "method_family": lbkit.text("family"),
                "score": lbkit.number(score.LABELS["score"], fmt="%.3f",
                                      help="Normalized area under the performance profile over τ in [1, 4]."),
                "solved": lbkit.number(score.LABELS["solved"], fmt="%.2f", help="Problems whose target it reached."),
                "wins": lbkit.number(score.LABELS["wins"], fmt="%.2f", help="Problems where it was fastest."),
                "n_problems": lbkit.number("problems", fmt="%d"),
                "n_runs": lbkit.number("runs", fmt="%d"),
                "n_failed": lbkit.number(score.LABELS["n_failed"], fmt="%d",
                                         help="Runs that diverged, errored, timed out or ran out of memory."),
                "n_skipped": lbkit.number("skipped", fmt="%d"),
            },
        )
        lbkit.cost_notes(costs)
        st.subheader("Performance profiles")
        st.caption("ρ(τ): fraction of problems a method solves within τ times the best method's median "
                   "time-to-target. Failures and missing runs never reach the curve.")
        lbkit.show_chart(lbkit.profile_chart(tables["profiles"]), key="profile_chart")

        st.subheader("Performance ratios per problem")
        st.caption("Median time-to-target over the best method's on the problem (1 = fastest; inf = target "
                   "not reached, failed or not run).")
        wide = ratios.with_columns(
            score.problem_labels(ratios),
            pl.format("{}/{}", "method", "framework").alias("solver"),
        ).pivot("solver", index="problem", values="ratio", aggregate_function="first").sort("problem")
        st.dataframe(wide, hide_index=True, key="overview_ratios")
    untargeted = medians.filter(~pl.col("has_target"))["task"].unique().sort().to_list()
    if untargeted:
        st.caption("Tasks without a target (not in the profiles): " + lbkit.escape_markdown(", ".join(untargeted)))
