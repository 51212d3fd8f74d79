"""The run store: Parquet files written through polars, one pair per finished run.

Layout of a store directory::

    runs/<run_id>.parquet     one row: ids, parameters (JSON), status, timings, memory,
                              final metrics, time-to-target, environment fingerprint
    traces/<run_id>.parquet   one row per evaluation point: step, time, oracle calls, metrics
    runs/<run_id>.<n>.parquet   attempt n >= 1 of a run that was run again (and its trace)
    runs/part-<name>.parquet  many runs, merged by :func:`compact` (large stores read fast)
    traces/part-<name>.parquet  their traces (trusted only beside the runs part of that name)
    damaged/runs/, damaged/traces/  files :meth:`Store.repair` moved aside (their runs are rerun)

A run is written the moment it ends, atomically (temporary file, fsync, rename), traces
first, each file with the permissions the user's umask gives. A run is finished when its
``runs/`` file and its ``traces/`` file both read back whole, with the expected columns and
types, whatever happened to the process afterwards. ``harness bench`` skips the run ids
already present, so an interrupted bench resumes without redoing or losing a finished run.
Any Parquet tool reads the files; ``schema_version`` names the layout. A write that finds
the disk full raises :class:`StoreFullError` and leaves no file of its run behind.

Several ``harness bench`` processes may share one store. Before a run starts, its driver
claims it: ``claims/<run_id>`` is created and locked (``flock``) by that process, holding
its pid and host for people to read. A run claimed by a live process is left to it; the
kernel drops the lock of a process that dies, so its claims are taken over by the next
bench without any guessing about pids, and :meth:`Store.clean_claims` removes the files of
such claims. A claim is granted only if the run is not finished yet, checked under the lock,
so no run is written twice.

Damage is named, never papered over. Readers skip a file that is truncated, garbled, or
holds a column of another type than the layout's (a numeric column stored as strings, say),
with a :class:`CorruptFileWarning`; they never change a column's type to fit such a file.
:meth:`Store.repair` (run by every bench) moves the per-run pair of such a run, and a part
pair whose footer or schema is unreadable, into ``damaged/`` (nothing is deleted), so
those runs count as unfinished and are run again.

A run can be run again (``harness bench --retry-failed`` or ``--force``): the new result is
attempt ``n + 1`` of the run (the ``attempt`` column), written beside the old one under a
name of its own, so no file is ever rewritten while a reader or a compaction may hold it.
Readers see one row per run id, its newest attempt, and that attempt's trace alone, wherever
each attempt lives (per-run files, parts); a compaction keeps the newest and drops the rest.

:func:`compact` merges the per-run files and the parts into one part pair (traces part, then
runs part, each atomic; only then are the merged files removed), so parts never
accumulate. Readers take a run from the newest part that holds it (at the same attempt) and
from its per-run file otherwise, so a run is read exactly once, even while a compaction runs
or after one was interrupted. :func:`scan_runs`
and :func:`scan_traces` give lazy frames for large stores.

Examples
--------
>>> import polars as pl
>>> pl.scan_parquet("store/runs/*.parquet")  # doctest: +SKIP
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import socket
import tempfile
import time
import uuid
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
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
    "StoreFullError",
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

#: Where :meth:`Store.repair` moves damaged files (``damaged/runs``, ``damaged/traces``).
DAMAGED_DIR = "damaged"

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


class StoreFullError(OSError):
    """A write found no space left on the store's device (nothing half-written is left)."""


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
        self._sound: set[tuple[str, int, int, int]] = set()  # files read back whole (they never change)

    def check_writable(self) -> None:
        """Write, sync and remove a small file in each directory of the store.

        Raises
        ------
        StoreFullError
            When the disk is full.
        OSError
            When the store is read only or not this user's to write.
        """
        for directory in (self.runs_dir, self.traces_dir, self.root / "claims"):
            directory.mkdir(exist_ok=True)
            fd, tmp = _full_is_store_full(tempfile.mkstemp, None, ".probe.", str(directory))
            try:
                _full_is_store_full(os.write, fd, b"\0" * 4096)  # a block: what an empty file does not need
                _full_is_store_full(os.fsync, fd)
            finally:
                os.close(fd)
                os.unlink(tmp)

    def finished_run_ids(self, *, repair: bool = True) -> set[str]:
        """Ids of every finished run (in any status): a per-run pair that reads back whole, or a part's.

        Damaged runs are moved aside first (:meth:`repair`; ``repair=False`` when the caller just
        did) and do not count.
        """
        if repair:
            self.repair()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", CorruptFileWarning)  # repair named them
            snapshot = _snapshot(self.root)
        whole = {r for r, p in snapshot.run_files.items() if self._pair_problem(p, snapshot.trace_files.get(r)) is None}
        return whole | snapshot.part_ids

    def repair(self) -> dict[str, str]:
        """Move the files of damaged runs into ``damaged/`` (nothing is deleted) so that they are run again.

        A per-run pair is damaged when its runs row or its trace does not read back whole with
        the layout's columns and types (or its trace is missing); a part pair when the footer
        or schema of either file is unreadable, or its traces part is missing. Each is named in
        a :class:`CorruptFileWarning`. Serialized with :func:`compact`.

        Returns
        -------
        dict
            ``{run id: what was wrong}`` of the runs whose newest attempt was moved aside (an
            older attempt, where one is stored, is then the newest).
        """
        moved: dict[str, str] = {}
        with _exclusive(self.root / ".compact.lock"):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", CorruptFileWarning)  # named below, with what is done
                snapshot = _snapshot(self.root)
            for run_id, path in sorted(snapshot.run_files.items()):
                why = self._pair_problem(path, snapshot.trace_files.get(run_id))
                if why is not None:
                    self._set_aside(self.traces_dir / path.name, path)
                    warnings.warn(f"{path}: {why}; moved to {self.root / DAMAGED_DIR}, its run will be run again",
                                  CorruptFileWarning, stacklevel=2)
                    moved[run_id] = why
            for part in sorted(_entries(self.runs_dir, parts=True)):
                why = _part_problem(part, self.traces_dir / part.name)
                if why is not None:
                    try:
                        ids = _part_attempts(part)
                    except Exception:  # noqa: BLE001 - unreadable: its run ids are unknown
                        ids = {}
                    self._set_aside(self.traces_dir / part.name, part)
                    self._part_attempts.pop(part.name, None)
                    warnings.warn(f"{part}: {why}; moved to {self.root / DAMAGED_DIR}, its {len(ids) or 'unknown'} "
                                  "run(s) will be run again", CorruptFileWarning, stacklevel=2)
                    moved.update(dict.fromkeys(ids, why))
        return moved

    def _set_aside(self, *paths: Path) -> None:
        """Move ``paths`` (traces first: a runs file never outlives its trace) into ``damaged/<dir>/``."""
        for path in paths:
            target_dir = self.root / DAMAGED_DIR / path.parent.name
            target_dir.mkdir(parents=True, exist_ok=True)
            target = target_dir / path.name
            if target.exists():
                target = target_dir / f"{path.name}.{time.time_ns()}"
            try:
                os.rename(path, target)
            except FileNotFoundError:
                continue  # never written, or another bench moved it already
        _fsync_dir(self.traces_dir)
        _fsync_dir(self.runs_dir)

    def _pair_problem(self, runs_path: Path, trace_path: Path | None) -> str | None:
        """What is wrong with the per-run pair (``None``: it reads back whole; a file that vanished is no damage)."""
        run_id = _loose_key(runs_path)[0]
        if trace_path is None:
            trace_path = self.traces_dir / runs_path.name
        for path, columns, label in ((runs_path, RUN_COLUMNS, ""), (trace_path, TRACE_COLUMNS, "its trace: ")):
            try:
                stat = os.stat(path)
            except FileNotFoundError:
                if path is runs_path:
                    return None
                return "its traces file is missing"
            key = (str(path), stat.st_ino, stat.st_size, stat.st_mtime_ns)
            if key in self._sound:
                continue
            try:
                why = _file_problem(path, columns, run_id, runs=path is runs_path)
            except FileNotFoundError:
                return None  # a compaction took it meanwhile
            if why is not None:
                return label + why
            self._sound.add(key)
        return None

    def clean_claims(self) -> int:
        """Remove the claim files of processes that died (nobody holds their lock); returns how many."""
        directory = self.root / "claims"
        removed = 0
        try:
            names = os.listdir(directory)
        except FileNotFoundError:
            return 0
        for name in names:
            if name in self._claims:
                continue
            path = directory / name
            try:
                fd = os.open(path, os.O_RDWR)
            except OSError:
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                if os.stat(path).st_ino == os.fstat(fd).st_ino:
                    path.unlink()  # under the lock: a claimer that opened it retries (see claim)
                    removed += 1
            except OSError:
                pass  # held by a live process, or removed meanwhile
            finally:
                os.close(fd)
        return removed

    def claim(self, run_id: str, *, replacing: int | None = None) -> bool:
        """Claim ``run_id`` for this process; ``False`` when it is finished or a live process holds it.

        With ``replacing`` (the attempt a rerun means to replace, as the caller read it), a
        finished run is claimed too, as long as its newest attempt is still that one: two
        benches that both mean to rerun it run it once.

        Release the claim with :meth:`release` once the run is written (or abandoned); a
        process that dies releases its claims with it.

        Raises
        ------
        StoreFullError
            When the claim file cannot be written for want of space.
        """
        claims = self._claims
        if run_id in claims:
            return True
        directory = self.root / "claims"
        directory.mkdir(exist_ok=True)
        path = directory / run_id
        while True:
            fd = _full_is_store_full(os.open, path, os.O_CREAT | os.O_RDWR, 0o666)  # the umask decides
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
        try:
            newest, intact = self._newest(run_id)
            if intact and (replacing is None or newest != replacing):
                self._drop_claim(path, fd)
                return False
            os.ftruncate(fd, 0)
            _full_is_store_full(os.write, fd, f"pid {os.getpid()} host {socket.gethostname()} since {time.time():.3f}\n".encode())
        except BaseException:
            self._drop_claim(path, fd)
            raise
        claims[run_id] = fd
        self._next[run_id] = _next_attempt(newest, intact)
        return True

    def release(self, run_id: str) -> None:
        """Give up this process's claim on ``run_id`` (no-op when it holds none)."""
        self._next.pop(run_id, None)
        fd = self._claims.pop(run_id, None)
        if fd is not None:
            self._drop_claim(self.root / "claims" / run_id, fd)

    @staticmethod
    def _drop_claim(path: Path, fd: int) -> None:
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
        """The newest stored attempt of ``run_id`` (``None``: none) and whether it is whole.

        One listing of ``runs/``, not a store scan: parts never change once written, so
        their run ids are read once per process. A damaged newest per-run pair is moved aside
        (see :meth:`repair`) and the attempt before it is the newest.
        """
        while True:
            newest: tuple[int, bool] | None = None
            for path in _entries(self.runs_dir, parts=False):
                key = _loose_key(path)
                if key[0] == run_id and (newest is None or key[1] > newest[0]):
                    newest = (key[1], False)
            if newest is not None:
                path = self.runs_dir / _file_name(run_id, newest[0])
                why = self._pair_problem(path, None) if path.exists() else "gone"
                if why is not None and why != "gone":
                    with _exclusive(self.root / ".compact.lock"):
                        # Again under the lock: a compaction removes a merged run's trace before its row.
                        why = self._pair_problem(path, None)
                        if why is not None:
                            self._set_aside(self.traces_dir / path.name, path)
                    if why is not None:
                        warnings.warn(f"{path}: {why}; moved to {self.root / DAMAGED_DIR}, its run will be run again",
                                      CorruptFileWarning, stacklevel=3)
                    continue
                newest = (newest[0], why is None)
            break
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

    def newest_attempt(self, run_id: str) -> int | None:
        """The newest whole attempt of ``run_id`` that the store holds (``None``: none)."""
        newest, whole = self._newest(run_id)
        return newest if whole else None

    def write_run(self, row: Mapping[str, Any], trace: Sequence[Mapping[str, Any]] = ()) -> None:
        """Write one finished run: its trace, then its row (which marks it finished).

        A run already stored gets a new attempt beside the old one (readers then see this
        one alone).

        Raises
        ------
        StoreFullError
            When the disk is full; neither file of the run is left behind.
        """
        run_id = row["run_id"]
        attempt = self._next.pop(run_id, None)
        if attempt is None:
            attempt = _next_attempt(*self._newest(run_id))
        name = _file_name(run_id, attempt)
        trace_frame = _frame([{"run_id": run_id, **point} for point in trace], TRACE_COLUMNS)
        run_frame = _frame([{"schema_version": SCHEMA_VERSION, **row, "attempt": attempt}], RUN_COLUMNS)
        _atomic_write(trace_frame, self.traces_dir / name)
        try:
            _atomic_write(run_frame, self.runs_dir / name)
        except BaseException:
            (self.traces_dir / name).unlink(missing_ok=True)  # a trace without its row is half a run
            raise


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


