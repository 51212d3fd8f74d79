"""The leaderboard's Regressions page (AppTest) on real asv results of a toy repository.

A temporary git repository holds the project's ``asv.conf.json`` and a toy ``benchmarks/toy.py``:
``Solver.track_error`` and ``Solver.track_steady`` parameterized over ``n`` and ``framework``, and
``track_memory`` (bytes) with an explicit version. asv records three commits (``--python=same
--quick`` on machine ``testbox``; ``HOME`` is a temporary folder, so ``~/.asv-machine.json`` is
untouched), a day apart: at the second, ``track_memory`` quadruples and its version changes
(re-baselined: not comparable); at the third, ``track_error`` triples (regressed) and
``track_steady`` stays as it was.
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from harness import charts, leaderboard
from harness.leaderboard import escape_markdown

ROOT = Path(__file__).resolve().parents[2]

TOY = '''\
"""Toy benchmarks for the leaderboard's Regressions page."""

GROWTH = {growth}
WIDTH = {width}


class Solver:
    params = [[10, 1000], ["torch", "jax"]]
    param_names = ["n", "framework"]

    def track_error(self, n, framework):
        return GROWTH * n * (2 if framework == "jax" else 1)

    track_error.unit = "widgets"

    def track_steady(self, n, framework):
        return 0.004 * n

    track_steady.unit = "seconds"


def track_memory():
    return 2.0e6 * WIDTH

