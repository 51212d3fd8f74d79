"""The run store: Parquet files written through polars, one pair per finished run.

Layout of a store directory::

    runs/<run_id>.parquet     one row: ids, parameters (JSON), status, timings, memory,
                              final metrics, time-to-target, environment fingerprint
    traces/<run_id>.parquet   one row per evaluation point: step, time, oracle calls, metrics, probes
    runs/<run_id>.<n>.parquet   attempt n >= 1 of a run that was run again (and its trace)
    runs/part-<name>.parquet  many runs, merged by :func:`compact` (large stores read fast)
    traces/part-<name>.parquet  their traces (trusted only beside the runs part of that name)
    damaged/runs/, damaged/traces/  files :meth:`Store.repair` moved aside (their runs are rerun)
    declarations/methods/<id>.yaml  the method declarations the benches ran (:meth:`Store.save_declaration`)
    index/verified            the per-run files known to read back whole (:data:`VERIFIED_INDEX`; a cache)

Schema (``schema_version`` 3)
-----------------------------
Every runs file has the same columns, whatever its task, and so does every traces file, so
any Parquet reader opens a whole directory (``runs/*.parquet``) as one table:

``runs/``
    ``schema_version`` (Int64, 3), the fixed columns of :data:`harness.record.RUN_COLUMNS`
    in their order (String, Int64, Float64 or Boolean: :data:`RUN_COLUMNS` here gives the
    polars types), then ``calls: List(Struct{kind: String, n: Int64})`` (oracle calls by
    kind) and ``values: List(Struct{metric: String, value: Float64})`` (the final value of
    each declared metric; null when not measured). ``metrics`` (String) keeps the task's
    declarations as JSON ``{metric id: {unit, lower_is_better}}``.
``traces/``
    The fixed columns of :data:`harness.record.TRACE_COLUMNS` (``run_id``, ``step``,
    ``time_s``, ``oracle_calls``), then ``calls`` as above (the counts so far) and
    ``values: List(Struct{name: String, value: Float64})``: the metric values and the probe
    values (``<probe>/<name>``) of the point. In a per-run traces file every point lists the
    same names, null where the point has none (a migrated part keeps the non-null ones).

Why lists of structs: the variable part (which metrics, call kinds and probes a run has)
differs per task. One column per metric (schema 1 and 2) made every task's files a schema
of their own, which ``pl.scan_parquet("runs/*.parquet")`` refuses and pandas reads with
columns silently dropped. A ``List(Struct)`` is a fixed type that Parquet, Arrow, polars,
pandas and duckdb all read natively (a Parquet ``MAP`` is not a polars type, and a JSON
string column would be neither typed nor vectorized); names and values are typed, nulls
kept, and unpacking it is one explode or ``list.eval``. The names of a file are also kept in
its footer (key ``harness_store``), so a reader learns a part's columns without reading it.

In memory nothing of this shows: :meth:`Store.write_run` takes the *wide* row of
:meth:`harness.record.RunRecord.row` (fixed columns, ``calls_<kind>`` ints, metric floats)
and wide trace points, and :func:`read_runs`, :func:`read_traces`, :func:`scan_runs` and
:func:`scan_traces` give wide frames back: one ``calls_<kind>`` Int64 column per call kind,
one Float64 column per metric (and probe, in traces), null where a run has none. A name
that would shadow a fixed column is not spread.

Reading the files with other tools (the nested columns unpacked)::

    import polars as pl
    long = (pl.scan_parquet("store/runs/*.parquet").select("run_id", "task", "method", "values")
            .explode("values").unnest("values").drop_nulls("metric"))   # one row per (run, metric)
    wide = long.collect().pivot(on="metric", index=["run_id", "task", "method"], values="value")

    import pandas as pd       # pyarrow underneath: ``values`` holds a list of dicts per run
    long = pd.read_parquet("store/runs")[["run_id", "values"]].explode("values").dropna()
    long = pd.concat([long["run_id"].reset_index(drop=True), pd.DataFrame(long["values"].tolist())], axis=1)
    wide = long.pivot(index="run_id", columns="metric", values="value")

    import duckdb
    duckdb.sql(\"\"\"select run_id, task, method, v.metric, v.value
                  from read_parquet('store/runs/*.parquet'), unnest("values") as t(v)\"\"\")

Traces read the same way (``traces/*.parquet``; the field is ``name``, not ``metric``).

Older stores (schema 1: no ``schema_version`` column; schema 2) kept one column per metric;
readers refuse them with :class:`StoreSchemaError` (one line, saying what to do) and
:func:`compact` migrates them to this schema (nothing is moved aside as damaged).

Writing and reading
-------------------
A run is written the moment it ends, atomically (temporary file, fsync, rename), traces
first, each file with the permissions the user's umask gives. A run is finished when its
``runs/`` file and its ``traces/`` file both read back whole, with the expected columns and
types, whatever happened to the process afterwards. ``harness bench`` skips the run ids
already present, so an interrupted bench resumes without redoing or losing a finished run.
A write that finds the disk full raises :class:`StoreFullError` and leaves no file of its
run behind. Frames are built column by column with the layout's types (no inference), so a
write takes time linear in the trace's length.

Several ``harness bench`` processes may share one store. Before a run starts, its driver
claims it: ``claims/<run_id>`` is created and locked (``flock``) by that process, holding
its pid and host for people to read. A run claimed by a live process is left to it; the
kernel drops the lock of a process that dies, so its claims are taken over by the next
bench without any guessing about pids, and :meth:`Store.clean_claims` removes the files of
such claims. A claim is granted only if the run is not finished yet, checked under the lock,
so no run is written twice.

Damage is named, never papered over. Readers skip a file that is truncated, garbled, or
holds a column of another type than the layout's (a numeric column stored as strings, say,
or metric values stored as strings inside ``values``), with a :class:`CorruptFileWarning`;
they never change a column's type to fit such a file. :meth:`Store.repair` (run by every
bench) moves the per-run pair of such a run, and a part pair whose footer or schema is
unreadable, into ``damaged/`` (nothing is deleted), so those runs count as unfinished and
are run again.

Costs follow the plan, not the store. Each file a bench writes is read back once, from the
page cache, and listed in ``index/verified`` with its inode, size and modification time; a
later bench trusts a listed file whose stat still matches (one ``stat``, no read) and reads
any other again, so damage done to a file after it was written is still found. The index
only saves reads: a line lost, garbled or naming a changed file costs one read back.
Parts never change, so their ``(run_id, attempt)`` columns are read once per process.
:func:`read_runs` with ``run_ids`` reads only those runs' per-run files and filters the
parts as it scans them. ``harness bench`` compacts (tiered, see :func:`compact`) whenever
:data:`AUTO_COMPACT_FILES` per-run files wait, so a listing of ``runs/`` (each claim makes
one) stays short over a store's life.

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
>>> pl.scan_parquet("store/runs/*.parquet").select("run_id", "values").explode("values")  # doctest: +SKIP
"""

from __future__ import annotations

import errno
import fcntl
import itertools
import json
import os
import socket
import tempfile
import time
import uuid
import warnings
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from harness import record
from harness.record import CALLS_PREFIX

__all__ = [
    "RUN_COLUMNS",
    "SCHEMA_VERSION",
    "TRACE_COLUMNS",
    "DECLARATIONS_DIR",
    "STUDIES_DIR",
    "CorruptFileWarning",
    "Store",
    "StoreFullError",
    "StoreSchemaError",
    "compact",
    "read_runs",
    "read_studies",
    "read_traces",
    "scan_runs",
    "scan_traces",
]

