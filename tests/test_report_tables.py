"""The bench's results table (score.results_table) and the text tables of `harness bench` and `harness report`.

Runs are hand-built frames (no store): the numbers are checked against values computed here
another way, and the rendering at 100 and 160 columns is checked to keep every number whole.
"""

from __future__ import annotations

import io
import json
import re
import statistics

import polars as pl
import pytest
from rich.console import Console

from harness import score
from harness.cli import results_renderable
from harness.leaderboard import FitColumn, FitTable, report_renderables
from harness.record import FAILED, NOT_RUN, Status

INF = float("inf")
SPIKED = json.dumps({"lr": 3.0, "spike_every": 50}, separators=(",", ":"))
CONTROL = json.dumps({"lr": 3.0, "spike_every": 0}, separators=(",", ":"))


def run(task: str, method: str, seed: int, status: Status, **extra) -> dict:
    base = {
        "run_id": f"{task}-{method}-{extra.get('hyperparameters', '{}')}-{seed}", "task": task,
        "task_params": '{"d":20}', "hardware": "cpu", "framework": "torch", "method": method,
        "hyperparameters": "{}", "seed": seed, "status": str(status), "steps": 0, "timed_s": 0.0,
        "init_s": 0.0, "output_s": 0.0, "suboptimality": None, "time_to_target_s": None,
        "steps_to_target": None, "target_value": 1e-6,
    }
    return {**base, **extra}


def finished(task: str, method: str, seed: int, *, steps: int, step_s: float, sub: float, reached: bool, **extra) -> dict:
    timed = 0.01 + step_s * steps + 0.002  # init, the steps, the output calls
    return run(task, method, seed, Status.REACHED_TARGET if reached else Status.COMPLETED, steps=steps,
               timed_s=timed, init_s=0.01, output_s=0.002, suboptimality=sub,
               time_to_target_s=timed if reached else None, steps_to_target=steps if reached else None, **extra)


SCHEMA = {"run_id": pl.String, "task": pl.String, "task_params": pl.String, "hardware": pl.String,
          "framework": pl.String, "method": pl.String, "hyperparameters": pl.String, "seed": pl.Int64,
          "status": pl.String, "steps": pl.Int64, "timed_s": pl.Float64, "init_s": pl.Float64,
          "output_s": pl.Float64, "suboptimality": pl.Float64, "time_to_target_s": pl.Float64,
          "steps_to_target": pl.Int64, "target_value": pl.Float64}


def bench_runs() -> pl.DataFrame:
    """softmax: gd-spike in two settings (spiked: all diverged; control), adam with different
    steps and one diverged seed, and lbfgs with a skipped run."""
    rows = []
    for seed in range(3):
        rows.append(run("softmax", "gd-spike", seed, Status.DIVERGED, hyperparameters=SPIKED, steps=30,
                        timed_s=0.05, suboptimality=5.96e8))
        rows.append(finished("softmax", "gd-spike", seed, steps=200, step_s=1e-3, sub=8.78e-5 * (1 + seed),
                             reached=False, hyperparameters=CONTROL))
    rows += [
        finished("softmax", "adam", 0, steps=10, step_s=2e-3, sub=1e-7, reached=True),
        finished("softmax", "adam", 1, steps=40, step_s=3e-3, sub=3e-7, reached=True),
        run("softmax", "adam", 2, Status.DIVERGED, steps=5, timed_s=0.5, suboptimality=None),
        finished("softmax", "lbfgs", 0, steps=5, step_s=2e-2, sub=2.25e-11, reached=True),
        finished("softmax", "lbfgs", 1, steps=7, step_s=2e-2, sub=3.5e-11, reached=True),
        run("softmax", "lbfgs", 2, Status.SKIPPED),
    ]
    return pl.DataFrame(rows, schema=SCHEMA)


def rendered(renderable, width: int) -> str:
    console = Console(width=width, record=True, file=io.StringIO())
    console.print(renderable)
    return console.export_text()


def legend(text: str) -> dict[str, str]:
    """The legend's ``code = label`` entries (a long label continues on indented lines)."""
    entries: dict[str, str] = {}
    code = None
    for line in text.splitlines():
        found = re.match(r"^([a-z]\d+) = (.*?)\s*$", line)
        if found:
            code, entries[found[1]] = found[1], found[2]
        elif code is not None and line.startswith("     ") and line.strip():
            entries[code] += " " + line.strip()
        else:
            code = None
    return entries


# -- the scorer's table ---------------------------------------------------------------------------


