"""Store schema 3: one schema for every run file and every trace file, whatever the task.

A store of two tasks (other metrics, call kinds and probes) is read by polars, pandas,
pyarrow and duckdb straight from the files, and by the harness's readers as wide frames;
older stores are refused in one line and migrated by ``compact``; writing is linear.
"""

from __future__ import annotations

import json
import math
import statistics
import time
from pathlib import Path

import polars as pl
import pytest

from harness import record
from harness.record import RunRecord
from harness.store import (
    RUN_COLUMNS,
    SCHEMA_VERSION,
    TRACE_COLUMNS,
    Store,
    StoreSchemaError,
    _build,
    _TRACES,
    compact,
    read_runs,
    read_traces,
    scan_runs,
    scan_traces,
)

#: task -> (metrics, call kinds, probe columns of its traces)
TASKS = {
    "quadratic": (["suboptimality", "objective"], ["grad"], ["spectrum/top"]),
    "classify": (["train_accuracy", "infeasibility", "objective"], ["value_and_grad", "hessian"], ["norms/w", "norms/g"]),
}


def make_run(task: str, seed: int) -> tuple[dict, list[dict]]:
    """A wide row (through RunRecord) and its trace; every value distinct and computable."""
    metrics, kinds, probes = TASKS[task]
    base = (1 if task == "quadratic" else 2) * 100 + seed
    declared = {m: {"unit": "1", "lower_is_better": m != "train_accuracy"} for m in metrics}
    values = {m: base + i / 8 for i, m in enumerate(metrics)}
    if seed == 1:
        values[metrics[-1]] = None  # declared, not measured
    row = RunRecord(
        run_id=f"{task}-{seed}", suite="s", task=task, task_params="{}", method="gd", hyperparameters="{}",
        framework="torch", hardware="cpu", seed=seed, status="completed", steps=3, oracle_calls=3 * len(kinds),
        metrics=json.dumps(declared, sort_keys=True), calls={k: 3 + i for i, k in enumerate(kinds)}, values=values,
    ).row()
    trace = []
    for step in range(4):
        point = {"step": step, "time_s": 0.5 * step, "oracle_calls": step * len(kinds)}
        if step:
            point.update({f"calls_{k}": step + i for i, k in enumerate(kinds)})
        point.update({m: base + step + i / 16 for i, m in enumerate(metrics)})
        point.update({p: -(base + step + i / 32) for i, p in enumerate(probes)})
        trace.append(point)
    return row, trace


@pytest.fixture
def mixed(tmp_path: Path) -> tuple[Path, dict[str, dict], dict[str, list[dict]]]:
    """A store of two tasks, three seeds each, and what was written."""
    store = Store(tmp_path)
    rows, traces = {}, {}
    for task in TASKS:
        for seed in range(3):
            row, trace = make_run(task, seed)
            store.write_run(row, trace)
            rows[row["run_id"]], traces[row["run_id"]] = row, trace
    return tmp_path, rows, traces


def expected_values(rows: dict[str, dict]) -> dict[tuple[str, str], float | None]:
    """(run id, metric) -> the final value written, for every declared metric."""
    return {(r, m): row[m] for r, row in rows.items() for m in json.loads(row["metrics"])}


def expected_points(traces: dict[str, list[dict]]) -> dict[tuple[str, int, str], float]:
    """(run id, step, name) -> every metric and probe value written in the traces."""
    fixed = set(record.TRACE_COLUMNS)
    return {(r, p["step"], k): v for r, trace in traces.items() for p in trace
            for k, v in p.items() if k not in fixed and not k.startswith("calls_")}


def same(got: dict, want: dict) -> None:
    assert got.keys() == want.keys()
    for key, value in want.items():
        assert (got[key] is None or (isinstance(got[key], float) and math.isnan(got[key]))) if value is None \
            else got[key] == value, key


def test_every_file_has_one_schema_whatever_its_task(mixed) -> None:
    root, _, _ = mixed
    for kind, columns in (("runs", RUN_COLUMNS), ("traces", TRACE_COLUMNS)):
        schemas = {tuple(pl.read_parquet_schema(p).items()) for p in (root / kind).glob("*.parquet")}
        assert schemas == {tuple(columns.items())}, kind
    assert pl.read_parquet(next((root / "runs").glob("*.parquet")))["schema_version"].to_list() == [SCHEMA_VERSION]


