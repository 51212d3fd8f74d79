"""ECDF page: COCO-style runtime distributions over 51 suboptimality targets (reads traces)."""

from __future__ import annotations

import lbkit
import streamlit as st

from harness import score

filters = lbkit.current_filters()
runs = lbkit.filtered_runs(filters)
st.title("ECDF of runtimes")

if not lbkit.empty_notice(runs):
    st.caption("Fraction of (run, target) pairs met by the best-so-far suboptimality, over 51 targets log-spaced "
               "from 1e2 to 1e-8. A hyperparameter sweep shows as its best setting per problem (as in the "
               "profiles), over that configuration's own runs; problems weigh equally. Failed runs and problems "
               "it did not run count as unmet.")
    axis = st.radio("Runtime", ["time_s", "step", "oracle_calls"], horizontal=True, key="ecdf_axis",
                    format_func={"time_s": "time [s]", "step": "steps", "oracle_calls": "oracle calls"}.get)
    curve, summary = lbkit.ecdf(filters, axis)
    if curve.is_empty():
        st.info("Nothing to draw: no run in view met a suboptimality target after a positive runtime.")
    else:
        title = {"time_s": "time [s] (log)", "step": "steps (log)", "oracle_calls": "oracle calls (log)"}[axis]
        lbkit.show_chart(lbkit.ecdf_chart(curve, x_title=title), key="ecdf_chart")
    if not summary.is_empty():
        st.dataframe(
            summary, hide_index=True, key="ecdf_summary",
            column_config={
                "ecdf_final": lbkit.number(score.LABELS["ecdf_final"], fmt="%.3f"),
                "ecdf_area": lbkit.number(score.LABELS["ecdf_area"], fmt="%.3f",
                                          help="Area under the ECDF over log runtime, normalized."),
            },
        )
