"""Task page: ranking with intervals and ties, convergence, hardware comparison, probes."""

from __future__ import annotations

import lbkit
import polars as pl
import streamlit as st

from harness import charts, score
from harness.probes import probe_output
from harness.record import FAILED, NOT_RUN

#: The convergence plots' x axes (trace column -> title).
AXES = {"time_s": "time [s]", "step": "step", "oracle_calls": "oracle calls"}

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
        table.with_columns(
            score.interval_text("time_to_target_lo", "time_to_target_hi").alias("time_ci"),
            score.interval_text("suboptimality_lo", "suboptimality_hi").alias("suboptimality_ci"),
        ),
        # Shown: each interval as one text column; the numbers (lo, hi, the full setting) stay in the data.
        column_order=["problem", "rank", "stat_rank", "label", "median_time_to_target_s", "time_ci", *costs,
                      "median_suboptimality", "suboptimality_ci", "median_target_metric", "tied_with",
                      "significance", "n_runs", "n_reached", "n_failed", "failures", "n_skipped", "hyperparameters"],
        hide_index=True,
        key="task_ranking",
        column_config={
            **cost_config,
            "problem": lbkit.text("problem"),
            "rank": lbkit.number("rank", fmt="%d"),
            "stat_rank": lbkit.number(score.LABELS["stat_rank"], fmt="%d"),
            "label": lbkit.text("method", help="Its framework where several, and the hyperparameters that vary."),
            "time_ci": lbkit.text("time CI [s]", help="Bootstrap 95% interval of the median time to target."),
            "suboptimality_ci": lbkit.text("subopt. CI" + sub, help="Bootstrap 95% interval of the median."),
            "hyperparameters": lbkit.text("all hyperparameters"),
            "median_time_to_target_s": lbkit.number(score.LABELS["median_time_to_target_s"], fmt="%.4g"),
            "median_suboptimality": lbkit.number(score.LABELS["median_suboptimality"] + sub, fmt="%.3e"),
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
    problems = task_runs.select(score.PROBLEM_KEYS).unique().sort(score.PROBLEM_KEYS, nulls_last=True)
    labels = dict(zip(score.problem_labels(problems), problems.rows()))
    st.subheader("Convergence")
    if len(labels) > 1:
        st.caption("The plots below show one problem (task variant and hardware profile) at a time; "
                   "the page's URL names it.")
    chosen = labels[lbkit.pick("Problem", list(labels), key="task_problem", param="problem")]
    same = [pl.col(k).eq_missing(v) for k, v in zip(score.PROBLEM_KEYS, chosen)]
    task_runs = task_runs.filter(pl.all_horizontal(same))
    traces = traces.filter(pl.col("run_id").is_in(task_runs["run_id"].implode()))
    metric_ids = sorted(info) or [m for m in ("suboptimality", "objective") if m in traces.columns]
    # A held-out metric is null where a variant holds nothing out: no empty chart.
    plotted = [m for m in metric_ids if m in traces.columns and traces[m].null_count() < traces.height]
    if traces.is_empty() or not plotted:
        st.info("No evaluation points were recorded for these runs.")
    else:
        cols = st.columns([2, 3, 1, 1, 2])
        # Suboptimality where it is measured, else the target metric (mtl-digits: Delta-m%).
        targets = task_runs["target_metric"].drop_nulls().unique().to_list() if "target_metric" in task_runs.columns else []
        preferred = ["suboptimality", *targets]
        default = next((plotted.index(m) for m in preferred if m in plotted), 0)
        metric = cols[0].selectbox("Metric", plotted, index=default, key="task_metric")
        axes = [a for a in AXES if a in traces.columns]
        axis = cols[1].radio("x axis", axes, horizontal=True, key="task_axis", format_func=AXES.get)
        log_x = cols[2].checkbox("Log x", value=True, key="task_log_x")
        values = traces[metric].cast(pl.Float64)
        finite = values.filter(values.is_finite())
        positive = finite.len() > 0 and finite.min() > 0  # an objective can be negative (tensor PCA)
        decaying = charts.log_axis(values, lower_is_better=info.get(metric, {}).get("lower_is_better", True))
        log_default = metric == "suboptimality" or (metric == "objective" and positive) or decaying
        log_y = cols[3].checkbox("Log y", value=log_default,
                                 key="task_log", help="Suboptimality at or below zero sits on the floor, 1e-16.")
        relative = cols[4].checkbox("Relative to the start", value=False, key="task_relative",
                                    help="Each run's value over its value at its first evaluation point.",
                                    disabled=metric != "suboptimality") and metric == "suboptimality"
        meta = info.get(metric, {})
        arrow = "↓" if meta.get("lower_is_better", True) else "↑"
        unit = "" if relative else (f" [{meta['unit']}]" if meta.get("unit") else "")
        y_title = (f"relative {metric} {arrow}" if relative else f"{metric} {arrow}") + unit
        st.caption("One line per configuration (method, framework where several, and the hyperparameters that vary): "
                   "the median over seeds; the band spans the 10% to 90% quantiles. A run that diverged stops "
                   "where its value stops being finite. Click a legend entry to highlight it (shift-click: several; "
                   "double-click the chart: all).")
        traced = set(traces["run_id"].unique().to_list())
        untraced = task_runs.filter(~pl.col("run_id").is_in(list(traced)) & ~pl.col("status").is_in(NOT_RUN))
        if not untraced.is_empty():
            missing = untraced.group_by("method", "status").len().sort("method", "status")
            st.text("No evaluation point (not plotted): " + ", ".join(
                f"{m} ({s}×{n})" for m, s, n in missing.iter_rows()))
        failed = task_runs.with_columns(score.configuration_labels(task_runs)).filter(pl.col("status").is_in(FAILED))
        if not failed.is_empty():
            counts = failed.group_by("label", "status").len().sort("label", "status")
            st.text("Failed (the line ends at the failure): " + ", ".join(
                f"{lab} ({s}×{n})" for lab, s, n in counts.iter_rows()))
        bands = score.convergence_bands(traces, task_runs, value=metric, x=axis, relative=relative,
                                        grid="log" if log_x else "linear")
        lbkit.show_chart(charts.band_chart(bands, x_title=AXES[axis] + (" (log)" if log_x else ""),
                                           y_title=y_title, log_x=log_x, log_y=log_y), key="convergence")

        st.subheader("Probes")
        probes = score.probe_columns(traces, info)
        if not probes:
            st.caption("No probe was recorded for these runs.")
        for i, probe in enumerate(probes):
            output = probe_output(probe)
            bands = score.convergence_bands(traces, task_runs, value=probe, x=axis, grid="log" if log_x else "linear")
            log_probe = output.log if output is not None else False
            y_title = probe + (f" [{output.unit}]" if output is not None else "")
            if output is not None:
                st.caption(f"{probe}: {output.description}" + (
                    f"; the dashed line: {output.reference_text}" if output.reference is not None else ""))
            lbkit.show_chart(
                charts.band_chart(bands, x_title=AXES[axis] + (" (log)" if log_x else ""), y_title=y_title,
                                  log_x=log_x, log_y=log_probe, references=charts.probe_references(output, bands), height=280),
                key=f"probe_{i}",
            )

    st.subheader("Hardware comparison")
    speedups = score.hardware_speedups(all_task_runs)
    if speedups.is_empty():
        st.caption("These runs use one hardware profile; no comparison.")
    else:
        speedups = score.comparison_labels(speedups, group="hardware")
        st.caption("Per configuration: the median time per step on each profile and the speed-up over the "
                   "baseline profile (its median over this one's; > 1: faster). Bars side by side, log axis.")
        lbkit.show_chart(charts.speedup_chart(speedups.filter(pl.col("speedup_per_step") != 1.0),
                                              value="speedup_per_step", group="hardware",
                                              x_title="speed-up per step over the baseline ↑ [×] (log)"),
                         key="hardware_chart")
        st.dataframe(
            speedups.select("variant", "label", "hardware", "median_time_per_step_s", "speedup_per_step",
                            "median_time_to_target_s", "speedup_time_to_target"),
            hide_index=True,
            key="task_hardware",
            column_config={
                "variant": lbkit.text("task variant"),
                "label": lbkit.text("configuration"),
                "median_time_per_step_s": lbkit.number("time per step ↓ [s]", fmt="%.3e"),
                "speedup_per_step": lbkit.number("speed-up per step ↑ [×]", fmt="%.2f"),
                "median_time_to_target_s": lbkit.number(score.LABELS["median_time_to_target_s"], fmt="%.4g"),
                "speedup_time_to_target": lbkit.number("speed-up to target ↑ [×]", fmt="%.2f"),
            },
        )

    st.subheader("Framework comparison")
    agreement = score.framework_comparison(all_task_runs)
    if agreement.is_empty():
        st.caption("No configuration of this task ran in more than one framework.")
    else:
        agreement = score.comparison_labels(agreement, group="framework")
        st.caption("The same configuration in each framework: the median final values of the runs that did not "
                   "fail, their relative difference to torch's (the same algorithm on the same data should agree to "
                   "rounding), and the speed-up per step over torch (> 1: faster).")
        values = [c.removeprefix("median_") for c in agreement.columns
                  if c.startswith("median_") and c != "median_time_per_step_s"]
        others = agreement.filter(pl.col("framework") != "torch")
        if not others.is_empty():
            lbkit.show_chart(charts.speedup_chart(others, value="speedup_per_step", group="framework",
                                                  x_title="speed-up per step over torch ↑ [×] (log)"),
                             key="framework_chart")
        st.dataframe(
            agreement.select("label", "framework", "n_runs", *[f"{p}_{v}" for v in values for p in ("median", "rel_diff")],
                             "median_time_per_step_s", "speedup_per_step"),
            hide_index=True,
            key="task_frameworks",
            column_config={
                "label": lbkit.text("configuration"),
                "n_runs": lbkit.number("runs", fmt="%d"),
                **{f"median_{v}": lbkit.number(f"final {v}", fmt="%.6e") for v in values},
                **{f"rel_diff_{v}": lbkit.number(f"{v}: rel. diff. to torch ↓", fmt="%.1e") for v in values},
                "median_time_per_step_s": lbkit.number("time per step ↓ [s]", fmt="%.3e"),
                "speedup_per_step": lbkit.number("speed-up per step over torch ↑ [×]", fmt="%.2f"),
            },
        )
