"""Runs explorer: every run, failures included, with status, error, environment and commit."""

from __future__ import annotations

import json

import lbkit
import polars as pl
import streamlit as st

from harness import charts, score
from harness.probes import probe_output

#: The table's columns; ``clock_flag`` is added here (the flag of runs whose clock caught compilations).
COLUMNS = ["run_id", "task", "task_variant", "method", "settings", "framework", "hardware", "seed", "status", "clock_flag", "error", "steps",
           "timed_s", "time_to_target_s", "compile_s", "offline_s", "init_s", "output_s", "clock_compiles",
           "clock_compile_s", "suboptimality", "peak_memory_bytes", "host", "cpu", "gpu", "git_commit", "git_dirty",
           "started_at"]
#: The clock's parts and what is kept off it (``warmup_s``: an older store's first step, shown when present).
TIMINGS = ["setup_s", "compile_s", "offline_s", "init_s", "output_s", "timed_s", "clock_compiles", "clock_compile_s",
           "eval_s", "wall_s"]
ENVIRONMENT = ["host", "cpu", "gpu", "versions", "git_commit", "git_dirty", "started_at", "finished_at", "suite",
               "task_params", "hyperparameters", *TIMINGS]



def _with_varying_text(frame: pl.DataFrame, key: str, column: str, name: str) -> pl.DataFrame:
    """``frame`` with ``name``: its JSON object ``column`` as ``k=v, ...``, naming only what varies within ``key``.

    Runs of one task (or method) differ by these values, not only by seed; the constant ones
    are in the run details.
    """
    pairs = frame.select(key, column).unique()
    varying = score.varying_parameters(pairs.rows())

    def text(owner: str, value: str | None) -> str:
        try:
            params = json.loads(value) if value else {}
        except ValueError:
            return value or ""
        shown = varying.get(owner, set())
        return ", ".join(f"{k}={v}" for k, v in params.items() if k in shown) if isinstance(params, dict) else str(params)

    texts = pairs.with_columns(pl.Series(name, [text(*row) for row in pairs.rows()], dtype=pl.String))
    return frame.join(texts, on=[key, column], how="left", nulls_equal=True)


def _run_curves(run_id: str, row: dict) -> None:
    """The run's own curves: each metric and probe of its trace against the step (log axes where they span decades)."""
    trace = lbkit.run_trace(run_id)
    if trace.is_empty():
        st.caption("This run recorded no evaluation point.")
        return
    info = score.metric_info(pl.DataFrame([row])).get(row["task"], {})
    values = [m for m in (*sorted(info), "suboptimality", "objective") if m in trace.columns]
    values = list(dict.fromkeys(values)) + score.probe_columns(trace, info)
    values = [v for v in values if trace[v].drop_nulls().len() > 0]
    st.caption(f"This run's trace: {trace.height} evaluation points. Log axes where a lower-is-better metric's "
               "values span decades (values at or below zero sit on the floor).")
    columns = st.columns(2)
    for i, value in enumerate(values):
        output = probe_output(value)
        meta = info.get(value, {})
        unit = output.unit if output is not None else meta.get("unit", "")
        log_y = output.log if output is not None else charts.log_axis(trace[value],
                                                                     lower_is_better=meta.get("lower_is_better", True))
        series = trace.select(pl.lit(value).alias("label"), pl.col("step").cast(pl.Float64).alias("x"),
                              *[pl.col(value).cast(pl.Float64).alias(c) for c in ("median", "lo", "hi")],
                              pl.lit(1, pl.UInt32).alias("n"))
        references = None
        if output is not None and output.reference is not None:
            hyper = json.loads(row["hyperparameters"]) if row.get("hyperparameters") else {}
            level = output.reference_value(hyper)
            if level is not None:
                references = pl.DataFrame({"value": [level], "text": [output.reference_text]})
        with columns[i % 2]:
            lbkit.show_chart(charts.band_chart(series, x_title="step (log)", y_title=value + (f" [{unit}]" if unit else ""),
                                               log_x=True, log_y=log_y, references=references, height=220),
                             key=f"run_curve_{i}")


filters = lbkit.current_filters()
runs = lbkit.filtered_runs(filters)
st.title("Runs")