def test_polars_reads_the_mixed_store_with_scan_parquet(mixed) -> None:
    root, rows, traces = mixed
    runs = pl.scan_parquet(f"{root}/runs/*.parquet").collect()
    long = runs.select("run_id", "values").explode("values").unnest("values")
    same({(r, m): v for r, m, v in long.iter_rows()}, expected_values(rows))
    calls = runs.select("run_id", "calls").explode("calls").unnest("calls")
    assert {(r, k): n for r, k, n in calls.iter_rows()} == {
        (r, k[6:]): v for r, row in rows.items() for k, v in row.items() if k.startswith("calls_")}
    points = pl.scan_parquet(f"{root}/traces/*.parquet").collect()
    long = points.select("run_id", "step", "values").explode("values").unnest("values")
    same({(r, s, n): v for r, s, n, v in long.iter_rows()}, expected_points(traces))


def test_pandas_reads_the_mixed_store(mixed) -> None:
    pd = pytest.importorskip("pandas")
    root, rows, traces = mixed
    frame = pd.read_parquet(root / "runs")
    assert len(frame) == len(rows)
    got = {(r, v["metric"]): v["value"] for r, vs in zip(frame["run_id"], frame["values"]) for v in vs}
    same(got, expected_values(rows))
    frame = pd.read_parquet(root / "traces")
    got = {(r, s, v["name"]): v["value"] for r, s, vs in zip(frame["run_id"], frame["step"], frame["values"]) for v in vs}
    same(got, expected_points(traces))


def test_pyarrow_dataset_reads_the_mixed_store(mixed) -> None:
    import pyarrow.dataset as ds

    root, rows, traces = mixed
    table = ds.dataset(root / "runs", format="parquet").to_table()
    got = {(r, v["metric"]): v["value"] for r, vs in zip(table["run_id"].to_pylist(), table["values"].to_pylist())
           for v in vs}
    same(got, expected_values(rows))
    table = ds.dataset(root / "traces", format="parquet").to_table()
    got = {(r, s, v["name"]): v["value"] for r, s, vs in zip(*(table[c].to_pylist() for c in ("run_id", "step", "values")))
           for v in vs}
    same(got, expected_points(traces))


def test_duckdb_reads_the_mixed_store(mixed) -> None:
    duckdb = pytest.importorskip("duckdb")
    root, rows, traces = mixed
    got = duckdb.sql(f"""select run_id, v.metric, v.value
                         from read_parquet('{root}/runs/*.parquet'), unnest("values") as t(v)""").fetchall()
    same({(r, m): v for r, m, v in got}, expected_values(rows))
    got = duckdb.sql(f"""select run_id, step, v.name, v.value
                         from read_parquet('{root}/traces/*.parquet'), unnest("values") as t(v)""").fetchall()
    same({(r, s, n): v for r, s, n, v in got}, expected_points(traces))
    calls = duckdb.sql(f"""select task, c.kind, sum(c.n) from read_parquet('{root}/runs/*.parquet'),
                           unnest(calls) as t(c) group by all order by all""").fetchall()
    assert calls == [("classify", "hessian", 12), ("classify", "value_and_grad", 9), ("quadratic", "grad", 9)]


