"""Regressions page: asv's recorded results (``harness regress record``) over commits, each
benchmark flagged against the commit before it; the latest commit's changes first.

It reads asv's results directory (``harness leaderboard --asv-config asv.conf.json``), not the store.
"""

from __future__ import annotations

import lbkit
import polars as pl
import streamlit as st

from harness import charts
from harness.leaderboard import escape_markdown
from harness.regress.results import METRIC_FACTOR, TIME_FACTOR

#: The states in the table's order (the worst first) and how each is flagged.
FLAGS: dict[str, str] = {
    "regressed": "▲ regressed",
    "failed": "✖ failed",
    "not comparable": "⟳ not comparable",
    "improved": "▼ improved",
    "fixed": "✔ fixed",
    "new": "new",
    "skipped": "skipped",
    "unchanged": "unchanged",
}
#: The counts shown above the table.
COUNTED = ("regressed", "improved", "unchanged", "not comparable")

st.title("Regressions")
unreadable = None
try:
    history = lbkit.regress_history()
except Exception as exc:  # noqa: BLE001 - asv's loaders raise their own errors on a damaged file
    history, unreadable = None, exc

if unreadable is not None:
    st.error(escape_markdown(f"asv's results in {lbkit.asv_results()} could not be read: {unreadable}"))
elif history is None:
    results = lbkit.asv_results()
    st.info("No asv results to show yet. Record the benchmarks of a commit with `harness regress record` "
            "(in the project, beside its `asv.conf.json`; once per commit), then start the leaderboard there, "
            "or name the configuration: `harness leaderboard --asv-config asv.conf.json`.")
    st.text(f"asv results: {results}" if results is not None else "asv results: none (no asv.conf.json was found)")
