"""The run store: Parquet files written through polars, one pair per finished run.

Layout of a store directory::

    runs/<run_id>.parquet     one row: ids, parameters (JSON), status, timings, memory,
                              final metrics, time-to-target, environment fingerprint
    traces/<run_id>.parquet   one row per evaluation point: step, time, oracle calls, metrics
    runs/<run_id>.<n>.parquet   attempt n >= 1 of a run that was run again (and its trace)
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

A run can be run again (``harness bench --retry-failed`` or ``--force``): the new result is
attempt ``n + 1`` of the run (the ``attempt`` column), written beside the old one under a
name of its own, so no file is ever rewritten while a reader or a compaction may hold it.
Readers see one row per run id, its newest attempt, and that attempt's trace alone, wherever
each attempt lives (per-run files, parts); a compaction keeps the newest and drops the rest.

:func:`compact` merges the per-run files into a part pair (traces part, then runs part, each
atomic; only then are the per-run files removed). Readers take a run from its part when a
part holds it (at the same attempt) and from its per-run file otherwise, so a run is read
exactly once, even while a compaction runs or after one was interrupted. :func:`scan_runs`
and :func:`scan_traces` give lazy frames for large stores.

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
    "ERROR_STATUSES",
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

#: 2: the ``attempt`` and ``harness_version`` columns.
SCHEMA_VERSION = 2

#: Statuses of runs that ended without a result of the method's (it raised, ran out of time or
#: memory): ``harness bench --retry-failed`` runs them again and they make a bench exit 1.
#: ``diverged`` is a result.
ERROR_STATUSES: tuple[str, ...] = ("error", "timeout", "oom")

#: File-name prefix of the merged files written by :func:`compact`.
PART_PREFIX = "part-"

#: Columns every runs file has, with their types; each declared metric adds one Float64
#: column of its final value, each oracle call kind a ``calls_<kind>`` Int64 column.
RUN_COLUMNS: dict[str, pl.DataType] = {
    "schema_version": pl.Int64(),
    "run_id": pl.String(),
    "attempt": pl.Int64(),  # 0, then 1, 2, ... each time the run is run again (the newest is read)
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
    "setup_s": pl.Float64(),  # problem construction and reference, off the clock
    "compile_s": pl.Float64(),  # compilation and warm-up against the decoy oracle, before the clock
    "offline_s": pl.Float64(),  # the method's declared offline phase (null: none), reported apart
    "init_s": pl.Float64(),  # method.init: on the clock, a part of timed_s
    "output_s": pl.Float64(),  # the method's output hook: on the clock, a part of timed_s
    "timed_s": pl.Float64(),  # the method's clock: init, every step, output; device synchronized
    "eval_s": pl.Float64(),  # evaluation and probes, off the clock
    "wall_s": pl.Float64(),
    "clock_compiles": pl.Int64(),  # compilations inside the timed region (> 0 flags the run)
    "clock_compile_s": pl.Float64(),  # their seconds (counted in timed_s)
    "program": pl.String(),  # jit (compiled whole, ahead of time) | eager
    "program_fallback": pl.String(),  # why a method declared pure ran eagerly
    "left_behind": pl.String(),  # threads or processes the run left running (its worker was replaced)
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
    "harness_version": pl.String(),  # the harness's own code: stored, not part of the run id
    "git_commit": pl.String(),
    "git_dirty": pl.Boolean(),
    "started_at": pl.String(),  # ISO 8601, UTC
    "finished_at": pl.String(),
}

#: Columns every traces file has; metric values and ``calls_<kind>`` columns follow.
TRACE_COLUMNS: dict[str, pl.DataType] = {
    "run_id": pl.String(),
    "step": pl.Int64(),
    "time_s": pl.Float64(),  # the method's clock so far (init, steps and output calls)
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
        self._next: dict[str, int] = {}  # run id -> the attempt its claim will write
        self._part_attempts: dict[str, dict[str, int]] = {}  # runs part name -> {run id: attempt}

    def finished_run_ids(self) -> set[str]:
        """Ids of every run with an intact runs file or in a runs part (finished, in any status)."""
        snapshot = _snapshot(self.root)
        return {r for r, path in snapshot.run_files.items() if _intact(path, warn=True)} | snapshot.part_ids

    def claim(self, run_id: str, *, replacing: int | None = None) -> bool:
        """Claim ``run_id`` for this process; ``False`` when it is finished or a live process holds it.

        With ``replacing`` (the attempt a rerun means to replace, as the caller read it), a
        finished run is claimed too, as long as its newest attempt is still that one: two
        benches that both mean to rerun it run it once.

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
        newest, intact = self._newest(run_id)
        if intact and (replacing is None or newest != replacing):
            os.close(fd)
            return False
        os.ftruncate(fd, 0)
        os.write(fd, f"pid {os.getpid()} host {socket.gethostname()} since {time.time():.3f}\n".encode())
        claims[run_id] = fd
        self._next[run_id] = _next_attempt(newest, intact)
        return True

    def release(self, run_id: str) -> None:
        """Give up this process's claim on ``run_id`` (no-op when it holds none)."""
        self._next.pop(run_id, None)
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

    def _newest(self, run_id: str) -> tuple[int | None, bool]:
        """The newest stored attempt of ``run_id`` (``None``: none) and whether it is intact.

        One listing of ``runs/``, not a store scan: parts never change once written, so
        their run ids are read once per process.
        """
        newest: tuple[int, bool] | None = None
        for path in _entries(self.runs_dir, parts=False):
            key = _loose_key(path)
            if key[0] == run_id and (newest is None or key[1] > newest[0]):
                newest = (key[1], False)
        if newest is not None:
            newest = (newest[0], _intact(self.runs_dir / _file_name(run_id, newest[0]), warn=False))
        for part in _entries(self.runs_dir, parts=True):
            if part.name not in self._part_attempts:
                try:
                    self._part_attempts[part.name] = _part_attempts(part)
                except Exception:  # noqa: BLE001, S112 - a bad part is named by the readers
                    continue
            attempt = self._part_attempts[part.name].get(run_id)
            if attempt is not None and (newest is None or attempt >= newest[0]):
                newest = (attempt, True)
        return (None, False) if newest is None else newest

    def write_run(self, row: Mapping[str, Any], trace: Sequence[Mapping[str, Any]] = ()) -> None:
        """Write one finished run: its trace, then its row (which marks it finished).

        A run already stored gets a new attempt beside the old one (readers then see this
        one alone); a truncated or corrupt file of the newest attempt is replaced.
        """
        run_id = row["run_id"]
        attempt = self._next.pop(run_id, None)
        if attempt is None:
            attempt = _next_attempt(*self._newest(run_id))
        name = _file_name(run_id, attempt)
        trace_frame = _frame([{"run_id": run_id, **point} for point in trace], TRACE_COLUMNS)
        _atomic_write(trace_frame, self.traces_dir / name)
        run_frame = _frame([{"schema_version": SCHEMA_VERSION, **row, "attempt": attempt}], RUN_COLUMNS)
        _atomic_write(run_frame, self.runs_dir / name)


