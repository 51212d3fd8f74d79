"""Every page of the leaderboard through ``streamlit.testing.v1.AppTest``, on generated stores."""

from __future__ import annotations

import json
import math

import pandas as pd
import polars as pl
import pytest
import storegen

from harness import score
from harness.leaderboard import escape_markdown
from harness.store import read_runs

PAGES = ("overview", "task", "method", "runs", "ecdf", "tuning")


def goto(at, page: str):
    at.switch_page(f"views/{page}.py").run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def table(at, *columns: str) -> pd.DataFrame:
    """The first dataframe on the page with all of ``columns``."""
    for element in at.dataframe:
        if set(columns) <= set(element.value.columns):
            return element.value
    raise AssertionError(f"no table with columns {columns}: {[list(d.value.columns) for d in at.dataframe]}")


def charts(at) -> list[dict]:
    return [json.loads(c.proto.spec) for c in at.get("vega_lite_chart")]


def texts(at) -> list[str]:
    return [t.value for t in at.text]


# -- overview ---------------------------------------------------------------------------------


def test_overview_ranks_by_profile_score(app, small_store) -> None:
    at = app(small_store)
    ranking = table(at, "rank", "method", "score")
    expected = score.profile_scores(score.performance_ratios(score.medians(read_runs(small_store))))
    assert ranking["method"].tolist() == expected["method"].to_list()
    assert ranking["score"].tolist() == pytest.approx(expected["score"].to_list())
    assert ranking.iloc[0]["method"] == "lbfgs"
    assert set(zip(ranking["method"], ranking["framework"])) == {
        ("lbfgs", "torch"), ("heavy-ball", "torch"), ("adam", "torch"), ("gd", "torch"), ("evil", "torch"),
        ("adam", "jax"), ("gd", "jax"),
    }
    lbfgs = ranking[ranking["method"] == "lbfgs"].iloc[0]
    assert (lbfgs["n_failed"], lbfgs["n_skipped"]) == (3, 3)
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Runs"] == "66" and metrics["Failed runs"] == "6" and metrics["Tasks"] == "4"
    ratios = table(at, "problem")
    assert ratios["problem"].tolist() == ["logreg@cpu", "logreg@gpu", "rastrigin@cpu",
                                          "softmax@cpu"]
    assert math.isinf(ratios.set_index("problem").loc["rastrigin@cpu", "lbfgs/torch"])
    (profile,) = charts(at)
    assert profile["encoding"]["x"]["scale"]["domain"] == [1, 4]
    assert escape_markdown("tensor-pca") in " ".join(c.value for c in at.caption)  # the untargeted task is named


def test_overview_columns_carry_direction_and_units(app, small_store) -> None:
    at = app(small_store)
    spec = at.dataframe[0].proto.columns
    labels = json.loads(spec)
    assert labels["score"]["label"] == "profile score ↑ [0-1]"
    assert labels["n_failed"]["label"] == "failed ↓"


@pytest.mark.parametrize(
    ("column", "value", "solvers", "problems"),
    [
        ("hardware", "gpu", {("lbfgs", "torch"), ("heavy-ball", "torch"), ("adam", "torch"), ("gd", "torch")}, 1),
        ("framework", "jax", {("adam", "jax"), ("gd", "jax")}, 1),
        ("task_family", "global", {("lbfgs", "torch"), ("heavy-ball", "torch"), ("adam", "torch"), ("gd", "torch")}, 1),
    ],
)
def test_overview_filters(app, small_store, column, value, solvers, problems) -> None:
    at = app(small_store)
    at.sidebar.multiselect(key=f"filter_{column}").select(value).run()
    assert not at.exception
    ranking = table(at, "rank", "method", "score")
    assert set(zip(ranking["method"], ranking["framework"])) == solvers
    assert set(ranking["n_problems"]) == {problems}
    if value == "global":
        assert ranking.iloc[-1]["method"] == "lbfgs" and ranking.iloc[-1]["score"] == 0.0


def test_filters_apply_on_every_page(app, small_store) -> None:
    at = app(small_store)
    at.sidebar.multiselect(key="filter_framework").select("jax").run()
    goto(at, "runs")
    runs = table(at, "run_id", "status")
    assert set(runs["framework"]) == {"jax"} and len(runs) == 6
    goto(at, "task")
    assert at.selectbox(key="task_choice").options == ["logreg"]