#: 2: the ``attempt`` and ``harness_version`` columns. 3: one schema for every task (the
#: variable part in the nested ``calls`` and ``values`` columns).
SCHEMA_VERSION = 3


#: File-name prefix of the merged files written by :func:`compact`.
PART_PREFIX = "part-"

#: Where :meth:`Store.save_declaration` keeps the declarations a bench ran (``declarations/methods/<id>.yaml``):
#: laid out as a catalog root, so the leaderboard shows a method of the user's own catalog without ``--catalog``.
DECLARATIONS_DIR = "declarations"
#: Where finished tuning studies are kept, one JSON file each (:meth:`Store.save_study`).
STUDIES_DIR = "studies"

#: Where :meth:`Store.repair` moves damaged files (``damaged/runs``, ``damaged/traces``).
DAMAGED_DIR = "damaged"

#: The index of the per-run files known to read back whole: one line ``<dir>/<name>\t<inode>\t<size>\t<mtime_ns>``
#: per file, appended by the bench that wrote or verified it, pruned by :func:`compact`.
VERIFIED_INDEX = "index/verified"

#: ``harness bench`` compacts the store (:func:`compact` with ``tiered=True``) whenever this many per-run
#: runs files are waiting, so no listing, read or claim of the store grows with its whole history.
AUTO_COMPACT_FILES = 1000

#: The footer key holding a file's names: ``{"schema_version", "calls": [kinds], "values": [names]}``.
FOOTER_KEY = "harness_store"

_DTYPES: dict[str, pl.DataType] = {"str": pl.String(), "int": pl.Int64(), "float": pl.Float64(), "bool": pl.Boolean()}

#: ``calls``: oracle calls by kind (runs: the totals; traces: the counts so far).
CALLS_DTYPE = pl.List(pl.Struct({"kind": pl.String(), "n": pl.Int64()}))
#: ``values`` of a runs file: the final value of each declared metric.
RUN_VALUES_DTYPE = pl.List(pl.Struct({"metric": pl.String(), "value": pl.Float64()}))
#: ``values`` of a traces file: metric and probe values of the point.
TRACE_VALUES_DTYPE = pl.List(pl.Struct({"name": pl.String(), "value": pl.Float64()}))

#: Columns of every runs file, in order, with their types (from :data:`harness.record.RUN_COLUMNS`).
RUN_COLUMNS: dict[str, pl.DataType] = {
    "schema_version": pl.Int64(),
    **{name: _DTYPES[kind] for name, kind in record.RUN_COLUMNS.items()},
    "calls": CALLS_DTYPE,
    "values": RUN_VALUES_DTYPE,
}

#: Columns of every traces file, in order, with their types (from :data:`harness.record.TRACE_COLUMNS`).
TRACE_COLUMNS: dict[str, pl.DataType] = {
    **{name: _DTYPES[kind] for name, kind in record.TRACE_COLUMNS.items()},
    "calls": CALLS_DTYPE,
    "values": TRACE_VALUES_DTYPE,
}

_NESTED = ("calls", "values")


@dataclass(frozen=True)
class _Layout:
    """One kind of file: its columns on disk and the field naming a value."""

    columns: Mapping[str, pl.DataType]
    value_field: str  # "metric" (runs) or "name" (traces)
    runs: bool

    @property
    def scalars(self) -> list[str]:
        return [c for c in self.columns if c not in _NESTED]


_RUNS = _Layout(RUN_COLUMNS, "metric", runs=True)
_TRACES = _Layout(TRACE_COLUMNS, "name", runs=False)


class CorruptFileWarning(UserWarning):
    """A Parquet file of the store could not be read; it is named and skipped."""


class StoreFullError(OSError):
    """A write found no space left on the store's device (nothing half-written is left)."""


class StoreSchemaError(ValueError):
    """The store was written with another store schema: older ones :func:`compact` migrates.

    ``str()`` of it is one line that says what to do.
    """

    def __init__(self, store: str | os.PathLike[str], version: int) -> None:
        self.store = Path(store)
        self.version = version
        if version < SCHEMA_VERSION:
            todo = f"run `harness compact --store {self.store}` to migrate it"
        else:
            todo = "a newer harness reads it"
        super().__init__(f"{self.store}: written with store schema {version} "
                         f"(this harness reads {SCHEMA_VERSION}); {todo}")


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
        self._sound: set[tuple[str, int, int, int, bool]] | None = None  # files read back whole: see _verified

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

    def save_declaration(self, kind: str, spec_id: str, text: str) -> None:
        """Keep the YAML ``text`` of declaration ``spec_id`` (``kind``: ``methods``, ...), atomically.

        The newest bench's text wins; a text already stored is not written again. Readers of the
        runs never look here: a run's identity is in its row, this is for people and the leaderboard.

        Raises
        ------
        StoreFullError
            When the disk is full (nothing half-written is left).
        """
        _write_text(self.root / DECLARATIONS_DIR / kind, f"{spec_id}.yaml", text)

    def save_study(self, study_id: str, record: Mapping[str, Any]) -> None:
        """Keep a finished tuning study (:func:`harness.tuning.study_record`) as ``studies/<id>.json``, atomically.

        Its trials and reruns are ordinary runs of the store; this is the index that tags them.
        """
        _write_text(self.root / STUDIES_DIR, f"{study_id}.json", json.dumps(record, sort_keys=True, indent=1))

    def studies(self) -> list[dict[str, Any]]:
        """The store's tuning studies, by id (an unreadable file is named in a warning and skipped)."""
        return read_studies(self.root)

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
        _refuse_old_store(self.root, snapshot)
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

        Raises
        ------
        StoreSchemaError
            When the store holds files of an older store schema (:func:`compact` migrates them).
        """
        return self._repair(old_ok=False)

    def _repair(self, *, old_ok: bool) -> dict[str, str]:
        """:meth:`repair`; ``old_ok``: files of an older schema are checked in their own layout (for :func:`compact`)."""
        moved: dict[str, str] = {}
        with _exclusive(self.root / ".compact.lock"):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", CorruptFileWarning)  # named below, with what is done
                snapshot = _snapshot(self.root)
            if not old_ok:
                _refuse_old_store(self.root, snapshot)  # before anything is moved
            for run_id, path in sorted(snapshot.run_files.items()):
                why = self._pair_problem(path, snapshot.trace_files.get(run_id), old_ok=old_ok)
                if why is not None:
                    self._set_aside(self.traces_dir / path.name, path)
                    warnings.warn(f"{path}: {why}; moved to {self.root / DAMAGED_DIR}, its run will be run again",
                                  CorruptFileWarning, stacklevel=2)
                    moved[run_id] = why
            for part in sorted(_entries(self.runs_dir, parts=True)):
                why = _part_problem(part, self.traces_dir / part.name, old_ok=old_ok)
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

    def _pair_problem(self, runs_path: Path, trace_path: Path | None, *, old_ok: bool = False) -> str | None:
        """What is wrong with the per-run pair (``None``: it reads back whole; a file that vanished is no damage).

        A pair of an older store schema raises :class:`StoreSchemaError` (``old_ok``: it is
        checked in its own layout).
        """
        run_id = _loose_key(runs_path)[0]
        if trace_path is None:
            trace_path = self.traces_dir / runs_path.name
        for path, layout, label in ((runs_path, _RUNS, ""), (trace_path, _TRACES, "its trace: ")):
            try:
                stat = os.stat(path)
            except FileNotFoundError:
                if path is runs_path:
                    return None
                return "its traces file is missing"
            key = _verified_key(path, stat, old_ok)
            if key in self._verified():
                continue
            try:
                why = _file_problem(path, layout, run_id, old_ok=old_ok)
            except FileNotFoundError:
                return None  # a compaction took it meanwhile
            if why is not None:
                return label + why
            self._vouch(key)
        return None

    def _verified(self) -> set[tuple[str, int, int, int, bool]]:
        """The per-run files known to read back whole, as ``(path, inode, size, mtime_ns, old_ok)``.

        Read once per process from :data:`VERIFIED_INDEX` (what any bench verified or wrote),
        so a bench does not read back the files of every stored run again. A file that changed
        since (other inode, size or modification time) is not in it and is read again.
        """
        if self._sound is None:
            self._sound = {(str(self.root / name), *stat, False) for name, stat in _verified_lines(self.root)}
        return self._sound

    def _vouch(self, key: tuple[str, int, int, int, bool]) -> None:
        """Record that the file of ``key`` reads back whole: in this process, and in the index for the next ones."""
        self._verified().add(key)
        if key[4]:
            return  # checked in an older layout (for a migration): not a finished run of this one
        relative = Path(key[0]).relative_to(self.root)
        line = f"{relative.parent.name}/{relative.name}\t{key[1]}\t{key[2]}\t{key[3]}\n".encode()
        try:
            (self.root / VERIFIED_INDEX).parent.mkdir(exist_ok=True)
            # One O_APPEND write of a short line: concurrent benches' lines never interleave.
            fd = os.open(self.root / VERIFIED_INDEX, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
            try:
                os.write(fd, line)
            finally:
                os.close(fd)
        except OSError:
            pass  # a cache: a line not written means one more read-back later

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

        ``row`` is wide (:meth:`harness.record.RunRecord.row`): the fixed columns, one
        ``calls_<kind>`` int per oracle call kind, one float (or null) per metric; each trace
        point likewise (``step``, ``time_s``, ``oracle_calls``, ``calls_<kind>``, metric and
        probe values). They are packed into the nested ``calls`` and ``values`` columns.
        A run already stored gets a new attempt beside the old one (readers then see this
        one alone).

        Raises
        ------
        ValueError
            When a call count or a metric or probe value is not a number.
        StoreFullError
            When the disk is full; neither file of the run is left behind.
        """
        run_id = row["run_id"]
        attempt = self._next.pop(run_id, None)
        if attempt is None:
            attempt = _next_attempt(*self._newest(run_id))
        name = _file_name(run_id, attempt)
        trace_frame, trace_names = _build(trace, _TRACES, {"run_id": run_id})
        run_frame, run_names = _build([row], _RUNS, {"schema_version": SCHEMA_VERSION, "attempt": attempt})
        _atomic_write(trace_frame, self.traces_dir / name, trace_names)
        try:
            _atomic_write(run_frame, self.runs_dir / name, run_names)
        except BaseException:
            (self.traces_dir / name).unlink(missing_ok=True)  # a trace without its row is half a run
            raise
        # Read back now, from the page cache, so that no later bench reads this pair again (the index).
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", CorruptFileWarning)
            self._pair_problem(self.runs_dir / name, self.traces_dir / name)

    def loose_count(self) -> int:
        """How many per-run runs files the store holds (what :func:`compact` would merge): one listing."""
        return len(_entries(self.runs_dir, parts=False))




