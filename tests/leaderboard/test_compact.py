"""``harness.store.compact``: merged part files, read exactly once at every moment."""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path

import polars as pl
import pytest
import storegen

import harness.store as store_module
from harness.store import CorruptFileWarning, Store, compact, read_runs, read_traces, scan_runs, scan_traces


def snapshot(root: Path) -> tuple[pl.DataFrame, pl.DataFrame]:
    runs = read_runs(root).sort("run_id")
    traces = read_traces(root).sort("run_id", "step")
    return runs.select(sorted(runs.columns)), traces.select(sorted(traces.columns))


@pytest.fixture
def store(small_store: Path, tmp_path: Path) -> Path:
    root = tmp_path / "store"
    shutil.copytree(small_store, root)
    return root


def test_compaction_keeps_every_run_and_point(store: Path) -> None:
    runs_before, traces_before = snapshot(store)
    ids_before = Store(store).finished_run_ids()
    assert compact(store) == runs_before.height
    assert [p.name.startswith("part-") for p in (store / "runs").iterdir()] == [True]
    assert len(list((store / "traces").iterdir())) == 1
    runs_after, traces_after = snapshot(store)
    assert runs_after.equals(runs_before) and traces_after.equals(traces_before)
    assert Store(store).finished_run_ids() == ids_before
    assert compact(store) == 0


def test_runs_written_after_a_compaction_are_merged_with_the_part_into_one(store: Path) -> None:
    compact(store)
    row, trace = storegen.simulate("softmax", "adam", seed=7)
    Store(store).write_run(row, trace)
    assert read_runs(store).height == 70 and row["run_id"] in Store(store).finished_run_ids()
    assert read_traces(store, [row["run_id"]]).height == len(trace)
    assert compact(store) == 1
    runs = read_runs(store)
    assert runs.height == 70 and runs["run_id"].n_unique() == 70
    assert len(list((store / "runs").glob("part-*.parquet"))) == 1  # parts are merged, never accumulate
    assert len(list((store / "traces").iterdir())) == 1
    assert read_traces(store, [row["run_id"]]).height == len(trace)


def test_an_interrupted_compaction_never_shows_a_run_twice(store: Path, tmp_path: Path) -> None:
    runs_before, traces_before = snapshot(store)
    saved = tmp_path / "saved"
    shutil.copytree(store, saved)
    compact(store)
    # The crash came after both parts were written and before the per-run files were removed.
    for kind in ("runs", "traces"):
        for path in (saved / kind).iterdir():
            shutil.copy(path, store / kind / path.name)
    runs_after, traces_after = snapshot(store)
    assert runs_after.equals(runs_before) and traces_after.equals(traces_before)
    assert compact(store) == 0  # cleans the leftovers
    assert len(list((store / "runs").iterdir())) == 1 and len(list((store / "traces").iterdir())) == 1
    assert snapshot(store)[0].equals(runs_before)


def test_a_traces_part_without_its_runs_part_is_ignored_and_removed(store: Path) -> None:
    _, traces_before = snapshot(store)
    # The crash came after the traces part was written and before the runs part was.
    orphan = store / "traces" / "part-00000000000000000001-deadbeef.parquet"
    read_traces(store).write_parquet(orphan)
    assert snapshot(store)[1].equals(traces_before)
    compact(store)
    assert not orphan.exists()
    assert snapshot(store)[1].equals(traces_before)


def test_a_reader_racing_a_compaction_retries(store: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    runs_before, traces_before = snapshot(store)
    stale = store_module._snapshot(store)  # listed before the compaction below
    compact(store)
    calls = {"n": 0}
    real = store_module._snapshot

    def first_stale(root: Path) -> store_module._Snapshot:
        calls["n"] += 1
        return stale if calls["n"] == 1 else real(root)

    monkeypatch.setattr(store_module, "_snapshot", first_stale)
    runs = scan_runs(store).collect().sort("run_id")
    assert calls["n"] == 2 and runs.select(sorted(runs.columns)).equals(runs_before)
    calls["n"] = 0
    traces = scan_traces(store).collect().sort("run_id", "step")
    assert calls["n"] == 2 and traces.select(sorted(traces.columns)).equals(traces_before)


def test_a_corrupt_file_is_named_and_moved_aside(store: Path) -> None:
    bad = store / "runs" / "corrupt.parquet"
    bad.write_bytes(b"not parquet")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CorruptFileWarning)
        assert read_runs(store).height == 69  # readers name it and leave it in place
    assert bad.exists()
    with pytest.warns(CorruptFileWarning, match="corrupt.parquet.*moved to"):
        assert compact(store) == 69
    assert not bad.exists() and (store / "damaged" / "runs" / "corrupt.parquet").read_bytes() == b"not parquet"
    assert read_runs(store).height == 69


def test_two_parts_alone_are_merged_into_one(store: Path) -> None:
    runs_before, traces_before = snapshot(store)
    compact(store)
    row, trace = storegen.simulate("softmax", "adam", seed=7)
    Store(store).write_run(row, trace)
    # A second part, as an older compaction left one per call.
    name = "part-09999999999999999999-00000000.parquet"
    read_traces(store, [row["run_id"]]).write_parquet(store / "traces" / name)
    read_runs(store).filter(pl.col("run_id") == row["run_id"]).write_parquet(store / "runs" / name)
    (store / "runs" / f"{row['run_id']}.parquet").unlink()
    (store / "traces" / f"{row['run_id']}.parquet").unlink()
    assert len(list((store / "runs").iterdir())) == 2 and read_runs(store).height == 70
    assert compact(store) == 0  # no per-run file, and yet the two parts become one
    assert len(list((store / "runs").iterdir())) == 1 and len(list((store / "traces").iterdir())) == 1
    runs_after, traces_after = snapshot(store)
    assert runs_after.height == 70 and traces_after.height == traces_before.height + len(trace)
    assert runs_after.filter(pl.col("run_id") != row["run_id"]).equals(runs_before)


def test_lazy_scans_select_columns_and_filter_run_ids(store: Path) -> None:
    compact(store)
    ids = read_runs(store).filter(pl.col("task") == "logreg")["run_id"].to_list()
    lazy = scan_traces(store, ids)
    assert set(lazy.select("run_id").collect()["run_id"]) == set(ids) - {
        r for r in ids if read_traces(store, [r]).is_empty()
    }
    assert scan_runs(store).select("run_id", "status").collect().width == 2


def test_the_leaderboard_reads_a_compacted_store_alike(app, store: Path) -> None:
    before = app(store).dataframe[0].value
    compact(store)
    after = app(store).dataframe[0].value
    assert after.equals(before)
