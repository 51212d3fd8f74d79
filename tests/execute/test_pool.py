"""The local pool with real processes: every fault gets its status, the healthy runs all finish."""

from __future__ import annotations

import json
import os

import pytest
from _execute_helpers import BUILTIN_HARDWARE, CATALOG, runs_of

from harness.execute import drive, make_executor
from harness.execute.pool import PoolExecutor, default_jobs
from harness.execute.worker import thread_env
from harness.plan import make_plan
from harness.run import execute_run
from harness.store import Store, read_runs


def last_line(text: str | None) -> str:
    return (text or "").strip().splitlines()[-1]


def test_every_fault_gets_its_status_and_the_healthy_runs_complete(source, catalog, tmp_path):
    plan = make_plan(catalog, suite="exec-faults")
    executor = PoolExecutor(source, jobs=2, grace_s=1.0)
    store = Store(tmp_path / "store")
    results = drive(plan.runs, store, executor)
    assert len(results) == len(plan.runs) == 9
    by_method = {(r.row["method"], r.row["framework"]): r for r in results}
    status = {key: r.status for key, r in by_method.items()}
    assert status == {
        ("plain-gd", "torch"): "completed",
        ("plain-gd", "jax"): "completed",
        ("fault-raise", "torch"): "error",
        ("fault-nan", "torch"): "diverged",
        ("fault-exit", "torch"): "error",
        ("fault-signal", "torch"): "error",
        ("fault-alloc", "torch"): "oom",
        ("fault-torch-alloc", "torch"): "oom",
        ("fault-hang", "torch"): "timeout",
    }
    error = {key: r.row["error"] for key, r in by_method.items()}
    assert last_line(error["fault-raise", "torch"]) == "RuntimeError: injected failure at step 3"
    assert last_line(error["fault-nan", "torch"]) == "objective is nan at step 4"
    assert last_line(error["fault-exit", "torch"]) == "the worker process exited with code 3 during the run"
    assert last_line(error["fault-signal", "torch"]) == (
        "the worker process was killed by signal SIGSEGV (11) during the run"
    )
    assert "Fatal Python error: Segmentation fault" in error["fault-signal", "torch"]  # the worker's own output
    assert last_line(error["fault-alloc", "torch"]) == "MemoryError"
    assert "can't allocate memory" in error["fault-torch-alloc", "torch"]
    assert last_line(error["fault-hang", "torch"]).startswith("killed at the wall-clock limit")
    hang = by_method["fault-hang", "torch"].row
    assert 2.0 <= hang["wall_s"] < 5.0  # budget 1 s + grace 1 s, then killed
    # Rows of killed runs have the full format: the store reads them beside the others.
    stored = read_runs(tmp_path / "store")
    assert stored.height == 9 and stored["host"].null_count() == 0
    assert set(stored["status"]) == {"completed", "error", "diverged", "oom", "timeout"}
    # The healthy runs are those of a quiet process: the faults beside them changed nothing.
    for framework in ("torch", "jax"):
        (alone,) = runs_of(catalog, frameworks=(framework,))
        assert by_method["plain-gd", framework].row["objective"] == execute_run(alone, catalog).row["objective"]


def test_workers_are_warm_and_replaced_after_a_death(source, catalog):
    healthy = runs_of(catalog, seeds=(0, 1, 2, 3))
    executor = PoolExecutor(source, jobs=2)
    results = list(executor.map(healthy))
    assert [r.status for r in results] == ["completed"] * 4
    assert executor.workers_started == 2  # every run after the first two reused a worker
    dying = runs_of(catalog, methods=("fault-exit",), seeds=(0,)) + runs_of(catalog, seeds=(0, 1))
    executor = PoolExecutor(source, jobs=1)
    results = list(executor.map(dying))
    assert [r.status for r in results] == ["error", "completed", "completed"]
    assert executor.workers_started == 2  # the dead worker's replacement served both healthy runs


def test_workers_pin_their_threads_and_unavailable_hardware_is_skipped(source, catalog):
    (run,) = runs_of(catalog, methods=("fault-report",))
    (gpu_run,) = runs_of(catalog, hardware="gpu")
    jobs = 2 if len(os.sched_getaffinity(0)) >= 2 else 1
    results = {r.row["hardware"]: r for r in PoolExecutor(source, jobs=jobs).map([run, gpu_run])}
    import torch

    if not torch.cuda.is_available():
        assert results["gpu"].status == "skipped"
        assert "needs 1 CUDA device(s); this host has 0" in results["gpu"].row["error"]
    result = results["test-cpu"]
    settings = json.loads(last_line(result.row["error"]).split("REPORT ", 1)[1])
    assert settings["OMP_NUM_THREADS"] == settings["OPENBLAS_NUM_THREADS"] == "1"
    assert "xla_cpu_multi_thread_eigen=false" in settings["XLA_FLAGS"]
    assert settings["torch_threads"] == 1
    assert len(settings["cpus"]) == 1  # pinned to a core of its own


def test_thread_env_keeps_the_users_xla_flags():
    env = thread_env(1, base={"XLA_FLAGS": "--xla_dump_to=/tmp/x"})
    assert env["XLA_FLAGS"].startswith("--xla_dump_to=/tmp/x ") and "multi_thread_eigen=false" in env["XLA_FLAGS"]
    assert thread_env(4, base={})["MKL_NUM_THREADS"] == "4" and "XLA_FLAGS" not in thread_env(4, base={})


def test_default_jobs_divides_the_cores_by_the_threads_of_a_run(catalog):
    cores = len(os.sched_getaffinity(0))
    assert default_jobs(catalog.hardware["cpu"].spec) == cores
    assert default_jobs(catalog.hardware["cpu-ranks"].spec) == max(1, cores // 2)


def test_make_executor_checks_its_options():
    with pytest.raises(ValueError, match="unknown executor"):
        make_executor("threads")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="--address applies to the ray executor"):
        make_executor("pool", address="auto")
    pool = make_executor("pool", jobs=3, catalog_roots=[str(CATALOG)], catalog_files=[str(p) for p in BUILTIN_HARDWARE],
                         builtin=False)
    assert isinstance(pool, PoolExecutor) and pool.jobs == 3 and pool.source.roots == (str(CATALOG.resolve()),)
