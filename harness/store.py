"""The run store: Parquet files written through polars, one pair per finished run.

Layout of a store directory::

    runs/<run_id>.parquet     one row: ids, parameters (JSON), status, timings, memory,
                              final metrics, time-to-target, environment fingerprint
    traces/<run_id>.parquet   one row per evaluation point: step, time, oracle calls, metrics
    runs/part-<name>.parquet  many runs, merged by :func:`compact` (large stores read fast)
    traces/part-<name>.parquet  their traces (trusted only beside the runs part of that name)

A run is written the moment it ends, atomically (temporary file, fsync, rename), traces
first: a run whose ``runs/`` file exists is finished, whatever happened to the process
afterwards. ``harness bench`` skips the run ids already present, so an interrupted bench
resumes without redoing or losing a finished run. Any Parquet tool reads the files;
``schema_version`` names the layout.

Several ``harness bench`` processes may share one store. Before a run starts, its driver
claims it: ``claims/<run_id>`` is created and locked (``flock``) by that process, holding
its pid and host for people to read. A run claimed by a live process is left to it; the
kernel drops the lock of a process that dies, so its claims are taken over by the next
bench without any guessing about pids. A claim is granted only if the run is not finished
yet, checked under the lock, so no run is written twice. A truncated or corrupt per-run
runs file is named in a :class:`CorruptFileWarning` and does not count as finished: the
next bench runs it again and replaces the file.

:func:`compact` merges the per-run files into a part pair (traces part, then runs part, each
atomic; only then are the per-run files removed). Readers take a run from its part when a
part holds it and from its per-run file otherwise, so a run is read exactly once, even while
a compaction runs or after one was interrupted. :func:`scan_runs` and :func:`scan_traces`
give lazy frames for large stores.

Examples
--------
>>> import polars as pl
>>> pl.scan_parquet("store/runs/*.parquet")  # doctest: +SKIP
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import tempfile
import time
import uuid
import warnings
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

__all__ = [
    "RUN_COLUMNS",
    "SCHEMA_VERSION",
    "TRACE_COLUMNS",
    "CorruptFileWarning",
    "Store",
    "compact",
    "read_runs",
    "read_traces",
    "scan_runs",
    "scan_traces",
]

SCHEMA_VERSION = 1

#: File-name prefix of the merged files written by :func:`compact`.
PART_PREFIX = "part-"

#: Columns every runs file has, with their types; each declared metric adds one Float64
#: column of its final value, each oracle call kind a ``calls_<kind>`` Int64 column.
RUN_COLUMNS: dict[str, pl.DataType] = {
    "schema_version": pl.Int64(),
    "run_id": pl.String(),
    "suite": pl.String(),
    "task": pl.String(),
    "task_family": pl.String(),
    "task_params": pl.String(),  # JSON object
    "method": pl.String(),
    "method_family": pl.String(),
    "hyperparameters": pl.String(),  # JSON object
    "framework": pl.String(),
    "hardware": pl.String(),
    "seed": pl.Int64(),
    "status": pl.String(),  # reached_target | completed | diverged | error | timeout | oom | skipped
    "error": pl.String(),
    "steps": pl.Int64(),
    "oracle_calls": pl.Int64(),
    "setup_s": pl.Float64(),  # problem construction and reference, untimed
    "init_s": pl.Float64(),  # method.init, untimed
    "warmup_s": pl.Float64(),  # the first step (compilation, caches), reported apart
    "timed_s": pl.Float64(),  # steps 2..N, device synchronized: the benchmark's clock
    "eval_s": pl.Float64(),  # evaluation and probes, outside the clock
    "wall_s": pl.Float64(),
    "peak_memory_bytes": pl.Int64(),
    "target_metric": pl.String(),
    "target_value": pl.Float64(),
    "time_to_target_s": pl.Float64(),
    "steps_to_target": pl.Int64(),
    "metrics": pl.String(),  # JSON {metric id: {unit, lower_is_better}}
    "host": pl.String(),
    "cpu": pl.String(),
    "gpu": pl.String(),
    "versions": pl.String(),  # JSON {python, numpy, torch, jax, ...}
    "git_commit": pl.String(),
    "git_dirty": pl.Boolean(),
    "started_at": pl.String(),  # ISO 8601, UTC
    "finished_at": pl.String(),
}

#: Columns every traces file has; metric values and ``calls_<kind>`` columns follow.
TRACE_COLUMNS: dict[str, pl.DataType] = {
    "run_id": pl.String(),
    "step": pl.Int64(),
    "time_s": pl.Float64(),  # timed seconds so far (warm-up step excluded)
    "oracle_calls": pl.Int64(),
}


class CorruptFileWarning(UserWarning):
    """A Parquet file of the store could not be read; it is named and skipped."""


class Store:
    """A store directory. Writes are atomic per run; reads never see a partial run.

    Parameters
    ----------
    root
        The store directory; created when missing.
    """

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        self.runs_dir = self.root / "runs"
        self.traces_dir = self.root / "traces"
        for directory in (self.runs_dir, self.traces_dir):
            directory.mkdir(parents=True, exist_ok=True)
        self._claims: dict[str, int] = {}  # run id -> fd of its locked claim file
        self._part_ids: dict[str, frozenset[str]] = {}  # runs part name -> its run ids

    def finished_run_ids(self) -> set[str]:
        """Ids of every run with an intact runs file or in a runs part (finished, in any status)."""
        snapshot = _snapshot(self.root)
        return {r for r, path in snapshot.run_files.items() if _intact(path, warn=True)} | snapshot.part_ids

    def claim(self, run_id: str) -> bool:
        """Claim ``run_id`` for this process; ``False`` when it is finished or a live process holds it.

        Release the claim with :meth:`release` once the run is written (or abandoned); a
        process that dies releases its claims with it.
        """
        claims = self._claims
        if run_id in claims:
            return True
        directory = self.root / "claims"
        directory.mkdir(exist_ok=True)
        path = directory / run_id
        while True:
            fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                os.close(fd)
                return False
            try:
                same = os.fstat(fd).st_ino == os.stat(path).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)  # locked a claim its holder had just removed: take the current one
        if self._finished(run_id):
            os.close(fd)
            return False
        os.ftruncate(fd, 0)
        os.write(fd, f"pid {os.getpid()} host {socket.gethostname()} since {time.time():.3f}\n".encode())
        claims[run_id] = fd
        return True

    def release(self, run_id: str) -> None:
        """Give up this process's claim on ``run_id`` (no-op when it holds none)."""
        fd = self._claims.pop(run_id, None)
        if fd is None:
            return
        path = self.root / "claims" / run_id
        try:
            if os.stat(path).st_ino == os.fstat(fd).st_ino:
                path.unlink()  # under the lock: nobody else holds this file
        except FileNotFoundError:
            pass
        os.close(fd)

    def release_all(self) -> None:
        """Give up every claim of this process."""
        for run_id in list(self._claims):
            self.release(run_id)

    def _finished(self, run_id: str) -> bool:
        path = self.runs_dir / f"{run_id}.parquet"
        if path.exists() and _intact(path, warn=False):
            return True
        # Or compacted into a part meanwhile. Parts never change once written: their ids are
        # read once per process, and a claim costs one listing of runs/, not a store scan.
        for part in _entries(self.runs_dir, parts=True):
            if part.name not in self._part_ids:
                try:
                    ids = pl.read_parquet(part, columns=["run_id"]).get_column("run_id").to_list()
                except Exception:  # noqa: BLE001, S112 - a bad part is named by the readers
                    continue
                self._part_ids[part.name] = frozenset(ids)
            if run_id in self._part_ids[part.name]:
                return True
        return False

    def write_run(self, row: Mapping[str, Any], trace: Sequence[Mapping[str, Any]] = ()) -> None:
        """Write one finished run: its trace, then its row (which marks it finished)."""
        run_id = row["run_id"]
        trace_frame = _frame([{"run_id": run_id, **point} for point in trace], TRACE_COLUMNS)
        _atomic_write(trace_frame, self.traces_dir / f"{run_id}.parquet")
        run_frame = _frame([{"schema_version": SCHEMA_VERSION, **row}], RUN_COLUMNS)
        _atomic_write(run_frame, self.runs_dir / f"{run_id}.parquet")