def read_runs(store: str | os.PathLike[str], columns: Sequence[str] | None = None) -> pl.DataFrame:
    """Every run of ``store`` as one frame (metric columns missing in a run are null).

    ``columns``: only these (on a compacted store only they are read). Unlike collecting
    :func:`scan_runs`, this reads again when a compaction removed a part meanwhile.

    Examples
    --------
    >>> read_runs("harness-store").group_by("method").agg(pl.col("suboptimality").median())  # doctest: +SKIP
    """

    def scan() -> tuple[pl.LazyFrame, _Snapshot]:
        lazy, snapshot = _scan_runs(Path(store))
        return (lazy if columns is None else lazy.select(columns)), snapshot

    return _collect(scan)


def read_traces(store: str | os.PathLike[str], run_ids: Iterable[str] | None = None) -> pl.DataFrame:
    """The evaluation points of ``store``'s runs (of ``run_ids`` only, when given)."""
    return _collect(lambda: _scan_traces(Path(store), run_ids))


def _collect(scan: Callable[[], tuple[pl.LazyFrame, _Snapshot]]) -> pl.DataFrame:
    """Collect a scan, again when a compaction removed a part it read from (it merged it into a new one)."""
    for attempt in range(_RETRIES):
        lazy, snapshot = scan()
        try:
            return lazy.collect()
        except Exception:
            gone = any(not p.exists() for p, _ in snapshot.run_parts + snapshot.trace_parts)
            if not gone or attempt == _RETRIES - 1:
                raise
    raise AssertionError("unreachable")