def _next_attempt(newest: int | None, intact: bool) -> int:
    """The attempt to write after ``newest``: a broken newest file is replaced, an intact one kept."""
    if newest is None:
        return 0
    return newest + 1 if intact else newest


def _file_name(run_id: str, attempt: int) -> str:
    return f"{run_id}.parquet" if attempt == 0 else f"{run_id}.{attempt}.parquet"


def _loose_key(path: Path) -> tuple[str, int]:
    """``(run id, attempt)`` of a per-run file name: ``<run_id>.parquet`` or ``<run_id>.<n>.parquet``."""
    stem = path.name.removesuffix(".parquet")
    run_id, _, attempt = stem.rpartition(".")
    return (run_id, int(attempt)) if run_id and attempt.isdigit() else (stem, 0)


def _part_attempts(part: Path) -> dict[str, int]:
    """``{run id: attempt}`` of a runs part (parts written before attempts existed hold attempt 0)."""
    if "attempt" in pl.read_parquet_schema(part):
        frame = pl.read_parquet(part, columns=["run_id", "attempt"])
        return dict(zip(frame["run_id"].to_list(), frame["attempt"].fill_null(0).to_list()))
    return dict.fromkeys(pl.read_parquet(part, columns=["run_id"])["run_id"].to_list(), 0)


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
    Each run appears once: its newest attempt.
    """
    for _ in range(_RETRIES):
        snapshot = _snapshot(Path(store))
        loose, complete = _read_files(list(snapshot.run_files.values()))
        if complete:
            break
    parts = [_only(pl.scan_parquet(p), keep) for p, keep in snapshot.run_parts]
    frames = [pl.LazyFrame(schema=dict(RUN_COLUMNS)), *parts, loose.lazy()]
    lazy = pl.concat(frames, how="diagonal_relaxed")
    return lazy.with_columns(pl.col("attempt").fill_null(0))  # runs stored before attempts existed


def scan_traces(store: str | os.PathLike[str], run_ids: Iterable[str] | None = None) -> pl.LazyFrame:
    """The evaluation points of ``store``'s runs (of ``run_ids`` only, when given), lazily.

    A run's points are those of its newest attempt.
    """
    wanted = None if run_ids is None else set(run_ids)
    for _ in range(_RETRIES):
        snapshot = _snapshot(Path(store))
        files = snapshot.trace_files if wanted is None else {r: p for r, p in snapshot.trace_files.items() if r in wanted}
        loose, complete = _read_files(list(files.values()))
        if complete:
            break
    parts = []
    for path, keep in snapshot.trace_parts:
        if wanted is not None:
            keep = wanted if keep is None else keep & wanted
        parts.append(_only(pl.scan_parquet(path), keep))
    return pl.concat([pl.LazyFrame(schema=dict(TRACE_COLUMNS)), *parts, loose.lazy()], how="diagonal_relaxed")


def _only(frame: pl.LazyFrame, run_ids: frozenset[str] | set[str] | None) -> pl.LazyFrame:
    return frame if run_ids is None else frame.filter(pl.col("run_id").is_in(sorted(run_ids)))


def compact(store: str | os.PathLike[str], *, min_runs: int = 1) -> int:
    """Merge the per-run files of ``store`` into one runs part and one traces part.

    Crash-safe: the traces part is written first, then the runs part (each atomically), and
    only then are the merged per-run files removed. Readers trust a traces part only beside
    its runs part and skip per-run files of runs that a part holds at the same attempt, so at
    every moment each run is read exactly once. Per-run files no reader takes (leftovers of an
    interrupted compaction, attempts a newer one replaced) are removed here. Concurrent
    compactions are serialized by a lock file; ``harness bench`` may keep writing: its files
    have names of their own, and only files read here are removed.

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
        if runs.is_empty():
            return 0
        ids = set(runs.get_column("run_id").to_list())
        traces, broken = _read_traces_of({r: snapshot.trace_files.get(r) for r in ids})
        ids -= broken
        runs = runs.filter(pl.col("run_id").is_in(sorted(ids)))
        if runs.is_empty():
            return 0
        attempts = {r: _loose_key(snapshot.run_files[r])[1] for r in ids}
        runs = runs.with_columns(  # the file name is the truth for files written before the column
            pl.col("run_id").replace_strict(attempts, return_dtype=pl.Int64()).alias("attempt")
        )
        traces = traces.filter(pl.col("run_id").is_in(sorted(ids)))
        name = f"{PART_PREFIX}{time.time_ns():020d}-{uuid.uuid4().hex[:8]}.parquet"
        _atomic_write(traces, root / "traces" / name)
        _atomic_write(runs, root / "runs" / name)
        for run_id in sorted(ids):
            trace = snapshot.trace_files.get(run_id)
            if trace is not None:
                trace.unlink(missing_ok=True)
        for run_id in sorted(ids):
            snapshot.run_files[run_id].unlink(missing_ok=True)
        _fsync_dir(root / "traces")
        _fsync_dir(root / "runs")
        return len(ids)


