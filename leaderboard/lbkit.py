"""The leaderboard's shared pieces: settings, cached loading, filters, tables and charts.

Loading is cached per store path and a cheap fingerprint of the store (directory times and
entry counts), so a store that gains runs is re-read and an unchanged one never is. The raw
runs frame is a cache resource (no copy per rerun); aggregates are ``st.cache_data``.
The overview never reads traces.

Every string that comes from a store or a YAML file is data: it goes through ``st.dataframe``,
``st.text``, ``st.code`` or ``escape_markdown``, never through HTML.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import altair as alt
import polars as pl
import streamlit as st

from harness import charts, score
from harness.leaderboard import (
    ASV_RESULTS_ENV,
    CATALOG_ENV,
    STORE_ENV,
    escape_markdown,
    method_declarations,
    results_fingerprint,
    store_fingerprint,
)
from harness.record import NOT_RUN
from harness.store import DECLARATIONS_DIR, read_studies, scan_runs, scan_traces
from harness.tuning import without_trials

#: Sidebar filters: run column -> label.
FILTERS: dict[str, str] = {"suite": "Suite", "hardware": "Hardware profile", "framework": "Framework",
                           "task_family": "Task family"}
#: The sidebar's last caption once a page's script has finished: "page drawn in 1.2 s".
DRAWN = "page drawn in"
#: Rows shown at most in the runs explorer's table.
MAX_ROWS = 2000
#: Per-run files above which the overview suggests compacting the store.
COMPACT_HINT = 2000
#: Up to this many runs in view, the overview's few-seed aggregates come with their intervals as
#: the page opens; past it, on demand: their bootstrap costs ~0.4 s per method at 200 problems
#: (20 s at 100,000 runs), the point estimates milliseconds.
AUTO_INTERVAL_RUNS = 5_000

Filters = tuple[tuple[str, tuple[str, ...]], ...]


# -- settings ---------------------------------------------------------------------------------


def settings() -> tuple[Path, tuple[str, ...]]:
    """The store directory and extra catalog roots: ``-- --store DIR --catalog DIR`` or env."""
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--store")
    parser.add_argument("--catalog", action="append", default=[])
    args, _ = parser.parse_known_args(sys.argv[1:])
    store = args.store or os.environ.get(STORE_ENV) or "harness-store"
    env_roots = [r for r in os.environ.get(CATALOG_ENV, "").split(os.pathsep) if r]
    return Path(store), tuple(args.catalog or env_roots)


def asv_results() -> Path | None:
    """asv's results directory (the Regressions page's): ``-- --asv-results DIR`` or env; None: not given."""
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--asv-results")
    args, _ = parser.parse_known_args(sys.argv[1:])
    found = args.asv_results or os.environ.get(ASV_RESULTS_ENV)
    return Path(found) if found else None


def store_key() -> tuple[str, tuple[int, int, int, int]]:
    """The cache key of the store: its path and fingerprint (taken anew on every rerun)."""
    store, _ = settings()
    return str(store), store_fingerprint(store)


# -- cached loading ---------------------------------------------------------------------------


@st.cache_resource(max_entries=4, show_spinner=False)
def _runs(store: str, fingerprint: tuple[int, ...]) -> pl.DataFrame:
    # Every fixed column of the record: one an older store lacks reads as null (unflagged, no offline phase).
    # A tuning study's trials are its search (the Tuning page), not results: left out of every ranking.
    return score.with_run_columns(without_trials(scan_runs(store), read_studies(store)), metrics=()).collect()


@st.cache_resource(max_entries=4, show_spinner=False)
def _studies(store: str, fingerprint: tuple[int, ...]) -> list[dict[str, Any]]:
    return read_studies(store)


def studies() -> list[dict[str, Any]]:
    """The store's tuning studies (cached until the store changes)."""
    return _studies(*store_key())


@st.cache_resource(max_entries=4, show_spinner=False)
def _trial_runs(store: str, fingerprint: tuple[int, ...]) -> pl.DataFrame:
    ids = sorted({t["run_id"] for record in _studies(store, fingerprint) for t in record["trials"]})
    return scan_runs(store).filter(pl.col("run_id").is_in(ids)).collect()


def trial_runs() -> pl.DataFrame:
    """The rows of every study's trials (cached until the store changes)."""
    return _trial_runs(*store_key())


def runs() -> pl.DataFrame:
    """Every run of the store (cached until the store changes)."""
    return _runs(*store_key())


