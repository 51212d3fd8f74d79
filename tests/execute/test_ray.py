"""The same matrix through -j 1, -j 2 and a real local Ray instance: same final metrics per run id."""

from __future__ import annotations

import warnings

import pytest
from _execute_helpers import runs_of

from harness.execute import drive
from harness.execute.pool import PoolExecutor
from harness.execute.ray import RayExecutor
from harness.spec import Budget
from harness.store import Store, read_runs

ray = pytest.importorskip("ray")

METRICS = ("objective", "suboptimality", "steps", "oracle_calls", "status")


@pytest.fixture(scope="module")
def local_ray():
    """One local Ray instance for the module (starting one takes seconds)."""
    with warnings.catch_warnings():
        # Ray forks and execs its processes; jax, imported by earlier tests, warns about any fork.
        warnings.filterwarnings("ignore", message=r"os\.fork\(\) was called", category=RuntimeWarning)
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="warning")
    yield ray
    ray.shutdown()


def final(store) -> dict[str, tuple]:
    frame = read_runs(store)
    return {row["run_id"]: tuple(row[m] for m in METRICS) for row in frame.iter_rows(named=True)}


def test_pool_and_ray_give_the_same_final_metrics_per_run_id(local_ray, source, catalog, tmp_path):
    runs = runs_of(catalog, frameworks=("torch", "jax"), grid={"n": (40, 63)}, seeds=(0, 1))
    assert len(runs) == 8
    executors = {
        "j1": PoolExecutor(source, jobs=1),
        "j2": PoolExecutor(source, jobs=2),
        "ray": RayExecutor(source),  # joins the instance this process started
    }
    finals = {}
    for name, executor in executors.items():
        drive(runs, Store(tmp_path / name), executor)
        finals[name] = final(tmp_path / name)
    assert set(finals["j1"]) == {r.run_id for r in runs}
    assert all(v[-1] == "completed" for v in finals["j1"].values())
    assert finals["j1"] == finals["j2"] == finals["ray"]
    assert ray.is_initialized()  # the executor left alone the instance it did not start


def test_faults_on_ray_get_the_statuses_of_the_pool(local_ray, source, catalog):
    runs = (runs_of(catalog, methods=("fault-exit", "fault-raise", "plain-gd"))
            + runs_of(catalog, methods=("fault-hang",), budget=Budget(steps=20, seconds=1.0)))
    results = {r.row["method"]: r for r in RayExecutor(source, grace_s=1.0).map(runs)}
    assert {m: r.status for m, r in results.items()} == {
        "fault-exit": "error", "fault-raise": "error", "plain-gd": "completed", "fault-hang": "timeout",
    }
    assert results["fault-exit"].row["error"].endswith("the worker process exited with code 3 during the run")
    assert results["fault-hang"].row["error"].splitlines()[-1].startswith("killed at the wall-clock limit")
    for method in ("fault-exit", "fault-hang"):  # dead mid-way: the trace and steps it reached come back
        assert [p["step"] for p in results[method].trace] == [0, 2] and results[method].row["steps"] == 2


def test_ray_tasks_leave_no_temporary_files_and_keep_a_tail_of_the_output(local_ray, source, catalog):
    import tempfile
    from pathlib import Path

    before = set(Path(tempfile.gettempdir()).glob("harness-*"))
    runs = (runs_of(catalog, methods=("misbehave",), hyperparameters={"misbehave": {"write": "print", "print_mb": 20,
                                                                                     "then": "hang"}},
                    budget=Budget(steps=20, seconds=1.0))
            + runs_of(catalog))
    results = {r.row["method"]: r for r in RayExecutor(source, grace_s=1.0).map(runs)}
    assert results["plain-gd"].status == "completed" and results["misbehave"].status == "timeout"
    error = results["misbehave"].row["error"]
    assert len(error) < 4000 and error.splitlines()[-2] == "END OF OUTPUT"
    # The Ray workers and their warm local workers are still up: they hold no file of ours.
    assert set(Path(tempfile.gettempdir()).glob("harness-*")) <= before


def test_a_profile_the_cluster_cannot_hold_is_skipped(local_ray, source, catalog):
    (run,) = runs_of(catalog, hardware="gpu")
    (result,) = RayExecutor(source).map([run])
    assert result.status == "skipped" and "the Ray cluster has 0" in result.row["error"]
