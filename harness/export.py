"""``harness export``: the leaderboard's views as one static, self-contained HTML page.

The page opens offline, from a file, attached to a paper or a pull request: the Vega,
Vega-Lite and vega-embed JavaScript (:func:`vl_convert.javascript_bundle`) is inlined once,
every chart's Vega-Lite specification (from :mod:`harness.charts`, data included) sits in a
``<script type="application/json">`` block that one small script embeds, and a
Content-Security-Policy lets the page fetch nothing (``default-src 'none'``: no script, style,
font, image or data URL but the page's own and ``data:``/``blob:`` images).

The numbers are the leaderboard's, computed by :mod:`harness.score` on every run of the store
(no filter): the overview's ranking by profile score, the performance profiles and ratios,
the few-seed aggregates (IQM, median and mean with their intervals), the ECDF of runtimes and
its summary, each task's ranking with intervals and ties, its convergence charts (one pair per
problem) and probe charts, its hardware and framework comparisons, and the failed and skipped
runs with their errors.

Every string from the store or a declaration is escaped (:func:`html.escape`) before it is
written into the page; inside the JSON blocks ``<``, ``>`` and ``&`` are ``\\u`` escapes, so a
method named ``<img src=x onerror=alert(1)>`` is text everywhere. Inline scripts are allowed by
their hashes only: an injected event handler would not run even if some text escaped.
"""

from __future__ import annotations

import base64
import datetime as _dt
import hashlib
import html
import json
import math
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import polars as pl

__all__ = ["export", "EMBED_OPTIONS"]

#: vega-embed's options: SVG (crisp when printed, countable in tests), export menu only (no
#: link to the online editor, no source view).
EMBED_OPTIONS: dict[str, Any] = {
    "renderer": "svg",
    "actions": {"export": True, "source": False, "compiled": False, "editor": False},
}
#: Points of the sampled ECDF (as the leaderboard).
ECDF_POINTS = 200
#: Metrics drawn per problem at most, for a task that measures no suboptimality.
MAX_METRICS = 3
#: Bootstrap resamples of the few-seed aggregates (as the leaderboard's overview).
AGGREGATE_REPS = 1000
#: The ECDF chart's y axis (as the leaderboard's ECDF page).
ECDF_Y_TITLE = "fraction of (run, target) pairs, mean over its problems ↑"
#: Height of a probe chart (as the leaderboard's task page).
PROBE_HEIGHT = 280

_BOOT = """\
(async () => {
  const options = JSON.parse(document.getElementById("embed-options").textContent);
  let failed = 0;
  for (const block of document.querySelectorAll("script.chart-spec")) {
    const target = document.getElementById(block.dataset.target);
    try {
      await vegaEmbed(target, JSON.parse(block.textContent), options);
      target.dataset.rendered = "ok";
    } catch (err) {
      failed += 1;
      target.dataset.rendered = "error";
      target.textContent = "This chart could not be drawn: " + err;
      console.error(err);
    }
  }
  document.body.dataset.charts = failed ? "failed" : "done";
})();
"""

_CSS = """\
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, Helvetica, Arial, sans-serif; margin: 0;
       color: #1f2328; background: #fff; font-size: 14px; line-height: 1.45; }
header { background: #0e1117; color: #fafafa; padding: 18px 32px; }
header h1 { margin: 0 0 4px; font-size: 24px; }
header p { margin: 0; color: #c9d1d9; }
nav { padding: 10px 32px; border-bottom: 1px solid #d0d7de; background: #f6f8fa; position: sticky; top: 0; z-index: 5; }
nav a { margin-right: 14px; color: #0969da; text-decoration: none; white-space: nowrap; }
nav a:hover { text-decoration: underline; }
main { padding: 8px 32px 48px; max-width: 1800px; }
section { margin-top: 28px; }
h2 { font-size: 21px; border-bottom: 1px solid #d0d7de; padding-bottom: 4px; margin: 32px 0 8px; }
h3 { font-size: 17px; margin: 22px 0 6px; }
h4 { font-size: 15px; margin: 16px 0 4px; }
h5 { font-size: 14px; margin: 12px 0 2px; color: #424a53; }
.caption { color: #59636e; font-size: 13px; margin: 4px 0 10px; max-width: 1100px; }
.notice { background: #fff8c5; border: 1px solid #d4a72c; border-radius: 6px; padding: 8px 12px; margin: 8px 0; }
.metrics { display: flex; gap: 28px; flex-wrap: wrap; margin: 12px 0; }
.metric { min-width: 120px; }
.metric .label { color: #59636e; font-size: 13px; }
.metric .value { font-size: 28px; }
.table-wrap { overflow-x: auto; margin: 6px 0 12px; border: 1px solid #d0d7de; border-radius: 6px; }
table { border-collapse: collapse; font-size: 13px; }
th, td { padding: 4px 7px; border-bottom: 1px solid #eaeef2; text-align: left; vertical-align: top; }
th { background: #f6f8fa; font-weight: 600; min-width: 4.5em; max-width: 12em; }
td { white-space: nowrap; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
td.long { white-space: normal; min-width: 8em; max-width: 16em; overflow-wrap: anywhere; }
tbody tr:hover { background: #f6f8fa; }
td pre { margin: 0; white-space: pre-wrap; word-break: break-word; max-width: 720px; font-size: 12px; }
.chart { width: 100%; min-height: 120px; }
.pair { display: grid; grid-template-columns: repeat(auto-fit, minmax(520px, 1fr)); gap: 18px; }
.stack > div { margin-bottom: 18px; }
.vega-embed { width: 100%; }
[id] { scroll-margin-top: 52px; }
@media print { nav { position: static; } .table-wrap { overflow: visible; } }
footer { color: #59636e; font-size: 12px; padding: 16px 32px; border-top: 1px solid #d0d7de; }
"""

