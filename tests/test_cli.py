"""The command line, through real processes: start-up cost, bench, resume after SIGINT and SIGKILL."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import polars as pl
import pytest

from harness.store import read_runs

TEST_CATALOG = Path(__file__).parent / "catalog"


def harness(*args: str, **kwargs) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "harness.cli", *args], capture_output=True, text=True, timeout=300, **kwargs)


@pytest.mark.parametrize("args", [["--help"], ["validate"], ["list", "methods"], ["schema", "task"]])
def test_light_commands_import_no_framework(args):
    code = (
        "import sys\nfrom harness.cli import app\n"
        f"try:\n    app({args!r}, standalone_mode=False)\nexcept SystemExit:\n    pass\n"
        "heavy = sorted(m for m in ('torch', 'jax', 'polars') if m in sys.modules)\n"
        "print('HEAVY', heavy)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert "HEAVY []" in out.stdout, out.stdout + out.stderr


def test_validate_builtin_catalog_exits_zero():
    out = harness("validate")
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("ok: ")


def test_validate_broken_file_exits_nonzero_naming_file_line_field(tmp_path):
    (tmp_path / "methods").mkdir()
    (tmp_path / "methods" / "m.yaml").write_text("id: m\nname: M\nfamily: f\npaper: p\nrequires: [grad]\nlr: 3\n"
                                                 "implementations: {torch: {optimizer: torch.optim.SGD}}\n")
    out = harness("validate", "methods/m.yaml", cwd=tmp_path)
    assert out.returncode == 2  # bad input
    assert "methods/m.yaml:6:1: lr: unknown field" in out.stderr.splitlines()
    bench = harness("bench", "--catalog", ".", "--store", "store", "--dry-run", cwd=tmp_path)
    assert bench.returncode == 2 and "methods/m.yaml:6:1: lr: unknown field" in bench.stderr.splitlines()
    assert harness("validate", "nowhere.yaml", cwd=tmp_path).returncode == 2
    assert not (tmp_path / "store").exists()


def test_schema_is_json_schema_of_every_kind():
    out = harness("schema")
    schemas = json.loads(out.stdout)
    assert set(schemas) == {"task", "method", "hardware", "suite"}
    assert schemas["task"]["additionalProperties"] is False


def test_bench_then_rerun_runs_nothing_new(tmp_path):
    store = tmp_path / "store"
    args = ["bench", "--suite", "toy", "--catalog", str(TEST_CATALOG), "--store", str(store), "--executor", "inline"]
    first = harness(*args)
    assert first.returncode == 0, first.stderr
    assert "4 runs, 0 already in" in first.stdout and f"store: {store.resolve()}" in first.stdout
    assert "results (median over seeds), one row per configuration" in first.stdout
    assert "skipped" in first.stdout and "ms/step" in first.stdout  # harness.score.results_table, rendered
    runs = read_runs(store)
    assert runs.height == 4 and set(runs["status"]) == {"reached_target"}
    # The declarations it ran are kept beside the runs (the leaderboard shows them without --catalog).
    kept = store / "declarations" / "methods" / "sleepy-gd.yaml"
    assert kept.read_text() == (TEST_CATALOG / "methods" / "toy" / "sleepy-gd.yaml").read_text()
    second = harness(*args)
    assert second.returncode == 0 and "4 runs, 4 already in" in second.stdout and "0 to run" in second.stdout
    assert read_runs(store).sort("run_id")["finished_at"].to_list() == runs.sort("run_id")["finished_at"].to_list()
    report = harness("report", "--store", str(store))
    assert report.returncode == 0 and "sleepy-gd" in report.stdout


def test_bench_rejects_bad_options_clearly(tmp_path):
    out = harness("bench", "--suite", "toy", "--catalog", str(TEST_CATALOG), "--store", str(tmp_path), "--set", "nope=1")
    assert out.returncode == 2 and "--set nope: no task parameter or method hyperparameter" in out.stderr
    out = harness("bench", "--suite", "nope", "--catalog", str(TEST_CATALOG), "--store", str(tmp_path))
    assert out.returncode == 2 and "unknown suite 'nope'" in out.stderr
    out = harness("bench", "--task", "nope", "--catalog", str(TEST_CATALOG), "--store", str(tmp_path))
    assert out.returncode == 2 and "unknown task 'nope'" in out.stderr
    out = harness("bench", "--suite", "toy", "--catalog", str(TEST_CATALOG), "--store", str(tmp_path), "--address", "x:1")
    assert out.returncode == 2 and "--address applies to the ray executor" in out.stderr
    assert harness("report", "--store", str(tmp_path / "none")).returncode == 2


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL], ids=["SIGINT", "SIGKILL"])
def test_interrupted_bench_keeps_finished_runs_and_resumes(tmp_path, sig):
    store = tmp_path / "store"
    # 8 runs of about 0.6 s each (30 evaluations sleeping 20 ms), so the signal lands mid-matrix.
    args = ["bench", "--suite", "toy", "--catalog", str(TEST_CATALOG), "--store", str(store), "--seeds", "4",
            "--set", "sleep_s=0.02", "--set", "lr=0.02", "--jobs", "1"]  # the default executor: a worker pool
    proc = subprocess.Popen([sys.executable, "-m", "harness.cli", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while len(list((store / "runs").glob("*.parquet"))) < 2:
        assert proc.poll() is None and time.monotonic() < deadline, "bench ended before it could be interrupted"
        time.sleep(0.05)
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == (130 if sig == signal.SIGINT else -signal.SIGKILL), err
    if sig == signal.SIGINT:
        assert "interrupted:" in out and "run the same command again" in out
    kept = read_runs(store)
    assert 2 <= kept.height < 8
    visible = [p for p in (store / "runs").iterdir() if not p.name.startswith(".")]
    assert all(p.suffix == ".parquet" for p in visible), "a temporary file was left visible"

    rerun = harness(*args)
    assert rerun.returncode == 0, rerun.stderr
    assert f"8 runs, {kept.height} already in" in rerun.stdout
    final = read_runs(store)
    assert final.height == 8 and final["run_id"].n_unique() == 8
    before = kept.select("run_id", "finished_at")
    after = final.join(before, on="run_id", suffix="_before")
    assert after.filter(pl.col("finished_at") != pl.col("finished_at_before")).is_empty(), "a finished run was redone"
