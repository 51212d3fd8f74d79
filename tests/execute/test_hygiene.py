"""Run hygiene in the local pool: what a run leaves running is named in its row and killed with its worker.

The ``litter-*`` methods (``catalog/methods/testing/litter.py``) leave a Python thread, a child
process or a double-forked ``setsid`` grandchild, and write what they left to
``$HARNESS_TEST_LITTER``; the tests check that each is dead once the pool is done with it.
"""

from __future__ import annotations

import time
from pathlib import Path

import psutil
import pytest
from _execute_helpers import runs_of

from harness.execute.pool import PoolExecutor, kill_tree
from harness.execute.worker import LeftBehind
from harness.run import execute_run
from harness.spec import Budget


@pytest.fixture
def litter(tmp_path, monkeypatch) -> Path:
    """The file the litter methods write what they leave to (the workers inherit the variable)."""
    path = tmp_path / "litter.txt"
    monkeypatch.setenv("HARNESS_TEST_LITTER", str(path))
    return path


def left(litter: Path) -> dict[str, list[int]]:
    """``{kind: [pid, ...]}``: for a thread, the pid of the worker it ran in."""
    out: dict[str, list[int]] = {}
    for line in litter.read_text().splitlines() if litter.exists() else []:
        kind, pid, *_ = line.split()
        out.setdefault(kind, []).append(int(pid))
    return out