def test_results_table_rows_are_configurations_with_the_scorers_numbers() -> None:
    runs = bench_runs()
    table = score.results_table(runs)
    assert table.height == 4  # gd-spike's two settings are two rows: never pooled
    by = {(r["method"], r["hyperparameters"]): r for r in table.iter_rows(named=True)}
    spiked, control = by[("gd-spike", SPIKED)], by[("gd-spike", CONTROL)]
    adam, lbfgs = by[("adam", "{}")], by[("lbfgs", "{}")]
    # Only the hyperparameter that varies within gd-spike is named.
    assert (spiked["setting"], control["setting"], adam["setting"]) == ("spike_every=50", "spike_every=0", "")
    assert spiked["variant"] == "softmax"  # one variant: no parameter named
    # A failed group: every run failed, its medians are infinite (not nan).
    assert (spiked["n_runs"], spiked["n_reached"], spiked["n_failed"], spiked["n_skipped"]) == (3, 0, 3, 0)
    assert spiked["median_suboptimality"] == INF and spiked["median_time_to_target_s"] == INF
    assert spiked["median_time_per_step_s"] is None and spiked["median_steps"] == 30
    # Skipped is counted apart, not failed, and is no sample.
    assert (lbfgs["n_runs"], lbfgs["n_failed"], lbfgs["n_skipped"], lbfgs["n_reached"]) == (2, 0, 1, 2)
    assert lbfgs["median_steps"] == statistics.median([5, 7])
    # Medians with failures as infinite, computed another way.
    rows = runs.filter(pl.col("method") == "adam").to_dicts()
    subs = [INF if r["status"] in FAILED else r["suboptimality"] for r in rows]
    ttts = [INF if r["status"] in FAILED or r["time_to_target_s"] is None else r["time_to_target_s"] for r in rows]
    assert adam["median_suboptimality"] == statistics.median(subs) == 3e-7
    assert adam["median_time_to_target_s"] == pytest.approx(statistics.median(ttts))
    assert adam["median_steps"] == statistics.median([10, 40, 5])
    # Time per step: the clock less init and output, over the steps, of the runs that did not fail.
    per_step = [(r["timed_s"] - r["init_s"] - r["output_s"]) / r["steps"] for r in rows if r["status"] not in FAILED]
    assert adam["median_time_per_step_s"] == pytest.approx(statistics.median(per_step)) == pytest.approx(2.5e-3)
    assert control["median_time_per_step_s"] == pytest.approx(1e-3)
    assert control["median_suboptimality"] == pytest.approx(statistics.median([8.78e-5 * (1 + s) for s in range(3)]))
    assert control["median_time_to_target_s"] == INF  # never reached


def test_results_table_agrees_with_the_other_scoring_tables() -> None:
    runs = bench_runs()
    table = score.results_table(runs)
    medians = score.medians(runs)
    joined = table.join(medians, on=list(score.CONFIG_KEYS), suffix="_m")
    for column in ("n_runs", "n_reached", "n_failed", "n_skipped", "median_suboptimality"):
        assert joined[column].to_list() == joined[f"{column}_m"].to_list()


def test_results_table_of_a_frame_without_metric_columns() -> None:
    runs = bench_runs().drop("suboptimality", "steps_to_target", "target_value", "init_s", "output_s")
    table = score.results_table(runs)
    assert table.height == 4 and table["median_suboptimality"].dtype == pl.Float64
    assert table.filter(pl.col("n_failed") == 0)["median_suboptimality"].is_null().all()
    assert table["median_time_to_target_s"].is_null().all()  # no target: no time to target
    assert score.results_table(runs.clear()).is_empty()


def test_status_groups_are_the_records() -> None:
    prepared = score.prepare(bench_runs()).collect()
    assert set(prepared.filter("failed")["status"]) == {Status.DIVERGED}
    assert set(prepared.filter(~pl.col("counted"))["status"]) == set(NOT_RUN)


# -- rendering --------------------------------------------------------------------------------------


@pytest.mark.parametrize("width", [100, 160])
def test_bench_table_fits_and_prints_every_number_whole(width: int) -> None:
    table = score.results_table(bench_runs())
    text = rendered(results_renderable(table), width)
    print(text)
    lines = text.splitlines()
    assert max(map(len, lines)) <= width
    assert "results (median over seeds)" in text and "framework torch" in text and "hardware cpu" in text
    numbers = [f"{v:.3g}" for c in ("median_suboptimality", "median_time_to_target_s", "median_steps")
               for v in table[c].to_list()]
    numbers += [f"{1e3 * v:.3g}" for v in table["median_time_per_step_s"].drop_nulls().to_list()]
    assert {"inf", "2.88e-11", "0.000176", "3e-07", "2.5"} <= set(numbers)
    for value in (*numbers, "0/3", "2/2", "2/3"):
        assert re.search(rf"(^|\s){re.escape(value)}(\s|$)", text), value
    assert not re.search(r"\d…|…\d|e[+-]?…", text)  # no cut numbers
    codes = legend(text)
    labels = {"gd-spike spike_every=50", "gd-spike spike_every=0"}
    for label in labels:  # whole in the table, or through the legend
        assert label in text.replace("\n", " ") or label in codes.values()
    for code in codes:
        assert re.search(rf"(^|\s){code}(\s|$)", "\n".join(lines[: lines.index(next(l for l in lines if l.startswith(f"{code} = ")))])), code
    assert "lr=" not in text  # lr does not vary within gd-spike