_RETRIES = 5


@dataclass(frozen=True)
class _Snapshot:
    """What a reader takes from a store at one moment (see the module docstring).

    Each run id has one source, its newest attempt: a per-run file or a part. A part that
    holds runs whose newest attempt lives elsewhere is read through a filter of the run
    ids it is the source of (``None``: all of its runs).
    """

    run_parts: tuple[tuple[Path, frozenset[str] | None], ...]
    part_ids: frozenset[str]
    run_files: dict[str, Path]  # per-run runs files of the newest attempts no part holds
    trace_parts: tuple[tuple[Path, frozenset[str] | None], ...]  # those with their runs part beside them
    trace_files: dict[str, Path]  # the per-run traces files of those attempts
    orphan_trace_parts: tuple[Path, ...]
    superseded: tuple[Path, ...]  # per-run files of older attempts, or of attempts a part holds too


def _snapshot(root: Path) -> _Snapshot:
    # Per-run files are listed before parts. A compaction writes its part before it removes
    # per-run files, so a listed file that is gone when read is in a part that a fresh
    # snapshot lists (the readers retry), and a file listed beside the part that holds its
    # attempt is skipped: either way each run is read once. A rerun writes a new name
    # (traces first), so a listed runs file's traces file was listed too.
    runs_dir, traces_dir = root / "runs", root / "traces"
    loose_runs = _entries(runs_dir, parts=False)
    loose_traces = _entries(traces_dir, parts=False)
    run_parts = tuple(sorted(_entries(runs_dir, parts=True)))
    trace_parts = {p.name: p for p in _entries(traces_dir, parts=True)}
    # The newest attempt of every run: (attempt, 1 for a part and 0 for a per-run file, part
    # index) is largest for it. A per-run file at a part's attempt is a compaction's leftover.
    best: dict[str, tuple[int, int, int]] = {}
    readable: list[tuple[int, Path, dict[str, int]]] = []
    for index, part in enumerate(run_parts):
        try:
            attempts = _part_attempts(part)
        except Exception as exc:  # noqa: BLE001 - polars raises several error types for bad files
            warnings.warn(f"{part}: unreadable Parquet file skipped ({exc})", CorruptFileWarning, stacklevel=3)
            continue
        readable.append((index, part, attempts))
        for run_id, attempt in attempts.items():
            key = (attempt, 1, index)
            if run_id not in best or key > best[run_id]:
                best[run_id] = key
    keys = {path: _loose_key(path) for path in loose_runs}
    for run_id, attempt in keys.values():
        key = (attempt, 0, 0)
        if run_id not in best or key > best[run_id]:
            best[run_id] = key
    part_sources = []
    for index, part, attempts in readable:
        won = frozenset(r for r in attempts if best[r][1:] == (1, index))
        part_sources.append((part, None if len(won) == len(attempts) else won))
    run_files = {}
    superseded = []
    for path, (run_id, attempt) in keys.items():
        if best[run_id] == (attempt, 0, 0):
            run_files[run_id] = path
        else:
            superseded.append(path)
    trace_files = {}
    for path in loose_traces:
        run_id, attempt = _loose_key(path)
        newest = best.get(run_id)
        if newest == (attempt, 0, 0) and run_id in run_files:
            trace_files[run_id] = path
        elif newest is not None and (attempt, 0) < newest[:2]:
            superseded.append(path)  # an older attempt, or one a part holds; newer ones are being written
    names = {p.name for p, _ in part_sources}
    return _Snapshot(
        run_parts=tuple(part_sources),
        part_ids=frozenset(r for r, key in best.items() if key[1] == 1),
        run_files=run_files,
        trace_parts=tuple((trace_parts[p.name], keep) for p, keep in part_sources if p.name in trace_parts),
        trace_files=trace_files,
        orphan_trace_parts=tuple(p for name, p in sorted(trace_parts.items()) if name not in names),
        superseded=tuple(superseded),
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


def _read_traces_of(files: Mapping[str, Path | None]) -> tuple[pl.DataFrame, set[str]]:
    """The per-run traces ``files`` (run id -> file) and the ids whose traces file exists but is unreadable."""
    frames = [pl.DataFrame(schema=dict(TRACE_COLUMNS))]
    broken: set[str] = set()
    for run_id, path in sorted(files.items()):
        if path is None:
            continue
        try:
            frames.append(pl.read_parquet(path))
        except FileNotFoundError:
            continue
        except Exception as exc:  # noqa: BLE001
            warnings.warn(f"{path}: unreadable, run {run_id} left uncompacted ({exc})", CorruptFileWarning, stacklevel=3)
            broken.add(run_id)
    return pl.concat(frames, how="diagonal_relaxed"), broken


def _remove_leftovers(root: Path, snapshot: _Snapshot) -> None:
    """Per-run files no reader takes (a part holds their attempt, or a newer attempt exists), and traces parts without their runs part."""
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
