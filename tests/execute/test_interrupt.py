"""The CLI under stress: SIGKILL mid-matrix then a rerun, and two benches sharing one store."""

from __future__ import annotations

import collections
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
from _execute_helpers import CATALOG

from harness.store import read_runs

HARNESS = [sys.executable, "-m", "harness.cli"]
RUNS = 12  # exec-matrix: 2 sizes x 2 frameworks x 3 seeds, about 0.4 s each

# Two benches on one store and a kill mid-matrix assert on timing: alone, not beside a parallel pass (one of four
# parallel passes saw the second of two sharing benches stop with ENOENT; not seen alone, cause not found yet).
pytestmark = pytest.mark.serial


def bench(store: Path, counter: Path, *extra: str) -> subprocess.Popen:
    env = dict(os.environ, HARNESS_TEST_COUNTER=str(counter), COLUMNS="200")
    command = [*HARNESS, "bench", "--suite", "exec-matrix", "--catalog", str(CATALOG), "--store", str(store), *extra]
    return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def executions(counter: Path) -> collections.Counter:
    """How many times each run (framework, n, start point) began, from the test method's counter file."""
    lines = counter.read_text().splitlines() if counter.exists() else []
    return collections.Counter(line.split(" ", 1)[1] for line in lines)


def snapshot(store: Path) -> dict[str, tuple[int, int, str]]:
    """Finished runs: inode, mtime and finished_at of each runs file (an atomic rewrite changes the inode)."""
    frame = read_runs(store)
    finished_at = dict(zip(frame["run_id"], frame["finished_at"]))
    out = {}
    for path in (store / "runs").glob("*.parquet"):
        stat = path.stat()
        out[path.stem] = (stat.st_ino, stat.st_mtime_ns, finished_at[path.stem])
    return out


def test_sigkill_mid_matrix_then_rerun_keeps_every_finished_run_and_redoes_none(tmp_path):
    store, counter = tmp_path / "store", tmp_path / "counter.txt"
    first = bench(store, counter, "-j", "2")
    deadline = time.monotonic() + 120
    while len(list((store / "runs").glob("*.parquet"))) < 3:
        assert first.poll() is None, first.communicate()[0]
        assert time.monotonic() < deadline, "no run finished in 120 s"
        time.sleep(0.05)
    workers = [p.pid for p in psutil.Process(first.pid).children(recursive=True)]
    first.send_signal(signal.SIGKILL)
    first.wait()
    kept = snapshot(store)
    assert 3 <= len(kept) < RUNS, "the kill came too late to interrupt the matrix"
    time.sleep(0.5)
    assert not [p for p in workers if psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE]

    second = bench(store, counter, "-j", "2")
    out, _ = second.communicate(timeout=300)
    assert second.returncode == 0, out
    assert f"{len(kept)} already in" in out and f"{RUNS - len(kept)} to run" in out
    after = snapshot(store)
    assert len(after) == RUNS
    assert {run_id: after[run_id] for run_id in kept} == kept  # untouched: same file, same finish time
    runs = read_runs(store)
    assert runs.height == RUNS and set(runs["status"]) == {"completed"}
    # Only the runs cut by the kill (at most one per worker) began twice.
    counts = executions(counter)
    assert len(counts) == RUNS and sum(counts.values()) - RUNS <= 2 and max(counts.values()) <= 2
    assert not list((store / "claims").iterdir())  # every claim released


def test_two_benches_on_one_store_split_the_matrix_and_run_each_run_once(tmp_path):
    store, counter = tmp_path / "store", tmp_path / "counter.txt"
    benches = [bench(store, counter, "-j", "1") for _ in range(2)]
    outputs = [b.communicate(timeout=300)[0] for b in benches]
    assert [b.returncode for b in benches] == [0, 0], outputs
    counts = executions(counter)
    assert len(counts) == RUNS and set(counts.values()) == {1}, counts  # no run executed twice
    runs = read_runs(store)
    assert runs.height == RUNS and set(runs["status"]) == {"completed"}
    assert len({line.split()[0] for line in counter.read_text().splitlines()}) >= 2  # both took a share