def running(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def assert_all_dead(pids: list[int], timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while any(running(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not [p for p in pids if running(p)], "left running"


def test_what_a_run_leaves_is_recorded_and_its_worker_replaced_and_killed(source, catalog, litter):
    honest = runs_of(catalog, seeds=(0, 1, 2, 3))
    matrix = [honest[0]]
    for kind, run in zip(("thread", "process", "setsid"), honest[1:], strict=True):
        # The thread run also leaves a thread that threading does not know.
        extra = {"litter-thread": {"leave": "thread+raw"}} if kind == "thread" else None
        matrix += [*runs_of(catalog, methods=(f"litter-{kind}",), hyperparameters=extra), run]
    executor = PoolExecutor(source, jobs=1)
    results = list(executor.map(matrix))
    assert [r.row["method"] for r in results] == [r.method for r in matrix]
    assert {r.status for r in results} == {"completed"}  # the leftovers do not change the runs' results
    assert executor.workers_started == 4  # one, then a replacement after each run that left something

    rows = {r.row["method"]: r.row for r in results}
    assert rows["litter-thread"]["left_behind"].startswith("2 threads (threads: litter-spin, thread ")
    assert rows["litter-process"]["left_behind"].startswith("1 process (processes: ")
    assert "sleep" in rows["litter-process"]["left_behind"]
    assert rows["litter-setsid"]["left_behind"].startswith("1 process (processes: ")
    assert rows["litter-setsid"]["error"] is None
    # Honest runs leave nothing, and their results are those of a quiet process.
    for result, run in zip(results[::2], honest, strict=True):
        assert "left_behind" not in result.row
        assert result.row["objective"] == execute_run(run, catalog).row["objective"]

    pids = left(litter)
    assert sorted(pids) == ["process", "raw", "setsid", "thread"]
    assert_all_dead([pid for found in pids.values() for pid in found])  # the thread's worker too


def test_honest_runs_of_both_frameworks_share_one_worker(source, catalog):
    runs = runs_of(catalog, frameworks=("torch", "jax"), seeds=(0, 1))
    # An idle thread pool left open (as torch.compile leaves one) runs nothing: it is no leftover.
    runs[1:1] = runs_of(catalog, methods=("litter-thread",), hyperparameters={"litter-thread": {"leave": "idle_pool"}})
    executor = PoolExecutor(source, jobs=1)
    results = list(executor.map(runs))
    assert {r.status for r in results} == {"completed"}
    assert not [r for r in results if "left_behind" in r.row]
    assert executor.workers_started == 1  # framework thread pools started lazily are not leftovers


@pytest.mark.parametrize("framework", ["torch", "jax"])
def test_a_worker_imports_only_the_framework_of_its_runs(source, catalog, litter, framework):
    # torch alone is ~210 MiB of a worker and jax ~170 MiB: a one-framework plan pays for one.
    runs = runs_of(catalog, methods=("litter-thread",), frameworks=(framework,), seeds=(0, 1),
                   hyperparameters={"litter-thread": {"leave": "imports", "at": 2}})
    results = list(PoolExecutor(source, jobs=1).map(runs))
    assert {r.status for r in results} == {"completed"}
    lines = [line.split() for line in litter.read_text().splitlines()]
    assert [imported for _, _, imported in lines] == [framework] * 2


def test_the_pool_looks_for_leftover_processes_from_outside_the_worker_too(source, catalog, litter):
    # The run disables the worker's own look (it runs in the worker's process); the pool's remains.
    subvert = {"litter-process": {"leave": "subvert+process"}}
    runs = runs_of(catalog, methods=("litter-process",), hyperparameters=subvert)
    executor = PoolExecutor(source, jobs=1)
    (result,) = executor.map(runs)
    assert result.status == "completed" and result.row["left_behind"].startswith("1 process (processes: ")
    assert_all_dead(left(litter)["process"])


def test_what_a_run_left_dies_when_it_is_killed_at_its_time_budget(source, catalog, litter):
    hanging = runs_of(catalog, methods=("litter-setsid",), budget=Budget(steps=20, seconds=1),
                      hyperparameters={"litter-setsid": {"leave": "setsid+process", "then": "hang"}})
    (result,) = PoolExecutor(source, jobs=1, grace_s=1.0).map(hanging)
    assert result.status == "timeout"
    pids = left(litter)
    assert sorted(pids) == ["process", "setsid"]
    assert_all_dead([*pids["process"], *pids["setsid"]])


def test_what_a_run_left_dies_when_the_bench_ends(source, catalog, litter):
    hanging = runs_of(catalog, methods=("litter-setsid",), hyperparameters={"litter-setsid": {"then": "hang"}})
    (honest,) = runs_of(catalog, hyperparameters={"plain-gd": {"step_sleep_s": 0.05}})
    results = PoolExecutor(source, jobs=2).map([*hanging, honest])
    assert next(results).status == "completed"  # the honest run, beside the hanging one
    deadline = time.monotonic() + 60
    while "setsid" not in left(litter):  # the hanging run has left its grandchild
        assert time.monotonic() < deadline
        time.sleep(0.02)
    results.close()  # the bench stops with the hanging run still going: its worker is shut down
    assert_all_dead(left(litter)["setsid"])


def test_what_a_run_left_dies_when_its_worker_process_exits(source, catalog, litter):
    runs = runs_of(catalog, methods=("litter-setsid",), hyperparameters={"litter-setsid": {"leave": "setsid+process",
                                                                                           "then": "exit"}})
    (result,) = PoolExecutor(source, jobs=1).map(runs)
    assert result.status == "error"
    assert result.row["error"].strip().splitlines()[-1] == "the worker process exited with code 3 during the run"
    pids = left(litter)
    assert_all_dead([*pids["process"], *pids["setsid"]])  # the worker's keeper killed them


DRIVER = """
import sys
sys.path.insert(0, {tests!r})
from _execute_helpers import BUILTIN_HARDWARE, CATALOG, runs_of
from harness.execute.pool import PoolExecutor
from harness.execute.worker import CatalogSource

source = CatalogSource.of([CATALOG], files=BUILTIN_HARDWARE, builtin=False)
runs = runs_of(source.load(), methods=("litter-setsid",), hyperparameters={{"litter-setsid": {{"then": "hang"}}}})
list(PoolExecutor(source, jobs=1).map(runs))
"""


def test_what_a_run_left_dies_when_the_bench_is_killed(litter):
    import signal
    import subprocess
    import sys

    driver = subprocess.Popen([sys.executable, "-c", DRIVER.format(tests=str(Path(__file__).parent))])
    try:
        deadline = time.monotonic() + 60
        while "setsid" not in left(litter):
            assert driver.poll() is None and time.monotonic() < deadline
            time.sleep(0.02)
        workers = [p.pid for p in psutil.Process(driver.pid).children(recursive=True)]
        driver.send_signal(signal.SIGKILL)
        driver.wait()
        assert_all_dead([*left(litter)["setsid"], *workers])
    finally:
        driver.kill()


def test_kill_tree_reaches_descendants_in_other_sessions():
    import subprocess
    import sys

    script = ("import os, sys, time\n"
              "if os.fork() == 0:\n"
              "    os.setsid()\n"
              "    if os.fork() == 0:\n"
              "        print(os.getpid(), flush=True); time.sleep(600)\n"
              "    time.sleep(600)\n"
              "time.sleep(600)\n")
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    grandchild = int(parent.stdout.readline())
    assert psutil.Process(grandchild).ppid() != parent.pid
    killed = kill_tree(parent.pid)
    assert parent.pid in killed and grandchild in killed and len(killed) == 3
    parent.wait(timeout=10)
    parent.stdout.close()
    assert_all_dead(killed)


def test_left_behind_describes_what_it_found():
    assert not LeftBehind()
    assert LeftBehind(threads=("a", "b"), processes=((12, "sleep"),)).describe() == (
        "2 threads, 1 process (threads: a, b; processes: 12 sleep)"
    )