if not lbkit.empty_notice(runs):
    runs = runs.with_columns(
        score.clock_flag_text("clock_compiles", "clock_compile_s", unit="compilation").alias("clock_flag"),
    )
    runs = _with_varying_text(_with_varying_text(runs, "task", "task_params", "task_variant"),
                              "method", "hyperparameters", "settings")
    lbkit.clock_flag_notice(runs, skipped=True)  # this page lists skipped runs too
    cols = st.columns(4)
    statuses = cols[0].multiselect("Status", sorted(runs["status"].drop_nulls().unique().to_list()),
                                   key="runs_status", placeholder="all")
    tasks = cols[1].multiselect("Task", sorted(runs["task"].unique().to_list()), key="runs_task", placeholder="all")
    methods = cols[2].multiselect("Method", sorted(runs["method"].unique().to_list()), key="runs_method",
                                  placeholder="all")
    needle = cols[3].text_input("Search run id or error text", key="runs_search")
    flag_shown = bool((runs["clock_flag"] != "").any())  # the flag's column only where some run in view has it
    only_flagged = st.checkbox(f"Only runs {score.CLOCK_FLAG}", key="runs_flagged",
                               help=score.CLOCK_FLAG_HELP) if flag_shown else False
    shown = runs.filter(pl.col("clock_flag") != "") if only_flagged else runs
    for column, values in (("status", statuses), ("task", tasks), ("method", methods)):
        if values:
            shown = shown.filter(pl.col(column).is_in(values))
    if needle:
        shown = shown.filter(pl.col("run_id").str.contains(needle, literal=True)
                             | pl.col("error").fill_null("").str.contains(needle, literal=True))
    shown = shown.sort("task", "method", "framework", "hardware", "seed")
    st.caption(f"{shown.height} of {runs.height} runs" + (f"; the first {lbkit.MAX_ROWS} are listed"
                                                           if shown.height > lbkit.MAX_ROWS else ""))
    present = [c for c in COLUMNS if c in shown.columns and (c != "clock_flag" or flag_shown)]
    st.dataframe(
        shown.head(lbkit.MAX_ROWS).select(present), hide_index=True, key="runs_table",
        column_config={
            "run_id": lbkit.text("run_id", pinned=True),
            "task_variant": lbkit.text("task parameters", help="Those that vary among this task's runs."),
            "settings": lbkit.text("hyperparameters", help="Those that vary among this method's runs."),
            "clock_flag": lbkit.text(score.CLOCK_FLAG, help=score.CLOCK_FLAG_HELP, width=180),
            "timed_s": lbkit.number("timed ↓ [s]", fmt="%.4g",
                                    help="The clock: init, every step and the output hook."),
            "compile_s": lbkit.number("compile [s]", fmt="%.3g", help="Compilation before the clock (off it)."),
            "offline_s": lbkit.number(score.OFFLINE, fmt="%.3g", help=score.OFFLINE_HELP),
            "init_s": lbkit.number("init [s]", fmt="%.3g", help="method.init, on the clock (part of timed)."),
            "output_s": lbkit.number("output [s]", fmt="%.3g", help="The output hook, on the clock (part of timed)."),
            "clock_compiles": lbkit.number("compilations in clock", fmt="%d", help=score.CLOCK_FLAG_HELP),
            "clock_compile_s": lbkit.number("their time [s]", fmt="%.3g"),
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
        if row.get("clock_flag"):
            st.warning(f"{row['clock_compiles']} compilations inside the timed region "
                       f"({row['clock_compile_s'] or 0.0:.3g} s of timed {row['timed_s'] or 0.0:.4g} s). "
                       + score.CLOCK_FLAG_HELP, icon="⚠️")
        if row.get("error"):
            st.caption("Error")
            st.code(row["error"], language=None)
        st.caption("Timing [s]: timed is the clock (init, every step, output; compilations caught inside it "
                   "count); setup, compile, offline and eval are off it.")
        timing = [k for k in TIMINGS if k in row]
        if row.get("warmup_s") is not None:  # an older store: its first step, off its clock
            timing.insert(timing.index("timed_s"), "warmup_s")
        st.dataframe(
            pl.DataFrame([{k: row[k] for k in timing}]), hide_index=True, key="runs_timing",
            column_config={
                **{k: lbkit.number(k.removesuffix("_s"), fmt="%.4g") for k in timing},
                "clock_compiles": lbkit.number("compilations in clock", fmt="%d", help=score.CLOCK_FLAG_HELP),
                "clock_compile_s": lbkit.number("their time", fmt="%.3g"),
                "offline_s": lbkit.number("offline", fmt="%.4g", help=score.OFFLINE_HELP),
                "warmup_s": lbkit.number("warmup (old store)", fmt="%.4g",
                                         help="An older store's first step, kept off its clock."),
            },
        )
        _run_curves(chosen, row)
        environment = {k: row.get(k) for k in ENVIRONMENT if k in row}
        if row.get("warmup_s") is not None:
            environment["warmup_s"] = row["warmup_s"]
        for key in ("versions", "task_params", "hyperparameters"):
            try:
                environment[key] = json.loads(environment[key]) if environment.get(key) else None
            except (TypeError, ValueError):
                pass
        st.caption("Environment, commit and parameters")
        st.code(json.dumps(environment, indent=2, default=str), language="json")
