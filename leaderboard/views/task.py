"""Task page: ranking with intervals and ties, convergence, hardware comparison, probes."""

from __future__ import annotations

import lbkit
import polars as pl
import streamlit as st

from harness import score
from harness.record import NOT_RUN

filters = lbkit.current_filters()
runs = lbkit.filtered_runs(filters)
st.title("Task")

if not lbkit.empty_notice(runs):
    task = lbkit.pick("Task", sorted(runs["task"].unique().to_list()), key="task_choice", param="task")
    task_runs = all_task_runs = runs.filter(pl.col("task") == task)
    info = score.metric_info(task_runs).get(task, {})
    lbkit.heading(f"{task}  ({task_runs['task_family'].drop_nulls().first() or ''})")
    table = lbkit.task_table(filters, task)

    st.subheader("Ranking")
    unit = (table["unit"].drop_nulls().first() or "") if table.height else ""
    st.caption("Median over seeds with bootstrap 95% intervals. Ranked by time-to-target, then suboptimality "
               "(or the target metric, in its direction, where no suboptimality is measured); 'rank (CI)' counts "
               "only significantly better configurations (two-sided Mann-Whitney U test on the seeds at "
               f"{score.SIGNIFICANCE_LEVEL:g}); a configuration with fewer than {score.MIN_SEEDS_FOR_SIGNIFICANCE} "
               "seeds is not tested (too few seeds for any claim: its 'significance' column says so) and has no ties. "
               "Failed runs count as infinite; a timeout keeps the value it reached.")
    table = table.with_columns(
        score.problem_labels(table),
        pl.col("hyperparameters").map_elements(lbkit.hyper_text, return_dtype=pl.String),
    )
    sub = f" [{unit}]" if unit else ""
    table, costs, cost_config = lbkit.cost_columns(table)
    lbkit.clock_flag_notice(task_runs, where="of this task")
    st.dataframe(
        table.select("problem", "rank", "stat_rank", "label", "framework", "hyperparameters",
                     "median_time_to_target_s", *costs, "time_to_target_lo", "time_to_target_hi",
                     "median_suboptimality", "suboptimality_lo", "suboptimality_hi", "median_target_metric",
                     "tied_with", "significance", "n_runs", "n_reached", "n_failed", "failures", "n_skipped"),
        hide_index=True,
        key="task_ranking",
        column_config={
            **cost_config,
            "problem": lbkit.text("problem"),
            "rank": lbkit.number("rank", fmt="%d"),
            "stat_rank": lbkit.number(score.LABELS["stat_rank"], fmt="%d"),
            "label": lbkit.text("method"),
            "median_time_to_target_s": lbkit.number(score.LABELS["median_time_to_target_s"], fmt="%.4g"),
            "time_to_target_lo": lbkit.number(score.LABELS["time_to_target_lo"], fmt="%.4g"),
            "time_to_target_hi": lbkit.number(score.LABELS["time_to_target_hi"], fmt="%.4g"),
            "median_suboptimality": lbkit.number(score.LABELS["median_suboptimality"] + sub, fmt="%.3e"),
            "suboptimality_lo": lbkit.number(score.LABELS["suboptimality_lo"] + sub, fmt="%.3e"),
            "suboptimality_hi": lbkit.number(score.LABELS["suboptimality_hi"] + sub, fmt="%.3e"),
            "median_target_metric": lbkit.number(score.LABELS["median_target_metric"], fmt="%.4g",
                                                 help="Median final value of the task's target metric."),
            "tied_with": lbkit.text(score.LABELS["tied_with"],
                                    help="Configurations not significantly different from this one."),
            "significance": lbkit.text(score.LABELS["significance"],
                                       help="Why a configuration was not tested (too few seeds)."),
            "n_runs": lbkit.number("runs", fmt="%d"),
            "n_reached": lbkit.number(score.LABELS["n_reached"], fmt="%d"),
            "n_failed": lbkit.number(score.LABELS["n_failed"], fmt="%d"),
            "failures": lbkit.text("failures"),
            "n_skipped": lbkit.number("skipped", fmt="%d"),
        },
    )
    lbkit.cost_notes(costs)

    traces = lbkit.task_traces(filters, task)
    problems = task_runs.select(score.PROBLEM_KEYS).unique().sort(score.PROBLEM_KEYS)
    labels = dict(zip(score.problem_labels(problems), problems.rows()))
    if len(labels) > 1:
        st.caption("The plots below show one problem (task variant and hardware profile) at a time.")
        chosen = labels[st.selectbox("Problem", list(labels), key="task_problem")]
        same = [pl.col(k).eq_missing(v) for k, v in zip(score.PROBLEM_KEYS, chosen)]
        task_runs = task_runs.filter(pl.all_horizontal(same))
        traces = traces.filter(pl.col("run_id").is_in(task_runs["run_id"].implode()))
    metric_ids = sorted(info) or [m for m in ("suboptimality", "objective") if m in traces.columns]
    plotted = [m for m in metric_ids if m in traces.columns]
    st.subheader("Convergence")
    if traces.is_empty() or not plotted:
        st.info("No evaluation points were recorded for these runs.")
    else:
        default = plotted.index("suboptimality") if "suboptimality" in plotted else 0
        metric = st.selectbox("Metric", plotted, index=default, key="task_metric")
        meta = info.get(metric, {})
        arrow = "↓" if meta.get("lower_is_better", True) else "↑"
        y_title = f"{metric} {arrow}" + (f" [{meta['unit']}]" if meta.get("unit") else "")
        log_y = st.checkbox("Log scale", value=metric in ("suboptimality", "objective"), key="task_log")
        st.caption("Median over seeds per method; the band spans the 10% to 90% quantiles.")
        traced = set(traces["run_id"].unique().to_list())
        untraced = task_runs.filter(~pl.col("run_id").is_in(list(traced)) & ~pl.col("status").is_in(NOT_RUN))
        if not untraced.is_empty():
            missing = untraced.group_by("method", "status").len().sort("method", "status")
            st.text("No evaluation point (not plotted): " + ", ".join(
                f"{m} ({s}×{n})" for m, s, n in missing.iter_rows()))
        left, right = st.columns(2)
        for column, (axis, x_title) in zip((left, right), (("time_s", "time [s]"), ("step", "step"))):
            with column:
                bands = score.convergence_bands(traces, task_runs, value=metric, x=axis)
                lbkit.show_chart(lbkit.band_chart(bands, x_title=x_title, y_title=y_title, log_y=log_y),
                                 key=f"convergence_{axis}")

    st.subheader("Hardware comparison")
    speedups = score.hardware_speedups(all_task_runs)
    if speedups.is_empty():
        st.caption("These runs use one hardware profile; no comparison.")
    else:
        compared = speedups.filter(pl.col("speedup_per_step").is_not_null() & (pl.col("speedup_per_step") != 1.0)
                                   | pl.col("speedup_time_to_target").is_not_null()
                                   & (pl.col("speedup_time_to_target") != 1.0))
        st.dataframe(
            speedups.select("method", "framework", "hardware", "median_time_per_step_s", "speedup_per_step",
                            "median_time_to_target_s", "speedup_time_to_target"),
            hide_index=True,
            key="task_hardware",
            column_config={
                "median_time_per_step_s": lbkit.number("time per step ↓ [s]", fmt="%.3e"),
                "speedup_per_step": lbkit.number("speedup per step ↑ [×]", fmt="%.2f"),
                "median_time_to_target_s": lbkit.number(score.LABELS["median_time_to_target_s"], fmt="%.4g"),
                "speedup_time_to_target": lbkit.number("speedup to target ↑ [×]", fmt="%.2f"),
            },
        )
        if not compared.is_empty():
            lbkit.show_chart(lbkit.speedup_chart(compared), key="hardware_chart")

    st.subheader("Probes")
    probes = score.probe_columns(traces, info) if not traces.is_empty() else []
    if not probes:
        st.caption("No probe was recorded for these runs.")
    for i, probe in enumerate(probes):
        bands = score.convergence_bands(traces, task_runs, value=probe, x="step")
        lbkit.show_chart(lbkit.band_chart(bands, x_title="step", y_title=probe, log_y=False), key=f"probe_{i}")
