"""The Tuning page: tuned against default results with their cost, and the trials' sensitivity plot; the
other pages rank results only (a study's trials are its search)."""

from __future__ import annotations

import json

from test_app import charts, goto, table

from harness.store import read_studies


def _datasets(at) -> list[list[dict]]:
    """The rows of every dataset of the page's charts (Streamlit sends them apart from the spec, in Arrow)."""
    import pyarrow as pa

    return [pa.ipc.open_stream(d.data.data).read_all().to_pylist()
            for c in at.get("vega_lite_chart") for d in c.proto.datasets]


def test_the_tuning_page_shows_the_search_and_its_cost(app, tuning_store) -> None:
    (study,) = read_studies(tuning_store)
    at = goto(app(tuning_store), "tuning")
    summary = table(at, "study", "tuned reached", "default reached")
    assert summary["tuned reached"].tolist() == ["5/5"] and summary["default reached"].tolist() == ["0/5"]
    finished = sum(t["value"] is not None for t in study["trials"])
    assert summary["search"].tolist() == [f"{finished}/16 qmc"] and summary["tuning_s"].iloc[0] > 0
    assert summary["selected"].iloc[0] == f"lr={study['selected_params']['lr']:.4g}"
    (chart,) = charts(at)
    points = max(_datasets(at), key=len)
    assert len(points) == 16 and sum(p["selected"] for p in points) == 1
    assert {p["outcome"] for p in points} >= {"reached target", "did not reach it"}
    chosen = next(p for p in points if p["selected"])
    assert chosen["value"] == study["selected_params"]["lr"] and chosen["outcome"] == "reached target"
    assert json.dumps(chart).count('"type": "log"') >= 1  # lr is log-uniform: a log x axis


def test_rankings_leave_the_trials_out(app, tuning_store) -> None:
    at = app(tuning_store)
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Runs"] == "10"  # 5 default runs and 5 reruns; the 16 trials are on the Tuning page


def test_a_store_without_studies_says_so(app, small_store) -> None:
    at = goto(app(small_store), "tuning")
    assert any("No tuning study" in i.value for i in at.info)