def _next_attempt(newest: int | None, intact: bool) -> int:
    """The attempt to write after ``newest``: a broken newest file is replaced, an intact one kept."""
    if newest is None:
        return 0
    return newest + 1 if intact else newest


def _verified_key(path: Path, stat: os.stat_result, old_ok: bool) -> tuple[str, int, int, int, bool]:
    return (str(path), stat.st_ino, stat.st_size, stat.st_mtime_ns, old_ok)


def _file_name(run_id: str, attempt: int) -> str:
    return f"{run_id}.parquet" if attempt == 0 else f"{run_id}.{attempt}.parquet"


def _loose_key(path: Path) -> tuple[str, int]:
    """``(run id, attempt)`` of a per-run file name: ``<run_id>.parquet`` or ``<run_id>.<n>.parquet``."""
    stem = path.name.removesuffix(".parquet")
    run_id, _, attempt = stem.rpartition(".")
    return (run_id, int(attempt)) if run_id and attempt.isdigit() else (stem, 0)


def _part_attempts(part: Path) -> dict[str, int]:
    """``{run id: attempt}`` of a runs part (parts written before attempts existed hold attempt 0)."""
    frame = _part_attempt_frame(part)
    return dict(zip(frame["run_id"].to_list(), frame["attempt"].to_list()))


#: The ``run_id`` and ``attempt`` columns of the runs parts this process read, by the part's identity
#: (path, inode, size, mtime): a part never changes once written, so each is read once per process.
_PART_ATTEMPTS: dict[tuple[str, int, int, int], pl.DataFrame] = {}
_PART_ATTEMPTS_KEPT = 64


def _part_attempt_frame(part: Path) -> pl.DataFrame:
    """``run_id`` (String) and ``attempt`` (Int64, 0 where not stored) of a runs part; raises when it vanished."""
    stat = os.stat(part)
    key = (str(part), stat.st_ino, stat.st_size, stat.st_mtime_ns)
    frame = _PART_ATTEMPTS.get(key)
    if frame is None:
        if "attempt" in pl.read_parquet_schema(part):
            frame = pl.read_parquet(part, columns=["run_id", "attempt"])
            frame = frame.with_columns(pl.col("attempt").cast(pl.Int64()).fill_null(0))
        else:
            frame = pl.read_parquet(part, columns=["run_id"]).with_columns(pl.lit(0, dtype=pl.Int64()).alias("attempt"))
        if len(_PART_ATTEMPTS) >= _PART_ATTEMPTS_KEPT:
            _PART_ATTEMPTS.clear()  # parts merged away long ago; the live ones are read again
        _PART_ATTEMPTS[key] = frame
    return frame




def _write_text(directory: Path, name: str, text: str) -> None:
    """``directory / name`` holds ``text``, written atomically (unchanged text is not written again)."""
    path = directory / name
    try:
        if path.read_text(encoding="utf-8") == text:
            return
    except (FileNotFoundError, UnicodeDecodeError):
        pass
    directory.mkdir(parents=True, exist_ok=True)
    fd, tmp = _full_is_store_full(tempfile.mkstemp, path.suffix, f".{path.stem}.", str(directory))
    try:
        os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, "wb") as handle:
            _full_is_store_full(handle.write, text.encode("utf-8"))
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(directory)