def test_bench_table_shows_skipped_apart_from_failed() -> None:
    text = rendered(results_renderable(score.results_table(bench_runs())), 160)
    header = next(line for line in text.splitlines() if "failed" in line and "skipped" in line)
    failed_at, skipped_at = header.index("failed") + len("failed"), header.index("skipped") + len("skipped")
    lbfgs = next(line for line in text.splitlines() if "lbfgs" in line)
    assert lbfgs[failed_at - 1] == "0" and lbfgs[skipped_at - 1] == "1"


def many_methods() -> pl.DataFrame:
    """15 methods x 2 task variants x 3 seeds, two frameworks for some, a few failures."""
    rows = []
    for m in range(15):
        for t, params in enumerate(('{"dataset":"breast_cancer","d":30}', '{"dataset":"synthetic","d":30}')):
            for seed in range(3):
                extra = {"task_params": params, "framework": "jax" if m % 4 == 0 else "torch",
                         "hyperparameters": json.dumps({"lr": 10.0 ** -(m % 3)})}
                if m == 14 and t == 1:
                    rows.append(run("logreg", f"method-{m:02d}", seed, Status.DIVERGED, steps=3, **extra))
                else:
                    rows.append(finished("logreg", f"method-{m:02d}", seed, steps=10 * (m + 1) + seed,
                                         step_s=1e-4 * (m + 1) * (1 + 0.1 * seed), sub=1.234567e-9 * (m + 1),
                                         reached=m % 5 != 4, **extra))
    return pl.DataFrame(rows, schema=SCHEMA)


@pytest.mark.parametrize("width", [100, 160])
def test_report_tables_of_15_methods_fit_and_keep_numbers_whole(width: int) -> None:
    tables = score.report(many_methods(), n_boot=100)
    shown = score.display_tables(tables)
    text = "".join(rendered(r, width) for r in report_renderables(tables))
    if width == 100:
        print(text)
    lines = text.splitlines()
    assert max(map(len, lines)) <= width
    assert "│││" not in text and "…" not in text
    flat = " ".join(text.split())
    keys = {"problem", "method", "framework"}
    texts = {score.LABELS["tied_with"], score.LABELS["failures"]}
    codes = legend(text)
    for name, frame in shown.items():
        for column in frame.columns:
            for cell in frame[column].to_list():
                if column in keys:  # whole, wrapped at its break points, or abbreviated with a legend
                    assert cell in codes.values() or cell in flat or cell.replace(",", ", ") in flat \
                        or all(piece in flat for piece in re.split(r"(?=\[)|(?<=,)", cell) if piece), (column, cell)
                elif column not in texts:  # numbers and intervals: whole on one line
                    assert any(cell in line for line in lines), (name, column, cell)
    for code, label in codes.items():
        assert any(label in frame[c].to_list() for frame in shown.values() for c in frame.columns if c in keys)
        assert re.search(rf"(^|\s){code}(\s|$)", text), code


def test_fit_table_splits_a_too_wide_table_repeating_its_keys() -> None:
    columns = [FitColumn("name", ["alpha", "beta"], kind="key")]
    columns += [FitColumn(f"value {i}", [f"{1.2345678e-5 * i:.6e}", "inf"]) for i in range(1, 13)]
    text = rendered(FitTable("wide", columns), 80)
    assert max(map(len, text.splitlines())) <= 80
    assert "wide (1 of " in text and text.count("alpha") >= 2
    for i in range(1, 13):
        assert f"{1.2345678e-5 * i:.6e}" in text


def test_fit_table_wraps_or_abbreviates_long_labels_with_a_legend() -> None:
    label = "gd-spike lr=3, spike_every=50, spike_factor=1000, warmup=10, schedule=cosine"
    columns = [FitColumn("method", [label, "adam"], kind="key"),
               *(FitColumn(f"number {i}", ["5.96e+08", "inf"]) for i in range(6))]
    wrapped = rendered(FitTable("t", columns), 100)  # room for the label in two lines: wrapped at its commas
    assert max(map(len, wrapped.splitlines())) <= 100 and wrapped.count("5.96e+08") == 6
    assert not legend(wrapped) and "gd-spike lr=3, spike_every=50," in wrapped
    abbreviated = rendered(FitTable("t", columns), 72)  # no room: abbreviated, with a legend
    assert max(map(len, abbreviated.splitlines())) <= 72 and abbreviated.count("5.96e+08") == 6
    assert legend(abbreviated) == {"c1": label}
    assert re.search(r"^c1 +5\.96e\+08", abbreviated, flags=re.MULTILINE)
