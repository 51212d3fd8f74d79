"""Damaged stores: every damage is named, then repaired (moved aside and run again) or refused.

Each test damages a store the way a disk, a copy or an older harness can, and checks that
the damage is named in a warning, that nothing is deleted (damaged files go to
``damaged/``), that the damaged run is run again (and is not left as a permanent error),
and that no run that had been stored whole is lost or redone.
"""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import textwrap
import warnings
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from harness.cli import app
from harness.store import CorruptFileWarning, Store, compact, read_runs, read_traces

TEST_CATALOG = Path(__file__).parent / "catalog"
#: Two torch runs of the toy suite (jax stays unimported: these tests are about the store).
ARGS = ["bench", "--suite", "toy", "--catalog", str(TEST_CATALOG), "--framework", "torch", "--executor", "inline"]


def bench(store: Path, *extra: str):  # noqa: ANN201
    result = CliRunner().invoke(app, [*ARGS, "--store", str(store), *extra])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    return result


def finished(store: Path) -> dict[str, str]:
    """run id -> finished_at of what the readers see."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CorruptFileWarning)
        runs = read_runs(store)
    return dict(zip(runs["run_id"].to_list(), runs["finished_at"].to_list()))


@pytest.fixture
def stored(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """A store of the two runs, and their finished_at."""
    store = tmp_path / "store"
    first = bench(store)
    assert first.exit_code == 0, first.output
    before = finished(store)
    assert len(before) == 2
    return store, before


def damage_and_rebench(store: Path, before: dict[str, str], victim: str, why: str) -> None:
    """Bench again: the damage is named with ``why``, the victim rerun, the other run kept as it was."""
    out = bench(store)
    assert out.exit_code == 0, out.output
    assert f"warning: {store}" in out.output and why in out.output and "moved to" in out.output, out.output
    assert "1 to run (1 of them again: damaged)" in out.output or "1 to run" in out.output
    after = finished(store)
    assert set(after) == set(before)
    assert after[victim] != before[victim]  # run again
    others = {r: t for r, t in before.items() if r != victim}
    assert {r: after[r] for r in others} == others  # a whole run is neither lost nor redone
    assert Store(store).finished_run_ids() == set(before)
    assert read_traces(store, [victim]).height > 0
    assert bench(store).output.count("0 to run") == 1  # repaired for good


def values_as_strings() -> pl.Expr:
    """The metric values inside the nested ``values`` column, stored as strings (what another tool may write)."""
    element = pl.element().struct
    return pl.col("values").list.eval(pl.struct(element.field("metric"), element.field("value").cast(pl.String)))


def victim_of(store: Path) -> str:
    return sorted(p.name.removesuffix(".parquet") for p in (store / "runs").glob("*.parquet"))[0]


def test_a_truncated_runs_file_is_moved_aside_and_run_again(stored) -> None:
    store, before = stored
    victim = victim_of(store)
    path = store / "runs" / f"{victim}.parquet"
    original = path.read_bytes()
    path.write_bytes(original[: len(original) // 2])
    damage_and_rebench(store, before, victim, "unreadable Parquet file")
    assert (store / "damaged" / "runs" / path.name).read_bytes() == original[: len(original) // 2]  # kept


def test_garbage_in_the_middle_with_intact_magic_bytes_is_not_finished(stored) -> None:
    store, before = stored
    victim = victim_of(store)
    path = store / "runs" / f"{victim}.parquet"
    data = bytearray(path.read_bytes())
    data[4:len(data) // 2] = os.urandom(len(data) // 2 - 4)  # magic bytes and footer intact
    path.write_bytes(bytes(data))
    assert data[:4] == b"PAR1" and data[-4:] == b"PAR1"
    with pytest.warns(CorruptFileWarning, match=victim):
        assert victim not in Store(store).finished_run_ids()  # named, moved aside: not finished
    assert (store / "damaged" / "runs" / path.name).exists() and (store / "damaged" / "traces" / path.name).exists()
    out = bench(store)
    assert out.exit_code == 0 and "1 to run" in out.output, out.output
    assert finished(store)[victim] != before[victim]


def test_numbers_stored_as_strings_are_named_never_spread_to_other_rows(stored) -> None:
    store, before = stored
    victim = victim_of(store)
    path = store / "runs" / f"{victim}.parquet"
    frame = pl.read_parquet(path)
    # A valid Parquet file: the numeric columns as strings (another tool rewrote it).
    frame.with_columns(pl.col("timed_s", "steps").cast(pl.String), values_as_strings()).write_parquet(path)
    with pytest.warns(CorruptFileWarning, match="column .* is String"):
        runs = read_runs(store)
    assert runs.height == 1 and runs.schema["timed_s"] == pl.Float64 and runs.schema["suboptimality"] == pl.Float64
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CorruptFileWarning)
        compact(store)  # moves it aside first: the part it writes has the layout's types
    assert pl.read_parquet_schema(next((store / "runs").glob("part-*.parquet")))["timed_s"] == pl.Float64
    out = bench(store)  # its table needs medians of numbers: no "median operation not supported for dtype str"
    assert out.exit_code == 0 and "results (median over seeds)" in out.output, out.output
    assert set(finished(store)) == set(before)


def test_a_metric_stored_as_strings_in_the_nested_values_is_damage(stored) -> None:
    store, before = stored
    victim = victim_of(store)
    path = store / "runs" / f"{victim}.parquet"
    pl.read_parquet(path).with_columns(values_as_strings()).write_parquet(path)
    damage_and_rebench(store, before, victim, "column values is List(Struct({'metric': String, 'value': String}))")


def test_a_part_of_an_older_compaction_with_strings_is_read_as_numbers_and_rewritten(stored) -> None:
    store, before = stored
    compact(store)
    (part,) = (store / "runs").glob("part-*.parquet")
    # What the old compaction persisted after one bad file: a numeric column as strings for all rows.
    pl.read_parquet(part).with_columns(pl.col("timed_s").cast(pl.String), values_as_strings()).write_parquet(part)
    with pytest.warns(CorruptFileWarning, match="not of the layout's type"):
        runs = read_runs(store)
    assert runs.height == 2 and runs.schema["timed_s"] == pl.Float64 and runs.schema["suboptimality"] == pl.Float64
    assert runs["timed_s"].null_count() == 0 and runs["suboptimality"].null_count() == 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CorruptFileWarning)
        bench(store)  # writes nothing: both stored
        Store(store).write_run({"run_id": "extra", "task": "t", "method": "m", "status": "completed", "seed": 0})
        compact(store)  # the next compaction rewrites the part with the layout's types
    (part,) = (store / "runs").glob("part-*.parquet")
    assert pl.read_parquet_schema(part)["timed_s"] == pl.Float64
    assert pl.read_parquet_schema(part)["values"] == pl.List(pl.Struct({"metric": pl.String, "value": pl.Float64}))
    with warnings.catch_warnings():
        warnings.simplefilter("error", CorruptFileWarning)
        assert set(finished(store)) == {*before, "extra"}


def test_a_corrupt_trace_makes_its_run_unfinished_and_it_is_run_again(stored) -> None:
    store, before = stored
    victim = victim_of(store)
    (store / "traces" / f"{victim}.parquet").write_bytes(b"PAR1 garbage PAR1")
    damage_and_rebench(store, before, victim, "its trace: unreadable Parquet file")


def test_a_missing_trace_makes_its_run_unfinished(stored) -> None:
    store, before = stored
    victim = victim_of(store)
    (store / "traces" / f"{victim}.parquet").unlink()
    damage_and_rebench(store, before, victim, "its traces file is missing")


def test_a_trace_of_another_type_is_damage_and_compact_does_not_merge_it(stored) -> None:
    store, before = stored
    victim = victim_of(store)
    path = store / "traces" / f"{victim}.parquet"
    pl.read_parquet(path).with_columns(pl.col("step").cast(pl.String)).write_parquet(path)
    with pytest.warns(CorruptFileWarning, match="column step is String"):
        assert compact(store) == 1  # the whole run alone
    assert (store / "damaged" / "traces" / path.name).exists()
    out = bench(store)
    assert out.exit_code == 0 and "1 to run" in out.output, out.output
    assert set(finished(store)) == set(before) and read_traces(store, [victim]).schema["step"] == pl.Int64


def test_a_corrupt_traces_part_moves_its_part_pair_aside_and_its_runs_are_run_again(stored) -> None:
    store, before = stored
    compact(store)
    (part,) = (store / "traces").glob("part-*.parquet")
    part.write_bytes(part.read_bytes()[:100])
    out = bench(store)
    assert out.exit_code == 0 and "its traces part: unreadable Parquet file" in out.output, out.output
    assert "2 to run" in out.output
    assert (store / "damaged" / "runs" / part.name).exists() and (store / "damaged" / "traces" / part.name).exists()
    assert set(finished(store)) == set(before)


def test_a_damaged_rerun_over_an_older_error_is_run_again_not_left_failed(tmp_path: Path) -> None:
    store = tmp_path / "store"
    assert bench(store).exit_code == 0
    victim = victim_of(store)
    # Attempt 0 was an error; attempt 1, its rerun, got damaged.
    path = store / "runs" / f"{victim}.parquet"
    pl.read_parquet(path).with_columns(pl.lit("error").alias("status"), pl.lit("boom").alias("error")).write_parquet(path)
    for kind in ("runs", "traces"):
        (store / kind / f"{victim}.1.parquet").write_bytes((store / kind / f"{victim}.parquet").read_bytes()[:50])
    out = bench(store)  # without --retry-failed: the rerun's result was lost, so the run is run again
    assert out.exit_code == 0, out.output
    assert "1 to run (1 of them again: damaged)" in out.output
    row = read_runs(store).filter(pl.col("run_id") == victim).row(0, named=True)
    assert (row["status"], row["attempt"]) == ("reached_target", 1)


def tree_digest(path: Path) -> dict[str, str]:
    return {str(p.relative_to(path)): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
            for p in sorted(path.rglob("*"))}


def test_a_read_only_store_is_refused_in_one_line_and_left_as_it_was(stored) -> None:
    store, before = stored
    if os.geteuid() == 0:
        if subprocess.run(["mount", "--bind", str(store), str(store)], capture_output=True).returncode:
            pytest.skip("mounting is not permitted here")
        undo = ["umount", str(store)]
        subprocess.run(["mount", "-o", "remount,bind,ro", str(store)], check=True)
    else:
        for directory in (store, store / "runs", store / "traces", store / "claims"):
            directory.chmod(0o555)
        undo = None
    try:
        digest = tree_digest(store)
        out = bench(store, "--force")
        assert out.exit_code == 3 and "Traceback" not in out.output
        assert f"error: cannot write the store {store}: " in out.output.strip().splitlines()[-1]
        assert tree_digest(store) == digest
        report = CliRunner().invoke(app, ["report", "--store", str(store), "--no-traces"])
        assert report.exit_code == 0 and "sleepy-gd" in report.output  # reading needs no writing
    finally:
        if undo:
            subprocess.run(undo, check=True)
        else:
            for directory in (store, store / "runs", store / "traces", store / "claims"):
                directory.chmod(0o755)
    assert finished(store) == before


@pytest.fixture
def tmpfs(tmp_path: Path):  # noqa: ANN201
    """A 4 MiB tmpfs (root only; skipped where mounting is not permitted)."""
    point = tmp_path / "tmpfs"
    point.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(point)],
                                           capture_output=True).returncode:
        pytest.skip("mounting a tmpfs needs root and a permitting container")
    try:
        yield point
    finally:
        subprocess.run(["umount", str(point)], check=True)


def pages(path: Path) -> int:
    return -(-path.stat().st_size // 4096) * 4096


def test_a_full_disk_stops_the_bench_keeping_every_finished_run(tmpfs: Path, stored) -> None:
    sample, _ = stored
    pair = max(pages(p) + pages(sample / "traces" / p.name) for p in (sample / "runs").glob("*.parquet"))
    store = tmpfs / "store"
    Store(store)
    # Room for about two runs and a half, claims and the writability probe: a later run finds the disk full.
    free = os.statvfs(tmpfs).f_bavail * os.statvfs(tmpfs).f_frsize
    room = 2 * pair + pair // 2 + 4 * 4096
    with open(tmpfs / "filler", "wb") as filler:
        filler.write(b"\0" * (free - room))
    out = bench(store, "--seeds", "5")
    assert out.exit_code == 3, out.output
    last = out.output.strip().splitlines()[-1]
    match = re.fullmatch(rf"error: no space left in {re.escape(str(store))}: (\d) runs kept, rerun to finish", last)
    assert match and 1 <= int(match[1]) < 5, out.output
    assert "Traceback" not in out.output
    visible = [p for d in ("runs", "traces", "claims") for p in (store / d).iterdir()]
    assert sorted(p.name for p in visible if p.parent.name == "runs") == sorted(
        p.name for p in visible if p.parent.name == "traces")  # no trace without its row
    assert not [p for p in visible if p.name.startswith(".") or p.parent.name == "claims"]  # no temporary file, no claim
    kept = finished(store)
    assert len(kept) == int(match[1])
    (tmpfs / "filler").unlink()
    rerun = bench(store, "--seeds", "5")
    assert rerun.exit_code == 0, rerun.output
    assert f"5 runs, {len(kept)} already in" in rerun.output
    after = finished(store)
    assert len(after) == 5 and {r: after[r] for r in kept} == kept


def test_a_full_disk_from_the_start_is_one_line(tmpfs: Path) -> None:
    with open(tmpfs / "filler", "wb") as filler:
        try:
            filler.write(b"\0" * (8 << 20))
        except OSError:
            pass
    out = bench(tmpfs / "store")
    assert out.exit_code == 3 and out.output.strip().splitlines()[-1] == f"error: no space left in {tmpfs / 'store'}: nothing was run"


def test_a_full_disk_mid_write_leaves_no_half_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = pl.DataFrame.write_parquet
    writes = {"n": 0}

    def full_at_the_fourth(frame: pl.DataFrame, file, *args, **kwargs):  # noqa: ANN001, ANN202 - the second run's row
        writes["n"] += 1
        if writes["n"] == 4:
            file.write(b"PAR1 and then the disk was full")
            raise pl.exceptions.ComputeError("parquet: underlying IO error: No space left on device (os error 28)")
        return real(frame, file, *args, **kwargs)

    monkeypatch.setattr(pl.DataFrame, "write_parquet", full_at_the_fourth)
    store = tmp_path / "store"
    out = bench(store)
    assert out.exit_code == 3 and out.output.strip().splitlines()[-1] == f"error: no space left in {store}: 1 runs kept, rerun to finish"
    assert len(list((store / "runs").iterdir())) == 1 and len(list((store / "traces").iterdir())) == 1
    monkeypatch.undo()
    assert bench(store).exit_code == 0 and len(finished(store)) == 2


def test_the_claims_of_dead_processes_are_cleaned(tmp_path: Path) -> None:
    import sys

    code = textwrap.dedent(f"""
        import os
        from harness.store import Store
        store = Store({str(tmp_path)!r})
        assert store.claim("dead-1") and store.claim("dead-2")
        os._exit(0)  # dies holding them: the files stay, the locks go
    """)
    subprocess.run([sys.executable, "-c", code], check=True)
    assert sorted(p.name for p in (tmp_path / "claims").iterdir()) == ["dead-1", "dead-2"]
    store = Store(tmp_path)
    assert store.claim("mine")
    assert store.clean_claims() == 2
    assert sorted(p.name for p in (tmp_path / "claims").iterdir()) == ["mine"]  # a live claim stays


@pytest.mark.parametrize("mask", [0o002, 0o027])
def test_store_files_take_the_users_umask(tmp_path: Path, mask: int) -> None:
    old = os.umask(mask)
    try:
        store = Store(tmp_path)
        assert store.claim("r1")
        store.write_run({"run_id": "r1", "task": "t", "method": "m", "status": "completed", "seed": 0})
        claim = (tmp_path / "claims" / "r1").stat().st_mode & 0o777
        store.release("r1")
        compact(tmp_path)
    finally:
        os.umask(old)
    files = [*(tmp_path / "runs").iterdir(), *(tmp_path / "traces").iterdir()]
    assert files and {p.stat().st_mode & 0o777 for p in files} == {0o666 & ~mask}
    assert claim == 0o666 & ~mask


def test_drive_reruns_a_damaged_newest_attempt_over_an_older_one(tmp_path: Path) -> None:
    from harness.execute import drive

    class Run:
        def __init__(self, run_id: str) -> None:
            self.run_id = run_id

    class Executor:
        def map(self, runs):  # noqa: ANN001, ANN202
            for run in runs:
                yield type("R", (), {"row": {"run_id": run.run_id, "task": "t", "method": "m", "status": "completed",
                                             "seed": 0}, "trace": [], "status": "completed"})()

    store = Store(tmp_path)
    store.write_run({"run_id": "r1", "task": "t", "method": "m", "status": "error", "seed": 0})
    store.write_run({"run_id": "r1", "task": "t", "method": "m", "status": "completed", "seed": 0})  # attempt 1
    (tmp_path / "runs" / "r1.1.parquet").write_bytes(b"PAR1 bit rot PAR1")
    with pytest.warns(CorruptFileWarning, match=r"r1\.1\.parquet"):
        results = drive([Run("r1")], Store(tmp_path), Executor())
    assert len(results) == 1
    assert read_runs(tmp_path).select("status", "attempt").rows() == [("completed", 1)]
    assert (tmp_path / "damaged" / "runs" / "r1.1.parquet").read_bytes() == b"PAR1 bit rot PAR1"
