"""Overview: solvers ranked by performance-profile score, the profiles, the ratios, and the
few-seed aggregates (IQM, probability of improvement, score profiles: :mod:`harness.aggregate`)."""

from __future__ import annotations

import lbkit
import polars as pl
import streamlit as st

from harness import aggregate, charts, score

#: Bootstrap resamples of the few-seed aggregates on this page (cached per store and filters).
AGGREGATE_REPS = 1000


@st.cache_data(max_entries=16, show_spinner=False)
def _aggregates(store: str, fingerprint: tuple[int, ...], filters: lbkit.Filters, reps: int,
                intervals: bool) -> pl.DataFrame:
    return aggregate.aggregates(lbkit._filter(lbkit._runs(store, fingerprint), filters), reps=reps,
                                intervals=intervals)


@st.cache_data(max_entries=64, show_spinner=False)
def _improvement(store: str, fingerprint: tuple[int, ...], filters: lbkit.Filters, x: tuple[str, str],
                 y: tuple[str, str], reps: int) -> pl.DataFrame:
    frame = lbkit._filter(lbkit._runs(store, fingerprint), filters)
    return aggregate.probability_of_improvement(frame, x, y, reps=reps)


@st.cache_data(max_entries=16, show_spinner=False)
def _score_profiles(store: str, fingerprint: tuple[int, ...], filters: lbkit.Filters, reps: int) -> pl.DataFrame:
    frame = lbkit._filter(lbkit._runs(store, fingerprint), filters)
    return aggregate.score_profiles(frame, taus=[i / 20 for i in range(41)], reps=reps)


def few_seed_aggregates(filters: lbkit.Filters, n_runs: int) -> None:
    """IQM, median and mean with intervals (on demand past ``lbkit.AUTO_INTERVAL_RUNS`` runs in view);
    P(X > Y) of two picked solvers; score profiles on demand."""
    st.subheader("Few-seed aggregates (rliable)")
    st.caption(aggregate.description(AGGREGATE_REPS))
    key = lbkit.store_key()
    intervals = n_runs <= lbkit.AUTO_INTERVAL_RUNS or st.toggle(
        f"Compute the 95% intervals ({n_runs:,} runs in view: a bootstrap of seconds per method)",
        key="aggregate_intervals")
    table = _aggregates(*key, filters, AGGREGATE_REPS, intervals)
    if table.is_empty():
        st.info("No run in view of a problem with a target.")
        return
    shown = aggregate.with_interval_texts(table)
    st.dataframe(
        shown.select("method", "framework", "iqm", "iqm_ci", "median", "median_ci", "mean", "mean_ci",
                     "n_problems", "n_runs", "n_runs_left_out"),
        hide_index=True,
        key="overview_aggregates",
        column_config={
            "method": lbkit.text("method"),
            "framework": lbkit.text("framework"),
            "iqm": lbkit.number("IQM ↑", fmt="%.3f", help="Interquartile mean of the run scores."),
            "iqm_ci": lbkit.text("IQM 95% CI"),
            "median": lbkit.number("median ↑", fmt="%.3f", help="Median over problems of the mean run score."),
            "median_ci": lbkit.text("median 95% CI"),
            "mean": lbkit.number("mean ↑", fmt="%.3f", help="Mean over problems of the mean run score."),
            "mean_ci": lbkit.text("mean 95% CI"),
            "n_problems": lbkit.number("problems", fmt="%d", help="Problems with a target it ran."),
            "n_runs": lbkit.number("runs per problem", fmt="%d"),
            "n_runs_left_out": lbkit.number("runs left out", fmt="%d",
                                            help="Runs beyond its smallest run count on a problem (last seeds)."),
        },
    )
    solvers = {f"{m}/{f}": (m, f) for m, f in table.select("method", "framework").rows()}
    labels = list(solvers)
    if len(labels) < 2:
        st.caption("Probability of improvement: needs two methods in view.")
    else:
        for name in ("aggregate_x", "aggregate_y"):  # a solver the filters took out of view
            if name in st.session_state and st.session_state[name] not in labels:
                del st.session_state[name]
        cols = st.columns(2)
        with cols[0]:
            x = st.selectbox("X", labels, index=0, key="aggregate_x")
        with cols[1]:  # picked, not preset: a bootstrap of P(X > Y) takes seconds per problem
            y = st.selectbox("Y", labels, index=None, key="aggregate_y", placeholder="pick a method to compare")
        row = None if x is None or y is None else _improvement(*key, filters, solvers[x], solvers[y],
                                                               AGGREGATE_REPS).row(0, named=True)
        if row is None:
            st.text("P(X > Y): pick X and Y.")
        elif row["value"] is None:
            st.text(f"P({x} > {y}): no problem that both ran.")
        else:
            st.text(f"P({x} > {y}) = {row['value']:.3f}  (95% CI [{row['lo']:.3f}, {row['hi']:.3f}]) "
                    f"over the {row['n_problems']} problem{'' if row['n_problems'] == 1 else 's'} both ran "
                    f"({row['n_runs_x']} and {row['n_runs_y']} runs per problem)")
        st.caption("P(X > Y): on each problem both ran, the probability that a run of X scores above a run of "
                   "Y (ties count half), averaged over those problems.")
    # On demand: a bootstrap of the whole profile per method takes seconds.
    if st.toggle("Show score profiles (fraction of runs with score > τ, with 95% bands)", key="aggregate_profiles"):
        profiles = _score_profiles(*key, filters, AGGREGATE_REPS)
        lbkit.show_chart(charts.score_profile_chart(profiles), key="score_profile_chart")


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
        lbkit.show_chart(charts.profile_chart(tables["profiles"]), key="profile_chart")

        st.subheader("Performance ratios per problem")
        st.caption("Median time-to-target over the best method's on the problem (1 = fastest; inf = target "
                   "not reached, failed or not run).")
        wide = ratios.with_columns(
            score.problem_labels(ratios),
            pl.format("{}/{}", "method", "framework").alias("solver"),
        ).pivot("solver", index="problem", values="ratio", aggregate_function="first").sort("problem")
        st.dataframe(wide, hide_index=True, key="overview_ratios")
        few_seed_aggregates(filters, runs.height)
    untargeted = medians.filter(~pl.col("has_target"))["task"].unique().sort().to_list()
    if untargeted:
        st.caption("Tasks without a target (not in the profiles): " + lbkit.escape_markdown(", ".join(untargeted)))