Format = str  # "%d", "%.3f", "%.4g", "%.3e", "text", "long" (text that wraps) or "pre" (preformatted)
Column = tuple[str, str, Format]  # (frame column, header, format)


# -- formatting -------------------------------------------------------------------------------------


def _cell(value: Any, fmt: Format) -> str:
    """A cell's text, as the leaderboard shows it: ``%``-formatted numbers, ``inf`` for a failure, ``—`` for none."""
    if value is None:
        return "—"
    if fmt in ("text", "long", "pre") or isinstance(value, str):
        return str(value)
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if value != value:
            return "—"
        if value in (float("inf"), float("-inf")):
            return "inf" if value > 0 else "-inf"
        if fmt == "%d":
            return f"{value:.0f}"
    try:
        return fmt % value
    except (TypeError, ValueError):
        return str(value)


def _table(frame: pl.DataFrame, columns: Sequence[Column], *, css: str = "") -> str:
    """A plain HTML table of ``frame``'s ``columns`` (the present ones); every header and cell escaped."""
    present = [c for c in columns if c[0] in frame.columns]
    head = "".join(f"<th>{html.escape(header)}</th>" for _, header, _ in present)
    rows = []
    for row in frame.select([c[0] for c in present]).iter_rows():
        cells = []
        for value, (_, _, fmt) in zip(row, present):
            text = html.escape(_cell(value, fmt))
            if fmt == "pre":
                cells.append(f'<td class="long"><pre>{text}</pre></td>')
            elif fmt == "long":
                cells.append(f'<td class="long">{text}</td>')
            elif fmt == "text":
                cells.append(f"<td>{text}</td>")
            else:
                cells.append(f'<td class="num">{text}</td>')
        rows.append("<tr>" + "".join(cells) + "</tr>")
    cls = f' class="{css}"' if css else ""
    return (f'<div class="table-wrap"><table{cls}><thead><tr>{head}</tr></thead>'
            f"<tbody>{''.join(rows)}</tbody></table></div>")


def _text_columns(frame: pl.DataFrame) -> list[Column]:
    """Every column of ``frame`` as text (a pivoted table's solver columns: numbers formatted ``%.4g``)."""
    return [(c, c, "%.4g" if frame.schema[c].is_numeric() else "text") for c in frame.columns]


