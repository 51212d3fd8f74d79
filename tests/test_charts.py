"""The chart builders (harness.charts): colours by sorted index, the legend as a selector, log axes,
reference lines and grouped speed-up bars, read back from the Vega-Lite specifications."""

from __future__ import annotations

import polars as pl
import pytest

from harness import charts


def _bands(labels: list[str], xs=(0.0, 1.0, 10.0)) -> pl.DataFrame:
    rows = [{"label": lab, "method": lab, "framework": "torch", "hyperparameters": "{}", "x": x, "median": 1.0 + x,
             "lo": 0.5 + x, "hi": 2.0 + x, "n": 3} for lab in labels for x in xs]
    return pl.DataFrame(rows)


def _layers(spec: dict) -> list[dict]:
    return spec.get("layer", [spec])


def test_every_series_of_a_chart_has_its_own_colour_up_to_the_palette() -> None:
    labels = [f"m{i:02d}" for i in range(len(charts.PALETTE))]
    colours = charts.series_colours(list(reversed(labels)))
    assert list(colours) == sorted(labels)  # by sorted index, whatever the order of appearance
    assert len(set(colours.values())) == len(charts.PALETTE) == 20
    assert charts.series_colours(["b", "a"]) == {"a": charts.PALETTE[0], "b": charts.PALETTE[1]}


def test_past_the_palette_the_next_round_is_dashed() -> None:
    labels = [f"m{i:02d}" for i in range(24)]
    spec = charts.band_chart(_bands(labels), x_title="x", y_title="y").to_dict()
    dash = _layers(spec)[1]["encoding"]["strokeDash"]["scale"]["range"]
    assert dash[:20] == [[1, 0]] * 20 and dash[20:] == [[6, 3]] * 4


def test_the_legend_is_a_selector_that_fades_the_others() -> None:
    spec = charts.band_chart(_bands(["a", "b"]), x_title="x", y_title="y").to_dict()
    # altair lifts a layer's selection to the top, naming the layer it listens on
    (param,) = [*spec.get("params", []), *(p for layer in _layers(spec) for p in layer.get("params", []))]
    assert param["select"]["type"] == "point" and param["bind"] == "legend" and param["select"]["fields"] == ["label"]
    opacity = _layers(spec)[1]["encoding"]["opacity"]
    assert opacity["condition"]["param"] == param["name"] and opacity["value"] < 0.2


def test_log_axes_drop_non_positive_x_and_tick_per_decade() -> None:
    chart = charts.band_chart(_bands(["a"], xs=(0.0, 1.0, 1000.0)), x_title="x", y_title="y", log_x=True, log_y=True)
    spec = chart.to_dict()
    line = _layers(spec)[1]
    assert line["encoding"]["x"]["scale"]["type"] == "log" and line["encoding"]["y"]["scale"]["type"] == "log"
    data = spec["datasets"][next(iter(spec["datasets"]))]
    assert sorted({row["x"] for row in data}) == [1.0, 1000.0]  # step 0 has no place on a log axis
    assert line["encoding"]["y"]["axis"]["values"] == [1.0, 10.0, 100.0, 1000.0, 10000.0]


def test_reference_lines_for_all_and_per_series() -> None:
    common = pl.DataFrame({"value": [1.0], "text": ["r = 1"]})
    spec = charts.band_chart(_bands(["a", "b"]), x_title="x", y_title="y", references=common).to_dict()
    marks = [layer["mark"]["type"] if isinstance(layer["mark"], dict) else layer["mark"] for layer in _layers(spec)]
    assert marks.count("rule") == 1 and marks.count("text") == 1
    own = pl.DataFrame({"label": ["a", "gone"], "value": [4.0, 9.0], "text": ["2 / lr = 4", "x"]})
    spec = charts.band_chart(_bands(["a", "b"]), x_title="x", y_title="y", references=own).to_dict()
    rule = [layer for layer in _layers(spec) if layer["mark"]["type"] == "rule"]
    assert len(rule) == 1 and rule[0]["encoding"]["color"]["field"] == "label"
    rows = spec["datasets"][rule[0]["data"]["name"]]
    assert [r["label"] for r in rows] == ["a"]  # a series not on the chart has no line


def test_probe_references_per_configuration() -> None:
    from harness.probes import probe_output

    bands = pl.DataFrame({"label": ["gd [lr=0.5]", "gd [lr=0.1]", "adam"],
                          "hyperparameters": ['{"lr": 0.5}', '{"lr": 0.1}', "{}"]})
    refs = charts.probe_references(probe_output("hessian-top/lambda_1"), bands)
    assert dict(refs.select("label", "value").rows()) == {"gd [lr=0.1]": pytest.approx(20.0), "gd [lr=0.5]": 4.0}
    assert charts.probe_references(probe_output("ghost-radius/r"), bands)["value"].to_list() == [1.0]
    assert charts.probe_references(None, bands) is None


def test_speedups_are_grouped_bars_from_one() -> None:
    table = pl.DataFrame({"label": ["a", "a", "b"], "hardware": ["gpu", "tpu", "gpu"], "speedup": [2.0, 0.5, 7.0]})
    spec = charts.speedup_chart(table, value="speedup", group="hardware", x_title="x").to_dict()
    bars = _layers(spec)[0]["encoding"]
    assert bars["yOffset"]["field"] == "hardware" and bars["x"]["scale"]["type"] == "log"
    assert bars["x2"]["field"] == "_one"  # no stacking: each bar from 1 to its ratio
    assert "stack" not in bars["x"]


def test_one_series_has_no_legend_and_many_add_legend_rows() -> None:
    one = charts.band_chart(_bands(["a"]), x_title="x", y_title="y", height=200).to_dict()
    assert one["height"] == 200 and _layers(one)[1]["encoding"]["color"]["legend"] is None
    many = charts.band_chart(_bands([f"m{i}" for i in range(12)]), x_title="x", y_title="y", height=200).to_dict()
    assert many["height"] > 200 + 3 * 20  # the legend below the plot gets its own rows