def read_runs(store: str | os.PathLike[str]) -> pl.DataFrame:
    """Every run of ``store`` as one frame (metric columns missing in a run are null).

    Examples
    --------
    >>> read_runs("harness-store").group_by("method").agg(pl.col("suboptimality").median())  # doctest: +SKIP
    """
    return scan_runs(store).collect()


def read_traces(store: str | os.PathLike[str], run_ids: Iterable[str] | None = None) -> pl.DataFrame:
    """The evaluation points of ``store``'s runs (of ``run_ids`` only, when given)."""
    return scan_traces(store, run_ids).collect()


def scan_runs(store: str | os.PathLike[str]) -> pl.LazyFrame:
    """Every run of ``store`` as a lazy frame: parts are scanned, per-run files read.

    Select the columns you need before collecting: on a compacted store only those are read.
    Each run appears once (deduplicated by ``run_id``).
    """
    for _ in range(_RETRIES):
        snapshot = _snapshot(Path(store))
        loose, complete = _read_files(list(snapshot.run_files.values()))
        if complete:
            break
    parts = [pl.scan_parquet(p) for p in snapshot.run_parts]
    frames = [pl.LazyFrame(schema=dict(RUN_COLUMNS)), *parts, loose.lazy()]
    lazy = pl.concat(frames, how="diagonal_relaxed")
    return lazy.unique(subset="run_id", keep="first", maintain_order=True) if parts else lazy