def wide_checks(root: Path, rows: dict[str, dict], traces: dict[str, list[dict]]) -> None:
    """The harness's readers give the wide rows and points back: nulls for other tasks' columns."""
    runs = read_runs(root)
    assert runs.height == len(rows)
    names = {k for row in rows.values() for k in row if k not in RUN_COLUMNS}
    assert names <= set(runs.columns)
    for got in runs.iter_rows(named=True):
        written = rows[got["run_id"]]
        for name in names | set(record.RUN_COLUMNS):
            assert got[name] == written.get(name), (got["run_id"], name)
        assert got["schema_version"] == SCHEMA_VERSION
    assert runs.schema["calls_grad"] == pl.Int64 and runs.schema["objective"] == pl.Float64
    quadratic = runs.filter(pl.col("task") == "quadratic")
    assert quadratic.height and quadratic["train_accuracy"].null_count() == quadratic.height
    assert "calls" not in runs.columns and "values" not in runs.columns
    points = read_traces(root)
    assert points.height == sum(map(len, traces.values()))
    keys = {k for trace in traces.values() for p in trace for k in p}
    for got in points.iter_rows(named=True):
        written = traces[got["run_id"]][got["step"]]
        assert {k: got[k] for k in keys} == {k: written.get(k) for k in keys}, got["run_id"]
    assert read_traces(root, ["classify-0"])["norms/w"].to_list() == [p["norms/w"] for p in traces["classify-0"]]
    lazy = scan_traces(root).select("run_id", "time_s", "suboptimality").collect()
    assert lazy.height == points.height
    assert scan_runs(root).select("run_id", "infeasibility").collect().sort("run_id")["infeasibility"].to_list() == [
        rows[r].get("infeasibility") for r in sorted(rows)]


def test_the_wide_round_trip(mixed) -> None:
    wide_checks(*mixed)


def test_a_compacted_store_reads_the_same(mixed) -> None:
    root, rows, traces = mixed
    before = read_runs(root).sort("run_id"), read_traces(root).sort("run_id", "step")
    assert compact(root) == len(rows)
    assert [p.name.startswith("part-") for p in (root / "runs").iterdir()] == [True]
    wide_checks(root, rows, traces)
    after = read_runs(root).sort("run_id"), read_traces(root).sort("run_id", "step")
    for b, a in zip(before, after):
        assert a.select(b.columns).equals(b)
    (part,) = (root / "runs").glob("part-*.parquet")
    footer = json.loads(pl.read_parquet_metadata(part)["harness_store"])  # the part's names, without reading it
    assert set(footer["calls"]) == {"grad", "value_and_grad", "hessian"}
    assert set(footer["values"]) == {"suboptimality", "objective", "train_accuracy", "infeasibility"}
    assert pl.scan_parquet(f"{root}/runs/*.parquet").collect().height == len(rows)


def write_v2(root: Path, rows: dict[str, dict], traces: dict[str, list[dict]], *, version: int | None = 2) -> None:
    """Per-run files as the code of schema 2 wrote them: one column per metric, call kind and probe."""
    (root / "runs").mkdir(parents=True)
    (root / "traces").mkdir()
    for run_id, row in rows.items():
        head = {} if version is None else {"schema_version": version}
        pl.DataFrame([{**head, **row, "attempt": 0}], infer_schema_length=None).write_parquet(root / "runs" / f"{run_id}.parquet")
        pl.DataFrame([{"run_id": run_id, **p} for p in traces[run_id]], infer_schema_length=None).write_parquet(
            root / "traces" / f"{run_id}.parquet")


@pytest.mark.parametrize("version", [2, None])
def test_an_old_store_is_refused_in_one_line_then_migrated_by_compact(tmp_path: Path, version: int | None) -> None:
    rows, traces = {}, {}
    for task in TASKS:
        for seed in range(2):
            row, trace = make_run(task, seed)
            rows[row["run_id"]], traces[row["run_id"]] = row, trace
    root = tmp_path / "old"
    write_v2(root, rows, traces, version=version)
    old = 2 if version else 1
    message = (f"{root}: written with store schema {old} (this harness reads {SCHEMA_VERSION}); "
               f"run `harness compact --store {root}` to migrate it")
    for read in (read_runs, read_traces, scan_runs, scan_traces, lambda s: Store(s).finished_run_ids(),
                 lambda s: Store(s).repair(), lambda s: Store(s).claim("quadratic-0")):
        with pytest.raises(StoreSchemaError) as caught:
            read(root)
        assert str(caught.value) == message and isinstance(caught.value, ValueError)
    assert not (root / "damaged").exists()  # never taken for damage
    assert compact(root) == len(rows)
    assert not (root / "damaged").exists()
    assert [p.name.startswith("part-") for p in (root / "runs").iterdir()] == [True]
    wide_checks(root, rows, traces)
    # A store compacted by schema 2 (one part, diagonal over the tasks) migrates as well.
    parted = tmp_path / "parted"
    write_v2(parted, rows, traces, version=version)
    runs = pl.concat([pl.read_parquet(p) for p in sorted((parted / "runs").iterdir())], how="diagonal_relaxed")
    points = pl.concat([pl.read_parquet(p) for p in sorted((parted / "traces").iterdir())], how="diagonal_relaxed")
    for path in [*(parted / "runs").iterdir(), *(parted / "traces").iterdir()]:
        path.unlink()
    runs.write_parquet(parted / "runs" / "part-0001.parquet")
    points.write_parquet(parted / "traces" / "part-0001.parquet")
    with pytest.raises(StoreSchemaError, match="written with store schema"):
        read_runs(parted)
    compact(parted)
    wide_checks(parted, rows, traces)
    assert read_runs(parted).sort("run_id").equals(read_runs(root).sort("run_id").select(read_runs(parted).columns))