def read_studies(store: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """The tuning studies kept in ``store`` (``studies/<id>.json``), sorted by id; none when it has none."""
    studies = []
    for path in sorted((Path(store) / STUDIES_DIR).glob("*.json")):
        try:
            studies.append(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, ValueError) as exc:
            warnings.warn(f"{path}: unreadable study ({_one_line(exc)}); skipped", CorruptFileWarning, stacklevel=2)
    return studies


def read_runs(store: str | os.PathLike[str], columns: Sequence[str] | None = None, *,
              run_ids: Iterable[str] | None = None) -> pl.DataFrame:
    """Every run of ``store`` as one wide frame (metric columns missing in a run are null).

    ``columns``: only these (on a compacted store only they are read). ``run_ids``: only
    these runs (only their per-run files are read, and parts are filtered as they are
    scanned), so reading a plan's runs costs what the plan holds, not what the store
    holds. Unlike collecting :func:`scan_runs`, this reads again when a compaction
    removed a part meanwhile.

    Raises
    ------
    StoreSchemaError
        When the store was written with an older store schema (:func:`compact` migrates it).

    Examples
    --------
    >>> read_runs("harness-store").group_by("method").agg(pl.col("suboptimality").median())  # doctest: +SKIP
    """

    wanted = None if run_ids is None else frozenset(run_ids)

    def scan() -> tuple[pl.LazyFrame, _Snapshot]:
        lazy, snapshot = _scan_runs(Path(store), run_ids=wanted)[:2]
        return (lazy if columns is None else lazy.select(columns)), snapshot

    return _collect(scan)


def read_traces(store: str | os.PathLike[str], run_ids: Iterable[str] | None = None) -> pl.DataFrame:
    """The evaluation points of ``store``'s runs (of ``run_ids`` only, when given), wide."""
    return _collect(lambda: _scan_traces(Path(store), run_ids)[:2])


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
    """Every run of ``store`` as a lazy wide frame: parts are scanned, per-run files read.

    Select the columns you need before collecting: on a compacted store only those are read
    (and only the metric columns selected are unpacked). Each run appears once: its newest
    attempt. Columns have the layout's types: a file that holds another is skipped with a
    :class:`CorruptFileWarning`.
    """
    return _scan_runs(Path(store))[0]


def scan_traces(store: str | os.PathLike[str], run_ids: Iterable[str] | None = None) -> pl.LazyFrame:
    """The evaluation points of ``store``'s runs (of ``run_ids`` only, when given), lazily and wide.

    A run's points are those of its newest attempt.
    """
    return _scan_traces(Path(store), run_ids)[0]


_Names = tuple[list[str], list[str]]  # (call kinds, value names) of a frame


def _scan_runs(root: Path, snapshot: _Snapshot | None = None, *, wide: bool = True,
               run_ids: frozenset[str] | None = None) -> tuple[pl.LazyFrame, _Snapshot, _Names]:
    for _ in range(_RETRIES):
        snapshot = snapshot or _snapshot(root)
        _refuse_old_store(root, snapshot)
        loose, parts = pl.DataFrame(schema=RUN_COLUMNS), []
        files = snapshot.run_files if run_ids is None else {r: p for r, p in snapshot.run_files.items() if r in run_ids}
        try:
            loose, complete = _read_files(files, _RUNS)
            parts = [_part_scan(p, _RUNS, keep if run_ids is None else run_ids if keep is None else keep & run_ids)
                     for p, keep in snapshot.run_parts]
        except FileNotFoundError:
            complete = False  # a part was merged meanwhile
        if complete:
            break
        snapshot = None
    assert snapshot is not None
    names = _union([_names(loose, _RUNS), *(n for _, n in parts)])
    lazy = pl.concat([pl.LazyFrame(schema=RUN_COLUMNS), *(p for p, _ in parts), loose.lazy()], how="vertical")
    lazy = lazy.with_columns(pl.col("attempt").fill_null(0))  # runs stored before attempts existed
    return (_widen(lazy, names, _RUNS) if wide else lazy), snapshot, names


def _scan_traces(root: Path, run_ids: Iterable[str] | None, snapshot: _Snapshot | None = None, *,
                 wide: bool = True) -> tuple[pl.LazyFrame, _Snapshot, _Names]:
    wanted = None if run_ids is None else set(run_ids)
    for _ in range(_RETRIES):
        snapshot = snapshot or _snapshot(root)
        files = snapshot.trace_files if wanted is None else {r: p for r, p in snapshot.trace_files.items() if r in wanted}
        _refuse_old_store(root, snapshot)
        loose, parts = pl.DataFrame(schema=TRACE_COLUMNS), []
        try:
            loose, complete = _read_files(files, _TRACES)
            parts = []
            for path, keep in snapshot.trace_parts:
                if wanted is not None:
                    keep = wanted if keep is None else keep & wanted
                parts.append(_part_scan(path, _TRACES, keep))
        except FileNotFoundError:
            complete = False
        if complete:
            break
        snapshot = None
    assert snapshot is not None
    names = _union([_names(loose, _TRACES), *(n for _, n in parts)])
    lazy = pl.concat([pl.LazyFrame(schema=TRACE_COLUMNS), *(p for p, _ in parts), loose.lazy()], how="vertical")
    return (_widen(lazy, names, _TRACES) if wide else lazy), snapshot, names


def _part_scan(path: Path, layout: _Layout, run_ids: frozenset[str] | set[str] | None) -> tuple[pl.LazyFrame, _Names]:
    """A part, lazily, in the layout's columns and types, and its names (from its footer).

    Parts written before readers checked types may hold numbers as strings (the bug of an
    older compaction): such columns are cast back, named in a warning, and the next
    :func:`compact` rewrites them. Raises ``FileNotFoundError`` when the part vanished (a
    compaction merged it) and :class:`StoreSchemaError` for a part of another store schema.
    """
    schema = pl.read_parquet_schema(path)
    _refuse(path, schema)
    footer = _footer(path)
    _refuse_newer(path.parent.parent, footer.get("schema_version"))
    casts = sorted(c for c, t in schema.items() if c in layout.columns and t != pl.Null() and t != layout.columns[c])
    if casts:
        warnings.warn(f"{path}: column(s) {', '.join(casts)} not of the layout's type; read as "
                      "the layout's types (`harness compact` rewrites the part)", CorruptFileWarning, stacklevel=5)
    frame = _conform(pl.scan_parquet(path), schema, layout)
    if "calls" in footer and "values" in footer:
        names: _Names = (list(footer["calls"]), list(footer["values"]))
    else:  # written by another tool: the names are in the data
        names = _names(frame, layout)
    return (frame if run_ids is None else frame.filter(pl.col("run_id").is_in(sorted(run_ids)))), names


def _conform(frame: pl.DataFrame | pl.LazyFrame, schema: Mapping[str, pl.DataType], layout: _Layout) -> Any:
    """The layout's columns, in its order and types: a missing one null, extra ones left out."""
    exprs = []
    for name, dtype in layout.columns.items():
        if name not in schema:
            exprs.append(pl.lit(None, dtype=dtype).alias(name))
        elif schema[name] != dtype:
            exprs.append(pl.col(name).cast(dtype, strict=False))
        else:
            exprs.append(pl.col(name))
    return frame.select(exprs)


def _names(frame: pl.DataFrame | pl.LazyFrame, layout: _Layout) -> _Names:
    """The call kinds and value names of a nested frame, in order of appearance."""
    got = frame.lazy().select(
        pl.col("calls").explode().struct.field("kind").drop_nulls().unique(maintain_order=True).implode().alias("calls"),
        pl.col("values").explode().struct.field(layout.value_field).drop_nulls().unique(maintain_order=True)
        .implode().alias("values"),
    ).collect()
    return got["calls"][0].to_list(), got["values"][0].to_list()


def _union(names: Iterable[_Names]) -> _Names:
    calls: dict[str, None] = {}
    values: dict[str, None] = {}
    for kinds, metrics in names:
        calls.update(dict.fromkeys(kinds))
        values.update(dict.fromkeys(metrics))
    return list(calls), list(values)  # in order of appearance: a trace's probes as its suite declared them


def _widen(lazy: pl.LazyFrame, names: _Names, layout: _Layout) -> pl.LazyFrame:
    """Spread ``calls`` and ``values`` into one ``calls_<kind>`` column per kind and one column per value name.

    Each is its own expression, so a query that selects a few of them unpacks only those.
    """
    taken = set(layout.columns)
    exprs = []
    for column, field, value, items in (("calls", "kind", "n", names[0]), ("values", layout.value_field, "value", names[1])):
        for item in items:
            wide = CALLS_PREFIX + item if column == "calls" else item
            if wide in taken:
                continue  # a name that would shadow a fixed column (or an earlier one) is not spread
            taken.add(wide)
            element = pl.element().struct
            exprs.append(pl.col(column).list.eval(element.field(value).filter(element.field(field) == item))
                         .list.first().alias(wide))
    return lazy.with_columns(exprs).drop(_NESTED)


def _refuse(path: Path, schema: Mapping[str, pl.DataType]) -> None:
    """Raise :class:`StoreSchemaError` for a file of an older store schema."""
    old = _old_version(path, schema)
    if old is not None:
        raise StoreSchemaError(path.parent.parent, old)


def _refuse_newer(root: Path, version: Any) -> None:
    if isinstance(version, int) and version > SCHEMA_VERSION:
        raise StoreSchemaError(root, version)


_CHECKED_PARTS: set[tuple[str, int, int]] = set()  # runs parts found of this schema (parts never change)


def _refuse_old_store(root: Path, snapshot: _Snapshot) -> None:
    """Raise :class:`StoreSchemaError` when the store is of an older store schema (footers only).

    Every runs part is checked and one per-run runs file (a store is written by one harness;
    the readers check each per-run file they read anyway).
    """
    for path in sorted(snapshot.run_files.values())[:1]:
        try:
            schema = pl.read_parquet_schema(path)
        except Exception:  # noqa: BLE001, S112 - vanished or damaged: the readers and repair name it
            continue
        _refuse(path, schema)
    for part, _ in snapshot.run_parts:
        try:
            stat = os.stat(part)
            key = (str(part), stat.st_ino, stat.st_mtime_ns)
            if key in _CHECKED_PARTS:
                continue
            _refuse(part, pl.read_parquet_schema(part))
        except (FileNotFoundError, StoreSchemaError) as exc:
            if isinstance(exc, StoreSchemaError):
                raise
            continue
        except Exception:  # noqa: BLE001, S112 - damage: the readers and repair name it
            continue
        _CHECKED_PARTS.add(key)


def _old_version(path: Path, schema: Mapping[str, Any]) -> int | None:
    """The store schema of a file in an older layout, one column per metric (``None``: this layout).

    Older layouts had neither ``calls`` nor ``values``. A runs file names its version in
    ``schema_version`` (none: 1); a traces file has none of its own: its runs file's. A
    file without the nested columns whose runs file says 3 is damage, not an older layout.
    """
    if any(c in schema for c in _NESTED):
        return None
    if path.parent.name == "traces":
        runs = path.parent.parent / "runs" / path.name
        try:
            return _old_version(runs, pl.read_parquet_schema(runs))
        except Exception:  # noqa: BLE001 - missing or unreadable: the trace is judged alone
            return None
    if "schema_version" not in schema:
        return 1
    try:
        versions = pl.read_parquet(path, columns=["schema_version"])["schema_version"].drop_nulls()
    except FileNotFoundError:
        raise
    except Exception:  # noqa: BLE001 - unreadable pages: damage, named by the caller
        return None
    version = int(versions.max()) if len(versions) and versions.dtype.is_integer() else 1
    return version if version < SCHEMA_VERSION else None


def _footer(path: Path) -> dict[str, Any]:
    """The store's key of a file's footer (``{}``: none, or unreadable)."""
    try:
        text = pl.read_parquet_metadata(path).get(FOOTER_KEY)
        value = json.loads(text) if text else {}
    except FileNotFoundError:
        raise
    except Exception:  # noqa: BLE001 - another tool's footer: the data says it
        return {}
    return value if isinstance(value, dict) else {}


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


def _snapshot(root: Path, *, only_parts: Collection[str] | None = None) -> _Snapshot:
    """What readers take from ``root`` now; ``only_parts``: see the store as if the other runs parts were absent.

    Costs one listing of each directory, the loose run ids, and polars work on the parts'
    ``(run_id, attempt)`` columns (read once per process: :func:`_part_attempt_frame`), so
    a store of 100,000 runs in a few parts is resolved without a Python loop over its runs.
    """
    # Per-run files are listed before parts. A compaction writes its part before it removes
    # per-run files, so a listed file that is gone when read is in a part that a fresh
    # snapshot lists (the readers retry), and a file listed beside the part that holds its
    # attempt is skipped: either way each run is read once. A rerun writes a new name
    # (traces first), so a listed runs file's traces file was listed too.
    runs_dir, traces_dir = root / "runs", root / "traces"
    loose_runs = _entries(runs_dir, parts=False)
    loose_traces = _entries(traces_dir, parts=False)
    every_part = sorted(_entries(runs_dir, parts=True))
    run_parts = tuple(p for p in every_part if only_parts is None or p.name in only_parts)
    trace_parts = {p.name: p for p in _entries(traces_dir, parts=True)}
    readable: list[tuple[int, Path, pl.DataFrame]] = []
    for index, part in enumerate(run_parts):
        try:
            readable.append((index, part, _part_attempt_frame(part)))
        except Exception as exc:  # noqa: BLE001 - polars raises several error types for bad files
            warnings.warn(f"{part}: unreadable Parquet file skipped ({exc})", CorruptFileWarning, stacklevel=3)
    # The newest attempt of every run among the parts: (attempt, part index) largest; then
    # against the per-run files, (attempt, 1 for a part, 0 for a file) largest. A per-run
    # file at a part's attempt is a compaction's leftover.
    if readable:
        winners = (pl.concat([frame.with_columns(pl.lit(index, dtype=pl.Int64()).alias("index"))
                              for index, _, frame in readable], how="vertical")
                   .sort("attempt", "index").unique("run_id", keep="last"))
    else:
        winners = pl.DataFrame(schema={"run_id": pl.String(), "attempt": pl.Int64(), "index": pl.Int64()})
    keys = {path: _loose_key(path) for path in loose_runs}
    newest_loose: dict[str, int] = {}
    for run_id, attempt in keys.values():
        newest_loose[run_id] = max(attempt, newest_loose.get(run_id, attempt))
    named = sorted({*newest_loose, *(_loose_key(p)[0] for p in loose_traces)})
    in_parts = {r: (a, i) for r, a, i in winners.filter(pl.col("run_id").is_in(named)).iter_rows()} if named else {}
    beaten = frozenset(r for r, a in newest_loose.items() if r in in_parts and a > in_parts[r][0])
    won_by = dict(winners.group_by("index").len().iter_rows())
    part_sources = []
    for index, part, frame in readable:
        lost = {r for r in beaten if in_parts[r][1] == index}
        if won_by.get(index, 0) == frame.height and not lost:
            part_sources.append((part, None))
        else:
            won = winners.filter(pl.col("index") == index)["run_id"].to_list()
            part_sources.append((part, frozenset(won).difference(lost)))
    run_files = {}
    superseded = []
    for path, (run_id, attempt) in keys.items():
        if attempt == newest_loose[run_id] and (run_id not in in_parts or run_id in beaten):
            run_files[run_id] = path
        else:
            superseded.append(path)
    trace_files = {}
    for path in loose_traces:
        run_id, attempt = _loose_key(path)
        if run_id in run_files and attempt == newest_loose[run_id]:
            trace_files[run_id] = path
        elif run_id in run_files:
            if attempt < newest_loose[run_id]:
                superseded.append(path)  # an older attempt; a newer one is being written
        elif run_id in in_parts and attempt <= in_parts[run_id][0]:
            superseded.append(path)  # an older attempt, or one a part holds
    part_ids = frozenset(winners["run_id"].to_list()).difference(beaten) if readable else frozenset()
    names = {p.name for p, _ in part_sources}
    listed = {p.name for p in every_part}
    return _Snapshot(
        run_parts=tuple(part_sources),
        part_ids=part_ids,
        run_files=run_files,
        trace_parts=tuple((trace_parts[p.name], keep) for p, keep in part_sources if p.name in trace_parts),
        trace_files=trace_files,
        # A traces part is an orphan only without any runs part of its name (not just outside ``only_parts``).
        orphan_trace_parts=tuple(p for name, p in sorted(trace_parts.items()) if name not in names and name not in listed),
        superseded=tuple(superseded),
    )


def compact(store: str | os.PathLike[str], *, min_runs: int = 1, tiered: bool = False) -> int:
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

    A store of an older store schema (1 or 2: one column per metric) is migrated: its files
    (per-run files and parts) are read in their own layout, converted to this one and
    written as one part pair, whatever ``min_runs``; the old files are removed only after.
    Until then the readers refuse the store (:class:`StoreSchemaError`).

    Parameters
    ----------
    store
        The store directory.
    min_runs
        Merge only when at least this many per-run files are waiting (or parts to merge).
    tiered
        Merge the per-run files with the newest parts only, each taken while it holds no
        more runs than those merged so far (what ``harness bench`` does past
        :data:`AUTO_COMPACT_FILES` files): parts then grow like a binary counter, so a
        store of N runs holds about log2(N / 1000) parts and each run is rewritten about
        that many times over the store's life, not once per compaction.

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
    Store(root)._repair(old_ok=True)
    with _exclusive(root / ".compact.lock"):
        snapshot = _snapshot(root)
        if tiered and not _holds_old(snapshot):
            snapshot = _snapshot(root, only_parts=_newest_tier(snapshot))
        _remove_leftovers(root, snapshot)
        old_parts = [p for p, _ in snapshot.run_parts]
        waiting = len(snapshot.run_files)
        migrate = _holds_old(snapshot)
        if not migrate and len(old_parts) < 2 and (waiting == 0 or waiting < min_runs):
            return 0
        if migrate:
            runs, traces = _migrated(snapshot)
        else:
            runs = _scan_runs(root, snapshot, wide=False)[0].collect()
            traces = None
        if runs.is_empty():
            return 0
        ids = set(runs.get_column("run_id").to_list())
        if traces is None:
            traces = _scan_traces(root, ids, snapshot, wide=False)[0].collect()
        else:
            traces = traces.filter(pl.col("run_id").is_in(sorted(ids)))
        loose = {r: p for r, p in snapshot.run_files.items() if r in ids}
        attempts = {r: _loose_key(p)[1] for r, p in loose.items()}
        runs = runs.with_columns(  # the file name is the truth for files written before the column
            pl.when(pl.col("run_id").is_in(sorted(attempts)))
            .then(pl.col("run_id").replace_strict(attempts, default=None, return_dtype=pl.Int64()))
            .otherwise(pl.col("attempt"))
            .alias("attempt"),
            pl.lit(SCHEMA_VERSION, dtype=pl.Int64()).alias("schema_version"),
        )
        name = f"{PART_PREFIX}{time.time_ns():020d}-{uuid.uuid4().hex[:8]}.parquet"
        _atomic_write(traces, root / "traces" / name, _names(traces, _TRACES))
        try:
            _atomic_write(runs, root / "runs" / name, _names(runs, _RUNS))
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
        _prune_verified(root)
        return len(loose)


def _newest_tier(snapshot: _Snapshot) -> set[str]:
    """The names of the newest parts a tiered compaction merges with the per-run files (see :func:`compact`)."""
    merged = len(snapshot.run_files)
    chosen: set[str] = set()
    for part, _ in sorted(snapshot.run_parts, key=lambda source: source[0].name, reverse=True):
        try:
            size = _part_attempt_frame(part).height
        except Exception:  # noqa: BLE001 - unreadable or merged meanwhile: not taken
            break
        if size > merged:
            break
        chosen.add(part.name)
        merged += size
    return chosen


def _verified_lines(root: Path) -> list[tuple[str, tuple[int, int, int]]]:
    """The well-formed lines of :data:`VERIFIED_INDEX`: ``(<dir>/<name>, (inode, size, mtime_ns))``; garbage is skipped."""
    try:
        text = (root / VERIFIED_INDEX).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return []
    entries = []
    for line in text.splitlines():
        fields = line.split("\t")
        if len(fields) == 4 and all(f.isdigit() for f in fields[1:]) and "/" in fields[0]:
            entries.append((fields[0], (int(fields[1]), int(fields[2]), int(fields[3]))))
    return entries


def _prune_verified(root: Path) -> None:
    """Rewrite :data:`VERIFIED_INDEX` without the files that are gone (under the compaction lock).

    A line another bench appends meanwhile may be lost: that file is then read back once more.
    """
    path = root / VERIFIED_INDEX
    if not path.exists():
        return
    lines = _verified_lines(root)
    kept = []
    for name, recorded in lines:
        try:
            stat = os.stat(root / name)
        except OSError:
            continue
        if recorded == (stat.st_ino, stat.st_size, stat.st_mtime_ns):
            kept.append("\t".join((name, *map(str, recorded))) + "\n")
    if len(kept) == len(lines) == len(path.read_bytes().splitlines()):
        return
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".verified.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.writelines(kept)
        os.replace(tmp, path)
    except OSError:
        Path(tmp).unlink(missing_ok=True)


def _holds_old(snapshot: _Snapshot) -> bool:
    """Whether a runs file the readers take (per-run or part) is of an older store schema (footers only)."""
    for path in (*snapshot.run_files.values(), *(p for p, _ in snapshot.run_parts)):
        try:
            if _old_version(path, pl.read_parquet_schema(path)) is not None:
                return True
        except Exception:  # noqa: BLE001, S112 - damaged: repair named it
            continue
    return False


def _migrated(snapshot: _Snapshot) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The runs and traces of a snapshot, in this layout, from files of any store schema.

    Files of this schema are taken as they are; older files (one column per metric) are
    stacked by schema (a task's files share one) and packed: a value is kept when it is not
    null, or (runs) when its metric is declared in the row's ``metrics``.
    """

    def read(sources: Iterable[tuple[Path, frozenset[str] | None]], layout: _Layout) -> pl.DataFrame:
        current: list[pl.DataFrame] = []
        old: dict[tuple[tuple[str, str], ...], list[pl.DataFrame]] = {}
        for path, keep in sources:
            try:
                frame = pl.read_parquet(path)
            except FileNotFoundError:
                continue
            except Exception as exc:  # noqa: BLE001 - repair moved damaged files aside; one broken since is skipped
                warnings.warn(f"{path}: unreadable Parquet file ({_one_line(exc)}); not migrated",
                              CorruptFileWarning, stacklevel=4)
                continue
            if keep is not None:
                frame = frame.filter(pl.col("run_id").is_in(sorted(keep)))
            if _old_version(path, frame.schema) is None:
                current.append(_conform(frame, frame.schema, layout))
            else:
                old.setdefault(tuple((c, str(t)) for c, t in frame.schema.items()), []).append(frame)
        for frames in old.values():
            current.append(_from_wide(pl.concat(frames, how="vertical_relaxed"), layout))
        return pl.concat([pl.DataFrame(schema=layout.columns), *current], how="vertical")

    runs = read([*snapshot.run_parts, *((p, None) for p in snapshot.run_files.values())], _RUNS)
    traces = read([*snapshot.trace_parts, *((p, None) for p in snapshot.trace_files.values())], _TRACES)
    return runs.with_columns(pl.col("attempt").fill_null(0)), traces


def _from_wide(frame: pl.DataFrame, layout: _Layout) -> pl.DataFrame:
    """A frame of an older layout (one column per metric and call kind) in this layout.

    Extra columns are values (floats) or, named ``calls_<kind>``, call counts (ints); one
    of another type is read as numbers where it holds them (an older compaction stored some
    as strings), null elsewhere, with a :class:`CorruptFileWarning`.
    """
    extra = [c for c in frame.columns if c not in layout.columns]
    calls = [c for c in extra if c.startswith(CALLS_PREFIX)]
    values = [c for c in extra if not c.startswith(CALLS_PREFIX)]
    odd = sorted(c for c in extra if not frame.schema[c].is_numeric() and frame.schema[c] != pl.Null())
    if odd:
        warnings.warn(f"column(s) {', '.join(odd)} of an older store are not numbers; read as numbers where they are",
                      CorruptFileWarning, stacklevel=5)
    frame = frame.with_columns(
        *(pl.col(c).cast(pl.Float64(), strict=False).cast(pl.Int64(), strict=False) for c in calls),
        *(pl.col(c).cast(pl.Float64(), strict=False) for c in values),
    )
    declared = None
    if layout.runs and "metrics" in frame.columns:
        declared = pl.Series([_declared(text) for text in frame.get_column("metrics").cast(pl.String()).to_list()],
                             dtype=pl.List(pl.String()))
    keep_calls = [frame.get_column(c).is_not_null() for c in calls]
    keep_values = [frame.get_column(c).is_not_null() | (declared.list.contains(c) if declared is not None else False)
                   for c in values]
    packed = frame.drop(extra).with_columns(
        _pack(frame, calls, [c[len(CALLS_PREFIX):] for c in calls], "kind", "n", CALLS_DTYPE, keep_calls),
        _pack(frame, values, values, layout.value_field, "value", layout.columns["values"], keep_values),
    )
    return _conform(packed, packed.schema, layout)


def _declared(text: str | None) -> list[str]:
    try:
        value = json.loads(text) if text else {}
    except ValueError:
        return []
    return [str(k) for k in value] if isinstance(value, dict) else []


def _build(points: Sequence[Mapping[str, Any]], layout: _Layout, constants: Mapping[str, Any]) -> tuple[pl.DataFrame, _Names]:
    """The nested frame of wide rows or points, and its names, built column by column with the layout's types.

    Linear in the points: each key is gathered once, and the lists are cut from flat
    columns (no per-row structs, no type inference). Every row lists the same names: each
    key some row has (null where a row has none), as the old wide file had its columns.
    """
    n = len(points)
    every = set().union(*points)
    first = list(points[0]) if points else []
    keys = [*first, *sorted(every.difference(first))]  # the first point's order, then the rest sorted

    def gather(name: str) -> list[Any]:
        try:
            return list(map(dict.get, points, itertools.repeat(name)))  # C-level for plain dicts
        except TypeError:
            return [point.get(name) for point in points]

    nested = [k for k in keys if k in _NESTED]
    if nested:
        raise ValueError(f"a row sets {', '.join(map(repr, nested))}, the store's nested column(s): "
                         "give calls as calls_<kind> and values under their names")
    columns: dict[str, list[Any]] = {}
    schema: dict[str, pl.DataType] = {}
    for name in layout.scalars:
        columns[name] = [constants[name]] * n if name in constants else gather(name)
        schema[name] = layout.columns[name]
    calls = [k for k in keys if k not in layout.columns and k.startswith(CALLS_PREFIX)]
    values = [k for k in keys if k not in layout.columns and not k.startswith(CALLS_PREFIX)]
    for name in (*calls, *values):
        columns[name] = gather(name)
        schema[name] = pl.Int64() if name in calls else pl.Float64()
    wide = pl.DataFrame(columns, schema=schema, strict=False)
    bad = [k for k in (*calls, *values) if wide.get_column(k).null_count() and wide.get_column(k).null_count() != columns[k].count(None)]
    if bad:
        raise ValueError(f"not a number in {', '.join(map(repr, bad))} "
                         f"(e.g. {next(v for v in columns[bad[0]] if v is not None)!r})")
    kinds = [c[len(CALLS_PREFIX):] for c in calls]
    frame = wide.select(
        *layout.scalars,
        _pack(wide, calls, kinds, "kind", "n", CALLS_DTYPE),
        _pack(wide, values, values, layout.value_field, "value", layout.columns["values"]),
    )
    return frame, (kinds, values)


def _pack(frame: pl.DataFrame, columns: Sequence[str], names: Sequence[str], name_field: str, value_field: str,
          dtype: pl.DataType, keep: Sequence[pl.Series] | None = None) -> pl.Series:
    """``columns`` of ``frame`` as one list of ``{name_field: name, value_field: value}`` per row.

    The entries are laid out flat (row by row, ``columns`` in order) and the lists cut from
    them, in time linear in the frame; ``keep`` (one boolean series per column) drops entries.
    """
    n, m = frame.height, len(columns)
    column = dtype  # the list type
    label = "calls" if name_field == "kind" else "values"
    if n == 0:
        return pl.Series(label, [], dtype=column)
    if m == 0:
        return pl.Series(label, [[]], dtype=column).gather(np.zeros(n, dtype=np.int64))
    inner = column.inner  # type: ignore[attr-defined]
    value_dtype = dict(inner.to_schema())[value_field]
    order = (np.arange(m)[None, :] * n + np.arange(n)[:, None]).ravel()
    flat = {
        name_field: pl.Series(list(names), dtype=pl.String()).gather(np.tile(np.arange(m), n)),
        value_field: pl.concat([frame.get_column(c).cast(value_dtype) for c in columns]).gather(order),
    }
    if keep is not None:
        flat["_keep"] = pl.concat([k.fill_null(False) for k in keep]).gather(order)
    lists = pl.DataFrame(flat).to_struct(label).reshape((n, m))
    if keep is None:
        return lists.cast(column)
    element = pl.element().struct
    return (pl.DataFrame({label: lists}).select(
        pl.col(label).arr.to_list().list.eval(
            pl.struct(element.field(name_field), element.field(value_field)).filter(element.field("_keep")))
    ).to_series().cast(column))


def _file_problem(path: Path, layout: _Layout, run_id: str, *, old_ok: bool = False) -> str | None:
    """What is wrong with a per-run file (``None``: nothing); raises ``FileNotFoundError`` when it vanished."""
    try:
        frame = pl.read_parquet(path)
    except FileNotFoundError:
        raise
    except Exception as exc:  # noqa: BLE001 - polars raises several error types for bad files
        return f"unreadable Parquet file ({_one_line(exc)})"
    return _frame_problem(frame, layout, run_id, path, old_ok=old_ok)


def _frame_problem(frame: pl.DataFrame, layout: _Layout, run_id: str, path: Path, *, old_ok: bool = False) -> str | None:
    """What in a per-run file's frame departs from the layout (``None``: nothing).

    Numbers of another width pass (they are cast); a number stored as a string (also
    inside ``calls`` or ``values``), a missing column of the layout's, or rows of another
    run do not. A file of an older store schema raises :class:`StoreSchemaError` (``old_ok``:
    it is checked in its own layout, one column per metric); one of a newer one always does.
    """
    runs = layout.runs
    if runs and frame.height != 1:
        return f"{frame.height} rows, not 1"
    old = _old_version(path, frame.schema)
    if old is not None:
        if not old_ok:
            raise StoreSchemaError(path.parent.parent, old)
        return _old_frame_problem(frame, layout, run_id)
    required = ("run_id", "status", *_NESTED) if runs else tuple(layout.columns)
    missing = [c for c in required if c not in frame.columns]
    if missing:
        return f"no {', '.join(missing)} column"
    for name, dtype in frame.schema.items():
        expected = layout.columns.get(name)
        if expected is not None and dtype != pl.Null() and not _fits(dtype, expected):
            return f"column {name} is {dtype}, not {expected}"
    if runs and "schema_version" in frame.columns and frame.schema["schema_version"].is_integer():
        _refuse_newer(path.parent.parent, frame.get_column("schema_version")[0])
    if frame.height and frame.get_column("run_id").unique().to_list() != [run_id]:
        return f"rows of another run than {run_id}"
    return None


def _fits(dtype: pl.DataType, expected: pl.DataType) -> bool:
    """Whether a column of ``dtype`` reads as ``expected`` without loss of meaning (numbers of another width do)."""
    if dtype == expected or dtype == pl.Null():
        return True
    if dtype.is_numeric() and expected.is_numeric():
        return True
    if isinstance(dtype, pl.List) and isinstance(expected, pl.List):
        return _fits(dtype.inner, expected.inner)
    if isinstance(dtype, pl.Struct) and isinstance(expected, pl.Struct):
        got, want = dict(dtype.to_schema()), dict(expected.to_schema())
        return set(got) == set(want) and all(_fits(got[f], want[f]) for f in want)
    return False


def _old_frame_problem(frame: pl.DataFrame, layout: _Layout, run_id: str) -> str | None:
    """:func:`_frame_problem` of a per-run file of an older store schema (one column per metric)."""
    required = ("run_id", "status") if layout.runs else layout.scalars
    missing = [c for c in required if c not in frame.columns]
    if missing:
        return f"no {', '.join(missing)} column"
    for name, dtype in frame.schema.items():
        expected = layout.columns.get(name)
        if dtype == pl.Null():
            continue
        if expected is not None and not _fits(dtype, expected):
            return f"column {name} is {dtype}, not {expected}"
        if expected is None and dtype == pl.String() and _numeric_strings(frame.get_column(name)):
            return f"column {name} holds numbers stored as strings"
    if frame.height and frame.get_column("run_id").unique().to_list() != [run_id]:
        return f"rows of another run than {run_id}"
    return None


def _numeric_strings(column: pl.Series) -> bool:
    values = column.drop_nulls()
    return len(values) > 0 and values.str.strip_chars().cast(pl.Float64(), strict=False).null_count() == 0


def _part_problem(runs_part: Path, traces_part: Path, *, old_ok: bool = False) -> str | None:
    """What is wrong with a part pair, from the footers (``None``: nothing, or it vanished).

    A part of an older store schema raises :class:`StoreSchemaError` unless ``old_ok``.
    """
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
        if not old_ok:
            _refuse(path, schema)
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


def _read_files(files: Mapping[str, Path], layout: _Layout) -> tuple[pl.DataFrame, bool]:
    """Read per-run files (run id -> file) into one nested frame of the layout's columns and types.

    A file that departs from the layout is named and skipped. ``complete`` is false when a
    file vanished (a compaction moved it).
    """
    together = _read_together(files, layout)
    if together is not None:
        return together, True
    frames: list[pl.DataFrame] = []
    complete = True
    for run_id, path in sorted(files.items()):
        try:
            frame = pl.read_parquet(path)
            why = _frame_problem(frame, layout, run_id, path)
        except FileNotFoundError:
            complete = False
            continue
        except StoreSchemaError:
            raise
        except Exception as exc:  # noqa: BLE001 - polars raises several error types for bad files
            why = f"unreadable Parquet file ({_one_line(exc)})"
        if why is not None:
            warnings.warn(f"{path}: {why}; skipped", CorruptFileWarning, stacklevel=5)
            continue
        frames.append(_conform(frame, frame.schema, layout))
    if not frames:
        return pl.DataFrame(schema=layout.columns), complete
    return pl.concat(frames, how="vertical"), complete


def _read_together(files: Mapping[str, Path], layout: _Layout) -> pl.DataFrame | None:
    """:func:`_read_files`' answer from one multi-file read, or ``None`` where a file needs a look of its own.

    A read per file costs three polars queries (~1 ms each), 2.5 s for the 1,000 per-run files
    a bench leaves before it compacts; one scan of them all reads them in parallel. It stands
    only where every file passes what :func:`_frame_problem` checks file by file (the layout's
    columns in types that fit, its own run's rows, one row a runs file, this store schema);
    anything else (a damaged, foreign, older or vanished file, files of different columns)
    goes back to the file-by-file read, which names and skips each bad file.
    """
    if len(files) < 2:
        return None
    ordered = sorted(files.items())
    try:
        frame = pl.scan_parquet([p for _, p in ordered], include_file_paths="_path").collect()
    except Exception:  # noqa: BLE001 - polars raises several error types for bad or mismatched files
        return None
    schema = frame.schema
    required = ("run_id", "status", *_NESTED) if layout.runs else tuple(layout.columns)
    if any(c not in schema for c in required) or any(
            layout.columns.get(n) is not None and d != pl.Null() and not _fits(d, layout.columns[n])
            for n, d in schema.items()):
        return None
    expected = pl.DataFrame({"_path": [str(p) for _, p in ordered], "_want": [r for r, _ in ordered]})
    per_file = frame.group_by("_path").agg(pl.len().alias("_rows"), pl.col("run_id").n_unique().alias("_ids"),
                                           pl.col("run_id").first().alias("_id"))
    checked = expected.join(per_file, on="_path", how="left")
    if layout.runs and not (checked["_rows"] == 1).all():
        return None
    read = checked.drop_nulls("_rows")  # a trace without points left no row
    if not (read["_ids"] == 1).all() or not (read["_id"] == read["_want"]).all():
        return None
    if layout.runs and "schema_version" in schema:
        versions = frame.get_column("schema_version")
        if not schema["schema_version"].is_integer() or versions.n_unique() != 1 or versions[0] != SCHEMA_VERSION:
            return None  # an older or newer file: the file-by-file read says which
    return _conform(frame, schema, layout)


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


def _atomic_write(frame: pl.DataFrame, path: Path, names: _Names) -> None:
    """Write ``frame`` to ``path`` atomically, its call kinds and value names in the footer."""
    footer = json.dumps({"schema_version": SCHEMA_VERSION, "calls": names[0], "values": names[1]})
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o666 & ~_umask())  # as open() would create it; mkstemp makes 0600
        with os.fdopen(fd, "wb") as handle:
            frame.write_parquet(handle, metadata={FOOTER_KEY: footer})
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        # Asked before the partial file goes: a full device can surface as another error of the
        # Parquet writer (a failed footer write reads "Invalid thrift: transport error").
        full = _is_full(exc) or (isinstance(exc, Exception) and _no_room(path.parent))
        Path(tmp).unlink(missing_ok=True)
        if full:
            raise StoreFullError(errno.ENOSPC, f"no space left on the device writing {path}") from exc
        raise
    _fsync_dir(path.parent)


def _no_room(directory: Path) -> bool:
    """Whether the device of ``directory`` has no block left for this user."""
    try:
        return os.statvfs(directory).f_bavail == 0
    except OSError:
        return False


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


#: Canonical JSON (sorted keys, no spaces) for parameter columns: :func:`harness.record._dumps`, its one owner.
dumps = record._dumps