def scan_runs(store: str | os.PathLike[str]) -> pl.LazyFrame:
    """Every run of ``store`` as a lazy frame: parts are scanned, per-run files read.

    Select the columns you need before collecting: on a compacted store only those are read.
    Each run appears once: its newest attempt. Columns have the layout's types: a file that
    holds another is skipped with a :class:`CorruptFileWarning`.
    """
    return _scan_runs(Path(store))[0]


def scan_traces(store: str | os.PathLike[str], run_ids: Iterable[str] | None = None) -> pl.LazyFrame:
    """The evaluation points of ``store``'s runs (of ``run_ids`` only, when given), lazily.

    A run's points are those of its newest attempt.
    """
    return _scan_traces(Path(store), run_ids)[0]


def _scan_runs(root: Path, snapshot: _Snapshot | None = None) -> tuple[pl.LazyFrame, _Snapshot]:
    for _ in range(_RETRIES):
        snapshot = snapshot or _snapshot(root)
        loose, complete = _read_files(snapshot.run_files, RUN_COLUMNS, runs=True)
        if complete:
            break
        snapshot = None
    assert snapshot is not None
    parts = [_part_scan(p, RUN_COLUMNS, keep) for p, keep in snapshot.run_parts]
    lazy = _concat([pl.LazyFrame(schema=dict(RUN_COLUMNS)), *parts, loose.lazy()])
    return lazy.with_columns(pl.col("attempt").fill_null(0)), snapshot  # runs stored before attempts existed


