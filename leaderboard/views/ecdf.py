"""ECDF page: COCO-style runtime distributions over 40 targets on the suboptimality relative to the
initial point, over all tasks or one (reads traces)."""

from __future__ import annotations

import lbkit
import streamlit as st

from harness import charts, score

#: The selector's option for every task in view.
ALL_TASKS = "all tasks"
#: The chart's y axis.
Y_TITLE = "fraction of (run, target) pairs, mean over its problems ↑"

filters = lbkit.current_filters()
runs = lbkit.filtered_runs(filters)
st.title("ECDF of runtimes")

if not lbkit.empty_notice(runs):
    tasks = sorted(runs["task"].drop_nulls().unique().to_list())
    choice = lbkit.pick("Problems", [ALL_TASKS, *tasks], key="ecdf_task", param="ecdf_task")
    task = None if choice == ALL_TASKS else choice
    where = "every task in view" if task is None else f"the variants and hardware profiles of {task}"
    st.caption(lbkit.escape_markdown(
        f"Problems: {where}. On each problem, the fraction of (run, target) pairs met by the best-so-far "
        "suboptimality relative to the run's initial one (step 0), over 40 targets log-spaced from 10^-0.2 to "
        "1e-8: no target is met at the start. A hyperparameter sweep shows as its best setting per problem "
        "(as in the profiles), over that configuration's own runs; failed runs count as unmet. A solver's "
        "curve is the mean over the problems it ran, each weighing equally, not over all problems: compare "
        "its problem count in the table."
    ))
    axis = st.radio("Runtime", ["time_s", "step", "oracle_calls"], horizontal=True, key="ecdf_axis",
                    format_func={"time_s": "time [s]", "step": "steps", "oracle_calls": "oracle calls"}.get)
    curve, summary = lbkit.ecdf(filters, axis, task)
    if curve.is_empty() or not curve["fraction"].max():
        st.info("Nothing to draw: no run in view met a suboptimality target after a positive runtime.")
    else:
        title = {"time_s": "time [s] (log)", "step": "steps (log)", "oracle_calls": "oracle calls (log)"}[axis]
        lbkit.show_chart(charts.ecdf_chart(curve, x_title=title, y_title=Y_TITLE), key="ecdf_chart")
    if not summary.is_empty():
        st.dataframe(
            summary, hide_index=True, key="ecdf_summary",
            column_config={
                "n_problems": lbkit.number(score.LABELS["n_problems"], fmt="%d",
                                           help="Problems (task, variant, hardware) the solver ran: its "
                                                "curve is the mean over these."),
                "ecdf_final": lbkit.number(score.LABELS["ecdf_final"], fmt="%.3f"),
                "ecdf_area": lbkit.number(score.LABELS["ecdf_area"], fmt="%.3f",
                                          help="Area under the ECDF over log runtime, normalized."),
            },
        )