def _json_block(value: Any) -> str:
    """``value`` as JSON that is safe inside ``<script>``: no ``<``, ``>`` or ``&`` characters."""
    try:
        text = json.dumps(value, allow_nan=False, separators=(",", ":"), ensure_ascii=False)
    except ValueError:  # NaN or infinity somewhere: JSON has neither, JSON.parse would refuse the block
        text = json.dumps(_finite(value), allow_nan=False, separators=(",", ":"), ensure_ascii=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _finite(value: Any) -> Any:
    """``value`` with every non-finite float replaced by ``None`` (Vega reads it as a missing value)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def _escape(text: object) -> str:
    return html.escape(str(text))


# -- the page ---------------------------------------------------------------------------------------


class _Page:
    """The body's parts, in order, and the charts' specifications."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.charts = 0
        self.nav: list[tuple[str, str]] = []

    def add(self, markup: str) -> None:
        self.parts.append(markup)

    def heading(self, level: int, text: str, *, anchor: str | None = None, nav: str | None = None) -> None:
        ident = f' id="{anchor}"' if anchor else ""
        self.add(f"<h{level}{ident}>{_escape(text)}</h{level}>")
        if anchor and nav is not None:
            self.nav.append((anchor, nav))

    def caption(self, text: str) -> None:
        self.add(f'<p class="caption">{_escape(text)}</p>')

    def notice(self, text: str) -> None:
        self.add(f'<p class="notice">{_escape(text)}</p>')

    def chart(self, chart: Any, *, name: str) -> str:
        """A container for ``chart`` (an Altair chart) and its specification; returns the markup."""
        import altair as alt

        with alt.data_transformers.enable("default", max_rows=None):
            spec = chart.to_dict()
        spec = dict(spec)
        spec["width"] = "container"  # the page's column, as the leaderboard's width="stretch"
        spec.setdefault("autosize", {"type": "fit-x", "contains": "padding"})
        self.charts += 1
        ident = f"chart-{self.charts}"
        return (f'<div class="chart" id="{ident}" data-chart="{_escape(name)}"></div>'
                f'<script type="application/json" class="chart-spec" data-target="{ident}">{_json_block(spec)}</script>')


def export(
    store: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    title: str | None = None,
    catalog: Sequence[str | os.PathLike[str]] = (),
    n_boot: int = 2000,
) -> Path:
    """Write the static report of ``store`` to ``out/index.html``; return that file's path.

    ``catalog``: extra catalog roots for the methods' names (the built-in catalog and the
    declarations the store kept are read anyway). ``n_boot``: bootstrap resamples of the task
    tables' intervals (as the leaderboard: 2000).
    """
    from altair.utils._importers import vl_version_for_vl_convert

    from harness import score
    from harness.store import DECLARATIONS_DIR, scan_runs

    store_path = Path(store)
    out_dir = Path(out)
    runs = score.with_run_columns(scan_runs(store_path), metrics=()).collect()
    page = _Page()
    names = _method_names(store_path / DECLARATIONS_DIR, catalog)
    if runs.is_empty():
        page.notice("No runs to show: the store is empty.")
    else:
        _overview(page, runs, names)
        _ecdf(page, runs, store_path)
        _tasks(page, runs, store_path, n_boot=n_boot)
        _failed(page, runs)
    bundle = _javascript_bundle(vl_version_for_vl_convert())
    document = _document(page, title=title or f"harness report: {store_path.name or store_path}",
                         subtitle=f"store: {store_path}", bundle=bundle)
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / "index.html"
    partial = out_dir / ".index.html.partial"
    partial.write_text(document, encoding="utf-8")
    partial.replace(target)
    return target


def _javascript_bundle(vl_version: str) -> str:
    """vl-convert's Vega bundle for ``vl_version``, kept in the user's cache (building it takes seconds).

    Keyed by the vl-convert and Vega-Lite versions, so an upgrade builds a new one; a cache that
    cannot be read or written only costs the rebuild.
    """
    import vl_convert

    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "harness"
    path = cache / f"vega-bundle-{getattr(vl_convert, '__version__', 'unknown')}-{vl_version}.js"
    try:
        return path.read_text(encoding="utf-8")
    except OSError:
        pass
    bundle = vl_convert.javascript_bundle(vl_version=vl_version)
    try:
        cache.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(f".{os.getpid()}.partial")
        partial.write_text(bundle, encoding="utf-8")
        partial.replace(path)
    except OSError:
        pass
    return bundle


def _method_names(kept: Path, roots: Sequence[str | os.PathLike[str]]) -> dict[str, str]:
    from harness.leaderboard import method_declarations

    found = method_declarations((*roots, kept))
    return {m: str(d.get("name") or "") for m, d in found.items()}


def _csp_hash(script: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(script.encode("utf-8")).digest()).decode() + "'"


def _document(page: _Page, *, title: str, subtitle: str, bundle: str) -> str:
    if "</script" in bundle.lower():  # would end the inline script early
        raise ValueError("the Vega bundle holds '</script': it cannot be inlined")
    bundle_script = "\n" + bundle + "\n"
    boot_script = "\n" + _BOOT
    csp = ("default-src 'none'; "
           f"script-src {_csp_hash(bundle_script)} {_csp_hash(boot_script)} 'unsafe-eval'; "
           "style-src 'unsafe-inline'; img-src data: blob:; font-src 'none'; connect-src 'none'; "
           "base-uri 'none'; form-action 'none'; object-src 'none'")
    nav = "".join(f'<a href="#{anchor}">{_escape(text)}</a>' for anchor, text in page.nav)
    generated = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    try:
        from importlib.metadata import version

        made_by = f"harness {version('harness')}"
    except Exception:  # noqa: BLE001 - not installed as a distribution
        made_by = "harness"
    return "".join([
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n",
        f'<meta http-equiv="Content-Security-Policy" content="{csp}">\n',
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n',
        '<meta name="referrer" content="no-referrer">\n',
        f"<title>{_escape(title)}</title>\n<style>\n{_CSS}</style>\n</head>\n<body>\n",
        f"<header><h1>{_escape(title)}</h1><p>{_escape(subtitle)}; generated {generated} by {_escape(made_by)}; "
        "a static page: it opens offline and loads nothing.</p></header>\n",
        f"<nav>{nav}</nav>\n<main>\n",
        "\n".join(page.parts),
        "\n</main>\n",
        "<footer>Charts: click a legend entry to highlight a series, shift-click to add another, double-click "
        "the chart to reset; the … menu saves a chart as SVG or PNG.</footer>\n",
        f'<script type="application/json" id="embed-options">{_json_block(EMBED_OPTIONS)}</script>\n',
        f"<script>{bundle_script}</script>\n<script>{boot_script}</script>\n</body>\n</html>\n",
    ])


# -- sections ---------------------------------------------------------------------------------------


def _cost_columns(frame: pl.DataFrame) -> tuple[pl.DataFrame, list[Column]]:
    """The flag and offline-cost columns (each only when some row has one), as the leaderboard adds them."""
    from harness import score

    columns: list[Column] = []
    if score.has_clock_flags(frame):
        frame = frame.with_columns(score.clock_flag_text("n_clock_compiled", "clock_compile_s").alias("clock_flag"))
        columns.append(("clock_flag", score.CLOCK_FLAG, "text"))
    if score.has_offline(frame):
        frame = frame.with_columns(score.offline_text("median_offline_s", "max_offline_s").alias("offline"))
        columns.append(("offline", score.OFFLINE, "text"))
    return frame, columns


def _cost_captions(page: _Page, columns: Iterable[Column]) -> None:
    from harness import score

    names = {c[0] for c in columns}
    if "clock_flag" in names:
        page.caption(f"{score.CLOCK_FLAG}: runs whose timed region caught compilations (runs, seconds). "
                     + score.CLOCK_FLAG_HELP)
    if "offline" in names:
        page.caption(f"{score.OFFLINE}: " + score.OFFLINE_HELP)


def _metrics(page: _Page, items: Sequence[tuple[str, object]]) -> None:
    cells = "".join(f'<div class="metric"><div class="label">{_escape(k)}</div><div class="value">{_escape(v)}</div></div>'
                    for k, v in items)
    page.add(f'<div class="metrics">{cells}</div>')


def _overview(page: _Page, runs: pl.DataFrame, names: dict[str, str]) -> None:
    from harness import charts, score

    tables = score.overview_tables(runs)
    table, ratios, scores = tables["medians"], tables["ratios"], tables["scores"]

    page.add('<section id="overview">')
    page.heading(2, "Overview", anchor="overview", nav="Overview")
    _metrics(page, [
        ("Runs", int(table["n_runs"].sum())),
        ("Failed runs", int(table["n_failed"].sum())),
        ("Tasks", runs["task"].n_unique()),
        ("Methods", runs["method"].n_unique()),
        ("Problems with a target", ratios.select(score.PROBLEM_KEYS).unique().height),
    ])
    flagged = _flag_notice(runs)
    if flagged:
        page.notice(flagged)
    page.heading(3, "Ranking by performance-profile score")
    if scores.is_empty():
        page.notice("No task declares a target, so there is no time-to-target to profile. "
                    "The task sections rank by final suboptimality.")
    else:
        shown = scores.with_columns(
            pl.col("method").replace_strict(names, default="", return_dtype=pl.String).alias("name"))
        shown, costs = _cost_columns(shown)
        page.add(_table(shown, [
            ("rank", "rank", "%d"), ("method", "method", "text"), ("name", "name", "long"),
            ("framework", "framework", "text"), ("method_family", "family", "text"),
            ("score", score.LABELS["score"], "%.3f"), *costs,
            ("solved", score.LABELS["solved"], "%.2f"), ("wins", score.LABELS["wins"], "%.2f"),
            ("n_problems", "problems", "%d"), ("n_runs", "runs", "%d"),
            ("n_failed", score.LABELS["n_failed"], "%d"), ("n_skipped", "skipped", "%d"),
        ], css="ranking"))
        page.caption("Profile score: normalized area under the performance profile over τ in [1, 4]; solved: "
                     "problems whose target it reached; fastest: problems where it was fastest; failed: runs that "
                     "diverged, errored, timed out or ran out of memory.")
        _cost_captions(page, costs)
        page.heading(3, "Performance profiles")
        page.caption("ρ(τ): fraction of problems a method solves within τ times the best method's median "
                     "time-to-target. Failures and missing runs never reach the curve.")
        page.add(page.chart(charts.profile_chart(score.profile_steps(ratios)), name="profile"))
        page.heading(3, "Performance ratios per problem")
        page.caption("Median time-to-target over the best method's on the problem (1 = fastest; inf = target "
                     "not reached, failed or not run).")
        wide = ratios.with_columns(
            score.problem_labels(ratios),
            pl.format("{}/{}", "method", "framework").alias("solver"),
        ).pivot("solver", index="problem", values="ratio", aggregate_function="first").sort("problem")
        page.add(_table(wide, _text_columns(wide), css="ratios"))
        _aggregates(page, runs)
    untargeted = table.filter(~pl.col("has_target"))["task"].unique().sort().to_list()
    if untargeted:
        page.caption("Tasks without a target (not in the profiles): " + ", ".join(untargeted))
    page.add("</section>")


def _aggregates(page: _Page, runs: pl.DataFrame) -> None:
    """The few-seed aggregates (:func:`harness.aggregate.aggregates`): the table only; the probability
    of improvement of two picked solvers and the score profiles stay in the leaderboard."""
    from harness import aggregate

    page.heading(3, "Few-seed aggregates (rliable)")
    page.caption(aggregate.description(AGGREGATE_REPS))
    table = aggregate.aggregates(runs, reps=AGGREGATE_REPS, seed=0)
    if table.is_empty():
        page.notice("No run of a problem with a target.")
        return
    shown = aggregate.with_interval_texts(table)
    page.add(_table(shown, [
        ("method", "method", "text"), ("framework", "framework", "text"),
        ("iqm", "IQM ↑", "%.3f"), ("iqm_ci", "IQM 95% CI", "text"),
        ("median", "median ↑", "%.3f"), ("median_ci", "median 95% CI", "text"),
        ("mean", "mean ↑", "%.3f"), ("mean_ci", "mean 95% CI", "text"),
        ("n_problems", "problems", "%d"), ("n_runs", "runs per problem", "%d"),
        ("n_runs_left_out", "runs left out", "%d"),
    ], css="aggregates"))
    page.caption("problems: the problems with a target it ran; runs left out: runs beyond its smallest run count "
                 "on a problem (its last seeds). The probability of improvement of one method over another and "
                 "the score profiles are on the leaderboard's overview.")


def _flag_notice(runs: pl.DataFrame, *, where: str = "in the store") -> str:
    """The leaderboard's warning about runs whose clock caught compilations ('' when none)."""
    from harness import score
    from harness.record import NOT_RUN

    if "clock_compiles" not in runs.columns:
        return ""
    ran = runs.filter(~pl.col("status").is_in(NOT_RUN)) if "status" in runs.columns else runs
    flagged = ran.filter(pl.col("clock_compiles").fill_null(0) > 0)
    if flagged.is_empty():
        return ""
    seconds = float(flagged["clock_compile_s"].fill_null(0.0).sum())
    methods = ", ".join(sorted(flagged["method"].unique().to_list()))
    return (f"⚠ Compiled in clock: {flagged.height} of {ran.height} runs {where} "
            f"({int(flagged['clock_compiles'].sum())} compilations, {seconds:.3g} s; {methods}). "
            f"{score.CLOCK_FLAG_HELP}")


def _ecdf(page: _Page, runs: pl.DataFrame, store: Path) -> None:
    from harness import charts, score
    from harness.record import NOT_RUN
    from harness.store import scan_traces

    page.add('<section id="ecdf">')
    page.heading(2, "ECDF of runtimes", anchor="ecdf", nav="ECDF")
    page.caption("Problems: every task in the store. On each problem, the fraction of (run, target) pairs met by the "
                 "best-so-far suboptimality relative to the run's initial one (step 0), over 40 targets log-spaced "
                 "from 10^-0.2 to 1e-8: no target is met at the start. A hyperparameter sweep shows as its best "
                 "setting per problem (as in the profiles), over that configuration's own runs; failed runs count "
                 "as unmet. A solver's curve is the mean over the problems it ran, each weighing equally, not over "
                 "all problems: compare its problem count in the table. Runtime: time [s].")
    traces = scan_traces(store, runs["run_id"].to_list())
    curve = score.ecdf(traces, runs, x="time_s")
    solvers = runs.filter(~pl.col("status").is_in(NOT_RUN)).select(score.SOLVER_KEYS).unique()
    sampled = charts.sample_steps(curve, points=ECDF_POINTS)
    summary = score.ecdf_summary(curve, solvers=solvers)
    if sampled.is_empty():
        page.notice("Nothing to draw: no run met a suboptimality target after a positive runtime.")
    else:
        page.add(page.chart(charts.ecdf_chart(sampled, x_title="time [s] (log)", y_title=ECDF_Y_TITLE), name="ecdf"))
    if not summary.is_empty():
        page.add(_table(summary, [
            ("method", "method", "text"), ("framework", "framework", "text"),
            ("n_problems", score.LABELS["n_problems"], "%d"),
            ("ecdf_final", score.LABELS["ecdf_final"], "%.3f"), ("ecdf_area", score.LABELS["ecdf_area"], "%.3f"),
        ], css="ecdf-summary"))
        page.caption(f"{score.LABELS['n_problems']}: the problems (task, variant, hardware) the solver ran: its curve "
                     "is the mean over these. ECDF area: the area under the ECDF over log runtime, normalized.")
    page.add("</section>")


def _hyper_text(value: str | None) -> str:
    try:
        data = json.loads(value) if value else {}
    except ValueError:
        return str(value)
    return ", ".join(f"{k}={v}" for k, v in data.items()) if isinstance(data, dict) else str(data)


def _tasks(page: _Page, runs: pl.DataFrame, store: Path, *, n_boot: int) -> None:
    from harness import score
    from harness.store import scan_traces

    for index, task in enumerate(sorted(runs["task"].unique().to_list()), start=1):
        task_runs = runs.filter(pl.col("task") == task)
        family = task_runs["task_family"].drop_nulls().first() if "task_family" in task_runs.columns else None
        anchor = f"task-{index}"
        page.add(f'<section id="{anchor}" class="task">')
        page.heading(2, f"Task {task}" + (f"  ({family})" if family else ""), anchor=anchor, nav=task)
        _task_ranking(page, task_runs, n_boot=n_boot)
        traces = scan_traces(store, task_runs["run_id"].to_list()).collect()
        _convergence(page, task, task_runs, traces, score.metric_info(task_runs).get(task, {}))
        _hardware(page, task_runs)
        _frameworks(page, task_runs)
        page.add("</section>")


def _task_ranking(page: _Page, task_runs: pl.DataFrame, *, n_boot: int) -> None:
    from harness import score

    table = score.task_table(task_runs, n_boot=n_boot)
    page.heading(3, "Ranking")
    page.caption("Median over seeds with bootstrap 95% intervals. Ranked by time-to-target, then suboptimality "
                 "(or the target metric, in its direction, where no suboptimality is measured); 'rank (CI)' counts "
                 "only significantly better configurations (two-sided Mann-Whitney U test on the seeds at "
                 f"{score.SIGNIFICANCE_LEVEL:g}); a configuration with fewer than {score.MIN_SEEDS_FOR_SIGNIFICANCE} "
                 "seeds is not tested and has no ties. Failed runs count as infinite; a timeout keeps the value it "
                 "reached.")
    flagged = _flag_notice(task_runs, where="of this task")
    if flagged:
        page.notice(flagged)
    if table.is_empty():
        page.notice("No configuration to rank.")
        return
    unit = table["unit"].drop_nulls().first() or ""
    sub = f" [{unit}]" if unit else ""
    table = table.with_columns(
        score.problem_labels(table),
        pl.col("hyperparameters").map_elements(_hyper_text, return_dtype=pl.String),
    )
    table, costs = _cost_columns(table)
    page.add(_table(table, [
        ("problem", "problem", "text"), ("rank", "rank", "%d"), ("stat_rank", score.LABELS["stat_rank"], "%d"),
        ("label", "method", "long"), ("framework", "framework", "text"), ("hyperparameters", "hyperparameters", "long"),
        ("median_time_to_target_s", score.LABELS["median_time_to_target_s"], "%.4g"), *costs,
        ("time_to_target_lo", score.LABELS["time_to_target_lo"], "%.4g"),
        ("time_to_target_hi", score.LABELS["time_to_target_hi"], "%.4g"),
        ("median_suboptimality", score.LABELS["median_suboptimality"] + sub, "%.3e"),
        ("suboptimality_lo", score.LABELS["suboptimality_lo"] + sub, "%.3e"),
        ("suboptimality_hi", score.LABELS["suboptimality_hi"] + sub, "%.3e"),
        ("median_target_metric", score.LABELS["median_target_metric"], "%.4g"),
        ("tied_with", score.LABELS["tied_with"], "long"), ("significance", score.LABELS["significance"], "long"),
        ("n_runs", "runs", "%d"), ("n_reached", score.LABELS["n_reached"], "%d"),
        ("n_failed", score.LABELS["n_failed"], "%d"), ("failures", "failures", "long"), ("n_skipped", "skipped", "%d"),
    ], css="task-ranking"))
    _cost_captions(page, costs)


def _convergence(page: _Page, task: str, task_runs: pl.DataFrame, traces: pl.DataFrame,
                 info: dict[str, dict[str, object]]) -> None:
    """Per problem: median and band of the metric over time and steps (suboptimality, or, for a task
    that measures none, each of its declared metrics, as the leaderboard's metric picker offers them),
    one line per configuration, then the probe charts."""
    from harness import charts, score
    from harness.record import FAILED, NOT_RUN

    page.heading(3, "Convergence")
    metric_ids = sorted(info) or [m for m in ("suboptimality", "objective") if m in traces.columns]
    plotted = [m for m in metric_ids if m in traces.columns]
    if traces.is_empty() or not plotted:
        page.notice("No evaluation points were recorded for these runs.")
        return
    metrics = ["suboptimality"] if "suboptimality" in plotted else plotted[:MAX_METRICS]
    probes = score.probe_columns(traces, info)
    page.caption(f"{', '.join(metrics)}: one line per configuration (method, framework where several, and the "
                 "hyperparameters that vary): the median over seeds; the band spans the 10% to 90% quantiles. A run "
                 "that diverged stops where its value stops being finite. Over time and steps on log axes (the value "
                 "axis is logarithmic for suboptimality, whose values at or below zero sit on its floor, 1e-16, and "
                 "for the objective where every value is positive); one pair of charts per problem (task variant and "
                 "hardware profile)"
                 + (", then its probes over steps." if probes else "."))
    problems = task_runs.select(score.PROBLEM_KEYS).unique().sort(score.PROBLEM_KEYS, nulls_last=True)
    for label, key in zip(score.problem_labels(problems), problems.rows()):
        same = [pl.col(k).eq_missing(v) for k, v in zip(score.PROBLEM_KEYS, key)]
        problem_runs = task_runs.filter(pl.all_horizontal(same))
        problem_traces = traces.filter(pl.col("run_id").is_in(problem_runs["run_id"].implode()))
        page.heading(4, f"Problem {label}")
        traced = set(problem_traces["run_id"].unique().to_list())
        untraced = problem_runs.filter(~pl.col("run_id").is_in(list(traced)) & ~pl.col("status").is_in(NOT_RUN))
        if not untraced.is_empty():
            missing = untraced.group_by("method", "status").len().sort("method", "status")
            page.caption("No evaluation point (not plotted): " + ", ".join(
                f"{m} ({s}×{n})" for m, s, n in missing.iter_rows()))
        failed = problem_runs.with_columns(score.configuration_labels(problem_runs)).filter(
            pl.col("status").is_in(FAILED))
        if not failed.is_empty():
            counts = failed.group_by("label", "status").len().sort("label", "status")
            page.caption("Failed (the line ends at the failure): " + ", ".join(
                f"{lab} ({s}×{n})" for lab, s, n in counts.iter_rows()))
        if problem_traces.is_empty():
            page.notice("No evaluation points were recorded for this problem.")
            continue
        for metric in metrics:
            meta = info.get(metric, {})
            arrow = "↓" if meta.get("lower_is_better", True) else "↑"
            y_title = f"{metric} {arrow}" + (f" [{meta['unit']}]" if meta.get("unit") else "")
            pair, labels = [], []
            for axis, x_title in (("time_s", "time [s] (log)"), ("step", "step (log)")):
                bands = score.convergence_bands(problem_traces, problem_runs, value=metric, x=axis, grid="log")
                # As the leaderboard: suboptimality on a log axis always (at or below zero: on its floor),
                # the objective where every value is positive.
                log_y = metric == "suboptimality" or metric == "objective" and _positive(bands)
                chart = charts.band_chart(bands, x_title=x_title, y_title=y_title, log_x=True, log_y=log_y)
                pair.append(page.chart(chart, name=f"convergence {metric} {axis}"))
                labels += bands["label"].unique().to_list()
            page.add(_grid(pair, labels))
        _probes(page, probes, problem_traces, problem_runs)


def _probes(page: _Page, probes: Sequence[str], traces: pl.DataFrame, runs: pl.DataFrame) -> None:
    """One problem's probe charts over steps, as the leaderboard's task page draws them: the declared
    unit, axis and reference line (:func:`harness.probes.probe_output`), the description as a caption."""
    from harness import charts, score
    from harness.probes import probe_output

    cells, labels = [], []
    for probe in probes:
        bands = score.convergence_bands(traces, runs, value=probe, x="step", grid="log")
        if bands.is_empty():  # the column is the store's, not this problem's: nothing recorded here
            continue
        output = probe_output(probe)
        y_title = probe + (f" [{output.unit}]" if output is not None else "")
        log_y = output.log if output is not None else False
        text = ""
        if output is not None:
            text = f"{probe}: {output.description}" + (
                f"; the dashed line: {output.reference_text}" if output.reference is not None else "")
        chart = charts.band_chart(bands, x_title="step (log)", y_title=y_title, log_x=True, log_y=log_y,
                                  references=charts.probe_references(output, bands), height=PROBE_HEIGHT)
        caption = f'<p class="caption">{_escape(text)}</p>' if text else ""
        cells.append(caption + page.chart(chart, name=f"probe {probe}"))
        labels += bands["label"].unique().to_list()
    if cells:
        page.add("<h5>Probes</h5>")
        page.add(_grid(cells, labels))


#: Half the page's width at 1400 px that a chart's legend may take (the legend's columns are laid out
#: for the full width, :mod:`harness.charts`): wider legends put their charts one per row.
_HALF_LEGEND_PX = 600


def _grid(cells: Sequence[str], labels: Sequence[str]) -> str:
    """Charts side by side (two per row on a wide page) when their legend of ``labels`` fits half the
    width, else one per row at the full width (a sweep's long labels would be clipped)."""
    distinct = set(labels)
    longest = max((len(label) for label in distinct), default=0)
    columns = min(4, len(distinct))
    fits = len(distinct) < 2 or columns * (7 * longest + 50) <= _HALF_LEGEND_PX
    return f'<div class="{"pair" if fits else "stack"}">' + "".join(f"<div>{c}</div>" for c in cells) + "</div>"


def _positive(bands: pl.DataFrame) -> bool:
    """Whether every finite value of ``bands`` is positive (a log axis shows them all)."""
    values = pl.concat([bands[c] for c in ("median", "lo", "hi")]).drop_nulls()
    values = values.filter(values.is_finite())
    return values.is_empty() or bool((values > 0).all())


def _hardware(page: _Page, task_runs: pl.DataFrame) -> None:
    """The task's runs on several hardware profiles: times per step and speed-ups (:func:`harness.score.hardware_speedups`)."""
    from harness import charts, score

    page.heading(3, "Hardware comparison")
    speedups = score.hardware_speedups(task_runs)
    if speedups.is_empty():
        page.caption("These runs use one hardware profile; no comparison.")
        return
    speedups = score.comparison_labels(speedups, group="hardware")
    page.caption("Per configuration: the median time per step on each profile and the speed-up over the baseline "
                 "profile (its median over this one's; > 1: faster). Bars side by side, log axis.")
    bars = speedups.filter(pl.col("speedup_per_step") != 1.0)
    if not bars.is_empty():
        page.add(page.chart(charts.speedup_chart(bars, value="speedup_per_step", group="hardware",
                                                 x_title="speed-up per step over the baseline ↑ [×] (log)"),
                            name="hardware speed-up"))
    page.add(_table(speedups, [
        ("variant", "task variant", "text"), ("label", "configuration", "text"), ("hardware", "hardware", "text"),
        ("median_time_per_step_s", "time per step ↓ [s]", "%.3e"), ("speedup_per_step", "speed-up per step ↑ [×]", "%.2f"),
        ("median_time_to_target_s", score.LABELS["median_time_to_target_s"], "%.4g"),
        ("speedup_time_to_target", "speed-up to target ↑ [×]", "%.2f"),
    ], css="hardware"))


def _frameworks(page: _Page, task_runs: pl.DataFrame) -> None:
    """The task's configurations run in several frameworks: do they agree, and which is faster
    (:func:`harness.score.framework_comparison`)."""
    from harness import charts, score

    page.heading(3, "Framework comparison")
    agreement = score.framework_comparison(task_runs)
    if agreement.is_empty():
        page.caption("No configuration of this task ran in more than one framework.")
        return
    agreement = score.comparison_labels(agreement, group="framework")
    page.caption("The same configuration in each framework: the median final values of the runs that did not fail, "
                 "their relative difference to torch's (the same algorithm on the same data should agree to "
                 "rounding), and the speed-up per step over torch (> 1: faster).")
    values = [c.removeprefix("median_") for c in agreement.columns
              if c.startswith("median_") and c != "median_time_per_step_s"]
    others = agreement.filter(pl.col("framework") != "torch")
    if not others.is_empty():
        page.add(page.chart(charts.speedup_chart(others, value="speedup_per_step", group="framework",
                                                 x_title="speed-up per step over torch ↑ [×] (log)"),
                            name="framework speed-up"))
    page.add(_table(agreement, [
        ("label", "configuration", "text"), ("framework", "framework", "text"), ("n_runs", "runs", "%d"),
        *[c for v in values for c in ((f"median_{v}", f"final {v}", "%.6e"),
                                      (f"rel_diff_{v}", f"{v}: rel. diff. to torch ↓", "%.1e"))],
        ("median_time_per_step_s", "time per step ↓ [s]", "%.3e"),
        ("speedup_per_step", "speed-up per step over torch ↑ [×]", "%.2f"),
    ], css="frameworks"))


#: Columns of the failed-runs table.
_FAILED: list[Column] = [
    ("task", "task", "text"), ("method", "method", "text"), ("framework", "framework", "text"),
    ("hardware", "hardware", "text"), ("seed", "seed", "%d"), ("status", "status", "text"),
    ("steps", "steps", "%d"), ("error", "error", "pre"), ("run_id", "run_id", "text"),
]


def _failed(page: _Page, runs: pl.DataFrame) -> None:
    from harness.record import NO_RESULT, NOT_RUN, Status

    page.add('<section id="failed">')
    page.heading(2, "Failed and skipped runs", anchor="failed", nav="Failed runs")
    failed = runs.filter(pl.col("status").is_in([*NO_RESULT, Status.DIVERGED]))
    failed = failed.sort("task", "method", "framework", "hardware", "seed", nulls_last=True)
    page.caption(f"{failed.height} of {runs.height} runs failed: they diverged, errored, timed out or ran out of "
                 "memory, and count as infinite suboptimality and time to target.")
    if not failed.is_empty():
        page.add(_table(failed, _FAILED, css="failed"))
    skipped = runs.filter(pl.col("status").is_in(list(NOT_RUN))).sort("task", "method", "framework", "hardware",
                                                                        "seed", nulls_last=True)
    if not skipped.is_empty():
        page.heading(3, f"Skipped ({skipped.height} runs, not run: no sample)")
        page.add(_table(skipped, _FAILED, css="skipped"))
    page.add("</section>")