# -- task -------------------------------------------------------------------------------------


def test_task_page_ranking_intervals_ties_and_plots(app, small_store) -> None:
    at = goto(app(small_store), "task")
    assert at.selectbox(key="task_choice").value == "logreg"
    ranking = table(at, "problem", "rank", "stat_rank", "tied_with")
    cpu = ranking[ranking["problem"] == "logreg@cpu"]
    assert cpu.iloc[0]["label"] == "lbfgs/torch" and cpu.iloc[0]["rank"] == 1
    assert (cpu["median_time_to_target_s"] >= cpu["time_to_target_lo"]).all()
    assert (cpu["median_time_to_target_s"] <= cpu["time_to_target_hi"]).all()
    # 3 seeds: below the seeds a claim needs, nothing is called different or tied, and the page says why.
    by_label = cpu.set_index("label")
    assert by_label.loc["adam/jax", "tied_with"] == "" and "untested" in by_label.loc["adam/jax", "significance"]
    gpu = ranking[ranking["problem"] == "logreg@gpu"].set_index("label")
    assert gpu.loc["adam", "failures"] == "oom×1" and gpu.loc["adam", "n_failed"] == 1
    specs = charts(at)
    # convergence, two probes, then the hardware and framework speed-ups (grouped bars)
    lines = [s for s in specs if "y" in s["layer"][1]["encoding"]]
    titles = [s["layer"][1]["encoding"]["y"]["title"] for s in lines]
    assert titles == ["suboptimality ↓ [nats]", "hessian-top/lambda_max", "ghost-radius/r [ratio]"]
    x_scale = lines[0]["layer"][0]["encoding"]["x"]["scale"]
    assert lines[0]["layer"][1]["encoding"]["y"]["scale"]["type"] == "log" and x_scale["type"] == "log"
    # the probe's reference line r = 1 (a rule layer of its own)
    assert any(layer.get("mark", {}).get("type") == "rule" for layer in lines[2]["layer"])
    bars = [s for s in specs if s not in lines]
    assert [b["layer"][0]["encoding"]["yOffset"]["field"] for b in bars] == ["hardware", "framework"]
    speed = table(at, "speedup_per_step", "hardware")
    assert speed[speed["hardware"] == "gpu"]["speedup_per_step"].min() > 5
    assert speed.columns[0] == "variant"  # the problem (task variant) of each row
    agreement = table(at, "rel_diff_objective")
    assert set(agreement["framework"]) == {"torch", "jax"}
    assert (agreement[agreement["framework"] == "torch"]["rel_diff_objective"] == 0).all()


def test_task_page_switching_task_shows_failures(app, small_store) -> None:
    at = goto(app(small_store), "task")
    at.selectbox(key="task_choice").select("rastrigin").run()
    assert not at.exception
    ranking = table(at, "problem", "rank", "failures").set_index("label")
    assert ranking.loc["lbfgs", "failures"] == "error×3"
    assert math.isinf(ranking.loc["lbfgs", "median_time_to_target_s"])
    assert ranking.loc["lbfgs", "rank"] == 4
    assert at.query_params["task"] == "rastrigin"  # a deep link to this task
    assert "one hardware profile" in " ".join(c.value for c in at.caption)
    assert "No evaluation point (not plotted): lbfgs (error×3)" in texts(at)


def test_task_page_problem_choice_and_metric(app, small_store) -> None:
    at = goto(app(small_store), "task")
    at.selectbox(key="task_problem").select("logreg@gpu").run()
    at.selectbox(key="task_metric").select("objective").run()
    assert not at.exception
    legend = charts(at)[0]["layer"][0]["encoding"]["color"]["scale"]["domain"]
    assert legend == ["adam", "gd", "heavy-ball", "lbfgs"]  # gpu runs only
    assert at.query_params["problem"] == "logreg@gpu"  # a deep link to this problem


def test_task_without_suboptimality_or_target(app, small_store) -> None:
    at = goto(app(small_store), "task")
    at.selectbox(key="task_choice").select("tensor-pca").run()
    assert not at.exception
    ranking = table(at, "problem", "rank", "n_skipped").set_index("label")
    assert ranking.loc["lbfgs", "n_skipped"] == 3 and pd.isna(ranking.loc["lbfgs", "rank"])
    assert at.selectbox(key="task_metric").options == ["objective", "overlap"]