def test_writing_a_trace_is_linear_in_its_length() -> None:
    def points(n: int) -> list[dict]:
        return [{"step": s, "time_s": 0.01 * s, "oracle_calls": 2 * s, "calls_grad": s, "calls_value": s,
                 "suboptimality": 1.0 / (s + 1), "objective": 2.0 + s, "probe/a": float(s), "probe/b": -1.0 * s}
                for s in range(n)]

    # 16x the points: linear costs at most ~16x (less with fixed costs), quadratic ~256x;
    # the bound sits far from both so a busy machine cannot flip it.
    small, large = points(1_000), points(16_000)

    def build(trace: list[dict]) -> float:
        start = time.perf_counter()
        frame, _ = _build(trace, _TRACES, {"run_id": "r"})
        elapsed = time.perf_counter() - start
        assert frame.height == len(trace)
        return elapsed

    build(small)  # warm up
    times = {"small": [], "large": []}
    for _ in range(5):  # interleaved: a busy machine slows both alike
        times["small"].append(build(small))
        times["large"].append(build(large))
    ratio = min(times["large"]) / min(times["small"])  # the least-disturbed round of each
    assert ratio < 48, times


def test_a_value_that_is_no_number_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    store = Store(tmp_path)
    row, trace = make_run("quadratic", 0)
    with pytest.raises(ValueError, match="'objective'"):
        store.write_run({**row, "objective": "low"}, trace)
    assert not list((tmp_path / "runs").iterdir()) and not list((tmp_path / "traces").iterdir())


def test_damage_in_the_new_schema_is_named_and_moved_aside_never_taken_for_an_old_store(mixed) -> None:
    from harness.store import CorruptFileWarning

    root, rows, _ = mixed
    runs, traces = root / "runs", root / "traces"
    # Rows of another run: a copy under another name.
    for kind in (runs, traces):
        (kind / "copied.parquet").write_bytes((kind / "quadratic-0.parquet").read_bytes())
    # A nested column another tool dropped (schema_version still says 3): damage, not schema 2.
    pl.read_parquet(runs / "classify-0.parquet").drop("values").write_parquet(runs / "classify-0.parquet")
    # Call counts stored as strings inside the nested column.
    element = pl.element().struct
    path = traces / "classify-1.parquet"
    pl.read_parquet(path).with_columns(pl.col("calls").list.eval(
        pl.struct(element.field("kind"), element.field("n").cast(pl.String)))).write_parquet(path)
    with pytest.warns(CorruptFileWarning) as caught:
        moved = Store(root).repair()
    text = " ".join(str(w.message) for w in caught)
    assert "rows of another run than copied" in moved["copied"]
    assert moved["classify-0"] == "no values column"
    assert moved["classify-1"].startswith("its trace: column calls is List(Struct({'kind': String, 'n': String}))")
    assert "moved to" in text and sorted(p.name for p in (root / "damaged" / "runs").iterdir()) == [
        "classify-0.parquet", "classify-1.parquet", "copied.parquet"]
    assert set(read_runs(root)["run_id"]) == set(rows) - {"classify-0", "classify-1"}