def scan_traces(store: str | os.PathLike[str], run_ids: Iterable[str] | None = None) -> pl.LazyFrame:
    """The evaluation points of ``store``'s runs (of ``run_ids`` only, when given), lazily."""
    wanted = None if run_ids is None else set(run_ids)
    for _ in range(_RETRIES):
        snapshot = _snapshot(Path(store))
        files = snapshot.trace_files if wanted is None else {r: p for r, p in snapshot.trace_files.items() if r in wanted}
        loose, complete = _read_files(list(files.values()))
        if complete:
            break
    parts = [pl.scan_parquet(p) for p in snapshot.trace_parts]
    if wanted is not None and parts:
        parts = [part.filter(pl.col("run_id").is_in(sorted(wanted))) for part in parts]
    return pl.concat([pl.LazyFrame(schema=dict(TRACE_COLUMNS)), *parts, loose.lazy()], how="diagonal_relaxed")


def compact(store: str | os.PathLike[str], *, min_runs: int = 1) -> int:
    """Merge the per-run files of ``store`` into one runs part and one traces part.

    Crash-safe: the traces part is written first, then the runs part (each atomically), and
    only then are the merged per-run files removed. Readers trust a traces part only beside
    its runs part and skip per-run files of runs that a part holds, so at every moment each
    run is read exactly once. Leftovers of an interrupted compaction are cleaned up here.
    Concurrent compactions are serialized by a lock file; ``harness bench`` may keep writing.

    Parameters
    ----------
    store
        The store directory.
    min_runs
        Merge only when at least this many per-run files are waiting.

    Returns
    -------
    int
        The number of runs merged.
    """
    root = Path(store)
    Store(root)
    with _exclusive(root / ".compact.lock"):
        snapshot = _snapshot(root)
        _remove_leftovers(root, snapshot)
        if len(snapshot.run_files) < min_runs or not snapshot.run_files:
            return 0
        runs, _ = _read_files([snapshot.run_files[r] for r in sorted(snapshot.run_files)])
        ids = set(runs.get_column("run_id").to_list())
        traces, broken = _read_traces_of(root, ids)
        ids -= broken
        runs = runs.filter(pl.col("run_id").is_in(sorted(ids)))
        if runs.is_empty():
            return 0
        traces = traces.filter(pl.col("run_id").is_in(sorted(ids)))
        name = f"{PART_PREFIX}{time.time_ns():020d}-{uuid.uuid4().hex[:8]}.parquet"
        _atomic_write(traces, root / "traces" / name)
        _atomic_write(runs, root / "runs" / name)
        for run_id in sorted(ids):
            (root / "traces" / f"{run_id}.parquet").unlink(missing_ok=True)
        for run_id in sorted(ids):
            (root / "runs" / f"{run_id}.parquet").unlink(missing_ok=True)
        _fsync_dir(root / "traces")
        _fsync_dir(root / "runs")
        return len(ids)


_RETRIES = 5


@dataclass(frozen=True)
class _Snapshot:
    """What a reader takes from a store at one moment (see the module docstring)."""

    run_parts: tuple[Path, ...]
    part_ids: frozenset[str]
    run_files: dict[str, Path]  # per-run runs files of runs no part holds
    trace_parts: tuple[Path, ...]  # those with their runs part beside them
    trace_files: dict[str, Path]  # per-run traces files of runs no part holds
    orphan_trace_parts: tuple[Path, ...]
    superseded: tuple[Path, ...]  # per-run files of runs a part holds (an interrupted compaction)


def _snapshot(root: Path) -> _Snapshot:
    # Per-run files are listed before parts. A compaction writes its part before it removes
    # per-run files, so a listed file that is gone when read is in a part that a fresh
    # snapshot lists (the readers retry), and a file listed beside the part that holds its
    # run is skipped: either way each run is read once.
    runs_dir, traces_dir = root / "runs", root / "traces"
    loose = _entries(runs_dir, parts=False) + _entries(traces_dir, parts=False)
    run_parts = tuple(sorted(_entries(runs_dir, parts=True)))
    trace_parts = {p.name: p for p in _entries(traces_dir, parts=True)}
    part_ids: set[str] = set()
    readable: list[Path] = []
    for part in run_parts:
        try:
            part_ids.update(pl.read_parquet(part, columns=["run_id"]).get_column("run_id").to_list())
            readable.append(part)
        except Exception as exc:  # noqa: BLE001 - polars raises several error types for bad files
            warnings.warn(f"{part}: unreadable Parquet file skipped ({exc})", CorruptFileWarning, stacklevel=3)
    names = {p.name for p in run_parts}
    superseded = tuple(p for p in loose if p.stem in part_ids)
    run_files = {p.stem: p for p in loose if p.parent == runs_dir and p.stem not in part_ids}
    trace_files = {p.stem: p for p in loose if p.parent == traces_dir and p.stem not in part_ids}
    return _Snapshot(
        run_parts=tuple(readable),
        part_ids=frozenset(part_ids),
        run_files=run_files,
        trace_parts=tuple(trace_parts[p.name] for p in readable if p.name in trace_parts),
        trace_files=trace_files,
        orphan_trace_parts=tuple(p for name, p in sorted(trace_parts.items()) if name not in names),
        superseded=superseded,
    )