# -- method -----------------------------------------------------------------------------------


def test_method_page_wins_failures_and_errors(app, small_store) -> None:
    at = goto(app(small_store), "method")
    at.selectbox(key="method_choice").select("lbfgs").run()
    assert not at.exception
    wins = table(at, "problem", "configurations", "stat_rank")
    assert set(wins["problem"]) == {"logreg@cpu", "logreg@gpu", "softmax@cpu"}
    errors = table(at, "error", "seed")
    assert set(errors["status"]) == {"error"} and "line search failed" in errors["error"].iloc[0]
    fails = [d.value for d in at.dataframe if "problem" in d.value.columns][1]
    assert fails["problem"].tolist() == ["rastrigin@cpu"]
    hyper = table(at, "hyperparameters", "tasks")
    assert hyper["hyperparameters"].tolist() == ['{"history": 10}']


def test_method_page_shows_declaration_texts_literally(app, small_store, xss_catalog) -> None:
    at = goto(app(small_store, xss_catalog), "method")
    at.selectbox(key="method_choice").select("evil").run()
    assert not at.exception
    assert f"Name: {storegen.XSS}" in texts(at)
    assert any(storegen.XSS in c.value and c.language == "yaml" for c in at.code)
    assert not at.get("html") and not any("<img" in m.value for m in at.markdown)
    at = goto(at, "overview")
    ranking = table(at, "rank", "method", "name")
    assert ranking.set_index("method").loc["evil", "name"] == storegen.XSS


def test_method_without_declaration_falls_back_to_the_store(app, small_store) -> None:
    at = goto(app(small_store), "method")
    at.selectbox(key="method_choice").select("evil").run()
    assert "Family: test" in texts(at)
    assert "No declaration" in " ".join(c.value for c in at.caption)


def test_a_method_the_store_kept_is_shown_without_its_catalog(app, small_store, xss_catalog, tmp_path) -> None:
    import shutil

    from harness.store import Store

    store = tmp_path / "store"
    shutil.copytree(small_store, store)
    (declared,) = xss_catalog.rglob("evil.yaml")
    Store(store).save_declaration("methods", "evil", declared.read_text())  # as `harness bench` does
    at = goto(app(store), "method")  # no --catalog
    at.selectbox(key="method_choice").select("evil").run()
    assert f"Name: {storegen.XSS}" in texts(at)
    assert "No declaration" not in " ".join(c.value for c in at.caption)


# -- runs -------------------------------------------------------------------------------------


def test_runs_explorer_lists_every_run_with_errors_and_environment(app, small_store) -> None:
    at = goto(app(small_store), "runs")
    runs = table(at, "run_id", "status", "error", "git_commit", "host")
    assert len(runs) == 69
    # Parameters as text: those that vary among a task's (a method's) runs, parsed here from the JSON columns.
    stored = read_runs(small_store).select("run_id", "task", "task_params", "method", "hyperparameters").rows()

    def varying(owner_values: list[tuple[str, str]]) -> dict[str, set[str]]:
        seen: dict[str, dict[str, set[str]]] = {}
        for owner, text in owner_values:
            for k, v in json.loads(text).items():
                seen.setdefault(owner, {}).setdefault(k, set()).add(json.dumps(v))
        return {o: {k for k, vs in names.items() if len(vs) > 1} for o, names in seen.items()}

    tasks, methods = varying([(r[1], r[2]) for r in stored]), varying([(r[3], r[4]) for r in stored])
    expected = {r[0]: (", ".join(f"{k}={v}" for k, v in json.loads(r[2]).items() if k in tasks[r[1]]),
                       ", ".join(f"{k}={v}" for k, v in json.loads(r[4]).items() if k in methods[r[3]]))
                for r in stored}
    assert {r: (t, h) for r, t, h in zip(runs["run_id"], runs["task_variant"], runs["settings"])} == expected
    assert set(runs["status"]) == {"reached_target", "completed", "diverged", "error", "timeout", "oom", "skipped"}
    at.multiselect(key="runs_status").select("error").select("oom").run()
    filtered = table(at, "run_id", "status")
    assert sorted(filtered["status"]) == ["error", "error", "error", "oom"]
    at.selectbox(key="runs_detail").select(filtered[filtered["status"] == "oom"]["run_id"].iloc[0]).run()
    assert any("CUDA out of memory" in c.value for c in at.code)
    environment = json.loads(next(c.value for c in at.code if c.language == "json"))
    assert environment["git_commit"] == "0123456789abcdef" and environment["versions"]["torch"] == "2.5"
    at.multiselect(key="runs_status").set_value([]).run()
    at.text_input(key="runs_search").input("exhausted").run()
    assert table(at, "run_id", "status")["status"].tolist() == ["timeout"]