def _scan_traces(root: Path, run_ids: Iterable[str] | None, snapshot: _Snapshot | None = None) -> tuple[pl.LazyFrame, _Snapshot]:
    wanted = None if run_ids is None else set(run_ids)
    for _ in range(_RETRIES):
        snapshot = snapshot or _snapshot(root)
        files = snapshot.trace_files if wanted is None else {r: p for r, p in snapshot.trace_files.items() if r in wanted}
        loose, complete = _read_files(files, TRACE_COLUMNS, runs=False)
        if complete:
            break
        snapshot = None
    assert snapshot is not None
    parts = []
    for path, keep in snapshot.trace_parts:
        if wanted is not None:
            keep = wanted if keep is None else keep & wanted
        parts.append(_part_scan(path, TRACE_COLUMNS, keep))
    return _concat([pl.LazyFrame(schema=dict(TRACE_COLUMNS)), *parts, loose.lazy()]), snapshot


def _part_scan(path: Path, columns: Mapping[str, pl.DataType], run_ids: frozenset[str] | set[str] | None) -> pl.LazyFrame:
    """A part, lazily, with the layout's column types.

    Parts written before readers checked types may hold numbers as strings (the bug of an
    older compaction): such columns are cast back, named in a warning, and the next
    :func:`compact` rewrites them.
    """
    frame = pl.scan_parquet(path)
    try:
        schema = pl.read_parquet_schema(path)
    except FileNotFoundError:
        schema = {}  # removed by a compaction: the collect notices and the reader retries
    casts = {c: columns[c] for c, t in schema.items() if c in columns and t != columns[c] and t != pl.Null()}
    strings = [c for c, t in schema.items() if c not in columns and t == pl.String()]
    if strings:  # extra columns are metrics and oracle calls, numbers; only a damaged part has strings
        values = pl.read_parquet(path, columns=strings)
        casts.update({c: pl.Float64() for c in strings if _numeric_strings(values.get_column(c))})
    if casts:
        warnings.warn(f"{path}: column(s) {', '.join(sorted(casts))} not of the layout's type; read as "
                      "the layout's types (`harness compact` rewrites the part)", CorruptFileWarning, stacklevel=4)
        frame = frame.with_columns(pl.col(c).cast(t, strict=False) for c, t in casts.items())
    return frame if run_ids is None else frame.filter(pl.col("run_id").is_in(sorted(run_ids)))