def _intact(path: Path, *, warn: bool) -> bool:
    """Whether ``path`` is a whole Parquet file: magic bytes at both ends, a footer that fits.

    Reads 12 bytes: cheap enough for every file of a large store, and it catches what an
    interrupted copy or a full disk leaves (a truncated file). Bit rot inside a file that
    keeps its footer shows when the file is read (:func:`read_runs` names and skips it).
    """
    try:
        with open(path, "rb") as handle:
            head = handle.read(4)
            size = handle.seek(0, os.SEEK_END)
            if size >= 12:
                handle.seek(size - 8)
                tail = handle.read(8)
    except FileNotFoundError:
        return False
    ok = size >= 12 and head == b"PAR1" and tail[4:] == b"PAR1" and int.from_bytes(tail[:4], "little") + 12 <= size
    if not ok and warn:
        warnings.warn(f"{path}: truncated or corrupt Parquet file; its run does not count as finished and will "
                      "be run again", CorruptFileWarning, stacklevel=3)
    return ok


def _entries(directory: Path, *, parts: bool) -> list[Path]:
    try:
        with os.scandir(directory) as it:
            names = [e.name for e in it if e.name.endswith(".parquet") and not e.name.startswith(".")]
    except FileNotFoundError:
        return []
    return [directory / n for n in names if n.startswith(PART_PREFIX) == parts]


def _read_files(paths: Sequence[Path]) -> tuple[pl.DataFrame, bool]:
    """Read per-run files; ``complete`` is false when one vanished (a compaction moved it)."""
    frames: list[pl.DataFrame] = []
    complete = True
    for path in paths:
        try:
            frames.append(pl.read_parquet(path))
        except FileNotFoundError:
            complete = False
        except Exception as exc:  # noqa: BLE001 - polars raises several error types for bad files
            warnings.warn(f"{path}: unreadable Parquet file skipped ({exc})", CorruptFileWarning, stacklevel=4)
    if not frames:
        return pl.DataFrame(), complete
    return pl.concat(frames, how="diagonal_relaxed"), complete


def _read_traces_of(root: Path, run_ids: set[str]) -> tuple[pl.DataFrame, set[str]]:
    """The per-run traces of ``run_ids`` and the ids whose traces file exists but is unreadable."""
    frames = [pl.DataFrame(schema=dict(TRACE_COLUMNS))]
    broken: set[str] = set()
    for run_id in sorted(run_ids):
        path = root / "traces" / f"{run_id}.parquet"
        try:
            frames.append(pl.read_parquet(path))
        except FileNotFoundError:
            continue
        except Exception as exc:  # noqa: BLE001
            warnings.warn(f"{path}: unreadable, run {run_id} left uncompacted ({exc})", CorruptFileWarning, stacklevel=3)
            broken.add(run_id)
    return pl.concat(frames, how="diagonal_relaxed"), broken


def _remove_leftovers(root: Path, snapshot: _Snapshot) -> None:
    """Per-run files a part already holds, and traces parts without their runs part."""
    for path in (*snapshot.orphan_trace_parts, *sorted(snapshot.superseded, key=lambda p: p.parent.name != "traces")):
        path.unlink(missing_ok=True)


@contextmanager
def _exclusive(path: Path) -> Iterator[None]:
    with open(path, "a+b") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def _frame(rows: list[dict[str, Any]], columns: Mapping[str, pl.DataType]) -> pl.DataFrame:
    extra = {k: _infer_dtype(rows, k) for row in rows for k in row if k not in columns}
    schema = {**columns, **extra}
    return pl.DataFrame(rows, schema=schema, strict=False)


def _infer_dtype(rows: list[dict[str, Any]], key: str) -> pl.DataType:
    values = [row.get(key) for row in rows if row.get(key) is not None]
    if values and all(isinstance(v, bool) for v in values):
        return pl.Boolean()
    if values and all(isinstance(v, int) and not isinstance(v, bool) for v in values) and key.startswith("calls_"):
        return pl.Int64()
    if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        return pl.Float64()
    return pl.String()


def _atomic_write(frame: pl.DataFrame, path: Path) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            frame.write_parquet(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def dumps(value: Any) -> str:
    """Canonical JSON (sorted keys) for parameter columns."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"))