def filtered_runs(filters: Filters) -> pl.DataFrame:
    """The runs that pass the sidebar filters."""
    return _filter(runs(), filters)


def _filter(frame: pl.DataFrame, filters: Filters) -> pl.DataFrame:
    for column, values in filters:
        if values and column in frame.columns:
            frame = frame.filter(pl.col(column).is_in(list(values)))
    return frame


@st.cache_data(max_entries=32, show_spinner=False)
def _overview(store: str, fingerprint: tuple[int, ...], filters: Filters) -> dict[str, pl.DataFrame]:
    return score.overview_tables(_filter(_runs(store, fingerprint), filters))


def overview(filters: Filters) -> dict[str, pl.DataFrame]:
    """Medians, ratios, scores (with flagged runs and offline costs) and profiles of the
    filtered runs (no traces, no bootstrap)."""
    return _overview(*store_key(), filters)


@st.cache_data(max_entries=32, show_spinner=False)
def _task_table(store: str, fingerprint: tuple[int, ...], filters: Filters, task: str) -> pl.DataFrame:
    return score.task_table(_filter(_runs(store, fingerprint), filters).filter(pl.col("task") == task))


def task_table(filters: Filters, task: str) -> pl.DataFrame:
    """Ranked configurations of ``task`` with bootstrap intervals and ties."""
    return _task_table(*store_key(), filters, task)


@st.cache_data(max_entries=16, show_spinner=False)
def _method_table(store: str, fingerprint: tuple[int, ...], filters: Filters, method: str) -> pl.DataFrame:
    frame = _filter(_runs(store, fingerprint), filters)
    tasks = frame.filter(pl.col("method") == method)["task"].unique().to_list()
    table = score.task_table(frame.filter(pl.col("task").is_in(tasks)))
    sizes = table.group_by(*score.PROBLEM_KEYS).agg(pl.len().alias("configurations"))
    return table.join(sizes, on=list(score.PROBLEM_KEYS), how="left", nulls_equal=True).filter(
        pl.col("method") == method
    )


def method_table(filters: Filters, method: str) -> pl.DataFrame:
    """The task-table rows of ``method`` on every problem it ran, with the problem's size."""
    return _method_table(*store_key(), filters, method)


@st.cache_resource(max_entries=8, show_spinner=False)
def _task_traces(store: str, fingerprint: tuple[int, ...], filters: Filters, task: str) -> pl.DataFrame:
    ids = _filter(_runs(store, fingerprint), filters).filter(pl.col("task") == task)["run_id"].to_list()
    return scan_traces(store, ids).collect()


def task_traces(filters: Filters, task: str) -> pl.DataFrame:
    """The traces of the filtered runs of ``task``."""
    return _task_traces(*store_key(), filters, task)


@st.cache_data(max_entries=16, show_spinner=False)
def _run_trace(store: str, fingerprint: tuple[int, ...], run_id: str) -> pl.DataFrame:
    return scan_traces(store, [run_id]).collect().sort("step")


def run_trace(run_id: str) -> pl.DataFrame:
    """The trace of one run, by step."""
    return _run_trace(*store_key(), run_id)


@st.cache_data(max_entries=8, show_spinner=False)
def _ecdf(store: str, fingerprint: tuple[int, ...], filters: Filters, x: str,
          task: str | None) -> tuple[pl.DataFrame, pl.DataFrame]:
    frame = _filter(_runs(store, fingerprint), filters)
    if task is not None:  # only its runs' traces are read
        frame = frame.filter(pl.col("task") == task)
    traces = scan_traces(store, frame["run_id"].to_list())
    curve = score.ecdf(traces, frame, x=x)  # type: ignore[arg-type]
    solvers = frame.filter(~pl.col("status").is_in(NOT_RUN)).select(score.SOLVER_KEYS).unique()
    return charts.sample_steps(curve, points=200), score.ecdf_summary(curve, solvers=solvers)


