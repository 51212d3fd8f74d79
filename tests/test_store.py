"""The store's run claims (several benches, one store) and its handling of corrupt files."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import polars as pl
import pytest

from harness.store import CorruptFileWarning, Store, compact, read_runs, read_traces


def row(run_id: str, **extra) -> dict:
    return {"run_id": run_id, "task": "t", "method": "m", "status": "completed", "seed": 0, **extra}


def hold_claim(root, run_id: str) -> subprocess.Popen:
    """Another live process that claims ``run_id`` and keeps it until its stdin closes."""
    code = textwrap.dedent(f"""
        import sys
        from harness.store import Store
        print(Store({str(root)!r}).claim({run_id!r}), flush=True)
        sys.stdin.read()
    """)
    holder = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "True"
    return holder


def test_a_run_claimed_by_a_live_process_is_left_to_it(tmp_path):
    holder = hold_claim(tmp_path, "r1")
    try:
        store = Store(tmp_path)
        assert not store.claim("r1")
        assert store.claim("r2")
        content = (tmp_path / "claims" / "r1").read_text()
        assert f"pid {holder.pid} " in content  # who holds it, for people to read
    finally:
        holder.stdin.close()
        holder.wait()


def test_the_claims_of_a_dead_process_are_taken_over(tmp_path):
    holder = hold_claim(tmp_path, "r1")
    holder.kill()
    holder.wait()
    assert (tmp_path / "claims" / "r1").exists()  # a stale claim: its holder died without releasing it
    store = Store(tmp_path)
    assert store.claim("r1")
    assert f"pid {os.getpid()} " in (tmp_path / "claims" / "r1").read_text()


def test_a_finished_run_cannot_be_claimed_and_a_release_removes_the_claim(tmp_path):
    store = Store(tmp_path)
    assert store.claim("r1")
    assert store.claim("r1")  # already ours
    store.write_run(row("r1"))
    store.release("r1")
    assert not (tmp_path / "claims" / "r1").exists()
    assert not Store(tmp_path).claim("r1")  # finished: nobody runs it again
    store.release("never-claimed")


def test_a_truncated_runs_file_is_named_moved_aside_and_does_not_count_as_finished(tmp_path):
    store = Store(tmp_path)
    for run_id in ("good", "cut"):
        store.write_run(row(run_id), [{"step": 0, "time_s": 0.0, "oracle_calls": 0}])
    path = tmp_path / "runs" / "cut.parquet"
    path.write_bytes(path.read_bytes()[:-20])  # what a full disk or an interrupted copy leaves
    with pytest.warns(CorruptFileWarning, match="cut.parquet"):
        assert read_runs(tmp_path)["run_id"].to_list() == ["good"]  # a reader names it and leaves it
    assert path.exists()
    with pytest.warns(CorruptFileWarning, match="cut.parquet.*moved to"):
        assert store.finished_run_ids() == {"good"}
    assert not path.exists() and (tmp_path / "damaged" / "runs" / "cut.parquet").exists()
    assert (tmp_path / "damaged" / "traces" / "cut.parquet").exists()  # its trace goes with it
    assert store.claim("cut")  # so its run is redone ...
    store.write_run(row("cut"))
    store.release("cut")
    assert store.finished_run_ids() == {"good", "cut"}  # ... as attempt 0 again


def test_a_garbled_runs_file_is_named_and_skipped_when_read(tmp_path):
    store = Store(tmp_path)
    store.write_run(row("good"))
    store.write_run(row("bad"))
    path = tmp_path / "runs" / "bad.parquet"
    data = bytearray(path.read_bytes())
    data[4:200] = b"\0" * 196  # footer intact, pages destroyed
    path.write_bytes(bytes(data))
    with pytest.warns(CorruptFileWarning, match="bad.parquet"):
        assert read_runs(tmp_path)["run_id"].to_list() == ["good"]


def test_drive_skips_runs_another_bench_holds(tmp_path):
    from harness.execute import drive

    class Recorder:
        def __init__(self):
            self.seen = []

        def map(self, runs):
            for run in runs:
                self.seen.append(run.run_id)
                yield type("R", (), {"row": row(run.run_id), "trace": [], "status": "completed"})()

    class Run:
        def __init__(self, run_id):
            self.run_id = run_id

    holder = hold_claim(tmp_path, "b")
    try:
        recorder = Recorder()
        results = drive([Run("a"), Run("b"), Run("c")], Store(tmp_path), recorder)
        assert recorder.seen == ["a", "c"] and len(results) == 2
        assert sorted(p.name for p in (tmp_path / "claims").iterdir()) == ["b"]  # ours released, its kept
    finally:
        holder.stdin.close()
        holder.wait()


def test_a_run_compacted_meanwhile_counts_as_finished(tmp_path):
    store = Store(tmp_path)
    store.write_run(row("r1"))
    assert compact(tmp_path) == 1 and not (tmp_path / "runs" / "r1.parquet").exists()
    assert not Store(tmp_path).claim("r1")


def points(n: int) -> list[dict]:
    return [{"step": s, "time_s": 0.1 * s, "oracle_calls": s} for s in range(n)]


def test_a_rerun_replaces_the_stored_run_also_in_a_part_and_through_compactions(tmp_path):
    store = Store(tmp_path)
    store.write_run(row("r1", status="error", error="boom"), points(2))
    store.write_run(row("r2"), points(3))
    assert compact(tmp_path) == 2  # the old attempt lives in a part
    store = Store(tmp_path)
    assert not store.claim("r1")  # finished: a plain bench leaves it alone
    assert store.claim("r1", replacing=0)
    store.write_run(row("r1", status="completed"), points(5))
    store.release("r1")
    for step in ("loose beside a part", "two parts", "compacted again"):
        runs = read_runs(tmp_path).sort("run_id")
        assert runs.select("run_id", "status", "attempt").rows() == [("r1", "completed", 1), ("r2", "completed", 0)], step
        assert read_traces(tmp_path, ["r1"])["step"].to_list() == list(range(5)), step  # the new trace alone
        assert read_traces(tmp_path).height == 5 + 3, step
        assert Store(tmp_path).finished_run_ids() == {"r1", "r2"}
        compact(tmp_path)
    assert not Store(tmp_path).claim("r1", replacing=0)  # another bench replaced attempt 0 already


def test_a_newer_loose_attempt_wins_and_compaction_drops_the_older(tmp_path):
    store = Store(tmp_path)
    store.write_run(row("r1", status="timeout"), points(4))
    store.write_run(row("r1", status="reached_target"), points(2))  # a second write is a new attempt
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == ["r1.1.parquet", "r1.parquet"]
    assert read_runs(tmp_path).select("status", "attempt").rows() == [("reached_target", 1)]
    assert read_traces(tmp_path)["step"].to_list() == [0, 1]
    assert compact(tmp_path) == 1
    assert [p.name.startswith("part-") for p in (tmp_path / "runs").iterdir()] == [True]
    assert [p.name.startswith("part-") for p in (tmp_path / "traces").iterdir()] == [True]
    assert read_runs(tmp_path).select("status", "attempt").rows() == [("reached_target", 1)]
    assert read_traces(tmp_path)["step"].to_list() == [0, 1]


def test_a_trace_being_written_is_neither_read_nor_removed(tmp_path):
    store = Store(tmp_path)
    store.write_run(row("r1"), points(2))
    # A rerun has written its trace and not yet its row: readers keep showing attempt 0.
    pl.DataFrame([{"run_id": "r1", **p} for p in points(7)]).write_parquet(tmp_path / "traces" / "r1.1.parquet")
    assert read_traces(tmp_path)["step"].to_list() == [0, 1]
    compact(tmp_path)
    assert (tmp_path / "traces" / "r1.1.parquet").exists()
    assert read_traces(tmp_path)["step"].to_list() == [0, 1]
