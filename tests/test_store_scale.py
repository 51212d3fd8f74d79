"""What keeps a bench's store costs proportional to its plan: the verified index, plan reads, tiered compaction."""

from __future__ import annotations

import os

import polars as pl
import pytest

import harness.store as store_module
from harness.store import VERIFIED_INDEX, CorruptFileWarning, Store, compact, read_runs, read_traces


def row(run_id: str, **extra) -> dict:
    return {"run_id": run_id, "task": "t", "method": "m", "status": "completed", "seed": 0, **extra}


def points(n: int) -> list[dict]:
    return [{"step": s, "time_s": 0.1 * s, "oracle_calls": s, "objective": 1.0 / (s + 1)} for s in range(n)]


@pytest.fixture
def read_backs(monkeypatch):
    """The per-run files read back to check them (``_file_problem`` calls), by file name."""
    seen: list[str] = []
    check = store_module._file_problem

    def counted(path, *args, **kwargs):
        seen.append(path.name)
        return check(path, *args, **kwargs)

    monkeypatch.setattr(store_module, "_file_problem", counted)
    return seen


def test_a_written_pair_is_read_back_once_and_never_again_by_a_later_bench(tmp_path, read_backs):
    writer = Store(tmp_path)
    for run_id in ("a", "b"):
        writer.write_run(row(run_id), points(3))
    assert sorted(read_backs) == ["a.parquet"] * 2 + ["b.parquet"] * 2  # the writer, from the page cache
    lines = (tmp_path / VERIFIED_INDEX).read_text().splitlines()
    assert sorted(line.split("\t")[0] for line in lines) == ["runs/a.parquet", "runs/b.parquet",
                                                             "traces/a.parquet", "traces/b.parquet"]
    read_backs.clear()
    assert Store(tmp_path).finished_run_ids() == {"a", "b"}  # a later bench: stat only
    assert read_backs == []


def test_a_file_changed_after_it_was_indexed_is_read_again_and_moved_aside(tmp_path, read_backs):
    writer = Store(tmp_path)
    for run_id in ("good", "cut"):
        writer.write_run(row(run_id), points(3))
    path = tmp_path / "traces" / "cut.parquet"
    path.write_bytes(path.read_bytes()[:-20])
    read_backs.clear()
    with pytest.warns(CorruptFileWarning, match="cut.parquet.*moved to"):
        assert Store(tmp_path).finished_run_ids() == {"good"}
    assert read_backs == ["cut.parquet"]  # the changed trace alone: its row is unchanged, indexed
    assert (tmp_path / "damaged" / "traces" / "cut.parquet").exists()


def test_a_garbled_index_costs_read_backs_never_a_wrong_answer(tmp_path, read_backs):
    writer = Store(tmp_path)
    writer.write_run(row("a"), points(2))
    index = tmp_path / VERIFIED_INDEX
    index.write_text("runs/a.parquet\tnot a number\n\x00\x01garbage\ntraces/zzz.parquet\t1\t2\t3\n")
    read_backs.clear()
    assert Store(tmp_path).finished_run_ids() == {"a"}
    assert sorted(read_backs) == ["a.parquet", "a.parquet"]
    assert "runs/a.parquet\t" in index.read_text()  # vouched again


def test_a_plan_read_opens_the_per_run_files_of_its_runs_only(tmp_path, monkeypatch):
    store = Store(tmp_path)
    for index in range(6):
        store.write_run(row(f"part{index}", seed=index), points(2))
    compact(tmp_path)
    for index in range(20):
        store.write_run(row(f"loose{index}", seed=index), points(2))
    opened: list[str] = []
    read = pl.read_parquet

    def counted(source, *args, **kwargs):
        opened.append(os.path.basename(str(source)))
        return read(source, *args, **kwargs)

    monkeypatch.setattr(pl, "read_parquet", counted)
    wanted = {"loose3", "part2", "nowhere"}
    got = read_runs(tmp_path, ["run_id", "seed"], run_ids=wanted)
    assert sorted(got.rows()) == [("loose3", 3), ("part2", 2)]
    assert [name for name in opened if not name.startswith("part-")] == ["loose3.parquet"]
    monkeypatch.setattr(pl, "read_parquet", read)
    everything = read_runs(tmp_path).filter(pl.col("run_id").is_in(sorted(wanted)))
    assert read_runs(tmp_path, run_ids=wanted).sort("run_id").equals(everything.sort("run_id"))


def part_sizes(root) -> list[int]:
    parts = sorted((root / "runs").glob("part-*.parquet"))
    return [pl.read_parquet(p, columns=["run_id"]).height for p in parts]


def test_tiered_compaction_grows_parts_like_a_binary_counter_and_keeps_every_newest_attempt(tmp_path):
    store = Store(tmp_path)
    written: dict[str, int] = {}
    for batch in range(7):
        for index in range(4):
            store.write_run(row(f"b{batch}-{index}", seed=batch), points(index + 1))
            written[f"b{batch}-{index}"] = index + 1
        if batch == 3:  # a rerun of a run that sits in a part by now: its new attempt must win
            store.write_run(row("b0-0", status="error", error="again"), points(9))
            written["b0-0"] = 9
        assert compact(tmp_path, tiered=True) >= 4
        assert store.loose_count() == 0
    # 7 batches of 4 runs: 4, 8, 8+4, 16, 16+4, 16+8, 16+8+4 (the rerun rides along in a batch).
    assert sorted(part_sizes(tmp_path), reverse=True) == [16, 8, 4]
    runs = read_runs(tmp_path)
    assert runs.height == len(written) == 28
    assert runs.filter(pl.col("run_id") == "b0-0").select("status", "attempt").rows() == [("error", 1)]
    traces = read_traces(tmp_path)
    assert dict(traces.group_by("run_id").len().iter_rows()) == written  # each run's newest trace, once
    assert Store(tmp_path).finished_run_ids() == set(written)
    compact(tmp_path)  # a full compaction merges the tiers into one part
    assert part_sizes(tmp_path) == [28] and read_runs(tmp_path).sort("run_id").equals(runs.sort("run_id"))


