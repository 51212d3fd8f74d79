"""One misbehaving run cannot take the bench down (issue 9): socket, thread, escaped child, death mid-way.

The ``misbehave`` method (``catalog/methods/testing/misbehave.py``) writes to its worker's
socket what no worker sends, or floods its output; ``litter-thread`` leaves a spinning thread;
``fault-exit`` and ``fault-hang`` die or hang mid-way. Each fails its own run alone, with the
trace it had reached, and the runs after it run in a fresh worker.
"""

from __future__ import annotations

import tempfile
import threading
import time
from pathlib import Path

import psutil
import pytest
from _execute_helpers import runs_of

from harness.execute import drive
from harness.execute.pool import PoolExecutor
from harness.run import execute_run
from harness.spec import Budget
from harness.store import Store, read_runs, read_traces


def last_line(text: str | None) -> str:
    return (text or "").strip().splitlines()[-1]


def running(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def wait_dead(pid: int, timeout_s: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while running(pid) and time.monotonic() < deadline:
        time.sleep(0.02)
    return not running(pid)


@pytest.fixture
def marker(tmp_path, monkeypatch) -> Path:
    """The file a pickle creates if anyone unpickles it (the workers inherit the variable)."""
    path = tmp_path / "unpickled.txt"
    monkeypatch.setenv("HARNESS_TEST_LITTER", str(path))
    return path


def misbehaving(catalog, write: str, *, seed: int = 0, budget: Budget | None = None, **more):
    return runs_of(catalog, methods=("misbehave",), seeds=(seed,), budget=budget,
                   hyperparameters={"misbehave": {"write": write, **more}})


SOCKET_FAULTS = {
    "garbage": "a frame that is not JSON",
    "pickle": "a frame that is not JSON",
    "shape": "a 'result' message of the wrong shape: ['result', 1, 2]",
    "forged": "the result's row is not the run's",
    "huge": "a frame of length 2147483647",
}


def test_what_a_run_writes_to_its_workers_socket_fails_that_run_alone(source, catalog, marker, tmp_path):
    matrix = []
    for seed, write in enumerate(SOCKET_FAULTS):
        matrix += [*misbehaving(catalog, write), *runs_of(catalog, seeds=(seed,))]
    executor = PoolExecutor(source, jobs=1)
    results = drive(matrix, Store(tmp_path / "store"), executor)
    assert len(results) == len(matrix) == 2 * len(SOCKET_FAULTS)
    assert read_runs(tmp_path / "store").height == len(matrix)  # every run stored, the bad ones too
    assert [r.row["run_id"] for r in results] == [run.run_id for run in matrix]  # one worker: in order
    for run, result in zip(matrix, results, strict=True):
        if run.method == "plain-gd":
            assert result.status == "completed"
            assert result.row["objective"] == execute_run(run, catalog).row["objective"]
            continue
        write = run.hyperparameters["write"]
        assert result.status == "error", write
        error = last_line(result.row["error"])
        assert error.startswith("the worker sent a malformed message: "), write
        assert SOCKET_FAULTS[write] in error and error.endswith("; the worker was replaced"), write
        # Fault at step 3, evaluation every 2 steps: the points of steps 0 and 2 were streamed.
        assert [p["step"] for p in result.trace] == [0, 2] and result.row["steps"] == 2, write
        assert result.row["objective"] == result.trace[-1]["objective"]
    assert not marker.exists()  # the pickle that runs code was never unpickled
    assert executor.workers_started == 1 + len(SOCKET_FAULTS)  # each bad message cost its worker, nothing more


def test_a_partial_frame_does_not_hold_the_driver(source, catalog, marker):
    (partial,) = misbehaving(catalog, "partial", then="hang", budget=Budget(steps=20, seconds=5.0))
    (honest,) = runs_of(catalog)
    results = list(PoolExecutor(source, jobs=2, grace_s=1.0).map([partial, honest]))
    # The honest run (a second) ends while the driver holds 10 bytes of a 100-byte frame (for 6 s).
    assert [r.row["method"] for r in results] == ["plain-gd", "misbehave"]
    assert [r.status for r in results] == ["completed", "timeout"]
    assert last_line(results[1].row["error"]).startswith("killed at the wall-clock limit")
    assert [p["step"] for p in results[1].trace] == [0, 2]


def test_the_runs_after_a_run_that_leaves_a_thread_run_in_a_fresh_worker(source, catalog, tmp_path, monkeypatch):
    counter, litter = tmp_path / "counter.txt", tmp_path / "litter.txt"
    monkeypatch.setenv("HARNESS_TEST_COUNTER", str(counter))
    monkeypatch.setenv("HARNESS_TEST_LITTER", str(litter))
    (thread_run,) = runs_of(catalog, methods=("litter-thread",))
    later = runs_of(catalog, seeds=(0, 1, 2, 3))
    executor = PoolExecutor(source, jobs=1)
    results = list(executor.map([thread_run, *later]))
    assert [r.status for r in results] == ["completed"] * 5
    assert results[0].row["left_behind"] == "1 thread (threads: litter-spin)"
    (line,) = litter.read_text().splitlines()
    thread_worker = int(line.split()[1])  # the server process the spinning thread ran in
    pids = {int(line.split()[0]) for line in counter.read_text().splitlines()}
    assert len(pids) == 1 and thread_worker not in pids  # all four in one fresh worker, not the thread's
    assert not running(thread_worker)  # the thread died with its worker, before the later runs
    assert executor.workers_started == 2


def test_an_escaped_child_that_writes_to_the_socket_fails_its_run_and_dies(source, catalog, marker):
    runs = [*misbehaving(catalog, "escaped"), *runs_of(catalog, seeds=(0, 1))]
    executor = PoolExecutor(source, jobs=1)
    results = list(executor.map(runs))
    assert [r.status for r in results] == ["error", "completed", "completed"]
    assert "a frame that is not JSON" in last_line(results[0].row["error"])
    grandchild = int(Path(str(marker) + ".pid").read_text())
    assert wait_dead(grandchild)  # out of the worker's session, still killed with its tree
    assert not marker.exists()
    assert executor.workers_started == 2


def test_a_run_that_dies_mid_way_keeps_its_trace_and_the_steps_it_reached(source, catalog, tmp_path):
    (exits,) = runs_of(catalog, methods=("fault-exit",), hyperparameters={"fault-exit": {"at": 11}})
    (hangs,) = runs_of(catalog, methods=("fault-hang",), budget=Budget(steps=20, seconds=1.0))
    (segfaults,) = runs_of(catalog, methods=("fault-signal",))
    store = tmp_path / "store"
    results = {r.row["method"]: r for r in drive([exits, hangs, segfaults], Store(store),
                                                 PoolExecutor(source, jobs=2, grace_s=1.0))}
    expected = {"fault-exit": ("error", "the worker process exited with code 3 during the run", 10),
                "fault-hang": ("timeout", "killed at the wall-clock limit", 2),
                "fault-signal": ("error", "the worker process was killed by signal SIGSEGV (11)", 2)}
    for method, (status, cause, steps) in expected.items():
        result = results[method]
        assert result.status == status
        assert last_line(result.row["error"]).startswith(cause)  # the row still says what killed it
        assert [p["step"] for p in result.trace] == list(range(0, steps + 1, 2))
        last = result.trace[-1]
        assert result.row["steps"] == steps
        assert result.row["oracle_calls"] == last["oracle_calls"] == result.row["calls_grad"]
        assert result.row["objective"] == last["objective"] and result.row["timed_s"] == last["time_s"]
    stored = read_traces(store)
    assert stored.filter(stored["run_id"] == exits.run_id)["step"].to_list() == [0, 2, 4, 6, 8, 10]


def test_a_run_that_prints_without_end_fills_neither_the_disk_nor_its_error_text(source, catalog, tmp_path,
                                                                                monkeypatch):
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setenv("TMPDIR", str(scratch))  # the workers' temporary files
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))  # the driver's
    (run,) = misbehaving(catalog, "print", print_mb=50, then="hang", budget=Budget(steps=20, seconds=2.0))
    largest, done = [0], threading.Event()

    def watch() -> None:
        while not done.is_set():
            size = sum(p.stat().st_size for p in scratch.rglob("*") if p.is_file())
            largest[0] = max(largest[0], size)
            time.sleep(0.05)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        (result,) = PoolExecutor(source, jobs=1, grace_s=1.0).map([run])
    finally:
        done.set()
        watcher.join()
    assert result.status == "timeout"
    error = result.row["error"]
    assert len(error) < 4000
    lines = error.splitlines()
    assert lines[0] == "worker output:" and lines[1].startswith("... (") and lines[1].endswith(" bytes before)")
    assert int(lines[1][5:].split()[0].replace(",", "")) > 50 * 2**20 - 4000  # what came before, counted
    assert lines[-2] == "END OF OUTPUT" and lines[-1].startswith("killed at the wall-clock limit")
    assert largest[0] < 2**20  # 50 MiB printed, nothing of it on disk
    assert not list(scratch.glob("harness-*"))