# -- ECDF -------------------------------------------------------------------------------------


def test_ecdf_page(app, small_store) -> None:
    at = goto(app(small_store), "ecdf")
    summary = table(at, "ecdf_final", "ecdf_area")
    runs = read_runs(small_store)
    from harness.store import read_traces

    expected = score.report(runs, traces=read_traces(small_store), n_boot=10)["ecdf"]
    assert summary["method"].tolist() == expected["method"].to_list()
    assert summary["ecdf_final"].tolist() == pytest.approx(expected["ecdf_final"].to_list())
    (chart,) = charts(at)
    assert chart["encoding"]["x"]["scale"]["type"] == "log"
    at.radio(key="ecdf_axis").set_value("step").run()
    assert not at.exception and charts(at)[0]["encoding"]["x"]["title"] == "steps (log)"
    assert summary["n_problems"].tolist() == expected["n_problems"].to_list()


def test_ecdf_page_per_task(app, small_store) -> None:
    from harness.store import read_traces

    at = goto(app(small_store), "ecdf")
    picker = at.selectbox(key="ecdf_task")
    assert picker.options[0] == "all tasks" and "logreg" in picker.options
    assert any("mean over the problems it ran" in c.value for c in at.caption)
    picker.select("logreg").run()
    assert not at.exception and at.query_params["ecdf_task"] == "logreg"
    summary = table(at, "n_problems", "ecdf_final", "ecdf_area")
    runs = read_runs(small_store).filter(pl.col("task") == "logreg")
    expected = score.report(runs, traces=read_traces(small_store), n_boot=10)["ecdf"]
    assert summary["method"].tolist() == expected["method"].to_list()
    assert summary["n_problems"].tolist() == expected["n_problems"].to_list()
    assert summary["ecdf_final"].tolist() == pytest.approx(expected["ecdf_final"].to_list())
    assert any("of logreg" in c.value for c in at.caption)


# -- empty and failing stores -----------------------------------------------------------------


@pytest.mark.parametrize("page", PAGES)
def test_every_page_on_an_empty_store(app, empty_store, page) -> None:
    at = goto(app(empty_store), page)
    assert "No runs to show" in at.info[0].value
    assert not at.dataframe and not charts(at)


def test_a_missing_store_directory_is_not_created(app, tmp_path) -> None:
    missing = tmp_path / "nowhere"
    at = app(missing)
    assert "No runs to show" in at.info[0].value
    assert not missing.exists()


@pytest.mark.parametrize("page", PAGES)
def test_every_page_on_a_store_of_failures(app, failures_store, page) -> None:
    at = goto(app(failures_store), page)
    rows = read_runs(failures_store)
    if page == "overview":
        ranking = table(at, "rank", "method", "score")
        assert set(ranking["score"]) == {0.0} and set(ranking["solved"]) == {0.0}
        assert {m.label: m.value for m in at.metric}["Failed runs"] == str(rows.height)
    elif page == "task":
        ranking = table(at, "problem", "rank", "failures")
        assert (ranking["n_failed"] == ranking["n_runs"]).all()
        assert ranking["median_time_to_target_s"].map(math.isinf).all()
    elif page == "method":
        assert "error" in set(table(at, "error", "seed")["status"])
    elif page == "runs":
        assert len(table(at, "run_id", "status")) == rows.height
    elif page == "tuning":
        assert any("No tuning study" in i.value for i in at.info)
    else:
        summary = table(at, "ecdf_final", "ecdf_area")
        assert set(summary["method"]) == set(rows.filter(pl.col("status") != "skipped")["method"])