def test_compaction_prunes_the_index_of_the_files_it_merged(tmp_path):
    store = Store(tmp_path)
    for index in range(3):
        store.write_run(row(f"r{index}"), points(2))
    assert len((tmp_path / VERIFIED_INDEX).read_text().splitlines()) == 6
    compact(tmp_path)
    store.write_run(row("new"), points(2))
    listed = sorted(line.split("\t")[0] for line in (tmp_path / VERIFIED_INDEX).read_text().splitlines())
    assert listed == ["runs/new.parquet", "traces/new.parquet"]


class _Recorder:
    """An executor that runs nothing: each claimed run comes back as a finished result at once."""

    def map(self, runs):
        for run in runs:
            yield type("R", (), {"row": row(run.run_id), "trace": points(2), "status": "completed"})()


class _Run:
    def __init__(self, run_id: str) -> None:
        self.run_id = run_id


def test_drive_compacts_the_store_whenever_enough_per_run_files_wait(tmp_path):
    from harness.execute import drive

    store = Store(tmp_path)
    for index in range(2):  # left by an earlier bench
        store.write_run(row(f"old{index}"), points(2))
    results = drive([_Run(f"r{index}") for index in range(11)], store, _Recorder(), compact_past=4)
    assert len(results) == 11
    assert store.loose_count() < 4  # never more than compact_past files wait
    assert sum(part_sizes(tmp_path)) + store.loose_count() == 13
    assert set(read_runs(tmp_path)["run_id"]) == {"old0", "old1", *(f"r{index}" for index in range(11))}
    assert drive([_Run(f"r{index}") for index in range(11)], Store(tmp_path), _Recorder(), compact_past=4) == []


def test_drive_leaves_the_store_alone_below_the_threshold_or_when_told(tmp_path):
    from harness.execute import drive

    drive([_Run(f"r{index}") for index in range(5)], Store(tmp_path), _Recorder(), compact_past=None)
    drive([_Run(f"s{index}") for index in range(5)], Store(tmp_path), _Recorder())  # the default: 1,000
    assert part_sizes(tmp_path) == [] and Store(tmp_path).loose_count() == 10


@pytest.fixture
def file_reads(monkeypatch):
    """How the per-run files are read: ``"together"`` for one multi-file read, ``"each"`` for a file's own."""
    seen: list[str] = []
    together = store_module._read_together

    def counted(files, layout):
        frame = together(files, layout)
        seen.append("each" if frame is None else "together")
        return frame

    monkeypatch.setattr(store_module, "_read_together", counted)
    return seen


def test_per_run_files_are_read_together_and_give_what_file_by_file_reads_give(tmp_path, file_reads, monkeypatch):
    writer = Store(tmp_path)
    for i in range(12):  # different metrics and probes: the nested columns hold each run's own names
        extra = {"train_accuracy": 0.5 + i / 100} if i % 3 else {"grad_norm": float(i)}
        writer.write_run(row(f"r{i:02d}", seed=i, **extra),
                         [] if i == 5 else [{**p, f"probe/p{i % 2}": 1.0} for p in points(4 + i)])
    file_reads.clear()
    runs, traces = read_runs(tmp_path), read_traces(tmp_path)
    assert file_reads == ["together", "together"]  # a trace without points is no obstacle
    monkeypatch.setattr(store_module, "_read_together", lambda files, layout: None)
    assert runs.equals(read_runs(tmp_path)) and traces.equals(read_traces(tmp_path))
    assert runs.height == 12 and traces.height == sum(4 + i for i in range(12) if i != 5)


@pytest.mark.parametrize("damage", ["another run", "not parquet", "strings"])
def test_a_damaged_file_among_others_sends_them_back_to_file_by_file_reads(tmp_path, file_reads, damage):
    writer = Store(tmp_path)
    for i in range(6):
        writer.write_run(row(f"r{i}", seed=i, train_accuracy=0.9), points(3))
    bad = tmp_path / "runs" / "r3.parquet"
    if damage == "another run":
        bad.write_bytes((tmp_path / "runs" / "r1.parquet").read_bytes())
    elif damage == "not parquet":
        bad.write_bytes(b"PAR1 garbage PAR1")
    else:
        pl.read_parquet(bad).with_columns(pl.col("status").cast(pl.Categorical).cast(pl.String),
                                          pl.lit("x").alias("steps")).write_parquet(bad)
    file_reads.clear()
    with pytest.warns(CorruptFileWarning, match="r3.parquet"):
        runs = read_runs(tmp_path)
    assert file_reads[0] == "each"
    assert sorted(runs["run_id"]) == ["r0", "r1", "r2", "r4", "r5"]
