"""The local pool: N warm worker processes, each run isolated and bounded in time and memory.

Each worker is a fresh interpreter (``python -m harness.execute.worker``, never a fork: jax
and torch threads do not survive one) with its hardware profile's thread variables in its
environment and, when the cores suffice, pinned to cores of its own. A worker serves run
after run, so the interpreter and framework start-up is paid once per worker.

The driver watches every busy worker:

- a run is killed at its wall-clock limit, ``budget.seconds`` plus a grace margin
  (status ``timeout``); the run's own loop stops at ``budget.seconds`` when a step returns,
  the kill is for steps that never do. The limit counts from the run's start and is renewed
  at its first trace point (step 0), so a method's offline phase, which the loop's budget
  leaves out, has ``budget.seconds`` plus grace of its own;
- a run whose worker's resident set passes ``memory_limit_mb`` above its baseline is killed
  (``oom``); inside the worker ``RLIMIT_AS`` makes most allocations fail first, cleanly;
- a worker that exits or is killed by a signal mid-run leaves an ``error`` row naming the
  exit code or signal, with the tail of the worker's output;
- a worker that sends anything but a well-formed message (:class:`_Inbox`, :func:`_validate_row`:
  JSON frames of the shapes :mod:`~harness.execute.worker` sends, the row's columns of the
  record's kinds (:data:`harness.record.RUN_COLUMNS`), a status of its vocabulary, the run's
  own id) leaves an ``error`` row saying what was wrong: the run's
  code shares the worker's process and may write to its socket. The driver never unpickles
  what a worker sends, and never blocks on it: a partial frame waits for the run's deadline;

and replaces every worker it killed or lost. The rest of the matrix goes on. A run that ends
without a result of its own (killed, crashed, malformed) keeps the trace points the worker
streamed before, and its row the steps, oracle calls and metrics of the last one.

A worker's stdout and stderr go to a pipe that the driver drains, keeping the last 64 KiB
(:class:`_Output`): a run that prints gigabytes fills neither the disk nor the driver's
memory, and an error row shows the tail of what the run printed. No file is written.

A run that returns but leaves something running in its worker (a Python thread, a child
process: see :func:`~harness.execute.worker.left_behind`) keeps its result, with what it left
in the row's ``left_behind`` column, and its worker is replaced before the next run. Whenever
the pool kills a worker (timeout, memory, replacement, shutdown) it kills the worker's whole
tree (:func:`kill_tree`): its process group and every descendant, also those that left the
group with ``setsid`` (the worker is a child subreaper, so they stay in its tree).
"""

from __future__ import annotations

import collections
import contextlib
import datetime as dt
import json
import os
import signal
import socket
import struct
import subprocess
import time
from collections.abc import Iterable, Iterator
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any

from harness.execute import failed_result
from harness.execute.worker import (
    CatalogSource,
    LeftBehind,
    default_grace,
    kill_tree,
    live_descendants,
    start_process,
    thread_env,
)
from harness.host import RANK_STARTUP_S
from harness.plan import RunSpec
from harness.record import CALLS_PREFIX, RUN_COLUMNS, ColumnKind, Status, column_kind
from harness.run import DRIVER_COLUMNS, RunResult
from harness.spec import HardwareProfile

__all__ = ["LocalWorker", "PoolExecutor", "default_jobs", "gpu_count", "kill_tree"]

_LOG_TAIL = 3000  # characters of a worker's output in an error row
_OUTPUT_KEPT = 64 * 2**10  # bytes of a worker's output the driver keeps
_MAX_MESSAGE = 256 * 2**20  # bytes of one message from a worker: a long run's whole trace fits
_READ_CHUNK = 2**20
_F_SETPIPE_SZ = 1031  # Linux fcntl: a larger pipe, fewer stalls of a chatty run while the driver writes the store