def _concat(frames: list[pl.LazyFrame]) -> pl.LazyFrame:
    """Stack frames; an extra (metric) column numeric in one source is cast to Float64 in the others.

    Left to ``diagonal_relaxed``, one source with a column of strings would turn that
    column into strings for every row.
    """
    schemas = [f.collect_schema() for f in frames]
    numeric = {c for s in schemas for c, t in s.items() if t.is_numeric()}
    fixed = []
    for frame, schema in zip(frames, schemas):
        casts = [pl.col(c).cast(pl.Float64(), strict=False) for c, t in schema.items() if c in numeric and t == pl.String()]
        fixed.append(frame.with_columns(casts) if casts else frame)
    return pl.concat(fixed, how="diagonal_relaxed")


def compact(store: str | os.PathLike[str], *, min_runs: int = 1) -> int:
    """Merge the per-run files and the parts of ``store`` into one runs part and one traces part.

    Damaged files are moved aside first (:meth:`Store.repair`). Crash-safe: the new traces
    part is written first, then the new runs part (each atomically), and only then are the
    merged files removed: old parts, then per-run files. Readers take each run from the
    newest part that holds its attempt, trust a traces part only beside its runs part, and
    skip per-run files of runs that a part holds at the same attempt, so at every moment
    each run is read exactly once. Per-run files no reader takes (leftovers of an
    interrupted compaction, attempts a newer one replaced) are removed here. Concurrent
    compactions are serialized by a lock file; ``harness bench`` may keep writing: its files
    have names of their own, and only files read here are removed.

    Parameters
    ----------
    store
        The store directory.
    min_runs
        Merge only when at least this many per-run files are waiting (or parts to merge).

    Returns
    -------
    int
        The number of per-run files merged.

    Raises
    ------
    StoreFullError
        When the disk is full; the store is left as it was.
    """
    root = Path(store)
    Store(root).repair()
    with _exclusive(root / ".compact.lock"):
        snapshot = _snapshot(root)
        _remove_leftovers(root, snapshot)
        old_parts = [p for p, _ in snapshot.run_parts]
        waiting = len(snapshot.run_files)
        if len(old_parts) < 2 and (waiting == 0 or waiting < min_runs):
            return 0
        runs = _scan_runs(root, snapshot)[0].collect()
        if runs.is_empty():
            return 0
        ids = set(runs.get_column("run_id").to_list())
        traces = _scan_traces(root, ids, snapshot)[0].collect()
        loose = {r: p for r, p in snapshot.run_files.items() if r in ids}
        attempts = {r: _loose_key(p)[1] for r, p in loose.items()}
        runs = runs.with_columns(  # the file name is the truth for files written before the column
            pl.when(pl.col("run_id").is_in(sorted(attempts)))
            .then(pl.col("run_id").replace_strict(attempts, default=None, return_dtype=pl.Int64()))
            .otherwise(pl.col("attempt"))
            .alias("attempt")
        )
        name = f"{PART_PREFIX}{time.time_ns():020d}-{uuid.uuid4().hex[:8]}.parquet"
        _atomic_write(traces, root / "traces" / name)
        try:
            _atomic_write(runs, root / "runs" / name)
        except BaseException:
            (root / "traces" / name).unlink(missing_ok=True)
            raise
        for part in old_parts:  # runs parts first: a traces part alone is a leftover, never read
            part.unlink(missing_ok=True)
        for part in old_parts:
            (root / "traces" / part.name).unlink(missing_ok=True)
        for run_id in sorted(loose):
            (root / "traces" / loose[run_id].name).unlink(missing_ok=True)
        for run_id in sorted(loose):
            loose[run_id].unlink(missing_ok=True)
        _fsync_dir(root / "traces")
        _fsync_dir(root / "runs")
        return len(loose)


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