def test_escape_markdown_shows_literal_text() -> None:
    raw = "**bold** <img src=x onerror=alert(1)> [link](http://x) :red[c] $x$ `code`\nline"
    escaped = escape_markdown(raw)
    assert "\n" not in escaped
    assert all(f"\\{c}" in escaped for c in "*<>[]()`:$")
    assert escaped.replace("\\", "") == raw.replace("\n", " ")


def test_heading_of_a_markup_task_id_is_escaped(app, tmp_path) -> None:
    from harness.store import Store

    row, trace = storegen.simulate("logreg", "gd", seed=0)
    Store(tmp_path).write_run({**row, "task": "**bold**<b>"}, trace)
    at = goto(app(tmp_path), "task")
    assert at.header[0].value == escape_markdown("**bold**<b>  (convex)")


def test_store_changes_are_picked_up(app, tmp_path) -> None:
    from harness.store import Store

    store = Store(tmp_path)
    row, trace = storegen.simulate("logreg", "gd", seed=0)
    store.write_run(row, trace)
    at = app(tmp_path)
    assert {m.label: m.value for m in at.metric}["Runs"] == "1"
    row, trace = storegen.simulate("logreg", "adam", seed=0)
    store.write_run({**row, "run_id": "another"}, trace)
    at.run()
    assert {m.label: m.value for m in at.metric}["Runs"] == "2"
    assert pl.DataFrame(table(at, "rank", "method")).height == 2


def test_overview_suggests_compacting_a_large_uncompacted_store(app, small_store, monkeypatch) -> None:
    import lbkit

    monkeypatch.setattr(lbkit, "COMPACT_HINT", 10)
    at = app(small_store)
    assert "69 runs are stored one file each" in at.warning[0].value


# -- the clock: runs that compiled inside it, offline costs, older stores ---------------------


def labels_of(at, key: str) -> dict:
    """Column labels and help of the dataframe with ``key``."""
    (element,) = [d for d in at.dataframe if d.proto.id and key in d.proto.id]
    return json.loads(element.proto.columns)


FLAGS = {("adam", "jax"): "⚠ 1 run, 0.04 s", ("gd", "jax"): "⚠ 1 run, 0.02 s",
         ("lbfgs", "torch"): "⚠ 1 run, 0.015 s"}


def test_overview_flags_runs_compiled_in_clock_and_shows_offline_cost(app, small_store) -> None:
    at = app(small_store)
    ranking = table(at, "rank", "method", "score", "clock_flag", "offline")
    flags = {(m, f): v for m, f, v in zip(ranking["method"], ranking["framework"], ranking["clock_flag"])}
    assert flags == {**{k: "" for k in flags}, **FLAGS}
    offline = dict(zip(zip(ranking["method"], ranking["framework"]), ranking["offline"]))
    assert offline.pop(("heavy-ball", "torch")) == "12 (max 14)"  # seeds 0, 1, 2: 10, 12, 14 s
    assert set(offline.values()) == {"—"}
    # Flagged runs stay in the scores: the same numbers as scoring every run.
    expected = score.profile_scores(score.performance_ratios(score.medians(read_runs(small_store))))
    assert ranking["score"].tolist() == pytest.approx(expected["score"].to_list())
    assert ranking.set_index(["method", "framework"]).loc[("adam", "jax"), "n_runs"] == 3
    columns = ranking.columns.tolist()
    assert columns.index("clock_flag") == columns.index("score") + 1  # beside the score
    spec = json.loads(at.dataframe[0].proto.columns)
    assert spec["clock_flag"]["label"] == score.CLOCK_FLAG and "timed region" in spec["clock_flag"]["help"]
    assert spec["offline"]["label"] == score.OFFLINE
    (warning,) = at.warning
    # Of the runs that ran (skipped ones did not), as the metrics above count them.
    assert "3 of 66 runs" in warning.value and "timed region" in warning.value
    captions = " ".join(c.value for c in at.caption)
    assert score.CLOCK_FLAG_HELP in captions and score.OFFLINE_HELP in captions