else:
    machines = sorted(history["machine"].unique().to_list())
    machine = machines[0]
    if len(machines) > 1:
        machine = lbkit.pick("Machine", machines, key="regress_machine", param="machine")
    rows = history.filter(pl.col("machine") == machine)
    commits = rows.unique("order").sort("order").select("order", "commit", "date")
    latest = int(commits["order"].max())
    head = commits.row(-1, named=True)
    stamps = pl.from_epoch(commits["date"].fill_null(0), time_unit="ms").dt.strftime("%Y-%m-%d %H:%M UTC")
    when = dict(zip(commits["commit"].to_list(), stamps.to_list()))

    def commit_text(commit: str) -> str:
        return f"{commit[:8]} ({when.get(commit, '?')})"

    last = rows.filter(pl.col("order") == latest)
    previous = commits.filter(pl.col("order") < latest)
    st.caption(escape_markdown(
        f"Machine {machine}: {commits.height} recorded commit(s); the latest, {commit_text(head['commit'])}, "
        + (f"against the one before it, {commit_text(previous.row(-1, named=True)['commit'])}. "
           if previous.height else "is the first: nothing to compare it with yet. "))
        + f"Every benchmark is lower-is-better: regressed when it is worse by more than ×{TIME_FACTOR:g} (a time) "
          f"or ×{METRIC_FACTOR:g} (a result or memory), as `harness regress compare` flags it; a benchmark whose "
          "version changed (its code or declaration did) was re-baselined and is not comparable. "
          "The sidebar's filters apply to the store's pages, not to this one.")

    counts = dict(last.group_by("state").len().iter_rows())
    shown = [s for s in COUNTED] + [s for s in ("failed", "fixed") if counts.get(s)]
    for column, state in zip(st.columns(len(shown)), shown):
        column.metric(FLAGS[state], counts.get(state, 0))

    # The latest commit against each series' previous value.
    before = (rows.filter(pl.col("order") < latest).sort("order").group_by("name").last()
              .select("name", pl.col("value").alias("before_value"), pl.col("unit").alias("before_unit")))
    order = {state: i for i, state in enumerate(FLAGS)}
    table = (last.join(before, on="name", how="left")
             .with_columns(pl.col("state").replace_strict(order, default=len(order)).alias("_rank"))
             .sort("_rank", "pretty_name", "label"))
    st.subheader("Latest commit against the one before")
    regressed = table.filter(pl.col("state").is_in(["regressed", "failed"]))
    if regressed.height:
        st.error(escape_markdown(f"{regressed.height} regression(s) at {head['commit'][:8]}: "
                                 + "; ".join(regressed["name"].to_list())), icon=":material/trending_up:")
    else:
        st.success(escape_markdown(f"No regression at {head['commit'][:8]}."), icon=":material/check_circle:")
    frame = table.select(
        pl.col("state").replace_strict(FLAGS, default=pl.col("state")).alias("flag"),
        pl.col("pretty_name").alias("benchmark"),
        pl.col("label").alias("parameters"),
        pl.Series("before", [charts.human_value(v, u) if u is not None else "—"
                             for v, u in table.select("before_value", "before_unit").iter_rows()]),
        pl.Series("after", [charts.human_value(v, u) for v, u in table.select("value", "unit").iter_rows()]),
        pl.col("ratio"),
        pl.col("state"),
    )

    def highlight(row):  # a regression's row is tinted red (its flag in bold red), an improvement's green
        colour, ink = {"regressed": ("#fde2e4", "#9b1c1c"), "failed": ("#fde2e4", "#9b1c1c"),
                       "improved": ("#e3f4e6", "#1e6b30")}.get(row["state"], (None, None))
        if colour is None:
            return [""] * len(row)
        return [f"background-color: {colour}" + (f"; color: {ink}; font-weight: bold" if name == "flag" else "")
                for name in row.index]

    st.dataframe(
        frame.to_pandas().style.apply(highlight, axis=1), hide_index=True, key="regress_latest",
        column_order=["flag", "benchmark", "parameters", "before", "after", "ratio"],  # the flag is the state
        column_config={
            "flag": lbkit.text("flag", width=150, pinned=True),
            "benchmark": lbkit.text("benchmark", width="medium"),
            "parameters": lbkit.text("parameters", width="medium"),
            "before": lbkit.text("before", help="At the commit before (this series' last recorded value)."),
            "after": lbkit.text("after", help=f"At {head['commit'][:8]}."),
            "ratio": lbkit.number("ratio after / before", fmt="×%.3g", help="Above 1: worse (lower is better)."),
            "state": lbkit.text("state"),
        },
    )

    st.subheader("A benchmark over commits")
    worst = table.filter(pl.col("state").is_in(["regressed", "failed"]))["benchmark"].unique(maintain_order=True)
    names = dict(rows.select("benchmark", "pretty_name").unique("benchmark").iter_rows())
    options = [*worst.to_list(), *sorted(b for b in names if b not in set(worst.to_list()))]
    flagged = set(worst.to_list())
    benchmark = lbkit.pick("Benchmark", options, key="regress_benchmark", param="benchmark",
                           format_func=lambda b: f"{names.get(b, b)}" + ("  ▲ regressed" if b in flagged else ""))
    series = rows.filter(pl.col("benchmark") == benchmark)
    unit = series["unit"].drop_nulls().first() or ""
    lbkit.heading(names.get(benchmark, benchmark), level=3)
    st.caption("One line per parameter combination; x: the recorded commits in order. Red ▲: regressed "
               "against the commit before (its ratio beside it); green ▼: improved; grey dashed rule: re-baselined "
               "(the benchmark's version changed, so that commit is not compared); ✖: a combination failed. "
               "Hover a point for its value, ratio and state; click a legend entry to highlight it.")
    if series["value"].is_finite().any():
        lbkit.show_chart(charts.regression_chart(series, unit=unit, title=benchmark.rsplit(".", 1)[-1]),
                         key="regress_chart")
    else:
        st.info("No value of this benchmark to draw: every commit failed or skipped it.")
    changes = series.filter(~pl.col("state").is_in(["unchanged", "new"])).sort("order", "label")
    if changes.height:
        st.caption("Its changes between recorded commits (every state but unchanged):")
        st.dataframe(
            changes.select(
                pl.col("commit").str.slice(0, 8).alias("commit"),
                pl.Series("date", [when.get(c, "") for c in changes["commit"].to_list()]),
                pl.col("label").alias("parameters"),
                pl.Series("value", [charts.human_value(v, unit) for v in changes["value"].to_list()]),
                pl.col("ratio"),
                pl.col("state").replace_strict(FLAGS, default=pl.col("state")).alias("state"),
            ),
            hide_index=True, key="regress_changes",
            column_order=["commit", "date", *(["parameters"] if changes["label"].str.len_chars().max() else []),
                          "value", "ratio", "state"],
            column_config={"ratio": lbkit.number("ratio to the commit before", fmt="×%.3g"),
                           "parameters": lbkit.text("parameters", width="medium")},
        )
    else:
        st.caption("This benchmark never changed beyond its factor between recorded commits.")
