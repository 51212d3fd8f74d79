"""The leaderboard's charts as Altair (Vega-Lite) specifications, with no Streamlit import.

The Streamlit pages and the static report of ``harness export`` draw the same charts from
here. Each chart draws one line (or bar) per *series*, named by the frame's ``label`` column: a
solver (``method``, plus ``/framework`` where several frameworks share the chart) or a
configuration (plus the hyperparameters that vary within its method, see
:func:`harness.score.configuration_labels`).

Colours are assigned by the series' sorted index into :data:`PALETTE`, so every series of a
chart has its own colour up to ``len(PALETTE)`` series (past that, colours repeat with a
different dash); the legend is a selector: click a series to highlight it, shift-click to add
another, double-click the chart to reset.

Examples
--------
>>> import polars as pl
>>> frame = pl.DataFrame({"label": ["b", "a", "c"]})
>>> series_colours(frame["label"].to_list())
{'a': '#1f77b4', 'b': '#ff7f0e', 'c': '#2ca02c'}
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import altair as alt
import numpy as np
import polars as pl

if TYPE_CHECKING:
    from harness.probes import ProbeOutput

__all__ = [
    "LOG_FLOOR",
    "PALETTE",
    "band_chart",
    "ecdf_chart",
    "probe_references",
    "profile_chart",
    "sample_steps",
    "score_profile_chart",
    "sensitivity_chart",
    "series_colours",
    "solver_labels",
    "log_axis",
    "spans_decades",
    "speedup_chart",
    "display_unit",
    "human_value",
    "regression_chart",
    "regression_points",
]

#: Twenty categorical colours, the most distinct first: Tableau 10, then ten darker hues that
#: differ from all of them (no two of the twenty are light and dark shades of one hue side by side).
PALETTE: tuple[str, ...] = (
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
    "#bcbd22", "#17becf", "#393b79", "#843c39", "#637939", "#7b4173", "#8c6d31", "#005f5f",
    "#b5179e", "#3a0ca3", "#6b4e16", "#000000",
)
#: Dash patterns: solid, then dashed and dotted (a framework, or a second round of colours).
DASHES: tuple[tuple[int, ...], ...] = ((1, 0), (6, 3), (2, 2), (8, 2, 2, 2))
#: Floor of log-scaled values (zero and negative values sit on it).
LOG_FLOOR = 1e-16
#: Opacity of the series the legend did not select.
_FADED = 0.12
#: The legend below the plot: the width it may take, a label's limit and the height of a row, in pixels.
_LEGEND_WIDTH_PX = 1100
_LABEL_LIMIT_PX = 420
_LEGEND_ROW_PX = 22


def _legend_columns(labels: Sequence[str]) -> int:
    """As many legend columns as the longest label leaves room for (1 to 4)."""
    longest = min(_LABEL_LIMIT_PX, 7 * max((len(label) for label in labels), default=1)) + 50
    return max(1, min(4, len(labels), _LEGEND_WIDTH_PX // longest))


def _height(plot: int, frame: pl.DataFrame) -> int:
    """The chart's height: the plot's plus its legend's (Streamlit fits legend and plot into the height)."""
    labels = frame["label"].unique().to_list()
    if len(labels) < 2:
        return plot
    rows = -(-len(labels) // _legend_columns(labels))
    return plot + 60 + rows * _LEGEND_ROW_PX


def series_colours(labels: Sequence[str]) -> dict[str, str]:
    """Each distinct label's colour: :data:`PALETTE` by its sorted index (cycling past 20)."""
    domain = sorted(set(labels))
    return {label: PALETTE[i % len(PALETTE)] for i, label in enumerate(domain)}


def solver_labels(frame: pl.DataFrame) -> pl.Series:
    """A solver's label: ``method``, or ``method/framework`` when ``frame`` holds several frameworks."""
    several = "framework" in frame.columns and frame["framework"].n_unique() > 1
    if several:
        return pl.Series("label", [f"{m}/{f}" for m, f in frame.select("method", "framework").rows()], dtype=pl.String)
    return frame["method"].cast(pl.String).rename("label")


def _with_labels(frame: pl.DataFrame) -> pl.DataFrame:
    return frame if "label" in frame.columns else frame.with_columns(solver_labels(frame))


def _series(frame: pl.DataFrame, *, title: str = "series") -> tuple[dict[str, Any], Any]:
    """Colour, dash and selector encodings of the ``label`` series, and the legend selection."""
    labels = frame["label"].to_list()
    colours = series_colours(labels)
    domain = list(colours)
    frameworks: dict[str, str] = {}
    if "framework" in frame.columns:
        frameworks = dict(frame.select("label", "framework").unique(subset="label").rows())
    kinds = sorted(set(frameworks.values()), key=lambda f: (f != "torch", str(f)))
    if len(kinds) > 1:  # a framework's runs share a dash
        dashes = [DASHES[kinds.index(frameworks[label]) % len(DASHES)] for label in domain]
    else:  # past the palette, the next round of colours is dashed
        dashes = [DASHES[(i // len(PALETTE)) % len(DASHES)] for i in range(len(domain))]
    selection = alt.selection_point(fields=["label"], bind="legend")
    # Below the plot, in columns: a long legend (a sweep's labels) never squeezes the plot itself.
    legend = alt.Legend(title=f"{title} (click: highlight; shift-click: several)", orient="bottom",
                        columns=_legend_columns(domain), symbolType="stroke", symbolStrokeWidth=3,
                        symbolSize=320, titleLimit=600,
                        labelLimit=_LABEL_LIMIT_PX, labelFontSize=12, symbolOpacity=1, columnPadding=18,
                        symbolLimit=0)  # every series listed (Vega's default stops at 30)
    if len(domain) < 2:  # one series: its name is the axis title
        legend = None
    encodings = {
        "color": alt.Color("label:N", scale=alt.Scale(domain=domain, range=[colours[d] for d in domain]),
                           legend=legend),
        "strokeDash": alt.StrokeDash("label:N", scale=alt.Scale(domain=domain, range=[list(d) for d in dashes]),
                                     legend=legend),
        "opacity": alt.condition(selection, alt.value(1.0), alt.value(_FADED)),
    }
    return encodings, selection


def _axis_scale(log: bool, **kwargs: Any) -> alt.Scale:
    return alt.Scale(type="log", **kwargs) if log else alt.Scale(zero=False, **kwargs)


def _decades(values: pl.DataFrame, columns: Sequence[str]) -> alt.Axis:
    """A log axis with a tick and grid line per decade (every second, third... past 10 decades), as ``1e-8``."""
    finite = pl.concat([values[c] for c in columns]).drop_nulls()
    finite = finite.filter(finite.is_finite() & (finite > 0))
    if finite.is_empty():
        return alt.Axis(format="~e")
    lo, hi = int(np.floor(np.log10(finite.min()))), int(np.ceil(np.log10(finite.max())))
    step = max(1, -(-(hi - lo) // 10))
    return alt.Axis(values=[10.0**k for k in range(lo, hi + 1, step)], format="~e")


def profile_chart(profiles: pl.DataFrame, *, tau_max: float = 4.0) -> alt.Chart:
    """Dolan-More profiles: rho(tau) over tau in [1, ``tau_max``], one step line per solver."""
    data = _with_labels(profiles)
    encodings, selection = _series(data, title="solver")
    return (
        alt.Chart(data)
        .mark_line(interpolate="step-after", strokeWidth=2.2)
        .encode(
            x=alt.X("tau:Q", title="τ (time-to-target / best)", scale=alt.Scale(domain=[1, tau_max])),
            y=alt.Y("rho:Q", title="ρ(τ): fraction of problems ↑", scale=alt.Scale(domain=[0, 1])),
            tooltip=["label:N", alt.Tooltip("tau:Q", format=".3f"), alt.Tooltip("rho:Q", format=".3f")],
            **encodings,
        )
        .add_params(selection)
        .properties(height=_height(340, data))
    )


def band_chart(
    bands: pl.DataFrame,
    *,
    x_title: str,
    y_title: str,
    log_x: bool = False,
    log_y: bool = False,
    references: pl.DataFrame | None = None,
    height: int = 340,
) -> alt.LayerChart:
    """Median line and quantile band per series (``label``, ``x``, ``median``, ``lo``, ``hi``, ``n``).

    On a log ``x`` axis the points at ``x <= 0`` are left out (step 0, time 0); on a log ``y``
    axis values are floored at :data:`LOG_FLOOR`. ``references`` (``value``, ``text``, and
    optionally ``label``) draws horizontal rules: a series' own (in its colour) or, without a
    label, one for all (black, dashed, with its text).
    """
    data = _with_labels(bands).with_columns([_plottable(pl.col(c), log_y).alias(c) for c in ("median", "lo", "hi")])
    if log_x:
        data = data.filter(pl.col("x") > 0)
    encodings, selection = _series(data)
    x = alt.X("x:Q", title=x_title, scale=_axis_scale(log_x, nice=not log_x))  # a log axis ends where the data do
    base = alt.Chart(data).encode(x=x, color=encodings["color"], opacity=encodings["opacity"])
    axis = _decades(data, ("median", "lo", "hi")) if log_y else alt.Axis()
    band = base.mark_area(fillOpacity=0.16, strokeWidth=0).encode(
        y=alt.Y("lo:Q", scale=_axis_scale(log_y), title=y_title, axis=axis), y2="hi:Q"
    )
    line = base.mark_line(strokeWidth=2.2).encode(
        y=alt.Y("median:Q", scale=_axis_scale(log_y), title=y_title, axis=axis),
        strokeDash=encodings["strokeDash"],
        tooltip=["label:N", alt.Tooltip("x:Q", title=x_title, format=".4g"),
                 alt.Tooltip("median:Q", format=".4g"), alt.Tooltip("lo:Q", format=".4g"),
                 alt.Tooltip("hi:Q", format=".4g"), alt.Tooltip("n:Q", title="runs")],
    ).add_params(selection)
    layers: list[Any] = [band, line]
    if references is not None and not references.is_empty():
        layers += _reference_layers(references, data, encodings)
    return alt.layer(*layers).properties(height=_height(height, data))


def probe_references(output: ProbeOutput | None, bands: pl.DataFrame) -> pl.DataFrame | None:
    """The ``references`` of :func:`band_chart` for a probe drawn from ``bands``: its declared line
    for all (``r = 1``), or one per configuration (``2 / lr`` from each ``hyperparameters``); None: none."""
    if output is None or output.reference is None:
        return None
    if output.reference_over is None:
        return pl.DataFrame({"value": [output.reference], "text": [output.reference_text]})
    rows = []
    for label, hyperparameters in bands.select("label", "hyperparameters").unique().sort("label").rows():
        value = output.reference_value(json.loads(hyperparameters) if hyperparameters else {})
        if value is not None:
            rows.append({"label": label, "value": value, "text": f"{output.reference_text} = {value:.4g}"})
    return pl.DataFrame(rows, schema={"label": pl.String, "value": pl.Float64, "text": pl.String}) if rows else None


def _reference_layers(references: pl.DataFrame, data: pl.DataFrame, encodings: dict[str, Any]) -> list[Any]:
    """Horizontal rules: per series (its colour, dotted) and for all (black, dashed, labelled)."""
    layers: list[Any] = []
    if "label" not in references.columns:
        references = references.with_columns(pl.lit(None, pl.String).alias("label"))
    own = references.filter(pl.col("label").is_in(data["label"].unique().implode()))
    if not own.is_empty():
        layers.append(
            alt.Chart(own).mark_rule(strokeDash=[2, 3], strokeWidth=1.6)
            .encode(y="value:Q", color=encodings["color"], opacity=encodings["opacity"],
                    tooltip=["label:N", "text:N", alt.Tooltip("value:Q", format=".4g")])
        )
    common = references.filter(pl.col("label").is_null())
    if not common.is_empty():
        rule = alt.Chart(common).mark_rule(color="black", strokeDash=[6, 4], strokeWidth=1.4).encode(
            y="value:Q", tooltip=["text:N", alt.Tooltip("value:Q", format=".4g")])
        text = alt.Chart(common).mark_text(align="right", baseline="bottom", dx=-4, dy=-3, fontSize=13,
                                           fontWeight="bold").encode(
            y="value:Q", x=alt.value("width"), text="text:N")  # at the right end, clear of the curves' start
        layers += [rule, text]
    return layers


def _plottable(column: pl.Expr, log: bool) -> pl.Expr:
    finite = pl.when(column.is_finite()).then(column)
    return finite.clip(lower_bound=LOG_FLOOR) if log else finite


def ecdf_chart(sampled: pl.DataFrame, *, x_title: str, y_title: str = "fraction of (run, target) pairs ↑") -> alt.Chart:
    """ECDF step lines over a log runtime axis (of a curve sampled by :func:`sample_steps`)."""
    data = _with_labels(sampled)
    encodings, selection = _series(data, title="solver")
    return (
        alt.Chart(data)
        .mark_line(interpolate="step-after", strokeWidth=2.2)
        .encode(
            x=alt.X("x:Q", title=x_title, scale=alt.Scale(type="log")),
            y=alt.Y("fraction:Q", title=y_title, scale=alt.Scale(domain=[0, 1])),
            tooltip=["label:N", alt.Tooltip("x:Q", format=".4g"), alt.Tooltip("fraction:Q", format=".3f")],
            **encodings,
        )
        .add_params(selection)
        .properties(height=_height(340, data))
    )


def sample_steps(curve: pl.DataFrame, *, points: int, keys: Sequence[str] = ("method", "framework")) -> pl.DataFrame:
    """Sample each series' step function (``keys``, ``x``, ``fraction``) at log-spaced positive x (keeps charts small)."""
    positive = curve.filter(pl.col("x") > 0)
    if positive.is_empty():
        return positive
    grid = np.unique(np.geomspace(positive["x"].min(), positive["x"].max(), points))
    series = curve.select(keys).unique()
    left = series.join(pl.DataFrame({"x": grid}), how="cross").sort("x")
    sampled = left.join_asof(curve.sort("x"), on="x", by=list(keys), strategy="backward", check_sortedness=False)
    return sampled.with_columns(pl.col("fraction").fill_null(0.0)).sort(*keys, "x")


def speedup_chart(table: pl.DataFrame, *, value: str, group: str, x_title: str) -> alt.Chart:
    """Grouped bars of ``value`` (a speed-up ratio) per series ``label``, one bar per ``group``
    (a hardware profile, a framework) side by side, with a rule at 1 (no speed-up); log axis."""
    data = table.filter(pl.col(value).is_finite() & (pl.col(value) > 0)).with_columns(pl.lit(1.0).alias("_one"))
    groups = sorted(data[group].unique().to_list())
    colours = [PALETTE[i % len(PALETTE)] for i in range(len(groups))]
    bars = (
        alt.Chart(data)
        .mark_bar()
        .encode(
            x=alt.X(f"{value}:Q", title=x_title, scale=alt.Scale(type="log")),
            x2="_one:Q",  # a bar runs from 1 (no speed-up) to its ratio: a log axis has no zero
            y=alt.Y("label:N", title=None, axis=alt.Axis(labelLimit=360)),
            yOffset=alt.YOffset(f"{group}:N"),
            color=alt.Color(f"{group}:N", scale=alt.Scale(domain=groups, range=colours), title=group),
            tooltip=["label:N", f"{group}:N", alt.Tooltip(f"{value}:Q", format=".3f")],
        )
    )
    one = alt.Chart(pl.DataFrame({"one": [1.0]})).mark_rule(color="black", strokeDash=[4, 3]).encode(x="one:Q")
    rows = max(data["label"].n_unique(), 1)
    return alt.layer(bars, one).properties(height=max(120, rows * (14 * max(len(groups), 1) + 10)))


def score_profile_chart(profiles: pl.DataFrame) -> alt.LayerChart:
    """Score distributions (``rliable``): the fraction of runs with score > tau, one step line per
    solver with its confidence band (``method``, ``framework``, ``tau``, ``fraction``, ``lo``, ``hi``:
    :func:`harness.aggregate.score_profiles`)."""
    data = _with_labels(profiles)
    encodings, selection = _series(data, title="solver")
    x = alt.X("tau:Q", title="τ (score s = best median time / run time)")
    base = alt.Chart(data).encode(x=x, color=encodings["color"], opacity=encodings["opacity"])
    band = base.mark_area(interpolate="step-after", fillOpacity=0.16, strokeWidth=0).encode(
        y=alt.Y("lo:Q", title="fraction of runs with score > τ ↑", scale=alt.Scale(domain=[0, 1])), y2="hi:Q"
    )
    line = base.mark_line(interpolate="step-after", strokeWidth=2.2).encode(
        y=alt.Y("fraction:Q", title="fraction of runs with score > τ ↑", scale=alt.Scale(domain=[0, 1])),
        strokeDash=encodings["strokeDash"],
        tooltip=["label:N", alt.Tooltip("tau:Q", format=".3f"), alt.Tooltip("fraction:Q", format=".3f"),
                 alt.Tooltip("lo:Q", title="CI low", format=".3f"), alt.Tooltip("hi:Q", title="CI high", format=".3f")],
    ).add_params(selection)
    return alt.layer(band, line).properties(height=_height(340, data))


# -- asv's results over commits (the leaderboard's Regressions page) --------------------------

#: asv's units shown with a prefix: unit -> (divisor, shown unit), largest first.
_SCALED_UNITS: dict[str, tuple[tuple[float, str], ...]] = {
    "seconds": ((1.0, "s"), (1e-3, "ms"), (1e-6, "µs"), (1e-9, "ns")),
    "bytes": ((1e12, "TB"), (1e9, "GB"), (1e6, "MB"), (1e3, "kB"), (1.0, "B")),
}
#: Values whose largest is this many times their smallest (two decades) get a log axis.
_LOG_SPAN = 100.0


def log_axis(values: pl.Series, *, lower_is_better: bool = True) -> bool:
    """Whether a metric's chart defaults to a log y axis: a lower-is-better metric whose values span decades.

    A higher-is-better score (an overlap, a success rate, pass@1) climbs to its ceiling: a linear
    axis shows that, where a log one stretches its random start.

    Examples
    --------
    >>> log_axis(pl.Series([1e-4, 0.5, 1.0])), log_axis(pl.Series([1e-4, 0.5, 1.0]), lower_is_better=False)
    (True, False)
    """
    return lower_is_better and spans_decades(values)


def spans_decades(values: pl.Series) -> bool:
    """Whether ``values``' finite ones are all positive and span two decades or more: the rule for a log axis.

    Examples
    --------
    >>> spans_decades(pl.Series([0.5, 10.0, 60.0]))
    True
    >>> spans_decades(pl.Series([12.0, 20.0])), spans_decades(pl.Series([-1.0, 500.0]))
    (False, False)
    """
    finite = values.cast(pl.Float64).filter(values.cast(pl.Float64).is_finite())
    return finite.len() > 0 and float(finite.min()) > 0 and float(finite.max()) / float(finite.min()) >= _LOG_SPAN


#: The flags' colours: regressed (red) and improved (green); a re-baseline's rule is grey.
REGRESSED_COLOUR = "#c1121f"
IMPROVED_COLOUR = "#2a9d3f"


def display_unit(unit: str, values: Sequence[float | None]) -> tuple[float, str]:
    """The divisor and unit that show ``values`` (in asv's ``unit``) readably.

    Seconds and bytes take the largest prefix under which the median of the positive finite values
    is at least 1 (``s``, ``ms``, ``µs``, ``ns``; ``GB``, ``MB``, ``kB``, ``B``); any other unit
    (a tracked metric's own) is kept as it is.

    >>> display_unit("seconds", [0.002, 0.004])
    (0.001, 'ms')
    >>> display_unit("bytes", [2.0e6, 8.0e6])
    (1000000.0, 'MB')
    >>> display_unit("widgets", [3.0])
    (1.0, 'widgets')
    """
    scales = _SCALED_UNITS.get(unit)
    if not scales:
        return 1.0, unit
    finite = sorted(v for v in values if v is not None and np.isfinite(v) and v > 0)
    if not finite:
        return scales[0] if unit == "seconds" else scales[-1]
    median = finite[len(finite) // 2]
    return next(((d, u) for d, u in scales if median >= d), scales[-1])


def human_value(value: float | None, unit: str) -> str:
    """One value in asv's ``unit`` as text: ``"3.2 ms"``, ``"8 MB"``, ``"3000 widgets"``; a failure
    is ``"failed"`` and a skipped combination ``"skipped"``.

    >>> human_value(0.0032, "seconds"), human_value(8.0e6, "bytes"), human_value(None, "seconds")
    ('3.2 ms', '8 MB', 'failed')
    """
    if value is None:
        return "failed"
    if not np.isfinite(value):
        return "skipped" if np.isnan(value) else str(value)
    divisor, shown = display_unit(unit, [abs(value)])
    return f"{value / divisor:.4g} {shown}".rstrip()


def _decade_axis(values: pl.Series) -> alt.Axis:
    """A log axis with a tick per decade (every second, third... past 10), plain numbers where they are short."""
    lo, hi = int(np.floor(np.log10(values.min()))), int(np.ceil(np.log10(values.max())))
    step = max(1, -(-(hi - lo) // 10))
    plain = lo >= -3 and hi <= 6
    return alt.Axis(values=[10.0**k for k in range(lo, hi + 1, step)], format=",~g" if plain else "~e")


def regression_points(history: pl.DataFrame, unit: str) -> pl.DataFrame:
    """The rows of one benchmark's history (:func:`harness.regress.results.history`, with ``order``
    and ``label``) ready to draw: ``tick`` (short hash and date, the x axis' label), ``shown``
    (the value in ``unit`` as text, :func:`human_value`), ``date_text`` and ``ratio_text``."""
    shown = [human_value(v, unit) for v in history.sort("order", "label")["value"].to_list()]
    return history.sort("order", "label").with_columns(
        pl.Series("shown", shown, dtype=pl.String),
        (pl.col("commit").str.slice(0, 8) + "\n"
         + pl.from_epoch(pl.col("date").fill_null(0), time_unit="ms").dt.strftime("%Y-%m-%d")).alias("tick"),
        pl.from_epoch(pl.col("date").fill_null(0), time_unit="ms").dt.strftime("%Y-%m-%d %H:%M UTC").alias("date_text"),
        pl.when(pl.col("ratio").is_not_null()).then(pl.format("×{}", pl.col("ratio").round_sig_figs(3)))
        .otherwise(pl.lit("—")).alias("ratio_text"),
    )


def regression_chart(history: pl.DataFrame, *, unit: str, title: str, log_y: bool | None = None,
                     height: int = 340) -> alt.LayerChart:
    """One benchmark over commits: a line per parameter combination (``label``), its regressions
    flagged.

    ``history`` holds one benchmark's rows of :func:`harness.regress.results.history` with
    ``order`` (the commit's position) and ``label`` (the parameters). The x axis is the commits in
    order, labelled by short hash and date; the y axis the value in ``unit`` (seconds and bytes
    with a readable prefix, see :func:`display_unit`), on a log scale when the values span two
    decades or more (``log_y`` None) and all are positive. A regressed point is a large red
    triangle with its ratio written above it, an improved one a green triangle pointing down; a
    commit where the benchmark's version changed (re-baselined: not comparable with the commit
    before) is a grey dashed rule, and one where a combination failed a red ✖ at the top.
    """
    data = regression_points(history, unit)
    values = data["value"].cast(pl.Float64)
    divisor, shown_unit = display_unit(unit, values.to_list())
    data = data.with_columns((pl.col("value").cast(pl.Float64) / divisor).alias("y"),
                             pl.col("label").fill_null("").alias("label"))
    data = data.with_columns(
        pl.when(pl.col("y").is_finite()).then(pl.col("y")).alias("y"),
        # a re-baseline starts a new segment: the line is not drawn across a version change
        (pl.col("state") == "not comparable").cast(pl.Int32).cum_sum().over("label").alias("segment"),
    )
    finite = data["y"].drop_nulls()
    positive = finite.len() > 0 and float(finite.min()) > 0
    if log_y is None:
        log_y = spans_decades(finite)
    log_y = bool(log_y and positive)
    ticks = data.unique("order").sort("order")["tick"].to_list()
    y_title = (f"{title} [{shown_unit}] ↓" if shown_unit else f"{title} ↓") + (" (log)" if log_y else "")
    x = alt.X("tick:O", title="commit (oldest left; short hash and date)", sort=ticks,
              scale=alt.Scale(domain=ticks),
              axis=alt.Axis(labelAngle=0, labelExpr="split(datum.label, '\\n')", labelFontSize=11,
                            labelOverlap=True, labelPadding=6))
    y = alt.Y("y:Q", title=y_title, scale=_axis_scale(log_y),
              axis=_decade_axis(finite) if log_y else alt.Axis(format=",~g"))
    encodings, selection = _series(data, title="parameters")
    # The flags' red and green are no series' colour.
    domain = sorted(set(data["label"].to_list()))
    colours = [c for c in PALETTE if c not in ("#d62728", "#2ca02c")]
    encodings["color"]["scale"] = alt.Scale(domain=domain,
                                            range=[colours[i % len(colours)] for i in range(len(domain))])
    tooltip = [alt.Tooltip("label:N", title="parameters"), alt.Tooltip("commit:N"),
               alt.Tooltip("date_text:N", title="date"), alt.Tooltip("shown:N", title="value"),
               alt.Tooltip("state:N"), alt.Tooltip("ratio_text:N", title="ratio")]
    plotted = data.filter(pl.col("y").is_not_null())
    base = alt.Chart(plotted).encode(x=x, y=y)
    line = base.mark_line(strokeWidth=2.2).encode(
        color=encodings["color"], strokeDash=encodings["strokeDash"], opacity=encodings["opacity"],
        detail=["label:N", "segment:O"]).add_params(selection)
    points = base.mark_point(filled=True, size=45).encode(color=encodings["color"], opacity=encodings["opacity"],
                                                           tooltip=tooltip)
    layers: list[Any] = [line, points]
    regressed = plotted.filter(pl.col("state") == "regressed")
    if not regressed.is_empty():
        flagged = alt.Chart(regressed).encode(x=x, y=y)
        layers += [
            flagged.mark_point(shape="triangle-up", filled=True, size=260, color=REGRESSED_COLOUR, stroke="white",
                               strokeWidth=1, opacity=1).encode(tooltip=tooltip),
            flagged.mark_text(align="left", dx=11, fontSize=12, fontWeight="bold", color=REGRESSED_COLOUR)
            .encode(text="ratio_text:N"),
        ]
    improved = plotted.filter(pl.col("state") == "improved")
    if not improved.is_empty():
        layers.append(alt.Chart(improved).encode(x=x, y=y).mark_point(
            shape="triangle-down", filled=True, size=200, color=IMPROVED_COLOUR, opacity=1).encode(tooltip=tooltip))
    rebased = data.filter(pl.col("state") == "not comparable").unique("order")
    if not rebased.is_empty():
        rule = alt.Chart(rebased).encode(x=x)
        layers += [
            rule.mark_rule(color="#6c757d", strokeDash=[6, 4], strokeWidth=1.6).encode(
                tooltip=[alt.Tooltip("commit:N"), alt.Tooltip("date_text:N", title="date"),
                         alt.Tooltip("version:N", title="new version")]),
            rule.mark_text(align="left", baseline="bottom", dx=5, dy=-4, fontSize=12, color="#495057").encode(
                y=alt.value("height"), text=alt.value("re-baselined (version changed)")),
        ]
    failed = data.filter(pl.col("state") == "failed")
    if not failed.is_empty():
        marks = failed.group_by("order", "tick").agg(pl.col("label").sort().str.join("; ").alias("failed"))
        layers.append(alt.Chart(marks).mark_text(text="✖ failed", baseline="top", y=20, fontSize=12,
                                                 fontWeight="bold", color=REGRESSED_COLOUR).encode(
            x=x, tooltip=[alt.Tooltip("failed:N", title="failed")]))
    return alt.layer(*layers).properties(height=_height(height, data))


#: A trial's outcome in the sensitivity chart, and its colour (failed trials sit on the top edge).
TRIAL_OUTCOMES: dict[str, str] = {"reached target": "#2a9d3f", "did not reach it": "#1f77b4", "failed": "#c1121f"}


def sensitivity_chart(points: pl.DataFrame, *, x_title: str, y_title: str, log_x: bool, log_y: bool) -> alt.LayerChart:
    """DeepOBS' sensitivity plot: a tuning study's trials, the metric against one hyperparameter.

    ``points``: ``value`` (the hyperparameter), ``y`` (the metric; null for a failed trial, drawn
    as a cross on the chart's top edge), ``outcome`` (a key of :data:`TRIAL_OUTCOMES`),
    ``selected`` (the trial the protocol selected, ringed) and ``trial`` (its number).
    """
    finite = points.filter(pl.col("y").is_not_null() & pl.col("y").is_finite())
    if log_y:
        finite = finite.with_columns(pl.col("y").clip(lower_bound=LOG_FLOOR))
    top = float(finite["y"].max()) if finite.height else 1.0
    drawn = points.with_columns(
        pl.when(pl.col("y").is_null() | ~pl.col("y").is_finite()).then(pl.lit(top)).otherwise(
            pl.col("y").clip(lower_bound=LOG_FLOOR) if log_y else pl.col("y")).alias("y"))
    outcomes = list(TRIAL_OUTCOMES)
    x = alt.X("value:Q", title=x_title, scale=_axis_scale(log_x))
    y = alt.Y("y:Q", title=y_title, scale=_axis_scale(log_y), axis=_decades(drawn, ["y"]) if log_y else alt.Axis())
    dots = alt.Chart(drawn).mark_point(size=90, filled=True, opacity=0.85).encode(
        x=x, y=y,
        color=alt.Color("outcome:N", scale=alt.Scale(domain=outcomes, range=list(TRIAL_OUTCOMES.values())),
                        title="trial"),
        shape=alt.Shape("outcome:N", scale=alt.Scale(domain=outcomes, range=["circle", "circle", "cross"]),
                        title="trial"),
        tooltip=["trial:Q", alt.Tooltip("value:Q", title=x_title, format=".4g"), "outcome:N",
                 alt.Tooltip("y:Q", title=y_title, format=".3g")],
    )
    ring = alt.Chart(drawn.filter(pl.col("selected"))).mark_point(size=420, strokeWidth=2.5, color="black").encode(
        x=x, y=y)
    label = alt.Chart(drawn.filter(pl.col("selected"))).mark_text(dx=14, dy=-14, align="left", fontSize=13).encode(
        x=x, y=y, text=alt.value("selected"))
    return alt.layer(dots, ring, label).properties(height=380)