@pytest.mark.parametrize(("column", "value", "flag", "offline"), [
    ("hardware", "gpu", False, True),  # no flagged run on the GPU
    ("framework", "jax", True, False),  # heavy-ball (the offline method) ran with torch only
])
def test_overview_flag_and_offline_columns_only_when_present(app, small_store, column, value, flag, offline) -> None:
    at = app(small_store)
    at.sidebar.multiselect(key=f"filter_{column}").select(value).run()
    assert not at.exception
    ranking = table(at, "rank", "method", "score")
    assert ("clock_flag" in ranking.columns) is flag and ("offline" in ranking.columns) is offline
    assert bool(at.warning) is flag
    captions = " ".join(c.value for c in at.caption)
    assert (score.CLOCK_FLAG_HELP in captions) is flag and (score.OFFLINE_HELP in captions) is offline


def test_task_page_flags_configurations_and_shows_offline_cost(app, small_store) -> None:
    at = goto(app(small_store), "task")
    ranking = table(at, "problem", "rank", "clock_flag", "offline")
    cpu = ranking[ranking["problem"] == "logreg@cpu"].set_index("label")
    assert cpu.loc["adam/jax", "clock_flag"] == FLAGS[("adam", "jax")]
    assert cpu.loc["gd/jax", "clock_flag"] == FLAGS[("gd", "jax")]
    assert cpu.loc["adam/torch", "clock_flag"] == "" and cpu.loc["heavy-ball/torch", "offline"] == "12 (max 14)"
    assert cpu.loc["lbfgs/torch", "offline"] == "—"
    assert "2 of 33 runs of this task" in at.warning[0].value
    at.selectbox(key="task_choice").select("rastrigin").run()
    ranking = table(at, "problem", "rank")
    assert "clock_flag" not in ranking.columns and not at.warning
    assert ranking.set_index("label").loc["heavy-ball", "offline"] == "12 (max 14)"


def test_method_page_shows_score_flag_and_offline_cost(app, small_store) -> None:
    at = goto(app(small_store), "method")
    at.selectbox(key="method_choice").select("heavy-ball").run()
    assert "Offline phase: median 12 s, max 14 s over 15 runs (reported apart from the clock, amortized over " \
           "problems)." in texts(at)
    scores = table(at, "rank", "framework", "score", "offline")
    assert scores["offline"].tolist() == ["12 (max 14)"] and "clock_flag" not in scores.columns
    assert not at.warning
    at.selectbox(key="method_choice").select("adam").run()
    assert not at.exception
    assert not any(t.startswith("Offline phase") for t in texts(at))
    scores = table(at, "rank", "framework", "score")
    assert dict(zip(scores["framework"], scores["clock_flag"])) == {"torch": "", "jax": FLAGS[("adam", "jax")]}
    assert "offline" not in scores.columns
    assert "1 of 18 runs of this method" in at.warning[0].value
    flagged = table(at, "clock_compiles", "clock_compile_s", "seed")
    assert flagged[["framework", "seed", "clock_compiles", "clock_compile_s"]].values.tolist() == [["jax", 1, 2, 0.04]]
    wins = table(at, "problem", "configurations", "clock_flag")  # the rows where it ranks carry the flag too
    assert set(wins["clock_flag"]) <= {"", FLAGS[("adam", "jax")]}


def test_runs_page_timing_columns_and_flag(app, small_store) -> None:
    at = goto(app(small_store), "runs")
    runs = table(at, "run_id", "status", "clock_flag")
    assert {"compile_s", "offline_s", "output_s", "init_s", "clock_compiles", "clock_compile_s"} <= set(runs.columns)
    assert "warmup_s" not in runs.columns
    flagged = runs[runs["clock_flag"] != ""]
    assert sorted(flagged["clock_flag"]) == ["⚠ 1 compilation, 0.02 s", "⚠ 2 compilations, 0.04 s",
                                             "⚠ 3 compilations, 0.015 s"]
    assert (flagged["clock_compiles"] > 0).all() and (runs.loc[runs["clock_flag"] == "", "clock_compiles"]
                                                      .fillna(0) == 0).all()
    assert runs[runs["method"] == "heavy-ball"]["offline_s"].notna().all()
    assert runs[runs["method"] != "heavy-ball"]["offline_s"].isna().all()
    assert set(runs[runs["framework"] == "jax"]["compile_s"]) == {0.3}
    at.checkbox(key="runs_flagged").check().run()
    only = table(at, "run_id", "status")
    assert len(only) == 3
    at.selectbox(key="runs_detail").select(only[only["seed"] == 1]["run_id"].iloc[0]).run()
    assert "2 compilations inside the timed region (0.04 s" in at.warning[-1].value
    environment = json.loads(next(c.value for c in at.code if c.language == "json"))
    assert environment["clock_compiles"] == 2 and environment["compile_s"] == 0.3
    timings = {"setup_s", "compile_s", "offline_s", "init_s", "output_s", "timed_s", "eval_s", "wall_s"}
    assert timings <= set(environment)
    assert "warmup_s" not in environment
    assert environment["timed_s"] >= environment["init_s"] + environment["output_s"] + environment["clock_compile_s"]