track_memory.unit = "bytes"
track_memory.version = "{version}"
'''
#: (growth, width, version) at each commit.
COMMITS = ((1, 1, "1"), (1, 4, "2"), (3, 4, "2"))
REGRESSED = "toy.Solver.track_error"


def git(repo: Path, *args: str, env: dict[str, str] | None = None) -> str:
    command = ["git", "-c", "user.name=harness test", "-c", "user.email=test@example.invalid",
               "-c", "commit.gpgsign=false", "-C", str(repo), *args]
    return subprocess.run(command, check=True, capture_output=True, text=True, env=env).stdout


def run_asv(repo: Path, env: dict[str, str], *args: str) -> None:
    done = subprocess.run([sys.executable, "-m", "asv", *args], cwd=repo, env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, f"asv {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"


def make_asv_repo(base: Path) -> Path:
    """The toy repository under ``base`` with its three commits recorded; its ``asv.conf.json``."""
    repo, home = base / "repo", base / "home"
    home.mkdir(parents=True)
    (repo / "benchmarks").mkdir(parents=True)
    shutil.copyfile(ROOT / "asv.conf.json", repo / "asv.conf.json")
    (repo / "benchmarks" / "__init__.py").write_text("")
    env = {**os.environ, "HOME": str(home)}
    git(repo, "init", "--quiet", "--initial-branch=main")
    run_asv(repo, env, "machine", "--yes", "--machine", "testbox")
    for day, (growth, width, version) in enumerate(COMMITS, start=1):
        (repo / "benchmarks" / "toy.py").write_text(TOY.format(growth=growth, width=width, version=version))
        git(repo, "add", "asv.conf.json", "benchmarks")
        date = f"2026-01-0{day}T12:00:00+00:00"  # a day apart: asv orders the commits by date
        git(repo, "commit", "--quiet", "-m", f"toy commit {day}",
            env={**env, "GIT_AUTHOR_DATE": date, "GIT_COMMITTER_DATE": date})
        run_asv(repo, env, "run", "--python=same", "--quick", "--set-commit-hash", "HEAD", "--machine", "testbox")
    return repo / "asv.conf.json"


@pytest.fixture(scope="module")
def asv_config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_asv_repo(tmp_path_factory.mktemp("asv-regressions"))


@pytest.fixture(scope="module")
def results_dir(asv_config: Path) -> Path:
    return asv_config.parent / "asv" / "results"


def regressions_page(app, store: Path, results: Path | None, monkeypatch: pytest.MonkeyPatch, **query: str):
    monkeypatch.setenv(leaderboard.ASV_RESULTS_ENV, str(results) if results is not None else "")
    at = app(store)
    for key, value in query.items():
        at.query_params[key] = value
    at.switch_page("views/regressions.py").run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def latest_table(at):
    return next(d.value for d in at.dataframe if {"flag", "benchmark", "parameters", "ratio"} <= set(d.value.columns))


def chart_layers(at) -> list[dict]:
    (spec,) = [json.loads(c.proto.spec) for c in at.get("vega_lite_chart")]
    return spec["layer"], None


def test_the_regression_is_flagged_and_the_steady_benchmark_is_not(app, small_store, results_dir, monkeypatch) -> None:
    at = regressions_page(app, small_store, results_dir, monkeypatch)
    table = latest_table(at)
    assert table["state"].iloc[:4].tolist() == ["regressed"] * 4  # regressions first
    by_state = table.groupby("benchmark")["state"].agg(set).to_dict()
    assert by_state == {REGRESSED: {"regressed"}, "toy.Solver.track_steady": {"unchanged"},
                        "toy.track_memory": {"unchanged"}}
    error = table[table["benchmark"] == REGRESSED]
    assert set(error["flag"]) == {"▲ regressed"} and error["ratio"].tolist() == pytest.approx([3.0] * 4)
    combinations = itertools.product((10, 1000), ("torch", "jax"))
    assert set(error["parameters"]) == {f"n={n}, framework={f}" for n, f in combinations}
    row = error[error["parameters"] == "n=1000, framework=jax"].iloc[0]
    assert (row["before"], row["after"]) == ("2000 widgets", "6000 widgets")
    steady = table[table["benchmark"] == "toy.Solver.track_steady"]
    assert set(steady["flag"]) == {"unchanged"} and "4 s" in set(steady["after"])  # 0.004 * 1000 s
    metrics = {m.label: m.value for m in at.metric}
    assert metrics == {"▲ regressed": "4", "▼ improved": "0", "unchanged": "5", "⟳ not comparable": "0"}
    assert any(e.value.startswith(escape_markdown("4 regression(s) at ")) and escape_markdown(REGRESSED) in e.value
               for e in at.error)
    # the chart opens on the regressed benchmark: its four regressed points are flagged red
    layers, datasets = chart_layers(at)
    triangles = [layer for layer in layers if layer["mark"].get("shape") == "triangle-up"]
    assert len(triangles) == 1 and triangles[0]["mark"]["color"] == charts.REGRESSED_COLOUR
    assert at.query_params["benchmark"] in (REGRESSED, [REGRESSED])  # the URL names it
    assert "widgets" in layers[0]["encoding"]["y"]["title"] and layers[0]["encoding"]["y"]["scale"]["type"] == "log"


def test_a_linked_benchmark_shows_its_rebaseline_in_readable_units(app, small_store, results_dir, monkeypatch) -> None:
    at = regressions_page(app, small_store, results_dir, monkeypatch, benchmark="toy.track_memory")
    layers, _ = chart_layers(at)
    assert layers[0]["encoding"]["y"]["title"].startswith("track_memory [MB]")
    assert not any(layer["mark"].get("shape") == "triangle-up" for layer in layers)
    rules = [layer for layer in layers if layer["mark"]["type"] == "rule"]
    assert len(rules) == 1  # the version change at the second commit
    changes = next(d.value for d in at.dataframe if "date" in d.value.columns)
    assert changes["state"].tolist() == ["⟳ not comparable"] and changes["value"].tolist() == ["8 MB"]


def test_no_results_say_how_to_record_them(app, small_store, tmp_path, monkeypatch) -> None:
    for results in (None, tmp_path / "empty"):
        at = regressions_page(app, small_store, results, monkeypatch)
        assert any("harness regress record" in i.value for i in at.info), [i.value for i in at.info]
        assert not at.error and not at.get("vega_lite_chart")


def test_the_server_is_told_the_results(tmp_path: Path, results_dir: Path) -> None:
    command = leaderboard.streamlit_command(tmp_path, port=8600, asv_results=results_dir)
    assert command[-2:] == ["--asv-results", str(results_dir.resolve())]
    assert "--asv-results" not in leaderboard.streamlit_command(tmp_path, port=8600)
    assert leaderboard.results_fingerprint(tmp_path / "missing") == ()
    fingerprint = leaderboard.results_fingerprint(results_dir)
    assert fingerprint[3] == 4  # machine.json and three commits
    copy = shutil.copytree(results_dir, tmp_path / "results")
    before = leaderboard.results_fingerprint(copy)
    (copy / "testbox" / "0000000-new.json").write_text("{}")
    assert leaderboard.results_fingerprint(copy) != before


def test_a_missing_asv_config_is_refused(small_store: Path, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from harness.cli import app

    result = CliRunner().invoke(app, ["leaderboard", "--store", str(small_store), "--asv-config",
                                      str(tmp_path / "asv.conf.json")])
    assert result.exit_code == 2 and "no asv configuration" in result.output


def test_the_chart_marks_each_regressed_point(results_dir: Path) -> None:
    import polars as pl

    from harness.regress.results import history

    rows = pl.DataFrame(history(results_dir)).filter(pl.col("benchmark") == REGRESSED).with_columns(
        pl.col("params").alias("label"),
        pl.col("commit").rank("dense").alias("order"),  # any order will do for counting marks
        pl.col("value").cast(pl.Float64), pl.col("ratio").cast(pl.Float64))
    chart = charts.regression_chart(rows, unit="widgets", title="track_error")
    marked = [layer for layer in chart.layer if getattr(layer.mark, "shape", None) == "triangle-up"]
    assert len(marked) == 1 and marked[0].data["ratio_text"].to_list() == ["×3.0"] * 4
    assert chart.to_dict()["layer"][0]["encoding"]["y"]["scale"]["type"] == "log"  # 10 to 6000 widgets


def test_several_machines_are_picked_from(app, small_store, results_dir, tmp_path, monkeypatch) -> None:
    results = shutil.copytree(results_dir, tmp_path / "results")
    other = shutil.copytree(results / "testbox", results / "otherbox")
    for path in other.glob("*.json"):
        data = json.loads(path.read_text())
        data["machine"] = "otherbox"
        if "params" in data:
            data["params"]["machine"] = "otherbox"
        path.write_text(json.dumps(data))
    at = regressions_page(app, small_store, results, monkeypatch, machine="otherbox")
    (picker,) = [s for s in at.selectbox if s.label == "Machine"]
    assert picker.options == ["otherbox", "testbox"] and picker.value == "otherbox"
    assert latest_table(at)["state"].tolist().count("regressed") == 4


def test_the_cli_finds_the_results_of_asv_conf_json_here(small_store: Path, asv_config: Path, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from harness.cli import app

    seen: list[object] = []
    monkeypatch.setattr(leaderboard, "serve", lambda store, **options: seen.append(options.get("asv_results")) or 0)
    monkeypatch.chdir(asv_config.parent)
    assert CliRunner().invoke(app, ["leaderboard", "--store", str(small_store)]).exit_code == 0
    monkeypatch.chdir(tmp_path)  # no asv.conf.json here: no results, and no error
    assert CliRunner().invoke(app, ["leaderboard", "--store", str(small_store)]).exit_code == 0
    assert seen == [asv_config.parent / "asv" / "results", None]
    assert leaderboard.main(["--store", "s", "--asv-results", "r"]) == 0 and seen[-1] == Path("r")


def test_damaged_results_are_an_error_message(app, small_store, results_dir, tmp_path, monkeypatch) -> None:
    results = shutil.copytree(results_dir, tmp_path / "results")
    (results / "benchmarks.json").write_text("{not json")  # a damaged commit file asv itself skips, with a warning
    at = regressions_page(app, small_store, results, monkeypatch)
    assert any("could not be read" in e.value for e in at.error), [e.value for e in at.error]
    assert not at.get("vega_lite_chart")