def default_jobs(profile: HardwareProfile) -> int:
    """Concurrent runs of ``profile`` on this host: its cores (or GPUs) divided by what one run takes."""
    if profile.device == "cuda":
        return max(1, gpu_count() // max(profile.devices, profile.ranks))
    return max(1, len(_cores()) // ((profile.threads or 1) * profile.ranks))


def gpu_count() -> int:
    """CUDA devices visible to this process, found without importing a framework when possible."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return len([d for d in visible.split(",") if d.strip() and d.strip() != "-1"])
    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=20, check=False)
        if out.returncode == 0:
            return sum(1 for line in out.stdout.splitlines() if line.startswith("GPU "))
    except (OSError, subprocess.TimeoutExpired):
        pass
    return 0


def _cores() -> list[int]:
    try:
        return sorted(os.sched_getaffinity(0))
    except AttributeError:
        return list(range(os.cpu_count() or 1))


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds")


class _Worker:
    """One worker process and the run it is busy with."""

    def __init__(self, *, key: tuple[Any, ...], env: dict[str, str], cpus: list[int] | None,
                 source: CatalogSource) -> None:
        self.key = key
        self.output = _Output()
        args = ["--cpus", ",".join(map(str, cpus))] if cpus else []
        try:
            # Its own session: killing the group kills the ranks a multi-rank run started too.
            self.popen, self.conn = start_process("harness.execute.worker", env=env, args=args,
                                                  stdout=self.output.write_fd, stderr=subprocess.STDOUT,
                                                  start_new_session=True)
        except BaseException:
            self.output.close()
            raise
        finally:
            self.output.close_write_end()  # ours closed: the pipe ends when the worker's tree has
        self.inbox = _Inbox(self.conn)
        self.conn.send(source)  # the driver's messages may be pickles: the worker trusts the driver
        self.run: RunSpec | None = None
        self.assigned = 0.0
        self.started: float | None = None
        self.started_at: str | None = None
        self.deadline = float("inf")
        self.rss_limit: int | None = None
        self.next_rss_check = 0.0
        self.points: list[dict[str, Any]] = []  # the trace points the run streamed so far
        self.server: int | None = None  # the process serving the runs: the keeper's child (``popen`` is the keeper)
        self.frameworks: set[str] = set()  # those it has started (imported, preloaded): see _pick

    @property
    def busy(self) -> bool:
        return self.run is not None

    def assign(self, run: RunSpec, *, startup_s: float) -> None:
        self.run = run
        self.frameworks.add(run.framework)
        self.assigned = time.monotonic()
        self.started = self.started_at = None
        self.deadline = self.assigned + startup_s
        self.rss_limit = None
        self.points = []
        self.output.drain()
        self.output.mark()  # what the worker printed before is not this run's
        self.conn.send(run.model_dump(mode="json"))

    def finish(self) -> None:
        self.run = None
        self.started = None
        self.deadline = float("inf")
        self.rss_limit = None

    def waitables(self) -> list[Any]:
        """What the driver waits on: the socket, and the output pipe while it is open (a worker blocks on a full one)."""
        return [self.conn] if self.output.closed else [self.conn, self.output]

    def _exited(self) -> bool:
        """Whether the worker has ended, without reaping it: while unreaped, its pid and group are still its own."""
        if self.popen.returncode is not None:
            return True
        try:
            return os.waitid(os.P_PID, self.popen.pid, os.WEXITED | os.WNOWAIT | os.WNOHANG) is not None
        except ChildProcessError:
            return True

    def alive(self) -> bool:
        return not self._exited()

    def kill(self) -> int | None:
        """SIGKILL the worker and everything it started (ranks, children, setsid'd ones too), and reap it."""
        if self.popen.returncode is None:  # not reaped: the pid (and group id) cannot name another process
            kill_tree(self.popen.pid)
            # Descendants of a worker that died by itself were reparented away; those still in its
            # group (no setsid) are found by the group id, which lives as long as one of them does.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.popen.pid, signal.SIGKILL)
            with contextlib.suppress(OSError):
                self.popen.kill()
        try:
            return self.popen.wait(timeout=30)
        except subprocess.TimeoutExpired:
            return None

    def close(self) -> None:
        self.kill()
        self.inbox.close()
        self.conn.close()
        self.output.close()

    def exit_code(self) -> int | None:
        """The exit code of a worker that is ending (``None`` if it is not within 10 s); what it left is killed."""
        deadline = time.monotonic() + 10
        while not self._exited():
            if time.monotonic() >= deadline:
                return None
            time.sleep(0.01)
        return self.kill()

    def log_tail(self) -> str:
        """The end of what the worker printed during its run (all of it once the worker is dead)."""
        self.output.drain()
        return self.output.tail()

    def tree_rss(self) -> int | None:
        import psutil

        try:
            process = psutil.Process(self.popen.pid)
            total = process.memory_info().rss
            for child in process.children(recursive=True):
                try:
                    total += child.memory_info().rss
                except psutil.Error:
                    continue
            return total
        except psutil.Error:
            return None


class _Output:
    """A worker's stdout and stderr: a pipe the driver drains, keeping the last :data:`_OUTPUT_KEPT` bytes."""

    def __init__(self) -> None:
        self.read_fd, self.write_fd = os.pipe()
        os.set_blocking(self.read_fd, False)
        with contextlib.suppress(OSError, AttributeError):
            import fcntl

            fcntl.fcntl(self.read_fd, _F_SETPIPE_SZ, _READ_CHUNK)
        self.kept = bytearray()
        self.total = 0  # bytes since :meth:`mark`
        self.closed = False

    def fileno(self) -> int:
        return self.read_fd

    def close_write_end(self) -> None:
        if self.write_fd >= 0:
            os.close(self.write_fd)
            self.write_fd = -1

    def drain(self, limit: int = 16 * _READ_CHUNK) -> None:
        """Read what is there, up to ``limit`` bytes (a flood does not hold the driver), never blocking."""
        read = 0
        while not self.closed and read < limit:
            try:
                chunk = os.read(self.read_fd, 2**16)
            except BlockingIOError:
                return
            except InterruptedError:
                continue
            except OSError:
                chunk = b""
            if not chunk:
                self.closed = True  # every writer is gone
                return
            read += len(chunk)
            self.total += len(chunk)
            self.kept += chunk
            if len(self.kept) > 2 * _OUTPUT_KEPT:
                del self.kept[:len(self.kept) - _OUTPUT_KEPT]

    def mark(self) -> None:
        """Forget what was read so far: the tail starts here."""
        self.kept.clear()
        self.total = 0

    def tail(self) -> str:
        """At most :data:`_LOG_TAIL` characters of the end, after a line saying how much came before."""
        text = bytes(self.kept[-_OUTPUT_KEPT:]).decode(errors="replace")
        if len(text) <= _LOG_TAIL and self.total <= len(self.kept):
            return text
        text = text[-_LOG_TAIL:]
        return f"... ({self.total - len(text.encode(errors='replace')):,} bytes before)\n{text}"

    def close(self) -> None:
        self.close_write_end()
        if self.read_fd >= 0:
            with contextlib.suppress(OSError):
                os.close(self.read_fd)
            self.read_fd = -1
        self.closed = True


class _BadMessage(Exception):
    """A worker sent something that is not a message of the protocol (the text says what)."""


class _Inbox:
    """JSON frames read from a worker's socket, without ever blocking on a partial one.

    A frame is a 4-byte big-endian signed length and that many bytes of UTF-8 JSON
    (:func:`~harness.execute.worker.send_message`). Bytes are only ever decoded as JSON: a
    pickle the run's code writes to the socket is just a malformed frame.
    """

    def __init__(self, conn: Connection) -> None:
        self.sock = socket.socket(fileno=os.dup(conn.fileno()))
        self.buffer = bytearray()
        self.closed = False

    def read(self, limit: int = 16 * _READ_CHUNK) -> None:
        """Read what the socket holds (up to ``limit`` bytes: a flood does not hold the driver)."""
        read = 0
        while not self.closed and read < limit and len(self.buffer) <= _MAX_MESSAGE + 4:
            try:
                chunk = self.sock.recv(_READ_CHUNK, socket.MSG_DONTWAIT)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                chunk = b""
            if not chunk:
                self.closed = True
                return
            read += len(chunk)
            self.buffer += chunk

    def next(self) -> list[Any] | None:
        """The next whole message (a JSON array led by its kind), ``None`` until one is complete.

        Raises
        ------
        _BadMessage
            For a frame that is too long, not JSON, or not an array led by a string.
        """
        if len(self.buffer) < 4:
            return None
        (size,) = struct.unpack("!i", self.buffer[:4])
        if not 0 < size <= _MAX_MESSAGE:
            raise _BadMessage(f"a frame of length {size} (frame header {bytes(self.buffer[:4]).hex()}; "
                             f"at most {_MAX_MESSAGE} bytes)")
        if len(self.buffer) < 4 + size:
            return None
        payload = bytes(self.buffer[4:4 + size])
        del self.buffer[:4 + size]
        try:
            message = json.loads(payload)
        except (ValueError, RecursionError) as exc:
            raise _BadMessage(f"a frame that is not JSON ({type(exc).__name__}: {exc}), "
                             f"starting {payload[:40]!r}") from None
        if not isinstance(message, list) or not message or not isinstance(message[0], str):
            raise _BadMessage(f"a message that is not an array led by its kind: {_excerpt(message)}")
        return message

    def close(self) -> None:
        self.sock.close()


def _excerpt(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 120 else text[:120] + "..."


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _fits(kind: ColumnKind, value: Any) -> bool:
    """Whether ``value`` (from JSON) can be stored in a column of ``kind``."""
    if value is None:
        return True
    if kind == "str":
        return isinstance(value, str)
    if kind == "bool":
        return isinstance(value, bool)
    if kind == "int":
        return _is_int(value)
    if kind == "float":
        return _is_number(value)
    return False


#: Columns a worker's row must have, and those it must not (the driver and the store set them).
_REQUIRED = ("run_id", "suite", "task", "method", "framework", "hardware", "seed", "status", "error", "steps")
_NOT_THE_WORKERS = ("schema_version", *DRIVER_COLUMNS)
_STATUSES = frozenset(Status)


def _validate_point(point: Any, where: str) -> dict[str, Any]:
    if not isinstance(point, dict):
        raise _BadMessage(f"{where} is not an object: {_excerpt(point)}")
    bad = [k for k, v in point.items() if not (v is None or _is_number(v))]
    if bad:
        raise _BadMessage(f"{where} has values that are not numbers: {_excerpt({k: point[k] for k in bad[:3]})}")
    if not _is_int(point.get("step")) or point["step"] < 0 or not _is_number(point.get("time_s")):
        raise _BadMessage(f"{where} has no step count and clock: {_excerpt(point)}")
    return point


def _validate_row(row: Any, run: RunSpec, metrics: frozenset[str]) -> dict[str, Any]:
    if not isinstance(row, dict):
        raise _BadMessage(f"the result's row is not an object: {_excerpt(row)}")
    for key, value in row.items():
        if key in _NOT_THE_WORKERS:
            raise _BadMessage(f"the result's row sets the column {key!r}, which is not the worker's to set")
        if key not in RUN_COLUMNS and not key.startswith(CALLS_PREFIX) and key not in metrics:
            raise _BadMessage(f"the result's row has a column the store does not know: {key!r}")
        fits = _fits(column_kind(key), value)  # fixed, calls_<kind> (int) or a metric's value (float)
        if not fits:
            raise _BadMessage(f"the result's row has {key} = {_excerpt(value)}, not of the column's type")
    missing = [key for key in _REQUIRED if key not in row]
    if missing:
        raise _BadMessage(f"the result's row lacks the columns {missing}")
    expected = {"run_id": run.run_id, "suite": run.suite, "task": run.task, "method": run.method,
                "framework": run.framework, "hardware": run.hardware, "seed": run.seed}
    wrong = {key: row[key] for key, value in expected.items() if row[key] != value}
    if wrong:
        raise _BadMessage(f"the result's row is not the run's: {_excerpt(wrong)}")
    if row["status"] not in _STATUSES:
        raise _BadMessage(f"the result's row has status {_excerpt(row['status'])}")
    return row


class _Supervisor:
    """Starts, feeds and watches workers: what the pool and :class:`LocalWorker` share."""

    def __init__(self, source: CatalogSource, *, grace_s: float | None, startup_s: float, rank_startup_s: float,
                 pin: bool, poll_s: float) -> None:
        self.source = source
        self.catalog = source.load()
        self.grace_s = grace_s
        self.startup_s = startup_s
        self.rank_startup_s = rank_startup_s
        self.pin = pin
        self.poll_s = poll_s
        self.started = 0

    def _grace(self, run: RunSpec) -> float:
        """Seconds past ``budget.seconds`` before a run is killed."""
        return self.grace_s if self.grace_s is not None else default_grace(run.budget.seconds)

    def profile(self, run: RunSpec) -> HardwareProfile:
        return self.catalog.hardware[run.hardware].spec

    def dispatch(self, run: RunSpec, worker: _Worker | None, *, index: int, jobs: int) -> _Worker:
        """Hand ``run`` to ``worker``, or to a fresh one when it is missing, dead or set up for other hardware."""
        profile = self.profile(run)
        # A worker keeps the threads and devices it was started with: a run needing others gets a fresh one.
        devices = os.environ.get("CUDA_VISIBLE_DEVICES") if profile.device == "cuda" else None
        key = (profile.threads, profile.ranks, profile.device, profile.devices, devices)
        if worker is not None and (worker.key != key or not worker.alive()):
            worker.close()
            worker = None
        if worker is None:
            worker = self._spawn(profile, key, index, jobs)
        startup = self.startup_s + (self.rank_startup_s if profile.ranks > 1 else 0.0)
        worker.assign(run, startup_s=startup)
        return worker

    def _spawn(self, profile: HardwareProfile, key: tuple[Any, ...], index: int, jobs: int) -> _Worker:
        env = dict(os.environ)
        env.update(thread_env(profile.threads))
        # The worker imports harness as this process does, installed or from a source tree.
        package_root = str(Path(__file__).resolve().parents[2])
        env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH")) if p)
        per_run = (profile.threads or 1) * profile.ranks
        cores = _cores()
        cpus = None
        if self.pin and profile.device == "cpu" and profile.threads is not None and jobs * per_run <= len(cores):
            cpus = cores[index * per_run:(index + 1) * per_run]
        if profile.device == "cuda" and "CUDA_VISIBLE_DEVICES" not in os.environ:
            # Each worker gets devices of its own while there are enough; then they are shared.
            per = max(profile.devices, profile.ranks)
            groups = gpu_count() // per
            if groups:
                first = (index % groups) * per
                env["CUDA_VISIBLE_DEVICES"] = ",".join(str(first + i) for i in range(per))
        self.started += 1
        return _Worker(key=key, env=env, cpus=cpus, source=self.source)

    def timeout(self, workers: list[_Worker]) -> float:
        """How long to wait for ``workers`` (all busy) before something must be checked."""
        now = time.monotonic()
        watch = any(w.rss_limit is not None for w in workers)
        return min(max(0.0, min(w.deadline for w in workers) - now), self.poll_s if watch else 5.0)

    def check(self, worker: _Worker, readable: bool) -> tuple[RunResult | None, bool]:
        """Handle what ``worker`` said or did; return (a finished run's result or None, keep the worker)."""
        run = worker.run
        assert run is not None
        now = time.monotonic()
        worker.output.drain()
        if readable:
            worker.inbox.read()
            try:
                while (message := worker.inbox.next()) is not None:
                    outcome = self._handle(worker, message, now)
                    if outcome is not None:
                        result, keep = outcome
                        # Bytes after the run's last message: something else writes to the socket.
                        return result, keep and not worker.inbox.buffer
            except _BadMessage as exc:
                worker.kill()
                error = f"the worker sent a malformed message: {exc}; the worker was replaced"
                return self._failed(worker, Status.ERROR, _with_output(error, worker.log_tail()), now), False
            if worker.inbox.closed:
                return self._lost(worker), False
        if now >= worker.deadline:
            return self._timed_out(worker, now), False
        if worker.rss_limit is not None and now >= worker.next_rss_check:
            # At most every poll_s: a run's output wakes the driver far more often.
            worker.next_rss_check = now + self.poll_s
            rss = worker.tree_rss()
            if rss is not None and rss > worker.rss_limit:
                profile = self.profile(run)
                worker.kill()
                error = (f"killed: resident memory {rss / 2**20:.0f} MiB passed the limit of hardware profile "
                         f"{profile.id!r} ({profile.memory_limit_mb} MiB above the worker's baseline)")
                return self._failed(worker, Status.OOM, error, now), False
        return None, True

    def _handle(self, worker: _Worker, message: list[Any], now: float) -> tuple[RunResult | None, bool] | None:
        """Act on one message; ``None`` when the run goes on, else what :meth:`check` returns.

        Raises
        ------
        _BadMessage
            For a message of an unknown kind, of the wrong shape, or out of turn.
        """
        run = worker.run
        assert run is not None
        kind, fields = message[0], message[1:]
        if (kind in ("started", "failed")) != (worker.started is None):
            raise _BadMessage(f"a {kind!r} message {'before' if worker.started is None else 'after'} the run started")
        if kind == "started":
            if len(fields) != 2 or not (fields[0] is None or _is_int(fields[0])) or not _is_int(fields[1]):
                raise _BadMessage(f"a 'started' message of the wrong shape: {_excerpt(message)}")
            profile = self.profile(run)
            worker.started, worker.started_at = now, _now()
            worker.server = fields[1]
            ranks_extra = self.rank_startup_s if profile.ranks > 1 else 0.0
            worker.deadline = now + run.budget.seconds + self._grace(run) + ranks_extra
            if profile.memory_limit_mb is not None and fields[0] is not None:
                worker.rss_limit = fields[0] + profile.memory_limit_mb * 2**20 * profile.ranks
            return None
        if kind == "point":
            if len(fields) != 1:
                raise _BadMessage(f"a 'point' message of the wrong shape: {_excerpt(message)}")
            if len(worker.points) > run.budget.steps:  # one point per step at most, and step 0
                raise _BadMessage(f"more trace points than the {run.budget.steps} steps of the run's budget")
            if not worker.points:  # step 0: setup, the offline phase and compilation are over; the loop's budget starts
                worker.deadline = max(worker.deadline, now + run.budget.seconds + self._grace(run))
            worker.points.append(_validate_point(fields[0], "a trace point"))
            return None
        if kind == "result":
            if len(fields) != 3 or not isinstance(fields[1], list) or not (fields[2] is None or
                                                                          isinstance(fields[2], str)):
                raise _BadMessage(f"a 'result' message of the wrong shape: {_excerpt(message)}")
            metrics = frozenset(m.id for m in self.catalog.tasks[run.task].spec.metrics)
            row = _validate_row(fields[0], run, metrics)
            if len(fields[1]) > run.budget.steps + 1:
                raise _BadMessage(f"a trace of {len(fields[1])} points, more than the run's {run.budget.steps} steps")
            trace = [_validate_point(point, f"trace point {i}") for i, point in enumerate(fields[1])]
            result = RunResult(row=row, trace=trace)
            worker.finish()
            left = fields[2]
            if not left:
                # Seen from outside too: the worker's own look runs in the process the run had.
                processes = [p for p in live_descendants(worker.popen.pid) if p[0] != worker.server]
                left = LeftBehind(processes=tuple(processes)).describe() if processes else None
            if left:
                # The run's result stands; its worker, running what the run left, does not serve another.
                result.row["left_behind"] = left
                return result, False
            return result, True
        if kind == "failed":
            if len(fields) != 1 or not isinstance(fields[0], str):
                raise _BadMessage(f"a 'failed' message of the wrong shape: {_excerpt(message)}")
            return self._failed(worker, Status.ERROR, f"the worker could not start the run:\n{fields[0]}", now), True
        raise _BadMessage(f"a message of unknown kind {_excerpt(kind)}")

    def _failed(self, worker: _Worker, status: Status, error: str, now: float) -> RunResult:
        run = worker.run
        assert run is not None
        started = worker.started if worker.started is not None else worker.assigned
        result = failed_result(run, self.catalog, status=status, error=error, wall_s=now - started,
                               started_at=worker.started_at, trace=worker.points)
        worker.finish()
        return result

    def _timed_out(self, worker: _Worker, now: float) -> RunResult:
        run = worker.run
        assert run is not None
        worker.kill()
        if worker.started is None:
            error = f"the worker did not start the run within {now - worker.assigned:.0f} s"
            status = Status.ERROR
        else:
            error = (f"killed at the wall-clock limit: {now - worker.started:.1f} s (time budget "
                     f"{run.budget.seconds:g} s plus grace) without the run returning")
            status = Status.TIMEOUT
        return self._failed(worker, status, _with_output(error, worker.log_tail()), now)

    def _lost(self, worker: _Worker) -> RunResult:
        code = worker.exit_code()
        if code is None:
            worker.kill()
            how = "closed its connection and did not exit"
        elif code < 0:
            try:
                name = signal.Signals(-code).name
            except ValueError:
                name = f"signal {-code}"
            how = f"was killed by signal {name} ({-code})"
            if -code == signal.SIGKILL:
                how += ", sent from outside the harness (often the kernel's out-of-memory killer)"
        else:
            how = f"exited with code {code}"
        error = _with_output(f"the worker process {how} during the run", worker.log_tail())
        return self._failed(worker, Status.ERROR, error, time.monotonic())


def _pick(queue: collections.deque[RunSpec], pending: Iterator[RunSpec], worker: _Worker | None,
          others: Iterable[_Worker | None], lookahead: int) -> RunSpec | None:
    """The next run for ``worker``'s slot: the first, within ``lookahead`` runs, of a framework it already started.

    A fresh worker (or a slot without one) prefers a framework no other worker has started.
    Each worker process pays a framework's import once (torch and its ``_dynamo``: 2-3 s of
    CPU; jax and XLA's client: 1 s), so on few cores a pool whose every worker imports
    every framework spends that much more; keeping a framework's runs with the workers that
    started it saves it. Which worker executes a run never changes its result (every run is
    isolated), only the order in which runs end. Runs are pulled from ``pending`` (and so
    claimed in the store) at most ``lookahead`` ahead; without a preferred one, the oldest
    pulled run goes, so no run waits for long.
    """
    own = worker.frameworks if worker is not None and worker.alive() else set()
    taken = set().union(*(w.frameworks for w in others if w is not None and w is not worker and w.alive()))

    def preferred(run: RunSpec) -> bool:
        return run.framework in own if own else run.framework not in taken

    index = 0
    while True:
        if index == len(queue):
            if len(queue) >= lookahead:
                break
            run = next(pending, None)
            if run is None:
                break
            queue.append(run)
        if preferred(queue[index]):
            run = queue[index]
            del queue[index]
            return run
        index += 1
    return queue.popleft() if queue else None


def _with_output(error: str, output: str) -> str:
    """The worker's output, then the reason: the last line says what happened, as in a traceback."""
    return f"worker output:\n{output.rstrip()}\n{error}" if output.strip() else error


class PoolExecutor:
    """Runs in a pool of local worker processes, yielding each result as its run ends.

    Parameters
    ----------
    source
        The catalog the runs come from; the driver and every worker load it.
    jobs
        Worker processes; default :func:`default_jobs` of the first run's hardware profile.
    grace_s
        Seconds past ``budget.seconds`` before a run is killed; default
        :func:`~harness.execute.worker.default_grace`.
    startup_s
        Seconds a fresh worker may take to start a run (interpreter and framework import).
    rank_startup_s
        Extra seconds for multi-rank runs, which start their rank processes inside the run
        (default :data:`harness.host.RANK_STARTUP_S`).
    pin
        Pin each worker to cores of its own when ``jobs`` x the cores per run fit on the host.
    poll_s
        How often busy workers' memory is checked.
    lookahead
        Runs pulled (claimed) ahead per job, so that a free worker can take a run of a
        framework it has already started (:func:`_pick`); one job pulls none ahead.
    """

    def __init__(
        self,
        source: CatalogSource,
        *,
        jobs: int | None = None,
        grace_s: float | None = None,
        startup_s: float = 300.0,
        rank_startup_s: float = RANK_STARTUP_S,
        pin: bool = True,
        poll_s: float = 0.1,
        lookahead: int = 8,
    ) -> None:
        if jobs is not None and jobs < 1:
            raise ValueError(f"jobs must be at least 1 (got {jobs})")
        self.source = source
        self.jobs = jobs
        self.grace_s = grace_s
        self.startup_s = startup_s
        self.rank_startup_s = rank_startup_s
        self.pin = pin
        self.poll_s = poll_s
        self.lookahead = lookahead
        self.workers_started = 0

    def map(self, runs: Iterable[RunSpec]) -> Iterator[RunResult]:
        """Execute ``runs`` (pulled one at a time, as workers free up); yield results as they end."""
        pending = iter(runs)
        first = next(pending, None)
        if first is None:
            return
        supervisor = _Supervisor(self.source, grace_s=self.grace_s, startup_s=self.startup_s,
                                 rank_startup_s=self.rank_startup_s, pin=self.pin, poll_s=self.poll_s)
        jobs = self.jobs or default_jobs(supervisor.profile(first))
        queue = collections.deque([first])
        slots: list[_Worker | None] = [None] * jobs
        try:
            while True:
                for index in range(jobs):
                    worker = slots[index]
                    if worker is not None and worker.busy:
                        continue
                    run = _pick(queue, pending, worker, slots, max(1, self.lookahead * jobs) if jobs > 1 else 1)
                    if run is None:
                        break
                    slots[index] = supervisor.dispatch(run, worker, index=index, jobs=jobs)
                busy = [w for w in slots if w is not None and w.busy]
                if not busy:
                    return
                watched = [waitable for w in busy for waitable in w.waitables()]
                ready = set(wait(watched, timeout=supervisor.timeout(busy)))
                for index, worker in enumerate(slots):
                    if worker is None or not worker.busy:
                        continue
                    result, keep = supervisor.check(worker, worker.conn in ready)
                    if not keep:
                        worker.close()
                        slots[index] = None
                    if result is not None:
                        yield result
        finally:
            self.workers_started += supervisor.started
            for worker in slots:
                if worker is not None:
                    worker.close()


class LocalWorker:
    """One warm worker process that executes runs one at a time, under the pool's limits.

    What a Ray task uses on its node: the run is isolated from the Ray worker process, and a
    crash, a hang or an exhausted memory is reported exactly as the local pool reports it.

    Parameters
    ----------
    source
        The catalog the runs come from.
    grace_s, startup_s, rank_startup_s, poll_s
        As for :class:`PoolExecutor`.
    """

    def __init__(self, source: CatalogSource, *, grace_s: float | None = None, startup_s: float = 300.0,
                 rank_startup_s: float = RANK_STARTUP_S, poll_s: float = 0.1) -> None:
        self._supervisor = _Supervisor(source, grace_s=grace_s, startup_s=startup_s, rank_startup_s=rank_startup_s,
                                       pin=False, poll_s=poll_s)
        self.poll_s = poll_s
        self._worker: _Worker | None = None

    def execute(self, run: RunSpec) -> RunResult:
        """Execute ``run`` in the worker (started or replaced as needed) and return its result."""
        self._worker = worker = self._supervisor.dispatch(run, self._worker, index=0, jobs=1)
        while True:
            ready = wait(worker.waitables(), timeout=self._supervisor.timeout([worker]))
            result, keep = self._supervisor.check(worker, worker.conn in ready)
            if not keep:
                worker.close()
                self._worker = None
            if result is not None:
                return result

    def close(self) -> None:
        """Stop the worker process."""
        if self._worker is not None:
            self._worker.close()
            self._worker = None