@pytest.mark.parametrize("page", PAGES)
def test_an_older_store_without_the_new_timing_columns(app, legacy_store, page) -> None:
    at = goto(app(legacy_store), page)
    assert not at.warning  # nothing flagged
    if page == "overview":
        ranking = table(at, "rank", "method", "score")
        assert "clock_flag" not in ranking.columns and "offline" not in ranking.columns
        assert ranking.iloc[0]["method"] == "lbfgs"
    elif page == "task":
        ranking = table(at, "problem", "rank")
        assert "clock_flag" not in ranking.columns and "offline" not in ranking.columns
        speed = table(at, "speedup_per_step")  # timed_s over steps 2..N, as that store meant it
        assert speed[speed["hardware"] == "gpu"]["speedup_per_step"].min() > 5
    elif page == "method":
        assert not any(t.startswith("Offline phase") for t in texts(at))
        assert "clock_flag" not in table(at, "rank", "framework", "score").columns
    elif page == "runs":
        runs = table(at, "run_id", "status")
        assert len(runs) == 66 and "clock_flag" not in runs.columns
        assert runs["clock_compiles"].isna().all() and runs["offline_s"].isna().all()
        environment = json.loads(next(c.value for c in at.code if c.language == "json"))
        assert environment["warmup_s"] == 0.02 and environment["compile_s"] is None
    elif page == "tuning":
        assert any("No tuning study" in i.value for i in at.info)  # an older store has no study
    else:
        assert table(at, "ecdf_final", "ecdf_area")["ecdf_final"].max() > 0


def test_a_store_of_old_and_new_runs(app, tmp_path) -> None:
    from harness.store import Store, compact

    (tmp_path / "runs").mkdir()
    (tmp_path / "traces").mkdir()
    storegen.build_store(tmp_path, seeds=(0, 1), legacy=True)
    compact(tmp_path)  # migrated: then new runs join it
    row, trace = storegen.simulate("logreg", "gd", seed=0, framework="jax")  # flagged
    Store(tmp_path).write_run({**row, "run_id": "new-run"}, trace)
    at = app(tmp_path)
    ranking = table(at, "rank", "method", "score", "clock_flag")
    assert ranking.set_index(["method", "framework"]).loc[("gd", "jax"), "clock_flag"] == "⚠ 1 run, 0.02 s"
    assert "offline" not in ranking.columns
    assert "1 of 43 runs" in at.warning[0].value


def test_runs_of_one_task_and_method_are_told_apart_by_what_varies(app, tmp_path) -> None:
    from harness.store import Store

    store = Store(tmp_path)
    for seed in (0, 1):
        for d in (5, 20):
            for lr in (0.1, 1.0):
                row, trace = storegen.simulate("logreg", "gd", seed=seed, framework="torch")
                row.update(run_id=f"r{seed}-{d}-{int(10 * lr)}",  # run ids hold no dot (it marks an attempt)
                            task_params=json.dumps({"d": d, "n": 100}),
                           hyperparameters=json.dumps({"lr": lr, "momentum": 0.0}))
                store.write_run(row, trace)
    runs = table(goto(app(tmp_path), "runs"), "run_id", "task_variant", "settings").set_index("run_id")
    assert runs.loc["r1-5-1", "task_variant"] == "d=5" and runs.loc["r1-5-1", "settings"] == "lr=0.1"
    assert runs.loc["r0-20-10", "task_variant"] == "d=20" and runs.loc["r0-20-10", "settings"] == "lr=1.0"