def _file_problem(path: Path, columns: Mapping[str, pl.DataType], run_id: str, *, runs: bool) -> str | None:
    """What is wrong with a per-run file (``None``: nothing); raises ``FileNotFoundError`` when it vanished."""
    try:
        frame = pl.read_parquet(path)
    except FileNotFoundError:
        raise
    except Exception as exc:  # noqa: BLE001 - polars raises several error types for bad files
        return f"unreadable Parquet file ({_one_line(exc)})"
    return _frame_problem(frame, columns, run_id, runs=runs)


def _frame_problem(frame: pl.DataFrame, columns: Mapping[str, pl.DataType], run_id: str, *, runs: bool) -> str | None:
    """What in a per-run file's frame departs from the layout (``None``: nothing).

    Numbers of another width pass (they are cast); a number stored as a string, a string
    column of numbers, or rows of another run do not.
    """
    if runs and frame.height != 1:
        return f"{frame.height} rows, not 1"
    required = ("run_id", "status") if runs else tuple(TRACE_COLUMNS)
    missing = [c for c in required if c not in frame.columns]
    if missing:
        return f"no {', '.join(missing)} column"
    for name, dtype in frame.schema.items():
        expected = columns.get(name)
        if dtype == pl.Null():
            continue
        if expected is not None and dtype != expected and not (dtype.is_numeric() and expected.is_numeric()):
            return f"column {name} is {dtype}, not {expected}"
        if expected is None and dtype == pl.String() and _numeric_strings(frame.get_column(name)):
            return f"column {name} holds numbers stored as strings"
    if frame.height and frame.get_column("run_id").unique().to_list() != [run_id]:
        return f"rows of another run than {run_id}"
    return None