def ecdf(filters: Filters, x: str, task: str | None = None) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Each solver's ECDF (over ``task``'s problems, or all) sampled at 200 log-spaced runtimes,
    and its summary with the problems each solver ran (reads traces)."""
    return _ecdf(*store_key(), filters, x, task)


@st.cache_data(max_entries=4, show_spinner=False)
def _regress_history(results_dir: str, fingerprint: tuple[int, ...]) -> pl.DataFrame:
    from harness.regress.results import history

    rows = history(results_dir)
    schema = {"machine": pl.String, "commit": pl.String, "date": pl.Int64, "benchmark": pl.String,
              "params": pl.String, "label": pl.String, "name": pl.String, "pretty_name": pl.String, "unit": pl.String,
              "kind": pl.String, "value": pl.Float64, "version": pl.String, "state": pl.String, "ratio": pl.Float64}
    frame = pl.DataFrame([{k: r[k] for k in schema} for r in rows], schema=schema, strict=False)
    return frame.with_columns(pl.when(pl.col("label") == "").then(pl.col("params")).otherwise(pl.col("label"))
                              .alias("label")).pipe(_commit_order)


def _commit_order(frame: pl.DataFrame) -> pl.DataFrame:
    """``order``: 1, 2, ... for each machine's commits, as history() lists them (by date)."""
    first = frame.with_row_index("_row").group_by("machine", "commit").agg(pl.col("_row").min())
    first = first.with_columns(pl.col("_row").rank("ordinal").over("machine").cast(pl.Int64).alias("order"))
    return frame.join(first.drop("_row"), on=["machine", "commit"], how="left")


def regress_history() -> pl.DataFrame | None:
    """Every recorded asv measurement, flagged against the commit before it
    (:func:`harness.regress.results.history`), with ``label`` (``n=10, framework=torch``) and
    ``order`` (the commit's position on its machine); cached until a commit is recorded.
    None: no results directory was given, or it holds no results."""
    results = asv_results()
    if results is None:
        return None
    fingerprint = results_fingerprint(results)
    if not fingerprint:
        return None
    frame = _regress_history(str(results), fingerprint)
    return None if frame.is_empty() else frame


@st.cache_resource(show_spinner=False)
def _declarations(roots: tuple[str, ...]) -> dict[str, dict[str, Any]]:
    return method_declarations(roots)


def declarations() -> dict[str, dict[str, Any]]:
    """Method declarations: the catalog's (built-in and ``--catalog`` roots), then those the store kept, cached.

    A bench keeps the declarations it ran in ``STORE/declarations`` (a catalog root's layout), so
    a method of the user's own catalog is shown without passing ``--catalog`` again.
    """
    store, roots = settings()
    return _declarations((*roots, str(store / DECLARATIONS_DIR)))


# -- filters ----------------------------------------------------------------------------------


def sidebar_filters() -> Filters:
    """The sidebar's filters (every value when none is picked)."""
    frame = runs()
    chosen = []
    for column, label in FILTERS.items():
        options = sorted(frame[column].drop_nulls().unique().to_list()) if column in frame.columns else []
        key = f"filter_{column}"
        if key not in st.session_state:  # a link's filters (?suite=ghost-spike): the page opens filtered
            linked = [v for v in st.query_params.get_all(column) if v in options]
            if linked:
                st.session_state[key] = linked
        picked = st.sidebar.multiselect(label, options, key=key, placeholder="all")
        if sorted(st.query_params.get_all(column)) != sorted(picked):
            st.query_params[column] = picked  # the URL names the filters, so a filtered view can be linked
        chosen.append((column, tuple(sorted(picked))))
    return tuple(chosen)


def current_filters() -> Filters:
    """The filters as the sidebar left them (for pages)."""
    return tuple((c, tuple(sorted(st.session_state.get(f"filter_{c}", [])))) for c in FILTERS)


def pick(label: str, options: Sequence[str], *, key: str, param: str, format_func: Any = str) -> str | None:
    """A selectbox that starts from, and writes back, the URL query parameter ``param``."""
    if not options:
        return None
    wanted = st.query_params.get(param)
    index = list(options).index(wanted) if wanted in options else 0
    if key in st.session_state and st.session_state[key] not in options:
        del st.session_state[key]
    choice = st.selectbox(label, options, index=index, key=key, format_func=format_func)
    if choice is not None and st.query_params.get(param) != choice:
        st.query_params[param] = choice
    return choice


# -- display helpers --------------------------------------------------------------------------


def heading(text: str, *, level: int = 2) -> None:
    """A heading whose text is shown literally (Markdown escaped)."""
    (st.header if level == 2 else st.subheader)(escape_markdown(text))