def _numeric_strings(column: pl.Series) -> bool:
    values = column.drop_nulls()
    return len(values) > 0 and values.str.strip_chars().cast(pl.Float64(), strict=False).null_count() == 0


def _part_problem(runs_part: Path, traces_part: Path) -> str | None:
    """What is wrong with a part pair, from the footers (``None``: nothing, or it vanished)."""
    if not runs_part.exists():
        return None
    for path, label in ((runs_part, ""), (traces_part, "its traces part: ")):
        try:
            schema = pl.read_parquet_schema(path)
        except FileNotFoundError:
            return None if path is runs_part else "its traces part is missing"
        except Exception as exc:  # noqa: BLE001
            return f"{label}unreadable Parquet file ({_one_line(exc)})"
        if "run_id" not in schema:
            return f"{label}no run_id column"
    return None


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def _entries(directory: Path, *, parts: bool) -> list[Path]:
    try:
        with os.scandir(directory) as it:
            names = [e.name for e in it if e.name.endswith(".parquet") and not e.name.startswith(".")]
    except FileNotFoundError:
        return []
    return [directory / n for n in names if n.startswith(PART_PREFIX) == parts]


def _read_files(files: Mapping[str, Path], columns: Mapping[str, pl.DataType], *, runs: bool) -> tuple[pl.DataFrame, bool]:
    """Read per-run files (run id -> file), in the layout's types.

    A file that departs from the layout is named and skipped, and so is one whose extra
    column holds strings where other files hold numbers. ``complete`` is false when a file
    vanished (a compaction moved it).
    """
    frames: list[tuple[Path, pl.DataFrame]] = []
    complete = True
    for run_id, path in sorted(files.items()):
        try:
            frame = pl.read_parquet(path)
        except FileNotFoundError:
            complete = False
            continue
        except Exception as exc:  # noqa: BLE001 - polars raises several error types for bad files
            why = f"unreadable Parquet file ({_one_line(exc)})"
        else:
            why = _frame_problem(frame, columns, run_id, runs=runs)
        if why is not None:
            warnings.warn(f"{path}: {why}; skipped", CorruptFileWarning, stacklevel=5)
            continue
        casts = [pl.col(c).cast(columns[c]) for c, t in frame.schema.items() if c in columns and t != columns[c]]
        frames.append((path, frame.with_columns(casts) if casts else frame))
    numeric = {c for _, f in frames for c, t in f.schema.items() if t.is_numeric()}
    kept = []
    for path, frame in frames:
        clash = sorted(c for c, t in frame.schema.items() if c in numeric and t == pl.String())
        if clash:
            warnings.warn(f"{path}: column(s) {', '.join(clash)} hold strings where other runs hold numbers; skipped",
                          CorruptFileWarning, stacklevel=5)
        else:
            kept.append(frame)
    if not kept:
        return pl.DataFrame(), complete
    return pl.concat(kept, how="diagonal_relaxed"), complete


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


def _is_full(exc: BaseException) -> bool:
    """Whether ``exc`` says the device is full (polars wraps the OS error in a text of its own)."""
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    return isinstance(exc, pl.exceptions.PolarsError) and ("os error 28" in str(exc) or "os error 122" in str(exc))


def _full_is_store_full(call: Callable[..., Any], *args: Any) -> Any:
    """``call(*args)``, with a full disk raised as :class:`StoreFullError`."""
    try:
        return call(*args)
    except OSError as exc:
        if _is_full(exc):
            raise StoreFullError(exc.errno, f"no space left on the device ({exc.strerror})") from exc
        raise


def _umask() -> int:
    """The process's umask, read without changing it (``os.umask`` sets it, racing other threads)."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _atomic_write(frame: pl.DataFrame, path: Path) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o666 & ~_umask())  # as open() would create it; mkstemp makes 0600
        with os.fdopen(fd, "wb") as handle:
            frame.write_parquet(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        Path(tmp).unlink(missing_ok=True)
        if _is_full(exc):
            raise StoreFullError(errno.ENOSPC, f"no space left on the device writing {path}") from exc
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