def loose_files() -> int:
    """How many runs of the store sit in per-run files (not yet compacted)."""
    store, _ = settings()
    try:
        with os.scandir(store / "runs") as entries:
            return sum(1 for e in entries if e.name.endswith(".parquet") and not e.name.startswith(("part-", ".")))
    except FileNotFoundError:
        return 0


def empty_notice(frame: pl.DataFrame) -> bool:
    """Say so and return True when ``frame`` has no runs."""
    if frame.is_empty():
        store, _ = settings()
        st.info("No runs to show: the store is empty, or the filters exclude every run.")
        st.text(f"store: {store}")
        return True
    return False


def number(label: str, *, fmt: str = "%.3g", help: str | None = None, pinned: bool | None = None) -> Any:
    """A read-only number column (``pinned``: stays in view when the table scrolls sideways)."""
    return st.column_config.NumberColumn(label, format=fmt, help=help, pinned=pinned)


def text(label: str, *, help: str | None = None, width: int | str | None = None, pinned: bool | None = None) -> Any:
    """A read-only text column (``width`` in pixels, or small / medium / large)."""
    return st.column_config.TextColumn(label, help=help, width=width, pinned=pinned)


def cost_columns(frame: pl.DataFrame) -> tuple[pl.DataFrame, list[str], dict[str, Any]]:
    """The flag and offline-cost columns of a table of aggregates (``n_clock_compiled``,
    ``clock_compile_s``, ``median_offline_s``, ``max_offline_s``), each only when some row has one.

    Returns the frame with ``clock_flag`` (``"⚠ 2 runs, 0.04 s"``) and ``offline``
    (``"12 (max 14)"`` or ``"—"``) added, their names, and their column configuration.
    """
    names: list[str] = []
    config: dict[str, Any] = {}
    if score.has_clock_flags(frame):
        frame = frame.with_columns(score.clock_flag_text("n_clock_compiled", "clock_compile_s").alias("clock_flag"))
        names.append("clock_flag")
        config["clock_flag"] = text(score.CLOCK_FLAG, help=score.CLOCK_FLAG_HELP, width=140)
    if score.has_offline(frame):
        frame = frame.with_columns(score.offline_text("median_offline_s", "max_offline_s").alias("offline"))
        names.append("offline")
        config["offline"] = text(score.OFFLINE, help=score.OFFLINE_HELP, width=110)
    return frame, names, config


def cost_notes(costs: Sequence[str]) -> None:
    """Captions explaining the columns :func:`cost_columns` added (none: nothing)."""
    if "clock_flag" in costs:
        st.caption(f"{score.CLOCK_FLAG}: runs whose timed region caught compilations (runs, seconds). "
                   + score.CLOCK_FLAG_HELP)
    if "offline" in costs:
        st.caption(f"{score.OFFLINE}: " + score.OFFLINE_HELP)


def clock_flag_notice(runs: pl.DataFrame, *, where: str = "in view", methods: bool = True,
                      skipped: bool = False) -> None:
    """A warning naming how many runs ``runs`` holds whose clock caught compilations, and (with
    ``methods``) of which methods; none: nothing. Of the runs that ran, unless ``skipped``."""
    if "clock_compiles" not in runs.columns:
        return
    if not skipped and "status" in runs.columns:  # as the scores count runs (skipped ones never ran)
        runs = runs.filter(~pl.col("status").is_in(NOT_RUN))
    flagged = runs.filter(pl.col("clock_compiles").fill_null(0) > 0)
    if flagged.is_empty():
        return
    seconds = float(flagged["clock_compile_s"].fill_null(0.0).sum())
    names = "; " + escape_markdown(", ".join(sorted(flagged["method"].unique().to_list()))) if methods else ""
    st.warning(f"Compiled in clock: {flagged.height} of {runs.height} runs {where} "
               f"({int(flagged['clock_compiles'].sum())} compilations, {seconds:.3g} s{names}). "
               f"{score.CLOCK_FLAG_HELP}", icon="⚠️")


# -- charts -----------------------------------------------------------------------------------


def show_chart(chart: alt.TopLevelMixin, *, key: str) -> None:
    """Render an altair chart full width."""
    st.altair_chart(chart, width="stretch", key=key)


def hyper_text(value: str | None) -> str:
    """Hyperparameters JSON as ``k=v`` pairs (plain text)."""
    import json

    try:
        data = json.loads(value) if value else {}
    except ValueError:
        return str(value)
    return ", ".join(f"{k}={v}" for k, v in data.items()) if isinstance(data, Mapping) else str(data)
